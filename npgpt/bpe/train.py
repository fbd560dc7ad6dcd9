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

Recounting every pair after every merge, as the textbook does (``tests/test_train.py::naive_train``),
costs minutes. Here the counting is the numba scanner feeding a numba hash count, and the merging
updates only the words that hold the merged pair (`npgpt.bpe.train_kernels`).

Example
-------
>>> enc = train_bpe(["low lower lowest newer newest"] * 10, vocab_size=262, progress=False)
>>> enc.merges[:3]
[(b'w', b'e'), (b'l', b'o'), (b'we', b's')]
>>> enc.encode("lowest newest")
[257, 259, 32, 110, 101, 259]
"""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from npgpt.bpe.encoding import Encoding
from npgpt.bpe.pretokenize import GPT2_PATTERN, compile_pattern, fix_surrogates

__all__ = ["count_pretokens", "train_bpe"]

READ_CHARS = 1 << 20  # characters read from a file at a time


def _sources(data: Any) -> tuple[list[Any], int | None]:
    """(list of sources, total bytes or None): a source is a Path (a file) or a str (a document)."""
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.is_file():
            raise FileNotFoundError(
                f"no such file: {str(data)[:80]!r} (to train on text, pass a list of strings)")
        return [path], path.stat().st_size
    if isinstance(data, (bytes, bytearray)):
        raise TypeError("data must be a path, a list of paths or an iterable of str documents, not bytes")
    sources: list[Any] = []
    for item in data:
        if isinstance(item, os.PathLike):
            if not Path(item).is_file():
                raise FileNotFoundError(f"no such file: {item}")
            sources.append(Path(item))
        elif isinstance(item, str):
            # a str naming an existing file is that file; any other str is a document
            is_file = "\n" not in item and len(item) < 4096 and os.path.isfile(item)
            sources.append(Path(item) if is_file else item)
        else:
            raise TypeError(f"data items must be paths or str documents, got {type(item).__name__}")
    sizes = [s.stat().st_size for s in sources if isinstance(s, Path)]
    return sources, (sum(sizes) if len(sizes) == len(sources) else None)


def _read(source: Any, bar) -> Iterator[str]:
    if isinstance(source, str):
        bar.update(len(source))
        yield source
        return
    with open(source, encoding="utf-8") as f:
        while text := f.read(READ_CHARS):
            bar.update(len(text.encode("utf-8", "surrogatepass")))
            yield text


def count_pretokens(data: Any, special_tokens: Iterable[str] = ("<|endoftext|>",), *, pattern: str = GPT2_PATTERN,
                    num_threads: int | None = None, progress: bool = True) -> dict[bytes, int]:
    """Count the distinct pre-tokens of `data` (see `train_bpe`): UTF-8 bytes -> occurrences.

    Files are streamed in chunks cut where no pre-token can span (`npgpt.Encoding.chunk_text`), and
    the chunks are counted on `num_threads` threads; memory holds a few chunks plus the counts.

    >>> count_pretokens(["the cat, the hat<|endoftext|>the"], progress=False)
    {b'the': 2, b' cat': 1, b',': 1, b' the': 1, b' hat': 1}
    """
    from tqdm import tqdm

    specials = list(dict.fromkeys(special_tokens))
    sources, total = _sources(data)
    # A bytes-only encoding: no merges, just the pattern and the special tokens, for chunk_text.
    cutter = Encoding({i: bytes([i]) for i in range(256)}, [], specials, pattern=pattern)
    split_specials = re.compile("|".join(map(re.escape, sorted(specials, key=len, reverse=True)))) if specials else None
    scanned = pattern == GPT2_PATTERN
    regex = compile_pattern(pattern)
    threads = num_threads or os.cpu_count() or 1

    def count_chunk(chunk: str) -> Counter:
        counts: Counter = Counter()
        for part in split_specials.split(chunk) if split_specials else [chunk]:
            if not part:
                continue
            if not scanned:
                counts.update(p.encode("utf-8", "surrogatepass") for p in regex.findall(part))
                continue
            try:
                raw = part.encode("utf-8")
            except UnicodeEncodeError:
                raw = fix_surrogates(part).encode("utf-8")
            counts.update(_scan_count(raw))
        return counts

    totals: Counter = Counter()
    disable = not progress or None  # None: tqdm shows the bar only on a terminal
    with tqdm(total=total, unit="B", unit_scale=True, desc="counting", disable=disable, file=sys.stderr) as bar, \
            ThreadPoolExecutor(threads) as pool:
        pending = []
        for source in sources:
            for chunk in cutter.chunk_text(_read(source, bar), allowed_special="all", disallowed_special=(),
                                           chunk_chars=READ_CHARS):
                pending.append(pool.submit(count_chunk, chunk))
                if len(pending) >= 2 * threads:
                    for fut in pending:
                        totals.update(fut.result())
                    pending.clear()
        for fut in pending:
            totals.update(fut.result())
    return dict(totals)


def _scan_count(raw: bytes) -> dict[bytes, int]:
    from npgpt.bpe import pretokenize_kernels as scan
    from npgpt.bpe import train_kernels
    from npgpt.bpe.unicode_tables import char_classes

    buf = np.frombuffer(raw, np.uint8)
    bounds = np.empty(len(buf) + 1, np.int64)
    n = scan.scan(buf, 0, len(buf), char_classes(), bounds)
    first, counts = train_kernels.unique_pieces(buf, bounds, n)
    starts, ends = bounds[first].tolist(), bounds[first + 1].tolist()
    return {raw[a:b]: c for a, b, c in zip(starts, ends, counts.tolist(), strict=True)}


GROUPS = {
    1: ("left", "right", "count", "head", "merged", "touch_mark", "before", "touched"),
    2: ("chain_word", "chain_next"), 4: ("heap_p", "heap_c"), 8: ("pool",), 16: ("out_left", "out_right", "out_id"),
}


def _grow(a: dict, need: int, index: np.ndarray, st: np.ndarray) -> np.ndarray:
    """Double the array groups flagged in `need` (train_kernels.ROOM_* bits); return the pair index."""
    from npgpt.bpe import train_kernels as k

    for bit, names in GROUPS.items():
        if need & bit:
            for name in names:
                a[name] = np.concatenate([a[name], np.zeros_like(a[name])])
    if need & 1:  # a bigger pair table: rebuild its index
        index = k.build_pair_index(a["left"], a["right"], int(st[1]), _pow2(4 * len(a["left"])))
    return index


def _pow2(n: int) -> int:
    """The smallest power of two >= n (hash tables mask their slot numbers)."""
    return 1 << max(0, n - 1).bit_length()


def train_bpe(data: Any, vocab_size: int, special_tokens: Iterable[str] = ("<|endoftext|>",), *,
              pattern: str = GPT2_PATTERN, min_frequency: int = 1, num_threads: int | None = None,
              progress: bool = True) -> Encoding:
    """Learn a byte-level BPE vocabulary from `data`; return it as an `Encoding`.

    Parameters
    ----------
    data : path, list of paths, or iterable of str
        Files are read as UTF-8 and streamed in bounded memory. A str that names an existing file is
        that file; any other str is a document (documents never merge across each other).
    vocab_size : int
        Size of the result, counting the 256 byte tokens, the merged tokens and the special tokens.
    special_tokens : iterable of str
        Cut out of the text before counting; they get the last ids.
    pattern : str
        Pre-tokenization regex (default GPT-2's, run by the numba scanner).
    min_frequency : int
        Stop when the best pair occurs fewer times.
    num_threads : int
        Threads for counting (default: all cores).
    progress : bool
        tqdm bars over the input bytes and the merges (shown only on a terminal).

    The exact rules are in the module docstring. The result encodes, decodes and saves like any
    `Encoding`: ``.vocab``, ``.merges``, ``save(dir, format="gpt2" | "tiktoken")``.

    >>> enc = train_bpe(["aaab aaab aab"], vocab_size=259, special_tokens=["<|endoftext|>"], progress=False)
    >>> enc.merges, enc.special_tokens
    ([(b'a', b'a'), (b'aa', b'a')], {'<|endoftext|>': 258})
    """
    from tqdm import tqdm

    from npgpt.bpe import train_kernels as k

    specials = list(dict.fromkeys(special_tokens))
    if isinstance(special_tokens, str):
        raise TypeError(f"special_tokens must be a list of str, not the str {special_tokens!r}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    if vocab_size < 256 + len(specials):
        raise ValueError(f"vocab_size={vocab_size} leaves no room: the 256 byte tokens and {len(specials)} "
                         f"special token(s) need {256 + len(specials)}")
    if vocab_size >= 2**31:
        raise ValueError(f"vocab_size={vocab_size} is too large (at most 2**31 - 1)")
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"min_frequency must be an int >= 1, got {min_frequency!r}")
    compile_pattern(pattern)

    words = count_pretokens(data, specials, pattern=pattern, num_threads=num_threads, progress=progress)
    max_tokens = vocab_size - len(specials)
    keys = list(words)
    lens = np.fromiter(map(len, keys), np.int64, len(keys))
    wstart = np.zeros(len(keys), np.int64)
    if len(keys):
        np.cumsum(lens[:-1], out=wstart[1:])
    sym = np.frombuffer(b"".join(keys), np.uint8).astype(np.int32)
    freq = np.fromiter(words.values(), np.int64, len(keys))
    wlen = lens.astype(np.int32)
    n_sym = int(lens.sum())

    # Initial sizes: single bytes make at most 65,536 distinct pairs, and every symbol but a word's first
    # starts one chain entry; the kernel asks for more room as it needs it (see _grow).
    n_pairs0 = 1 << 17
    n_merges = max_tokens - 256
    a = {
        "left": np.zeros(n_pairs0, np.int32), "right": np.zeros(n_pairs0, np.int32),
        "count": np.zeros(n_pairs0, np.int64), "head": np.zeros(n_pairs0, np.int64),
        "merged": np.zeros(n_pairs0, np.bool_), "touch_mark": np.zeros(n_pairs0, np.int64),
        "before": np.zeros(n_pairs0, np.int64), "touched": np.zeros(n_pairs0, np.int64),
        "chain_word": np.zeros(n_sym + 1024, np.int32), "chain_next": np.zeros(n_sym + 1024, np.int64),
        "heap_p": np.zeros(n_pairs0, np.int64), "heap_c": np.zeros(n_pairs0, np.int64),
        "pool": np.zeros(1 << 16, np.uint8),
        **{f"out_{x}": np.zeros(max(n_merges, 1), np.int32) for x in ("left", "right", "id")},
    }
    a["pool"][:256] = np.arange(256)
    off = np.zeros(max_tokens + 1, np.int64)
    off[:257] = np.arange(257)
    seen = np.zeros(len(keys), np.int64)
    index = np.full(2 * _pow2(4 * n_pairs0), -1, np.int64)  # pair -> number, at most a quarter full
    by_bytes = k.new_byte_index()
    # counters: heap size, pairs, chain entries, touched, tokens, merges, stamp, pool used, symbols, room
    st = np.array([0, 0, 0, 0, 256, 0, 0, 256, n_sym, 0], np.int64)
    k.initial_pairs(sym, wstart, wlen, freq, index, st, a["left"], a["right"], a["count"], a["head"], a["merged"],
                    a["chain_word"], a["chain_next"], a["heap_p"], a["heap_c"], a["pool"], off)
    disable = not progress or None
    with tqdm(total=max(n_merges, 0), unit="merge", desc="merging", disable=disable, file=sys.stderr) as bar:
        while True:
            done_before = int(st[5])
            status = k.train_merges(
                sym, wstart, wlen, freq, seen, index, st, a["left"], a["right"], a["count"], a["head"], a["merged"],
                a["touch_mark"], a["before"], a["touched"], a["chain_word"], a["chain_next"], a["heap_p"],
                a["heap_c"], a["pool"], off, by_bytes, a["out_left"], a["out_right"], a["out_id"], max_tokens,
                min_frequency, 512)
            bar.update(int(st[5]) - done_before)
            if status == k.STOPPED:
                break
            if status == k.NEED_ROOM:  # double the arrays the kernel asked for; it checks again
                index = _grow(a, int(st[9]), index, st)
    n_tokens, m = int(st[4]), int(st[5])
    pool = a["pool"]
    vocab = {i: pool[off[i] : off[i + 1]].tobytes() for i in range(n_tokens)}
    lefts, rights = a["out_left"][:m].tolist(), a["out_right"][:m].tolist()
    merges = [(vocab[x], vocab[y]) for x, y in zip(lefts, rights, strict=True)]
    return Encoding(vocab, merges, {s: n_tokens + j for j, s in enumerate(specials)}, pattern=pattern,
                    name="trained")
