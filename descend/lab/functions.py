"""Test functions for optimizers: a loss, its exact gradient, a start, the minima and a plot box.

Each :class:`Problem` works on a 1-D float64 parameter vector. The two used by
``descend demo`` are classic stress tests of first-order methods:

* :func:`ill_conditioned_quadratic`: ``f(x, y) = ½(x − 1)² + ½κ(y − 1)²``. The
  curvature differs by the condition number κ between the two axes, so plain
  gradient descent must take a step below ``2/κ`` and then crawls along x;
  momentum and per-coordinate (adaptive) methods are built to fix exactly this.
* :func:`rosenbrock`: ``f(x, y) = (a − x)² + b(y − x²)²``, a curved, narrow,
  almost flat valley with its minimum at ``(a, a²)``.

``descend landscape`` draws optimizer paths on these and five more
(:data:`LANDSCAPES`, looked up by name with :func:`get`):

* :func:`seed_quadratic`: seed 001's ``L(w) = (w − 3)²`` in one dimension.
* :func:`saddle`: ``f(x, y) = x² − y²``, a saddle at the origin and no minimum
  at all (unbounded below along y): gradient descent started on the ridge
  ``y ≈ 0`` slides to the saddle and sits there, because the gradient's y part
  ``−2y`` is tiny. Its :attr:`Problem.minimizer` is ``None``.
* :func:`beale`, :func:`himmelblau` (four global minima) and :func:`rastrigin`
  (a global minimum among a lattice of local ones).

Every gradient is written out by hand and tested against central finite
differences in ``tests/lab/test_landscape.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from descend._validation import POSITIVE, check
from descend.errors import ParameterError

Box = tuple[tuple[float, float], ...]  # (low, high) per coordinate


@dataclass(frozen=True)
class Problem:
    """A differentiable test function with a known minimum (or, for the saddle, none)."""

    name: str  # short key: "quadratic", "rosenbrock"
    title: str  # "Ill-conditioned quadratic (condition number 100)"
    formula: str  # for humans: "f(x, y) = ½(x − 1)² + 50(y − 1)²"
    loss: Callable[[np.ndarray], float]
    grad: Callable[[np.ndarray], np.ndarray]
    x0: np.ndarray = field(repr=False)  # the fixed start
    minimizer: np.ndarray | None = field(repr=False)  # a global minimizer; None when f is unbounded below
    min_value: float = 0.0  # f at the minimum; -inf when f is unbounded below
    # For plots (descend.lab.landscape). ``surface`` is the loss vectorized over the leading axis:
    # surface(np.stack([X, Y])) -> Z, so a contour grid costs one NumPy call.
    surface: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)
    box: Box | None = None  # plot range per coordinate; None: around the start and the minima
    minima: tuple[np.ndarray, ...] = field(default=(), repr=False)  # every global minimizer (default: minimizer)
    saddles: tuple[np.ndarray, ...] = field(default=(), repr=False)  # saddle points worth marking
    log_levels: bool = True  # contour levels log-spaced in f − f* (False: linear in f)

    def __post_init__(self) -> None:
        if not self.minima and self.minimizer is not None:
            object.__setattr__(self, "minima", (self.minimizer,))

    def start(self) -> np.ndarray:
        """A fresh copy of the start point (callers may not mutate ``x0``)."""
        return self.x0.copy()

    @property
    def dim(self) -> int:
        return int(self.x0.size)

    @property
    def bounded(self) -> bool:
        """Whether f has a minimum (False for the saddle x² − y²)."""
        return self.minimizer is not None and math.isfinite(self.min_value)

    def plot_box(self) -> Box:
        """:attr:`box`, or a box around the start and the minima with a 25 % margin."""
        if self.box is not None:
            return self.box
        points = np.array([self.x0, *self.minima], dtype=np.float64)
        low, high = points.min(axis=0), points.max(axis=0)
        pad = np.maximum(0.25 * (high - low), 0.5)
        return tuple((float(lo), float(hi)) for lo, hi in zip(low - pad, high + pad, strict=True))

    def in_box(self, x: np.ndarray) -> bool:
        """Whether ``x`` lies in :meth:`plot_box` (closed)."""
        return all(lo <= float(v) <= hi for v, (lo, hi) in zip(np.ravel(x), self.plot_box(), strict=True))

    def distance_to_minimum(self, x: np.ndarray) -> float:
        """Euclidean distance from ``x`` to the nearest global minimizer; nan if there is none."""
        if not self.minima:
            return math.nan
        return float(min(np.linalg.norm(np.ravel(x) - m) for m in self.minima))

    def values(self, points: np.ndarray) -> np.ndarray:
        """f at each of ``points`` (shape ``(dim, ...)``), vectorized when :attr:`surface` is set."""
        points = np.asarray(points, dtype=np.float64)
        if self.surface is not None:
            return np.asarray(self.surface(points), dtype=np.float64)
        flat = points.reshape(points.shape[0], -1)
        return np.array([self.loss(flat[:, i]) for i in range(flat.shape[1])]).reshape(points.shape[1:])


def _fmt(x: float) -> str:
    return f"{x:g}"


def _start(owner: str, x0, dim: int) -> np.ndarray:
    x = np.array(x0, dtype=np.float64).reshape(-1)
    if x.size != dim or not np.all(np.isfinite(x)):
        raise ParameterError(f"{owner}: x0 must be {dim} finite number(s), got {x0!r}")
    return x


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

    def surface(p: np.ndarray) -> np.ndarray:
        return 0.5 * (c[0] * (p[0] - 1.0) ** 2 + c[1] * (p[1] - 1.0) ** 2)

    half = _fmt(condition / 2)
    return Problem(
        name="quadratic",
        title=f"Ill-conditioned quadratic (condition number {_fmt(condition)})",
        formula=f"f(x, y) = ½(x − 1)² + {half}(y − 1)²",
        loss=loss,
        grad=grad,
        x0=_start("ill_conditioned_quadratic", x0, 2),
        minimizer=center.copy(),
        min_value=0.0,
        surface=surface,
        box=((-2.5, 2.5), (-0.5, 2.5)),
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

    def surface(p: np.ndarray) -> np.ndarray:
        return (a - p[0]) ** 2 + b * (p[1] - p[0] ** 2) ** 2

    return Problem(
        name="rosenbrock",
        title="Rosenbrock function",
        formula=f"f(x, y) = ({_fmt(a)} − x)² + {_fmt(b)}(y − x²)²",
        loss=loss,
        grad=grad,
        x0=_start("rosenbrock", x0, 2),
        minimizer=np.array([a, a * a]),
        min_value=0.0,
        surface=surface,
        box=((a - 3.0, a + 1.5), (a * a - 2.0, a * a + 2.5)),
    )


def seed_quadratic(x0: float = 0.0) -> Problem:
    """Seed 001's ``L(w) = (w − 3)²`` in one dimension; minimum 0 at w = 3, start w = 0.

    ``dL/dw = 2(w − 3)``; gradient descent maps ``w − 3 ↦ (1 − 2η)(w − 3)``.
    """
    target = 3.0

    def loss(w: np.ndarray) -> float:
        return float(np.sum((w - target) ** 2))

    def grad(w: np.ndarray) -> np.ndarray:
        return 2.0 * (w - target)

    def surface(p: np.ndarray) -> np.ndarray:
        return (p[0] - target) ** 2

    return Problem(
        name="seed",
        title="Seed 001's quadratic",
        formula="L(w) = (w − 3)²",
        loss=loss,
        grad=grad,
        x0=_start("seed_quadratic", x0, 1),
        minimizer=np.array([target]),
        min_value=0.0,
        surface=surface,
        box=((-1.0, 7.0),),
    )


def saddle(x0: tuple[float, float] = (-1.0, 1e-3)) -> Problem:
    """``f(x, y) = x² − y²``: a saddle at the origin and no minimum (f → −∞ along y).

    The start (−1, 10⁻³) sits almost on the ridge y = 0. Gradient descent with
    step η maps ``x ↦ (1 − 2η)x`` and ``y ↦ (1 + 2η)y``: x reaches the saddle
    fast, while y, which starts at 10⁻³, grows only by the factor (1 + 2η) per
    step. Methods that normalize each coordinate by its own gradient scale
    (AdaGrad, RMSprop, Adam) take a full-size step along y at once and leave.
    The plot box is what the paths are drawn in: they stop where they leave it.
    """

    def loss(w: np.ndarray) -> float:
        x, y = w
        return float(x * x - y * y)

    def grad(w: np.ndarray) -> np.ndarray:
        x, y = w
        return np.array([2.0 * x, -2.0 * y])

    def surface(p: np.ndarray) -> np.ndarray:
        return p[0] ** 2 - p[1] ** 2

    return Problem(
        name="saddle",
        title="Saddle (unbounded below)",
        formula="f(x, y) = x² − y²",
        loss=loss,
        grad=grad,
        x0=_start("saddle", x0, 2),
        minimizer=None,
        min_value=-math.inf,
        surface=surface,
        box=((-1.5, 1.5), (-1.5, 1.5)),
        saddles=(np.zeros(2),),
        log_levels=False,
    )


def beale(x0: tuple[float, float] = (1.0, 1.5)) -> Problem:
    """Beale's function ``(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²``; minimum 0 at (3, 0.5).

    Flat near y = 1 and steep (the y³ term) elsewhere: a wide plateau next to
    walls whose gradient is a hundred times larger.
    """
    c = (1.5, 2.25, 2.625)

    def terms(x, y):
        return [ci - x + x * y ** (i + 1) for i, ci in enumerate(c)]

    def surface(p: np.ndarray) -> np.ndarray:
        x, y = p[0], p[1]
        return sum(t * t for t in terms(x, y))

    def loss(w: np.ndarray) -> float:
        return float(surface(w))

    def grad(w: np.ndarray) -> np.ndarray:
        x, y = w
        t = terms(x, y)
        gx = sum(2.0 * ti * (y ** (i + 1) - 1.0) for i, ti in enumerate(t))
        gy = sum(2.0 * ti * (i + 1) * x * y**i for i, ti in enumerate(t))
        return np.array([gx, gy])

    return Problem(
        name="beale",
        title="Beale's function",
        formula="f(x, y) = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²",
        loss=loss,
        grad=grad,
        x0=_start("beale", x0, 2),
        minimizer=np.array([3.0, 0.5]),
        min_value=0.0,
        surface=surface,
        box=((-1.0, 4.5), (-1.5, 2.0)),
    )


# The other three minima of Himmelblau's function are roots of a quartic; these are them to
# double precision (each one refined by Newton's method on the gradient, |∇f| < 1e-12 there).
_HIMMELBLAU_MINIMA = (
    (3.0, 2.0),
    (-2.805118086952745, 3.131312518250573),
    (-3.779310253377747, -3.283185991286170),
    (3.584428340330492, -1.848126526964404),
)


def himmelblau(x0: tuple[float, float] = (-0.3, -0.9)) -> Problem:
    """Himmelblau's function ``(x² + y − 11)² + (x + y² − 7)²``: four global minima, all with f = 0.

    The default start lies next to its one local maximum, near (−0.27, −0.92),
    so which of the four minima an optimizer ends in depends on its path.
    """

    def surface(p: np.ndarray) -> np.ndarray:
        x, y = p[0], p[1]
        return (x * x + y - 11.0) ** 2 + (x + y * y - 7.0) ** 2

    def loss(w: np.ndarray) -> float:
        return float(surface(w))

    def grad(w: np.ndarray) -> np.ndarray:
        x, y = w
        u, v = x * x + y - 11.0, x + y * y - 7.0
        return np.array([4.0 * x * u + 2.0 * v, 2.0 * u + 4.0 * y * v])

    minima = tuple(np.array(m) for m in _HIMMELBLAU_MINIMA)
    return Problem(
        name="himmelblau",
        title="Himmelblau's function (four minima)",
        formula="f(x, y) = (x² + y − 11)² + (x + y² − 7)²",
        loss=loss,
        grad=grad,
        x0=_start("himmelblau", x0, 2),
        minimizer=minima[0],
        min_value=0.0,
        surface=surface,
        box=((-5.0, 5.0), (-5.0, 5.0)),
        minima=minima,
    )


def rastrigin(a: float = 10.0, x0: tuple[float, float] = (-3.3, 2.6)) -> Problem:
    """Rastrigin's function ``2A + Σ (xᵢ² − A·cos 2πxᵢ)`` with A = ``a``; minimum 0 at the origin.

    A bowl covered in a lattice of local minima near the integer points: a
    gradient method stops in the first one it falls into unless it carries
    enough speed (momentum) to roll over the bumps.
    """
    check("rastrigin", "a", a, POSITIVE)
    a = float(a)
    two_pi = 2.0 * math.pi

    def surface(p: np.ndarray) -> np.ndarray:
        return 2.0 * a + (p[0] ** 2 - a * np.cos(two_pi * p[0])) + (p[1] ** 2 - a * np.cos(two_pi * p[1]))

    def loss(w: np.ndarray) -> float:
        return float(surface(w))

    def grad(w: np.ndarray) -> np.ndarray:
        return 2.0 * w + two_pi * a * np.sin(two_pi * w)

    return Problem(
        name="rastrigin",
        title="Rastrigin's function",
        formula=f"f(x, y) = {_fmt(2 * a)} + Σ (xᵢ² − {_fmt(a)}·cos 2πxᵢ)",
        loss=loss,
        grad=grad,
        x0=_start("rastrigin", x0, 2),
        minimizer=np.zeros(2),
        min_value=0.0,
        surface=surface,
        box=((-5.12, 5.12), (-5.12, 5.12)),
        log_levels=False,
    )


# What ``descend landscape --function NAME`` offers, in the order it lists them.
LANDSCAPES: dict[str, Callable[[], Problem]] = {
    "seed": seed_quadratic,
    "quadratic": ill_conditioned_quadratic,
    "saddle": saddle,
    "rosenbrock": rosenbrock,
    "beale": beale,
    "himmelblau": himmelblau,
    "rastrigin": rastrigin,
}


def get(name: str) -> Problem:
    """The test function called ``name`` in :data:`LANDSCAPES`, with its default start."""
    if name not in LANDSCAPES:
        choices = ", ".join(repr(n) for n in LANDSCAPES)
        raise ParameterError(f"unknown function {name!r} (choose from {choices})")
    return LANDSCAPES[name]()


__all__ = [
    "LANDSCAPES",
    "Problem",
    "beale",
    "get",
    "himmelblau",
    "ill_conditioned_quadratic",
    "rastrigin",
    "rosenbrock",
    "saddle",
    "seed_quadratic",
]
