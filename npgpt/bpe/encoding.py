"""Byte-pair encoding with GPT-2's vocabulary: a tiktoken-compatible `Encoding`.

Byte-level BPE (chapter 2.5) never meets an unknown word: every text is UTF-8 bytes, every byte
is a token, and training has learned which adjacent tokens to merge into bigger ones, in order.
Encoding a text is therefore:

1. split special tokens such as ``<|endoftext|>`` out of the text, where they are allowed;
2. cut every other stretch of text into pieces with the pre-tokenization pattern (GPT-2's runs on the
   numba scanner `npgpt.bpe.pretokenize_kernels`, the twin of `npgpt.bpe.pretokenize.split`; any
   other pattern on the `regex` module);
3. encode each piece's bytes with the merge loop (`npgpt.bpe.merge_kernels`, a numba kernel),
   inside the same kernel call, so that pieces never become Python objects;

and decoding is just concatenating the tokens' bytes and reading them as UTF-8.

A new `Encoding` starts on a plain tier (`Encoding._plain_encode`): its first `PLAIN_BUDGET` bytes
of text go through the textbook algorithm of `npgpt.reference`, which needs no numba, so that a
script that encodes one sentence starts as fast as tiktoken; after that (or at the first piece
longer than `PLAIN_MAX_PIECE` bytes) the kernels load, once per process. Both tiers give the same ids.

`Encoding` has tiktoken's methods, with tiktoken's results and exception types, so code written for
``tiktoken.get_encoding("gpt2")`` runs on ``npgpt.get_encoding("gpt2")`` (one difference:
`encode_to_numpy` returns uint16 when every id fits, where tiktoken always returns uint32). Beyond
tiktoken it can be built from any vocabulary and merge list (checked: `npgpt.bpe.vocab_files`),
saved in GPT-2's or tiktoken's file format, and it encodes streams of text in bounded memory
(`Encoding.encode_iterable`).

Example
-------
>>> import npgpt
>>> enc = npgpt.get_encoding("gpt2")
>>> enc.encode("hello world")
[31373, 995]
>>> enc.decode([31373, 995])
'hello world'
>>> enc.encode("<|endoftext|>", allowed_special={"<|endoftext|>"})
[50256]
"""

from __future__ import annotations

import array
import bisect
import functools
import os
import threading
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from npgpt import reference
from npgpt.bpe import pretokenize, vocab_files
from npgpt.bpe.pretokenize import GPT2_PATTERN, check_disallowed, compile_pattern, to_utf8
from npgpt.bpe.unicode_tables import char_classes
from npgpt.token_files import compact_dtype

__all__ = ["ENDOFTEXT", "Encoding", "InvalidTokenError"]

ENDOFTEXT = "<|endoftext|>"


#: Bytes of text an Encoding encodes on the plain tier (`Encoding._plain_encode`) before it loads the
#: kernels: about what the plain tier does in the time numba takes to load (~0.5 s).
PLAIN_BUDGET = 1 << 16
#: The longest piece the plain tier takes (its textbook merge loop is quadratic in the piece's length).
PLAIN_MAX_PIECE = 64

_kernels = None
_utf8 = None
#: Characters from which a text is "long": a batch makes its UTF-8 and searches it for special tokens
#: without the GIL (`Encoding._long_rows`), and one encode looks for each special token's first byte
#: before the token (`check_disallowed`). Below, either costs more than it saves.
_LONG_TEXT = 1 << 16
UTF8 = bytes | memoryview  # a text's UTF-8: bytes, or a read-only view of bytes a kernel made (`Encoding._long_rows`)
_WHOLE_TEXT = np.array([[0, 2**62, -1]], np.int64)  # one ordinary row, ending with the text
_WHOLE_TEXT.flags.writeable = False
_MIN_CHUNK = 1 << 16  # bytes: the least `encode_batch_to_numpy` hands a thread (a kernel call costs ~10 us of Python)


def _merge():
    # numba is imported on the first encode, not by `import npgpt` (importing it takes ~0.3 s).
    global _kernels
    if _kernels is None:
        from npgpt.bpe import merge_kernels as merge

        merge.say_if_compiling(merge.encode_segments, "npgpt's encoding kernels (about 10 s)")
        _kernels = merge
    return _kernels


def _utf8_kernels():
    global _utf8
    if _utf8 is None:
        _merge()  # (says so first if the encoding kernels are not compiled yet)
        from npgpt.bpe import utf8_kernels

        _utf8 = utf8_kernels
    return _utf8


