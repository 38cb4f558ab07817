"""Schedule-free SGD and AdamW (Defazio et al. 2024, "The Road Less Scheduled").

The references are ``schedulefree.SGDScheduleFreeReference`` and ``AdamWScheduleFreeReference`` of the
``schedulefree`` package 1.4.1 (the simple, non-"closure", non-"wrapper" classes), whose keyword names and
defaults these take.

A schedule-free optimizer keeps three sequences: ``z`` (the SGD/Adam iterate), ``x`` (a weighted
running average of ``z``: the weights to *evaluate*) and ``y``, their interpolation, where the gradient
is taken: the parameters a training loop holds are ``y``. Read ``x`` with
:func:`schedule_free_eval_params` to evaluate or save the model (schedulefree's ``optimizer.eval()``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from descend._validation import (
    BOOL,
    LEARNING_RATE,
    NONNEGATIVE,
    UNIT_OPEN_RIGHT,
    WEIGHT_DECAY,
    Interval,
    check,
    check_pair,
)
from descend.errors import ParameterError, StructureError
from descend.optim._backend import tree_namespace
from descend.optim._leaf import clone, decay_is_on
from descend.optim.base import GradientTransformation, chain
from descend.optim.learning_rate import ScalarOrSchedule, resolve_lr, scale
from descend.optim.tree import Tree, check_same_structure, tree_map, tree_zeros_like

State = Any


class ScheduleFreeState(NamedTuple):
    count: int  # k, steps done so far
    lr: float  # the warmed-up learning rate γ_k of the last step
    lr_scale: float  # plateau multiplier s
    lr_max: float  # max over steps of γ_k (−1 before the first)
    weight_sum: float  # Σ c-weights so far
    z: Tree  # the base iterate
    x: Tree  # the averaged iterate: evaluate here
    exp_avg_sq: Tree | None  # v (AdamW only)


def _averaging_weight(k: int, lr_k: float, state: ScheduleFreeState, r: float, power: float):
    lr_max = max(lr_k, state.lr_max)
    weight = ((k + 1) ** r) * (lr_max**power)
    weight_sum = state.weight_sum + weight
    ckp1 = weight / weight_sum if weight_sum != 0 else 0.0  # the reference catches ZeroDivisionError
    return lr_max, weight_sum, ckp1


def _check_common(owner: str, lr, warmup_steps, r, weight_lr_power):
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "warmup_steps", warmup_steps, Interval(0, None, integer=True))
    check(owner, "r", r, NONNEGATIVE)
    check(owner, "weight_lr_power", weight_lr_power, NONNEGATIVE)


def scale_by_schedule_free(
    lr: ScalarOrSchedule,
    beta: float,
    warmup_steps: int = 0,
    r: float = 0.0,
    weight_lr_power: float = 2.0,
    weight_decay: float = 0.0,
    adam: tuple[float, float] | None = None,
    decay_at_z: bool = False,
    owner: str = "scale_by_schedule_free",
) -> GradientTransformation:
    """The schedule-free step as one transformation, its learning rate included (``update`` returns y_{k+1} − y_k):

    .. math::
        γ_k = η·\\min(1, (k+1)/W), \\quad
        c_{k+1} = \\frac{(k+1)^r γ_{\\max}^{p}}{\\sum_{i≤k} (i+1)^r γ_{\\max,i}^{p}}\\\\
        \\text{SGD: } z ← z − γ_k (g + λ y); \\qquad
        \\text{AdamW: } z ← z − γ_k λ y − γ_k g / (\\sqrt{v/(1-β_2^{k+1})} + ε)\\\\
        x ← (1 − c_{k+1}) x + c_{k+1} z, \\qquad y ← β x + (1 − β) z

    with η = ``lr`` (a schedule is allowed, though the point is not to need one), W = ``warmup_steps``,
    r = ``r``, p = ``weight_lr_power``, λ = ``weight_decay``, β = the momentum (SGD) or β₁ (AdamW),
    ``adam`` = (β₂, ε) or None for SGD. The gradient is taken at y, the parameters passed to ``update``.
    AdamW decays at z instead of y with ``decay_at_z``.
    """
    beta = float(beta)
    wd = weight_decay if isinstance(weight_decay, np.ndarray) else float(weight_decay)  # a model's decay mask · λ
    decays = decay_is_on(weight_decay)
    r, power = float(r), float(weight_lr_power)
    warmup = int(warmup_steps)

    def init(params: Tree) -> ScheduleFreeState:
        v = tree_zeros_like(params) if adam is not None else None
        z, x = tree_map(clone, params), tree_map(clone, params)
        return ScheduleFreeState(0, resolve_lr(lr, 0), 1.0, -1.0, 0.0, z, x, v)

    def update(updates: Tree, state: ScheduleFreeState, params: Tree | None = None):
        if params is None:
            raise ParameterError(f"{owner}: update needs params (the gradient is taken at y, the parameters)")
        xp = tree_namespace(updates)
        k = state.count
        sched = (k + 1) / warmup if k < warmup else 1.0
        lr_k = resolve_lr(lr, k) * state.lr_scale * sched
        lr_max, weight_sum, ckp1 = _averaging_weight(k, lr_k, state, r, power)
        if adam is None:
            g = tree_map(lambda g_, y: g_ + wd * y, updates, params) if decays else updates
            z = tree_map(lambda z_, g_: z_ - lr_k * g_, state.z, g)
            v = None
        else:
            b2, eps = adam
            bc2 = 1.0 - b2 ** (k + 1)
            z = state.z
            if decays:
                z = tree_map(lambda z_, y: z_ - (lr_k * wd) * (z_ if decay_at_z else y), z, params)
            v = tree_map(lambda v_, g_: b2 * v_ + (1.0 - b2) * (g_ * g_), state.exp_avg_sq, updates)
            z = tree_map(lambda z_, g_, v_: z_ + (-lr_k) * (g_ / (xp.sqrt(v_ / bc2) + eps)), z, updates, v)
        x = tree_map(lambda x_, z_: x_ * (1.0 - ckp1) + z_ * ckp1, state.x, z)
        out = tree_map(lambda x_, z_, y: (x_ * beta + z_ * (1.0 - beta)) - y, x, z, params)
        return out, ScheduleFreeState(k + 1, lr_k, state.lr_scale, lr_max, weight_sum, z, x, v)

    return GradientTransformation(init, update)


def schedule_free_sgd(
    lr: ScalarOrSchedule = 1.0,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    r: float = 0.0,
    weight_lr_power: float = 2.0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Schedule-free SGD (``schedulefree.SGDScheduleFreeReference`` 1.4.1; Defazio et al. 2024)::

        γ_k = η·min(1, (k+1)/W)                     (lr = η, warmup_steps = W)
        z ← z − γ_k·(∇f(y) + λ·y)                   (weight_decay = λ, coupled L2)
        x ← (1 − c)·x + c·z,  c = (k+1)^r·γ_max^p / Σ(i+1)^r·γ_max,i^p   (r = r, weight_lr_power = p)
        y ← β·x + (1 − β)·z                         (momentum = β; the parameters are y)

    Seed 001's SGD is z's recursion; instead of a decaying learning-rate schedule the evaluation
    weights x are a running (uniform, after warm-up) average of the z's, and the gradient is taken at
    an interpolation y, which acts like momentum. No schedule is needed and none should be given
    (the warm-up is built in). Evaluate at :func:`schedule_free_eval_params`, not at the parameters.
    schedulefree's default η = 1.0 assumes a normalised problem; its momentum must be in (0, 1).
    """
    owner = "schedule_free_sgd"
    _check_common(owner, lr, warmup_steps, r, weight_lr_power)
    check(owner, "momentum", momentum, Interval(0, 1, closed="neither"))
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    check(owner, "maximize", maximize, BOOL)
    links = [scale(-1.0)] if maximize else []
    links.append(
        scale_by_schedule_free(lr, momentum, warmup_steps, r, weight_lr_power, weight_decay, None, owner=owner)
    )
    return chain(*links)


