"""Adam (Kingma & Ba 2015) as a preconditioner: ``scale_by_adam``."""

from __future__ import annotations

from typing import NamedTuple

from descend._validation import BOOL, NONNEGATIVE, UNIT_OPEN_RIGHT, check, check_pair
from descend.optim._backend import tree_namespace
from descend.optim.base import GradientTransformation
from descend.optim.tree import Tree, tree_map, tree_zeros_like


class ScaleByAdamState(NamedTuple):
    count: int  # t, updates done so far
    exp_avg: Tree  # m_t
    exp_avg_sq: Tree  # v_t
    max_exp_avg_sq: Tree | None  # max over time of v_t (amsgrad only)


def scale_by_adam(
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    amsgrad: bool = False,
    bias_correction: bool = True,
    owner: str = "scale_by_adam",
) -> GradientTransformation:
    """Adam's direction, the update before the learning rate (seed 001, 002):

    .. math::
        m_t = β_1 m_{t-1} + (1-β_1) g_t, \\quad v_t = β_2 v_{t-1} + (1-β_2) g_t^2,\\\\
        \\hat m_t = m_t/(1-β_1^t), \\quad \\hat v_t = v_t/(1-β_2^t), \\quad
        d_t = \\hat m_t / (\\sqrt{\\hat v_t} + ε)

    ``betas`` = (β₁, β₂), ``eps`` = ε. ``amsgrad`` replaces ``v_t`` by its running
    maximum (Reddi et al. 2018, torch's form: the max is taken of the raw
    ``v_t`` and bias-corrected afterwards). ``bias_correction=False`` drops the
    hats: seed 000 writes Adam as ``θ ← θ − α·m/(√v + ε)``.

    Evaluated in torch's order (``√v_t/√(1-β₂^t) + ε``) so it matches
    ``torch.optim.Adam`` to the last bits; Keras and optax put ε the same way.
    """
    b1, b2 = check_pair(owner, "betas", betas, UNIT_OPEN_RIGHT)
    check(owner, "eps", eps, NONNEGATIVE)
    check(owner, "amsgrad", amsgrad, BOOL)
    check(owner, "bias_correction", bias_correction, BOOL)
    b1, b2, eps = float(b1), float(b2), float(eps)

    def init(params: Tree) -> ScaleByAdamState:
        z = tree_zeros_like
        return ScaleByAdamState(0, z(params), z(params), z(params) if amsgrad else None)

    def update(updates: Tree, state: ScaleByAdamState, params: Tree | None = None):
        xp = tree_namespace(updates)
        t = state.count + 1
        m = tree_map(lambda m_, g: m_ + (1.0 - b1) * (g - m_), state.exp_avg, updates)  # lerp, as torch
        v = tree_map(lambda v_, g: b2 * v_ + (1.0 - b2) * (g * g), state.exp_avg_sq, updates)
        vmax = tree_map(xp.maximum, state.max_exp_avg_sq, v) if amsgrad else None
        second = vmax if amsgrad else v
        if bias_correction:
            bc1 = 1.0 - b1**t
            bc2_sqrt = (1.0 - b2**t) ** 0.5
            step = 1.0 / bc1
            d = tree_map(lambda m_, v_: step * m_ / (xp.sqrt(v_) / bc2_sqrt + eps), m, second)
        else:
            d = tree_map(lambda m_, v_: m_ / (xp.sqrt(v_) + eps), m, second)
        return d, ScaleByAdamState(t, m, v, vmax)

    return GradientTransformation(init, update)
