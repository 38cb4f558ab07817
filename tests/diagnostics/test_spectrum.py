"""Lanczos, Hutchinson, stochastic Lanczos quadrature and saddle detection against numpy.linalg.eigh."""

from __future__ import annotations

import math

import numpy as np
import pytest

import descend as dc
from descend.diagnostics import (
    FunctionObjective,
    HessianOperator,
    Lanczos,
    MatrixOperator,
    ModelObjective,
    bottom_eigenvalues,
    hutchinson_trace,
    saddle_report,
    spectral_density,
    t_quantile,
    top_eigenvalues,
)
from descend.errors import ParameterError
from descend.lab import functions
from tests.diagnostics.conftest import blobs, relu_mlp, small_cnn, tanh_mlp
from tests.diagnostics.twin import exact_hessian, loss_of_flat


def _network(name, data4, images):
    model = {"tanh-mlp": tanh_mlp, "relu-mlp": relu_mlp, "cnn": small_cnn}[name]()
    x, y = images if name == "cnn" else data4
    return model, x, y


@pytest.mark.parametrize("name", ["tanh-mlp", "relu-mlp", "cnn"])
def test_extreme_eigenvalues_match_eigh_of_the_exact_hessian(name, data4, images):
    model, x, y = _network(name, data4, images)
    H = HessianOperator(ModelObjective(model, x, y))
    exact = np.linalg.eigh(exact_hessian(loss_of_flat(model, x, y), H.point))
    lam, vecs = exact
    top = top_eigenvalues(H, 3)
    bottom = bottom_eigenvalues(H, 3)
    assert top.converged and bottom.converged
    np.testing.assert_allclose(top.values, lam[::-1][:3], rtol=1e-6)
    np.testing.assert_allclose(bottom.values, lam[:3], rtol=1e-6, atol=1e-6 * lam[-1])
    assert abs(abs(top.vectors[0] @ vecs[:, -1]) - 1) < 1e-6  # the top eigenvector, up to sign
    assert top.iterations < H.size  # stopped on convergence, not by exhausting the space


def test_lanczos_with_reorthogonalization_has_no_ghost_eigenvalues():
    """n steps on a matrix with clustered and repeated extremes give exactly its eigenvalues (no copies)."""
    rng = np.random.default_rng(0)
    lam = np.concatenate([[100.0, 99.9, 50.0], rng.uniform(-1, 1, 57), [-3.0]])
    q, _ = np.linalg.qr(rng.standard_normal((61, 61)))
    op = MatrixOperator(q @ np.diag(lam) @ q.T)
    lz = Lanczos(op, rng=1)
    while lz.step():
        pass
    theta, _, _ = lz.ritz()
    np.testing.assert_allclose(theta, np.sort(lam), atol=1e-9)
    basis = lz.basis
    np.testing.assert_allclose(basis @ basis.T, np.eye(lz.steps), atol=1e-12)


def test_warm_start_from_the_eigenvector_converges_at_once():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((80, 80))
    op = MatrixOperator(a + a.T)
    cold = top_eigenvalues(op, 1, tol=1e-10)
    warm = top_eigenvalues(op, 1, tol=1e-10, start=cold.vectors[0])
    assert warm.iterations <= 4 < cold.iterations
    assert warm.values[0] == pytest.approx(cold.values[0], rel=1e-12)


def test_hutchinson_trace_is_within_its_interval(data4):
    model, x, y = _network("tanh-mlp", data4, None)
    H = HessianOperator(ModelObjective(model, x, y))
    exact = float(np.trace(exact_hessian(loss_of_flat(model, x, y), H.point)))
    est = hutchinson_trace(H, 200, confidence=0.99, rng=0)
    assert est.low <= exact <= est.high
    assert est.high - est.low < 0.5 * abs(exact)  # and the interval says something


def test_hutchinson_interval_covers_the_trace_as_often_as_it_says():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((30, 30))
    op = MatrixOperator(a @ a.T / 30 - 0.5 * np.eye(30))
    exact = float(np.trace(op.matrix))
    hits = sum(
        hutchinson_trace(op, 10, confidence=0.9, rng=seed).low <= exact <= hutchinson_trace(op, 10, confidence=0.9,
                                                                                            rng=seed).high
        for seed in range(300)
    )  # fmt: skip
    assert 0.85 <= hits / 300 <= 0.95  # binomial(300, 0.9): ± 3 standard deviations is ± 0.052


