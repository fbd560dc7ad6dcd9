"""Encoding speed: npgpt against every importable peer, on the same text, in the same run.

    python bench/encode.py                 # ../shared/corpus, else the standard library's .py files
    python bench/encode.py FILE_OR_DIR...  # your own text
    python bench/encode.py --quick         # a smaller sample, for a smoke test

Peers (optional, ``pip install -e .[bench]``): tiktoken, riptoken and gigatoken built offline from the
very GPT-2 files npgpt loads, and Hugging Face tokenizers (byte-level BPE from the same files). Every
peer's ids are compared with npgpt's, on every document, before it is timed.

What is measured (UTF-8 MB/s, best of --repeat; the repeats are interleaved, every tokenizer once per
round, so that a slow moment of a shared machine hits all of them alike). Pin it to one core for the
one-thread figures: ``taskset -c 0 python bench/encode.py``.

- two regimes, one thread: *unseen text* (a new tokenizer each round, warmed on the first half of
  each document, timed on the second half) and *repeated text* (the same documents encoded again);
- ``encode_batch_to_numpy`` with 2 threads against its own single thread (needs 2 cores);
- where npgpt's time goes: the scanner alone, the rest of the kernel (lookups, piece cache, merge
  loop), and the Python around it; and the cost of the Python list of ids alone;
- memory on an endless stream of text never seen before (unique random words), in a new process;
- a 50-character ``encode``, and ``decode`` of 10M ids (time and memory, in a new process);
- ``import`` + ``get_encoding`` + the first ``encode`` in a new process, npgpt (numba cache warm
  and cold) and tiktoken;
- long pieces with no spaces, to show the merge loop stays linear.

Results go to the "encode" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
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


def peers(workdir: str) -> dict[str, object]:
    """Factories of each importable peer, built from npgpt's own GPT-2 files (no network)."""
    enc = npgpt.get_encoding("gpt2")
    ranks = enc._mergeable_ranks
    specials = {"<|endoftext|>": 50256}
    found = {}
    try:
        import tiktoken

        found[f"tiktoken {tiktoken.__version__}"] = lambda: tiktoken.Encoding(
            "gpt2-local", pat_str=enc.pattern, mergeable_ranks=ranks, special_tokens=specials)
    except ImportError:
        pass
    try:
        import gigatoken

        (path,) = enc.save(workdir, format="tiktoken")
        found[f"gigatoken {_version('gigatoken')}"] = lambda: gigatoken.Tokenizer.from_tiktoken(
            path, pretokenizer="gpt2", special_tokens=specials)
    except ImportError:
        pass
    try:
        import riptoken

        found[f"riptoken {riptoken.__version__}"] = lambda: riptoken.CoreBPE(ranks, specials, enc.pattern)
    except ImportError:
        pass
    try:
        import tokenizers
        from tokenizers import Tokenizer, models, pre_tokenizers

        v, m = enc.save(workdir)

        def hf():
            tok = Tokenizer(models.BPE.from_file(str(v), str(m)))
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            return tok

        found[f"HF tokenizers {tokenizers.__version__}"] = hf
    except ImportError:
        pass
    return found


def _version(name: str) -> str:
    from importlib import metadata

    return metadata.version(name)


