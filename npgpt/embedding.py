"""Token and positional embeddings that learn (chapter 2.7-2.8), with exact manual gradients.

An embedding layer is a table with one row of weights per id. The forward pass is NumPy's fancy
index, which looks up one row per id, whatever the shape of `ids`:

    out = weight[ids]                          # ids (B, T) -> out (B, T, D)

GPT adds a second table indexed by position, so that the same token at two places gets two
different vectors; the (T, D) slice of positions is added to every sequence of the batch by
broadcasting:

    x = tok_emb.weight[ids] + pos_emb.weight[:T]      # (B, T, D) + (T, D) -> (B, T, D)

`GPTEmbedding` computes exactly that (the same additions, so the same bits) in one pass over the
output, on threads, for large inputs (`npgpt.embedding_kernels.gather_add`): NumPy's two expressions
write the output twice, on one thread (6.1 ms at GPT-2 size against 2.8 ms on 2 cores; torch 4.3).

The backward pass sends each output row's gradient back to the row it came from. When an id
appears twice its row receives the sum of both gradients: a *scatter-add*, ``np.add.at(grad, ids,
grad_out)`` in NumPy (`npgpt.reference.embedding_backward` spells it out as a loop). npgpt does it
6-8x faster in `npgpt.embedding_kernels`: a counting sort groups the rows by id, then each id's
group is summed by one thread, in input order, and added to its row once -- no two threads share a
row, and the sums are the same to the bit whatever the number of threads. The threads are Python
threads over kernels that release the GIL (no OpenMP), so a process can ``fork`` after a backward.

`Embedding` and `GPTEmbedding` follow torch's semantics: N(0, 1) init, `padding_idx`, gradients
added into ``.grad`` until `zero_grad`. The ids a forward saw are copied, so the backward sends the
gradient where the forward looked, even if the caller changes its array in between.

Example
-------
>>> emb = GPTEmbedding(vocab_size=50257, context_length=4, emb_dim=8, rng=0)
>>> ids = np.array([[40, 367, 2885, 1464]])
>>> x = emb(ids)
>>> x.shape, bool((x == emb.tok_emb.weight[ids] + emb.pos_emb.weight[:4]).all())
((1, 4, 8), True)
>>> emb.backward(np.ones_like(x)); float(emb.pos_emb.grad[0].sum())
8.0
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from npgpt.optim import Parameter

__all__ = ["Embedding", "GPTEmbedding"]

# float32 and float64 only: numba has no float16 arithmetic on the CPU, and np.longdouble has no
# numba type; both are refused when the layer is made, rather than failing on the first backward.
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# below this many gradient values (N * D) the scatter-add runs on the calling thread: starting
# threads costs more than it saves
_PARALLEL_MIN = 1 << 16
_RUNS_PER_THREAD = 4


def _kernels():
    # numba compiles these on first use, not at `import npgpt`
    from npgpt import embedding_kernels

    return embedding_kernels


def _rng(rng: Any) -> np.random.Generator:
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"rng must be None, an int seed or a numpy Generator, got {type(rng).__name__}")


def _check_dim(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(v)


def _check_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype!r}") from None
    if dt not in DTYPES:
        raise ValueError(f"dtype must be np.float32 or np.float64, got {dt} (the backward kernel computes in "
                         "float32 or float64 only; cast the weights after training if you need another)")
    return dt


def _copy_ids(ids: Any, n: int, what: str) -> np.ndarray:
    """A private int64 copy of `ids` with every value in [0, n); else IndexError naming the bad value.

    The copy comes first and the checks run on it, so nothing the caller does to its own array
    afterwards can move (or corrupt) the gradient of this forward.
    """
    arr = np.array(ids, copy=True)
    if arr.dtype.kind not in "iu":
        raise IndexError(f"{what} ids must be integers, got dtype {arr.dtype}")
    if arr.size:
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi >= n:
            bad = int(lo) if lo < 0 else int(hi)
            raise IndexError(f"{what} id {bad} is out of range: ids must be in [0, {n})")
    arr = arr.astype(np.int64, copy=False)  # exact: every value is now in [0, n)
    arr.flags.writeable = False
    return arr


def _num_threads(num_threads: Any) -> int:
    if num_threads is None:
        try:
            return min(8, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return min(8, os.cpu_count() or 1)
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int or None, got {num_threads!r}")
    return int(num_threads)


class Embedding:
    """A lookup table of `num_embeddings` rows of `embedding_dim` weights, like ``torch.nn.Embedding``.

    Parameters
    ----------
    num_embeddings, embedding_dim : int
    rng : int, numpy Generator or None
        Source of the N(0, 1) initial weights (torch's init).
    dtype : np.float32 (default) or np.float64
        Other dtypes (float16, longdouble, ...) are refused with a ValueError: the backward kernel
        computes in float32 or float64 only.
    padding_idx : int, optional
        This row starts at zero and never receives gradient (negative values count from the end).

    Attributes: ``weight`` and ``grad`` (arrays of shape ``(num_embeddings, embedding_dim)``), the
    `data` and `grad` of the one `Parameter` in ``parameters()``.

    Example
    -------
    >>> emb = Embedding(10, 3, rng=0)
    >>> out = emb(np.array([1, 1, 4]))          # emb.weight[[1, 1, 4]]
    >>> emb.backward(np.ones((3, 3), np.float32))
    >>> emb.grad[1].tolist(), emb.grad[4].tolist(), emb.grad[0].tolist()   # repeated ids add up
    ([2.0, 2.0, 2.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, *, rng: Any = None, dtype: Any = np.float32,
                 padding_idx: int | None = None):
        num_embeddings = _check_dim("num_embeddings", num_embeddings)
        embedding_dim = _check_dim("embedding_dim", embedding_dim)
        dtype = _check_dtype(dtype)
        if padding_idx is not None:
            if (isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer))
                    or not -num_embeddings <= padding_idx < num_embeddings):
                raise ValueError(f"padding_idx must be an int within [-{num_embeddings}, {num_embeddings}), "
                                 f"got {padding_idx!r}")
            padding_idx = int(padding_idx) % num_embeddings
        self._padding_idx = padding_idx
        weight = _rng(rng).standard_normal((num_embeddings, embedding_dim)).astype(dtype)
        if padding_idx is not None:
            weight[padding_idx] = 0
        self._param = Parameter(weight, "weight")
        self._ids: np.ndarray | None = None

    @property
    def padding_idx(self) -> int | None:
        return self._padding_idx

    @property
    def num_embeddings(self) -> int:
        return self._param.shape[0]

    @property
    def embedding_dim(self) -> int:
        return self._param.shape[1]

    @property
    def weight(self) -> np.ndarray:
        return self._param.data

    @property
    def grad(self) -> np.ndarray:
        return self._param.grad

    def forward(self, ids: Any) -> np.ndarray:
        """``weight[ids]``: one row per id, shape ``ids.shape + (embedding_dim,)``. Keeps a copy of the ids."""
        return self.weight[self._keep_ids(ids)]

    def _keep_ids(self, ids: Any) -> np.ndarray:
        """The forward's ids, checked, copied and kept for the backward (`_copy_ids`)."""
        ids = _copy_ids(ids, self.num_embeddings, "token")
        self._param.check()  # fancy indexing is always memory-safe; this keeps the answer meaningful
        self._ids = ids
        return ids

    __call__ = forward

    def backward(self, grad_out: Any, *, num_threads: int | None = None) -> None:
        """Add the gradient of the last forward's output into `grad` (repeated ids accumulate).

        `num_threads` (default: the CPUs this process may use, at most 8) only changes the speed:
        the sums are the same to the bit for any value.
        """
        if self._ids is None:
            raise ValueError("backward called before forward: there are no ids to send the gradient to")
        self._accumulate(self._ids, grad_out, num_threads)

    def _accumulate(self, ids: np.ndarray, grad_out: Any, num_threads: int | None) -> None:
        grad_out = _check_grad(grad_out, (*ids.shape, self.embedding_dim), self.weight.dtype)
        _scatter_add(self._param, ids.reshape(-1), grad_out.reshape(-1, self.embedding_dim), self.padding_idx,
                     _num_threads(num_threads))

    def zero_grad(self) -> None:
        self.grad[...] = 0

    def parameters(self) -> list[Parameter]:
        return [self._param]

    def state_dict(self) -> dict[str, np.ndarray]:
        """``{"weight": array}`` (a copy); save it with ``np.savez(path, **layer.state_dict())``."""
        return {"weight": self.weight.copy()}

    def load_state_dict(self, state: Any) -> None:
        """Load weights from `state_dict` output (or ``np.load`` of a saved ``.npz``)."""
        _load_into(self._param, state, "weight")

    def __repr__(self) -> str:
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}{pad}, dtype={self.weight.dtype})"


