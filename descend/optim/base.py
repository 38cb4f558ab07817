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

from descend.errors import StructureError
from descend.optim import _buffers
from descend.optim._backend import is_array, namespace
from descend.optim.tree import Tree, check_same_structure, state_links_mismatch, state_mismatch, tree_map

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
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise StructureError(state_links_mismatch(state, len(transforms)))
        grads, new_states = updates, []
        for t, s in zip(transforms, state, strict=True):
            try:
                updates, s = t.update(updates, s, params)
            except StructureError as error:  # name grads and the state, and where they differ
                explained = state_mismatch(grads, s, getattr(error, "keys", None))
                if explained is None or not str(error).startswith("tree_map:"):
                    raise
                raise StructureError(f"update: {explained}") from error
            except (AttributeError, TypeError) as error:  # e.g. the state of another optimizer, link for link
                expected = type(t.init(params if params is not None else grads))
                if type(s) is expected:
                    raise
                raise StructureError(
                    f"update: link {len(new_states)} of the state is a {type(s).__name__} but this optimizer's is "
                    f"a {expected.__name__} (was the state made by another optimizer's init?)"
                ) from error
            new_states.append(s)
        return updates, ChainState(new_states)

    return GradientTransformation(init, update)


def apply_updates(params: Tree, updates: Tree) -> Tree:
    """Return ``params + updates`` leaf-wise, keeping each parameter's dtype."""
    check_same_structure(updates, params, "updates", "params", "apply_updates")
    return tree_map(_add, params, updates)


def _add(p: Any, u: Any) -> Any:
    if isinstance(p, np.ndarray):
        # Large same-dtype arrays: p + u into a recycled buffer (no page faults; never one the caller holds).
        pooled = _buffers.add(p, u)
        if pooled is not None:
            return pooled
        # np.asarray: arithmetic on 0-d arrays returns NumPy scalars; a parameter stays an array.
        return np.asarray(p + u, dtype=p.dtype)
    if is_array(p):  # a torch tensor: the sum in the parameter's dtype, on its device
        return namespace(p).asarray(p + u, dtype=p.dtype)
    return p + u


def stateless(fn: Callable[[Tree, Tree | None], Tree]) -> GradientTransformation:
    """Build a transformation from ``fn(updates, params) -> updates``."""

    def init(params: Tree) -> EmptyState:
        return EmptyState()

    def update(updates: Tree, state: EmptyState, params: Tree | None = None):
        return fn(updates, params), state

    return GradientTransformation(init, update)
