"""The BPE merge loop in numba, over flat NumPy tables.

Byte-pair encoding turns one pre-token (a piece of UTF-8 bytes) into token ids:

1. start from one token per byte;
2. among all adjacent pairs, find the pair with the lowest merge rank (the earliest learned merge);
3. replace it by the merged token and repeat until no adjacent pair is a merge.

This is OpenAI's original GPT-2 algorithm. Its plain-Python form is `npgpt.reference.bpe`,
which the tests hold this module to. Here the same loop runs over NumPy arrays inside numba:

- pair table: an open-addressing hash table from ``(left_id, right_id)`` to ``(rank, merged_id)``,
  key and value side by side in one int64 array (`build_pair_table`, `pair_lookup`);
- whole-piece tables (`PieceTable`, one layout for two uses): a hash table from a piece's bytes to
  its ids, probed with the piece's first 16 bytes as two machine words (`piece_words`), its ids kept
  in the slot in the output's own width when they fit, so a piece of up to 16 bytes -- most of them
  -- is found and written with one 32-byte slot, a cache line, and no second memory access.
  * tokens: most pieces (``" the"``, ``" and"``) are themselves tokens. Only tokens that the merge
    loop itself would produce from their bytes are in it, so the shortcut never changes an answer
    (`self_encoding` checks each token once, when `build_tables` runs);
  * piece cache: pieces that did need merging are remembered across calls, in a bounded table that
    is emptied when full (`PieceCache`), so memory stays bounded however much new text streams by.
    All threads share it (`PieceCaches`): a piece learned by one is not learned again by another;
- merge loop: for short pieces a scan of the pair ranks (`_merge_short`, quadratic but tiny); for
  long ones a linked list plus a binary heap of ``(rank, position)`` with lazy deletion
  (`_merge_long`, O(n log n)), so ``"a" * 10**6`` stays linear-ish.

Both loops do exactly what GPT-2 does: take the lowest-ranked pair and merge *every* occurrence of
it in one left-to-right sweep, then look again. (Merging one occurrence at a time, as tiktoken does,
gives the same answer for GPT-2's files, but not for a merge list in which two different pairs make
the same bytes: there, a merge can create a pair of lower rank in the middle of a sweep.)

Every kernel takes and returns arrays and integers only; the checks happen in `npgpt.Encoding` before a
kernel is entered, and every array access here stays inside the sizes the caller passed. The piece
cache is the one array that kernels on several threads write at once: `piece_put` says how.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np
from numba import njit

from npgpt.bpe.pretokenize_kernels import (
    at,
    compare_swap,
    load_acquire,
    load_u64,
    next_end,
    prefetch,
    put,
    store_release,
    store_u64,
    width_of,
)

NO_RANK = np.int64(2**62)  # rank of a pair that is not a merge; larger than any real rank
SHORT_PIECE = 64  # pieces up to this many bytes use the simple scan; longer ones the heap
SCRATCH = 256  # the encode loop's work arrays fit pieces up to this many bytes; longer get their own

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xFF51AFD7ED558CCD)


# --------------------------------------------------------------------------------------------
# hashing


@njit(cache=True, nogil=True, inline="always")
def hash_bytes(buf, start, end):
    """FNV-1a over ``buf[start:end]``, then a final mix.

    The tables take a slot from the low bits of the hash, and FNV's low bits mix poorly (the low k
    bits of a product depend only on the low k bits of its factors), so similar pieces would crowd
    into neighbouring slots. The xor-shift-multiply finish (from MurmurHash3) spreads every bit.
    """
    h = _FNV_OFFSET
    for i in range(start, end):
        h = (h ^ np.uint64(buf[i])) * _FNV_PRIME
    h ^= h >> np.uint64(33)
    h *= _MIX
    h ^= h >> np.uint64(33)
    return h


@njit(cache=True, nogil=True, inline="always")
def same_bytes(pool, a, buf, start, n):
    """``pool[a:a+n] == buf[start:start+n]``, byte by byte (the check behind every hash hit)."""
    for i in range(n):
        if pool[a + i] != buf[start + i]:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def same_words(pool, a, buf, start, n):
    """`same_bytes`, 8 bytes at a time while 8 remain (one 64-bit compare each), then byte by byte."""
    i = 0
    while i + 8 <= n:  # reads pool[a + i : a + i + 8] and buf[start + i : start + i + 8], both inside n
        if load_u64(pool, a + i) != load_u64(buf, start + i):
            return False
        i += 8
    for j in range(i, n):
        if pool[a + j] != buf[start + j]:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def pair_slot(key, mask):
    # Fibonacci hashing: multiply, keep high bits. Pair keys are small and sequential; the multiply
    # spreads them over the table.
    return np.int64(((np.uint64(key) * _GOLDEN) >> np.uint64(32)) & np.uint64(mask))


# --------------------------------------------------------------------------------------------
# tables


@njit(cache=True)
def build_pair_table(lefts, rights, merged, cap):
    """Hash table of merges, one int64 array: slot s holds the key ``left << 32 | right`` at 2s and
    the value ``rank << 32 | merged_id`` at 2s + 1, side by side so a probe touches one cache line.

    `cap` (slots) is a power of two at least twice the number of merges; empty slots hold key -1.
    Rank i is the i-th merge; pairs are unique (`npgpt.bpe.Encoding` checks).
    """
    table = np.full(2 * cap, -1, np.int64)
    mask = cap - 1
    for i in range(lefts.shape[0]):
        key = (np.int64(lefts[i]) << 32) | np.int64(rights[i])
        s = pair_slot(key, mask)
        while table[2 * s] != -1:
            s = (s + 1) & mask
        table[2 * s] = key
        table[2 * s + 1] = (np.int64(i) << 32) | np.int64(merged[i])
    return table


@njit(cache=True, nogil=True, inline="always")
def pair_lookup(pairs, left, right):
    """Return ``rank << 32 | merged`` of the pair, or ``NO_RANK`` when it is not a merge."""
    key = (np.int64(left) << 32) | np.int64(right)
    mask = pairs.shape[0] // 2 - 1
    s = pair_slot(key, mask)
    while True:
        k = pairs[2 * s]
        if k == key:
            return pairs[2 * s + 1]
        if k == -1:
            return NO_RANK
        s = (s + 1) & mask


# _LOW_BYTES[m]: a word with its low m bytes set, m = 0..8 (a table: shifting a uint64 by 64 is undefined)
_LOW_BYTES = np.array([(1 << (8 * m)) - 1 for m in range(9)], np.uint64)


@njit(cache=True, nogil=True, inline="always")
def head_word(buf, start, n):
    """The first ``min(n, 8)`` bytes of ``buf[start:start + n]`` as a little-endian uint64, zeros above
    (zero when n <= 0).

    One 8-byte load whenever 8 bytes remain in `buf` (the bytes past the piece are masked off, so
    the word depends on the piece alone); byte by byte only at the very end of the buffer.
    """
    if start + 8 <= buf.shape[0]:
        return load_u64(buf, start) & at(_LOW_BYTES, min(max(n, 0), 8))
    w = np.uint64(0)
    for i in range(min(n, 8)):
        w |= np.uint64(buf[start + i]) << np.uint64(8 * i)
    return w


@njit(cache=True, nogil=True, inline="always")
def piece_words(buf, start, n):
    """Bytes 0..7 and 8..15 of the piece ``buf[start:start + n]`` as two `head_word` words (zeros past n).

    Two loads and two masks, no branch on n, whenever 16 bytes remain in `buf`.
    """
    if start + 16 <= buf.shape[0]:
        return (load_u64(buf, start) & at(_LOW_BYTES, min(n, 8)),
                load_u64(buf, start + 8) & at(_LOW_BYTES, min(max(n - 8, 0), 8)))
    return head_word(buf, start, n), head_word(buf, start + 8, n - 8)


@njit(cache=True, nogil=True, inline="always")
def piece_slot(buf, start, end, w0, w1, shift):
    """Home slot of the piece ``buf[start:end]`` (first words `w0`, `w1`) in a table of ``2**(64 - shift)`` slots.

    Multiply-xor over 8-byte words; the slot is the product's top bits (Fibonacci hashing), which
    depend on every bit of the input, unlike its low bits. Pieces up to 16 bytes: no loop.
    """
    h = ((w0 ^ np.uint64(end - start)) * _GOLDEN) ^ (w1 * _MIX)  # two products side by side, not in a row
    i = start + 16
    while i < end:
        h = ((h >> np.uint64(29)) ^ h ^ head_word(buf, i, end - i)) * _MIX
        i += 8
    return np.int64(h >> np.uint64(shift))


class PieceTable(NamedTuple):
    """A hash table from whole pieces (bytes) to their ids: the tokens, then the piece cache.

    ``slots``: int64, four per slot (32 bytes, so a probe reads one cache line), for a piece of n bytes
    and k ids:

    0. bytes 0..7 as a word (`piece_words`);
    1. ``n << 48 | k << 32 | offset``: where the piece's record starts in `pool` (0 only when empty);
    2. bytes 8..15 as a word when n > 8; else ids (their bytes 8..15, see 3);
    3. the ids' bytes 0..7: the ids little-endian, ``width`` bytes each, packed as they lie in the
       output array, so one 8-byte store writes them all.

    The ids live in the slot ("inline") when they fit: 16 bytes when n <= 8 (all of them for 2-byte
    ids: BPE never yields more ids than bytes), else 8. A piece's record in `pool` holds its bytes
    16.. (when n > 16), then its ids when not inline. So a piece of up to 16 bytes is matched by
    comparing words, and most are answered from the one cache line of their slot.
    ``state``: [entries, pool bytes used, id width (2 or 4), times emptied, hash shift, entries when emptied].
    """

    slots: np.ndarray
    pool: np.ndarray
    state: np.ndarray


POOL_SLACK = 8  # pool bytes past the last record: the ids are read 8 bytes at a time
OUT_SLACK = 8  # ids the encode kernel needs past the end of its output: it writes ids 8 bytes at a time


def zeros_on_lines(n: int, dtype) -> np.ndarray:
    """``np.zeros(n, dtype)`` starting on a 64-byte boundary (NumPy only promises 16): then every
    32-byte slot of a `PieceTable` lies within one cache line, instead of every other one straddling two."""
    dtype = np.dtype(dtype)
    raw = np.zeros(n * dtype.itemsize + 64, np.uint8)
    skip = -raw.ctypes.data % 64
    return raw[skip : skip + n * dtype.itemsize].view(dtype)


def piece_table(n_slots: int, n_bytes: int, id_width: int) -> PieceTable:
    """An empty `PieceTable` for ids of `id_width` bytes (2 or 4); zeroed memory, so the OS hands out
    pages only as they fill."""
    if n_slots & (n_slots - 1) or n_slots < 4:
        raise ValueError(f"slots must be a power of two >= 4, got {n_slots}")
    if id_width not in (2, 4):
        raise ValueError(f"ids are 2 or 4 bytes wide, got {id_width}")
    state = np.zeros(6, np.int64)
    state[2] = id_width
    state[4] = 64 - (n_slots.bit_length() - 1)
    return PieceTable(zeros_on_lines(4 * n_slots, np.int64), np.zeros(n_bytes + POOL_SLACK, np.uint8), state)


MAX_KEY = 2**16 - 1  # a piece's length is packed in 16 bits


@njit(cache=True, nogil=True, inline="always")
def piece_find(table, buf, start, end, w0, w1):
    """Slot of ``buf[start:end]`` (first words `w0`, `w1` from `piece_words`) in `table`, or -1."""
    return piece_probe(table, buf, start, end, w0, w1, piece_slot(buf, start, end, w0, w1, table[2][4]))


@njit(cache=True, nogil=True, inline="always")
def piece_probe(table, buf, start, end, w0, w1, s):
    """`piece_find`, from the piece's home slot `s` (`piece_slot`), computed beforehand."""
    slots, pool, _ = table
    mask = slots.shape[0] // 4 - 1
    n = end - start
    while True:
        # The meta word first, and with acquire order: once it is set, the slot and its record are
        # whole (`piece_put` sets it last). A slot another thread is still writing (BUSY, -1) has
        # length -1, so it matches no piece, whatever its other words hold at that moment.
        meta = load_acquire(slots, 4 * s + 1)
        if meta == 0:
            return -1
        # equal first words and lengths: equal pieces up to 8 bytes (the words are zero past n), and
        # up to 16 with equal second words. `&`, not `and`: one branch, not three.
        if (at(slots, 4 * s) == np.int64(w0)) & (meta >> 48 == n) & ((n <= 8) | (at(slots, 4 * s + 2) == np.int64(w1))):
            if n <= 16 or same_words(pool, meta & 0xFFFFFFFF, buf, start + 16, n - 16):
                return s
        s = (s + 1) & mask


