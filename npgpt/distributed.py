"""Past one machine: tokenize shards and count pre-tokens on a Dask cluster.

A corpus larger than one machine (FineWeb-scale) comes as many shard files. Both corpus jobs split
cleanly along shards:

- **tokenize** is a map: each worker encodes its shards into token files of its own
  (`npgpt.tokenize_files`, one ``.npy`` or ``.bin`` per shard), and the client writes an index
  (shard -> file, number of tokens) once all are done. Text never crosses the network: a worker
  reads its shard from storage every worker sees (a shared file system or object store mount) and
  writes its token file there. A run is all or nothing: the shard files are written under
  temporary names and take their names only when every shard has succeeded, so a failed run
  leaves the folder as it was (see `tokenize`).
- **training** is a map-reduce, then a loop: workers count the distinct pre-tokens of their shards
  (map), the counts are merged pairwise on the workers (reduce), and the client runs the merge loop
  on the merged counts (`npgpt.bpe.train`). What moves over the network is counts -- each distinct
  pre-token once with its count, a few MB even for terabytes of text -- never the text. The merges
  are exactly those of single-machine ``train_bpe`` on the same files.

Cost model, per worker: tokenizing runs at the encoder's speed (tens of MB/s per core) and writes
2 bytes per token (~0.6 bytes per byte of English text); counting runs at the scanner's speed. The
client's merge loop depends only on the number of distinct pre-tokens, not on the corpus size.

Dask is an optional dependency (``pip install npgpt[dask]``); importing `npgpt` never imports it.

Both are checked on a 2-worker ``LocalCluster`` by the tests: the tokens equal `npgpt.tokenize_files`'s
and the merges single-machine `npgpt.train_bpe`'s.

Example (with a cluster; `tests/test_distributed.py` runs this on a 2-worker ``LocalCluster``)::

    from dask.distributed import Client
    client = Client("tcp://scheduler:8786")
    index = tokenize(["shard-000.txt", "shard-001.txt"], "tokens/", client=client)
    index["tokens"], index["shards"][0]["file"]       # (523114, '00000-shard-000.npy')
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from npgpt.bpe.vocab_files import _write_atomic

__all__ = ["connect", "count_pretokens", "tokenize", "train_bpe"]

INDEX = "index.json"


def connect(scheduler: str | Any | None = None) -> Any:
    """A ``dask.distributed.Client``: `scheduler` may be one already, an address (``"tcp://host:8786"``),
    or None for a local cluster with one worker process per core."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ImportError("npgpt.distributed needs Dask: pip install 'npgpt[dask]' (dask[distributed])") from None
    if scheduler is None:
        return Client(LocalCluster(threads_per_worker=1, dashboard_address=None))
    if isinstance(scheduler, str):
        return Client(scheduler)
    return scheduler


def _encoding_spec(tokenizer: Any) -> Any:
    # A name travels as a name (each worker loads GPT-2's files once); an Encoding pickles as its
    # vocabulary and merges.
    return "gpt2" if tokenizer is None else tokenizer


def _shard_paths(shards: Iterable[str | os.PathLike]) -> list[Path]:
    """The shards (one path, or many) as Paths, each a file to read; else the first that is not, and how
    many others are not (`npgpt.token_files.regular_file`)."""
    from npgpt.token_files import regular_file

    paths = [Path(s) for s in ([shards] if isinstance(shards, (str, os.PathLike)) else shards)]
    bad = [p for p in paths if not p.is_file()]
    if bad:
        regular_file(bad[0], "shard", more=len(bad) - 1)
    return paths


def _tokenize_shard(shard: str, out: str, tokenizer: Any, eot: bool, fmt: Any, abort: str,
                    made: list[str]) -> int | None:
    """Encode `shard` into `out` (a temporary name of the run's); None when the run was called off (`abort`
    set: another shard failed), and then nothing of it is left behind (see `tokenize`)."""
    from dask.distributed import Event

    import npgpt

    if Event(abort).is_set():  # queued when another shard failed: no need to start
        return None
    try:
        enc = npgpt.get_encoding(tokenizer) if isinstance(tokenizer, str) else tokenizer
        n = len(npgpt.tokenize_files([shard], out, tokenizer=enc, eot=eot, num_threads=1, progress=False,
                                     format=fmt))
    finally:
        # Asked once this task's file is complete, or has failed: if the run was called off before now, the
        # client may have cleaned up already, so what this task left is its own to remove.
        called_off = Event(abort).is_set()
        if called_off:
            _remove([Path(out)], [Path(f) for f in made])
    return None if called_off else n


