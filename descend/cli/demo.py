"""``descend demo``: seed 001's two worked examples, then every optimizer on two test functions.

What ``make demo`` runs. All numbers come from :mod:`descend.lab`; this module
only prints them.
"""

from __future__ import annotations

import argparse
import math

from descend.cli._common import format_table
from descend.cli.example import format_lr_table, format_walk
from descend.lab import benchmarks, seeds


def _point(x) -> str:
    return "(" + ", ".join(f"{v:g}".replace("-", "−") for v in x) + ")"


def _lr(lr: benchmarks.LearningRate) -> str:
    return str(lr) if isinstance(lr, benchmarks.HalfLife) else f"{lr:g}"


def benchmark_table(rows: list[benchmarks.BenchmarkRow]) -> str:
    cells = []
    for row in rows:
        r = row.result
        steps = "diverged" if r.diverged else (str(r.steps_to_tol) if r.reached else "—")
        final = f"{r.final_loss:.2e}" if math.isfinite(r.final_loss) else str(r.final_loss)
        cells.append([row.label, _lr(row.lr), steps, final, row.settings])
    return format_table(
        ["optimizer", "lr", "steps", "final loss", "other settings (torch defaults otherwise)"],
        cells,
        right=[False, True, True, True, False],
    )


def run(args: argparse.Namespace) -> int:
    print("descend demo: seed 001's worked examples, then every optimizer on two classic test functions.")
    print()
    print("1. Gradient descent on L(w) = (w − 3)² from w = 0 with dc.optim.sgd(lr=0.1) (seed 001)")
    print("\n".join(format_walk(seeds.quadratic_walk(lr=0.1, steps=10, start=0.0))))
    print()
    print("2. Exponential learning-rate decay 0.1·0.95^epoch from dc.schedules.exponential_decay (seed 001)")
    print("\n".join(format_lr_table(seeds.lr_decay_table(0.1, 0.95, 10))))

    specs = [s for s in benchmarks.SUITE if s.available]
    missing = benchmarks.missing_optimizers()
    tol = benchmarks.DEMO_TOL
    for number, (problem, steps) in enumerate(benchmarks.demo_problems(), start=3):
        print()
        print(f"{number}. {problem.title}: {problem.formula}")
        print(f"   start {_point(problem.x0)}, minimum f* = {problem.min_value:g} at {_point(problem.minimizer)}")
        print(f"   steps: first step with f − f* ≤ {tol:g} ('—' if none in {steps}); final loss: f after {steps} steps")
        print(benchmark_table(benchmarks.benchmark(problem, specs, steps=steps, tol=tol)))
    if missing:
        print()
        print(f"not in descend.optim yet, left out: {', '.join(missing)}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="seed 001's examples and every optimizer on a quadratic and Rosenbrock",
        description="Seed 001's worked examples, then a table of every optimizer minimizing an ill-conditioned "
        "quadratic and the Rosenbrock function (what 'make demo' runs; a few seconds).",
    )
    parser.set_defaults(run=run)
