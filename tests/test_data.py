"""Sliding windows, the book's dataset and loader, token files (npgpt.data)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npgpt
from npgpt import reference
from npgpt.data import DataLoader, GPTDatasetV1, create_dataloader_v1, sliding_windows
from npgpt.token_files import TokenFile, TokenWriter, write_tokens

# seeds/000: create_dataloader_v1(the-verdict, batch_size=8, max_length=4, stride=4, shuffle=False)
SEED_BATCH0_X = [[40, 367, 2885, 1464], [1807, 3619, 402, 271], [10899, 2138, 257, 7026], [15632, 438, 2016, 257],
                 [922, 5891, 1576, 438], [568, 340, 373, 645], [1049, 5975, 284, 502], [284, 3285, 326, 11]]
SEED_BATCH0_Y = [[367, 2885, 1464, 1807], [3619, 402, 271, 10899], [2138, 257, 7026, 15632], [438, 2016, 257, 922],
                 [5891, 1576, 438, 568], [340, 373, 645, 1049], [5975, 284, 502, 284], [3285, 326, 11, 287]]
SEED_BATCH1_X = [[287, 262, 6001, 286], [465, 13476, 11, 339], [550, 5710, 465, 12036], [11, 6405, 257, 5527],
                 [27075, 11, 290, 4920], [2241, 287, 257, 4489], [64, 319, 262, 34686], [41976, 13, 357, 10915]]
SEED_BATCH1_Y = [[262, 6001, 286, 465], [13476, 11, 339, 550], [5710, 465, 12036, 11], [6405, 257, 5527, 27075],
                 [11, 290, 4920, 2241], [287, 257, 4489, 64], [319, 262, 34686, 41976], [13, 357, 10915, 314]]


def test_seed_batches(verdict):
    loader = create_dataloader_v1(verdict, batch_size=8, max_length=4, stride=4, shuffle=False)
    batches = iter(loader)
    x, y = next(batches)
    assert x.shape == (8, 4) and x.dtype == np.int64
    assert x.tolist() == SEED_BATCH0_X and y.tolist() == SEED_BATCH0_Y
    x, y = next(batches)
    assert x.tolist() == SEED_BATCH1_X and y.tolist() == SEED_BATCH1_Y


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


@given(st.integers(2, 300), st.integers(1, 20), st.integers(1, 20), st.integers(1, 7), st.integers(0, 2**32),
       st.booleans())
def test_shuffled_epochs_are_permutations(n, max_length, stride, batch_size, seed, drop_last):
    if n <= max_length:
        return
    ds = GPTDatasetV1.from_token_ids(np.arange(n, dtype=np.uint32), max_length, stride)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=drop_last, seed=seed)
    epochs = []
    for _ in range(3):
        batches = list(loader)  # one iteration = one epoch
        starts = [int(row[0]) // stride for x, _ in batches for row in x]
        assert len({len(x) for x, _ in batches} - {batch_size}) <= (0 if drop_last else 1)
        if not drop_last:
            assert sorted(starts) == list(range(len(ds)))  # every window once
        epochs.append(starts)
        assert len(batches) == len(loader)
    if len(ds) >= 6:
        assert epochs[0] != epochs[1] or epochs[1] != epochs[2]  # epochs differ
    # reproducible: the same seed and epoch give the same order
    again = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=drop_last, seed=seed)
    again.set_epoch(1)
    assert [int(r[0]) // stride for x, _ in again for r in x] == epochs[1]


@given(st.integers(1, 200), st.integers(1, 5), st.booleans(), st.integers(0, 100))
def test_shards_are_disjoint_equal_and_cover(n_windows, world_size, shuffle, seed):
    ds = GPTDatasetV1.from_token_ids(np.arange(n_windows + 1), max_length=1, stride=1)
    shards = [DataLoader(ds, batch_size=3, shuffle=shuffle, seed=seed, rank=r, world_size=world_size).indices(0)
              for r in range(world_size)]
    assert len({len(s) for s in shards}) == 1
    seen = np.concatenate(shards)
    assert len(set(seen.tolist())) == len(seen)  # disjoint
    assert len(seen) == n_windows - n_windows % world_size  # cover all but the remainder


def test_batches_without_shuffle_are_views(verdict):
    ds = GPTDatasetV1(verdict, npgpt.get_encoding("gpt2"), 32, 16)
    x, _y = next(iter(DataLoader(ds, batch_size=4, dtype=None)))
    assert np.shares_memory(x, ds.token_ids) and x.dtype == np.uint16
    x, _ = next(iter(DataLoader(ds, batch_size=4, shuffle=True, seed=0, dtype=np.int32)))
    assert x.dtype == np.int32 and not np.shares_memory(x, ds.token_ids)


def test_token_file_roundtrip(tmp_path):
    ids = np.random.default_rng(0).integers(0, 50257, 10_000).astype(np.uint16)
    path = write_tokens(tmp_path / "t.npgpt", ids)
    tf = TokenFile(path)
    assert tf.dtype == np.uint16 and len(tf) == 10_000 and isinstance(tf.tokens, np.memmap)
    assert np.array_equal(np.asarray(tf), ids)
    ds = GPTDatasetV1.from_token_ids(tf, max_length=64, stride=32)
    assert np.shares_memory(ds.inputs, tf.tokens)  # windows straight on the memmap
    assert ds[3][0].tolist() == ids[96:160].tolist()
    big = write_tokens(tmp_path / "big.npgpt", [1, 70000])
    assert TokenFile(big).dtype == np.uint32


@given(st.lists(st.integers(0, 2**16 - 1), max_size=200), st.integers(1, 5))
def test_token_writer_roundtrip(tmp_path_factory, ids, parts):
    path = tmp_path_factory.mktemp("tw") / "t.npgpt"
    with TokenWriter(path, np.uint16) as w:
        for chunk in np.array_split(np.array(ids, dtype=np.uint16), parts):
            w.write(chunk)
    assert TokenFile(path).tokens.tolist() == ids


def test_raw_nanogpt_bin(tmp_path):
    ids = np.arange(1000, dtype=np.uint16)
    raw = tmp_path / "train.bin"
    ids.tofile(raw)
    with pytest.raises(ValueError, match="pass its dtype"):
        TokenFile(raw)
    assert TokenFile(raw, dtype=np.uint16).tokens[-1] == 999


def test_token_file_errors(tmp_path):
    path = write_tokens(tmp_path / "t.npgpt", [1, 2, 3])
    with pytest.raises(ValueError, match="holds uint16"):
        TokenFile(path, dtype=np.uint32)
    path.write_bytes(path.read_bytes()[:-2])  # truncated
    with pytest.raises(ValueError, match="truncated"):
        TokenFile(path)
    with pytest.raises(FileNotFoundError):
        TokenFile(tmp_path / "missing")
    (tmp_path / "odd.bin").write_bytes(b"abc")
    with pytest.raises(ValueError, match="whole number"):
        TokenFile(tmp_path / "odd.bin", dtype=np.uint16)
    with TokenWriter(tmp_path / "w.npgpt", np.uint16) as w, pytest.raises(ValueError, match="70000"):
        w.write([70000])


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
    with pytest.raises(IndexError, match="index 4 out of range for 4 windows"):
        ds[4]
    with pytest.raises(TypeError, match="encode"):
        GPTDatasetV1("text", object(), 4, 1)
    with pytest.raises(ValueError, match="token ids must be >= 0"):
        sliding_windows([1, -2, 3], 1, 1)
    with pytest.raises(ValueError, match="num_workers"):
        create_dataloader_v1("some text here", num_workers=-1)


def test_tokenize_files_matches_encode(tmp_path, verdict):
    from npgpt.cli import main

    enc = npgpt.get_encoding("gpt2")
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(verdict, encoding="utf-8")
    b.write_text("Привет, мир! <|endoftext|> 你好" * 500, encoding="utf-8")
    tf = npgpt.tokenize_files([a, b], tmp_path / "t.npgpt", eot=True, num_threads=2, chunk_chars=1000)
    expected = [*enc.encode(verdict), 50256, *enc.encode(b.read_text("utf-8"), disallowed_special=()), 50256]
    assert tf.tokens.tolist() == expected
    assert main(["tokenize", str(a), "--out", str(tmp_path / "c.npgpt")]) == 0
    assert TokenFile(tmp_path / "c.npgpt").tokens.tolist() == enc.encode(verdict)
    assert main(["tokenize", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "d.npgpt")]) == 2
