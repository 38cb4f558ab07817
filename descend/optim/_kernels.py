"""Fused numba kernels for the named optimizers (imported only when numba is installed).

Each kernel does one whole optimizer step for one contiguous 1-D buffer in a
single pass over memory: it reads θ, g and the state, and writes the new state
and either θ + u into θ itself (the in-place :func:`descend.optim.step` path:
``sgd_kernel``, ``adam_kernel``, ...) or the update u into separate outputs (the
pure ``tx.update`` path: ``*_update_kernel``).

The arithmetic is the reference chain's, operation for operation and in the same
order (see ``scale_by_adam``, ``trace``, ``scale_by_adagrad``, ``scale_by_rms``,
``scale_by_learning_rate``): every scalar is passed already rounded to the
array's dtype, as NumPy does with a Python float times a float32 array, and
neither ``fastmath`` nor FMA contraction is enabled, so a kernel reproduces the
reference to the last bit (the tests check within float32 rounding).

Why these options:

* ``parallel=True`` with ``prange`` over the elements: numba splits the range
  into one contiguous block per thread and the loop body, free of
  negative-index checks inside a parfor, is vectorized by LLVM (sqrt and
  division vectorize without fastmath). A ``prange`` over chunks with an inner
  ``range(lo, hi)`` is 4x slower: the inner loop keeps numba's wraparound
  checks and does not vectorize.
* ``error_model="numpy"``: the default ("python") model puts a zero-division
  check, and so a branch, into every division, which stops vectorization.
* ``cache=True``: compiled code is written next to this file (or to numba's
  user cache) so only the first run on a machine pays the compile time.
* Scalars and flags are runtime arguments and every array is 1-D C-contiguous,
  so each kernel compiles exactly twice (float32, float64). Flags select a
  loop-invariant branch that LLVM unswitches; what a flag must never do is
  choose whether an array is loaded or stored, or whether θ or u is written:
  that loop stays scalar, hence one kernel per output mode.
* The vectorized loop runs behind LLVM's runtime check that no array written
  overlaps the n elements after any array read. An unused array argument must
  therefore be one of the real inputs (``fused`` passes the gradient), never an
  empty placeholder that may lie anywhere in the heap (that sent every
  sgd-momentum, adagrad and rmsprop step down the scalar loop: 8-20x slower,
  depending on where malloc had put the placeholder). The in-place SGD,
  AdaGrad and RMSprop kernels take θ and each state array once, to read and
  write; ``adam_kernel`` still takes its outputs as separate (aliased)
  arguments and measures at the memory bound all the same.
"""

from __future__ import annotations

import math

from numba import get_num_threads, njit, prange, set_num_threads

_JIT = {"parallel": True, "cache": True, "error_model": "numpy", "fastmath": False, "nogil": True}


@njit(**_JIT)
def adam_kernel(
    p, g, m, v, wd, out, out_m, out_v, maximize, wd_mode, decoupled, wd_s, one_m_b1, b2, one_m_b2, step, bc2, eps,
    factor, write_params,
):  # fmt: skip
    """Adam / AdamW. ``wd_mode``: 0 none, 1 scalar ``wd_s``, 2 per-element ``wd`` array.

    Reference order: g ← −g (maximize); g ← g + λθ (coupled); m ← m + (1−β₁)(g − m);
    v ← β₂v + (1−β₂)(g·g); d ← step·m / (√v / bc2 + ε); d ← d + λθ (decoupled); u ← factor·d.
    """
    for i in prange(g.size):
        gi = g[i]
        pi = p[i]
        if maximize:
            gi = -gi
        lam = wd[i] if wd_mode == 2 else wd_s
        if wd_mode != 0 and not decoupled:
            gi = gi + lam * pi
        mi = m[i]
        mi = mi + one_m_b1 * (gi - mi)
        vi = b2 * v[i] + one_m_b2 * (gi * gi)
        d = step * mi / (math.sqrt(vi) / bc2 + eps)
        if wd_mode != 0 and decoupled:
            d = d + lam * pi
        u = factor * d
        out_m[i] = mi
        out_v[i] = vi
        if write_params:
            out[i] = pi + u
        else:
            out[i] = u


@njit(**_JIT)
def adam_update_kernel(
    p, g, m, v, wd, out, out_m, out_v, maximize, wd_mode, decoupled, wd_s, one_m_b1, b2, one_m_b2, step, bc2, eps,
    factor,
):  # fmt: skip
    """``adam_kernel`` for the pure path (writes u, never θ), with θ read only when there is weight decay.

    One kernel for both paths with ``write_params`` as a flag ran the pure path
    at a thirteenth of the speed: the unswitched loop without the θ store was not
    vectorized. The arithmetic is ``adam_kernel``'s, line for line.
    """
    for i in prange(g.size):
        gi = g[i]
        if maximize:
            gi = -gi
        if wd_mode != 0 and not decoupled:
            gi = gi + (wd[i] if wd_mode == 2 else wd_s) * p[i]
        mi = m[i]
        mi = mi + one_m_b1 * (gi - mi)
        vi = b2 * v[i] + one_m_b2 * (gi * gi)
        d = step * mi / (math.sqrt(vi) / bc2 + eps)
        if wd_mode != 0 and decoupled:
            d = d + (wd[i] if wd_mode == 2 else wd_s) * p[i]
        out_m[i] = mi
        out_v[i] = vi
        out[i] = factor * d