def single(tok):
    """The one-text encode timed: npgpt's `encode_to_numpy`; gigatoken's `encode` (it returns an
    array too); the others' `encode_ordinary` (a list)."""
    if isinstance(tok, npgpt.Encoding):
        return tok.encode_to_numpy
    if type(tok).__module__.startswith("gigatoken"):
        return tok.encode
    if hasattr(tok, "encode_ordinary"):
        return tok.encode_ordinary
    return lambda t: tok.encode(t).ids


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def unshared(text: str) -> str:
    """An equal str that is a new object. tiktoken and gigatoken read a str through CPython's
    ``PyUnicode_AsUTF8AndSize``, which keeps a UTF-8 copy inside the str object for as long as it
    lives: whoever encodes that object next gets its UTF-8 for the cost of a memcpy (``str.encode``
    of the corpus: about 0.2 ms instead of 3.6 ms). So every timed call gets an object of its own,
    and no tokenizer's figure includes another's work."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")


def regimes(docs, factories, repeat):
    """Best seconds per tokenizer in the two regimes, interleaved rounds.

    unseen: a new instance each round (empty caches), warmed on the first half of every document,
    timed on the second halves. repeated: one instance, all documents encoded once, then timed again.
    """
    halves = [(t[: len(t) // 2], t[len(t) // 2 :]) for _, t in docs]
    kept = {name: make() for name, make in factories.items()}
    fns = {name: fn for name, fn in [*[(n, single(t)) for n, t in kept.items()],
                                     ("npgpt `encode_ordinary` (list)", kept["npgpt"].encode_ordinary)]}
    for fn in fns.values():  # warm the repeated-text instances
        for _, t in docs:
            fn(t)
    best = {"unseen": {}, "repeated": {}}
    for _ in range(repeat):
        for name, fn in fns.items():
            make = factories.get(name, factories["npgpt"])
            tok = make()
            f = single(tok) if name in factories else tok.encode_ordinary
            for first, _ in halves:
                f(first)
            gc.collect()
            t = sum(timed(f, unshared(second)) for _, second in halves)  # (the copy is made before the clock starts)
            best["unseen"][name] = min(best["unseen"].get(name, t), t)
            t = sum(timed(fn, unshared(text)) for _, text in docs)
            best["repeated"][name] = min(best["repeated"].get(name, t), t)
    return best


def batch_scaling(docs, fresh, repeat):
    """`encode_batch_to_numpy` of all documents on 1 and 2 threads (a warm Encoding each).

    The documents are very unequal (the Russian one is over a third of the work), so the 2-thread
    figure measures the chunking of long texts as much as the kernel: whole documents handed out in
    order could not pass about 1.8x.
    """
    texts = [t for _, t in docs]
    enc = fresh()
    pinned = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if pinned is not None:  # threads inherit the affinity of the thread that starts them: unpin for this
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    try:
        enc.encode_batch_to_numpy(texts, num_threads=THREADS)  # warm caches
        best = {1: float("inf"), THREADS: float("inf")}
        # A call takes 10-20 ms, and two threads need both cores quiet at once, which on a shared
        # machine is rarer than one: more rounds than elsewhere, so that "best" means the same for both
        # (with 30, the same code gave 1.72x to 1.84x from one full run to the next).
        for _ in range(max(repeat, 60)):
            for n in best:
                copies = [unshared(t) for t in texts]  # (see `unshared`)
                best[n] = min(best[n], timed(lambda n=n, c=copies: enc.encode_batch_to_numpy(c, num_threads=n)))
    finally:
        if pinned is not None:
            os.sched_setaffinity(0, pinned)
    return best


def breakdown(docs, fresh, repeat):
    """Per document: scanner only, the rest of the kernel, the Python around it, and the list (ms)."""
    from npgpt.bpe import merge_kernels as merge
    from npgpt.bpe import pretokenize_kernels as scan
    from npgpt.bpe.unicode_tables import char_classes

    classes = char_classes()
    enc = fresh()
    rows = [["document", "scan ms", "scan MB/s", "lookup/merge ms", "Python glue ms", "total ms (`encode_to_numpy`)",
             "`.tolist()` ms"]]
    sums = np.zeros(5)
    for doc_name, text in docs:
        buf = text.encode("utf-8")
        arr = np.frombuffer(buf, np.uint8)
        bounds = np.empty(len(arr) + 1, np.int64)
        segments = np.array([[0, len(arr), -1]], np.int64)
        segments.flags.writeable = False  # as npgpt passes it: the same compiled kernel
        t = enc._get_tables()
        out = np.empty(len(arr) + 1 + merge.OUT_SLACK, t.id_dtype)
        work = merge.scratch(merge.SCRATCH)
        enc.encode_to_numpy(text)  # a warm cache: the repeated-text regime
        ids = enc.encode_to_numpy(text)

        n_ids = len(ids)

        def kernel(arr=arr, segments=segments, t=t, out=out, work=work, n_ids=n_ids):
            # `Encoding._run_kernel`'s loop, without its Python around it: go on when the cache is full
            # or a piece needs more work space, until every id is written
            state = np.zeros(3, np.int64)
            cache = enc._caches.lend()  # the cache encode_to_numpy uses, warm
            while stop := merge.encode_segments(arr, segments, True, classes, t.byte_ids, t.pairs, t.joinable,
                                                cache.arrays, work, state, out):
                if stop == -1:
                    cache = enc._caches.full(cache)
                else:
                    work = merge.scratch(stop)
            enc._caches.give_back(cache)
            assert state[2] == n_ids, "the timed kernel did not write every id"

        t_scan = t_kernel = t_total = t_list = float("inf")
        for _ in range(repeat):
            t_scan = min(t_scan, timed(scan.scan, arr, 0, len(arr), classes, bounds))
            t_kernel = min(t_kernel, timed(kernel))
            t_total = min(t_total, timed(enc.encode_to_numpy, unshared(text)))
            t_list = min(t_list, timed(ids.tolist))
        part = np.array([t_scan, t_kernel - t_scan, t_total - t_kernel, t_total, t_list]) * 1e3
        sums += part
        rows.append([doc_name, f"{part[0]:.1f}", f"{len(buf) / t_scan / 1e6:.0f}", *[f"{x:.1f}" for x in part[1:]]])
    total = sum(len(t.encode("utf-8")) for _, t in docs)
    rows.append(["(all)", f"{sums[0]:.1f}", f"{total / sums[0] * 1e3 / 1e6:.0f}", *[f"{x:.1f}" for x in sums[1:]]])
    return rows


def _child(code: str, env=None) -> dict:
    """Run `code` in a new Python process pinned like this one; it prints one JSON line."""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"child process failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


_PEER_SETUP = """
import json, os, sys, tempfile, time
sys.path.insert(0, {bench!r})
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 1e6
"""


def memory_stream(mb_steps=(8, 24), peer_names=()) -> list[list[str]]:
    """Resident-set growth while encoding an endless stream of words never seen before, per tokenizer."""
    code = _PEER_SETUP + """
