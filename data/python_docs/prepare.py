"""Python's own documentation as nanoGPT's train.bin / val.bin, offline (nanoGPT's prepare.py, on npgpt).

    python data/python_docs/prepare.py              # writes data/python_docs/train.bin, val.bin, meta.json
    python data/python_docs/prepare.py --out DIR

The text is ``pydoc_data.topics``: the pages ``help()`` shows for keywords and topics (79 pages, about
0.46 MB of English and code, in Python 3.11), shipped with every Python, so this works without a network. Each page is a
document: its GPT-2 ids followed by ``<|endoftext|>``, as nanoGPT's openwebtext/prepare.py does. The
first 90% of the tokens are train.bin, the rest val.bin (nanoGPT's shakespeare/prepare.py cuts its
text at 90%; here the cut is on tokens, so no token is lost or shared). Both are raw uint16, read by
nanoGPT's train.py with ``np.memmap(path, dtype=np.uint16, mode='r')``.

meta.json records the encoding, the vocabulary size and the token counts. (nanoGPT's meta.pkl is
not written: its sample.py would take one for a character-level vocabulary.)
"""

import argparse
import json
import os
from pathlib import Path

import npgpt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=Path(__file__).resolve().parent, type=Path,
                        help="folder for train.bin, val.bin, meta.json (default: this script's folder)")
    args = parser.parse_args()
    if args.out.exists() and not args.out.is_dir():
        parser.exit(2, f"prepare.py: --out {args.out} is not a folder\n")
    args.out.mkdir(parents=True, exist_ok=True)

    from pydoc_data import topics

    docs = [topics.topics[key] for key in sorted(topics.topics)]
    enc = npgpt.get_encoding("gpt2")
    ids = []
    for doc in docs:
        ids.extend(enc.encode_ordinary(doc))
        ids.append(enc.eot_token)

    n = len(ids)
    train_ids, val_ids = ids[: int(n * 0.9)], ids[int(n * 0.9) :]
    npgpt.write_tokens(args.out / "train.bin", train_ids, dtype="uint16", format="bin")  # atomic writes
    npgpt.write_tokens(args.out / "val.bin", val_ids, dtype="uint16", format="bin")
    meta = {"source": "pydoc_data.topics", "documents": len(docs), "encoding": enc.name, "vocab_size": enc.n_vocab,
            "dtype": "uint16", "train_tokens": len(train_ids), "val_tokens": len(val_ids)}
    tmp = args.out / f".meta.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, args.out / "meta.json")
    print(f"train.bin has {len(train_ids):,} tokens, val.bin {len(val_ids):,} ({len(docs)} pages) in {args.out}")


if __name__ == "__main__":
    main()
