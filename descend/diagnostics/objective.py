"""Objectives: a training loss as a function of one flat float64 parameter vector θ.

:class:`ModelObjective` wraps any :mod:`descend.nn` model, a data set and a loss: ``value(θ)`` and
``gradient(θ)`` run the model's own ``forward`` / ``backward`` on a private **float64 copy** of the
model in evaluation mode (dropout off, batch norm with its running statistics), in chunks of
``chunk_size`` examples. The user's model is never touched. :class:`FunctionObjective` wraps a
plain function with its gradient (a :class:`descend.lab.functions.Problem`, e.g. the saddle
x² − y²).

Kinks
-----
ReLU, LeakyReLU and max pooling are piecewise linear: their gradient jumps where a pre-activation
crosses 0 or a pooling window changes its winner. A central difference of gradients taken across
such a kink is not the Hessian (one crossing among 10⁵ units can make the difference 20x the true
product, measured on a ReLU MLP). :meth:`ModelObjective.freeze` therefore records, at the point θ₀
where the Hessian is wanted, each such layer's *pattern* (the ReLU masks, the max-pool winners) and
then evaluates gradients near θ₀ with those patterns held fixed: the network linearized at its
kinks, whose Hessian at θ₀ is exactly what ``torch.autograd`` computes (the Hessian almost
everywhere, with ReLU'' = 0). Smooth layers (tanh, sigmoid, GELU, softmax, convolution, average
pooling, norms) need nothing.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from descend._validation import Interval, check
from descend.errors import ParameterError
from descend.nn.activations import LeakyReLU, ReLU
from descend.nn.conv import _MaxPoolNd
from descend.nn.module import Module, ShapeError, fmt_shape

_CHUNK = Interval(1, None, integer=True)
_L2 = Interval(0, None)

#: Loss names -> the descend.nn function ``(output, target) -> (loss, doutput)``.
LOSS_NAMES = ("cross_entropy", "mse", "bce_with_logits")


def resolve_loss(owner: str, loss: Any) -> Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]]:
    """A loss as ``fn(output, target) -> (mean loss, d loss / d output)``.

    Accepts a name (``"cross_entropy"``, ``"mse"``, ``"bce_with_logits"`` and the other names of
    :func:`descend.nn.get_loss`), such a function, or a :mod:`descend.nn` loss object
    (``CrossEntropyLoss(label_smoothing=0.1)``, ``MSELoss()``: the trainer's ``trainer.loss``).
    """
    from descend import nn

    if isinstance(loss, str):
        if loss == "binary_cross_entropy":  # the Trainer's name for it
            loss = "bce_with_logits"
        if loss not in nn.LOSSES:
            raise ParameterError(
                f"{owner}: loss must be one of {', '.join(sorted(nn.LOSSES))}, a function or a descend.nn loss "
                f"object, got {loss!r}"
            )
        return nn.LOSSES[loss]
    if isinstance(loss, nn.CrossEntropyLoss):
        eps = loss.label_smoothing
        return lambda z, t: nn.cross_entropy(z, t, label_smoothing=eps)
    if isinstance(loss, nn.MSELoss):
        return nn.mse_loss
    if isinstance(loss, nn.BCEWithLogitsLoss):
        return nn.binary_cross_entropy_with_logits
    if callable(loss):
        return loss
    raise ParameterError(
        f"{owner}: loss must be a loss name ({', '.join(LOSS_NAMES)}), a function (output, target) -> "
        f"(loss, doutput) or a descend.nn loss object, got {type(loss).__name__}"
    )


def as_vector(owner: str, name: str, value: Any, size: int) -> np.ndarray:
    """A finite float64 1-D array of length ``size`` (a copy), or one clear error."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(
            f"{owner}: {name} must be a 1-D array of {size} numbers, got {type(value).__name__}"
        ) from None
    if arr.shape != (size,):
        raise ParameterError(f"{owner}: {name} must be a 1-D array of {size} numbers, got shape {fmt_shape(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{owner}: {name} must be finite, got {int(np.sum(~np.isfinite(arr)))} NaN/inf entries")
    return arr


