"""Sliding windows, the book's dataset and loader (npgpt.data). Token files: tests/test_token_files.py."""

import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import npgpt
from npgpt import reference
from npgpt.data import DataLoader, GPTDatasetV1, create_dataloader_v1, sliding_windows

# seeds/000: create_dataloader_v1(the-verdict, batch_size=8, max_length=4, stride=4, shuffle=False)
SEED_BATCH0_X = [[40, 367, 2885, 1464], [1807, 3619, 402, 271], [10899, 2138, 257, 7026], [15632, 438, 2016, 257],
                 [922, 5891, 1576, 438], [568, 340, 373, 645], [1049, 5975, 284, 502], [284, 3285, 326, 11]]
SEED_BATCH0_Y = [[367, 2885, 1464, 1807], [3619, 402, 271, 10899], [2138, 257, 7026, 15632], [438, 2016, 257, 922],
                 [5891, 1576, 438, 568], [340, 373, 645, 1049], [5975, 284, 502, 284], [3285, 326, 11, 287]]
SEED_BATCH1_X = [[287, 262, 6001, 286], [465, 13476, 11, 339], [550, 5710, 465, 12036], [11, 6405, 257, 5527],
                 [27075, 11, 290, 4920], [2241, 287, 257, 4489], [64, 319, 262, 34686], [41976, 13, 357, 10915]]
SEED_BATCH1_Y = [[262, 6001, 286, 465], [13476, 11, 339, 550], [5710, 465, 12036, 11], [6405, 257, 5527, 27075],
                 [11, 290, 4920, 2241], [287, 257, 4489, 64], [319, 262, 34686, 41976], [13, 357, 10915, 314]]
# The first 65 ids of the-verdict, read off the seed batches (stride 4 = max_length: the rows tile the text).
SEED_IDS = [t for row in SEED_BATCH0_X + SEED_BATCH1_X for t in row] + [SEED_BATCH1_Y[-1][-1]]


def pydoc_text() -> str:
    """Text every Python has."""
    from npgpt.cli import default_text

    return default_text()[1]


def test_seed_batches(verdict):
    loader = create_dataloader_v1(verdict, batch_size=8, max_length=4, stride=4, shuffle=False)
    batches = iter(loader)
    x, y = next(batches)
    assert x.shape == (8, 4) and x.dtype == np.int64
    assert x.tolist() == SEED_BATCH0_X and y.tolist() == SEED_BATCH0_Y
    x, y = next(batches)
    assert x.tolist() == SEED_BATCH1_X and y.tolist() == SEED_BATCH1_Y


def test_seed_batches_without_the_corpus(enc):
    # The seed's ids are facts; the text they decode to is the start of the-verdict. Encoding it again and
    # batching it as the book does must give the seed's batches, on any machine.
    text = enc.decode(SEED_IDS)
    assert enc.encode(text) == SEED_IDS
    batches = iter(create_dataloader_v1(text, batch_size=8, max_length=4, stride=4, shuffle=False))
    x, y = next(batches)
    assert x.tolist() == SEED_BATCH0_X and y.tolist() == SEED_BATCH0_Y and x.dtype == np.int64
    x, y = next(batches)
    assert x.tolist() == SEED_BATCH1_X and y.tolist() == SEED_BATCH1_Y
    x, y = next(iter(create_dataloader_v1(text, batch_size=2, max_length=4, stride=1, shuffle=False)))
    assert x.tolist() == [[40, 367, 2885, 1464], [367, 2885, 1464, 1807]]
    assert y.tolist() == [[367, 2885, 1464, 1807], [2885, 1464, 1807, 3619]]


def test_seed_stride_one(verdict):
    x, y = next(iter(create_dataloader_v1(verdict, batch_size=2, max_length=4, stride=1, shuffle=False)))
    assert x.tolist() == [[40, 367, 2885, 1464], [367, 2885, 1464, 1807]]
    assert y.tolist() == [[367, 2885, 1464, 1807], [2885, 1464, 1807, 3619]]