def _remove(files: list[Path], folders: list[Path]) -> None:
    """Remove `files`, then `folders` (outermost first) when empty; whatever is already gone, or not empty, stays."""
    for path in files:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _call_off(client: Any, futures: list, abort: str, temporary: list[Path], made: list[Path]) -> None:
    """Undo a run that failed: no shard file of it stays, whether written already, being written, or queued."""
    from dask.distributed import Event

    # In this order: a task that finds `abort` unset once its file is complete completed it before the set
    # below, so the removal below takes it; a task that finds it set removes its file itself, and the folders
    # the run made (the last one out finds them empty).
    with contextlib.suppress(Exception):  # a scheduler that is gone runs no task to write anything more
        Event(abort, client=client).set()
    with contextlib.suppress(Exception):
        client.cancel(futures)
    _remove(temporary, made)


def tokenize(shards: Iterable[str | os.PathLike], out_dir: str | os.PathLike, *, client: Any = None,
             tokenizer: Any = None, eot: bool = False, format: str = "npy") -> dict:
    """Encode each shard into its own token file in `out_dir`, on a Dask cluster; return the index.

    Parameters
    ----------
    shards : paths of UTF-8 text files that every worker can read.
    out_dir : a folder every worker can write (created if missing); it receives
        ``NNNNN-<shard stem>.npy`` (or ``.bin``) per shard and ``index.json``.
    client : a ``dask.distributed.Client``, a scheduler address, or None for a local cluster.
    tokenizer : an encoding name (default ``"gpt2"``) or an `npgpt.Encoding`.
    eot : write ``<|endoftext|>`` after each shard.
    format : ``"npy"`` (default) or ``"bin"`` (nanoGPT's raw uint16).

    Returns the index written to ``out_dir/index.json``: ``{"encoding", "format", "tokens",
    "shards": [{"source", "file", "tokens"}, ...]}`` in shard order. Concatenating the shard files
    in that order gives exactly ``tokenize_files(shards, ...)``'s tokens.

    All or nothing: a failed run (a shard that is not UTF-8, a lost cluster, Ctrl-C) leaves `out_dir`
    as it was, an earlier run's files and index included, and removes the folders it made. Each
    worker writes its shard's file under a temporary name of the run (``.NAME.RUN.tmp``, beside its
    final name, so that the rename is one on the shared file system); the client renames them all to
    their names, then writes the index, only when every shard has succeeded. (Removing the files of a
    failed run instead would not do: a run into a folder of an earlier one replaces its files one by
    one, and those cannot be had back.) When a shard fails, the client sets a Dask ``Event`` of the
    run, cancels the shards not yet started and removes the temporary files (and the folders the run
    made, when empty); a shard still being written looks at the event once its file is complete (or
    has failed), and if it is set removes the file, and those folders, itself. Either way nothing is
    left: a shard that finds the event unset had finished its file before the client set it, so the
    client removes it. (The event, one flag, stays on the scheduler.) Only a worker killed in the
    middle of a shard leaves its partial file, a hidden ``*.tmp``, as any killed writer does.
    """
    paths = _shard_paths(shards)
    if format not in ("npy", "bin"):
        raise ValueError(f"format must be 'npy' or 'bin', got {format!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} is a file, not a folder")
    client = connect(client)
    spec = _encoding_spec(tokenizer)
    made = [p.resolve() for p in (out, *out.parents) if not p.exists()][::-1]  # (outermost first)
    out.mkdir(parents=True, exist_ok=True)
    names = [f"{k:05d}-{p.stem}.{format}" for k, p in enumerate(paths)]
    run = secrets.token_hex(8)
    temporary = [(out / f".{n}.{run}.tmp").resolve() for n in names]
    abort = f"npgpt-tokenize-{run}"  # a dask Event: set when the run is called off
    futures: list = []
    try:
        futures = client.map(_tokenize_shard, [str(p.resolve()) for p in paths], list(map(str, temporary)),
                             tokenizer=spec, eot=eot, fmt=format, abort=abort, made=list(map(str, made)), pure=False)
        counts = client.gather(futures)
    except BaseException:  # a shard failed, the cluster went away, Ctrl-C: the folder goes back to what it was
        _call_off(client, futures, abort, temporary, made)
        raise
    for tmp, name in zip(temporary, names, strict=True):  # every shard is written: now they take their names
        os.replace(tmp, out / name)
    index = {
        "encoding": spec if isinstance(spec, str) else spec.name,
        "format": format,
        "tokens": int(sum(counts)),
        "shards": [{"source": str(p), "file": n, "tokens": int(c)}
                   for p, n, c in zip(paths, names, counts, strict=True)],
    }
    # the index appears only when every shard is written, through a temporary file of this run's own (as
    # every file npgpt writes): two runs writing to one folder never write into each other's
    _write_atomic(out / INDEX, json.dumps(index, indent=1).encode("utf-8"))
    return index


