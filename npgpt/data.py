"""Training windows without copies (chapter 2.6): sliding windows, the book's dataset and loader, token files.

A language model learns to predict the next token, so its training pairs are a window of tokens and
the same window shifted by one::

    ids      40  367 2885 1464 1807 3619 ...
    input  [ 40  367 2885 1464]              target [367 2885 1464 1807]
    input            [2885 1464 1807 3619]   target ...      (stride 2)

The book builds every window as its own tensor. Windows overlap, so that stores most tokens many
times over: with stride 1 and max_length 1024, a 2.3M-token corpus would need about 19 GB. Here
every window is a *view* into the one token array: NumPy's strides let a 2-D array of shape
``(n_windows, max_length)`` step ``stride`` tokens from row to row and one token from column to
column, over the same memory (`sliding_windows`). Building a dataset costs no memory beyond the
tokens and takes microseconds, at any stride.

`GPTDatasetV1`, `DataLoader` and `create_dataloader_v1` keep the book's names and arguments. Tokens
on disk live in a small-header file read through ``np.memmap`` (`write_tokens`, `TokenFile`), so a
corpus larger than memory trains the same way.

Example
-------
>>> ids = np.arange(10)
>>> x, y = sliding_windows(ids, max_length=4, stride=3)
>>> x
array([[0, 1, 2, 3],
       [3, 4, 5, 6]])
>>> y
array([[1, 2, 3, 4],
       [4, 5, 6, 7]])
>>> np.shares_memory(x, ids)
True
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DataLoader",
    "GPTDatasetV1",
    "TokenFile",
    "TokenWriter",
    "create_dataloader_v1",
    "sliding_windows",
    "tokenize_files",
    "write_tokens",
]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def compact_dtype(max_id: int) -> np.dtype:
    """uint16 when every id fits (GPT-2's 50,257 do), else uint32."""
    return np.dtype(np.uint16 if max_id < 2**16 else np.uint32)


def as_token_array(token_ids: Any) -> np.ndarray:
    """A 1-D integer array of the ids: NumPy arrays and memmaps as they are, lists stored compactly."""
    if isinstance(token_ids, TokenFile):
        return token_ids.tokens
    if isinstance(token_ids, np.ndarray):
        arr = token_ids
    else:
        arr = np.asarray(list(token_ids) if not hasattr(token_ids, "__len__") else token_ids)
        if arr.size and arr.dtype.kind in "iu":
            if arr.min() < 0:
                raise ValueError(f"token ids must be >= 0, got {int(arr.min())}")
            arr = arr.astype(compact_dtype(int(arr.max())))
        elif arr.size == 0:
            arr = arr.astype(np.uint16)
    if arr.ndim != 1:
        raise ValueError(f"token ids must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"token ids must be integers, got dtype {arr.dtype}")
    return arr


def n_windows(n_tokens: int, max_length: int, stride: int) -> int:
    """``len(range(0, n_tokens - max_length, stride))``: the book's window count."""
    return max(0, math.ceil((n_tokens - max_length) / stride))


def token_spans(token_ids: Any, length: int, stride: int) -> np.ndarray:
    """Read-only view of shape ``(n, length)``: row i is ``ids[i*stride : i*stride + length]``, for the book's
    ``n = len(range(0, len(ids) - length + 1, stride))`` windows. No copy: rows overlap in memory."""
    ids = as_token_array(token_ids)
    n = n_windows(len(ids), length - 1, stride)
    # Row i starts stride tokens after row i - 1; the last row ends at (n-1)*stride + length <= len(ids).
    return np.lib.stride_tricks.as_strided(ids, shape=(n, length), strides=(stride * ids.strides[0], ids.strides[0]),
                                           writeable=False)


def sliding_windows(token_ids: Any, max_length: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Input and target windows over `token_ids`, as two read-only views (no copy).

    Window i starts at ``i * stride`` for ``i*stride`` in ``range(0, len(ids) - max_length, stride)``:
    ``inputs[i] = ids[i*stride : i*stride + max_length]`` and ``targets[i]`` is the same shifted by
    one token -- exactly the book's loop. Both have shape ``(n, max_length)`` and share memory with
    `token_ids` (a list is first stored as a compact array): they are the two shifted halves of one
    view of windows ``max_length + 1`` tokens long (`token_spans`).

    >>> x, y = sliding_windows([1, 2, 3, 4, 5], max_length=2, stride=1)
    >>> x.tolist(), y.tolist()
    ([[1, 2], [2, 3], [3, 4]], [[2, 3], [3, 4], [4, 5]])
    """
    spans = token_spans(token_ids, _positive_int("max_length", max_length) + 1, _positive_int("stride", stride))
    return spans[:, :-1], spans[:, 1:]


class GPTDatasetV1:
    """The book's dataset: sliding windows over a tokenized text, as views into one token array.

    Parameters
    ----------
    txt : str
        The text. It is encoded once with ``tokenizer.encode(txt, allowed_special={"<|endoftext|>"})``,
        so npgpt's and tiktoken's encodings both work.
    tokenizer : object with ``encode``
    max_length, stride : int
        Window length and the step between window starts.

    ``ds[i]`` is ``(input_ids, target_ids)``, two views of shape ``(max_length,)``; ``ds.inputs`` and
    ``ds.targets`` are all windows, shape ``(len(ds), max_length)``, the two shifted views of
    ``ds.spans`` (windows of ``max_length + 1`` tokens); ``ds.token_ids`` is the token array.

    Example
    -------
    >>> ds = GPTDatasetV1("I HAD always thought Jack Gisburn", npgpt.get_encoding("gpt2"), 4, 1)
    >>> len(ds), ds[0][0].tolist(), ds[0][1].tolist()
    (5, [40, 367, 2885, 1464], [367, 2885, 1464, 1807])
    """

    def __init__(self, txt: str, tokenizer: Any, max_length: int, stride: int):
        if not isinstance(txt, str):
            raise TypeError(f"txt must be str, got {type(txt).__name__}")
        if not hasattr(tokenizer, "encode"):
            raise TypeError(f"tokenizer must have an encode method, got {type(tokenizer).__name__}")
        self._init(tokenizer.encode(txt, allowed_special={"<|endoftext|>"}), max_length, stride)

    @classmethod
    def from_token_ids(cls, token_ids: Any, max_length: int, stride: int) -> GPTDatasetV1:
        """A dataset over ids already encoded: a list, a NumPy array, a memmap or a `TokenFile`.

        >>> ds = GPTDatasetV1.from_token_ids(np.arange(100, dtype=np.uint16), max_length=8, stride=8)
        >>> len(ds), ds.inputs.shape
        (12, (12, 8))
        """
        self = cls.__new__(cls)
        self._init(token_ids, max_length, stride)
        return self

    def _init(self, token_ids: Any, max_length: int, stride: int) -> None:
        max_length = _positive_int("max_length", max_length)
        stride = _positive_int("stride", stride)
        self.token_ids = as_token_array(token_ids)
        if len(self.token_ids) <= max_length:
            raise ValueError(
                f"the text has {len(self.token_ids)} tokens; windows of max_length={max_length} need at least "
                f"{max_length + 1} (inputs plus the one-token shift of the targets)"
            )
        self.max_length, self.stride = max_length, stride
        # windows of max_length + 1 tokens; inputs and targets are their two shifted views
        self.spans = token_spans(self.token_ids, max_length + 1, stride)
        self.inputs, self.targets = self.spans[:, :-1], self.spans[:, 1:]

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)):
            raise TypeError(f"dataset index must be an int, got {type(idx).__name__}")
        n = len(self.inputs)
        if not -n <= idx < n:
            raise IndexError(f"dataset index {idx} out of range for {n} windows")
        return self.inputs[idx], self.targets[idx]

    def __repr__(self) -> str:
        return (f"GPTDatasetV1({len(self)} windows, max_length={self.max_length}, stride={self.stride}, "
                f"{len(self.token_ids):,} tokens as {self.token_ids.dtype})")


class DataLoader:
    """Batches ``(x, y)`` of shape ``(batch_size, max_length)`` from a `GPTDatasetV1`.

    Parameters
    ----------
    dataset : GPTDatasetV1
    batch_size : int
    shuffle : bool
        Visit windows in a new random order every epoch. Each ``iter(loader)`` is a new epoch; the
        order depends only on ``(seed, epoch)``, so runs repeat exactly, and `set_epoch` jumps to one
        (as ``torch.utils.data.DistributedSampler.set_epoch``).
    drop_last : bool
        Drop the last batch when it is smaller than `batch_size`.
    seed : int, optional
        Seed of the shuffles; None draws one at random (the loader is still reproducible from `.seed`).
    rank, world_size : int
        Data-parallel training: each epoch is cut into `world_size` disjoint shards of equal size
        (the last ``len(dataset) % world_size`` windows of the epoch's order are left out, as
        DistributedSampler with ``drop_last=True``), and this loader yields shard `rank`.
    dtype : NumPy dtype or None
        dtype of the batches: int64 by default (what ``torch.from_numpy`` and ``nn.Embedding`` users
        expect). ``None`` keeps the token storage dtype: then a batch without shuffling is a view
        into the tokens (zero copy); with shuffling, batches are gathered 32 at a time.

    ``x`` and ``y`` of a batch are two views of one block of ``max_length + 1`` tokens per row
    (``y`` is ``x`` shifted by one), so they are not C-contiguous; ``np.ascontiguousarray`` or
    ``torch.from_numpy`` take them as they are.

    Example
    -------
    >>> ds = GPTDatasetV1.from_token_ids(np.arange(20), max_length=4, stride=4)
    >>> x, y = next(iter(DataLoader(ds, batch_size=2)))
    >>> x.tolist(), y.tolist(), x.dtype
    ([[0, 1, 2, 3], [4, 5, 6, 7]], [[1, 2, 3, 4], [5, 6, 7, 8]], dtype('int64'))
    """

    def __init__(self, dataset: GPTDatasetV1, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None, rank: int = 0, world_size: int = 1, dtype: Any = np.int64):
        if not hasattr(dataset, "spans"):
            raise TypeError(f"dataset must be a GPTDatasetV1 (with .spans), got {type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = _positive_int("batch_size", batch_size)
        self.world_size = _positive_int("world_size", world_size)
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < self.world_size:
            raise ValueError(f"rank must be an int in [0, {self.world_size}), got {rank!r}")
        self.rank = int(rank)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.seed = int(np.random.SeedSequence().entropy % 2**63) if seed is None else int(seed)
        self.dtype = None if dtype is None else np.dtype(dtype)
        if self.dtype is not None and self.dtype.kind not in "iu":
            raise TypeError(f"dtype must be an integer dtype or None, got {self.dtype}")
        self.epoch = 0
        self.shard_size = len(dataset) // self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch `epoch` (its order depends only on seed and epoch)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        self.epoch = int(epoch)

    def indices(self, epoch: int) -> np.ndarray:
        """The window indices this rank visits in `epoch`, in order."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(n)
        else:
            order = np.arange(n)
        used = self.shard_size * self.world_size
        return order[self.rank : used : self.world_size]

    def __len__(self) -> int:
        if self.drop_last:
            return self.shard_size // self.batch_size
        return -(-self.shard_size // self.batch_size)

    GROUP = 32  # batches gathered per NumPy call when shuffling: amortizes the per-call cost

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        spans = self.dataset.spans  # a batch's x and y are the two shifted views of its spans
        n_batches, bs, dtype = len(self), self.batch_size, self.dtype
        if not self.shuffle and self.world_size == 1:
            # consecutive windows: a slice of the strided view; a copy only to change the dtype
            for b in range(n_batches):
                block = spans[b * bs : (b + 1) * bs]
                if dtype is not None:
                    block = block.astype(dtype)
                yield block[:, :-1], block[:, 1:]
            return
        idx = self.indices(epoch)
        for g in range(0, n_batches, self.GROUP):
            # one gather (and dtype conversion) for GROUP batches; each batch is a view into it
            block = spans[idx[g * bs : min(g + self.GROUP, n_batches) * bs]]  # (np.take would copy all spans)
            if dtype is not None:
                block = block.astype(dtype, copy=False)
            for lo in range(0, len(block), bs):
                part = block[lo : lo + bs]
                yield part[:, :-1], part[:, 1:]

    def __repr__(self) -> str:
        return (f"DataLoader({len(self)} batches of {self.batch_size}, shuffle={self.shuffle}, "
                f"rank {self.rank}/{self.world_size}, seed={self.seed})")


def create_dataloader_v1(txt: str, batch_size: int = 4, max_length: int = 256, stride: int = 128,
                         shuffle: bool = True, drop_last: bool = True, num_workers: int = 0, *,
                         seed: int | None = None, dtype: Any = np.int64) -> DataLoader:
    """The book's function: GPT-2 tokens, sliding windows, batches.

    `num_workers` is accepted for the book's signature; batches are views or one gather, so no
    worker processes are needed.

    >>> loader = create_dataloader_v1("I HAD always thought Jack Gisburn rather a cheap genius",
    ...                               batch_size=2, max_length=4, stride=1, shuffle=False)
    >>> x, y = next(iter(loader))
    >>> x.tolist()
    [[40, 367, 2885, 1464], [367, 2885, 1464, 1807]]
    """
    from npgpt.bpe import get_encoding

    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be a non-negative int, got {num_workers!r}")
    dataset = GPTDatasetV1(txt, get_encoding("gpt2"), max_length, stride)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed, dtype=dtype)


# --------------------------------------------------------------------------------------------
# token files

MAGIC = b"NPGPTTOK"
VERSION = 1
HEADER = 32  # magic (8) | version u32 (4) | dtype str (12, NUL-padded) | count u64 (8)
_DTYPES = {"<u2", "<u4", "<i4", "<i8", "<u8", "|u1"}


class TokenWriter:
    """Append token arrays to a token file; the header's count is written on close.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.npgpt")
    >>> with TokenWriter(path, np.uint16) as w:
    ...     w.write([1, 2, 3]); w.write(np.array([4], np.uint16))
    >>> TokenFile(path).tokens.tolist()
    [1, 2, 3, 4]
    """

    def __init__(self, path: str | os.PathLike, dtype: Any = np.uint16):
        self.path = Path(path)
        self.dtype = np.dtype(dtype).newbyteorder("<") if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)
        if self.dtype.str not in _DTYPES:
            raise ValueError(f"token files hold unsigned/signed integer tokens, not {np.dtype(dtype)}")
        self.count = 0
        self._file = open(self.path, "wb")
        self._file.write(self._header())

    def _header(self) -> bytes:
        return (MAGIC + VERSION.to_bytes(4, "little") + self.dtype.str.encode().ljust(12, b"\0")
                + self.count.to_bytes(8, "little"))

    def write(self, ids: Any) -> None:
        arr = np.asarray(ids)
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise ValueError(f"expected a 1-D array of integer ids, got shape {arr.shape} dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() > np.iinfo(self.dtype).max):
            bad = int(arr.min()) if arr.min() < 0 else int(arr.max())
            raise ValueError(f"token id {bad} does not fit the file's dtype {self.dtype}")
        self._file.write(np.ascontiguousarray(arr, dtype=self.dtype).tobytes())
        self.count += arr.size

    def close(self) -> None:
        if not self._file.closed:
            self._file.seek(0)
            self._file.write(self._header())
            self._file.close()

    def __enter__(self) -> TokenWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_tokens(path: str | os.PathLike, ids: Any, dtype: Any = None) -> Path:
    """Write token ids to a token file (header + raw little-endian ids); return the path.

    dtype defaults to uint16 when every id fits, else uint32.

    >>> import tempfile, os
    >>> path = write_tokens(os.path.join(tempfile.mkdtemp(), "t.npgpt"), [15496, 11, 995])
    >>> TokenFile(path)  # doctest: +ELLIPSIS
    TokenFile('...t.npgpt', 3 tokens of uint16)
    """
    arr = as_token_array(ids)
    dtype = compact_dtype(int(arr.max()) if arr.size else 0) if dtype is None else dtype
    with TokenWriter(path, dtype) as w:
        w.write(arr)
    return Path(path)


class TokenFile:
    """Tokens on disk, read through ``np.memmap``: nothing is loaded until it is used.

    Opens npgpt's token files (a 32-byte header: magic, version, dtype, count, so a file is never
    misread) and, when told their `dtype`, raw headerless files such as nanoGPT's ``train.bin``
    (uint16). Windows and loaders work on it directly: ``GPTDatasetV1.from_token_ids(TokenFile(p), ...)``.

    >>> import tempfile, os
    >>> raw = os.path.join(tempfile.mkdtemp(), "train.bin")
    >>> np.arange(10, dtype=np.uint16).tofile(raw)         # a nanoGPT-style file
    >>> tf = TokenFile(raw, dtype=np.uint16)
    >>> len(tf), GPTDatasetV1.from_token_ids(tf, max_length=4, stride=4).inputs.tolist()
    (10, [[0, 1, 2, 3], [4, 5, 6, 7]])
    """

    def __init__(self, path: str | os.PathLike, dtype: Any = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no token file at {self.path}")
        with open(self.path, "rb") as f:
            head = f.read(HEADER)
        size = self.path.stat().st_size
        if head[:8] == MAGIC:
            version = int.from_bytes(head[8:12], "little")
            if version != VERSION:
                raise ValueError(f"{self.path}: token file version {version}; this npgpt reads version {VERSION}")
            file_dtype = np.dtype(head[12:24].rstrip(b"\0").decode())
            count = int.from_bytes(head[24:32], "little")
            if HEADER + count * file_dtype.itemsize != size:
                raise ValueError(f"{self.path}: header says {count} tokens of {file_dtype}, but the file has "
                                 f"{size - HEADER} bytes of tokens (truncated or still being written?)")
            if dtype is not None and np.dtype(dtype) != file_dtype:
                raise ValueError(f"{self.path}: holds {file_dtype} tokens, not {np.dtype(dtype)}")
            self.dtype, offset = file_dtype, HEADER
        else:
            if dtype is None:
                raise ValueError(
                    f"{self.path} is not an npgpt token file (no header); if it is a raw token file such as "
                    "nanoGPT's train.bin, pass its dtype, e.g. TokenFile(path, dtype=np.uint16)"
                )
            self.dtype, offset = np.dtype(dtype), 0
            if size % self.dtype.itemsize:
                raise ValueError(f"{self.path}: {size} bytes is not a whole number of {self.dtype} tokens")
            count = size // self.dtype.itemsize
        self.tokens = (np.memmap(self.path, dtype=self.dtype, mode="r", offset=offset, shape=(count,))
                       if count else np.zeros(0, self.dtype))

    def __len__(self) -> int:
        return len(self.tokens)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self.tokens, dtype=dtype)

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r}, {len(self):,} tokens of {self.dtype})"


def tokenize_files(paths: Iterable[str | os.PathLike], out: str | os.PathLike, *, tokenizer: Any = None,
                   eot: bool = False, num_threads: int | None = None, progress: bool | None = None,
                   chunk_chars: int = 1 << 20) -> TokenFile:
    """Encode text files into one token file: streaming, in parallel, in bounded memory.

    Each file is read in chunks of about `chunk_chars` characters, re-cut where encoding can be split
    (`npgpt.Encoding.chunk_text`), and groups of chunks are encoded on `num_threads` threads
    (default: all cores). Memory holds about ``2 * num_threads`` chunks whatever the corpus size.
    Text that spells ``<|endoftext|>`` is encoded as ordinary text; with `eot`, the real
    ``<|endoftext|>`` token is written after each file, marking document boundaries. A tqdm bar
    shows progress on a terminal (`progress` None), always (True) or never (False).

    `tokenizer` is an `npgpt.Encoding` (default: GPT-2). Returns the `TokenFile` written.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> for name, text in (("a.txt", "hello world"), ("b.txt", "bye")):
    ...     with open(os.path.join(d, name), "w") as f:
    ...         _ = f.write(text)
    >>> tf = tokenize_files([os.path.join(d, "a.txt"), os.path.join(d, "b.txt")], os.path.join(d, "t.npgpt"),
    ...                     eot=True, progress=False)
    >>> tf.tokens.tolist()
    [31373, 995, 50256, 16390, 50256]
    """
    import sys

    from tqdm import tqdm

    from npgpt.bpe import get_encoding

    tok = tokenizer if tokenizer is not None else get_encoding("gpt2")
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"no such file: {p}")
    threads = num_threads or os.cpu_count() or 1
    eot_id = tok.eot_token if eot else None
    disable = (not sys.stderr.isatty()) if progress is None else not progress
    total = sum(p.stat().st_size for p in paths)
    with TokenWriter(out, tok.token_dtype) as writer, tqdm(total=total, unit="B", unit_scale=True,
                                                            desc="tokenize", disable=disable) as bar:
        pending: list[str | None] = []  # text chunks in order; None marks a document end

        def flush() -> None:
            texts = [c for c in pending if c is not None]
            arrays = iter(tok.encode_batch_to_numpy(texts, num_threads=threads, disallowed_special=()))
            for c in pending:
                writer.write(next(arrays) if c is not None else np.array([eot_id]))
            pending.clear()

        for path in paths:
            with open(path, encoding="utf-8") as f:
                def read(f=f):
                    while text := f.read(chunk_chars):
                        bar.update(len(text.encode("utf-8", "surrogatepass")))
                        yield text

                for chunk in tok.chunk_text(read(), disallowed_special=(), chunk_chars=chunk_chars):
                    pending.append(chunk)
                    if len(pending) >= 2 * threads:
                        flush()
            if eot:
                pending.append(None)
        flush()
    return TokenFile(out)
