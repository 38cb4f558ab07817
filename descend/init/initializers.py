"""Weight initializers (seed 002: Xavier for sigmoid/tanh, He for ReLU).

Every initializer has the signature ``fn(shape, rng, dtype=np.float32, **opts)``
and returns a fresh array of ``shape`` and ``dtype`` drawn from the seeded
``np.random.Generator`` ``rng`` (an ``int`` seed is accepted and turned into
``np.random.default_rng(seed)``; the global NumPy random state is never used).
Samples are drawn in float64 and cast once, so the same generator gives the
same values (up to rounding) in float32 and float64.

Fans follow ``torch.nn.init._calculate_fan_in_and_fan_out`` exactly: for a
weight of shape ``(out, in, *kernel)``::

    fan_in  = in  · prod(kernel)
    fan_out = out · prod(kernel)

and gains follow ``torch.nn.init.calculate_gain``. The formulas, with
``fan = fan_in`` or ``fan_out`` (``mode``):

===================  ============================================================
xavier_uniform       U(−a, a),  a = gain · √(6 / (fan_in + fan_out))  (Glorot & Bengio 2010)
xavier_normal        N(0, σ²),  σ = gain · √(2 / (fan_in + fan_out))
kaiming_uniform      U(−b, b),  b = gain(nonlinearity, a) · √(3 / fan)  (He et al. 2015)
kaiming_normal       N(0, σ²),  σ = gain(nonlinearity, a) / √fan
lecun_uniform        U(−b, b),  b = √(3 / fan_in)   (= kaiming_uniform, nonlinearity='linear')
lecun_normal         N(0, σ²),  σ = 1 / √fan_in     (plain normal; JAX truncates, we do not)
orthogonal           gain · Q,  Q from the QR of a Gaussian matrix (Saxe et al. 2013)
torch_default        kaiming_uniform(a=√5): U(−1/√fan_in, 1/√fan_in), torch's Linear/Conv default
===================  ============================================================
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from descend.errors import ParameterError

Initializer = Callable[..., np.ndarray]

_LINEAR_FNS = (
    "linear",
    "identity",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)
NONLINEARITIES = (*_LINEAR_FNS, "sigmoid", "tanh", "relu", "leaky_relu", "selu")
MODES = ("fan_in", "fan_out")


# ----------------------------------------------------------------------------- helpers


def _shape(owner: str, shape: Any) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ParameterError(f"{owner}: shape must be a tuple of non-negative ints, got {shape!r}") from None
    for d in dims:
        if not isinstance(d, numbers.Integral) or isinstance(d, bool) or d < 0:
            raise ParameterError(f"{owner}: shape must be a tuple of non-negative ints, got {shape!r}")
    return tuple(int(d) for d in dims)


def _dtype(owner: str, dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ParameterError(f"{owner}: dtype must be a floating dtype, got {dtype!r}") from None
    if dt.kind != "f":
        raise ParameterError(f"{owner}: dtype must be a floating dtype, got {dt}")
    return dt


def as_generator(owner: str, rng: Any) -> np.random.Generator:
    """``rng`` as a ``np.random.Generator``: a Generator is used as is, an int seeds a new one."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise ParameterError(
        f"{owner}: rng must be a np.random.Generator or a non-negative int seed, got {rng!r} "
        "(descend never uses the global NumPy random state)"
    )


def _real(owner: str, name: str, value: Any, low: float | None = None) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or math.isnan(float(value)):
        raise ParameterError(f"{owner}: {name} must be a real number, got {value!r}")
    if low is not None and float(value) < low:
        raise ParameterError(f"{owner}: {name} must be in [{low:g}, inf), got {value!r}")
    return float(value)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for ``nonlinearity``, exactly as ``torch.nn.init.calculate_gain``.

    linear / conv* / identity / sigmoid: 1; tanh: 5/3; relu: √2;
    leaky_relu: √(2 / (1 + slope²)) with ``slope = param`` (default 0.01); selu: 3/4.
    """
    if nonlinearity in _LINEAR_FNS or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ParameterError(f"calculate_gain: negative_slope must be a real number, got {param!r}")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ParameterError(
        f"calculate_gain: nonlinearity must be one of {', '.join(repr(n) for n in NONLINEARITIES)}, "
        f"got {nonlinearity!r}"
    )


def calculate_fan_in_and_fan_out(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape = (out, in, *kernel)``, as torch computes them."""
    dims = _shape("calculate_fan_in_and_fan_out", shape)
    if len(dims) < 2:
        raise ParameterError(
            f"calculate_fan_in_and_fan_out: fan in and fan out can not be computed for a shape with fewer "
            f"than 2 dimensions, got {dims} (use zeros/constant/uniform/normal for biases)"
        )
    receptive = math.prod(dims[2:])
    return dims[1] * receptive, dims[0] * receptive


