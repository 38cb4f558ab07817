"""Model presets (shapes, sizes vs torch twins, behaviour) and the L1/L2 penalty helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from descend import nn

T = torch.nn


def count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_mlp_structure_and_size():
    model = nn.mlp(784, (256, 128), 10)
    twin = T.Sequential(T.Flatten(), T.Linear(784, 256), T.ReLU(), T.Linear(256, 128), T.ReLU(), T.Linear(128, 10))
    assert model.num_params == count(twin) == 235146
    assert list(model.named_parameters()) == [k for k, _ in twin.named_parameters()]
    assert model(np.zeros((3, 1, 28, 28), np.float32)).shape == (3, 10)  # Flatten first: images work too
    with_dropout = nn.mlp(784, (64,), 10, dropout=0.2, activation="tanh", batchnorm=True)
    assert [type(m).__name__ for m in with_dropout] == [
        "Flatten", "Linear", "BatchNorm1d", "Tanh", "Dropout", "Linear",
    ]  # fmt: skip


def test_cnn2d_structure_and_size():
    model = nn.cnn2d()
    twin = T.Sequential(
        T.Conv2d(1, 32, 3, padding=1), T.ReLU(), T.MaxPool2d(2), T.Conv2d(32, 64, 3, padding=1), T.ReLU(),
        T.MaxPool2d(2), T.Flatten(), T.Linear(3136, 128), T.ReLU(), T.Linear(128, 10),
    )  # fmt: skip
    assert model.num_params == count(twin)
    x = np.random.default_rng(0).standard_normal((2, 784)).astype(np.float32)
    assert model(x).shape == (2, 10)
    np.testing.assert_array_equal(model(x), model(x.reshape(2, 1, 28, 28)))


def test_cnn2d_matches_torch_twin_with_same_weights():
    model = nn.cnn2d(channels=(4, 8), hidden=16)
    twin = T.Sequential(
        T.Unflatten(1, (1, 28, 28)), T.Conv2d(1, 4, 3, padding=1), T.ReLU(), T.MaxPool2d(2),
        T.Conv2d(4, 8, 3, padding=1), T.ReLU(), T.MaxPool2d(2), T.Flatten(), T.Linear(392, 16), T.ReLU(),
        T.Linear(16, 10),
    )  # fmt: skip
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((3, 784)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(model(x), twin(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)


def test_cnn1d_for_mnist1d():
    model = nn.cnn1d()
    x = np.random.default_rng(0).standard_normal((5, 40)).astype(np.float32)
    assert model(x).shape == (5, 10)
    assert model[-1].weight.shape == (10, 128) and model[-3].weight.shape == (128, 64 * 10)


def test_logistic():
    model = nn.logistic(784, 10)
    assert model.num_params == 7850 and not model.params.any()
    loss, _ = nn.cross_entropy(model(np.ones((2, 784))), np.array([1, 2]))
    assert loss == pytest.approx(np.log(10))


def test_presets_are_seeded():
    np.testing.assert_array_equal(nn.mlp(10, (8,), 3).params, nn.mlp(10, (8,), 3).params)
    assert not np.array_equal(nn.mlp(10, (8,), 3, seed=1).params, nn.mlp(10, (8,), 3).params)
    uniform = nn.mlp(10, (8,), 3, init="xavier_uniform")
    b = np.sqrt(6 / 18)
    assert np.abs(uniform[1].weight).max() <= b


def _model():
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))


def test_l2_penalty_weights_only():
    model = _model()
    model.params[:] = np.arange(model.params.size, dtype=np.float32) / 10 - 1
    model.grads[:] = 1.0
    lam = 0.3
    w0, w3 = model[0].weight.copy(), model[3].weight.copy()
    value = nn.l2_penalty(model, lam)
    assert value == pytest.approx(lam / 2 * ((w0**2).sum() + (w3**2).sum()), rel=1e-6)
    np.testing.assert_allclose(model[0].dweight, 1 + lam * w0, rtol=1e-6)
    np.testing.assert_allclose(model[3].dweight, 1 + lam * w3, rtol=1e-6)
    for name in ("0.bias", "1.weight", "1.bias", "3.bias"):
        assert np.all(model.named_grads()[name] == 1.0), name


def test_l1_penalty_weights_only():
    model = _model()
    model.grads[:] = 0.0
    lam = 0.05
    value = nn.l1_penalty(model, lam)
    w = np.concatenate([model[0].weight.ravel(), model[3].weight.ravel()])
    assert value == pytest.approx(lam * np.abs(w).sum(), rel=1e-6)
    np.testing.assert_allclose(model[0].dweight, lam * np.sign(model[0].weight))
    assert not model[0].dbias.any() and not model[1].dweight.any()


def test_penalty_with_custom_mask_and_zero_lambda():
    model = _model()
    model.grads[:] = 0.0
    everything = np.ones_like(model.params)
    value = nn.l2_penalty(model, 2.0, mask=everything)
    assert value == pytest.approx(float((model.params.astype(np.float64) ** 2).sum()), rel=1e-6)
    np.testing.assert_allclose(model.grads, 2.0 * model.params)
    model.grads[:] = 0.0
    assert nn.l2_penalty(model, 0.0) == 0.0 and nn.l1_penalty(model, 0.0) == 0.0
    assert not model.grads.any()


def test_l2_penalty_gradient_matches_finite_difference():
    model = nn.mlp(5, (4,), 2, dtype=np.float64)
    model.grads[:] = 0.0
    lam, eps = 0.7, 1e-6
    nn.l2_penalty(model, lam)
    analytic = model.grads.copy()
    i = model.layout[0].offset + 3
    model.params[i] += eps
    plus = nn.l2_penalty(model, lam)
    model.params[i] -= 2 * eps
    minus = nn.l2_penalty(model, lam)
    assert analytic[i] == pytest.approx((plus - minus) / (2 * eps), rel=1e-6)
