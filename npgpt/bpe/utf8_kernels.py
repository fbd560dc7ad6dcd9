"""A UTF-8 check in numba, so that file bytes can go to the encode kernel without becoming a str.

``npgpt tokenize`` used to decode every block of a file to str (to check it is UTF-8) and encode every
chunk back to bytes for the kernel: two passes over the text, both holding the GIL, which on two
threads left one thread decoding while the other waited. `valid_prefix` does the check on the bytes
themselves, without the GIL, about as fast as copying them (ASCII goes 8 bytes at a time).

The rules are Python's own (``bytes.decode("utf-8")``), RFC 3629: no overlong forms (C0, C1, and
E0 or F0 followed by too small a byte), no surrogates (ED A0..ED BF), nothing past U+10FFFF (F4 90
and up, F5..FF). The tests hold it to Python's decoder on arbitrary bytes. The kernel only says where
the valid text stops; the caller asks Python's decoder what is wrong there, so error messages stay
exactly Python's ("invalid start byte", "invalid continuation byte", "unexpected end of data").
"""

from __future__ import annotations

import numpy as np
from numba import njit

from npgpt.bpe.pretokenize_kernels import load_u64

__all__ = ["valid_prefix"]

_HIGH_BITS = np.uint64(0x8080808080808080)


@njit(cache=True, nogil=True)
def valid_prefix(buf, start, end):
    """End of the longest run of whole, valid UTF-8 characters in ``buf[start:end]`` (a uint8 array).

    Returns `end` when all of it is valid; otherwise the offset of the first byte that does not start
    a valid character, or starts one that `end` cuts short. `start` must be where a character starts.
    After an ASCII byte, the bytes go 8 at a time while they are ASCII; after any other character,
    one at a time (a Cyrillic or Chinese text would fail the 8-byte test at every character).
    """
    end = min(end, buf.shape[0])
    p = max(start, 0)
    while p < end:
        b = buf[p]
        if b < 0x80:
            p += 1
            while p + 8 <= end and (load_u64(buf, p) & _HIGH_BITS) == 0:
                p += 8
            continue
        # the length of the sequence, and the range its second byte must fall in (RFC 3629, table 3-7)
        if b < 0xC2:  # a continuation byte, or C0 / C1 (overlong forms of ASCII)
            return p
        if b < 0xE0:
            if p + 2 > end or buf[p + 1] & 0xC0 != 0x80:
                return p
            p += 2
            continue
        if b < 0xF0:
            n, lo, hi = 3, 0xA0 if b == 0xE0 else 0x80, 0x9F if b == 0xED else 0xBF
        elif b < 0xF5:
            n, lo, hi = 4, 0x90 if b == 0xF0 else 0x80, 0x8F if b == 0xF4 else 0xBF
        else:
            return p
        if p + n > end or not lo <= buf[p + 1] <= hi or buf[p + 2] & 0xC0 != 0x80:
            return p
        if n == 4 and buf[p + 3] & 0xC0 != 0x80:
            return p
        p += n
    return end
