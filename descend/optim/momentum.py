"""Momentum: torch's ``trace`` and the heavy-ball forms of the seed documents."""

from __future__ import annotations

from typing import NamedTuple

from descend._validation import BOOL, LEARNING_RATE, NONNEGATIVE, UNIT_CLOSED, OneOf, check
from descend.optim._backend import copy
from descend.optim.base import GradientTransformation
from descend.optim.learning_rate import ScalarOrSchedule, resolve_lr
from descend.optim.tree import Tree, tree_map, tree_zeros_like


class TraceState(NamedTuple):
    count: int
    momentum_buffer: Tree  # b_t


def trace(momentum: float = 0.9, dampening: float = 0.0, nesterov: bool = False) -> GradientTransformation:
    """Momentum exactly as ``torch.optim.SGD``:

    .. math::
        b_1 = g_1, \\qquad b_t = μ b_{t-1} + (1 - τ) g_t, \\qquad
        u_t = g_t + μ b_t \\ \\text{(nesterov)} \\ \\text{or}\\ b_t

    with μ = ``momentum`` and τ = ``dampening``. The first buffer is the raw
    gradient, without dampening (torch's convention). Differs from Keras, which
    folds the learning rate into the velocity (see :func:`heavy_ball`).
    """
    check("trace", "momentum", momentum, NONNEGATIVE)
    check("trace", "dampening", dampening, UNIT_CLOSED)
    check("trace", "nesterov", nesterov, BOOL)
    mu, damp = float(momentum), float(dampening)

    def init(params: Tree) -> TraceState:
        return TraceState(count=0, momentum_buffer=tree_zeros_like(params))

    def update(updates: Tree, state: TraceState, params: Tree | None = None):
        if state.count == 0:
            buf = tree_map(copy, updates)
        else:
            buf = tree_map(lambda b, g: mu * b + (1.0 - damp) * g, state.momentum_buffer, updates)
        out = tree_map(lambda g, b: g + mu * b, updates, buf) if nesterov else buf
        return out, TraceState(state.count + 1, buf)

    return GradientTransformation(init, update)


class HeavyBallState(NamedTuple):
    count: int
    lr: float  # learning rate used by the last update
    lr_scale: float
    velocity: Tree  # v, in the sign convention of the chosen seed


def heavy_ball(lr: ScalarOrSchedule, beta: float = 0.9, form: str = "seed000") -> GradientTransformation:
    """Heavy-ball momentum with the learning rate inside the velocity.

    ``form="seed000"`` (seed 000, also Keras' ``SGD(momentum=β)``)::

        v ← β·v − α·g,   θ ← θ + v

    ``form="seed001"`` (seed 001, Sutskever et al. 2013)::

        v ← γ·v + η·g,   θ ← θ − v

    The two are the same trajectory with ``v`` of opposite sign; the state keeps
    ``velocity`` in the chosen seed's sign so it reads as in the text. With a
    constant learning rate both equal ``torch.optim.SGD(momentum=β)``; under a
    schedule they differ from torch, which applies the current η to the whole
    buffer, while here past steps keep the η they were taken with.
    """
    check("heavy_ball", "lr", lr, LEARNING_RATE)
    check("heavy_ball", "beta", beta, UNIT_CLOSED)
    check("heavy_ball", "form", form, OneOf("seed000", "seed001"))
    b = float(beta)
    sign = 1.0 if form == "seed000" else -1.0  # θ ← θ + sign·v

    def init(params: Tree) -> HeavyBallState:
        return HeavyBallState(0, resolve_lr(lr, 0), 1.0, tree_zeros_like(params))

    def update(updates: Tree, state: HeavyBallState, params: Tree | None = None):
        eta = resolve_lr(lr, state.count) * state.lr_scale
        # seed000: v = βv − αg ; seed001: v = γv + ηg
        v = tree_map(lambda v_, g: b * v_ - sign * eta * g, state.velocity, updates)
        out = tree_map(lambda v_: sign * v_, v)
        return out, HeavyBallState(state.count + 1, eta, state.lr_scale, v)

    return GradientTransformation(init, update)


__all__ = ["HeavyBallState", "TraceState", "heavy_ball", "trace"]
