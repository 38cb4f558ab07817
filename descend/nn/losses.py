"""Losses that return ``(loss, dL/dinput)``, plus torch-style classes with ``forward`` / ``backward``.

``loss`` is a Python float for ``reduction='mean'`` (default) or ``'sum'`` and a
per-sample array for ``'none'`` (its gradient is then that of the sum). The
gradient has the input's dtype, so a float32 model stays float32.

* :func:`cross_entropy` (logits ``(N, C)``, integer targets ``(N,)`` or
  probabilities ``(N, C)``): ``ℓᵢ = −log softmax(zᵢ)[yᵢ]`` via log-sum-exp,
  ``log softmax(z) = z − m − log Σ e^{z − m}`` with ``m = max z``: every ``exp``
  has a non-positive argument, so logits of ±1e4 are fine. ``dz = softmax(z) − onehot(y)``.
* :func:`binary_cross_entropy_with_logits`: ``ℓ = max(x, 0) − x·t + log(1 + e^{−|x|})``;
  ``dx = σ(x) − t``.
* :func:`mse_loss`: ``ℓ = (p − t)²``; ``dp = 2(p − t)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from descend._validation import UNIT_CLOSED, OneOf, check
from descend.errors import ParameterError
from descend.nn.activations import sigmoid
from descend.nn.module import ShapeError, fmt_shape

REDUCTIONS = OneOf("mean", "sum", "none")


def _float_array(x: Any) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float64)


def _reduce(per_sample: np.ndarray, grad: np.ndarray, reduction: str, count: int) -> tuple[Any, np.ndarray]:
    if reduction == "mean":
        grad /= count
        return float(np.sum(per_sample, dtype=np.float64)) / count, grad
    if reduction == "sum":
        return float(np.sum(per_sample, dtype=np.float64)), grad
    return per_sample, grad


def cross_entropy(
    logits: np.ndarray, target: np.ndarray, reduction: str = "mean", label_smoothing: float = 0.0
) -> tuple[Any, np.ndarray]:
    """Softmax cross-entropy from logits, as ``torch.nn.functional.cross_entropy``; returns ``(loss, dlogits)``.

    ``target``: class indices ``(N,)`` (integers in ``[0, C)``) or class probabilities ``(N, C)``.
    ``label_smoothing`` ε mixes the target with the uniform distribution: ``q = (1 − ε)·t + ε/C``.
    """
    check("cross_entropy", "reduction", reduction, REDUCTIONS)
    check("cross_entropy", "label_smoothing", label_smoothing, UNIT_CLOSED)
    z = _float_array(logits)
    if z.ndim != 2:
        raise ShapeError(f"cross_entropy: expected logits of shape (N, C), got {fmt_shape(z.shape)}")
    n, c = z.shape
    t = np.asarray(target)
    eps = float(label_smoothing)

    shifted = z - np.max(z, axis=1, keepdims=True)  # ≤ 0: exp never overflows
    e = np.exp(shifted)
    s = np.sum(e, axis=1, keepdims=True)
    logp = shifted - np.log(s)
    p = e / s  # softmax
    if t.dtype.kind in "iu":
        if t.shape != (n,):
            raise ShapeError(f"cross_entropy: expected integer targets of shape ({n},), got {fmt_shape(t.shape)}")
        if n and (t.min() < 0 or t.max() >= c):
            raise ParameterError(f"cross_entropy: target classes must be in [0, {c}), got min {t.min()} max {t.max()}")
        rows = np.arange(n)
        per_sample = -logp[rows, t]
        grad = p
        grad[rows, t] -= 1 - eps
        if eps:
            per_sample = (1 - eps) * per_sample - (eps / c) * np.sum(logp, axis=1)
            grad -= eps / c
    elif t.dtype.kind == "f":
        if t.shape != z.shape:
            raise ShapeError(
                f"cross_entropy: expected probability targets of shape {fmt_shape(z.shape)}, got {fmt_shape(t.shape)}"
            )
        q = t.astype(z.dtype, copy=False)
        if eps:
            q = (1 - eps) * q + eps / c
        per_sample = -np.sum(q * logp, axis=1)
        grad = p * np.sum(q, axis=1, keepdims=True) - q
    else:
        raise ParameterError(
            f"cross_entropy: target must be integer class indices or float probabilities, got {t.dtype}"
        )
    return _reduce(per_sample, grad, reduction, n)


def binary_cross_entropy_with_logits(
    logits: np.ndarray, target: np.ndarray, reduction: str = "mean"
) -> tuple[Any, np.ndarray]:
    """``torch.nn.functional.binary_cross_entropy_with_logits``; returns ``(loss, dlogits)``; stable for any logits."""
    check("binary_cross_entropy_with_logits", "reduction", reduction, REDUCTIONS)
    x = _float_array(logits)
    t = np.asarray(target)
    if t.shape != x.shape:
        raise ShapeError(
            f"binary_cross_entropy_with_logits: target shape {fmt_shape(t.shape)} must equal the logits shape "
            f"{fmt_shape(x.shape)}"
        )
    t = t.astype(x.dtype, copy=False)
    per = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    grad = sigmoid(x) - t
    return _reduce(per, grad, reduction, max(x.size, 1))


def mse_loss(pred: np.ndarray, target: np.ndarray, reduction: str = "mean") -> tuple[Any, np.ndarray]:
    """Mean squared error, as ``torch.nn.functional.mse_loss``; returns ``(loss, dpred)``."""
    check("mse_loss", "reduction", reduction, REDUCTIONS)
    p = _float_array(pred)
    t = np.asarray(target)
    if t.shape != p.shape:
        raise ShapeError(f"mse_loss: target shape {fmt_shape(t.shape)} must equal the input shape {fmt_shape(p.shape)}")
    d = p - t.astype(p.dtype, copy=False)
    return _reduce(d * d, 2 * d, reduction, max(p.size, 1))


def accuracy(logits: np.ndarray, target: np.ndarray) -> float:
    """Fraction of correct predictions: ``argmax`` of ``(N, C)`` logits, or ``logit > 0`` for ``(N,)`` / ``(N, 1)``."""
    z = np.asarray(logits)
    t = np.asarray(target)
    if z.ndim == 2 and z.shape[1] > 1:
        pred = np.argmax(z, axis=1)
    else:
        pred = (z.reshape(len(z)) > 0).astype(np.int64)
    t = t.reshape(len(t))
    if pred.shape != t.shape:
        raise ShapeError(f"accuracy: {len(pred)} predictions but {len(t)} targets")
    return float(np.mean(pred == t)) if len(t) else 0.0


class _Loss:
    """A loss as a layer-like object: ``loss = crit(y, t)`` then ``dy = crit.backward()``."""

    def __init__(self, reduction: str = "mean") -> None:
        check(type(self).__name__, "reduction", reduction, REDUCTIONS)
        self.reduction = reduction
        self._grad: np.ndarray | None = None

    def _fn(self, x: np.ndarray, target: np.ndarray) -> tuple[Any, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: np.ndarray, target: np.ndarray) -> Any:
        loss, self._grad = self._fn(x, target)
        return loss

    __call__ = forward

    def backward(self) -> np.ndarray:
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}: backward called before forward")
        return self._grad


class CrossEntropyLoss(_Loss):
    """:func:`cross_entropy` as an object (``torch.nn.CrossEntropyLoss``)."""

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(reduction)
        self.label_smoothing = float(check("CrossEntropyLoss", "label_smoothing", label_smoothing, UNIT_CLOSED))

    def _fn(self, x: np.ndarray, target: np.ndarray) -> tuple[Any, np.ndarray]:
        return cross_entropy(x, target, self.reduction, self.label_smoothing)


class BCEWithLogitsLoss(_Loss):
    """:func:`binary_cross_entropy_with_logits` as an object (``torch.nn.BCEWithLogitsLoss``)."""

    def _fn(self, x: np.ndarray, target: np.ndarray) -> tuple[Any, np.ndarray]:
        return binary_cross_entropy_with_logits(x, target, self.reduction)


class MSELoss(_Loss):
    """:func:`mse_loss` as an object (``torch.nn.MSELoss``)."""

    def _fn(self, x: np.ndarray, target: np.ndarray) -> tuple[Any, np.ndarray]:
        return mse_loss(x, target, self.reduction)


LOSSES = {
    "cross_entropy": cross_entropy,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits,
    "bce_with_logits": binary_cross_entropy_with_logits,
    "mse": mse_loss,
    "mse_loss": mse_loss,
}


def get_loss(name: str) -> Any:
    """A loss function by name (``'cross_entropy'``, ``'bce_with_logits'``, ``'mse'``...)."""
    if callable(name):
        return name
    if name not in LOSSES:
        raise ParameterError(f"loss: unknown loss {name!r}; valid names are {', '.join(sorted(LOSSES))}")
    return LOSSES[name]
