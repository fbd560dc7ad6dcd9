"""Training BPE vocabularies: npgpt.train_bpe against every importable trainer, same files, same run.

    python bench/train.py            # 50,257 and 8,192 on the shared corpus; 10,000 on the stdlib sources
    python bench/train.py --quick    # 2,000 on a 1 MB sample

Each trainer runs in a fresh process on one thread (``RAYON_NUM_THREADS=1``, ``NUMBA_NUM_THREADS=1``,
``num_threads=1``), reading the same files; the figures are the whole process's wall time (start-up,
reading, counting, merging) and its peak resident memory. Peers (optional): Hugging Face tokenizers'
``BpeTrainer`` (byte-level), rustbpe (nanochat's trainer), bpeasy. Results go to the "train"
section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

from npgpt.bpe.pretokenize import GPT2_PATTERN

TRAINERS = ["npgpt", "HF tokenizers", "rustbpe", "bpeasy"]


def run_trainer(name: str, files: list[str], vocab_size: int) -> dict:
    """In this (fresh) process: train, and report seconds since start and peak memory."""
    import resource

    def texts():
        for f in files:
            yield Path(f).read_text(encoding="utf-8", errors="replace")

    if name == "npgpt":
        import npgpt

        enc = npgpt.train_bpe(files, vocab_size, num_threads=1, progress=False)
        size = enc.n_vocab
    elif name == "HF tokenizers":
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, special_tokens=["<|endoftext|>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train(files, trainer)
        size = tok.get_vocab_size()
    elif name == "rustbpe":
        import rustbpe

        tok = rustbpe.Tokenizer()
        tok.train_from_iterator(texts(), vocab_size - 1, pattern=GPT2_PATTERN)
        size = tok.vocab_size + 1
    else:
        import bpeasy

        vocab = bpeasy.train_bpe(texts(), GPT2_PATTERN, 128, vocab_size - 1)
        size = len(vocab) + 1
    return {"vocab": size, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def spawn(name: str, files: list[str], vocab_size: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(files, f)
    env = dict(os.environ, RAYON_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--case", name, f.name, str(vocab_size)], env=env,
                         capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    os.unlink(f.name)
    if out.returncode != 0:
        last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"
        return {"error": last[:80]}
    return {"seconds": seconds, **json.loads(out.stdout.strip().splitlines()[-1])}


def _utf8(path: Path) -> bool:
    """A few stdlib files are test data in other encodings; every trainer reads UTF-8."""
    try:
        path.read_bytes().decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def available() -> list[str]:
    found = ["npgpt"]
    for name, module in (("HF tokenizers", "tokenizers"), ("rustbpe", "rustbpe"), ("bpeasy", "bpeasy")):
        try:
            __import__(module)
            found.append(name)
        except ImportError:
            pass
    return found


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-stdlib", action="store_true", help="skip the 10,000-token run on the stdlib sources")
    common.add_output_args(ap)
    ap.add_argument("--case", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.case:
        name, files_json, vocab_size = args.case
        print(json.dumps(run_trainer(name, json.loads(Path(files_json).read_text()), int(vocab_size))))
        return

    if args.paths:
        source, paths = " ".join(map(str, args.paths)), [p for p in args.paths]
    else:
        source, paths = common.default_corpus()
    files = []
    for p in paths:  # folders: their .txt and .py files
        files += sorted(str(q) for q in Path(p).rglob("*") if q.suffix in (".txt", ".py")) if Path(p).is_dir() \
            else [str(p)]
    runs = []
    if args.quick:
        sample = Path(tempfile.mkdtemp()) / "sample.txt"
        sample.write_text("".join(Path(f).read_text(encoding="utf-8", errors="replace") for f in files)[:1_000_000],
                          encoding="utf-8")
        runs.append((f"{source}, first 1 MB", [str(sample)], 2000))
    else:
        runs += [(source, files, 50257), (source, files, 8192)]
        if not args.no_stdlib:
            stdlib = Path(sysconfig.get_paths()["stdlib"])
            py = sorted(str(p) for p in stdlib.rglob("*.py") if "site-packages" not in p.parts and _utf8(p))
            runs.append((f"Python standard library sources ({len(py):,} .py files)", py, 10000))
    trainers = available()
    rows = [["data", "vocab", "MB", *[f"{t} s" for t in trainers], *[f"{t} peak MB" for t in trainers]]]
    figures = {}
    for label, run_files, vocab_size in runs:
        mb = sum(Path(f).stat().st_size for f in run_files) / 1e6
        res = {t: spawn(t, run_files, vocab_size) for t in trainers}
        for t, r in res.items():
            print(f"  {label[:40]} {vocab_size}: {t}: {r}", flush=True)
        rows.append([label, f"{vocab_size:,}", f"{mb:.1f}",
                     *[f"{res[t]['seconds']:.2f}" if "seconds" in res[t] else res[t]["error"] for t in trainers],
                     *[f"{res[t]['peak_mb']:.0f}" if "peak_mb" in res[t] else "" for t in trainers]])
        ours = res["npgpt"].get("seconds")
        figures[f"npgpt train s ({vocab_size}, {mb:.0f} MB)"] = ours
        for t in trainers[1:]:
            if ours and "seconds" in res[t]:
                figures[f"npgpt train time / {t} ({vocab_size}, {mb:.0f} MB)"] = ours / res[t]["seconds"]
    body = "\n\n".join([
        "## Training vocabularies (`bench/train.py`)",
        common.header(),
        "Each trainer in a fresh process, one thread, the same files; seconds are the whole process "
        "(start-up, reading, counting, merging), memory its peak resident set. "
        f"Versions: {common.versions('npgpt', 'numba', 'tokenizers', 'rustbpe', 'bpeasy')}.",
        common.table(rows),
    ])
    common.finish(args, "train", body, figures)


if __name__ == "__main__":
    main()
