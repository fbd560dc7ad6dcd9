"""The piece table of npgpt.bpe.merge_kernels against its plain twin, a dict from bytes to ids.

The encode kernel's tricks -- whole-word loads of a piece, ids stored in the output's width and
written 8 bytes at a time past the last id -- are checked here one by one; the whole encoder is held
to npgpt.reference in test_bpe_properties.py.
"""

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from numba import njit

from npgpt import Encoding
from npgpt.bpe import merge_kernels as mk
from npgpt.bpe.pretokenize_kernels import (
    at,
    compare_swap,
    load_acquire,
    load_u64,
    prefetch,
    put,
    store_release,
    store_u64,
    width_of,
)
from npgpt.reference import ReferenceEncoder
from tests.random_vocab import random_merges


def word(b: bytes) -> int:
    """The plain meaning of a word: up to 8 bytes, little-endian, zeros above."""
    return int.from_bytes(b[:8], "little")


@given(st.binary(max_size=40), st.data())
@example(b"abcdefghijklmnopqrstuvwxyz", None)
def test_piece_words_are_the_bytes(buf, data):
    arr = np.frombuffer(buf, np.uint8)
    for start in range(len(buf)) if data is None else [data.draw(st.integers(0, max(len(buf) - 1, 0)))]:
        for n in range(1, len(buf) - start + 1):
            piece = buf[start : start + n]
            w0, w1 = mk.piece_words(arr, start, n)
            assert (int(w0), int(w1)) == (word(piece), word(piece[8:]))
            assert int(mk.head_word(arr, start, n)) == word(piece)


@njit
def _load(buf, i):
    return load_u64(buf, i)


@njit
def _store(out, i, w):
    store_u64(out, i, w)


@njit
def _width_and_prefetch(arr):
    prefetch(arr, 10**9)  # a hint: even far past the end it reads nothing and changes nothing
    return width_of(arr)


@njit
def _at_all(arr):
    return [at(arr, i) for i in range(arr.shape[0])]


@njit
def _put_all(arr, values):
    for i in range(values.shape[0]):
        put(arr, i, values[i])


def test_at_and_put_are_indexing():
    for arr in (np.arange(5, dtype=np.uint8), np.array([-3, 2**40], np.int64), np.array([7, 65535], np.uint16)):
        assert _at_all(arr) == arr.tolist()
        copy = np.zeros_like(arr)
        _put_all(copy, arr.astype(np.int64))  # cast to the array's dtype on the way in
        assert copy.tolist() == arr.tolist()


def test_width_of_and_prefetch():
    assert [_width_and_prefetch(np.zeros(3, t)) for t in (np.uint8, np.uint16, np.uint32, np.int64)] == [1, 2, 4, 8]


def test_load_and_store_words():
    buf = np.frombuffer(bytes(range(1, 17)), np.uint8)
    assert int(_load(buf, 3)) == word(bytes(range(4, 12)))
    out = np.zeros(6, np.uint16)
    _store(out, 1, np.uint64(0x0004000300020001))
    assert out.tolist() == [0, 1, 2, 3, 4, 0]
    out32 = np.zeros(4, np.uint32)
    _store(out32, 2, np.uint64(7 | 9 << 32))
    assert out32.tolist() == [0, 0, 7, 9]



def words(buf, start, n):
    """`piece_words` as NumPy scalars (numba returns Python ints, which it cannot take back above 2**63)."""
    return tuple(map(np.uint64, mk.piece_words(buf, start, n)))


@given(st.lists(st.binary(min_size=1, max_size=40), max_size=40, unique=True), st.sampled_from([2, 4]),
       st.integers(0, 2**32 - 1))
@example([b"a" * 8, b"b" * 9, b"c" * 16, b"d" * 17, b"\x00", b"\x00\x00"], 2, 0)
def test_piece_table_is_a_dict(keys, width, seed):
    """put, then find and write back: the ids of every piece (any count up to its length, inline or in
    the pool), nothing before them overwritten, and no piece found that was not put."""
    rng = random.Random(seed)
    dtype = np.uint16 if width == 2 else np.uint32
    plain = {k: [rng.randrange(2 ** (8 * width)) for _ in range(rng.randint(1, len(k)))] for k in keys[::2]}
    table = tuple(mk.piece_table(256, 4096, width))
    for k, ids in plain.items():
        buf = np.frombuffer(k, np.uint8)
        w0, w1 = words(buf, 0, len(k))
        assert mk.piece_put(table, buf, 0, len(k), w0, w1, np.array(ids, dtype), len(ids))
    for k in keys:
        buf = np.frombuffer(b"xy" + k, np.uint8)  # not at the start of its buffer
        w0, w1 = words(buf, 2, len(k))
        s = mk.piece_find(table, buf, 2, 2 + len(k), w0, w1)
        if k not in plain:
            assert s == -1
            continue
        out = np.full(3 + len(k) + mk.OUT_SLACK, 12345, dtype)
        assert mk.piece_write(table, s, out, 3) == len(plain[k])
        assert out[:3].tolist() == [12345] * 3 and out[3 : 3 + len(plain[k])].tolist() == plain[k]