def test_dataset_with_tiktoken_like_tokenizer(verdict):
    class ListTokenizer:  # only `encode`, returning a list, as tiktoken does
        def encode(self, text, allowed_special=()):
            return npgpt.get_encoding("gpt2").encode(text, allowed_special=allowed_special)

    ds = GPTDatasetV1(verdict, ListTokenizer(), max_length=256, stride=128)
    assert len(ds) == len(range(0, 5145 - 256, 128))
    assert ds.token_ids.dtype == np.uint16
    assert ds[0][0].tolist() == ds.token_ids[:256].tolist()
    assert ds[-1][1].tolist() == ds.token_ids[(len(ds) - 1) * 128 + 1 : (len(ds) - 1) * 128 + 257].tolist()


def test_loader_on_pydoc_equals_the_books_loop(enc):
    text = pydoc_text()
    ids = enc.encode(text, allowed_special={"<|endoftext|>"})
    xs, ys = reference.sliding_windows(ids, 256, 128)
    loader = create_dataloader_v1(text, batch_size=8, max_length=256, stride=128, shuffle=False, drop_last=False)
    batches = list(loader)
    assert np.concatenate([x for x, _ in batches]).tolist() == xs
    assert np.concatenate([y for _, y in batches]).tolist() == ys


@given(st.lists(st.integers(0, 60000), max_size=300), st.integers(1, 40), st.integers(1, 40))
def test_windows_equal_naive_slicing(ids, max_length, stride):
    arr = np.array(ids, dtype=np.uint16)
    x, y = sliding_windows(arr, max_length, stride)
    xs, ys = reference.sliding_windows(ids, max_length, stride)
    assert x.shape == (len(xs), max_length) == y.shape
    assert x.tolist() == xs and y.tolist() == ys
    if len(xs):
        assert np.shares_memory(x, arr) and np.shares_memory(y, arr)
        assert not x.flags.writeable and not y.flags.writeable


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=50), st.integers(1, 5), st.integers(1, 5))
def test_windows_of_lists_never_wrap(ids, max_length, stride):
    x, y = sliding_windows(ids, max_length, stride)
    xs, ys = reference.sliding_windows(ids, max_length, stride)
    assert x.tolist() == xs and y.tolist() == ys



@pytest.mark.parametrize("stride", [2**62, 2**63 - 1, 10**30])
def test_a_stride_past_the_tokens_gives_the_one_window(stride):
    # One window whatever the stride beyond the tokens; from 2**62 the view's byte stride overflowed:
    # OverflowError "Python int too large to convert to C long", naming nothing.
    ids = np.arange(20, dtype=np.uint16)
    ds = GPTDatasetV1.from_token_ids(ids, 4, stride)
    assert len(ds) == 1 and ds[0][0].tolist() == [0, 1, 2, 3] and ds[0][1].tolist() == [1, 2, 3, 4]
    x, y = sliding_windows(ids, 4, stride)
    assert x.tolist() == [[0, 1, 2, 3]] and y.tolist() == [[1, 2, 3, 4]]
    assert [b[0].tolist() for b in DataLoader(ds, 2, shuffle=True, seed=0)] == [[[0, 1, 2, 3]]]
    assert sliding_windows(ids[:4], 4, stride)[0].shape == (0, 4)


def test_a_pickled_dataset_carries_its_tokens_not_its_windows(tmp_path):
    # Pickled (torch's DataLoader workers under spawn, the default on macOS and Windows; multiprocessing; Dask),
    # a dataset wrote out every window: 256 times its tokens here, and windows that came back as writeable
    # copies. It travels as its tokens and arguments, and tokens mapped from a file as the file's name.
    import pickle

    from npgpt.token_files import TokenFile, write_tokens

    ids = (np.arange(20_000) % 50_000).astype(np.uint16)
    files = [TokenFile(write_tokens(tmp_path / name, ids)) for name in ("t.npy", "t.bin")]
    for source in (ids, *files):
        for dtype in (np.int64, None):
            ds = GPTDatasetV1.from_token_ids(source, 256, 1, dtype=dtype)
            data = pickle.dumps(ds)
            assert len(data) < (2 * ids.nbytes if source is ids else 1000), len(data)
            back = pickle.loads(data)
            assert np.shares_memory(back.inputs, back.token_ids) and not back.inputs.flags.writeable
            assert type(back.token_ids) is type(ds.token_ids) and np.array_equal(back.token_ids, ids)
            assert (len(back), back.max_length, back.stride, back.dtype) == (len(ds), 256, 1, ds.dtype)
            assert all(np.array_equal(a, b) for a, b in zip(back[123], ds[123], strict=True))
            loader = DataLoader(ds, 4, shuffle=True, seed=3)
            again = pickle.loads(pickle.dumps(loader))
            assert all(np.array_equal(a[0], b[0]) for a, b in zip(loader, again, strict=True))
    view = TokenFile(tmp_path / "t.npy").tokens[100:]  # a slice of a mapped file travels as its tokens
    back = pickle.loads(pickle.dumps(GPTDatasetV1.from_token_ids(view, 8, 8)))
    assert np.array_equal(back.token_ids, ids[100:])

