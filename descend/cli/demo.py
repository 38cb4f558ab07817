"""``descend demo``: seed 001's two worked examples, every optimizer on two test functions, then ``descend compare``.

What ``make demo`` runs. All numbers come from :mod:`descend.lab`; this module
only prints them. The last part is the default comparison (the seed documents'
optimizers plus AdamW on MNIST-1D, :mod:`descend.lab.compare`): it ends with the
ranked table and the path of ``report.html``. Its directory is reused, so a second
``descend demo`` only rewrites the report.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

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
    if not args.no_compare:
        run_compare_part(args, number + 1)
    return 0


def default_plan() -> dict:
    """The comparison ``descend demo`` runs: ``descend compare`` with no options."""
    from descend.lab import compare

    return compare.make_plan()


def run_compare_part(args: argparse.Namespace, number: int) -> None:
    from descend.cli.compare import format_ranking
    from descend.lab import compare, report

    plan = default_plan()
    out = Path(args.out)
    print()
    print(
        f"{number}. descend compare: {', '.join(plan['optimizers'])} on MNIST-1D (MLP {plan['base']['hidden']}), "
        f"each at its best lr of a small grid, {len(plan['seeds'])} seeds, {plan['base']['epochs']} epochs"
    )
    print(f"   {compare.expected_runs(plan)} training runs into {out}/runs (progress on stderr)", flush=True)
    comparison = compare.run_comparison(plan, out, workers=args.workers, progress=compare.Progress(sys.stderr))
    print(format_ranking(comparison))
    path = report.write_report(comparison)
    print()
    print(f"report: {path.resolve()}")
    print(f"open it in a browser, e.g. xdg-open {path.resolve()}")


def register(subparsers: argparse._SubParsersAction) -> None:
    from descend.cli._common import integer

    parser = subparsers.add_parser(
        "demo",
        help="seed 001's examples, every optimizer on two test functions, and the default optimizer comparison",
        description="Seed 001's worked examples, a table of every optimizer minimizing an ill-conditioned "
        "quadratic and the Rosenbrock function, then 'descend compare' with its defaults (the seed documents' "
        "optimizers on MNIST-1D) ending with the path of its HTML report. What 'make demo' runs.",
    )
    parser.add_argument(
        "--out", default="compare-mnist1d-mlp", metavar="DIR", help="comparison directory (compare-mnist1d-mlp)"
    )
    parser.add_argument("--workers", type=integer(1, 256), default=None, help="worker processes (the cores)")
    parser.add_argument("--no-compare", action="store_true", help="only the examples and the two tables")
    parser.set_defaults(run=run)
