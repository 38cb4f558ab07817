"""Adadelta (Zeiler 2012) as a preconditioner: ``scale_by_adadelta``."""

from __future__ import annotations

from typing import NamedTuple

from descend._validation import NONNEGATIVE, UNIT_CLOSED, check
from descend.optim._backend import tree_namespace
from descend.optim.base import GradientTransformation
from descend.optim.tree import Tree, tree_map, tree_zeros_like


class ScaleByAdadeltaState(NamedTuple):
    count: int  # t, updates done so far
    square_avg: Tree  # E[g²]_t
    acc_delta: Tree  # E[Δθ²]_t, the moving average of the squared directions


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6, owner: str = "scale_by_adadelta") -> GradientTransformation:
    """Adadelta's direction, the update before the learning rate:

    .. math::
        E[g^2]_t = ρ E[g^2]_{t-1} + (1-ρ) g_t^2, \\qquad
        Δ_t = \\frac{\\sqrt{E[Δθ^2]_{t-1} + ε}}{\\sqrt{E[g^2]_t + ε}}\\, g_t, \\qquad
        E[Δθ^2]_t = ρ E[Δθ^2]_{t-1} + (1-ρ) Δ_t^2

    ``rho`` = ρ, ``eps`` = ε, both averages start at 0, the output is Δ_t and
    the learning rate multiplies it afterwards (η = 1 is Zeiler's algorithm).
    ε is inside both roots (the paper's RMS[x] = √(E[x²] + ε), also torch and
    Keras). Evaluated in torch's order: ``(√(E[Δθ²] + ε)/√(E[g²] + ε))·g``.
    """
    check(owner, "rho", rho, UNIT_CLOSED)
    check(owner, "eps", eps, NONNEGATIVE)
    r, eps = float(rho), float(eps)

    def init(params: Tree) -> ScaleByAdadeltaState:
        return ScaleByAdadeltaState(0, tree_zeros_like(params), tree_zeros_like(params))

    def update(updates: Tree, state: ScaleByAdadeltaState, params: Tree | None = None):
        xp = tree_namespace(updates)
        sq = tree_map(lambda v, g: r * v + ((1.0 - r) * g) * g, state.square_avg, updates)
        delta = tree_map(lambda a, v, g: (xp.sqrt(a + eps) / xp.sqrt(v + eps)) * g, state.acc_delta, sq, updates)
        acc = tree_map(lambda a, d: r * a + ((1.0 - r) * d) * d, state.acc_delta, delta)
        return delta, ScaleByAdadeltaState(state.count + 1, sq, acc)

    return GradientTransformation(init, update)


__all__ = ["ScaleByAdadeltaState", "scale_by_adadelta"]
