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
    """Weights (`data`) and their accumulated gradient (`grad`, same shape and dtype)."""

    def __init__(self, data: np.ndarray, name: str = ""):
        self.data = data
        self.grad = np.zeros_like(data)
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"Parameter({self.name or '?'}, shape={self.data.shape}, dtype={self.data.dtype})"


class Optimizer:
    """What SGD and AdamW share: the parameter list, checks, and `zero_grad`."""

    def __init__(self, params: Iterable[Parameter], lr: float, weight_decay: float):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(f"optimizers take Parameter objects (from .parameters()), got {type(p).__name__}")
        if not lr >= 0.0:
            raise ValueError(f"invalid learning rate: {lr}")
        if not weight_decay >= 0.0:
            raise ValueError(f"invalid weight_decay: {weight_decay}")
        self.lr, self.weight_decay = float(lr), float(weight_decay)

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
        for k, p in enumerate(self.params):
            g = p.grad if self.weight_decay == 0 else p.grad + self.weight_decay * p.data
            if self.momentum:
                if self.buffers[k] is None:
                    self.buffers[k] = np.array(g, copy=True)
                else:
                    self.buffers[k] *= self.momentum
                    self.buffers[k] += g
                g = self.buffers[k]
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
