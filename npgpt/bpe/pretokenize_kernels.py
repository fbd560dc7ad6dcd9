"""GPT-2's pre-tokenization pattern as a hand-written scanner, in numba, over UTF-8 bytes.

The `regex` module runs GPT-2's pattern at about 15 MB/s: faster than that, nothing that calls it
can go. This module does the same job without a regex engine. The pattern

    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+

read as a scanner says, at each position, try in order:

1. a contraction: an apostrophe followed by ``s t m d`` or ``re ve ll``;
2. a run of letters, of numbers, or of "other" characters (neither letter, number nor space), with
   one optional leading U+0020 space glued to the run;
3. a run of white space, minus its last character when a non-space follows and the run has two or
   more characters (``\\s+(?!\\S)`` backtracks by one so that the last space can start the next word);
   a single space character before a non-space is a piece of its own (``\\s+``).

Character classes come from `npgpt.bpe.unicode_tables` (built from `regex`, so the two paths agree).
`piece_end` is the whole scanner; `scan` collects piece boundaries; `split_gpt2` is a Python
convenience used by the tests, which hold it to ``regex.findall`` on arbitrary Unicode.

Every read is bounded by the segment end passed in, and a UTF-8 sequence cut short by that end is
read as one byte of class OTHER (Python's encoder never produces one).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from npgpt.bpe.unicode_tables import OTHER, SPACE, char_classes

_APOSTROPHE, _SPACE_BYTE = 39, 32


@njit(cache=True, nogil=True, inline="always")
def char_at(buf, p, end, classes):
    """(class, byte length) of the UTF-8 character starting at ``buf[p]``."""
    b = buf[p]
    if b < 0x80:
        return classes[b], 1
    if b >= 0xF0:
        if p + 4 > end:
            return OTHER, 1
        cp = ((b & 0x07) << 18) | ((buf[p + 1] & 0x3F) << 12) | ((buf[p + 2] & 0x3F) << 6) | (buf[p + 3] & 0x3F)
        return classes[cp], 4
    if b >= 0xE0:
        if p + 3 > end:
            return OTHER, 1
        cp = ((b & 0x0F) << 12) | ((buf[p + 1] & 0x3F) << 6) | (buf[p + 2] & 0x3F)
        return classes[cp], 3
    if p + 2 > end or b < 0xC0:
        return OTHER, 1
    return classes[((b & 0x1F) << 6) | (buf[p + 1] & 0x3F)], 2


@njit(cache=True, nogil=True)
def piece_end(buf, p, end, classes):
    """End (exclusive) of the GPT-2 pre-token that starts at ``buf[p]``; requires ``p < end``."""
    b = buf[p]
    # 1. contractions: 's 't 'm 'd 're 've 'll
    if b == _APOSTROPHE and p + 1 < end:
        b1 = buf[p + 1]
        if b1 == 115 or b1 == 116 or b1 == 109 or b1 == 100:  # s t m d
            return p + 2
        if p + 2 < end:
            b2 = buf[p + 2]
            if (b2 == 101 and (b1 == 114 or b1 == 118)) or (b1 == 108 and b2 == 108):  # re ve ll
                return p + 3
    # 2. a run of one class, with an optional leading space
    cls, width = char_at(buf, p, end, classes)
    q = p
    if b == _SPACE_BYTE and p + 1 < end:
        next_cls, next_width = char_at(buf, p + 1, end, classes)
        if next_cls != SPACE:
            cls, width, q = next_cls, next_width, p + 1
    if cls != SPACE:
        r = q + width
        while r < end:
            c, w = char_at(buf, r, end, classes)
            if c != cls:
                break
            r += w
        return r
    # 3. white space
    r = p + width
    last = p  # start of the run's last character
    while r < end:
        c, w = char_at(buf, r, end, classes)
        if c != SPACE:
            break
        last = r
        r += w
    if r < end and last > p:
        return last  # \s+(?!\S): leave the last space for the word that follows
    return r


@njit(cache=True, nogil=True)
def scan(buf, start, end, classes, bounds):
    """Write the piece boundaries of ``buf[start:end]`` into `bounds` (start, then each piece's end).

    `bounds` must hold ``end - start + 1`` entries; returns the number of pieces.
    """
    n = 0
    bounds[0] = start
    p = start
    while p < end:
        p = piece_end(buf, p, end, classes)
        n += 1
        bounds[n] = p
    return n


def split_gpt2(text: str) -> list[str]:
    """The pieces of `text`, as ``regex.findall(GPT2_PATTERN, text)`` gives them (surrogate-free text).

    >>> split_gpt2("Hello world's  123!!")
    ['Hello', ' world', "'s", ' ', ' 123', '!!']
    """
    buf = np.frombuffer(text.encode("utf-8"), np.uint8)
    bounds = np.empty(len(buf) + 1, np.int64)
    n = scan(buf, 0, len(buf), char_classes(), bounds)
    raw = buf.tobytes()
    return [raw[bounds[k] : bounds[k + 1]].decode("utf-8") for k in range(n)]
