"""``descend compare``: optimizers on one network and data set, each at its best learning rate, and a report.

::

    descend compare                                       # the seed documents' optimizers + AdamW on MNIST-1D
    descend compare --optimizers sgd,adam --lrs 1e-3,1e-2 --seeds 3 --epochs 20 --schedule cosine
    descend compare --lrs sgd=0.01,0.1 --lrs adam=1e-4:1e-2:5  # per optimizer; LOW:HIGH:N is log-spaced
    descend compare --config experiment.toml              # the same keys in a TOML file
    descend compare --resume compare-mnist1d-mlp          # continue whatever that directory holds

Runs go in parallel over ``--workers`` processes (or, with ``--scheduler tcp://HOST:8786``, the workers of a Dask
cluster; :mod:`descend.lab.executors`) into ``DIR/runs/<optimizer>/lr=<lr>/seed=<seed>/``
(each a ``descend train`` run directory); running the same command again continues an interrupted
comparison without recomputing any finished run. The end is a ranked table and ``DIR/report.html``.
The work is done by :mod:`descend.lab.compare` and :mod:`descend.lab.report`.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from descend.cli._common import UsageError, check_output, format_table, integer, number
from descend.cli.train import add_backend_options, add_config_options
from descend.train import experiment as ex


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected optimizer names separated by commas, got {text!r}")
    return names


def _lr_values(text: str) -> list[float]:
    """``1e-3,1e-2`` or ``1e-4:1e-1:4`` (4 log-spaced values from 1e-4 to 1e-1)."""
    try:
        if ":" in text:
            low, high, count = text.split(":")
            lo, hi, n = float(low), float(high), int(count)
            if not (0 < lo <= hi and n >= 1 and math.isfinite(hi)):
                raise ValueError
            if n == 1:
                return [lo]
            return [float(f"{lo * (hi / lo) ** (i / (n - 1)):.3g}") for i in range(n)]
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected learning rates > 0 separated by commas (1e-3,1e-2), LOW:HIGH:N (1e-4:1e-1:4), "
            f"or NAME=... for one optimizer; got {text!r}"
        )
    return values


def lr_grid(text: str) -> tuple[str | None, list[float]]:
    """``1e-3,1e-2`` (every optimizer) or ``adam=1e-4,1e-3`` (one) as ``(name or None, values)``."""
    name, sep, rest = text.partition("=")
    if sep:
        if not name.strip():
            raise argparse.ArgumentTypeError(f"expected NAME=LR,LR,..., got {text!r}")
        return name.strip(), _lr_values(rest)
    return None, _lr_values(text)


def seeds_arg(text: str) -> int | list[int]:
    """``3`` (seeds 0, 1, 2) or ``0,7,11``."""
    if "," not in text:
        return integer(1, 1000)(text)
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = [-1]
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected a number of seeds (3) or seeds separated by commas, got {text!r}")
    return values


def _scheduler(text: str) -> str:
    """``local`` or ``tcp://HOST:PORT`` (not contacted here)."""
    from descend.errors import ParameterError
    from descend.lab import executors

    try:
        return executors.parse_scheduler(text)
    except ParameterError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("compare: ")) from None


def _default_out(base: dict[str, Any]) -> Path:
    dataset = str(base.get("dataset", ex.DEFAULTS["dataset"]))
    key = dataset.lower().replace("_", "-")
    name = key if key in ex.BUILTIN_DATASETS else Path(dataset).stem
    return Path(f"compare-{name}-{base.get('model', ex.DEFAULTS['model'])}")