class InvalidTokenError(ValueError, KeyError):
    """A token id that is not in the vocabulary.

    A ValueError, and also a KeyError because that is what tiktoken raises for the same mistake.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _check_text(text: object) -> str:
    if isinstance(text, str):
        return text
    hint = " (decode bytes first, e.g. data.decode('utf-8'))" if isinstance(text, (bytes, bytearray)) else ""
    raise TypeError(f"text must be str, got {type(text).__name__}{hint}")


def _piece_utf8(text: str, method: str) -> bytes:
    """The UTF-8 of `text` taken as it is, as tiktoken's `method` takes it: a surrogate is a UnicodeEncodeError
    (which names it: a pair's own message names none), not repaired as `Encoding.encode` repairs it."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = text[e.start : e.end]
        raise UnicodeEncodeError(e.encoding, text, e.start, e.end,
                                 f"surrogates not allowed: {bad!r} has no UTF-8 form ({method} takes the text as it "
                                 "is, as tiktoken's does; encode repairs surrogates)") from None


class Encoding:
    """A byte-level BPE tokenizer with tiktoken's interface.

    Parameters
    ----------
    vocab : dict[int, bytes]
        Token id -> token bytes. Must contain all 256 single bytes. May also contain the special
        tokens' bytes (GPT-2's ``encoder.json`` holds ``<|endoftext|>`` as id 50256).
    merges : list[tuple[bytes, bytes]]
        The learned merges, in the order learned (rank 0 first). Each merge's two parts must be
        single bytes or made by an earlier merge, and their concatenation must be in `vocab`.
    special_tokens : iterable of str, or dict[str, int]
        Tokens that are never produced from text unless allowed (see `encode`). A special token whose
        bytes are already in `vocab` keeps that id; the others take the next free ids, in order. A
        dict gives the ids explicitly (as tiktoken's constructor does).
    pattern : str
        Pre-tokenization regex (`regex` syntax). Default: GPT-2's. Each match is one piece, so
        capturing groups are refused (write ``(?:...)``).
    name : str
        Shown in ``repr`` and used as the file name by ``save(format="tiktoken")``.

    Examples
    --------
    >>> vocab = {i: bytes([i]) for i in range(256)} | {256: b"ab", 257: b"abc"}
    >>> enc = Encoding(vocab, [(b"a", b"b"), (b"ab", b"c")], special_tokens=["<|endoftext|>"])
    >>> enc.encode("abcab"), enc.eot_token
    ([257, 256], 258)
    """

    def __init__(
        self,
        vocab: Mapping[int, bytes],
        merges: Iterable[tuple[bytes, bytes]],
        special_tokens: Iterable[str] | Mapping[str, int] = (),
        *,
        pattern: str = GPT2_PATTERN,
        name: str = "custom",
    ):
        self._setup(vocab_files.check_vocabulary(vocab, merges, special_tokens), pattern, name)

    @classmethod
    def _from_vocabulary(cls, checked: vocab_files.Vocabulary, pattern: str, name: str) -> Encoding:
        """An Encoding of a vocabulary checked already (`npgpt.bpe.vocab_files.read_gpt2_vocabulary`)."""
        self = cls.__new__(cls)
        self._setup(checked, pattern, name)
        return self

    def _setup(self, checked: vocab_files.Vocabulary, pattern: str, name: str) -> None:
        self.name = name
        self._pat_str = pattern
        self._regex = compile_pattern(pattern)
        # GPT-2's pattern runs on the numba scanner (npgpt.bpe.pretokenize_kernels); any other on `regex`.
        self._scanned = pattern == GPT2_PATTERN
        self._encoder, self._merges, self._special_tokens, self._decoder = checked
        self.max_token_value = max(self._decoder)
        if self.max_token_value >= 2 * len(self._decoder) + 2**20:  # decoding indexes a dense list of ids
            raise ValueError(
                f"token ids are too sparse: {len(self._decoder)} tokens, but the largest id is {self.max_token_value}"
            )
        self._token_dtype = compact_dtype(self.max_token_value)
        # A list indexed by id makes decoding one C-level lookup per token; holes hold None.
        self._decode_list: list[bytes | None] = [None] * (self.max_token_value + 1)
        for i, b in self._decoder.items():
            self._decode_list[i] = b
        self._special_ids = frozenset(self._special_tokens.values())
        self._all_specials = frozenset(self._special_tokens)
        self._special_by_bytes = {s.encode("utf-8"): i for s, i in self._special_tokens.items()}
        self._sorted_tokens: list[bytes] | None = None  # for encode_with_unstable
        self._tables_lock = threading.Lock()
        self._tables = None
        self._caches: Any = None  # the piece cache all encode calls share (a PieceCaches), made with the tables
        self._works: list[tuple[np.ndarray, np.ndarray]] = []  # work space and state, one per kernel call at once
        self._decode_flat = None  # decode's numba table of every token's bytes, built on the first long decode
        self._plain_budget = PLAIN_BUDGET  # bytes the plain tier may still encode (see _plain_encode)
        self._plain_ranks: dict[tuple[bytes, bytes], int] | None = None
        self._plain_memo: dict[bytes, list[int]] = {}

    @classmethod
    def from_files(
        cls,
        vocab_path: str | os.PathLike,
        merges_path: str | os.PathLike | None = None,
        *,
        special_tokens: Iterable[str] | Mapping[str, int] | None = None,
        pattern: str = GPT2_PATTERN,
        name: str | None = None,
    ) -> Encoding:
        """Load ``vocab.json`` + ``merges.txt``, ``encoder.json`` + ``vocab.bpe``, or one ``*.tiktoken``.

        The JSON vocabulary comes first, then its merges file. A ``.tiktoken`` file has no merges (pass
        none); they are recovered from the ranks. Files in the wrong places (swapped, a ``.tiktoken``
        with a merges file) raise VocabFileError, a ValueError, saying what each should be. The special
        tokens are, when not given, those `save` wrote beside the files (`vocab_files.read_special_tokens`),
        else ``<|endoftext|>`` alone (GPT-2's).

        Example
        -------
        >>> enc = npgpt.get_encoding("gpt2")
        >>> paths = enc.save(tmp_path)  # doctest: +SKIP
        >>> Encoding.from_files(*paths).encode("hi")  # doctest: +SKIP
        [5303]
        """
        if special_tokens is None:
            saved = vocab_files.read_special_tokens(vocab_path)
            special_tokens = (ENDOFTEXT,) if saved is None else saved
        vocab, merges = vocab_files.read_files(vocab_path, merges_path, special_tokens)
        try:
            return cls(vocab, merges, special_tokens, pattern=pattern, name=name or Path(vocab_path).stem)
        except ValueError as e:
            where = vocab_path if merges_path is None else f"{vocab_path} + {merges_path}"
            raise vocab_files.VocabFileError(f"{where}: {e}") from None

    # ----------------------------------------------------------------------------------------
    # tiktoken's attributes

    def __repr__(self) -> str:
        return f"<Encoding {self.name!r}>"

    @property
    def n_vocab(self) -> int:
        """Number of ids, ``max_token_value + 1`` (50257 for GPT-2)."""
        return self.max_token_value + 1

    @property
    def eot_token(self) -> int:
        """Id of ``<|endoftext|>`` (50256 for GPT-2)."""
        try:
            return self._special_tokens[ENDOFTEXT]
        except KeyError:
            raise KeyError(f"{self!r} has no {ENDOFTEXT!r} token") from None

    @property
    def special_tokens_set(self) -> set[str]:
        return set(self._special_tokens)

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token text -> id."""
        return dict(self._special_tokens)

    @property
    def pattern(self) -> str:
        return self._pat_str

    @property
    def _mergeable_ranks(self) -> dict[bytes, int]:
        # tiktoken's name for the mergeable tokens (bytes -> id); some converters read it.
        return dict(self._encoder)

    @property
    def vocab(self) -> dict[int, bytes]:
        """Every token, id -> bytes, special tokens included (as their UTF-8 bytes)."""
        return dict(sorted(self._decoder.items()))

    @property
    def merges(self) -> list[tuple[bytes, bytes]]:
        """The merges in rank order, as pairs of bytes."""
        return list(self._merges)

    def token_byte_values(self) -> list[bytes]:
        """The bytes of every mergeable token, sorted (as tiktoken)."""
        return sorted(self._encoder)

    # ----------------------------------------------------------------------------------------
    # the numba tables, built on first use

    def _get_tables(self):
        """The kernels' tables (`npgpt.bpe.merge_kernels.build_tables`), built on the first encode,
        and with them the piece cache all encode calls share (`npgpt.bpe.merge_kernels.PieceCaches`)."""
        if self._tables is None:
            with self._tables_lock:
                if self._tables is None:
                    merge = _merge()
                    tables = merge.build_tables(
                        self._encoder, self._merges, np.uint16 if self.max_token_value < 2**16 else np.uint32)
                    self._caches = merge.PieceCaches(tables.tokens)
                    self._tables = tables
        return self._tables

    # ----------------------------------------------------------------------------------------
    # encoding

    def _special_sets(self, allowed_special, disallowed_special) -> tuple[frozenset, frozenset]:
        if type(allowed_special) is frozenset and not allowed_special and disallowed_special == "all":
            return allowed_special, self._all_specials  # the defaults, on every short call: no work
        if disallowed_special is None:  # tiktoken reads None as "nothing disallowed"
            disallowed_special = ()
        for arg, value in (("allowed_special", allowed_special), ("disallowed_special", disallowed_special)):
            if isinstance(value, str) and value != "all":
                raise TypeError(
                    f"{arg} must be 'all' or a set of str, got the str {value!r} (did you mean {{{value!r}}}?)"
                )
            if not isinstance(value, (str, Collection)):
                raise TypeError(f"{arg} must be 'all' or a set of str, got {type(value).__name__}")
            if not isinstance(value, str) and not all(isinstance(t, str) for t in value):
                bad = next(t for t in value if not isinstance(t, str))
                raise TypeError(f"{arg} must hold str special tokens, got {bad!r}")
        allowed = frozenset(self._special_tokens if allowed_special == "all" else allowed_special)
        if disallowed_special == "all":
            disallowed = frozenset(self._special_tokens) - allowed
        else:
            disallowed = frozenset(disallowed_special)
        return frozenset(allowed & self._special_tokens.keys()), disallowed

    def _segments(self, buf: bytes, allowed: frozenset) -> np.ndarray:
        """Rows ``(start, end, special_id)`` over the UTF-8 bytes: the allowed special tokens found in
        `buf` (their id), and the ordinary text between them (-1). Both encoding paths start here."""
        present = frozenset(t for t in allowed if t.encode("utf-8") in buf) if allowed else None
        if not present:  # the common case, on every call: one row, built without a nested list
            one = np.empty((1, 3), np.int64)
            one[0] = 0, len(buf), -1
            return one
        rows, start = [], 0
        for m in pretokenize.special_token_regex_bytes(present).finditer(buf):
            rows += [(start, m.start(), -1), (m.start(), m.end(), self._special_tokens[m.group().decode()])]
            start = m.end()
        rows.append((start, len(buf), -1))
        return np.array(rows, np.int64)

    def _run_kernel(self, buf: UTF8, segments: np.ndarray, scan: bool) -> np.ndarray:
        """One numba call for the whole text (see `npgpt.bpe.merge_kernels.encode_segments`): the ids,
        of `token_dtype`, as a view of a buffer that may be larger than they are."""
        merge = _kernels or _merge()  # (no calls once loaded: a 50-character encode takes 3.5 us in all)
        t = self._tables or self._get_tables()
        out = np.empty(len(buf) + len(segments) + merge.OUT_SLACK, t.id_dtype)
        if segments is not _WHOLE_TEXT:  # (read-only already; setting a flag costs a third of a µs)
            segments.flags.writeable = False  # always the same array type for numba: one compiled kernel, not two
        try:
            usual = self._works.pop()  # atomic under the GIL: no two calls get the same
        except IndexError:
            usual = merge.scratch(merge.SCRATCH), np.zeros(3, np.int64)
        work, state = usual  # state: the kernel's [row, position, ids written], zeros at first
        cache = self._caches.lend()
        try:
            while stop := merge.encode_segments(np.frombuffer(buf, np.uint8), segments, scan, char_classes(),
                                                t.byte_ids, t.pairs, t.joinable, cache.arrays, work, state, out):
                if stop == -1:  # the cache is full: go on with it emptied, or with another
                    cache = self._caches.full(cache)
                elif stop < 0:
                    raise AssertionError("encode kernel: output array too small or of the wrong dtype")
                else:  # a piece longer than the usual work space: go on with more
                    work = merge.scratch(stop)
        finally:
            self._caches.give_back(cache)
        n = state[2]
        state[0] = state[2] = 0  # zeros again for the next call (a kernel that is done leaves state[1] at 0)
        self._works.append(usual)  # (not after an error: then the state is dropped with it)
        return out[:n]

    def _plain_encode(self, buf: bytes, segments: np.ndarray) -> np.ndarray | None:
        """The plain tier: the textbook algorithm of `npgpt.reference` (`split`, then `bpe` on each piece),
        with a memo of pieces. None when a piece is longer than `PLAIN_MAX_PIECE` (the textbook merge
        loop is quadratic in a piece's length): the kernels take the whole text then.

        A new process's first texts run here, so that ``get_encoding("gpt2").encode(s)`` does not wait
        ~0.5 s for numba and the kernels' tables; both tiers give the same ids (a test holds them equal).
        """
        if self._plain_ranks is None:  # no merge repeats (`check_vocabulary`), so each pair has one rank
            self._plain_ranks = dict(zip(self._merges, range(len(self._merges)), strict=True))
        ranks, memo, encoder = self._plain_ranks, self._plain_memo, self._encoder
        ids: list[int] = []
        for start, end, special in segments.tolist():
            if special >= 0:
                ids.append(special)
                continue
            # Rows start and end on character boundaries (specials are cut out whole), so this decodes.
            for piece in self._regex.findall(buf[start:end].decode("utf-8")):
                b = piece.encode("utf-8")
                got = memo.get(b)
                if got is None:
                    if len(b) > PLAIN_MAX_PIECE:
                        return None
                    got = memo[b] = [encoder[t] for t in reference.bpe(b, ranks)]
                ids += got
        return np.array(ids, self.token_dtype)

    def _text_rows(self, text: str, allowed: frozenset, disallowed: frozenset) -> tuple[bytes, np.ndarray]:
        """What every encode path starts from: the UTF-8 bytes of `text` (checked for disallowed special
        tokens) and its rows ``(start, end, special_id)`` (see `_segments`)."""
        text = _check_text(text)
        buf = to_utf8(text)
        if disallowed:
            # A long text is first searched for each token's first byte (memchr, 20x as fast as `in`);
            # on a short one that costs more than it saves (a 50-character encode is 3.5 us in all).
            check_disallowed(text, disallowed, buf if len(text) >= _LONG_TEXT else None)
        # No special token allowed: the whole text is one ordinary row (shared, read-only; a row may
        # end past the buffer, the kernel stops at its end), saving a small allocation per call.
        return buf, self._segments(buf, allowed) if allowed else _WHOLE_TEXT

    def _long_rows(self, text: str, allowed: frozenset, disallowed: frozenset) -> tuple[UTF8, np.ndarray]:
        """`_text_rows` for the kernels: the UTF-8 of a long text that is not ASCII is made by
        `npgpt.bpe.utf8_kernels.utf8_of_str`, which is faster than ``str.encode`` on the corpus (2.7 ms
        against 3.8 for its four such documents: 1.2 against 1.9 on the Russian one) and releases the
        GIL, which the threads of `encode_batch_to_numpy` need (which uses it on one thread too). ASCII
        keeps ``str.encode``: CPython stores it as its own UTF-8, a copy. The text has passed `_check_text`.

        The bytes come as a read-only memoryview of the kernel's array: indexing it gives ints, as bytes
        does, and read-only, so that the encode kernel sees the array type it always sees (a writable
        one would compile it a second time).
        """
        if len(text) >= _LONG_TEXT and self._scanned and not allowed and not text.isascii():
            arr, n = _utf8_kernels().utf8_of_str(text)
            if n >= 0:  # (n < 0: a surrogate; `_text_rows` repairs it as tiktoken does, in Python)
                if disallowed:  # (searched in the array: without the GIL, see `check_disallowed`)
                    check_disallowed(text, disallowed, arr[:n])
                return memoryview(arr[:n]).toreadonly(), _WHOLE_TEXT
        return self._text_rows(text, allowed, disallowed)

    def _encode(self, text: str, allowed: frozenset, disallowed: frozenset, rows=None) -> np.ndarray:
        """The ids of `text`; `rows` is how its UTF-8 and rows are made (`_text_rows`, or `_long_rows`
        for a batch: one encode keeps ``str.encode``, so that a first encode on a new machine does
        not compile `utf8_of_str` too, which took it from 9.3 to 10.5 s)."""
        buf, segments = (rows or self._text_rows)(text, allowed, disallowed)
        if self._tables is None and len(buf) <= self._plain_budget:  # the plain tier, until it has done its share
            self._plain_budget -= len(buf)
            ids = self._plain_encode(buf, segments)
            if ids is not None:
                return ids
            self._plain_budget = 0  # a long piece: the kernels from now on
        if self._scanned:  # GPT-2's pattern: the numba scanner cuts the ordinary segments itself
            return self._run_kernel(buf, segments, True)
        return self._run_kernel(*pretokenize.regex_rows(buf, segments, self._pat_str), False)

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode `text`, treating special tokens as ordinary text.

        >>> enc.encode_ordinary("hello world")
        [31373, 995]
        """
        return self._encode(text, frozenset(), frozenset()).tolist()

    def encode(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """Encode `text` into token ids.

        Special tokens are refused by default, as in tiktoken: text that spells a special token is
        often user input that should not get the powers of one.

        Parameters
        ----------
        allowed_special : "all" or set of str
            Special tokens to encode as their special id when they appear in `text`.
        disallowed_special : "all" or set of str
            Special tokens whose appearance raises ValueError. ``"all"`` means every special token
            not in `allowed_special`; pass ``()`` to encode them as ordinary text instead.

        Examples
        --------
        >>> enc.encode("hello <|endoftext|>", allowed_special="all")
        [31373, 220, 50256]
        >>> enc.encode("<|endoftext|>", disallowed_special=())
        [27, 91, 437, 1659, 5239, 91, 29]
        """
        return self._encode(text, *self._special_sets(allowed_special, disallowed_special)).tolist()

    def encode_to_numpy(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> np.ndarray:
        """Like `encode`, as a NumPy array: uint16 when every id fits (GPT-2), else uint32.

        >>> enc.encode_to_numpy("hello world")
        array([31373,   995], dtype=uint16)
        """
        ids = self._encode(text, *self._special_sets(allowed_special, disallowed_special))
        return ids.astype(self.token_dtype)

    @property
    def token_dtype(self) -> np.dtype:
        """The smallest unsigned dtype that holds every id: uint16 for GPT-2 (`npgpt.token_files.compact_dtype`)."""
        return self._token_dtype

    def encode_single_token(self, text_or_bytes: str | bytes) -> int:
        """The id of a text or bytes that is exactly one token (special tokens included).

        Raises KeyError when it is not a single token, and UnicodeEncodeError for a text with a
        surrogate (which has no UTF-8 form), as tiktoken does.

        >>> enc.encode_single_token(" the"), enc.encode_single_token("<|endoftext|>")
        (262, 50256)
        """
        if isinstance(text_or_bytes, str):
            if text_or_bytes in self._special_tokens:
                return self._special_tokens[text_or_bytes]
            key = _piece_utf8(text_or_bytes, "encode_single_token")
        elif isinstance(text_or_bytes, (bytes, bytearray)):
            key = bytes(text_or_bytes)
        else:
            raise TypeError(f"expected str or bytes, got {type(text_or_bytes).__name__}")
        found = self._encoder.get(key)
        if found is None:
            found = self._special_by_bytes.get(key)
        if found is None:
            raise KeyError(f"{text_or_bytes!r} is not a single token of {self!r}")
        return found

    def encode_single_piece(self, text_or_bytes: str | bytes) -> list[int]:
        """BPE of `text_or_bytes` as one piece: no pre-tokenization, no special tokens (as tiktoken).

        The text is taken as it is: a surrogate, which `encode` repairs, is a UnicodeEncodeError here,
        as in tiktoken.

        >>> enc.encode_single_piece("hello world"), enc.encode_single_piece("hello world, it is me")
        ([31373, 995], [31373, 995, 11, 340, 318, 502])
        """
        if isinstance(text_or_bytes, str):
            buf = _piece_utf8(text_or_bytes, "encode_single_piece")
        elif isinstance(text_or_bytes, (bytes, bytearray)):
            buf = bytes(text_or_bytes)
        else:
            raise TypeError(f"expected str or bytes, got {type(text_or_bytes).__name__}")
        if not buf:
            return []
        return self._run_kernel(buf, np.array([[0, len(buf), -1]], np.int64), False).tolist()

    def encode_with_unstable(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> tuple[list[int], list[list[int]]]:
        """Stable tokens, and the token sequences the text's unstable end could become (as tiktoken).

        The last piece of `text` (and white space before it) may encode differently once more text
        follows, so it is left out of the stable tokens. The completions are every token that starts
        with those bytes, and the start of the encoding of those bytes followed by any token that
        could complete them -- tiktoken's own brute-force rule, for prompts that end mid-word. In
        no particular order. Like tiktoken's, this API is itself considered unstable.

        >>> stable, completions = enc.encode_with_unstable("hello wor")
        >>> stable, [266, 419] in completions
        ([31373], True)
        """
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        tokens = self._encode(text, allowed, disallowed).tolist()
        buf = to_utf8(text)
        segments = self._segments(buf, allowed)
        if not tokens or segments[-1, 2] >= 0:  # empty, or ends with a special token: all stable
            return tokens, []
        last = segments[-1]
        tail = buf[last[0] : last[1]].decode("utf-8")
        pieces = pretokenize.split(tail, self._pat_str)
        n_last = len(self.encode_single_piece(pieces[-1])) if pieces else 0
        is_space = [all(c in b" \n\t" for c in self._decode_list[t] or b"-") for t in tokens]
        if n_last and is_space[-n_last]:
            while n_last < len(tokens) and is_space[-n_last - 1]:
                n_last += 1
        unstable = b"".join(self._decode_list[t] or b"" for t in tokens[len(tokens) - n_last :])
        stable = tokens[: len(tokens) - n_last]
        return stable, [list(c) for c in self._completions(unstable)]

    def _completions(self, unstable: bytes) -> set[tuple[int, ...]]:
        out: set[tuple[int, ...]] = set()
        if not unstable:
            return out
        sorted_tokens = self._sorted_token_bytes()

        def starting_with(prefix: bytes) -> Iterator[bytes]:
            k = bisect.bisect_left(sorted_tokens, prefix)
            while k < len(sorted_tokens) and sorted_tokens[k].startswith(prefix):
                yield sorted_tokens[k]
                k += 1

        out.update((self._encoder[t],) for t in starting_with(unstable))
        for i in range(1, len(unstable)):
            prefix, suffix = unstable[:i], unstable[i:]
            for t in starting_with(suffix):
                possibility = prefix + t
                try:
                    ids = self.encode_ordinary(possibility.decode("utf-8"))
                except UnicodeDecodeError:
                    ids = self.encode_single_piece(possibility)
                seq, n = [], 0
                for token in ids:
                    seq.append(token)
                    n += len(self._decode_list[token] or b"")
                    if n >= len(unstable):
                        break
                out.add(tuple(seq))
        last = unstable.decode("utf-8", "replace")[-1:]
        width = len(last.encode("utf-8")) if last != "\ufffd" else 1
        if len(unstable) > 1 and len(unstable) > width and last.isspace():
            out.add(tuple(self.encode_single_piece(unstable[:-width]) + self.encode_single_piece(unstable[-width:])))
        return out

    def _sorted_token_bytes(self) -> list[bytes]:
        if self._sorted_tokens is None:
            self._sorted_tokens = sorted(self._encoder)
        return self._sorted_tokens

    def is_special_token(self, token: int) -> bool:
        """Whether `token` is the id of a special token.

        >>> enc.is_special_token(50256), enc.is_special_token(262)
        (True, False)
        """
        return token in self._special_ids

    def encode_batch(
        self,
        text: Sequence[str],
        *,
        num_threads: int = 8,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[list[int]]:
        """Encode many texts, in threads; results in input order.

        >>> enc.encode_batch(["hello", "world"])
        [[31373], [6894]]
        """
        sets = self._special_sets(allowed_special, disallowed_special)
        return self._map(lambda t: self._encode(t, *sets).tolist(), text, num_threads)

    def encode_ordinary_batch(self, text: Sequence[str], *, num_threads: int = 8) -> list[list[int]]:
        """`encode_ordinary` of many texts, in threads; results in input order."""
        empty: frozenset[str] = frozenset()
        return self._map(lambda t: self._encode(t, empty, empty).tolist(), text, num_threads)

    def encode_batch_to_numpy(
        self,
        text: Sequence[str],
        *,
        num_threads: int = 8,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[np.ndarray]:
        """`encode_to_numpy` of many texts, in threads; results in input order.

        The fastest way to encode a corpus: the kernel releases the GIL, and no Python list of ids
        is built, so threads scale with the cores. Texts are not handed to the threads whole: the
        longer ones are cut into chunks that encode apart (`_balanced`), so that one long text does
        not keep one thread busy while the others wait. The ids are exactly those of one thread.

        >>> [a.tolist() for a in enc.encode_batch_to_numpy(["hello", "world"])]
        [[31373], [6894]]
        """
        sets = self._special_sets(allowed_special, disallowed_special)
        dtype = self.token_dtype
        if not self._scanned:  # custom patterns: the regex module cuts the pieces, under the GIL anyway
            return self._map(lambda t: self._encode(t, *sets).astype(dtype), text, num_threads)
        return self._balanced(text, *sets, num_threads)

    def _balanced(self, items: Sequence[str], allowed: frozenset, disallowed: frozenset,
                  num_threads: int) -> list[np.ndarray]:
        """`encode_batch_to_numpy` on `num_threads` threads, the work shared out in chunks of bytes.

        Handing each thread whole texts in order cannot beat the longest text: on bench/encode.py's
        six documents, where one takes 13 ms of 33, two threads reach 1.7x at best. So the texts are
        cut into chunks that encode apart (`_chunks`), and the threads take the chunks from a shared
        queue (`_Batch`); a text's ids are its chunks' ids concatenated.
        """
        texts = [_check_text(t) for t in self._batch_items(items, num_threads)]
        dtype = self.token_dtype
        # Less text than two chunks: starting threads would cost more (~0.1 ms each) than they save.
        total = sum(map(len, texts))
        if num_threads == 1 or total < 2 * _MIN_CHUNK:
            return [self._encode(t, allowed, disallowed, self._long_rows).astype(dtype) for t in texts]
        # no more threads than there can be chunks (num_threads=1000 would start 999 threads for nothing)
        threads = int(min(num_threads, len(texts) + total // _MIN_CHUNK))
        return _Batch(self, texts, allowed, disallowed, threads).run()

    @staticmethod
    def _batch_items(items, num_threads: int) -> list:
        """The texts of a batch call, as a list; the mistakes every batch method refuses the same way."""
        if isinstance(items, str):
            raise TypeError("expected a list of str, got a single str (use encode for one text)")
        if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive int, got {num_threads!r}")
        return list(items)

    @staticmethod
    def _chunks(buf: UTF8, rows: np.ndarray, later: int, num_threads: int) -> Iterator[np.ndarray]:
        """`rows` of `buf` in groups of about ``max(_MIN_CHUNK, work left / (2 * num_threads))`` bytes,
        an ordinary row cut where encoding can be cut (`npgpt.bpe.pretokenize.safe_cut_utf8`). The work
        left is this text's bytes not yet given out plus `later`, the length of the texts after it."""
        chunk: list[tuple[int, int, int]] = []
        size = 0  # bytes in `chunk`
        for start, end, special in rows.tolist():
            if special >= 0:  # a special token: one id, never cut
                chunk.append((start, end, special))
                continue
            end = min(end, len(buf))  # (`_WHOLE_TEXT`'s row ends past any text)
            while True:
                room = max(_MIN_CHUNK, (len(buf) - start + later) // (2 * num_threads)) - size
                if end - start <= room:
                    chunk.append((start, end, -1))
                    size += end - start
                    break
                cut = Encoding._cut(buf, start, start + room, end) if room > 0 else 0
                if cut:
                    chunk.append((start, cut, -1))
                    start = cut
                elif not chunk:  # no cut in reach: a piece longer than a chunk, encoded whole
                    chunk.append((start, end, -1))
                    size += end - start
                    break
                yield np.array(chunk, np.int64)
                chunk, size = [], 0
        if chunk:
            yield np.array(chunk, np.int64)

    @staticmethod
    def _cut(buf: UTF8, start: int, limit: int, end: int) -> int:
        """`npgpt.bpe.pretokenize.safe_cut_utf8` of the row ``buf[start:end]`` at `limit`, looking no
        further than a few bytes past `limit` (a cut safe whatever follows them is safe in the row):
        when the local rule finds nothing, the scanner then reads the chunk, not the rest of the text."""
        stop = min(end, limit + 8)
        while stop < end and buf[stop] & 0xC0 == 0x80:  # the end of a character
            stop += 1
        return pretokenize.safe_cut_utf8(buf, limit, start, stop)

    def _encode_rows(self, buf: UTF8, rows: np.ndarray) -> np.ndarray:
        """One kernel call on the rows of `buf`: the ids of a chunk. The kernel reads only
        ``buf[rows[0, 0]:rows[-1, 1]]``, so only that is passed, as a view (copying the bytes costs
        more than one would think: fresh pages) and so that the output buffer, one id per byte, is
        sized to the chunk, not to the whole text."""
        first, last = int(rows[0, 0]), int(rows[-1, 1])
        if first or last < len(buf):
            view = memoryview(buf)[first:last]
            return self._run_kernel(view, rows - np.array([first, first, 0], np.int64), True)
        return self._run_kernel(buf, rows, True)

    @staticmethod
    def _joined(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
        """A text's ids from its chunks' ids: one new array of `dtype`, so no chunk's (larger) output
        buffer outlives the call."""
        if len(parts) == 1:
            return parts[0].astype(dtype)
        return np.concatenate(parts).astype(dtype, copy=False)

    @staticmethod
    def _map(fn, items, num_threads: int) -> list:
        items = Encoding._batch_items(items, num_threads)
        if num_threads == 1 or len(items) <= 1:
            return [fn(t) for t in items]
        with ThreadPoolExecutor(min(num_threads, len(items))) as pool:
            return list(pool.map(fn, items))

    def encode_iterable(
        self,
        texts: Iterable[str],
        *,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
        chunk_chars: int = 1 << 16,
    ) -> Iterator[int]:
        """Encode a stream of text (a file object, a generator of str) lazily, in bounded memory.

        The ids are exactly those of ``encode("".join(texts))`` (see `chunk_text`).

        >>> list(enc.encode_iterable(["hel", "lo wor", "ld"]))
        [31373, 995]
        """
        allowed, _ = self._special_sets(allowed_special, disallowed_special)
        for chunk in self.chunk_text(texts, allowed_special=allowed_special, disallowed_special=disallowed_special,
                                     chunk_chars=chunk_chars):
            yield from self._encode(chunk, allowed, frozenset()).tolist()

    def chunk_text(
        self,
        texts: Iterable[str],
        *,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
        chunk_chars: int = 1 << 16,
    ) -> Iterator[str]:
        """Re-cut a stream of text into chunks of about `chunk_chars` characters that encode apart.

        Encoding the chunks one by one and concatenating the ids gives exactly the ids of the whole
        text: a chunk ends only where no later text could change a pre-token (nor split a special
        token). Disallowed special tokens raise ValueError, as in `encode`. This is what lets
        `encode_iterable` and ``npgpt tokenize`` stream files of any size, and encode chunks in
        parallel (`encode_batch_to_numpy`).

        >>> list(enc.chunk_text(["hello world, it is me. ", "How are you doing today, my friend?"], chunk_chars=16))
        ['hello world', ', it is me. How are you doing today', ', my friend?']
        """
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        # a held-back tail must cover every special token, allowed or not, so none is seen in halves
        return pretokenize.chunk_text(texts, pattern=self._pat_str, allowed_special=allowed,
                                      disallowed_special=disallowed or frozenset(), chunk_chars=chunk_chars)

    # ----------------------------------------------------------------------------------------
    # decoding

    def _bad_token(self, tokens: list, exc: Exception) -> Exception:
        for k, t in enumerate(tokens):
            if not isinstance(t, (int, np.integer)):  # (a bool is an int here, as in decoding and tiktoken)
                return TypeError(f"token ids must be integers, got {t!r} at position {k}")
            if not 0 <= t <= self.max_token_value or self._decode_list[t] is None:
                return InvalidTokenError(
                    f"token id {t} at position {k} is not in the vocabulary of {self!r} "
                    f"(ids are 0..{self.max_token_value})"
                )
        return exc

    @staticmethod
    def _as_list(tokens) -> list:
        if isinstance(tokens, np.ndarray):
            if tokens.dtype.kind not in "iu":
                raise TypeError(f"token ids must be integers, got an array of {tokens.dtype}")
            return np.asarray(tokens).ravel().tolist()  # (asarray: np.matrix stays 2-D under ravel)
        if isinstance(tokens, (str, bytes)):
            raise TypeError(f"expected a sequence of token ids, got {type(tokens).__name__}")
        return tokens if isinstance(tokens, list) else list(tokens)

    def decode_tokens_bytes(self, tokens: Sequence[int]) -> list[bytes]:
        """The bytes of each token.

        >>> enc.decode_tokens_bytes([31373, 995])
        [b'hello', b' world']
        """
        tokens = self._as_list(tokens)
        table = self._decode_list
        try:
            if tokens and min(tokens) < 0:
                raise IndexError
            out = [table[t] for t in tokens]
            if None in out:
                raise IndexError
            return out
        except (IndexError, TypeError) as e:
            raise self._bad_token(tokens, e) from None

    def decode_bytes(self, tokens: Sequence[int]) -> bytes:
        """Concatenated bytes of the tokens (no UTF-8 decoding).

        Short inputs join the tokens' bytes in Python; long ones (or arrays) go through a numba
        kernel over one flat table of every token's bytes, with no Python object per token.

        >>> enc.decode_bytes([31373, 995])
        b'hello world'
        """
        if not self._decodes_long(tokens):
            return b"".join(self.decode_tokens_bytes(tokens))
        out, n = self._decode_long(tokens)
        return out[:n].tobytes()

    @staticmethod
    def _decodes_long(tokens) -> bool:
        """Whether `decode_bytes` takes the kernel: lists and arrays of 1024 ids or more. Fewer are
        joined in Python, faster than a kernel call (and in a new process, than loading numba)."""
        return (isinstance(tokens, list) and len(tokens) >= 1024) or (isinstance(tokens, np.ndarray)
                                                                        and tokens.size >= 1024)

    def _decode_long(self, tokens: Sequence[int] | np.ndarray) -> tuple[np.ndarray, int]:
        """The kernel path of `decode_bytes`: ``(buffer, n)``, the bytes being ``buffer[:n]``."""
        merge = _merge()
        table = self._decode_flat
        if table is None:
            table = self._decode_flat = merge.decode_table(self._decode_list)
        where, pool, shift = table
        if isinstance(tokens, np.ndarray) and (tokens.dtype.kind not in "iu" or tokens.ndim != 1):
            tokens = self._as_list(tokens)  # refuses other dtypes, naming them; flattens
        # Four bytes per id is more than most text needs (GPT-2: ~2-4); pages never written are never
        # touched, so the over-allocation costs no memory.
        out = np.empty(max(1 << 16, 4 * len(tokens)), np.uint8)
        n = 0
        step = 1 << 16  # ids go to the kernel 64k at a time: 512 kB of int64, still in the cache when it reads them
        for start in range(0, len(tokens), step):
            chunk = tokens[start : start + step]
            try:  # array.array takes exact ints only (floats and str raise), and is faster than np.asarray
                ids = (np.frombuffer(array.array("q", chunk), np.int64) if isinstance(chunk, list)
                       else np.asarray(chunk))
            except (OverflowError, ValueError, TypeError) as e:  # ints past int64, floats, odd lists
                raise self._bad_token(self._as_list(tokens), e) from None
            ids = ids.astype(np.int64, copy=False)  # one compiled kernel, whatever the caller's dtype
            done = 0
            while done < len(ids):
                k, n = merge.decode_into(ids[done:], where, pool, shift, out, n)
                if k < 0:
                    raise self._bad_token(self._as_list(tokens), IndexError(start + done - 1 - k))
                done += k
                if done < len(ids):  # out is full: double it
                    grown = np.empty(2 * len(out), np.uint8)
                    grown[:n] = out[:n]
                    out = grown
        return out, n

    def decode(self, tokens: Sequence[int], errors: str = "replace") -> str:
        """Decode ids to text. A token boundary can fall inside a UTF-8 character; bytes that do not
        form valid UTF-8 become U+FFFD with ``errors="replace"`` and raise UnicodeDecodeError with
        ``errors="strict"``.

        >>> enc.decode([31373, 995])
        'hello world'
        """
        if not self._decodes_long(tokens):
            return self.decode_bytes(tokens).decode("utf-8", errors=errors)
        out, n = self._decode_long(tokens)
        return str(out[:n].data, "utf-8", errors)  # decoded from the buffer, not from a copy of it

    def decode_single_token_bytes(self, token: int) -> bytes:
        """The bytes of one token.

        >>> enc.decode_single_token_bytes(262)
        b' the'
        """
        return self.decode_tokens_bytes([token])[0]

    def decode_with_offsets(self, tokens: Sequence[int]) -> tuple[str, list[int]]:
        """Decode, and give the character offset in the text where each token starts.

        A token that starts in the middle of a character is given that character's offset.

        >>> enc.decode_with_offsets([31373, 995])
        ('hello world', [0, 5])
        """
        token_bytes = self.decode_tokens_bytes(tokens)
        text_len = 0
        offsets = []
        for b in token_bytes:
            # UTF-8 continuation bytes (0b10xxxxxx) do not start a character
            offsets.append(max(0, text_len - (0x80 <= b[0] < 0xC0)))
            text_len += sum(1 for c in b if not 0x80 <= c < 0xC0)
        return b"".join(token_bytes).decode("utf-8", errors="strict"), offsets

    def decode_batch(
        self, batch: Sequence[Sequence[int]], *, errors: str = "replace", num_threads: int = 8
    ) -> list[str]:
        """`decode` of many token lists; results in input order."""
        return self._map(functools.partial(self.decode, errors=errors), batch, num_threads)

    def decode_bytes_batch(self, batch: Sequence[Sequence[int]], *, num_threads: int = 8) -> list[bytes]:
        """`decode_bytes` of many token lists; results in input order.

        >>> enc.decode_bytes_batch([[31373], [995]])
        [b'hello', b' world']
        """
        return self._map(self.decode_bytes, batch, num_threads)

    # ----------------------------------------------------------------------------------------
    # files and pickling

    def save(self, directory: str | os.PathLike, format: Literal["gpt2", "tiktoken"] = "gpt2") -> tuple[Path, ...]:
        """Write the vocabulary to `directory`; return the paths of its files, for `from_files`.

        ``"gpt2"``: ``vocab.json`` + ``merges.txt`` (readable by Hugging Face tokenizers and by
        `from_files`). ``"tiktoken"``: ``<name>.tiktoken`` (readable by ``tiktoken.load``; special
        tokens are not part of that format, pass them to tiktoken again). Neither format says which
        tokens are special, so they are also written beside them, as JSON (``special_tokens.json``,
        or ``<name>.special_tokens.json``), which `from_files` reads back. `directory` is made if
        missing; when it, or a folder above it, is a file, NotADirectoryError names it. Each file is
        written to a temporary name and renamed over an earlier one only when complete.
        """
        return vocab_files.write_files(directory, format, self.name, self._encoder, self._merges, self._special_tokens)

    def __getstate__(self) -> dict:
        vocab = {i: b for b, i in self._encoder.items()}
        return {"name": self.name, "vocab": vocab, "merges": self._merges,
                "special_tokens": self._special_tokens, "pattern": self._pat_str}

    def __setstate__(self, state: dict) -> None:
        Encoding.__init__(self, state["vocab"], state["merges"], state["special_tokens"],
                          pattern=state["pattern"], name=state["name"])


class _Batch:
    """One `Encoding.encode_batch_to_numpy` call on several threads: texts to prepare, a queue of chunks.

    Every thread, the caller's included, loops: take the next chunk from the queue and encode it; when
    the queue is empty, take the next text, prepare it (UTF-8, special tokens, cut into chunks), queue
    its chunks and encode the first. The thread that encodes a text's last chunk joins the text's ids.
    The kernels release the GIL, and so does most of preparing a long text (`Encoding._long_rows`);
    cutting it into chunks holds it. The threads prepare the texts themselves rather than leave it to
    one planner thread, because a planner holding the GIL text after text would keep every thread that
    comes back from a kernel waiting for it.

    Chunk sizes shrink as the work left shrinks (guided self-scheduling): big chunks cost little
    Python, and the small last ones leave no thread idle for long at the end. An error in a text (a
    disallowed special token) stops the work and is raised; when several texts have one, the first
    text's, as on one thread.
    """

    def __init__(self, enc: Encoding, texts: list[str], allowed: frozenset, disallowed: frozenset, threads: int):
        self.enc, self.texts, self.allowed, self.disallowed, self.threads = enc, texts, allowed, disallowed, threads
        self.later = [0] * len(texts)  # characters in the texts after each one (for chunk sizes only)
        for i in range(len(texts) - 2, -1, -1):
            self.later[i] = self.later[i + 1] + len(texts[i + 1])
        self.bufs: list[UTF8] = [b""] * len(texts)
        self.parts: list[list[np.ndarray]] = [[] for _ in texts]  # each text's ids, chunk by chunk
        self.todo = [0] * len(texts)  # each text's chunks not yet encoded
        self.results: list[np.ndarray] = [np.zeros(0, enc.token_dtype)] * len(texts)
        self.queue: deque[tuple[int, int, np.ndarray]] = deque()  # (text, chunk number, rows)
        self.next_text = 0
        self.preparing = 0  # threads cutting a text: chunks may still come
        self.lock = threading.Lock()
        self.more = threading.Condition(self.lock)  # chunks were queued, or a text was prepared
        self.errors: list[tuple[int, BaseException]] = []

    def run(self) -> list[np.ndarray]:
        """The ids of every text, encoded on `threads` threads (this one and ``threads - 1`` new ones)."""
        helpers = [threading.Thread(target=self._work, name=f"npgpt-encode-{k}") for k in range(self.threads - 1)]
        for t in helpers:
            t.start()
        try:
            self._work()
        except BaseException as e:  # Ctrl-C: the helpers see it and stop after their chunk
            self._fail(len(self.texts), e)
            raise
        finally:
            for t in helpers:
                t.join()
        if self.errors:
            raise min(self.errors, key=lambda e: e[0])[1]
        return self.results

    def _fail(self, i: int, e: BaseException) -> None:
        with self.more:
            self.errors.append((i, e))
            self.more.notify_all()

    def _work(self) -> None:
        try:
            while (job := self._take()) is not None:
                self._encode(*job)
        except Exception as e:  # not the text's fault (MemoryError...): stop everyone, raise it in the caller
            self._fail(len(self.texts), e)

    def _take(self) -> tuple[int, int, np.ndarray] | None:
        """The next chunk to encode, preparing the next text when no chunk is queued; None when done.

        With no chunk queued and no text left, a thread waits while another is still cutting a text
        (the last text's chunks are for everyone), and stops only when no more can come.
        """
        while True:
            with self.more:
                while not self.errors and not self.queue and self.next_text == len(self.texts) and self.preparing:
                    self.more.wait()
                if self.errors:
                    return None
                if self.queue:
                    return self.queue.popleft()
                if self.next_text == len(self.texts):
                    return None
                i = self.next_text
                self.next_text += 1
                self.preparing += 1
            try:
                return self._prepare(i)
            except (TypeError, ValueError) as e:  # the text's own fault (a disallowed special token)
                self._fail(i, e)
            finally:
                with self.more:
                    self.preparing -= 1
                    self.more.notify_all()

    def _prepare(self, i: int) -> tuple[int, int, np.ndarray]:
        """Cut text `i` into chunks; queue all but the first, which is returned for this thread."""
        buf, rows = self.enc._long_rows(self.texts[i], self.allowed, self.disallowed)
        chunks = list(Encoding._chunks(buf, rows, self.later[i], self.threads))
        self.bufs[i] = buf
        self.parts[i] = [self.results[i]] * len(chunks)
        self.todo[i] = len(chunks)
        with self.more:
            self.queue.extend((i, k, c) for k, c in enumerate(chunks[1:], 1))
            self.more.notify_all()
        return i, 0, chunks[0]

    def _encode(self, i: int, k: int, rows: np.ndarray) -> None:
        """Encode chunk `k` of text `i`; after its last chunk, join the text's ids and let its bytes go."""
        self.parts[i][k] = self.enc._encode_rows(self.bufs[i], rows)
        with self.lock:
            self.todo[i] -= 1
            last = self.todo[i] == 0
        if last:
            self.results[i] = Encoding._joined(self.parts[i], self.enc.token_dtype)
            self.parts[i], self.bufs[i] = [], b""