def test_big_ids_are_kept_exactly():
    x, y = sliding_windows([2**32 + 7, 1, 2, 3], 2, 1)
    assert x.tolist() == [[2**32 + 7, 1], [1, 2]] and y[0].tolist() == [1, 2]
    with pytest.raises(ValueError, match=str(2**64)):
        sliding_windows([1, 2**64, 3], 1, 1)
    with pytest.raises(ValueError, match=">= 0, got -2"):
        sliding_windows([1, -2, 3], 1, 1)


@given(st.integers(2, 300), st.integers(1, 20), st.integers(1, 20), st.integers(1, 7), st.integers(0, 2**32),
       st.booleans(), st.integers(1, 3))
def test_shuffled_epochs_are_permutations(n, max_length, stride, batch_size, seed, drop_last, world_size):
    assume(n > max_length)
    ds = GPTDatasetV1.from_token_ids(np.arange(n, dtype=np.uint32), max_length, stride)
    loaders = [DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=drop_last, seed=seed,
                          rank=r, world_size=world_size) for r in range(world_size)]
    shard = len(ds) // world_size
    last_rank_starts = []
    for epoch in range(3):
        seen = []
        for loader in loaders:
            batches = list(loader)  # one iteration = one epoch
            assert len(batches) == len(loader) == (shard // batch_size if drop_last else -(-shard // batch_size))
            assert all(len(x) == batch_size for x, _ in batches[:-1])
            if batches and drop_last:
                assert len(batches[-1][0]) == batch_size
            starts = [int(row[0]) // stride for x, _ in batches for row in x]
            assert all(np.array_equal(y, x + 1) for x, y in batches)  # targets: inputs shifted by one
            # exactly the epoch's order (a permutation of the windows, this rank's shard), cut to whole batches
            order = loader.indices(epoch)
            assert sorted(order.tolist()) == sorted(set(order.tolist())) and len(order) == shard
            assert starts == order[: len(starts)].tolist()
            assert len(starts) == (shard - shard % batch_size if drop_last else shard)
            seen += order.tolist()
        last_rank_starts.append(starts)
        # the ranks' shards are disjoint, and together cover all windows but len(ds) % world_size
        assert len(set(seen)) == len(seen) == len(ds) - len(ds) % world_size
    # reproducible: the same seed and epoch give the same order
    again = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=drop_last, seed=seed,
                       rank=world_size - 1, world_size=world_size)
    again.set_epoch(1)
    assert [int(r[0]) // stride for x, _ in again for r in x] == last_rank_starts[1]


def test_epochs_are_shuffled_differently():
    # Fixed seeds, not hypothesis: each seed's orders are fixed, so this cannot turn red at random.
    ds = GPTDatasetV1.from_token_ids(np.arange(201), max_length=1, stride=4)  # 50 windows
    for seed in range(20):
        loader = DataLoader(ds, batch_size=5, shuffle=True, seed=seed)
        epochs = [np.concatenate([x[:, 0] for x, _ in loader]).tolist() for _ in range(3)]
        assert all(sorted(e) == list(range(0, 200, 4)) for e in epochs)
        assert epochs[0] != epochs[1] != epochs[2] != epochs[0]
        assert epochs[0] != sorted(epochs[0])
    a = [x.tolist() for x, _ in DataLoader(ds, batch_size=5, shuffle=True, seed=1)]
    b = [x.tolist() for x, _ in DataLoader(ds, batch_size=5, shuffle=True, seed=2)]
    assert a != b


@given(st.integers(1, 200), st.integers(1, 5), st.booleans(), st.integers(0, 100))
def test_shards_are_disjoint_equal_and_cover(n_windows, world_size, shuffle, seed):
    ds = GPTDatasetV1.from_token_ids(np.arange(n_windows + 1), max_length=1, stride=1)
    shards = [DataLoader(ds, batch_size=3, shuffle=shuffle, seed=seed, rank=r, world_size=world_size).indices(0)
              for r in range(world_size)]
    assert len({len(s) for s in shards}) == 1
    seen = np.concatenate(shards)
    assert len(set(seen.tolist())) == len(seen)  # disjoint
    assert len(seen) == n_windows - n_windows % world_size  # cover all but the remainder


@given(st.lists(st.integers(0, 50256), min_size=2, max_size=200), st.integers(1, 12), st.integers(1, 12),
       st.integers(1, 5), st.booleans(), st.sampled_from([np.int64, np.int32, np.uint16, None]))
def test_batches_equal_the_books_windows(ids, max_length, stride, batch_size, shuffle, dtype):
    assume(len(ids) > max_length)
    ds = GPTDatasetV1.from_token_ids(ids, max_length, stride)
    xs, ys = reference.sliding_windows(ids, max_length, stride)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=shuffle, seed=0, dtype=dtype)
    order = loader.indices(0)
    batches = list(loader)
    got_x = [row for x, _ in batches for row in x.tolist()]
    got_y = [row for _, y in batches for row in y.tolist()]
    assert got_x == [xs[i] for i in order] and got_y == [ys[i] for i in order]
    for x, y in batches:
        assert x.dtype == (ds.token_ids.dtype if dtype is None else dtype) == y.dtype
        if dtype is None and not shuffle:
            assert not x.flags.writeable and not y.flags.writeable  # zero-copy views, which overlap
        else:
            assert x.flags.writeable and x.flags.c_contiguous and not np.shares_memory(x, y)
    items = [ds[i] for i in range(len(ds))]
    assert [x.tolist() for x, _ in items] == xs and [y.tolist() for _, y in items] == ys


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, None])
def test_writing_x_never_changes_y(shuffle, dtype):
    ds = GPTDatasetV1.from_token_ids(np.arange(50256, 50256 - 40, -1), max_length=4, stride=2)
    x, y = next(iter(DataLoader(ds, batch_size=3, shuffle=shuffle, seed=0, dtype=dtype)))
    before = y.copy()
    if dtype is None and not shuffle:
        assert np.shares_memory(x, ds.token_ids)  # zero copy, so read only
        with pytest.raises(ValueError, match="read-only"):
            x[0, 1] = -100
    else:
        x[0, 1] = 7
        x[:] = 0
        assert np.array_equal(y, before)
    ds2 = GPTDatasetV1.from_token_ids(np.arange(20), max_length=4, stride=2)
    inp, tgt = ds2[0]
    inp[1] = -100
    assert tgt[0] == 1 and ds2.token_ids[1] == 1


