"""npgpt.distributed on a real 2-worker LocalCluster: the same tokens and merges as on one machine."""

import json

import numpy as np
import pytest

import npgpt
from tests.conftest import pydoc_text

distributed = pytest.importorskip("dask.distributed", reason="Dask is an optional extra: pip install -e .[dask]")
from npgpt import distributed as dist  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    text = pydoc_text()[:300_000]
    paths = []
    for k in range(5):
        path = folder / f"shard-{k}.txt"
        path.write_text(text[k * 60_000 : (k + 1) * 60_000], encoding="utf-8")
        paths.append(path)
    return paths


def test_tokenize_shards_equals_one_machine(client, shards, tmp_path):
    index = dist.tokenize(shards, tmp_path / "out", client=client, eot=True)
    whole = npgpt.tokenize_files(shards, tmp_path / "whole.npy", eot=True, progress=False).tokens
    parts = [np.load(tmp_path / "out" / s["file"]) for s in index["shards"]]
    assert np.array_equal(np.concatenate(parts), whole)
    assert index["tokens"] == len(whole) and [s["tokens"] for s in index["shards"]] == [len(p) for p in parts]
    assert json.loads((tmp_path / "out" / "index.json").read_text()) == index
    assert [s["source"] for s in index["shards"]] == [str(p) for p in shards]


def test_tokenize_bin_and_a_custom_encoding(client, shards, tmp_path):
    enc = npgpt.train_bpe([pydoc_text()[:20_000]], 300, progress=False)
    index = dist.tokenize(shards[:2], tmp_path / "bin", client=client, tokenizer=enc, format="bin")
    for shard, entry in zip(shards[:2], index["shards"], strict=True):  # each shard is a document of its own
        got = np.fromfile(tmp_path / "bin" / entry["file"], np.uint16)
        assert got.tolist() == enc.encode(shard.read_text("utf-8"), disallowed_special=())


