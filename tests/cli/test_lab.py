"""The lab behind the CLI: seed walk, test functions and the minimize runner."""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc
from descend.errors import ParameterError
from descend.lab import benchmarks, functions, seeds

PROBLEMS = [functions.ill_conditioned_quadratic(), functions.ill_conditioned_quadratic(7.0), functions.rosenbrock()]


def test_quadratic_walk_is_bit_identical_to_the_seed_loop() -> None:
    walk = seeds.quadratic_walk(lr=0.1, steps=50, start=0.0)
    w = 0.0
    for step in walk:
        w = w - 0.1 * (2 * (w - 3))
        assert step.w == w
        assert step.loss == (w - 3) ** 2
    assert [s.iteration for s in walk] == list(range(1, 51))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, r"quadratic_walk: steps must be an integer in \[1, inf\), got 0"),
        ({"start": float("inf")}, r"quadratic_walk: start must be in \(-inf, inf\), got inf"),
        ({"lr": -0.1}, r"sgd: lr must be .*got -0.1"),
    ],
)
def test_quadratic_walk_validates(kwargs, message) -> None:
    with pytest.raises(ParameterError, match=message):
        seeds.quadratic_walk(**kwargs)


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.formula)
def test_gradients_match_finite_differences(problem) -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        x = rng.uniform(-2, 2, size=2)
        h = 1e-6
        numeric = np.array(
            [(problem.loss(x + h * e) - problem.loss(x - h * e)) / (2 * h) for e in np.eye(2)], dtype=np.float64
        )
        np.testing.assert_allclose(problem.grad(x), numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.formula)
def test_minimizer_is_a_stationary_point_with_the_stated_value(problem) -> None:
    assert problem.loss(problem.minimizer) == problem.min_value
    np.testing.assert_array_equal(problem.grad(problem.minimizer), 0.0)
    assert problem.loss(problem.x0) > problem.min_value + 1.0


def test_minimize_reports_the_first_step_within_tolerance() -> None:
    problem = functions.ill_conditioned_quadratic()
    full = benchmarks.minimize(dc.optim.sgd(lr=0.01), problem, steps=1500, tol=1e-4, stop_at_tol=False)
    first = int(np.argmax(full.losses <= 1e-4)) + 1
    assert full.losses[first - 1] <= 1e-4 < full.losses[first - 2]
    assert full.steps_to_tol == first
    assert full.steps_run == 1500
    stopped = benchmarks.minimize(dc.optim.sgd(lr=0.01), problem, steps=1500, tol=1e-4)
    assert stopped.steps_run == stopped.steps_to_tol == first
    assert stopped.final_loss == full.losses[first - 1]
    np.testing.assert_array_equal(problem.x0, [-2.0, 2.0])  # the start was not mutated


def test_minimize_matches_a_hand_written_gradient_descent() -> None:
    problem = functions.rosenbrock()
    result = benchmarks.minimize(dc.optim.sgd(lr=1e-3), problem, steps=200, tol=0.0)
    x = problem.x0.copy()
    for _ in range(200):
        x = x - 1e-3 * problem.grad(x)
    np.testing.assert_allclose(result.x, x, rtol=1e-12)
    assert not result.reached


def test_minimize_flags_divergence_without_warnings() -> None:
    # κ = 100: plain gradient descent is stable only for lr < 0.02.
    result = benchmarks.minimize(dc.optim.sgd(lr=0.05), functions.ill_conditioned_quadratic(), steps=5000)
    assert result.diverged
    assert not result.reached
    assert result.steps_run < 5000


@pytest.mark.parametrize(("kwargs", "message"), [({"steps": 0}, "minimize: steps"), ({"tol": -1.0}, "minimize: tol")])
def test_minimize_validates(kwargs, message) -> None:
    with pytest.raises(ParameterError, match=message):
        benchmarks.minimize(dc.optim.sgd(lr=0.01), functions.rosenbrock(), **kwargs)
