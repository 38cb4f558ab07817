"""ADOPT (Taniguchi et al. 2024, "ADOPT: Modified Adam Can Converge with Any β₂ with the Optimal Rate").

The reference is ``pytorch_optimizer.ADOPT`` 4.1.0, whose keyword names and defaults these take.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from descend._validation import (
    BOOL,
    LEARNING_RATE,
    NONNEGATIVE,
    UNIT_OPEN_RIGHT,
    WEIGHT_DECAY,
    AnyOf,
    IsCallable,
    OneOf,
    check,
    check_pair,
)
from descend.errors import ParameterError
from descend.optim._backend import tree_namespace
from descend.optim.base import GradientTransformation, chain, stateless
from descend.optim.learning_rate import ScalarOrSchedule, scale, scale_by_learning_rate
from descend.optim.regularization import add_decayed_weights
from descend.optim.tree import Tree, tree_map, tree_zeros_like


class ScaleByAdoptState(NamedTuple):
    count: int  # t, updates done so far
    exp_avg: Tree  # m_t
    exp_avg_sq: Tree  # v_t (one step behind the gradient it divides)


def default_clip(step: int) -> float:
    """ADOPT's clipping bound ``c_t = t^¼`` (the paper's and pytorch-optimizer's default ``clip_lambda``)."""
    return math.pow(step, 0.25)


def scale_by_adopt(
    betas: tuple[float, float] = (0.9, 0.9999),
    clip_lambda: Callable[[int], float] | None = default_clip,
    eps: float = 1e-6,
    owner: str = "scale_by_adopt",
) -> GradientTransformation:
    """ADOPT's direction, the update before weight decay and the learning rate:

    .. math::
        t = 1:\\ v_1 = g_1^2,\\ d_1 = 0; \\qquad t > 1:\\
        n_t = \\operatorname{clip}(g_t / \\max(\\sqrt{v_{t-1}}, ε), c_t),\\quad
        m_t = β_1 m_{t-1} + (1-β_1) n_t,\\quad d_t = m_t,\\quad v_t = β_2 v_{t-1} + (1-β_2) g_t^2

    ``betas`` = (β₁, β₂), ε = ``eps``, c_t = ``clip_lambda(t)`` (``None``: no clipping). Unlike seed
    001/002's Adam the gradient is normalised by the second moment *before* the momentum, by the
    moment of the previous steps only (so g_t and v_{t−1} are independent), and there is no bias
    correction; the first step only initialises v. ε clamps √v from below (as in pytorch-optimizer
    and the paper's code) instead of being added to it.
    """
    b1, b2 = check_pair(owner, "betas", betas, UNIT_OPEN_RIGHT)
    check(owner, "clip_lambda", clip_lambda, AnyOf(OneOf(None), IsCallable()))
    check(owner, "eps", eps, NONNEGATIVE)
    b1, b2, eps = float(b1), float(b2), float(eps)

    def init(params: Tree) -> ScaleByAdoptState:
        return ScaleByAdoptState(0, tree_zeros_like(params), tree_zeros_like(params))

    def update(updates: Tree, state: ScaleByAdoptState, params: Tree | None = None):
        xp = tree_namespace(updates)
        t = state.count + 1
        if t == 1:
            v = tree_map(lambda v_, g: v_ + g * g, state.exp_avg_sq, updates)
            return tree_zeros_like(updates), ScaleByAdoptState(t, state.exp_avg, v)
        c = None if clip_lambda is None else _bound(clip_lambda, t, owner)

        def normed(g: Any, v_: Any) -> Any:
            n = g / xp.maximum(xp.sqrt(v_), eps) if xp is np else g / xp.clip(xp.sqrt(v_), min=eps)
            return n if c is None else xp.clip(n, -c, c)

        m = tree_map(lambda m_, g, v_: m_ + (1.0 - b1) * (normed(g, v_) - m_), state.exp_avg, updates, state.exp_avg_sq)
        v = tree_map(lambda v_, g: b2 * v_ + (1.0 - b2) * (g * g), state.exp_avg_sq, updates)
        return m, ScaleByAdoptState(t, m, v)

    return GradientTransformation(init, update)


def _bound(clip_lambda: Callable[[int], float], step: int, owner: str) -> float:
    value = clip_lambda(step)
    try:
        c = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{owner}: clip_lambda must return a real number, got {value!r} at step {step}") from None
    if not c >= 0:
        raise ParameterError(f"{owner}: clip_lambda must return a number >= 0, got {c} at step {step}")
    return c


def fixed_decayed_weights(weight_decay: Any) -> GradientTransformation:
    """``u ← u − λ·θ`` after the learning rate: pytorch-optimizer's ``fixed_decay`` (θ ← θ·(1 − λ), no η)."""
    wd = weight_decay if isinstance(weight_decay, np.ndarray) else float(weight_decay)

    def fn(updates: Tree, params: Tree | None) -> Tree:
        if params is None:
            raise ParameterError("fixed_decayed_weights: update needs params (call tx.update(grads, state, params))")
        return tree_map(lambda u, p: u - wd * p, updates, params)

    return stateless(fn)


def decay_links(
    weight_decay: Any, weight_decouple: bool, fixed_decay: bool, owner: str
) -> tuple[list[GradientTransformation], list[GradientTransformation], list[GradientTransformation]]:
    """pytorch-optimizer's ``apply_weight_decay`` as chain links: (before the direction, between the
    direction and the learning rate, after the learning rate)."""
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    check(owner, "weight_decouple", weight_decouple, BOOL)
    check(owner, "fixed_decay", fixed_decay, BOOL)
    if not weight_decouple:
        return [add_decayed_weights(weight_decay)], [], []
    if fixed_decay:
        return [], [], [fixed_decayed_weights(weight_decay)]
    return [], [add_decayed_weights(weight_decay)], []


def adopt(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.9999),
    clip_lambda: Callable[[int], float] | None = default_clip,
    weight_decay: float = 0.0,
    weight_decouple: bool = False,
    fixed_decay: bool = False,
    eps: float = 1e-6,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """ADOPT (``pytorch_optimizer.ADOPT`` 4.1.0; Taniguchi et al. 2024)::

        g ← g + λ·θ                                      (weight_decay = λ, coupled: the default)
        t = 1:  v_1 = g_1²,  no step
        n_t = clip(g_t / max(√v_{t−1}, ε), ±t^¼)          (eps = ε, clip_lambda(t) = t^¼)
        m_t = β₁·m_{t−1} + (1−β₁)·n_t,  θ ← θ − η·m_t      (betas = (β₁, β₂), lr = η)
        v_t = β₂·v_{t−1} + (1−β₂)·g_t²

    Seed 001/002's Adam divides the momentum by √v_t; ADOPT divides each gradient by √v_{t−1}
    before averaging it, which makes it converge for any β₂ (default 0.9999). With
    ``weight_decouple=True`` the decay is θ ← θ·(1 − η·λ) instead (``fixed_decay``: θ·(1 − λ));
    pytorch-optimizer applies a decoupled decay also at the first step, which moves nothing else.
    """
    owner = "adopt"
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "maximize", maximize, BOOL)
    before, between, after = decay_links(weight_decay, weight_decouple, fixed_decay, owner)
    links = [scale(-1.0)] if maximize else []
    links += [*before, scale_by_adopt(betas, clip_lambda, eps, owner=owner), *between]
    links += [scale_by_learning_rate(lr, owner=owner), *after]
    return chain(*links)


__all__ = ["ScaleByAdoptState", "adopt", "decay_links", "default_clip", "fixed_decayed_weights", "scale_by_adopt"]
