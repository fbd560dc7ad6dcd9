"""Encoding speed: npgpt against every importable peer, on the same text, in the same run.

    python bench/encode.py                 # ../shared/corpus, else the standard library's .py files
    python bench/encode.py FILE_OR_DIR...  # your own text
    python bench/encode.py --quick         # a smaller sample, for a smoke test

Peers (optional, ``pip install -e .[bench]``): tiktoken and riptoken built offline from the very
GPT-2 files npgpt loads, and Hugging Face tokenizers (byte-level BPE from the same files). Every
peer's output is compared with npgpt's before it is timed.

What is measured (UTF-8 MB/s, best of --repeat; the repeats are interleaved, every tokenizer once per
round, so that a slow moment of a shared machine hits all of them alike):

- one thread, ``encode_ordinary`` per document; npgpt gets a fresh ``Encoding`` every round, so its
  piece cache starts empty;
- ``encode_ordinary_batch`` of all documents with 2 threads, against each peer's single thread and
  its own 2-thread batch;
- where npgpt's time goes: the scanner alone, the whole kernel (scanner + merges), and the Python
  around it (UTF-8 encoding, building the list of ids);
- ``import npgpt`` and the first ``encode`` in a new process, with the numba cache warm and cold;
- long pieces with no spaces, to show the merge loop stays linear.

Results go to the "encode" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import numpy as np

import npgpt
from npgpt.bpe import vocab_files

THREADS = 2


def npgpt_factory():
    """A function that returns a new GPT-2 Encoding with its tables built and an empty piece cache."""
    vocab, merges = vocab_files.read_gpt2(vocab_files.find_gpt2_files())

    def fresh() -> npgpt.Encoding:
        enc = npgpt.Encoding(vocab, merges, {"<|endoftext|>": 50256}, name="gpt2")
        enc._get_tables()  # not timed: the one-off table build
        return enc

    return fresh


def peers() -> dict[str, object]:
    """Each importable peer, built from npgpt's own GPT-2 files (no network)."""
    enc = npgpt.get_encoding("gpt2")
    ranks = enc._mergeable_ranks
    specials = {"<|endoftext|>": 50256}
    found = {}
    try:
        import tiktoken

        found[f"tiktoken {tiktoken.__version__}"] = tiktoken.Encoding(
            "gpt2-local", pat_str=enc.pattern, mergeable_ranks=ranks, special_tokens=specials)
    except ImportError:
        pass
    try:
        import riptoken

        found[f"riptoken {riptoken.__version__}"] = riptoken.CoreBPE(ranks, specials, enc.pattern)
    except ImportError:
        pass
    try:
        import tokenizers
        from tokenizers import Tokenizer, models, pre_tokenizers

        with tempfile.TemporaryDirectory() as d:
            v, m = enc.save(d)
            hf = Tokenizer(models.BPE.from_file(str(v), str(m)))
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        found[f"HF tokenizers {tokenizers.__version__}"] = hf
    except ImportError:
        pass
    return found


def single(tok):
    if hasattr(tok, "encode_ordinary"):
        return tok.encode_ordinary
    return lambda t: tok.encode(t).ids


def batch(tok):
    if isinstance(tok, npgpt.Encoding) or type(tok).__module__.startswith("tiktoken"):
        return lambda docs: tok.encode_ordinary_batch(docs, num_threads=THREADS)
    if hasattr(tok, "encode_ordinary_batch"):  # riptoken: a Rust thread pool over all (here 2) cores
        return tok.encode_ordinary_batch
    return None  # HF tokenizers: its own thread pool, and not encode_ordinary


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def speed_table(docs, tokenizers, fresh, repeat):
    """Best time per (tokenizer, document) and per tokenizer over all documents, interleaved."""
    best: dict[str, dict[str, float]] = {name: {} for name in tokenizers}
    for _ in range(repeat):
        for name, tok in tokenizers.items():
            fn = single(fresh() if tok is None else tok)
            total = 0.0
            for doc_name, text in docs:
                t = timed(fn, text)
                total += t
                best[name][doc_name] = min(best[name].get(doc_name, t), t)
            best[name]["(all)"] = min(best[name].get("(all)", total), total)
    return best