@pytest.mark.parametrize("dtype", [np.int16, np.int8, np.uint8])
def test_narrow_dtypes_that_would_wrap_are_refused(dtype):
    ds = GPTDatasetV1.from_token_ids([5, 50256, 7, 9, 11], max_length=2, stride=1)
    with pytest.raises(ValueError, match=f"dtype {np.dtype(dtype)} cannot hold token id 50256"):
        DataLoader(ds, dtype=dtype)
    with pytest.raises(ValueError, match="cannot hold token id 50256"):
        GPTDatasetV1.from_token_ids([5, 50256, 7, 9, 11], max_length=2, stride=1, dtype=dtype)
    with pytest.raises(ValueError, match="cannot hold token id 50256"):
        create_dataloader_v1("hello world<|endoftext|> and more words here", max_length=2, stride=1, dtype=dtype)


def test_narrow_dtypes_that_fit_are_exact():
    ids = np.array([5, 100, 7, 9, 11, 120], dtype=np.int64)
    ds = GPTDatasetV1.from_token_ids(ids, max_length=2, stride=1, dtype=np.int8)
    assert ds[0][0].tolist() == [5, 100] and ds[0][0].dtype == np.int8
    loader = DataLoader(ds, batch_size=2, dtype=np.int8)
    assert next(iter(loader))[1].tolist() == [[100, 7], [7, 9]]
    ids[2] = 300  # the caller still holds the array: a later change is caught, never wrapped
    with pytest.raises(ValueError, match="cannot hold token id 300"):
        next(iter(loader))
    with pytest.raises(ValueError, match="cannot hold token id 300"):
        ds[1]


