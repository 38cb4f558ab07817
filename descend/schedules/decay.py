"""Monotone decays: constant, step, multi-step, exponential, polynomial, linear, cosine.

Every factory returns a schedule ``η(t)``, a plain function of the number of
updates done (``t = 0`` for the first update) that returns a Python float.
Each is the closed form of a ``torch.optim.lr_scheduler`` class: the value
torch's scheduler holds in ``optimizer.param_groups[0]["lr"]`` after ``t``
calls of ``scheduler.step()``, with the optimizer's ``lr`` as ``init_value``
(proven over 1,000 steps in ``tests/schedules/test_torch_counterparts.py``).

torch updates most of these recursively (``lr ← lr·γ``); the closed forms
here agree with that to rounding (relative 3e-13 at worst over 1,000 steps). Torch
classes with no counterpart here: ``LambdaLR`` (any ``lambda t: η_0·f(t)`` is
already a schedule) and ``MultiplicativeLR`` (write
``lambda t: η_0·math.prod(f(i) for i in range(1, t + 1))``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

from descend._validation import BOOL, check
from descend.errors import ParameterError
from descend.schedules._base import (
    LR_VALUE,
    NONNEG_FINITE,
    POSITIVE_FINITE,
    STEP_INDEX,
    FiniteInterval,
    Schedule,
    check_step,
    check_steps,
    named,
    scaled_power,
)


def constant(value: float) -> Schedule:
    """``η_t = value`` for every ``t``.

    Counterpart of a torch optimizer with no scheduler (or
    ``torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)``). Passing the float
    itself as ``lr=`` does the same; this exists to build :func:`join_schedules`.
    """
    owner = "constant"
    check(owner, "value", value, LR_VALUE)
    v = float(value)

    def schedule(t: int) -> float:
        check_step(owner, t)
        return v

    return named(schedule, owner, f"constant(value={v!r})")


def constant_factor(init_value: float, factor: float = 1.0 / 3, total_steps: int = 5) -> Schedule:
    """``η_t = η_0·factor`` for ``t < total_steps``, then ``η_0``.

    Counterpart of ``torch.optim.lr_scheduler.ConstantLR(factor, total_iters)``
    with the optimizer's ``lr = init_value``. Differences: torch requires
    ``factor`` in [0, 1] (a factor above 1, a boost for the first steps, is
    allowed here) and divides by zero at ``total_iters`` when ``factor = 0``;
    after ``total_steps`` this returns ``init_value`` exactly where torch's
    ``lr·factor·(1/factor)`` can be one rounding off.
    """
    owner = "constant_factor"
    check(owner, "init_value", init_value, LR_VALUE)
    check(owner, "factor", factor, NONNEG_FINITE)
    n = check_steps(owner, "total_steps", total_steps)
    eta0, f = float(init_value), float(factor)
    low = eta0 * f

    def schedule(t: int) -> float:
        return low if check_step(owner, t) < n else eta0

    return named(schedule, owner, f"constant_factor(init_value={eta0!r}, factor={f!r}, total_steps={n})")


def step_decay(init_value: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """``η_t = η_0·γ^⌊t / step_size⌋``: multiply by γ every ``step_size`` steps (seed 001, 002).

    Counterpart of ``torch.optim.lr_scheduler.StepLR(step_size, gamma)``.
    """
    owner = "step_decay"
    check(owner, "init_value", init_value, LR_VALUE)
    k = check_steps(owner, "step_size", step_size)
    check(owner, "gamma", gamma, NONNEG_FINITE)
    eta0, g = float(init_value), float(gamma)

    def schedule(t: int) -> float:
        return scaled_power(eta0, g, check_step(owner, t) // k)

    return named(schedule, owner, f"step_decay(init_value={eta0!r}, step_size={k}, gamma={g!r})")


def multi_step_decay(init_value: float, milestones: Iterable[int], gamma: float = 0.1) -> Schedule:
    """``η_t = η_0·γ^{m(t)}`` with ``m(t)`` the number of milestones ``<= t``.

    Counterpart of ``torch.optim.lr_scheduler.MultiStepLR(milestones, gamma)``.
    ``milestones`` must be non-decreasing integers >= 0; a milestone listed
    twice multiplies by γ twice, as in torch (which also accepts them unsorted).
    """
    owner = "multi_step_decay"
    check(owner, "init_value", init_value, LR_VALUE)
    if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Iterable):
        raise ParameterError(f"{owner}: milestones must be a sequence of integers, got {milestones!r}")
    ms: Sequence[int] = tuple(milestones)
    for i, m in enumerate(ms):
        check_steps(owner, f"milestones[{i}]", m, STEP_INDEX)
    ms = tuple(int(m) for m in ms)
    if list(ms) != sorted(ms):
        raise ParameterError(f"{owner}: milestones must be non-decreasing, got {list(ms)!r}")
    check(owner, "gamma", gamma, NONNEG_FINITE)
    eta0, g = float(init_value), float(gamma)

    def schedule(t: int) -> float:
        return scaled_power(eta0, g, bisect.bisect_right(ms, check_step(owner, t)))

    return named(schedule, owner, f"multi_step_decay(init_value={eta0!r}, milestones={list(ms)!r}, gamma={g!r})")


def exponential_decay(
    init_value: float,
    decay_rate: float,
    transition_steps: int = 1,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """``η_t = η_0·α^{t/k}`` (seed 001: ``η_t = η_0·α^t``), with α = ``decay_rate``, k = ``transition_steps``.

    ``staircase=True`` uses ``⌊t/k⌋`` (a step decay). ``end_value`` bounds the
    result: a floor when α < 1, a ceiling when α > 1. Seed 001's worked example
    ``0.1·0.95^epoch`` is ``exponential_decay(0.1, 0.95)``: 0.1, 0.095, 0.09025, …

    Counterpart of ``torch.optim.lr_scheduler.ExponentialLR(gamma=decay_rate)``
    for ``k = 1``; with ``staircase=True`` it is ``StepLR(step_size=k,
    gamma=decay_rate)`` and without, ``ExponentialLR(gamma=decay_rate**(1/k))``.
    torch has no ``end_value`` (optax's ``exponential_decay`` does).
    """
    owner = "exponential_decay"
    check(owner, "init_value", init_value, LR_VALUE)
    check(owner, "decay_rate", decay_rate, POSITIVE_FINITE)
    k = check_steps(owner, "transition_steps", transition_steps)
    check(owner, "staircase", staircase, BOOL)
    eta0, rate = float(init_value), float(decay_rate)
    end: float | None = None
    if end_value is not None:
        if rate < 1.0:
            check(owner, "end_value", end_value, FiniteInterval(0, eta0))  # a floor below η_0
        else:
            check(owner, "end_value", end_value, FiniteInterval(eta0, None, closed="left"))
        end = float(end_value)

    def schedule(t: int) -> float:
        t = check_step(owner, t)
        p = t // k if staircase else t / k
        eta = scaled_power(eta0, rate, p)
        if end is not None:
            eta = max(eta, end) if rate < 1.0 else min(eta, end)
        return float(eta)

    return named(
        schedule,
        owner,
        f"exponential_decay(init_value={eta0!r}, decay_rate={rate!r}, transition_steps={k}, "
        f"staircase={staircase!r}, end_value={end!r})",
    )


def polynomial_decay(init_value: float, end_value: float = 0.0, power: float = 1.0, *, total_steps: int) -> Schedule:
    """``η_t = (η_0 − η_end)·(1 − min(t, T)/T)^p + η_end`` with T = ``total_steps``, p = ``power``.

    Counterpart of ``torch.optim.lr_scheduler.PolynomialLR(total_iters=T,
    power=p)``, which always decays to 0 (``end_value = 0``); ``end_value`` is
    optax's ``polynomial_schedule``. ``total_steps`` is keyword-only and
    required here, where torch defaults it to 5.
    """
    owner = "polynomial_decay"
    check(owner, "init_value", init_value, LR_VALUE)
    check(owner, "end_value", end_value, LR_VALUE)
    check(owner, "power", power, NONNEG_FINITE)
    n = check_steps(owner, "total_steps", total_steps)
    eta0, end, p = float(init_value), float(end_value), float(power)

    def schedule(t: int) -> float:
        frac = min(n, check_step(owner, t)) / n
        return float((eta0 - end) * (1.0 - frac) ** p + end)

    return named(
        schedule, owner, f"polynomial_decay(init_value={eta0!r}, end_value={end!r}, power={p!r}, total_steps={n})"
    )


def linear_schedule(init_value: float, end_value: float, transition_steps: int) -> Schedule:
    """``η_t = η_0 + (η_end − η_0)·min(t, T)/T`` with T = ``transition_steps``; then ``η_end``.

    Counterpart of ``torch.optim.lr_scheduler.LinearLR(start_factor,
    end_factor, total_iters=T)`` with optimizer ``lr = η``: ``init_value =
    η·start_factor``, ``end_value = η·end_factor``. Unlike torch the ends are
    absolute learning rates, so ``init_value = 0`` (a warm-up from zero, which
    torch's ``start_factor > 0`` forbids) and ``end_value > init_value`` beyond
    the optimizer's ``lr`` are allowed.
    """
    owner = "linear_schedule"
    return _linear(owner, init_value, end_value, transition_steps, "init_value", "end_value", "transition_steps")


def linear_warmup(peak_value: float, warmup_steps: int, init_value: float = 0.0) -> Schedule:
    """Linear warm-up ``η_t = η_init + (η_peak − η_init)·min(t, W)/W``, then ``η_peak``.

    The same as ``linear_schedule(init_value, peak_value, warmup_steps)``.
    Counterpart of ``torch.optim.lr_scheduler.LinearLR(start_factor=init/peak,
    end_factor=1.0, total_iters=W)`` with optimizer ``lr = peak_value``; torch
    cannot start from 0 (its ``start_factor`` must be > 0), the default here.
    """
    owner = "linear_warmup"
    return _linear(owner, init_value, peak_value, warmup_steps, "init_value", "peak_value", "warmup_steps")


def _linear(owner: str, a: float, b: float, steps: int, a_name: str, b_name: str, steps_name: str) -> Schedule:
    check(owner, a_name, a, LR_VALUE)
    check(owner, b_name, b, LR_VALUE)
    n = check_steps(owner, steps_name, steps)
    a, b = float(a), float(b)

    def schedule(t: int) -> float:
        return float(a + (b - a) * min(n, check_step(owner, t)) / n)

    return named(schedule, owner, f"{owner}({a_name}={a!r}, {b_name}={b!r}, {steps_name}={n})")


def cosine_decay(
    init_value: float,
    decay_steps: int,
    alpha: float = 0.0,
    *,
    eta_min: float | None = None,
    periodic: bool = False,
) -> Schedule:
    """Cosine annealing (Loshchilov & Hutter, SGDR) from ``η_0`` to ``η_min`` over T = ``decay_steps``:

    .. math::
        η_t = η_{min} + \\tfrac12 (η_0 − η_{min})\\,(1 + \\cos(π·\\min(t, T)/T))

    ``η_min = alpha·η_0`` (optax's ``alpha``) or ``eta_min`` (torch's, absolute);
    give one of them. After T steps the rate stays at ``η_min``.

    Counterpart of ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=T,
    eta_min)``, which agrees for ``t <= T``. torch updates recursively,
    ``η_{t+1} = η_min + (η_t − η_min)·(1 + cos((t+1)π/T)) / (1 + cos(tπ/T))``,
    with a special additive step at ``t = T + 1 (mod 2T)`` where that ratio is
    0/0; beyond T this keeps following the cosine, back up to ``η_0`` at
    ``t = 2T`` and on with period 2T (no hold). ``periodic=True`` reproduces
    that: the formula without the ``min``.
    """
    owner = "cosine_decay"
    check(owner, "init_value", init_value, LR_VALUE)
    n = check_steps(owner, "decay_steps", decay_steps)
    check(owner, "alpha", alpha, NONNEG_FINITE)
    check(owner, "periodic", periodic, BOOL)
    eta0 = float(init_value)
    if eta_min is None:
        low = float(alpha) * eta0
    else:
        check(owner, "eta_min", eta_min, LR_VALUE)
        if alpha != 0:
            raise ParameterError(f"{owner}: give alpha or eta_min, not both, got alpha={alpha!r}, eta_min={eta_min!r}")
        low = float(eta_min)

    def schedule(t: int) -> float:
        t = check_step(owner, t)
        tc = t if periodic else min(t, n)
        # torch's expression order, so the closed forms agree to the last bit
        return float(low + (eta0 - low) * (1 + math.cos(math.pi * tc / n)) / 2)

    return named(
        schedule,
        owner,
        f"cosine_decay(init_value={eta0!r}, decay_steps={n}, eta_min={low!r}, periodic={periodic!r})",
    )


__all__ = [
    "constant",
    "constant_factor",
    "cosine_decay",
    "exponential_decay",
    "linear_schedule",
    "linear_warmup",
    "multi_step_decay",
    "polynomial_decay",
    "step_decay",
]