def batch_table(docs, tokenizers, fresh, repeat, best_single):
    texts = [t for _, t in docs]
    best: dict[str, float] = {}
    numpy_best = float("inf")
    for _ in range(repeat):
        for name, tok in tokenizers.items():
            fn = batch(fresh() if tok is None else tok)
            if fn is not None:
                t = timed(fn, texts)
                best[name] = min(best.get(name, t), t)
        enc = fresh()
        numpy_best = min(numpy_best, timed(partial(enc.encode_batch_to_numpy, num_threads=THREADS), texts))
    rows = [["tokenizer", f"{THREADS}-thread batch MB/s", "scaling over its 1 thread",
             "npgpt batch / this one's 1 thread"]]
    total = sum(len(t.encode("utf-8")) for t in texts)
    for name, t in best.items():
        rows.append([name, f"{total / t / 1e6:.2f}", f"{best_single[name]['(all)'] / t:.2f}x",
                     f"{best_single[name]['(all)'] / best['npgpt']:.2f}x"])
    rows.append(["npgpt `encode_batch_to_numpy` (no Python list)", f"{total / numpy_best / 1e6:.2f}",
                 f"{best_single['npgpt']['(all)'] / numpy_best:.2f}x", ""])
    return rows


def breakdown(docs, fresh, repeat):
    """Per document: scanner only, whole kernel, whole encode_ordinary (ms, best of repeat)."""
    from npgpt.bpe import merge_kernels as merge
    from npgpt.bpe import pretokenize_kernels as scan
    from npgpt.bpe.unicode_tables import char_classes

    classes = char_classes()
    rows = [["document", "scan ms", "merge ms", "Python glue ms", "total ms"]]
    sums = np.zeros(3)
    for doc_name, text in docs:
        buf = text.encode("utf-8")
        arr = np.frombuffer(buf, np.uint8)
        bounds = np.empty(len(arr) + 1, np.int64)
        segments = np.array([[0, len(arr), -1]], np.int64)
        out = np.empty(len(arr) + 1, np.int32)
        t_scan = t_kernel = t_total = float("inf")
        for _ in range(repeat):
            t_scan = min(t_scan, timed(scan.scan, arr, 0, len(arr), classes, bounds))
            enc = fresh()
            t = enc._get_tables()
            byte_ids, pairs, tokens = t.byte_ids, t.pairs, (t.token_table, t.token_pool, t.joinable)
            cache = enc._piece_cache()
            t_kernel = min(t_kernel, timed(merge.encode_segments, arr, segments, True, classes, byte_ids, pairs,
                                           tokens, cache.arrays(), cache.MAX_PIECE, out))
            t_total = min(t_total, timed(fresh().encode_ordinary, text))
        part = np.array([t_scan, t_kernel - t_scan, t_total - t_kernel]) * 1e3
        sums += part
        rows.append([doc_name, *[f"{x:.1f}" for x in part], f"{part.sum():.1f}"])
    rows.append(["(all)", *[f"{x:.1f}" for x in sums], f"{sums.sum():.1f}"])
    return rows


def startup(cold: bool = True) -> list[list[str]]:
    """import and first encode in a fresh process, numba cache warm and (unless `cold` is False) cold."""
    code = ("import time; t0 = time.perf_counter(); import npgpt; t1 = time.perf_counter(); "
            "e = npgpt.get_encoding('gpt2'); t2 = time.perf_counter(); e.encode('hello world'); "
            "t3 = time.perf_counter(); print(t1 - t0, t2 - t1, t3 - t2)")
    rows = [["numba cache", "import npgpt s", "get_encoding('gpt2') s", "first encode s"]]
    with tempfile.TemporaryDirectory() as cold_dir:
        cold_env = dict(os.environ, NUMBA_CACHE_DIR=cold_dir, NPGPT_CACHE_DIR=cold_dir)
        cases = [("warm", dict(os.environ)), ("cold (empty cache dir)", cold_env)][: 2 if cold else 1]
        for label, env in cases:
            subprocess.run([sys.executable, "-c", code], env=env, capture_output=True)  # fills a warm cache
            if label.startswith("cold"):
                for p in Path(cold_dir).iterdir():  # and empty it again, so the timed run compiles
                    if p.is_file():
                        p.unlink()
                    else:
                        import shutil

                        shutil.rmtree(p)
            best = None
            for _ in range(3 if label == "warm" else 1):
                out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
                vals = [float(x) for x in out.stdout.split()]
                best = vals if best is None else [min(a, b) for a, b in zip(best, vals, strict=True)]
            rows.append([label, *[f"{v:.3f}" for v in best]])
    return rows


