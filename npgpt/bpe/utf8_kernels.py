"""UTF-8 in numba, without the GIL: checking bytes (`valid_prefix`), making them from a str
(`utf8_of_str`), and finding a special token in them (`find_bytes`).

``npgpt tokenize`` used to decode every block of a file to str (to check it is UTF-8) and encode every
chunk back to bytes for the kernel: two passes over the text, both holding the GIL, which on two
threads left one thread decoding while the other waited. `valid_prefix` does the check on the bytes
themselves, without the GIL, at about 10 GB/s in any script: each byte is tested against the 3
before it, with no branch, so LLVM vectorizes the loop (a loop over characters made 0.7 GB/s of
Russian and 1 GB/s of Chinese, and was 20-35 ms of the main thread of a 30 MB ``npgpt tokenize``).

The rules are Python's own (``bytes.decode("utf-8")``), RFC 3629: no overlong forms (C0, C1, and
E0 or F0 followed by too small a byte), no surrogates (ED A0..ED BF), nothing past U+10FFFF (F4 90
and up, F5..FF). The tests hold it to Python's decoder on arbitrary bytes. The kernel only says where
the valid text stops; the caller asks Python's decoder what is wrong there, so error messages stay
exactly Python's ("invalid start byte", "invalid continuation byte", "unexpected end of data").

`encode_batch_to_numpy` had the same trouble the other way: ``str.encode`` and the search for
disallowed special tokens (``token in text``) hold the GIL, about a fifth of a kernel pass over the same
text, and a thread preparing a long text kept the others, back from their kernels, waiting.
`utf8_of_str` reads the str's own code units (CPython keeps a str as 1, 2 or 4 bytes a character, and
numba hands the kernel that memory, not a copy) and `find_bytes` searches the bytes, both without it.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic

from npgpt.bpe.pretokenize_kernels import at, ctz, load_u64, store_u64

__all__ = ["find_bytes", "utf8_of_str", "valid_prefix"]

_HIGH_BITS = np.uint64(0x8080808080808080)
_LOW_BITS = np.uint64(0x7F7F7F7F7F7F7F7F)
_ONES = np.uint64(0x0101010101010101)


CHECK_BLOCK = 4096  # bytes `valid_prefix` checks per call of `_no_rule_broken` (its loop is vectorized)


@njit(cache=True, nogil=True, inline="always")
def _char_length(buf, p, end):
    """Length of the whole, valid character that starts at ``buf[p]`` (p < end), 0 if there is none.

    RFC 3629 table 3-7, read one character at a time: the first byte gives the length and the range
    its second byte must fall in (no overlong forms, no surrogates, nothing past U+10FFFF)."""
    b = buf[p]
    if b < 0x80:
        return 1
    if b < 0xC2:  # a continuation byte, or C0 / C1 (overlong forms of ASCII)
        return 0
    if b < 0xE0:
        return 2 if p + 2 <= end and buf[p + 1] & 0xC0 == 0x80 else 0
    if b < 0xF0:
        n, lo, hi = 3, 0xA0 if b == 0xE0 else 0x80, 0x9F if b == 0xED else 0xBF
    elif b < 0xF5:
        n, lo, hi = 4, 0x90 if b == 0xF0 else 0x80, 0x8F if b == 0xF4 else 0xBF
    else:
        return 0
    if p + n > end or not lo <= buf[p + 1] <= hi or buf[p + 2] & 0xC0 != 0x80:
        return 0
    if n == 4 and buf[p + 3] & 0xC0 != 0x80:
        return 0
    return n


@njit(cache=True, nogil=True)
def _no_rule_broken(buf, p, q):
    """Whether every byte of ``buf[p:q]`` keeps the rules below, given the 3 bytes before p (p >= 3).

    A byte is a continuation (80..BF) exactly when one of the 3 before it starts a longer character
    (C0.., E0.., F0..): so, from where a character starts, the bytes split into whole characters;
    they are valid when no byte is C0, C1, F5..FF and the byte after E0, ED, F0, F4 is in its range.
    Each byte is tested apart from the others (no branch, nothing carried from one to the next), so
    LLVM runs the loop on 32 or 64 bytes at once: about 10 GB/s whatever the script (one character
    at a time made 0.7 GB/s of Russian, 1 GB/s of Chinese).
    """
    bad = False
    for i in range(p, q):
        b, b1, b2, b3 = at(buf, i), at(buf, i - 1), at(buf, i - 2), at(buf, i - 3)
        cont = (b >= 0x80) & (b < 0xC0)
        need = (b1 >= 0xC0) | (b2 >= 0xE0) | (b3 >= 0xF0)
        # (booleans and compares only: a `&` on the bytes made numba widen each lane to 64 bits, 6x slower)
        bad = bad | (cont ^ need) | (b == 0xC0) | (b == 0xC1) | (b >= 0xF5) \
            | ((b1 == 0xE0) & (b < 0xA0)) | ((b1 == 0xED) & (b > 0x9F)) \
            | ((b1 == 0xF0) & (b < 0x90)) | ((b1 == 0xF4) & (b > 0x8F))
    return not bad


@njit(cache=True, nogil=True)
def valid_prefix(buf, start, end):
    """End of the longest run of whole, valid UTF-8 characters in ``buf[start:end]`` (a uint8 array).

    Returns `end` when all of it is valid; otherwise the offset of the first byte that does not start
    a valid character, or starts one that `end` cuts short. `start` must be where a character starts.

    The bytes go `CHECK_BLOCK` at a time through `_no_rule_broken` (vectorized, ~10 GB/s); the
    character where a block fails, and the last one (which `end` may cut short), are read again one
    character at a time (`_char_length`), which says exactly where the valid text stops. The first
    characters are read that way too, so that the blocks look back only at bytes already checked.
    """
    end = min(end, buf.shape[0])
    first = p = max(start, 0)
    while p < end and p < first + 3:  # (so the blocks never look back before `first`)
        n = _char_length(buf, p, end)
        if n == 0:
            return p
        p += n
    q = p  # everything before q keeps the rules
    while q < end:
        stop = min(q + CHECK_BLOCK, end)
        if not _no_rule_broken(buf, q, stop):
            break
        q = stop
    # A block fails at a byte that breaks a rule with the 3 before it, and `end` may cut the last
    # character short: either way, read again from the character that holds byte q - 3. (Every byte
    # before q keeps the rules, so there, the bytes that are not continuations are where characters start.)
    q = max(q - 3, p)
    while q > p and buf[q] & 0xC0 == 0x80:
        q -= 1
    while q < end:
        n = _char_length(buf, q, end)
        if n == 0:
            return q
        q += n
    return end


# --------------------------------------------------------------------------------------------
# str -> UTF-8


@intrinsic
def code_unit(typingctx, data, i, width):
    """Code unit `i` of a str's data (``text._data``), `width` (a constant 1, 2 or 4) bytes wide, as uint32."""
    if not (data == types.voidptr and isinstance(i, types.Integer) and isinstance(width, types.IntegerLiteral)
            and width.literal_value in (1, 2, 4)):
        return None
    bits = 8 * width.literal_value

    def codegen(context, builder, sig, args):
        units = builder.bitcast(args[0], ir.IntType(bits).as_pointer())
        index = context.cast(builder, args[1], sig.args[1], types.intp)
        unit = builder.load(builder.gep(units, [index], inbounds=True))
        return builder.zext(unit, ir.IntType(32)) if bits < 32 else unit

    return types.uint32(data, i, width), codegen


