"""descend.init against torch.nn.init's formulas: fans, gains, empirical statistics, orthogonality, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import descend as dc
from descend.errors import ParameterError

SHAPES = [(3, 4), (7, 3), (5, 3, 3), (8, 4, 3, 3), (2, 3, 4, 5, 6), (1, 1), (16, 1, 5)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_fans_match_torch(shape):
    assert dc.init.calculate_fan_in_and_fan_out(shape) == torch.nn.init._calculate_fan_in_and_fan_out(
        torch.empty(shape)
    )


def test_fans_need_two_dims():
    with pytest.raises(ParameterError, match="fewer than 2 dimensions, got \\(5,\\)"):
        dc.init.calculate_fan_in_and_fan_out((5,))


@pytest.mark.parametrize(
    "args",
    [
        ("linear",),
        ("conv2d",),
        ("sigmoid",),
        ("tanh",),
        ("relu",),
        ("leaky_relu",),
        ("leaky_relu", 0.2),
        ("leaky_relu", 3),
        ("selu",),
        ("conv_transpose3d",),
    ],
    ids=str,
)
def test_gain_matches_torch(args):
    assert dc.init.calculate_gain(*args) == pytest.approx(torch.nn.init.calculate_gain(*args), rel=1e-15)


def test_gain_errors():
    with pytest.raises(ParameterError, match=r"nonlinearity must be one of .*'relu'.*got 'swish'"):
        dc.init.calculate_gain("swish")
    with pytest.raises(ParameterError, match="negative_slope must be a real number, got True"):
        dc.init.calculate_gain("leaky_relu", True)


# (initializer, options, expected (kind, scale) for a shape with fan_in=400, fan_out=250)
SHAPE = (250, 400)
FI, FO = 400, 250
CASES = [
    ("xavier_uniform", {}, ("u", math.sqrt(6 / (FI + FO)))),
    ("xavier_uniform", {"gain": 5 / 3}, ("u", 5 / 3 * math.sqrt(6 / (FI + FO)))),
    ("glorot_normal", {}, ("n", math.sqrt(2 / (FI + FO)))),
    ("xavier_normal", {"gain": 2.0}, ("n", 2 * math.sqrt(2 / (FI + FO)))),
    ("kaiming_uniform", {}, ("u", math.sqrt(2) * math.sqrt(3 / FI))),
    ("he_uniform", {"nonlinearity": "relu", "mode": "fan_out"}, ("u", math.sqrt(2) * math.sqrt(3 / FO))),
    ("kaiming_uniform", {"a": 0.2}, ("u", math.sqrt(2 / 1.04) * math.sqrt(3 / FI))),
    ("kaiming_uniform", {"nonlinearity": "tanh"}, ("u", 5 / 3 * math.sqrt(3 / FI))),
    ("kaiming_normal", {"nonlinearity": "relu"}, ("n", math.sqrt(2 / FI))),
    ("he_normal", {"a": 0.1, "mode": "fan_out"}, ("n", math.sqrt(2 / 1.01) / math.sqrt(FO))),
    ("lecun_uniform", {}, ("u", math.sqrt(3 / FI))),
    ("lecun_normal", {}, ("n", 1 / math.sqrt(FI))),
    ("torch_default", {}, ("u", 1 / math.sqrt(FI))),
    ("uniform", {"a": -0.3, "b": 0.3}, ("u", 0.3)),
    ("normal", {"std": 0.02}, ("n", 0.02)),
]


@pytest.mark.parametrize(("name", "opts", "expected"), CASES, ids=lambda c: str(c))
def test_empirical_statistics(name, opts, expected):
    """1e5 samples: a uniform has max |w| ≈ bound and std = bound/√3; a normal has std σ (1% tolerance)."""
    kind, scale = expected
    w = dc.init.get(name, **opts)(SHAPE, np.random.default_rng(0), np.float64)
    assert w.shape == SHAPE and w.dtype == np.float64
    assert abs(w.mean()) < 4 * w.std() / math.sqrt(w.size)
    if kind == "u":
        assert np.abs(w).max() <= scale
        assert np.abs(w).max() > 0.999 * scale
        assert w.std() == pytest.approx(scale / math.sqrt(3), rel=0.01)
    else:
        assert w.std() == pytest.approx(scale, rel=0.01)


def test_kaiming_matches_torch_bound_for_conv_kernels():
    shape = (64, 32, 7, 7)  # fan_in = 32·49
    w = dc.init.kaiming_uniform(shape, np.random.default_rng(1), nonlinearity="relu")
    t = torch.nn.init.kaiming_uniform_(torch.empty(shape), nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / (32 * 49))
    assert np.abs(w).max() <= bound and t.abs().max().item() <= bound
    assert w.std() == pytest.approx(t.std().item(), rel=0.02)


@pytest.mark.parametrize("shape", [(6, 6), (10, 4), (4, 10), (8, 3, 3, 3), (3, 2, 5)], ids=str)
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal(shape, gain):
    w = dc.init.orthogonal(shape, np.random.default_rng(0), np.float64, gain=gain)
    assert w.shape == shape
    m = w.reshape(shape[0], -1)
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(gram.shape[0]), atol=1e-12)


def test_orthogonal_needs_two_dims():
    with pytest.raises(ParameterError, match="only shapes with 2 or more dimensions"):
        dc.init.orthogonal((5,), 0)


def test_deterministic_seeded_and_dtype():
    a = dc.init.xavier_normal((20, 30), np.random.default_rng(7))
    b = dc.init.xavier_normal((20, 30), np.random.default_rng(7))
    c = dc.init.xavier_normal((20, 30), np.random.default_rng(8))
    d = dc.init.xavier_normal((20, 30), 7, dtype=np.float64)  # an int seed is accepted
    assert a.dtype == np.float32 and d.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_allclose(a, d, rtol=1e-6)  # same draws, cast once


def test_global_random_state_is_never_used():
    np.random.seed(123)  # noqa: NPY002 (checking it is untouched)
    state = np.random.get_state()[1].copy()  # noqa: NPY002 (checking it is untouched)
    dc.init.kaiming_normal((10, 10), np.random.default_rng(0))
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002


def test_constant_zeros_ones():
    np.testing.assert_array_equal(dc.init.zeros((2, 3)), np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(dc.init.ones((4,), dtype=np.float64), np.ones(4))
    w = dc.init.constant((2, 2), None, value=0.5)
    assert w.dtype == np.float32 and np.all(w == 0.5)
    assert dc.init.get("constant", value=3.0)((3,), None)[0] == 3.0


def test_zero_size_shapes():
    for name in ("xavier_uniform", "kaiming_normal", "orthogonal", "lecun_uniform"):
        assert dc.init.get(name)((0, 5), np.random.default_rng(0)).shape == (0, 5)


def test_registry():
    for name in dc.init.names():
        fn = dc.init.get(name)
        shape = (4, 3)
        w = fn(shape, np.random.default_rng(0))
        assert w.shape == shape and w.dtype == np.float32
    assert dc.init.get("he_normal") is dc.init.kaiming_normal
    assert dc.init.get("glorot_uniform") is dc.init.xavier_uniform

    def custom(shape, rng, dtype=np.float32):
        return np.full(shape, 2.0, dtype)

    assert dc.init.get(custom) is custom


def test_registry_errors_list_valid_names():
    with pytest.raises(ParameterError, match=r"unknown initializer 'hee_normal'; valid names are .*he_normal.*xavier"):
        dc.init.get("hee_normal")
    with pytest.raises(ParameterError, match="does not accept \\['gian'\\]"):
        dc.init.get("xavier_uniform", gian=2.0)
    with pytest.raises(ParameterError, match="init must be an initializer name"):
        dc.init.get(3)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: dc.init.kaiming_uniform((3, 4), 0, mode="fan_avg"),
            "kaiming_uniform: mode must be one of 'fan_in', 'fan_out', got 'fan_avg'",
        ),
        (lambda: dc.init.kaiming_normal((3, 4), 0, nonlinearity="swish"), "nonlinearity must be one of .* got 'swish'"),
        (
            lambda: dc.init.xavier_uniform((3, 4), None),
            "xavier_uniform: rng must be a np.random.Generator or a non-negative int seed, got None",
        ),
        (
            lambda: dc.init.xavier_uniform((3, -4), 0),
            "xavier_uniform: shape must be a tuple of non-negative ints, got \\(3, -4\\)",
        ),
        (
            lambda: dc.init.xavier_uniform((3, 4), 0, gain=-1.0),
            "xavier_uniform: gain must be in \\[0, inf\\), got -1.0",
        ),
        (
            lambda: dc.init.xavier_uniform((3, 4), 0, dtype=np.int32),
            "xavier_uniform: dtype must be a floating dtype, got int32",
        ),
        (lambda: dc.init.xavier_uniform((4,), 0), "fewer than 2 dimensions"),
        (lambda: dc.init.uniform((2,), 0, a=1.0, b=0.0), "uniform: a must be <= b"),
        (lambda: dc.init.normal((2,), 0, std=-1.0), "normal: std must be in \\[0, inf\\)"),
    ],
    ids=["mode", "nonlinearity", "rng", "shape", "gain", "dtype", "fans", "uniform", "normal"],
)
def test_validation_messages(call, message):
    with pytest.raises(ParameterError, match=message):
        call()