def long_pieces(fresh, small: int = 10**5) -> list[list[str]]:
    rng = random.Random(0)
    rows = [["input (one piece, no spaces)", f"n = {small:,}", f"n = {10 * small:,}", "10x the input takes"]]
    makers = {
        '"a" * n': lambda n: "a" * n,
        "random base64, n chars": lambda n: base64.b64encode(rng.randbytes(n * 3 // 4)).decode(),
        "random lowercase letters": lambda n: "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=n)),
    }
    for name, make in makers.items():
        short, big = make(small), make(10 * small)
        # a fresh Encoding each time: a warm piece cache would flatter the small input
        t_small = min(timed(fresh().encode_ordinary, short) for _ in range(3))
        t_big = min(timed(fresh().encode_ordinary, big) for _ in range(3))
        rows.append([name, f"{t_small * 1e3:.1f} ms", f"{t_big * 1e3:.1f} ms", f"{t_big / t_small:.1f}x"])
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="first 200 kB of up to 8 files, 2 rounds")
    common.add_output_args(ap)
    args = ap.parse_args(argv)

    if args.paths:
        source, paths = " ".join(map(str, args.paths)), args.paths
    else:
        source, paths = common.default_corpus()
    docs = common.read_files(paths)
    if args.quick:
        docs = [(n, t[:200_000]) for n, t in docs[:8]]
        args.repeat = 2
    if len(docs) > 12:  # many small files (the standard library): one document per group of files
        step = -(-len(docs) // 12)
        docs = [(f"files {i + 1}-{min(i + step, len(docs))}", "\n".join(t for _, t in docs[i : i + step]))
                for i in range(0, len(docs), step)]
    sizes = {n: len(t.encode("utf-8")) for n, t in docs}
    sizes["(all)"] = total = sum(sizes.values())
    print(f"corpus: {source}: {len(docs)} documents, {total / 1e6:.2f} MB")

    fresh = npgpt_factory()
    expected = {n: fresh().encode_ordinary(t) for n, t in docs}
    tokenizers = {"npgpt": None, **peers()}
    for name, tok in list(tokenizers.items())[1:]:
        wrong = [n for n, t in docs if list(single(tok)(t)) != expected[n]]
        if wrong:
            print(f"  {name}: output differs from npgpt on {wrong}; still timed", file=sys.stderr)

    best = speed_table(docs, tokenizers, fresh, args.repeat)
    for name in tokenizers:
        print(f"  {name:<24} {total / best[name]['(all)'] / 1e6:7.2f} MB/s")
    cols = ["(all)"] + [n for n, _ in docs]
    rows = [["tokenizer", *[f"{c} MB/s" for c in cols]]]
    rows += [[name, *[f"{sizes[c] / best[name][c] / 1e6:.2f}" for c in cols]] for name in tokenizers]
    ratio_rows = [["npgpt / peer", *cols]]
    ratio_rows += [[name, *[f"{best[name][c] / best['npgpt'][c]:.2f}x" for c in cols]] for name in list(tokenizers)[1:]]

    batch_rows = batch_table(docs, tokenizers, fresh, args.repeat, best)
    sections = [
        "## Encoding speed (`bench/encode.py`)",
        common.header(),
        f"Corpus: {source}, {len(docs)} documents, {total / 1e6:.2f} MB. Best of {args.repeat} interleaved rounds; "
        "npgpt with a fresh `Encoding` (empty piece cache) every round. "
        f"Versions: {common.versions('npgpt', 'numba', 'numpy', 'regex', 'tiktoken', 'riptoken', 'tokenizers')}.",
        "### One thread, `encode_ordinary`",
        common.table(rows),
        "npgpt's speed over each peer's (above 1: npgpt is faster):",
        common.table(ratio_rows) if len(ratio_rows) > 1 else "(no peer installed: `pip install -e .[bench]`)",
        f"### `encode_ordinary_batch` of the {len(docs)} documents, {THREADS} threads",
        common.table(batch_rows),
        "### Where npgpt's time goes (one thread, fresh `Encoding`)",
        "scan: the numba pre-tokenizer alone; merge: the rest of the kernel (lookups, piece cache, merge "
        "loop); Python glue: everything else in `encode_ordinary` (UTF-8 encoding, the list of ids).",
        common.table(breakdown(docs, fresh, args.repeat)),
        "### Start-up, in a new process",
        common.table(startup(cold=not args.quick)),
        "### Long pieces: the merge loop stays roughly linear (10x the input should take about 10x the time)",
        common.table(long_pieces(fresh, 10**4 if args.quick else 10**5)),
    ]
    body = "\n\n".join(sections)
    figures = {"npgpt MB/s": total / best["npgpt"]["(all)"] / 1e6}
    for name in list(tokenizers)[1:]:
        figures[f"npgpt / {name}"] = best[name]["(all)"] / best["npgpt"]["(all)"]
    for row in batch_rows[1:]:
        if row[0] == "npgpt":
            figures["npgpt 2-thread batch MB/s"] = float(row[1])
        elif row[0].startswith("tiktoken"):
            figures["npgpt 2-thread batch / tiktoken 1 thread"] = float(row[3].rstrip("x"))
    common.finish(args, "encode", body, figures)


if __name__ == "__main__":
    main()
