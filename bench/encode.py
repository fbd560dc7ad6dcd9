"""Encoding speed: npgpt against every importable peer, on the same text, in the same run.

    python bench/encode.py                 # ../shared/corpus, else the standard library's .py files
    python bench/encode.py FILE_OR_DIR...  # your own text
    python bench/encode.py --quick         # a smaller sample, for a smoke test

Peers (optional, ``pip install -e .[bench]``): tiktoken and riptoken built offline from the very
GPT-2 files npgpt loads, and Hugging Face tokenizers (byte-level BPE from the same files). Every
tokenizer's output is checked against npgpt's before it is timed.

Figures: MB/s of ``encode_ordinary`` (UTF-8 bytes per second, one thread, best of --repeat), per
file and over the whole corpus, and the ratio npgpt / peer. npgpt is timed with a fresh Encoding
each repeat, so its piece cache starts empty. Also: time to encode long pieces with no spaces, to
show the merge loop stays linear. Results go to the "encode" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import npgpt  # noqa: E402
from npgpt import vocab_files  # noqa: E402


def npgpt_factory():
    vocab, merges = vocab_files.read_gpt2(vocab_files.find_gpt2_files())

    def fresh():
        enc = npgpt.Encoding(vocab, merges, {"<|endoftext|>": 50256}, name="gpt2")
        enc.encode_ordinary("warm up: build the tables")  # not timed: one-off table build
        return enc.encode_ordinary

    return fresh


def peers() -> dict[str, object]:
    """encode_ordinary of each importable peer, built from npgpt's own GPT-2 files (no network)."""
    enc = npgpt.get_encoding("gpt2")
    ranks = {b: i for b, i in enc._mergeable_ranks.items()}
    specials = {"<|endoftext|>": 50256}
    found = {}
    try:
        import tiktoken

        tk = tiktoken.Encoding("gpt2-local", pat_str=enc.pattern, mergeable_ranks=ranks, special_tokens=specials)
        found[f"tiktoken {tiktoken.__version__}"] = tk.encode_ordinary
    except ImportError:
        pass
    try:
        import riptoken

        rt = riptoken.CoreBPE(ranks, specials, enc.pattern)
        found[f"riptoken {riptoken.__version__}"] = rt.encode_ordinary
    except ImportError:
        pass
    try:
        import tempfile

        import tokenizers
        from tokenizers import Tokenizer, models, pre_tokenizers

        with tempfile.TemporaryDirectory() as d:
            v, m = enc.save(d)
            hf = Tokenizer(models.BPE.from_file(str(v), str(m)))
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        found[f"HF tokenizers {tokenizers.__version__}"] = lambda t: hf.encode(t).ids
    except ImportError:
        pass
    return found


def best_time(fn, texts: list[str], repeat: int, fresh=None) -> float:
    best = float("inf")
    for _ in range(repeat):
        f = fresh() if fresh else fn
        t0 = time.perf_counter()
        for t in texts:
            f(t)
        best = min(best, time.perf_counter() - t0)
    return best


def long_pieces(encode) -> list[list[str]]:
    rng = random.Random(0)
    rows = [["input (one piece, no spaces)", "n = 10^5", "n = 10^6", "ratio (10x input)"]]
    makers = {
        '"a" * n': lambda n: "a" * n,
        "random base64, n chars": lambda n: base64.b64encode(rng.randbytes(n * 3 // 4)).decode(),
        "random lowercase letters": lambda n: "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=n)),
    }
    for name, make in makers.items():
        small, big = make(10**5), make(10**6)
        t_small = min(_timed(encode, small) for _ in range(3))
        t_big = min(_timed(encode, big) for _ in range(2))
        rows.append([name, f"{t_small * 1e3:.1f} ms", f"{t_big * 1e3:.1f} ms", f"{t_big / t_small:.1f}x"])
    return rows


def _timed(fn, text) -> float:
    t0 = time.perf_counter()
    fn(text)
    return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="first 200 kB of each file, one repeat")
    ap.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = ap.parse_args(argv)

    if args.paths:
        source, paths = " ".join(map(str, args.paths)), args.paths
    else:
        source, paths = common.default_corpus()
    docs = common.read_files(paths)
    if args.quick:
        docs = [(n, t[:200_000]) for n, t in docs[:8]]
        args.repeat = 1
    total_bytes = sum(len(t.encode("utf-8")) for _, t in docs)
    print(f"corpus: {source}: {len(docs)} files, {total_bytes / 1e6:.2f} MB")

    fresh = npgpt_factory()
    reference = fresh()
    expected = {n: reference(t) for n, t in docs}
    tokenizers = {"npgpt": None, **peers()}
    for name, fn in tokenizers.items():
        if fn is not None:
            wrong = [n for n, t in docs if list(fn(t)) != expected[n]]
            if wrong:
                print(f"  {name}: output differs from npgpt on {wrong}; still timed", file=sys.stderr)

    # per tokenizer, per file, best of --repeat
    per_file: dict[str, dict[str, float]] = {}
    for name, fn in tokenizers.items():
        per_file[name] = {}
        for doc_name, text in docs if len(docs) <= 12 else []:
            per_file[name][doc_name] = best_time(fn, [text], args.repeat, fresh if fn is None else None)
        per_file[name]["(all)"] = best_time(fn, [t for _, t in docs], args.repeat, fresh if fn is None else None)
        mbs = total_bytes / per_file[name]["(all)"] / 1e6
        print(f"  {name:<24} {mbs:7.2f} MB/s")

    names = list(tokenizers)
    cols = ["(all)"] + [n for n, _ in docs] if len(docs) <= 12 else ["(all)"]
    sizes = {"(all)": total_bytes, **{n: len(t.encode("utf-8")) for n, t in docs}}
    rows = [["tokenizer", *[f"{c} MB/s" for c in cols]]]
    for name in names:
        rows.append([name, *[f"{sizes[c] / per_file[name][c] / 1e6:.2f}" for c in cols]])
    ratio_rows = [["npgpt / peer", *cols]]
    for name in names[1:]:
        ratio_rows.append([name, *[f"{per_file[name][c] / per_file['npgpt'][c]:.2f}x" for c in cols]])

    long_rows = long_pieces(npgpt.get_encoding("gpt2").encode_ordinary)
    body = "\n\n".join([
        "## Encoding speed (`bench/encode.py`)",
        common.header(),
        f"Corpus: {source}, {len(docs)} files, {total_bytes / 1e6:.2f} MB. One thread, `encode_ordinary`, "
        f"best of {args.repeat}; npgpt with a fresh `Encoding` (empty piece cache) each time. "
        f"Versions: {common.versions('npgpt', 'numba', 'numpy', 'regex', 'tiktoken', 'riptoken', 'tokenizers')}.",
        common.table(rows),
        "Ratio of npgpt's speed to each peer's (above 1 means npgpt is faster):",
        common.table(ratio_rows) if len(ratio_rows) > 1 else "(no peer installed: `pip install -e .[bench]`)",
        "Long pieces: the merge loop must stay roughly linear (10x the input should take about 10x the time):",
        common.table(long_rows),
    ])
    print(body)
    if not args.no_write:
        common.write_section("encode", body)
        print(f"\nwritten to {os.path.relpath(common.RESULTS)}")


if __name__ == "__main__":
    main()
