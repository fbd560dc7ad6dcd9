"""numba kernels for `npgpt.bpe.train`: counting pre-tokens, and the incremental merge loop.

Counting (`count_pieces`) runs the GPT-2 scanner (`npgpt.bpe.pretokenize_kernels.piece_end`) over
UTF-8 bytes and counts each piece in a hash table whose keys are byte spans copied into one pool
(`Words`): no Python object per pre-token, and the pool is already the flat array of symbols that
the merge loop starts from.

The merge loop keeps, for every adjacent pair of tokens, its count over all words (weighted by word
frequency) and a chain of the words it occurs in (`Pairs`, `Chains`). A merge visits only the words
on its pair's chain: each word is merged in place (`merge_word`, which returns the pair-count changes)
and the changes are applied. A max-heap of pairs (`Heap`), ordered by count and then by the pair's
bytes, finds the next merge; an entry whose count changed since it was pushed is refreshed when it
reaches the top (lazy invalidation).

Memory. The counting table grows inside its kernels (doubling, like a Python list), which return
the grown tuples. The merge loop's arrays do not grow: when the next merge lacks room, the caller
lets go of the pair table, chains and heap, and `rebuild` makes them again from the words as they
are then, sized to what they hold (merging leaves behind pairs that no longer occur and chain
entries of words that no longer hold the pair, which a fresh count does not have). Pairs that occur
fewer than a floor (2, or `min_frequency` when higher) times stay out of the table until no pair
reaches it (`_above_floor`), and a full pair table first drops them in place (`_drop_pairs`). So
old and new arrays never take memory at the same time, and the arrays are sized to the live pairs,
not to every pair ever seen. The
plain twin these are held to is `npgpt.reference.train`.

Speed notes. The state travels as NamedTuples of arrays, which numba passes like any tuple; but each
array in a tuple carries a reference count, and numba updates those counts whenever a tuple is
rebound or handed to a function that may allocate -- 10-20 ns per array, which at millions of
pieces and pair updates cost more than the work itself. So (1) no per-piece or per-word loop
rebinds a tuple: room is made before a loop (`_merges`, with a bound on what one merge can add) or
the loop stops when full and its caller grows (`_count_run`, `_count_pairs`); and (2) the hot kernels that
allocate nothing are compiled with ``_nrt=False`` (no reference counting at all; numba's own flag,
used here because these kernels only read and write arrays their caller owns). This halves the
merge loop's time.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from npgpt.bpe.merge_kernels import hash_bytes, same_bytes
from npgpt.bpe.pretokenize_kernels import char_at, piece_end
from npgpt.bpe.unicode_tables import SPACE

# Kernels that allocate nothing and run in the inner loops: no reference counting (see above).
NO_REFCOUNT = {"cache": True, "nogil": True, "_nrt": False}

# --------------------------------------------------------------------------------------------
# counting pre-tokens


class Words(NamedTuple):
    """Distinct byte strings and their counts: word w is ``pool[start[w] : start[w] + length[w]]``."""

    slots: np.ndarray  # int32 hash table of word numbers, -1 = empty; a power of two, at most half full
    hashes: np.ndarray  # uint64 hash_bytes of each word
    start: np.ndarray  # int64 offset of each word in pool
    length: np.ndarray  # int32
    count: np.ndarray  # int64 occurrences
    pool: np.ndarray  # uint8: the words' bytes back to back
    used: np.ndarray  # int64[2]: number of words, pool bytes in use


def new_words(capacity: int = 1 << 12) -> Words:
    return Words(np.full(2 * capacity, -1, np.int32), np.zeros(capacity, np.uint64), np.zeros(capacity, np.int64),
                 np.zeros(capacity, np.int32), np.zeros(capacity, np.int64), np.zeros(8 * capacity, np.uint8),
                 np.zeros(2, np.int64))


@njit(cache=True, nogil=True)
def _grow(a, size):
    """`a` copied into a larger array of at least `size` entries (doubling; the tail is unset).

    Copies in a loop: a slice assignment makes numba compile its shape check, whose error message
    pulls in its string formatting: seconds of the trainer's first compile, for every dtype."""
    n = a.shape[0]
    while n < size:
        n *= 2
    out = np.empty(n, a.dtype)
    for i in range(a.shape[0]):
        out[i] = a[i]
    return out


@njit(cache=True, nogil=True)
def _make_room(words, n_words, n_bytes):
    """`words` with room for `n_words` more words of `n_bytes` bytes in all."""
    n, used = words.used[0], words.used[1]
    pool = words.pool
    if used + n_bytes > pool.shape[0]:
        pool = _grow(pool, used + n_bytes)
    if n + n_words <= words.start.shape[0]:
        return Words(words.slots, words.hashes, words.start, words.length, words.count, pool, words.used)
    cap = words.start.shape[0]
    while cap < n + n_words:
        cap *= 2
    slots = np.full(2 * cap, -1, np.int32)  # rehash: slot numbers depend on the table size
    mask = slots.shape[0] - 1
    for w in range(n):
        s = np.int64(words.hashes[w] & np.uint64(mask))
        while slots[s] != -1:
            s = (s + 1) & mask
        slots[s] = w
    return Words(slots, _grow(words.hashes, cap), _grow(words.start, cap), _grow(words.length, cap),
                 _grow(words.count, cap), pool, words.used)


@njit(cache=True, nogil=True, inline="always")
def _has_room(words, n_bytes):
    return words.used[0] < words.start.shape[0] and words.used[1] + n_bytes <= words.pool.shape[0]


