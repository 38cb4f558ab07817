"""A from-scratch NumPy neural-network engine with one flat parameter buffer.

>>> import numpy as np, descend as dc
>>> model = dc.nn.mlp(784, (256, 128), 10)          # float32, seeded, He init before ReLU
>>> logits = model(np.zeros((128, 784), np.float32))
>>> loss, dlogits = dc.nn.cross_entropy(logits, np.zeros(128, np.int64))
>>> _ = model.backward(dlogits, input_grad=False)   # sets model.grads (views: every layer's dweight/dbias)
>>> model.params[:] -= 0.1 * model.grads            # one ndarray for an optimizer from descend.optim

Every layer has an explicit ``forward`` and ``backward`` (see
:mod:`descend.nn.module` for the protocol, the flat buffer and how ``init``
defaults are chosen).
"""

from descend.nn.activations import (
    ACTIVATIONS,
    GELU,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    activation,
    erf,
    log_softmax,
    sigmoid,
    softmax,
)
from descend.nn.conv import AvgPool1d, AvgPool2d, Conv1d, Conv2d, MaxPool1d, MaxPool2d
from descend.nn.gradcheck import GradcheckEntry, GradcheckError, GradcheckReport, gradcheck
from descend.nn.linear import Dropout, Flatten, Linear, Reshape
from descend.nn.losses import (
    LOSSES,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    MSELoss,
    accuracy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    get_loss,
    mse_loss,
)
from descend.nn.module import Module, NormLayer, ParamInfo, Residual, Sequential, ShapeError
from descend.nn.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from descend.nn.presets import cnn1d, cnn2d, logistic, mlp
from descend.nn.regularization import l1_penalty, l2_penalty

__all__ = [
    "ACTIVATIONS",
    "GELU",
    "LOSSES",
    "AvgPool1d",
    "AvgPool2d",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "GradcheckEntry",
    "GradcheckError",
    "GradcheckReport",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "MSELoss",
    "MaxPool1d",
    "MaxPool2d",
    "Module",
    "NormLayer",
    "ParamInfo",
    "ReLU",
    "Reshape",
    "Residual",
    "Sequential",
    "ShapeError",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "accuracy",
    "activation",
    "binary_cross_entropy_with_logits",
    "cnn1d",
    "cnn2d",
    "cross_entropy",
    "erf",
    "get_loss",
    "gradcheck",
    "l1_penalty",
    "l2_penalty",
    "log_softmax",
    "logistic",
    "mlp",
    "mse_loss",
    "sigmoid",
    "softmax",
]
