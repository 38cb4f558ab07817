"""Apply transformations to some leaves only: ``masked`` and ``partition``.

The typical use is weight decay on weights but not on biases (torch does this
with two parameter groups)::

    decay_mask = lambda p: {k: v.ndim > 1 for k, v in p.items()}
    tx = chain(scale_by_adam(), masked(add_decayed_weights(1e-2), decay_mask), scale_by_learning_rate(1e-3))

and different optimizers for different parts of a model (torch: two optimizers)::

    tx = partition({"adam": adam(lr=1e-3), "sgd": sgd(lr=0.1)}, {"W": "adam", "b": "sgd"})

**Selected sub-trees.** The inner transformation sees a *pruned* copy of the
updates and params that holds only the selected leaves: a dict keeps its
selected keys (in order), a list or tuple becomes a dict ``{index: leaf}`` of
its selected items (so paths keep their original indices), a container with no
selected leaf disappears, and nothing selected at all is the empty dict ``{}``.
The inner state is therefore built on the selected leaves only (no moments are
kept for leaves it never touches) and is an ordinary tree of dicts, so it
round-trips through :func:`descend.optim.state_to_dict` /
:func:`~descend.optim.state_from_dict`.

**Masks and labels** are a tree with the structure of the params, or a *prefix*
of it (a ``bool`` or label at an inner node applies to every leaf below it, as
in optax: ``{"encoder": False, "head": True}``), or a callable ``params ->
such a tree``. A callable is evaluated on the params (on the updates when
``update`` is called without params); it must select the same leaves at every
step. Masks select whole leaves, never single entries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from descend._validation import Constraint, check
from descend.errors import ParameterError, StructureError
from descend.optim._backend import describe, is_array
from descend.optim.base import GradientTransformation
from descend.optim.tree import Tree, _describe, is_container

State = Any


class _IsTransformation(Constraint):
    description = "a GradientTransformation"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, GradientTransformation)


IS_TRANSFORMATION = _IsTransformation()

_ABSENT = object()  # a pruned sub-tree with no selected leaf


def _is_bool(x: Any) -> bool:
    return isinstance(x, (bool, np.bool_))


def _children(x: Any) -> list[tuple[Any, Any]]:
    return list(x.items()) if isinstance(x, dict) else list(enumerate(x))


def _key_path(key: Any) -> str:
    return f"[{key!r}]"


def _broadcast(
    spec: Any, tree: Tree, owner: str, name: str, is_leaf: Callable[[Any], bool], kind: str, path: str = ""
) -> Tree:
    """Expand ``spec`` (a tree or prefix tree of ``kind`` values) to the full structure of ``tree``."""
    if is_leaf(spec):
        if is_container(tree):
            return _rebuild_like(tree, [_broadcast(spec, c, owner, name, is_leaf, kind) for _, c in _children(tree)])
        return spec
    if not is_container(spec):
        raise ParameterError(f"{owner}: {name}{path} must be {kind}, got {_describe_value(spec)}")
    where = path or "the top level"
    if not is_container(tree):
        raise StructureError(
            f"{owner}: {name} and params differ at {where}: {name} is {_describe(spec)}, params is {_describe(tree)}"
        )
    same_kind = isinstance(spec, dict) == isinstance(tree, dict)
    if not same_kind or (isinstance(spec, dict) and spec.keys() != tree.keys()) or len(spec) != len(tree):
        raise StructureError(
            f"{owner}: {name} and params differ at {where}: {name} is {_describe(spec)}, params is {_describe(tree)}"
        )
    children = [
        _broadcast(spec[k], child, owner, name, is_leaf, kind, path + _key_path(k)) for k, child in _children(tree)
    ]
    return _rebuild_like(tree, children)


def _describe_value(x: Any) -> str:
    if is_array(x):
        return f"{describe(x)} (masks and labels select whole leaves, not entries)"
    return repr(x)


def _rebuild_like(tree: Tree, children: list[Any]) -> Tree:
    if isinstance(tree, dict):
        return dict(zip(tree.keys(), children, strict=True))
    return type(tree)(children) if isinstance(tree, tuple) else children


def _check_spec_leaves(
    spec: Any, owner: str, name: str, is_leaf: Callable[[Any], bool], leaf_kind: str, top_kind: str, path: str = ""
) -> None:
    """Construction-time check of a mask / label tree's leaves (its structure is checked against params later)."""
    if is_leaf(spec):
        return
    if not is_container(spec):
        kind = leaf_kind if path else top_kind
        raise ParameterError(f"{owner}: {name}{path} must be {kind}, got {_describe_value(spec)}")
    for k, child in _children(spec):
        _check_spec_leaves(child, owner, name, is_leaf, leaf_kind, top_kind, path + _key_path(k))


def select(tree: Tree, mask: Tree) -> Tree:
    """The pruned sub-tree of ``tree`` where the full bool tree ``mask`` is True (see the module docstring)."""
    out = _select(tree, mask)
    return {} if out is _ABSENT else out


def _select(tree: Tree, mask: Tree) -> Any:
    if is_container(tree):
        out = {}
        for k, child in _children(tree):
            sub = _select(child, mask[k])
            if sub is not _ABSENT:
                out[k] = sub
        return out if out else _ABSENT
    return tree if mask else _ABSENT