def plan_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The comparison plan: the defaults, then the --config file, then the options given."""
    from descend.lab import compare

    kwargs: dict[str, Any] = {"base": {}}
    if args.config is not None:
        kwargs = compare.read_experiment(args.config)
    base = kwargs["base"]
    for key in compare.BASE_KEYS:
        value = getattr(args, key, ex.UNSET)
        if value is not ex.UNSET and key not in ("schedule_args",):
            base[key] = value
    if args.schedule_arg:
        base["schedule_args"] = dict(args.schedule_arg)
    if base.get("dataset") is not None:
        key = str(base["dataset"]).lower().replace("_", "-")
        if key not in ex.BUILTIN_DATASETS and Path(base["dataset"]).exists():
            base["dataset"] = str(Path(base["dataset"]).resolve())  # the plan works from any directory
    if isinstance(base.get("test_data"), str) and Path(base["test_data"]).exists():
        base["test_data"] = str(Path(base["test_data"]).resolve())
    if args.optimizers is not None:
        kwargs["optimizers"] = args.optimizers
    names = kwargs.get("optimizers") or list(compare.DEFAULT_OPTIMIZERS)
    if args.lrs:
        grid = kwargs.get("grid")
        grid = dict(grid) if isinstance(grid, dict) else ({n: list(grid) for n in names} if grid else {})
        for name, values in args.lrs:
            if name is None:
                grid = {n: values for n in names}
            else:
                if name not in names:
                    raise UsageError(
                        f"--lrs {name}=...: {name} is not among the optimizers compared ({', '.join(names)})"
                    )
                grid[name] = values
        kwargs["grid"] = grid
    if args.seeds is not None:
        kwargs["seeds"] = args.seeds
    if args.target is not None:
        kwargs["target"] = args.target
    if args.opt:
        extra = {k: tuple(v) if isinstance(v, list) else v for k, v in args.opt}
        per = kwargs.get("optimizer_args", {})
        kwargs["optimizer_args"] = {n: {**per.get(n, {}), **extra} for n in names}
    if getattr(args, "diagnostics", None):  # every run tracks λ_max (descend.diagnostics.compare)
        base["track_sharpness"] = args.diagnostics
    return compare.make_plan(**kwargs)


def _given_plan_options(args: argparse.Namespace) -> list[str]:
    from descend.lab import compare

    given = [k for k in compare.BASE_KEYS if getattr(args, k, ex.UNSET) is not ex.UNSET]
    given += [k for k in ("optimizers", "lrs", "seeds", "target", "opt", "schedule_arg", "config", "out", "diagnostics")
              if getattr(args, k) not in (None, [])]  # fmt: skip
    return ["--" + k.replace("_", "-") for k in given]


def format_ranking(comparison) -> str:
    from descend.lab import report

    headers, rows = report.table(comparison)
    right = [i not in (1, len(headers) - 1) for i in range(len(headers))]  # name and status left, numbers right
    return format_table(headers, rows, right=right)


def run_compare(args: argparse.Namespace) -> int:
    from descend import config
    from descend.lab import compare, executors, report

    if args.seed is not ex.UNSET:
        raise UsageError("descend compare trains several seeds: use --seeds N (seeds 0..N-1) or --seeds 0,7,11")
    # Before any training: a missing dependency is one line with its install command, not a late traceback.
    config.require("descend compare", "numba", *(() if args.no_report else ("matplotlib",)))
    executors.check_options(args.scheduler, args.workers, args.max_concurrent)
    if args.scheduler != executors.LOCAL:
        executors.require_dask(args.scheduler)  # pip install 'descend[cluster]', before anything else
    from descend.cli import _workload
    from descend.lab import suite

    if args.workload is not None or suite.is_suite(args.resume):
        return _workload.run(args)
    if args.budget is not None:
        raise UsageError("--budget goes with --workload (the budget of a named workload)")
    if args.resume is not None:
        extra = _given_plan_options(args)
        if extra:
            raise UsageError(
                f"--resume continues the comparison exactly as planned in {args.resume}/comparison.json; "
                f"it takes no {', '.join(extra)}"
            )
        plan, out = None, Path(args.resume)
    else:
        plan = plan_from_args(args)
        out = Path(args.out) if args.out is not None else _default_out(plan["base"])
    check_output(out, directory=True, flag="--resume" if args.resume is not None else "--out")
    progress = compare.Progress(None if args.quiet else sys.stderr)
    record = {"argv": args.argv} if getattr(args, "argv", None) else None  # the command line, for the report
    comparison = compare.run_comparison(
        plan,
        out,
        workers=args.workers,
        progress=progress,
        scheduler=args.scheduler,
        max_concurrent=args.max_concurrent,
        record=record,
    )
    print(format_ranking(comparison))
    if not args.quiet:
        _workload.print_warnings(comparison)
    if not args.no_report:
        path = report.write_report(comparison)
        print(f"report: {path.resolve()}")
    if comparison.plan["base"].get("track_sharpness"):
        from descend.diagnostics.compare import FIGURE, sharpness_curves, write_sharpness_figure

        if args.no_report:  # otherwise the report has drawn it
            write_sharpness_figure(comparison)
        curves = sharpness_curves(comparison)
        if curves:
            print("final sharpness λ_max: " + ", ".join(f"{k} {v[-1]:.4g}" for k, (_, v) in curves.items()))
            print(f"sharpness: {(comparison.root / FIGURE).resolve()}")
    print(f"runs: {out / compare.RUNS}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from descend.lab import compare

    parser = subparsers.add_parser(
        "compare",
        help="compare optimizers at their best learning rates, with an HTML report",
        description="Train a network with several optimizers, each over a small log-spaced learning-rate grid "
        "(seed 0), select each one's best lr by the final validation metric, rerun it with more seeds, and "
        "write a ranked table and DIR/report.html. With no options: the seed documents' optimizers plus AdamW "
        "on MNIST-1D with the MLP preset. Rerunning the same command continues an interrupted comparison.",
        conflict_handler="resolve",
    )
    add_config_options(parser)
    add_backend_options(parser)
    default_names = ",".join(compare.DEFAULT_OPTIMIZERS)
    parser.add_argument(
        "--optimizers", "--optimizer", dest="optimizers", type=_names, default=None, metavar="A,B,...",
        help=f"optimizers to compare (default {default_names}); any of {', '.join(ex.OPTIMIZERS)}",
    )  # fmt: skip
    parser.add_argument(
        "--lrs", "--lr", dest="lrs", type=lr_grid, action="append", default=None, metavar="GRID",
        help="learning-rate grid: 1e-3,1e-2 or 1e-4:1e-1:4 (log-spaced) for every optimizer, or NAME=GRID for "
        "one (repeat the option); default: a half-decade grid per optimizer family",
    )  # fmt: skip
    parser.add_argument("--seed", default=ex.UNSET, help=argparse.SUPPRESS)
    parser.add_argument(
        "--epochs", default=ex.UNSET, type=integer(1, None), help=f"epochs per run ({compare.DEFAULT_EPOCHS})"
    )
    parser.add_argument(
        "--seeds", type=seeds_arg, default=None, metavar="N|S,S,...",
        help=f"seeds: a count ({compare.DEFAULT_SEEDS}: 0, 1, 2) or a list; the grid search runs at the first",
    )  # fmt: skip
    parser.add_argument(
        "--target", type=number(None, None), default=None,
        help="validation metric to reach for the time-to-target columns (default: 90%% of the best)",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=integer(1, 256), default=None,
        help="parallel worker processes of the local pool (default: the cores)",
    )  # fmt: skip
    parser.add_argument(
        "--scheduler", type=_scheduler, default="local", metavar="local|tcp://HOST:PORT",
        help="where the runs train: 'local' (default, a process pool here) or a running Dask scheduler's address "
        "(dask scheduler; dask worker tcp://HOST:PORT on each machine; needs pip install 'descend[cluster]'); "
        "the workers must see --out at the same path",
    )  # fmt: skip
    parser.add_argument(
        "--max-concurrent", type=integer(1, None), default=None, metavar="N",
        help="with --scheduler tcp://...: at most N runs on the cluster at a time (default: as many as it takes)",
    )  # fmt: skip
    parser.add_argument(
        "--workload", default=None, metavar="NAME|all",
        help="compare on a named workload (fixed data set, model, batch size, epoch budget and validation target): "
        "mnist1d-mlp, mnist1d-cnn, fmnist-mlp, fmnist-cnn, names separated by commas, or all (one directory per "
        "workload under --out, default compare-workloads, and a combined report with the performance profile)",
    )  # fmt: skip
    parser.add_argument(
        "--budget", default=None, choices=("full", "quick"),
        help="with --workload: full (the workload's epochs; default) or quick (a smoke test: 2 epochs on a "
        "1,000-example subsample, with low targets)",
    )  # fmt: skip
    parser.add_argument("--out", default=None, metavar="DIR", help="comparison directory (compare-DATASET-MODEL)")
    parser.add_argument("--config", default=None, metavar="FILE.toml", help="the experiment as a TOML file")
    parser.add_argument("--resume", default=None, metavar="DIR", help="continue the comparison in DIR as planned")
    parser.add_argument("--quiet", action="store_true", help="no progress display and no warnings on stderr")
    parser.add_argument("--no-report", action="store_true", help="print the table only; no report.html")
    parser.add_argument(
        "--diagnostics", nargs="?", const=20, default=None, type=integer(1, None), metavar="K",
        help="every run logs λ_max every K steps (default 20; descend train --track-sharpness); the sharpness curves "
        "of each optimizer at its selected lr go to DIR/sharpness.png",
    )  # fmt: skip
    parser.set_defaults(run=run_compare)
