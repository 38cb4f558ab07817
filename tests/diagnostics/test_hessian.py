"""Hessian-vector products: against torch's exact autograd Hessian, column by column, and without torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import descend as dc
from descend.diagnostics import (
    FunctionObjective,
    HessianOperator,
    ModelObjective,
    PreconditionedOperator,
    adam_preconditioner,
)
from descend.errors import DescendError, ParameterError
from descend.lab import functions
from tests.diagnostics.conftest import blobs, relu_mlp, small_cnn, tanh_mlp
from tests.diagnostics.twin import exact_hessian, exact_hvp, loss_of_flat


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


NETWORKS = {
    "tanh-mlp": (tanh_mlp, "vectors", "cross_entropy"),
    "relu-mlp": (relu_mlp, "vectors", "cross_entropy"),
    "relu-mlp-mse": (relu_mlp, "vectors", "mse"),
    "leaky-gelu": (
        lambda: dc.nn.Sequential(
            dc.nn.Linear(4, 7), dc.nn.LeakyReLU(0.1), dc.nn.Linear(7, 5), dc.nn.GELU(), dc.nn.Linear(5, 3), rng=4
        ),
        "vectors",
        "cross_entropy",
    ),
    "cnn-maxpool": (small_cnn, "images", "cross_entropy"),
    "cnn-overlapping-maxpool": (
        lambda: dc.nn.Sequential(
            dc.nn.Reshape(1, 6, 6),
            dc.nn.Conv2d(1, 2, 3, padding=1),
            dc.nn.ReLU(),
            dc.nn.MaxPool2d(3, stride=2, padding=1),
            dc.nn.Flatten(),
            dc.nn.Linear(18, 3),
            rng=6,
        ),
        "images",
        "cross_entropy",
    ),
}


def _setup(name: str, data4, images):
    make, kind, loss = NETWORKS[name]
    model = make()
    x, y = data4 if kind == "vectors" else images
    if loss == "mse":
        y = np.eye(3)[y]
    return model, x, y, loss


@pytest.mark.parametrize("name", list(NETWORKS))
def test_hvp_matches_torch_autograd_hvp(name, data4, images):
    model, x, y, loss = _setup(name, data4, images)
    f = loss_of_flat(model, x, y, loss)
    H = HessianOperator(ModelObjective(model, x, y, loss))
    rng = np.random.default_rng(0)
    for _ in range(3):
        v = rng.standard_normal(H.size)
        assert _rel(H @ v, exact_hvp(f, H.point, v)) < 1e-8


@pytest.mark.parametrize("name", ["tanh-mlp", "relu-mlp", "cnn-maxpool"])
def test_dense_hessian_column_by_column_matches_torch_hessian(name, data4, images):
    model, x, y, loss = _setup(name, data4, images)
    H = HessianOperator(ModelObjective(model, x, y, loss))
    dense = H.dense()
    exact = exact_hessian(loss_of_flat(model, x, y, loss), H.point)
    assert H.matvecs == H.size  # one product per column
    assert _rel(dense, exact) < 1e-8
    np.testing.assert_allclose(dense, dense.T)


def test_dense_hessian_matches_second_differences_of_the_loss():
    """A torch-free oracle: H_ij from four loss values, (L(+i+j) − L(+i−j) − L(−i+j) + L(−i−j)) / 4h²."""
    model = dc.nn.mlp(2, (3,), 2, activation="tanh", seed=7)
    x, y = blobs(12, 2, classes=2, seed=1)
    obj = ModelObjective(model, x, y)
    H = HessianOperator(obj).dense()
    theta, n, h = obj.point, obj.size, 1e-4
    ref = np.empty((n, n))
    eye = np.eye(n) * h
    for i in range(n):
        for j in range(n):
            ref[i, j] = (
                obj.value(theta + eye[i] + eye[j])
                - obj.value(theta + eye[i] - eye[j])
                - obj.value(theta - eye[i] + eye[j])
                + obj.value(theta - eye[i] - eye[j])
            ) / (4 * h * h)
    np.testing.assert_allclose(H, ref, atol=2e-6 * np.abs(ref).max())


def test_frozen_kinks_make_the_difference_on_a_relu_network():
    """Across a ReLU kink a plain central difference of gradients is not the Hessian; freezing the masks is."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 20)).astype(np.float32)
    y = rng.integers(0, 4, 200)
    model = dc.nn.mlp(20, (32, 32), 4, seed=0)
    f = loss_of_flat(model, x, y)
    obj = ModelObjective(model, x, y)
    step = 1e-3  # large on purpose: many pre-activations change sign between θ − tv and θ + tv
    H = HessianOperator(obj, step=step)
    v = rng.standard_normal(H.size)
    exact = exact_hvp(f, H.point, v)
    t = step * max(np.linalg.norm(H.point), 1) / np.linalg.norm(v)
    naive = (obj.gradient(H.point + t * v) - obj.gradient(H.point - t * v)) / (2 * t)
    assert _rel(naive, exact) > 1e-2
    assert _rel(H @ v, exact) < 1e-5


