"""The BPE merge loop in numba, over flat NumPy tables.

Byte-pair encoding turns one pre-token (a piece of UTF-8 bytes) into token ids:

1. start from one token per byte;
2. among all adjacent pairs, find the pair with the lowest merge rank (the earliest learned merge);
3. replace it by the merged token and repeat until no adjacent pair is a merge.

This is OpenAI's original GPT-2 algorithm. Its plain-Python form is `tests/reference.py::bpe`,
which the tests hold this module to. Here the same loop runs over NumPy arrays inside numba:

- pair table: an open-addressing hash table from ``(left_id, right_id)`` to ``(rank, merged_id)``,
  stored as two int64 arrays (`build_pair_table`, `pair_lookup`);
- whole-piece table: most pieces (``" the"``, ``" and"``) are themselves tokens; a hash table of
  token bytes finds them with one lookup, skipping the merge loop (`token_lookup`). Only tokens that
  the merge loop itself would produce from their bytes are in it, so the shortcut never changes an
  answer (`self_encoding_tokens` checks each token once, when the tables are built);
- piece cache: pieces that did need merging are remembered, bytes -> ids, in a bounded table that
  is emptied when full (`PieceCache`);
- merge loop: for short pieces a scan of the pair ranks (`_merge_short`, quadratic but tiny); for
  long ones a linked list plus a binary heap of ``(rank, position)`` with lazy deletion
  (`_merge_long`, O(n log n)), so ``"a" * 10**6`` stays linear-ish.

Both loops do exactly what GPT-2 does: take the lowest-ranked pair and merge *every* occurrence of
it in one left-to-right sweep, then look again. (Merging one occurrence at a time, as tiktoken does,
gives the same answer for GPT-2's files, but not for a merge list in which two different pairs make
the same bytes: there, a merge can create a pair of lower rank in the middle of a sweep.)

Every kernel takes and returns arrays and integers only; the checks happen in `npgpt.bpe` before a
kernel is entered, and every array access here stays inside the sizes the caller passed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NO_RANK = np.int64(2**62)  # rank of a pair that is not a merge; larger than any real rank
SHORT_PIECE = 64  # pieces up to this many bytes use the simple scan; longer ones the heap

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


# --------------------------------------------------------------------------------------------
# hashing


@njit(cache=True, nogil=True, inline="always")
def hash_bytes(buf, start, end):
    """FNV-1a over ``buf[start:end]``: simple, and good enough for short byte strings."""
    h = _FNV_OFFSET
    for i in range(start, end):
        h = (h ^ np.uint64(buf[i])) * _FNV_PRIME
    return h


@njit(cache=True, nogil=True, inline="always")
def _pair_slot(key, mask):
    # Fibonacci hashing: multiply, keep high bits. Pair keys are small and sequential; the multiply
    # spreads them over the table.
    return np.int64(((np.uint64(key) * _GOLDEN) >> np.uint64(32)) & np.uint64(mask))


# --------------------------------------------------------------------------------------------
# tables


@njit(cache=True)
def build_pair_table(lefts, rights, merged, cap):
    """Hash table of merges: key ``left << 32 | right`` -> value ``rank << 32 | merged_id``.

    `cap` is a power of two at least twice the number of merges; empty slots hold key -1.
    Rank i is the i-th merge.
    """
    keys = np.full(cap, -1, np.int64)
    vals = np.zeros(cap, np.int64)
    mask = cap - 1
    for i in range(lefts.shape[0]):
        key = (np.int64(lefts[i]) << 32) | np.int64(rights[i])
        s = _pair_slot(key, mask)
        while keys[s] != -1 and keys[s] != key:
            s = (s + 1) & mask
        keys[s] = key  # pairs are unique (npgpt.bpe.Encoding checks)
        vals[s] = (np.int64(i) << 32) | np.int64(merged[i])
    return keys, vals


@njit(cache=True, nogil=True, inline="always")
def pair_lookup(keys, vals, left, right):
    """Return ``rank << 32 | merged`` of the pair, or ``NO_RANK`` when it is not a merge."""
    key = (np.int64(left) << 32) | np.int64(right)
    mask = keys.shape[0] - 1
    s = _pair_slot(key, mask)
    while True:
        k = keys[s]
        if k == key:
            return vals[s]
        if k == -1:
            return NO_RANK
        s = (s + 1) & mask


@njit(cache=True)
def build_token_table(pool, offsets, ids, cap):
    """Hash table from token bytes to id. Token ``ids[j]`` has bytes ``pool[offsets[j]:offsets[j+1]]``.

    Returns ``slots`` (token index j, or -1 when empty) and ``hashes``.
    """
    slots = np.full(cap, -1, np.int64)
    hashes = np.zeros(cap, np.uint64)
    mask = cap - 1
    for j in range(ids.shape[0]):
        h = hash_bytes(pool, offsets[j], offsets[j + 1])
        s = np.int64(h & np.uint64(mask))
        while slots[s] != -1:
            s = (s + 1) & mask
        slots[s] = j
        hashes[s] = h
    return slots, hashes


@njit(cache=True, nogil=True)
def token_lookup(slots, hashes, pool, offsets, ids, buf, start, end, h):
    """Id of the token whose bytes are ``buf[start:end]`` (hash `h`), or -1."""
    mask = slots.shape[0] - 1
    s = np.int64(h & np.uint64(mask))
    n = end - start
    while slots[s] != -1:
        if hashes[s] == h:
            j = slots[s]
            a = offsets[j]
            if offsets[j + 1] - a == n:
                same = True
                for i in range(n):
                    if pool[a + i] != buf[start + i]:
                        same = False
                        break
                if same:
                    return ids[j]
        s = (s + 1) & mask
    return -1


# --------------------------------------------------------------------------------------------
# the merge loops


@njit(cache=True, nogil=True)
def _merge_short(parts, m, ranks, keys, vals):
    """Merge ``parts[:m]`` in place; return the new length. ``ranks`` is scratch of size >= m.

    The textbook loop: find the lowest-ranked adjacent pair; sweep left to right merging each of
    its (non-overlapping) occurrences; recompute the pair ranks; repeat.
    """
    while m > 1:
        best = NO_RANK
        for i in range(m - 1):
            ranks[i] = pair_lookup(keys, vals, parts[i], parts[i + 1])
            best = min(best, ranks[i])
        if best == NO_RANK:
            break
        merged = np.int32(best & 0xFFFFFFFF)
        w = 0
        i = 0
        while i < m:
            if i < m - 1 and ranks[i] == best:
                parts[w] = merged
                i += 2
            else:
                parts[w] = parts[i]
                i += 1
            w += 1
        m = w
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
def _merge_long(parts, m, nxt, prv, heap, sweep, keys, vals):
    """Same result as `_merge_short`, in O(m log m): a linked list of parts and a heap of candidates.

    A heap item is ``rank << 32 | position``. The lowest rank is taken off the heap with all its
    occurrences at once (they come out leftmost first) and merged as one sweep, as GPT-2 does; pairs
    that the sweep creates wait in the heap for the next round. Merging makes old items stale; a
    stale item is skipped (its left part is gone, or the pair there is no longer the one pushed).
    Scratch: `nxt`, `prv` of size >= m; `heap` and `sweep` of size >= 3 * m (m - 1 pairs at the
    start plus at most two new ones per merge).
    """
    size = 0
    for i in range(m):
        nxt[i] = i + 1 if i + 1 < m else -1
        prv[i] = i - 1
    for i in range(m - 1):
        v = pair_lookup(keys, vals, parts[i], parts[i + 1])
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
            v = pair_lookup(keys, vals, parts[pos], parts[right])
            if v == NO_RANK or (v >> 32) != rank:
                continue
            parts[pos] = np.int32(v & 0xFFFFFFFF)
            parts[right] = -1
            after = nxt[right]
            nxt[pos] = after
            if after >= 0:
                prv[after] = pos
                w = pair_lookup(keys, vals, parts[pos], parts[after])
                if w != NO_RANK:
                    size = _heap_push(heap, size, ((w >> 32) << 32) | pos)
            before = prv[pos]
            if before >= 0:
                w = pair_lookup(keys, vals, parts[before], parts[pos])
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


@njit(cache=True, nogil=True)
def merge_bytes(buf, start, end, byte_ids, keys, vals, parts, ranks, nxt, prv, heap, sweep):
    """BPE of ``buf[start:end]`` into ``parts``; return how many ids it wrote.

    All scratch arrays are sized by the caller for the longest piece it passes.
    """
    m = end - start
    for i in range(m):
        parts[i] = byte_ids[buf[start + i]]
    if m <= SHORT_PIECE:
        return _merge_short(parts, m, ranks, keys, vals)
    return _merge_long(parts, m, nxt, prv, heap, sweep, keys, vals)


# --------------------------------------------------------------------------------------------
# the piece cache


class PieceCache:
    """A bounded bytes -> ids memo for pieces that needed the merge loop.

    A plain container of NumPy arrays, so that a kernel can read and write it. When any part is full
    the kernel empties it and starts again, so memory stays bounded
    (about ``slots * 16 + pool_bytes * 5`` bytes; 3.5 MB with the defaults).
    Not thread-safe: each thread uses its own (`npgpt.bpe.Encoding` keeps one per thread).
    """

    MAX_PIECE = 256  # longer pieces are rarely repeated; caching them would only churn the pool

    def __init__(self, slots: int = 1 << 16, pool_bytes: int = 1 << 19):
        self.slots = np.full(slots, -1, np.int64)  # entry index, -1 = empty
        self.hashes = np.zeros(slots, np.uint64)
        n_entries = slots // 2  # keep the load factor at most 1/2
        self.key_off = np.zeros(n_entries + 1, np.int64)
        self.val_off = np.zeros(n_entries + 1, np.int64)
        self.key_pool = np.zeros(pool_bytes, np.uint8)
        self.val_pool = np.zeros(pool_bytes, np.int32)  # a piece never has more ids than bytes
        self.state = np.zeros(2, np.int64)  # [entries used, resets so far]

    def arrays(self):
        return (self.slots, self.hashes, self.key_off, self.val_off, self.key_pool, self.val_pool, self.state)


@njit(cache=True, nogil=True)
def _cache_get(cache, buf, start, end, h, out, o):
    """Copy the cached ids of ``buf[start:end]`` to ``out[o:]``; return how many, or -1 on a miss."""
    slots, hashes, key_off, val_off, key_pool, val_pool, _state = cache
    mask = slots.shape[0] - 1
    s = np.int64(h & np.uint64(mask))
    n = end - start
    while slots[s] != -1:
        if hashes[s] == h:
            e = slots[s]
            a = key_off[e]
            if key_off[e + 1] - a == n:
                same = True
                for i in range(n):
                    if key_pool[a + i] != buf[start + i]:
                        same = False
                        break
                if same:
                    v0 = val_off[e]
                    k = val_off[e + 1] - v0
                    for i in range(k):
                        out[o + i] = val_pool[v0 + i]
                    return k
        s = (s + 1) & mask
    return -1


@njit(cache=True, nogil=True)
def _cache_put(cache, buf, start, end, h, ids, k):
    """Remember ``buf[start:end] -> ids[:k]``; empty the cache first when it has no room."""
    slots, hashes, key_off, val_off, key_pool, val_pool, state = cache
    n = end - start
    e = state[0]
    if e + 1 >= key_off.shape[0] or key_off[e] + n > key_pool.shape[0] or val_off[e] + k > val_pool.shape[0]:
        slots[:] = -1
        state[0] = 0
        state[1] += 1
        e = 0
    a = key_off[e]
    for i in range(n):
        key_pool[a + i] = buf[start + i]
    key_off[e + 1] = a + n
    v0 = val_off[e]
    for i in range(k):
        val_pool[v0 + i] = ids[i]
    val_off[e + 1] = v0 + k
    mask = slots.shape[0] - 1
    s = np.int64(h & np.uint64(mask))
    while slots[s] != -1:
        s = (s + 1) & mask
    slots[s] = e
    hashes[s] = h
    state[0] = e + 1


# --------------------------------------------------------------------------------------------
# the whole text


@njit(cache=True, nogil=True)
def encode_pieces(buf, bounds, forced, byte_ids, pairs, tokens, cache, max_cached, out):
    """Encode every piece ``buf[bounds[k]:bounds[k+1]]`` into `out`; return the number of ids.

    ``forced[k] >= 0`` emits that id for piece k instead (special tokens); `forced` is empty when
    no piece is forced. `out` must hold ``len(buf) + len(forced)`` ids: BPE never yields more ids
    than bytes.
    """
    keys, vals = pairs
    slots, hashes, pool, offsets, ids = tokens
    n_pieces = bounds.shape[0] - 1
    longest = 0
    for k in range(n_pieces):
        longest = max(longest, bounds[k + 1] - bounds[k])
    parts = np.empty(longest, np.int32)
    ranks = np.empty(longest, np.int64)
    is_long = longest > SHORT_PIECE
    nxt = np.empty(longest if is_long else 0, np.int64)
    prv = np.empty(longest if is_long else 0, np.int64)
    heap = np.empty(3 * longest if is_long else 0, np.int64)
    sweep = np.empty(3 * longest if is_long else 0, np.int64)
    has_forced = forced.shape[0] > 0
    o = 0
    for k in range(n_pieces):
        if has_forced and forced[k] >= 0:
            out[o] = forced[k]
            o += 1
            continue
        start = bounds[k]
        end = bounds[k + 1]
        n = end - start
        if n == 0:
            continue
        if n == 1:
            out[o] = byte_ids[buf[start]]
            o += 1
            continue
        h = hash_bytes(buf, start, end)
        t = token_lookup(slots, hashes, pool, offsets, ids, buf, start, end, h)
        if t >= 0:  # the whole piece is one token: no merging needed
            out[o] = t
            o += 1
            continue
        if n <= max_cached:
            got = _cache_get(cache, buf, start, end, h, out, o)
            if got >= 0:
                o += got
                continue
        m = merge_bytes(buf, start, end, byte_ids, keys, vals, parts, ranks, nxt, prv, heap, sweep)
        for i in range(m):
            out[o + i] = parts[i]
        o += m
        if n <= max_cached:
            _cache_put(cache, buf, start, end, h, parts, m)
    return o


@njit(cache=True)
def self_encoding(pool, offsets, ids, byte_ids, keys, vals):
    """For each token, whether BPE of its own bytes gives back exactly that one token.

    Only these may take the whole-piece shortcut. (In general BPE a token's bytes can encode to
    several tokens, when a different merge order wins; see the module docstring.)
    """
    n = ids.shape[0]
    ok = np.zeros(n, np.bool_)
    longest = 1
    for j in range(n):
        longest = max(longest, offsets[j + 1] - offsets[j])
    parts = np.empty(longest, np.int32)
    ranks = np.empty(longest, np.int64)
    nxt = np.empty(longest, np.int64)
    prv = np.empty(longest, np.int64)
    heap = np.empty(3 * longest, np.int64)
    sweep = np.empty(3 * longest, np.int64)
    for j in range(n):
        m = merge_bytes(pool, offsets[j], offsets[j + 1], byte_ids, keys, vals, parts, ranks, nxt, prv, heap, sweep)
        ok[j] = m == 1 and parts[0] == ids[j]
    return ok