def test_dataset_items_are_what_torch_takes(enc):
    ds = GPTDatasetV1("I HAD always thought Jack Gisburn rather a cheap genius", enc, 4, 1)
    assert ds.token_ids.dtype == np.uint16 and np.shares_memory(ds.inputs, ds.token_ids)
    assert not ds.inputs.flags.writeable  # the windows stay zero-copy views
    x, y = ds[0]
    assert x.dtype == np.int64 == y.dtype and x.flags.writeable and x.flags.c_contiguous
    assert not np.shares_memory(x, ds.token_ids) and not np.shares_memory(x, y)
    assert x.tolist() == [40, 367, 2885, 1464]
    x32, _ = GPTDatasetV1("I HAD always thought Jack Gisburn", enc, 4, 1, dtype=np.int32)[1]
    assert x32.dtype == np.int32 and x32.tolist() == [367, 2885, 1464, 1807]
    view, _ = GPTDatasetV1("I HAD always thought Jack Gisburn", enc, 4, 1, dtype=None)[0]
    assert view.dtype == np.uint16 and not view.flags.writeable


def test_torch_dataloader_and_embedding_take_the_items(enc):
    torch = pytest.importorskip("torch", reason="torch is optional: the book's torch.utils.data.DataLoader path")
    ds = GPTDatasetV1("I HAD always thought Jack Gisburn rather a cheap genius", enc, 4, 1)
    emb = torch.nn.Embedding(50257, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns about non-writable arrays: there must be none
        xb, _yb = next(iter(torch.utils.data.DataLoader(ds, batch_size=2, shuffle=True)))
        assert xb.dtype == torch.int64 and emb(xb).shape == (2, 4, 3)
        x, y = next(iter(DataLoader(ds, batch_size=2, shuffle=True, seed=0)))
        assert torch.from_numpy(x).dtype == torch.int64 and emb(torch.from_numpy(y)).shape == (2, 4, 3)


def test_batches_without_shuffle_are_views():
    ds = GPTDatasetV1.from_token_ids(np.arange(500, dtype=np.uint16), 32, 16)
    x, _y = next(iter(DataLoader(ds, batch_size=4, dtype=None)))
    assert np.shares_memory(x, ds.token_ids) and x.dtype == np.uint16
    x, _ = next(iter(DataLoader(ds, batch_size=4, shuffle=True, seed=0, dtype=np.int32)))
    assert x.dtype == np.int32 and not np.shares_memory(x, ds.token_ids)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_length": 0, "stride": 1}, "max_length must be >= 1"),
    ({"max_length": 4, "stride": 0}, "stride must be >= 1"),
    ({"max_length": 4.0, "stride": 1}, "max_length must be an int"),
])
def test_window_argument_errors(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        sliding_windows(np.arange(10), **kwargs)


def test_loader_errors():
    with pytest.raises(ValueError, match="has 3 tokens; windows of max_length=4 need at least 5"):
        GPTDatasetV1("a b c", npgpt.get_encoding("gpt2"), 4, 1)
    ds = GPTDatasetV1.from_token_ids(np.arange(20), 4, 4)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(ValueError, match=r"rank must be an int in \[0, 2\), got 2"):
        DataLoader(ds, rank=2, world_size=2)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        DataLoader(ds, seed=-1)
    with pytest.raises(TypeError, match="integer dtype or None, got float32"):
        DataLoader(ds, dtype=np.float32)
    with pytest.raises(TypeError, match="integer NumPy dtype"):
        DataLoader(ds, dtype="no such dtype")
    with pytest.raises(IndexError, match="index 4 out of range for 4 windows"):
        ds[4]
    with pytest.raises(TypeError, match="encode"):
        GPTDatasetV1("text", object(), 4, 1)
    with pytest.raises(TypeError, match="not str: encode the text first"):
        sliding_windows("some text", 1, 1)
    with pytest.raises(TypeError, match=r"integers, got 1\.0"):
        sliding_windows([1.0, 2.0, 3.0], 1, 1)
    with pytest.raises(ValueError, match="num_workers"):
        create_dataloader_v1("some text here", num_workers=-1)


def _small_groups(ds, **kwargs):
    loader = DataLoader(ds, **kwargs)
    loader.GROUP = 2  # many groups, so that group arrays are handed out again within an epoch
    return loader


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, None])
def test_batches_held_are_never_written_over(shuffle, dtype):
    ds = GPTDatasetV1.from_token_ids(np.arange(3000, dtype=np.uint16) * 7 % 3001, max_length=6, stride=3)
    loader = _small_groups(ds, batch_size=4, shuffle=shuffle, seed=1, dtype=dtype)
    kept = list(loader)  # every batch of epoch 0 held at once
    loader.set_epoch(0)
    copies = [(x.copy(), y.copy()) for x, y in loader]
    assert len(kept) == len(copies) == len(loader)
    for (x, y), (cx, cy) in zip(kept, copies, strict=True):
        assert np.array_equal(x, cx) and np.array_equal(y, cy)
        if dtype is not None or shuffle:
            assert x.flags.c_contiguous and x.flags.writeable and y.flags.writeable
            assert not np.shares_memory(x, y)