# The in-place kernels below write θ and the state into the arrays they read (one
# argument each), the ``*_update_kernel`` variants write u and the state into
# separate outputs. One kernel with a ``write_params`` flag, or with the output
# arrays passed in aliased to the inputs, was not vectorized by LLVM (the store
# under a flag, and the runtime overlap checks between aliased arguments, leave
# the loop scalar): 2-8x slower. The arithmetic of the two variants of each
# optimizer is the same, line for line.


@njit(**_JIT)
def sgd_kernel(p, g, wd, maximize, wd_mode, wd_s, factor):
    """Plain SGD in place, as ``sgd``'s chain: g ← −g (maximize); g ← g + λθ; θ ← θ + factor·g.

    Momentum has its own kernel: a buffer loaded and stored only under a flag
    stops LLVM from vectorizing the loop (25x slower here).
    """
    for i in prange(g.size):
        gi = g[i]
        pi = p[i]
        if maximize:
            gi = -gi
        if wd_mode == 1:
            gi = gi + wd_s * pi
        elif wd_mode == 2:
            gi = gi + wd[i] * pi
        p[i] = pi + factor * gi


@njit(**_JIT)
def sgd_update_kernel(p, g, wd, out, maximize, wd_mode, wd_s, factor):
    """``sgd_kernel`` for the pure path: u ← factor·g into ``out``."""
    for i in prange(g.size):
        gi = g[i]
        if maximize:
            gi = -gi
        if wd_mode == 1:
            gi = gi + wd_s * p[i]
        elif wd_mode == 2:
            gi = gi + wd[i] * p[i]
        out[i] = factor * gi


@njit(**_JIT)
def sgd_momentum_kernel(p, g, buf, wd, maximize, wd_mode, wd_s, first, mu, one_m_damp, nesterov, factor):
    """SGD with momentum in place, as ``sgd``'s chain: g ← −g; g ← g + λθ; b ← g (first step) or μb + (1−τ)g;
    d ← g + μb (nesterov) or b; θ ← θ + factor·d. The buffer is always read and written."""
    for i in prange(g.size):
        gi = g[i]
        pi = p[i]
        if maximize:
            gi = -gi
        if wd_mode == 1:
            gi = gi + wd_s * pi
        elif wd_mode == 2:
            gi = gi + wd[i] * pi
        bi = buf[i]
        b = gi if first else mu * bi + one_m_damp * gi
        buf[i] = b
        d = gi + mu * b if nesterov else b
        p[i] = pi + factor * d


@njit(**_JIT)
def sgd_momentum_update_kernel(
    p, g, buf, wd, out, out_buf, maximize, wd_mode, wd_s, first, mu, one_m_damp, nesterov, factor
):
    """``sgd_momentum_kernel`` for the pure path: u into ``out``, the new buffer into ``out_buf``."""
    for i in prange(g.size):
        gi = g[i]
        if maximize:
            gi = -gi
        if wd_mode == 1:
            gi = gi + wd_s * p[i]
        elif wd_mode == 2:
            gi = gi + wd[i] * p[i]
        bi = buf[i]
        b = gi if first else mu * bi + one_m_damp * gi
        out_buf[i] = b
        d = gi + mu * b if nesterov else b
        out[i] = factor * d


@njit(**_JIT)
def adagrad_kernel(p, g, acc, wd, maximize, wd_mode, wd_s, eps, eps_inside_sqrt, factor):
    """AdaGrad in place: g ← −g; g ← g + λθ; G ← G + g·g; d ← g / (√G + ε) or g / √(G + ε); θ ← θ + factor·d."""
    for i in prange(g.size):
        gi = g[i]
        pi = p[i]
        if maximize:
            gi = -gi
        if wd_mode == 1:
            gi = gi + wd_s * pi
        elif wd_mode == 2:
            gi = gi + wd[i] * pi
        s = acc[i] + gi * gi
        if eps_inside_sqrt:
            d = gi / math.sqrt(s + eps)
        else:
            d = gi / (math.sqrt(s) + eps)
        acc[i] = s
        p[i] = pi + factor * d


@njit(**_JIT)
def adagrad_update_kernel(p, g, acc, wd, out, out_acc, maximize, wd_mode, wd_s, eps, eps_inside_sqrt, factor):
    """``adagrad_kernel`` for the pure path: u into ``out``, G into ``out_acc``."""
    for i in prange(g.size):
        gi = g[i]
        if maximize:
            gi = -gi
        if wd_mode == 1:
            gi = gi + wd_s * p[i]
        elif wd_mode == 2:
            gi = gi + wd[i] * p[i]
        s = acc[i] + gi * gi
        if eps_inside_sqrt:
            d = gi / math.sqrt(s + eps)
        else:
            d = gi / (math.sqrt(s) + eps)
        out_acc[i] = s
        out[i] = factor * d


