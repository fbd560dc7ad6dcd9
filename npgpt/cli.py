"""The ``npgpt`` command: a thin shell over the public API.

    npgpt inspect [FILE]          encode a text (default: Python's own pydoc topics) and report on it
    npgpt encode TEXT | --file F  print token ids (or --count)
    npgpt decode ID [ID ...]      print the text of token ids (ids may also come on stdin)
    npgpt tokenize FILES --out F  encode files into one token file (streaming, parallel)

A user mistake (missing file, bad id, unknown encoding, vocabulary files not found) prints one line
starting with ``npgpt:`` and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import npgpt

EXAMPLES = """examples:
  npgpt inspect                         # GPT-2 BPE on Python's pydoc topics (built in)
  npgpt inspect book.txt
  npgpt encode "Hello, do you like tea?"
  echo "hello world" | npgpt encode --count
  npgpt decode 15496 11 466 345
  npgpt tokenize a.txt b.txt --out tokens.npgpt --eot
"""


class UserError(Exception):
    """A mistake in how the command was called: reported in one line, exit status 2."""


def default_text() -> tuple[str, str]:
    """Python's ``pydoc_data.topics``: real English prose and code that every Python install has."""
    from pydoc_data import topics

    return "pydoc_data.topics", "\n\n".join(topics.topics[k] for k in sorted(topics.topics))


def _read_text(path: str | None) -> tuple[str, str]:
    if path is None:
        return default_text()
    if path == "-":
        return "<stdin>", sys.stdin.read()
    p = Path(path)
    if not p.is_file():
        raise UserError(f"no such file: {path}")
    try:
        return path, p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None


def _encoding(args) -> npgpt.Encoding:
    try:
        if args.vocab:
            return npgpt.get_encoding("gpt2", directory=args.vocab)
        return npgpt.get_encoding(args.encoding)
    except (ValueError, FileNotFoundError) as e:
        raise UserError(str(e).splitlines()[0] if isinstance(e, ValueError) else str(e)) from None


def cmd_inspect(args) -> None:
    source, text = _read_text(args.file)
    enc = _encoding(args)
    t0 = time.perf_counter()
    ids = enc.encode_ordinary(text)
    seconds = time.perf_counter() - t0
    n_bytes = len(text.encode("utf-8"))
    print(f"text      {source}: {len(text):,} characters, {n_bytes:,} UTF-8 bytes")
    per_token = len(text) / max(len(ids), 1)
    print(f"tokens    {len(ids):,} with {enc.name} ({enc.n_vocab:,} ids): {per_token:.2f} characters per token")
    mbs = n_bytes / seconds / 1e6
    print(f"time      {seconds * 1e3:.0f} ms ({mbs:.1f} MB/s; the first call also loads the kernels)")
    print(f"roundtrip decode(encode(text)) == text: {enc.decode(ids) == text}")
    print("first tokens:")
    for i in ids[:12]:
        print(f"  {i:>6}  {enc.decode_single_token_bytes(i)!r}")
    print("most frequent:")
    for i, c in collections.Counter(ids).most_common(8):
        print(f"  {i:>6}  {c:>7,}x  {enc.decode_single_token_bytes(i)!r}")
    word = "someunknownPlace"
    pieces = [enc.decode_single_token_bytes(i).decode("utf-8", "replace") for i in enc.encode(word)]
    print(f"an unknown word is split, never lost: {word!r} -> {pieces}")


def cmd_encode(args) -> None:
    if args.text is not None and args.file is not None:
        raise UserError("give either TEXT or --file, not both")
    if args.text is not None:
        text = args.text
    else:
        text = _read_text(args.file or "-")[1]
    enc = _encoding(args)
    allowed = "all" if args.allow_special else frozenset()
    try:
        ids = enc.encode(text, allowed_special=allowed, disallowed_special=())
    except ValueError as e:
        raise UserError(str(e).splitlines()[0]) from None
    print(len(ids) if args.count else " ".join(map(str, ids)))


def cmd_decode(args) -> None:
    words = args.ids or sys.stdin.read().replace(",", " ").split()
    try:
        ids = [int(w) for w in words]
    except ValueError:
        bad = next(w for w in words if not w.lstrip("-").isdigit())
        raise UserError(f"not a token id: {bad!r}") from None
    enc = _encoding(args)
    try:
        sys.stdout.write(enc.decode(ids) + "\n")
    except ValueError as e:
        raise UserError(str(e)) from None


def cmd_tokenize(args) -> None:
    enc = _encoding(args)
    try:
        tf = npgpt.tokenize_files(args.files, args.out, tokenizer=enc, eot=args.eot, num_threads=args.threads)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    except UnicodeDecodeError as e:
        raise UserError(f"a file is not UTF-8 text ({e.reason} at byte {e.start})") from None
    print(f"wrote {len(tf):,} tokens ({tf.dtype}) to {tf.path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="npgpt", description="GPT-2 tokenization in NumPy + numba.", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"npgpt {npgpt.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, help, func):
        p = sub.add_parser(name, help=help, description=help, epilog=EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--encoding", default="gpt2", help="encoding name (default: gpt2)")
        p.add_argument("--vocab", metavar="DIR", help="folder with GPT-2's files (vocab.json + merges.txt ...)")
        p.set_defaults(func=func)
        return p

    p = add("inspect", "encode a text and report tokens, speed and the round trip", cmd_inspect)
    p.add_argument("file", nargs="?", help="UTF-8 text file, or - for stdin (default: Python's pydoc topics)")
    p = add("encode", "print the token ids of a text", cmd_encode)
    p.add_argument("text", nargs="?", help="the text (default: --file or stdin)")
    p.add_argument("--file", help="read the text from this file (- for stdin)")
    p.add_argument("--count", action="store_true", help="print only the number of tokens")
    p.add_argument("--allow-special", action="store_true", help="encode <|endoftext|> as its special id")
    p = add("decode", "print the text of token ids", cmd_decode)
    p.add_argument("ids", nargs="*", help="token ids (default: read from stdin)")
    p = add("tokenize", "encode text files into one token file (np.memmap-able)", cmd_tokenize)
    p.add_argument("files", nargs="+", help="UTF-8 text files")
    p.add_argument("--out", required=True, help="token file to write (e.g. tokens.npgpt)")
    p.add_argument("--eot", action="store_true", help="write <|endoftext|> after each file")
    p.add_argument("--threads", type=int, default=None, help="encoding threads (default: all cores)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 2 user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # `python -m npgpt` alone runs the main job
        args = parser.parse_args(["inspect", *(argv or [])])
    try:
        args.func(args)
    except UserError as e:
        print(f"npgpt: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `npgpt encode ... | head`
        return 0
    return 0
