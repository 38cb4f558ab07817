"""Linear, Flatten and Dropout layers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from descend._validation import Interval, check
from descend.errors import ParameterError
from descend.nn import _blas
from descend.nn.module import Module, ShapeError, fmt_shape

POSITIVE_INT = Interval(1, None, integer=True)


def positive_int(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ParameterError(f"{owner}: {name} must be an integer in [1, inf), got {value!r}")
    return int(check(owner, name, value, POSITIVE_INT))


class Linear(Module):
    """``y = x Wᵀ + b`` with ``W`` of shape ``(out_features, in_features)`` (torch's layout).

    Backward: ``dW = doutᵀ x``, ``db = Σₙ dout``, ``dx = dout W``. Inputs of shape
    ``(*, in_features)`` are accepted. ``init`` / ``bias_init``: an initializer
    name, a callable or ``(name, options)`` (see :mod:`descend.init`), drawn at
    construction from ``rng``; ``init=None`` is torch's default
    ``kaiming_uniform(a=√5)`` and ``bias_init=None`` means zeros (see
    :mod:`descend.nn.module`; the presets choose He / Xavier explicitly).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: Any = None,
        bias_init: Any = None,
        rng: Any = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__(dtype)
        self.in_features = positive_int("Linear", "in_features", in_features)
        self.out_features = positive_int("Linear", "out_features", out_features)
        self.use_bias = bool(bias)
        self._add_param("weight", (self.out_features, self.in_features), init)
        if self.use_bias:
            self._add_param("bias", (self.out_features,), bias_init)
        self._build(rng)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}" + ("" if self.use_bias else ", bias=False")

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ShapeError(
                f"{self.label()}: expected input of shape (*, {self.in_features}), got {fmt_shape(x.shape)}"
            )
        x2 = x.reshape(-1, self.in_features)
        ranges = _blas.ranges(len(x2), x2.nbytes)
        if ranges is None:
            y = x2 @ self.weight.T  # y = x Wᵀ (+ b); BLAS reads the transposed view without a copy
            if self.use_bias:
                y += self.bias
        else:  # large batch, OpenBLAS on several threads: one batch slice per thread (see descend.nn._blas)
            y = np.empty((len(x2), self.out_features), self.dtype)

            def part(lo: int, hi: int) -> None:
                np.matmul(x2[lo:hi], self.weight.T, out=y[lo:hi])
                if self.use_bias:
                    y[lo:hi] += self.bias

            _blas.run(part, ranges)
        self._cache = (x2, x.shape)
        return y.reshape(*x.shape[:-1], self.out_features)

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError(f"{self.label()}: backward called before forward")
        x2, in_shape = self._cache
        dout = np.asarray(dout, dtype=self.dtype)
        if dout.shape != (*in_shape[:-1], self.out_features):
            raise ShapeError(
                f"{self.label()}: backward expected dout of shape {fmt_shape((*in_shape[:-1], self.out_features))}, "
                f"got {fmt_shape(dout.shape)}"
            )
        d2 = dout.reshape(-1, self.out_features)
        ranges = _blas.ranges(len(x2), x2.nbytes)
        if ranges is not None:  # one batch slice per thread; partial dW / db summed in slice order
            dx = np.empty(x2.shape, self.dtype) if input_grad else None

            def part(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray | None]:
                if dx is not None:
                    np.matmul(d2[lo:hi], self.weight, out=dx[lo:hi])
                return d2[lo:hi].T @ x2[lo:hi], (d2[lo:hi].sum(axis=0) if self.use_bias else None)

            results = _blas.run(part, ranges)
            self.dweight[...] = results[0][0]
            for dw, _ in results[1:]:
                self.dweight += dw
            if self.use_bias:
                self.dbias[...] = results[0][1]
                for _, db in results[1:]:
                    self.dbias += db
            return None if dx is None else dx.reshape(in_shape)
        np.matmul(d2.T, x2, out=self.dweight)  # dL/dW = doutᵀ x, written into the flat grad buffer
        if self.use_bias:
            np.sum(d2, axis=0, out=self.dbias)  # dL/db = Σₙ dout
        if not input_grad:
            return None
        return (d2 @ self.weight).reshape(in_shape)  # dL/dx = dout W


