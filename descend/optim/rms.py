"""RMSprop's preconditioner (Hinton 2012; centered form: Graves 2013): ``scale_by_rms``."""

from __future__ import annotations

from typing import NamedTuple

from descend._validation import BOOL, NONNEGATIVE, UNIT_CLOSED, check
from descend.optim._backend import tree_namespace
from descend.optim._lerp import lerp
from descend.optim.base import GradientTransformation
from descend.optim.tree import Tree, tree_map, tree_zeros_like


class ScaleByRmsState(NamedTuple):
    count: int  # t, updates done so far
    square_avg: Tree  # E[g²]_t
    grad_avg: Tree | None  # E[g]_t (centered only)
    momentum_buffer: Tree | None  # b_t (momentum > 0 only)


def scale_by_rms(
    alpha: float = 0.99,
    eps: float = 1e-8,
    centered: bool = False,
    momentum: float = 0.0,
    eps_inside_sqrt: bool = False,
    owner: str = "scale_by_rms",
) -> GradientTransformation:
    """RMSprop's direction, the update before the learning rate:

    .. math::
        E[g^2]_t = γ E[g^2]_{t-1} + (1-γ) g_t^2, \\qquad
        \\tilde v_t = E[g^2]_t \\ \\text{or, centered,}\\ E[g^2]_t - E[g]_t^2,
        \\ E[g]_t = γ E[g]_{t-1} + (1-γ) g_t,\\\\
        d_t = \\frac{g_t}{\\sqrt{\\tilde v_t} + ε} \\ \\text{(torch)} \\quad\\text{or}\\quad
        d_t = \\frac{g_t}{\\sqrt{\\tilde v_t + ε}} \\ \\text{(eps_inside_sqrt: seeds 001, 002, Keras)}

    ``alpha`` = γ (seed 001's γ, seed 002's ρ), ``eps`` = ε, all averages start
    at 0 (no bias correction). With ``momentum`` μ > 0 the output is torch's
    buffer ``b_t = μ·b_{t−1} + d_t`` (``b_0 = 0``), the same as chaining
    :func:`descend.optim.trace` with ``momentum=μ`` after this link; the
    learning rate multiplies the whole buffer afterwards, as in torch. Keras
    instead folds η into the buffer (``b ← μ·b + η·d``, ``θ ← θ − b``), which
    is the same trajectory for a constant η but not under a schedule.

    Evaluated in torch's order (``E[g]`` by torch's ``lerp``, ε added after the
    root) so it matches ``torch.optim.RMSprop`` to rounding.
    """
    check(owner, "alpha", alpha, UNIT_CLOSED)
    check(owner, "eps", eps, NONNEGATIVE)
    check(owner, "centered", centered, BOOL)
    check(owner, "momentum", momentum, NONNEGATIVE)
    check(owner, "eps_inside_sqrt", eps_inside_sqrt, BOOL)
    a, eps, mu = float(alpha), float(eps), float(momentum)
    use_momentum = mu > 0.0

    def init(params: Tree) -> ScaleByRmsState:
        z = tree_zeros_like
        return ScaleByRmsState(0, z(params), z(params) if centered else None, z(params) if use_momentum else None)

    def update(updates: Tree, state: ScaleByRmsState, params: Tree | None = None):
        xp = tree_namespace(updates)
        # torch: square_avg.mul_(α).addcmul_(g, g, value=1 − α)
        sq = tree_map(lambda v, g: a * v + ((1.0 - a) * g) * g, state.square_avg, updates)
        if centered:
            ga = tree_map(lambda m, g: lerp(m, g, 1.0 - a), state.grad_avg, updates)
            var = tree_map(lambda v, m: v - m * m, sq, ga)
        else:
            ga, var = None, sq
        if eps_inside_sqrt:
            d = tree_map(lambda g, v: g / xp.sqrt(v + eps), updates, var)
        else:
            d = tree_map(lambda g, v: g / (xp.sqrt(v) + eps), updates, var)
        buf = None
        if use_momentum:
            buf = tree_map(lambda b, d_: mu * b + d_, state.momentum_buffer, d)
            d = buf
        return d, ScaleByRmsState(state.count + 1, sq, ga, buf)

    return GradientTransformation(init, update)


__all__ = ["ScaleByRmsState", "scale_by_rms"]
