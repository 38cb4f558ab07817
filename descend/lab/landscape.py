"""Optimizer paths on 2-D test functions (and seed 001's 1-D quadratic), computed and drawn.

:func:`trajectories` runs real :mod:`descend.optim` optimizers in float64 on a
:class:`~descend.lab.functions.Problem` and keeps every iterate;
:func:`plot_landscape` draws them: a contour plot of f with one coloured path
per optimizer (a curve with points on it for a 1-D function) and, beside it,
the loss against the step; a PNG, or with ``animate=True`` a GIF. It is what
``descend landscape`` writes::

    from descend.lab import functions, landscape
    problem = functions.saddle()
    paths = landscape.trajectories(problem)            # the default six, tuned rates
    landscape.plot_landscape(problem, paths, "saddle.png")

The default optimizers (:data:`RECIPES`) and their learning rates
(:data:`LEARNING_RATES`, one per function) are chosen so that the pictures
show what the seed documents say: on seed 001's quadratic momentum overshoots
w = 3 and swings back while plain SGD approaches it from one side; AdaGrad's
steps shrink as its squared-gradient sum grows; on the saddle x² − y² plain
gradient descent, started on the ridge near (−1, 0), slides into the saddle
point and stays there, while AdaGrad, RMSprop and Adam escape along y. Each
of these statements is checked in ``tests/lab/test_landscape.py``.

matplotlib (the ``lab`` extra) is imported only when drawing, with the Agg
backend, so ``import descend.lab`` stays light.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from descend import optim
from descend._validation import Interval, check
from descend.errors import ParameterError
from descend.lab.functions import Problem
from descend.optim import registry
from descend.optim.base import GradientTransformation

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

_STEPS = Interval(1, 100_000, closed="both", integer=True)

# name -> (descend.optim factory, its other torch-named hyperparameters): the optimizers of descend.optim.registry
# that run on a vector (not muon, sam, asam). "momentum" is torch's SGD(momentum=0.9), "nesterov" the same with
# nesterov=True; the seed documents' heavy-ball forms are "heavy-ball-seed000" and "heavy-ball-seed001".
RECIPES: dict[str, tuple[str, dict[str, Any]]] = registry.landscape_recipes()
#: What ``descend landscape`` draws when no optimizers are named: the seed documents' six.
DEFAULT_OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")

# Learning rates per function, picked by drawing the paths (not by minimizing a loss): each rate
# lets the optimizer's character show within the step budget (DEFAULT_STEPS) without diverging.
# SGD-type rates are bounded by the curvature (η < 2/L); the adaptive ones step about η per
# coordinate, so their rate is a distance in the plot. On Rastrigin every method stops in the
# local minimum next to the start except momentum, whose rate is set high enough (0.01) to carry it
# over the bumps, erratically, out of the box and back, into a local minimum next to the global one.
LEARNING_RATES: dict[str, dict[str, float]] = {
    "seed": {"sgd": 0.1, "momentum": 0.1, "nesterov": 0.1, "adagrad": 0.5, "rmsprop": 0.1, "adam": 0.3},
    "quadratic": {"sgd": 0.015, "momentum": 0.01, "nesterov": 0.005, "adagrad": 0.5, "rmsprop": 0.03, "adam": 0.1},
    "saddle": {"sgd": 0.02, "momentum": 0.02, "nesterov": 0.02, "adagrad": 0.1, "rmsprop": 0.01, "adam": 0.05},
    "rosenbrock": {"sgd": 2e-3, "momentum": 2e-3, "nesterov": 1e-3, "adagrad": 0.5, "rmsprop": 0.01, "adam": 0.05},
    "beale": {"sgd": 0.01, "momentum": 1e-3, "nesterov": 1e-3, "adagrad": 0.5, "rmsprop": 0.01, "adam": 0.05},
    "himmelblau": {"sgd": 0.01, "momentum": 2e-3, "nesterov": 2e-3, "adagrad": 0.5, "rmsprop": 0.02, "adam": 0.05},
    "rastrigin": {"sgd": 5e-3, "momentum": 0.01, "nesterov": 2e-3, "adagrad": 0.5, "rmsprop": 0.02, "adam": 0.1},
}
DEFAULT_STEPS: dict[str, int] = {
    "seed": 30,
    "quadratic": 200,
    "saddle": 100,
    "rosenbrock": 1000,
    "beale": 1000,
    "himmelblau": 300,
    "rastrigin": 300,
}
FALLBACK_LR = 0.01  # a Problem without tuned rates (not in LEARNING_RATES)
FALLBACK_STEPS = 200

# A path that gets this many box widths away from the plot box counts as diverged and stops.
_DIVERGED_BOXES = 100.0


class Trajectory(NamedTuple):
    """One optimizer's run: ``path[k]`` is the iterate after k updates (``path[0]`` the start)."""

    label: str
    lr: float | None  # the learning rate when the optimizer came from a recipe, else None
    path: np.ndarray  # shape (k + 1, dim), float64, all finite
    loss: np.ndarray  # f(path[k]), shape (k + 1,)
    stop: str | None  # None (ran all steps), "diverged" or "left the box" (unbounded f only)

    @property
    def steps_run(self) -> int:
        return len(self.path) - 1

    @property
    def final(self) -> np.ndarray:
        return self.path[-1]


