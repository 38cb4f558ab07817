"""Convolution (im2col + one GEMM) and pooling, 1-D and 2-D, in NCL / NCHW layout like torch.

im2col layout
-------------
The padded input is stored channel-major, ``(C, N, *spatial)``, and the columns
as ``cols[(c, *k), (n, *out)]``, a ``(C·Πk, N·L)`` matrix, so that

* forward  ``Y = W₂ · cols``         (one GEMM, ``W₂ = W.reshape(O, C·Πk)``),
* backward ``dW₂ = dY · colsᵀ``      (one GEMM), ``db = Σ dY``,
  ``dcols = W₂ᵀ · dY``              (one GEMM), then col2im.

im2col and col2im loop over the kernel offsets (9 for a 3×3 kernel) and copy /
add whole strided slices; ``np.add.at`` is never used. For a stride-1 2-D
convolution the spatial dims are flattened and the output is computed on
"wide rows" (``OH × W_padded`` positions, the last ``kw − 1`` of every row
discarded): each kernel offset ``(i, j)`` is then one contiguous shift
``i·W_padded + j`` of the flat padded image, so every copy and add runs over
long contiguous rows instead of rows of length ``OW``.

"Same"-width path (``SAME_WIDTH_PATH``): a stride-1 convolution whose output is as wide
as its input (3×3 with padding 1, 5×5 with padding 2, ...) is computed on exactly the kept
positions, in a layout that needs no transposed copy of the input or the output:

* ``cols`` is ``(C·Πk, N, L)`` (``L = OH·W``): offset ``(i, j)`` reads the *unpadded* flat
  image shifted by ``(i − ph)·W + j − pw``, one strided copy per offset, and the few
  positions whose window reaches into the padding are set to 0 (no padded copy of the input);
* forward ``Y[n] = W₂ · cols[:, n, :]``: one batched ``np.matmul`` whose output is already
  ``(N, O, L)`` (BLAS reads each ``cols[:, n, :]`` with a leading dimension of ``N·L``);
* ``dW₂ = dY · colsᵀ`` stays one GEMM over ``N·L`` (``dY`` is copied to ``(O, N·L)``, 1/Πk of
  the size of ``cols``); ``dcols[n] = W₂ᵀ · dY[n]`` is batched, and col2im adds each offset's
  slab straight into ``(N, C, H·W)``, in the same order as the general path.

For the Fashion-MNIST CNN's second convolution this drops the 12.5 % of positions the wide
rows compute and discard (196 of 224 per sample), and three full-size transposed copies.

With OpenBLAS on several threads, the same-width path and max pooling split large batches into one slice per
thread (:mod:`descend.nn._blas`, OpenBLAS on one thread meanwhile).

Max pooling runs as one numba pass forward and one backward when numba is installed
(:mod:`descend.nn._kernels`), with the winner of each window stored as a one-byte offset.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from descend import config
from descend.errors import ParameterError
from descend.nn import _blas, _fast
from descend.nn.linear import positive_int
from descend.nn.module import Module, ShapeError, fmt_shape

# ``SAME_WIDTH_PATH`` (read and written through ``descend.config.conv_same_width``, env
# ``DESCEND_CONV_SAME_WIDTH``): stride-1 convolutions whose output is as wide as the input ("same" padding, e.g.
# 3×3 with padding 1) compute only the kept positions, lay ``cols`` out as ``(C·Πk, N, L)`` and use a batched
# GEMM (see the module docstring); ``False`` sends them down the general path (the tests compare the two).
config.module_switches(__name__, {"SAME_WIDTH_PATH": "conv_same_width"})
_SMALL_K = 32  # C·Πk up to which dW is a sum of per-sample GEMMs (no transposed copy of dY)
_CHUNK_BYTES = 4 << 20  # size of the slab of dcols computed and summed back at a time
#: Elements of ``cols`` from which a same-width conv with ``C·Πk > 32`` runs batch-parallel (``descend.nn._blas``)
#: when OpenBLAS is on several threads.
BATCH_PARALLEL_MIN = 1 << 18


def _ntuple(owner: str, name: str, value: Any, nd: int, minimum: int) -> tuple[int, ...]:
    items = tuple(value) if isinstance(value, tuple | list) else (value,) * nd
    if len(items) != nd or any(not isinstance(v, int) or isinstance(v, bool) or v < minimum for v in items):
        raise ParameterError(f"{owner}: {name} must be an int >= {minimum} or a tuple of {nd} such ints, got {value!r}")
    return items


def _out_size(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def _check_input(layer: Module, x: np.ndarray, nd: int, channels: int | None) -> None:
    dims = "(N, C, L)" if nd == 1 else "(N, C, H, W)"
    if x.ndim != nd + 2 or (channels is not None and x.shape[1] != channels):
        want = dims if channels is None else dims.replace("C", str(channels))
        raise ShapeError(f"{layer.label()}: expected input of shape {want}, got {fmt_shape(x.shape)}")


class _ConvNd(Module):
    nd = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        bias: bool = True,
        init: Any = None,
        bias_init: Any = None,
        rng: Any = None,
        dtype: Any = np.float32,
    ) -> None:
        owner = type(self).__name__
        super().__init__(dtype)
        self.in_channels = positive_int(owner, "in_channels", in_channels)
        self.out_channels = positive_int(owner, "out_channels", out_channels)
        self.kernel_size = _ntuple(owner, "kernel_size", kernel_size, self.nd, 1)
        self.stride = _ntuple(owner, "stride", stride, self.nd, 1)
        self.padding = _ntuple(owner, "padding", padding, self.nd, 0)
        self.use_bias = bool(bias)
        self._add_param("weight", (self.out_channels, self.in_channels, *self.kernel_size), init)
        if self.use_bias:
            self._add_param("bias", (self.out_channels,), bias_init)
        self._build(rng)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if any(self.padding):
            s += f", padding={self.padding}"
        return s + ("" if self.use_bias else ", bias=False")

    # -------------------------------------------------------------- im2col / col2im

    def _wide(self) -> bool:
        return self.nd == 2 and self.stride == (1, 1)

    def _offsets(self, padded: tuple[int, ...]) -> list[tuple[tuple[int, ...], Any]]:
        """``(kernel offset, slice of the padded input)`` pairs; in wide mode the slice is a flat shift."""
        out = []
        for offs in itertools.product(*(range(k) for k in self.kernel_size)):
            if self._wide():
                out.append((offs, offs[0] * padded[1] + offs[1]))
            else:
                out.append(
                    (offs, tuple(slice(o, o + s * n, s) for o, s, n in zip(offs, self.stride, self._out, strict=True)))
                )
        return out

    def _pad(self, x: np.ndarray) -> np.ndarray:
        """Zero-padded, channel-major copy of ``x``: ``(C, N, *padded)`` (wide mode: flat with a tail)."""
        n, c, *size = x.shape
        padded = tuple(s + 2 * p for s, p in zip(size, self.padding, strict=True))
        if self._wide():
            tail = self.kernel_size[1] - 1  # the last wide row reads up to kw − 1 elements past the image
            flat = np.zeros((c, n, math.prod(padded) + tail), self.dtype)
            xp = flat[:, :, : math.prod(padded)].reshape(c, n, *padded)
        else:
            flat = xp = np.zeros((c, n, *padded), self.dtype)
        inner = tuple(slice(p, p + s) for p, s in zip(self.padding, size, strict=True))
        xp[(slice(None), slice(None), *inner)] = x.swapaxes(0, 1)
        return flat

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        _check_input(self, x, self.nd, self.in_channels)
        n, c, *size = x.shape
        out = tuple(
            _out_size(s, k, st, p)
            for s, k, st, p in zip(size, self.kernel_size, self.stride, self.padding, strict=True)
        )
        if min(out) < 1:
            raise ShapeError(
                f"{self.label()}: input of shape {fmt_shape(x.shape)} is smaller than the kernel "
                f"{self.kernel_size} (with padding {self.padding})"
            )
        self._out = out
        geom = self._geometry(size)
        if geom is not None:
            return self._forward_same(x, geom, out)
        padded = tuple(s + 2 * p for s, p in zip(size, self.padding, strict=True))
        xp = self._pad(x)
        # positions per sample: wide mode computes OH × W_padded and drops the last kw − 1 of each row
        positions = out[0] * padded[1] if self._wide() else math.prod(out)
        cols = np.empty((c, *self.kernel_size, n, positions), self.dtype)
        cols_nd = cols if self._wide() else cols.reshape(c, *self.kernel_size, n, *out)
        for offs, sl in self._offsets(padded):  # im2col: one strided copy per kernel offset
            if self._wide():
                cols[(slice(None), *offs)] = xp[:, :, sl : sl + positions]
            else:
                cols_nd[(slice(None), *offs)] = xp[(slice(None), slice(None), *sl)]
        cols = cols.reshape(c * math.prod(self.kernel_size), n * positions)
        y = self.weight.reshape(self.out_channels, -1) @ cols  # Y = W₂ · cols: (O, N·L)
        if self.use_bias:
            y += self.bias[:, None]
        self._cache = (None, cols, x.shape, padded, positions)
        if self._wide():
            y = y.reshape(self.out_channels, n, out[0], padded[1])[..., : out[1]]
        else:
            y = y.reshape(self.out_channels, n, *out)
        return np.ascontiguousarray(y.swapaxes(0, 1))

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError(f"{self.label()}: backward called before forward")
        same, cols, in_shape, padded, positions = self._cache
        n, c, *size = in_shape
        o = self.out_channels
        dout = np.asarray(dout, dtype=self.dtype)
        if dout.shape != (n, o, *self._out):
            raise ShapeError(
                f"{self.label()}: backward expected dout of shape {fmt_shape((n, o, *self._out))}, "
                f"got {fmt_shape(dout.shape)}"
            )
        if same is not None:
            return self._backward_same(same, cols, in_shape, dout, input_grad)
        # dY channel-major, (O, N·L); in wide mode the discarded columns get a zero gradient
        if self._wide():
            dy = np.zeros((o, n, self._out[0], padded[1]), self.dtype)
            dy[..., : self._out[1]] = dout.swapaxes(0, 1)
        else:
            dy = np.ascontiguousarray(dout.swapaxes(0, 1))
        dy = dy.reshape(o, n * positions)
        np.matmul(dy, cols.T, out=self.dweight.reshape(o, -1))  # dW₂ = dY · colsᵀ
        if self.use_bias:
            np.sum(dy, axis=1, out=self.dbias)  # db = Σ_{n,l} dY
        if not input_grad:
            return None
        dcols = self.weight.reshape(o, -1).T @ dy  # dcols = W₂ᵀ · dY: (C·Πk, N·L)
        dcols = dcols.reshape(c, *self.kernel_size, n, positions)
        # col2im: every kernel offset adds its slab back where im2col read it from
        if self._wide():
            dxp = np.zeros((c, n, math.prod(padded) + self.kernel_size[1] - 1), self.dtype)
            for offs, sl in self._offsets(padded):
                dxp[:, :, sl : sl + positions] += dcols[(slice(None), *offs)]
            dxp = dxp[:, :, : math.prod(padded)].reshape(c, n, *padded)
        else:
            dxp = np.zeros((c, n, *padded), self.dtype)
            dcols = dcols.reshape(c, *self.kernel_size, n, *self._out)
            for offs, sl in self._offsets(padded):
                dxp[(slice(None), slice(None), *sl)] += dcols[(slice(None), *offs)]
        inner = tuple(slice(p, p + s) for p, s in zip(self.padding, size, strict=True))
        return np.ascontiguousarray(dxp[(slice(None), slice(None), *inner)].swapaxes(0, 1))

    # -------------------------------------------------------------- "same"-width path

    def _geometry(self, size: list[int]) -> tuple[int, int, int, int, int, int] | None:
        """``(h, w, kh, kw, ph, pw)`` (a 1-D convolution is a 2-D one with ``h = 1``) if the
        exact-position path applies: stride 1 and an output as wide as the input."""
        if not config.state.conv_same_width or any(st != 1 for st in self.stride):
            return None
        h, w = (1, size[0]) if self.nd == 1 else size
        kh, kw = (1, *self.kernel_size) if self.nd == 1 else self.kernel_size
        ph, pw = (0, *self.padding) if self.nd == 1 else self.padding
        return (h, w, kh, kw, ph, pw) if w + 2 * pw - kw + 1 == w else None

    @staticmethod
    def _shifts(h: int, w: int, kh: int, kw: int, ph: int, pw: int) -> Any:
        """Per kernel offset ``(i, j)``: the flat shift ``(i − ph)·w + j − pw`` from an output position to the
        input position it reads, the range ``[p_lo, p_hi)`` of output positions that read inside the image
        (everything else reads padding), and the output columns ``[lo, hi)`` whose column is inside."""
        oh = h + 2 * ph - kh + 1
        for i in range(kh):
            a_lo, a_hi = max(0, ph - i), min(oh, h + ph - i)
            for j in range(kw):
                lo, hi = max(0, pw - j), min(w, w + pw - j)
                shift = (i - ph) * w + j - pw
                p_lo = max(a_lo * w, -shift)
                # An offset that reads only padding (a kernel taller than the padded image) has an empty range:
                # p_hi = p_lo keeps both slices empty, where a negative start would wrap around the buffer.
                p_hi = max(min(a_hi * w, h * w - shift), p_lo)
                yield i, j, shift, p_lo, p_hi, lo, hi

    def _batch_ranges(self, n: int, k: int, positions: int) -> list[tuple[int, int]] | None:
        """Batch slices for :func:`_blas.run` when ``cols`` has ``BATCH_PARALLEL_MIN`` elements or more and
        OpenBLAS runs on several threads, else None."""
        if k * n * positions < BATCH_PARALLEL_MIN:
            return None
        return _blas.ranges(n, k * n * positions * self.dtype.itemsize)

    def _im2col(self, flat: np.ndarray, rows: np.ndarray, xt: np.ndarray, geom: tuple[int, ...]) -> None:
        h, w, kh, kw, ph, pw = geom
        for i, j, shift, p_lo, p_hi, lo, hi in self._shifts(h, w, kh, kw, ph, pw):
            dst = flat[:, i, j]
            dst[..., :p_lo] = 0
            dst[..., p_lo:p_hi] = xt[..., p_lo + shift : p_hi + shift]
            dst[..., p_hi:] = 0
            rows[:, i, j, ..., :lo] = 0
            rows[:, i, j, ..., hi:] = 0

    def _forward_same(self, x: np.ndarray, geom: tuple[int, ...], out: tuple[int, ...]) -> np.ndarray:
        n, c = x.shape[:2]
        h, w, kh, kw = geom[:4]
        positions = math.prod(out)  # OH·W
        # im2col: with stride 1 and an output as wide as the input, kernel offset (i, j) reads the flat
        # image shifted by (i − ph)·w + j − pw: one strided copy per offset, then zeros where it reads padding
        k = c * kh * kw
        # with few rows (a first layer on images) the GEMM is bound by writing Y, and the bias is folded into
        # it: a row of ones in cols and a column b in W₂, so no pass adds b to Y and dW's GEMM also gives db
        # (with many rows the odd K + 1 costs the GEMM more than the passes it saves)
        fold = self.use_bias and k <= _SMALL_K
        cols = np.empty((k + fold, n, positions), self.dtype)
        if fold:
            cols[k] = 1
        flat = cols[:k].reshape(c, kh, kw, n, positions)  # cols[:k] is contiguous: always views
        rows = cols[:k].reshape(c, kh, kw, n, -1, w)
        xt = x.reshape(n, c, h * w).swapaxes(0, 1)
        w2 = self.weight.reshape(self.out_channels, k)
        if fold:
            w2 = np.concatenate([w2, self.bias[:, None]], axis=1)
        ranges = self._batch_ranges(n, k, positions)
        if ranges is not None:
            # OpenBLAS on several threads: im2col, GEMM and the bias pass one batch slice per thread
            y = np.empty((n, self.out_channels, positions), self.dtype)

            def part(lo: int, hi: int) -> None:
                self._im2col(flat[:, :, :, lo:hi], rows[:, :, :, lo:hi], xt[:, lo:hi], geom)
                if k <= _SMALL_K:
                    np.matmul(w2, cols[:, lo:hi].swapaxes(0, 1), out=y[lo:hi])
                    return
                ym = np.matmul(w2, cols[:, lo:hi].reshape(k, -1))  # cols[:, lo:hi] as (K, m·L): a view
                ym = ym.reshape(self.out_channels, hi - lo, positions).swapaxes(0, 1)
                if self.use_bias:
                    np.add(ym, self.bias[:, None], out=y[lo:hi])
                else:
                    y[lo:hi] = ym

            _blas.run(part, ranges)
            self._cache = (geom, cols, x.shape, fold, positions)
            return y.reshape(n, self.out_channels, *out)
        self._im2col(flat, rows, xt, geom)
        if k <= _SMALL_K:
            # Y[n] = W₂ · cols[:, n, :] for every n: one batched GEMM, output already (N, O, L)
            y = np.matmul(w2, cols.swapaxes(0, 1))
        else:
            # Y = W₂ · cols as one GEMM (with OpenBLAS on several threads, 128 small GEMMs each wake the
            # workers: one big one is faster), then Y (O, N, L) → (N, O, L) in the pass that adds the bias
            y_cm = np.matmul(w2, cols.reshape(k, -1)).reshape(self.out_channels, n, positions).swapaxes(0, 1)
            y = np.empty((n, self.out_channels, positions), self.dtype)
            if self.use_bias:
                np.add(y_cm, self.bias[:, None], out=y)
            else:
                y[...] = y_cm
        self._cache = (geom, cols, x.shape, fold, positions)
        return y.reshape(n, self.out_channels, *out)

    def _backward_same(
        self, geom: tuple[int, ...], cols: np.ndarray, in_shape: tuple[int, ...], dout: np.ndarray, input_grad: bool
    ) -> np.ndarray | None:
        n, c = in_shape[:2]
        h, w = geom[:2]
        o = self.out_channels
        fold = self._cache[3]
        d3 = dout.reshape(n, o, -1)
        k = cols.shape[0] - fold
        ranges = self._batch_ranges(n, k, d3.shape[2])
        if ranges is not None:
            # several BLAS threads: each thread takes a batch slice (its share of dW, db and dX), partial
            # dW / db are summed in slice order
            dx = np.zeros((n, c, h * w), self.dtype) if input_grad else None

            def part(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray | None]:
                if k <= _SMALL_K:
                    dwb = np.sum(np.matmul(d3[lo:hi], cols[:, lo:hi].transpose(1, 2, 0)), axis=0)
                    dw, db = dwb[:, :k], (dwb[:, k] if fold else None)
                else:
                    dy = np.ascontiguousarray(d3[lo:hi].swapaxes(0, 1)).reshape(o, -1)
                    dw = np.matmul(dy, cols[:, lo:hi].reshape(k, -1).T)
                    db = dy.sum(axis=1) if self.use_bias else None
                if dx is not None:
                    self._col2im(d3[lo:hi], dx[lo:hi], geom)
                return dw, db

            results = _blas.run(part, ranges)
            dw2 = self.dweight.reshape(o, k)
            dw2[...] = results[0][0]
            for dw, _ in results[1:]:
                dw2 += dw
            if self.use_bias and results[0][1] is not None:
                self.dbias[...] = results[0][1]
                for _, db in results[1:]:
                    self.dbias += db
            return None if dx is None else dx.reshape(in_shape)
        if k <= _SMALL_K:
            # few input rows (a first layer on images): per-sample GEMMs summed beat transposing dY first
            dwb = np.sum(np.matmul(d3, cols.transpose(1, 2, 0)), axis=0)
            self.dweight.reshape(o, k)[...] = dwb[:, :k]
            if fold:
                self.dbias[...] = dwb[:, k]  # db = Σ_{n,l} dY·1
        else:
            dy = np.ascontiguousarray(d3.swapaxes(0, 1)).reshape(o, -1)  # dY channel-major: (O, N·L)
            np.matmul(dy, cols.reshape(k, -1).T, out=self.dweight.reshape(o, k))  # dW₂ = dY · colsᵀ
            if self.use_bias:
                np.sum(dy, axis=1, out=self.dbias)  # db = Σ_{n,l} dY
        if not input_grad:
            return None
        dx = np.zeros((n, c, h * w), self.dtype)
        self._col2im(d3, dx, geom)
        return dx.reshape(in_shape)

    def _col2im(self, d3: np.ndarray, dx: np.ndarray, geom: tuple[int, ...]) -> None:
        """``dx += col2im(W₂ᵀ · dY)`` for the samples of ``d3`` (``(m, O, L)``) into ``dx`` (``(m, C, H·W)``)."""
        h, w, kh, kw, ph, pw = geom
        n, c = dx.shape[:2]
        o = self.out_channels
        k = c * kh * kw
        # dcols[n] = W₂ᵀ · dY[n] (batched GEMM), then col2im: every offset adds its slab back where im2col
        # read it from, in the order (i, j), from zero (as the general path does), after zeroing the entries
        # that belong to padding (dcols is scratch). Done a few samples at a time, so that each chunk of
        # dcols is summed while it is still in cache.
        w2t = self.weight.reshape(o, k).T
        chunk = max(1, _CHUNK_BYTES // (k * d3.shape[2] * self.dtype.itemsize))
        buf = np.empty((min(chunk, n), k, d3.shape[2]), self.dtype)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            m = stop - start
            np.matmul(w2t, d3[start:stop], out=buf[:m])
            d5 = buf[:m].reshape(m, c, kh, kw, -1)
            rows = buf[:m].reshape(m, c, kh, kw, -1, w)  # always views: buf is contiguous
            dxs = dx[start:stop]
            for i, j, shift, p_lo, p_hi, lo, hi in self._shifts(h, w, kh, kw, ph, pw):
                src = d5[:, :, i, j]
                rows[:, :, i, j, :, :lo] = 0
                rows[:, :, i, j, :, hi:] = 0
                dxs[..., p_lo + shift : p_hi + shift] += src[..., p_lo:p_hi]


class Conv1d(_ConvNd):
    """1-D convolution (cross-correlation) over ``(N, C, L)``, weight ``(out, in, k)``, like ``torch.nn.Conv1d``."""

    nd = 1


class Conv2d(_ConvNd):
    """2-D convolution over ``(N, C, H, W)``, weight ``(out, in, kh, kw)``, like ``torch.nn.Conv2d``."""

    nd = 2


# ----------------------------------------------------------------------------- pooling
#
# Pooling is separable: a 2-D window max (or sum) is the max over the window's rows of the
# max over each row's columns. Each stage reduces one spatial axis with k strided slices
# (last axis first), so every NumPy call runs over whole arrays; the backward of a stage
# routes the gradient back through the same slices. Reducing the last axis first and
# letting only a strictly greater value win keeps torch's tie rule: the first maximum of
# the window in row-major order receives the gradient.


def _along(ndim: int, axis: int, j: int, s: int, n: int) -> tuple[slice, ...]:
    """Index of window element ``j`` of all ``n`` windows (stride ``s``) along ``axis``."""
    index = [slice(None)] * ndim
    index[axis] = slice(j, j + s * (n - 1) + 1, s)
    return tuple(index)


def _max_stage(z: np.ndarray, axis: int, k: int, s: int, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Max over windows along ``axis`` and which window element won (bool for k = 2, else uint8 / int32)."""
    best = z[_along(z.ndim, axis, 0, s, n)]
    idx = None
    for j in range(1, k):
        cand = z[_along(z.ndim, axis, j, s, n)]
        better = cand > best  # strict: the first maximum wins
        best = np.maximum(best, cand)
        if idx is None:
            idx = better if k == 2 else better.astype(np.uint8 if k <= 256 else np.int32)
        else:
            idx[better] = j
    return best, idx


