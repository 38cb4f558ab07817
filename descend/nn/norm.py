"""BatchNorm1d/2d and LayerNorm, matching torch's statistics conventions.

BatchNorm (Ioffe & Szegedy 2015), per channel ``c`` over the ``m = N·(spatial)`` values:

    μ = mean(x),  σ² = mean((x − μ)²)  (biased, used to normalize)
    x̂ = (x − μ) / √(σ² + ε),  y = γ·x̂ + β
    running_mean ← (1 − momentum)·running_mean + momentum·μ
    running_var  ← (1 − momentum)·running_var  + momentum·σ²·m/(m − 1)   (unbiased, as torch)

``momentum=None`` uses the cumulative average ``1 / num_batches_tracked`` (torch).
In eval mode (with tracked stats) the running estimates replace μ, σ².

Backward in training (the batch statistics depend on x):

    dx̂ = dout·γ,  dx = (1/√(σ² + ε)) · (dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)),
    dγ = Σ dout·x̂,  dβ = Σ dout.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from descend._validation import POSITIVE, UNIT_CLOSED, check
from descend.errors import ParameterError
from descend.nn.linear import positive_int
from descend.nn.module import NormLayer, ShapeError, fmt_shape


class _BatchNorm(NormLayer):
    spatial_dims: tuple[int, ...] = ()
    shape_text = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: Any = np.float32,
    ) -> None:
        owner = type(self).__name__
        super().__init__(dtype)
        self.num_features = positive_int(owner, "num_features", num_features)
        self.eps = float(check(owner, "eps", eps, POSITIVE))
        if momentum is not None:
            momentum = float(check(owner, "momentum", momentum, UNIT_CLOSED))
        self.momentum = momentum
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        if self.affine:
            self._add_param("weight", (self.num_features,), "ones")
            self._add_param("bias", (self.num_features,), "zeros")
        if self.track_running_stats:
            self._add_buffer("running_mean", np.zeros(self.num_features, self.dtype))
            self._add_buffer("running_var", np.ones(self.num_features, self.dtype))
            self._add_buffer("num_batches_tracked", np.zeros((), np.int64))
        self._build(None)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"

    def _axes(self, x: np.ndarray) -> tuple[int, ...]:
        allowed = self.spatial_dims
        if x.ndim not in allowed or x.shape[1] != self.num_features:
            raise ShapeError(
                f"{self.label()}: expected input of shape {self.shape_text.replace('C', str(self.num_features))}, "
                f"got {fmt_shape(x.shape)}"
            )
        return (0, *range(2, x.ndim))

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        axes = self._axes(x)
        bshape = (1, self.num_features) + (1,) * (x.ndim - 2)
        m = x.size // self.num_features
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            if m <= 1:
                raise ShapeError(
                    f"{self.label()}: expected more than 1 value per channel when training, got input of shape "
                    f"{fmt_shape(x.shape)}"
                )
            mean = x.mean(axis=axes, keepdims=True)
            xc = x - mean
            var = np.mean(xc * xc, axis=axes, keepdims=True)  # biased: normalizes the batch
            if self.training and self.track_running_stats:
                self.num_batches_tracked += 1
                f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean *= 1 - f
                self.running_mean += f * mean.reshape(-1)
                self.running_var *= 1 - f
                self.running_var += (f * m / (m - 1)) * var.reshape(-1)  # unbiased, as torch
        else:
            xc = x - self.running_mean.reshape(bshape)
            var = self.running_var.reshape(bshape)
        inv = 1.0 / np.sqrt(var + self.eps)
        xhat = xc * inv
        self._cache = (xhat, inv, use_batch, axes, bshape)
        if not self.affine:
            return xhat
        return xhat * self.weight.reshape(bshape) + self.bias.reshape(bshape)

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError(f"{self.label()}: backward called before forward")
        xhat, inv, use_batch, axes, bshape = self._cache
        dout = np.asarray(dout, dtype=self.dtype)
        if dout.shape != xhat.shape:
            raise ShapeError(f"{self.label()}: backward expected dout of shape {xhat.shape}, got {dout.shape}")
        if self.affine:
            np.sum(dout * xhat, axis=axes, out=self.dweight)  # dγ = Σ dout·x̂
            np.sum(dout, axis=axes, out=self.dbias)  # dβ = Σ dout
            dxhat = dout * self.weight.reshape(bshape)
        else:
            dxhat = dout
        if not input_grad:
            return None
        if not use_batch:  # eval: μ, σ² are constants
            return dxhat * inv
        mean_d = dxhat.mean(axis=axes, keepdims=True)
        mean_dx = np.mean(dxhat * xhat, axis=axes, keepdims=True)
        return inv * (dxhat - mean_d - xhat * mean_dx)


class BatchNorm1d(_BatchNorm):
    """Batch norm over ``(N, C)`` or ``(N, C, L)`` (statistics per channel), like ``torch.nn.BatchNorm1d``."""

    spatial_dims = (2, 3)
    shape_text = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm over ``(N, C, H, W)`` (statistics per channel), like ``torch.nn.BatchNorm2d``."""

    spatial_dims = (4,)
    shape_text = "(N, C, H, W)"


