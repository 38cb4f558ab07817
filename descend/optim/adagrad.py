"""AdaGrad (Duchi, Hazan & Singer 2011) as a preconditioner: ``scale_by_adagrad``.

Also :func:`adagrad_learning_rate`, torch's ``lr_decay`` written as a schedule
so that the learning rate stays in the last link (``scale_by_learning_rate``)
where :func:`descend.optim.get_lr` and :func:`descend.optim.set_lr_scale` find it.
"""

from __future__ import annotations

from typing import NamedTuple

from descend._validation import BOOL, LEARNING_RATE, NONNEGATIVE, check
from descend.optim._backend import tree_namespace
from descend.optim.base import GradientTransformation
from descend.optim.learning_rate import ScalarOrSchedule, resolve_lr
from descend.optim.tree import Tree, tree_full_like, tree_map


class ScaleByAdagradState(NamedTuple):
    count: int  # t, updates done so far
    sum_of_squares: Tree  # G_t = G_0 + Σ_{i≤t} g_i² (torch's state["sum"])


def scale_by_adagrad(
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    eps_inside_sqrt: bool = False,
    owner: str = "scale_by_adagrad",
) -> GradientTransformation:
    """AdaGrad's direction, the update before the learning rate:

    .. math::
        G_t = G_{t-1} + g_t^2, \\quad G_0 = τ, \\qquad
        d_t = \\frac{g_t}{\\sqrt{G_t} + ε} \\ \\text{(torch)} \\quad\\text{or}\\quad
        d_t = \\frac{g_t}{\\sqrt{G_t + ε}} \\ \\text{(eps_inside_sqrt, seed 001)}

    ``initial_accumulator_value`` = τ, ``eps`` = ε. The default is
    ``torch.optim.Adagrad`` (ε added to the root); ``eps_inside_sqrt=True`` is
    seed 001's ``θ ← θ − η/√(G + ε)·g``, which is also Keras' ``Adagrad``.
    """
    check(owner, "initial_accumulator_value", initial_accumulator_value, NONNEGATIVE)
    check(owner, "eps", eps, NONNEGATIVE)
    check(owner, "eps_inside_sqrt", eps_inside_sqrt, BOOL)
    tau, eps = float(initial_accumulator_value), float(eps)

    def init(params: Tree) -> ScaleByAdagradState:
        return ScaleByAdagradState(0, tree_full_like(params, tau))

    def update(updates: Tree, state: ScaleByAdagradState, params: Tree | None = None):
        # torch: state_sum.addcmul_(g, g); std = state_sum.sqrt().add_(eps); θ.addcdiv_(g, std, value=-η)
        xp = tree_namespace(updates)
        acc = tree_map(lambda s, g: s + g * g, state.sum_of_squares, updates)
        if eps_inside_sqrt:
            d = tree_map(lambda g, s: g / xp.sqrt(s + eps), updates, acc)
        else:
            d = tree_map(lambda g, s: g / (xp.sqrt(s) + eps), updates, acc)
        return d, ScaleByAdagradState(state.count + 1, acc)

    return GradientTransformation(init, update)


def adagrad_learning_rate(
    lr: ScalarOrSchedule, lr_decay: float = 0.0, owner: str = "adagrad_learning_rate"
) -> ScalarOrSchedule:
    """torch's Adagrad step size ``η_t = lr(t) / (1 + t·lr_decay)`` as a schedule.

    ``t`` is the number of updates done before this one (torch writes
    ``(step − 1)`` with ``step`` counted from 1). With ``lr_decay = 0`` it returns
    ``lr`` unchanged. Pass the result to ``scale_by_learning_rate``.
    """
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "lr_decay", lr_decay, NONNEGATIVE)
    decay = float(lr_decay)
    if decay == 0.0:
        return lr

    def schedule(count: int) -> float:
        return resolve_lr(lr, count) / (1.0 + count * decay)

    return schedule


__all__ = ["ScaleByAdagradState", "adagrad_learning_rate", "scale_by_adagrad"]
