"""Entry point of the ``descend`` command (console script and ``python -m descend``).

Exit codes:

* 0: success;
* 1: stdout was closed early (``descend demo | head``);
* 2: usage error or any :class:`~descend.errors.DescendError` (reported as one line
  ``descend: error: ...`` on stderr, never a traceback; nothing is written);
* 3: ``descend train``: the training run diverged (one line ``descend: diverged at epoch N (loss inf)``
  on stderr; the run directory is complete, its summary.json has status "diverged");
* 130: interrupted (Ctrl-C).

Anything else is a bug in descend and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

import descend
from descend.cli._common import UsageError, missing_command
from descend.errors import DescendError

PROG = "descend"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are exceptions, so :func:`main` prints one line and returns 2."""

    def error(self, message: str) -> NoReturn:
        # argparse says "argument COMMAND: invalid choice: 'frob' (choose from 'example', 'demo')";
        # name the thing instead of the metavar.
        match = _INVALID_CHOICE.fullmatch(message)
        if match:
            message = f"unknown {match['what'].lower()} {match['given']} (choose from {match['allowed']})"
        raise UsageError(message)


_INVALID_CHOICE = re.compile(
    r"argument (?P<what>[A-Z_]+): invalid choice: (?P<given>.+) \(choose from (?P<allowed>.+)\)"
)


def _command_modules() -> list[str]:
    """Names of the subcommand modules: public modules of descend.cli other than main, sorted."""
    import descend.cli as package

    return sorted(
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_") and info.name != "main"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="descend: composable NumPy optimizers proven against torch.optim, and an optimizer lab.",
        epilog="Run 'descend COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {descend.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", parser_class=_Parser)
    for name in _command_modules():
        module = importlib.import_module(f"descend.cli.{name}")
        module.register(subparsers)
    parser.set_defaults(run=missing_command(PROG, subparsers))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as stop:  # --help and --version print and "exit" 0
            return int(stop.code or 0)
        args.argv = [PROG, *(sys.argv[1:] if argv is None else argv)]  # the command exactly as given (for records)
        return int(args.run(args) or 0)
    except DescendError as err:
        print(f"{PROG}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (| head): stop quietly; point stdout at devnull so
        # the interpreter's final flush does not raise again.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