def default_lr(problem: Problem, name: str) -> float:
    """The tuned learning rate of recipe ``name`` on ``problem`` (:data:`FALLBACK_LR` if untuned)."""
    return LEARNING_RATES.get(problem.name, {}).get(name, FALLBACK_LR)


def default_steps(problem: Problem) -> int:
    return DEFAULT_STEPS.get(problem.name, FALLBACK_STEPS)


def make_optimizer(name: str, lr: float) -> GradientTransformation:
    """The optimizer of recipe ``name`` (:data:`RECIPES`) at learning rate ``lr``."""
    if name not in RECIPES:
        raise ParameterError(f"unknown optimizer {name!r} (choose from {', '.join(repr(n) for n in RECIPES)})")
    factory, kwargs = RECIPES[name]
    return getattr(optim, factory)(lr=lr, **kwargs)


def _resolve(
    problem: Problem,
    optimizers: Mapping[str, GradientTransformation] | Iterable[str] | None,
    lrs: Mapping[str, float] | None,
) -> list[tuple[str, GradientTransformation, float | None]]:
    lrs = dict(lrs or {})
    if optimizers is None:
        optimizers = DEFAULT_OPTIMIZERS
    if isinstance(optimizers, Mapping):
        runs = []
        for label, tx in optimizers.items():
            if not isinstance(tx, GradientTransformation):
                raise ParameterError(
                    f"trajectories: optimizers[{label!r}] must be a GradientTransformation, got {type(tx).__name__}"
                )
            runs.append((str(label), tx, None))
        if lrs:
            raise ParameterError("trajectories: lrs applies to optimizer names, not to ready-made transformations")
        return runs
    names = [optimizers] if isinstance(optimizers, str) else list(optimizers)
    if not names:
        raise ParameterError("trajectories: no optimizers given")
    unknown = sorted(set(lrs) - set(names))
    if unknown:
        raise ParameterError(f"trajectories: learning rate given for {unknown[0]!r}, which is not being run")
    runs = []
    for name in dict.fromkeys(names):  # drop repeats, keep order
        lr = float(lrs.get(name, default_lr(problem, name)))
        runs.append((name, make_optimizer(name, lr), lr))
    return runs


def run_path(
    problem: Problem,
    tx: GradientTransformation,
    steps: int,
    x0: np.ndarray | None = None,
    *,
    label: str = "",
    lr: float | None = None,
) -> Trajectory:
    """Run ``tx`` on ``problem`` from ``x0`` (default ``problem.x0``) for up to ``steps`` updates.

    The loop is the one every user writes (``tx.update(grad(x), state, x)``,
    ``apply_updates``) in float64. It stops early when the loss or the iterate
    stops being finite, or the iterate is more than 100 box widths outside the
    plot box (``stop="diverged"``; the non-finite point is not kept), or, for
    a function without a minimum, at the first iterate outside the plot box
    (``stop="left the box"``; that point is kept, so the drawn path reaches
    the edge).
    """
    check("trajectories", "steps", steps, _STEPS)
    x = problem.start() if x0 is None else np.array(x0, dtype=np.float64).reshape(problem.x0.shape)
    if not problem.in_box(x):
        raise ParameterError(f"trajectories: start {_point(x)} is outside the plot box {_box(problem)}")
    box = problem.plot_box()
    low = np.array([lo for lo, _ in box])
    high = np.array([hi for _, hi in box])
    far = _DIVERGED_BOXES * (high - low)
    path, losses = [x], [problem.loss(x)]
    state = tx.init(x)
    stop = None
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            updates, state = tx.update(problem.grad(x), state, x)
            x = np.asarray(optim.apply_updates(x, updates), dtype=np.float64)
            value = problem.loss(x)
            if not (math.isfinite(value) and np.all(np.isfinite(x))) or np.any((x < low - far) | (x > high + far)):
                stop = "diverged"
                break
            path.append(x)
            losses.append(value)
            if not problem.bounded and not problem.in_box(x):
                stop = "left the box"
                break
    return Trajectory(label, lr, np.array(path), np.array(losses), stop)


