"""Rprop (Riedmiller & Braun 1993), resilient backpropagation: ``scale_by_rprop``.

Rprop uses only the sign of the gradient: every coordinate has its own step
size Δ that grows by η₊ while the gradient keeps its sign and shrinks by η₋
when it flips. The learning rate is the *initial* step size, so this link keeps
the learning-rate fields (``count``, ``lr``, ``lr_scale``) in its own state and
returns the final update; no ``scale_by_learning_rate`` follows it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from descend._validation import LEARNING_RATE, NONNEGATIVE, POSITIVE, Interval, check, check_pair
from descend.errors import ParameterError
from descend.optim._backend import tree_namespace
from descend.optim.base import GradientTransformation
from descend.optim.learning_rate import ScalarOrSchedule, resolve_lr
from descend.optim.tree import Tree, tree_full_like, tree_map, tree_zeros_like


class ScaleByRpropState(NamedTuple):
    count: int  # t, updates done so far
    lr: float  # η(t)·s of the last update (η(0) before the first): the nominal learning rate
    lr_scale: float  # s, multiplier from a plateau controller (scales every step)
    prev: Tree  # g_{t-1} as torch keeps it: 0 where the sign flipped
    step_size: Tree  # Δ_t per coordinate, Δ_0 = η(0) (torch's state["step_size"])


def scale_by_rprop(
    lr: ScalarOrSchedule = 1e-2,
    etas: tuple[float, float] = (0.5, 1.2),
    step_sizes: tuple[float, float] = (1e-6, 50),
    owner: str = "scale_by_rprop",
) -> GradientTransformation:
    """Rprop exactly as ``torch.optim.Rprop`` (iRprop−, Igel & Hüsken 2000: no backtracking, no step after a flip)::

        f_t = η₊ if g_t·g_{t−1} > 0,  η₋ if g_t·g_{t−1} < 0,  1 otherwise   (etas = (η₋, η₊))
        Δ_t = clip(Δ_{t−1}·f_t, Δ_min, Δ_max),  Δ_0 = lr                  (step_sizes = (Δ_min, Δ_max))
        g_t ← 0 where f_t = η₋        (no step after a sign flip, and no flip detected next time)
        u_t = −sign(g_t)·Δ_t · r_t

    with ``r_t = 1`` for a constant ``lr`` at the default ``lr_scale``. The
    first update has ``g_0 = 0`` so ``f_1 = 1``: it steps by ``clip(lr, Δ_min, Δ_max)``.

    torch reads ``lr`` once, to initialise Δ, and ignores later changes (an LR
    scheduler has no effect on torch's Rprop). Here the learning rate instead
    *modulates* the adaptive steps: ``r_t = s·lr(t)/lr(0)`` for a schedule and
    ``r_t = s`` for a float, where ``s`` is the ``lr_scale`` set by
    :func:`descend.optim.set_lr_scale`. Δ itself evolves exactly as in torch
    (the bounds apply to Δ, before ``r_t``), so with a float ``lr`` and s = 1
    this is torch's Rprop step for step. A schedule must have ``lr(0) > 0``.
    ``get_lr(state)`` reads ``s·lr(t)`` of the last update.
    """
    check(owner, "lr", lr, LEARNING_RATE)
    eta_minus, eta_plus = check_pair(owner, "etas", etas, Interval(None, None))
    check(owner, "etas[0]", eta_minus, Interval(0, 1, closed="neither"))
    check(owner, "etas[1]", eta_plus, Interval(1, None, closed="neither"))
    smin, smax = check_pair(owner, "step_sizes", step_sizes, NONNEGATIVE)
    if smin > smax:
        raise ParameterError(
            f"{owner}: step_sizes must be a pair (min, max) with min <= max, got {tuple(step_sizes)!r}"
        )
    eta_minus, eta_plus, smin, smax = float(eta_minus), float(eta_plus), float(smin), float(smax)
    lr0 = resolve_lr(lr, 0)
    if callable(lr):
        check(owner, "lr(0)", lr0, POSITIVE)  # a schedule is relative to lr(0), the initial step size

    def init(params: Tree) -> ScaleByRpropState:
        return ScaleByRpropState(0, lr0, 1.0, tree_zeros_like(params), tree_full_like(params, lr0))

    def leaf(xp: Any, g: Any, prev: Any, step: Any, ratio: float):
        s = xp.sign(g * prev)
        flipped = s < 0
        # torch: sign[sign > 0] = η₊; sign[sign < 0] = η₋; sign[sign == 0] = 1 (NaN stays NaN)
        factor = xp.where(s > 0, eta_plus, xp.where(flipped, eta_minus, xp.where(s == 0, 1.0, s)))
        step = xp.clip(step * factor, smin, smax)
        g = xp.where(flipped, 0.0, g)
        u = -(xp.sign(g) * step)
        if ratio != 1.0:
            u = ratio * u
        return u, g, step

    def update(updates: Tree, state: ScaleByRpropState, params: Tree | None = None):
        eta = resolve_lr(lr, state.count) * state.lr_scale
        ratio = eta / lr0 if callable(lr) else state.lr_scale
        xp = tree_namespace(updates)
        out = tree_map(lambda g, p, s: leaf(xp, g, p, s, ratio), updates, state.prev, state.step_size)
        u = tree_map(lambda _, o: o[0], updates, out)
        prev = tree_map(lambda _, o: o[1], updates, out)
        step = tree_map(lambda _, o: o[2], updates, out)
        return u, ScaleByRpropState(state.count + 1, eta, state.lr_scale, prev, step)

    return GradientTransformation(init, update)


__all__ = ["ScaleByRpropState", "scale_by_rprop"]
