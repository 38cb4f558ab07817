"""Scaling by the learning rate: the last link of almost every optimizer.

``scale_by_learning_rate(lr)`` turns a descent direction ``d`` into the update
``-η_t · s · d`` where ``η_t = lr(t)`` for a schedule (or ``lr`` for a float),
``t`` is the number of updates done so far and ``s`` is the multiplier set by a
reduce-on-plateau controller (:func:`descend.optim.set_lr_scale`). The state
records ``count``, the learning rate actually used last (``lr``) and ``lr_scale``
so training loops can log and plot them (:func:`descend.optim.get_lr`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from descend._validation import LEARNING_RATE, Interval, check
from descend.errors import NonFiniteError, ParameterError
from descend.optim.base import GradientTransformation, stateless
from descend.optim.tree import Tree, tree_map

ScalarOrSchedule = float | Callable[[int], float]


class ScaleByLearningRateState(NamedTuple):
    count: int  # updates done so far: the step the schedule is evaluated at
    lr: float  # learning rate used by the last update (η_0 before the first)
    lr_scale: float  # multiplier from a plateau controller, 1.0 by default


def resolve_lr(lr: ScalarOrSchedule, count: int) -> float:
    """The learning rate at step ``count`` as a Python float (keeps dtypes weak).

    A schedule that returns NaN or ±inf (or something that is not a number)
    raises at the step where it happens, naming the step, instead of turning
    every parameter into NaN silently: :class:`~descend.errors.NonFiniteError`
    (:class:`~descend.errors.ParameterError` for a non-number).
    """
    if not callable(lr):
        return float(lr)  # validated by the factory
    value = lr(count)
    try:
        eta = float(value)
    except (TypeError, ValueError):
        raise ParameterError(
            f"learning rate: the schedule must return a real number, got {value!r} at step {count}"
        ) from None
    if not math.isfinite(eta):
        raise NonFiniteError(
            f"learning rate: the schedule returned {eta} at step {count} (updates done so far); "
            "a learning rate must be finite"
        )
    return eta


def scale_by_learning_rate(
    lr: ScalarOrSchedule, *, flip_sign: bool = True, owner: str = "scale_by_learning_rate"
) -> GradientTransformation:
    """``u ← -η_t · s · u`` (or ``+η_t · s · u`` with ``flip_sign=False``)."""
    check(owner, "lr", lr, LEARNING_RATE)
    sign = -1.0 if flip_sign else 1.0

    def init(params: Tree) -> ScaleByLearningRateState:
        return ScaleByLearningRateState(count=0, lr=resolve_lr(lr, 0), lr_scale=1.0)

    def update(updates: Tree, state: ScaleByLearningRateState, params: Tree | None = None):
        eta = resolve_lr(lr, state.count) * state.lr_scale
        factor = sign * eta
        updates = tree_map(lambda u: factor * u, updates)
        return updates, ScaleByLearningRateState(state.count + 1, eta, state.lr_scale)

    return GradientTransformation(init, update)


def learning_rate_at(lr: ScalarOrSchedule, state: ScaleByLearningRateState) -> float:
    """η for the *next* update given a :class:`ScaleByLearningRateState`."""
    return resolve_lr(lr, state.count) * state.lr_scale


def scale(factor: float) -> GradientTransformation:
    """``u ← factor · u`` (``scale(-1.0)`` turns minimization into maximization)."""
    check("scale", "factor", factor, Interval(None, None))
    factor = float(factor)

    def fn(updates: Tree, params: Tree | None) -> Tree:
        return tree_map(lambda u: factor * u, updates)

    return stateless(fn)