def _hold(wrap, x, y):
    """What a user may keep of a batch ``(x, y)``, and what it shows as an array."""
    if wrap == "slice":
        return (x[1:], y[:, 2:]), lambda h: (h[0], h[1])
    if wrap == "asarray":
        return (np.asarray(x), np.asarray(y)), lambda h: h
    if wrap == "memoryview":
        return (memoryview(x), memoryview(y)), lambda h: (np.asarray(h[0]), np.asarray(h[1]))
    if wrap == "transpose":
        return (x.T, y.T), lambda h: (h[0].T, h[1].T)
    if wrap == "tuple":
        return ((x, y),), lambda h: h[0]
    return (x, y), lambda h: h


@pytest.mark.parametrize("wrap", ["array", "slice", "asarray", "memoryview", "transpose", "tuple"])
def test_a_batch_held_in_any_form_is_not_written_over(wrap):
    ds = GPTDatasetV1.from_token_ids(np.arange(5000, dtype=np.uint16), max_length=8, stride=5)
    it = iter(_small_groups(ds, batch_size=3, shuffle=True, seed=2))
    for _ in range(4):
        next(it)
    x, y = next(it)
    want = x.copy(), y.copy()
    held, show = _hold(wrap, x, y)
    want_shown = show(_hold(wrap, *want)[0])
    want_shown = [np.array(w) for w in want_shown]
    del x, y
    for _ in range(50):  # every group array of the iteration is handed out again meanwhile
        next(it)
    got = show(held)
    assert all(np.array_equal(g, w) for g, w in zip(got, want_shown, strict=True))


def test_group_arrays_nobody_holds_are_handed_out_again():
    import weakref

    ds = GPTDatasetV1.from_token_ids(np.arange(5000, dtype=np.uint16), max_length=8, stride=5)
    seen, reused = [], 0
    for x, _y in _small_groups(ds, batch_size=3, shuffle=True, seed=3):
        reused += any(r() is x.base for r in seen)
        seen.append(weakref.ref(x.base))
    assert reused > len(seen) // 2  # without the pool every base dies with its group


def test_torch_tensors_keep_their_batches():
    torch = pytest.importorskip("torch", reason="torch is optional")
    ds = GPTDatasetV1.from_token_ids(np.arange(5000, dtype=np.uint16), max_length=8, stride=5)
    loader = _small_groups(ds, batch_size=3, shuffle=True, seed=4)
    kept = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in loader]
    loader.set_epoch(0)
    for (tx, ty), (x, y) in zip(kept, loader, strict=True):
        assert np.array_equal(tx.numpy(), x) and np.array_equal(ty.numpy(), y)
