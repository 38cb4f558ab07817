"""Activations: ``y = f(x)`` and ``dx = dout · f'(x)``, each next to the other.

All are computed in the input's dtype (Python-float constants never upcast a
float32 array). GELU's exact form needs ``erf``, which NumPy lacks: :func:`erf`
is vectorized and chosen per dtype:

* float64: W. J. Cody's rational Chebyshev approximation (CALERF, Math. Comp.
  1969, the algorithm behind many libm ``erf``) on three ranges, accurate to
  about 1e-16 relative: gradcheck in float64 needs much better than ~1e-10
  (the Abramowitz–Stegun 7.1.26 formula, 1.5e-7, is not enough).
* float32: the single clamped rational function of Eigen / XLA, accurate to
  about 4e-7 (as torch's float32 erf), with no branches and no float64 temporaries: as fast as a
  dozen elementwise operations (``np.vectorize(math.erf)`` is a Python call per
  element; no SciPy dependency).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from descend._validation import Interval, OneOf, check
from descend.errors import ParameterError
from descend.nn import _blas, _fast
from descend.nn.module import Module, ShapeError

# ----------------------------------------------------------------------------- erf (Cody)

# erf(x) = x·A(x²)/B(x²) for |x| <= 0.46875
_A = (
    3.16112374387056560e00,
    1.13864154151050156e02,
    3.77485237685302021e02,
    3.20937758913846947e03,
    1.85777706184603153e-1,
)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03)
# erfc(y) = exp(−y²)·C(y)/D(y) for 0.46875 < y <= 4
_C = (
    5.64188496988670089e-1,
    8.88314979438837594e00,
    6.61191906371416295e01,
    2.98635138197400131e02,
    8.81952221241769090e02,
    1.71204761263407058e03,
    2.05107837782607147e03,
    1.23033935479799725e03,
    2.15311535474403846e-8,
)
_D = (
    1.57449261107098347e01,
    1.17693950891312499e02,
    5.37181101862009858e02,
    1.62138957456669019e03,
    3.29079923573345963e03,
    4.36261909014324716e03,
    3.43936767414372164e03,
    1.23033935480374942e03,
)
# erfc(y) = exp(−y²)/y·(1/√π + P(1/y²)/(y²·Q(1/y²))) for y > 4
_P = (
    3.05326634961232344e-1,
    3.60344899949804439e-1,
    1.25781726111229246e-1,
    1.60837851487422766e-2,
    6.58749161529837803e-4,
    1.63153871373020978e-2,
)
_Q = (
    2.56852019228982242e00,
    1.87295284992346047e00,
    5.27905102951428412e-1,
    6.05183413124413191e-2,
    2.33520497626869185e-3,
)
_SQRPI = 5.6418958354775628695e-1  # 1/√π


def _exp_neg_sq(y: np.ndarray) -> np.ndarray:
    """``exp(−y²)`` without the rounding error of ``y²``: split y = y16 + δ with y16 a multiple of 1/16 (Cody)."""
    y16 = np.trunc(y * 16.0) / 16.0
    return np.exp(-y16 * y16) * np.exp(-(y - y16) * (y + y16))


# float32: erf(x) ≈ x·α(x²)/β(x²) on x clamped to [−4, 4] (Eigen's / XLA's single-precision erf,
# about 4e-7 absolute, like torch's float32 erf): one rational function over the whole array,
# no branches, no float64 temporaries.
_ALPHA32 = (
    -2.72614225801306e-10,
    2.77068142495902e-08,
    -2.10102402082508e-06,
    -5.69250639462346e-05,
    -7.34990630326855e-04,
    -2.95459980854025e-03,
    -1.60960333262415e-02,
)
_BETA32 = (
    -1.45660718464996e-05,
    -2.13374055278905e-04,
    -1.68282697438203e-03,
    -7.37332916720468e-03,
    -1.42647390514189e-02,
)


def _erf32(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # NaN in, NaN out, without a warning
        return _erf32_body(x)


def _erf32_body(x: np.ndarray) -> np.ndarray:
    z = np.clip(x, -4.0, 4.0)
    z2 = z * z
    p = z2 * _ALPHA32[0]
    for c in _ALPHA32[1:-1]:
        p += c
        p *= z2
    p += _ALPHA32[-1]
    q = z2 * _BETA32[0]
    for c in _BETA32[1:-1]:
        q += c
        q *= z2
    q += _BETA32[-1]
    p *= z
    p /= q
    return np.clip(p, -1.0, 1.0, out=p)


def erf(x: Any) -> np.ndarray:
    """The error function, elementwise, in the dtype of ``x``.

    float64 (and integers): Cody's three-range approximation, ~1e-16 relative.
    float32 (and float16, computed in float32): a single clamped rational function, ~4e-7 absolute.
    """
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    if x.dtype != np.float64:
        return _erf32(x) if x.dtype == np.float32 else _erf32(x.astype(np.float32)).astype(x.dtype)
    y = np.abs(x)
    out = x.copy()  # NaN stays NaN: it is in none of the three ranges

    small = y <= 0.46875
    if small.any():
        xs = x[small]
        z = xs * xs
        num, den = _A[4] * z, z
        for i in range(3):
            num = (num + _A[i]) * z
            den = (den + _B[i]) * z
        out[small] = xs * (num + _A[3]) / (den + _B[3])

    mid = ~small & (y <= 4.0)
    if mid.any():
        ym = y[mid]
        num, den = _C[8] * ym, ym
        for i in range(7):
            num = (num + _C[i]) * ym
            den = (den + _D[i]) * ym
        erfc = _exp_neg_sq(ym) * (num + _C[7]) / (den + _D[7])
        out[mid] = np.copysign((0.5 - erfc) + 0.5, x[mid])

    big = y > 4.0
    if big.any():
        yb = np.minimum(y[big], 27.0)  # erfc(27) underflows double: erf = ±1 from here on
        z = 1.0 / (yb * yb)
        num, den = _P[5] * z, z
        for i in range(4):
            num = (num + _P[i]) * z
            den = (den + _Q[i]) * z
        r = z * (num + _P[4]) / (den + _Q[4])
        erfc = _exp_neg_sq(yb) * ((_SQRPI - r) / yb)
        out[big] = np.copysign((0.5 - erfc) + 0.5, x[big])
    return out


# ----------------------------------------------------------------------------- helpers


class _Activation(Module):
    """A parameterless elementwise layer: subclasses implement ``_f`` (forward) and ``_df`` (local backward)."""

    def __init__(self) -> None:
        super().__init__()

    def _cached(self) -> Any:
        if self._cache is None:
            raise RuntimeError(f"{self.label()}: backward called before forward")
        return self._cache

    def _check_dout(self, dout: np.ndarray, shape: tuple[int, ...]) -> None:
        if np.shape(dout) != shape:
            raise ShapeError(f"{self.label()}: backward expected dout of shape {shape}, got {np.shape(dout)}")


def _float(x: Any) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype.kind == "f" else x.astype(np.float32)


# ----------------------------------------------------------------------------- layers


class ReLU(_Activation):
    """``y = max(x, 0)``; ``dx = dout · [x > 0]``."""

    init_hint = ("kaiming_uniform", {"nonlinearity": "relu"})

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _float(x)
        ranges = _blas.ranges(x.size, x.nbytes) if x.flags.c_contiguous and x.ndim else None
        if ranges is None:
            y = np.maximum(x, 0)
        else:  # large: one slice per thread (OpenBLAS on several threads, see descend.nn._blas)
            y = np.empty_like(x)
            xf, yf = x.reshape(-1), y.reshape(-1)
            _blas.run(lambda lo, hi: np.maximum(xf[lo:hi], 0, out=yf[lo:hi]), ranges)
        self._cache = y
        return y

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        y = self._cached()
        self._check_dout(dout, y.shape)
        if not input_grad:
            return None
        d = np.asarray(dout)
        kern = _fast.kernels(y.dtype)
        if kern is not None and d.dtype == y.dtype and d.flags.c_contiguous and y.flags.c_contiguous:
            dx = np.empty_like(y)
            df, yf, dxf = d.reshape(-1), y.reshape(-1), dx.reshape(-1)
            ranges = _blas.ranges(dx.size, dx.nbytes) or [(0, dx.size)]
            _blas.run(lambda lo, hi: kern.relu_backward(df[lo:hi], yf[lo:hi], dxf[lo:hi]), ranges)  # one pass
            return dx
        return d * (y > 0)  # bool mask: no float64 temporary


class LeakyReLU(_Activation):
    """``y = x`` for ``x > 0``, ``slope · x`` otherwise; ``dx = dout · (1 or slope)``."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        check("LeakyReLU", "negative_slope", negative_slope, Interval(None, None))
        self.negative_slope = float(negative_slope)
        self.init_hint = ("kaiming_uniform", {"a": self.negative_slope, "nonlinearity": "leaky_relu"})

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _float(x)
        pos = x > 0
        self._cache = pos
        return np.where(pos, x, x * self.negative_slope)

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        pos = self._cached()
        self._check_dout(dout, pos.shape)
        if not input_grad:
            return None
        return np.where(pos, dout, dout * self.negative_slope)


