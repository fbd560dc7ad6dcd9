"""Training BPE vocabularies: npgpt.train_bpe against every installed trainer, same files, same run.

    python bench/train.py              # the corpus at 50,257 and 8,192; one ~30 MB file at 50,257
    python bench/train.py --quick      # 2,000 on a 1 MB sample, one round
    python bench/train.py --rounds 5   # more rounds (the figures are the minimum over rounds)

Each trainer runs in a fresh process pinned to one core (``taskset -c 0`` where it exists) with one
thread (``RAYON_NUM_THREADS=1``, ``NUMBA_NUM_THREADS=1``, ``num_threads=1``), reading the same files.
The figures are the whole process's wall time (start-up, imports, reading, counting, merging, the
result) and its peak resident memory. Rounds are interleaved (every trainer once per round) and each
figure is the minimum over rounds, because other work on the machine only ever adds time.

Peers (each optional, skipped when not installed): gigabpe (``pretokenizer="bytelevel"``), Hugging
Face tokenizers' byte-level ``BpeTrainer``, rustbpe (nanochat's trainer), bpeasy.

Before timing, each peer's merges are compared with npgpt's on the same text. HF and gigabpe read
files line by line (each line a document), so npgpt is given the same lines for this check; rustbpe
and bpeasy get whole files. The trainers break ties between equally frequent pairs differently
(npgpt: the greatest ``(left_bytes, right_bytes)``, as CS336), so the check reports how many leading
merges are equal and verifies that the first difference is such a tie (both pairs equally frequent
at that step), which makes every merge before it, and the counting behind them, exact.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

# GPT-2's pattern, as `npgpt.GPT2_PATTERN`; written out so that a peer's process imports nothing of npgpt
# (every trainer's memory is measured from a bare interpreter).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
TRAINERS = ["npgpt", "gigabpe", "HF tokenizers", "rustbpe", "bpeasy"]
MODULES = {"npgpt": "npgpt", "gigabpe": "gigabpe", "HF tokenizers": "tokenizers", "rustbpe": "rustbpe",
           "bpeasy": "bpeasy"}


# --------------------------------------------------------------------------------------------
# each trainer, as it would be used


def _texts(files):
    for f in files:
        yield Path(f).read_bytes().decode("utf-8")


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet (HF, gigabpe) back to bytes."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, extra = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def train(name: str, files: list[str], vocab_size: int, docs: list[str] | None = None):
    """Train with one trainer, as its users would; return its result as it comes. `docs` replaces
    `files` for npgpt."""
    if name == "npgpt":
        import npgpt

        if docs is not None:
            return npgpt.train_bpe(docs, vocab_size, num_threads=1, progress=False)
        return npgpt.train_bpe(files=files, vocab_size=vocab_size, num_threads=1, progress=False)
    if name == "gigabpe":
        import gigabpe

        return gigabpe.train_bpe(files, vocab_size, special_tokens=["<|endoftext|>"], pretokenizer="bytelevel",
                                 threads=1)
    if name == "HF tokenizers":
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, special_tokens=["<|endoftext|>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train(files, trainer)
        return tok
    if name == "rustbpe":
        import rustbpe

        tok = rustbpe.Tokenizer()
        tok.train_from_iterator(_texts(files), vocab_size - 1, pattern=GPT2_PATTERN)
        return tok
    import bpeasy

    return bpeasy.train_bpe(_texts(files), GPT2_PATTERN, 128, vocab_size - 1)


def merges_of(name: str, result) -> list[tuple[bytes, bytes]]:
    """A trainer's merges as pairs of bytes."""
    if name == "npgpt":
        return result.merges
    decode = _byte_decoder()

    def hf_pair(a: str, b: str) -> tuple[bytes, bytes]:
        return bytes(decode[c] for c in a), bytes(decode[c] for c in b)

    if name == "gigabpe":
        return [hf_pair(a, b) for a, b in result[1]]
    if name == "HF tokenizers":
        return [hf_pair(*(m.split(" ") if isinstance(m, str) else m))
                for m in json.loads(result.to_str())["model"]["merges"]]
    from npgpt.bpe.vocab_files import merges_from_ranks

    if name == "rustbpe":
        return merges_from_ranks({bytes(t): r for t, r in result.get_mergeable_ranks()})
    return merges_from_ranks(result)


def case(name: str, files: list[str], vocab_size: int) -> dict:
    """In this (fresh) process: train, and report the peak memory.

    The peak is this process's VmHWM: ``getrusage``'s ru_maxrss would also count the parent's memory
    at the time of the spawn (Linux keeps the larger of the two across exec).
    """
    train(name, files, vocab_size)
    status = Path("/proc/self/status").read_text().split("\n")
    peak_kb = next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
    return {"peak_mb": peak_kb / 1024}


