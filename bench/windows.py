"""Training windows: npgpt's strided views against the seeds' one-array-per-window datasets.

    python bench/windows.py            # the shared corpus (2.3M GPT-2 tokens), else the stdlib sources
    python bench/windows.py --quick    # 200k tokens, for a smoke test

For (max_length, stride) = (256, 128), (256, 16), (1024, 1), each way of building the dataset runs in a
fresh process that first loads the tokens, and reports the build time and the peak memory it added
(growth of the resident set size: it counts torch's allocations too, which tracemalloc would not see):

- npgpt: ``GPTDatasetV1.from_token_ids`` (two strided views);
- seeds, NumPy: the book's loop keeping one array per window (``np.array(chunk)``), as a port would;
- seeds, torch (when importable): the book's ``GPTDatasetV1`` exactly, one ``torch.tensor`` per window.

The seeds' approaches are skipped when they would need more than --max-gb of memory (their size is
then estimated). Throughput: batches per second over a shuffled epoch (batch 8, int64 batches, the
best of at least 3 epochs and 1 s), npgpt's ``DataLoader`` against torch's ``DataLoader`` over the
seeds' dataset. Results go to the "windows" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
import numpy as np

import npgpt

CASES = [(256, 128), (256, 16), (1024, 1)]
BATCH = 8


def rss_mb() -> float:
    """Resident memory now (not the peak: loading the tokens already set that)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(kind: str, tokens_path: str, max_length: int, stride: int, epoch: bool) -> dict:
    """In a fresh process: load tokens, build, measure; optionally time one shuffled epoch."""
    tokens = np.array(npgpt.TokenFile(tokens_path).tokens)  # in memory, as a dataset would have them
    if kind == "torch":
        import torch
        from torch.utils.data import DataLoader as TorchLoader
        from torch.utils.data import Dataset

        class SeedDataset(Dataset):  # the book's GPTDatasetV1, verbatim but for taking ids
            def __init__(self, token_ids, max_length, stride):
                self.input_ids, self.target_ids = [], []
                for i in range(0, len(token_ids) - max_length, stride):
                    self.input_ids.append(torch.tensor(token_ids[i : i + max_length]))
                    self.target_ids.append(torch.tensor(token_ids[i + 1 : i + max_length + 1]))

            def __len__(self):
                return len(self.input_ids)

            def __getitem__(self, idx):
                return self.input_ids[idx], self.target_ids[idx]

        ids = tokens.astype(np.int64).tolist()  # the seeds hold tiktoken's list of ints
    before = rss_mb()
    t0 = time.perf_counter()
    if kind == "npgpt":
        ds = npgpt.GPTDatasetV1.from_token_ids(tokens, max_length, stride)
    elif kind == "numpy-list":
        xs, ys = [], []
        for i in range(0, len(tokens) - max_length, stride):
            xs.append(np.array(tokens[i : i + max_length], dtype=np.int64))
            ys.append(np.array(tokens[i + 1 : i + max_length + 1], dtype=np.int64))
        ds = (xs, ys)
    else:
        ds = SeedDataset(ids, max_length, stride)
    build = time.perf_counter() - t0
    result = {"build_s": build, "extra_mb": rss_mb() - before, "windows": len(ds[0]) if kind == "numpy-list"
              else len(ds)}
    if epoch:
        if kind == "npgpt":
            loader = npgpt.DataLoader(ds, batch_size=BATCH, shuffle=True, drop_last=True, seed=0)
        elif kind == "torch":
            torch.manual_seed(0)
            loader = TorchLoader(ds, batch_size=BATCH, shuffle=True, drop_last=True, num_workers=0)
        else:
            loader = None
        if loader is not None:  # best epoch of at least 3 and at least 1 s of epochs: short epochs are noisy
            best, spent, rounds = 0.0, 0.0, 0
            while rounds < 3 or spent < 1.0:
                t0 = time.perf_counter()
                n = sum(1 for _ in loader)
                dt = time.perf_counter() - t0
                best, spent, rounds = max(best, n / dt), spent + dt, rounds + 1
            result["batches_per_s"] = best
    return result