# --------------------------------------------------------------------------------------------
# training: count on the workers, merge counts pairwise, run the merge loop on the client


def _count_shard(shard: str, specials: list[str], pattern: str) -> Any:
    from npgpt.bpe.train import _count_all

    return _count_all(None, [shard], specials, pattern, 1, False)  # a train_kernels.Words table


def _merge_words(a: Any, b: Any) -> Any:
    from npgpt.bpe import train_kernels

    return train_kernels.merge_counts(a, b)


def _counted(shards: Iterable[str | os.PathLike], special_tokens: Iterable[str], pattern: str, client: Any) -> Any:
    """One future holding every shard's pre-token counts, added up pairwise on the workers (a tree)."""
    from npgpt.bpe.train import _check_specials

    paths = _shard_paths(shards)
    if not paths:
        raise ValueError("no shards to count")
    specials = _check_specials(special_tokens)
    futures = client.map(_count_shard, [str(p.resolve()) for p in paths], specials=specials, pattern=pattern,
                         pure=False)
    while len(futures) > 1:  # reduce: log2(shards) rounds, each on the workers
        odd = [futures.pop()] if len(futures) % 2 else []  # carried to the next round
        futures = [client.submit(_merge_words, a, b, pure=False)
                   for a, b in zip(futures[::2], futures[1::2], strict=True)] + odd
    return futures[0]


def count_pretokens(shards: Iterable[str | os.PathLike], special_tokens: Iterable[str] = ("<|endoftext|>",), *,
                    client: Any = None, pattern: str | None = None) -> dict[bytes, int]:
    """`npgpt.bpe.train.count_pretokens` of files, counted on a Dask cluster: pre-token bytes -> count."""
    from npgpt.bpe.pretokenize import GPT2_PATTERN

    words = _counted(shards, special_tokens, pattern or GPT2_PATTERN, connect(client)).result()
    n = int(words.used[0])
    raw = words.pool.tobytes()
    return {raw[a : a + b]: c for a, b, c in zip(words.start[:n].tolist(), words.length[:n].tolist(),
                                                  words.count[:n].tolist(), strict=True) if c}


def train_bpe(shards: Iterable[str | os.PathLike], vocab_size: int, special_tokens: Iterable[str] = ("<|endoftext|>",),
              *, client: Any = None, pattern: str | None = None, min_frequency: int = 1,
              progress: bool | None = None) -> Any:
    """`npgpt.train_bpe` on files, with the counting on a Dask cluster; the same merges.

    The workers count the pre-tokens of their shards and add the counts up pairwise; only the final
    counts come to the client, which runs the merge loop (`npgpt.bpe.train.train_from_counts`).
    Arguments as `npgpt.train_bpe` (`files=`), plus `client` (a Client, an address, or None).
    """
    from npgpt.bpe.pretokenize import GPT2_PATTERN
    from npgpt.bpe.train import _check_training, train_from_counts

    pattern = pattern or GPT2_PATTERN
    specials = _check_training(vocab_size, special_tokens, min_frequency)
    # The counts go straight in, held by no name here, so that train_from_counts can free them
    # before the merge loop's arrays are made (as `npgpt.train_bpe` does).
    return train_from_counts(_counted(shards, specials, pattern, connect(client)).result(), int(vocab_size),
                             specials, pattern=pattern, min_frequency=int(min_frequency), progress=progress)

