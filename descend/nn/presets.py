"""Ready-made models for the trainer: MLP, 1-D / 2-D CNNs and logistic regression.

Every preset is a :class:`~descend.nn.Sequential` in ``dtype`` (float32 by
default) whose layers draw their initial weights at construction, in order,
from one ``np.random.Generator`` seeded by ``seed`` (a Generator is used as
is). Unless ``init`` names one initializer for every weight, each preset
chooses explicitly: a layer followed by ReLU / GELU gets He
(``kaiming_uniform``, ReLU gain), by LeakyReLU He with its slope, by tanh /
sigmoid Xavier (``xavier_uniform``, gain 5/3 resp. 1), as the seed documents
describe; the output layer gets torch's default ``kaiming_uniform(a=√5)``.
Dropout layers take child generators spawned from the same generator, in
order. The same seed gives the same weights as the presets before layers
initialized at construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from descend import init as _init
from descend._validation import Interval, check
from descend.errors import ParameterError
from descend.nn.activations import activation as make_activation
from descend.nn.conv import Conv1d, Conv2d, MaxPool1d, MaxPool2d
from descend.nn.linear import Dropout, Flatten, Linear, Reshape, positive_int
from descend.nn.module import Module, Sequential
from descend.nn.norm import BatchNorm1d, BatchNorm2d


def _ints(owner: str, name: str, value: Any) -> tuple[int, ...]:
    items = (value,) if isinstance(value, int) else tuple(value)
    return tuple(positive_int(owner, f"{name}[{i}]", v) for i, v in enumerate(items))


def _dropout(owner: str, p: float) -> float:
    return float(check(owner, "dropout", p, Interval(0, 1, closed="left")))


def _hidden_init(init: Any, activation: str) -> Any:
    """``init`` when given, else the initializer for a layer followed by ``activation`` (its ``init_hint``)."""
    if init is not None:
        return init
    return make_activation(activation).init_hint  # None (torch's default) for an activation without one


def mlp(
    in_features: int,
    hidden: Sequence[int] = (256, 128),
    out: int = 10,
    activation: str = "relu",
    dropout: float = 0.0,
    init: Any = None,
    batchnorm: bool = False,
    seed: int | np.random.Generator = 0,
    dtype: Any = np.float32,
) -> Sequential:
    """``Flatten → [Linear → (BatchNorm1d) → act → (Dropout)] × len(hidden) → Linear(out)``.

    >>> model = mlp(784, (256, 128), 10)   # names 1.weight, 1.bias, 3.weight, ... (0 is Flatten)
    """
    owner = "mlp"
    in_features = positive_int(owner, "in_features", in_features)
    hidden = _ints(owner, "hidden", hidden)
    out = positive_int(owner, "out", out)
    p = _dropout(owner, dropout)
    gen = _init.as_generator(owner, seed)
    hidden_init = _hidden_init(init, activation)
    layers: list[Module] = [Flatten()]
    width = in_features
    for h in hidden:
        layers.append(Linear(width, h, init=hidden_init, rng=gen, dtype=dtype))
        if batchnorm:
            layers.append(BatchNorm1d(h, dtype=dtype))
        layers.append(make_activation(activation))
        if p:
            layers.append(Dropout(p, rng=gen.spawn(1)[0]))
        width = h
    layers.append(Linear(width, out, init=init, rng=gen, dtype=dtype))
    return Sequential(*layers, rng=gen, dtype=dtype)


def logistic(in_features: int, out: int = 10, init: Any = "zeros", dtype: Any = np.float32) -> Sequential:
    """Multinomial logistic regression ``Flatten → Linear(in, out)`` (train with cross-entropy); zero init."""
    return Sequential(
        Flatten(),
        Linear(
            positive_int("logistic", "in_features", in_features),
            positive_int("logistic", "out", out),
            init=init,
            dtype=dtype,
        ),
        rng=0,
        dtype=dtype,
    )


def _cnn(
    nd: int,
    owner: str,
    in_channels: int,
    size: tuple[int, ...],
    channels: Sequence[int],
    kernel_size: int,
    hidden: int | None,
    out: int,
    activation: str,
    dropout: float,
    batchnorm: bool,
    init: Any,
    seed: Any,
    dtype: Any,
) -> Sequential:
    conv, pool, norm = (Conv1d, MaxPool1d, BatchNorm1d) if nd == 1 else (Conv2d, MaxPool2d, BatchNorm2d)
    in_channels = positive_int(owner, "in_channels", in_channels)
    channels = _ints(owner, "channels", channels)
    kernel_size = positive_int(owner, "kernel_size", kernel_size)
    if kernel_size % 2 == 0:
        raise ParameterError(f"{owner}: kernel_size must be odd (padding keeps the size), got {kernel_size}")
    out = positive_int(owner, "out", out)
    p = _dropout(owner, dropout)
    gen = _init.as_generator(owner, seed)
    hidden_init = _hidden_init(init, activation)
    layers: list[Module] = [Reshape(in_channels, *size)]  # accepts (N, C, *size) and flat (N, C·Πsize)
    c, spatial = in_channels, list(size)
    for ch in channels:
        layers.append(conv(c, ch, kernel_size, padding=kernel_size // 2, init=hidden_init, rng=gen, dtype=dtype))
        if batchnorm:
            layers.append(norm(ch, dtype=dtype))
        layers.append(make_activation(activation))
        layers.append(pool(2))
        spatial = [s // 2 for s in spatial]
        if min(spatial) < 1:
            raise ParameterError(f"{owner}: input size {size} is too small for {len(channels)} pooling blocks")
        c = ch
    layers.append(Flatten())
    width = c * int(np.prod(spatial))
    if hidden:
        layers.append(Linear(width, positive_int(owner, "hidden", hidden), init=hidden_init, rng=gen, dtype=dtype))
        layers.append(make_activation(activation))
        if p:
            layers.append(Dropout(p, rng=gen.spawn(1)[0]))
        width = hidden
    layers.append(Linear(width, out, init=init, rng=gen, dtype=dtype))
    return Sequential(*layers, rng=gen, dtype=dtype)


def cnn2d(
    in_channels: int = 1,
    image_size: int | tuple[int, int] = 28,
    channels: Sequence[int] = (32, 64),
    kernel_size: int = 3,
    hidden: int | None = 128,
    out: int = 10,
    activation: str = "relu",
    dropout: float = 0.0,
    batchnorm: bool = False,
    init: Any = None,
    seed: int | np.random.Generator = 0,
    dtype: Any = np.float32,
) -> Sequential:
    """A CNN for 28×28 images (``(N, 1, 28, 28)`` or flat ``(N, 784)``).

    ``Reshape → [Conv2d k×k pad k//2 → (BN) → act → MaxPool 2] × len(channels) → Flatten →
    Linear(hidden) → act → (Dropout) → Linear(out)``; by default conv 32 → conv 64 → 3136 → 128 → 10.
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    size = _ints("cnn2d", "image_size", size)
    return _cnn(
        2,
        "cnn2d",
        in_channels,
        size,
        channels,
        kernel_size,
        hidden,
        out,
        activation,
        dropout,
        batchnorm,
        init,
        seed,
        dtype,
    )


def cnn1d(
    in_channels: int = 1,
    length: int = 40,
    channels: Sequence[int] = (32, 64),
    kernel_size: int = 5,
    hidden: int | None = 128,
    out: int = 10,
    activation: str = "relu",
    dropout: float = 0.0,
    batchnorm: bool = False,
    init: Any = None,
    seed: int | np.random.Generator = 0,
    dtype: Any = np.float32,
) -> Sequential:
    """A 1-D CNN for MNIST-1D (``(N, 40)`` or ``(N, 1, 40)``).

    ``Reshape → [Conv1d k pad k//2 → (BN) → act → MaxPool 2] × len(channels) → Flatten →
    Linear(hidden) → act → (Dropout) → Linear(out)``; by default lengths 40 → 20 → 10, then 640 → 128 → 10.
    """
    size = _ints("cnn1d", "length", (length,))
    return _cnn(
        1,
        "cnn1d",
        in_channels,
        size,
        channels,
        kernel_size,
        hidden,
        out,
        activation,
        dropout,
        batchnorm,
        init,
        seed,
        dtype,
    )
