"""Helpers shared by the subcommands: validated argument types and plain-text tables."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence

from descend._validation import Interval
from descend.errors import DescendError


class UsageError(DescendError):
    """The command line itself is wrong: unknown command, missing argument, bad option value."""


def missing_command(prog: str, subparsers: argparse._SubParsersAction) -> Callable[[argparse.Namespace], int]:
    """A ``run`` default for a parser with subcommands: reached only when none was given.

    ``parser.set_defaults(run=missing_command("descend example", subparsers))``;
    a chosen subcommand's own ``set_defaults(run=...)`` replaces it.
    """

    def run(args: argparse.Namespace) -> int:
        choices = ", ".join(subparsers.choices)
        raise UsageError(f"missing command: {prog} needs one of {choices} (see '{prog} --help')")

    return run


def number(low: float | None = None, high: float | None = None, closed: str = "both") -> Callable[[str], float]:
    """An argparse ``type``: a finite float in an interval.

    A bad value becomes the one-line usage error
    ``argument --lr: must be a number in (0, inf), got '-1'``.
    """
    interval = Interval(low, high, closed=closed)
    allowed = f"a number {interval.description}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and interval.accepts(value)):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    parse.__name__ = "number"  # argparse names the type in some messages
    return parse


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``[low, high]``."""
    interval = Interval(low, high, closed="both", integer=True)

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {interval.description}, got {text!r}") from None
        if not interval.accepts(value):
            raise argparse.ArgumentTypeError(f"must be {interval.description}, got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None) -> str:
    """Columns padded to their widest cell; ``right[i]`` right-aligns column ``i`` (numbers)."""
    right = list(right) if right is not None else [False] * len(headers)
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [str(c).rjust(w) if r else str(c).ljust(w) for c, w, r in zip(cells, widths, right, strict=True)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])
