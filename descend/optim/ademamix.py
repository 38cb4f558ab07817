"""AdEMAMix (Pagliardini, Ablin & Grangier 2024, "The AdEMAMix Optimizer: Better, Faster, Older").

The reference is ``pytorch_optimizer.AdEMAMix`` 4.1.0, whose keyword names and defaults these take.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

from descend._validation import (
    BOOL,
    LEARNING_RATE,
    NONNEGATIVE,
    POSITIVE,
    UNIT_OPEN_RIGHT,
    AnyOf,
    OneOf,
    check,
)
from descend.errors import ParameterError
from descend.optim._backend import tree_namespace
from descend.optim.adopt import decay_links
from descend.optim.base import GradientTransformation, chain
from descend.optim.learning_rate import ScalarOrSchedule, scale, scale_by_learning_rate
from descend.optim.tree import Tree, tree_map, tree_zeros_like


class ScaleByAdemamixState(NamedTuple):
    count: int  # t, updates done so far
    exp_avg: Tree  # m₁, the fast momentum
    exp_avg_sq: Tree  # ν, the second moment
    exp_avg_slow: Tree  # m₂, the slow momentum


def schedule_alpha(t_alpha_beta3: float | None, step: int, alpha: float) -> float:
    """α_t = min(t·α/T, α) (T = ``t_alpha_beta3``; None: α)."""
    return alpha if t_alpha_beta3 is None else min(step * alpha / t_alpha_beta3, alpha)


def schedule_beta3(t_alpha_beta3: float | None, step: int, beta1: float, beta3: float) -> float:
    """β₃ warm-up: log-linear in the half-life from β₁ to β₃ over T steps (the paper's eq. 3)."""
    if t_alpha_beta3 is None:
        return beta3
    log_beta1, log_beta3 = math.log(beta1), math.log(beta3)
    frac = step / t_alpha_beta3
    return min(math.exp(log_beta1 * log_beta3 / ((1.0 - frac) * log_beta3 + frac * log_beta1)), beta3)


def _betas(owner: str, betas: Iterable[float]) -> tuple[float, float, float]:
    if isinstance(betas, str) or not isinstance(betas, Iterable) or len(tuple(betas)) != 3:
        raise ParameterError(f"{owner}: betas must be three numbers (β₁, β₂, β₃), got {betas!r}")
    items = tuple(betas)
    for i, b in enumerate(items):
        check(owner, f"betas[{i}]", b, UNIT_OPEN_RIGHT)
    return float(items[0]), float(items[1]), float(items[2])


def scale_by_ademamix(
    betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
    alpha: float = 5.0,
    t_alpha_beta3: float | None = None,
    eps: float = 1e-8,
    owner: str = "scale_by_ademamix",
) -> GradientTransformation:
    """AdEMAMix's direction, the update before weight decay and the learning rate:

    .. math::
        m_1 = β_1 m_1 + (1-β_1) g, \\quad ν = β_2 ν + (1-β_2) g^2, \\quad
        m_2 = β_3(t) m_2 + (1-β_3(t)) g\\\\
        d_t = (m_1/(1-β_1^t) + α(t)\\, m_2) / (\\sqrt{ν}/\\sqrt{1-β_2^t} + ε)

    ``betas`` = (β₁, β₂, β₃), ``alpha`` = α, ε = ``eps``; with ``t_alpha_beta3`` = T the slow
    momentum's α(t) and β₃(t) warm up over T steps (:func:`schedule_alpha`, :func:`schedule_beta3`).
    Seed 001/002's Adam is α = 0; the slow momentum m₂ (β₃ = 0.9999 averages ~10⁴ steps) is not bias
    corrected, as in the paper.
    """
    b1, b2, b3 = _betas(owner, betas)
    check(owner, "alpha", alpha, NONNEGATIVE)
    check(owner, "t_alpha_beta3", t_alpha_beta3, AnyOf(OneOf(None), POSITIVE))
    check(owner, "eps", eps, NONNEGATIVE)
    alpha, eps = float(alpha), float(eps)
    horizon = None if t_alpha_beta3 is None else float(t_alpha_beta3)

    def init(params: Tree) -> ScaleByAdemamixState:
        z = tree_zeros_like
        return ScaleByAdemamixState(0, z(params), z(params), z(params))

    def update(updates: Tree, state: ScaleByAdemamixState, params: Tree | None = None):
        xp = tree_namespace(updates)
        t = state.count + 1
        bc1 = 1.0 - b1**t
        bc2_sqrt = math.sqrt(1.0 - b2**t)
        alpha_t = schedule_alpha(horizon, t, alpha)
        w3 = 1.0 - schedule_beta3(horizon, t, b1, b3)
        m = tree_map(lambda m_, g: m_ + (1.0 - b1) * (g - m_), state.exp_avg, updates)  # torch's lerp
        v = tree_map(lambda v_, g: b2 * v_ + (1.0 - b2) * (g * g), state.exp_avg_sq, updates)
        slow = tree_map(
            lambda s, g: s + w3 * (g - s) if w3 < 0.5 else g - (g - s) * (1.0 - w3), state.exp_avg_slow, updates
        )
        d = tree_map(lambda m_, v_, s: (m_ / bc1 + alpha_t * s) / (xp.sqrt(v_) / bc2_sqrt + eps), m, v, slow)
        return d, ScaleByAdemamixState(t, m, v, slow)

    return GradientTransformation(init, update)


def ademamix(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
    weight_decay: float = 0.0,
    weight_decouple: bool = False,
    fixed_decay: bool = False,
    alpha: float = 5.0,
    t_alpha_beta3: float | None = None,
    eps: float = 1e-8,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """AdEMAMix (``pytorch_optimizer.AdEMAMix`` 4.1.0; Pagliardini et al. 2024), Adam with a second, slow EMA::

        g ← g + λ·θ                                       (weight_decay = λ; coupled by default)
        m₁ = β₁·m₁ + (1−β₁)·g,  ν = β₂·ν + (1−β₂)·g²,  m₂ = β₃·m₂ + (1−β₃)·g    (betas = (β₁, β₂, β₃))
        θ ← θ − η·(m₁/(1−β₁ᵗ) + α·m₂)/(√ν/√(1−β₂ᵗ) + ε)  (lr = η, alpha = α, eps = ε)

    Seed 001/002's Adam is α = 0. The slow EMA m₂ remembers gradients ~1/(1−β₃) = 10⁴ steps old;
    ``t_alpha_beta3`` = T warms α and β₃ up over T steps (the paper recommends T = the run's length
    for β₃ = 0.9999). ``weight_decouple=True`` decays θ ← θ·(1 − η·λ) instead (``fixed_decay``:
    θ·(1 − λ)); the paper's AdEMAMix is decoupled (AdamW-like), pytorch-optimizer's default is
    coupled, and so is this one.
    """
    owner = "ademamix"
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "maximize", maximize, BOOL)
    before, between, after = decay_links(weight_decay, weight_decouple, fixed_decay, owner)
    links = [scale(-1.0)] if maximize else []
    links += [*before, scale_by_ademamix(betas, alpha, t_alpha_beta3, eps, owner=owner), *between]
    links += [scale_by_learning_rate(lr, owner=owner), *after]
    return chain(*links)


__all__ = ["ScaleByAdemamixState", "ademamix", "scale_by_ademamix", "schedule_alpha", "schedule_beta3"]
