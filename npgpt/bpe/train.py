"""Training a byte-level BPE vocabulary: `train_bpe`.

Byte-pair encoding learns its merges from text (chapter 2.5; Sennrich et al. 2016, GPT-2):

1. cut the text at special tokens (they are never merged across, and not counted as text), then
   into pre-tokens with the pattern (`npgpt.bpe.pretokenize`), and count each distinct pre-token;
2. start every pre-token as a sequence of single bytes (ids 0-255, in byte order);
3. find the adjacent pair that occurs most often over all pre-tokens, weighted by their counts; on a
   tie take the greatest pair, comparing ``(left_bytes, right_bytes)`` as Python compares tuples
   of bytes; merge it everywhere (left to right, without overlaps) into a new token; repeat.

It stops when the vocabulary -- 256 bytes, the merged tokens, the special tokens -- reaches
`vocab_size`, or when no pair occurs `min_frequency` times. A merge whose bytes equal an existing
token's reuses that token's id, and a pair is merged at most once. Ids: the bytes, then the merged
tokens in the order learned, then the special tokens.

Recounting every pair after every merge, as the textbook does (`npgpt.reference.train`), costs
minutes. Here the counting is the numba scanner feeding a numba hash table of byte strings, and the
merging updates only the words that hold the merged pair (`npgpt.bpe.train_kernels`). No Python
object is made per pre-token: files are read as bytes and the counts stay in NumPy arrays.

Example
-------
>>> enc = train_bpe(["low lower lowest newer newest"] * 10, vocab_size=262, progress=False)
>>> enc.merges[:3]
[(b'w', b'e'), (b'l', b'o'), (b'we', b's')]
>>> enc.encode("lowest newest")
[257, 259, 32, 110, 101, 259]
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from npgpt.bpe import pretokenize, vocab_files
from npgpt.bpe.encoding import Encoding
from npgpt.bpe.pretokenize import GPT2_PATTERN, compile_pattern
from npgpt.token_files import _decode_error, progress_bar, regular_file

__all__ = ["count_pretokens", "train_bpe"]

READ_BYTES = 1 << 20  # bytes read from a file at a time
_SPARE = True  # the merge loop's arrays get room to spare when rebuilt (the tests turn it off: see `rebuild`)


# --------------------------------------------------------------------------------------------
# what to read


def _sources(texts: Any, files: Any) -> tuple[list[str | Path], int]:
    """The documents (str) and files (Path) to count, in order, and the total size of the files."""
    if isinstance(texts, (str, bytes, bytearray)):
        raise TypeError(f"texts must be an iterable of str documents, not one {type(texts).__name__} (to train on "
                        "one document pass [text]; to train on files pass files=[path, ...])")
    if isinstance(texts, os.PathLike):  # one Path: a file, unambiguously
        texts = [texts]
    sources: list[str | Path] = []
    for item in texts or ():
        if isinstance(item, os.PathLike):
            sources.append(Path(item))
        elif isinstance(item, str):
            sources.append(item)  # a str is a document, even when it looks like a path
        else:
            raise TypeError(f"texts must hold str documents (or Path objects), got {type(item).__name__}")
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    for f in files or ():
        if not isinstance(f, (str, os.PathLike)):
            raise TypeError(f"files must hold paths (str or Path), got {type(f).__name__}")
        sources.append(Path(f))
    size = sum(regular_file(s).stat().st_size if isinstance(s, Path) else len(s) for s in sources)
    return sources, size


def _blocks(path: Path, carry: Iterator[int], update) -> Iterator[bytes]:
    """The bytes of `path` in blocks of about READ_BYTES (more when the caller carries a long tail
    it cannot cut), checked to be UTF-8: a `npgpt.token_files.FileDecodeError` (a UnicodeDecodeError)
    names the file and the byte offset, as ``npgpt tokenize``'s does."""
    check = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # file offset of the next block
    with open(path, "rb") as f:
        while block := f.read(max(READ_BYTES, next(carry))):
            pending = len(check.getstate()[0])  # bytes of a character cut by the previous block
            try:
                check.decode(block)  # the str is dropped; this is the strict UTF-8 check
            except UnicodeDecodeError as e:
                raise _decode_error(path, e, e.object, 0, offset - pending + e.start) from None
            offset += len(block)
            update(len(block))
            yield block
    try:
        check.decode(b"", final=True)
    except UnicodeDecodeError as e:
        raise _decode_error(path, e, e.object, 0, offset - len(e.object) + e.start) from None


