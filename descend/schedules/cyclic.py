"""Schedules that go up as well as down: warm restarts, one-cycle, cyclical.

Each is a pure function of the step count ``t`` (updates done, ``t = 0`` first)
and the closed form of a ``torch.optim.lr_scheduler`` class, evaluated with
torch's own expressions so the two agree to the last bit. torch's one-cycle and
cyclical schedulers also cycle the optimizer's momentum (``cycle_momentum=True``
by default); descend's schedules return only the learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from descend._validation import BOOL, UNIT_CLOSED, Interval, IsCallable, OneOf, check
from descend.errors import ParameterError
from descend.schedules._base import (
    LR_VALUE,
    POSITIVE_FINITE,
    STEP_INDEX,
    Schedule,
    check_step,
    check_steps,
    named,
)


def cosine_warm_restarts(init_value: float, t_0: int, t_mult: int = 1, eta_min: float = 0.0) -> Schedule:
    """SGDR: cosine annealing restarted every ``T_i`` steps, ``T_0 = t_0``, ``T_{i+1} = t_mult·T_i``:

    .. math::
        η_t = η_{min} + \\tfrac12 (η_0 − η_{min})\\,(1 + \\cos(π·T_{cur}/T_i))

    with ``T_cur`` the steps since the last restart (restarts at
    ``t = t_0·(t_mult^i − 1)/(t_mult − 1)``, where ``η`` jumps back to ``η_0``).

    Counterpart of ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(T_0,
    T_mult, eta_min)`` stepped once per update (``scheduler.step()`` without an
    argument). torch also accepts fractional epochs (``step(epoch + i/iters)``);
    a schedule here takes integer steps, so count updates instead.
    """
    owner = "cosine_warm_restarts"
    check(owner, "init_value", init_value, LR_VALUE)
    t0 = check_steps(owner, "t_0", t_0)
    tm = check_steps(owner, "t_mult", t_mult)
    check(owner, "eta_min", eta_min, LR_VALUE)
    eta0, low = float(init_value), float(eta_min)

    def schedule(t: int) -> float:
        t = check_step(owner, t)
        if tm == 1:
            t_cur, t_i = t % t0, t0
        else:  # integer walk over the cycles (torch's incremental form; no float log)
            t_cur, t_i = t, t0
            while t_cur >= t_i:
                t_cur -= t_i
                t_i *= tm
        return float(low + (eta0 - low) * (1 + math.cos(math.pi * t_cur / t_i)) / 2)

    return named(schedule, owner, f"cosine_warm_restarts(init_value={eta0!r}, t_0={t0}, t_mult={tm}, eta_min={low!r})")


def one_cycle(
    max_lr: float,
    total_steps: int,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> Schedule:
    """The 1cycle policy (Smith & Topin 2019), fastai's two-phase form by default.

    With ``η_init = max_lr/div_factor``, ``η_min = η_init/final_div_factor``
    and ``P = pct_start·total_steps``: anneal ``η_init → max_lr`` over steps
    ``0 … P−1``, then ``max_lr → η_min`` until ``total_steps − 1``.
    ``three_phase=True`` (the paper's form) goes ``η_init → max_lr → η_init``
    symmetrically and then ``η_init → η_min``. Within a phase from ``a`` to
    ``b`` over ``[s, e]`` the fraction is ``p = (t − s)/(e − s)`` and the rate
    ``b + (a − b)(1 + cos πp)/2`` (``anneal_strategy="cos"``) or
    ``a + (b − a)p`` (``"linear"``).

    Counterpart of ``torch.optim.lr_scheduler.OneCycleLR(max_lr, total_steps,
    pct_start, anneal_strategy, div_factor=..., final_div_factor=...,
    three_phase=...)`` for ``t < total_steps``. Differences: for ``t >=
    total_steps`` this holds the last value (η_min) where torch extrapolates
    at ``t = total_steps`` and raises beyond; momentum is not cycled;
    ``epochs``/``steps_per_epoch`` are not taken (pass their product);
    ``pct_start·total_steps = 1`` (a warm-up of length 0, a ZeroDivisionError
    in torch) is refused at construction.
    """
    owner = "one_cycle"
    check(owner, "max_lr", max_lr, LR_VALUE)
    n = check_steps(owner, "total_steps", total_steps)
    check(owner, "pct_start", pct_start, UNIT_CLOSED)
    check(owner, "anneal_strategy", anneal_strategy, OneOf("cos", "linear"))
    check(owner, "div_factor", div_factor, POSITIVE_FINITE)
    check(owner, "final_div_factor", final_div_factor, POSITIVE_FINITE)
    check(owner, "three_phase", three_phase, BOOL)
    if float(pct_start * n) == 1.0:
        raise ParameterError(
            f"{owner}: pct_start * total_steps must not be 1 (the warm-up would last 0 steps), "
            f"got pct_start={pct_start!r}, total_steps={n}"
        )
    peak = float(max_lr)
    initial = peak / div_factor
    final = initial / final_div_factor
    # (end_step, start_lr, end_lr), exactly torch's _schedule_phases
    if three_phase:
        phases = [
            (float(pct_start * n) - 1, initial, peak),
            (float(2 * pct_start * n) - 2, peak, initial),
            (n - 1, initial, final),
        ]
    else:
        phases = [(float(pct_start * n) - 1, initial, peak), (n - 1, peak, final)]
    cos = anneal_strategy == "cos"

    def value(step: int) -> float:
        start_step = 0.0
        for i, (end_step, a, b) in enumerate(phases):
            if step <= end_step or i == len(phases) - 1:
                pct = (step - start_step) / (end_step - start_step)
                if cos:
                    return float(b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1))
                return float((b - a) * pct + a)
            start_step = end_step
        raise AssertionError("unreachable")  # pragma: no cover

    last = value(n - 1)

    def schedule(t: int) -> float:
        t = check_step(owner, t)
        return value(t) if t < n else last

    return named(
        schedule,
        owner,
        f"one_cycle(max_lr={peak!r}, total_steps={n}, pct_start={pct_start!r}, anneal_strategy={anneal_strategy!r}, "
        f"div_factor={div_factor!r}, final_div_factor={final_div_factor!r}, three_phase={three_phase!r})",
    )


def cyclic(
    base_lr: float,
    max_lr: float,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: Callable[[float], float] | None = None,
    scale_mode: str = "cycle",
) -> Schedule:
    """Cyclical learning rates (Smith 2017): triangles between ``base_lr`` and ``max_lr``.

    With ``S = step_size_up + step_size_down`` (down defaults to up),
    ``c = ⌊1 + t/S⌋`` the cycle (from 1), ``x = 1 + t/S − c`` the position in
    it and ``r = step_size_up/S``::

        h = x/r  if x <= r  else (x − 1)/(r − 1)
        η_t = base_lr + (max_lr − base_lr)·h·s

    where ``s = 1`` (``mode="triangular"``), ``s = 1/2^{c−1}``
    (``"triangular2"``: the amplitude halves every cycle) or ``s = γ^t``
    (``"exp_range"``). A custom ``scale_fn(x)`` replaces ``mode``; it is called
    with ``c`` (``scale_mode="cycle"``) or ``t`` (``"iterations"``).
    ``step_size_down = 0`` gives a saw-tooth.

    Counterpart of ``torch.optim.lr_scheduler.CyclicLR`` with the same
    arguments; torch also cycles momentum (``cycle_momentum``), not done here.
    As in torch, ``scale_mode`` is ignored unless ``scale_fn`` is given.
    Differences: ``gamma`` must be in (0, 1] (torch accepts a growing
    ``exp_range``); ``triangular2`` keeps working past 1,024 cycles, where
    torch's ``1/2.0**(cycle − 1)`` raises ``OverflowError``.
    """
    owner = "cyclic"
    check(owner, "base_lr", base_lr, LR_VALUE)
    check(owner, "max_lr", max_lr, LR_VALUE)
    up = float(check_steps(owner, "step_size_up", step_size_up))
    down = up if step_size_down is None else float(check_steps(owner, "step_size_down", step_size_down, STEP_INDEX))
    check(owner, "mode", mode, OneOf("triangular", "triangular2", "exp_range"))
    check(owner, "gamma", gamma, Interval(0, 1, closed="right"))
    if scale_fn is not None:
        check(owner, "scale_fn", scale_fn, IsCallable())
    check(owner, "scale_mode", scale_mode, OneOf("cycle", "iterations"))
    lo, hi, g = float(base_lr), float(max_lr), float(gamma)
    total = up + down
    ratio = up / total

    fn: Callable[[float], float]
    if scale_fn is not None:
        fn, by = scale_fn, scale_mode
    elif mode == "triangular":
        fn, by = (lambda x: 1.0), "cycle"
    elif mode == "triangular2":
        # torch's 1/2^(c−1), written 0.5^(c−1) (the same, exactly): underflows to 0 instead of raising
        # OverflowError after 1,024 cycles
        fn, by = (lambda x: 0.5 ** (x - 1)), "cycle"
    else:
        fn, by = (lambda x: g**x), "iterations"

    def schedule(t: int) -> float:
        t = check_step(owner, t)
        cycle = math.floor(1 + t / total)
        x = 1.0 + t / total - cycle
        factor = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        height = (hi - lo) * factor
        return float(lo + height * fn(cycle if by == "cycle" else t))

    return named(
        schedule,
        owner,
        f"cyclic(base_lr={lo!r}, max_lr={hi!r}, step_size_up={int(up)}, step_size_down={int(down)}, mode={mode!r}, "
        f"gamma={g!r}, scale_fn={scale_fn!r}, scale_mode={scale_mode!r})",
    )


__all__ = ["cosine_warm_restarts", "cyclic", "one_cycle"]
