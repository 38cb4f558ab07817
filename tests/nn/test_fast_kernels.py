"""The fast layer paths against the NumPy reference code they replace.

* ``dc.config.conv_same_width`` (``conv.SAME_WIDTH_PATH``): stride-1 convolutions whose output is as wide as the input
  (exact positions, ``(C·Πk, N, L)`` columns, batched GEMMs) against the general im2col path.
* ``dc.config.fast_kernels`` (``_fast.ENABLED``): the numba max-pool and ReLU-backward kernels against the NumPy code.

Forward values, parameter gradients and input gradients are compared for many geometries,
odd sizes, both dtypes; the tests also check that the fast path was really taken.
"""

from __future__ import annotations

import numpy as np
import pytest

from descend import config, nn
from descend.nn import _fast, conv

pytestmark = pytest.mark.skipif(_fast.kernels(np.float32) is None, reason="numba not installed")

TOL = {np.float64: {"rtol": 1e-12, "atol": 1e-12}, np.float32: {"rtol": 1e-5, "atol": 1e-5}}


def _run(layer, x, dout, input_grad=True):
    y = layer.forward(x)
    dx = layer.backward(dout, input_grad=input_grad)
    return y, dx, layer.grads.copy()


def _conv_both(monkeypatch, make, x_shape, dtype, seed=0, input_grad=True):
    rng = np.random.default_rng(seed)
    layer = make().astype(dtype)
    layer.params[...] = rng.standard_normal(layer.params.size)
    x = rng.standard_normal(x_shape).astype(dtype)
    y = layer.forward(x)
    assert layer._cache[0] is not None, "the same-width path was not taken"
    dout = rng.standard_normal(y.shape).astype(dtype)
    fast = _run(layer, x, dout, input_grad)
    with config.using(conv_same_width=False):
        ref = _run(layer, x, dout, input_grad)
        assert layer._cache[0] is None
    return fast, ref


CONV2D = [
    # (in, out, kernel, padding, (n, h, w))
    (1, 4, 3, 1, (3, 7, 5)),
    (3, 5, 3, 1, (2, 1, 1)),
    (2, 3, 3, 1, (1, 2, 9)),
    (4, 2, 5, 2, (2, 6, 7)),
    (5, 3, 5, 2, (1, 3, 2)),  # the window is larger than the image: most positions read padding
    (3, 4, 1, 0, (2, 5, 3)),
    (2, 3, (3, 5), (0, 2), (2, 6, 5)),  # fewer output rows than input rows (valid in height, same in width)
    (2, 3, (5, 3), (1, 1), (2, 8, 4)),
    (2, 2, (1, 3), (0, 1), (3, 4, 4)),
    (33, 6, 3, 1, (2, 4, 5)),  # C·Πk > 32: dW from the transposed dY
    (3, 2, 3, 1, (40, 6, 6)),  # more samples than one chunk of the backward (chunks of 4 MiB are bigger)
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cfg", CONV2D, ids=str)
def test_conv2d_same_width_path_matches_general_path(monkeypatch, cfg, dtype):
    c_in, c_out, k, p, (n, h, w) = cfg
    fast, ref = _conv_both(monkeypatch, lambda: nn.Conv2d(c_in, c_out, k, padding=p), (n, c_in, h, w), dtype)
    for a, b, what in zip(fast, ref, ("forward", "input gradient", "parameter gradients"), strict=True):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=what)


def test_conv2d_same_width_path_small_chunks(monkeypatch):
    # several backward chunks, the last one partial
    monkeypatch.setattr(conv, "_CHUNK_BYTES", 2 * 27 * 20 * 8)
    fast, ref = _conv_both(monkeypatch, lambda: nn.Conv2d(3, 4, 3, padding=1), (5, 3, 4, 5), np.float64)
    for a, b in zip(fast, ref, strict=True):
        np.testing.assert_allclose(a, b, **TOL[np.float64])


@pytest.mark.parametrize("c_in", [2, 33])  # the bias folded into the GEMM (C·Πk <= 32) or added
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_same_width_path_without_input_grad(monkeypatch, bias, c_in):
    make = lambda: nn.Conv2d(c_in, 3, 3, padding=1, bias=bias)  # noqa: E731
    fast, ref = _conv_both(monkeypatch, make, (2, c_in, 5, 6), np.float64, input_grad=False)
    assert fast[1] is None and ref[1] is None
    np.testing.assert_allclose(fast[0], ref[0], **TOL[np.float64])
    np.testing.assert_allclose(fast[2], ref[2], **TOL[np.float64])
    assert np.any(fast[2] != 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "cfg", [(1, 3, 3, 1, (2, 9)), (3, 2, 5, 2, (3, 4)), (2, 2, 1, 0, (1, 1)), (40, 3, 3, 1, (2, 7))]
)
def test_conv1d_same_width_path_matches_general_path(monkeypatch, cfg, dtype):
    c_in, c_out, k, p, (n, length) = cfg
    fast, ref = _conv_both(monkeypatch, lambda: nn.Conv1d(c_in, c_out, k, padding=p), (n, c_in, length), dtype)
    for a, b in zip(fast, ref, strict=True):
        np.testing.assert_allclose(a, b, **TOL[dtype])