def test_t_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 5, 9, 30, 200):
        for p in (0.9, 0.95, 0.975, 0.995, 0.05):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=2e-3, abs=1e-4)


def test_spectral_density_matches_the_exact_spectrum():
    rng = np.random.default_rng(1)
    lam = np.concatenate([rng.normal(0.0, 0.3, 150), rng.normal(5.0, 0.3, 50)])
    q, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    op = MatrixOperator(q @ np.diag(lam) @ q.T)
    sd = spectral_density(op, vectors=40, steps=40, sigma=0.3, rng=2)
    dx = sd.grid[1] - sd.grid[0]
    assert np.sum(sd.density) * dx == pytest.approx(1.0, abs=1e-3)
    smoothed = np.exp(-0.5 * ((sd.grid[:, None] - lam[None, :]) / 0.3) ** 2).sum(1) / (200 * 0.3 * math.sqrt(2 * np.pi))
    assert np.sum(np.abs(sd.density - smoothed)) * dx < 0.1  # L1 distance between densities (2 = disjoint)
    # The quadrature reproduces moments: mean and second moment of the spectrum.
    assert sd.moment(1) == pytest.approx(lam.mean(), abs=0.15)
    assert sd.moment(2) == pytest.approx(np.mean(lam**2), rel=0.1)  # 40 vectors: ± 3.5 standard errors
    # Mass of the bulk near 0 vs the outliers near 5: 150 / 50.
    assert np.sum(sd.density[sd.grid < 2.5]) * dx == pytest.approx(0.75, abs=0.05)


def test_quadrature_is_exact_for_low_moments_of_each_vector():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((50, 50))
    op = MatrixOperator(a + a.T)
    sd = spectral_density(op, vectors=1, steps=10, rng=7)
    v = np.random.default_rng(7).standard_normal(50)
    v /= np.linalg.norm(v)
    for k in range(1, 6):  # Gauss quadrature with m nodes is exact up to degree 2m − 1
        assert np.sum(sd.weights[0] * sd.nodes[0] ** k) == pytest.approx(v @ np.linalg.matrix_power(op.matrix, k) @ v)


def test_saddle_function_has_one_negative_direction():
    report = saddle_report(HessianOperator(FunctionObjective.from_problem(functions.saddle(), (0.0, 0.0))))
    assert report.exact and report.negative == 1 and report.is_saddle
    assert report.bottom[0] == pytest.approx(-2.0, abs=1e-8) and report.top == pytest.approx(2.0, abs=1e-8)
    minimum = saddle_report(HessianOperator(FunctionObjective.from_problem(functions.ill_conditioned_quadratic())))
    assert minimum.negative == 0 and not minimum.is_saddle


def test_small_network_at_initialization_is_a_saddle():
    x, y = blobs(64, 6, classes=4, seed=3)
    model = dc.nn.mlp(6, (10, 10), 4, activation="tanh", seed=0)
    H = HessianOperator(ModelObjective(model, x, y))
    lam = np.linalg.eigvalsh(exact_hessian(loss_of_flat(model, x, y), H.point))
    exact = saddle_report(H)
    thr = exact.threshold
    assert exact.exact and exact.negative == int(np.sum(lam < -thr)) > 0 and exact.is_saddle
    np.testing.assert_allclose(exact.bottom, lam[:5], rtol=1e-6, atol=1e-9)
    estimated = saddle_report(H, exact_limit=0, density=spectral_density(H, vectors=20, steps=40, rng=1))
    assert not estimated.exact
    assert estimated.bottom[0] == pytest.approx(lam[0], rel=1e-5)
    assert estimated.negative == pytest.approx(exact.negative, rel=0.35)


def test_bad_arguments_are_refused():
    op = MatrixOperator(np.eye(3))
    with pytest.raises(ParameterError, match=r"top_eigenvalues: k must be an integer in \[1, 3\], got 4"):
        top_eigenvalues(op, 4)
    with pytest.raises(ParameterError, match=r"hutchinson_trace: samples must be an integer in \[2, inf\), got 1"):
        hutchinson_trace(op, 1)
    with pytest.raises(ParameterError, match="expected an operator with size and matvec"):
        spectral_density(np.eye(3))
    with pytest.raises(ParameterError, match="start must be a finite nonzero vector of length 3"):
        top_eigenvalues(op, 1, start=np.zeros(3))
