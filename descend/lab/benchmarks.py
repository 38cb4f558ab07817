"""Run optimizers on test functions: :func:`minimize` and the tuned optimizer suite.

:func:`minimize` is the whole experiment loop, in the API every user writes::

    state = tx.init(x)
    updates, state = tx.update(fn.grad(x), state, x)
    x = dc.optim.apply_updates(x, updates)

:data:`SUITE` lists every named optimizer of :mod:`descend.optim` with a
learning rate tuned per test function (by running; the comment above it says
how), and :func:`benchmark` runs a suite on one
:class:`~descend.lab.functions.Problem`. ``descend demo`` prints
:func:`benchmark` for each of :func:`demo_problems`; ``tests/cli/test_demo.py``
checks that every optimizer reaches the quadratic's minimum and stays there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from descend import optim, schedules
from descend._validation import NONNEGATIVE, Interval, check
from descend.errors import ParameterError
from descend.lab.functions import Problem, ill_conditioned_quadratic, rosenbrock
from descend.optim import registry
from descend.optim.base import GradientTransformation

_STEPS = Interval(1, None, closed="left", integer=True)


class MinimizeResult(NamedTuple):
    """What one run of :func:`minimize` did."""

    steps_to_tol: int | None  # first step k (1-based) with f(x_k) − f* ≤ tol; None if never
    steps_run: int  # updates applied (stops early at tol or on divergence)
    final_loss: float  # f at the last iterate
    x: np.ndarray  # the last iterate
    losses: np.ndarray  # f after each update, shape (steps_run,)
    diverged: bool  # the loss or the iterate became NaN/inf

    @property
    def reached(self) -> bool:
        return self.steps_to_tol is not None


def minimize(
    tx: GradientTransformation,
    fn: Problem,
    x0: np.ndarray | None = None,
    steps: int = 1000,
    tol: float = 1e-6,
    *,
    stop_at_tol: bool = True,
) -> MinimizeResult:
    """Minimize ``fn`` with ``tx`` from ``x0`` (default ``fn.x0``) for at most ``steps`` updates.

    The minimum counts as reached at the first step whose loss is within
    ``tol`` of ``fn.min_value``; with ``stop_at_tol`` the run ends there. A run
    whose loss overflows stops and reports ``diverged=True`` (no warning).
    """
    if not isinstance(tx, GradientTransformation):
        raise ParameterError(f"minimize: tx must be a GradientTransformation, got {type(tx).__name__}")
    check("minimize", "steps", steps, _STEPS)
    check("minimize", "tol", tol, NONNEGATIVE)
    x = fn.start() if x0 is None else np.array(x0, dtype=np.float64)
    state = tx.init(x)
    losses: list[float] = []
    reached_at: int | None = None
    diverged = False
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, steps + 1):
            updates, state = tx.update(fn.grad(x), state, x)
            x = optim.apply_updates(x, updates)
            value = fn.loss(x)
            losses.append(value)
            if not (math.isfinite(value) and np.all(np.isfinite(x))):
                diverged = True
                break
            if reached_at is None and value - fn.min_value <= tol:
                reached_at = k
                if stop_at_tol:
                    break
    return MinimizeResult(
        steps_to_tol=reached_at,
        steps_run=len(losses),
        final_loss=losses[-1],
        x=x,
        losses=np.array(losses),
        diverged=diverged,
    )


@dataclass(frozen=True)
class HalfLife:
    """The learning rate ``η_t = init·½^(t/half_life)``, i.e. ``dc.schedules.exponential_decay(init, 0.5, half_life)``.

    Sign-based methods (Lion) take steps of fixed size η, so at a constant rate
    they circle the minimum at a distance of about η; a decaying rate lets them
    settle. The table prints it as ``0.1·½^(t/200)``.
    """

    init: float
    half_life: int

    def schedule(self) -> schedules.Schedule:
        return schedules.exponential_decay(self.init, 0.5, transition_steps=self.half_life)

    def __str__(self) -> str:
        return f"{self.init:g}·½^(t/{self.half_life})"


LearningRate = float | HalfLife


@dataclass(frozen=True)
class OptimizerSpec:
    """A named optimizer of :mod:`descend.optim` with a tuned learning rate per problem."""

    label: str  # row name: "sgd nesterov"
    factory: str  # attribute of descend.optim: "sgd"
    lrs: Mapping[str, LearningRate]  # Problem.name -> learning rate
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # other torch-named hyperparameters

    @property
    def available(self) -> bool:
        return callable(getattr(optim, self.factory, None))

    @property
    def settings(self) -> str:
        """The non-default hyperparameters other than lr: ``"momentum=0.9, nesterov=True"``."""
        return ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())

    @classmethod
    def of(cls, name: str, lrs: Mapping[str, LearningRate], label: str | None = None, **kwargs: Any) -> OptimizerSpec:
        """The row of registry optimizer ``name`` (:mod:`descend.optim.registry`: factory and fixed arguments),
        with its tuned ``lrs``; ``kwargs`` override the registry's fixed arguments."""
        info = registry.get(name)
        return cls(label or name, info.factory, lrs, {**info.fixed, **kwargs})

    def make(self, lr: LearningRate) -> GradientTransformation:
        factory = getattr(optim, self.factory, None)
        if factory is None:
            raise ParameterError(f"benchmark: descend.optim has no optimizer {self.factory!r} (row {self.label!r})")
        return factory(lr=lr.schedule() if isinstance(lr, HalfLife) else lr, **self.kwargs)