class FunctionObjective:
    """``f(θ)`` and ``∇f(θ)`` given as functions of a flat vector (e.g. a lab test function).

    >>> from descend.lab import functions
    >>> obj = FunctionObjective.from_problem(functions.saddle())
    """

    def __init__(self, value: Callable[[np.ndarray], float], gradient: Callable[[np.ndarray], Any], point: Any):
        if not callable(value) or not callable(gradient):
            raise ParameterError("FunctionObjective: value and gradient must be callables of a flat vector")
        x0 = np.asarray(point, dtype=np.float64).reshape(-1)
        self.size = int(x0.size)
        if self.size == 0:
            raise ParameterError("FunctionObjective: point must have at least one coordinate, got an empty array")
        self.point = as_vector("FunctionObjective", "point", x0, self.size)
        self._value, self._gradient = value, gradient
        self.gradient_evaluations = 0
        self.frozen_token = 0

    @classmethod
    def from_problem(cls, problem: Any, point: Any = None) -> FunctionObjective:
        """The objective of a :class:`descend.lab.functions.Problem`, at ``point`` (default: its start)."""
        if not (hasattr(problem, "loss") and hasattr(problem, "grad") and hasattr(problem, "x0")):
            raise ParameterError(
                "FunctionObjective.from_problem: expected a descend.lab.functions.Problem, "
                f"got {type(problem).__name__}"
            )
        return cls(problem.loss, problem.grad, problem.x0 if point is None else point)

    def value(self, theta: np.ndarray) -> float:
        return float(self._value(np.asarray(theta, dtype=np.float64)))

    def gradient(self, theta: np.ndarray, frozen: bool = False) -> np.ndarray:
        self.gradient_evaluations += 1
        return np.asarray(self._gradient(np.asarray(theta, dtype=np.float64)), dtype=np.float64).reshape(-1)

    def freeze(self, theta: np.ndarray) -> int:
        """Nothing to record: a smooth function has no kinks."""
        self.frozen_token += 1
        return self.frozen_token