class Sigmoid(_Activation):
    """``y = 1 / (1 + e^{−x})`` (computed without overflow); ``dx = dout · y(1 − y)``."""

    init_hint = ("xavier_uniform", {"gain": 1.0})

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = sigmoid(_float(x))
        self._cache = y
        return y

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        y = self._cached()
        self._check_dout(dout, y.shape)
        if not input_grad:
            return None
        return dout * (y * (1 - y))


class Tanh(_Activation):
    """``y = tanh(x)``; ``dx = dout · (1 − y²)``."""

    init_hint = ("xavier_uniform", {"gain": 5.0 / 3})

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.tanh(_float(x))
        self._cache = y
        return y

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        y = self._cached()
        self._check_dout(dout, y.shape)
        if not input_grad:
            return None
        return dout * (1 - y * y)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class GELU(_Activation):
    """Gaussian error linear unit, as ``torch.nn.GELU(approximate=...)``.

    ``'none'``: ``y = x·Φ(x)``, ``Φ(x) = ½(1 + erf(x/√2))``; ``dy/dx = Φ(x) + x·φ(x)``, ``φ(x) = e^{−x²/2}/√(2π)``.

    ``'tanh'``: ``y = ½x(1 + tanh u)``, ``u = √(2/π)(x + 0.044715x³)``;
    ``dy/dx = ½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²)``.
    """

    init_hint = ("kaiming_uniform", {"nonlinearity": "relu"})

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        check("GELU", "approximate", approximate, OneOf("none", "tanh"))
        self.approximate = approximate

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _float(x)
        if self.approximate == "tanh":
            t = np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * (x * x * x)))
            self._cache = (x, t)
            return 0.5 * x * (1 + t)
        cdf = erf(x * _INV_SQRT_2)
        cdf += 1
        cdf *= 0.5  # Φ(x) = ½(1 + erf(x/√2))
        self._cache = (x, cdf)
        return x * cdf

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        x, aux = self._cached()
        self._check_dout(dout, x.shape)
        if not input_grad:
            return None
        if self.approximate == "tanh":
            t = aux
            du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * (x * x))
            return dout * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
        pdf = _INV_SQRT_2PI * np.exp(-0.5 * (x * x))
        return dout * (aux + x * pdf)


