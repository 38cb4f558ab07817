"""Test functions for optimizers: a loss, its exact gradient, a start and the minimum.

Each :class:`Problem` works on a 1-D float64 parameter vector. The two used by
``descend demo`` are classic stress tests of first-order methods:

* :func:`ill_conditioned_quadratic`: ``f(x, y) = ½(x − 1)² + ½κ(y − 1)²``. The
  curvature differs by the condition number κ between the two axes, so plain
  gradient descent must take a step below ``2/κ`` and then crawls along x;
  momentum and per-coordinate (adaptive) methods are built to fix exactly this.
* :func:`rosenbrock`: ``f(x, y) = (a − x)² + b(y − x²)²``, a curved, narrow,
  almost flat valley with its minimum at ``(a, a²)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from descend._validation import POSITIVE, check


@dataclass(frozen=True)
class Problem:
    """A differentiable test function with a known minimum."""

    name: str  # short key: "quadratic", "rosenbrock"
    title: str  # "Ill-conditioned quadratic (condition number 100)"
    formula: str  # for humans: "f(x, y) = ½(x − 1)² + 50(y − 1)²"
    loss: Callable[[np.ndarray], float]
    grad: Callable[[np.ndarray], np.ndarray]
    x0: np.ndarray = field(repr=False)  # the fixed start
    minimizer: np.ndarray = field(repr=False)
    min_value: float = 0.0

    def start(self) -> np.ndarray:
        """A fresh copy of the start point (callers may not mutate ``x0``)."""
        return self.x0.copy()


def _fmt(x: float) -> str:
    return f"{x:g}"


def ill_conditioned_quadratic(condition: float = 100.0, x0: tuple[float, float] = (-2.0, 2.0)) -> Problem:
    """``f(x, y) = ½(x − 1)² + ½κ(y − 1)²`` with κ = ``condition``; minimum 0 at (1, 1).

    The Hessian is ``diag(1, κ)``: gradient descent is stable for ``η < 2/κ``
    and then needs about ``κ·ln(1/tol)/2`` steps along the flat x axis.
    """
    check("ill_conditioned_quadratic", "condition", condition, POSITIVE)
    c = np.array([1.0, float(condition)])
    center = np.ones(2)

    def loss(w: np.ndarray) -> float:
        d = w - center
        return float(0.5 * np.sum(c * d * d))

    def grad(w: np.ndarray) -> np.ndarray:
        return c * (w - center)

    half = _fmt(condition / 2)
    return Problem(
        name="quadratic",
        title=f"Ill-conditioned quadratic (condition number {_fmt(condition)})",
        formula=f"f(x, y) = ½(x − 1)² + {half}(y − 1)²",
        loss=loss,
        grad=grad,
        x0=np.array(x0, dtype=np.float64),
        minimizer=center.copy(),
        min_value=0.0,
    )


def rosenbrock(a: float = 1.0, b: float = 100.0, x0: tuple[float, float] = (-1.2, 1.0)) -> Problem:
    """``f(x, y) = (a − x)² + b(y − x²)²``; minimum 0 at ``(a, a²)``. Classic start (−1.2, 1)."""
    check("rosenbrock", "b", b, POSITIVE)
    a, b = float(a), float(b)

    def loss(w: np.ndarray) -> float:
        x, y = w
        return float((a - x) ** 2 + b * (y - x * x) ** 2)

    def grad(w: np.ndarray) -> np.ndarray:
        x, y = w
        r = y - x * x
        return np.array([-2.0 * (a - x) - 4.0 * b * x * r, 2.0 * b * r])

    return Problem(
        name="rosenbrock",
        title="Rosenbrock function",
        formula=f"f(x, y) = ({_fmt(a)} − x)² + {_fmt(b)}(y − x²)²",
        loss=loss,
        grad=grad,
        x0=np.array(x0, dtype=np.float64),
        minimizer=np.array([a, a * a]),
        min_value=0.0,
    )


__all__ = ["Problem", "ill_conditioned_quadratic", "rosenbrock"]