def test_tokenize_refuses_bad_arguments(client, shards, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such shard"):
        dist.tokenize([tmp_path / "nope.txt"], tmp_path / "o", client=client)
    with pytest.raises(ValueError, match="format"):
        dist.tokenize(shards, tmp_path / "o", client=client, format="csv")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        dist.tokenize(shards, tmp_path / "f", client=client)


def test_the_index_is_written_under_a_temporary_name_of_its_own(client, shards, tmp_path):
    # The temporary index was always out/.index.json.tmp: a second run writing to the same folder truncated and
    # renamed away the first run's half-written index (or failed, its own temporary file renamed from under it).
    out = tmp_path / "out"
    out.mkdir()
    (out / ".index.json.tmp").write_text("another run's index, half written")
    index = dist.tokenize(shards[:1], out, client=client)
    assert (out / ".index.json.tmp").read_text() == "another run's index, half written"
    assert json.loads((out / "index.json").read_text()) == index
    assert sorted(p.name for p in out.iterdir()) == [".index.json.tmp", "00000-shard-0.npy", "index.json"]


def test_a_failed_run_leaves_the_folder_as_it_was(client, shards, tmp_path):
    # The shards that succeeded were written to their names at once: a failed run left them behind with no index,
    # or with an earlier run's index whose counts no longer matched the files it had replaced.
    out = tmp_path / "out"
    earlier = dist.tokenize(shards[:2], out, client=client)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine \xff")
    with pytest.raises(UnicodeDecodeError):
        dist.tokenize([shards[1], shards[0], bad, shards[2]], out, client=client)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert json.loads((out / "index.json").read_text()) == earlier
    # A shard still being written when the run fails (the bad one fails at once) removes its own file when done.
    big = tmp_path / "big.txt"
    big.write_text(pydoc_text() * 8, encoding="utf-8")
    with pytest.raises(UnicodeDecodeError):
        dist.tokenize([big, bad], out, client=client)
    _wait_for_the_shards_still_running(client)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    for first in (shards[0], big):  # into new folders: they are not left behind, even by a shard still running
        with pytest.raises(UnicodeDecodeError):
            dist.tokenize([first, bad], tmp_path / "new" / "tokens", client=client)
        _wait_for_the_shards_still_running(client)
        assert not (tmp_path / "new").exists()


def _wait_for_the_shards_still_running(client):
    # A failed run returns at once; the shards being written then finish (and clean up) on their own. Every
    # worker has one thread, so a task sent to each runs after them.
    workers = list(client.scheduler_info()["workers"])
    client.gather([client.submit(int, 0, workers=[w], pure=False) for w in workers])


def test_cli_tokenize_with_a_scheduler(client, shards, tmp_path, capsys):
    from npgpt.cli import main

    address = client.scheduler.address
    assert main(["tokenize", *map(str, shards[:2]), "--out", str(tmp_path / "o"), "--scheduler", address]) == 0
    assert "in 2 shard files" in capsys.readouterr().out
    index = json.loads((tmp_path / "o" / "index.json").read_text())
    assert [s["file"] for s in index["shards"]] == ["00000-shard-0.npy", "00001-shard-1.npy"]
    assert main(["tokenize", str(shards[0]), "--out", str(tmp_path / "p"), "--scheduler", address,
                 "--val-fraction", "0.1"]) == 2


def test_train_on_the_cluster_equals_one_machine(client, shards):
    for vocab_size, specials in ((600, ["<|endoftext|>"]), (400, [])):
        here = npgpt.train_bpe(files=shards, vocab_size=vocab_size, special_tokens=specials, progress=False)
        there = dist.train_bpe(shards, vocab_size, specials, client=client, progress=False)
        assert there.merges == here.merges and there.vocab == here.vocab
        assert there.special_tokens == here.special_tokens


def test_count_on_the_cluster_equals_one_machine(client, shards):
    from npgpt.bpe.train import count_pretokens

    assert dist.count_pretokens(shards, client=client) == count_pretokens(files=shards, progress=False)
    with pytest.raises(FileNotFoundError, match="no such shard"):
        dist.train_bpe(["nope.txt"], 300, client=client)
    with pytest.raises(ValueError, match="vocab_size"):
        dist.train_bpe(shards, 10, client=client)


def test_cli_train_with_a_scheduler(client, shards, tmp_path, capsys):
    from npgpt.cli import main

    argv = ["train", *map(str, shards), "--vocab-size", "500", "--out", str(tmp_path / "v")]
    assert main([*argv, "--scheduler", client.scheduler.address]) == 0
    there = npgpt.Encoding.from_files(tmp_path / "v" / "vocab.json", tmp_path / "v" / "merges.txt")
    assert there.merges == npgpt.train_bpe(files=shards, vocab_size=500, progress=False).merges
    assert "learned" in capsys.readouterr().out


def test_a_shard_that_is_not_utf8_is_named_across_the_cluster(client, shards, tmp_path, capsys):
    # Dask sends a worker's exception through tblib, which rebuilt a UnicodeDecodeError without its __init__:
    # on the client its bytes and reason were None, str() of npgpt's FileDecodeError raised TypeError (the
    # CLI printed a traceback), and the trainer's error said "not UTF-8 text: None".
    from npgpt.cli import main

    bad = (tmp_path / "bad.txt").resolve()
    bad.write_bytes(b"fine \xff")
    for call in (lambda: dist.tokenize([shards[0], bad], tmp_path / "o", client=client),
                 lambda: dist.train_bpe([bad], 300, client=client, progress=False)):
        with pytest.raises(UnicodeDecodeError) as info:
            call()
        assert f"invalid start byte at byte 5 of {bad}" in str(info.value)
        assert (info.value.path, info.value.offset, info.value.object[info.value.start]) == (bad, 5, 0xFF)
    for argv in (["tokenize", str(bad), "--out", str(tmp_path / "p")],
                 ["train", str(bad), "--vocab-size", "300", "--out", str(tmp_path / "v")]):
        assert main([*argv, "--scheduler", client.scheduler.address]) == 2
        assert capsys.readouterr().err == f"npgpt: {bad} is not UTF-8 text (invalid start byte at byte 5)\n"