class LayerNorm(NormLayer):
    """Normalize over the last ``len(normalized_shape)`` dims, like ``torch.nn.LayerNorm``.

    ``y = γ·x̂ + β`` with ``x̂ = (x − μ)/√(σ² + ε)`` per sample (biased σ²); backward
    ``dx = (1/√(σ² + ε))·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))`` over the normalized dims.
    """

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__(dtype)
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if not shape or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in shape):
            raise ParameterError(
                "LayerNorm: normalized_shape must be a positive int or tuple of positive ints, "
                f"got {normalized_shape!r}"
            )
        self.normalized_shape = shape
        self.eps = float(check("LayerNorm", "eps", eps, POSITIVE))
        self.elementwise_affine = bool(elementwise_affine)
        self.use_bias = bool(bias) and self.elementwise_affine
        if self.elementwise_affine:
            self._add_param("weight", shape, "ones")
            if self.use_bias:
                self._add_param("bias", shape, "zeros")
        self._build(None)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        k = len(self.normalized_shape)
        if x.ndim < k or x.shape[x.ndim - k :] != self.normalized_shape:
            raise ShapeError(
                f"{self.label()}: expected input of shape (*, {', '.join(map(str, self.normalized_shape))}), "
                f"got {fmt_shape(x.shape)}"
            )
        axes = tuple(range(x.ndim - k, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        xc = x - mean
        inv = 1.0 / np.sqrt(np.mean(xc * xc, axis=axes, keepdims=True) + self.eps)
        xhat = xc * inv
        self._cache = (xhat, inv, axes)
        if not self.elementwise_affine:
            return xhat
        y = xhat * self.weight
        return y + self.bias if self.use_bias else y

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError(f"{self.label()}: backward called before forward")
        xhat, inv, axes = self._cache
        dout = np.asarray(dout, dtype=self.dtype)
        if dout.shape != xhat.shape:
            raise ShapeError(f"{self.label()}: backward expected dout of shape {xhat.shape}, got {dout.shape}")
        lead = tuple(range(xhat.ndim - len(axes)))
        if self.elementwise_affine:
            np.sum(dout * xhat, axis=lead, out=self.dweight)  # dγ = Σ_batch dout·x̂
            if self.use_bias:
                np.sum(dout, axis=lead, out=self.dbias)  # dβ = Σ_batch dout
            dxhat = dout * self.weight
        else:
            dxhat = dout
        if not input_grad:
            return None
        mean_d = dxhat.mean(axis=axes, keepdims=True)
        mean_dx = np.mean(dxhat * xhat, axis=axes, keepdims=True)
        return inv * (dxhat - mean_d - xhat * mean_dx)


__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]
