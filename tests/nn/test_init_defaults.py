"""Initialization at construction: presets choose He / Xavier explicitly, containers never re-draw a layer,
and the one rule of adoption (references taken before a container adopts a layer become read-only snapshots)."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from descend import nn


def bound(w):
    return float(np.abs(w).max())


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(a.tobytes()).hexdigest()[:16]


@pytest.mark.parametrize(
    ("activation", "first", "second"),
    [
        ("relu", math.sqrt(2) * math.sqrt(3 / 400), math.sqrt(2) * math.sqrt(3 / 300)),  # He (kaiming_uniform)
        ("tanh", 5 / 3 * math.sqrt(6 / (400 + 300)), 5 / 3 * math.sqrt(6 / (300 + 200))),  # Xavier, gain 5/3
        ("sigmoid", math.sqrt(6 / (400 + 300)), math.sqrt(6 / (300 + 200))),  # Xavier, gain 1
        ("leaky_relu", math.sqrt(2 / 1.0001) * math.sqrt(3 / 400), math.sqrt(2 / 1.0001) * math.sqrt(3 / 300)),
    ],
)
def test_presets_choose_he_or_xavier_for_the_activation_and_torch_default_at_the_output(activation, first, second):
    model = nn.mlp(400, (300, 200), 10, activation=activation, batchnorm=True, dropout=0.1, seed=3)
    hidden = [m for m in model if isinstance(m, nn.Linear)]
    for layer, b in zip(hidden, (first, second, 1 / math.sqrt(200)), strict=True):
        assert 0.97 * b < bound(layer.weight) <= b, layer
        assert not layer.bias.any()


def test_presets_give_the_same_initial_weights_as_before_construction_time_init():
    """Digests of the parameters the presets drew when containers re-drew their layers (published numbers)."""
    assert digest(nn.mlp(784, (256, 128), 10, seed=0).params) == "ae6a8048a2ea193a"
    assert digest(nn.cnn2d(seed=0).params) == "40ea6690f9b0b867"
    assert digest(nn.cnn1d(seed=1, dropout=0.2).params) == "b9094f37021f2fda"
    assert digest(nn.mlp(40, (32,), 10, activation="tanh", batchnorm=True, seed=2).params) == "2b0dd276191898e2"


def test_a_container_never_redraws_a_layer_whatever_follows_it():
    dense, conv = nn.Linear(400, 300), nn.Conv2d(3, 16, 3)
    before = dense.weight.copy(), conv.weight.copy()
    assert 0.98 / 20 < bound(dense.weight) <= 1 / 20  # torch's default U(±1/√fan_in)
    model = nn.Sequential(dense, nn.ReLU(), nn.Linear(300, 2), rng=7)
    np.testing.assert_array_equal(model[0].weight, before[0])  # not re-drawn with He for the ReLU after it
    convs = nn.Sequential(conv, nn.BatchNorm2d(16), nn.MaxPool2d(2), nn.Tanh())
    np.testing.assert_array_equal(convs[0].weight, before[1])


def test_explicit_init_is_kept_and_takes_a_name_with_options():
    model = nn.Sequential(nn.Linear(50, 40, init="zeros", bias_init="ones"), nn.ReLU())
    assert not model[0].weight.any() and np.all(model[0].bias == 1)
    model = nn.Sequential(nn.Linear(50, 40, init="orthogonal"), nn.ReLU())
    w = model[0].weight.astype(np.float64)
    np.testing.assert_allclose(w @ w.T, np.eye(40), atol=1e-5)
    he = nn.Linear(300, 20, init=("kaiming_uniform", {"nonlinearity": "relu"}))
    b = math.sqrt(2) * math.sqrt(3 / 300)
    assert 0.97 * b < bound(he.weight) <= b


def test_one_generator_draws_every_layer_from_one_stream_and_unseeded_layers_start_from_seed_zero():
    gen = np.random.default_rng(4)
    a, b = nn.Linear(20, 20, rng=gen), nn.Linear(20, 20, rng=gen)
    assert abs(np.corrcoef(a.weight.ravel(), b.weight.ravel())[0, 1]) < 0.2
    # Without rng: default_rng(0), the same values for every layer of a shape (documented), and a container's
    # rng does not touch them.
    c, d = nn.Linear(20, 20), nn.Linear(20, 20)
    np.testing.assert_array_equal(c.weight, d.weight)
    np.testing.assert_array_equal(c.weight, nn.Linear(20, 20, rng=0).weight)
    model = nn.Sequential(c, nn.ReLU(), d, rng=1)
    np.testing.assert_array_equal(model[0].weight, model[2].weight)


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


def test_inner_container_keeps_its_values_and_dropout_streams():
    inner = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Dropout(0.5), rng=5)
    before = inner.params.copy()
    stream = inner[2].rng.bit_generator.state
    outer = nn.Sequential(nn.Linear(3, 4), inner, rng=9)
    np.testing.assert_array_equal(outer[1].params, before)
    assert outer[1][2].rng.bit_generator.state == stream  # sealed: its own rng seeded its dropout


def test_unseeded_dropouts_get_distinct_child_generators():
    model = nn.Sequential(nn.Dropout(0.5), nn.Dropout(0.5))
    assert not np.array_equal(model[0].rng.random(8), model[1].rng.random(8))


def test_references_taken_before_adoption_are_read_only_snapshots():
    """The one rule of adoption: earlier references stop aliasing the layer and cannot be written (no silent no-op)."""
    layer = nn.Linear(3, 2)
    w, dw, flat = layer.weight, layer.dweight, layer.params
    values = w.copy()
    model = nn.Sequential(layer, nn.ReLU())
    assert not np.shares_memory(w, model.params)
    np.testing.assert_array_equal(w, values)
    for stale in (w, dw, flat):
        with pytest.raises(ValueError, match="read-only"):
            stale[...] = 0.0
    assert np.shares_memory(layer.weight, model.params)  # the layer's own attributes are rebound
    norm = nn.BatchNorm1d(2)
    stats = norm.running_mean
    model = nn.Sequential(nn.Linear(3, 2), norm)
    assert model[1].running_mean is stats  # buffers of the model's dtype stay the same arrays


def test_references_taken_after_building_stay_valid():
    model = nn.mlp(6, (5,), 3, seed=0)
    w, tree = model[1].weight, model.named_parameters()
    assert tree["1.weight"] is w
    model.params[...] += 1.0
    np.testing.assert_array_equal(w, model.params[: w.size].reshape(w.shape))
    tree["3.bias"][...] = 7.0
    assert np.all(model[3].bias == 7.0)


def test_reset_parameters():
    model = nn.mlp(8, (6,), 2)
    before = model.params.copy()
    model.reset_parameters(np.random.default_rng(42))
    assert not np.array_equal(before, model.params)
    assert np.shares_memory(model[1].weight, model.params)


def test_invalid_init_name_fails_at_construction():
    with pytest.raises(Exception, match="unknown initializer 'he'; valid names are"):
        nn.Linear(3, 2, init="he")
