"""Token and positional embeddings that learn (chapter 2.7-2.8), with exact manual gradients.

An embedding layer is a table with one row of weights per id: the forward pass looks rows up
(``weight[ids]``), and the backward pass sends each output row's gradient back to the row it came
from. When an id appears twice, its row receives the sum of both gradients -- a *scatter-add*.
GPT adds a second table indexed by position, so that the same token at two places gets two
different vectors:

    x = tok_emb(ids) + pos_emb(arange(T))        # (B, T, D) + (T, D), broadcast over the batch

`Embedding` and `GPTEmbedding` do this with torch's semantics (N(0, 1) init, `padding_idx`,
gradients added into ``.grad``) and numba kernels: the forward gather and the positional add are one
pass over the output; the backward scatter-add groups the rows by id (a counting sort) and lets each
thread own whole rows, so there are no races and the sums come out the same to the bit whatever the
number of threads. The plain loops they are held to are in ``tests/test_embedding.py``.

Example
-------
>>> emb = GPTEmbedding(vocab_size=50257, context_length=4, emb_dim=8, rng=0)
>>> x = emb(np.array([[40, 367, 2885, 1464]]))
>>> x.shape
(1, 4, 8)
>>> emb.backward(np.ones_like(x)); float(emb.pos_emb.grad[0].sum())
8.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from npgpt.optim import Parameter

__all__ = ["Embedding", "GPTEmbedding"]


def _kernels():
    # numba compiles these on first use, not at `import npgpt`
    from npgpt import embedding_kernels

    return embedding_kernels


def _rng(rng: Any) -> np.random.Generator:
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"rng must be None, an int seed or a numpy Generator, got {type(rng).__name__}")


def _check_ids(ids: Any, n: int, what: str) -> np.ndarray:
    """`ids` as a contiguous int64 array, every value in [0, n); else IndexError naming the bad value."""
    arr = np.asarray(ids)
    if arr.dtype.kind not in "iu":
        raise IndexError(f"{what} ids must be integers, got dtype {arr.dtype}")
    if arr.size:
        lo, hi = arr.min(), arr.max()
        if lo < 0 or hi >= n:
            bad = int(lo) if lo < 0 else int(hi)
            raise IndexError(f"{what} id {bad} is out of range: ids must be in [0, {n})")
    return np.ascontiguousarray(arr, dtype=np.int64)


class Embedding:
    """A lookup table of `num_embeddings` rows of `embedding_dim` weights, like ``torch.nn.Embedding``.

    Parameters
    ----------
    num_embeddings, embedding_dim : int
    rng : int, numpy Generator or None
        Source of the N(0, 1) initial weights (torch's init).
    dtype : float dtype
    padding_idx : int, optional
        This row starts at zero and never receives gradient (negative values count from the end).

    Attributes: ``weight`` and ``grad`` (arrays of shape ``(num_embeddings, embedding_dim)``).

    Example
    -------
    >>> emb = Embedding(10, 3, rng=0)
    >>> out = emb(np.array([1, 1, 4]))
    >>> emb.backward(np.ones((3, 3), np.float32))
    >>> emb.grad[1].tolist(), emb.grad[4].tolist(), emb.grad[0].tolist()   # repeated ids add up
    ([2.0, 2.0, 2.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, *, rng: Any = None, dtype: Any = np.float32,
                 padding_idx: int | None = None):
        for name, v in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise ValueError(f"dtype must be a float dtype, got {dtype}")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"padding_idx must be within [-{num_embeddings}, {num_embeddings}), got {padding_idx}")
            padding_idx = int(padding_idx) % num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = int(num_embeddings), int(embedding_dim), padding_idx
        weight = _rng(rng).standard_normal((num_embeddings, embedding_dim)).astype(dtype)
        if padding_idx is not None:
            weight[padding_idx] = 0
        self._param = Parameter(weight, "weight")
        self._ids: np.ndarray | None = None

    @property
    def weight(self) -> np.ndarray:
        return self._param.data

    @property
    def grad(self) -> np.ndarray:
        return self._param.grad

    def forward(self, ids: Any) -> np.ndarray:
        """Rows of `weight` for each id: shape ``ids.shape + (embedding_dim,)``. Remembers the ids."""
        ids = _check_ids(ids, self.num_embeddings, "token")
        self._ids = ids
        out = np.empty((*ids.shape, self.embedding_dim), self.weight.dtype)
        _kernels().gather(self.weight, ids.reshape(-1), out.reshape(-1, self.embedding_dim))
        return out

    __call__ = forward

    def backward(self, grad_out: np.ndarray) -> None:
        """Add the gradient of the last forward's output into `grad` (repeated ids accumulate)."""
        if self._ids is None:
            raise ValueError("backward called before forward: there are no ids to send the gradient to")
        grad_out = _check_grad(grad_out, (*self._ids.shape, self.embedding_dim), self.weight.dtype)
        _scatter_add(self.grad, self._ids.reshape(-1), grad_out.reshape(-1, self.embedding_dim), self.padding_idx)

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
    """GPT's input layer: ``tok_emb(ids) + pos_emb(arange(T))``, the book's names, one fused pass.

    Parameters
    ----------
    vocab_size, context_length, emb_dim : int
    rng : int, numpy Generator or None
    dtype : float dtype

    Example
    -------
    >>> emb = GPTEmbedding(50257, 256, 16, rng=0)
    >>> ids = np.array([[40, 367, 2885, 1464], [367, 2885, 1464, 1807]])
    >>> x = emb(ids)
    >>> np.allclose(x, emb.tok_emb.weight[ids] + emb.pos_emb.weight[:4])
    True
    """

    def __init__(self, vocab_size: int, context_length: int, emb_dim: int, *, rng: Any = None,
                 dtype: Any = np.float32):
        rng = _rng(rng)
        self.tok_emb = Embedding(vocab_size, emb_dim, rng=rng, dtype=dtype)
        self.pos_emb = Embedding(context_length, emb_dim, rng=rng, dtype=dtype)
        self.context_length, self.emb_dim = int(context_length), int(emb_dim)
        self._ids: np.ndarray | None = None

    def forward(self, ids: Any) -> np.ndarray:
        """``tok_emb(ids) + pos_emb(arange(T))`` for ids of shape (B, T), T <= context_length: (B, T, D)."""
        arr = np.asarray(ids)
        if arr.ndim != 2:
            raise ValueError(f"GPTEmbedding takes ids of shape (batch, T), got shape {arr.shape}")
        if arr.shape[1] > self.context_length:
            raise ValueError(f"sequence length T={arr.shape[1]} exceeds context_length={self.context_length}")
        ids = _check_ids(arr, self.tok_emb.num_embeddings, "token")
        self._ids = ids
        b, t = ids.shape
        out = np.empty((b, t, self.emb_dim), self.tok_emb.weight.dtype)
        _kernels().gather_add_positions(self.tok_emb.weight, self.pos_emb.weight, ids.reshape(-1), t,
                                        out.reshape(-1, self.emb_dim))
        return out

    __call__ = forward

    def backward(self, grad_out: np.ndarray) -> None:
        """Add gradients into ``tok_emb.grad`` (scatter-add by id) and ``pos_emb.grad`` (sum over the batch)."""
        if self._ids is None:
            raise ValueError("backward called before forward: there are no ids to send the gradient to")
        b, t = self._ids.shape
        grad_out = _check_grad(grad_out, (b, t, self.emb_dim), self.tok_emb.weight.dtype)
        _scatter_add(self.tok_emb.grad, self._ids.reshape(-1), grad_out.reshape(-1, self.emb_dim), None)
        self.pos_emb.grad[:t] += grad_out.sum(axis=0)

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
    g = np.asarray(grad_out)
    if g.shape != shape:
        raise ValueError(f"grad_out has shape {g.shape}; the last forward's output had shape {shape}")
    if g.dtype.kind != "f":
        raise ValueError(f"grad_out must be floating point, got {g.dtype}")
    return np.ascontiguousarray(g, dtype=dtype)


def _scatter_add(grad: np.ndarray, ids: np.ndarray, rows: np.ndarray, padding_idx: int | None) -> None:
    k = _kernels()
    order, starts, uniq = k.group_by_id(ids, grad.shape[0])
    k.scatter_add_grouped(grad, rows, order, starts, uniq, -1 if padding_idx is None else padding_idx)


def _load_into(param: Parameter, state: Any, key: str) -> None:
    try:
        value = np.asarray(state[key])
    except KeyError:
        raise KeyError(f"state has no {key!r} (it has {sorted(state)})") from None
    if value.shape != param.data.shape:
        raise ValueError(f"{key}: shape {value.shape} does not match the layer's {param.data.shape}")
    param.data[...] = value
