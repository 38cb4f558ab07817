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

import weakref
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


# ------------------------------------------------------------------ trees that tile one buffer


def _address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


# span() of the same leaves (a model's views, an in-place optimizer state) is looked up, not recomputed. The key
# is the leaves' ids; each entry holds weak references to its leaves whose callbacks drop the entry the moment one
# of them is deallocated, so an entry present means its leaves are alive and the ids still name them, and the
# flat view it keeps (and through it the buffer) is released with the leaves (a pool buffer is then reused).
_SPANS: dict[tuple[int, ...], tuple[tuple[Any, ...], np.ndarray | None]] = {}
_SPANS_MAX = 64


def _remember(arrays: list[Any], flat: np.ndarray | None) -> None:
    if len(_SPANS) >= _SPANS_MAX:
        _SPANS.clear()
    key = tuple(map(id, arrays))

    def forget(_: Any, key: tuple[int, ...] = key) -> None:
        _SPANS.pop(key, None)

    _SPANS[key] = (tuple(weakref.ref(a, forget) for a in arrays), flat)


def span(arrays: list[Any]) -> np.ndarray | None:
    """The flat 1-D view that ``arrays`` tile, in order, or None.

    ``arrays`` tile a run of one buffer when every one is a C-contiguous ndarray
    view of the same base array, of one dtype, each starting where the one
    before it ends (a model's ``named_parameters()`` over its flat buffer; the
    optimizer state :func:`pack` lays out). Empty arrays are skipped. The view
    is read-only unless every array is writeable, so a write through it can
    never reach memory one of the arrays forbids.
    """
    if not arrays:
        return None
    hit = _SPANS.get(tuple(map(id, arrays)))
    if hit is not None:
        flat = hit[1]
    else:
        found = _find_span(arrays)
        flat = None if found is None else arrays[0].base.reshape(-1)[found[0] : found[0] + found[1]]
        if all(type(a) is np.ndarray for a in arrays):  # only ndarrays take weak references; the answer is kept
            _remember(arrays, flat)
    if flat is None:
        return None
    for a in arrays:
        if not a.flags.writeable:
            flat = flat[:]
            flat.flags.writeable = False
            break
    return flat


def _find_span(arrays: list[Any]) -> tuple[int, int] | None:
    """``(offset, length)`` in elements of the run of ``arrays[0].base`` that ``arrays`` tile, or None."""
    first = arrays[0]
    if type(first) is not np.ndarray:
        return None
    base, dt = first.base, first.dtype
    if type(base) is not np.ndarray or not base.flags.c_contiguous or base.dtype != dt:
        return None
    start = end = None
    for a in arrays:
        if type(a) is not np.ndarray or a.base is not base or a.dtype != dt or not a.flags.c_contiguous:
            return None
        if a.size == 0:
            continue
        at = _address(a)
        if start is None:
            start = end = at
        if at != end:
            return None
        end = at + a.nbytes
    if start is None:
        return None
    return (start - _address(base)) // dt.itemsize, (end - start) // dt.itemsize


def remember_span(arrays: list[np.ndarray], flat: np.ndarray) -> None:
    """Record that ``arrays`` (:func:`split` of the 1-D ``flat``) tile ``flat``: :func:`span` then finds it at once."""
    if arrays and type(arrays[0].base) is np.ndarray and (flat is arrays[0].base or flat.base is arrays[0].base):
        _remember(arrays, flat)


def split(flat: np.ndarray, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Views of consecutive runs of the 1-D ``flat``, shaped ``shapes`` (the inverse of :func:`span`)."""
    out, offset = [], 0
    for shape in shapes:
        n = 1
        for d in shape:
            n *= int(d)
        out.append(flat[offset : offset + n].reshape(shape))
        offset += n
    return out


def pack(arrays: list[Any]) -> list[np.ndarray] | None:
    """Copies of ``arrays`` (ndarrays of one dtype) laid out as views that tile one new flat buffer, or None.

    An optimizer state made this way (one buffer per moment, views shaped like
    the parameters) lets a fused kernel run one pass over the whole buffer.
    """
    if not arrays or any(type(a) is not np.ndarray for a in arrays):
        return None
    dt = arrays[0].dtype
    if any(a.dtype != dt for a in arrays):
        return None
    flat = np.empty(sum(a.size for a in arrays), dt)
    views = split(flat, [a.shape for a in arrays])
    for view, a in zip(views, arrays, strict=True):
        view[...] = a
    return views
