"""``descend example``: seed 001's worked examples, run through descend.

* ``descend example quadratic``: gradient descent on ``L(w) = (w − 3)²`` with
  ``dc.optim.sgd`` (``--lr``, ``--steps``, ``--start``). Each step multiplies
  ``w − 3`` by ``1 − 2·lr``: for ``lr > 1`` the walk diverges and ends with a
  line that says so (at ``lr = 1`` it oscillates and never converges).
* ``descend example lr-decay``: the exponential learning-rate decay table from
  ``dc.schedules.exponential_decay`` (``--lr``, ``--decay-rate``, ``--epochs``).

The output lines are formatted exactly as in the notebook.
"""

from __future__ import annotations

import argparse
import math

from descend.cli._common import integer, missing_command, number
from descend.lab import seeds

MAX_STEPS = 1_000_000


def format_walk(walk: list[seeds.WalkStep]) -> list[str]:
    """The notebook's lines: ``Iteration 1: w = 0.6000, loss = 5.7600``."""
    return [f"Iteration {s.iteration}: w = {s.w:.4f}, loss = {s.loss:.4f}" for s in walk]


def format_lr_table(rates: list[float]) -> list[str]:
    """The notebook's lines: ``Epoch 1: Learning Rate = 0.10000``."""
    return [f"Epoch {epoch + 1}: Learning Rate = {lr:.5f}" for epoch, lr in enumerate(rates)]


def run_quadratic(args: argparse.Namespace) -> int:
    walk = seeds.quadratic_walk(lr=args.lr, steps=args.steps, start=args.start)
    print("\n".join(format_walk(walk)))
    rule = f"on L(w) = (w − 3)² gradient descent converges only for 0 < lr < 1, got lr = {args.lr:g}"
    factor = abs(1 - 2 * args.lr)  # |w − 3| is multiplied by this each step
    if walk and not math.isfinite(walk[-1].loss):
        print(f"stopped: the walk diverged at iteration {walk[-1].iteration}; {rule}")
    elif factor > 1 and args.start != seeds.TARGET:
        print(f"diverged: the walk diverges, |w − 3| grows ×{factor:g} per step (|1 − 2·lr|); {rule}")
    elif factor == 1 and args.start != seeds.TARGET:
        jumps = f"w jumps between {args.start:g} and {6 - args.start:g}"
        print(f"no convergence: the walk does not converge, {jumps}; {rule}")
    return 0


def run_lr_decay(args: argparse.Namespace) -> int:
    rates = seeds.lr_decay_table(init_value=args.lr, decay_rate=args.decay_rate, epochs=args.epochs)
    print("\n".join(format_lr_table(rates)))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "example",
        help="seed 001's worked examples (quadratic, lr-decay)",
        description="Seed 001's worked examples, reproduced with descend's optimizers and schedules.",
    )
    examples = parser.add_subparsers(dest="example", metavar="EXAMPLE", title="examples", parser_class=type(parser))
    parser.set_defaults(run=missing_command("descend example", examples))

    quad = examples.add_parser(
        "quadratic",
        help="gradient descent on L(w) = (w − 3)² with dc.optim.sgd",
        description="Gradient descent on L(w) = (w − 3)² with dc.optim.sgd, printed as in seed 001.",
    )
    quad.add_argument("--lr", type=number(0, None, closed="neither"), default=0.1, help="learning rate η (default 0.1)")
    quad.add_argument(
        "--steps", type=integer(1, MAX_STEPS), default=10, help=f"iterations, 1 to {MAX_STEPS} (default 10)"
    )
    quad.add_argument("--start", type=number(), default=0.0, help="initial w (default 0)")
    quad.set_defaults(run=run_quadratic)

    decay = examples.add_parser(
        "lr-decay",
        help="exponential learning-rate decay 0.1·0.95^epoch",
        description="The exponential decay η_e = lr·decay_rate^e of seed 001, from dc.schedules.exponential_decay.",
    )
    decay.add_argument("--lr", type=number(0, None, closed="neither"), default=0.1, help="initial rate (default 0.1)")
    decay.add_argument(
        "--decay-rate", type=number(0, None, closed="neither"), default=0.95, help="factor per epoch (default 0.95)"
    )
    decay.add_argument(
        "--epochs", type=integer(1, MAX_STEPS), default=10, help=f"epochs, 1 to {MAX_STEPS} (default 10)"
    )
    decay.set_defaults(run=run_lr_decay)