def test_l2_penalty_is_part_of_the_hessian(data4):
    model = tanh_mlp()
    x, y = data4
    H = HessianOperator(ModelObjective(model, x, y, l2=0.3))
    v = np.random.default_rng(1).standard_normal(H.size)
    assert _rel(H @ v, exact_hvp(loss_of_flat(model, x, y, l2=0.3), H.point, v)) < 1e-8


def test_a_product_costs_two_gradients_and_the_model_is_untouched(data4):
    model = relu_mlp()
    before = model.params.copy()
    x, y = data4
    H = HessianOperator(ModelObjective(model, x, y, chunk_size=16))  # 3 chunks: results do not depend on it
    v = np.ones(H.size)
    start = H.gradient_evaluations
    hv = H @ v
    assert H.gradient_evaluations - start == 2
    assert model.params.dtype == np.float32 and np.array_equal(model.params, before)
    whole = HessianOperator(ModelObjective(model, x, y)) @ v
    np.testing.assert_allclose(hv, whole, rtol=1e-9, atol=1e-12)


def test_saddle_function_hessian_is_exact():
    H = HessianOperator(FunctionObjective.from_problem(functions.saddle()))
    np.testing.assert_allclose(H.dense(), np.diag([2.0, -2.0]), atol=1e-9)


def test_preconditioned_operator_has_the_eigenvalues_of_p_inverse_h(data4):
    model = tanh_mlp()
    x, y = data4
    H = HessianOperator(ModelObjective(model, x, y))
    p = np.random.default_rng(2).uniform(0.1, 2.0, H.size)
    P = PreconditionedOperator(H, p)
    m = np.column_stack([P @ e for e in np.eye(H.size)])
    dense = H.dense()
    expected = np.sort(np.linalg.eigvals(dense / p[:, None]).real)
    np.testing.assert_allclose(np.linalg.eigvalsh(0.5 * (m + m.T)), expected, rtol=1e-7, atol=1e-9)


def test_adam_preconditioner_matches_torch_adam_state():
    rng = np.random.default_rng(0)
    w = rng.standard_normal(6)
    tx = dc.optim.adam(lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    state = tx.init(w)
    wt = torch.tensor(w, requires_grad=True)
    opt = torch.optim.Adam([wt], lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    for _ in range(5):
        g = rng.standard_normal(6)
        _, state = tx.update(g, state, w)
        wt.grad = torch.tensor(g)
        opt.step()
    v = opt.state[wt]["exp_avg_sq"].numpy()
    t = 5
    expected = (1 - 0.8**t) * (np.sqrt(v / (1 - 0.99**t)) + 1e-6)
    np.testing.assert_allclose(adam_preconditioner(state, (0.8, 0.99), 1e-6), expected, rtol=1e-12)
    with pytest.raises(ParameterError, match="no Adam state"):
        adam_preconditioner(dc.optim.sgd(lr=0.1).init(w))


def test_bad_input_is_one_clear_error(data4):
    x, y = data4
    model = tanh_mlp()
    with pytest.raises(DescendError, match=r"x and y must hold the same number"):
        ModelObjective(model, x, y[:-1])
    with pytest.raises(ParameterError, match=r"loss must be one of .* got 'hinge'"):
        ModelObjective(model, x, y, "hinge")
    with pytest.raises(ParameterError, match=r"model must be a descend\.nn\.Module, got str"):
        ModelObjective("mlp", x, y)
    H = HessianOperator(ModelObjective(model, x, y))
    with pytest.raises(ParameterError, match=rf"v must have shape \({H.size},\), got \(3,\)"):
        H @ np.ones(3)
    with pytest.raises(ParameterError, match=r"step must be in \(0, 0.01\], got 0.5"):
        HessianOperator(ModelObjective(model, x, y), step=0.5)
    with pytest.raises(ParameterError, match="point must be finite"):
        HessianOperator(ModelObjective(model, x, y), np.full(H.size, np.nan))
    with pytest.raises(ParameterError, match="preconditioner must be > 0"):
        PreconditionedOperator(H, np.zeros(H.size))


def test_two_operators_on_one_objective_keep_their_own_kink_patterns(data4):
    model = relu_mlp()
    x, y = data4
    obj = ModelObjective(model, x, y)
    far = obj.point + np.random.default_rng(3).standard_normal(obj.size)
    H0 = HessianOperator(obj)
    H1 = HessianOperator(obj, far)  # records other ReLU masks
    v = np.random.default_rng(4).standard_normal(obj.size)
    f = loss_of_flat(model, x, y)
    assert _rel(H0 @ v, exact_hvp(f, H0.point, v)) < 1e-8
    assert _rel(H1 @ v, exact_hvp(f, far, v)) < 1e-8
