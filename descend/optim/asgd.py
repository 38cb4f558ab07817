"""Averaged SGD (Polyak & Juditsky 1992; Bottou 2012's schedule): ``scale_by_asgd``.

SGD whose step size decays as ``η_t = lr/(1 + λ·lr·t)^α`` and whose weights
shrink by ``λ·η_t``, plus a running average ``ax`` of the iterates from step
``t0`` on. The averaged parameters are the point of the method (they converge
faster than the iterates on noisy convex problems) but, as in torch, the
optimizer keeps stepping from the *raw* iterates: ``ax`` is only recorded in the
state. Read it with :func:`get_averaged_params` and evaluate or export it
instead of the parameters.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from descend._validation import LEARNING_RATE, NONNEGATIVE, check
from descend.errors import ParameterError, StructureError
from descend.optim._backend import tree_namespace
from descend.optim.base import GradientTransformation
from descend.optim.learning_rate import ScalarOrSchedule, resolve_lr
from descend.optim.state import find_fields
from descend.optim.tree import Tree, tree_map, tree_zeros_like


class ScaleByAsgdState(NamedTuple):
    count: int  # t, updates done so far
    lr: float  # η_t used by the last update (lr(0) before the first): torch's state["eta"] one step late
    lr_scale: float  # s, multiplier from a plateau controller: scales lr(t) inside η_t
    ax: Tree  # the averaged parameters θ̄_t (torch's state["ax"])


def scale_by_asgd(
    lr: ScalarOrSchedule = 1e-2,
    lambd: float = 1e-4,
    alpha: float = 0.75,
    t0: float = 1e6,
    owner: str = "scale_by_asgd",
) -> GradientTransformation:
    """ASGD exactly as ``torch.optim.ASGD`` (its update and its averaging)::

        η_t = ℓ_t / (1 + λ·ℓ_t·t)^α,   ℓ_t = s·lr(t)     (lambd = λ, alpha = α; η_0 = lr(0))
        θ_{t+1} = θ_t·(1 − λ·η_t) − η_t·g_t           (returned as the update u = θ_{t+1} − θ_t)
        μ_t = 1/max(1, t − t0)                         (t0 = t0)
        θ̄_{t+1} = θ_{t+1} if μ_t = 1, else θ̄_t + μ_t·(θ_{t+1} − θ̄_t)

    where ``t`` counts the updates done before this one (torch's ``step − 1``)
    and ``s`` is the ``lr_scale`` set by :func:`descend.optim.set_lr_scale`
    (it scales the learning rate *inside* η_t, as a change of torch's group
    ``lr`` would). Counting updates from 1 and for an integer t0, θ̄ after
    update k is θ_k while k ≤ t0 + 2 and the mean of θ_{t0+2}, …, θ_k after;
    with the default ``t0 = 1e6`` it is in practice a copy of the parameters. ``lr`` may be a schedule evaluated
    at ``t``; torch with an LR scheduler uses the group lr of the previous
    step in η_t (it computes the next η at the end of ``step()``).

    This link needs ``params`` and must be the **last** link of the chain: the
    average is taken of ``θ_t + u``, i.e. of the parameters after
    :func:`descend.optim.apply_updates`. torch keeps η and μ as float32 tensors
    unless its default dtype is float64; here they are Python floats (double).
    """
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "lambd", lambd, NONNEGATIVE)
    check(owner, "alpha", alpha, NONNEGATIVE)
    check(owner, "t0", t0, NONNEGATIVE)
    lam, a, t0 = float(lambd), float(alpha), float(t0)

    def init(params: Tree) -> ScaleByAsgdState:
        return ScaleByAsgdState(0, resolve_lr(lr, 0), 1.0, tree_zeros_like(params))

    def update(updates: Tree, state: ScaleByAsgdState, params: Tree | None = None):
        if params is None:
            raise ParameterError(f"{owner}: update needs params (call tx.update(grads, state, params))")
        t = state.count
        base = resolve_lr(lr, t) * state.lr_scale
        eta = base / ((1.0 + lam * base * t) ** a)
        decay = lam * eta
        mu = 1.0 / max(1.0, t - t0)

        def step(g: Any, p: Any) -> Any:
            # torch: θ.mul_(1 − λη); θ.add_(g, alpha=−η)
            return -(eta * g) - decay * p if decay != 0.0 else -(eta * g)

        u = tree_map(step, updates, params)
        xp = tree_namespace(updates)

        def average(ax: Any, p: Any, u_: Any) -> Any:
            new = xp.asarray(p + u_, dtype=p.dtype)  # exactly what apply_updates will produce
            return new if mu == 1.0 else ax + (new - ax) * mu

        ax = tree_map(average, state.ax, params, u)
        return u, ScaleByAsgdState(t + 1, eta, state.lr_scale, ax)

    return GradientTransformation(init, update)


def get_averaged_params(state) -> Tree:
    """The averaged parameters θ̄ (torch's ``ax``) from an ASGD state, e.g. ``asgd()``'s chain state."""
    found = find_fields(state, "ax")
    if not found:
        raise StructureError("get_averaged_params: this optimizer state has no ASGD average (no 'ax' field)")
    return found[0]


__all__ = ["ScaleByAsgdState", "get_averaged_params", "scale_by_asgd"]