@intrinsic
def units_word(typingctx, data, i, width):
    """The 8 bytes of a str's data (``text._data``) from code unit `i` on, `width` (a constant 1, 2 or 4)
    bytes a unit, as one uint64 (the caller checks that ``8 // width`` units remain)."""
    if not (data == types.voidptr and isinstance(i, types.Integer) and isinstance(width, types.IntegerLiteral)):
        return None
    width_ = width.literal_value

    def codegen(context, builder, sig, args):
        index = builder.mul(context.cast(builder, args[1], sig.args[1], types.intp),
                            context.get_constant(types.intp, width_))
        byte = builder.gep(builder.bitcast(args[0], ir.IntType(8).as_pointer()), [index], inbounds=True)
        return builder.load(builder.bitcast(byte, ir.IntType(64).as_pointer()), align=1)

    return types.uint64(data, i, width), codegen


# Per storage width (1, 2, 4 bytes a unit): the bits of 8 bytes of code units set only in a unit above U+007F
_NOT_ASCII_1 = np.uint64(0x8080808080808080)
_NOT_ASCII_2 = np.uint64(0xFF80FF80FF80FF80)
_NOT_ASCII_4 = np.uint64(0xFFFFFF80FFFFFF80)


@njit(cache=True, nogil=True, inline="always")
def _ascii_bytes(w, width):
    """The code units of the word `w` (all ASCII) as bytes, packed at the bottom of a word."""
    if width == 1:
        return w
    if width == 2:
        return ((w & np.uint64(0xFF)) | ((w >> np.uint64(8)) & np.uint64(0xFF00))
                | ((w >> np.uint64(16)) & np.uint64(0xFF0000)) | ((w >> np.uint64(24)) & np.uint64(0xFF000000)))
    return (w & np.uint64(0xFF)) | ((w >> np.uint64(24)) & np.uint64(0xFF00))


