"""``descend landscape``: optimizer paths on a 2-D test function, drawn to a PNG (or a GIF).

Everything is computed by :mod:`descend.lab.landscape` (``trajectories`` and
``plot_landscape``); this module parses the options, writes the picture and
prints where it went and a table of how each optimizer ended. matplotlib (the
``lab`` extra) is imported only when the picture is drawn.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

from descend import config
from descend.cli._common import UsageError, check_output, format_table, integer
from descend.lab import functions, landscape

MAX_STEPS = 100_000


def _lr_items(text: str) -> list[tuple[str | None, float]]:
    """``0.1`` (every optimizer) or ``adam=0.1,sgd=0.01`` (some), as ``[(name or None, lr)]``."""
    items = []
    for part in text.split(","):
        name, sep, value = part.strip().rpartition("=")
        try:
            lr = float(value)
        except ValueError:
            lr = math.nan
        if not (math.isfinite(lr) and lr > 0) or (sep and not name.strip()):
            raise argparse.ArgumentTypeError(
                f"expected a learning rate > 0 or NAME=LR items separated by commas (adam=0.1,sgd=0.01), got {text!r}"
            )
        items.append((name.strip() or None, lr))
    return items


def _point(text: str) -> tuple[float, ...]:
    """``X,Y`` (or ``W`` for the 1-D function) as finite floats."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = (math.nan,)
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers separated by a comma, like -1,0.001; got {text!r}")
    return values


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected optimizer names separated by commas, got {text!r}")
    return names


def _fmt_point(x) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in x) + ")"


def _status(traj: landscape.Trajectory) -> str:
    if traj.stop == "diverged":
        return f"yes (step {traj.steps_run + 1})"
    if traj.stop:
        return f"no, {traj.stop} at step {traj.steps_run}"
    return "no"


def result_table(problem: functions.Problem, paths: dict[str, landscape.Trajectory]) -> str:
    """optimizer, lr, steps run, final loss, distance to the nearest minimum, diverged?"""
    rows = []
    for traj in paths.values():
        distance = problem.distance_to_minimum(traj.final)
        rows.append(
            [
                traj.label,
                "—" if traj.lr is None else f"{traj.lr:g}",
                str(traj.steps_run),
                f"{traj.loss[-1]:.3e}",
                "—" if math.isnan(distance) else f"{distance:.3e}",
                _status(traj),
            ]
        )
    return format_table(
        ["optimizer", "lr", "steps", "final loss", "to nearest min", "diverged?"],
        rows,
        right=[False, True, True, True, True, False],
    )


def _learning_rates(items: list[list[tuple[str | None, float]]] | None, names: list[str]) -> dict[str, float]:
    lrs: dict[str, float] = {}
    for name, lr in (item for group in items or [] for item in group):
        if name is None:
            lrs.update(dict.fromkeys(names, lr))
        elif name not in names:
            raise UsageError(f"argument --lr: {name!r} is not among the optimizers being run ({', '.join(names)})")
        else:
            lrs[name] = lr
    return lrs


def _output(args: argparse.Namespace, problem: functions.Problem) -> Path:
    suffix = ".gif" if args.gif else ".png"
    out = Path(args.out) if args.out is not None else Path(f"landscape-{problem.name}{suffix}")
    if out.is_dir():
        raise UsageError(f"argument --out: {str(out)!r} is a directory; give a file name ending in {suffix}")
    if out.suffix.lower() != suffix:
        other = "without --gif for a .png" if args.gif else "--gif for a .gif"
        raise UsageError(f"argument --out: {str(out)!r} must end in {suffix} (use {other})")
    return check_output(out, directory=False)  # before the paths are computed