import random, numpy as np
name = {name!r}
import encode as bench, npgpt
if name == 'npgpt':
    tok = npgpt.get_encoding('gpt2'); fn = tok.encode_to_numpy
else:
    d = tempfile.mkdtemp(); tok = bench.peers(d)[name](); fn = bench.single(tok)
rng = random.Random(0)
letters = 'abcdefghijklmnopqrstuvwxyz'
def chunk(n):  # about n bytes of random 4-12 letter words: nearly every word new
    words = []
    size = 0
    while size < n:
        w = ''.join(rng.choices(letters, k=rng.randint(4, 12)))
        words.append(w); size += len(w) + 1
    return ' '.join(words)
fn(chunk(100_000))
base = rss(); done = 0; out = {{}}
for step in {steps!r}:
    while done < step * 1e6:
        fn(chunk(1_000_000)); done += 1e6
    out[step] = rss() - base
print(json.dumps(out))
"""
    rows = [["tokenizer", *[f"+RSS after {m} MB of new words" for m in mb_steps]]]
    bench_dir = str(Path(__file__).resolve().parent)
    for name in ["npgpt", *peer_names]:
        got = _child(code.format(bench=bench_dir, name=name, steps=list(mb_steps)))
        rows.append([name, *[f"{got[str(m)]:.0f} MB" for m in mb_steps]])
    return rows


def short_and_decode(peer_names) -> list[list[str]]:
    """Per-call time of a 50-character `encode`, and `decode` of 10M ids (time, memory), each in a new process."""
    code = _PEER_SETUP + """
import gc, timeit, glob
name = {name!r}
import encode as bench, npgpt
if name == 'npgpt':
    tok = npgpt.get_encoding('gpt2')
else:
    d = tempfile.mkdtemp(); tok = bench.peers(d)[name]()
