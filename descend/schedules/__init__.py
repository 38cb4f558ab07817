"""Learning-rate schedules: functions of the step count that return the learning rate.

A schedule is a plain function ``η(t)`` of ``t``, the number of updates done
(``t = 0`` for the first), returning a Python float. Every optimizer's ``lr=``
takes a float or a schedule::

    >>> import descend as dc
    >>> opt = dc.optim.sgd(lr=dc.schedules.step_decay(0.1, step_size=10, gamma=0.5))
    >>> dc.schedules.exponential_decay(0.1, 0.95)(2)  # seed 001: 0.1·0.95^t
    0.09025

Each factory is the closed form of a ``torch.optim.lr_scheduler`` class (named
in its docstring, with any difference) and is tested against it for 1,000
steps. :func:`reduce_on_plateau` is a controller, not a schedule: it returns a
multiplier for :func:`descend.optim.set_lr_scale` from a monitored metric.
"""

from descend.schedules._base import Schedule
from descend.schedules.cyclic import cosine_warm_restarts, cyclic, one_cycle
from descend.schedules.decay import (
    constant,
    constant_factor,
    cosine_decay,
    exponential_decay,
    linear_schedule,
    linear_warmup,
    multi_step_decay,
    polynomial_decay,
    step_decay,
)
from descend.schedules.join import join_schedules, warmup_cosine_decay
from descend.schedules.plateau import PlateauController, PlateauState, reduce_on_plateau

__all__ = [
    "PlateauController",
    "PlateauState",
    "Schedule",
    "constant",
    "constant_factor",
    "cosine_decay",
    "cosine_warm_restarts",
    "cyclic",
    "exponential_decay",
    "join_schedules",
    "linear_schedule",
    "linear_warmup",
    "multi_step_decay",
    "one_cycle",
    "polynomial_decay",
    "reduce_on_plateau",
    "step_decay",
    "warmup_cosine_decay",
]
