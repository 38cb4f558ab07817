"""Putting schedules one after another: ``join_schedules`` and a warm-up + cosine recipe."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable

from descend._validation import Interval, IsCallable, check
from descend.errors import ParameterError
from descend.schedules._base import LR_VALUE, STEP_INDEX, Schedule, check_step, check_steps, named
from descend.schedules.decay import cosine_decay, linear_schedule


def join_schedules(schedules: Iterable[Schedule], boundaries: Iterable[int]) -> Schedule:
    """Run ``schedules[i]`` from ``boundaries[i−1]`` (0 for the first) to ``boundaries[i]``:

    .. math::
        η_t = s_i(t − b_{i−1}) \\quad \\text{for} \\quad b_{i−1} <= t < b_i

    Each later schedule restarts its own clock: it sees ``t − boundary``.
    ``boundaries`` are strictly increasing integers >= 0, one fewer than the
    schedules.

    Counterpart of ``torch.optim.lr_scheduler.SequentialLR(schedulers,
    milestones=boundaries)`` (and of optax's ``join_schedules``). In torch every
    scheduler starts from the optimizer's one initial ``lr``; here each
    schedule carries its own values, so give them the same ``init_value`` to
    reproduce torch. Torch's ``ChainedScheduler`` (schedulers multiplied
    together) has no counterpart: write ``lambda t: a(t) * b(t) / η_0``.
    """
    owner = "join_schedules"
    if isinstance(schedules, (str, bytes)) or not isinstance(schedules, Iterable):
        raise ParameterError(f"{owner}: schedules must be a sequence of schedules, got {schedules!r}")
    parts = tuple(schedules)
    if not parts:
        raise ParameterError(f"{owner}: schedules must contain at least one schedule, got []")
    for i, s in enumerate(parts):
        check(owner, f"schedules[{i}]", s, IsCallable())
    if isinstance(boundaries, (str, bytes)) or not isinstance(boundaries, Iterable):
        raise ParameterError(f"{owner}: boundaries must be a sequence of integers, got {boundaries!r}")
    bounds = tuple(boundaries)
    if len(bounds) != len(parts) - 1:
        raise ParameterError(
            f"{owner}: boundaries must have one entry fewer than schedules ({len(parts) - 1}), "
            f"got {len(bounds)}: {list(bounds)!r}"
        )
    for i, b in enumerate(bounds):
        check_steps(owner, f"boundaries[{i}]", b, STEP_INDEX)
    bounds = tuple(int(b) for b in bounds)
    if any(b1 <= b0 for b0, b1 in itertools.pairwise(bounds)):
        raise ParameterError(f"{owner}: boundaries must be strictly increasing, got {list(bounds)!r}")
    starts = (0, *bounds)

    def schedule(t: int) -> float:
        t = check_step(owner, t)
        i = bisect.bisect_right(bounds, t)
        return float(parts[i](t - starts[i]))

    names = ", ".join(getattr(s, "__name__", type(s).__name__) for s in parts)
    return named(schedule, owner, f"join_schedules([{names}], boundaries={list(bounds)!r})")


def warmup_cosine_decay(
    init_value: float, peak_value: float, warmup_steps: int, decay_steps: int, end_value: float = 0.0
) -> Schedule:
    """Linear warm-up ``init_value → peak_value`` over W = ``warmup_steps``, then cosine to ``end_value``.

    ``decay_steps`` counts the whole schedule, warm-up included (optax's
    ``warmup_cosine_decay_schedule``)::

        η_t = init + (peak − init)·t/W                                  t < W
        η_t = end + (peak − end)·(1 + cos(π·min(t − W, D − W)/(D − W)))/2   t >= W

    Counterpart of ``torch.optim.lr_scheduler.SequentialLR([LinearLR(
    start_factor=init/peak, total_iters=W), CosineAnnealingLR(T_max=D − W,
    eta_min=end)], milestones=[W])`` with optimizer ``lr = peak``, for
    ``init_value > 0`` (torch cannot warm up from 0) and ``t <= D``.
    """
    owner = "warmup_cosine_decay"
    check(owner, "init_value", init_value, LR_VALUE)
    check(owner, "peak_value", peak_value, LR_VALUE)
    w = check_steps(owner, "warmup_steps", warmup_steps, STEP_INDEX)
    d = check_steps(owner, "decay_steps", decay_steps, Interval(w + 1, None, integer=True))
    check(owner, "end_value", end_value, LR_VALUE)
    cosine = cosine_decay(peak_value, d - w, eta_min=end_value)
    if w == 0:
        joined = cosine
    else:
        joined = join_schedules([linear_schedule(init_value, peak_value, w), cosine], [w])

    def schedule(t: int) -> float:
        return joined(check_step(owner, t))

    return named(
        schedule,
        owner,
        f"warmup_cosine_decay(init_value={float(init_value)!r}, peak_value={float(peak_value)!r}, "
        f"warmup_steps={w}, decay_steps={d}, end_value={float(end_value)!r})",
    )


__all__ = ["join_schedules", "warmup_cosine_decay"]
