"""Reduce the learning rate when a metric stops improving (seed 002's "reduce on plateau").

A pure controller after optax's ``contrib.reduce_on_plateau``, with torch's rule.
It does not own a learning rate: it keeps a multiplier ``scale`` that the
training loop applies on top of any schedule::

    plateau = dc.schedules.reduce_on_plateau(patience=5)
    pstate = plateau.init()
    for epoch in range(epochs):
        ...                                                   # train one epoch
        pstate = plateau.update(pstate, val_loss, lr=schedule(dc.optim.get_step(opt_state)))
        opt_state = dc.optim.set_lr_scale(opt_state, pstate.scale)

:class:`PlateauState` holds only Python ints and floats, so it saves and loads
with :func:`descend.optim.state_to_dict` / :func:`descend.optim.state_from_dict`
(template: ``plateau.init()``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from descend._validation import Interval, OneOf, check
from descend.errors import ParameterError
from descend.schedules._base import LR_VALUE, NONNEG_FINITE, STEP_INDEX, check_steps


class PlateauState(NamedTuple):
    best: float  # best metric seen (+inf in min mode, -inf in max mode before the first update)
    num_bad_epochs: int  # updates since the last improvement (reset by a reduction and during cooldown)
    cooldown_counter: int  # updates left during which bad epochs are not counted
    last_epoch: int  # number of updates done
    scale: float  # multiplier for the learning rate: pass to dc.optim.set_lr_scale
    num_reductions: int  # number of times the learning rate was reduced


class PlateauController(NamedTuple):
    """``init() -> PlateauState`` and ``update(state, metric, lr=None) -> PlateauState``."""

    init: Callable[[], PlateauState]
    update: Callable[..., PlateauState]


def reduce_on_plateau(
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    mode: str = "min",
    cooldown: int = 0,
    min_lr: float = 0.0,
    eps: float = 1e-8,
    semantics: str = "descend",
) -> PlateauController:
    """Multiply the learning rate by ``factor`` after ``patience`` updates without improvement.

    Each ``update(state, metric, lr)`` (once per epoch, with the monitored
    metric ``a``) does, in torch's order:

    1. ``a`` improves on ``best`` (below) → ``best = a``, ``num_bad_epochs = 0``;
       otherwise ``num_bad_epochs += 1``.
    2. In cooldown (``cooldown_counter > 0``): ``cooldown_counter −= 1`` and
       ``num_bad_epochs = 0``.
    3. If ``num_bad_epochs > patience``: reduce, then ``cooldown_counter =
       cooldown`` and ``num_bad_epochs = 0``. Reducing takes the effective rate
       ``η = lr·scale`` to ``η' = max(η·factor, min_lr)`` and applies it (``scale
       = η'/lr``) only if ``η − η' > eps``.

    Improvement, with ``θ = threshold``, in ``mode="min"`` (``"max"`` mirrors it):
    ``threshold_mode="abs"``: ``a < best − θ``; ``"rel"``:

    * ``semantics="descend"`` (default): ``a < best − θ·|best|``. Sign-aware,
      so a metric that is negative (a log-likelihood, a negated reward) must
      still improve by the fraction θ of its size.
    * ``semantics="torch"``: ``a < best·(1 − θ)``, exactly
      ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (and optax). For a
      negative ``best`` that bound lies *above* ``best``, so a slightly worse
      value counts as an improvement and a negative plateau never reduces.

    The two agree whenever ``best >= 0`` and in ``"abs"`` mode.

    ``lr`` is the un-scaled learning rate of the schedule at this point; it is
    needed only for ``min_lr`` and ``eps``. Without it the reduction is
    ``scale ← scale·factor`` unconditionally, and ``min_lr > 0`` raises.
    ``min_lr`` is checked when a reduction happens: a schedule that keeps
    decaying can take the effective rate below it later.

    A NaN metric is never an improvement (as in torch): it counts as a bad
    epoch, so a run producing NaN has its learning rate reduced after
    ``patience`` updates; ``best`` never becomes NaN.

    Counterpart of ``torch.optim.lr_scheduler.ReduceLROnPlateau(mode, factor,
    patience, threshold, threshold_mode, cooldown, min_lr, eps)``; with
    ``semantics="torch"`` it makes the same decisions on every metric sequence
    (per-group ``min_lr`` lists are not supported: one learning rate is scaled).
    """
    owner = "reduce_on_plateau"
    check(owner, "factor", factor, Interval(0, 1, closed="left"))
    pat = check_steps(owner, "patience", patience, STEP_INDEX)
    check(owner, "threshold", threshold, NONNEG_FINITE)
    check(owner, "threshold_mode", threshold_mode, OneOf("rel", "abs"))
    check(owner, "mode", mode, OneOf("min", "max"))
    cool = check_steps(owner, "cooldown", cooldown, STEP_INDEX)
    check(owner, "min_lr", min_lr, LR_VALUE)
    check(owner, "eps", eps, NONNEG_FINITE)
    check(owner, "semantics", semantics, OneOf("descend", "torch"))
    f, thr, floor, tol = float(factor), float(threshold), float(min_lr), float(eps)
    worst = math.inf if mode == "min" else -math.inf
    sign_aware = semantics == "descend"

    def is_better(a: float, best: float) -> bool:
        if threshold_mode == "abs":
            return a < best - thr if mode == "min" else a > best + thr
        if sign_aware:
            # |best|·θ, and no threshold against the initial ±inf (inf − θ·inf would be NaN)
            margin = thr * abs(best) if math.isfinite(best) else 0.0
            return a < best - margin if mode == "min" else a > best + margin
        return a < best * (1.0 - thr) if mode == "min" else a > best * (thr + 1.0)  # torch, verbatim

    def init() -> PlateauState:
        return PlateauState(best=worst, num_bad_epochs=0, cooldown_counter=0, last_epoch=0, scale=1.0, num_reductions=0)

    def reduce(scale: float, lr: float | None) -> float:
        if lr is None:
            if floor > 0:
                raise ParameterError(
                    f"{owner}: min_lr={floor!r} needs the current learning rate: call update(state, metric, lr=...)"
                )
            return scale * f
        old = lr * scale
        new = max(old * f, floor)
        if old - new > tol:  # torch's eps rule: skip reductions smaller than eps
            return scale * f if new == old * f else new / lr  # lr > 0 here since old > new >= 0
        return scale

    def update(state: PlateauState, metric: Any, lr: float | None = None) -> PlateauState:
        a = _as_float(owner, "metric", metric)
        if lr is not None:
            check(owner, "lr", _as_float(owner, "lr", lr), LR_VALUE)
            lr = float(lr)
        best, bad = float(state.best), int(state.num_bad_epochs)
        if is_better(a, best):
            best, bad = a, 0
        else:
            bad += 1
        counter = int(state.cooldown_counter)
        if counter > 0:
            counter -= 1
            bad = 0  # bad epochs in cooldown are ignored
        scale, reductions = float(state.scale), int(state.num_reductions)
        if bad > pat:
            new_scale = reduce(scale, lr)
            if new_scale != scale:
                scale, reductions = float(new_scale), reductions + 1
            counter, bad = cool, 0
        return PlateauState(best, bad, counter, int(state.last_epoch) + 1, scale, reductions)

    return PlateauController(init, update)


def _as_float(owner: str, name: str, value: Any) -> float:
    """A Python float from a number or a 0-d array / tensor; anything else is refused."""
    ndim = getattr(value, "ndim", None)  # an array or tensor's own (np.ndim would convert a tensor)
    if isinstance(value, (bool, str, bytes)) or (np.ndim(value) if ndim is None else ndim) != 0:
        raise ParameterError(f"{owner}: {name} must be a real number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{owner}: {name} must be a real number, got {value!r}") from None


__all__ = ["PlateauController", "PlateauState", "reduce_on_plateau"]