def trajectories(
    problem: Problem,
    optimizers: Mapping[str, GradientTransformation] | Iterable[str] | None = None,
    steps: int | None = None,
    *,
    start: Sequence[float] | np.ndarray | None = None,
    lrs: Mapping[str, float] | None = None,
) -> dict[str, Trajectory]:
    """Every optimizer's path on ``problem``: ``{label: Trajectory}``, in the order given.

    ``optimizers`` is either ``{label: GradientTransformation}`` (run as given)
    or recipe names from :data:`RECIPES` (default: :data:`DEFAULT_OPTIMIZERS`, the six), each at its tuned
    rate for this function (:data:`LEARNING_RATES`) unless ``lrs`` overrides
    it (``{"adam": 0.3}``). ``steps`` defaults to :data:`DEFAULT_STEPS`;
    ``start`` to the function's own start. Stopping rules: :func:`run_path`.
    """
    steps = default_steps(problem) if steps is None else steps
    x0 = None
    if start is not None:
        x0 = np.array(start, dtype=np.float64).reshape(-1)
        if x0.size != problem.dim or not np.all(np.isfinite(x0)):
            raise ParameterError(
                f"trajectories: start must be {problem.dim} finite number(s) for {problem.name}, got {list(start)!r}"
            )
    return {
        label: run_path(problem, tx, steps, x0, label=label, lr=lr)
        for label, tx, lr in _resolve(problem, optimizers, lrs)
    }


# ---------------------------------------------------------------------------------------------- drawing

FIGSIZE = (12.0, 4.8)  # inches; at DPI this is a 1200 × 480 pixel PNG
DPI = 100
GIF_DPI = 70  # GIF frames are smaller: 840 × 336
_GRID = 300  # contour grid points per axis