def _char_boundary(buf: bytes) -> int:
    """Length of the longest prefix of `buf` (valid UTF-8 so far) that ends on a whole character."""
    for back in range(1, min(4, len(buf)) + 1):
        b = buf[-back]
        if b < 0x80:
            return len(buf)
        if b >= 0xC0:  # a lead byte: its character is whole when it has all its continuation bytes
            width = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return len(buf) if back >= width else len(buf) - back
    return len(buf)


def _segments(buf: bytes, specials: re.Pattern | None, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the text between the special tokens that start before `limit`."""
    starts, ends, at = [], [], 0
    if specials is not None:
        for m in specials.finditer(buf):
            if m.start() >= limit:  # may be cut short by the end of the buffer: decided next time
                break
            starts.append(at)
            ends.append(m.start())
            at = m.end()
    starts.append(at)
    ends.append(len(buf))
    return np.array(starts, np.int64), np.array(ends, np.int64)


# --------------------------------------------------------------------------------------------
# counting


def _count_gpt2(words, source: str | Path, specials: re.Pattern | None, hold: int, update):
    """Count the GPT-2 pre-tokens of one source with the numba scanner; return the grown `words`.

    A file is read in blocks; each block is counted up to a safe cut (see `count_pieces`) and the
    rest is carried over to the next block. This small function is the only place that decides
    where a stream is cut.
    """
    from npgpt.bpe import train_kernels as k
    from npgpt.bpe.unicode_tables import char_classes

    classes = char_classes()
    if isinstance(source, str):
        raw = pretokenize.to_utf8(source)  # surrogates as tiktoken: pairs joined, lone ones U+FFFD
        update(len(source))
        starts, ends = _segments(raw, specials, len(raw))
        return k.count_pieces(words, np.frombuffer(raw, np.uint8), starts, ends, classes, len(raw), True)[0]
    carry = b""

    def carried() -> Iterator[int]:
        while True:
            yield len(carry)

    for block in _blocks(source, carried(), update):
        buf = carry + block
        # Decide only what the buffer's text decides: no special token may start in the last `hold`
        # bytes, and no character may be cut.
        limit = min(len(buf) - hold, _char_boundary(buf))
        starts, ends = _segments(buf, specials, limit)
        words, cut = k.count_pieces(words, np.frombuffer(buf, np.uint8), starts, ends, classes, limit, False)
        carry = buf[cut:]
    starts, ends = _segments(carry, specials, len(carry))
    return k.count_pieces(words, np.frombuffer(carry, np.uint8), starts, ends, classes, len(carry), True)[0]


def _count_regex(words, source: str | Path, specials: list[str], pattern: str, update):
    """Count the pre-tokens of a custom `pattern` (the `regex` module; files cut by `pretokenize.chunk_text`)."""
    from npgpt.bpe import train_kernels as k

    regex = compile_pattern(pattern)
    split = pretokenize.special_token_regex(frozenset(specials)) if specials else None
    if isinstance(source, str):
        chunks: Iterable[str] = [source]
        update(len(source))
    else:
        chunks = pretokenize.chunk_text(_text_blocks(source, update), pattern=pattern,
                                        allowed_special=frozenset(specials), chunk_chars=READ_BYTES)
    for chunk in chunks:
        for part in split.split(chunk) if split else [chunk]:
            # (a pattern that can match empty text, such as r"\w*", finds empty pieces: no pre-tokens, no pairs)
            pieces = [p.encode("utf-8", "surrogatepass") for p in regex.findall(part) if p]
            if pieces:
                bounds = np.zeros(len(pieces) + 1, np.int64)
                np.cumsum([len(p) for p in pieces], out=bounds[1:])
                words = k.count_spans(words, np.frombuffer(b"".join(pieces), np.uint8), bounds)
    return words


def _text_blocks(path: Path, update) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")()
    for block in _blocks(path, iter(lambda: 0, 1), update):
        yield decoder.decode(block)


def _count_all(texts: Any, files: Any, special_tokens: Iterable[str], pattern: str, num_threads: int | None,
               progress: bool | None):
    """Count the pre-tokens of every source into one `train_kernels.Words` (see `count_pretokens`)."""
    from npgpt.bpe import merge_kernels
    from npgpt.bpe import train_kernels as k

    merge_kernels.say_if_compiling(k.train_merges, "the trainer's kernels (about 25 s)")

    specials = _check_specials(special_tokens)
    compile_pattern(pattern)
    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                    or num_threads < 1):
        raise ValueError(f"num_threads must be a positive int or None (all cores), got {num_threads!r}")
    sources, total = _sources(texts, files)
    threads = min(num_threads or os.cpu_count() or 1, max(len(sources), 1))
    split = pretokenize.special_token_regex_bytes(frozenset(specials)) if specials else None
    hold = max((len(s.encode("utf-8")) for s in specials), default=1) - 1

    def count(todo: list[str | Path], update):
        words = k.new_words()
        for source in todo:
            if pattern == GPT2_PATTERN:
                words = _count_gpt2(words, source, split, hold, update)
            else:
                words = _count_regex(words, source, specials, pattern, update)
        return words

    with progress_bar(progress, total=total, unit="B", unit_scale=True, desc="counting") as update:
        if threads == 1:
            return count(sources, update)
        # Sources are shared out between threads, each with its own table; the tables are then added
        # up (the kernels release the GIL). A count does not depend on which thread saw the text.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(lambda i: count(sources[i::threads], update), range(threads)))
    words = parts[0]
    for other in parts[1:]:
        words = k.merge_counts(words, other)
    return words


def _check_specials(special_tokens: Iterable[str]) -> list[str]:
    if isinstance(special_tokens, str):
        raise TypeError(f"special_tokens must be a list of str, not the str {special_tokens!r}")
    specials = list(dict.fromkeys(special_tokens))
    for s in specials:
        if not isinstance(s, str):
            raise TypeError(f"special tokens must be str, got {s!r}")
        if len(vocab_files.special_token_bytes(s)) < 2:
            raise ValueError(f"special token {s!r} is {'empty' if not s else 'a single byte'}: byte-level BPE "
                             "already has every single byte as a token (ids 0-255); give special tokens of "
                             "two or more bytes, such as '<|endoftext|>'")
    return specials


def count_pretokens(texts: Iterable[str] | None = None, special_tokens: Iterable[str] = ("<|endoftext|>",), *,
                    files: Iterable[str | os.PathLike] | None = None, pattern: str = GPT2_PATTERN,
                    num_threads: int | None = None, progress: bool | None = None) -> dict[bytes, int]:
    """Count the distinct pre-tokens of `texts` and `files` (see `train_bpe` for the arguments):
    UTF-8 bytes -> occurrences. The plain twin is `npgpt.reference.count_pretokens`.

    The counting runs in numba over bytes; only this function's result is made of Python objects.

    >>> count_pretokens(["the cat, the hat<|endoftext|>the"], progress=False)
    {b'the': 2, b' cat': 1, b',': 1, b' the': 1, b' hat': 1}
    """
    words = _count_all(texts, files, special_tokens, pattern, num_threads, progress)
    n = int(words.used[0])
    raw = words.pool.tobytes()
    return {raw[a : a + b]: c for a, b, c in zip(words.start[:n].tolist(), words.length[:n].tolist(),
                                                  words.count[:n].tolist(), strict=True) if c}


# --------------------------------------------------------------------------------------------
# training


def train_bpe(texts: Iterable[str] | None = None, vocab_size: int | None = None,
              special_tokens: Iterable[str] = ("<|endoftext|>",), *, files: Iterable[str | os.PathLike] | None = None,
              pattern: str = GPT2_PATTERN, min_frequency: int = 1, num_threads: int | None = None,
              progress: bool | None = None) -> Encoding:
    """Learn a byte-level BPE vocabulary from documents and files; return it as an `Encoding`.

    Parameters
    ----------
    texts : iterable of str
        Documents, each a str (documents never merge across each other). A str is always text, even
        one that looks like a path; to train on files use `files` (a `pathlib.Path` in `texts` is
        also read as a file).
    vocab_size : int
        Size of the result, counting the 256 byte tokens, the merged tokens and the special tokens.
    special_tokens : iterable of str
        Cut out of the text before counting; they get the last ids. Each is two bytes or more.
    files : iterable of paths (str or Path)
        Files of UTF-8 text, read byte for byte (no newline translation: ``\r\n`` stays two bytes, as
        Hugging Face's and gigabpe's trainers read them) in blocks, in bounded memory. A file that is
        not UTF-8 raises UnicodeDecodeError naming the file and the byte offset; a missing one
        FileNotFoundError, before any work.
    pattern : str
        Pre-tokenization regex (default GPT-2's, run by the numba scanner; others by `regex`).
    min_frequency : int
        Stop when the best pair occurs fewer times (at least 1).
    num_threads : int
        Threads for counting, one source at a time each (default: all cores).
    progress : bool or None
        tqdm bars over the input bytes and the merges, on stderr: None on a terminal only, True always,
        False never (`npgpt.token_files.progress_bar`).

    The exact rules are in the module docstring. The result encodes, decodes and saves like any
    `Encoding`: ``.vocab``, ``.merges``, ``save(dir, format="gpt2" | "tiktoken")``.

    >>> enc = train_bpe(["aaab aaab aab"], vocab_size=259, special_tokens=["<|endoftext|>"], progress=False)
    >>> enc.merges, enc.special_tokens
    ([(b'a', b'a'), (b'aa', b'a')], {'<|endoftext|>': 258})
    >>> train_bpe(files=["no/such/file.txt"], vocab_size=300)
    Traceback (most recent call last):
    FileNotFoundError: no such file: no/such/file.txt
    """
    specials = _check_training(vocab_size, special_tokens, min_frequency)
    # The counts go straight in, held by no name here: train_from_counts frees them before the merge
    # loop's arrays are made, which lowers the peak memory by the table's size.
    return train_from_counts(_count_all(texts, files, specials, pattern, num_threads, progress), int(vocab_size or 0),
                             specials, pattern=pattern, min_frequency=int(min_frequency), progress=progress)


def _check_training(vocab_size: Any, special_tokens: Iterable[str], min_frequency: Any) -> list[str]:
    """Check `train_bpe`'s sizes before any work; return the special tokens as a list."""
    if vocab_size is None:
        raise TypeError("train_bpe() needs vocab_size")
    specials = _check_specials(special_tokens)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    if vocab_size < 256 + len(specials):
        raise ValueError(f"vocab_size={vocab_size} leaves no room: the 256 byte tokens and {len(specials)} "
                         f"special token(s) need {256 + len(specials)}")
    if vocab_size >= 2**31:
        raise ValueError(f"vocab_size={vocab_size} is too large (at most 2**31 - 1)")
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, (int, np.integer)) or min_frequency < 1:
        raise ValueError(f"min_frequency must be an int >= 1, got {min_frequency!r}")
    return specials


def train_from_counts(words: Any, vocab_size: int, specials: list[str], *, pattern: str = GPT2_PATTERN,
                      min_frequency: int = 1, progress: bool | None = None) -> Encoding:
    """The merge loop of `train_bpe`, on pre-tokens counted already (a `train_kernels.Words` table,
    as `_count_all` builds it, or as `npgpt.distributed` merges it from many machines' counts)."""
    from npgpt.bpe import train_kernels as k

    # No count reaches 2**62 (a corpus of exabytes), so a larger min_frequency means the same -- no merge --
    # and the kernels take it as an int64.
    min_frequency = min(int(min_frequency), 2**62)
    # The table's pool is already every word's bytes back to back: the merge loop's symbols. (Words
    # whose count went back to 0, taken back at a cut, are left out.) The table's index and columns
    # go before the symbols are made, and the pool after: one at a time, the peak memory is lower.
    n_words, n_sym = int(words.used[0]), int(words.used[1])
    keep = words.count[:n_words] > 0
    start, length, freq = words.start[:n_words][keep], words.length[:n_words][keep], words.count[:n_words][keep]
    pool = words.pool
    del words, keep
    _check_words(start, length, freq, n_sym, pool)
    max_tokens = int(vocab_size) - len(specials)
    # Token ids are below max_tokens: 16 bits hold them in most vocabularies (GPT-2's included).
    sym = pool[:n_sym].astype(np.uint16 if max_tokens <= 1 << 16 else np.int32)
    del pool
    corpus, tokens, n = k.new_state(sym, start, length, freq, floor=max(2, min_frequency))
    del sym, start, length, freq  # the corpus holds them; rebuild may replace sym with a shorter copy
    with progress_bar(progress, total=max_tokens - 256, unit="token", desc="merging") as update:
        status = k.NEEDS_ROOM  # the first rebuild makes the pair counts, chains and heap
        while status != k.STOPPED:
            fresh = status == k.NEEDS_ROOM
            if fresh:  # let go of the old arrays first: the rebuild makes new ones from the words alone
                pairs, chains, heap = k.no_parts()
            before = int(n[k.N_TOKENS])
            status, corpus, pairs, chains, heap, tokens = k.train_merges(
                corpus, pairs, chains, heap, tokens, n, max_tokens, min_frequency, 1024, fresh, _SPARE)
            update(int(n[k.N_TOKENS]) - before)
    # Free the merge loop's arrays before building Python objects (the peak memory is the larger of the two).
    del corpus, pairs, chains, heap
    _give_back_memory()
    return _encoding(tokens, n, specials, pattern)


def _give_back_memory() -> None:
    """Hand freed memory back to the system, where the C library is glibc (``malloc_trim``).

    The merge loop allocates and frees its arrays a dozen times (`train_kernels.rebuild`), and glibc
    keeps what is freed for later use instead of returning it (each large block freed raises the size
    from which it maps blocks of their own, up to 32 MB). The result's Python objects would then come
    on top of 15-20 MB that nothing uses: without this, they set the peak memory of the whole run.
    """
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def _check_words(start: np.ndarray, length: np.ndarray, freq: np.ndarray, n_sym: int, pool: np.ndarray) -> None:
    """Check a counted table's words before the merge loop's kernels index with them: each word lies
    inside the pool, after the one before (`rebuild` packs them in place, moving each down), is at
    least one byte long and seen at least once. The counting kernels make them so; a table that came
    from elsewhere (`npgpt.distributed`) is checked all the same."""
    if not (start.dtype == np.int64 and length.dtype == np.int32 and freq.dtype == np.int64
            and pool.dtype == np.uint8 and 0 <= n_sym <= len(pool)):
        raise ValueError("not a counted table of words (npgpt.bpe.train_kernels.Words)")
    if len(start) and not (start[0] >= 0 and length.min() >= 1 and freq.min() >= 1
                           and np.all(start[1:] >= start[:-1] + length[:-1]) and start[-1] + length[-1] <= n_sym):
        raise ValueError("a counted table of words is inconsistent (overlapping or out-of-range words, or counts < 1)")


def _encoding(tokens: Any, n: np.ndarray, specials: list[str], pattern: str) -> Encoding:
    """The `Encoding` of the merge loop's tokens and merges.

    They make a consistent vocabulary by construction: every token but the bytes is made by a merge
    of two earlier tokens, token bytes are distinct (`_token_for` reuses the id of equal bytes), and no
    pair is merged twice. So `Encoding`'s own check of a vocabulary it is given (`check_vocabulary`,
    about 0.1 s and a few MB of sets and dicts at 50,000 merges) would find nothing, and is spared,
    except for what the input decides: a special token whose bytes a merge made (which cannot happen
    when the specials are cut out of the text before counting, but is cheap to check) and more merges
    than `check_vocabulary` allows. Then the full check runs and raises its usual error.
    """
    from npgpt.bpe import train_kernels as k
    from npgpt.bpe.vocab_files import Vocabulary

    n_tokens, m = int(n[k.N_TOKENS]), int(n[k.N_MERGES])
    # (Built to keep the Python objects few: one int per id shared by both dicts, the merges' ids
    # converted a block at a time, no dict copied: at 50,000 tokens they take 14 MB.)
    raw, off = tokens.pool.tobytes(), tokens.off[: n_tokens + 1].tolist()
    token_bytes = [raw[a:b] for a, b in pairwise(off)]
    del raw, off
    get = token_bytes.__getitem__
    merges: list[tuple[bytes, bytes]] = []
    for i in range(0, m, 1 << 12):
        merges += zip(map(get, tokens.out_left[i : min(i + (1 << 12), m)].tolist()),
                      map(get, tokens.out_right[i : min(i + (1 << 12), m)].tolist()), strict=True)
    ids = list(range(n_tokens))
    special_ids = {s: n_tokens + j for j, s in enumerate(specials)}
    encoder = dict(zip(token_bytes, ids, strict=True))
    if m >= 2**30 or any(s.encode("utf-8") in encoder for s in specials):
        vocab = dict(enumerate(token_bytes))
        return Encoding(vocab, merges, special_ids, pattern=pattern, name="trained")  # raises ValueError
    decoder = dict(zip(ids, token_bytes, strict=True))
    decoder.update((i, s.encode("utf-8")) for s, i in special_ids.items())
    del ids, token_bytes
    return Encoding._from_vocabulary(Vocabulary(encoder, merges, special_ids, decoder), pattern, "trained")
