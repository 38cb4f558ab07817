"""Declarative parameter constraints with one clear message each.

Every public factory validates its arguments when it is called, not when the
first step runs, so a typo fails fast::

    >>> check("adam", "betas[0]", 1.5, Interval(0, 1, closed="left"))
    Traceback (most recent call last):
    ...
    descend.errors.ParameterError: adam: betas[0] must be in [0, 1), got 1.5

The message always names the owner, the parameter, what is allowed and what
was given.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

from descend.errors import ParameterError


class Constraint:
    """A predicate on a value with a human description ("in [0, 1)")."""

    description: str

    def accepts(self, value: Any) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def __str__(self) -> str:
        return self.description


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class Interval(Constraint):
    """A real number in an interval; ``None`` bounds are infinite.

    ``closed`` is one of ``"both"``, ``"left"``, ``"right"``, ``"neither"``.
    ``integer=True`` additionally requires an integral value.
    """

    def __init__(self, low: float | None, high: float | None, closed: str = "both", integer: bool = False):
        self.low, self.high, self.closed, self.integer = low, high, closed, integer
        left = "[" if closed in ("both", "left") and low is not None else "("
        right = "]" if closed in ("both", "right") and high is not None else ")"
        lo = "-inf" if low is None else _fmt(low)
        hi = "inf" if high is None else _fmt(high)
        kind = "an integer in " if integer else "in "
        self.description = f"{kind}{left}{lo}, {hi}{right}"

    def accepts(self, value: Any) -> bool:
        if not _is_real(value):
            return False
        v = float(value)
        if math.isnan(v):
            return False
        if self.integer and not float(v).is_integer():
            return False
        if self.low is not None:
            if v < self.low or (v == self.low and self.closed not in ("both", "left")):
                return False
        if self.high is not None:
            if v > self.high or (v == self.high and self.closed not in ("both", "right")):
                return False
        return True


class OneOf(Constraint):
    """One of a fixed set of values (strings are quoted in the message)."""

    def __init__(self, *options: Any):
        self.options = options
        self.description = "one of " + ", ".join(repr(o) for o in options)

    def accepts(self, value: Any) -> bool:
        return any(value == o and type(value) is type(o) for o in self.options)


class IsBool(Constraint):
    description = "a bool"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)


class IsCallable(Constraint):
    description = "a callable"

    def accepts(self, value: Any) -> bool:
        return callable(value)


class AnyOf(Constraint):
    """Accepts a value that satisfies any of the given constraints."""

    def __init__(self, *constraints: Constraint):
        self.constraints = constraints
        self.description = " or ".join(str(c) for c in constraints)

    def accepts(self, value: Any) -> bool:
        return any(c.accepts(value) for c in self.constraints)


class _Describe(Constraint):
    def __init__(self, description: str, predicate: Callable[[Any], bool]):
        self.description, self._predicate = description, predicate

    def accepts(self, value: Any) -> bool:
        return self._predicate(value)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


NONNEGATIVE = Interval(0, None, closed="left")
POSITIVE = Interval(0, None, closed="neither")
UNIT_OPEN_RIGHT = Interval(0, 1, closed="left")  # [0, 1): betas, momentum decay
UNIT_CLOSED = Interval(0, 1, closed="both")
BOOL = IsBool()
WEIGHT_DECAY = AnyOf(
    _Describe("in [0, inf)", NONNEGATIVE.accepts),
    _Describe(
        "an array of such values",
        lambda v: (
            hasattr(v, "dtype")
            and getattr(v, "ndim", 0) > 0
            and v.dtype.kind in "fiu"
            and bool(((v >= 0) & (v < float("inf"))).all())
        ),
    ),
)
LEARNING_RATE = AnyOf(
    _Describe("a float in [0, inf)", NONNEGATIVE.accepts), _Describe("a schedule (callable)", callable)
)


def check(owner: str, name: str, value: Any, constraint: Constraint) -> Any:
    """Return ``value`` if ``constraint`` accepts it, else raise :class:`ParameterError`."""
    if not constraint.accepts(value):
        raise ParameterError(f"{owner}: {name} must be {constraint}, got {value!r}")
    return value


def check_pair(owner: str, name: str, value: Any, constraint: Constraint) -> tuple[Any, Any]:
    """Validate a 2-sequence such as ``betas``; each element against ``constraint``."""
    if not isinstance(value, Iterable) or isinstance(value, str):
        raise ParameterError(f"{owner}: {name} must be a pair of numbers, got {value!r}")
    items = tuple(value)
    if len(items) != 2:
        raise ParameterError(f"{owner}: {name} must be a pair of numbers, got {value!r}")
    for i, v in enumerate(items):
        check(owner, f"{name}[{i}]", v, constraint)
    return items
