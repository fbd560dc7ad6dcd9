"""Parameters and optimizers: SGD and AdamW with torch's update rules, in NumPy.

A parameter is an array of weights and an array of the same shape that backward passes *add*
their gradients into. An optimizer reads the gradients, updates the weights in place, and
`zero_grad` clears the gradients for the next step -- the same contract as ``torch.optim``:

>>> p = Parameter(np.array([1.0, 2.0]))
>>> p.grad += [0.5, -1.0]            # what a backward pass does
>>> opt = SGD([p], lr=0.1)
>>> opt.step(); p.data
array([0.95, 2.1 ])
>>> opt.zero_grad(); p.grad
array([0., 0.])
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["SGD", "AdamW", "Optimizer", "Parameter"]


class Parameter:
    """Weights (`data`) and their accumulated gradient (`grad`, same shape and dtype).

    A parameter's shape and dtype are fixed when it is made: assigning a new array (torch's
    ``p.data = ...`` idiom) is allowed only for a writeable, C-contiguous array of that shape and
    dtype, because optimizers and numba kernels index both arrays as laid out at the start.
    Anything else raises a TypeError or ValueError naming what differs.

    >>> p = Parameter(np.zeros((2, 3), np.float32))
    >>> p.data = np.ones((2, 3), np.float32)         # same shape and dtype: fine
    >>> p.grad = np.zeros((3, 2), np.float32)
    Traceback (most recent call last):
    ...
    ValueError: Parameter.grad must have shape (2, 3), got (3, 2)
    """

    def __init__(self, data: np.ndarray, name: str = ""):
        if not isinstance(data, np.ndarray):
            raise TypeError(f"Parameter data must be a numpy array, got {type(data).__name__}")
        if data.dtype.kind != "f":
            raise TypeError(f"Parameter data must be floating point, got dtype {data.dtype}")
        self.name = name
        self._shape, self._dtype = data.shape, data.dtype
        self.data = data
        self.grad = np.zeros_like(data, order="C")

    def _checked(self, value: object, what: str) -> np.ndarray:
        if value is None and what == "grad":  # torch's set_to_none; here the array stays and zero_grad clears it
            raise TypeError("Parameter.grad cannot be None: use zero_grad() to clear the gradient")
        if not isinstance(value, np.ndarray):
            raise TypeError(f"Parameter.{what} must be a numpy array, got {type(value).__name__}")
        if value.shape != self._shape:
            raise ValueError(f"Parameter.{what} must have shape {self._shape}, got {value.shape}")
        if value.dtype != self._dtype:
            raise TypeError(f"Parameter.{what} must have dtype {self._dtype}, got {value.dtype}")
        if not value.flags.c_contiguous:
            raise ValueError(f"Parameter.{what} must be C-contiguous (use np.ascontiguousarray)")
        if not value.flags.writeable:
            raise ValueError(f"Parameter.{what} must be writeable")
        return value

    @property
    def data(self) -> np.ndarray:
        return self._data

    @data.setter
    def data(self, value: np.ndarray) -> None:
        self._data = self._checked(value, "data")

    @property
    def grad(self) -> np.ndarray:
        return self._grad

    @grad.setter
    def grad(self, value: np.ndarray) -> None:
        self._grad = self._checked(value, "grad")

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    def check(self) -> None:
        """Raise ValueError if `data` or `grad` was reshaped in place (``p.data.shape = ...``)."""
        for what, arr in (("data", self._data), ("grad", self._grad)):
            if arr.shape != self._shape or arr.dtype != self._dtype or not arr.flags.c_contiguous:
                raise ValueError(f"{self!r}: {what} was changed in place to shape {arr.shape}, dtype {arr.dtype}")

    def __repr__(self) -> str:
        return f"Parameter({self.name or '?'}, shape={self._shape}, dtype={self._dtype})"


class Optimizer:
    """What SGD and AdamW share: the parameter list, checks, and `zero_grad`."""

    def __init__(self, params: Iterable[Parameter], lr: float, weight_decay: float):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(f"optimizers take Parameter objects (from .parameters()), got {type(p).__name__}")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError("optimizer got the same Parameter more than once")
        if not lr >= 0.0:
            raise ValueError(f"invalid learning rate: {lr}")
        if not weight_decay >= 0.0:
            raise ValueError(f"invalid weight_decay: {weight_decay}")
        self.lr, self.weight_decay = float(lr), float(weight_decay)

    def _check(self) -> None:
        # a Parameter keeps its shape and dtype, so the state made at __init__ still fits; an array
        # reshaped in place (``p.data.shape = ...``) would not, so say so before NumPy broadcasts it
        for p in self.params:
            p.check()

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero (in place)."""
        for p in self.params:
            p.grad[...] = 0


class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD`` (no dampening, no Nesterov).

    ``g = grad + weight_decay * w``; with momentum, ``buf = momentum * buf + g`` (``buf = g`` at the
    first step); ``w -= lr * buf``.

    >>> p = Parameter(np.array([1.0]))
    >>> opt = SGD([p], lr=0.5, momentum=0.9)
    >>> for _ in range(2):
    ...     p.grad[:] = 1.0; opt.step()
    >>> p.data                      # 1 - 0.5 * 1 - 0.5 * (0.9 + 1)
    array([-0.45])
    """

    def __init__(self, params: Iterable[Parameter], lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        if not momentum >= 0.0:
            raise ValueError(f"invalid momentum: {momentum}")
        self.momentum = float(momentum)
        self.buffers: list[np.ndarray | None] = [None] * len(self.params)

    def step(self) -> None:
        self._check()
        for k, p in enumerate(self.params):
            g = p.grad if self.weight_decay == 0 else p.grad + self.weight_decay * p.data
            if self.momentum:
                buf = self.buffers[k]
                if buf is None:
                    buf = self.buffers[k] = np.array(g, copy=True)
                else:
                    buf *= self.momentum
                    buf += g
                g = buf
            p.data -= (self.lr * g).astype(p.data.dtype, copy=False)


class AdamW(Optimizer):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW`` (no amsgrad).

    At step t: ``w *= 1 - lr * weight_decay``; ``m += (1 - beta1) * (g - m)``;
    ``v = beta2 * v + (1 - beta2) * g**2``; ``w -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``.
    The operations and their order follow torch's single-tensor implementation, so float32 results
    agree with torch's to rounding.

    >>> p = Parameter(np.array([1.0]))
    >>> opt = AdamW([p], lr=0.1, weight_decay=0.0)
    >>> p.grad[:] = 123.0; opt.step()
    >>> p.data                      # the first step moves by lr, whatever the gradient's size
    array([0.9])
    """

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, lr, weight_decay)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"invalid betas: {betas}")
        if not eps >= 0.0:
            raise ValueError(f"invalid eps: {eps}")
        self.betas, self.eps = (float(b1), float(b2)), float(eps)
        self.t = 0
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        self._check()
        self.t += 1
        b1, b2 = self.betas
        bias1, bias2_sqrt = 1 - b1**self.t, (1 - b2**self.t) ** 0.5
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            g = p.grad
            p.data *= 1 - self.lr * self.weight_decay
            m += (1 - b1) * (g - m)  # torch's lerp(m, g, 1 - beta1)
            v *= b2
            v += (1 - b2) * g * g
            denom = np.sqrt(v) / bias2_sqrt + self.eps
            p.data -= (self.lr / bias1) * m / denom
