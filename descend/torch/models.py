"""descend's model presets as ``torch.nn`` modules: the same layers, sizes, initial weights and names.

Each preset builds the :mod:`descend.nn.presets` network (MLP, 1-D / 2-D CNN, logistic regression)
and translates it layer by layer into a ``torch.nn.Sequential`` (:func:`from_descend`): the same
layer sizes, activations, dropout and pooling, at the same indices, so the parameters have the same
torch names (``"1.weight"``, ``"1.bias"``, ...; index 0 is the Flatten / Reshape), and the same
initial values (He before ReLU, Xavier before tanh / sigmoid, or the one ``init`` given), copied from
the descend model drawn with the same ``seed``. A run with ``backend = "torch"`` therefore starts
from exactly the weights its NumPy twin starts from.

>>> net = mlp(40, (256, 128), 10, seed=0)        # torch.nn.Sequential(Flatten, Linear, ReLU, ...)
>>> net = build_model(config, train, device="cuda")
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from descend import nn as dnn
from descend.errors import ParameterError


class Reshape(nn.Module):
    """Reshape every sample to ``shape``, keeping the batch dimension: ``(N, 784) → (N, 1, 28, 28)``."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def extra_repr(self) -> str:
        return ", ".join(map(str, self.shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 1 or math.prod(x.shape[1:]) != math.prod(self.shape):
            shape = tuple(x.shape)
            raise ParameterError(f"Reshape: cannot reshape an input of shape {shape} to (N, {self.extra_repr()})")
        return x.reshape(x.shape[0], *self.shape)


def _pool(cls: type, layer: Any) -> nn.Module:
    return cls(layer.kernel_size, layer.stride, layer.padding)


def _norm(cls: type, layer: Any) -> nn.Module:
    return cls(layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats)


def _conv(cls: type, layer: Any) -> nn.Module:
    return cls(
        layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding, bias=layer.use_bias
    )


#: descend.nn layer class -> its torch.nn twin, built from the descend layer's settings.
_TRANSLATE: dict[type, Any] = {
    dnn.Flatten: lambda m: nn.Flatten(m.start_dim, m.end_dim),
    dnn.Reshape: lambda m: Reshape(*m.shape),
    dnn.Linear: lambda m: nn.Linear(m.in_features, m.out_features, bias=m.use_bias),
    dnn.Conv1d: lambda m: _conv(nn.Conv1d, m),
    dnn.Conv2d: lambda m: _conv(nn.Conv2d, m),
    dnn.MaxPool1d: lambda m: _pool(nn.MaxPool1d, m),
    dnn.MaxPool2d: lambda m: _pool(nn.MaxPool2d, m),
    dnn.BatchNorm1d: lambda m: _norm(nn.BatchNorm1d, m),
    dnn.BatchNorm2d: lambda m: _norm(nn.BatchNorm2d, m),
    dnn.Dropout: lambda m: nn.Dropout(m.p),
    dnn.ReLU: lambda m: nn.ReLU(),
    dnn.Tanh: lambda m: nn.Tanh(),
    dnn.Sigmoid: lambda m: nn.Sigmoid(),
    dnn.LeakyReLU: lambda m: nn.LeakyReLU(m.negative_slope),
    dnn.GELU: lambda m: nn.GELU(approximate=m.approximate),
    dnn.Identity: lambda m: nn.Identity(),
}


def from_descend(model: Any, device: str | torch.device | None = None) -> nn.Sequential:
    """The ``torch.nn.Sequential`` twin of a descend ``Sequential`` (layers, names and current weights).

    Parameters and buffers (BatchNorm's running statistics) are copied in their dtype; the result is
    on ``device`` (default: the CPU). A layer without a torch twin is refused, naming it.
    """
    if not isinstance(model, dnn.Sequential):
        raise ParameterError(f"from_descend: expected a descend.nn.Sequential, got {type(model).__name__}")
    for i, layer in enumerate(model.layers):
        if type(layer) not in _TRANSLATE:
            known = ", ".join(sorted(cls.__name__ for cls in _TRANSLATE))
            raise ParameterError(
                f"from_descend: layer {i} ({type(layer).__name__}) has no torch.nn twin here; supported: {known}"
            )
    # Built on the meta device: torch's own initialization would draw from the global torch RNG (and be
    # overwritten anyway); every value comes from the descend model.
    with torch.device("meta"):
        net = nn.Sequential(*(_TRANSLATE[type(layer)](layer) for layer in model.layers))
    state = {name: torch.tensor(np.array(value, copy=True)) for name, value in model.state_dict().items()}
    dtype = next((v.dtype for v in state.values() if v.is_floating_point()), torch.float32)
    net = net.to_empty(device=device if device is not None else "cpu").to(dtype)
    net.load_state_dict(state, strict=True)
    return net


def mlp(*args: Any, device: str | torch.device | None = None, **kwargs: Any) -> nn.Sequential:
    """:func:`descend.nn.mlp` (same arguments) as a ``torch.nn.Sequential``."""
    return from_descend(dnn.mlp(*args, **kwargs), device)


def logistic(*args: Any, device: str | torch.device | None = None, **kwargs: Any) -> nn.Sequential:
    """:func:`descend.nn.logistic` (same arguments) as a ``torch.nn.Sequential``."""
    return from_descend(dnn.logistic(*args, **kwargs), device)


def cnn1d(*args: Any, device: str | torch.device | None = None, **kwargs: Any) -> nn.Sequential:
    """:func:`descend.nn.cnn1d` (same arguments) as a ``torch.nn.Sequential``."""
    return from_descend(dnn.cnn1d(*args, **kwargs), device)


def cnn2d(*args: Any, device: str | torch.device | None = None, **kwargs: Any) -> nn.Sequential:
    """:func:`descend.nn.cnn2d` (same arguments) as a ``torch.nn.Sequential``."""
    return from_descend(dnn.cnn2d(*args, **kwargs), device)


def build_model(cfg: dict[str, Any], train: Any, device: str | torch.device | None = None) -> nn.Sequential:
    """The configuration's preset for the data (:func:`descend.train.experiment.build_model`) in torch.nn."""
    from descend.train import experiment as ex

    return from_descend(ex.build_model(cfg, train), device)


def param_roles(model: nn.Module) -> dict[str, frozenset[str]]:
    """``{name: roles}`` of a torch model, as :meth:`descend.nn.Module.param_roles` gives them: ``bias``, ``norm``
    (BatchNorm / LayerNorm / GroupNorm), ``embedding`` (``nn.Embedding``), ``head`` (the last module with
    parameters)."""
    norms = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
    entries = []
    for module_name, module in model.named_modules():
        for leaf, _ in module.named_parameters(recurse=False):
            entries.append((f"{module_name}.{leaf}" if module_name else leaf, module, leaf))
    head = entries[-1][1] if entries else None
    out = {}
    for name, module, leaf in entries:
        roles = {"bias"} if leaf == "bias" else set()
        if isinstance(module, norms):
            roles.add("norm")
        if isinstance(module, nn.Embedding):
            roles.add("embedding")
        if module is head:
            roles.add("head")
        out[name] = frozenset(roles)
    return out


def decays(model: nn.Module, no_decay: Any = None) -> dict[str, bool]:
    """``{name: True}`` for the parameters weight decay and L1/L2 apply to: those the routing rules ``no_decay``
    do not select (default biases and norm layers), the rules of :meth:`descend.nn.Module.decays`."""
    from descend.nn.module import NO_DECAY
    from descend.optim.masking import Rules

    rules = NO_DECAY if no_decay is None else no_decay
    table = Rules([(r, False) for r in rules], default=True, roles=param_roles(model), strict=True, owner="no_decay")
    return table.table(dict(model.named_parameters()))


__all__ = ["Reshape", "build_model", "cnn1d", "cnn2d", "decays", "from_descend", "logistic", "mlp", "param_roles"]
