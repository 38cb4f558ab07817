"""Helpers shared by the subcommands: validated argument types, output checks and plain-text tables."""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from descend._validation import Interval
from descend.errors import DescendError

#: The exit code of a training run that diverged (its run directory is complete; see descend.cli.main).
EXIT_DIVERGED = 3


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


def check_output(path: str | os.PathLike, *, directory: bool, flag: str = "--out") -> Path:
    """Refuse an output location that cannot be written, before anything is computed or written.

    ``directory=True``: ``path`` is a directory to create or fill (``descend train``, ``compare``);
    ``False``: a file to create or replace (``landscape``, ``lr-find``). Refused, as one
    :class:`UsageError` naming ``flag``: a directory path that is a file, a path below a file, and a
    location whose directory does not let us create files (read-only, no permission): that is
    probed by creating and removing a temporary file in the directory that will receive the output
    (its nearest existing ancestor when it does not exist yet; missing folders are created later).
    """
    out = Path(path)
    if directory and out.exists() and not out.is_dir():
        raise UsageError(f"argument {flag}: {str(out)!r} is a file; give a directory (created if missing)")
    start = out if directory else out.parent
    existing = next((p for p in (start, *start.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise UsageError(
            f"argument {flag}: {str(out)!r} is below {existing}, which is a file, not a directory; "
            "choose another location"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".descend-write-test-", dir=existing)
    except OSError as e:
        raise UsageError(
            f"argument {flag}: cannot write to {existing} ({e.strerror or e}); choose a writable location"
        ) from None
    os.close(fd)
    os.unlink(probe)
    if not directory and out.is_file() and not os.access(out, os.W_OK):
        raise UsageError(f"argument {flag}: {str(out)!r} exists and is read-only; choose another file name")
    return out


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None) -> str:
    """Columns padded to their widest cell; ``right[i]`` right-aligns column ``i`` (numbers)."""
    right = list(right) if right is not None else [False] * len(headers)
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [str(c).rjust(w) if r else str(c).ljust(w) for c, w, r in zip(cells, widths, right, strict=True)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])