@njit(cache=True, nogil=True, inline="always")
def _add_word(words, buf, a, b, c):
    """``count[buf[a:b]] += c``, adding the word if new; there must be room for it (`_has_room`)."""
    slots = words.slots
    h = hash_bytes(buf, a, b)
    mask = slots.shape[0] - 1
    s = np.int64(h & np.uint64(mask))
    while True:
        w = slots[s]
        if w == -1:
            w = words.used[0]
            p = words.used[1]
            slots[s] = w
            words.hashes[w], words.start[w], words.length[w], words.count[w] = h, p, b - a, c
            for i in range(b - a):  # (a loop, not a slice copy: it needs no allocation, see _count_run)
                words.pool[p + i] = buf[a + i]
            words.used[0] += 1
            words.used[1] += b - a
            return
        if words.hashes[w] == h and words.length[w] == b - a and same_bytes(words.pool, words.start[w], buf, a, b - a):
            words.count[w] += c
            return
        s = (s + 1) & mask


# Why the loops are split as they are: a loop that may rebind a tuple of arrays (``words =
# _make_room(words, ...)``) pays reference-count updates for every array on every iteration (numba
# cannot prove them useless), 10-20 ns each. So no per-piece loop grows anything: room is made before
# the loop, or the loop (`_count_run`) stops when full and its caller grows the arrays.


@njit(cache=True, nogil=True)
def merge_counts(words, other):
    """Add every word of `other` with its count to `words` (counts from two threads); returns `words`."""
    words = _make_room(words, other.used[0], other.used[1])
    for w in range(other.used[0]):
        _add_word(words, other.pool, other.start[w], other.start[w] + other.length[w], other.count[w])
    return words


@njit(cache=True, nogil=True)
def count_spans(words, buf, bounds):
    """Count the pieces ``buf[bounds[k]:bounds[k+1]]`` (found by a regex, for custom patterns); returns `words`."""
    words = _make_room(words, bounds.shape[0] - 1, bounds[-1] - bounds[0])
    for k in range(bounds.shape[0] - 1):
        _add_word(words, buf, bounds[k], bounds[k + 1], 1)
    return words


@njit(cache=True, nogil=True, inline="always")
def _ends_in_space(buf, a, b, classes):
    """Is the last character of ``buf[a:b]`` white space (GPT-2's ``\\s``)?"""
    r = b - 1
    while r > a and (buf[r] & 0xC0) == 0x80:  # back over UTF-8 continuation bytes
        r -= 1
    return char_at(buf, r, b, classes)[0] == SPACE


@njit(**NO_REFCOUNT)
def _count_run(words, buf, p, end, limit, classes, cut, prev_end, delta):
    """Add `delta` to the count of each piece of ``buf[p:end]`` that ends before `limit`, while `words`
    has room (taking counts back, ``delta = -1``, needs none: those pieces were counted).

    Tracks the last safe cut: the end of a piece that ends in a non-space character and is followed
    by a piece that ends before `limit` (`prev_end`: the previous piece's end if it ends in a non-space,
    else -1). Returns (where it stopped, cut, prev_end, whether it stopped for want of room).
    The one loop for counting and taking back: each kernel that compiles a copy of the scanner adds
    seconds to the first compile.
    """
    while p < end:
        q = piece_end(buf, p, end, classes)
        if q >= limit:
            return p, cut, prev_end, False
        if delta > 0 and not _has_room(words, q - p):
            return p, cut, prev_end, True
        _add_word(words, buf, p, q, delta)
        if prev_end >= 0:
            cut = prev_end
        prev_end = -1 if _ends_in_space(buf, p, q, classes) else q
        p = q
    return p, cut, prev_end, False


@njit(cache=True, nogil=True)
def count_pieces(words, buf, seg_starts, seg_ends, classes, limit, final):
    """Count GPT-2's pre-tokens of each segment ``buf[seg_starts[i]:seg_ends[i]]`` into `words`.

    When `final`, every segment is counted whole. Otherwise more text follows the buffer, and the last
    segment is counted only up to a safe cut: the end of a piece that ends in a non-space character
    and is followed by a piece that ends before `limit` (the rule of `npgpt.Encoding._safe_cut`: such
    a piece ends there whatever text follows). Returns (words, cut); ``buf[cut:]`` is to be counted
    again together with the text that follows. Words can be left with count 0 (taken back).
    """
    n_seg = seg_starts.shape[0]
    for i in range(n_seg):
        start, end = seg_starts[i], seg_ends[i]
        last = i == n_seg - 1 and not final
        p, cut, prev_end = start, start, np.int64(-1)  # not a literal -1: numba would compile `_count_run` twice
        while True:
            p, cut, prev_end, full = _count_run(words, buf, p, end, limit if last else end + 1, classes, cut,
                                                prev_end, np.int64(1))
            if not full:
                break
            words = _make_room(words, np.int64(1), end - p)  # (np.int64: one compiled `_make_room`, not two)
        if last:  # the pieces counted after the cut are counted again with the next text: take them back
            _count_run(words, buf, cut, end, p + 1, classes, cut, prev_end, np.int64(-1))  # (those ending by p)
            return words, cut
    return words, buf.shape[0]


# --------------------------------------------------------------------------------------------
# the merge loop

