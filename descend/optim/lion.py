"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"): ``scale_by_lion``."""

from __future__ import annotations

from typing import NamedTuple

from descend._validation import UNIT_OPEN_RIGHT, check_pair
from descend.optim._backend import tree_namespace
from descend.optim.base import GradientTransformation
from descend.optim.tree import Tree, tree_map, tree_zeros_like


class ScaleByLionState(NamedTuple):
    count: int  # t, updates done so far
    exp_avg: Tree  # m_t, the momentum


def scale_by_lion(betas: tuple[float, float] = (0.9, 0.99), owner: str = "scale_by_lion") -> GradientTransformation:
    """Lion's direction, the update before weight decay and the learning rate
    (the paper's Algorithm 2 without its ``λθ`` and ``η_t``):

    .. math::
        c_t = β_1 m_{t-1} + (1-β_1) g_t, \\quad d_t = \\operatorname{sign}(c_t), \\quad
        m_t = β_2 m_{t-1} + (1-β_2) g_t

    ``betas`` = (β₁, β₂), ``m_0 = 0``, ``sign(0) = 0``. The interpolation
    ``c_t`` that gives the direction uses β₁, while the momentum that is stored
    uses β₂ (β₂ > β₁ makes the stored momentum longer-lived than the update
    sees). Every coordinate of ``d_t`` is ±1 or 0, so the step has the same size
    η everywhere: Lion wants a 3–10× smaller η than AdamW.
    """
    b1, b2 = check_pair(owner, "betas", betas, UNIT_OPEN_RIGHT)
    b1, b2 = float(b1), float(b2)

    def init(params: Tree) -> ScaleByLionState:
        return ScaleByLionState(0, tree_zeros_like(params))

    def update(updates: Tree, state: ScaleByLionState, params: Tree | None = None):
        xp = tree_namespace(updates)
        d = tree_map(lambda m, g: xp.sign(b1 * m + (1.0 - b1) * g), state.exp_avg, updates)
        m = tree_map(lambda m, g: b2 * m + (1.0 - b2) * g, state.exp_avg, updates)
        return d, ScaleByLionState(state.count + 1, m)

    return GradientTransformation(init, update)


__all__ = ["ScaleByLionState", "scale_by_lion"]
