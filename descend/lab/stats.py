"""Honest statistics for a comparison: intervals over seeds, ties within noise, and warnings about the protocol.

Pure functions of numbers (no files, no plots), used by :mod:`descend.lab.report`:

* :func:`bootstrap_ci`: a seeded percentile-bootstrap confidence interval of the mean over seeds;
* :func:`tie_groups` / :func:`ties_sentence`: the ranking as groups of optimizers tied within noise
  ("nesterov, adamw and momentum are tied: their 95 % intervals overlap") instead of a strict order;
* :func:`grid_edge`: whether a selected learning rate lies at the edge of its grid (the optimum may be outside);
* :func:`still_improving`: whether a curve is still rising at the last epoch (the budget was too short);
* :func:`robust_limits`: axis limits that one outlier does not stretch (Tukey's fences).

>>> bootstrap_ci([0.81, 0.83, 0.82])
Interval(estimate=0.82, low=0.81, high=0.83, n=3, confidence=0.95)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from descend._validation import Interval as _Range
from descend._validation import check
from descend.errors import ParameterError

OWNER = "stats"
#: Resamples of :func:`bootstrap_ci` (the Monte-Carlo error of a 95 % bound is then about 0.2 % of the spread).
RESAMPLES = 10_000
CONFIDENCE = 0.95


class Interval(NamedTuple):
    """A point estimate with its confidence interval over ``n`` values."""

    estimate: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE

    def overlaps(self, other: Interval) -> bool:
        return self.low <= other.high and other.low <= self.high

    def __str__(self) -> str:
        return f"[{self.low:.4f}, {self.high:.4f}]"


def _finite_values(values: Sequence[float], what: str) -> np.ndarray:
    try:
        x = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ParameterError(f"{OWNER}: {what} must be numbers, got {values!r}") from None
    if not np.all(np.isfinite(x)):
        raise ParameterError(f"{OWNER}: {what} must be finite, got {x.tolist()}")
    return x


def bootstrap_ci(
    values: Sequence[float], *, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> Interval:
    """The percentile-bootstrap interval of the mean of ``values`` (one per seed).

    ``resamples`` times, draw ``len(values)`` values with replacement (``np.random.default_rng(seed)``, so the
    interval is deterministic) and take their mean; the interval runs from the ``(1 − confidence)/2`` to the
    ``(1 + confidence)/2`` quantile of those means. One value gives the degenerate interval [v, v]: with one
    seed there is no estimate of the noise. The percentile bootstrap is too narrow for very few values (with 3
    seeds it is at most the range of the three): read it as "the spread the seeds showed", not as a guarantee.
    """
    check(OWNER, "confidence", confidence, _Range(0, 1, closed="neither"))
    check(OWNER, "resamples", resamples, _Range(1, None, integer=True))
    check(OWNER, "seed", seed, _Range(0, None, integer=True))
    x = _finite_values(values, "values")
    if x.size == 0:
        raise ParameterError(f"{OWNER}: bootstrap_ci needs at least one value, got none")
    estimate = float(math.fsum(x.tolist()) / x.size)
    if x.size == 1 or np.all(x == x[0]):
        return Interval(estimate, float(x.min()), float(x.max()), int(x.size), float(confidence))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(int(resamples), x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    # The mean of a resample never leaves [min, max]; quantile interpolation may round past it by an ulp.
    low, high = max(float(low), float(x.min())), min(float(high), float(x.max()))
    return Interval(estimate, low, high, int(x.size), float(confidence))


def tie_groups(intervals: dict[str, Interval | None], higher_is_better: bool = True) -> list[list[str]]:
    """The ranking as groups of names tied within noise, best group first.

    Names are ordered by their estimate (ties of the estimate: by name); a group is a run of consecutive
    names whose intervals all overlap pairwise, so "they are tied" holds for every pair in it; the first
    name whose interval misses one of the group's starts the next group. A name without an interval (None:
    no finished seed) is a group of its own, after all the others.
    """
    known = [(n, iv) for n, iv in intervals.items() if iv is not None]
    sign = -1.0 if higher_is_better else 1.0
    known.sort(key=lambda item: (sign * item[1].estimate, item[0]))
    groups: list[list[str]] = []
    members: list[Interval] = []
    for name, iv in known:
        if groups and all(iv.overlaps(m) for m in members):
            groups[-1].append(name)
            members.append(iv)
        else:
            groups.append([name])
            members = [iv]
    groups += [[n] for n, iv in intervals.items() if iv is None]
    return groups


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def ties_sentence(group: Sequence[str], confidence: float = CONFIDENCE) -> str | None:
    """``"nesterov, adamw and momentum are tied: their 95 % intervals overlap."`` (None for a group of one)."""
    if len(group) < 2:
        return None
    return f"{_and(list(group))} are tied: their {100 * confidence:g} % intervals overlap."


def group_ranks(groups: Sequence[Sequence[str]]) -> dict[str, str]:
    """Each name's rank as the table shows it: the members of a group of ties share the group's rank (standard
    competition ranking, "1, 1, 1, 4": the group after a group of three starts at 4)."""
    ranks: dict[str, str] = {}
    position = 1
    for group in groups:
        for name in group:
            ranks[name] = str(position)
        position += len(group)
    return ranks


def grid_edge(grid: Sequence[float], selected: float | None) -> str | None:
    """``"low"`` / ``"high"`` when ``selected`` is the smallest / largest learning rate of a grid of two or
    more, ``"only"`` for a grid of one (nothing was tuned), else None (inside the grid, or nothing selected)."""
    if selected is None or not grid:
        return None
    if len(grid) == 1:
        return "only"
    if selected <= min(grid):
        return "low"
    if selected >= max(grid):
        return "high"
    return None


class Trend(NamedTuple):
    """The rise of a curve over its last ``window`` epochs (fitted by least squares), in its own units."""

    improving: bool
    rise: float  # fitted change over the window, signed so that > 0 is better
    window: int  # epochs


def still_improving(
    values: Sequence[float], *, min_gain: float = 0.005, higher_is_better: bool = True, window: int | None = None
) -> Trend:
    """Whether the curve ``values`` (one per epoch) still improves at its end.

    A least-squares line through the last ``window`` points (default: a fifth of the epochs, at least 3) must
    rise by more than ``min_gain`` over the window (0.005: half a point of accuracy). Fewer than 3 finite
    points (or fewer than ``window``) are never called improving.
    """
    check(OWNER, "min_gain", min_gain, _Range(0, None))
    y = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    k = max(3, math.ceil(len(y) / 5)) if window is None else int(window)
    if k < 2:
        raise ParameterError(f"{OWNER}: window must be >= 2 epochs, got {window!r}")
    if len(y) < k:
        return Trend(False, 0.0, k)
    tail = y[-k:]
    t = np.arange(k, dtype=np.float64)
    slope = float(np.polyfit(t, tail, 1)[0])
    rise = slope * (k - 1) * (1.0 if higher_is_better else -1.0)
    return Trend(rise > min_gain, rise, k)


class Limits(NamedTuple):
    """Axis limits from :func:`robust_limits`; ``clipped`` values lie outside them."""

    low: float
    high: float
    clipped: int
    total: int


def robust_limits(values: Sequence[float], *, fence: float = 3.0, pad: float = 0.08) -> Limits | None:
    """Limits that show every value except far outliers: Tukey's fences ``[q1 − fence·IQR, q3 + fence·IQR]``
    select the inliers, and the limits are their range padded by ``pad`` of it on each side.

    None when nothing lies outside the fences (the axis needs no clipping) or there are no finite values.
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return None
    q1, q3 = np.quantile(x, [0.25, 0.75])
    iqr = q3 - q1
    lo_fence, hi_fence = q1 - fence * iqr, q3 + fence * iqr
    inside = x[(x >= lo_fence) & (x <= hi_fence)]
    clipped = int(x.size - inside.size)
    if clipped == 0 or inside.size == 0:
        return None
    lo, hi = float(inside.min()), float(inside.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.1
    return Limits(lo - pad * span, hi + pad * span, clipped, int(x.size))


__all__ = [
    "CONFIDENCE",
    "RESAMPLES",
    "Interval",
    "Limits",
    "Trend",
    "bootstrap_ci",
    "grid_edge",
    "group_ranks",
    "robust_limits",
    "still_improving",
    "tie_groups",
    "ties_sentence",
]