# The loop's counters, in one int64 array `n` (names for its slots):
HEAP_SIZE = 0  # entries in the heap
N_PAIRS = 1  # pairs created (pair numbers 0 .. N_PAIRS - 1)
N_CHAIN = 2  # chain entries used
N_TOUCHED = 3  # pairs whose count the current merge raised
N_TOKENS = 4  # tokens so far (256 bytes, then merged tokens)
N_MERGES = 5  # merges so far (may exceed N_TOKENS - 256: a merge can remake an existing token)
STAMP = 6  # number of the current merge, marks words and pairs visited by it
POOL_USED = 7  # bytes of token text in the pool
N_SYMBOLS = 8  # symbols in all words (merging shortens them)
FREE = 9  # first entry of the list of free chain entries (those of merged pairs), -1 = none
N_FREE = 10  # entries on that list
LIVE = 11  # pairs in the table that occur (count > 0, not merged), when train_merges asks for a rebuild
NEED = 12  # chain entries the next merge may add, ditto
FLOOR = 13  # pairs that occur fewer times are left out of the table and the heap (see `rebuild`)
ALL_PAIRS = 14  # pairs the last rebuild counted, those left out included (to size the next one)
CHAIN_ROOM = 15  # the most chain entries a rebuild has made room for
N_COUNTERS = 16

STOPPED, BUDGET_USED, NEEDS_ROOM = 1, 2, 3  # why train_merges returned


class Corpus(NamedTuple):
    """The words being merged: word w is ``sym[start[w] : start[w] + length[w]]`` (token ids), seen `freq[w]` times."""

    sym: np.ndarray  # uint16 or int32 token ids (`new_state`), words back to back (merging shortens them in place)
    start: np.ndarray  # int64
    length: np.ndarray  # int32, the current length
    freq: np.ndarray  # int64
    seen: np.ndarray  # int32: the last merge that visited the word
    scratch: np.ndarray  # int64[3, k]: merge_word's changes (left, right, +1/-1), k >= 3 * longest word


class Pairs(NamedTuple):
    """Every adjacent pair ever seen: pair p is (key[p] >> 32, key[p] & 0xFFFFFFFF), occurring count[p] times."""

    key: np.ndarray  # int64: left << 32 | right (token ids)    \ columns of one (pairs, 2) array: a look-up
    count: np.ndarray  # int64, weighted by word frequency      / reads both in one cache line
    head: np.ndarray  # int32: first entry of the pair's chain of words, -1 = none
    merged: np.ndarray  # bool: merged already (a pair is merged at most once)
    mark: np.ndarray  # int32: the last merge that raised the count
    touched: np.ndarray  # int32: the pairs the current merge raised (N_TOUCHED of them)
    index: np.ndarray  # int32 hash table of pair numbers (-1 = empty), at most half full


class Chains(NamedTuple):
    """Linked lists of words, one per pair: entry e says word[e] holds (or held) the pair."""

    word: np.ndarray  # int32
    next: np.ndarray  # int32, -1 = end (so at most 2**31 - 1 entries: `train_merges` checks)


class Heap(NamedTuple):
    """A binary max-heap of (pair, count at push time, the pair's `_tie_key`), see `_before`."""

    pair: np.ndarray  # int32
    count: np.ndarray  # int64
    key: np.ndarray  # int64


class Tokens(NamedTuple):
    """Token t's bytes are ``pool[off[t]:off[t + 1]]``; merge m made out_id[m] from out_left[m], out_right[m]."""

    pool: np.ndarray  # uint8
    off: np.ndarray  # int64
    index: np.ndarray  # int64 hash table of merged tokens' bytes: hash at 2s, token at 2s + 1; -1 = empty
    out_left: np.ndarray  # int32
    out_right: np.ndarray  # int32
    out_id: np.ndarray  # int32


def new_state(sym: np.ndarray, start: np.ndarray, length: np.ndarray, freq: np.ndarray, floor: int = 2):
    """(corpus, tokens, counters) before the first merge; ``sym`` is taken over. The pair counts,
    chains and heap are made by `rebuild`, which is called first.

    `sym` holds single bytes (< 256) as uint16 when every token id will fit (a vocabulary of at most
    65,536 tokens: half the memory of int32, and the kernels compile once for each), else as int32.
    Every word is at least one symbol long, every `freq` at least 1 (a word of count 0 would only add
    work), and the words lie in `sym` in order without overlapping (`rebuild` packs them in place)."""
    longest = int(length.max()) if len(length) else 0
    corpus = Corpus(sym, start, length, freq, np.zeros(len(start), np.int32), np.zeros((3, 3 * longest + 8), np.int64))
    pool = np.zeros(1 << 16, np.uint8)
    pool[:256] = np.arange(256)
    off = np.zeros(1 << 12, np.int64)
    off[:257] = np.arange(257)
    tokens = Tokens(pool, off, np.full(1 << 13, -1, np.int64), *(np.zeros(1 << 12, np.int32) for _ in range(3)))
    n = np.zeros(N_COUNTERS, np.int64)
    n[N_TOKENS] = n[POOL_USED] = 256
    n[N_SYMBOLS] = sym.shape[0]
    n[FREE] = -1
    n[ALL_PAIRS] = 1 << 12  # a first guess at the number of pairs; rebuild grows its table as needed
    n[FLOOR] = floor  # pairs seen fewer times wait outside the pair table (see `rebuild`)
    return corpus, tokens, n


