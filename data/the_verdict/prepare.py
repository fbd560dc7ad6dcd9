"""The book's the-verdict.txt as nanoGPT's train.bin / val.bin (nanoGPT's prepare.py, on npgpt).

    python data/the_verdict/prepare.py                 # find or download the text, write train.bin, val.bin
    python data/the_verdict/prepare.py PATH            # a local copy of the-verdict.txt (or any UTF-8 text)
    python data/the_verdict/prepare.py --out DIR

The text comes from PATH if given, else ``../shared/corpus/the-verdict.txt`` beside the project, else
``input.txt`` in the output folder from an earlier download, else the book's repository
(rasbt/LLMs-from-scratch, ch02) when the network allows; without one it says so in one line and
exits with status 2. ``npgpt.tokenize_files`` encodes it with GPT-2 and splits it as nanoGPT's
shakespeare/prepare.py does, 90/10, but on tokens: the first 90% of the ids are train.bin, the rest
val.bin. Both are raw uint16, read by nanoGPT's train.py with
``np.memmap(path, dtype=np.uint16, mode='r')``. meta.json records the encoding, the vocabulary size
and the token counts.
"""

import argparse
import json
import os
import sys
import urllib.request
from pathlib import Path

import npgpt

URL = "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch02/01_main-chapter-code/the-verdict.txt"
HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent.parent / "shared" / "corpus" / "the-verdict.txt"


def fail(message: str) -> None:
    print(f"prepare.py: {message}", file=sys.stderr)
    sys.exit(2)


def find_text(path: Path | None, out: Path) -> Path:
    if path is not None:
        if not path.is_file():
            fail(f"no such file: {path}")
        return path
    for candidate in (SHARED, out / "input.txt"):
        if candidate.is_file():
            return candidate
    try:
        with urllib.request.urlopen(URL, timeout=20) as response:
            data = response.read()
    except OSError as e:  # URLError, timeouts, no network at all
        fail(f"cannot download {URL} ({getattr(e, 'reason', e)}); pass a local copy: prepare.py PATH")
    tmp = out / f".input.txt.{os.getpid()}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, out / "input.txt")
    return out / "input.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, help="a local copy of the-verdict.txt")
    parser.add_argument("--out", default=HERE, type=Path,
                        help="folder for train.bin, val.bin, meta.json (default: this script's folder)")
    args = parser.parse_args()
    if args.out.exists() and not args.out.is_dir():
        fail(f"--out {args.out} is not a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    source = find_text(args.path, args.out)
    try:
        train, val = npgpt.tokenize_files([source], args.out, format="bin", val_fraction=0.1, progress=False)
    except (ValueError, OSError) as e:  # not UTF-8 (a ValueError), an output that is the input, ...
        fail(str(e))
    enc = npgpt.get_encoding("gpt2")
    meta = {"source": str(source), "encoding": enc.name, "vocab_size": enc.n_vocab, "dtype": "uint16",
            "train_tokens": len(train), "val_tokens": len(val)}
    tmp = args.out / f".meta.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, args.out / "meta.json")
    print(f"{source}: train.bin has {len(train):,} tokens, val.bin {len(val):,}, in {args.out}")


if __name__ == "__main__":
    main()
