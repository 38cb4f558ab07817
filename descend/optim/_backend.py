"""One definition, two array backends: the namespace a transformation computes in.

Every transformation in :mod:`descend.optim` is written once, against the names
that NumPy's main namespace and the Array API standard share (``sqrt``,
``maximum``, ``where``, ``clip``, ``sum(axis=, keepdims=)``, ...), and takes the
module to call them on from its inputs:

* a NumPy array (or a Python / NumPy scalar) gets the ``numpy`` module itself,
  so the engine's path makes exactly the calls it made before the port (same
  results bit for bit, no wrapper in between);
* any other array, in practice a ``torch.Tensor`` on any device and dtype,
  gets its Array API namespace from ``array-api-compat``
  (``array_api_compat.torch``), imported on first use so that ``import
  descend`` imports neither it nor torch.

Scalars (learning rates, betas, bias corrections) stay Python floats in every
transformation, so a float32 array stays float32 on both backends and state
lives on the parameter's device and in its dtype.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_compat: Any = None


def _array_api_compat() -> Any:
    global _compat
    if _compat is None:
        import array_api_compat

        _compat = array_api_compat
    return _compat


def is_numpy(x: Any) -> bool:
    """An ndarray, a NumPy scalar or a Python number: computed with the ``numpy`` module."""
    return isinstance(x, (np.ndarray, np.generic, float, int, complex))


def namespace(x: Any) -> Any:
    """The module to compute on ``x`` with: ``numpy`` for NumPy data, the Array API namespace otherwise."""
    if isinstance(x, np.ndarray) or is_numpy(x) or x is None:
        return np
    compat = _array_api_compat()
    if compat.is_array_api_obj(x):
        return compat.array_namespace(x)
    return np


def first_leaf(tree: Any) -> Any:
    """The first leaf of a parameter tree (``None`` for an empty one), without walking the rest."""
    while True:
        if isinstance(tree, dict):
            if not tree:
                return None
            tree = next(iter(tree.values()))
        elif isinstance(tree, list) or (isinstance(tree, tuple) and not hasattr(tree, "_fields")):
            if not tree:
                return None
            tree = tree[0]
        else:
            return tree


def tree_namespace(tree: Any) -> Any:
    """The namespace of a tree's leaves, read from its first leaf (a tree holds one kind of array)."""
    return namespace(first_leaf(tree))


def is_array(x: Any) -> bool:
    """An ndarray or another Array API array (a torch tensor), as opposed to a scalar or a container."""
    if isinstance(x, np.ndarray):
        return True
    if is_numpy(x) or x is None:
        return False
    return bool(_array_api_compat().is_array_api_obj(x))


def copy(x: Any) -> Any:
    """A copy of the array ``x`` in its own namespace, dtype and device."""
    if isinstance(x, np.ndarray):
        return x.copy()
    return namespace(x).asarray(x, copy=True)


def zeros(shape: tuple[int, ...], like: Any) -> Any:
    """Zeros of ``shape`` with the dtype and on the device of the array ``like``."""
    if isinstance(like, np.ndarray):
        return np.zeros(shape, dtype=like.dtype)
    compat = _array_api_compat()
    return compat.array_namespace(like).zeros(tuple(shape), dtype=like.dtype, device=compat.device(like))


def size(x: Any) -> int:
    """The number of elements of an array (NumPy's ``x.size``; a torch tensor's ``size`` is a method)."""
    return math.prod(x.shape)


def ndim(x: Any) -> int:
    """The number of axes of an array or scalar."""
    return len(x.shape) if hasattr(x, "shape") else int(np.ndim(x))


def describe(x: Any) -> str:
    """``"an array of shape (3, 2)"`` for an ndarray or tensor (used in error messages)."""
    return f"an array of shape {tuple(x.shape)}"


__all__ = [
    "copy",
    "describe",
    "first_leaf",
    "is_array",
    "is_numpy",
    "namespace",
    "ndim",
    "size",
    "tree_namespace",
    "zeros",
]
