"""AlgoPerf-style scoring: steps and time to a target per optimizer and workload, and performance profiles.

For each workload ``p`` and optimizer ``s`` the *cost* ``t[p][s]`` is what it took to reach the workload's
validation target (optimizer steps, or seconds of training), at the optimizer's selected learning rate: the
median over its seeds, where a seed that never reached the target counts as infinite (so an optimizer that
misses the target on half its seeds or more has no finite cost). The metric is evaluated at the end of each
epoch, so a cost is the step count (or time) at the end of the first epoch whose metric reached the target.

The *performance profile* (Dolan and Moré 2002, as AlgoPerf scores training algorithms) of optimizer ``s``
is the fraction of workloads it solves within a factor τ of the fastest optimizer on each::

    r[p][s] = t[p][s] / min_s' t[p][s']          ρ_s(τ) = |{p : r[p][s] ≤ τ}| / |P|

with τ on a log axis from 1. Its *score* is the area under ρ_s over log τ from 0 to log τ_max, divided by
log τ_max (1: fastest on every workload; 0: never within τ_max of the fastest); AlgoPerf uses τ_max = 4.

>>> costs = {"mnist1d-mlp": {"adam": 100, "sgd": 200}, "fmnist-mlp": {"adam": 300, "sgd": math.inf}}
>>> profile_score(costs)["sgd"]          # solves half the workloads, at ratio 2: 0.5 · (1 − log 2 / log 4)
0.25
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from descend._validation import Interval, check
from descend.errors import ParameterError

#: AlgoPerf's largest performance ratio counted by the score.
TAU_MAX = 4.0


@dataclass(frozen=True)
class Reach:
    """How one optimizer got to the target on one workload (its seeds at the selected learning rate)."""

    optimizer: str
    steps: float  # median over seeds (inf: not reached by at least half the seeds)
    time: float  # seconds, the same way
    epochs: float
    reached: int  # seeds that reached the target
    seeds: int


def first_reach(rows: Sequence[Mapping[str, float | None]], metric: str, target: float) -> tuple[float, float, float]:
    """(epoch, step, time) at the end of the first epoch whose ``metric`` is ≥ ``target``; all inf if none."""
    for row in rows:
        value = row.get(metric)
        if value is not None and math.isfinite(value) and value >= target:
            step = row.get("step")
            time = row.get("time")
            return (
                float(row["epoch"]),
                math.inf if step is None else float(step),
                math.inf if time is None else float(time),
            )
    return math.inf, math.inf, math.inf


def _median(values: Sequence[float]) -> float:
    if not values:
        return math.inf
    return float(np.median(np.asarray(values, dtype=np.float64)))


def reach(comparison, target: float | None = None) -> dict[str, Reach]:
    """optimizer -> :class:`Reach` for a finished :class:`~descend.lab.compare.Comparison` (target: its own).

    An optimizer that diverged at every learning rate, or whose seeds are unfinished, has infinite costs.
    """
    target = comparison.target() if target is None else float(target)
    out: dict[str, Reach] = {}
    for name in comparison.plan["optimizers"]:
        runs = [r for r in comparison.seed_results(name) if r.finished]
        found = [first_reach(r.metrics, comparison.metric, target) if not r.diverged else (math.inf,) * 3
                 for r in runs]  # fmt: skip
        out[name] = Reach(
            name,
            steps=_median([f[1] for f in found]),
            time=_median([f[2] for f in found]),
            epochs=_median([f[0] for f in found]),
            reached=sum(math.isfinite(f[1]) for f in found),
            seeds=len(comparison.plan["seeds"]),
        )
    return out


def _ratios(costs: Mapping[str, Mapping[str, float]], optimizers: Sequence[str]) -> np.ndarray:
    """ratios[p, s] = t[p][s] / min over s of t[p]: inf when s did not reach the target (or nobody did)."""
    table = np.full((len(costs), len(optimizers)), math.inf)
    for i, row in enumerate(costs.values()):
        for j, name in enumerate(optimizers):
            value = row.get(name, math.inf)
            if value is None or (isinstance(value, float) and math.isnan(value)) or value < 0:
                raise ParameterError(f"profile: costs must be >= 0 or inf, got {value!r} for {name}")
            table[i, j] = float(value)
    best = table.min(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(np.isfinite(table) & np.isfinite(best), table / np.where(best > 0, best, 1.0), math.inf)
    ratios[np.isfinite(table) & (best == 0) & (table == 0)] = 1.0
    ratios[np.isfinite(table) & (best == 0) & (table > 0)] = math.inf  # the fastest took no time: others lose
    return ratios


def _optimizers(costs: Mapping[str, Mapping[str, float]]) -> list[str]:
    return list(dict.fromkeys(name for row in costs.values() for name in row))


def performance_ratios(costs: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """workload -> optimizer -> r[p][s] (1 for the fastest; inf for one that did not reach the target)."""
    names = _optimizers(costs)
    ratios = _ratios(costs, names)
    return {p: {s: float(ratios[i, j]) for j, s in enumerate(names)} for i, p in enumerate(costs)}


def performance_profile(costs: Mapping[str, Mapping[str, float]], taus: Sequence[float]) -> dict[str, np.ndarray]:
    """optimizer -> ρ_s(τ) at each τ of ``taus`` (fractions of the workloads in ``costs``)."""
    if not costs:
        raise ParameterError("profile: no workloads given")
    tau = np.asarray(taus, dtype=np.float64)
    if tau.ndim != 1 or not np.all(tau >= 1):
        raise ParameterError(f"profile: taus must be numbers >= 1, got {list(taus)!r}")
    names = _optimizers(costs)
    ratios = _ratios(costs, names)
    return {s: (ratios[:, j][None, :] <= tau[:, None]).mean(axis=1) for j, s in enumerate(names)}


def profile_score(costs: Mapping[str, Mapping[str, float]], tau_max: float = TAU_MAX) -> dict[str, float]:
    """optimizer -> the normalized area under its performance profile over log τ in [0, log ``tau_max``]."""
    check("profile", "tau_max", tau_max, Interval(1, None, closed="neither"))
    if not costs:
        raise ParameterError("profile: no workloads given")
    names = _optimizers(costs)
    ratios = _ratios(costs, names)
    log_max = math.log(tau_max)
    with np.errstate(divide="ignore"):
        # each workload solved at ratio r ≤ τ_max contributes (log τ_max − log r) / log τ_max
        area = np.clip(log_max - np.log(ratios), 0.0, None) / log_max
    area[~np.isfinite(ratios)] = 0.0
    return {s: float(area[:, j].mean()) for j, s in enumerate(names)}


def tau_axis(costs: Mapping[str, Mapping[str, float]], tau_max: float = TAU_MAX, points: int = 400) -> np.ndarray:
    """τ values for drawing: log-spaced from 1 to the larger of ``tau_max`` and 1.1 × the largest finite ratio,
    with every finite ratio itself included so the steps of ρ fall exactly on them."""
    names = _optimizers(costs)
    ratios = _ratios(costs, names)
    finite = ratios[np.isfinite(ratios)]
    top = max(tau_max, 1.1 * float(finite.max())) if finite.size else tau_max
    grid = np.geomspace(1.0, top, points)
    return np.unique(np.concatenate([grid, finite]))


__all__ = [
    "TAU_MAX",
    "Reach",
    "first_reach",
    "performance_profile",
    "performance_ratios",
    "profile_score",
    "reach",
    "tau_axis",
]