def run(args: argparse.Namespace) -> int:
    problem = functions.get(args.function)
    names = args.optimizers or list(landscape.DEFAULT_OPTIMIZERS)
    unknown = [n for n in names if n not in landscape.RECIPES]
    if unknown:
        choices = ", ".join(repr(n) for n in landscape.RECIPES)
        raise UsageError(f"unknown optimizer {unknown[0]!r} (choose from {choices})")
    names = list(dict.fromkeys(names))
    lrs = _learning_rates(args.lr, names)
    start = None
    if args.start is not None:
        coords = "w" if problem.dim == 1 else "X,Y"
        if len(args.start) != problem.dim:
            raise UsageError(
                f"argument --start: {problem.name} needs {problem.dim} number(s) ({coords}), "
                f"got {len(args.start)}: {','.join(f'{v:g}' for v in args.start)}"
            )
        if not problem.in_box(args.start):
            box = ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in problem.plot_box())
            raise UsageError(
                f"argument --start: {_fmt_point(args.start)} is outside the plot box of {problem.name} ({box})"
            )
        start = args.start
    out = _output(args, problem)
    paths = landscape.trajectories(problem, names, args.steps, start=start, lrs=lrs)
    try:
        landscape.plot_landscape(problem, paths, out, animate=args.gif)
    except ModuleNotFoundError as err:
        if err.name is None or not err.name.startswith(("matplotlib", "PIL")):
            raise
        raise UsageError(
            f"descend landscape draws with matplotlib, a dependency of descend that is not installed here: "
            f"{config.INSTALL['matplotlib']} ({err})"
        ) from None
    kind = "GIF" if args.gif else "PNG"
    steps = max(t.steps_run for t in paths.values())
    print(f"wrote {out} ({kind}: {len(paths)} optimizer path(s) on {problem.title}, up to {steps} steps)")
    print(f"{problem.formula}; start {_fmt_point(next(iter(paths.values())).path[0])}", end="")
    if problem.bounded:
        minima = problem.minima
        where = _fmt_point(minima[0]) if len(minima) == 1 else f"{len(minima)} points"
        print(f"; minimum f* = {problem.min_value:g} at {where}")
    else:
        print("; no minimum (unbounded below): paths stop where they leave the plot box")
    print(result_table(problem, paths))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    functions_list = ", ".join(functions.LANDSCAPES)
    optimizers_list = ", ".join(landscape.RECIPES)
    parser = subparsers.add_parser(
        "landscape",
        help="draw optimizer paths on a 2-D test function (PNG, or GIF with --gif)",
        description="Run optimizers on a test function and draw their paths: a contour plot with one path per "
        "optimizer and the loss against the step beside it. Writes a PNG (an animated GIF with --gif), then "
        "prints where it wrote and how each optimizer ended. Draws with matplotlib (a dependency of descend).",
    )
    parser.add_argument(
        "--function",
        metavar="NAME",
        default="saddle",
        help=f"test function: {functions_list} (default saddle)",
    )
    parser.add_argument(
        "--optimizers",
        metavar="LIST",
        type=_names,
        help=f"comma-separated, from {optimizers_list} (default {', '.join(landscape.DEFAULT_OPTIMIZERS)})",
    )
    parser.add_argument(
        "--lr",
        metavar="LR",
        type=_lr_items,
        action="append",
        help="learning rate for every optimizer (0.05), or per optimizer (adam=0.1,sgd=0.01); may repeat. "
        "Default: a rate tuned per function and optimizer",
    )
    parser.add_argument(
        "--steps",
        type=integer(1, MAX_STEPS),
        help=f"updates per optimizer, 1 to {MAX_STEPS} (default: per function, e.g. saddle 100, rosenbrock 1000)",
    )
    parser.add_argument(
        "--start",
        metavar="X,Y",
        type=_point,
        help="start point (one number W for seed), e.g. --start=-1,0.001 (default: the function's own)",
    )
    parser.add_argument("--gif", action="store_true", help="write an animated GIF instead of a PNG")
    parser.add_argument(
        "--out",
        metavar="PATH",
        help="output file, .png (or .gif with --gif); parent folders are created "
        "(default landscape-FUNCTION.png in the current folder)",
    )
    # "--start -1,0.5": argparse (before 3.13) takes "-1,0.5" for an option; let it be a value, as
    # Python 3.13 does. This parser has no option that looks like a negative number.
    if hasattr(parser, "_negative_number_matcher"):
        parser._negative_number_matcher = re.compile(r"^-\.?\d")
    parser.set_defaults(run=run)