class Flatten(Module):
    """Merge dims ``start_dim..end_dim`` (default: all but the batch dim), as ``torch.nn.Flatten``."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        for name, v in (("start_dim", start_dim), ("end_dim", end_dim)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise ParameterError(f"Flatten: {name} must be an int, got {v!r}")
        self.start_dim, self.end_dim = start_dim, end_dim

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        nd = max(x.ndim, 1)
        s = self.start_dim + nd if self.start_dim < 0 else self.start_dim
        e = self.end_dim + nd if self.end_dim < 0 else self.end_dim
        if not (0 <= s < nd and 0 <= e < nd and s <= e):
            raise ShapeError(
                f"{self.label()}: cannot flatten dims {self.start_dim}..{self.end_dim} of an input of shape "
                f"{fmt_shape(x.shape)}"
            )
        self._cache = x.shape
        return x.reshape(*x.shape[:s], math.prod(x.shape[s : e + 1]), *x.shape[e + 1 :])

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError(f"{self.label()}: backward called before forward")
        return np.reshape(dout, self._cache) if input_grad else None


class Reshape(Module):
    """Reshape every sample to ``shape`` (the batch dim is kept): ``(N, 784) → (N, 1, 28, 28)``."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        if not shape or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in shape):
            raise ParameterError(f"Reshape: shape must be positive ints, got {shape!r}")
        self.shape = tuple(shape)

    def extra_repr(self) -> str:
        return ", ".join(map(str, self.shape))

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim < 1 or math.prod(x.shape[1:]) != math.prod(self.shape):
            raise ShapeError(
                f"{self.label()}: cannot reshape an input of shape {fmt_shape(x.shape)} to (N, {self.extra_repr()})"
            )
        self._cache = x.shape
        return x.reshape(x.shape[0], *self.shape)

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError(f"{self.label()}: backward called before forward")
        return np.reshape(dout, self._cache) if input_grad else None


class Dropout(Module):
    """Inverted dropout: in training ``y = x · m / (1 − p)`` with ``m ~ Bernoulli(1 − p)``; identity in eval.

    Backward: ``dx = dout · m / (1 − p)`` with the same mask. ``rng``: a
    ``np.random.Generator`` or int seed; without one, the enclosing container
    hands this layer a child generator spawned from its own stream.
    """

    def __init__(self, p: float = 0.5, rng: Any = None) -> None:
        super().__init__()
        check("Dropout", "p", p, Interval(0, 1))
        self.p = float(p)
        from descend.init import as_generator

        self._rng_given = rng is not None
        self.rng = as_generator("Dropout", 0 if rng is None else rng)

    def _seed_generators(self, rng: np.random.Generator) -> None:
        if not self._rng_given:
            self.rng = rng.spawn(1)[0]

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if not self.training or self.p == 0.0:
            self._cache = ("identity", x.shape)
            return x
        if self.p == 1.0:
            self._cache = ("zero", x.shape)
            return np.zeros_like(x)
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
        # mask = keep / (1 − p), built in x's dtype (a bool · Python float would be float64)
        mask = (self.rng.random(x.shape, dtype=np.float32 if dtype == np.float32 else np.float64) >= self.p).astype(
            dtype
        )
        mask *= 1.0 / (1.0 - self.p)
        self._cache = ("mask", mask)
        return x * mask

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError(f"{self.label()}: backward called before forward")
        if not input_grad:
            return None
        kind, aux = self._cache
        if kind == "identity":
            return dout
        if kind == "zero":
            return np.zeros_like(dout)
        return dout * aux
