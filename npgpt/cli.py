"""The ``npgpt`` command: a thin shell over the public API.

    npgpt demo [FILE]             chapter 2 in one run (default text: Python's own pydoc topics)
    npgpt inspect [FILE]          encode a text and report tokens, speed and the round trip
    npgpt encode TEXT | --file F  print token ids (or --count)
    npgpt decode ID [ID ...]      print the text of token ids (ids may also come on stdin)
    npgpt show TEXT [--html F]    the text with token boundaries coloured
    npgpt train FILES --vocab-size N --out DIR   learn a BPE vocabulary
    npgpt tokenize FILES --out F  encode files into one token file (streaming, parallel)
    npgpt bench [PATHS]           every benchmark, one report (bench/RESULTS.md, RESULTS.json)

A user mistake (missing file, bad id, unknown encoding, vocabulary files not found) prints one line
starting with ``npgpt:`` and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from pathlib import Path

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


def cmd_train(args) -> None:
    for f in args.files:
        if not Path(f).is_file():
            raise UserError(f"no such file: {f}")
    if args.vocab_size < 256 + len(args.special or ["<|endoftext|>"]):
        raise UserError(f"--vocab-size {args.vocab_size} is too small: the 256 byte tokens and the special "
                        "tokens need more")
    try:
        enc = npgpt.train_bpe(files=args.files, vocab_size=args.vocab_size,
                              special_tokens=args.special or ["<|endoftext|>"], min_frequency=args.min_frequency,
                              num_threads=args.threads)
    except UnicodeDecodeError as e:  # the reason names the file and the byte offset
        raise UserError(f"not UTF-8 text: {e.reason}") from None
    paths = enc.save(args.out, format=args.format)
    print(f"learned {len(enc.merges):,} merges: {enc.n_vocab:,} tokens; wrote {', '.join(map(str, paths))}")


def cmd_tokenize(args) -> None:
    enc = _encoding(args)
    try:
        tf = npgpt.tokenize_files(args.files, args.out, tokenizer=enc, eot=args.eot, num_threads=args.threads)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    except UnicodeDecodeError as e:
        raise UserError(f"a file is not UTF-8 text ({e.reason} at byte {e.start})") from None
    print(f"wrote {len(tf):,} tokens ({tf.dtype}) to {tf.path}")


# Background colours for `show`: six soft ones, so that neighbouring tokens always differ.
_ANSI = ["48;5;153", "48;5;222", "48;5;157", "48;5;217", "48;5;187", "48;5;183"]
_HTML = ["#b3d9ff", "#ffd699", "#b3ffcc", "#ffb3b3", "#e6e6b3", "#d9b3ff"]


def _token_texts(enc: npgpt.Encoding, ids: list[int]) -> list[str]:
    # Decode per token; a token that is half of a UTF-8 character shows as U+FFFD, as in tiktoken.
    return [enc.decode([i]) for i in ids]


def cmd_show(args) -> None:
    import html as html_lib

    text = args.text if args.text is not None else _read_text(args.file or "-")[1]
    enc = _encoding(args)
    ids = enc.encode(text, allowed_special="all" if args.allow_special else frozenset(), disallowed_special=())
    parts = _token_texts(enc, ids)
    if args.html:
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

    source, text = _read_text(args.file)
    if len(text) < 200:
        raise UserError(f"{source} is too short for the demo ({len(text)} characters; it needs a few hundred)")
    demo.run(text, source, steps=args.steps)


# What `npgpt bench` runs, and the targets its summary checks (figure -> (comparison, bound)).
BENCHMARKS = ("encode", "train", "windows", "embedding")
TARGETS = {
    "npgpt / tiktoken": (">=", 1.5), "npgpt / riptoken": (">=", 1.0),
    "npgpt 2-thread batch / tiktoken 1 thread": (">=", 2.5),
    "npgpt build ms": ("<", 1.0), "npgpt build MB": ("<", 1.0), "npgpt batches/s / torch": (">=", 10.0),
    "npgpt forward / torch": ("<=", 1.0), "npgpt backward / torch": ("<=", 0.5),
    "npgpt train time / HF tokenizers": ("<=", 1.0), "npgpt train time / rustbpe": ("<=", 1.0),
    "npgpt train time / gigabpe": ("<=", 1.0), "npgpt peak memory / HF tokenizers": ("<=", 1.0),
    "npgpt peak memory / gigabpe": ("<=", 1.0),
}


def _target(name: str) -> str:
    for prefix, (op, bound) in TARGETS.items():
        if name.startswith(prefix):
            return f"{op} {bound:g}"
    return ""


def cmd_bench(args) -> None:
    import datetime
    import json
    import platform
    import subprocess
    import tempfile

    from tqdm import tqdm

    bench_dir = Path(npgpt.__file__).resolve().parent.parent / "bench"
    if not (bench_dir / "encode.py").is_file():
        raise UserError("npgpt bench runs the scripts in the repository's bench/ folder, which this installation "
                        "lacks: clone the repository and `pip install -e .`")
    for p in args.paths:
        if not Path(p).exists():
            raise UserError(f"no such file or folder: {p}")
    out_dir = Path(args.out) if args.out else bench_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    results, figures = out_dir / "RESULTS.md", {}
    quiet = not sys.stdout.isatty()
    with tempfile.TemporaryDirectory() as tmp:
        for name in tqdm(BENCHMARKS, desc="npgpt bench", unit="benchmark", disable=None):
            cmd = [sys.executable, str(bench_dir / f"{name}.py"), "--results", str(results),
                   "--json", f"{tmp}/{name}.json"]
            cmd += [] if name == "embedding" else list(args.paths)
            cmd += ["--quick"] if args.quick else []
            done = subprocess.run(cmd, capture_output=quiet, text=True)
            if done.returncode != 0:
                tail = (done.stderr or "").strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
                raise UserError(f"bench/{name}.py failed: {tail[0]}")
            figures[name] = json.loads(Path(f"{tmp}/{name}.json").read_text())
    rows = [("benchmark", "figure", "value", "target")]
    for name, figs in figures.items():
        rows += [(name, k, f"{v:.3g}", _target(k)) for k, v in figs.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print("\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows))
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "system": platform.platform(), "python": platform.python_version()},
        "versions": _versions(), "command": "npgpt bench " + " ".join(sys.argv[2:] if len(sys.argv) > 2 else []),
        "figures": figures,
    }
    (out_dir / "RESULTS.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    print(f"\nwrote {results} and {out_dir / 'RESULTS.json'}")
    _chart(figures, out_dir / "RESULTS.png")


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in ("npgpt", "numpy", "numba", "regex", "tiktoken", "riptoken", "tokenizers", "torch"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def _chart(figures: dict, path: Path) -> None:
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
                lower_is_better = any(word in k for word in ("time /", "forward /", "backward /"))
                speedups[k.replace(" time", "").replace("npgpt ", "")] = 1 / v if lower_is_better else v
    if not speedups:
        return
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(speedups) + 1.2))
    names = list(speedups)
    ax.barh(names, [speedups[n] for n in names], color=["#4c8bd6" if speedups[n] >= 1 else "#d65f4c" for n in names])
    ax.set_xscale("log")
    ax.axvline(1.0, color="gray", lw=1)
    ax.set_xlabel("npgpt is this many times faster than the peer (log scale; red: slower)")
    ax.set_title("npgpt bench")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


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
    p = add("bench", "run every benchmark against the installed peers; write bench/RESULTS.md and .json", cmd_bench)
    p.add_argument("paths", nargs="*", help="text files or folders (default: ../shared/corpus, else the stdlib)")
    p.add_argument("--quick", action="store_true", help="small samples, for a smoke test")
    p.add_argument("--out", help="folder for RESULTS.md / .json / .png (default: bench/)")
    p = add("train", "learn a byte-level BPE vocabulary from text files", cmd_train)
    p.add_argument("files", nargs="+", help="UTF-8 text files (streamed)")
    p.add_argument("--vocab-size", type=int, required=True, help="tokens in all: 256 bytes + merges + specials")
    p.add_argument("--out", required=True, help="folder to write vocab.json + merges.txt (or .tiktoken)")
    p.add_argument("--special", action="append", metavar="TOKEN",
                   help="a special token (repeatable; default <|endoftext|>)")
    p.add_argument("--min-frequency", type=int, default=1, help="stop when the best pair is rarer (default 1)")
    p.add_argument("--format", choices=["gpt2", "tiktoken"], default="gpt2", help="file format (default gpt2)")
    p.add_argument("--threads", type=int, default=None, help="counting threads (default: all cores)")
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
        args = parser.parse_args(["demo", *(argv or [])])
    try:
        args.func(args)
    except UserError as e:
        print(f"npgpt: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `npgpt encode ... | head`
        return 0
    return 0
