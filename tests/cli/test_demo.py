"""``descend demo``: every optimizer of the suite reaches the quadratic's minimum at its tuned rate."""

from __future__ import annotations

import numpy as np
import pytest

from descend.cli.main import main
from descend.lab import benchmarks

EXPECTED = [
    "sgd",
    "momentum",
    "sgd nesterov",
    "adagrad",
    "rmsprop",
    "adadelta",
    "adam",
    "adamw",
    "adamax",
    "nadam",
    "radam",
    "asgd",
    "rprop",
    "adafactor",
    "lion",
]


def test_suite_lists_every_optimizer_and_all_exist() -> None:
    assert [s.label for s in benchmarks.SUITE] == EXPECTED
    assert benchmarks.missing_optimizers() == []


@pytest.fixture(scope="module")
def quadratic_rows():
    problem, steps = benchmarks.demo_problems()[0]
    assert problem.name == "quadratic"
    available = [s for s in benchmarks.SUITE if s.available]  # a missing one fails its own test below
    return problem, steps, benchmarks.benchmark(problem, available, steps=steps, tol=benchmarks.DEMO_TOL)


@pytest.mark.parametrize("label", EXPECTED)
def test_each_optimizer_reaches_the_quadratic_minimum(quadratic_rows, label) -> None:
    problem, steps, rows = quadratic_rows
    found = [r for r in rows if r.label == label]
    assert found, f"descend.optim has no {label!r} optimizer"
    (row,) = found
    r = row.result
    assert not r.diverged
    assert r.reached, f"{label} at lr={row.lr}: final loss {r.final_loss:.3g} after {r.steps_run} steps"
    assert r.losses[r.steps_to_tol - 1] - problem.min_value <= benchmarks.DEMO_TOL
    # ... and it stays there: the run goes on to the full budget and ends at the minimum
    assert r.steps_run == steps
    assert r.final_loss - problem.min_value <= benchmarks.DEMO_TOL
    assert problem.loss(r.x) == r.final_loss
    # within tol 1e-6 of f* = 0 on ½(x−1)² + 50(y−1)² means within √(2e-6) ≈ 1.4e-3 of (1, 1)
    assert np.linalg.norm(r.x - problem.minimizer) < 1.5e-3


def test_demo_prints_the_seed_examples_and_both_tables(capsys) -> None:
    assert main(["demo", "--no-compare"]) == 0
    out = capsys.readouterr().out
    assert "Iteration 1: w = 0.6000, loss = 5.7600" in out
    assert "Iteration 10: w = 2.6779, loss = 0.1038" in out
    assert "Epoch 10: Learning Rate = 0.06302" in out
    assert sum(line.startswith("optimizer ") for line in out.splitlines()) == 2  # two table headers
    for label in EXPECTED:
        assert sum(line.startswith(label + " ") for line in out.splitlines()) >= 2