def spawn(kind, tokens_path, max_length, stride, epoch) -> dict:
    args = [sys.executable, __file__, "--case", kind, tokens_path, str(max_length), str(stride), str(int(epoch))]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def estimate_gb(n_tokens: int, max_length: int, stride: int, per_token_bytes: int = 8) -> float:
    n = npgpt.data.n_windows(n_tokens, max_length, stride)
    return 2 * n * max_length * per_token_bytes / 1e9


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--max-gb", type=float, default=4.0, help="skip seed builds estimated above this")
    common.add_output_args(ap)
    ap.add_argument("--case", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.case:
        kind, path, length, stride, epoch = args.case
        print(json.dumps(run_case(kind, path, int(length), int(stride), bool(int(epoch)))))
        return

    if args.paths:
        source, paths = " ".join(map(str, args.paths)), args.paths
    else:
        source, paths = common.default_corpus()
    texts = [t for _, t in common.read_files(paths)]
    enc = npgpt.get_encoding("gpt2")
    tokens = np.concatenate(enc.encode_batch_to_numpy(texts))
    if args.quick:
        tokens = tokens[:200_000]
        args.max_gb = min(args.max_gb, 0.5)
    try:
        import torch  # noqa: F401

        kinds = ["npgpt", "numpy-list", "torch"]
    except ImportError:
        kinds = ["npgpt", "numpy-list"]
    with tempfile.TemporaryDirectory() as d:
        tokens_path = str(npgpt.write_tokens(Path(d) / "tokens.npy", tokens))
        print(f"{source}: {len(tokens):,} tokens ({tokens.nbytes / 1e6:.1f} MB as {tokens.dtype})")
        figures: dict[str, float] = {}
        rows = [["max_length, stride", "windows", *[f"{k} build" for k in kinds], *[f"{k} memory" for k in kinds]]]
        epoch_rows = [["max_length, stride", "npgpt batches/s", "torch DataLoader batches/s", "npgpt / torch"]]
        for length, stride in CASES:
            results = {}
            for kind in kinds:
                est = estimate_gb(len(tokens), length, stride)
                if kind != "npgpt" and est > args.max_gb:
                    results[kind] = {"skipped": f"~{est:.0f} GB"}
                    continue
                results[kind] = spawn(kind, tokens_path, length, stride, epoch=(stride >= 16))
                print(f"  ({length}, {stride}) {kind}: {results[kind]}", flush=True)
            n = npgpt.data.n_windows(len(tokens), length, stride)

            def build(r):
                return r.get("skipped", r.get("error")) if "build_s" not in r else (
                    f"{r['build_s'] * 1e3:.3f} ms" if r["build_s"] < 0.1 else f"{r['build_s']:.2f} s")

            def memory(r):
                return r.get("skipped", "") if "extra_mb" not in r else f"{r['extra_mb']:.1f} MB"

            rows.append([f"{length}, {stride}", f"{n:,}", *[build(results[k]) for k in kinds],
                         *[memory(results[k]) for k in kinds]])
            figures[f"npgpt build ms ({length}, {stride})"] = results["npgpt"].get("build_s", float("nan")) * 1e3
            figures[f"npgpt build MB ({length}, {stride})"] = results["npgpt"].get("extra_mb", float("nan"))
            ours, theirs = results["npgpt"].get("batches_per_s"), results.get("torch", {}).get("batches_per_s")
            if ours and theirs:
                figures[f"npgpt batches/s / torch ({length}, {stride})"] = ours / theirs
            if ours:
                epoch_rows.append([f"{length}, {stride}", f"{ours:,.0f}", f"{theirs:,.0f}" if theirs else "(no torch)",
                                   f"{ours / theirs:.1f}x" if theirs else ""])
    body = "\n\n".join([
        "## Training windows (`bench/windows.py`)",
        common.header(),
        f"Tokens: {source}, {len(tokens):,} GPT-2 tokens ({tokens.nbytes / 1e6:.1f} MB as {tokens.dtype}). "
        "Each build runs in a fresh process after loading the tokens; memory is the growth of the "
        "resident set over the build (so it counts torch's allocations). "
        f"Versions: {common.versions('npgpt', 'numpy', 'torch')}.",
        common.table(rows),
        f"A shuffled epoch, batch {BATCH}, int64 batches, the best epoch of at least 3 and 1 s (npgpt "
        "`DataLoader` vs torch `DataLoader` over the seeds' dataset, `num_workers=0`):",
        common.table(epoch_rows),
    ])
    common.finish(args, "windows", body, figures)


if __name__ == "__main__":
    main()
