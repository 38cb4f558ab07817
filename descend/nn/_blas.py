"""Batch-parallel layer passes: run a layer's work as one slice of the batch per thread, OpenBLAS on one thread.

With OpenBLAS on several threads only the GEMMs run in parallel; the memory-bound passes around them (im2col,
col2im, the bias / transpose passes) stay on the calling thread. :func:`run` instead splits the work by batch
slices over a pool of Python threads (NumPy and the GEMMs release the GIL), after switching numpy's OpenBLAS to
one thread (its workers would otherwise compete with the pool for the cores) and back afterwards. It is used only
when numpy's bundled OpenBLAS is found and set to more than one thread (:func:`parts`), and only one such section
runs at a time (a second caller, e.g. another user thread, runs its slices serially). OpenBLAS's thread count is
process-wide: GEMMs that other threads start while a section runs get one thread.

Why not numba ``prange``: with numba's default OpenMP layer its spinning workers and OpenBLAS's fight for the cores
(measured on 2 cores: the GEMM 4.9 → 9.1 ms, a parallel ReLU backward 1.1 → 6.7 ms). Likewise a section that runs
while OpenBLAS's workers still spin after a multi-threaded GEMM is slow, so it pays off only when all the big GEMMs
of a step run inside sections (Conv, Linear), which is what the layers do.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from descend import config

# ``ENABLED`` (read and written through ``descend.config.batch_parallel``, env ``DESCEND_BATCH_PARALLEL``): ``False``
# turns batch-parallel passes off (the serial code computes the same values up to summation order).
config.module_switches(__name__, {"ENABLED": "batch_parallel"})

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_api: tuple[Any, Any] | bool | None = False  # False: not looked up yet; None: not available


def _openblas() -> tuple[Any, Any] | None:
    global _api
    if _api is False:
        _api = None
        libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs", "libscipy_openblas*")
        for path in sorted(glob.glob(libs)):
            try:
                lib = ctypes.CDLL(path)
                for suffix in ("64_", ""):
                    get = getattr(lib, f"scipy_openblas_get_num_threads{suffix}", None)
                    put = getattr(lib, f"scipy_openblas_set_num_threads{suffix}", None)
                    if get is not None and put is not None:
                        get.restype = ctypes.c_int
                        put.argtypes = [ctypes.c_int]
                        _api = (get, put)
                        break
            except OSError:
                continue
            if _api:
                break
    return _api or None


def get_threads() -> int | None:
    """numpy's OpenBLAS thread count (None: its bundled OpenBLAS was not found)."""
    api = _openblas()
    return None if api is None else int(api[0]())


def set_threads(n: int) -> None:
    """Set numpy's OpenBLAS thread count (``descend.config.blas_threads`` calls this; nothing if not found)."""
    api = _openblas()
    if api is not None:
        api[1](int(n))


def parts() -> int:
    """How many threads a batch-parallel section would use now (1: run serially)."""
    if not config.state.batch_parallel:
        return 1
    api = _openblas()
    if api is None:
        return 1
    return max(1, min(int(api[0]()), os.cpu_count() or 1))


def slices(n: int, k: int) -> list[tuple[int, int]]:
    """``k`` contiguous ``[lo, hi)`` ranges covering ``range(n)``, as equal as possible."""
    k = max(1, min(k, n))
    return [(n * i // k, n * (i + 1) // k) for i in range(k)]


def run(fn: Callable[[int, int], Any], ranges: Sequence[tuple[int, int]]) -> list[Any]:
    """``[fn(lo, hi) for lo, hi in ranges]``, one range per thread with OpenBLAS on one thread; serial (OpenBLAS
    untouched) when there is one range or another section is running."""
    global _pool
    api = _openblas()
    if len(ranges) < 2 or api is None or not _lock.acquire(blocking=False):
        return [fn(lo, hi) for lo, hi in ranges]
    try:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1), thread_name_prefix="descend")
        before = int(api[0]())
        api[1](1)
        try:
            futures = [_pool.submit(fn, lo, hi) for lo, hi in ranges[1:]]
            first = fn(*ranges[0])
            return [first, *(f.result() for f in futures)]
        finally:
            api[1](before)
    finally:
        _lock.release()


#: Bytes an array pass must touch before a layer splits it over threads (smaller passes are not worth a handoff).
MIN_BYTES = 1 << 20


def ranges(n: int, nbytes: int) -> list[tuple[int, int]] | None:
    """Batch slices for :func:`run` if a pass over ``nbytes`` bytes is worth splitting ``n`` rows now, else None."""
    if nbytes < MIN_BYTES or not config.state.batch_parallel:
        return None
    k = parts()
    return slices(n, k) if 1 < k <= n else None
