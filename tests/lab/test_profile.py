"""descend.lab.profile: steps and time to a target, performance ratios, profiles and scores (hand-computed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from descend.errors import ParameterError
from descend.lab import profile as P

INF = math.inf


def test_first_reach_is_the_end_of_the_first_epoch_at_the_target() -> None:
    rows = [
        {"epoch": 1, "step": 10, "time": 0.5, "val_accuracy": 0.5},
        {"epoch": 2, "step": 20, "time": 1.0, "val_accuracy": None},
        {"epoch": 3, "step": 30, "time": 1.5, "val_accuracy": 0.91},
        {"epoch": 4, "step": 40, "time": 2.0, "val_accuracy": 0.95},
    ]
    assert P.first_reach(rows, "val_accuracy", 0.9) == (3.0, 30.0, 1.5)
    assert P.first_reach(rows, "val_accuracy", 0.99) == (INF, INF, INF)


def test_ratios_profile_and_score_by_hand() -> None:
    costs = {
        "w1": {"adam": 100, "sgd": 200, "lion": 150},
        "w2": {"adam": 300, "sgd": INF, "lion": 300},
        "w3": {"adam": 50, "sgd": 25},  # lion did not run here: it counts as not reached
        "w4": {"adam": INF, "sgd": INF, "lion": INF},  # nobody reached the target
    }
    ratios = P.performance_ratios(costs)
    assert ratios["w1"] == {"adam": 1.0, "sgd": 2.0, "lion": 1.5}
    assert ratios["w2"] == {"adam": 1.0, "sgd": INF, "lion": 1.0}
    assert ratios["w3"] == {"adam": 2.0, "sgd": 1.0, "lion": INF}
    assert all(v == INF for v in ratios["w4"].values())
    rho = P.performance_profile(costs, [1.0, 1.5, 2.0, 100.0])
    np.testing.assert_allclose(rho["adam"], [0.5, 0.5, 0.75, 0.75])
    np.testing.assert_allclose(rho["sgd"], [0.25, 0.25, 0.5, 0.5])
    np.testing.assert_allclose(rho["lion"], [0.25, 0.5, 0.5, 0.5])
    # score: each workload solved at ratio r <= 4 adds (1 - log r / log 4) / 4
    score = P.profile_score(costs)
    assert score["adam"] == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert score["sgd"] == pytest.approx((0.5 + 0 + 1 + 0) / 4)
    assert score["lion"] == pytest.approx((1 - math.log(1.5) / math.log(4) + 1) / 4)
    assert P.profile_score(costs, tau_max=2.0)["sgd"] == pytest.approx((0 + 0 + 1 + 0) / 4)


def test_tau_axis_contains_every_finite_ratio() -> None:
    costs = {"w1": {"a": 1.0, "b": 7.0}}
    taus = P.tau_axis(costs)
    assert taus[0] == 1.0 and 7.0 in taus and taus[-1] == pytest.approx(7.7)
    assert np.all(np.diff(taus) > 0)


def test_bad_input() -> None:
    with pytest.raises(ParameterError, match="no workloads"):
        P.profile_score({})
    with pytest.raises(ParameterError, match="taus must be numbers >= 1"):
        P.performance_profile({"w": {"a": 1.0}}, [0.5])
    with pytest.raises(ParameterError, match="costs must be >= 0 or inf"):
        P.profile_score({"w": {"a": -1.0}})
    with pytest.raises(ParameterError, match="tau_max must be"):
        P.profile_score({"w": {"a": 1.0}}, tau_max=1.0)
