"""Tokenizing one big file: `npgpt.tokenize_files` against the encoder it is built on.

    python bench/tokenize_files.py            # the shared corpus concatenated 6 times (~30 MB), else stdlib sources
    python bench/tokenize_files.py --quick    # ~1 MB, for a smoke test

One file, so the parallelism must come from cutting it and encoding the chunks on all cores (GPT-2's
`Encoding` cuts the file's bytes, `npgpt.bpe.pretokenize.safe_cut_utf8`, and never makes a str).
Each figure comes from a fresh process that reads the file, warms the kernels on a short text, then
is timed (best of --rounds, interleaved):

- ``encode_to_numpy``, one core pinned (``taskset -c 0``): the ceiling per core;
- ``tokenize_files`` with 1 thread pinned to one core, and with one thread per core unpinned;
- with Dask installed (``pip install -e .[dask]``): `npgpt.distributed.tokenize` of the same text cut
  into shards, on a 2-worker ``LocalCluster``, against ``tokenize_files`` of the same shards in one
  process.

The target (issue 14): tokenize >= 0.8x one-thread ``encode_to_numpy`` per core used. The token
files written are checked equal to ``encode_to_numpy`` of the whole file before anything is timed.
Results go to the "tokenize" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

CHILD = r"""
import json, sys, time
import numpy as np
import npgpt
kind, path, out, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
enc = npgpt.get_encoding("gpt2")
enc._get_tables()  # load the kernels now: a short text alone would run on the plain tier
enc.encode_to_numpy("warm the kernels up")
from npgpt.bpe import pretokenize, utf8_kernels  # and tokenize's own kernels: the UTF-8 check, the cut
utf8_kernels.valid_prefix(np.frombuffer(b"warm", np.uint8), 0, 4)
pretokenize.safe_cut_utf8(("字" * 9000 + " warm up").encode(), 9001 * 3)  # (long enough to need the scanner)
size = len(open(path, "rb").read())
if kind == "encode":
    text = open(path, encoding="utf-8", newline="").read()
    t = time.perf_counter()
    ids = enc.encode_to_numpy(text, disallowed_special=())
    seconds = time.perf_counter() - t
    np.save(out, ids)
elif kind == "tokenize":
    t = time.perf_counter()
    npgpt.tokenize_files([path], out, num_threads=threads, progress=False)
    seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "mb": size / 1e6}))
"""


def run(kind: str, path: Path, out: Path, threads: int, pin: bool) -> dict:
    cmd = [sys.executable, "-c", CHILD, kind, str(path), str(out), str(threads)]
    if pin and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def dask_rows(path: Path, tmp: Path, rounds: int) -> list[list[str]]:
    """Shards on a 2-worker LocalCluster vs the same shards in one process, when Dask is installed."""
    try:
        from dask.distributed import Client, LocalCluster

        import npgpt.distributed as dist
    except ImportError as e:
        return [["Dask", f"not run: {e}", "", ""]]
    import time

    import numpy as np

    import npgpt

    data = path.read_bytes()
    n_shards = 8
    step = len(data) // n_shards
    shards = []
    start = 0
    for k in range(n_shards):  # cut at line ends, so that no shard splits a character
        end = len(data) if k == n_shards - 1 else data.index(b"\n", start + step) + 1
        shard = tmp / f"shard-{k:02d}.txt"
        shard.write_bytes(data[start:end])
        shards.append(shard)
        start = end
    rows = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        dist.tokenize(shards[:1], tmp / "warm", client=client)  # workers load the encoding once
        best_dask = best_local = float("inf")
        for _ in range(rounds):
            shutil.rmtree(tmp / "dask", ignore_errors=True)
            t = time.perf_counter()
            index = dist.tokenize(shards, tmp / "dask", client=client)
            best_dask = min(best_dask, time.perf_counter() - t)
            t = time.perf_counter()
            npgpt.tokenize_files(shards, tmp / "local.npy", num_threads=1, progress=False)
            best_local = min(best_local, time.perf_counter() - t)
    local = np.load(tmp / "local.npy")
    joined = np.concatenate([np.load(tmp / "dask" / s["file"]) for s in index["shards"]])
    assert np.array_equal(joined, local), "Dask shards differ from the single-process token file"
    mb = len(data) / 1e6
    rows.append(["Dask: 8 shards on a 2-worker LocalCluster", f"{mb / best_dask:.1f}", f"{best_dask:.2f} s", ""])
    rows.append(["the same shards, one process, one thread", f"{mb / best_local:.1f}", f"{best_local:.2f} s", ""])
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", type=Path, help="text files (default: the shared corpus, else the stdlib)")
    ap.add_argument("--quick", action="store_true", help="about 1 MB, one round")
    ap.add_argument("--rounds", type=int, default=3)
    common.add_output_args(ap)
    args = ap.parse_args(argv)
    source, files = (", ".join(map(str, args.paths)), args.paths) if args.paths else common.default_corpus()
    rounds = 1 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        blob = b"".join(f.read_bytes() for f in files if f.is_file())
        blob = blob.decode("utf-8", "replace").encode("utf-8")
        target = 1_000_000 if args.quick else 30_000_000
        big = tmp / "big.txt"
        big.write_bytes((blob * (target // max(len(blob), 1) + 1))[:target].rsplit(b"\n", 1)[0] + b"\n")
        mb = big.stat().st_size / 1e6

        # the same ids from every path, before anything is timed
        run("encode", big, tmp / "ref.npy", 1, pin=True)
        run("tokenize", big, tmp / "tok.npy", os.cpu_count() or 1, pin=False)
        import numpy as np

        assert np.array_equal(np.load(tmp / "ref.npy"), np.load(tmp / "tok.npy")), "tokenize_files != encode_to_numpy"

        cores = os.cpu_count() or 1
        cases = [("encode_to_numpy, 1 core pinned", "encode", 1, True),
                 ("tokenize_files, 1 thread, 1 core pinned", "tokenize", 1, True),
                 (f"tokenize_files, {cores} threads, {cores} cores", "tokenize", cores, False)]
        best = {name: float("inf") for name, *_ in cases}
        for _ in range(rounds):  # interleaved, so that a busy moment hurts every contender alike
            for name, kind, threads, pin in cases:
                best[name] = min(best[name], run(kind, big, tmp / "t.npy", threads, pin)["seconds"])
        base = mb / best[cases[0][0]]
        rows = [["path", "MB/s", "time", "per core, vs encode_to_numpy"]]
        figures = {"npgpt encode_to_numpy MB/s": base}
        for name, _, threads, _ in cases:
            speed = mb / best[name]
            rows.append([name, f"{speed:.1f}", f"{best[name]:.2f} s", f"{speed / threads / base:.2f}x"])
            if name != cases[0][0]:
                figures[f"npgpt tokenize {threads} threads / encode_to_numpy per core"] = speed / threads / base
        if not args.quick:
            rows += dask_rows(big, tmp, rounds)

    body = (
        "## Tokenizing one big file\n\n" + common.header()
        + f"- input: {source}, concatenated to one {mb:.1f} MB file; best of {rounds} interleaved rounds, each in a "
        "fresh process (kernels warmed on a short text first)\n"
        f"- versions: {common.versions('npgpt', 'numba', 'numpy', 'dask', 'distributed')}\n\n"
        + common.table(rows)
        + "\n\nThe target: tokenize >= 0.8x one-thread `encode_to_numpy` per core used. Every path's ids were checked "
        "equal to `encode_to_numpy` of the whole file first.\n"
    )
    common.finish(args, "tokenize", body, figures)


if __name__ == "__main__":
    main()
