"""LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning"): ``scale_by_lamb``.

The reference is ``pytorch_optimizer.Lamb`` 4.1.0 (the PyPI package ``pytorch-optimizer``), whose
keyword names and defaults these take; every detail below follows its source, including where it
departs from the paper (noted in the docstring).
"""

from __future__ import annotations

import math
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
from descend.errors import ParameterError
from descend.optim._backend import tree_namespace
from descend.optim._leaf import decay_is_on, leaf_norm
from descend.optim.base import GradientTransformation, chain, stateless
from descend.optim.clipping import global_norm
from descend.optim.layout import Layout, maybe_by_layout
from descend.optim.learning_rate import ScalarOrSchedule, resolve_lr, scale
from descend.optim.tree import Tree, tree_map, tree_zeros_like

#: pytorch-optimizer's ``Lamb.clamp``: the weight norm in the trust ratio is capped at 10.
WEIGHT_NORM_CLAMP = 10.0


class ScaleByLambState(NamedTuple):
    count: int  # t, updates done so far
    lr: float  # η used by the last update
    lr_scale: float  # plateau multiplier s
    exp_avg: Tree  # m_t
    exp_avg_sq: Tree  # v_t


def rectified_step_size(step: int, lr: float, beta2: float, threshold: float, degenerated_to_sgd: bool):
    """RAdam's rectification as pytorch-optimizer computes it: ``(lr·r_t, ρ_t)``, r_t = −1 when skipped."""
    n_sma_max = 2.0 / (1.0 - beta2) - 1.0
    beta2_t = beta2**step
    n_sma = n_sma_max - 2 * step * beta2_t / (1.0 - beta2_t)
    if n_sma >= threshold:
        rt = math.sqrt(
            (1.0 - beta2_t) * (n_sma - 4) / (n_sma_max - 4) * (n_sma - 2) / n_sma * n_sma_max / (n_sma_max - 2)
        )
    elif degenerated_to_sgd:
        rt = 1.0
    else:
        rt = -1.0
    return lr * rt, n_sma


def scale_by_global_norm_ratio(max_grad_norm: float, eps: float) -> GradientTransformation:
    """pytorch-optimizer's ``pre_norm``: ``g ← g · min(1, c / (‖g‖₂ + ε))`` over all leaves together.

    ``c`` = ``max_grad_norm`` (0: no scaling), ε = ``eps``. torch's ``clip_grad_norm_`` is the same with
    ε = 1e-6 (:func:`descend.optim.clip_by_global_norm`); pytorch-optimizer measures the norm in float32.
    """
    c, eps = float(max_grad_norm), float(eps)

    def fn(updates: Tree, params: Tree | None) -> Tree:
        if c == 0.0:
            return updates
        factor = min(c / (global_norm(updates) + eps), 1.0)
        return tree_map(lambda g: factor * g, updates)

    return stateless(fn)


def scale_by_lamb(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    rectify: bool = False,
    degenerated_to_sgd: bool = False,
    n_sma_threshold: int = 5,
    grad_averaging: bool = True,
    adam: bool = False,
    eps: float = 1e-6,
    owner: str = "scale_by_lamb",
) -> GradientTransformation:
    """LAMB's whole update, learning rate included (the trust ratio needs the decayed weights):

    .. math::
        m_t = β_1 m_{t-1} + β_3 g_t, \\quad v_t = β_2 v_{t-1} + (1-β_2) g_t^2
        \\quad (β_3 = 1-β_1 \\text{ with grad\\_averaging, else } 1)\\\\
        θ' = θ·(1 - η λ) \\quad \\text{(decoupled; } θ·(1-λ) \\text{ with fixed\\_decay)}\\\\
        r_t = m_t / (\\sqrt{v_t} + ε) \\;(+ λ θ \\text{ when coupled}), \\quad
        φ = \\min(‖θ'‖, 10), \\quad τ = φ / (‖r_t‖ + ε) \\;(1 \\text{ if } φ = 0 \\text{ or } ‖r_t‖ = 0)\\\\
        θ ← θ' - η/(1-β_1^t) · τ · r_t

    one trust ratio τ per leaf of the parameter tree (``adam=True``: τ = 1). As in pytorch-optimizer,
    and unlike the paper's Algorithm 2: m_t is bias-corrected (through the step size) but v_t is not,
    ε is also added to ‖r_t‖, the weight norm φ is clipped at 10 (the paper's φ is an unspecified
    scaling function) and is that of the already decayed θ'. ``rectify=True`` applies RAdam's
    rectification (step size η·r_t; below ``n_sma_threshold`` the step is skipped, or plain momentum
    SGD with ``degenerated_to_sgd``), and then, as pytorch-optimizer does, measures τ against
    ``θ' − step·r_t`` (the would-be new weights) and ignores coupled weight decay.
    """
    b1, b2 = check_pair(owner, "betas", betas, UNIT_OPEN_RIGHT)
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    for name, flag in (
        ("weight_decouple", weight_decouple),
        ("fixed_decay", fixed_decay),
        ("rectify", rectify),
        ("degenerated_to_sgd", degenerated_to_sgd),
        ("grad_averaging", grad_averaging),
        ("adam", adam),
    ):
        check(owner, name, flag, BOOL)
    check(owner, "n_sma_threshold", n_sma_threshold, Interval(0, None, integer=True))
    check(owner, "eps", eps, NONNEGATIVE)
    b1, b2, eps = float(b1), float(b2), float(eps)
    b3 = 1.0 - b1 if grad_averaging else 1.0
    wd = weight_decay if isinstance(weight_decay, np.ndarray) else float(weight_decay)
    decays = decay_is_on(weight_decay)

    def init(params: Tree) -> ScaleByLambState:
        return ScaleByLambState(0, resolve_lr(lr, 0), 1.0, tree_zeros_like(params), tree_zeros_like(params))

    def update(updates: Tree, state: ScaleByLambState, params: Tree | None = None):
        if params is None:
            raise ParameterError(f"{owner}: update needs params (the trust ratio is ‖θ‖ / ‖r‖)")
        xp = tree_namespace(updates)
        t = state.count + 1
        eta = resolve_lr(lr, state.count) * state.lr_scale
        m = tree_map(lambda m_, g: b1 * m_ + b3 * g, state.exp_avg, updates)
        v = tree_map(lambda v_, g: b2 * v_ + (1.0 - b2) * (g * g), state.exp_avg_sq, updates)
        decay = (1.0 if fixed_decay else eta) if (weight_decouple and decays) else 0.0
        bc1 = 1.0 - b1**t
        if rectify:
            step_size, n_sma = rectified_step_size(t, eta, b2, n_sma_threshold, degenerated_to_sgd)
        else:
            step_size, n_sma = eta, 0.0
        step_size /= bc1

        def leaf(m_: Any, v_: Any, p: Any) -> Any:
            shrink = wd * decay * p if decay else None  # θ − θ' (decoupled decay)
            decayed = p - shrink if decay else p
            if rectify and step_size <= 0:
                return -shrink if decay else xp.zeros_like(p)
            if rectify:
                direction = m_ / (xp.sqrt(v_) + eps) if n_sma >= n_sma_threshold else m_
                measured = decayed - step_size * direction
            else:
                direction = m_ / (xp.sqrt(v_) + eps)
                if not weight_decouple and decays:
                    direction = direction + wd * p
                measured = direction
            w_norm = min(leaf_norm(decayed), WEIGHT_NORM_CLAMP)
            r_norm = leaf_norm(measured)
            trust = 1.0 if (adam or w_norm == 0.0 or r_norm == 0.0) else w_norm / (r_norm + eps)
            step = (-step_size * trust) * direction
            return step - shrink if decay else step

        out = tree_map(leaf, m, v, params)
        return out, ScaleByLambState(t, eta, state.lr_scale, m, v)

    return GradientTransformation(init, update)