# Learning rates tuned by running every optimizer over a grid of constant rates and half-life decays on
# both demo problems (full runs, tol 1e-6), picking a rate that reaches the minimum and stays there, a
# step or two inside the stable range rather than at its edge. The five torch-only ones (adagrad,
# rmsprop, adadelta, asgd, rprop) were tuned with torch.optim, which descend matches step for step.
# Some cannot reach f* + 1e-6 on Rosenbrock within the step budget at any rate tried: their rows
# show "—" and the final loss they got to, which is the honest comparison.
SUITE: tuple[OptimizerSpec, ...] = (
    OptimizerSpec.of("sgd", {"quadratic": 0.015, "rosenbrock": 2e-3}),
    # torch's SGD(momentum=0.9), as "momentum" is everywhere; at these constant rates it is the same trajectory
    # as the seed documents' heavy ball (descend.optim.momentum, registry names heavy-ball-seed000/seed001).
    OptimizerSpec.of("momentum", {"quadratic": 0.01, "rosenbrock": 2e-3}),
    OptimizerSpec.of("nesterov", {"quadratic": 5e-3, "rosenbrock": 1e-3}, label="sgd nesterov"),
    OptimizerSpec.of("adagrad", {"quadratic": 0.5, "rosenbrock": 1.0}),
    OptimizerSpec.of("rmsprop", {"quadratic": 0.03, "rosenbrock": HalfLife(0.1, 300)}),
    OptimizerSpec.of("adadelta", {"quadratic": 1.0, "rosenbrock": HalfLife(1.0, 1000)}),
    OptimizerSpec.of("adam", {"quadratic": 0.1, "rosenbrock": 0.05}),
    # torch's default weight_decay = 0.01 pulls the iterate toward 0, away from (1, 1): AdamW then
    # stalls at f ≈ 5e-6 on the quadratic and 1e-4 on Rosenbrock, above the tolerance.
    OptimizerSpec.of("adamw", {"quadratic": 0.1, "rosenbrock": 0.03}, weight_decay=1e-4),
    OptimizerSpec.of("adamax", {"quadratic": 0.1, "rosenbrock": HalfLife(0.3, 1000)}),
    OptimizerSpec.of("nadam", {"quadratic": 0.1, "rosenbrock": HalfLife(0.1, 1000)}),
    # RAdam's first steps are un-normalized SGD with momentum: on Rosenbrock (|g| ≈ 230 at the start)
    # any lr above ~5e-3 throws the iterate out of the valley.
    OptimizerSpec.of("radam", {"quadratic": 0.05, "rosenbrock": 5e-3}),
    OptimizerSpec.of("asgd", {"quadratic": 0.015, "rosenbrock": 2e-3}),
    OptimizerSpec.of("rprop", {"quadratic": 0.01, "rosenbrock": 0.01}),
    OptimizerSpec.of("adafactor", {"quadratic": 0.1, "rosenbrock": HalfLife(0.1, 1000)}),
    # Lion steps ±η per coordinate: at a constant rate it circles the minimum, so the rate decays.
    OptimizerSpec.of("lion", {"quadratic": HalfLife(0.1, 100), "rosenbrock": HalfLife(0.1, 100)}),
)


class BenchmarkRow(NamedTuple):
    label: str
    lr: LearningRate
    settings: str  # other hyperparameters, "" for torch's defaults
    result: MinimizeResult


def benchmark(
    fn: Problem, specs: Iterable[OptimizerSpec] = SUITE, steps: int = 2000, tol: float = 1e-6
) -> list[BenchmarkRow]:
    """Run each spec's optimizer, at its tuned learning rate for ``fn``, for all ``steps`` (no early stop).

    Each row's ``result.steps_to_tol`` is the first step within ``tol`` of the
    minimum and ``result.final_loss`` the loss after ``steps`` updates, so a run
    that touches the minimum and then leaves it shows as such.
    """
    rows = []
    for spec in specs:
        if fn.name not in spec.lrs:
            raise ParameterError(
                f"benchmark: {spec.label} has no tuned learning rate for {fn.name!r}; it has {sorted(spec.lrs)}"
            )
        lr = spec.lrs[fn.name]
        result = minimize(spec.make(lr), fn, steps=steps, tol=tol, stop_at_tol=False)
        rows.append(BenchmarkRow(spec.label, lr, spec.settings, result))
    return rows


def missing_optimizers(specs: Iterable[OptimizerSpec] = SUITE) -> list[str]:
    """Factories of ``specs`` that :mod:`descend.optim` does not provide (yet)."""
    return [s.factory for s in specs if not s.available]


# What ``descend demo`` runs: each problem with its step budget, all at one tolerance.
DEMO_TOL = 1e-6


def demo_problems() -> list[tuple[Problem, int]]:
    """``(problem, steps)`` pairs of ``descend demo``: the ill-conditioned quadratic and Rosenbrock."""
    return [(ill_conditioned_quadratic(), 2000), (rosenbrock(), 5000)]


__all__ = [
    "DEMO_TOL",
    "SUITE",
    "BenchmarkRow",
    "HalfLife",
    "LearningRate",
    "MinimizeResult",
    "OptimizerSpec",
    "benchmark",
    "demo_problems",
    "minimize",
    "missing_optimizers",
]
