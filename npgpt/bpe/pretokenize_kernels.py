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
`piece_end` is the whole scanner (`next_end` adds a faster path for ASCII and Cyrillic); `scan`
collects piece boundaries; `split_gpt2` is a Python convenience used by the tests, which hold it
to ``regex.findall`` on arbitrary Unicode.

Every read is bounded by the segment end passed in (the 8-byte reads of `letter_run` and of
`ascii_ends` included: they happen only when 8, and 64, bytes remain), and a UTF-8 sequence cut
short by that end is read as one byte of class OTHER (Python's encoder never produces one).

Speed (about 10x the plain loop; bench/encode.py "where the time goes"): ASCII text, and Cyrillic,
is cut 64 bytes at a time (`ascii_ends`: the classes of the bytes as bit masks, from which a few
shifts give every piece end, with no branch per piece, whose type a CPU cannot guess); elsewhere
runs of ASCII letters are tested 8 bytes at a time in one 64-bit word (`not_ascii_letters`); and
the kernels are compiled without numba's reference counting, which otherwise costs two atomic
operations per piece.
`next_end` is the scanner the encode kernel calls: `ascii_ends` where it decides, else `piece_end`
(the trainer's counting, `npgpt.bpe.train_kernels._count_run`, calls `piece_end` alone).
"""

from __future__ import annotations

import sys

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.extending import intrinsic

from npgpt.bpe.unicode_tables import LETTER, OTHER, SPACE, char_classes

_APOSTROPHE, _SPACE_BYTE = 39, 32

if sys.byteorder != "little":  # load_u64 reads words little-endian: byte i is bits 8i..8i+7
    raise ImportError("npgpt's kernels assume a little-endian machine")


# --------------------------------------------------------------------------------------------
# machine instructions and constants numba does not expose


def _element(context, builder, sig, args):
    """The address of ``args[0][args[1]]`` for the intrinsics below: the index widened to intp as its
    own type says (an unsigned byte stays 0..255; LLVM would read a narrow index as signed), and the
    address marked in bounds, as numba's own indexing marks it, so that LLVM keeps optimising the loop."""
    data = context.make_array(sig.args[0])(context, builder, args[0]).data
    index = context.cast(builder, args[1], sig.args[1], types.intp)
    return builder.gep(data, [index], inbounds=True)


@intrinsic
def load_u64(typingctx, arr, i):
    """``buf[i:i+8]`` as one little-endian uint64: a single unaligned load (the caller checks i + 8 <= len)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.uint8 and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        word = builder.bitcast(_element(context, builder, sig, args), ir.IntType(64).as_pointer())
        return builder.load(word, align=1)

    return types.uint64(arr, i), codegen


@intrinsic
def at(typingctx, arr, i):
    """``arr[i]`` for an index known to be >= 0: numba's ``arr[i]`` first maps a negative i to
    ``i + len(arr)``, three instructions and a live register more on every read of a hot loop."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_element(context, builder, sig, args))

    return arr.dtype(arr, i), codegen


@intrinsic
def put(typingctx, arr, i, v):
    """``arr[i] = v`` for an index known to be >= 0 (see `at`); `v` is cast to the array's dtype."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and isinstance(i, types.Integer)
            and isinstance(v, (types.Integer, types.Boolean))):
        return None

    def codegen(context, builder, sig, args):
        value = context.cast(builder, args[2], sig.args[2], sig.args[0].dtype)
        builder.store(value, _element(context, builder, sig, args))
        return context.get_dummy_value()

    return types.none(arr, i, v), codegen


@intrinsic
def store_u64(typingctx, arr, i, w):
    """Write the uint64 `w` little-endian over the 8 bytes from ``&arr[i]`` (any dtype): a single unaligned
    store, which may run past element i into the ones after it (the caller checks they exist)."""
    if not (isinstance(arr, types.Array) and isinstance(i, types.Integer) and w == types.uint64):
        return None

    def codegen(context, builder, sig, args):
        word = builder.bitcast(_element(context, builder, sig, args), ir.IntType(64).as_pointer())
        builder.store(args[2], word, align=1)
        return context.get_dummy_value()

    return types.none(arr, i, w), codegen


@intrinsic
def width_of(typingctx, arr):
    """``arr.itemsize`` as a constant of the compiled code (numba reads ``.itemsize`` at run time, so
    ``j // arr.itemsize`` would be a division instruction)."""
    if not isinstance(arr, types.Array):
        return None
    width = arr.dtype.bitwidth // 8

    def codegen(context, builder, sig, args):
        return context.get_constant(types.int64, width)

    return types.int64(arr), codegen


@intrinsic
def prefetch(typingctx, arr, i):
    """Ask the CPU to start loading the cache line of ``arr[i]`` (LLVM's llvm.prefetch: a hint, which
    neither faults nor changes any value, so an index past the end would be harmless)."""
    if not (isinstance(arr, types.Array) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = builder.bitcast(_element(context, builder, sig, args), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.none(arr, i), codegen


def _int64_array(arr, i) -> bool:
    return isinstance(arr, types.Array) and arr.dtype == types.int64 and isinstance(i, types.Integer)


@intrinsic
def load_acquire(typingctx, arr, i):
    """``arr[i]`` (int64, i >= 0) as an atomic load with acquire order: what another thread wrote before
    it stored this word with `store_release` is visible after it. (A plain ``mov`` on x86; it stops the
    compiler moving later reads before this one.)"""
    if not _int64_array(arr, i):
        return None

    def codegen(context, builder, sig, args):
        return builder.load_atomic(_element(context, builder, sig, args), "acquire", 8)

    return types.int64(arr, i), codegen


@intrinsic
def store_release(typingctx, arr, i, v):
    """``arr[i] = v`` (int64, i >= 0) as an atomic store with release order: every write this thread made
    before it is visible to a thread that reads `v` here with `load_acquire`."""
    if not (_int64_array(arr, i) and v == types.int64):
        return None

    def codegen(context, builder, sig, args):
        builder.store_atomic(args[2], _element(context, builder, sig, args), "release", 8)
        return context.get_dummy_value()

    return types.none(arr, i, v), codegen


@intrinsic
def compare_swap(typingctx, arr, i, old, new):
    """Atomically: if ``arr[i] == old`` (int64, i >= 0), set it to `new` and return True; else change
    nothing and return False. Of several threads swapping the same word from `old`, exactly one wins."""
    if not (_int64_array(arr, i) and old == types.int64 and new == types.int64):
        return None

    def codegen(context, builder, sig, args):
        pair = builder.cmpxchg(_element(context, builder, sig, args), args[2], args[3], "acq_rel", "acquire")
        return builder.extract_value(pair, 1)

    return types.boolean(arr, i, old, new), codegen


@intrinsic
def ctz(typingctx, x):
    """Count of trailing zero bits of a uint64; 64 for zero (LLVM's cttz, one instruction)."""
    if not (isinstance(x, types.Integer) and x.bitwidth == 64):
        return None

    def codegen(context, builder, sig, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return types.uint64(x), codegen


# --------------------------------------------------------------------------------------------
# the scanner

_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_HIGH = np.uint64(0x8080808080808080)
_FOLD = np.uint64(0x2020202020202020)
_TO_A = np.uint64(0x1F1F1F1F1F1F1F1F)  # 0x80 - ord("a"): sets a byte's top bit when it is >= "a"
_TO_Z = np.uint64(0x0505050505050505)  # 0x80 - (ord("z") + 1): sets it when the byte is > "z"
_ONES = np.uint64(0x0101010101010101)


@njit(cache=True, nogil=True, inline="always")
def not_ascii_letters(w):
    """Top bit of each byte of the word `w` that is not an ASCII letter (8 bytes at once, SWAR).

    Exact: ``| 0x20`` maps A..Z onto a..z and nothing else into a..z; ``& 0x7F`` keeps every byte
    below 0x80, so adding 0x1F or 0x05 never carries into the next byte; a byte with its top bit
    set in `w` (not ASCII) is not an ASCII letter, whatever the sums say.
    """
    y = (w | _FOLD) & _LOW7
    return ~((y + _TO_A) & ~(y + _TO_Z) & ~w) & _HIGH


@njit(cache=True, nogil=True, inline="always")
def char_at(buf, p, end, classes):
    """(class, byte length) of the UTF-8 character starting at ``buf[p]``."""
    b = at(buf, p)
    if b < 0x80:
        return at(classes, b), 1
    if b >= 0xF0:
        if p + 4 > end:
            return OTHER, 1
        cp = (((b & 0x07) << 18) | ((at(buf, p + 1) & 0x3F) << 12) | ((at(buf, p + 2) & 0x3F) << 6)
              | (at(buf, p + 3) & 0x3F))
        if cp >= classes.shape[0]:  # lead bytes F5-F7 are not UTF-8; never read past the table for them
            return OTHER, 4
        return at(classes, cp), 4
    if b >= 0xE0:
        if p + 3 > end:
            return OTHER, 1
        cp = ((b & 0x0F) << 12) | ((at(buf, p + 1) & 0x3F) << 6) | (at(buf, p + 2) & 0x3F)
        return at(classes, cp), 3
    if p + 2 > end or b < 0xC0:
        return OTHER, 1
    return at(classes, ((b & 0x1F) << 6) | (at(buf, p + 1) & 0x3F)), 2


@njit(cache=True, nogil=True, inline="always")
def letter_run(buf, r, end, classes):
    """End of the run of letters (``\\p{L}``) from `r`. ASCII letters go 8 at a time."""
    while r < end:
        b = at(buf, r)
        if b >= 0x80:
            c, w = char_at(buf, r, end, classes)
            if c != LETTER:
                return r
            r += w
            continue
        if not 97 <= (b | 32) <= 122:  # b | 32 folds A..Z onto a..z; no other byte lands there
            return r
        r += 1
        while r + 8 <= end:
            # ctz / 8 is the number of letters before the first non-letter: 8 (and go on) when
            # the whole word is letters, since ctz(0) is 64.
            non = not_ascii_letters(load_u64(buf, r))
            r += np.int64(ctz(non) >> np.uint64(3))
            if non != 0:
                break
    return r


@njit(cache=True, nogil=True, inline="always")
def class_run(buf, r, end, cls, classes):
    """End of the run of characters of class `cls` from `r`."""
    while r < end:
        b = at(buf, r)
        if b < 0x80:
            if at(classes, b) != cls:
                return r
            r += 1
        else:
            c, w = char_at(buf, r, end, classes)
            if c != cls:
                return r
            r += w
    return r


@njit(cache=True, nogil=True, inline="always")
def space_run(buf, p, r, end, classes):
    """End of the white-space piece that starts at `p` (its first character ends at `r`)."""
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


@njit(cache=True, nogil=True, inline="always")
def contraction(buf, p, end):
    """Length of the contraction at ``buf[p]`` (an apostrophe): 2 for 's 't 'm 'd, 3 for 're 've 'll, else 0."""
    if p + 1 < end:
        b1 = at(buf, p + 1)
        if b1 == 115 or b1 == 116 or b1 == 109 or b1 == 100:  # s t m d
            return 2
        if p + 2 < end:
            b2 = at(buf, p + 2)
            if (b2 == 101 and (b1 == 114 or b1 == 118)) or (b1 == 108 and b2 == 108):  # re ve ll
                return 3
    return 0


# Not inlined into its callers (`next_end`): a call per piece that `ascii_ends` leaves to it, and a
# first run that compiles the encode kernel in about 8 s instead of 12.
@njit(cache=True, nogil=True, _nrt=False)
def piece_end(buf, p, end, classes):
    """End (exclusive) of the GPT-2 pre-token that starts at ``buf[p]``; requires ``p < end``.

    Dispatch on the first byte: ASCII by its class, a space glued to the run after it, an
    apostrophe maybe a contraction; then the run of the piece's class.
    """
    b = at(buf, p)
    if b < 0x80:
        c, r = at(classes, b), p + 1
        if b == _SPACE_BYTE and p + 1 < end:  # a space glues to the run after it, unless that is space
            c1, w1 = char_at(buf, p + 1, end, classes)
            if c1 != SPACE:
                c, r = c1, p + 1 + w1
        elif b == _APOSTROPHE:  # contractions: 's 't 'm 'd 're 've 'll
            n = contraction(buf, p, end)
            if n != 0:
                return p + n
    else:
        c, w = char_at(buf, p, end, classes)
        r = p + w
    # one call site each: every inlined copy costs compile time
    if c == LETTER:
        return letter_run(buf, r, end, classes)
    if c != SPACE:
        return class_run(buf, r, end, c, classes)
    return space_run(buf, p, r, end, classes)


# --------------------------------------------------------------------------------------------
# 64 bytes of ASCII at once

_GATHER = np.uint64(0x0102040810204080)
_SPACES = np.uint64(0x2020202020202020)
_LEAD = np.uint64(0xD0D0D0D0D0D0D0D0)
_PAIR = np.uint64(0xFEFEFEFEFEFEFEFE)


@njit(cache=True, nogil=True, inline="always")
def top_bits(m):
    """The top bits of the 8 bytes of `m` (no other bit set) as an 8-bit mask, bit i for byte i.

    Exact: ``m >> 7`` has bit 8i for byte i, and the multiplier has bits 56 - 7j, so bit i lands at
    56 + i; every other product lands outside bits 56..63, and no two on the same bit (no carries).
    """
    return ((m >> np.uint64(7)) * _GATHER) >> np.uint64(56)


@njit(cache=True, nogil=True, inline="always")
def in_range(y, lo, hi):
    """Top bit of each byte of `y` (all below 0x80) that is in ``lo..hi``: adding ``0x80 - lo`` sets a
    byte's top bit when it is >= lo, adding ``0x7F - hi`` when it is > hi; no sum carries past its byte."""
    return (y + np.uint64(0x80 - lo) * _ONES) & ~(y + np.uint64(0x7F - hi) * _ONES) & _HIGH


@njit(cache=True, nogil=True, inline="always")
def cyrillic_bytes(w):
    """Top bit of each byte of `w` that is D0 or D1 (the lead byte of U+0400..U+047F), and of each
    continuation byte (80..BF), as two masks. (``x + 0x7F`` on the low 7 bits, or x, has the top bit
    clear only for a zero byte x, with no carry past the byte.)"""
    x = (w ^ _LEAD) & _PAIR
    leads = ~(((x & _LOW7) + _LOW7) | x) & _HIGH
    return leads, w & ~(w << np.uint64(1)) & _HIGH


@njit(cache=True, nogil=True, inline="always")
def ascii_ends(buf, p, end):
    """The ends of the pieces from ``buf[p]`` (a piece start) that its next 64 bytes decide, as a mask:
    bit i set when a piece ends at p + i. 0 when it decides none, or fewer than 64 bytes are left, or
    its first or last 8 hold bytes of other characters than ASCII and U+0400..U+047F; contractions
    are not looked for (`next_end` cuts at an apostrophe itself).

    For ASCII the pattern comes down to the classes of three neighbours (exact, as the scanner tests
    hold): a piece starts where the class changes, except after a glued space (U+0020 before a
    character that is not space: every such space starts a piece, ` ?X+`); and at the last of two or
    more spaces before a character that is not space (``\\s+(?!\\S)``). Position i needs bytes i-1..i+1,
    so the mask keeps positions up to two before the first byte of any other character. The two bytes
    of a letter U+0400..U+047F (Cyrillic: every one of them is ``\\p{L}``, a test holds the class table
    to it) count as two letters: a run of letters has no piece end inside, whatever their length.
    """
    if p + 64 > end:
        return np.uint64(0)
    first, last = load_u64(buf, p), load_u64(buf, p + 56)
    if (first | last) & _HIGH != 0:  # a block that starts or ends with bytes of other characters: no
        for w in (first, last):
            leads, conts = cyrillic_bytes(w)
            if w & _HIGH & ~(leads | conts) != 0:
                return np.uint64(0)
    letters = numbers = spaces = blanks = high = lead = cont = np.uint64(0)
    for j in range(8):
        w = load_u64(buf, p + 8 * j)
        y = w & _LOW7
        asc = ~w & _HIGH
        at8 = np.uint64(8 * j)
        letters |= top_bits(in_range(y | _FOLD, 97, 122) & asc) << at8  # | 0x20 folds A..Z onto a..z alone
        numbers |= top_bits(in_range(y, 48, 57) & asc) << at8
        blank = ~((y ^ _SPACES) + _LOW7) & asc  # 0x20: (y ^ 0x20) + 0x7F lacks the top bit only for 0
        blanks |= top_bits(blank) << at8
        spaces |= top_bits((in_range(y, 9, 13) | blank) & asc) << at8  # \s in ASCII: 9..13 and 32
        high |= top_bits(w & _HIGH) << at8
        leads, conts = cyrillic_bytes(w)
        lead |= top_bits(leads) << at8
        cont |= top_bits(conts) << at8
    one = np.uint64(1)
    cyrillic = lead & (cont >> one)  # a lead byte and the continuation after it: one letter
    cyrillic |= cyrillic << one
    letters |= cyrillic
    high &= ~cyrillic
    other = ~(letters | numbers | spaces)
    change = ((letters ^ (letters << one)) | (numbers ^ (numbers << one)) | (spaces ^ (spaces << one))
              | (other ^ (other << one)))
    glued = blanks & ~(spaces >> one)  # a space before something that is not space
    starts = (change & ~(glued << one)) | (spaces & (spaces << one) & ~(spaces >> one))
    return starts & ((one << (ctz(high) - one)) - one) & ~one  # ctz(0) is 64: positions 1..62


@njit(cache=True, nogil=True, inline="always")
def next_end(buf, p, end, classes, base, ends):
    """`piece_end` of the piece at `p`, taken from `ends` (`ascii_ends` at `base`) while it has some;
    returns the end and the ``(base, ends)`` to pass on with it (at first: `p` and 0).

    Exact: `ascii_ends` decides the same ends as `piece_end`, but for contractions, which can only
    start at a piece starting with an apostrophe: there `contraction` decides, and `ends` drops the
    ends the contraction passed.
    """
    if ends == 0:
        base, ends = p, ascii_ends(buf, p, end)
    if ends != 0:
        n = contraction(buf, p, end) if at(buf, p) == _APOSTROPHE else 0
        if n == 0:
            return base + np.int64(ctz(ends)), base, ends & (ends - np.uint64(1))
        q = p + n
    else:
        q = piece_end(buf, p, end, classes)
    if ends != 0:  # drop the ends up to q (all of them past bit 62)
        d = q - base
        ends = ends & ~((np.uint64(2) << np.uint64(d)) - np.uint64(1)) if d < 63 else np.uint64(0)
    return q, base, ends


# _nrt=False: this kernel allocates nothing, and without it numba counts references to `buf` and
# `classes` on every inlined helper (two atomic operations per piece, half the scanner's time).
@njit(cache=True, nogil=True, _nrt=False)
def scan(buf, start, end, classes, bounds):
    """Write the piece boundaries of ``buf[start:end]`` into `bounds` (start, then each piece's end).

    `bounds` must hold ``end - start + 1`` entries; returns the number of pieces.
    """
    n = 0
    bounds[0] = start
    p, base, ends = start, start, np.uint64(0)
    while p < end:
        p, base, ends = next_end(buf, p, end, classes, base, ends)
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
