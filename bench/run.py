"""Run every benchmark against the installed peers and write one report.

    python bench/run.py                  # the full run: bench/RESULTS.md, RESULTS.json (and .png with matplotlib)
    python bench/run.py --quick          # a smoke test on small samples: written to bench/quick/, marked QUICK
    python bench/run.py PATHS --out DIR  # other texts, another folder

Each script (`encode.py`, `train.py`, `tokenize_files.py`, `windows.py`, `embedding.py`) also runs alone
and writes its own section of RESULTS.md. The summary printed at the end lists every headline figure
with the target the issues set for it and whether it is met. A quick run's ratios mean little (tiny
inputs, few rounds), so it never overwrites the committed report.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import common

HERE = Path(__file__).resolve().parent
BENCHMARKS = [n for n in ("encode", "train", "tokenize_files", "windows", "embedding") if (HERE / f"{n}.py").is_file()]
# The targets the summary checks: figure-name prefix -> (comparison, bound).
TARGETS = {
    "npgpt / tiktoken": (">=", 1.5), "npgpt / riptoken": (">=", 1.0), "npgpt / gigatoken": (">=", 1.0),
    "npgpt 2-thread batch / tiktoken 1 thread": (">=", 2.5), "encode_batch_to_numpy 2 threads / 1": (">=", 1.8),
    "npgpt build ms": ("<", 1.0), "npgpt build MB": ("<", 1.0), "npgpt batches/s / torch": (">=", 10.0),
    "npgpt forward / torch": ("<=", 1.0), "npgpt backward / torch": ("<=", 0.5),
    "npgpt train time / HF tokenizers": ("<=", 1.0), "npgpt train time / rustbpe": ("<=", 1.0),
    "npgpt train time / gigabpe": ("<=", 1.0), "npgpt peak memory / HF tokenizers": ("<=", 1.0),
    "npgpt peak memory / gigabpe": ("<=", 1.0), "npgpt tokenize": (">=", 0.8),
}
OPS = {">=": float.__ge__, "<=": float.__le__, "<": float.__lt__, ">": float.__gt__}


def verdict(name: str, value: float) -> tuple[str, str]:
    """(target, "met" / "MISSED" / "") for a figure."""
    for prefix, (op, bound) in TARGETS.items():
        if name.startswith(prefix):
            return f"{op} {bound:g}", "met" if OPS[op](float(value), bound) else "MISSED"
    return "", ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", help="text files or folders (default: ../shared/corpus, else the stdlib)")
    ap.add_argument("--quick", action="store_true", help="small samples, for a smoke test (written to bench/quick/)")
    ap.add_argument("--out", type=Path, help="folder for RESULTS.md / .json / .png (default: bench/, or bench/quick/)")
    ap.add_argument("--only", nargs="+", choices=BENCHMARKS, metavar="NAME", help=f"run only these: {BENCHMARKS}")
    args = ap.parse_args(argv)
    for p in args.paths:
        if not Path(p).exists():
            ap.error(f"no such file or folder: {p}")
    out_dir = args.out or (HERE / "quick" if args.quick else HERE)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out_dir, delete=True)  # writable? say so now, not after the run
        probe.close()
    except OSError as e:
        ap.error(f"--out {out_dir}: {e.strerror or e}")
    results, figures = out_dir / "RESULTS.md", {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or BENCHMARKS:
            print(f"== bench/{name}.py", flush=True)
            cmd = [sys.executable, str(HERE / f"{name}.py"), "--results", str(results), "--json", f"{tmp}/{name}.json"]
            if name == "encode" and shutil.which("taskset"):  # one-thread figures on one pinned core; its
                cmd = ["taskset", "-c", "0", *cmd]  # 2-thread measurement unpins itself
            cmd += [] if name == "embedding" else list(args.paths)
            cmd += ["--quick"] if args.quick else []
            done = subprocess.run(cmd)
            if done.returncode != 0:
                print(f"run.py: bench/{name}.py failed (exit status {done.returncode})", file=sys.stderr)
                return 1
            figures[name] = json.loads(Path(f"{tmp}/{name}.json").read_text())
    if args.quick:
        text = results.read_text(encoding="utf-8")
        results.write_text("**QUICK RUN: a smoke test on tiny samples; the ratios are not measurements.**\n\n"
                           + text, encoding="utf-8")
    rows = [("benchmark", "figure", "value", "target", "")]
    for name, figs in figures.items():
        rows += [(name, k, f"{v:.3g}", *verdict(k, v)) for k, v in figs.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    print("\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows))
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": common.machine(), "system": platform.platform(), "cores": os.cpu_count(),
        "versions": common.versions("npgpt", "numpy", "numba", "regex", "tiktoken", "riptoken", "gigatoken",
                                    "tokenizers", "rustbpe", "gigabpe", "torch"),
        "command": "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "figures": figures,
    }
    (out_dir / "RESULTS.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    print(f"\nwrote {results} and {out_dir / 'RESULTS.json'}")
    chart(figures, out_dir / "RESULTS.png")
    return 0


def chart(figures: dict, path: Path) -> None:
    """A bar chart of the ratios (npgpt / peer), when matplotlib is installed (extra `plot`)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    # One direction for every bar: how many times faster npgpt is (time ratios are inverted).
    speedups = {}
    for figs in figures.values():
        for k, v in figs.items():
            if " / " in k and v:
                lower_is_better = any(word in k for word in ("time /", "memory /", "forward /", "backward /"))
                speedups[k.replace(" time", "").replace("npgpt ", "")] = 1 / v if lower_is_better else v
    if not speedups:
        return
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(speedups) + 1.2))
    names = list(speedups)
    ax.barh(names, [speedups[n] for n in names], color=["#4c8bd6" if speedups[n] >= 1 else "#d65f4c" for n in names])
    ax.set_xscale("log")
    ax.axvline(1.0, color="gray", lw=1)
    ax.set_xlabel("npgpt is this many times better than the peer (log scale; red: worse)")
    ax.set_title("npgpt benchmarks")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
