"""numba kernels that step a whole parameter group of small CPU tensors in one call (imported on first use).

``descend.optim._kernels`` steps one contiguous buffer per call; called once per tensor from
Python, a group of 100 small tensors pays about 5 µs of dispatch and NumPy views per tensor,
more than torch's own per-tensor loop. These kernels take the group as a table of addresses
(one row per tensor: θ, g and the state, from ``tensor.data_ptr()``) and sizes, view each row
with ``numba.carray`` and run the same loop, so a step is one call.

The arithmetic is ``descend.optim._kernels``' in-place kernels (``adam_kernel``, ``sgd_kernel``,
``sgd_momentum_kernel``) line for line, which is the reference chains' (``scale_by_adam``,
``trace``, ``scale_by_learning_rate``) operation for operation and in the same order: every
scalar is passed already rounded to the tensors' dtype, no ``fastmath``, no FMA contraction,
a correctly rounded ``sqrt``. The loop is written out here rather than calling those kernels:
numba's on-disk cache does not notice a change in a callee, and a stale copy of another
module's arithmetic is the one thing these kernels must never run. ``tests/torch/
test_fast_path.py`` checks them bit for bit against the chains on NumPy arrays.

Serial (one thread): ``descend.torch._fast`` uses them for groups whose tensors are all below
``descend.optim._kernels.PARALLEL_MIN`` elements, which those kernels run on one thread too;
a larger tensor goes through them, on numba's threads. The caller checks every pointer: CPU,
contiguous, one dtype (``like``'s), each row's tensors ``sizes[j]`` elements long.
"""

from __future__ import annotations

import math

import numba
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_JIT = {"cache": True, "error_model": "numpy", "fastmath": False, "nogil": True}


@intrinsic
def _pointer(typingctx, address):  # pragma: no cover - compiled
    """An int64 address as a ``void*`` for ``numba.carray``."""

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


@njit(**_JIT)
def adam_group(
    ptrs, sizes, like, maximize, wd_on, decoupled, wd_s, one_m_b1, b2, one_m_b2, step, bc2, eps, factor
):  # pragma: no cover - compiled
    """Adam / AdamW in place; row j of ``ptrs``: θ, g, m, v. As ``adam_kernel`` with a scalar weight decay."""
    for j in range(sizes.size):
        n = sizes[j]
        p = numba.carray(_pointer(ptrs[j, 0]), n, like.dtype)
        g = numba.carray(_pointer(ptrs[j, 1]), n, like.dtype)
        m = numba.carray(_pointer(ptrs[j, 2]), n, like.dtype)
        v = numba.carray(_pointer(ptrs[j, 3]), n, like.dtype)
        for i in range(n):
            gi = g[i]
            pi = p[i]
            if maximize:
                gi = -gi
            if wd_on and not decoupled:
                gi = gi + wd_s * pi
            mi = m[i]
            mi = mi + one_m_b1 * (gi - mi)
            vi = b2 * v[i] + one_m_b2 * (gi * gi)
            d = step * mi / (math.sqrt(vi) / bc2 + eps)
            if wd_on and decoupled:
                d = d + wd_s * pi
            m[i] = mi
            v[i] = vi
            p[i] = pi + factor * d


@njit(**_JIT)
def sgd_group(ptrs, sizes, like, maximize, wd_on, wd_s, factor):  # pragma: no cover - compiled
    """Plain SGD in place; row j of ``ptrs``: θ, g. As ``sgd_kernel`` with a scalar weight decay."""
    for j in range(sizes.size):
        n = sizes[j]
        p = numba.carray(_pointer(ptrs[j, 0]), n, like.dtype)
        g = numba.carray(_pointer(ptrs[j, 1]), n, like.dtype)
        for i in range(n):
            gi = g[i]
            pi = p[i]
            if maximize:
                gi = -gi
            if wd_on:
                gi = gi + wd_s * pi
            p[i] = pi + factor * gi


@njit(**_JIT)
def sgd_momentum_group(
    ptrs, sizes, like, maximize, wd_on, wd_s, first, mu, one_m_damp, nesterov, factor
):  # pragma: no cover - compiled
    """SGD with momentum in place; row j of ``ptrs``: θ, g, b. As ``sgd_momentum_kernel`` (scalar decay)."""
    for j in range(sizes.size):
        n = sizes[j]
        p = numba.carray(_pointer(ptrs[j, 0]), n, like.dtype)
        g = numba.carray(_pointer(ptrs[j, 1]), n, like.dtype)
        buf = numba.carray(_pointer(ptrs[j, 2]), n, like.dtype)
        for i in range(n):
            gi = g[i]
            pi = p[i]
            if maximize:
                gi = -gi
            if wd_on:
                gi = gi + wd_s * pi
            bi = buf[i]
            b = gi if first else mu * bi + one_m_damp * gi
            buf[i] = b
            d = gi + mu * b if nesterov else b
            p[i] = pi + factor * d


__all__ = ["adam_group", "sgd_group", "sgd_momentum_group"]