def _out_path(out: str | os.PathLike[str]) -> Path:
    """``out`` as a Path whose parent exists; refuses an existing directory."""
    path = Path(out)
    if path.is_dir():
        raise ParameterError(f"landscape: output path {str(path)!r} is a directory; give a file name")
    if path.exists() and not path.is_file():
        raise ParameterError(f"landscape: output path {str(path)!r} exists and is not a regular file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a parent that is a file, a read-only directory
        raise ParameterError(f"landscape: cannot create the folder of {str(path)!r} ({e.strerror or e})") from None
    return path


def _levels(problem: Problem, z: np.ndarray) -> tuple[np.ndarray, Any]:
    """Contour levels (and a colour norm) for the grid values ``z``: log-spaced in f − f* where that makes sense."""
    from matplotlib.colors import LogNorm, Normalize

    if problem.log_levels and problem.bounded:
        gap = z - problem.min_value
        top = float(gap.max())
        low = max(float(np.quantile(gap, 0.001)), top * 1e-7)
        levels = problem.min_value + np.geomspace(low, top, 30)
        return levels, LogNorm(levels[0] - problem.min_value, top)
    levels = np.linspace(float(z.min()), float(z.max()), 31)
    return levels, Normalize(levels[0], levels[-1])


def _loss_curve(problem: Problem, traj: Trajectory) -> np.ndarray:
    """What the right panel plots: f − f* (non-positive values hidden on the log axis) or f itself."""
    if problem.bounded:
        gap = traj.loss - problem.min_value
        return np.where(gap > 0, gap, np.nan)
    return traj.loss


class _Drawing:
    """The two panels and one line per optimizer; :meth:`show` draws the paths up to step k."""

    def __init__(self, problem: Problem, paths: Mapping[str, Trajectory], figsize, dpi, title: str | None):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.problem = problem
        self.paths = list(paths.values())
        if not self.paths:
            raise ParameterError("plot_landscape: no trajectories to draw")
        for traj in self.paths:
            if traj.path.ndim != 2 or traj.path.shape[1] != problem.dim:
                raise ParameterError(
                    f"plot_landscape: path of {traj.label!r} has shape {traj.path.shape}, "
                    f"expected (steps + 1, {problem.dim}) for {problem.name}"
                )
        self.fig = Figure(figsize=figsize, dpi=dpi)
        FigureCanvasAgg(self.fig)  # the Agg backend, explicitly; pyplot is never imported
        self.fig.subplots_adjust(left=0.06, right=0.98, bottom=0.12, top=0.86, wspace=0.2)
        self.ax_map, self.ax_loss = self.fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1.0]})
        self.colors = [f"C{i % 10}" for i in range(len(self.paths))]
        self.longest = max(t.steps_run for t in self.paths)
        self._draw_map()
        self._draw_loss_axes()
        heading = title if title is not None else f"{problem.title}:  {problem.formula}"
        self.fig.suptitle(heading, fontsize=13)
        self.fig.text(0.5, 0.915, self._subtitle(), ha="center", fontsize=9, color="0.3")

    def _subtitle(self) -> str:
        notes = [f"start {_point(self.problem.x0 if not self.paths else self.paths[0].path[0])}"]
        if self.problem.bounded:
            mins = self.problem.minima
            where = _point(mins[0]) if len(mins) == 1 else f"{len(mins)} points"
            notes.append(f"minimum f* = {self.problem.min_value:g} at {where}")
        else:
            notes.append("no minimum (unbounded below): each path stops where it leaves the plot box")
        stopped = [f"{t.label} {t.stop} at step {t.steps_run + (t.stop == 'diverged')}" for t in self.paths if t.stop]
        if any(t.stop == "diverged" for t in self.paths):
            notes.append("; ".join(s for s in stopped if "diverged" in s))
        return "  ·  ".join(notes)

    def _draw_map(self) -> None:
        problem, ax = self.problem, self.ax_map
        box = problem.plot_box()
        if problem.dim == 1:
            w = np.linspace(*box[0], 400)
            ax.plot(w, problem.values(w[None]), color="0.55", lw=1.5, zorder=1)
            ax.set_xlim(*box[0])
            ax.set_xlabel("w")
            ax.set_ylabel("L(w)")
        else:
            x = np.linspace(*box[0], _GRID)
            y = np.linspace(*box[1], _GRID)
            gx, gy = np.meshgrid(x, y)
            z = problem.values(np.stack([gx, gy]))
            levels, norm = _levels(problem, z)
            ax.contourf(gx, gy, z, levels=levels, norm=norm, cmap="Blues_r", alpha=0.35, extend="both")
            ax.contour(gx, gy, z, levels=levels, norm=norm, cmap="Blues_r", linewidths=0.6)
            ax.set_xlim(*box[0])
            ax.set_ylim(*box[1])
            ax.set_xlabel("x")
            ax.set_ylabel("y")

        # Start, minima and saddle points; in 1-D they sit on the curve.
        def at(p: np.ndarray) -> tuple[Any, Any]:
            return (p[0], problem.loss(p)) if problem.dim == 1 else (p[0], p[1])

        start = self.paths[0].path[0]
        ax.plot(*at(start), "o", ms=9, mfc="white", mec="black", mew=1.5, zorder=2.5, label="start")
        for i, m in enumerate(problem.minima):
            ax.plot(*at(m), "*", ms=15, mfc="gold", mec="black", zorder=2.5, label="minimum" if i == 0 else None)
        for i, s in enumerate(problem.saddles):
            ax.plot(*at(s), "X", ms=10, mfc="white", mec="black", zorder=2.5, label="saddle point" if i == 0 else None)
        ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
        self.map_lines = []
        self.heads = []
        one_d = problem.dim == 1  # iterates on a curve overlap: thin lines, one marker shape each
        for i, color in enumerate(self.colors):
            marker = "osD^vP<>*h"[i % 10] if one_d else "o"
            style = {"lw": 0.8, "ms": 5, "alpha": 0.75} if one_d else {"lw": 1.6, "ms": 2.5, "alpha": 0.9}
            # The first optimizer (sgd by default, often the shortest path) is drawn on top.
            zorder = 3 + 0.01 * (len(self.colors) - i)
            (line,) = ax.plot([], [], "-", marker=marker, color=color, zorder=zorder, **style)
            (head,) = ax.plot([], [], "o", color=color, ms=7, mec="black", mew=0.8, zorder=4)
            self.map_lines.append(line)
            self.heads.append(head)

    def _draw_loss_axes(self) -> None:
        problem, ax = self.problem, self.ax_loss
        curves = [_loss_curve(problem, t) for t in self.paths]
        values = np.concatenate(curves)
        values = values[np.isfinite(values)]
        ax.set_xlim(0, max(self.longest, 1))
        ax.set_xlabel("step")
        if problem.bounded:
            ax.set_yscale("log")
            name = "L(w)" if problem.dim == 1 else "f(x)"
            ax.set_ylabel(f"{name} − f* (log scale)" if problem.min_value != 0 else f"{name} (log scale)")
            if values.size:
                low, high = float(values.min()), float(values.max())
                ax.set_ylim(low / 3, high * 3)
        else:
            ax.set_ylabel("f(x)")
            if values.size:
                low, high = float(values.min()), float(values.max())
                pad = 0.05 * (high - low or 1.0)
                ax.set_ylim(low - pad, high + pad)
        ax.grid(True, which="major", alpha=0.3)
        self.curves = curves
        self.loss_lines = []
        for traj, color in zip(self.paths, self.colors, strict=True):
            lr = "" if traj.lr is None else f" (lr {traj.lr:g})"
            stop = f", {traj.stop} at step {traj.steps_run}" if traj.stop else ""
            (line,) = ax.plot([], [], color=color, lw=1.6, label=f"{traj.label}{lr}{stop}")
            self.loss_lines.append(line)
        ax.legend(loc="best", fontsize=8, framealpha=0.85)

    def show(self, step: int) -> None:
        """Draw every path and loss curve up to update ``step`` (each path ends at its own last step)."""
        for i, traj in enumerate(self.paths):
            k = min(step, traj.steps_run)
            part = traj.path[: k + 1]
            if self.problem.dim == 1:
                self.map_lines[i].set_data(part[:, 0], traj.loss[: k + 1])
                self.heads[i].set_data([part[-1, 0]], [traj.loss[k]])
            else:
                self.map_lines[i].set_data(part[:, 0], part[:, 1])
                self.heads[i].set_data([part[-1, 0]], [part[-1, 1]])
            self.loss_lines[i].set_data(np.arange(k + 1), self.curves[i][: k + 1])