class ModelObjective:
    """The mean training loss of ``model`` on ``(x, y)`` as a function of its flat parameters.

    Parameters
    ----------
    model: any :mod:`descend.nn` model (copied to float64, evaluation mode; the original is untouched).
    x, y: the examples (inputs as the model takes them, targets as the loss takes them).
    loss: ``"cross_entropy"`` (default), ``"mse"``, ``"bce_with_logits"``, a function
        ``(output, target) -> (loss, doutput)`` or a descend.nn loss object.
    l2: the trainer's penalty λ₂/2·‖w‖² on the weights (not biases or norm layers), added to the loss.
    chunk_size: examples per forward/backward pass (bounds memory; the result does not depend on it
        beyond rounding).
    """

    def __init__(
        self,
        model: Module,
        x: Any,
        y: Any,
        loss: Any = "cross_entropy",
        *,
        l2: float = 0.0,
        chunk_size: int = 4096,
    ):
        owner = "ModelObjective"
        if not isinstance(model, Module):
            raise ParameterError(f"{owner}: model must be a descend.nn.Module, got {type(model).__name__}")
        if model.num_params == 0:
            raise ParameterError(f"{owner}: the model has no parameters; there is no Hessian to compute")
        check(owner, "l2", l2, _L2)
        check(owner, "chunk_size", chunk_size, _CHUNK)
        x_arr, y_arr = np.asarray(x), np.asarray(y)
        if x_arr.ndim == 0 or y_arr.ndim == 0 or len(x_arr) != len(y_arr) or len(x_arr) == 0:
            raise ShapeError(
                f"{owner}: x and y must hold the same number (>= 1) of examples, got x of shape "
                f"{fmt_shape(x_arr.shape)} and y of shape {fmt_shape(y_arr.shape)}"
            )
        self.loss_fn = resolve_loss(owner, loss)
        self.model = model.astype(np.float64).eval()
        self.x = x_arr.astype(np.float64)
        self.y = y_arr.astype(np.float64) if y_arr.dtype.kind == "f" else y_arr
        self.size = int(self.model.params.size)
        self.point = self.model.params.copy()
        self.l2 = float(l2)
        self._weights = self.model.decay_mask(np.float64) if self.l2 else None
        n = len(self.x)
        self.chunks = [(lo, min(lo + int(chunk_size), n)) for lo in range(0, n, int(chunk_size))]
        self.num_examples = n
        self.gradient_evaluations = 0
        self.frozen_token = 0  # which freeze() the recorded patterns belong to
        self._freezer = _KinkFreezer(self.model)

    def sync(self, model: Module) -> np.ndarray:
        """Take ``model``'s current parameters and buffers (same architecture) as the point; return it."""
        self.model.load_state_dict(model.state_dict())
        self.point = self.model.params.copy()
        return self.point

    @property
    def has_kinks(self) -> bool:
        """Whether the model has ReLU / LeakyReLU / max-pool layers (patterns are frozen for its Hessian)."""
        return bool(self._freezer.layers)

    def _set(self, theta: np.ndarray) -> None:
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (self.size,):
            raise ShapeError(f"ModelObjective: θ must have shape ({self.size},), got {fmt_shape(theta.shape)}")
        self.model.params[...] = theta

    def value(self, theta: np.ndarray, frozen: bool = False) -> float:
        """The mean loss (plus the L2 penalty) at ``θ``."""
        self._set(theta)
        total = 0.0
        for i, (lo, hi) in enumerate(self.chunks):
            with self._freezer.mode("frozen" if frozen else None, i):
                out = self.model.forward(self.x[lo:hi])
            loss, _ = self.loss_fn(out, self.y[lo:hi])
            total += float(loss) * (hi - lo)
        value = total / self.num_examples
        if self._weights is not None:
            value += 0.5 * self.l2 * float(np.sum(self._weights * theta * theta))
        return value

    def gradient(self, theta: np.ndarray, frozen: bool = False) -> np.ndarray:
        """``∇L(θ)`` (float64, a new array). ``frozen``: with the kink patterns recorded by :meth:`freeze`."""
        self._set(theta)
        grad = np.zeros(self.size)
        for i, (lo, hi) in enumerate(self.chunks):
            with self._freezer.mode("frozen" if frozen else None, i):
                out = self.model.forward(self.x[lo:hi])
                _, dout = self.loss_fn(out, self.y[lo:hi])
                self.model.backward(np.asarray(dout, dtype=np.float64), input_grad=False)
            grad += self.model.grads * ((hi - lo) / self.num_examples)
        if self._weights is not None:
            grad += self.l2 * self._weights * np.asarray(theta, dtype=np.float64)
        self.gradient_evaluations += 1
        return grad

    def batch_gradient(self, theta: np.ndarray, index: np.ndarray) -> np.ndarray:
        """The mean gradient over the examples ``index`` (repeats allowed), with the L2 penalty's gradient."""
        self._set(theta)
        index = np.asarray(index, dtype=np.int64)
        grad = np.zeros(self.size)
        step = max(hi - lo for lo, hi in self.chunks)
        for lo in range(0, len(index), step):
            part = index[lo : lo + step]
            out = self.model.forward(self.x[part])
            _, dout = self.loss_fn(out, self.y[part])
            self.model.backward(np.asarray(dout, dtype=np.float64), input_grad=False)
            grad += self.model.grads * (len(part) / len(index))
        if self._weights is not None:
            grad += self.l2 * self._weights * np.asarray(theta, dtype=np.float64)
        self.gradient_evaluations += 1
        return grad

    def freeze(self, theta: np.ndarray) -> int:
        """Record the kink patterns at ``θ`` (one forward pass) for later ``gradient(..., frozen=True)``.

        Returns a token: :attr:`frozen_token` stays equal to it until the next ``freeze``.
        """
        self.frozen_token += 1
        self._set(theta)
        self._freezer.patterns = [None] * len(self.chunks)
        for i, (lo, hi) in enumerate(self.chunks):
            with self._freezer.mode("record", i):
                self.model.forward(self.x[lo:hi])
        return self.frozen_token


