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
    """Apply ``fn`` leaf-wise over trees of identical structure."""
    if is_container(tree):
        if isinstance(tree, dict):
            return {k: tree_map(fn, v, *(r[k] for r in rest)) for k, v in tree.items()}
        out = [tree_map(fn, v, *(r[i] for r in rest)) for i, v in enumerate(tree)]
        return type(tree)(out) if isinstance(tree, tuple) else out
    return fn(tree, *rest)


def tree_zeros_like(tree: Tree) -> Tree:
    return tree_map(np.zeros_like, tree)


def tree_full_like(tree: Tree, value: float) -> Tree:
    return tree_map(lambda x: np.full_like(x, value), tree)
