"""LARS (You, Gitman & Ginsburg 2017, "Large Batch Training of Convolutional Networks").

The reference is ``pytorch_optimizer.LARS`` 4.1.0, whose keyword names and defaults these take.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from descend._validation import BOOL, LEARNING_RATE, NONNEGATIVE, UNIT_CLOSED, WEIGHT_DECAY, Interval, check
from descend.errors import ParameterError
from descend.optim._backend import ndim
from descend.optim._leaf import leaf_norm
from descend.optim.base import GradientTransformation, chain, stateless
from descend.optim.layout import Layout, maybe_by_layout
from descend.optim.learning_rate import ScalarOrSchedule, scale, scale_by_learning_rate
from descend.optim.tree import Tree, tree_map, tree_zeros_like


def scale_by_trust_ratio(
    weight_decay: float = 0.0, trust_coefficient: float = 1e-3, owner: str = "scale_by_trust_ratio"
) -> GradientTransformation:
    """LARS's layer-wise scaling of every leaf with two or more axes (vectors and scalars pass unchanged):

    .. math::
        τ = κ ‖θ‖ / (‖g‖ + λ ‖θ‖) \\;(1 \\text{ if } ‖θ‖ = 0 \\text{ or the denominator is } 0), \\qquad
        g ← τ · (g + λ θ)

    κ = ``trust_coefficient``, λ = ``weight_decay``. As in pytorch-optimizer (and the paper's
    Algorithm 1 applied to weights only) vectors and scalars, biases and norm layers, get neither the
    trust ratio nor the weight decay.
    """
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    check(owner, "trust_coefficient", trust_coefficient, NONNEGATIVE)
    kappa = float(trust_coefficient)
    # a per-element λ (a model's decay mask times λ) enters the denominator as ‖λ·θ‖
    wd = weight_decay if isinstance(weight_decay, np.ndarray) and weight_decay.any() else float(np.max(weight_decay))

    def leaf(g: Any, p: Any) -> Any:
        if ndim(p) <= 1:
            return g
        p_norm, g_norm = leaf_norm(p), leaf_norm(g)
        denominator = g_norm + (leaf_norm(wd * p) if isinstance(wd, np.ndarray) else wd * p_norm)
        trust = kappa * p_norm / denominator if (p_norm > 0.0 and denominator > 0.0) else 1.0
        return trust * (g + wd * p) if isinstance(wd, np.ndarray) or wd else trust * g

    def fn(updates: Tree, params: Tree | None) -> Tree:
        if params is None:
            raise ParameterError(f"{owner}: update needs params (the trust ratio is κ‖θ‖ / (‖g‖ + λ‖θ‖))")
        return tree_map(leaf, updates, params)

    return stateless(fn)


class EmaTraceState(NamedTuple):
    count: int
    momentum_buffer: Tree  # b_t


def ema_trace(momentum: float = 0.9, dampening: float = 0.0, nesterov: bool = False) -> GradientTransformation:
    """Momentum with a zero-initialised buffer, as pytorch-optimizer's LARS keeps it:

    .. math::
        b_0 = 0, \\quad b_t = μ b_{t-1} + (1-τ) g_t, \\quad u_t = g_t + μ b_t \\ \\text{(nesterov) or } b_t

    Unlike :func:`descend.optim.trace` (torch's SGD) the first buffer is ``(1−τ)·g_1``, not ``g_1``:
    the two differ only with dampening τ > 0.
    """
    check("ema_trace", "momentum", momentum, UNIT_CLOSED)
    check("ema_trace", "dampening", dampening, UNIT_CLOSED)
    check("ema_trace", "nesterov", nesterov, BOOL)
    mu, damp = float(momentum), float(dampening)

    def init(params: Tree) -> EmaTraceState:
        return EmaTraceState(0, tree_zeros_like(params))

    def update(updates: Tree, state: EmaTraceState, params: Tree | None = None):
        buf = tree_map(lambda b, g: mu * b + (1.0 - damp) * g, state.momentum_buffer, updates)
        out = tree_map(lambda g, b: g + mu * b, updates, buf) if nesterov else buf
        return out, EmaTraceState(state.count + 1, buf)

    return GradientTransformation(init, update)


def lars(
    lr: ScalarOrSchedule = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    dampening: float = 0.0,
    trust_coefficient: float = 1e-3,
    nesterov: bool = False,
    *,
    maximize: bool = False,
    layout: Layout | None = None,
) -> GradientTransformation:
    """LARS (``pytorch_optimizer.LARS`` 4.1.0), SGD with a layer-wise trust ratio::

        leaves with ndim ≥ 2:  τ = κ‖θ‖/(‖g‖ + λ‖θ‖),  g ← τ·(g + λθ)   (trust_coefficient = κ, weight_decay = λ)
        b_t = μ·b_{t−1} + (1−τ_d)·g_t,  b_0 = 0                        (momentum = μ, dampening = τ_d)
        θ ← θ − η·b_t    (nesterov: θ ← θ − η·(g_t + μ·b_t))            (lr = η)

    Seed 001's momentum SGD is the case τ = 1, λ = 0. One trust ratio per leaf of the parameter tree
    with two or more axes; vectors (biases, norm layers) take plain momentum SGD without weight decay, as
    in pytorch-optimizer. The paper's local learning rate η·τ with κ = 1e-3 needs a global η near 1
    or more (pytorch-optimizer's default η = 1e-3 makes tiny steps). On a model's one flat parameter
    buffer (a vector) LARS is momentum SGD, unless ``layout=model.layout`` splits it into the model's
    parameters (:func:`descend.optim.by_layout`).
    """
    owner = "lars"
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "momentum", momentum, UNIT_CLOSED)
    check(owner, "dampening", dampening, UNIT_CLOSED)
    check(owner, "nesterov", nesterov, BOOL)
    check(owner, "maximize", maximize, BOOL)
    check(owner, "trust_coefficient", trust_coefficient, Interval(0, None))
    links = [scale(-1.0)] if maximize else []
    links.append(scale_by_trust_ratio(weight_decay, trust_coefficient, owner=owner))
    if momentum > 0:
        links.append(ema_trace(momentum, dampening, nesterov))
    links.append(scale_by_learning_rate(lr, owner=owner))
    return maybe_by_layout(chain(*links), layout, owner)


__all__ = ["EmaTraceState", "ema_trace", "lars", "scale_by_trust_ratio"]