@njit(cache=True, nogil=True, inline="always")
def piece_write(table, s, out, o):
    """Write the ids of slot `s` (from `piece_find`) to ``out[o:]``; return how many (k).

    It writes whole 8-byte words, up to 16 bytes from ``out[o]`` however small k is: `out` must have
    room for `OUT_SLACK` ids past the last id, and the ids past ``out[o + k]`` are overwritten by
    whatever comes next. The ids are stored in `out`'s own width (`PieceTable`), so the words are
    copied as they are, with no branch on k.
    """
    slots, pool, _ = table
    meta = at(slots, 4 * s + 1)
    n = meta >> 48
    k = (meta >> 32) & 0xFFFF
    width = width_of(out)
    if k * width <= 16 - 8 * (n > 8):  # inline: ids bytes 0..7 in word 3, 8..15 in word 2 (when n <= 8)
        store_u64(out, o, np.uint64(at(slots, 4 * s + 3)))
        store_u64(out, o + 8 // width, np.uint64(at(slots, 4 * s + 2)))  # n > 8: key bytes, past the ids
    else:
        a = (meta & 0xFFFFFFFF) + max(n - 16, 0)
        for j in range(0, k * width, 8):  # reads up to 7 bytes past the record: POOL_SLACK
            store_u64(out, o + j // width, load_u64(pool, a + j))
    return k


BUSY = np.int64(-1)  # a slot's meta word while a thread writes the slot (see `piece_put`)


@njit(cache=True, nogil=True, inline="always")
def _reserve(state, i, n, limit):
    """Add `n` to ``state[i]`` unless the sum would pass `limit`; return the value before, or -1.

    A compare-and-swap loop, so that threads reserving at once each get a range of their own, and
    together they never pass the limit."""
    while True:
        v = load_acquire(state, i)
        if v + n > limit:
            return -1
        if compare_swap(state, i, v, v + n):
            return v


@njit(cache=True, nogil=True)
def piece_put(table, buf, start, end, w0, w1, ids_, k):
    """Add ``buf[start:end] -> ids_[:k]`` (the piece must not be in the table; ``ids_.itemsize`` must be the
    table's id width); False when there is no room: the table is half full, or its pool is (the caller
    empties the table and tries again).

    Safe while other threads probe the table and put into it (every encode call of an `npgpt.Encoding`
    shares one `PieceCache`): a thread reserves its pool bytes and its entry (`_reserve`), writes its
    record, claims an empty slot by swapping the slot's meta word from 0 to `BUSY`, writes the slot,
    and sets the meta word last (`store_release`), which a probe reads first (`load_acquire`). Two
    threads may put the same piece at once; it then has two slots with the same ids, and a probe
    finds one of them.
    """
    slots, pool, state = table
    n_slots = slots.shape[0] // 4
    n = end - start
    width = width_of(ids_)
    tail = max(n - 16, 0)
    inline = k * width <= 16 - 8 * (n > 8)
    need = tail + (0 if inline else k * width)
    a = _reserve(state, 1, need, pool.shape[0] - POOL_SLACK)
    if a < 0 or _reserve(state, 0, np.int64(1), n_slots // 2) < 0:  # (pool bytes taken for nothing:
        return False  # the table is full, and will be emptied)
    for i in range(tail):  # loops, not slice copies: those may allocate, which this kernel cannot
        pool[a + i] = buf[start + 16 + i]
    lo = hi = np.uint64(0)  # words 3 and 2 of the slot
    for i in range(k):
        x = np.uint64(ids_[i])
        if inline:
            bit = 8 * width * i
            if bit < 64:
                lo |= x << np.uint64(bit)
            else:
                hi |= x << np.uint64(bit - 64)
        else:
            for b in range(width):
                pool[a + tail + width * i + b] = np.uint8((x >> np.uint64(8 * b)) & np.uint64(0xFF))
    mask = n_slots - 1
    s = piece_slot(buf, start, end, w0, w1, state[4])
    while not (load_acquire(slots, 4 * s + 1) == 0 and compare_swap(slots, 4 * s + 1, np.int64(0), BUSY)):
        s = (s + 1) & mask  # (ends: at most half the slots are reserved)
    slots[4 * s] = np.int64(w0)
    slots[4 * s + 2] = np.int64(w1) if n > 8 else np.int64(hi)
    slots[4 * s + 3] = np.int64(lo)
    store_release(slots, 4 * s + 1, (np.int64(n) << 48) | (np.int64(k) << 32) | a)
    return True


@njit(cache=True, nogil=True, _nrt=False)
def fill_token_table(table, pool, offsets, ids, ok):
    """Put token ``ids[j]`` (bytes ``pool[offsets[j]:offsets[j+1]]``) in `table` wherever ``ok[j]``."""
    for j in range(ids.shape[0]):
        if ok[j]:
            a, b = offsets[j], offsets[j + 1]
            w0, w1 = piece_words(pool, a, b - a)
            piece_put(table, pool, a, b, w0, w1, ids[j : j + 1], np.int64(1))  # not a literal 1,
            # which numba would compile `piece_put` for anew


# --------------------------------------------------------------------------------------------
# the merge loops


@njit(cache=True, nogil=True)
def _merge_short(parts, m, ranks, fresh, pairs):
    """Merge ``parts[:m]`` in place; return the new length. ``ranks``, ``fresh``: scratch of size >= m.

    The textbook loop: find the lowest-ranked adjacent pair; sweep left to right merging each of
    its (non-overlapping) occurrences; repeat. ``ranks[i]`` is the rank of pair (i, i + 1). One
    pass per sweep does everything: it writes the merged parts, looks up again only the pairs that
    touch a newly merged token (``fresh``), and finds the lowest rank for the next sweep.
    """
    best = NO_RANK
    for i in range(m - 1):
        ranks[i] = pair_lookup(pairs, parts[i], parts[i + 1])
        best = min(best, ranks[i])
    while best != NO_RANK:
        merged = np.int32(best & 0xFFFFFFFF)
        next_best = NO_RANK
        w = 0
        i = 0
        while i < m:
            # reads happen at i, writes at w - 1 and w <= i: the sweep can work in place
            if i < m - 1 and ranks[i] == best:
                parts[w] = merged
                fresh[w] = True
                i += 2
            else:
                parts[w] = parts[i]
                ranks[w] = ranks[i]  # pair (w, w + 1): still right unless w + 1 turns out fresh
                fresh[w] = False
                i += 1
            if w > 0:
                if fresh[w] or fresh[w - 1]:
                    ranks[w - 1] = pair_lookup(pairs, parts[w - 1], parts[w])
                next_best = min(next_best, ranks[w - 1])
            w += 1
        m = w
        best = next_best
    return m


@njit(cache=True, nogil=True, inline="always")
def _heap_push(heap, size, item):
    i = size
    heap[i] = item
    while i > 0:
        p = (i - 1) >> 1
        if heap[p] <= heap[i]:
            break
        heap[p], heap[i] = heap[i], heap[p]
        i = p
    return size + 1


@njit(cache=True, nogil=True, inline="always")
def _heap_pop(heap, size):
    top = heap[0]
    size -= 1
    heap[0] = heap[size]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and heap[c + 1] < heap[c]:
            c += 1
        if heap[i] <= heap[c]:
            break
        heap[i], heap[c] = heap[c], heap[i]
        i = c
    return top, size


@njit(cache=True, nogil=True)
def _merge_long(parts, m, nxt, prv, heap, sweep, pairs):
    """Same result as `_merge_short`, in O(m log m): a linked list of parts and a heap of candidates.

    A heap item is ``rank << 32 | position``. The lowest rank is taken off the heap with all its
    occurrences at once (they come out leftmost first) and merged as one sweep, as GPT-2 does; pairs
    that the sweep creates wait in the heap for the next round. Merging makes old items stale; a
    stale item is skipped (its left part is gone, or the pair there is no longer the one pushed).
    Scratch: `nxt`, `prv` (int32) of size >= m; `heap` and `sweep` (int32) of size >= 2 * m (m - 1
    pairs at the start; each merge pops at least one item and pushes at most two). Positions fit 32
    bits: `scratch` refuses pieces of `MAX_PIECE_BYTES` or more.
    """
    size = 0
    for i in range(m):
        nxt[i] = i + 1 if i + 1 < m else -1
        prv[i] = i - 1
    for i in range(m - 1):
        v = pair_lookup(pairs, parts[i], parts[i + 1])
        if v != NO_RANK:
            size = _heap_push(heap, size, ((v >> 32) << 32) | i)
    while size > 0:
        rank = heap[0] >> 32
        k = 0
        while size > 0 and (heap[0] >> 32) == rank:
            item, size = _heap_pop(heap, size)
            sweep[k] = item & 0xFFFFFFFF
            k += 1
        for j in range(k):
            pos = sweep[j]
            right = nxt[pos]
            if parts[pos] < 0 or right < 0:
                continue
            v = pair_lookup(pairs, parts[pos], parts[right])
            if v == NO_RANK or (v >> 32) != rank:
                continue
            parts[pos] = np.int32(v & 0xFFFFFFFF)
            parts[right] = -1
            after = nxt[right]
            nxt[pos] = after
            if after >= 0:
                prv[after] = pos
                w = pair_lookup(pairs, parts[pos], parts[after])
                if w != NO_RANK:
                    size = _heap_push(heap, size, ((w >> 32) << 32) | pos)
            before = prv[pos]
            if before >= 0:
                w = pair_lookup(pairs, parts[before], parts[pos])
                if w != NO_RANK:
                    size = _heap_push(heap, size, ((w >> 32) << 32) | before)
    # compact the surviving parts to the front
    n = 0
    i = 0
    while i >= 0:
        parts[n] = parts[i]
        n += 1
        i = nxt[i]
    return n


AHEAD = 64  # pieces the encode kernel scans in a batch, before it encodes them
WORK_PER_BYTE = 5  # int64 words of merge-loop work space per byte of the longest piece (`merge_bytes`)
MAX_PIECE_BYTES = 2**31 - 1  # the long merge loop keeps positions in 32 bits


def scratch(longest: int) -> np.ndarray:
    """Work space for the merge loops, for pieces of up to `longest` bytes: one int64 array that
    `merge_bytes` cuts into its work arrays (one argument, so a kernel call stays cheap), then
    ``4 * AHEAD`` for the encode kernel's batch of pieces scanned ahead. 40 bytes per byte of the
    piece: a text that is one 20 MB word needs 0.8 GB here (numbers, not a limit anyone chose).

    Raises ValueError for a piece of `MAX_PIECE_BYTES` or more, rather than let positions wrap."""
    if longest > MAX_PIECE_BYTES:
        raise ValueError(f"a pre-token of {longest:,} bytes (one word with no space or punctuation) is longer "
                         f"than the merge loop takes ({MAX_PIECE_BYTES:,} bytes)")
    return np.empty(WORK_PER_BYTE * max(longest, 1) + 4 * AHEAD, np.int64)


@njit(cache=True, nogil=True)
def merge_bytes(buf, start, end, byte_ids, pairs, work):
    """BPE of ``buf[start:end]`` into ``work[:m]``; return how many ids it wrote.

    `work` comes from ``scratch(n)`` with n at least ``m = end - start``. The short loop takes three
    int64 arrays of m; the long one `parts`, a heap of 2m int64 items, and its links and sweep list
    as int32 (4m of them in the last 2m words): 5m words either way.
    """
    m = end - start
    parts = work[:m]
    for i in range(m):
        parts[i] = byte_ids[buf[start + i]]
    if m <= SHORT_PIECE:
        return _merge_short(parts, m, work[m : 2 * m], work[2 * m : 3 * m], pairs)
    links = work[3 * m : 5 * m].view(np.int32)
    return _merge_long(parts, m, links[:m], links[m : 2 * m], work[m : 3 * m], links[2 * m : 4 * m], pairs)


# --------------------------------------------------------------------------------------------
# the piece cache


class PieceCache:
    """The table the encode kernel reads: the tokens, then every piece that needed the merge loop.

    A copy of the tokens' `PieceTable` (`Tables.tokens`) with room to grow: pieces that needed the
    merge loop are added as they are met, and kept across calls. One cache serves every encode call
    of an `npgpt.Encoding`, on every thread (`piece_put` is safe for that), so that a piece learned
    by one thread is not learned again by the next. When it is half full or its pool has no room, it
    is emptied back to the tokens (`reset`), so memory stays bounded -- 32 bytes a slot plus the
    pool, about 24 MB with the defaults -- however much new text streams through. Pieces longer than
    `MAX_PIECE` bytes are not cached (they rarely repeat). `reset` must not run while a kernel reads
    the cache: `PieceCaches` sees to that.
    """

    MAX_PIECE = SCRATCH

    def __init__(self, tokens: PieceTable, pool_bytes: int = 1 << 22, pool_ids: int = 1 << 21):
        self.tokens = tokens
        width = int(tokens.state[2])
        slots = zeros_on_lines(len(tokens.slots), np.int64)
        slots[:] = tokens.slots
        self.table = PieceTable(slots, np.zeros(len(tokens.pool) + pool_bytes + width * pool_ids, np.uint8),
                                tokens.state.copy())
        self.table.pool[: len(tokens.pool)] = tokens.pool
        self.arrays = tuple(self.table)  # a plain tuple: quicker for numba to type than a NamedTuple
        self.users: list[None] = []  # one item per kernel call reading it (`PieceCaches`)
        self.retired = False  # full, and replaced while others still read it

    @property
    def state(self) -> np.ndarray:
        """[entries, pool bytes used, id width, times emptied, hash shift, entries when emptied]."""
        return self.table.state

    def reset(self) -> None:
        """Empty the cache back to just the tokens (whose records stay where they are)."""
        emptied = self.table.state[3] + 1
        self.table.slots[:] = self.tokens.slots
        self.table.state[:] = self.tokens.state
        self.table.state[3] = emptied


class PieceCaches:
    """Lends the shared `PieceCache` to encode calls, and empties it when full with no kernel reading it.

    Lending and giving back take no lock (a list's append and pop are atomic under the GIL), so a
    short encode pays about 0.1 us for them. Only a full cache takes the lock:

    - read by this call alone: it is emptied where it is (`PieceCache.reset`), as on one thread;
    - read by other calls too: it is *retired* -- new calls get a second cache (the spare, or a new
      one), the calls still reading it go on with it (it only refuses new pieces now), and the last
      of them empties it and keeps it as the spare. So two threads keep at most two caches.

    A call reads the cache only after it has counted itself a user *and* found the cache still the
    current one; while a cache is being emptied it is not the current one (`current` is None), so
    no kernel reads a cache while it is emptied.
    """

    def __init__(self, tokens: PieceTable, **sizes):
        self.tokens, self.sizes = tokens, sizes
        self.current: PieceCache | None = None
        self.spare: PieceCache | None = None
        self.lock = threading.Lock()

    def lend(self) -> PieceCache:
        """The cache, counted as read by one more call until `give_back`."""
        while True:
            cache = self.current
            if cache is None:  # the first call, or the cache is being emptied: wait for that, under the lock
                with self.lock:
                    if self.current is None:
                        self.current = PieceCache(self.tokens, **self.sizes)
                continue
            cache.users.append(None)
            if self.current is cache:  # still current once counted: it cannot be emptied under us
                return cache
            self.give_back(cache)

    def give_back(self, cache: PieceCache) -> None:
        """This call no longer reads `cache`; the last reader of a retired cache empties it for reuse."""
        cache.users.pop()
        if cache.retired and not cache.users:
            with self.lock:
                if cache.retired and not cache.users:
                    cache.reset()
                    cache.retired = False
                    self.spare = cache

    def full(self, cache: PieceCache) -> PieceCache:
        """The kernel found `cache` (lent to this call) full: the cache to go on with, lent in its place."""
        with self.lock:
            if self.current is cache:
                self.current = None  # no call starts reading it from here on
                if len(cache.users) == 1:  # only this call reads it
                    cache.reset()
                    self.current = cache
                    return cache
                cache.retired = True
                self.current, self.spare = self.spare or PieceCache(self.tokens, **self.sizes), None
        self.give_back(cache)
        return self.lend()


# --------------------------------------------------------------------------------------------
# the whole text


@njit(cache=True)
def joinable_pairs(pool, offsets):
    """``joinable[b1 * 256 + b2]``: some token has byte b1 followed by byte b2.

    Where two adjacent bytes of a piece are not joinable, no merge can ever cross between them (it
    would make a token holding that pair), so each side merges exactly as it would alone. GPT-2's
    tokens hold only 2,689 of the 65,536 pairs, which cuts most Chinese and Russian pieces into
    short runs that are tokens already.
    """
    joinable = np.zeros(65536, np.bool_)
    for j in range(offsets.shape[0] - 1):
        for i in range(offsets[j], offsets[j + 1] - 1):
            joinable[np.int64(pool[i]) * 256 + pool[i + 1]] = True
    return joinable


@njit(cache=True, nogil=True)
def encode_split(buf, start, end, byte_ids, pairs, table, joinable, work, out, o):
    """Encode ``buf[start:end]`` as runs cut where a byte pair is not joinable (see `joinable_pairs`):
    each run is a byte, a piece of `table` (one probe), or goes through the merge loop.

    Returns the new `o`.
    """
    s = start
    for i in range(start + 1, end + 1):
        if i < end and joinable[np.int64(buf[i - 1]) * 256 + buf[i]]:
            continue
        if i - s == 1:
            out[o] = byte_ids[buf[s]]
            o += 1
        else:
            w0, w1 = piece_words(buf, s, i - s)
            t = piece_find(table, buf, s, i, w0, w1)
            if t >= 0:
                o += piece_write(table, t, out, o)
            else:
                m = merge_bytes(buf, s, i, byte_ids, pairs, work)
                for j in range(m):
                    out[o + j] = work[j]
                o += m
        s = i
    return o


# _nrt=False: this kernel allocates nothing (the caller passes every array), and without it numba
# counts references to each array at every inlined helper: two atomic operations per piece.
@njit(cache=True, nogil=True, _nrt=False)
def encode_segments(buf, segments, scan_segments, classes, byte_ids, pairs, joinable, cache, work, state, out):
    """Encode the text ``buf`` (UTF-8) into `out`; return 0 when done (``state[2]`` ids written).

    `segments` is an (n, 3) array of ``(start, end, special_id)``. A row with ``special_id >= 0``
    emits that id (a special token). Otherwise ``buf[start:end]`` is ordinary text: with
    `scan_segments` it is cut into pieces by GPT-2's scanner (`npgpt.bpe.pretokenize_kernels.next_end`),
    pieces going straight to the merge loop with no list of pieces ever built; without, the row is
    one piece already cut by the `regex` module (the path for custom patterns). Pieces never cross
    a row's end, which is how the regex sees a text cut at special tokens.

    Each piece: one probe of `cache` (`PieceCache`: the tokens, single bytes included, and the pieces
    met before); else `encode_split` (runs that merges cannot cross, each merged alone), and the result
    goes into the cache.

    The scanner works in batches of up to `AHEAD` pieces, noting each piece's end, first words and
    home slot (in `work`), and asks for that slot's cache line (`prefetch`) as soon as it is known;
    then the batch is encoded: a probe that would wait for memory finds its line on the way or there.
    The probe itself is unchanged, so the ids are too.

    The kernel stops early in two cases, returning why, and the caller calls again: `state`
    (``[row, position, ids written]``, zeros at first) carries on where it stopped.

    - a piece longer than `work` (from `scratch`) fits: it returns the piece's length, and the
      caller passes larger work space;
    - the cache is full: it returns -1, and the caller empties it back to the tokens (`PieceCache.reset`).

    `out` must hold ``len(buf) + n + OUT_SLACK`` ids (BPE never yields more ids than bytes; the slack
    is for `piece_write`), of the table's id width: else the kernel returns -2 and writes nothing.
    """
    if out.shape[0] < buf.shape[0] + segments.shape[0] + OUT_SLACK or out.itemsize != cache[2][2]:
        return -2
    longest = (work.shape[0] - 4 * AHEAD) // WORK_PER_BYTE
    # (end, home slot, first two words) of each piece of the batch
    batch = work[WORK_PER_BYTE * longest : WORK_PER_BYTE * longest + 4 * AHEAD]
    slots, shift = cache[0], cache[2][4]
    o = state[2]
    for k in range(state[0], segments.shape[0]):
        if segments[k, 2] >= 0:
            out[o] = segments[k, 2]
            o += 1
            continue
        scanned = max(segments[k, 0], state[1])
        end = min(segments[k, 1], buf.shape[0])
        base, ends = scanned, np.uint64(0)  # the scanner's 64 bytes at once (`next_end`)
        while scanned < end:
            # Scan a batch of pieces and ask for each one's slot (`prefetch`) as soon as its home is
            # known, then encode the batch: a slot not in cache is on its way while the pieces before it
            # are encoded. A hint only: the probe is the same after. (Two tight loops, each with
            # branches of its own to predict, beat one loop that scans one piece per piece encoded.)
            first, tail = scanned, 0
            while tail < AHEAD and scanned < end:
                if scan_segments:
                    q, base, ends = next_end(buf, scanned, end, classes, base, ends)
                else:
                    q = end
                # Every piece, single bytes too: a branch on its length would be a guess a CPU often
                # gets wrong. (A piece longer than `longest` is hashed for nothing: the kernel stops there.)
                w0, w1 = piece_words(buf, scanned, q - scanned)
                home = piece_slot(buf, scanned, q, w0, w1, shift)
                r = 4 * tail
                put(batch, r, q)  # (its start is the end before it)
                put(batch, r + 1, home)
                put(batch, r + 2, np.int64(w0))
                put(batch, r + 3, np.int64(w1))
                prefetch(slots, 4 * home)
                tail += 1
                scanned = q
            for j in range(tail):
                r = 4 * j
                p, q = first if j == 0 else at(batch, r - 4), at(batch, r)
                n = q - p
                if n > longest:
                    state[0], state[1], state[2] = k, p, o
                    return n
                # single bytes too: they are in the table (`build_tables`), and one path is no guess
                w0, w1 = np.uint64(at(batch, r + 2)), np.uint64(at(batch, r + 3))
                t = piece_probe(cache, buf, p, q, w0, w1, at(batch, r + 1))
                if t >= 0:
                    o += piece_write(cache, t, out, o)
                else:
                    o2 = encode_split(buf, p, q, byte_ids, pairs, cache, joinable, work, out, o)
                    if n <= SCRATCH and not piece_put(cache, buf, p, q, w0, w1, out[o:o2], o2 - o):
                        if load_acquire(cache[2], 0) > cache[2][5]:  # no room, and pieces to drop: empty it, come back
                            state[0], state[1], state[2] = k, p, o
                            return -1
                        # else even an empty cache has no room for this piece: leave it out
                    o = o2
        state[1] = 0
    state[0], state[1], state[2] = segments.shape[0], 0, o
    return 0


@njit(cache=True, nogil=True, _nrt=False)
def self_encoding(pool, offsets, ids, byte_ids, pairs, work, ok):
    """For each token, whether BPE of its own bytes gives back exactly that one token.

    Only these may take the whole-piece shortcut. (In general BPE a token's bytes can encode to
    several tokens, when a different merge order wins; see the module docstring.)
    """
    for j in range(ids.shape[0]):
        m = merge_bytes(pool, offsets[j], offsets[j + 1], byte_ids, pairs, work)
        ok[j] = m == 1 and work[0] == ids[j]
    return ok


# --------------------------------------------------------------------------------------------
# building the tables (Python; runs once per Encoding)


class Tables(NamedTuple):
    """Everything the encode kernel reads, built once per vocabulary by `build_tables`."""

    byte_ids: np.ndarray  # int32[256]: the id of each single byte
    pairs: np.ndarray  # the pair table: (left, right) -> (rank, merged id)
    tokens: PieceTable  # whole-piece table: the self-encoding tokens
    joinable: np.ndarray  # bool[65536]: byte pairs that occur inside some token
    n_not_self_encoding: int  # tokens that BPE of their own bytes does not give back whole
    id_dtype: np.dtype  # the encode kernel's output dtype, in which the tables store ids


def build_tables(encoder: dict[bytes, int], merges: list[tuple[bytes, bytes]], id_dtype=None) -> Tables:
    """Lay a vocabulary (mergeable bytes -> id) and its merges out as the kernels' flat tables.

    The caller (`npgpt.Encoding`) has checked them: every single byte has an id, every merge joins
    two known tokens into a known token, and there are fewer than 2**30 merges. `id_dtype` (uint16 or
    uint32) is the dtype of the encode kernel's output, which must hold every id (special tokens'
    too); by default the smallest that holds the vocabulary's.
    """
    byte_ids = np.array([encoder[bytes([x])] for x in range(256)], np.int32)
    lefts = np.array([encoder[a] for a, _ in merges], np.int32)
    rights = np.array([encoder[b] for _, b in merges], np.int32)
    merged = np.array([encoder[a + b] for a, b in merges], np.int32)
    cap = 1 << max(4, (2 * len(merges)).bit_length())  # at most half full
    pairs = build_pair_table(lefts, rights, merged, cap)
    # Every mergeable token; keep those that BPE gives back whole. (Single bytes too, which BPE always
    # gives back: then the encode kernel probes the table for every piece, with no branch on its length.)
    toks = sorted((i, b) for b, i in encoder.items())
    ids = np.array([i for i, _ in toks], np.int32)
    lens = np.array([len(b) for _, b in toks], np.int64)
    offsets = np.zeros(len(toks) + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    pool = np.frombuffer(b"".join(b for _, b in toks), np.uint8)
    ok = np.zeros(len(toks), np.bool_)
    self_encoding(pool, offsets, ids, byte_ids, pairs, scratch(int(lens.max(initial=1))), ok)
    # The tokens fill a tenth of the slots at most; the piece caches copy the table and take the rest
    # (up to half full: 210,000 pieces for GPT-2, whose corpus of 5 MB holds about 130,000 distinct).
    slots = 1 << max(12, (10 * len(toks) + 2).bit_length())
    if id_dtype is None:
        id_dtype = np.uint16 if max(encoder.values(), default=0) < 2**16 else np.uint32
    id_dtype = np.dtype(id_dtype)
    if id_dtype not in (np.uint16, np.uint32) or max(encoder.values(), default=0) > np.iinfo(id_dtype).max:
        raise ValueError(f"ids do not fit {id_dtype}")
    tokens = piece_table(slots, int(np.maximum(lens - 16, 0).sum()), id_dtype.itemsize)  # one id: inline
    # The ids in the dtype the encoder writes, and the table as a plain tuple, as the encode kernel
    # passes them: then `piece_put` compiles once for both callers.
    fill_token_table(tuple(tokens), pool, offsets, ids.astype(id_dtype), ok & (lens <= MAX_KEY))
    tokens.state[5] = tokens.state[0]  # a piece cache emptied back to the tokens holds this many
    joinable = joinable_pairs(pool, offsets)  # from every token, not just the self-encoding ones
    return Tables(byte_ids, pairs, tokens, joinable, int((~ok).sum()), id_dtype)


# --------------------------------------------------------------------------------------------
# decoding: ids -> bytes, two passes over the ids and no Python object per token


def decode_table(decode_list: list) -> tuple[np.ndarray, np.ndarray, int]:
    """``(where, pool, shift)``: token i's bytes are ``pool[s : s + n]`` with ``s = where[i] >> shift`` and
    ``n = where[i] & (2**shift - 1)`` (0 for an unused id). Start and length share one int64, so a
    token costs one table read; `pool` ends in 8 spare bytes (see `decode_into`)."""
    lens = np.fromiter((0 if b is None else len(b) for b in decode_list), np.int64, len(decode_list))
    starts = np.zeros(len(decode_list), np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    shift = int(lens.max(initial=1)).bit_length()
    pool = np.frombuffer(b"".join(b for b in decode_list if b is not None) + bytes(8), np.uint8)
    return (starts << shift) | lens, pool, shift


@njit(cache=True, nogil=True, _nrt=False)
def decode_into(ids, where, pool, shift, out, o):
    """Write the bytes of the tokens `ids` (table: `decode_table`) one after another into `out` from
    position `o`, while they fit.

    Returns ``(k, o)``: ids ``0..k-1`` are written and `o` is the next free position; ``k < len(ids)``
    when the next token might not fit (the caller grows `out` and goes on from there), or ``k = -1 - j``
    when ``ids[j]`` is no token (out of range, or unused: every token has at least one byte). One pass
    over the ids; `npgpt.Encoding.decode_tokens_bytes` is its plain twin.
    """
    mask = (1 << shift) - 1
    for k in range(ids.shape[0]):
        t = ids[k]
        if t < 0 or t >= where.shape[0] or where[t] & mask == 0:
            return -1 - k, o
        start, n = where[t] >> shift, where[t] & mask
        if o + n + 8 > out.shape[0]:
            return k, o
        if n <= 8:
            # Most tokens are short: copy a fixed 8 bytes, which compiles to one move. The bytes past
            # the token's own are overwritten by the next token, or lie past the end the caller keeps.
            for i in range(8):
                out[o + i] = pool[start + i]
        else:
            for i in range(n):
                out[o + i] = pool[start + i]
        o += n
    return ids.shape[0], o


def say_if_compiling(kernel, what: str) -> None:
    """One line on stderr when `kernel` (a cached numba dispatcher) has nothing on disk yet: this run
    compiles it, and its kin, which takes seconds once per machine. Silent when numba's internals
    differ from what this expects: better no word than a wrong one."""
    import os
    import sys

    try:  # numba keeps an index file per cached kernel; none yet means this run compiles them
        first_run = not os.path.exists(kernel._cache._cache_file._index_path)
    except AttributeError:
        return
    if first_run:
        sys.stderr.write(f"npgpt: compiling {what}, once (numba caches them on disk)\n")

