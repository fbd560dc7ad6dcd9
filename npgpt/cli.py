"""The ``npgpt`` command: a thin shell over the public API.

    npgpt demo [FILE]             chapter 2 in one run (default text: Python's own pydoc topics)
    npgpt inspect [FILE]          encode a text and report tokens, speed and the round trip
    npgpt encode TEXT | --file F  print token ids (or --count)
    npgpt decode ID [ID ...]      print the text of token ids (ids may also come on stdin)
    npgpt show TEXT [--html F]    the text with token boundaries coloured
    npgpt train FILES --vocab-size N --out DIR   learn a BPE vocabulary
    npgpt tokenize FILES --out F  encode files into one token file (streaming, parallel)

A user mistake (missing file, bad id, unknown encoding, vocabulary files not found, a bad option, a
file that cannot be written) prints one line starting with ``npgpt`` and exits with status 2, without
a traceback; Ctrl-C prints one line and exits with status 130. Options are checked before any long
work starts, so a mistake in ``--out`` costs nothing.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
import warnings
from pathlib import Path
from typing import NoReturn

import npgpt

EXAMPLES = """examples:
  npgpt demo                            # the chapter on Python's pydoc topics (built in)
  npgpt demo the-verdict.txt
  npgpt inspect book.txt
  npgpt encode "Hello, do you like tea?"
  echo "hello world" | npgpt encode --count
  npgpt decode 15496 11 466 345
  npgpt show "unbelievability" --ids
  npgpt show --file book.txt --html tokens.html
  npgpt train corpus/*.txt --vocab-size 8192 --out my-vocab
  npgpt encode "hello" --vocab my-vocab
  npgpt tokenize a.txt b.txt --out tokens.npy --eot
  npgpt tokenize *.txt --out data/mine --format bin --val-fraction 0.1   # nanoGPT's train.bin + val.bin
"""


class UserError(Exception):
    """A mistake in how the command was called: reported in one line, exit status 2."""


def _utf8_arg(what: str, value: str) -> str:
    """`value`, an argument, when it is UTF-8 text: the shell hands Python bytes, and those that are not
    UTF-8 arrive as lone surrogates (PEP 383), which encoding would silently make U+FFFD."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        byte = value[e.start].encode("utf-8", "surrogateescape")[0]
        raise UserError(f"{what} is not UTF-8 text (byte 0x{byte:02x} at character {e.start})") from None
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake in the options is one line (and exit status 2), like every other."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UserError(f"{name} must be at least 1, got {value}")


def _writable_file(option: str, path: str) -> Path:
    """Check, before any work, that `path` can be written as a file: its folder exists, it is no folder."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{option} {path} is a folder; give a file name")
    if not p.parent.is_dir():
        raise UserError(f"{option} {path}: the folder {p.parent} does not exist")
    if not os.access(p.parent, os.W_OK):
        raise UserError(f"{option} {path}: the folder {p.parent} is not writable")
    return p


def _writable_folder(option: str, path: str) -> Path:
    """Check, before any work, that `path` is (or can become) a writable folder."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{option} {path} is a file, not a folder")
    parent = next((q for q in [p, *p.parents] if q.exists()), Path("."))
    if not parent.is_dir():
        raise UserError(f"{option} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{option} {path}: {parent} is not writable")
    return p


def default_text() -> tuple[str, str]:
    """Python's ``pydoc_data.topics``: real English prose and code that every Python install has."""
    from pydoc_data import topics

    return "pydoc_data.topics", "\n\n".join(topics.topics[k] for k in sorted(topics.topics))


def _input_file(path: str) -> Path:
    """`path` when it is a file to read; else the mistake, in one line (`npgpt.token_files.regular_file`)."""
    from npgpt.token_files import regular_file

    try:
        return regular_file(path)
    except (ValueError, FileNotFoundError) as e:
        raise UserError(str(e)) from None


def _read_text(path: str | None) -> tuple[str, str]:
    if path is None:
        return default_text()
    p = Path(path) if path == "-" else _input_file(path)
    data = sys.stdin.buffer.read() if path == "-" else p.read_bytes()
    try:
        return ("<stdin>" if path == "-" else path), data.decode("utf-8")
    except UnicodeDecodeError as e:
        name = "stdin" if path == "-" else path
        raise UserError(f"{name} is not UTF-8 text ({e.reason} at byte {e.start})") from None


def _encoding(args) -> npgpt.Encoding:
    """`--vocab DIR` (any vocabulary: vocab.json + merges.txt, encoder.json + vocab.bpe, or a .tiktoken),
    else `--encoding NAME`."""
    try:
        if args.vocab:
            folder = Path(args.vocab)
            if not folder.is_dir():
                raise UserError(f"--vocab: no such folder: {folder}")
            for names in (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")):
                if all((folder / n).is_file() for n in names):
                    return npgpt.Encoding.from_files(*(folder / n for n in names))
            tiktoken_files = sorted(folder.glob("*.tiktoken"))
            if tiktoken_files:
                return npgpt.Encoding.from_files(tiktoken_files[0])
            raise UserError(f"--vocab: {folder} holds no vocab.json + merges.txt, encoder.json + vocab.bpe, *.tiktoken")
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
        text = _utf8_arg("TEXT", args.text)
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
    ids = []
    for w in words:
        if not w.isascii() or not w.lstrip("-").isdigit():  # int() would also take '²' or '٣'
            raise UserError(f"not a token id: {w!r}")
        ids.append(int(w))
    enc = _encoding(args)
    try:
        sys.stdout.write(enc.decode(ids) + "\n")
    except ValueError as e:
        raise UserError(str(e)) from None


def cmd_train(args) -> None:
    for f in args.files:
        _input_file(f)
    specials = args.special or ["<|endoftext|>"]
    for s in specials:
        if not s or len(_utf8_arg(f"--special {s!r}", s).encode("utf-8")) == 1:
            raise UserError(f"--special {s!r}: a special token must be text that no byte token already is")
    if args.vocab_size < 256 + len(specials):
        raise UserError(f"--vocab-size {args.vocab_size} is too small: the 256 byte tokens and the special "
                        "tokens need more")
    if args.vocab_size >= 2**31:
        raise UserError(f"--vocab-size {args.vocab_size} is too large (at most {2**31 - 1})")
    _positive("--min-frequency", args.min_frequency)
    _positive("--threads", args.threads)
    _writable_folder("--out", args.out)
    try:
        if args.scheduler:
            with _dask_client(args.scheduler) as client:
                from npgpt import distributed

                enc = distributed.train_bpe(args.files, args.vocab_size, specials, client=client,
                                            min_frequency=args.min_frequency)
        else:
            enc = npgpt.train_bpe(files=args.files, vocab_size=args.vocab_size, special_tokens=specials,
                                  min_frequency=args.min_frequency, num_threads=args.threads)
    except UnicodeDecodeError as e:
        raise _not_utf8(e) from None
    paths = enc.save(args.out, format=args.format)
    print(f"learned {len(enc.merges):,} merges: {enc.n_vocab:,} tokens; wrote {', '.join(map(str, paths))}")


def _not_utf8(e: UnicodeDecodeError) -> UserError:
    """The mistake of a file that is not UTF-8 text, from the library's error (it names the file and the byte)."""
    from npgpt.token_files import FileDecodeError

    if isinstance(e, FileDecodeError):
        return UserError(f"{e.path} is not UTF-8 text ({e.problem} at byte {e.offset})")
    return UserError(f"a file is not UTF-8 text ({e.reason} at byte {e.start})")


def cmd_tokenize(args) -> None:
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    if args.val_fraction is not None and not 0 < args.val_fraction < 1:
        raise UserError(f"--val-fraction must be between 0 and 1 (exclusive), got {args.val_fraction}")
    enc = _encoding(args)
    if args.scheduler:
        _tokenize_on_dask(args, enc)
        return
    try:
        written = npgpt.tokenize_files(args.files, args.out, tokenizer=enc, eot=args.eot, num_threads=args.threads,
                                       format=args.format, val_fraction=args.val_fraction)
    except UnicodeDecodeError as e:  # tokenize_files names the file and the byte
        raise _not_utf8(e) from None
    except (ValueError, OSError) as e:  # bad --out, an output that is an input, a missing file, permissions
        raise UserError(str(e).splitlines()[0] if str(e) else repr(e)) from None
    for tf in written if isinstance(written, tuple) else (written,):
        print(f"wrote {len(tf):,} tokens ({tf.dtype}, {tf.format}) to {tf.path}")


def _dask_client(address: str):
    """A Dask client connected to `address`, or a one-line mistake."""
    try:
        from npgpt import distributed

        return distributed.connect(address)
    except ImportError as e:
        raise UserError(str(e)) from None
    except (OSError, TimeoutError, ValueError) as e:
        raise UserError(f"--scheduler {address}: cannot connect ({e})") from None


def _tokenize_on_dask(args, enc: npgpt.Encoding) -> None:
    if args.val_fraction is not None:
        raise UserError("--val-fraction does not go with --scheduler (each shard gets a token file of its own)")
    out = _writable_folder("--out", args.out)
    for f in args.files:
        _input_file(f)
    from npgpt import distributed

    with _dask_client(args.scheduler) as client:
        try:
            index = distributed.tokenize(args.files, out, client=client, tokenizer=enc, eot=args.eot,
                                         format=args.format or "npy")
        except UnicodeDecodeError as e:
            raise _not_utf8(e) from None
    print(f"wrote {index['tokens']:,} tokens in {len(index['shards'])} shard files and {out / 'index.json'}")


# Background colours for `show`: six soft ones, so that neighbouring tokens always differ.
_ANSI = ["48;5;153", "48;5;222", "48;5;157", "48;5;217", "48;5;187", "48;5;183"]
_HTML = ["#b3d9ff", "#ffd699", "#b3ffcc", "#ffb3b3", "#e6e6b3", "#d9b3ff"]


def _token_texts(enc: npgpt.Encoding, ids: list[int]) -> list[str]:
    # Decode per token; a token that is half of a UTF-8 character shows as U+FFFD, as in tiktoken.
    return [enc.decode([i]) for i in ids]


def cmd_show(args) -> None:
    import html as html_lib

    text = _utf8_arg("TEXT", args.text) if args.text is not None else _read_text(args.file or "-")[1]
    enc = _encoding(args)
    ids = enc.encode(text, allowed_special="all" if args.allow_special else frozenset(), disallowed_special=())
    parts = _token_texts(enc, ids)
    if args.html:
        _writable_file("--html", args.html)
        spans = "".join(
            f'<span style="background:{_HTML[k % len(_HTML)]}" title="{i}">{html_lib.escape(t)}</span>'
            for k, (i, t) in enumerate(zip(ids, parts, strict=True))
        )
        Path(args.html).write_text(
            f"<!doctype html><meta charset=utf-8><title>npgpt show</title><p>{len(ids)} tokens ({enc.name})</p>"
            f'<pre style="white-space:pre-wrap;font:15px/1.6 monospace">{spans}</pre>\n', encoding="utf-8")
        print(f"wrote {len(ids)} tokens to {args.html}")
        return
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    if color:
        body = "".join(f"\x1b[{_ANSI[k % len(_ANSI)]}m\x1b[30m{t}\x1b[0m" for k, t in enumerate(parts))
    else:
        body = "|".join(parts)
    print(body)
    if args.ids:
        print(" ".join(map(str, ids)))
    print(f"({len(ids)} tokens, {enc.name})", file=sys.stderr)


def cmd_demo(args) -> None:
    from npgpt import demo

    _positive("--steps", args.steps)
    source, text = _read_text(args.file)
    if len(text) < 200:
        raise UserError(f"{source} is too short for the demo ({len(text)} characters; it needs a few hundred)")
    demo.run(text, source, steps=args.steps)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="npgpt", description="GPT-2 tokenization in NumPy + numba.", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"npgpt {npgpt.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, help, func):
        p = sub.add_parser(name, help=help, description=help, epilog=EXAMPLES,  # a _Parser too
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--encoding", default="gpt2", help="encoding name (default: gpt2)")
        p.add_argument("--vocab", metavar="DIR", help="folder with GPT-2's files (vocab.json + merges.txt ...)")
        p.set_defaults(func=func)
        return p

    p = add("demo", "chapter 2 in one run: words, simple tokenizers, BPE, windows, embeddings, training", cmd_demo)
    p.add_argument("file", nargs="?", help="UTF-8 text file (default: Python's pydoc topics)")
    p.add_argument("--steps", type=int, default=100, help="bigram training steps (default: 100)")
    p = add("inspect", "encode a text and report tokens, speed and the round trip", cmd_inspect)
    p.add_argument("file", nargs="?", help="UTF-8 text file, or - for stdin (default: Python's pydoc topics)")
    def add_text(p):
        p.add_argument("text", nargs="?", help="the text (default: --file or stdin)")
        p.add_argument("--file", help="read the text from this file (- for stdin)")

    p = add("encode", "print the token ids of a text", cmd_encode)
    add_text(p)
    p.add_argument("--count", action="store_true", help="print only the number of tokens")
    p.add_argument("--allow-special", action="store_true", help="encode <|endoftext|> as its special id")
    p = add("decode", "print the text of token ids", cmd_decode)
    p.add_argument("ids", nargs="*", help="token ids (default: read from stdin)")
    p = add("show", "the text with token boundaries coloured (or --html FILE)", cmd_show)
    add_text(p)
    p.add_argument("--ids", action="store_true", help="also print the token ids")
    p.add_argument("--html", metavar="FILE", help="write the coloured text as an HTML page instead")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="colour on a terminal (auto); without colour, tokens are separated by |")
    p.add_argument("--allow-special", action="store_true", help="show <|endoftext|> as its special token")
    p = add("train", "learn a byte-level BPE vocabulary from text files", cmd_train)
    p.add_argument("files", nargs="+", help="UTF-8 text files (streamed)")
    p.add_argument("--vocab-size", type=int, required=True, help="tokens in all: 256 bytes + merges + specials")
    p.add_argument("--out", required=True, help="folder to write vocab.json + merges.txt (or .tiktoken)")
    p.add_argument("--special", action="append", metavar="TOKEN",
                   help="a special token (repeatable; default <|endoftext|>)")
    p.add_argument("--min-frequency", type=int, default=1, help="stop when the best pair is rarer (default 1)")
    p.add_argument("--format", choices=["gpt2", "tiktoken"], default="gpt2", help="file format (default gpt2)")
    p.add_argument("--threads", type=int, default=None, help="counting threads (default: all cores)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="count on a Dask cluster (npgpt[dask]); FILES are shards every worker can read")
    p = add("tokenize", "encode text files into one token file (.npy, or nanoGPT's raw .bin)", cmd_tokenize)
    p.add_argument("files", nargs="+", help="UTF-8 text files")
    p.add_argument("--out", required=True,
                   help="token file to write (e.g. tokens.npy, train.bin); with --val-fraction, a folder")
    p.add_argument("--format", choices=["npy", "bin"], default=None,
                   help="npy (NumPy, self-describing) or bin (raw uint16, nanoGPT); default: bin for a .bin "
                        "--out, else npy")
    p.add_argument("--val-fraction", type=float, default=None, metavar="F",
                   help="write OUT/train and OUT/val: the last fraction F of the tokens is val (nanoGPT: 0.1)")
    p.add_argument("--eot", action="store_true", help="write <|endoftext|> after each file")
    p.add_argument("--threads", type=int, default=None, help="encoding threads (default: all cores)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask cluster (npgpt[dask]); FILES are shards every worker can read, --out a "
                        "folder that receives one token file per shard and index.json")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 2 a mistake, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:  # `python -m npgpt` alone runs the main job
            args = parser.parse_args(["demo", *(argv or [])])
        with warnings.catch_warnings():  # the library's warnings, one line each, as the CLI's mistakes are
            warnings.showwarning = _warn
            args.func(args)
    except SystemExit as e:  # argparse: --help (0) or a bad option (2, one line already printed)
        return int(e.code or 0)
    except UserError as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        print("npgpt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `npgpt encode ... | head`
        return 0
    except OSError as e:  # a file that cannot be read or written: permissions, a full disk, ...
        where = f"{e.filename}: " if e.filename else ""
        return _fail(f"{where}{e.strerror or e}")
    except (ValueError, KeyError, TypeError, UnicodeError) as e:  # the library names the bad value
        # (a KeyError's str() is the repr of its message, in quotes)
        text = e.args[0] if type(e) is KeyError and len(e.args) == 1 and isinstance(e.args[0], str) else str(e)
        return _fail(text.splitlines()[0] if text else type(e).__name__)
    return 0


def _warn(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"npgpt: warning: {message}", file=sys.stderr)


def _fail(message: str) -> int:
    print(f"npgpt: {message}", file=sys.stderr)
    return 2
