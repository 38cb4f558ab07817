"""Lookahead (Zhang, Lucas, Hinton & Ba 2019, "Lookahead Optimizer: k steps forward, 1 step back").

The reference is ``pytorch_optimizer.Lookahead`` 4.1.0, whose keyword names and defaults these take.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from descend._validation import Interval, OneOf, check
from descend.errors import ParameterError
from descend.optim._leaf import clone
from descend.optim.base import GradientTransformation
from descend.optim.masking import IS_TRANSFORMATION
from descend.optim.state import find_fields
from descend.optim.tree import Tree, tree_map, tree_zeros_like

State = Any


class LookaheadState(NamedTuple):
    count: int  # steps of the inner optimizer so far
    slow_params: Tree  # φ, the slow weights
    slow_momentum: tuple  # one tree per momentum_buffer of the inner state ("pullback" only, else ())
    inner: State  # the wrapped optimizer's state


def _lerp(start: Any, end: Any, weight: float) -> Any:
    """``start + w·(end − start)`` evaluated as ``torch.lerp`` does (from the nearer end)."""
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


def _map_buffers(state: State, fn, counter: list[int]) -> State:
    """``state`` with the i-th ``momentum_buffer`` field (depth first) replaced by ``fn(i, buffer)``."""
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        values = []
        for name, value in zip(state._fields, state, strict=True):
            if name == "momentum_buffer":
                values.append(fn(counter[0], value))
                counter[0] += 1
            else:
                values.append(_map_buffers(value, fn, counter))
        return type(state)(*values)
    if isinstance(state, dict):
        return {k: _map_buffers(v, fn, counter) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        out = [_map_buffers(v, fn, counter) for v in state]
        return type(state)(out) if isinstance(state, tuple) else out
    return state


def lookahead(
    optimizer: GradientTransformation, k: int = 5, alpha: float = 0.5, pullback_momentum: str = "none"
) -> GradientTransformation:
    """Lookahead around any transformation (``pytorch_optimizer.Lookahead`` 4.1.0)::

        θ ← θ + u_t                       (the inner optimizer's step: the fast weights)
        every k-th step:  θ ← φ + α·(θ − φ),  φ ← θ      (k = k, alpha = α; φ₀ = θ₀)

    The slow weights φ follow the fast ones with the interpolation α, which damps the inner
    optimizer's oscillations; evaluate a model at θ or, between synchronisations, at φ
    (:func:`lookahead_slow_params`). ``pullback_momentum`` acts on the inner state's momentum
    buffers (the ``momentum_buffer`` fields: ``sgd(momentum=...)``, :func:`lars`): ``"reset"`` zeroes
    them at each synchronisation, ``"pullback"`` interpolates them towards their value at the last
    one as the weights are (``b ← s + α·(b − s)``, ``s ← b``); optimizers without such buffers are
    unaffected, as in pytorch-optimizer. ``update`` needs params.
    """
    owner = "lookahead"
    check(owner, "optimizer", optimizer, IS_TRANSFORMATION)
    check(owner, "k", k, Interval(1, None, integer=True))
    check(owner, "alpha", alpha, Interval(0, 1))
    check(owner, "pullback_momentum", pullback_momentum, OneOf("none", "reset", "pullback"))
    k, w = int(k), 1.0 - float(alpha)  # pytorch-optimizer lerps the fast weights towards the slow by 1 − α

    def init(params: Tree) -> LookaheadState:
        inner = optimizer.init(params)
        slow_momentum = ()
        if pullback_momentum == "pullback":
            slow_momentum = tuple(tree_zeros_like(b) for b in find_fields(inner, "momentum_buffer"))
        return LookaheadState(0, tree_map(clone, params), slow_momentum, inner)

    def update(updates: Tree, state: LookaheadState, params: Tree | None = None):
        if params is None:
            raise ParameterError(f"{owner}: update needs params (the slow weights are interpolated towards them)")
        u, inner = optimizer.update(updates, state.inner, params)
        count = state.count + 1
        if count % k:
            return u, LookaheadState(count, state.slow_params, state.slow_momentum, inner)
        synced = tree_map(lambda p, u_, s: _lerp(p + u_, s, w), params, u, state.slow_params)
        out = tree_map(lambda new, p: new - p, synced, params)
        slow_momentum = state.slow_momentum
        if pullback_momentum == "pullback":
            pulled: list[Tree] = []

            def pull(i: int, buf: Tree) -> Tree:
                pulled.append(tree_map(lambda b, s: _lerp(b, s, w), buf, state.slow_momentum[i]))
                return pulled[-1]

            inner = _map_buffers(inner, pull, [0])
            slow_momentum = tuple(pulled)
        elif pullback_momentum == "reset":
            inner = _map_buffers(inner, lambda i, buf: tree_zeros_like(buf), [0])
        return out, LookaheadState(count, synced, slow_momentum, inner)

    return GradientTransformation(init, update)


def lookahead_slow_params(state: State) -> Tree:
    """The slow weights φ of the (first) :func:`lookahead` in an optimizer state (its ``slow_params``)."""
    found = find_fields(state, "slow_params")
    if not found:
        raise ParameterError("lookahead_slow_params: this optimizer state has no lookahead (no slow_params)")
    return found[0]


__all__ = ["LookaheadState", "lookahead", "lookahead_slow_params"]
