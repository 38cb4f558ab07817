"""``descend lr-find``: the learning-rate range test for any configuration ``descend train`` accepts.

::

    descend lr-find --dataset mnist1d --model mlp --optimizer sgd --out lr-find.png
    descend lr-find --optimizer adam --min-lr 1e-6 --max-lr 1 --steps 300

It trains a copy of the configured model for ``--steps`` mini-batches while the
learning rate grows exponentially from ``--min-lr`` to ``--max-lr``, stops when the
smoothed loss exceeds 4 × its minimum, prints a few points of the curve, the
suggested rate and why the sweep ended, and draws the curve to a PNG (see
:mod:`descend.lab.lr_find`). The learning rate and schedule options of the shared
configuration (``--lr``, ``--schedule``, ``--epochs``, ...) do not apply.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from descend.cli._common import UsageError, check_output, format_table, integer, number
from descend.cli.train import add_config_options, overrides
from descend.lab import lr_find as lf
from descend.train import experiment as ex

#: Configuration keys that mean nothing to a range test (it sets its own rate and length).
_UNUSED = ("lr", "schedule", "schedule_args", "epochs", "early_stopping")
TABLE_ROWS = 8


def _output(text: str | None) -> Path:
    out = Path(text) if text is not None else Path("lr-find.png")
    if out.is_dir():
        raise UsageError(f"argument --out: {str(out)!r} is a directory; give a file name ending in .png")
    if out.suffix.lower() != ".png":
        raise UsageError(f"argument --out: {str(out)!r} must end in .png")
    return check_output(out, directory=False)  # before the sweep is computed


def curve_table(result: lf.LRFindResult, rows: int = TABLE_ROWS) -> str:
    """A few points of the curve (evenly spaced steps) plus the suggested and lowest-loss steps, marked."""
    n = result.steps_run
    picks = set(np.unique(np.round(np.linspace(0, n - 1, min(rows, n))).astype(int)).tolist())
    marks: dict[int, str] = {}
    i_min = int(np.argmin(result.smoothed))
    marks[i_min] = "lowest smoothed loss"
    if result.suggestion is not None:
        i_sug = int(np.flatnonzero(result.lrs == result.suggestion)[0])
        marks[i_sug] = "← suggested (steepest descent)"
    picks |= set(marks)
    table = [
        (str(i), f"{result.lrs[i]:.3g}", f"{result.losses[i]:.4f}", f"{result.smoothed[i]:.4f}", marks.get(i, ""))
        for i in sorted(picks)
    ]
    return format_table(["step", "lr", "loss", "smoothed", ""], table, right=[True, True, True, True, False])


def run(args: argparse.Namespace) -> int:
    if not args.max_lr > args.min_lr:
        raise UsageError(f"argument --max-lr: must be greater than --min-lr ({args.min_lr:g}), got {args.max_lr:g}")
    out = _output(args.out)
    given = overrides(args)
    cfg = ex.make_config(given)
    unused = [k for k in _UNUSED if k in given]
    if unused:
        flags = ", ".join("--" + k.replace("_", "-") for k in unused)
        print(f"note: lr-find sweeps its own learning rate; {flags} not used", file=sys.stderr)
    train, _, _ = ex.load_data(cfg)
    model = ex.build_model(cfg, train)
    bs = cfg["batch_size"] or None
    steps_per_epoch = 1 if bs is None else math.ceil(len(train) / bs)

    def factory(lr):
        return ex.build_optimizer(cfg, model, steps_per_epoch, lr=lr)

    result = lf.lr_range_test(
        model,
        "cross_entropy",
        factory,
        (train.x, train.y),
        min_lr=args.min_lr,
        max_lr=args.max_lr,
        steps=args.steps,
        batch_size=bs,
        seed=cfg["seed"],
        l1=cfg["l1"],
        l2=cfg["l2"],
    )
    try:
        lf.plot_lr_find(result, out)
    except ModuleNotFoundError as err:
        if err.name is None or not err.name.startswith("matplotlib"):
            raise
        raise UsageError(
            f"descend lr-find draws with matplotlib, which is not installed: pip install 'descend[lab]' ({err})"
        ) from None
    batch = "full batch" if bs is None else f"batch {bs}"
    print(
        f"lr range test: {cfg['model']} on {cfg['dataset']} ({len(train):,} training samples, {batch}) "
        f"with {cfg['optimizer']}, {args.steps} steps from {args.min_lr:g} to {args.max_lr:g}"
    )
    print(curve_table(result))
    if result.suggestion is not None:
        print(f"suggested lr: {result.suggestion:.3g} (steepest descent of the smoothed loss)")
    else:
        print("suggested lr: none (the smoothed loss never decreased; try a smaller --min-lr or more --steps)")
    print(
        f"alternative: {result.min_loss_suggestion:.3g} (lowest smoothed loss {result.best_loss:.4f} "
        f"at lr {result.min_loss_lr:.3g}, ÷ 10)"
    )
    print(f"stopped: {result.reason}")
    print(f"plot: {out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lr-find",
        help="learning-rate range test: loss against an exponentially growing rate, and a suggested rate",
        description="The learning-rate range test (Smith 2015; fastai's lr_find): train a copy of the model "
        "for --steps mini-batches with the rate growing exponentially from --min-lr to --max-lr, smooth the "
        "loss, stop on divergence, suggest a rate and draw the curve. Takes the configuration options of "
        "'descend train' (--lr, --schedule and --epochs do not apply).",
    )
    add_config_options(parser)
    parser.add_argument(
        "--min-lr", type=number(0, None, closed="neither"), default=1e-7, help="first rate (default 1e-7)"
    )
    parser.add_argument("--max-lr", type=number(0, None, closed="neither"), default=10.0, help="last rate (default 10)")
    parser.add_argument(
        "--steps",
        type=integer(lf.MIN_STEPS, lf.MAX_STEPS),
        default=200,
        help=f"mini-batches, {lf.MIN_STEPS} to {lf.MAX_STEPS} (default 200)",
    )
    parser.add_argument("--out", default=None, metavar="PATH.png", help="where the plot goes (default lr-find.png)")
    parser.set_defaults(run=run)
