"""Clear errors: wrong input shapes name the layer, what it expected and what it got; bad hyperparameters."""

# ruff: noqa: E501  (one line per case, tinygrad style)

from __future__ import annotations

import numpy as np
import pytest

from descend import nn
from descend.errors import DescendError, ParameterError
from descend.nn import ShapeError


def test_wrong_input_shape_in_a_model_names_the_layer_and_shapes():
    model = nn.mlp(784, (256, 128), 10)
    with pytest.raises(
        ShapeError, match=r"Linear\(784, 256\) at '1': expected input of shape \(\*, 784\), got \(128, 785\)"
    ):
        model(np.zeros((128, 785), np.float32))
    cnn = nn.cnn2d()
    with pytest.raises(
        ShapeError, match=r"Reshape\(1, 28, 28\) at '0': cannot reshape an input of shape \(2, 3, 28, 28\)"
    ):
        cnn(np.zeros((2, 3, 28, 28), np.float32))


@pytest.mark.parametrize(
    ("layer", "shape", "message"),
    [
        (
            lambda: nn.Conv2d(3, 8, 3),
            (2, 1, 9, 9),
            r"Conv2d\(3, 8, kernel_size=\(3, 3\), stride=\(1, 1\)\): expected input of shape \(N, 3, H, W\), got \(2, 1, 9, 9\)",
        ),
        (lambda: nn.Conv2d(3, 8, 3), (3, 9, 9), r"expected input of shape \(N, 3, H, W\), got \(3, 9, 9\)"),
        (lambda: nn.Conv1d(1, 8, 5), (2, 1, 3), r"input of shape \(2, 1, 3\) is smaller than the kernel \(5,\)"),
        (
            lambda: nn.MaxPool2d(2),
            (2, 3, 9),
            r"MaxPool2d\(kernel_size=\(2, 2\), stride=\(2, 2\)\): expected input of shape \(N, C, H, W\), got \(2, 3, 9\)",
        ),
        (
            lambda: nn.BatchNorm2d(4),
            (2, 3, 5, 5),
            r"BatchNorm2d\(4, .*\): expected input of shape \(N, 4, H, W\), got \(2, 3, 5, 5\)",
        ),
        (lambda: nn.BatchNorm1d(4), (2, 3), r"expected input of shape \(N, 4\) or \(N, 4, L\), got \(2, 3\)"),
        (
            lambda: nn.LayerNorm((3, 4)),
            (2, 4, 3),
            r"LayerNorm\(\(3, 4\).*\): expected input of shape \(\*, 3, 4\), got \(2, 4, 3\)",
        ),
        (lambda: nn.Flatten(2), (4,), r"cannot flatten dims 2..-1 of an input of shape \(4,\)"),
        (lambda: nn.Softmax(dim=2), (3, 4), r"dim 2 is out of range for an input of shape \(3, 4\)"),
        (
            lambda: nn.Residual(nn.Linear(3, 2)),
            (5, 3),
            r"Residual\(Linear\): the block maps shape \(5, 3\) to \(5, 2\)",
        ),
    ],
    ids=[
        "conv_channels",
        "conv_ndim",
        "conv_small",
        "pool_ndim",
        "bn2d",
        "bn1d",
        "layernorm",
        "flatten",
        "softmax",
        "residual",
    ],
)
def test_shape_errors(layer, shape, message):
    with pytest.raises(ShapeError, match=message):
        layer()(np.zeros(shape, np.float32))


def test_backward_errors():
    layer = nn.Linear(3, 2)
    with pytest.raises(RuntimeError, match=r"Linear\(3, 2\): backward called before forward"):
        layer.backward(np.zeros((1, 2)))
    layer(np.zeros((4, 3)))
    with pytest.raises(ShapeError, match=r"backward expected dout of shape \(4, 2\), got \(4, 3\)"):
        layer.backward(np.zeros((4, 3)))
    relu = nn.ReLU()
    relu(np.zeros((2, 2)))
    with pytest.raises(ShapeError, match="ReLU\\(\\): backward expected dout of shape"):
        relu.backward(np.zeros(3))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: nn.Linear(0, 3), "Linear: in_features must be an integer in \\[1, inf\\), got 0"),
        (lambda: nn.Linear(3, True), "Linear: out_features must be an integer in \\[1, inf\\), got True"),
        (lambda: nn.Linear(3, 2, dtype=np.int32), "Linear: dtype must be a floating dtype, got int32"),
        (lambda: nn.Linear(3, 2, rng="seed"), "rng must be a np.random.Generator or a non-negative int seed"),
        (lambda: nn.Conv2d(1, 2, 0), "Conv2d: kernel_size must be an int >= 1 or a tuple of 2 such ints, got 0"),
        (lambda: nn.Conv2d(1, 2, 3, stride=(1, 2, 3)), "Conv2d: stride must be an int >= 1 or a tuple of 2 such ints"),
        (lambda: nn.Conv1d(1, 2, 3, padding=-1), "Conv1d: padding must be an int >= 0"),
        (lambda: nn.MaxPool2d(2, padding=2), "MaxPool2d: padding must be at most half the kernel size"),
        (lambda: nn.Dropout(1.5), "Dropout: p must be in \\[0, 1\\], got 1.5"),
        (lambda: nn.BatchNorm2d(3, momentum=2.0), "BatchNorm2d: momentum must be in \\[0, 1\\], got 2.0"),
        (lambda: nn.BatchNorm2d(3, eps=0.0), "BatchNorm2d: eps must be in \\(0, inf\\), got 0.0"),
        (lambda: nn.LayerNorm(()), "LayerNorm: normalized_shape must be a positive int"),
        (lambda: nn.LeakyReLU("0.1"), "LeakyReLU: negative_slope must be"),
        (lambda: nn.Sequential(nn.Linear(2, 2), 3), "Sequential: layer 1 must be a descend.nn.Module, got int"),
        (lambda: nn.Residual("block"), "Residual: block must be a descend.nn.Module, got str"),
        (lambda: nn.mlp(10, (5, 0)), "mlp: hidden\\[1\\] must be an integer in \\[1, inf\\), got 0"),
        (lambda: nn.mlp(10, dropout=1.0), "mlp: dropout must be in \\[0, 1\\), got 1.0"),
        (lambda: nn.mlp(10, activation="swish"), "unknown activation 'swish'"),
        (lambda: nn.cnn2d(kernel_size=4), "cnn2d: kernel_size must be odd"),
        (lambda: nn.cnn2d(image_size=3), "cnn2d: input size \\(3, 3\\) is too small for 2 pooling blocks"),
        (lambda: nn.l2_penalty(nn.Linear(2, 2), -1.0), "l2_penalty: lam must be in \\[0, inf\\), got -1.0"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_parameter_errors(call, message):
    with pytest.raises(ParameterError, match=message):
        call()


def test_errors_are_descend_errors_and_value_errors():
    with pytest.raises(DescendError):
        nn.Linear(3, 2)(np.zeros((1, 4)))
    with pytest.raises(ValueError):
        nn.Linear(3, 2)(np.zeros((1, 4)))


def test_params_attribute_cannot_be_rebound():
    model = nn.Linear(2, 2)
    with pytest.raises(AttributeError):
        model.params = np.zeros(6)