@njit(cache=True, inline="always")
def _mix(z):
    """splitmix64's finaliser: every bit of the key moves every bit of the slot number."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _slot(pairs, key):
    """The slot of the pair with `key` in the pair index, or the empty slot where it would go."""
    index = pairs.index
    mask = index.shape[0] - 1
    s = np.int64(_mix(np.uint64(key)) & np.uint64(mask))
    while index[s] != -1 and pairs.key[index[s]] != key:
        s = (s + 1) & mask
    return s


@njit(cache=True, inline="always")
def _left(pairs, p):
    return np.int32(pairs.key[p] >> 32)


@njit(cache=True, inline="always")
def _right(pairs, p):
    return np.int32(pairs.key[p] & 0xFFFFFFFF)


@njit(cache=True)
def _new_pairs(cap):
    """An empty pair table of `cap` pairs (key and count side by side: a look-up reads both in one
    cache line), its index a power of two at least twice as long (so at most half full)."""
    size = 1 << 10
    while size < 2 * cap:
        size *= 2
    key_count = np.zeros((cap, 2), np.int64)
    return Pairs(key_count[:, 0], key_count[:, 1], np.empty(cap, np.int32), np.empty(cap, np.bool_),
                 np.empty(cap, np.int32), np.empty(cap, np.int32), np.full(size, -1, np.int32))


@njit(cache=True)
def _room_for_pairs(pairs, n, extra):
    """`pairs` grown to room for `extra` more pairs."""
    n_pairs = n[N_PAIRS]
    grown = _new_pairs(n_pairs + extra)
    for p in range(n_pairs):  # (a loop, not slice assignments: see `_grow`)
        grown.key[p], grown.count[p], grown.head[p], grown.merged[p], grown.mark[p] = (
            pairs.key[p], pairs.count[p], pairs.head[p], pairs.merged[p], pairs.mark[p])
    for p in range(n_pairs):  # rehash: slot numbers depend on the table size
        grown.index[_slot(grown, grown.key[p])] = p
    return grown


@njit(cache=True, inline="always")
def _pair_id(pairs, n, a, b):
    """Number of pair (a, b), created (count 0, empty chain) if new; there must be room for it."""
    key = (np.int64(a) << 32) | np.int64(b)
    s = _slot(pairs, key)
    if pairs.index[s] != -1:
        return np.int64(pairs.index[s])
    p = n[N_PAIRS]
    pairs.index[s] = p
    pairs.key[p], pairs.count[p], pairs.head[p], pairs.merged[p], pairs.mark[p] = key, 0, -1, False, -1
    n[N_PAIRS] += 1
    return p


@njit(cache=True, inline="always")
def _bytes_greater(tokens, a, b):
    """Token a's bytes > token b's bytes, as Python compares bytes (a proper prefix is smaller)."""
    pool, off = tokens.pool, tokens.off
    la, lb = off[a + 1] - off[a], off[b + 1] - off[b]
    for i in range(min(la, lb)):
        x, y = pool[off[a] + i], pool[off[b] + i]
        if x != y:
            return x > y
    return la > lb


@njit(cache=True, inline="always")
def _tie_key(tokens, a, b):
    """A 63-bit integer that orders pairs as their (left bytes, right bytes) tuples, when it differs.

    The key holds the first 7 symbols of: a's bytes, an end mark, b's bytes, an end mark -- each byte
    as byte + 1 and the end mark as 0, 9 bits each, padded with 0. A proper prefix then compares
    smaller, as Python compares bytes. Two pairs with equal keys are compared byte by byte (rare).
    Held in the heap beside each entry, it spares the sift loops any look-up of the tokens' bytes.
    """
    pool, off = tokens.pool, tokens.off
    key = np.int64(0)
    k = 0
    for t in (a, b):
        i = off[t]
        while k < 7 and i < off[t + 1]:
            key = (key << 9) | (np.int64(pool[i]) + 1)
            i += 1
            k += 1
        if k < 7:
            key <<= 9  # the end mark
            k += 1
    return key << (9 * (7 - k))


@njit(cache=True, inline="always")
def _before(heap, i, j, pairs, tokens):
    """Does heap entry i come before entry j? The higher count first; on a tie the greater (left bytes,
    right bytes), as ``max(pairs, key=lambda p: (count[p], p))`` picks (`_tie_key`, then the bytes)."""
    if heap.count[i] != heap.count[j]:
        return heap.count[i] > heap.count[j]
    if heap.key[i] != heap.key[j]:
        return heap.key[i] > heap.key[j]
    p, q = heap.pair[i], heap.pair[j]
    if _left(pairs, p) != _left(pairs, q):
        return _bytes_greater(tokens, _left(pairs, p), _left(pairs, q))
    if _right(pairs, p) != _right(pairs, q):
        return _bytes_greater(tokens, _right(pairs, p), _right(pairs, q))
    return False


@njit(cache=True, inline="always")
def _swap(heap, i, j):
    heap.pair[i], heap.pair[j] = heap.pair[j], heap.pair[i]
    heap.count[i], heap.count[j] = heap.count[j], heap.count[i]
    heap.key[i], heap.key[j] = heap.key[j], heap.key[i]


@njit(cache=True, inline="always")
def _push(heap, n, pairs, tokens, p, c, key):
    """Add pair p with count c (and its `_tie_key`) to the heap; there must be room for it."""
    i = n[HEAP_SIZE]
    heap.pair[i], heap.count[i], heap.key[i] = p, c, key
    while i > 0:
        up = (i - 1) >> 1
        if not _before(heap, i, up, pairs, tokens):
            break
        _swap(heap, i, up)
        i = up
    n[HEAP_SIZE] += 1


@njit(cache=True, inline="always")
def _sift_down(heap, i, size, pairs, tokens):
    """Move entry i down until no child comes before it."""
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and _before(heap, c + 1, c, pairs, tokens):
            c += 1
        if not _before(heap, c, i, pairs, tokens):
            break
        _swap(heap, c, i)
        i = c


@njit(cache=True, inline="always")
def _pop(heap, n, pairs, tokens):
    """Remove the top entry."""
    size = n[HEAP_SIZE] - 1
    n[HEAP_SIZE] = size
    _swap(heap, 0, size)
    _sift_down(heap, 0, size, pairs, tokens)


@njit(cache=True, inline="always")
def _change(scratch, k, x, y, sign):
    scratch[0, k], scratch[1, k], scratch[2, k] = x, y, sign
    return k + 1


@njit(cache=True, inline="always")
def merge_word(sym, s, length, a, b, new, scratch):
    """Merge every (a, b) in ``sym[s : s + length]`` into `new`, left to right without overlaps, in place.

    The pair counts change only around each merge: ``x a b y -> x new y`` takes one (x, a), (a, b),
    (b, y) away and adds one (x, new), (new, y). These changes go into `scratch` as (left, right, +1
    or -1), to be weighted by the word's frequency; (a, b) itself is left out, as it is merged for good.
    The left neighbour is read from the merged output, so ``a b a b -> new new`` comes out right.
    Returns (new length, number of changes).
    """
    end = s + length
    i = j = s
    k = 0
    while i < end:
        if i + 1 < end and sym[i] == a and sym[i + 1] == b:
            if j > s:
                k = _change(scratch, k, sym[j - 1], a, -1)
                k = _change(scratch, k, sym[j - 1], new, 1)
            if i + 2 < end:
                k = _change(scratch, k, b, sym[i + 2], -1)
                k = _change(scratch, k, new, sym[i + 2], 1)
            sym[j] = new
            i += 2
        else:
            sym[j] = sym[i]
            i += 1
        j += 1
    return j - s, k


@njit(cache=True, inline="always")
def _add(pairs, chains, n, x, y, delta, w, new, stamp):
    """``count[(x, y)] += delta``. Only pairs that hold the new token gain (delta > 0): word w goes on
    their chain, and they are listed in `touched` to be pushed on the heap. There must be room for
    one pair and one chain entry. A pair that loses and is not in the table was left out below the
    floor (see `rebuild`): its count is not kept."""
    if delta < 0:
        s = _slot(pairs, (np.int64(x) << 32) | np.int64(y))
        if pairs.index[s] != -1:
            pairs.count[pairs.index[s]] += delta
        return
    p = _pair_id(pairs, n, x, y)
    pairs.count[p] += delta
    if delta > 0:
        if pairs.mark[p] != stamp:
            pairs.mark[p] = stamp
            pairs.touched[n[N_TOUCHED]] = p
            n[N_TOUCHED] += 1
        e = n[FREE]  # reuse an entry of a merged pair's chain, else take a new one
        if e != -1:
            n[FREE] = chains.next[e]
            n[N_FREE] -= 1
        else:
            e = n[N_CHAIN]
            n[N_CHAIN] += 1
        chains.word[e], chains.next[e] = w, pairs.head[p]
        pairs.head[p] = e


@njit(cache=True)
def _token_for(tokens, n, a, b):
    """Id of the token with the bytes of a + b: an existing one with the same bytes, else a new one."""
    off = tokens.off
    la, lb = off[a + 1] - off[a], off[b + 1] - off[b]
    pool = tokens.pool
    start = n[POOL_USED]
    if start + la + lb > pool.shape[0]:
        pool = _grow(pool, start + la + lb)
    if n[N_TOKENS] + 2 > off.shape[0]:
        off = _grow(off, n[N_TOKENS] + 2)
    index = tokens.index
    if 4 * (n[N_TOKENS] + 1) > index.shape[0]:  # keep the index at most half full: rehash
        index = np.full(2 * index.shape[0], -1, np.int64)
        mask = index.shape[0] // 2 - 1
        for t in range(256, n[N_TOKENS]):
            h = hash_bytes(pool, off[t], off[t + 1])
            s = np.int64(h & np.uint64(mask))
            while index[2 * s] != -1:
                s = (s + 1) & mask
            index[2 * s], index[2 * s + 1] = np.int64(h >> np.uint64(1)), t
    for i in range(la):  # (loops, not slice assignments: see `_grow`)
        pool[start + i] = pool[off[a] + i]
    for i in range(lb):
        pool[start + la + i] = pool[off[b] + i]
    h = hash_bytes(pool, start, start + la + lb)
    key = np.int64(h >> np.uint64(1))  # non-negative, never the empty mark
    mask = index.shape[0] // 2 - 1
    s = np.int64(h & np.uint64(mask))
    while index[2 * s] != -1:
        t = index[2 * s + 1]
        if index[2 * s] == key and off[t + 1] - off[t] == la + lb and same_bytes(pool, off[t], pool, start, la + lb):
            return t, Tokens(pool, off, index, tokens.out_left, tokens.out_right, tokens.out_id)
        s = (s + 1) & mask
    t = n[N_TOKENS]
    index[2 * s], index[2 * s + 1] = key, t
    off[t + 1] = start + la + lb
    n[POOL_USED] = start + la + lb
    n[N_TOKENS] += 1
    return t, Tokens(pool, off, index, tokens.out_left, tokens.out_right, tokens.out_id)


@njit(**NO_REFCOUNT)
def _best_pair(heap, n, pairs, tokens):
    """The pair to merge next, or -1: pop entries whose count changed since they were pushed, and
    push them again with their current count (they come back in their right place)."""
    while n[HEAP_SIZE] > 0:
        p, c, key = heap.pair[0], heap.count[0], heap.key[0]
        if not pairs.merged[p] and c == pairs.count[p]:
            return p
        _pop(heap, n, pairs, tokens)
        if not pairs.merged[p] and pairs.count[p] >= n[FLOOR]:
            _push(heap, n, pairs, tokens, p, pairs.count[p], key)  # room: we just popped one
    return -1


@njit(**NO_REFCOUNT)
def _merge_pair(corpus, pairs, chains, heap, tokens, n, best, new):
    """Merge pair `best` into token `new` in every word that holds it, update the pair counts, and
    push the pairs that gained count. There must be room (see `train_merges`)."""
    a, b = _left(pairs, best), _right(pairs, best)
    n[STAMP] += 1
    stamp = n[STAMP]
    n[N_TOUCHED] = 0
    # visit the words on the pair's chain (a word is on it once per time it gained the pair)
    e = pairs.head[best]
    pairs.head[best] = -1
    while e != -1:
        w = chains.word[e]
        after = chains.next[e]
        chains.next[e] = n[FREE]  # the pair is merged for good: its chain entries are free for reuse
        n[FREE] = e
        n[N_FREE] += 1
        e = after
        if corpus.seen[w] == stamp:
            continue
        corpus.seen[w] = stamp
        length, k = merge_word(corpus.sym, corpus.start[w], corpus.length[w], a, b, new, corpus.scratch)
        n[N_SYMBOLS] -= corpus.length[w] - length
        corpus.length[w] = length
        f = corpus.freq[w]
        for d in range(k):
            _add(pairs, chains, n, corpus.scratch[0, d], corpus.scratch[1, d], corpus.scratch[2, d] * f, w, new, stamp)
    # Pairs that gained count need a fresh heap entry; lower counts are fixed lazily (_best_pair). A
    # pair that gained and lost again gets an entry it does not need: harmless, as it is refreshed or
    # dropped when it reaches the top.
    for i in range(n[N_TOUCHED]):
        p = pairs.touched[i]
        if pairs.count[p] >= n[FLOOR] and not pairs.merged[p]:
            _push(heap, n, pairs, tokens, p, pairs.count[p], _tie_key(tokens, _left(pairs, p), _right(pairs, p)))


@njit(**NO_REFCOUNT)
def _rebuild_heap(heap, n, pairs, tokens):
    """Rebuild the heap with one entry per live pair (not merged, count at least the floor), at its
    current count: lazy invalidation leaves stale entries behind, and this keeps the heap from growing
    with them."""
    size = 0
    for p in range(n[N_PAIRS]):
        if not pairs.merged[p] and pairs.count[p] >= n[FLOOR]:
            heap.pair[size], heap.count[size] = p, pairs.count[p]
            heap.key[size] = _tie_key(tokens, _left(pairs, p), _right(pairs, p))
            size += 1
    n[HEAP_SIZE] = size
    for i in range(size // 2 - 1, -1, -1):  # heapify: sift each parent down, last first
        _sift_down(heap, i, size, pairs, tokens)


@njit(**NO_REFCOUNT)
def _chain_length(chains, e):
    """Entries on the chain that starts at entry e."""
    length = 0
    while e != -1:
        length += 1
        e = chains.next[e]
    return length



@njit(cache=True, inline="always")
def _free_chain(chains, n, e):
    """Put the chain that starts at entry `e` (a pair's occurrences) on the list of free entries."""
    while e != -1:
        after = chains.next[e]
        chains.next[e] = n[FREE]
        n[FREE] = e
        n[N_FREE] += 1
        e = after

@njit(**NO_REFCOUNT)
def _drop_pairs(pairs, chains, n):
    """Drop, in place, the pairs that are merged or below the floor (see `_above_floor`): the others
    move down (renumbered in order), their chain entries go on the free list, the index is rebuilt.
    The heap's pair numbers are stale after this: the caller rebuilds it."""
    floor = n[FLOOR]
    q = 0
    for p in range(n[N_PAIRS]):
        if pairs.count[p] >= floor and not pairs.merged[p]:
            pairs.key[q], pairs.count[q], pairs.head[q], pairs.merged[q], pairs.mark[q] = (
                pairs.key[p], pairs.count[p], pairs.head[p], False, -1)
            q += 1
        else:
            _free_chain(chains, n, pairs.head[p])
    n[N_PAIRS] = q
    for s in range(pairs.index.shape[0]):
        pairs.index[s] = -1
    for p in range(q):
        pairs.index[_slot(pairs, pairs.key[p])] = p


@njit(cache=True, inline="always")
def _fits(n, pairs, chains, heap, occ):
    """Is there room for a merge of `occ` occurrences? Each makes at most 2 chain entries, and at most
    2 new pairs and 2 heap pushes; but only pairs (x, new) and (new, y) gain, each side one of the
    N_TOKENS + 1 tokens, which bounds the new pairs and pushes far below 2 * occ early on."""
    grow = min(2 * occ, 2 * n[N_TOKENS] + 2)
    return (n[N_PAIRS] + grow <= pairs.key.shape[0] and n[N_CHAIN] + 2 * occ - n[N_FREE] <= chains.word.shape[0]
            and n[HEAP_SIZE] + grow <= heap.pair.shape[0])


@njit(cache=True)
def train_merges(corpus, pairs, chains, heap, tokens, n, max_tokens, min_frequency, budget, fresh, spare):
    """The merge loop's one entry point (each kernel loaded from numba's cache costs time and memory):
    when `fresh`, first `rebuild` the pair table, chains and heap (the caller passes `no_parts()`,
    having let go of the old ones, so that old and new never take memory at the same time); then
    `_merges`. Returns (STOPPED, BUDGET_USED or NEEDS_ROOM, corpus, pairs, chains, heap, tokens)."""
    if fresh:
        corpus, pairs, chains, heap = rebuild(corpus, tokens, n, spare)
    status, tokens = _merges(corpus, pairs, chains, heap, tokens, n, max_tokens, min_frequency, budget)
    return status, corpus, pairs, chains, heap, tokens


def no_parts() -> tuple[Pairs, Chains, Heap]:
    """Placeholders for the pair table, chains and heap, for `train_merges` to rebuild (two entries
    each: the pair table's key and count are columns of one array, strided as `_new_pairs` makes them)."""
    key_count = np.zeros((2, 2), np.int64)
    pairs = Pairs(key_count[:, 0], key_count[:, 1], np.zeros(2, np.int32), np.zeros(2, np.bool_), np.zeros(2, np.int32),
                  np.zeros(2, np.int32), np.full(2, -1, np.int32))
    return pairs, Chains(np.zeros(2, np.int32), np.zeros(2, np.int32)), Heap(np.zeros(2, np.int32),
                                                                           np.zeros(2, np.int64), np.zeros(2, np.int64))


@njit(cache=True)
def _merges(corpus, pairs, chains, heap, tokens, n, max_tokens, min_frequency, budget):
    """Run up to `budget` merges; stop early when the vocabulary has `max_tokens` tokens or no pair
    occurs `min_frequency` times, or when the next merge needs more room than the pair table, the
    chains or the heap have (then ``n[NEED]`` and ``n[LIVE]`` say how much, for `rebuild`). Returns
    (STOPPED, BUDGET_USED or NEEDS_ROOM, tokens), grown. Nothing here allocates the large arrays."""
    for _ in range(budget):
        if n[N_TOKENS] >= max_tokens:
            return STOPPED, tokens
        best = _best_pair(heap, n, pairs, tokens)
        if best == -1 or pairs.count[best] < min_frequency:
            # No pair in the heap, or the best is below min_frequency: every pair left out of the table
            # occurs fewer than FLOOR times, and some may still qualify: lower the floor, count them all again.
            if n[FLOOR] > max(min_frequency, 1):
                n[FLOOR] = max(min_frequency, 1)
                n[LIVE], n[NEED] = n[N_PAIRS], 0
                return NEEDS_ROOM, tokens
            return STOPPED, tokens
        # Room for the merge. It has at most `occ` occurrences: no more than its count (each occurrence
        # adds its word's frequency, at least 1), nor than its chain is long (a word holding the pair k
        # times is on its chain at least k times, once per time it gained it). The count is at hand;
        # the chain is walked only when the count does not show room enough (mostly the first merges).
        occ = pairs.count[best]
        if not _fits(n, pairs, chains, heap, occ):
            occ = min(occ, _chain_length(chains, pairs.head[best]))
        if n[N_CHAIN] + 2 * occ >= 2**31 - 1 or n[N_PAIRS] + 2 * occ >= 2**31 - 1:
            raise ValueError("too many pairs or pair occurrences for int32 chains and pair numbers (over 2**31)")
        crowded = False
        if not _fits(n, pairs, chains, heap, occ):
            # First what needs no allocation: drop the heap's stale entries, and when the pair table is
            # full, the pairs below the floor (in place; much cheaper than a rebuild, which also
            # counts every pair of every word again). Pairs are renumbered: `best` is found again.
            _rebuild_heap(heap, n, pairs, tokens)
            if n[N_PAIRS] + min(2 * occ, 2 * n[N_TOKENS] + 2) > pairs.key.shape[0]:
                _drop_pairs(pairs, chains, n)
                _rebuild_heap(heap, n, pairs, tokens)
                best = _best_pair(heap, n, pairs, tokens)
                crowded = 4 * (pairs.key.shape[0] - n[N_PAIRS]) < n[N_PAIRS]  # little room won: resize
        if not _fits(n, pairs, chains, heap, occ) or crowded:
            live = 0
            for p in range(n[N_PAIRS]):
                if pairs.count[p] > 0 and not pairs.merged[p]:
                    live += 1
            n[LIVE], n[NEED] = live, 2 * occ
            return NEEDS_ROOM, tokens
        m = n[N_MERGES]
        if m >= tokens.out_left.shape[0]:
            tokens = Tokens(tokens.pool, tokens.off, tokens.index, _grow(tokens.out_left, m + 1),
                            _grow(tokens.out_right, m + 1), _grow(tokens.out_id, m + 1))
        a, b = _left(pairs, best), _right(pairs, best)
        n_tokens = n[N_TOKENS]
        new, tokens = _token_for(tokens, n, a, b)
        tokens.out_left[m], tokens.out_right[m], tokens.out_id[m] = a, b, new
        n[N_MERGES] += 1
        pairs.merged[best] = True
        _merge_pair(corpus, pairs, chains, heap, tokens, n, best, new)
        if n[N_TOKENS] == n_tokens and n[FLOOR] > 1:
            # The merge remade an existing token, so pairs (x, new) and (new, y) may have been counted
            # before and left out below the floor: their counts start again from the words.
            n[LIVE], n[NEED] = n[N_PAIRS], 0
            return NEEDS_ROOM, tokens
    return BUDGET_USED, tokens


@njit(**NO_REFCOUNT)
def _count_pairs(corpus, pairs, chains, n, w):
    """Count the pairs of words w, w + 1, ... and chain each word to its pairs, while the pair table
    has room for a whole word's pairs; returns the first word not counted. (Growing the table is
    left to the caller: see the speed notes above.)"""
    sym, start, length, freq = corpus.sym, corpus.start, corpus.length, corpus.freq
    while w < start.shape[0]:
        if n[N_PAIRS] + length[w] > pairs.key.shape[0]:
            return w
        s = start[w]
        for i in range(s, s + length[w] - 1):
            p = _pair_id(pairs, n, sym[i], sym[i + 1])
            pairs.count[p] += freq[w]
            e = n[N_CHAIN]
            chains.word[e], chains.next[e] = w, pairs.head[p]
            pairs.head[p] = e
            n[N_CHAIN] += 1
        w += 1
    return w


@njit(cache=True, inline="always")
def _room(live, occ, grow, spare):
    """Room to leave for new pairs and heap entries after a rebuild, with `live` pairs from `occ`
    adjacent symbols, when the next merge may make `grow`. A rebuild costs time in proportion to
    `occ`, so the room grows with it: rebuilds stay rare (6 in 50,000 merges on the shared corpus)."""
    return max(grow, live, occ // 16, 1024) if spare else grow


@njit(cache=True)
def _above_floor(pairs, chains, n, occ, grow, spare):
    """The pairs that occur at least FLOOR times, in a table of their own with `room` to spare; the
    chain entries of the others go on the free list.

    Most pairs occur once (136,000 of 152,000 at the end of 50,257 merges on the shared corpus), and
    a pair of two tokens that exist now can only lose count (only pairs that hold a merge's new token
    gain). So a pair below the floor cannot be merged until no pair reaches the floor; it is left out
    of the table, the chains and the heap, and `_add` drops its losses. When no pair reaches the floor,
    `train_merges` lowers it and asks for a rebuild, which counts every pair again. (A merge that
    remakes an existing token would let pairs left out gain: `train_merges` asks for a rebuild then too.)
    """
    floor = n[FLOOR]
    kept = 0
    for p in range(n[N_PAIRS]):
        if pairs.count[p] >= floor:
            kept += 1
    out = _new_pairs(kept + _room(kept, occ, grow, spare))
    n_pairs = n[N_PAIRS]
    n[N_PAIRS] = 0
    for p in range(n_pairs):
        if pairs.count[p] >= floor:
            q = _pair_id(out, n, _left(pairs, p), _right(pairs, p))
            out.count[q], out.head[q] = pairs.count[p], pairs.head[p]
        else:
            _free_chain(chains, n, pairs.head[p])
    return out


@njit(cache=True)
def rebuild(corpus, tokens, n, spare):
    """The pair counts, chains and heap, made afresh from the words as they are now; returns
    (corpus, pairs, chains, heap), with room for ``n[NEED]`` more chain entries and the pairs and
    heap entries they can make, and, when `spare`, room to spare (without, the next merge that
    makes anything new calls for another rebuild: the tests use that to rebuild all the time).

    Also the start of training (the words are single bytes then). Merging leaves behind what a fresh
    count would not have: pairs whose count fell to 0, chain entries of words that no longer hold the
    pair, gaps in `sym` where words got shorter. So when the arrays are full, the caller drops them
    and this builds them again, sized to what the words hold now rather than to everything ever
    seen. The counts it makes are the ones merging kept (every adjacent pair of every word, weighted
    by the word's frequency), and a merged pair occurs nowhere (merging replaced every occurrence,
    and no later merge can put its two tokens side by side again), so training goes on as if
    nothing had happened: which pair is merged next depends only on the counts and the pairs' bytes.
    """
    sym, start, length, freq = corpus.sym, corpus.start, corpus.length, corpus.freq
    used = 0
    for w in range(start.shape[0]):  # pack the words (each moves down or stays: they lie in order)
        s = start[w]
        for i in range(length[w]):
            sym[used + i] = sym[s + i]
        start[w] = used
        used += length[w]
    if 2 * used <= sym.shape[0]:  # give back what merging freed
        sym = sym[:used].copy()
        corpus = Corpus(sym, start, length, freq, corpus.seen, corpus.scratch)
    occ = used - start.shape[0]  # adjacent pairs, over all words
    need = n[NEED]  # chain entries the next merge may add
    grow = min(need, 2 * n[N_TOKENS] + 2)  # pairs it may make, heap entries it may push (see `_fits`)
    # Room to spare, so that rebuilds are rare: each costs time in proportion to the symbols (`occ`).
    guess = max(n[LIVE], n[ALL_PAIRS])
    pairs = _new_pairs(guess + _room(guess, occ, grow, spare))
    size = occ + (max(need, occ // 8) + 1024 if spare else need)
    if spare:  # later rebuilds may use what the first one took (the peak memory comes early): fewer rebuilds
        size = max(size, min(n[CHAIN_ROOM], occ + occ // 2))
        n[CHAIN_ROOM] = max(n[CHAIN_ROOM], size)
    chains = Chains(np.empty(size, np.int32), np.empty(size, np.int32))
    n[N_PAIRS] = n[N_CHAIN] = n[N_FREE] = n[HEAP_SIZE] = 0
    n[FREE] = -1
    w = 0
    while True:
        w = _count_pairs(corpus, pairs, chains, n, w)
        if w == start.shape[0]:
            break
        pairs = _room_for_pairs(pairs, n, max(n[N_PAIRS], length[w]))  # more pairs than guessed
    n[ALL_PAIRS] = n[N_PAIRS]
    if n[FLOOR] > 1:
        pairs = _above_floor(pairs, chains, n, occ, grow, spare)
    live = n[N_PAIRS]
    room = _room(live, occ, grow, spare)
    if live + room > pairs.key.shape[0]:
        pairs = _room_for_pairs(pairs, n, room)
    size = live + room
    heap = Heap(np.empty(size, np.int32), np.empty(size, np.int64), np.empty(size, np.int64))
    _rebuild_heap(heap, n, pairs, tokens)
    n[N_SYMBOLS] = used
    return corpus, pairs, chains, heap