def spawn(name: str, files: list[str], vocab_size: int) -> dict:
    """Run `case` in a fresh process pinned to one core; its wall time and peak memory."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(files, f)
    env = dict(os.environ, RAYON_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    t0 = time.perf_counter()
    out = subprocess.run([*pin, sys.executable, __file__, "--case", name, f.name, str(vocab_size)], env=env,
                         capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    os.unlink(f.name)
    if out.returncode != 0:
        last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"
        return {"error": last[:80]}
    return {"seconds": seconds, **json.loads(out.stdout.strip().splitlines()[-1])}


# --------------------------------------------------------------------------------------------
# the exactness check


def _lines(files: list[str]) -> list[str]:
    """The files cut after each "\\n", as HF and gigabpe read them (each line a document)."""
    out = []
    for text in _texts(files):
        parts = text.split("\n")
        out += [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    return out


def _pair_counts(docs: list[str], merges: list[tuple[bytes, bytes]]) -> Counter:
    """Pair counts after `merges`, from scratch: each pre-token encoded with those merges (the ids
    training would have after as many steps), pairs counted weighted by the pre-token's count."""
    import npgpt
    from npgpt.bpe.train import count_pretokens

    vocab = {i: bytes([i]) for i in range(256)}
    for a, b in merges:
        if a + b not in vocab.values():
            vocab[len(vocab)] = a + b
    enc = npgpt.Encoding(vocab, merges)
    counts: Counter = Counter()
    for word, c in count_pretokens(docs, progress=False).items():
        toks = enc.decode_tokens_bytes(enc.encode_ordinary(word.decode("utf-8")))
        for pair in pairwise(toks):
            counts[pair] += c
    return counts


def check(name: str, files: list[str], vocab_size: int) -> str:
    """Compare `name`'s merges with npgpt's on the same text; describe the result in a few words."""
    theirs = merges_of(name, train(name, files, vocab_size))
    docs = _lines(files) if name in ("gigabpe", "HF tokenizers") else list(_texts(files))
    ours = merges_of("npgpt", train("npgpt", files, vocab_size, docs=docs))
    k = next((i for i, (x, y) in enumerate(zip(ours, theirs, strict=False)) if x != y), min(len(ours), len(theirs)))
    if k == min(len(ours), len(theirs)):
        same = f"all {k:,} merges equal" + (f" ({len(theirs):,} vs {len(ours):,})" if len(ours) != len(theirs) else "")
        return same
    counts = _pair_counts(docs, ours[:k])
    a, b = counts[ours[k]], counts[theirs[k]]
    if a == b:
        return f"first {k:,} merges equal, then a tie (count {a}) broken another way"
    return f"DIFFERENT at merge {k:,}: npgpt {ours[k]} x{a}, {name} {theirs[k]} x{b}"


# --------------------------------------------------------------------------------------------


