"""NAdam (Dozat 2016): Adam with Nesterov momentum and a warming momentum schedule."""

from __future__ import annotations

from typing import NamedTuple

from descend._validation import NONNEGATIVE, UNIT_OPEN_RIGHT, check, check_pair
from descend.optim._backend import tree_namespace
from descend.optim._lerp import lerp
from descend.optim.base import GradientTransformation
from descend.optim.tree import Tree, tree_map, tree_zeros_like


class ScaleByNadamState(NamedTuple):
    count: int  # t, updates done so far
    mu_product: float  # Π_{i≤t} μ_i (1.0 before the first update)
    exp_avg: Tree  # m_t
    exp_avg_sq: Tree  # v_t


def momentum_schedule(beta1: float, momentum_decay: float, t: int) -> float:
    """μ_t = β₁·(1 − ½·0.96^(t·ψ)), torch's (and Dozat's) momentum warm-up."""
    return beta1 * (1.0 - 0.5 * (0.96 ** (t * momentum_decay)))


def scale_by_nadam(
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    momentum_decay: float = 4e-3,
    owner: str = "scale_by_nadam",
) -> GradientTransformation:
    """NAdam's direction, the update before the learning rate:

    .. math::
        μ_t = β_1 (1 - \\tfrac12 0.96^{tψ}), \\quad
        m_t = β_1 m_{t-1} + (1-β_1) g_t, \\quad v_t = β_2 v_{t-1} + (1-β_2) g_t^2,\\\\
        d_t = \\frac{1-μ_t}{1-\\prod_{i≤t} μ_i} \\frac{g_t}{\\sqrt{v_t/(1-β_2^t)} + ε}
            + \\frac{μ_{t+1}}{1-\\prod_{i≤t+1} μ_i} \\frac{m_t}{\\sqrt{v_t/(1-β_2^t)} + ε}

    ``betas`` = (β₁, β₂), ``eps`` = ε, ``momentum_decay`` = ψ. This is
    ``torch.optim.NAdam``'s single-tensor algorithm: the moving average uses β₁
    while the Nesterov look-ahead uses the scheduled μ_t, and ε is added to the
    bias-corrected ``√v̂``. The running product Π μ_i is kept in ``mu_product``.

    torch stores ``mu_product`` as a tensor of its default scalar dtype (float32
    unless ``torch.set_default_dtype(torch.float64)``); here it is a Python float
    (double). The difference perturbs the first updates by ~1e-8 relatively and
    vanishes as Π μ_i → 0. Keras 3's ``Nadam`` has no ψ: it uses
    μ_t = β₁(1 − ½·0.96ᵗ), i.e. ψ = 1 (tf.keras' older Nadam fixed ψ = 0.004).
    """
    b1, b2 = check_pair(owner, "betas", betas, UNIT_OPEN_RIGHT)
    check(owner, "eps", eps, NONNEGATIVE)
    check(owner, "momentum_decay", momentum_decay, NONNEGATIVE)
    b1, b2, eps, psi = float(b1), float(b2), float(eps), float(momentum_decay)

    def init(params: Tree) -> ScaleByNadamState:
        return ScaleByNadamState(0, 1.0, tree_zeros_like(params), tree_zeros_like(params))

    def update(updates: Tree, state: ScaleByNadamState, params: Tree | None = None):
        xp = tree_namespace(updates)
        t = state.count + 1
        bc2 = 1.0 - b2**t
        mu = momentum_schedule(b1, psi, t)
        mu_next = momentum_schedule(b1, psi, t + 1)
        mu_product = state.mu_product * mu
        mu_product_next = mu_product * mu_next
        m = tree_map(lambda m_, g: lerp(m_, g, 1.0 - b1), state.exp_avg, updates)
        v = tree_map(lambda v_, g: b2 * v_ + (1.0 - b2) * g * g, state.exp_avg_sq, updates)  # addcmul order
        c_grad = (1.0 - mu) / (1.0 - mu_product)
        c_avg = mu_next / (1.0 - mu_product_next)

        def direction(g, m_, v_):
            denom = xp.sqrt(v_ / bc2) + eps
            return c_grad * (g / denom) + c_avg * (m_ / denom)

        d = tree_map(direction, updates, m, v)
        return d, ScaleByNadamState(t, mu_product, m, v)

    return GradientTransformation(init, update)


__all__ = ["ScaleByNadamState", "momentum_schedule", "scale_by_nadam"]
