"""descend.lab.stats: the bootstrap interval (hand-computed cases, its coverage on normal data, scipy's), the
tie groups of the ranking, and the protocol checks (grid edge, still improving, robust axis limits)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from descend.errors import ParameterError
from descend.lab import stats as S


def test_bootstrap_hand_computed_cases() -> None:
    # one value, or equal values: no noise to estimate, the interval is the point
    assert S.bootstrap_ci([0.7]) == S.Interval(0.7, 0.7, 0.7, 1)
    assert S.bootstrap_ci([0.5, 0.5, 0.5])[:3] == (0.5, 0.5, 0.5)
    # two values a < b: a resample's mean is a (p 1/4), (a+b)/2 (1/2) or b (1/4); 2.5 % and 97.5 % quantiles
    # of that are a and b
    iv = S.bootstrap_ci([1.0, 2.0])
    assert (iv.estimate, iv.low, iv.high, iv.n) == (1.5, 1.0, 2.0, 2)
    # three values: P(mean = min) = 1/27 ≈ 3.7 % > 2.5 %, so the 95 % interval is [min, max]; at 80 % it is
    # narrower: the 10 % quantile is the second-smallest mean (1 + 1 + 2)/3 (P(mean ≤ 4/3) = 4/27 ≈ 14.8 %)
    assert S.bootstrap_ci([1.0, 2.0, 3.0])[1:3] == (1.0, 3.0)
    low, high = S.bootstrap_ci([1.0, 2.0, 3.0], confidence=0.8)[1:3]
    assert low == pytest.approx(4 / 3) and high == pytest.approx(8 / 3)


def test_bootstrap_is_seeded_and_deterministic() -> None:
    x = np.random.default_rng(3).normal(size=12)
    assert S.bootstrap_ci(x) == S.bootstrap_ci(x)
    assert S.bootstrap_ci(x, seed=1) != S.bootstrap_ci(x, seed=2)  # another seed, another (close) interval
    a, b = S.bootstrap_ci(x, seed=1), S.bootstrap_ci(x, seed=2)
    assert abs(a.low - b.low) < 0.05 and abs(a.high - b.high) < 0.05


def test_bootstrap_covers_the_mean_of_normal_data_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    trials, n = 400, 25
    hits = 0
    for _ in range(trials):
        x = rng.normal(loc=3.0, scale=2.0, size=n)
        iv = S.bootstrap_ci(x, resamples=2000, seed=int(rng.integers(1 << 30)))
        hits += iv.low <= 3.0 <= iv.high
    # the percentile bootstrap undercovers slightly at n = 25 (about 93 %); 400 trials give ± 1.3 % of noise
    assert 0.89 <= hits / trials <= 0.98, hits / trials


def test_bootstrap_agrees_with_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(7).normal(0.8, 0.05, size=15)
    ours = S.bootstrap_ci(x, resamples=20_000)
    theirs = scipy_stats.bootstrap(
        (x,), np.mean, confidence_level=0.95, n_resamples=20_000, method="percentile", rng=np.random.default_rng(1)
    ).confidence_interval
    spread = x.std() / math.sqrt(len(x))
    assert ours.low == pytest.approx(theirs.low, abs=0.05 * spread)
    assert ours.high == pytest.approx(theirs.high, abs=0.05 * spread)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"values": []}, "at least one value"),
        ({"values": [1.0, math.nan]}, "must be finite"),
        ({"values": [1.0], "confidence": 1.0}, "confidence must be"),
        ({"values": [1.0], "resamples": 0}, "resamples must be"),
    ],
)
def test_bootstrap_bad_input(kwargs, message) -> None:
    values = kwargs.pop("values")
    with pytest.raises(ParameterError, match=message):
        S.bootstrap_ci(values, **kwargs)


def iv(estimate: float, low: float, high: float) -> S.Interval:
    return S.Interval(estimate, low, high, 3)


def test_tie_groups_and_ranks() -> None:
    intervals = {
        "sgd": iv(0.80, 0.78, 0.82),
        "nesterov": iv(0.90, 0.88, 0.92),
        "adamw": iv(0.89, 0.86, 0.91),
        "momentum": iv(0.885, 0.87, 0.90),
        "adagrad": None,  # diverged
        "adam": iv(0.86, 0.855, 0.865),  # overlaps adamw only: starts a group of its own
    }
    groups = S.tie_groups(intervals)
    assert groups == [["nesterov", "adamw", "momentum"], ["adam"], ["sgd"], ["adagrad"]]
    assert S.group_ranks(groups) == {"nesterov": "1", "adamw": "1", "momentum": "1", "adam": "4", "sgd": "5",
                                     "adagrad": "6"}  # fmt: skip
    assert S.ties_sentence(groups[0]) == "nesterov, adamw and momentum are tied: their 95 % intervals overlap."
    assert S.ties_sentence(["a", "b"]) == "a and b are tied: their 95 % intervals overlap."
    assert S.ties_sentence(["a"]) is None
    # lower is better (a loss): the order flips
    assert S.tie_groups({"a": iv(1.0, 0.9, 1.1), "b": iv(2.0, 1.9, 2.1)}, higher_is_better=False) == [["a"], ["b"]]


def test_tie_groups_need_every_pair_to_overlap() -> None:
    # a overlaps b and b overlaps c, but a and c are apart: {a, b} then {c}
    groups = S.tie_groups({"a": iv(0.9, 0.85, 0.95), "b": iv(0.83, 0.8, 0.86), "c": iv(0.78, 0.75, 0.81)})
    assert groups == [["a", "b"], ["c"]]


def test_grid_edge() -> None:
    grid = [1e-3, 3e-3, 1e-2]
    assert S.grid_edge(grid, 1e-3) == "low"
    assert S.grid_edge(grid, 1e-2) == "high"
    assert S.grid_edge(grid, 3e-3) is None
    assert S.grid_edge([1e-3], 1e-3) == "only"
    assert S.grid_edge(grid, None) is None


def test_still_improving() -> None:
    flat = [0.5, 0.7, 0.8, 0.85, 0.86, 0.86, 0.861, 0.86, 0.859, 0.86]
    assert not S.still_improving(flat).improving
    rising = [0.5 + 0.01 * i for i in range(10)]  # +0.01 per epoch: over the last 3 epochs the fit rises 0.02
    trend = S.still_improving(rising)
    assert trend.improving and trend.window == 3 and trend.rise == pytest.approx(0.02)
    assert S.still_improving([0.5 + 0.01 * i for i in range(20)]).window == 4  # a fifth of the epochs
    # a loss falling is improving when lower is better
    assert S.still_improving([1.0, 0.9, 0.8, 0.7], higher_is_better=False).improving
    assert not S.still_improving([0.1, 0.9]).improving  # too few epochs to say
    assert not S.still_improving([0.5 + 0.001 * i for i in range(10)]).improving  # below min_gain


def test_robust_limits_ignore_one_outlier() -> None:
    values = [0.1, 0.12, 0.11, 0.13, 0.12, 0.1, 0.14, 25.0]
    limits = S.robust_limits(values)
    assert limits is not None and limits.clipped == 1 and limits.total == 8
    assert limits.low < 0.1 and 0.14 < limits.high < 0.2
    assert S.robust_limits([0.1, 0.2, 0.3, 0.4]) is None  # nothing to clip
    assert S.robust_limits([math.nan]) is None