def test_piece_table_says_when_full():
    table = tuple(mk.piece_table(4, 8, 2))
    one = np.array([1], np.uint16)
    for i in range(2):
        buf = np.frombuffer(bytes([65 + i]), np.uint8)
        assert mk.piece_put(table, buf, 0, 1, *words(buf, 0, 1), one, 1)
    buf = np.frombuffer(b"C", np.uint8)
    assert not mk.piece_put(table, buf, 0, 1, *words(buf, 0, 1), one, 1)  # half full
    table = tuple(mk.piece_table(64, 8, 2))
    buf = np.frombuffer(b"x" * 30, np.uint8)  # 14 key bytes to the pool: they do not fit beside the slack
    assert not mk.piece_put(table, buf, 0, 30, *words(buf, 0, 30), one, 1)


@njit
def _atomics(arr):
    before = load_acquire(arr, 1)
    store_release(arr, 2, np.int64(-7))
    won = compare_swap(arr, 0, np.int64(5), np.int64(6))  # arr[0] is 5: swapped
    lost = compare_swap(arr, 0, np.int64(5), np.int64(9))  # now 6: left alone
    return before, won, lost


def test_atomics_are_plain_reads_writes_and_a_conditional_swap():
    arr = np.array([5, 11, 0], np.int64)
    assert _atomics(arr) == (11, True, False)
    assert arr.tolist() == [6, 11, -7]


@njit(nogil=True)
def _put_all_keys(table, pool, offsets, order, ids):
    """Put every key of `pool` not yet in `table`, in the given order; how many puts failed."""
    failed = 0
    for j in order:
        a, b = offsets[j], offsets[j + 1]
        w0, w1 = mk.piece_words(pool, a, b - a)
        if mk.piece_find(table, pool, a, b, w0, w1) < 0 and not mk.piece_put(table, pool, a, b, w0, w1,
                                                                             ids[2 * j : 2 * j + 2], 2):
            failed += 1
    return failed


def test_piece_table_takes_puts_from_several_threads_at_once():
    """Four threads put the same 3,000 pieces, each in its own order, into one table (the kernel runs
    without the GIL): every piece is then found with its own ids, none is lost or torn, and the
    table counts no more entries than it has slots for (a piece put by two threads at once may
    take two slots: both hold its ids)."""
    rng = random.Random(0)
    keys = sorted({bytes(rng.randrange(256) for _ in range(rng.randint(2, 40))) for _ in range(3000)})
    pool = np.frombuffer(b"".join(keys), np.uint8)
    offsets = np.cumsum([0] + [len(k) for k in keys]).astype(np.int64)
    ids = np.arange(2 * len(keys), dtype=np.uint16)  # piece j -> ids (2j, 2j + 1)
    for _ in range(5):
        table = tuple(mk.piece_table(8192, 1 << 17, 2))
        orders = [np.array(rng.sample(range(len(keys)), len(keys)), np.int64) for _ in range(4)]
        start = threading.Barrier(4)

        def put(order, table=table, start=start):
            start.wait()
            return _put_all_keys(table, pool, offsets, order, ids)

        with ThreadPoolExecutor(4) as ex:
            assert list(ex.map(put, orders)) == [0, 0, 0, 0]
        slots, state = table[0].reshape(-1, 4), table[2]
        assert len(keys) <= state[0] <= 4096 and (slots[:, 1] != 0).sum() == state[0]
        for j, k in enumerate(keys):
            buf = np.frombuffer(k, np.uint8)
            s = mk.piece_find(table, buf, 0, len(k), *words(buf, 0, len(k)))
            out = np.zeros(2 + mk.OUT_SLACK, np.uint16)
            assert s >= 0 and mk.piece_write(table, s, out, 0) == 2 and out[:2].tolist() == [2 * j, 2 * j + 1]


