"""numba kernels for `npgpt.bpe.train`: counting pre-tokens and the incremental merge loop.

The merge loop keeps, for every adjacent pair of tokens, its count over all words (weighted by
word frequency) and a chain of the words it occurs in. A merge visits only the words on its
pair's chain: each is taken out of the counts, merged, and put back. A max-heap of pairs, ordered
by count and then by the pair's bytes, finds the next merge; entries whose count has changed since
they were pushed are refreshed when they reach the top (lazy invalidation).

Every array that grows (pairs, chains, heap, token bytes) is checked for room before a merge starts;
when room might run out, the kernel returns and Python grows the arrays (`npgpt.bpe.train`). The naive
trainer these are held to is ``tests/test_train.py::naive_train``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.typed import Dict

from npgpt.bpe.merge_kernels import hash_bytes, pair_slot, same_bytes

NEED_ROOM, STOPPED, DONE = 1, 2, 3  # why train_merges returned (DONE: its merge budget is used)
# which arrays need room, as bits of st[9]: pairs (and their index, touched list), chains, heap, bytes, merges
ROOM_PAIRS, ROOM_CHAINS, ROOM_HEAP, ROOM_POOL, ROOM_MERGES = 1, 2, 4, 8, 16


@njit(cache=True, nogil=True)
def unique_pieces(buf, bounds, n):
    """Distinct pieces among ``buf[bounds[k]:bounds[k+1]]``: (index of each one's first piece, counts)."""
    cap = 16
    while cap < 2 * n:
        cap *= 2
    mask = cap - 1
    slots = np.full(cap, -1, np.int64)
    first = np.empty(n, np.int64)
    counts = np.zeros(n, np.int64)
    hashes = np.empty(n, np.uint64)
    n_unique = 0
    for k in range(n):
        a, b = bounds[k], bounds[k + 1]
        h = hash_bytes(buf, a, b)
        s = np.int64(h & np.uint64(mask))
        while True:
            u = slots[s]
            if u == -1:
                slots[s] = n_unique
                first[n_unique] = k
                hashes[n_unique] = h
                counts[n_unique] = 1
                n_unique += 1
                break
            if hashes[u] == h:
                c, d = bounds[first[u]], bounds[first[u] + 1]
                if d - c == b - a and same_bytes(buf, c, buf, a, b - a):
                    counts[u] += 1
                    break
            s = (s + 1) & mask
    return first[:n_unique], counts[:n_unique]


@njit(cache=True)
def build_pair_index(left, right, n_pairs, cap):
    """Open-addressing table (left << 32 | right) -> pair number: keys at 2s, values at 2s + 1.

    `cap` (slots) must be a power of two, larger than `n_pairs`."""
    table = np.full(2 * cap, -1, np.int64)
    for p in range(n_pairs):
        _index_put(table, (np.int64(left[p]) << 32) | np.int64(right[p]), p)
    return table


@njit(cache=True, inline="always")
def _slot(table, key):
    """The slot of `key` in a pair table laid out as merge.build_pair_table's (key at 2s, value at 2s + 1)."""
    mask = table.shape[0] // 2 - 1
    s = pair_slot(key, mask)
    while table[2 * s] != -1 and table[2 * s] != key:
        s = (s + 1) & mask
    return s


@njit(cache=True, inline="always")
def _index_put(table, key, p):
    s = _slot(table, key)
    table[2 * s] = key
    table[2 * s + 1] = p


def new_byte_index():
    """Hash of a merged token's bytes -> its id (collisions go to the next free key)."""
    return Dict.empty(key_type=types.int64, value_type=types.int64)


@njit(cache=True, inline="always")
def _bytes_greater(pool, off, a, b):
    """Token a's bytes > token b's bytes, as Python compares bytes (a proper prefix is smaller)."""
    la, lb = off[a + 1] - off[a], off[b + 1] - off[b]
    for i in range(min(la, lb)):
        x, y = pool[off[a] + i], pool[off[b] + i]
        if x != y:
            return x > y
    return la > lb


@njit(cache=True)
def _before(cnt_p, p, cnt_q, q, left, right, pool, off):
    """Does pair p (with count cnt_p) come before pair q in the heap? Higher count first; on a tie the
    lexicographically greater (left bytes, right bytes)."""
    if cnt_p != cnt_q:
        return cnt_p > cnt_q
    if left[p] != left[q]:
        return _bytes_greater(pool, off, left[p], left[q])
    if right[p] != right[q]:
        return _bytes_greater(pool, off, right[p], right[q])
    return False


@njit(cache=True)
def _push(heap_p, heap_c, size, p, c, left, right, pool, off):
    i = size
    heap_p[i], heap_c[i] = p, c
    while i > 0:
        up = (i - 1) >> 1
        if not _before(heap_c[i], heap_p[i], heap_c[up], heap_p[up], left, right, pool, off):
            break
        heap_p[i], heap_p[up] = heap_p[up], heap_p[i]
        heap_c[i], heap_c[up] = heap_c[up], heap_c[i]
        i = up
    return size + 1


@njit(cache=True)
def _pop(heap_p, heap_c, size, left, right, pool, off):
    size -= 1
    heap_p[0], heap_c[0] = heap_p[size], heap_c[size]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and _before(heap_c[c + 1], heap_p[c + 1], heap_c[c], heap_p[c], left, right, pool, off):
            c += 1
        if not _before(heap_c[c], heap_p[c], heap_c[i], heap_p[i], left, right, pool, off):
            break
        heap_p[i], heap_p[c] = heap_p[c], heap_p[i]
        heap_c[i], heap_c[c] = heap_c[c], heap_c[i]
        i = c
    return size


@njit(cache=True)
def _pair_id(index, a, b, st, left, right, count, head, merged):
    """Index of pair (a, b), created (count 0, empty chain) if new. st[1] counts the pairs."""
    key = (np.int64(a) << 32) | np.int64(b)
    s = _slot(index, key)
    if index[2 * s] == key:
        return index[2 * s + 1]
    p = st[1]
    index[2 * s] = key
    index[2 * s + 1] = p
    left[p], right[p], count[p], head[p], merged[p] = a, b, 0, -1, False
    st[1] += 1
    return p


@njit(cache=True, inline="always")
def _add(delta, x, y, w, new_token, index, st, left, right, count, head, merged, chain_word, chain_next, touched,
         touch_mark, before, stamp):
    """count[(x, y)] += delta, noting the pair's count before this merge; chain word w to new pairs."""
    p = _pair_id(index, x, y, st, left, right, count, head, merged)
    if touch_mark[p] != stamp:
        touch_mark[p] = stamp
        before[p] = count[p]
        touched[st[3]] = p
        st[3] += 1
    count[p] += delta
    if delta > 0 and (x == new_token or y == new_token):
        e = st[2]
        chain_word[e], chain_next[e] = w, head[p]
        head[p] = e
        st[2] += 1


@njit(cache=True)
def train_merges(sym, wstart, wlen, freq, seen, index, st, left, right, count, head, merged, touch_mark, before,
                 touched, chain_word, chain_next, heap_p, heap_c, pool, off, by_bytes, out_left, out_right,
                 out_id, max_tokens, min_frequency, budget):
    """Run up to `budget` merges. Returns a status: NEED_ROOM (grow the arrays, call again), STOPPED (no
    pair reaches min_frequency, or the vocabulary is full), DONE (budget used).

    `st` holds the counters: [heap size, pairs, chain entries, touched, tokens, merges, stamp, pool used,
    total symbols, which arrays need room (ROOM_* bits)].
    """
    for _ in range(budget):
        if st[4] >= max_tokens:
            return STOPPED
        # the best pair: pop entries whose count changed since they were pushed, and re-push them
        best = -1
        while st[0] > 0:
            p, c = heap_p[0], heap_c[0]
            if merged[p] or c != count[p]:
                st[0] = _pop(heap_p, heap_c, st[0], left, right, pool, off)
                if not merged[p] and count[p] > 0:
                    st[0] = _push(heap_p, heap_c, st[0], p, count[p], left, right, pool, off)
                continue
            best = p
            break
        if best == -1 or count[best] < min_frequency or count[best] <= 0:
            return STOPPED
        # Room for this merge before changing anything. Each occurrence of the pair (at most its count,
        # and at most half the symbols) creates at most 2 pairs and 2 chain entries, touches at most 5
        # pairs, and so pushes at most 5 heap entries.
        occ = min(count[best], st[8] // 2 + 1)
        need = 0
        if st[1] + 2 * occ + 2 > left.shape[0] or 4 * (st[1] + 2 * occ + 2) > index.shape[0] \
                or 5 * occ + 2 > touched.shape[0]:
            need |= ROOM_PAIRS
        if st[2] + 2 * occ + 2 > chain_word.shape[0]:
            need |= ROOM_CHAINS
        if st[0] + 5 * occ + 2 > heap_p.shape[0]:
            need |= ROOM_HEAP
        if st[7] + (off[left[best] + 1] - off[left[best]]) + (off[right[best] + 1] - off[right[best]]) > pool.shape[0]:
            need |= ROOM_POOL
        if st[5] >= out_left.shape[0]:
            need |= ROOM_MERGES
        if need:
            st[9] = need
            return NEED_ROOM
        a, b = left[best], right[best]
        # the merged token's bytes; an existing token with the same bytes keeps its id
        la, lb = off[a + 1] - off[a], off[b + 1] - off[b]
        start = st[7]
        pool[start : start + la] = pool[off[a] : off[a + 1]]
        pool[start + la : start + la + lb] = pool[off[b] : off[b + 1]]
        key = np.int64(hash_bytes(pool, start, start + la + lb) & np.uint64(0x7FFFFFFFFFFFFFFF))
        new = -1
        while key in by_bytes:  # same hash: compare the bytes (collisions chain to key + 1)
            t = by_bytes[key]
            if off[t + 1] - off[t] == la + lb and same_bytes(pool, off[t], pool, start, la + lb):
                new = t
                break
            key += 1
        if new == -1:
            new = st[4]
            by_bytes[key] = new
            off[new + 1] = start + la + lb
            st[7] = start + la + lb
            st[4] += 1
        m = st[5]
        out_left[m], out_right[m], out_id[m] = a, b, new
        st[5] += 1
        merged[best] = True
        st[6] += 1
        stamp = st[6]
        st[3] = 0
        # visit the words on the pair's chain
        e = head[best]
        while e != -1:
            w = chain_word[e]
            e = chain_next[e]
            if seen[w] == stamp:
                continue
            seen[w] = stamp
            s0, n = wstart[w], wlen[w]
            has = False
            for i in range(s0, s0 + n - 1):
                if sym[i] == a and sym[i + 1] == b:
                    has = True
                    break
            if not has:
                continue
            # Merge left to right, without overlaps, and update only the pairs around each merge: with
            # x A B y -> x C y, the pairs (x, A), (A, B), (B, y) lose f and (x, C), (C, y) gain f. The
            # left neighbour is read from the merged output, so "A B A B" -> "C C" comes out right.
            f = freq[w]
            end = s0 + n
            j = s0
            i = s0
            while i < end:
                if i < end - 1 and sym[i] == a and sym[i + 1] == b:
                    if j > s0:
                        x = sym[j - 1]
                        _add(-f, x, a, w, new, index, st, left, right, count, head, merged, chain_word, chain_next,
                             touched, touch_mark, before, stamp)
                        _add(f, x, new, w, new, index, st, left, right, count, head, merged, chain_word,
                             chain_next, touched, touch_mark, before, stamp)
                    if i + 2 < end:
                        y = sym[i + 2]
                        _add(-f, b, y, w, new, index, st, left, right, count, head, merged, chain_word, chain_next,
                             touched, touch_mark, before, stamp)
                        _add(f, new, y, w, new, index, st, left, right, count, head, merged, chain_word,
                             chain_next, touched, touch_mark, before, stamp)
                    _add(-f, a, b, w, new, index, st, left, right, count, head, merged, chain_word, chain_next,
                         touched, touch_mark, before, stamp)
                    sym[j] = new
                    i += 2
                else:
                    sym[j] = sym[i]
                    i += 1
                j += 1
            wlen[w] = j - s0
            st[8] -= n - (j - s0)
        # pairs that gained count need a fresh heap entry; lower counts are fixed lazily
        for k in range(st[3]):
            p = touched[k]
            if count[p] > before[p] and not merged[p]:
                st[0] = _push(heap_p, heap_c, st[0], p, count[p], left, right, pool, off)
    return DONE


@njit(cache=True)
def initial_pairs(sym, wstart, wlen, freq, index, st, left, right, count, head, merged, chain_word, chain_next,
                  heap_p, heap_c, pool, off):
    """Count every pair of every word, chain the words to their pairs, and heap all pairs."""
    for w in range(wstart.shape[0]):
        s0 = wstart[w]
        for i in range(s0, s0 + wlen[w] - 1):
            p = _pair_id(index, sym[i], sym[i + 1], st, left, right, count, head, merged)
            count[p] += freq[w]
            e = st[2]
            chain_word[e], chain_next[e] = w, head[p]
            head[p] = e
            st[2] += 1
    for p in range(st[1]):
        st[0] = _push(heap_p, heap_c, st[0], p, count[p], left, right, pool, off)
