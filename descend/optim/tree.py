"""Parameter trees: an ndarray, or a (nested) list / tuple / dict of ndarrays.

Every transformation maps over the leaves of such a tree. Structures must match
exactly between grads, params and state; a mismatch raises one
:class:`~descend.errors.StructureError` that names the first differing path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from descend.errors import StructureError
from descend.optim._backend import is_array, namespace

Tree = Any  # np.ndarray | list[Tree] | tuple[Tree, ...] | dict[str, Tree]


def is_container(x: Any) -> bool:
    # NamedTuples are optimizer states, never parameter containers.
    return isinstance(x, (list, dict)) or (isinstance(x, tuple) and not hasattr(x, "_fields"))


def _children(x: Any) -> list[tuple[str, Any]]:
    if isinstance(x, dict):
        return [(f"[{k!r}]", v) for k, v in x.items()]
    return [(f"[{i}]", v) for i, v in enumerate(x)]


def leaves_with_paths(tree: Tree, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(path, leaf)`` in a deterministic order (dict insertion order)."""
    if is_container(tree):
        for key, child in _children(tree):
            yield from leaves_with_paths(child, prefix + key)
    else:
        yield prefix, tree


def leaves(tree: Tree) -> list[Any]:
    return [leaf for _, leaf in leaves_with_paths(tree)]


def _describe(x: Any) -> str:
    if isinstance(x, dict):
        return f"a dict with keys {sorted(map(str, x))}"
    if isinstance(x, (list, tuple)):
        return f"a {type(x).__name__} of length {len(x)}"
    if isinstance(x, np.ndarray):
        return f"an array of shape {x.shape}"
    if is_array(x):  # a torch tensor
        return f"an array of shape {tuple(x.shape)}"
    return f"a {type(x).__name__}"


def check_same_structure(a: Tree, b: Tree, name_a: str, name_b: str, owner: str, path: str = "") -> None:
    """Raise if ``a`` and ``b`` differ in structure or leaf shape."""
    where = path or "the top level"
    if is_container(a) or is_container(b):
        same_kind = type(a) is type(b) or (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)))
        if not same_kind or (isinstance(a, dict) and a.keys() != b.keys()) or len(a) != len(b):
            raise StructureError(
                f"{owner}: {name_a} and {name_b} differ at {where}: "
                f"{name_a} is {_describe(a)}, {name_b} is {_describe(b)}"
            )
        if isinstance(a, dict):
            pairs = [(f"[{k!r}]", a[k], b[k]) for k in a]
        else:
            pairs = [(f"[{i}]", ca, cb) for i, (ca, cb) in enumerate(zip(a, b, strict=True))]
        for key, ca, cb in pairs:
            check_same_structure(ca, cb, name_a, name_b, owner, path + key)
        return
    shape_a, shape_b = np.shape(a), np.shape(b)
    if shape_a != shape_b:
        raise StructureError(f"{owner}: {name_a}{path} has shape {shape_a} but {name_b}{path} has shape {shape_b}")


def tree_map(fn: Callable[..., Any], tree: Tree, *rest: Tree) -> Tree:
    """Apply ``fn`` leaf-wise over ``tree`` and the trees ``rest`` of the same structure.

    ``tree`` (the first) defines the structure: every other tree must have the
    same containers (kind, keys, length) down to ``tree``'s leaves, where it may
    hold anything (a leaf, or a tuple a previous ``tree_map`` made). A tree that
    differs raises one :class:`~descend.errors.StructureError` naming the path,
    what the first tree has there and what the other has; so does a leaf whose
    shape does not fit (NumPy's broadcasting error), instead of a bare
    ``KeyError`` or ``ValueError``. The error's ``keys`` attribute is the path as
    a list of keys. The checks cost nothing for single arrays and a length
    comparison per container; paths are worked out only on error.
    """
    if not rest:
        return _map1(fn, tree)
    if not is_container(tree):  # one array (the hot path): only a failing leaf costs anything
        try:
            return fn(tree, *rest)
        except ValueError as error:
            _raise_mismatch(tree, rest, [], error)
            raise
    try:
        return _map(fn, tree, rest)
    except _Failed as failed:
        keys, error = failed.keys[::-1], failed.error
        if isinstance(error, (_Mismatch, KeyError, IndexError, TypeError, ValueError)):
            _raise_mismatch(tree, rest, keys, error)
        raise error from None


class _Mismatch(Exception):
    """Raised inside :func:`_map` where the trees differ; :func:`_raise_mismatch` turns it into a StructureError."""


class _Failed(Exception):
    """Carries an error out of :func:`_map` with the keys of the node it happened at (innermost first)."""

    def __init__(self, error: BaseException, key: Any = None):
        super().__init__()
        self.error = error
        self.keys: list[Any] = [] if key is None else [key]


def _map1(fn: Callable[..., Any], tree: Tree) -> Tree:
    if is_container(tree):
        if isinstance(tree, dict):
            return {k: _map1(fn, v) for k, v in tree.items()}
        out = [_map1(fn, v) for v in tree]
        return type(tree)(out) if isinstance(tree, tuple) else out
    return fn(tree)