s = 'The quick brown fox jumps over the lazy dog again.'
assert len(s) == 50
tok.encode(s)
per_call = min(timeit.repeat(lambda: tok.encode(s), number=2000, repeat=7)) / 2000
text = ''.join(open(p, encoding='utf-8').read() for p in {corpus!r})
ids = bench.single(tok)(text)
ids = ids.tolist() if hasattr(ids, 'tolist') else list(ids)
ids = (ids * (10_000_000 // len(ids) + 1))[:10_000_000]  # a list, as tiktoken takes
tok.decode(ids[:2000])
gc.collect()
def peak():  # VmHWM, the peak resident set, which writing 5 to clear_refs resets (Linux)
    with open('/proc/self/status') as f:
        return next(int(x.split()[1]) for x in f if x.startswith('VmHWM')) / 1e3
with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')
base = peak(); t0 = time.perf_counter(); out = tok.decode(ids); t = time.perf_counter() - t0
print(json.dumps({{'call': per_call, 'decode': t, 'decode_mb': peak() - base}}))
"""
    corpus = [str(p) for p in sorted(common.CORPUS.glob("*.txt"))]
    rows = [["tokenizer", "50-character `encode` µs", "`decode` of a list of 10M ids s", "`decode` peak memory growth"]]
    bench_dir = str(Path(__file__).resolve().parent)
    for name in ["npgpt", *peer_names]:
        got = _child(code.format(bench=bench_dir, name=name, corpus=corpus))
        rows.append([name, f"{got['call'] * 1e6:.2f}", f"{got['decode']:.2f}", f"+{got['decode_mb']:.0f} MB"])
    return rows


def startup(cold: bool = True) -> list[list[str]]:
    """import, get_encoding and a first encode in a new process, of a short text ("hello world") and of
    200 kB (Python's pydoc topics), for npgpt (numba caches warm, and empty unless `cold` is False)
    and tiktoken (from the same local GPT-2 files, as its own ``gpt2`` does). npgpt's short text runs
    on its plain tier; the long one loads the numba kernels (or compiles them, on a first run)."""
    from npgpt.bpe import vocab_files as vf

    encoder_json, vocab_bpe = map(str, vf.find_gpt2_files())
    texts = {"short": "'hello world'",
             "200 kB": "(lambda t: '\\n'.join(t.topics[k] for k in sorted(t.topics)))("
                       "__import__('pydoc_data.topics').topics)[:200_000]"}
    finish = ("t3 = time.perf_counter(); print(t1 - t0, t2 - t1, t3 - t2, next(int(x.split()[1]) for x in "
              "open('/proc/self/status') if x.startswith('VmHWM')) / 1e3)")
    npgpt_code = ("import time; s = __TEXT__; t0 = time.perf_counter(); import npgpt; t1 = time.perf_counter(); "
                  "e = npgpt.get_encoding('gpt2'); t2 = time.perf_counter(); e.encode(s); " + finish)
    tiktoken_code = (
        "import time; s = __TEXT__; t0 = time.perf_counter(); import tiktoken, tiktoken.load; "
        "t1 = time.perf_counter(); "
        f"r = tiktoken.load.data_gym_to_mergeable_bpe_ranks({vocab_bpe!r}, {encoder_json!r}); "
        f"e = tiktoken.Encoding('gpt2', pat_str={npgpt.get_encoding('gpt2').pattern!r}, mergeable_ranks=r, "
        "special_tokens={'<|endoftext|>': 50256}); t2 = time.perf_counter(); e.encode(s); " + finish)
    rows = [["process", "first text", "import s", "get_encoding s", "first encode s", "total s", "peak RSS MB",
             "stderr"]]
    cases = []
    for size, text in texts.items():
        cases.append(("npgpt, numba cache warm", size, npgpt_code.replace("__TEXT__", text), "warm"))
        try:
            import tiktoken  # noqa: F401

            cases.append(("tiktoken (local GPT-2 files)", size, tiktoken_code.replace("__TEXT__", text), "warm"))
        except ImportError:
            pass
    if cold:
        cases.append(("npgpt, first run on a machine (empty caches)", "200 kB",
                      npgpt_code.replace("__TEXT__", texts["200 kB"]), "cold"))
    with tempfile.TemporaryDirectory() as cold_dir:
        cold_env = dict(os.environ, NUMBA_CACHE_DIR=cold_dir, NPGPT_CACHE_DIR=cold_dir)
        for label, size, code, which in cases:
            env = cold_env if which == "cold" else dict(os.environ)
            subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True)  # fills caches
            if which == "cold":
                import shutil

                shutil.rmtree(cold_dir)  # and empty them again, so the timed run compiles
                os.mkdir(cold_dir)
            best, note = None, ""
            for _ in range(5 if which == "warm" else 1):
                out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
                vals = [float(x) for x in out.stdout.split()]
                best = vals if best is None else [min(a, b) for a, b in zip(best, vals, strict=True)]
                note = " ".join(out.stderr.split())[:80]
            rows.append([label, size, *[f"{v:.3f}" for v in best[:3]], f"{sum(best[:3]):.3f}", f"{best[3]:.0f}",
                         note or "(nothing)"])
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
    total = sum(len(t.encode("utf-8")) for _, t in docs)
    second = sum(len(t[len(t) // 2 :].encode("utf-8")) for _, t in docs)
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"corpus: {source}: {len(docs)} documents, {total / 1e6:.2f} MB; cpus {affinity}; load {load:.1f}")

    fresh = npgpt_factory()
    workdir = tempfile.mkdtemp()
    factories = {"npgpt": fresh, **peers(workdir)}
    expected = {n: fresh().encode_ordinary(t) for n, t in docs}
    for name, make in list(factories.items())[1:]:
        fn = single(make())
        wrong = [n for n, t in docs if not np.array_equal(np.asarray(fn(t)), expected[n])]
        if wrong:  # a peer that disagrees is not timed: its speed would mean nothing
            print(f"  {name}: ids differ from npgpt's on {wrong}; not timed", file=sys.stderr)
            del factories[name]
        else:
            print(f"  {name}: same ids as npgpt on all {len(docs)} documents")

    best = regimes(docs, factories, args.repeat)
    names = list(best["repeated"])
    rows = [["tokenizer (one thread)", "unseen text MB/s", "repeated text MB/s",
             "npgpt `encode_to_numpy` / this, unseen", "npgpt / this, repeated"]]
    for name in names:
        u, r = best["unseen"][name], best["repeated"][name]
        label = "npgpt `encode_to_numpy`" if name == "npgpt" else name
        rows.append([label, f"{second / u / 1e6:.1f}", f"{total / r / 1e6:.1f}", f"{u / best['unseen']['npgpt']:.2f}x",
                     f"{r / best['repeated']['npgpt']:.2f}x"])
    for name in names:
        print(f"  {name:<34} unseen {second / best['unseen'][name] / 1e6:7.1f} MB/s   "
              f"repeated {total / best['repeated'][name] / 1e6:7.1f} MB/s")
    scaling = batch_scaling(docs, fresh, args.repeat)
    peer_names = [n for n in factories if n != "npgpt" and not n.startswith("HF")]
    giga = [n for n in peer_names if n.startswith("gigatoken")]
    tik = [n for n in peer_names if n.startswith("tiktoken")]
    sections = [
        "## Encoding speed (`bench/encode.py`)",
        common.header(),
        f"Corpus: {source}, {len(docs)} documents, {total / 1e6:.2f} MB ({second / 1e6:.2f} MB in the second halves). "
        f"CPUs this process may use: {affinity} (one-thread figures are meant to be pinned: `taskset -c 0`); "
        f"load average {load:.1f} when it started: other agents share this machine, so every figure is the best of "
        f"{args.repeat} interleaved rounds. Every peer's ids were checked equal to npgpt's on every document first. "
        "Versions: "
        f"{common.versions('npgpt', 'numba', 'numpy', 'regex', 'tiktoken', 'gigatoken', 'riptoken', 'tokenizers')}.",
        "### One thread, two regimes",
        "*Unseen text*: a new tokenizer each round, warmed on the first half of every document, timed on the "
        "second halves. *Repeated text*: one tokenizer encodes the documents again. npgpt's `encode_to_numpy` and "
        "gigatoken's `encode` return arrays; the others return lists. Every timed call gets a new str object "
        "(equal text): tiktoken and gigatoken leave a UTF-8 copy inside each str they read, which would "
        "make the next tokenizer's UTF-8 encoding of it a memcpy.",
        common.table(rows),
        f"### `encode_batch_to_numpy` of the {len(docs)} documents (warm caches)",
        common.table([["threads", "MB/s", "over one thread"], ["1", f"{total / scaling[1] / 1e6:.1f}", "1.00x"],
                      [str(THREADS), f"{total / scaling[THREADS] / 1e6:.1f}",
                       f"{scaling[1] / scaling[THREADS]:.2f}x"]]),
        "### Where npgpt's time goes (one thread, repeated text)",
        "scan: the numba pre-tokenizer alone; lookup/merge: the rest of the kernel (one probe of the piece cache "
        "per piece, the merge loop on a miss); Python glue: the rest of `encode_to_numpy` (UTF-8 encoding, the "
        "output array). `.tolist()`: turning the ids into a Python list, what `encode_ordinary` adds.",
        common.table(breakdown(docs, fresh, args.repeat)),
        "### Memory on an endless stream of new text (random words, a new process each)",
        common.table(memory_stream((8, 24), giga)),
        "### Short texts and decoding (a new process each)",
        common.table(short_and_decode(tik + giga)),
        "### Start-up, in a new process",
        common.table(startup(cold=not args.quick)),
        "### Long pieces: the merge loop stays roughly linear (10x the input should take about 10x the time)",
        common.table(long_pieces(fresh, 10**4 if args.quick else 10**5)),
    ]
    body = "\n\n".join(sections)
    figures = {"npgpt MB/s": second / best["unseen"]["npgpt"] / 1e6,  # encode_to_numpy, unseen text
               "npgpt unseen MB/s": second / best["unseen"]["npgpt"] / 1e6,
               "npgpt repeated MB/s": total / best["repeated"]["npgpt"] / 1e6}
    for name in names[1:]:
        figures[f"npgpt / {name}, unseen"] = best["unseen"][name] / best["unseen"]["npgpt"]
        figures[f"npgpt / {name}, repeated"] = best["repeated"][name] / best["repeated"]["npgpt"]
    figures["encode_batch_to_numpy 2 threads / 1"] = scaling[1] / scaling[THREADS]
    common.finish(args, "encode", body, figures)


if __name__ == "__main__":
    main()