class GPTEmbedding:
    """GPT's input layer, the book's names: ``tok_emb(ids) + pos_emb.weight[:T]``.

    The two tables are `Embedding` layers and the forward goes through them, so they compose like
    torch modules: after ``x = emb(ids)``, ``emb.backward(g)`` fills both tables' gradients, and
    ``emb.tok_emb.backward(g)`` (or ``emb.pos_emb.backward(g.sum(axis=0))``) fills one.

    Parameters
    ----------
    vocab_size, context_length, emb_dim : int
    rng : int, numpy Generator or None
    dtype : np.float32 (default) or np.float64

    Example
    -------
    >>> emb = GPTEmbedding(50257, 256, 16, rng=0)
    >>> ids = np.array([[40, 367, 2885, 1464], [367, 2885, 1464, 1807]])
    >>> x = emb(ids)
    >>> bool((x == emb.tok_emb.weight[ids] + emb.pos_emb.weight[:4]).all())
    True
    """

    def __init__(self, vocab_size: int, context_length: int, emb_dim: int, *, rng: Any = None,
                 dtype: Any = np.float32):
        rng = _rng(rng)
        self.tok_emb = Embedding(vocab_size, emb_dim, rng=rng, dtype=dtype)
        self.pos_emb = Embedding(context_length, emb_dim, rng=rng, dtype=dtype)
        self._ids: np.ndarray | None = None

    @property
    def context_length(self) -> int:
        return self.pos_emb.num_embeddings

    @property
    def emb_dim(self) -> int:
        return self.tok_emb.embedding_dim

    def forward(self, ids: Any) -> np.ndarray:
        """``tok_emb(ids) + pos_emb.weight[:T]`` for ids of shape (B, T), T <= context_length: (B, T, D)."""
        shape = np.shape(ids)
        if len(shape) != 2:
            raise ValueError(f"GPTEmbedding takes ids of shape (batch, T), got shape {shape}")
        self._check_tables()
        t = shape[1]
        if t > self.context_length:
            raise ValueError(f"sequence length T={t} exceeds context_length={self.context_length}")
        ids = self._ids = self.tok_emb._keep_ids(ids)  # as tok_emb(ids) keeps them, for the backward
        self.pos_emb._param.check()
        x = _lookup_add(self.tok_emb.weight, self.pos_emb.weight[:t], ids)  # tok_emb(ids) + pos_emb.weight[:T]
        self.pos_emb._ids = np.arange(t)  # what pos_emb(arange(T)) would keep, without copying its rows
        return x

    __call__ = forward

    def backward(self, grad_out: Any, *, num_threads: int | None = None) -> None:
        """Add gradients into ``tok_emb.grad`` (scatter-add by id) and ``pos_emb.grad`` (sum over the batch)."""
        if self._ids is None:
            raise ValueError("backward called before forward: there are no ids to send the gradient to")
        self._check_tables()
        b, t = self._ids.shape
        grad_out = _check_grad(grad_out, (b, t, self.emb_dim), self.tok_emb.weight.dtype)
        self.tok_emb._accumulate(self._ids, grad_out, num_threads)
        self.pos_emb._param.check()
        self.pos_emb.grad[:t] += grad_out.sum(axis=0)  # the broadcast's gradient: a sum over the batch

    def _check_tables(self) -> None:
        # the children are plain attributes a user may replace; the sum needs them to agree
        tok, pos = self.tok_emb, self.pos_emb
        if not (isinstance(tok, Embedding) and isinstance(pos, Embedding)):
            raise TypeError("GPTEmbedding's tok_emb and pos_emb must be Embedding layers")
        if tok.embedding_dim != pos.embedding_dim or tok.weight.dtype != pos.weight.dtype:
            raise ValueError(f"tok_emb and pos_emb must have the same width and dtype, got {tok!r} and {pos!r}")

    def zero_grad(self) -> None:
        self.tok_emb.zero_grad()
        self.pos_emb.zero_grad()

    def parameters(self) -> list[Parameter]:
        return self.tok_emb.parameters() + self.pos_emb.parameters()

    def state_dict(self) -> dict[str, np.ndarray]:
        """``{"tok_emb.weight": ..., "pos_emb.weight": ...}`` (copies), torch's key names."""
        return {"tok_emb.weight": self.tok_emb.weight.copy(), "pos_emb.weight": self.pos_emb.weight.copy()}

    def load_state_dict(self, state: Any) -> None:
        _load_into(self.tok_emb._param, state, "tok_emb.weight")
        _load_into(self.pos_emb._param, state, "pos_emb.weight")

    def __repr__(self) -> str:
        return f"GPTEmbedding(tok_emb={self.tok_emb!r}, pos_emb={self.pos_emb!r})"


