"""erf accuracy (it decides GELU's gradcheck), dtype preservation, activation registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from descend import nn
from descend.errors import ParameterError


def test_erf_float64_matches_math_erf():
    x = np.concatenate([np.linspace(-30, 30, 20001), [0.0, -0.0, 0.46875, -0.46875, 4.0, -4.0, 1e-300, 27.0, 1e300]])
    ours = nn.erf(x)
    ref = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(ours, ref, rtol=1e-15, atol=1e-300)  # within 2 ulp
    assert ours.dtype == np.float64


def test_erf_float32_stays_float32_and_is_accurate():
    x = np.linspace(-8, 8, 400001, dtype=np.float32)
    ours = nn.erf(x)
    assert ours.dtype == np.float32
    exact = torch.erf(torch.from_numpy(x.astype(np.float64))).numpy()
    np.testing.assert_allclose(ours, exact, rtol=0, atol=5e-7)  # torch's float32 erf is off by 4e-7 too
    assert np.all(np.abs(ours) <= 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_erf_special_values(dtype):
    out = nn.erf(np.array([np.inf, -np.inf, np.nan, 0.0], dtype))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out[[0, 1, 3]], [1.0, -1.0, 0.0])
    assert np.isnan(out[2])
    assert nn.erf(np.array(0.3)).shape == ()


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_large_inputs_no_warnings(approximate):
    x = np.array([-50.0, -10.0, 0.0, 10.0, 50.0], np.float32)
    layer = nn.GELU(approximate)
    y = layer(x)
    np.testing.assert_allclose(y, [0, 0, 0, 10, 50], atol=1e-5)
    assert np.all(np.isfinite(layer.backward(np.ones_like(x))))


def test_sigmoid_extreme_inputs_no_overflow():
    y = nn.Sigmoid()(np.array([-1e4, 0.0, 1e4], np.float32))
    np.testing.assert_array_equal(y, [0.0, 0.5, 1.0])


def test_activation_registry():
    assert isinstance(nn.activation("relu"), nn.ReLU)
    assert nn.activation("gelu_tanh").approximate == "tanh"
    relu = nn.ReLU()
    assert nn.activation(relu) is relu
    with pytest.raises(ParameterError, match="unknown activation 'swish'; valid names are gelu, gelu_tanh"):
        nn.activation("swish")
    with pytest.raises(ParameterError, match="GELU: approximate must be one of 'none', 'tanh', got 'erf'"):
        nn.GELU("erf")