def test_one_piece_cache_shared_by_threads_that_fill_it_over_and_over(enc):
    """Every encode call of an Encoding shares one piece cache. With a tiny one, four threads fill it
    again and again while the others read it, so it is emptied in place (one reader), or retired and
    replaced by the spare (several); the ids must be those of a single thread with a cache that never fills."""
    rng = random.Random(1)
    texts = [" ".join("".join(rng.choice("qxzjkvbwy") for _ in range(rng.randint(3, 12))) for _ in range(600))
             + " привет мир 漢字" * 20 for _ in range(24)]
    expected = [enc.encode_to_numpy(t).tolist() for t in texts]
    caches, saved = mk.PieceCaches(enc._get_tables().tokens, pool_bytes=512, pool_ids=128), enc._caches
    enc._caches = caches
    try:
        for _ in range(3):
            with ThreadPoolExecutor(4) as ex:
                assert [ids.tolist() for ids in ex.map(enc.encode_to_numpy, texts)] == expected
            assert [ids.tolist() for ids in enc.encode_batch_to_numpy(texts, num_threads=4)] == expected
        assert caches.current is not None and caches.current.state[3] > 0  # emptied, and refilled
        assert caches.spare is not None  # retired while read by others, and emptied by its last reader
        assert not caches.current.users and not caches.spare.users
    finally:
        enc._caches = saved


def test_encode_kernel_refuses_a_short_or_wrong_output(enc):
    t = enc._get_tables()
    cache = mk.PieceCache(t.tokens)
    work = mk.scratch(mk.SCRATCH)
    buf = np.frombuffer(b"hello world", np.uint8)
    segments = np.array([[0, len(buf), -1]], np.int64)
    segments.flags.writeable = False
    from npgpt.bpe.unicode_tables import char_classes

    for out in (np.zeros(len(buf) + 1, np.uint16), np.zeros(len(buf) + 1 + mk.OUT_SLACK, np.uint32)):
        state = np.zeros(3, np.int64)
        assert mk.encode_segments(buf, segments, True, char_classes(), t.byte_ids, t.pairs, t.joinable,
                                  cache.arrays, work, state, out) == -2
        assert not out.any()


@given(st.integers(0, 2**32 - 1), st.integers(1, 120), st.text("abcd ", max_size=300))
def test_four_byte_ids_equal_reference(seed, n_merges, text):
    """A special token past 2**16 makes every id 4 bytes wide: fewer fit in a slot, more go to the pool."""
    vocab, merges = random_merges(random.Random(seed), b"abcd ", n_merges)
    enc = Encoding(vocab, merges, {"<|big|>": 70_000}, pattern=r"\S+|\s+")
    ref = ReferenceEncoder(vocab, merges, pattern=r"\S+|\s+")
    assert enc._get_tables().id_dtype == np.uint32
    assert enc.encode_ordinary(text) == ref.encode_ordinary(text)
    assert enc.encode_ordinary(text) == ref.encode_ordinary(text)  # again, from the piece cache


def test_build_tables_refuses_ids_that_do_not_fit():
    with pytest.raises(ValueError, match="do not fit"):
        mk.build_tables({bytes([i]): i + 70_000 for i in range(256)}, [], np.uint16)


@given(st.lists(st.sampled_from(["a", " b", " word", "!", "\n", "x" * 300, "<|endoftext|>", " привет", "漢字"]),
                max_size=60))
def test_kernel_resumes_where_it_stopped(enc, ref, parts):
    """The kernel scans a batch of up to AHEAD pieces before it encodes them; when it stops (a piece longer than
    its work space, a full cache) it must resume at the piece it was encoding, not at the scan."""
    text = "".join(parts)
    caches = mk.PieceCaches(enc._get_tables().tokens, pool_bytes=64, pool_ids=8)  # tiny pools: many resets
    enc._caches, saved = caches, enc._caches
    try:
        assert enc.encode(text, allowed_special="all") == ref.encode(text, {"<|endoftext|>"})
    finally:
        enc._caches = saved


def test_scratch_refuses_a_piece_whose_positions_would_not_fit_32_bits():
    # the long merge loop keeps positions in int32 (and the heap packs them in 32 bits): a 2 GiB word
    # is refused by name before any memory is taken, never wrapped
    assert len(mk.scratch(mk.MAX_PIECE_BYTES // 2**20)) > 0
    with pytest.raises(ValueError, match="2,147,483,648 bytes"):
        mk.scratch(mk.MAX_PIECE_BYTES + 1)
