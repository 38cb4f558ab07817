"""``descend compare --workload NAME|all``: the comparison of the named workloads (:mod:`descend.lab.workloads`).

One workload is an ordinary comparison directory (``--out``, default ``compare-<workload>``) with the workload's
data, model, batch size, epoch budget and target; ``all`` (or names separated by commas) runs each into
``ROOT/<workload>/`` and writes the combined report with the performance profile (:mod:`descend.lab.suite`,
default ``ROOT`` = ``compare-workloads``). ``--budget quick`` is the smoke test (2 epochs on a subsample).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from descend.cli._common import UsageError, check_output, format_table
from descend.train import experiment as ex


def _flag(key: str) -> str:
    return "--schedule-arg" if key == "schedule_args" else "--" + key.replace("_", "-")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration keys given on the command line; a key the workload fixes is a usage error."""
    from descend.lab import compare, workloads

    given = [k for k in compare.BASE_KEYS if getattr(args, k, ex.UNSET) is not ex.UNSET]
    fixed = [k for k in given if k in workloads.FIXED_KEYS]
    if fixed:
        raise UsageError(
            f"--workload fixes the data set, model, batch size and validation split; it takes no "
            f"{', '.join(_flag(k) for k in fixed)} (options you may add: "
            f"{', '.join(_flag(k) for k in workloads.FREE_KEYS)})"
        )
    for flag, value in (("--config", args.config), ("--target", args.target)):
        if value is not None:
            what = "its target" if flag == "--target" else "the problem (give --optimizers, --lrs, --seeds instead)"
            raise UsageError(f"--workload sets {what}; it takes no {flag}")
    overrides = {k: getattr(args, k) for k in given if k != "schedule_args"}
    if args.schedule_arg:
        overrides["schedule_args"] = dict(args.schedule_arg)
    if getattr(args, "diagnostics", None):  # --diagnostics K: every run tracks λ_max, as without --workload
        overrides["track_sharpness"] = args.diagnostics
    return overrides


def _algorithm(args: argparse.Namespace) -> dict[str, Any]:
    """optimizers, grid, seeds and optimizer_args as ``make_plan`` takes them."""
    from descend.lab import compare

    kwargs: dict[str, Any] = {}
    if args.optimizers is not None:
        kwargs["optimizers"] = args.optimizers
    names = kwargs.get("optimizers") or list(compare.DEFAULT_OPTIMIZERS)
    if args.lrs:
        grid: dict[str, list[float]] = {}
        for name, values in args.lrs:
            if name is None:
                grid = {n: values for n in names}
            elif name not in names:
                raise UsageError(f"--lrs {name}=...: {name} is not among the optimizers compared ({', '.join(names)})")
            else:
                grid[name] = values
        kwargs["grid"] = grid
    if args.seeds is not None:
        kwargs["seeds"] = args.seeds
    if args.opt:
        extra = {k: tuple(v) if isinstance(v, list) else v for k, v in args.opt}
        kwargs["optimizer_args"] = {n: dict(extra) for n in names}
    return kwargs


def _print_suite(result) -> None:
    from descend.cli.compare import format_ranking
    from descend.lab import suite

    for name in result.workloads:
        comparison = result.comparisons.get(name)
        if comparison is not None:
            print(f"{name} (target val accuracy {result.manifest['records'][name]['target']:g}):")
            print(format_ranking(comparison))
            print()
    headers, rows = suite.score_rows(result)
    print("performance-profile scores (1: fastest to the target on every workload):")
    print(format_table(headers, rows, right=[False] + [True] * (len(headers) - 1)))


def run(args: argparse.Namespace) -> int:
    """``descend compare`` with ``--workload`` (or ``--resume`` of a workload comparison directory)."""
    from descend.cli.compare import _given_plan_options, format_ranking
    from descend.lab import compare, report, suite, workloads

    argv = getattr(args, "argv", None)
    stream = None if args.quiet else sys.stderr
    common = {"workers": args.workers, "scheduler": args.scheduler, "max_concurrent": args.max_concurrent}
    if args.resume is not None:  # a workload comparison directory (an ordinary one goes the usual way)
        extra = [f for f in _given_plan_options(args) if f not in ("--budget", "--workload")]
        if extra or args.workload is not None or args.budget is not None:
            extra += [f for f, v in (("--workload", args.workload), ("--budget", args.budget)) if v is not None]
            raise UsageError(
                f"--resume continues the comparison exactly as planned in {args.resume}/{suite.MANIFEST}; "
                f"it takes no {', '.join(extra)}"
            )
        out = Path(args.resume)
        check_output(out, directory=True, flag="--resume")
        result = suite.run_suite(None, out, stream=stream, argv=argv, reports=not args.no_report, **common)
        _print_suite(result)
        _report_lines(out, result, args.no_report)
        return 0
    budget = args.budget or "full"
    overrides = _overrides(args)
    chosen = workloads.resolve(args.workload)
    algorithm = _algorithm(args)
    if args.workload.strip() != "all" and len(chosen) == 1:
        w = chosen[0]
        plan = compare.make_plan(w.base(budget, overrides), target=w.target_for(budget), **algorithm)
        out = Path(args.out) if args.out is not None else Path(f"compare-{w.name}")
        check_output(out, directory=True)
        record = {"argv": argv, "workload": w.record(budget, overrides)}
        comparison = compare.run_comparison(plan, out, progress=compare.Progress(stream), record=record, **common)
        print(format_ranking(comparison))
        if not args.quiet:
            print_warnings(comparison)
        if not args.no_report:
            print(f"report: {report.write_report(comparison).resolve()}")
        print(f"runs: {out / compare.RUNS}")
        return 0
    plan = suite.make_suite([w.name for w in chosen], budget=budget, overrides=overrides, **algorithm)
    out = Path(args.out) if args.out is not None else Path("compare-workloads")
    check_output(out, directory=True)
    result = suite.run_suite(plan, out, stream=stream, argv=argv, reports=not args.no_report, **common)
    _print_suite(result)
    _report_lines(out, result, args.no_report)
    return 0


def print_warnings(comparison) -> None:
    """The protocol's warnings (a selected lr at the edge of its grid, a curve still rising), on stderr."""
    from descend.lab import report

    for finding in report.protocol_warnings(comparison):
        print(f"descend: warning: {finding.text}", file=sys.stderr)


def _report_lines(out: Path, result, no_report: bool) -> None:
    from descend.lab import report

    if not no_report:
        print(f"report: {(out / report.REPORT).resolve()}")
    print(f"runs: {out} ({', '.join(result.workloads)})")
