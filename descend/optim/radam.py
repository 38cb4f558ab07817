"""RAdam (Liu et al. 2020): Adam whose adaptive step is switched on once its variance is tractable."""

from __future__ import annotations

from typing import NamedTuple

from descend._validation import NONNEGATIVE, UNIT_OPEN_RIGHT, check, check_pair
from descend.optim._backend import tree_namespace
from descend.optim._lerp import lerp
from descend.optim.base import GradientTransformation
from descend.optim.tree import Tree, tree_map, tree_zeros_like

RHO_THRESHOLD = 5.0  # torch's (and the paper's Algorithm 2) threshold on ρ_t


class ScaleByRadamState(NamedTuple):
    count: int  # t, updates done so far
    exp_avg: Tree  # m_t
    exp_avg_sq: Tree  # v_t


def sma_length(beta2: float, t: int) -> tuple[float, float]:
    """(ρ_∞, ρ_t): the maximum and the step-t length of the approximated simple moving average."""
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho_t = rho_inf - 2 * t * (beta2**t) / (1.0 - beta2**t)
    return rho_inf, rho_t


def scale_by_radam(
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    owner: str = "scale_by_radam",
) -> GradientTransformation:
    """RAdam's direction, the update before the learning rate:

    .. math::
        m_t = β_1 m_{t-1} + (1-β_1) g_t, \\quad v_t = β_2 v_{t-1} + (1-β_2) g_t^2, \\quad
        \\hat m_t = m_t/(1-β_1^t),\\\\
        ρ_∞ = \\frac{2}{1-β_2} - 1, \\quad ρ_t = ρ_∞ - \\frac{2tβ_2^t}{1-β_2^t},\\\\
        d_t = \\hat m_t \\cdot \\frac{\\sqrt{1-β_2^t}}{\\sqrt{v_t} + ε} \\cdot r_t
              \\ \\text{if}\\ ρ_t > 5, \\ \\text{else}\\ \\hat m_t, \\qquad
        r_t = \\sqrt{\\frac{(ρ_t-4)(ρ_t-2)ρ_∞}{(ρ_∞-4)(ρ_∞-2)ρ_t}}

    ``betas`` = (β₁, β₂), ``eps`` = ε. This is ``torch.optim.RAdam``: ε is added
    to the *raw* ``√v_t`` and the bias correction multiplies afterwards (so the
    effective ε is ε/√(1−β₂ᵗ), unlike Adam's), and while ρ_t ≤ 5 the step is
    un-preconditioned momentum SGD on the bias-corrected ``m̂_t``. The paper's
    Algorithm 2 uses ``√v̂_t`` without ε and switches at ρ_t > 4 (its reference
    code at ρ_t ≥ 5); torch, and this function, switch at ρ_t > 5.
    """
    b1, b2 = check_pair(owner, "betas", betas, UNIT_OPEN_RIGHT)
    check(owner, "eps", eps, NONNEGATIVE)
    b1, b2, eps = float(b1), float(b2), float(eps)

    def init(params: Tree) -> ScaleByRadamState:
        return ScaleByRadamState(0, tree_zeros_like(params), tree_zeros_like(params))

    def update(updates: Tree, state: ScaleByRadamState, params: Tree | None = None):
        xp = tree_namespace(updates)
        t = state.count + 1
        m = tree_map(lambda m_, g: lerp(m_, g, 1.0 - b1), state.exp_avg, updates)
        v = tree_map(lambda v_, g: b2 * v_ + (1.0 - b2) * g * g, state.exp_avg_sq, updates)  # addcmul order
        bc1 = 1.0 - b1**t
        bc2 = 1.0 - b2**t
        rho_inf, rho_t = sma_length(b2, t)
        if rho_t > RHO_THRESHOLD:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            sqrt_bc2 = bc2**0.5
            d = tree_map(lambda m_, v_: (m_ / bc1) * (sqrt_bc2 / (xp.sqrt(v_) + eps)) * rect, m, v)
        else:
            d = tree_map(lambda m_: m_ / bc1, m)
        return d, ScaleByRadamState(t, m, v)

    return GradientTransformation(init, update)


__all__ = ["RHO_THRESHOLD", "ScaleByRadamState", "scale_by_radam", "sma_length"]
