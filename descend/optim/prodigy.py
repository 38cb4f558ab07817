"""Prodigy (Mishchenko & Defazio 2024, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner").

The reference is ``pytorch_optimizer.Prodigy`` 4.1.0, whose keyword names and defaults these take.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from descend._validation import (
    BOOL,
    LEARNING_RATE,
    NONNEGATIVE,
    POSITIVE,
    UNIT_OPEN_RIGHT,
    WEIGHT_DECAY,
    AnyOf,
    Interval,
    OneOf,
    check,
    check_pair,
)
from descend.errors import ParameterError
from descend.optim._backend import namespace, tree_namespace
from descend.optim._leaf import clone, decay_is_on
from descend.optim.base import GradientTransformation, chain
from descend.optim.learning_rate import ScalarOrSchedule, resolve_lr, scale
from descend.optim.tree import Tree, leaves, tree_map, tree_zeros_like


class ScaleByProdigyState(NamedTuple):
    count: int  # t, updates done so far
    lr: float  # η of the last update (the user's multiplier of d)
    lr_scale: float  # plateau multiplier s
    d: float  # the distance estimate d_t (the effective learning rate is η·d)
    d_max: float  # max over steps of d̂
    d_numerator: float  # Σ-recursion of ⟨g, θ₀ − θ⟩ (the numerator of d̂)
    p0: Tree  # θ₀, the initial parameters
    exp_avg: Tree  # m_t (scaled by d)
    exp_avg_sq: Tree  # v_t (scaled by d²)
    s: Tree  # s_t, the weighted gradient sum (the denominator of d̂)


def _dot(a: Any, b: Any) -> float:
    xp = namespace(a)
    if xp is np:
        return float(np.dot(np.ravel(a), np.ravel(b)))
    return float(xp.sum(a * b))


def _abs_sum(a: Any) -> float:
    return float(namespace(a).sum(namespace(a).abs(a)))


def scale_by_prodigy(
    lr: ScalarOrSchedule = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    beta3: float | None = None,
    d0: float = 1e-6,
    d_coef: float = 1.0,
    growth_rate: float = math.inf,
    weight_decay: float = 0.0,
    fixed_decay: bool = False,
    bias_correction: bool = False,
    safeguard_warmup: bool = False,
    eps: float | None = 1e-8,
    owner: str = "scale_by_prodigy",
) -> GradientTransformation:
    """Prodigy's whole update, learning rate included (d enters the moments, so it cannot be split off):

    .. math::
        η_t = η·d_t / b_t \\;(b_t = \\sqrt{1-β_2^t}/(1-β_1^t) \\text{ with bias\\_correction, else } 1)\\\\
        r_t = β_3 r_{t-1} + (d_t/d_0)\\, η_t ⟨g_t, θ_0 − θ_t⟩, \\quad
        s_t = β_3 s_{t-1} + (d_t/d_0)\\, η_t\\, g_t
        \\;(d_t \\text{ instead of } η_t \\text{ with safeguard\\_warmup})\\\\
        m_t = β_1 m_{t-1} + d_t (1-β_1) g_t, \\quad v_t = β_2 v_{t-1} + d_t^2 (1-β_2) g_t^2\\\\
        \\hat d = c·r_t / ‖s_t‖_1, \\quad d_{t+1} = \\min(\\max_{i≤t} \\hat d_i,\\; γ d_t)
        \\;(\\text{first raised to } \\max(d_t, \\hat d) \\text{ while } d_t = d_0)\\\\
        θ ← θ(1 − η_t λ) − η_t\\, m_t / (\\sqrt{v_t} + d_{t+1} ε)

    β₃ = ``beta3`` (None: √β₂), c = ``d_coef``, γ = ``growth_rate``, λ = ``weight_decay`` (decoupled;
    ``fixed_decay``: θ(1 − λ)), ε = ``eps`` (None: ``atan2(m_t, √v_t)`` instead of the division). As
    in pytorch-optimizer: the sums r, ‖s‖₁ run over all leaves together, the step uses the old d_t in
    η_t but the new d_{t+1} next to ε, and when ‖s_t‖₁ = 0 the step is skipped (the moments still move).
    """
    b1, b2 = check_pair(owner, "betas", betas, UNIT_OPEN_RIGHT)
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "beta3", beta3, AnyOf(OneOf(None), UNIT_OPEN_RIGHT))
    check(owner, "d0", d0, POSITIVE)
    check(owner, "d_coef", d_coef, POSITIVE)
    check(owner, "growth_rate", growth_rate, Interval(0, None, closed="neither"))  # inf (the default) allowed
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    for name, flag in (("fixed_decay", fixed_decay), ("bias_correction", bias_correction)):
        check(owner, name, flag, BOOL)
    check(owner, "safeguard_warmup", safeguard_warmup, BOOL)
    check(owner, "eps", eps, AnyOf(OneOf(None), NONNEGATIVE))
    b1, b2, d0, d_coef, growth = float(b1), float(b2), float(d0), float(d_coef), float(growth_rate)
    b3 = math.sqrt(b2) if beta3 is None else float(beta3)
    wd = weight_decay if isinstance(weight_decay, np.ndarray) else float(weight_decay)
    decays = decay_is_on(weight_decay)

    def init(params: Tree) -> ScaleByProdigyState:
        z = tree_zeros_like
        p0 = tree_map(clone, params)
        return ScaleByProdigyState(0, resolve_lr(lr, 0), 1.0, d0, d0, 0.0, p0, z(params), z(params), z(params))

    def update(updates: Tree, state: ScaleByProdigyState, params: Tree | None = None):
        if params is None:
            raise ParameterError(f"{owner}: update needs params (d is estimated from ⟨g, θ₀ − θ⟩)")
        xp = tree_namespace(updates)
        t = state.count + 1
        eta = resolve_lr(lr, state.count) * state.lr_scale
        bc = (1.0 - b1**t) / math.sqrt(1.0 - b2**t) if bias_correction else 1.0
        d = state.d
        d_lr = d * eta / bc
        weight = (d / d0) * d_lr
        numerator = state.d_numerator * b3
        for g, p0, p in zip(leaves(updates), leaves(state.p0), leaves(params), strict=True):
            numerator += weight * _dot(g, p0 - p)
        m = tree_map(lambda m_, g: b1 * m_ + (d * (1.0 - b1)) * g, state.exp_avg, updates)
        v = tree_map(lambda v_, g: b2 * v_ + (d * d * (1.0 - b2)) * (g * g), state.exp_avg_sq, updates)
        s_weight = (d / d0) * (d if safeguard_warmup else d_lr)
        s = tree_map(lambda s_, g: b3 * s_ + s_weight * g, state.s, updates)
        denominator = 0.0
        for s_ in leaves(s):
            denominator += _abs_sum(s_)
        if denominator == 0.0:  # pytorch-optimizer returns before the step (its moments have moved)
            new = ScaleByProdigyState(t, eta, state.lr_scale, d, state.d_max, numerator, state.p0, m, v, s)
            return tree_zeros_like(updates), new
        d_hat = d_coef * numerator / denominator
        if d == d0:
            d = max(d, d_hat)
        d_max = max(state.d_max, d_hat)
        d = min(d_max, d * growth)
        decay = (1.0 if fixed_decay else d_lr) if decays else 0.0

        def leaf(m_: Any, v_: Any, p: Any) -> Any:
            if eps is None:
                step = (-d_lr) * xp.atan2(m_, xp.sqrt(v_))
            else:
                step = (-d_lr) * (m_ / (xp.sqrt(v_) + d * eps))
            return step - (wd * decay) * p if decay else step

        out = tree_map(leaf, m, v, params)
        return out, ScaleByProdigyState(t, eta, state.lr_scale, d, d_max, numerator, state.p0, m, v, s)

    return GradientTransformation(init, update)


def prodigy(
    lr: ScalarOrSchedule = 1.0,
    betas: tuple[float, float] = (0.9, 0.999),
    beta3: float | None = None,
    d0: float = 1e-6,
    d_coef: float = 1.0,
    growth_rate: float = math.inf,
    weight_decay: float = 0.0,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    bias_correction: bool = False,
    safeguard_warmup: bool = False,
    eps: float | None = 1e-8,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Prodigy (``pytorch_optimizer.Prodigy`` 4.1.0; Mishchenko & Defazio 2024), learning-rate-free Adam::

        m_t = β₁·m_{t−1} + d·(1−β₁)·g_t,  v_t = β₂·v_{t−1} + d²·(1−β₂)·g_t²    (betas = (β₁, β₂))
        d̂ = d_coef · Σ-weighted ⟨g, θ₀ − θ⟩ / ‖Σ-weighted g‖₁,  d ← max(d, d̂)   (d₀ = d0, β₃ = beta3)
        θ ← θ·(1 − η·d·λ) − η·d·m_t/(√v_t + d·ε)                               (lr = η, weight_decay = λ)

    Seed 001/002's Adam with its learning rate replaced by η·d, where d estimates the distance from
    the initial weights θ₀ to a solution (it only grows, at most by ``growth_rate`` per step). Leave
    η = 1 (scale it, or give a schedule, to anneal); ``get_lr`` reads η, the state's ``d`` the
    estimate. See :func:`descend.optim.scale_by_prodigy` for the exact recursions (those of
    pytorch-optimizer, including where it departs from the paper: ε is scaled by the new d).
    ``weight_decouple=False`` is refused: in pytorch-optimizer (and the authors' code) coupled decay
    adds λθ to the gradient after the moments used it, i.e. does nothing.
    """
    owner = "prodigy"
    check(owner, "weight_decouple", weight_decouple, BOOL)
    check(owner, "maximize", maximize, BOOL)
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    if not weight_decouple and decay_is_on(weight_decay):
        raise ParameterError(
            "prodigy: weight_decouple must be True when weight_decay > 0 (coupled decay is a no-op in "
            "pytorch-optimizer's Prodigy: it reaches the gradient after the moments used it), got False"
        )
    links = [scale(-1.0)] if maximize else []
    links.append(
        scale_by_prodigy(
            lr,
            betas,
            beta3,
            d0,
            d_coef,
            growth_rate,
            weight_decay,
            fixed_decay,
            bias_correction,
            safeguard_warmup,
            eps,
            owner=owner,
        )
    )
    return chain(*links)


__all__ = ["ScaleByProdigyState", "prodigy", "scale_by_prodigy"]
