"""What every schedule shares: the type, the argument checks and the step check.

A schedule is a plain function ``η(t)`` of the number of updates done so far
(``t = 0`` for the first update) returning the learning rate as a Python
float. The factories in this package validate all their arguments when they
are called; the returned function checks only that ``t`` is an integer >= 0.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

from descend._validation import Interval
from descend.errors import ParameterError

Schedule = Callable[[int], float]


class FiniteInterval(Interval):
    """An :class:`Interval` that also rejects ``inf`` (``[0, inf)`` means finite)."""

    def accepts(self, value: Any) -> bool:
        return super().accepts(value) and math.isfinite(float(value))


LR_VALUE = FiniteInterval(0, None, closed="left")  # a learning rate: finite, >= 0
NONNEG_FINITE = LR_VALUE  # a factor such as gamma: finite, >= 0
POSITIVE_FINITE = FiniteInterval(0, None, closed="neither")
STEPS = Interval(1, None, integer=True)  # a number of steps: integer >= 1
STEP_INDEX = Interval(0, None, integer=True)  # a step index: integer >= 0


def is_step_count(value: Any) -> bool:
    """An ``int`` (or NumPy integer) that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_steps(owner: str, name: str, value: Any, constraint: Interval = STEPS) -> int:
    """Require an actual integer (``10.0`` is refused: steps are counted)."""
    if not is_step_count(value) or not constraint.accepts(value):
        raise ParameterError(f"{owner}: {name} must be {constraint}, got {value!r}")
    return int(value)


def check_step(owner: str, t: Any) -> int:
    """The argument of a schedule: the number of updates done, an integer >= 0."""
    if not is_step_count(t) or t < 0:
        raise ParameterError(f"{owner}: step must be an integer in [0, inf), got {t!r}")
    return int(t)


def scaled_power(scale: float, base: float, exponent: float) -> float:
    """``scale·base^exponent`` that saturates to ``inf`` instead of raising ``OverflowError``.

    torch's recursive ``lr ← lr·γ`` reaches ``inf`` quietly; Python's ``γ**t``
    would raise after long runs with γ > 1. A zero ``scale`` stays 0 (not NaN).
    """
    if scale == 0.0:
        return 0.0
    try:
        return float(scale * base**exponent)
    except OverflowError:
        return math.inf


def named(fn: Schedule, owner: str, doc: str | None = None) -> Schedule:
    """Give a schedule closure a readable name (shows up in logs and reprs)."""
    fn.__name__ = owner
    fn.__qualname__ = owner
    if doc is not None:
        fn.__doc__ = doc
    return fn