@njit(cache=True, nogil=True, inline="always")
def _utf8_units(text, out, width):
    """`utf8_of_str` for a str stored `width` bytes a character, as RFC 3629 writes it (1 byte below
    U+0080, 2 below U+0800, 3 below U+10000, else 4). A copy for each width, so that each loop reads
    its code units with no test of the width (one loop testing it ran 1.5x slower).

    Two things make it faster than CPython's own encoder on the corpus (Russian 1.9 -> 1.2 ms): 8 bytes
    of ASCII units at a time (`not_ascii`: the bits that are set only in a unit above U+007F), and one
    path for 1- and 2-byte characters whose length is chosen without a branch: in Russian text,
    Cyrillic letters and ASCII spaces alternate, and a branch per character was guessed wrong at every
    word. Its 8-byte store writes past the character; the next ones write over that (`out` has 7
    bytes of room past the last).
    """
    data = text._data
    n = text._length
    step = 8 // width
    not_ascii = _NOT_ASCII_1 if width == 1 else (_NOT_ASCII_2 if width == 2 else _NOT_ASCII_4)  # (a constant)
    o = 0
    i = 0
    while i < n:
        if i + step <= n:
            w = units_word(data, i, width)
            if w & not_ascii == 0:
                store_u64(out, o, _ascii_bytes(w, width))
                i += step
                o += step
                continue
        c = code_unit(data, i, width)
        if c < 0x800:  # 1 or 2 bytes
            two = c >= 0x80
            pair = np.uint64(0xC0 | (c >> 6)) | (np.uint64(0x80 | (c & 0x3F)) << np.uint64(8))
            store_u64(out, o, pair if two else np.uint64(c))
            o += 1 + two
        elif c < 0x10000:
            if 0xD800 <= c < 0xE000:  # a surrogate has no UTF-8 form: the caller's problem
                return -1 - i
            store_u64(out, o, np.uint64(0xE0 | (c >> 12)) | (np.uint64(0x80 | ((c >> 6) & 0x3F)) << np.uint64(8))
                      | (np.uint64(0x80 | (c & 0x3F)) << np.uint64(16)))
            o += 3
        else:
            store_u64(out, o, np.uint64(0xF0 | (c >> 18)) | (np.uint64(0x80 | ((c >> 12) & 0x3F)) << np.uint64(8))
                      | (np.uint64(0x80 | ((c >> 6) & 0x3F)) << np.uint64(16))
                      | (np.uint64(0x80 | (c & 0x3F)) << np.uint64(24)))
            o += 4
        i += 1
    return o


@njit(cache=True, nogil=True)
def utf8_of_str(text):
    """``text.encode("utf-8")`` as ``(buffer, n)``: the bytes are ``buffer[:n]``, a uint8 array.

    ``n = -1 - i`` when ``text[i]`` is a surrogate (no UTF-8 form; ``str.encode`` would raise). The
    buffer has room for the most bytes a character of `text` can take, which CPython's storage tells
    (``text._kind``: 1 byte a character holds up to U+00FF, 2 bytes in UTF-8; 2 up to U+FFFF, 3; 4, 4),
    plus 7 for the last 8-byte store, so the kernel never writes past it, nor reads past the str's own
    length. Faster than ``str.encode`` on the corpus's documents that are not ASCII (2.7 ms against 3.8;
    an ASCII str is its own UTF-8 in CPython, a copy: `npgpt.Encoding` calls this only for other text).
    """
    kind = text._kind
    out = np.empty(text._length * (1 if text._is_ascii else kind + (kind < 4)) + 7, np.uint8)  # (+7: `_utf8_units`)
    if kind == 1:
        return out, _utf8_units(text, out, 1)
    if kind == 2:
        return out, _utf8_units(text, out, 2)
    return out, _utf8_units(text, out, 4)


# --------------------------------------------------------------------------------------------
# finding a special token


@njit(cache=True, nogil=True)
def find_bytes(buf, needle, start):
    """First offset ``>= start`` where the bytes `needle` (non-empty) occur in `buf`; -1 when nowhere.

    Candidates are found 8 bytes at a time: ``x = word ^ (lead * 0x0101..)`` has a zero byte exactly
    where the word holds the needle's first byte, and ``(x & 0x7F..) + 0x7F..`` sets the top bit of
    every byte of x that is not zero, with no carry between bytes (each sum is at most 0xFE), so the
    bytes left without a top bit in ``sum | x`` are the zero ones (exact; the classic shorter test
    may flag a byte above a real zero). Each candidate is then compared byte by byte.
    """
    n, m = buf.shape[0], needle.shape[0]
    if m == 0:
        return -1
    lead = needle[0]
    spread = np.uint64(lead) * _ONES
    p = max(start, 0)
    while p + m <= n:
        if p + 8 <= n:
            x = load_u64(buf, p) ^ spread
            hits = ~(((x & _LOW_BITS) + _LOW_BITS) | x) & _HIGH_BITS
            if hits == 0:
                p += 8
                continue
            p += np.int64(ctz(hits) >> np.uint64(3))
        elif buf[p] != lead:
            p += 1
            continue
        if p + m > n:
            return -1
        j = 1
        while j < m and buf[p + j] == needle[j]:
            j += 1
        if j == m:
            return p
        p += 1
    return -1
