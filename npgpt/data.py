"""Training windows without copies (chapter 2.6): sliding windows, the book's dataset and loader.

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

`GPTDatasetV1`, `DataLoader` and `create_dataloader_v1` keep the book's names and arguments. What
they hand out is what the book's tensors are: int64 (by default) arrays of their own, writeable, so
that ``torch.from_numpy`` and ``nn.Embedding`` take them, and an input never aliases its target.
Only the windows behind them are views. A list of ids is range-checked before it is stored
compactly, and a batch dtype too narrow for the ids is refused, so no id ever wraps. Tokens on disk
(`npgpt.token_files`: ``.npy`` or nanoGPT's ``.bin``) are read through ``np.memmap``, so a corpus
larger than memory trains the same way.

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
import mmap
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from npgpt.token_files import as_token_array

__all__ = ["DataLoader", "GPTDatasetV1", "batch_dtype", "create_dataloader_v1", "sliding_windows"]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def batch_dtype(token_ids: np.ndarray, dtype: Any) -> np.dtype | None:
    """`dtype` for batches of `token_ids`, refused if it cannot hold every id (None: keep the storage dtype).

    A cast that is safe for the storage dtype (uint16 ids to int64, the default) is accepted at once.
    A narrower one (int16, uint8, ...) is accepted only if the ids present fit, which costs one pass
    over them; ``astype`` would otherwise wrap id 50256 to -15280 without a word.

    >>> batch_dtype(np.array([5, 50256], np.uint16), np.int16)
    Traceback (most recent call last):
    ...
    ValueError: dtype int16 cannot hold token id 50256 (ids here range from 5 to 50256); use int32 or int64
    """
    if dtype is None:
        return None
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be an integer NumPy dtype or None, got {dtype!r}") from None
    if dt.kind not in "iu":
        raise TypeError(f"dtype must be an integer dtype or None, got {dt}")
    if np.can_cast(token_ids.dtype, dt, "safe") or token_ids.size == 0:
        return dt
    _check_fits(token_ids, dt, "ids here range")
    return dt


def _check_fits(ids: np.ndarray, dtype: np.dtype, what: str) -> None:
    info = np.iinfo(dtype)
    lo, hi = int(ids.min()), int(ids.max())
    if lo < info.min or hi > info.max:
        bad = hi if hi > info.max else lo
        raise ValueError(f"dtype {dtype} cannot hold token id {bad} ({what} from {lo} to {hi}); use int32 or int64")


def _convert(view: np.ndarray, dtype: np.dtype | None, narrowing: bool, out: np.ndarray | None = None) -> np.ndarray:
    """A C-contiguous, writeable copy of `view` as `dtype` (the storage dtype if None): a new array, or `out`
    (C-contiguous, of `view`'s shape and that dtype) written over.

    A narrowing cast is checked again on the very values it converts: the caller may have changed
    an array it still holds since the dataset was built."""
    if narrowing and dtype is not None and view.size:
        _check_fits(view, dtype, "this batch ranges")
    if out is None:
        return np.array(view, dtype=dtype, order="C")
    np.copyto(out, view, casting="unsafe")  # the values were checked above
    return out


class _Buffers:
    """Pairs of group arrays (x, y) of one iteration, handed out again once no batch cut from them is alive.

    Every batch is a slice whose ``.base`` is its group array, and whatever is made from a batch (a slice, a
    transpose, ``np.asarray``, a memoryview, ``torch.from_numpy``) holds the batch or that base: so while any of
    them lives, the base's reference count is above what the pool alone gives it. That count is measured once
    on arrays held exactly as the pool holds its own (what ``sys.getrefcount`` counts differs between CPython
    versions), rather than assumed."""

    SIZE = 2  # the group being read, and the one before (a loop still holds its last batch while asking for more)

    def __init__(self, columns: int, dtype: np.dtype) -> None:
        self.columns, self.dtype = columns, dtype
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []
        self.free = self._count([(np.empty(0), np.empty(0))])

    @staticmethod
    def _count(pairs: list[tuple[np.ndarray, np.ndarray]]) -> int:
        """`sys.getrefcount` of an array held as `take` sees its own: in a list of pairs, bound by the same loop."""
        for x, _ in pairs:
            return sys.getrefcount(x)
        return 0

    def take(self, rows: int) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
        """A pooled pair of `rows` rows that nobody else holds, else a new pair while the pool has room, else
        (None, None): the caller makes arrays the pool does not keep."""
        for x, y in self.pairs:
            if len(x) == rows and sys.getrefcount(x) == self.free and sys.getrefcount(y) == self.free:
                return x, y
        if len(self.pairs) == self.SIZE:
            return None, None
        self.pairs.append((np.empty((rows, self.columns), self.dtype), np.empty((rows, self.columns), self.dtype)))
        return self.pairs[-1]


def n_windows(n_tokens: int, max_length: int, stride: int) -> int:
    """``len(range(0, n_tokens - max_length, stride))``: the book's window count."""
    return max(0, math.ceil((n_tokens - max_length) / stride))


def token_spans(token_ids: Any, length: int, stride: int) -> np.ndarray:
    """Read-only view of shape ``(n, length)``: row i is ``ids[i*stride : i*stride + length]``, for the book's
    ``n = len(range(0, len(ids) - length + 1, stride))`` windows. No copy: rows overlap in memory."""
    ids = as_token_array(token_ids)
    n = n_windows(len(ids), length - 1, stride)
    # Row i starts stride tokens after row i - 1; the last row ends at (n-1)*stride + length <= len(ids). So with
    # two rows or more the stride is below len(ids); with one or none it is never taken, and a huge one would
    # overflow the view's byte stride: it is clipped.
    step = min(stride, len(ids)) * ids.strides[0]
    return np.lib.stride_tricks.as_strided(ids, shape=(n, length), strides=(step, ids.strides[0]), writeable=False)


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
    dtype : integer NumPy dtype or None
        dtype of the items ``ds[i]``: int64 by default, as the book's ``torch.tensor(ids)`` gives and
        as torch's ``DataLoader`` and ``nn.Embedding`` take. A dtype that cannot hold the largest id
        is refused (`batch_dtype`). None: items are read-only views in the storage dtype.

    ``ds[i]`` is ``(input_ids, target_ids)``, shape ``(max_length,)``: two new writeable arrays of
    `dtype` that share no memory (the book's items are tensors of their own). The windows
    themselves cost nothing: ``ds.inputs`` and ``ds.targets`` are all windows, shape ``(len(ds),
    max_length)``, two read-only zero-copy views (the two shifted views of ``ds.spans``, windows of
    ``max_length + 1`` tokens) of the token array ``ds.token_ids``.

    Example
    -------
    >>> ds = GPTDatasetV1("I HAD always thought Jack Gisburn", npgpt.get_encoding("gpt2"), 4, 1)
    >>> len(ds), ds[0][0].tolist(), ds[0][1].tolist(), ds[0][0].dtype
    (5, [40, 367, 2885, 1464], [367, 2885, 1464, 1807], dtype('int64'))
    >>> np.shares_memory(ds.inputs, ds.token_ids), ds.token_ids.dtype
    (True, dtype('uint16'))
    """

    def __init__(self, txt: str, tokenizer: Any, max_length: int, stride: int, *, dtype: Any = np.int64):
        if not isinstance(txt, str):
            raise TypeError(f"txt must be str, got {type(txt).__name__}")
        if not hasattr(tokenizer, "encode"):
            raise TypeError(f"tokenizer must have an encode method, got {type(tokenizer).__name__}")
        self._init(tokenizer.encode(txt, allowed_special={"<|endoftext|>"}), max_length, stride, dtype)

    @classmethod
    def from_token_ids(cls, token_ids: Any, max_length: int, stride: int, *, dtype: Any = np.int64) -> GPTDatasetV1:
        """A dataset over ids already encoded: a list, a NumPy array, a memmap or a `TokenFile`.

        >>> ds = GPTDatasetV1.from_token_ids(np.arange(100, dtype=np.uint16), max_length=8, stride=8)
        >>> len(ds), ds.inputs.shape
        (12, (12, 8))
        """
        self = cls.__new__(cls)
        self._init(token_ids, max_length, stride, dtype)
        return self

    def _init(self, token_ids: Any, max_length: int, stride: int, dtype: Any) -> None:
        max_length = _positive_int("max_length", max_length)
        stride = _positive_int("stride", stride)
        self.token_ids = as_token_array(token_ids)
        if len(self.token_ids) <= max_length:
            raise ValueError(
                f"the text has {len(self.token_ids)} tokens; windows of max_length={max_length} need at least "
                f"{max_length + 1} (inputs plus the one-token shift of the targets)"
            )
        self.max_length, self.stride = max_length, stride
        self.dtype = batch_dtype(self.token_ids, dtype)
        self._narrowing = self.dtype is not None and not np.can_cast(self.token_ids.dtype, self.dtype, "safe")
        # windows of max_length + 1 tokens; inputs and targets are their two shifted views
        self.spans = token_spans(self.token_ids, max_length + 1, stride)
        self.inputs, self.targets = self.spans[:, :-1], self.spans[:, 1:]

    def __len__(self) -> int:
        return len(self.inputs)

    def __reduce__(self) -> tuple:
        # Pickled (torch's DataLoader workers under spawn, multiprocessing, Dask) as its tokens and arguments:
        # pickling the window views would write out every window (max_length times the tokens, at stride 1)
        # and bring them back as writeable copies. Tokens mapped from a file travel as the file's name.
        return _dataset, (_portable(self.token_ids), self.max_length, self.stride, self.dtype)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)):
            raise TypeError(f"dataset index must be an int, got {type(idx).__name__}")
        n = len(self.inputs)
        if not -n <= idx < n:
            raise IndexError(f"dataset index {idx} out of range for {n} windows")
        if self.dtype is None:
            return self.inputs[idx], self.targets[idx]
        return (_convert(self.inputs[idx], self.dtype, self._narrowing),
                _convert(self.targets[idx], self.dtype, self._narrowing))

    def __repr__(self) -> str:
        return (f"GPTDatasetV1({len(self)} windows, max_length={self.max_length}, stride={self.stride}, "
                f"{len(self.token_ids):,} tokens as {self.token_ids.dtype})")


def _dataset(tokens: Any, max_length: int, stride: int, dtype: np.dtype | None) -> GPTDatasetV1:
    """A pickled `GPTDatasetV1`, made again (see `GPTDatasetV1.__reduce__`)."""
    if isinstance(tokens, tuple):  # a file's mapping (`_portable`)
        filename, file_dtype, offset, shape = tokens
        tokens = np.memmap(filename, dtype=file_dtype, mode="r", offset=offset, shape=shape)
    return GPTDatasetV1.from_token_ids(tokens, max_length, stride, dtype=dtype)


def _portable(tokens: np.ndarray) -> Any:
    """`tokens` to pickle: a read-only mapping of a whole file region (a `TokenFile`'s) as where it is,
    ``(filename, dtype, offset, shape)``; any other array as itself (a slice of a mapping holds no offset
    of its own, so it is copied)."""
    if isinstance(tokens, np.memmap) and isinstance(tokens.base, mmap.mmap) and tokens.mode == "r" and tokens.filename:
        return tokens.filename, tokens.dtype, tokens.offset, tokens.shape
    return np.asarray(tokens)


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
    dtype : integer NumPy dtype or None
        dtype of the batches: int64 by default (what ``torch.from_numpy`` and ``nn.Embedding`` users
        expect). A dtype that cannot hold the largest id is refused (`batch_dtype`): int16 would wrap
        GPT-2's 50256 to -15280. ``None`` keeps the token storage dtype.

    What a batch is:

    - with a `dtype` (the default), ``x`` and ``y`` are two C-contiguous, writeable arrays that share
      no memory: writing into one never changes the other (``y`` is ``x`` shifted by one, so views of
      one buffer would alias). Windows are converted (and gathered, when shuffled) up to 32 batches
      per NumPy call, into group arrays that are reused once no batch cut from them is alive
      (`_Buffers`): a batch you still hold is never written over;
    - with ``dtype=None``, no shuffling and one rank, ``x`` and ``y`` are read-only views into the
      tokens (zero copy; they overlap, which is why they cannot be written);
    - with ``dtype=None`` and shuffling (or several ranks), new arrays as with a `dtype`.

    Example
    -------
    >>> ds = GPTDatasetV1.from_token_ids(np.arange(20), max_length=4, stride=4)
    >>> x, y = next(iter(DataLoader(ds, batch_size=2)))
    >>> x.tolist(), y.tolist(), x.dtype
    ([[0, 1, 2, 3], [4, 5, 6, 7]], [[1, 2, 3, 4], [5, 6, 7, 8]], dtype('int64'))
    >>> x[0, 1] = -100; y[0, 0]        # x and y are separate arrays
    np.int64(1)
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
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        self.seed = int(np.random.SeedSequence().entropy) % 2**63 if seed is None else int(seed)  # type: ignore[arg-type]
        self.dtype = batch_dtype(dataset.token_ids, dtype)
        self._narrowing = self.dtype is not None and not np.can_cast(dataset.token_ids.dtype, self.dtype, "safe")
        self.epoch = 0
        self.shard_size = len(dataset) // self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch `epoch` (its order depends only on seed and epoch)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        self.epoch = int(epoch)

    def indices(self, epoch: int) -> np.ndarray:
        """The window indices this rank visits in `epoch`, in order (before batching and `drop_last`)."""
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

    # Batches converted (and gathered) per NumPy call: amortizes the per-call cost, but each of x and y stays
    # within 256 KiB. Measured on one core: at 8 x 1024 int64, 4 batches per call give 127k batches/s, 16 give
    # 14k (larger arrays come back from the allocator as fresh pages, faulted in on every call). The same
    # effect moves whole epochs: glibc serves blocks above its mmap threshold (128 KiB, raised as large
    # blocks are freed) as fresh mappings, so a fresh process ran a (256, 128) shuffled epoch at 90-120k
    # batches/s and one whose heap has grown at 450-640k. Hence `_Buffers`: a group is written into group
    # arrays of this iteration that no batch of theirs still uses, whose pages are already faulted in; a
    # batch anyone holds is never written over, as its group array is then never handed out again.
    GROUP, GROUP_BYTES = 32, 1 << 18

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        spans = self.dataset.spans  # a batch's x and y are the two shifted halves of its spans
        n_batches, bs, dtype, narrowing = len(self), self.batch_size, self.dtype, self._narrowing
        in_order = not self.shuffle and self.world_size == 1
        if in_order and dtype is None:
            # consecutive windows, zero copy: read-only views of the strided spans (x and y overlap in memory)
            for b in range(n_batches):
                block = spans[b * bs : (b + 1) * bs]
                yield block[:, :-1], block[:, 1:]
            return
        idx = None if in_order else self.indices(epoch)
        item = (dtype or spans.dtype).itemsize
        group = max(1, min(self.GROUP, self.GROUP_BYTES // (bs * self.dataset.max_length * item)))
        buffers = _Buffers(spans.shape[1] - 1, np.dtype(dtype or spans.dtype))
        for g in range(0, n_batches, group):
            # GROUP batches per NumPy call: a slice of the spans in order, else one gather (np.take would copy
            # all spans); then x and y as two separate arrays, so that writing one never changes the other (a
            # pooled pair that no batch still uses, see above)
            rows = slice(g * bs, min(g + group, n_batches) * bs)
            block = spans[rows] if idx is None else spans[idx[rows]]
            xs, ys = buffers.take(len(block))
            xs, ys = _convert(block[:, :-1], dtype, narrowing, xs), _convert(block[:, 1:], dtype, narrowing, ys)
            for lo in range(0, len(block), bs):
                yield xs[lo : lo + bs], ys[lo : lo + bs]
            del xs, ys  # this frame's hold would keep them from the next group

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
    dataset = GPTDatasetV1(txt, get_encoding("gpt2"), max_length, stride, dtype=dtype)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed, dtype=dtype)