@njit(**_JIT)
def rmsprop_kernel(p, g, sq, wd, maximize, wd_mode, wd_s, a, one_m_a, eps, eps_inside_sqrt, factor):
    """Plain RMSprop (not centered, no momentum) in place, as ``scale_by_rms``:
    E[g²] ← a·E[g²] + ((1−a)·g)·g; d ← g / (√E[g²] + ε) or g / √(E[g²] + ε); θ ← θ + factor·d."""
    for i in prange(g.size):
        gi = g[i]
        pi = p[i]
        if maximize:
            gi = -gi
        if wd_mode == 1:
            gi = gi + wd_s * pi
        elif wd_mode == 2:
            gi = gi + wd[i] * pi
        s = a * sq[i] + (one_m_a * gi) * gi
        sq[i] = s
        if eps_inside_sqrt:
            d = gi / math.sqrt(s + eps)
        else:
            d = gi / (math.sqrt(s) + eps)
        p[i] = pi + factor * d


@njit(**_JIT)
def rmsprop_update_kernel(p, g, sq, wd, out, out_sq, maximize, wd_mode, wd_s, a, one_m_a, eps, eps_inside_sqrt, factor):
    """``rmsprop_kernel`` for the pure path: u into ``out``, E[g²] into ``out_sq``."""
    for i in prange(g.size):
        gi = g[i]
        if maximize:
            gi = -gi
        if wd_mode == 1:
            gi = gi + wd_s * p[i]
        elif wd_mode == 2:
            gi = gi + wd[i] * p[i]
        s = a * sq[i] + (one_m_a * gi) * gi
        out_sq[i] = s
        if eps_inside_sqrt:
            d = gi / math.sqrt(s + eps)
        else:
            d = gi / (math.sqrt(s) + eps)
        out[i] = factor * d


@njit(**_JIT)
def rmsprop_full_kernel(
    p, g, sq, ga, buf, wd, out, out_sq, out_ga, out_buf, maximize, wd_mode, wd_s, a, one_m_a, centered, w, one_m_w,
    w_small, eps, eps_inside_sqrt, momentum, mu, factor, write_params,
):  # fmt: skip
    """RMSprop with the centered and momentum options, both paths (``write_params``), as ``scale_by_rms``:
    E[g²] ← a·E[g²] + ((1−a)·g)·g; E[g] ← lerp(E[g], g, w) (torch's branch); v ← E[g²] − E[g]² (centered);
    d ← g / (√v + ε) or g / √(v + ε); b ← μb + d (momentum); u ← factor·d.

    The less common variants keep one flag-driven kernel: correct, but not vectorized.
    """
    for i in prange(g.size):
        gi = g[i]
        pi = p[i]
        if maximize:
            gi = -gi
        if wd_mode == 1:
            gi = gi + wd_s * pi
        elif wd_mode == 2:
            gi = gi + wd[i] * pi
        s = a * sq[i] + (one_m_a * gi) * gi
        out_sq[i] = s
        var = s
        if centered:
            mi = ga[i]
            if w_small:
                mi = mi + w * (gi - mi)
            else:
                mi = gi - (gi - mi) * one_m_w
            out_ga[i] = mi
            var = s - mi * mi
        if eps_inside_sqrt:
            d = gi / math.sqrt(var + eps)
        else:
            d = gi / (math.sqrt(var) + eps)
        if momentum:
            d = mu * buf[i] + d
            out_buf[i] = d
        u = factor * d
        if write_params:
            out[i] = pi + u
        else:
            out[i] = u


# Below this many elements a step runs on the calling thread only. In a training loop the step comes
# right after OpenBLAS GEMMs, whose worker threads keep spinning for a while after each call: on a
# 2-core machine a parallel step then waits for a time slice (the CNN trainer's 420k-parameter Adam
# step took 5.4 ms on 2 threads with the old threshold of 2^18, 0.2-0.3 ms on one). 2^21 elements are
# about 1 ms of single-threaded Adam, the order of such a stall.
PARALLEL_MIN = 1 << 21


def run(kernel, n, *args):
    """Call ``kernel(*args)`` on all of numba's threads, or on one for a small buffer.

    Waking the other threads costs microseconds when the cores are idle but a
    scheduler time slice (milliseconds) when they are busy with other work, so
    buffers under ``PARALLEL_MIN`` elements (about 0.1 ms of work) stay on the
    calling thread.
    """
    if n >= PARALLEL_MIN:
        kernel(*args)
        return
    previous = get_num_threads()
    if previous == 1:
        kernel(*args)
        return
    set_num_threads(1)
    try:
        kernel(*args)
    finally:
        set_num_threads(previous)