def _map(fn: Callable[..., Any], tree: Tree, rest: tuple[Tree, ...] | list[Tree]) -> Tree:
    if not is_container(tree):
        try:
            return fn(tree, *rest)
        except Exception as error:
            raise _Failed(error) from None
    n = len(tree)
    for r in rest:
        if not is_container(r) or len(r) != n:
            raise _Failed(_Mismatch())
    # Explicit loops: a try costs nothing until something raises, and the failing key goes on the error.
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            try:
                out[k] = _map(fn, v, [r[k] for r in rest])
            except _Failed as failed:
                failed.keys.append(k)
                raise
            except (KeyError, IndexError, TypeError) as error:  # r[k]: another tree lacks the key here
                raise _Failed(error) from None
        return out
    items = []
    for i, v in enumerate(tree):
        try:
            items.append(_map(fn, v, [r[i] for r in rest]))
        except _Failed as failed:
            failed.keys.append(i)
            raise
        except (KeyError, IndexError, TypeError) as error:
            raise _Failed(error) from None
    return type(tree)(items) if isinstance(tree, tuple) else items


def _shape(x: Any) -> tuple[int, ...] | None:
    shape = getattr(x, "shape", None)
    return None if shape is None else tuple(shape)


def _path(keys: list[Any]) -> str:
    return "".join(f"[{k!r}]" for k in keys)


def _at(tree: Tree, keys: list[Any]) -> tuple[bool, Any]:
    """``(True, node)`` at ``keys`` in ``tree``, or ``(False, None)`` if the path does not exist there."""
    node = tree
    for k in keys:
        if not is_container(node):
            return False, None
        try:
            node = node[k]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, node


def _raise_mismatch(tree: Tree, rest: tuple[Tree, ...], keys: list[Any], error: BaseException) -> None:
    """Raise the StructureError that explains ``error`` (which happened at ``keys``) if the trees differ there."""
    found_first, first = _at(tree, keys)
    for i, other in enumerate(rest, start=1):
        found = None
        found_other, node = _at(other, keys)
        if found_first and found_other:
            found = _first_difference(first, node, _path(keys))
        if found is None:
            found = _first_difference(tree, other, "")
        if found is not None:
            path, expected, given = found
            which = "the second tree" if i == 1 else f"tree {i + 1}"
            structure_error = StructureError(
                f"tree_map: the trees differ at {path or 'the top level'}: "
                f"expected {expected} (as in the first tree), {which} has {given}"
            )
            structure_error.keys = list(keys)  # type: ignore[attr-defined]
            raise structure_error from (None if isinstance(error, _Mismatch) else error)


def _first_difference(a: Tree, b: Tree, path: str) -> tuple[str, str, str] | None:
    """``(path, what a has, what b has)`` where ``b`` first stops matching ``a``'s structure or leaf shapes."""
    if is_container(a):
        same_kind = type(a) is type(b) or (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)))
        if not is_container(b) or not same_kind or len(a) != len(b) or (isinstance(a, dict) and a.keys() != b.keys()):
            return path, _describe(a), _describe(b)
        pairs = (
            [(f"[{k!r}]", a[k], b[k]) for k in a]
            if isinstance(a, dict)
            else [(f"[{i}]", ca, cb) for i, (ca, cb) in enumerate(zip(a, b, strict=True))]
        )
        for key, ca, cb in pairs:
            found = _first_difference(ca, cb, path + key)
            if found is not None:
                return found
        return None
    shape_a, shape_b = _shape(a), _shape(b)
    if shape_a is not None and shape_b is not None and shape_a != shape_b:
        return path, f"shape {shape_a}", f"shape {shape_b}"
    return None


def state_mismatch(grads: Tree, link_state: Any, keys: list[Any] | None = None) -> str | None:
    """Where ``grads`` first differ from a per-parameter field of an optimizer state (a NamedTuple), or None.

    ``keys`` is the path where an update failed (a StructureError's ``keys``):
    the fields are compared there first, so that a state field shaped unlike
    the parameters by design (Adafactor's factored rows) is not blamed for
    another leaf. Only called once an update has failed (a cold path), to name
    grads, the state field and the path in one message.
    """
    keys = keys or []
    fields = [
        (field, getattr(link_state, field))
        for field in getattr(link_state, "_fields", ())
        if _shape(getattr(link_state, field)) is not None or is_container(getattr(link_state, field))
    ]  # skip counts, learning rates and None
    found_grads, g_node = _at(grads, keys)
    candidates = []
    for field, value in fields:
        found_state, s_node = _at(value, keys)
        if found_grads and found_state:
            candidates.append((field, _first_difference(s_node, g_node, _path(keys))))
    candidates += [(field, _first_difference(value, grads, "")) for field, value in fields]
    for field, found in candidates:
        if found is not None:
            path, expected, given = found
            return (
                f"grads do not match the optimizer state at {path or 'the top level'} "
                f"({type(link_state).__name__}.{field}, made by tx.init from the parameters): "
                f"expected {expected}, got {given}"
            )
    return None


def state_links_mismatch(state: Any, links: int) -> str:
    """The message for a chain given a state that is not one of its own (wrong kind or number of links)."""
    if not isinstance(state, tuple):
        return f"update: the state must be the tuple of {links} link states from tx.init, got {_describe(state)}"
    return (
        f"update: the state has {len(state)} link states but this optimizer has {links} links "
        "(was the state made by another optimizer's init?)"
    )


def tree_zeros_like(tree: Tree) -> Tree:
    """Zeros shaped like each leaf, in its dtype and namespace (NumPy, or torch on the leaf's device)."""
    return tree_map(lambda x: namespace(x).zeros_like(x), tree)


def tree_full_like(tree: Tree, value: float) -> Tree:
    return tree_map(lambda x: namespace(x).full_like(x, value), tree)