def _unmax_stage(
    d: np.ndarray, axis: int, k: int, s: int, shape: tuple[int, ...], idx: np.ndarray | None
) -> np.ndarray:
    """Backward of :func:`_max_stage`: each window's gradient goes to the element that won."""
    n = d.shape[axis]
    dz = np.zeros(shape, d.dtype)
    overlap = s < k
    for j in range(k):
        if idx is None:
            part = d
        elif k == 2:
            part = d * idx if j == 1 else d - d * idx  # multiplying by a bool mask is fast and exact
        else:
            part = d * (idx == j)
        target = _along(dz.ndim, axis, j, s, n)
        if overlap:
            dz[target] += part
        else:
            dz[target] = part
    return dz


class _PoolNd(Module):
    nd = 2

    def __init__(self, kernel_size: int | tuple[int, ...], stride: Any = None, padding: Any = 0) -> None:
        owner = type(self).__name__
        super().__init__()
        self.kernel_size = _ntuple(owner, "kernel_size", kernel_size, self.nd, 1)
        self.stride = self.kernel_size if stride is None else _ntuple(owner, "stride", stride, self.nd, 1)
        self.padding = _ntuple(owner, "padding", padding, self.nd, 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise ParameterError(
                f"{owner}: padding must be at most half the kernel size, got padding={self.padding}, "
                f"kernel_size={self.kernel_size}"
            )

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}, stride={self.stride}"
        return s + (f", padding={self.padding}" if any(self.padding) else "")

    def _out_shape(self, x: np.ndarray) -> tuple[int, ...]:
        _check_input(self, x, self.nd, None)
        out = tuple(
            _out_size(s, k, st, p)
            for s, k, st, p in zip(x.shape[2:], self.kernel_size, self.stride, self.padding, strict=True)
        )
        if min(out) < 1:
            raise ShapeError(
                f"{self.label()}: input of shape {fmt_shape(x.shape)} is smaller than the kernel {self.kernel_size}"
            )
        return out

    def _geometry(self) -> tuple[int, int, int, int, int, int]:
        """``(kh, kw, sh, sw, ph, pw)``; 1-D pooling is 2-D pooling with ``H = 1``."""
        if self.nd == 1:
            return 1, self.kernel_size[0], 1, self.stride[0], 0, self.padding[0]
        return (*self.kernel_size, *self.stride, *self.padding)  # type: ignore[return-value]

    def _padded(self, x: np.ndarray, fill: float) -> tuple[np.ndarray, tuple[int, ...]]:
        out = self._out_shape(x)
        n, c, *size = x.shape
        if not any(self.padding):
            return x, out
        xp = np.full((n, c, *(s + 2 * p for s, p in zip(size, self.padding, strict=True))), fill, x.dtype)
        xp[(slice(None), slice(None), *(slice(p, p + s) for p, s in zip(self.padding, size, strict=True)))] = x
        return xp, out

    def _unpad(self, dxp: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
        if not any(self.padding):
            return dxp
        return dxp[
            (slice(None), slice(None), *(slice(p, p + s) for p, s in zip(self.padding, in_shape[2:], strict=True)))
        ]

    def _stages(self) -> list[tuple[int, int, int]]:
        """``(axis, kernel, stride)`` per spatial axis, last axis first."""
        return [(2 + a, self.kernel_size[a], self.stride[a]) for a in reversed(range(self.nd))]


class _MaxPoolNd(_PoolNd):
    """``y = max`` over each window; the gradient goes to the first maximum of the window (torch's rule).

    With numba (the default) a NaN wins its window, as in torch (torch gives the gradient to the last NaN,
    the kernel to the first); the NumPy reference propagates the NaN value but not torch's index rule.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        kern = _fast.kernels(x.dtype)
        if kern is not None:
            return self._forward_fast(kern, x)
        z, out = self._padded(x, -np.inf)
        saved = []
        for axis, k, s in self._stages():
            best, idx = _max_stage(z, axis, k, s, out[axis - 2])
            saved.append((axis, k, s, z.shape, idx))
            z = best
        self._cache = (None, saved, x.shape, z.shape)
        return np.ascontiguousarray(z)

    def _forward_fast(self, kern: Any, x: np.ndarray) -> np.ndarray:
        out = self._out_shape(x)
        n, c, *size = x.shape
        kh, kw, sh, sw, ph, pw = self._geometry()
        x4 = np.ascontiguousarray(x).reshape(n, c, -1, size[-1])
        y = np.empty((n, c, *out), x.dtype)
        idx = np.empty(y.shape, np.uint8 if kh * kw <= 256 else np.int32)
        y4, idx4 = y.reshape(n, c, -1, out[-1]), idx.reshape(n, c, -1, out[-1])
        two = (kh, kw, sh, sw, ph, pw) == (2, 2, 2, 2, 0, 0)

        def part(lo: int, hi: int) -> None:
            if two:
                kern.maxpool2x2_forward(x4[lo:hi], y4[lo:hi], idx4[lo:hi])
            else:
                kern.maxpool_forward(x4[lo:hi], y4[lo:hi], idx4[lo:hi], kh, kw, sh, sw, ph, pw)

        _blas.run(part, _blas.ranges(n, x4.nbytes) or [(0, n)])
        self._cache = (kern, idx4, x.shape, y.shape)
        return y

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError(f"{self.label()}: backward called before forward")
        kern, saved, in_shape, out_shape = self._cache
        if np.shape(dout) != out_shape:
            raise ShapeError(f"{self.label()}: backward expected dout of shape {out_shape}, got {np.shape(dout)}")
        if not input_grad:
            return None
        if kern is not None:
            d = np.ascontiguousarray(dout)
            if d.dtype not in (np.float32, np.float64):
                d = d.astype(np.float64)
            n, c, *size = in_shape
            dx = np.empty((n, c, 1 if self.nd == 1 else size[0], size[-1]), d.dtype)
            d4 = d.reshape(saved.shape)
            geometry = self._geometry()

            def part(lo: int, hi: int) -> None:
                if geometry == (2, 2, 2, 2, 0, 0):
                    kern.maxpool2x2_backward(d4[lo:hi], saved[lo:hi], dx[lo:hi])
                else:
                    kern.maxpool_backward(d4[lo:hi], saved[lo:hi], dx[lo:hi], *geometry)

            _blas.run(part, _blas.ranges(n, dx.nbytes) or [(0, n)])
            return dx.reshape(in_shape)
        d = np.asarray(dout)
        for axis, k, s, shape, idx in reversed(saved):
            d = _unmax_stage(d, axis, k, s, shape, idx)
        return self._unpad(d, in_shape)


class _AvgPoolNd(_PoolNd):
    """``y = mean`` over each window; ``dx[window] += dout / count``.

    ``count_include_pad=True`` (torch's default) divides by the kernel size; otherwise by the number
    of non-padding elements in the window.
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, count_include_pad: bool = True) -> None:
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = bool(count_include_pad)

    def _sum(self, z: np.ndarray, out: tuple[int, ...]) -> tuple[np.ndarray, list[Any]]:
        saved = []
        for axis, k, s in self._stages():
            n = out[axis - 2]
            acc = z[_along(z.ndim, axis, 0, s, n)].copy()
            for j in range(1, k):
                acc += z[_along(z.ndim, axis, j, s, n)]
            saved.append((axis, k, s, z.shape))
            z = acc
        return z, saved

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        xp, out = self._padded(x, 0.0)
        y, saved = self._sum(xp, out)
        if self.count_include_pad or not any(self.padding):
            div: Any = float(math.prod(self.kernel_size))
        else:  # the number of real (non-padding) elements in each window
            div, _ = self._sum(self._padded(np.ones((1, 1, *x.shape[2:]), x.dtype), 0.0)[0], out)
        y /= div
        self._cache = (div, saved, x.shape)
        return y

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise RuntimeError(f"{self.label()}: backward called before forward")
        div, saved, in_shape = self._cache
        if not input_grad:
            return None
        d = np.asarray(dout) / div
        for axis, k, s, shape in reversed(saved):
            dz = np.zeros(shape, d.dtype)
            for j in range(k):
                dz[_along(dz.ndim, axis, j, s, d.shape[axis])] += d
            d = dz
        return self._unpad(d, in_shape)


class MaxPool1d(_MaxPoolNd):
    """Max pooling over ``(N, C, L)``; ``stride`` defaults to ``kernel_size`` like ``torch.nn.MaxPool1d``."""

    nd = 1


class MaxPool2d(_MaxPoolNd):
    """Max pooling over ``(N, C, H, W)``; ``stride`` defaults to ``kernel_size`` like ``torch.nn.MaxPool2d``."""

    nd = 2


class AvgPool1d(_AvgPoolNd):
    """Average pooling over ``(N, C, L)``, like ``torch.nn.AvgPool1d``."""

    nd = 1


class AvgPool2d(_AvgPoolNd):
    """Average pooling over ``(N, C, H, W)``, like ``torch.nn.AvgPool2d``."""

    nd = 2
