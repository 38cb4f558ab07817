"""Reusable output buffers that can never alias an array the caller still holds.

The pure optimizer path (``tx.update`` of a fused optimizer, ``apply_updates``)
returns new large arrays every step. Fresh 40 MB arrays cost more in page faults
than the step itself, so their memory is recycled, under one ownership rule:

    A buffer is handed out again only after the array that was handed out, and
    every view, memoryview or other array made from it, has been deallocated.

That is the moment NumPy itself would free the memory, so recycling it is as
safe as ``free()``. How: :meth:`BufferPool.empty` wraps the pool's buffer in a
:class:`_Lease` and returns ``np.asarray(lease)``, an array whose ``base`` is the
lease. NumPy collapses chains of views only through arrays, never through
another kind of base object, so every array derived from the returned one keeps
the returned one, and through it the lease, alive; the lease's finalizer puts
the buffer back on the free list. Nothing is decided from reference counts
(``sys.getrefcount``), whose meaning changes with free-threaded CPython and
which cannot see references held elsewhere: an array anyone can reach keeps its
lease, and so its buffer, out of the pool.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_ELEMENTS = 1 << 16  # smaller arrays come from malloc's free lists without page faults: not pooled


class _Lease:
    """Owner of one pool buffer while an array made from it may be alive."""

    __slots__ = ("__array_interface__", "_buffer", "_free", "_keep")

    def __init__(self, buffer: np.ndarray, shape: tuple[int, ...], free: list[np.ndarray], keep: int):
        self._buffer = buffer
        self._free = free
        self._keep = keep
        self.__array_interface__ = {
            "shape": shape,
            "typestr": buffer.dtype.str,
            "data": (buffer.ctypes.data, False),
            "strides": None,
            "version": 3,
        }

    def __del__(self) -> None:
        free = self._free
        if len(free) < self._keep:
            free.append(self._buffer)


class BufferPool:
    """Free buffers by (size, dtype): at most ``keep`` free per key, ``keys`` keys (the oldest is forgotten)."""

    def __init__(self, keep: int = 8, keys: int = 4):
        self.keep = keep
        self.keys = keys
        self._free: dict[tuple[int, str], list[np.ndarray]] = {}

    def empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An uninitialized C-contiguous array, from a recycled buffer when one is free."""
        dtype = np.dtype(dtype)
        n = 1
        for d in shape:
            n *= int(d)
        if n < MIN_ELEMENTS or dtype.kind not in "fciub":
            return np.empty(shape, dtype)
        key = (n, dtype.str)
        free = self._free.get(key)
        if free is None:
            if len(self._free) >= self.keys:
                del self._free[next(iter(self._free))]
            free = self._free[key] = []
        try:
            buffer = free.pop()
        except IndexError:
            buffer = np.empty(n, dtype)
        return np.asarray(_Lease(buffer, tuple(int(d) for d in shape), free, self.keep))

    def free_count(self) -> int:
        """Buffers waiting to be reused (for tests)."""
        return sum(len(v) for v in self._free.values())


# apply_updates' new parameters: one free buffer per shape is what a training loop needs.
APPLY_POOL = BufferPool(keep=2, keys=4)


def add(p: np.ndarray, u: np.ndarray) -> np.ndarray | None:
    """``p + u`` as a new array of ``p``'s dtype from :data:`APPLY_POOL`, or None when not pooled.

    Only for two C-contiguous arrays of one shape and dtype (then ``np.add(p, u,
    out=...)`` is bit for bit ``np.asarray(p + u, dtype=p.dtype)``) that are
    large enough to be worth it.
    """
    if (
        type(p) is not np.ndarray
        or type(u) is not np.ndarray
        or p.dtype != u.dtype
        or p.shape != u.shape
        or p.size < MIN_ELEMENTS
        or not p.flags.c_contiguous
    ):
        return None
    out = APPLY_POOL.empty(p.shape, p.dtype)
    np.add(p, u, out=out)
    return out