class _KinkFreezer:
    """Patches the piecewise-linear layers of a private model copy so their patterns can be held fixed.

    ``mode("record", i)``: each layer runs as usual and stores its pattern for chunk ``i``;
    ``mode("frozen", i)``: each layer applies chunk ``i``'s stored pattern (a fixed linear map) instead
    of recomputing it; ``mode(None, i)``: the layers as they are.
    """

    def __init__(self, model: Module):
        self.layers = [m for m in model.modules() if isinstance(m, ReLU | LeakyReLU | _MaxPoolNd)]
        self.patterns: list[list[Any] | None] = []
        self._mode: str | None = None
        self._chunk = 0
        for index, layer in enumerate(self.layers):
            self._patch(index, layer)

    def mode(self, mode: str | None, chunk: int) -> _KinkFreezer:
        if mode == "frozen" and (chunk >= len(self.patterns) or self.patterns[chunk] is None) and self.layers:
            raise RuntimeError("ModelObjective: gradient(frozen=True) before freeze(θ)")
        self._mode, self._chunk = mode, chunk
        return self

    def __enter__(self) -> _KinkFreezer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._mode = None

    def _patch(self, index: int, layer: Module) -> None:
        forward, backward = layer.forward, layer.backward  # the class's bound methods
        state: dict[str, Any] = {}

        def patched_forward(x: np.ndarray) -> np.ndarray:
            if self._mode == "record":
                y = forward(x)
                pattern = _record(layer, x, y, backward)
                chunk = self.patterns[self._chunk]
                if chunk is None:
                    chunk = self.patterns[self._chunk] = [None] * len(self.layers)
                chunk[index] = pattern
                return y
            if self._mode == "frozen":
                pattern = self.patterns[self._chunk][index]  # type: ignore[index]
                state["pattern"], state["shape"] = pattern, np.shape(x)
                return _apply(layer, pattern, np.asarray(x, dtype=np.float64))
            state.pop("pattern", None)
            return forward(x)

        def patched_backward(dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
            if "pattern" not in state:
                return backward(dout, input_grad)
            if not input_grad:
                return None
            return _apply_transpose(layer, state["pattern"], np.asarray(dout, dtype=np.float64), state["shape"])

        layer.forward = patched_forward  # type: ignore[method-assign]
        layer.backward = patched_backward  # type: ignore[method-assign]


def _record(layer: Module, x: np.ndarray, y: np.ndarray, backward: Callable[..., Any]) -> Any:
    x = np.asarray(x)
    if isinstance(layer, ReLU | LeakyReLU):
        return x > 0
    return _maxpool_winners(layer, x.shape, y.shape, backward)


def _maxpool_winners(
    layer: Any, in_shape: tuple[int, ...], out_shape: tuple[int, ...], backward: Callable[..., Any]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """For each example, the flat input index each max-pool output took its value from.

    Found with the layer's own backward pass: outputs are split into classes whose windows do not
    overlap (output positions congruent modulo ⌈kernel/stride⌉ per axis), and the backward pass of a
    ``dout`` holding each class's output numbers 1, 2, ... puts every number on its window's winner.
    """
    n = out_shape[0]
    spatial = out_shape[2:]
    q = [math.ceil(k / s) for k, s in zip(layer.kernel_size, layer.stride, strict=True)]
    d_out = math.prod(out_shape[1:])
    codes = np.arange(1, d_out + 1, dtype=np.float64).reshape(out_shape[1:])
    grids = np.meshgrid(*[np.arange(s) for s in spatial], indexing="ij")
    winners = np.full((n, d_out), -1, dtype=np.int64)
    groups = []
    for offsets in itertools.product(*[range(qa) for qa in q]):
        member = np.ones(spatial, dtype=bool)
        for grid, qa, r in zip(grids, q, offsets, strict=True):
            member &= grid % qa == r
        if not member.any():
            continue
        in_class = np.broadcast_to(member, out_shape[1:])
        dout = np.zeros(out_shape)
        dout[:, in_class] = codes[in_class]
        dx = np.asarray(backward(dout, True), dtype=np.float64).reshape(n, -1)
        rows, cols = np.nonzero(dx)
        found = np.rint(dx[rows, cols]).astype(np.int64) - 1
        winners[rows, found] = cols
        groups.append(np.flatnonzero(in_class.reshape(-1)))
    if (winners < 0).any():  # a NaN input, or a winner that received two numbers
        raise ParameterError(
            f"ModelObjective: could not find the winners of {layer.label()} (are its inputs finite?); the Hessian "
            "of this model is not defined here"
        )
    return winners, groups


def _apply(layer: Module, pattern: Any, x: np.ndarray) -> np.ndarray:
    if isinstance(layer, ReLU):
        return x * pattern
    if isinstance(layer, LeakyReLU):
        return np.where(pattern, x, x * layer.negative_slope)
    winners, _ = pattern
    n = x.shape[0]
    out = np.take_along_axis(x.reshape(n, -1), winners, axis=1)
    return out.reshape((n, x.shape[1], *layer._out_shape(x)))


def _apply_transpose(layer: Module, pattern: Any, dout: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(layer, ReLU):
        return dout * pattern
    if isinstance(layer, LeakyReLU):
        return np.where(pattern, dout, dout * layer.negative_slope)
    winners, groups = pattern
    n = in_shape[0]
    dx = np.zeros((n, math.prod(in_shape[1:])))
    d = dout.reshape(n, -1)
    rows = np.arange(n)[:, None]
    for cols in groups:  # within a class every winner is distinct: fancy-index += is exact
        dx[rows, winners[:, cols]] += d[:, cols]
    return dx.reshape(in_shape)