def _utf8(path: Path) -> bool:
    """A few stdlib files are test data in other encodings; every trainer reads UTF-8."""
    try:
        path.read_bytes().decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def big_file(mb: float) -> Path:
    """One file of about `mb` MB: the standard library's UTF-8 .py sources, concatenated (repeated if short)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    py = sorted(p for p in stdlib.rglob("*.py") if "site-packages" not in p.parts and _utf8(p))
    path = Path(tempfile.mkdtemp(prefix="npgpt-bench-")) / "stdlib.py.txt"
    size = 0
    with open(path, "wb") as f:
        while size < mb * 1e6:
            for p in py:
                data = p.read_bytes()
                f.write(data)
                size += len(data)
                if size >= mb * 1e6:
                    break
    return path


def available() -> list[str]:
    found = []
    for name in TRAINERS:
        try:
            __import__(MODULES[name])
            found.append(name)
        except ImportError:
            pass
    return found


def main(argv=None) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import common

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; figures are the minimum (default 3)")
    ap.add_argument("--big-mb", type=float, default=30, help="size of the one-file run (0: skip it)")
    ap.add_argument("--no-check", action="store_true", help="skip comparing the peers' merges with npgpt's")
    common.add_output_args(ap)
    ap.add_argument("--case", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.case:
        name, files_json, vocab_size = args.case
        print(json.dumps(case(name, json.loads(Path(files_json).read_text()), int(vocab_size))))
        return

    if args.paths:
        source, paths = " ".join(map(str, args.paths)), list(args.paths)
    else:
        source, paths = common.default_corpus()
    files = []
    for p in paths:  # folders: their .txt and .py files
        files += sorted(str(q) for q in Path(p).rglob("*") if q.suffix in (".txt", ".py")) if Path(p).is_dir() \
            else [str(p)]
    runs, temp_dirs = [], []
    if args.quick:
        temp_dirs.append(tempfile.mkdtemp(prefix="npgpt-bench-"))
        sample = Path(temp_dirs[-1]) / "sample.txt"
        sample.write_bytes(b"".join(Path(f).read_bytes() for f in files)[:1_000_000].decode("utf-8", "ignore")
                           .encode("utf-8"))
        runs.append((f"{source}, first 1 MB", [str(sample)], 2000))
        args.rounds, args.big_mb = 1, 0
    else:
        runs += [(source, files, 50257), (source, files, 8192)]
        if args.big_mb:
            big = big_file(args.big_mb)
            temp_dirs.append(str(big.parent))
            runs.append((f"one {big.stat().st_size / 1e6:.0f} MB file (Python stdlib .py sources)", [str(big)], 50257))
    try:
        measure(args, runs, common)
    finally:
        for d in temp_dirs:
            shutil.rmtree(d, ignore_errors=True)


def measure(args, runs: list, common) -> None:
    """Check and time every installed trainer on each run; write the section."""
    trainers = available()
    rows = [["data", "vocab", "MB", *[f"{t} s" for t in trainers], *[f"{t} peak MB" for t in trainers]]]
    checks, figures = [], {}
    for label, run_files, vocab_size in runs:
        mb = sum(Path(f).stat().st_size for f in run_files) / 1e6
        if not args.no_check:
            for t in trainers[1:]:
                verdict = check(t, run_files, vocab_size)
                checks.append(f"- {label}, {vocab_size:,}: {t}: {verdict}")
                print(checks[-1], flush=True)
        best: dict[str, dict] = {}
        for r in range(args.rounds):
            for t in trainers:
                res = spawn(t, run_files, vocab_size)
                print(f"  round {r + 1} {label[:30]} {vocab_size}: {t}: {res}", flush=True)
                if "error" in res:
                    best.setdefault(t, res)
                    continue
                old = best.get(t, {})
                best[t] = {**res, "seconds": min(res["seconds"], old.get("seconds", 1e9)),
                           "peak_mb": min(res["peak_mb"], old.get("peak_mb", 1e9))}
        rows.append([label, f"{vocab_size:,}", f"{mb:.1f}",
                     *[f"{best[t]['seconds']:.2f}" if "seconds" in best[t] else best[t]["error"] for t in trainers],
                     *[f"{best[t]['peak_mb']:.0f}" if "peak_mb" in best[t] else "" for t in trainers]])
        ours = best["npgpt"].get("seconds")
        figures[f"npgpt train s ({vocab_size}, {mb:.0f} MB)"] = ours
        figures[f"npgpt train peak MB ({vocab_size}, {mb:.0f} MB)"] = best["npgpt"].get("peak_mb")
        for t in trainers[1:]:
            if ours and "seconds" in best[t]:
                figures[f"npgpt train time / {t} ({vocab_size}, {mb:.0f} MB)"] = ours / best[t]["seconds"]
                figures[f"npgpt peak memory / {t} ({vocab_size}, {mb:.0f} MB)"] = \
                    best["npgpt"]["peak_mb"] / best[t]["peak_mb"]
    dask_text = "" if args.quick else dask_lines(runs[0][1], runs[0][2], args.rounds)
    body = "\n\n".join([
        "## Training vocabularies (`bench/train.py`)",
        common.header(),
        f"Each trainer in a fresh process pinned to one core, one thread, the same files; seconds are the "
        f"whole process (start-up, imports, reading, counting, merging), memory its peak resident set; the "
        f"minimum over {args.rounds} interleaved round(s) (other agents shared the machine). "
        f"Versions: {common.versions('npgpt', 'numba', 'gigabpe', 'tokenizers', 'rustbpe', 'bpeasy')}.",
        common.table(rows),
        "Merges compared with npgpt's before timing:\n\n" + "\n".join(checks) if checks else "",
        dask_text,
    ])
    common.finish(args, "train", body, figures)


def dask_lines(files: list[str], vocab_size: int, rounds: int) -> str:
    """`npgpt.distributed.train_bpe` on a 2-worker LocalCluster against `train_bpe` in this process, on
    the same files (each a shard); the merges must be equal. Cluster start-up is not timed."""
    try:
        from dask.distributed import Client, LocalCluster

        import npgpt
        from npgpt import distributed
    except ImportError as e:
        return f"Dask: not run ({e})."
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        distributed.train_bpe(files[:1], 300, client=client, progress=False)  # workers load their kernels
        best_dask = best_local = float("inf")
        for _ in range(rounds):
            t = time.perf_counter()
            there = distributed.train_bpe(files, vocab_size, client=client, progress=False)
            best_dask = min(best_dask, time.perf_counter() - t)
            t = time.perf_counter()
            here = npgpt.train_bpe(files=files, vocab_size=vocab_size, num_threads=1, progress=False)
            best_local = min(best_local, time.perf_counter() - t)
    assert there.merges == here.merges, "the Dask path's merges differ from train_bpe's"
    return (f"**Dask** (`npgpt.distributed.train_bpe`, {len(files)} shards, vocabulary {vocab_size:,}): on a 2-worker "
            f"`LocalCluster` {best_dask:.2f} s, against {best_local:.2f} s for `train_bpe` in one process and one "
            f"thread, in the same run (warm processes, cluster start-up not counted; the same merges). The workers "
            f"count and add up the counts; the merge loop runs on the client.")


if __name__ == "__main__":
    main()
