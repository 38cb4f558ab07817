"""The gradient transformation: the one abstraction of the optimizer core.

A transformation is a pair of pure functions (after optax)::

    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    params = apply_updates(params, updates)

``update`` maps gradients to *updates* that are **added** to the parameters, so
a plain gradient step is ``chain(scale_by_learning_rate(lr))`` which returns
``-lr * g``. Named optimizers (:mod:`descend.optim.alias`) are chains of small
transformations that users can also chain themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from descend.optim.tree import Tree, check_same_structure, tree_map

State = Any
InitFn = Callable[[Tree], State]
UpdateFn = Callable[..., tuple[Tree, State]]


class GradientTransformation(NamedTuple):
    """``init(params) -> state`` and ``update(grads, state, params=None) -> (updates, state)``."""

    init: InitFn
    update: UpdateFn


class EmptyState(NamedTuple):
    """State of a stateless transformation."""


class ChainState(tuple):
    """The states of a chain, one per link, in order (a plain tuple subclass)."""


def identity() -> GradientTransformation:
    """Pass updates through unchanged."""

    def init(params: Tree) -> EmptyState:
        return EmptyState()

    def update(updates: Tree, state: EmptyState, params: Tree | None = None):
        return updates, state

    return GradientTransformation(init, update)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply ``transforms`` in order; the state is a tuple of their states."""
    for i, t in enumerate(transforms):
        if not isinstance(t, GradientTransformation):
            from descend.errors import ParameterError

            raise ParameterError(f"chain: argument {i} must be a GradientTransformation, got {type(t).__name__}")

    def init(params: Tree) -> ChainState:
        return ChainState(t.init(params) for t in transforms)

    def update(updates: Tree, state: ChainState, params: Tree | None = None):
        if params is not None:
            check_same_structure(updates, params, "grads", "params", "update")
        new_states = []
        for t, s in zip(transforms, state, strict=True):
            updates, s = t.update(updates, s, params)
            new_states.append(s)
        return updates, ChainState(new_states)

    return GradientTransformation(init, update)


def apply_updates(params: Tree, updates: Tree) -> Tree:
    """Return ``params + updates`` leaf-wise, keeping each parameter's dtype."""
    check_same_structure(updates, params, "updates", "params", "apply_updates")
    return tree_map(_add, params, updates)


def _add(p: Any, u: Any) -> Any:
    if isinstance(p, np.ndarray):
        # np.asarray: arithmetic on 0-d arrays returns NumPy scalars; a parameter stays an array.
        return np.asarray(p + u, dtype=p.dtype)
    return p + u


def stateless(fn: Callable[[Tree, Tree | None], Tree]) -> GradientTransformation:
    """Build a transformation from ``fn(updates, params) -> updates``."""

    def init(params: Tree) -> EmptyState:
        return EmptyState()

    def update(updates: Tree, state: EmptyState, params: Tree | None = None):
        return fn(updates, params), state

    return GradientTransformation(init, update)
