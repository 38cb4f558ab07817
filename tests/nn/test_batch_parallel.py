"""Batch-parallel layer passes (``descend.nn._blas``) against the serial code.

The sizes here are small, so the tests force the split (``MIN_BYTES`` / ``BATCH_PARALLEL_MIN`` = 0 and 2 or 3
parts, including batches that do not divide evenly) and compare forward values, input gradients and parameter
gradients with ``dc.config.batch_parallel`` off; partial dW / db sums change the summation order, hence the tolerances.
"""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from descend import config, nn
from descend.nn import _blas, _fast, conv

TOL = {np.float64: {"rtol": 1e-12, "atol": 1e-12}, np.float32: {"rtol": 1e-5, "atol": 1e-5}}


@pytest.fixture(params=[2, 3])
def forced(request, monkeypatch):
    monkeypatch.setattr(_blas, "MIN_BYTES", 0)
    monkeypatch.setattr(conv, "BATCH_PARALLEL_MIN", 0)
    monkeypatch.setattr(_blas, "parts", lambda: request.param)
    calls = []
    real = _blas.run

    def run(fn, ranges):
        calls.append(len(ranges))
        return real(fn, ranges)

    monkeypatch.setattr(_blas, "run", run)
    return calls


def _both(monkeypatch, layer, x, input_grad=True, seed=0):
    rng = np.random.default_rng(seed)
    if layer.num_params:
        layer.params[...] = rng.standard_normal(layer.params.size)
    out = []
    for enabled in (True, False):
        with config.using(batch_parallel=enabled):
            y = layer.forward(x)
            dout = np.random.default_rng(seed + 1).standard_normal(y.shape).astype(x.dtype)
            dx = layer.backward(dout, input_grad=input_grad)
        out.append((y.copy(), None if dx is None else dx.copy(), layer.grads.copy() if layer.num_params else None))
    return out


def _check(fast, ref, dtype):
    for a, b in zip(fast, ref, strict=True):
        if a is None or b is None:
            assert a is None and b is None
            continue
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("c_in", [2, 33])  # C·Πk <= 32 (batched GEMM, bias folded) and > 32
@pytest.mark.parametrize("input_grad", [True, False])
def test_conv2d_batch_parallel(monkeypatch, forced, dtype, bias, c_in, input_grad):
    x = np.random.default_rng(1).standard_normal((5, c_in, 6, 7)).astype(dtype)
    layer = nn.Conv2d(c_in, 4, 3, padding=1, bias=bias).astype(dtype)
    fast, ref = _both(monkeypatch, layer, x, input_grad)
    assert max(forced) > 1, "the batch-parallel path was not taken"
    _check(fast, ref, dtype)


def test_conv1d_batch_parallel(monkeypatch, forced):
    layer = nn.Conv1d(12, 3, 5, padding=2).astype(np.float64)
    fast, ref = _both(monkeypatch, layer, np.random.default_rng(2).standard_normal((4, 12, 9)))
    assert max(forced) > 1
    _check(fast, ref, np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("input_grad", [True, False])
def test_linear_batch_parallel(monkeypatch, forced, dtype, input_grad):
    layer = nn.Linear(7, 5).astype(dtype)
    fast, ref = _both(monkeypatch, layer, np.random.default_rng(3).standard_normal((5, 7)).astype(dtype), input_grad)
    assert max(forced) > 1
    _check(fast, ref, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_batch_parallel(monkeypatch, forced, dtype):
    x = np.random.default_rng(4).standard_normal((5, 3, 7)).astype(dtype)
    x[0, 0, :3] = 0.0
    fast, ref = _both(monkeypatch, nn.ReLU(), x)
    assert max(forced) > 1
    for a, b in zip(fast[:2], ref[:2], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(_fast.kernels(np.float32) is None, reason="numba not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cfg", [(2, 2, 0), (3, 2, 1)], ids=str)  # the unrolled 2×2 kernel and the general one
def test_maxpool2d_batch_parallel(monkeypatch, forced, dtype, cfg):
    k, s, p = cfg
    x = np.random.default_rng(5).standard_normal((5, 3, 7, 6)).astype(dtype)
    fast, ref = _both(monkeypatch, nn.MaxPool2d(k, s, p), x)
    assert max(forced) > 1
    for a, b in zip(fast[:2], ref[:2], strict=True):
        np.testing.assert_array_equal(a, b)


def test_slices_cover_the_batch():
    for n in range(1, 12):
        for k in range(1, 5):
            r = _blas.slices(n, k)
            assert r[0][0] == 0 and r[-1][1] == n
            assert all(a[1] == b[0] and b[1] > b[0] for a, b in itertools.pairwise(r))


def test_ranges_small_or_single_thread(monkeypatch):
    assert _blas.ranges(128, 10) is None  # under MIN_BYTES
    monkeypatch.setattr(_blas, "parts", lambda: 1)
    assert _blas.ranges(128, 1 << 30) is None
    monkeypatch.setattr(_blas, "parts", lambda: 4)
    assert _blas.ranges(3, 1 << 30) is None  # fewer rows than parts
    assert _blas.ranges(8, 1 << 30) == [(0, 2), (2, 4), (4, 6), (6, 8)]


@pytest.mark.skipif(_blas._openblas() is None, reason="numpy's OpenBLAS not found")
def test_run_restores_openblas_threads_and_is_serial_when_busy():
    get, _ = _blas._openblas()
    before = get()
    seen = []
    out = _blas.run(lambda lo, hi: seen.append((get(), threading.get_ident())) or hi - lo, [(0, 3), (3, 5)])
    assert out == [3, 2]
    assert get() == before
    assert {t for t, _ in seen} == {1}
    with _blas._lock:  # another section running: serial, OpenBLAS untouched
        seen.clear()
        assert _blas.run(lambda lo, hi: seen.append(get()) or lo, [(0, 1), (1, 2)]) == [0, 1]
        assert seen == [before, before]