def _fan(owner: str, shape: tuple[int, ...], mode: str) -> int:
    if mode not in MODES:
        raise ParameterError(f"{owner}: mode must be one of 'fan_in', 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    return fan_in if mode == "fan_in" else fan_out


def _uniform(rng: np.random.Generator, bound: float, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return rng.uniform(-bound, bound, size=shape).astype(dtype, copy=False)


def _normal(rng: np.random.Generator, std: float, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return (rng.standard_normal(size=shape) * std).astype(dtype, copy=False)


def _prologue(owner: str, shape: Any, rng: Any, dtype: Any) -> tuple[tuple[int, ...], np.random.Generator, np.dtype]:
    return _shape(owner, shape), as_generator(owner, rng), _dtype(owner, dtype)


# ----------------------------------------------------------------------------- initializers


def xavier_uniform(shape: Sequence[int], rng: Any, dtype: Any = np.float32, gain: float = 1.0) -> np.ndarray:
    """Glorot uniform: ``U(−a, a)`` with ``a = gain · √(6 / (fan_in + fan_out))``."""
    shape, rng, dtype = _prologue("xavier_uniform", shape, rng, dtype)
    gain = _real("xavier_uniform", "gain", gain, low=0.0)
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    if math.prod(shape) == 0:
        return np.zeros(shape, dtype)
    return _uniform(rng, gain * math.sqrt(6.0 / (fan_in + fan_out)), shape, dtype)


def xavier_normal(shape: Sequence[int], rng: Any, dtype: Any = np.float32, gain: float = 1.0) -> np.ndarray:
    """Glorot normal: ``N(0, σ²)`` with ``σ = gain · √(2 / (fan_in + fan_out))``."""
    shape, rng, dtype = _prologue("xavier_normal", shape, rng, dtype)
    gain = _real("xavier_normal", "gain", gain, low=0.0)
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    if math.prod(shape) == 0:
        return np.zeros(shape, dtype)
    return _normal(rng, gain * math.sqrt(2.0 / (fan_in + fan_out)), shape, dtype)


def _kaiming_scale(owner: str, shape: tuple[int, ...], a: float, mode: str, nonlinearity: str) -> float:
    """``gain / √fan`` (the normal σ; the uniform bound is √3 times it)."""
    _real(owner, "a", a)
    fan = _fan(owner, shape, mode)
    if nonlinearity not in NONLINEARITIES:
        raise ParameterError(
            f"{owner}: nonlinearity must be one of {', '.join(repr(n) for n in NONLINEARITIES)}, got {nonlinearity!r}"
        )
    return calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0


def kaiming_uniform(
    shape: Sequence[int],
    rng: Any,
    dtype: Any = np.float32,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
) -> np.ndarray:
    """He uniform: ``U(−b, b)``, ``b = gain · √(3 / fan)``, ``gain = calculate_gain(nonlinearity, a)``.

    torch's defaults (``a=0``, ``nonlinearity='leaky_relu'``) give the ReLU gain √2.
    """
    shape, rng, dtype = _prologue("kaiming_uniform", shape, rng, dtype)
    std = _kaiming_scale("kaiming_uniform", shape, a, mode, nonlinearity)
    if math.prod(shape) == 0:
        return np.zeros(shape, dtype)
    return _uniform(rng, math.sqrt(3.0) * std, shape, dtype)


def kaiming_normal(
    shape: Sequence[int],
    rng: Any,
    dtype: Any = np.float32,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
) -> np.ndarray:
    """He normal: ``N(0, σ²)``, ``σ = gain / √fan``, ``gain = calculate_gain(nonlinearity, a)``."""
    shape, rng, dtype = _prologue("kaiming_normal", shape, rng, dtype)
    std = _kaiming_scale("kaiming_normal", shape, a, mode, nonlinearity)
    if math.prod(shape) == 0:
        return np.zeros(shape, dtype)
    return _normal(rng, std, shape, dtype)


def lecun_uniform(shape: Sequence[int], rng: Any, dtype: Any = np.float32, mode: str = "fan_in") -> np.ndarray:
    """LeCun uniform: ``U(−b, b)`` with ``b = √(3 / fan_in)`` (variance ``1 / fan_in``)."""
    shape, rng, dtype = _prologue("lecun_uniform", shape, rng, dtype)
    fan = _fan("lecun_uniform", shape, mode)
    if math.prod(shape) == 0:
        return np.zeros(shape, dtype)
    return _uniform(rng, math.sqrt(3.0 / fan), shape, dtype)


def lecun_normal(shape: Sequence[int], rng: Any, dtype: Any = np.float32, mode: str = "fan_in") -> np.ndarray:
    """LeCun normal: ``N(0, 1 / fan_in)`` (untruncated, unlike ``jax.nn.initializers.lecun_normal``)."""
    shape, rng, dtype = _prologue("lecun_normal", shape, rng, dtype)
    fan = _fan("lecun_normal", shape, mode)
    if math.prod(shape) == 0:
        return np.zeros(shape, dtype)
    return _normal(rng, 1.0 / math.sqrt(fan), shape, dtype)


def torch_default(shape: Sequence[int], rng: Any, dtype: Any = np.float32) -> np.ndarray:
    """torch's default for ``nn.Linear`` / ``nn.ConvNd`` weights: ``kaiming_uniform(a=√5)`` = ``U(±1/√fan_in)``."""
    return kaiming_uniform(shape, rng, dtype, a=math.sqrt(5.0))


def orthogonal(shape: Sequence[int], rng: Any, dtype: Any = np.float32, gain: float = 1.0) -> np.ndarray:
    """(Semi-)orthogonal matrix times ``gain`` (Saxe et al. 2013), as ``torch.nn.init.orthogonal_``.

    The trailing dimensions are flattened to ``(rows, cols) = (shape[0], prod(shape[1:]))``;
    the result satisfies ``WᵀW = gain²·I`` when ``rows ≥ cols`` and ``WWᵀ = gain²·I`` otherwise.
    Q's columns are sign-corrected by ``sign(diag(R))`` so Q is Haar-distributed.
    """
    shape, rng, dtype = _prologue("orthogonal", shape, rng, dtype)
    gain = _real("orthogonal", "gain", gain, low=0.0)
    if len(shape) < 2:
        raise ParameterError(f"orthogonal: only shapes with 2 or more dimensions are supported, got {shape}")
    if math.prod(shape) == 0:
        return np.zeros(shape, dtype)
    rows = shape[0]
    cols = math.prod(shape) // rows
    flat = rng.standard_normal(size=(rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).astype(dtype, copy=False)


def zeros(shape: Sequence[int], rng: Any = None, dtype: Any = np.float32) -> np.ndarray:
    """All zeros (``rng`` is ignored)."""
    return np.zeros(_shape("zeros", shape), _dtype("zeros", dtype))


def ones(shape: Sequence[int], rng: Any = None, dtype: Any = np.float32) -> np.ndarray:
    """All ones (``rng`` is ignored)."""
    return np.ones(_shape("ones", shape), _dtype("ones", dtype))


def constant(shape: Sequence[int], rng: Any = None, dtype: Any = np.float32, value: float = 0.0) -> np.ndarray:
    """Every element ``value`` (``rng`` is ignored)."""
    value = _real("constant", "value", value)
    return np.full(_shape("constant", shape), value, _dtype("constant", dtype))


def uniform(shape: Sequence[int], rng: Any, dtype: Any = np.float32, a: float = 0.0, b: float = 1.0) -> np.ndarray:
    """``U(a, b)`` (``torch.nn.init.uniform_``)."""
    shape, rng, dtype = _prologue("uniform", shape, rng, dtype)
    a, b = _real("uniform", "a", a), _real("uniform", "b", b)
    if b < a:
        raise ParameterError(f"uniform: a must be <= b, got a={a!r}, b={b!r}")
    return rng.uniform(a, b, size=shape).astype(dtype, copy=False)


def normal(shape: Sequence[int], rng: Any, dtype: Any = np.float32, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    """``N(mean, std²)`` (``torch.nn.init.normal_``)."""
    shape, rng, dtype = _prologue("normal", shape, rng, dtype)
    mean, std = _real("normal", "mean", mean), _real("normal", "std", std, low=0.0)
    return (rng.standard_normal(size=shape) * std + mean).astype(dtype, copy=False)


# ----------------------------------------------------------------------------- registry

REGISTRY: dict[str, Initializer] = {
    "xavier_uniform": xavier_uniform,
    "glorot_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "glorot_normal": xavier_normal,
    "kaiming_uniform": kaiming_uniform,
    "he_uniform": kaiming_uniform,
    "kaiming_normal": kaiming_normal,
    "he_normal": kaiming_normal,
    "lecun_uniform": lecun_uniform,
    "lecun_normal": lecun_normal,
    "orthogonal": orthogonal,
    "torch_default": torch_default,
    "zeros": zeros,
    "ones": ones,
    "constant": constant,
    "uniform": uniform,
    "normal": normal,
}


def names() -> list[str]:
    """The valid initializer names, sorted."""
    return sorted(REGISTRY)


def get(init: str | Initializer, **opts: Any) -> Initializer:
    """The initializer named ``init`` (or ``init`` itself if it is callable), with ``opts`` bound.

    >>> w = get("kaiming_normal", nonlinearity="relu")((256, 784), np.random.default_rng(0))

    An unknown name raises ``ParameterError`` listing the valid names; an option
    the initializer does not take raises ``ParameterError`` naming it.
    """
    if callable(init):
        fn = init
    elif isinstance(init, str):
        try:
            fn = REGISTRY[init]
        except KeyError:
            raise ParameterError(f"init: unknown initializer {init!r}; valid names are {', '.join(names())}") from None
    else:
        raise ParameterError(f"init: init must be an initializer name (str) or a callable, got {init!r}")
    if not opts:
        return fn
    try:
        inspect.signature(fn).bind_partial(None, None, **opts)
    except TypeError as exc:
        raise ParameterError(f"init: {getattr(fn, '__name__', fn)!s} does not accept {sorted(opts)}: {exc}") from None
    except ValueError:  # builtins without a signature: bind later
        pass
    return functools.partial(fn, **opts)