def _check_grad(grad_out: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """`grad_out` as a C-contiguous array of `dtype` (a copy when it must be cast or compacted)."""
    g = np.asarray(grad_out)
    if g.shape != shape:
        raise ValueError(f"grad_out has shape {g.shape}; the last forward's output had shape {shape}")
    if g.dtype.kind != "f":
        raise TypeError(f"grad_out must be floating point, got dtype {g.dtype}")
    g = np.ascontiguousarray(g, dtype=dtype)
    return g if g.flags.writeable else g.copy()  # one kernel signature: numba types read-only arrays apart


def _lookup_add(weight: np.ndarray, pos: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``weight[ids] + pos`` for ids of shape (B, T) and pos of shape (T, D): a new (B, T, D) array.

    Large outputs come from `npgpt.embedding_kernels.gather_add` on all the threads this process may
    use (at most 8): one pass over the output, where NumPy makes two (the rows, then the add), and on
    one thread. Small ones, and odd layouts, from NumPy itself, which is quicker to start (and
    imports no numba). Both give the same bits. `ids` is our checked, read-only int64 copy.
    """
    b, t = ids.shape
    d = weight.shape[1]
    threads = min(_num_threads(None), b * t * d // _PARALLEL_MIN)
    if threads < 1 or not (weight.dtype in DTYPES and pos.dtype == weight.dtype and weight.flags.c_contiguous
                           and pos.flags.c_contiguous and pos.shape == (t, d)):
        x = weight[ids]  # (B, T, D), a new array: the lookup copies the rows
        x += pos  # (T, D), broadcast over the batch, added in place
        return x
    out = np.empty((b * t, d), weight.dtype)
    flat = np.ascontiguousarray(ids).reshape(-1)  # (a view of our copy when it is C-ordered, as it mostly is)
    flat.flags.writeable = False  # read-only either way: one compiled kernel, not two
    cuts = np.linspace(0, b * t, threads + 1).astype(np.int64).tolist()
    k = _kernels()
    status = [0] * threads

    def part(i: int) -> None:
        status[i] = k.gather_add(weight, pos, flat, out, cuts[i], cuts[i + 1])

    helpers = [threading.Thread(target=part, args=(i,)) for i in range(1, threads)]  # the kernel releases the GIL
    for h in helpers:
        h.start()
    try:
        part(0)  # this thread takes the first rows
    finally:
        for h in helpers:
            h.join()
    if any(status):
        raise RuntimeError(f"embedding tables changed shape during the forward (weight {weight.shape}, "
                           f"pos {pos.shape})")
    return out.reshape(b, t, d)


def _scatter_add(param: Parameter, ids: np.ndarray, rows: np.ndarray, padding_idx: int | None,
                 num_threads: int) -> None:
    """``param.grad[ids[i]] += rows[i]`` for every i (except padding), by id groups across threads.

    Checks, right before the kernels, every array they will index: `ids` is our read-only int64
    copy, in range for the table as it is now; `rows` and the gradient are C-contiguous with the
    table's dtype and width (a Parameter keeps its shape, but an array can be reshaped in place).
    """
    param.check()
    grad = param.grad
    n, d = grad.shape
    if not (grad.dtype in DTYPES and grad.flags.writeable and rows.dtype == grad.dtype and rows.flags.c_contiguous
            and rows.shape == (ids.shape[0], d) and ids.dtype == np.int64 and ids.flags.c_contiguous):
        raise ValueError(f"{param!r}: cannot add gradient rows of shape {rows.shape}, dtype {rows.dtype}")
    if ids.size and not (0 <= ids.min() and ids.max() < n):
        raise IndexError(f"ids out of range for a table of {n} rows")
    k = _kernels()
    order, starts, uniq = k.group_by_id(ids, n)
    pad = -1 if padding_idx is None else padding_idx
    threads = min(num_threads, len(uniq), max(1, rows.size // _PARALLEL_MIN))
    if threads <= 1:
        k.scatter_add_groups(grad, rows, order, starts, uniq, pad, 0, len(uniq))
        return
    # cut the groups into runs of about equal numbers of rows, each id whole, four per thread: a thread
    # that finishes early (the machine is shared) takes the next run
    runs = _RUNS_PER_THREAD * threads
    cuts = np.searchsorted(starts, np.linspace(0, len(ids), runs + 1)[1:-1]).tolist()
    bounds = [0, *cuts, len(uniq)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda a, b: k.scatter_add_groups(grad, rows, order, starts, uniq, pad, a, b),
                      bounds[:-1], bounds[1:]))


def _load_into(param: Parameter, state: Any, key: str) -> None:
    try:
        value = np.asarray(state[key])
    except KeyError:
        raise KeyError(f"state has no {key!r} (it has {sorted(state)})") from None
    if value.shape != param.shape:
        raise ValueError(f"{key}: shape {value.shape} does not match the layer's {param.shape}")
    if value.dtype.kind not in "fiu":
        raise TypeError(f"{key}: expected numbers, got dtype {value.dtype}")
    param.data[...] = value
