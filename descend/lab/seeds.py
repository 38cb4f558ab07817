"""Seed 001's two worked examples, run through descend's optimizer and schedule.

* :func:`quadratic_walk`: gradient descent on ``L(w) = (w − 3)²`` from ``w = 0``
  with ``η = 0.1``, but each step is ``dc.optim.sgd(lr=η)`` applied through
  ``tx.init`` / ``tx.update`` / ``dc.optim.apply_updates`` instead of the
  notebook's hand-written ``w = w − η·dL/dw``. The numbers are the same.
* :func:`lr_decay_table`: the notebook's ``η_t = 0.1 · 0.95^t`` for ten epochs,
  from ``dc.schedules.exponential_decay(0.1, 0.95)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from descend import schedules
from descend._validation import Interval, check
from descend.optim import apply_updates, sgd

TARGET = 3.0  # the minimizer of L(w) = (w − 3)²

_STEPS = Interval(1, None, closed="left", integer=True)
_FINITE = Interval(-math.inf, math.inf, closed="neither")  # "in (-inf, inf)"


def loss(w: float | np.ndarray) -> float:
    """``L(w) = (w − 3)²`` (seed 001)."""
    return float((w - TARGET) ** 2)


def grad_loss(w: np.ndarray) -> np.ndarray:
    """``dL/dw = 2(w − 3)`` (seed 001)."""
    return 2.0 * (w - TARGET)


class WalkStep(NamedTuple):
    iteration: int  # 1-based, as the notebook prints it
    w: float  # w after this iteration's update
    loss: float  # L(w) at that w


def quadratic_walk(lr: float = 0.1, steps: int = 10, start: float = 0.0) -> list[WalkStep]:
    """Gradient descent on ``L(w) = (w − 3)²`` with ``dc.optim.sgd(lr=lr)``.

    Returns one :class:`WalkStep` per iteration. The walk converges for
    ``0 < lr < 1`` (the update is ``w − 3 ← (1 − 2η)(w − 3)``); for a larger
    ``lr`` it diverges, and the walk stops at the first iteration whose loss is
    no longer finite (that step is included, so callers can report it).
    """
    owner = "quadratic_walk"
    check(owner, "steps", steps, _STEPS)
    check(owner, "start", start, _FINITE)
    tx = sgd(lr=lr)  # validates lr
    w = np.array(float(start))  # a 0-d float64 parameter
    state = tx.init(w)
    walk: list[WalkStep] = []
    with np.errstate(over="ignore", invalid="ignore"):  # a divergent lr overflows; reported, not warned
        for i in range(steps):
            updates, state = tx.update(grad_loss(w), state, w)
            w = np.asarray(apply_updates(w, updates))
            walk.append(WalkStep(i + 1, float(w), loss(w)))
            if not math.isfinite(walk[-1].loss):
                break
    return walk


def lr_decay_table(init_value: float = 0.1, decay_rate: float = 0.95, epochs: int = 10) -> list[float]:
    """``η_e = init_value · decay_rate^e`` for ``e = 0 … epochs − 1`` from ``dc.schedules.exponential_decay``."""
    check("lr_decay_table", "epochs", epochs, _STEPS)
    schedule = schedules.exponential_decay(init_value, decay_rate)
    return [float(schedule(epoch)) for epoch in range(epochs)]


__all__ = ["TARGET", "WalkStep", "grad_loss", "loss", "lr_decay_table", "quadratic_walk"]