def plot_landscape(
    problem: Problem,
    paths: Mapping[str, Trajectory],
    out: str | os.PathLike[str] | None = None,
    *,
    animate: bool = False,
    frames: int = 60,
    fps: int = 12,
    figsize: tuple[float, float] = FIGSIZE,
    dpi: int | None = None,
    title: str | None = None,
) -> Figure:
    """Draw ``paths`` (from :func:`trajectories`) on ``problem``; write a PNG (or a GIF) to ``out`` if given.

    Left: contours of f over the plot box (log-spaced in f − f* for functions
    with a minimum, linear otherwise) with one coloured path per optimizer,
    the start (○), the minima (★) and saddle points (✕); for a 1-D function,
    the curve of f with each optimizer's iterates on it. Right: f − f* against
    the step on a log axis (f itself, linear, when f has no minimum).

    The PNG is ``figsize × dpi`` pixels (default 1200 × 480). With
    ``animate=True`` the paths grow over at most ``frames`` frames, written
    with matplotlib's ``PillowWriter`` (``out`` is required, default dpi
    ``GIF_DPI``). ``out``'s parent directories are created; an existing
    directory is refused. Returns the figure (a plain ``matplotlib.figure.Figure``
    on the Agg backend, not registered with pyplot).
    """
    check("plot_landscape", "frames", frames, Interval(2, 1000, integer=True))
    check("plot_landscape", "fps", fps, Interval(1, 100, integer=True))
    if animate and out is None:
        raise ParameterError("plot_landscape: animate=True needs an output path for the GIF")
    dpi = (GIF_DPI if animate else DPI) if dpi is None else dpi
    check("plot_landscape", "dpi", dpi, Interval(10, 600, integer=True))
    path = None if out is None else _out_path(out)
    drawing = _Drawing(problem, paths, figsize, dpi, title)
    if not animate:
        drawing.show(drawing.longest)
        if path is not None:
            try:
                drawing.fig.savefig(path, format="png", dpi=dpi)
            except OSError as e:
                raise ParameterError(f"landscape: cannot write {str(path)!r} ({e.strerror or e})") from None
        return drawing.fig

    from matplotlib.animation import PillowWriter

    count = min(frames, drawing.longest + 1)
    steps = np.unique(np.round(np.linspace(0, drawing.longest, count)).astype(int))
    writer = PillowWriter(fps=fps)
    with writer.saving(drawing.fig, str(path), dpi):
        for k in steps:
            drawing.show(int(k))
            writer.grab_frame()
    return drawing.fig


def _point(x) -> str:
    return "(" + ", ".join(f"{float(v):g}" for v in np.ravel(x)) + ")"


def _box(problem: Problem) -> str:
    names = ("w",) if problem.dim == 1 else ("x", "y")
    return ", ".join(f"{n} ∈ [{lo:g}, {hi:g}]" for n, (lo, hi) in zip(names, problem.plot_box(), strict=True))


__all__ = [
    "DEFAULT_OPTIMIZERS",
    "DEFAULT_STEPS",
    "LEARNING_RATES",
    "RECIPES",
    "Trajectory",
    "default_lr",
    "default_steps",
    "make_optimizer",
    "plot_landscape",
    "run_path",
    "trajectories",
]