def schedule_free_adamw(
    lr: ScalarOrSchedule = 0.0025,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    r: float = 0.0,
    weight_lr_power: float = 2.0,
    decay_at_z: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Schedule-free AdamW (``schedulefree.AdamWScheduleFreeReference`` 1.4.1; Defazio et al. 2024)::

        γ_k = η·min(1, (k+1)/W)                            (lr = η, warmup_steps = W)
        v ← β₂·v + (1−β₂)·g²,  g = ∇f(y)                   (betas = (β₁, β₂))
        z ← z − γ_k·λ·y − γ_k·g/(√(v/(1−β₂^{k+1})) + ε)     (weight_decay = λ, decoupled; eps = ε)
        x ← (1 − c)·x + c·z,  y ← β₁·x + (1 − β₁)·z          (c as in :func:`schedule_free_sgd`)

    Seed 001/002's Adam without the first moment (β₁ now interpolates between x and z) and with the
    schedule replaced by averaging. ``decay_at_z=True`` decays z instead of y. Evaluate at
    :func:`schedule_free_eval_params`.
    """
    owner = "schedule_free_adamw"
    _check_common(owner, lr, warmup_steps, r, weight_lr_power)
    b1, b2 = check_pair(owner, "betas", betas, UNIT_OPEN_RIGHT)
    check(owner, "eps", eps, NONNEGATIVE)
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    check(owner, "decay_at_z", decay_at_z, BOOL)
    check(owner, "maximize", maximize, BOOL)
    links = [scale(-1.0)] if maximize else []
    adam = (float(b2), float(eps))
    links.append(
        scale_by_schedule_free(lr, b1, warmup_steps, r, weight_lr_power, weight_decay, adam, decay_at_z, owner=owner)
    )
    return chain(*links)


def schedule_free_states(state: State) -> list[ScheduleFreeState]:
    """The :class:`ScheduleFreeState` links of an optimizer state, depth first (none: ``[]``)."""
    if isinstance(state, ScheduleFreeState):
        return [state]
    found: list[ScheduleFreeState] = []
    if isinstance(state, dict):
        state = list(state.values())
    if isinstance(state, (list, tuple)):
        for child in state:
            found += schedule_free_states(child)
    return found


def schedule_free_eval_params(state: State, params: Tree) -> Tree:
    """The weights to evaluate a schedule-free model at: the average ``x`` (schedulefree's ``eval()``).

    ``params`` are the training parameters ``y`` (used to check that the state belongs to them); the
    result is a new tree of the same structure. Before the first step x = y.
    """
    found = schedule_free_states(state)
    if not found:
        raise StructureError(
            "schedule_free_eval_params: this optimizer state has no schedule-free state "
            "(make the optimizer with schedule_free_sgd or schedule_free_adamw)"
        )
    x = found[0].x
    check_same_structure(x, params, "the state's x", "params", "schedule_free_eval_params")
    return tree_map(clone, x)


__all__ = [
    "ScheduleFreeState",
    "scale_by_schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
    "schedule_free_states",
]