def lamb(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    weight_decouple: bool = True,
    fixed_decay: bool = False,
    rectify: bool = False,
    degenerated_to_sgd: bool = False,
    n_sma_threshold: int = 5,
    grad_averaging: bool = True,
    max_grad_norm: float = 1.0,
    adam: bool = False,
    pre_norm: bool = False,
    eps: float = 1e-6,
    *,
    maximize: bool = False,
    layout: Layout | None = None,
) -> GradientTransformation:
    """LAMB (``pytorch_optimizer.Lamb`` 4.1.0; You et al. 2020): Adam's direction with a per-layer trust ratio::

        g ← g · min(1, c/(‖g‖ + ε))                         (pre_norm=True, max_grad_norm = c; all leaves)
        m_t = β₁·m_{t−1} + (1−β₁)·g_t,  v_t = β₂·v_{t−1} + (1−β₂)·g_t²    (betas = (β₁, β₂))
        θ' = θ·(1 − η·λ)                                    (weight_decay = λ, decoupled: weight_decouple)
        r_t = m_t/(√v_t + ε),  τ = min(‖θ'‖, 10)/(‖r_t‖ + ε)  (one τ per leaf; adam=True: τ = 1)
        θ ← θ' − η/(1−β₁ᵗ)·τ·r_t                            (lr = η, eps = ε)

    Seed 001/002's Adam is the case τ = 1 with v̂ bias-corrected as well. The trust ratio makes the
    step of every layer proportional to the layer's weight norm, whatever the gradient scale, so very
    large batches (large η) stay stable. pytorch-optimizer's defaults (ε = 1e-6, λ = 0); its quirks,
    kept here, are listed in :func:`descend.optim.scale_by_lamb`. On a model's one flat parameter
    buffer there is a single leaf, hence a single trust ratio for the whole model, unless
    ``layout=model.layout`` splits it into the model's parameters (:func:`descend.optim.by_layout`).
    """
    owner = "lamb"
    check(owner, "max_grad_norm", max_grad_norm, NONNEGATIVE)
    check(owner, "pre_norm", pre_norm, BOOL)
    check(owner, "maximize", maximize, BOOL)
    check(owner, "eps", eps, NONNEGATIVE)
    links = []
    if pre_norm:
        links.append(scale_by_global_norm_ratio(max_grad_norm, eps))
    if maximize:
        links.append(scale(-1.0))
    links.append(
        scale_by_lamb(
            lr,
            betas,
            weight_decay,
            weight_decouple,
            fixed_decay,
            rectify,
            degenerated_to_sgd,
            n_sma_threshold,
            grad_averaging,
            adam,
            eps,
            owner=owner,
        )
    )
    return maybe_by_layout(chain(*links), layout, owner)


__all__ = [
    "WEIGHT_NORM_CLAMP",
    "ScaleByLambState",
    "lamb",
    "rectified_step_size",
    "scale_by_global_norm_ratio",
    "scale_by_lamb",
]
