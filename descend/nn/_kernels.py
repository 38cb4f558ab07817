"""numba kernels for the layers' memory-bound passes (imported only when numba is installed).

The NumPy code in :mod:`descend.nn.conv` / :mod:`descend.nn.activations` is the reference;
these kernels compute the same values in one pass where NumPy needs several, and the tests
compare the two (``tests/nn/test_fast_kernels.py``). :mod:`descend.nn._fast` decides when
they run. Every kernel works on 4-D ``(N, C, H, W)`` arrays; 1-D layers pass ``H = 1``.

* :func:`relu_backward`: ``dx = dout·[y > 0]`` in one pass (NumPy: a mask pass, then a product).
* :func:`maxpool_forward` / :func:`maxpool_backward`: one pass each; the winner of every window
  is kept as its offset ``i·kw + j`` in the window (``uint8`` for windows of up to 256 elements).
  :func:`maxpool2x2_forward` / :func:`maxpool2x2_backward` are the unrolled 2×2 / stride 2 case.
  Ties go to the first maximum in row-major order (torch's rule); a NaN wins (the first NaN of the
  window: torch takes the last, which matters only for the gradient of windows with two NaNs).

Options: ``error_model="numpy"``, no ``fastmath`` (sums are done in the array's dtype, in a
fixed order), ``cache=True``, and *serial* loops: these passes run between OpenBLAS GEMMs, whose
worker threads keep spinning for a while after each call, so on a 2-core machine a parallel
numba pass waits for a time slice instead (measured: ReLU backward 7.9 ms in parallel on 2
threads, 1.2 ms serial). One thread gets most of the memory bandwidth anyway. The loops are
written with ``prange`` over independent outer iterations, so ``parallel=True`` is a one-line change.
"""

from __future__ import annotations

from numba import njit, prange

_JIT = {"parallel": False, "cache": True, "error_model": "numpy", "fastmath": False, "nogil": True}


@njit(**_JIT)
def maxpool_forward(x, y, idx, kh, kw, sh, sw, ph, pw):
    """``y = max`` over each window, ``idx`` = the winner's offset ``i·kw + j`` in its window."""
    n_, c_, h_, w_ = x.shape
    oh, ow = y.shape[2], y.shape[3]
    for q in prange(n_ * c_):
        n = q // c_
        c = q % c_
        for a in range(oh):
            i_lo = max(0, ph - a * sh)
            i_hi = min(kh, h_ + ph - a * sh)
            for b in range(ow):
                j_lo = max(0, pw - b * sw)
                j_hi = min(kw, w_ + pw - b * sw)
                best = x[n, c, a * sh + i_lo - ph, b * sw + j_lo - pw]
                arg = i_lo * kw + j_lo
                for i in range(i_lo, i_hi):
                    hh = a * sh + i - ph
                    for j in range(j_lo, j_hi):
                        v = x[n, c, hh, b * sw + j - pw]
                        # strict: the first maximum wins; a NaN wins. Selects, not branches: on real data
                        # "v > best" is a coin flip and a mispredicted branch costs more than the rest.
                        take = (v > best) | ((v != v) & (best == best))
                        best = v if take else best
                        arg = i * kw + j if take else arg
                y[n, c, a, b] = best
                idx[n, c, a, b] = arg


@njit(**_JIT)
def maxpool2x2_forward(x, y, idx):
    """:func:`maxpool_forward` for 2×2 windows, stride 2, no padding (the usual case), unrolled."""
    n_, c_ = x.shape[0], x.shape[1]
    oh, ow = y.shape[2], y.shape[3]
    for q in prange(n_ * c_):
        n = q // c_
        c = q % c_
        for a in range(oh):
            r0 = x[n, c, 2 * a]
            r1 = x[n, c, 2 * a + 1]
            yr = y[n, c, a]
            ir = idx[n, c, a]
            for b in range(ow):
                v0 = r0[2 * b]
                v1 = r0[2 * b + 1]
                v2 = r1[2 * b]
                v3 = r1[2 * b + 1]
                t01 = (v1 > v0) | ((v1 != v1) & (v0 == v0))
                m01 = v1 if t01 else v0
                t23 = (v3 > v2) | ((v3 != v3) & (v2 == v2))
                m23 = v3 if t23 else v2
                t = (m23 > m01) | ((m23 != m23) & (m01 == m01))  # ties keep the earlier row
                yr[b] = m23 if t else m01
                ir[b] = (3 if t23 else 2) if t else (1 if t01 else 0)


@njit(**_JIT)
def maxpool_backward(dout, idx, dx, kh, kw, sh, sw, ph, pw):
    """Each window's gradient goes to its winner (summed where windows overlap); overwrites ``dx``."""
    n_, c_, h_, w_ = dx.shape
    oh, ow = dout.shape[2], dout.shape[3]
    for q in prange(n_ * c_):
        n = q // c_
        c = q % c_
        for hh in range(h_):
            for ww in range(w_):
                dx[n, c, hh, ww] = 0
        for a in range(oh):
            for b in range(ow):
                k = idx[n, c, a, b]
                i = k // kw
                j = k - i * kw
                dx[n, c, a * sh + i - ph, b * sw + j - pw] += dout[n, c, a, b]


@njit(**_JIT)
def maxpool2x2_backward(dout, idx, dx):
    """:func:`maxpool_backward` for 2×2 windows, stride 2, no padding: every window's four elements are
    written (the gradient or 0), so ``dx`` needs no zeroing pass; an odd last row / column gets 0."""
    n_, c_, h_, w_ = dx.shape
    oh, ow = dout.shape[2], dout.shape[3]
    for q in prange(n_ * c_):
        n = q // c_
        c = q % c_
        for a in range(oh):
            r0 = dx[n, c, 2 * a]
            r1 = dx[n, c, 2 * a + 1]
            dr = dout[n, c, a]
            ir = idx[n, c, a]
            for b in range(ow):
                d = dr[b]
                k = ir[b]
                r0[2 * b] = d if k == 0 else 0
                r0[2 * b + 1] = d if k == 1 else 0
                r1[2 * b] = d if k == 2 else 0
                r1[2 * b + 1] = d if k == 3 else 0
            if w_ > 2 * ow:
                r0[w_ - 1] = 0
                r1[w_ - 1] = 0
        if h_ > 2 * oh:
            for ww in range(w_):
                dx[n, c, h_ - 1, ww] = 0


@njit(**_JIT)
def relu_backward(dout, y, dx):
    """``dx = dout`` where ``y > 0``, else 0 (flat, contiguous arrays)."""
    for i in prange(dx.size):
        dx[i] = dout[i] if y[i] > 0 else 0
