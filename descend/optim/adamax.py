"""Adamax (Kingma & Ba 2015, §7.1): Adam with an infinity-norm second moment."""

from __future__ import annotations

from typing import NamedTuple

from descend._validation import NONNEGATIVE, UNIT_OPEN_RIGHT, check, check_pair
from descend.optim._backend import tree_namespace
from descend.optim._lerp import lerp
from descend.optim.base import GradientTransformation
from descend.optim.tree import Tree, tree_map, tree_zeros_like


class ScaleByAdamaxState(NamedTuple):
    count: int  # t, updates done so far
    exp_avg: Tree  # m_t
    exp_inf: Tree  # u_t, the exponentially weighted infinity norm


def scale_by_adamax(
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    owner: str = "scale_by_adamax",
) -> GradientTransformation:
    """Adamax's direction, the update before the learning rate:

    .. math::
        m_t = β_1 m_{t-1} + (1-β_1) g_t, \\quad
        u_t = \\max(β_2 u_{t-1},\\ |g_t| + ε), \\quad
        d_t = \\frac{m_t}{(1-β_1^t)\\, u_t}

    ``betas`` = (β₁, β₂), ``eps`` = ε, ``m_0 = u_0 = 0``. This is
    ``torch.optim.Adamax``: ε sits *inside* the maximum, so ``u_t ≥ ε`` always.
    The paper has no ε; Keras (and TF) write ``u_t = max(β₂u, |g|)`` and divide
    by ``u_t + ε`` instead, which differs from torch once ``β₂u > |g|``.
    """
    b1, b2 = check_pair(owner, "betas", betas, UNIT_OPEN_RIGHT)
    check(owner, "eps", eps, NONNEGATIVE)
    b1, b2, eps = float(b1), float(b2), float(eps)

    def init(params: Tree) -> ScaleByAdamaxState:
        return ScaleByAdamaxState(0, tree_zeros_like(params), tree_zeros_like(params))

    def update(updates: Tree, state: ScaleByAdamaxState, params: Tree | None = None):
        xp = tree_namespace(updates)
        t = state.count + 1
        m = tree_map(lambda m_, g: lerp(m_, g, 1.0 - b1), state.exp_avg, updates)
        u = tree_map(lambda u_, g: xp.maximum(b2 * u_, xp.abs(g) + eps), state.exp_inf, updates)
        inv_bc1 = 1.0 / (1.0 - b1**t)
        # torch: θ ← θ − (η/(1−β₁ᵗ))·(m/u); the quotient m/u is formed first, as there.
        d = tree_map(lambda m_, u_: inv_bc1 * (m_ / u_), m, u)
        return d, ScaleByAdamaxState(t, m, u)

    return GradientTransformation(init, update)


__all__ = ["ScaleByAdamaxState", "scale_by_adamax"]