class Softmax(_Activation):
    """``y = e^{x − max} / Σ e^{x − max}`` along ``dim``; ``dx = y ⊙ (dout − Σ dout ⊙ y)``.

    For classification train on logits with :func:`descend.nn.cross_entropy` instead (fused and stable).
    """

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        if not isinstance(dim, int) or isinstance(dim, bool):
            raise ParameterError(f"Softmax: dim must be an int, got {dim!r}")
        self.dim = dim

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _float(x)
        if not -x.ndim <= self.dim < max(x.ndim, 1):
            raise ShapeError(f"{self.label()}: dim {self.dim} is out of range for an input of shape {x.shape}")
        y = softmax(x, axis=self.dim)
        self._cache = y
        return y

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        y = self._cached()
        self._check_dout(dout, y.shape)
        if not input_grad:
            return None
        return y * (dout - np.sum(dout * y, axis=self.dim, keepdims=True))


class Identity(_Activation):
    """``y = x``; ``dx = dout``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._cache = np.shape(x)
        return x

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        self._check_dout(dout, self._cached())
        return dout if input_grad else None


# ----------------------------------------------------------------------------- functional


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Stable logistic function: never evaluates ``exp`` of a positive number."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - np.max(x, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


ACTIVATIONS = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "gelu": GELU,
    "gelu_tanh": lambda: GELU(approximate="tanh"),
    "identity": Identity,
}


def activation(name: str | Module, **opts: Any) -> Module:
    """A fresh activation layer by name (``'relu'``, ``'leaky_relu'``, ``'tanh'``, ``'sigmoid'``, ``'gelu'``,
    ``'gelu_tanh'``, ``'identity'``), or ``name`` itself if it is already a layer."""
    if isinstance(name, Module):
        return name
    if name not in ACTIVATIONS:
        raise ParameterError(
            f"activation: unknown activation {name!r}; valid names are {', '.join(sorted(ACTIVATIONS))}"
        )
    return ACTIVATIONS[name](**opts)


__all__ = [
    "ACTIVATIONS",
    "GELU",
    "Identity",
    "LeakyReLU",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "activation",
    "erf",
    "log_softmax",
    "sigmoid",
    "softmax",
]
