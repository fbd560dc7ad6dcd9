"""Embedding layers at GPT-2 size: npgpt against plain NumPy and torch, same run.

    python bench/embedding.py            # 50,257 x 768 table, batch 8 x 1024
    python bench/embedding.py --quick    # a smaller table and batch

Forward: ``tok_emb(ids) + pos_emb(arange(T))``. npgpt's is NumPy's fancy index and an in-place
broadcast add (``x = W[ids]; x += P[:T]``, plus copying the ids for the backward), so this row shows
what the validation costs over the bare expression ``W[ids] + P[:T]``. Backward: the gradient of
that output into both tables -- npgpt's scatter-add by id groups (numba kernels without the GIL on
Python threads; also timed on one thread), NumPy's ``np.add.at``, and torch's autograd
(``out.backward(grad)``, gradients accumulating into ``.grad`` as in training). Every result is
checked against the others before timing. Rounds are interleaved and each figure is the minimum
over --repeat rounds (the machine is shared). Results go to the "embedding" section of
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import numpy as np

from npgpt import GPTEmbedding
from npgpt.embedding import _num_threads


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        # a pause first: OpenMP workers (torch's) spin for a while after their last op, and would
        # otherwise take a core from whoever is timed next
        time.sleep(0.02)
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true")
    common.add_output_args(ap)
    args = ap.parse_args(argv)
    vocab, ctx, dim, batch = (50257, 1024, 768, 8) if not args.quick else (5000, 128, 64, 4)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab, (batch, ctx))
    grad = rng.standard_normal((batch, ctx, dim)).astype(np.float32)

    emb = GPTEmbedding(vocab, ctx, dim, rng=0)
    emb_threads = _num_threads(None)
    tok, pos = emb.tok_emb.weight, emb.pos_emb.weight
    out = emb(ids)
    emb.backward(grad)  # compiles (or loads) the kernels

    def numpy_forward():
        return tok[ids] + pos[:ctx]

    np_tok_grad, np_pos_grad = np.zeros_like(tok), np.zeros_like(pos)

    def numpy_backward():
        np.add.at(np_tok_grad, ids.reshape(-1), grad.reshape(-1, dim))
        np_pos_grad[:ctx] += grad.sum(axis=0)

    assert np.array_equal(out, numpy_forward())
    emb.zero_grad()
    emb.backward(grad)
    numpy_backward()
    one_grad = emb.tok_emb.grad.copy()  # the gradient of one backward, to check the peers against
    assert np.allclose(one_grad, np_tok_grad, rtol=1e-5, atol=1e-4)

    rows = [["", "npgpt", "NumPy (`tok[ids] + pos`, `np.add.at`)"]]
    forwards = {"npgpt": lambda: emb(ids), "numpy": numpy_forward}
    backwards = {"npgpt": lambda: emb.backward(grad), "numpy": numpy_backward}
    one_thread = float("inf")
    prepare = {}
    try:
        import torch

        t_tok = torch.nn.Embedding(vocab, dim)
        t_pos = torch.nn.Embedding(ctx, dim)
        with torch.no_grad():
            t_tok.weight.copy_(torch.from_numpy(tok))
            t_pos.weight.copy_(torch.from_numpy(pos))
        t_ids, t_grad, t_ar = torch.from_numpy(ids), torch.from_numpy(grad), torch.arange(ctx)
        state = {}

        def torch_forward():
            return t_tok(t_ids) + t_pos(t_ar)

        def torch_prepare():  # forward with autograd, so that backward has a graph (not timed)
            state["out"] = torch_forward()

        def torch_backward():
            state["out"].backward(t_grad)

        with torch.no_grad():
            assert np.array_equal(torch_forward().numpy(), out)
        torch_prepare()
        torch_backward()
        t_tok.weight.grad = None
        torch_prepare()
        torch_backward()
        assert np.allclose(t_tok.weight.grad.numpy(), one_grad, rtol=1e-5, atol=1e-4)
        forwards["torch"], backwards["torch"], prepare["torch"] = torch_forward, torch_backward, torch_prepare
        rows[0].append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        pass

    # Interleaved rounds after one warm-up of everyone: the allocator (glibc's mmap threshold moves
    # as large blocks are freed) and the machine are then in the same state for every contender.
    for fn in forwards.values():
        fn()
    times = {name: [float("inf"), float("inf")] for name in forwards}
    for r in range(args.repeat):
        for name in forwards:
            times[name][0] = min(times[name][0], best_of(forwards[name], 1))
            if name == "numpy" and r >= max(2, args.repeat // 3):
                continue  # np.add.at is slow; a few rounds are enough
            if name in prepare:
                prepare[name]()
            times[name][1] = min(times[name][1], best_of(backwards[name], 1))
        one_thread = min(one_thread, best_of(lambda: emb.backward(grad, num_threads=1), 1))
    names = list(times)
    rows.append(["forward ms", *[f"{times[n][0] * 1e3:.1f}" for n in names]])
    rows.append(["backward ms", *[f"{times[n][1] * 1e3:.1f}" for n in names]])
    rows.append(["backward ms, 1 thread", f"{one_thread * 1e3:.1f}", *[""] * (len(names) - 1)])
    rows.append(["npgpt forward / this", *[f"{times['npgpt'][0] / times[n][0]:.2f}x" for n in names]])
    rows.append(["npgpt backward / this", *[f"{times['npgpt'][1] / times[n][1]:.2f}x" for n in names]])
    body = "\n\n".join([
        "## Embeddings (`bench/embedding.py`)",
        common.header(),
        f"`GPTEmbedding({vocab}, {ctx}, {dim})`, ids of shape ({batch}, {ctx}), float32, best of {args.repeat}. "
        "Forward: token lookup + positional add (npgpt: `x = W[ids]; x += P[:T]`); backward: gradient into "
        f"both tables, accumulated (torch: autograd into `.grad`), npgpt on {emb_threads} Python threads and "
        "on 1. Rounds interleaved, minimum of each (shared machine). Times below 1 mean npgpt takes less. "
        f"Versions: {common.versions('npgpt', 'numba', 'numpy', 'torch')}.",
        common.table(rows),
    ])
    figures = {"npgpt forward ms": times["npgpt"][0] * 1e3, "npgpt backward ms": times["npgpt"][1] * 1e3,
               "npgpt backward ms, 1 thread": one_thread * 1e3,
               "npgpt backward / np.add.at": times["npgpt"][1] / times["numpy"][1]}
    if "torch" in times:
        figures["npgpt forward / torch"] = times["npgpt"][0] / times["torch"][0]
        figures["npgpt backward / torch"] = times["npgpt"][1] / times["torch"][1]
    common.finish(args, "embedding", body, figures)


if __name__ == "__main__":
    main()