def test_conv_same_width_path_not_taken_for_strides_and_valid_width():
    for layer, shape in ((nn.Conv2d(1, 2, 3, stride=2, padding=1), (1, 1, 6, 6)), (nn.Conv2d(1, 2, 3), (1, 1, 6, 6))):
        layer.forward(np.ones(shape, np.float32))
        assert layer._cache[0] is None


def test_conv_same_width_forward_does_not_modify_input():
    layer = nn.Conv2d(2, 3, 3, padding=1)
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(np.float32)
    keep = x.copy()
    y = layer.forward(x)
    layer.backward(np.ones_like(y))
    np.testing.assert_array_equal(x, keep)


# ----------------------------------------------------------------------------- max pooling


def _pool_both(monkeypatch, layer, x, seed=0):
    rng = np.random.default_rng(seed)
    y = layer.forward(x)
    assert layer._cache[0] is not None, "the numba path was not taken"
    dout = rng.standard_normal(y.shape).astype(x.dtype)
    dx = layer.backward(dout)
    with config.using(fast_kernels=False):
        y_ref = layer.forward(x)
        assert layer._cache[0] is None
        dx_ref = layer.backward(dout)
    return (y, dx), (y_ref, dx_ref)


POOL2D = [
    # (kernel, stride, padding, (h, w))
    (2, 2, 0, (8, 6)),  # the unrolled 2×2 kernels
    (2, 2, 0, (7, 9)),  # odd height and width: the last row / column belongs to no window
    (2, 2, 0, (2, 2)),
    (2, 2, 0, (3, 1 + 2)),
    (3, 2, 1, (9, 8)),  # overlapping windows with padding
    (3, 1, 1, (5, 4)),
    (2, 1, 0, (4, 5)),
    ((2, 3), (1, 2), (1, 1), (6, 7)),
    (3, 3, 0, (7, 7)),
    (1, 1, 0, (3, 2)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("cfg", POOL2D, ids=str)
def test_maxpool2d_kernel_matches_numpy(monkeypatch, cfg, ties, dtype):
    k, s, p, (h, w) = cfg
    rng = np.random.default_rng(1)
    shape = (2, 3, h, w)
    # ties: small integers, so that most windows hold several maxima (the first one must win)
    x = (rng.integers(-2, 3, shape) if ties else rng.standard_normal(shape)).astype(dtype)
    (y, dx), (y_ref, dx_ref) = _pool_both(monkeypatch, nn.MaxPool2d(k, s, p), x)
    assert y.dtype == dx.dtype == dtype
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-6, atol=1e-6)  # overlapping windows may sum in another order
    if s == k and not p:
        np.testing.assert_array_equal(dx, dx_ref)


@pytest.mark.parametrize("cfg", [(2, 2, 0, 9), (3, 2, 1, 10), (4, 1, 2, 6), (300, 300, 0, 301)])
def test_maxpool1d_kernel_matches_numpy(monkeypatch, cfg):
    k, s, p, length = cfg  # k = 300: window offsets do not fit in a byte (int32 indices)
    x = np.random.default_rng(2).standard_normal((2, 3, length)).astype(np.float32)
    (y, dx), (y_ref, dx_ref) = _pool_both(monkeypatch, nn.MaxPool1d(k, s, p), x)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-6, atol=1e-6)


def test_maxpool_kernel_propagates_nan():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 1] = np.nan
    x[0, 0, 3, 3] = 5.0
    for layer in (nn.MaxPool2d(2), nn.MaxPool2d(3, 1, 1)):
        y = layer.forward(x)
        assert np.isnan(y[0, 0, 0, 0])
        dx = layer.backward(np.ones_like(y))
        assert dx[0, 0, 0, 1] >= 1  # the NaN won its windows and receives their gradient
    y = nn.MaxPool2d(2).forward(x)
    assert y[0, 0, 1, 1] == 5.0


# ----------------------------------------------------------------------------- ReLU


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_backward_kernel_matches_numpy(monkeypatch, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5, 7)).astype(dtype)
    x[0, 0, :3] = 0.0  # y = 0 exactly: no gradient (torch's rule)
    dout = rng.standard_normal(x.shape).astype(dtype)
    layer = nn.ReLU()
    layer.forward(x)
    dx = layer.backward(dout)
    with config.using(fast_kernels=False):
        dx_ref = layer.backward(dout)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, dx_ref)
    assert np.all(dx[0, 0, :3] == 0)


def test_relu_backward_noncontiguous_dout_falls_back():
    x = np.random.default_rng(4).standard_normal((4, 6)).astype(np.float32)
    layer = nn.ReLU()
    y = layer.forward(x)
    dout = np.asfortranarray(np.ones_like(y))
    np.testing.assert_array_equal(layer.backward(dout), (y > 0).astype(np.float32))
