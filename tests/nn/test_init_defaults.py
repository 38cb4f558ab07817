"""Seeding and the context-dependent default initialization (He before ReLU, Xavier before tanh...)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from descend import nn


def bound(w):
    return float(np.abs(w).max())


def test_he_before_relu_xavier_before_tanh_torch_default_at_the_output():
    model = nn.Sequential(
        nn.Linear(400, 300), nn.ReLU(), nn.Linear(300, 200), nn.Tanh(), nn.Linear(200, 100), nn.Sigmoid(),
        nn.Linear(100, 50), nn.Dropout(0.1), nn.LeakyReLU(0.2), nn.Linear(50, 10),
    )  # fmt: skip
    expected = {
        0: math.sqrt(2) * math.sqrt(3 / 400),  # He (kaiming_uniform, relu)
        2: 5 / 3 * math.sqrt(6 / (300 + 200)),  # Xavier, gain 5/3
        4: math.sqrt(6 / (200 + 100)),  # Xavier, gain 1
        6: math.sqrt(2 / 1.04) * math.sqrt(3 / 100),  # He with slope 0.2 (Dropout skipped)
        9: 1 / math.sqrt(50),  # torch's default: nothing follows
    }
    for i, b in expected.items():
        assert 0.98 * b < bound(model[i].weight) <= b, i
        assert not model[i].bias.any()


def test_conv_init_looks_past_norm_and_pool():
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.MaxPool2d(2), nn.ReLU())
    b = math.sqrt(2) * math.sqrt(3 / 27)
    assert 0.95 * b < bound(model[0].weight) <= b


def test_standalone_layer_uses_torch_default():
    layer = nn.Linear(100, 30)
    assert 0.98 / 10 < bound(layer.weight) <= 1 / 10


def test_explicit_init_is_kept():
    model = nn.Sequential(nn.Linear(50, 40, init="zeros", bias_init="ones"), nn.ReLU())
    assert not model[0].weight.any() and np.all(model[0].bias == 1)
    model = nn.Sequential(nn.Linear(50, 40, init="orthogonal"), nn.ReLU())
    w = model[0].weight.astype(np.float64)
    np.testing.assert_allclose(w @ w.T, np.eye(40), atol=1e-5)


def test_unseeded_layers_draw_from_one_stream():
    model = nn.Sequential(nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 20), nn.ReLU())
    a, b = model[0].weight, model[2].weight
    assert not np.allclose(a, b)
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.2
    again = nn.Sequential(nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 20), nn.ReLU())
    np.testing.assert_array_equal(model.params, again.params)  # deterministic
    other = nn.Sequential(nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 20), nn.ReLU(), rng=1)
    assert not np.array_equal(model.params, other.params)


def test_explicitly_seeded_layers_keep_their_values():
    layer = nn.Linear(6, 4, rng=np.random.default_rng(3), init="xavier_normal")
    before = layer.weight.copy()
    model = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), layer)
    np.testing.assert_array_equal(model[2].weight, before)


def test_loaded_values_survive_a_container():
    layer = nn.Linear(3, 2)
    layer.load_state_dict({"weight": np.full((2, 3), 0.5), "bias": np.zeros(2)})
    model = nn.Sequential(layer, nn.ReLU())
    assert np.all(model[0].weight == 0.5)


def test_sealed_inner_container_is_not_redrawn():
    inner = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), rng=5)
    before = inner.params.copy()
    outer = nn.Sequential(nn.Linear(3, 4), inner, rng=9)
    np.testing.assert_array_equal(outer[1].params, before)


def test_reset_parameters():
    model = nn.mlp(8, (6,), 2)
    before = model.params.copy()
    model.reset_parameters(np.random.default_rng(42))
    assert not np.array_equal(before, model.params)
    assert np.shares_memory(model[1].weight, model.params)


def test_invalid_init_name_fails_at_construction():
    with pytest.raises(Exception, match="unknown initializer 'he'; valid names are"):
        nn.Linear(3, 2, init="he")
