"""Gradient noise scale against per-example gradients; filter-normalized slices and the trajectory PCA."""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc
from descend.diagnostics import ModelObjective
from descend.diagnostics.landscape import (
    filter_normalized_direction,
    plane_losses,
    slice_1d,
    slice_2d,
    trajectory_pca,
)
from descend.diagnostics.noise import exact_noise_scale, gradient_noise_scale, noise_scale_from_norms
from descend.errors import ParameterError
from tests.diagnostics.conftest import blobs, small_cnn, tanh_mlp


def test_noise_scale_formulas_recover_trace_and_gradient_exactly():
    """E|G_B|² = |G|² + tr Σ / B: feed the exact expectations, get the exact ingredients back."""
    g2, tr = 0.37, 12.5
    b, trace, grad_sq = noise_scale_from_norms(g2 + tr / 8, g2 + tr / 128, 8, 128)
    assert trace == pytest.approx(tr) and grad_sq == pytest.approx(g2) and b == pytest.approx(tr / g2)
    with pytest.raises(ParameterError, match="1 <= small < big, got 8 and 8"):
        noise_scale_from_norms(1.0, 1.0, 8, 8)


def test_noise_scale_estimate_matches_per_example_gradients():
    x, y = blobs(120, 4, seed=2)
    obj = ModelObjective(tanh_mlp(), x, y)
    exact_b, exact_trace, exact_g2 = exact_noise_scale(obj)
    est = gradient_noise_scale(obj, small=4, big=64, draws=400, rng=0)
    assert est.trace_sigma == pytest.approx(exact_trace, rel=0.1)
    assert est.grad_sq == pytest.approx(exact_g2, rel=0.15)
    assert est.b_simple == pytest.approx(exact_b, rel=0.2)
    # B_simple is a batch size: it grows as the gradient shrinks relative to its noise.
    assert 1 < exact_b < 10_000


def test_filter_normalized_direction_has_the_filter_norms():
    model = small_cnn()
    d = filter_normalized_direction(model, rng=1)
    conv_w = model.layers[1].weight.astype(np.float64)
    info = {p.name: p for p in model.layout}
    w = info["1.weight"]
    dw = d[w.offset : w.offset + w.size].reshape(w.shape)
    np.testing.assert_allclose(
        np.linalg.norm(dw.reshape(2, -1), axis=1), np.linalg.norm(conv_w.reshape(2, -1), axis=1), rtol=1e-6
    )
    lin = info["5.weight"]
    np.testing.assert_allclose(
        np.linalg.norm(d[lin.offset : lin.offset + lin.size].reshape(lin.shape), axis=1),
        np.linalg.norm(model.layers[5].weight.astype(np.float64), axis=1),
        rtol=1e-6,
    )
    for name in ("1.bias", "5.bias"):
        assert not np.any(d[info[name].offset : info[name].offset + info[name].size])
    # Scale invariance, the point of the normalization: 10x the weights, 10x the direction.
    scaled = small_cnn()
    scaled.params[...] *= 10
    d10 = filter_normalized_direction(scaled, rng=1)
    np.testing.assert_allclose(d10[w.offset : w.offset + w.size], 10 * dw.reshape(-1), rtol=1e-5)


def test_slices_pass_through_the_point_and_agree():
    x, y = blobs(50, 4)
    obj = ModelObjective(tanh_mlp(), x, y)
    d1 = filter_normalized_direction(obj.model, rng=0)
    d2 = filter_normalized_direction(obj.model, rng=1)
    a = np.linspace(-1, 1, 5)
    line = slice_1d(obj, d1, a)
    grid = slice_2d(obj, d1, d2, a, a)
    assert line[2] == pytest.approx(obj.value(obj.point))
    np.testing.assert_allclose(grid[2], line)  # β = 0 row is the 1-D slice
    assert grid.shape == (5, 5)


def test_trajectory_pca_recovers_the_plane_of_a_planar_path():
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((50, 2)))
    t = np.linspace(0, 3, 30)
    coords = np.stack([np.cos(t) * 3, np.sin(2 * t)], axis=1)
    path = coords @ basis.T + 7.0
    plane = trajectory_pca(path)
    # The directions span the same plane, and the path is exactly in it.
    proj = plane.directions.T @ (plane.directions @ (path - plane.origin).T)
    np.testing.assert_allclose(proj.T, path - plane.origin, atol=1e-10)
    assert plane.explained.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(plane.coords[-1], 0.0, atol=1e-12)
    with pytest.raises(ParameterError, match=r"T >= 3 parameter vectors, got shape \(2, 50\)"):
        trajectory_pca(path[:2])


def test_plane_losses_cover_the_path():
    x, y = blobs(30, 4)
    model = tanh_mlp()
    obj = ModelObjective(model, x, y)
    tx = dc.optim.sgd(lr=0.5)
    state = tx.init(model.params)
    snaps = []
    for _ in range(6):
        snaps.append(model.params.astype(np.float64))
        g = obj.gradient(model.params.astype(np.float64))
        updates, state = tx.update(g.astype(np.float32), state, model.params)
        model.params[...] = dc.optim.apply_updates(model.params, updates)
    plane = trajectory_pca(snaps)
    a, b, z = plane_losses(obj, plane, points=5)
    assert a[0] <= plane.coords[:, 0].min() and a[-1] >= plane.coords[:, 0].max()
    assert b[0] <= plane.coords[:, 1].min() and b[-1] >= plane.coords[:, 1].max()
    assert z.shape == (5, 5) and np.all(np.isfinite(z))
