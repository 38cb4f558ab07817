"""Torch twins of small descend networks: the exact Hessian oracle of the diagnostics tests.

``loss_of_flat(model, x, y, loss)`` returns ``f(theta) -> torch scalar``: the same network (a
``torch.nn.Sequential`` with descend's parameter names) evaluated by ``torch.func.functional_call``
with the flat parameter vector split as ``model.layout`` says, so ``torch.autograd.functional.hvp``
and ``hessian`` of ``f`` are the exact oracles.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn as tnn

import descend as dc


class _Reshape(tnn.Module):
    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), *self.shape)


def _twin_layer(layer: dc.nn.Module) -> tnn.Module:
    n = dc.nn
    if isinstance(layer, n.Linear):
        out, inp = layer.weight.shape
        return tnn.Linear(inp, out, bias="bias" in layer._param_specs)
    if isinstance(layer, n.Conv2d):
        o, i, kh, kw = layer.weight.shape
        return tnn.Conv2d(i, o, (kh, kw), stride=layer.stride, padding=layer.padding, bias=layer.use_bias)
    if isinstance(layer, n.Conv1d):
        o, i, k = layer.weight.shape
        return tnn.Conv1d(i, o, k, stride=layer.stride, padding=layer.padding, bias=layer.use_bias)
    if isinstance(layer, n.MaxPool2d):
        return tnn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, n.MaxPool1d):
        return tnn.MaxPool1d(layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, n.Flatten):
        return tnn.Flatten()
    if isinstance(layer, n.Reshape):
        return _Reshape(layer.shape)
    simple = {n.Tanh: tnn.Tanh, n.ReLU: tnn.ReLU, n.Sigmoid: tnn.Sigmoid, n.GELU: tnn.GELU}
    for ours, theirs in simple.items():
        if type(layer) is ours:
            return theirs()
    if isinstance(layer, n.LeakyReLU):
        return tnn.LeakyReLU(layer.negative_slope)
    raise NotImplementedError(type(layer).__name__)


def twin(model: dc.nn.Sequential) -> tnn.Sequential:
    module = tnn.Sequential(*[_twin_layer(layer) for layer in model.layers]).double()
    names = [name for name, _ in module.named_parameters()]
    assert names == [p.name for p in model.layout], (names, [p.name for p in model.layout])
    return module


def loss_of_flat(
    model: dc.nn.Sequential, x: np.ndarray, y: np.ndarray, loss: str = "cross_entropy", l2: float = 0.0
) -> Callable[[torch.Tensor], torch.Tensor]:
    module = twin(model)
    layout = model.layout
    xt = torch.from_numpy(np.asarray(x, dtype=np.float64))
    yt = torch.from_numpy(np.asarray(y))
    mask = torch.from_numpy(model.decay_mask(np.float64))

    def f(theta: torch.Tensor) -> torch.Tensor:
        params = {p.name: theta[p.offset : p.offset + p.size].reshape(p.shape) for p in layout}
        out = torch.func.functional_call(module, params, (xt,))
        if loss == "cross_entropy":
            value = F.cross_entropy(out, yt)
        elif loss == "mse":
            value = F.mse_loss(out, yt.to(out.dtype))
        else:
            raise NotImplementedError(loss)
        if l2:
            value = value + 0.5 * l2 * torch.sum(mask * theta * theta)
        return value

    return f


def exact_hessian(f: Callable[[torch.Tensor], torch.Tensor], theta: np.ndarray) -> np.ndarray:
    return torch.autograd.functional.hessian(f, torch.from_numpy(np.asarray(theta, dtype=np.float64))).numpy()


def exact_hvp(f: Callable[[torch.Tensor], torch.Tensor], theta: np.ndarray, v: np.ndarray) -> np.ndarray:
    _, hv = torch.autograd.functional.hvp(
        f, torch.from_numpy(np.asarray(theta, dtype=np.float64)), torch.from_numpy(np.asarray(v, dtype=np.float64))
    )
    return hv.numpy()