def merge(tree: Tree, selected: Tree, mask: Tree) -> Tree:
    """``tree`` with the leaves where ``mask`` is True taken from the pruned ``selected`` instead."""
    if is_container(tree):
        children = [merge(child, selected[k], mask[k]) if k in selected else child for k, child in _children(tree)]
        return _rebuild_like(tree, children)
    return selected if mask else tree


def _resolve(spec: Any, updates: Tree, params: Tree | None) -> Any:
    if callable(spec):
        return spec(params if params is not None else updates)
    return spec


class MaskedState(NamedTuple):
    inner_state: State  # the inner transformation's state, built on the selected leaves only


def masked(inner: GradientTransformation, mask: Tree | Callable[[Tree], Tree]) -> GradientTransformation:
    """Apply ``inner`` to the leaves where ``mask`` is True; pass the others through unchanged.

    ``mask`` is a tree of bools with the structure of the params (or a prefix
    of it), or a callable ``params -> tree of bools``. The inner transformation
    sees, and keeps state for, only the selected leaves (see the module
    docstring for the pruned structure it receives). Same as optax's
    ``masked``; in torch it corresponds to a parameter group with its own
    setting, e.g. ``weight_decay=0`` for biases.
    """
    owner = "masked"
    check(owner, "inner", inner, IS_TRANSFORMATION)
    if not callable(mask):
        top = "a tree of bools (True where inner applies) or a callable params -> tree of bools"
        _check_spec_leaves(mask, owner, "mask", _is_bool, "a bool", top)

    def full_mask(updates: Tree, params: Tree | None) -> Tree:
        reference = params if params is not None else updates
        return _broadcast(_resolve(mask, updates, params), reference, owner, "mask", _is_bool, "a bool")

    def init(params: Tree) -> MaskedState:
        m = full_mask(params, params)
        return MaskedState(inner.init(select(params, m)))

    def update(updates: Tree, state: MaskedState, params: Tree | None = None):
        m = full_mask(updates, params)
        sel_params = select(params, m) if params is not None else None
        sel_updates, inner_state = inner.update(select(updates, m), state.inner_state, sel_params)
        return merge(updates, sel_updates, m), MaskedState(inner_state)

    return GradientTransformation(init, update)


class PartitionState(NamedTuple):
    inner_states: dict[str, State]  # label -> that transformation's state on its leaves


def partition(
    transforms: Mapping[str, GradientTransformation], labels: Tree | Callable[[Tree], Tree]
) -> GradientTransformation:
    """Apply ``transforms[label]`` to the leaves labelled ``label``; every leaf has exactly one label.

    ``labels`` is a tree of label strings with the structure of the params (or
    a prefix of it), or a callable ``params -> tree of labels``; every label
    must be a key of ``transforms``. Each transformation sees, and keeps state
    for, only its own leaves (see the module docstring); a transformation whose
    label no leaf carries gets an empty tree. Same as optax's
    ``multi_transform`` (``partition`` in newer optax); in torch, one optimizer
    per group of parameters stepped together.
    """
    owner = "partition"
    if not isinstance(transforms, Mapping) or not transforms:
        raise ParameterError(
            f"{owner}: transforms must be a non-empty dict {{label: GradientTransformation}}, got {transforms!r}"
        )
    transforms = dict(transforms)
    for label, tx in transforms.items():
        if not isinstance(label, str):
            raise ParameterError(f"{owner}: transforms keys must be labels (str), got {label!r}")
        check(owner, f"transforms[{label!r}]", tx, IS_TRANSFORMATION)
    kind = f"a label (one of {sorted(transforms)})"
    known = lambda x: isinstance(x, str) and x in transforms  # noqa: E731
    if not callable(labels):
        top = f"a tree of labels (each one of {sorted(transforms)}) or a callable params -> tree of labels"
        _check_spec_leaves(labels, owner, "labels", known, kind, top)

    def masks(updates: Tree, params: Tree | None) -> dict[str, Tree]:
        reference = params if params is not None else updates
        full = _broadcast(_resolve(labels, updates, params), reference, owner, "labels", known, kind)
        return {label: _map_labels(full, label) for label in transforms}

    def init(params: Tree) -> PartitionState:
        ms = masks(params, params)
        return PartitionState({label: tx.init(select(params, ms[label])) for label, tx in transforms.items()})

    def update(updates: Tree, state: PartitionState, params: Tree | None = None):
        ms = masks(updates, params)
        out = updates
        new_states = {}
        for label, tx in transforms.items():
            m = ms[label]
            sel_params = select(params, m) if params is not None else None
            sel_updates, new_states[label] = tx.update(select(updates, m), state.inner_states[label], sel_params)
            out = merge(out, sel_updates, m)
        return out, PartitionState(new_states)

    return GradientTransformation(init, update)


def _map_labels(full: Tree, label: str) -> Tree:
    if is_container(full):
        return _rebuild_like(full, [_map_labels(c, label) for _, c in _children(full)])
    return full == label


__all__ = ["MaskedState", "PartitionState", "masked", "partition"]
