"""Property tests: random convolution / pooling configurations against torch (forward and backward)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from descend import nn
from tests.nn.helpers import compare_with_torch

T = torch.nn


@st.composite
def conv_config(draw, nd):
    k = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    p = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    size = tuple(draw(st.integers(max(1, ki - 2 * pi), ki + 6)) for ki, pi in zip(k, p, strict=True))
    c_in, c_out, n = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return k, s, p, size, c_in, c_out, n, draw(st.booleans())


@settings(max_examples=40, deadline=None)
@given(conv_config(2))
def test_conv2d_random_configs(cfg):
    k, s, p, size, c_in, c_out, n, bias = cfg
    compare_with_torch(
        lambda: nn.Conv2d(c_in, c_out, k, stride=s, padding=p, bias=bias),
        lambda: T.Conv2d(c_in, c_out, k, stride=s, padding=p, bias=bias),
        (n, c_in, *size),
    )


@settings(max_examples=30, deadline=None)
@given(conv_config(1))
def test_conv1d_random_configs(cfg):
    k, s, p, size, c_in, c_out, n, bias = cfg
    compare_with_torch(
        lambda: nn.Conv1d(c_in, c_out, k, stride=s, padding=p, bias=bias),
        lambda: T.Conv1d(c_in, c_out, k, stride=s, padding=p, bias=bias),
        (n, c_in, *size),
    )


@st.composite
def pool_config(draw, nd):
    k = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    p = tuple(draw(st.integers(0, ki // 2)) for ki in k)
    size = tuple(draw(st.integers(max(1, ki - 2 * pi), ki + 7)) for ki, pi in zip(k, p, strict=True))
    return k, s, p, size, draw(st.booleans())


@settings(max_examples=40, deadline=None)
@given(pool_config(2), st.sampled_from(["max", "avg"]))
def test_pool2d_random_configs(cfg, kind):
    k, s, p, size, include_pad = cfg
    if kind == "max":
        ours, theirs = (lambda: nn.MaxPool2d(k, s, p)), (lambda: T.MaxPool2d(k, s, p))
    else:
        ours = lambda: nn.AvgPool2d(k, s, p, count_include_pad=include_pad)  # noqa: E731
        theirs = lambda: T.AvgPool2d(k, s, p, count_include_pad=include_pad)  # noqa: E731
    compare_with_torch(ours, theirs, (2, 2, *size))


@settings(max_examples=30, deadline=None)
@given(pool_config(1), st.sampled_from(["max", "avg"]))
def test_pool1d_random_configs(cfg, kind):
    k, s, p, size, include_pad = cfg
    if kind == "max":
        ours, theirs = (lambda: nn.MaxPool1d(k, s, p)), (lambda: T.MaxPool1d(k, s, p))
    else:
        ours = lambda: nn.AvgPool1d(k, s, p, count_include_pad=include_pad)  # noqa: E731
        theirs = lambda: T.AvgPool1d(k, s, p, count_include_pad=include_pad)  # noqa: E731
    compare_with_torch(ours, theirs, (2, 3, *size))


def test_maxpool_ties_go_to_the_first_maximum_like_torch():
    x = np.zeros((1, 1, 4, 4))  # after a ReLU whole windows are 0: torch routes to the window's first element
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = 1.0  # a tie across rows and columns inside the first window
    compare_with_torch(lambda: nn.MaxPool2d(2), lambda: T.MaxPool2d(2), x.shape, x_scale=0.0)
    layer = nn.MaxPool2d(2).astype(np.float64)
    layer(x)
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(xt, 2).backward(torch.ones(1, 1, 2, 2, dtype=torch.float64))
    np.testing.assert_array_equal(dx, xt.grad.numpy())
    assert dx[0, 0, 0, 1] == 1.0 and dx[0, 0, 1, 0] == 0.0


def test_full_size_cnn2d_matches_torch_float32():
    model = nn.cnn2d()
    twin = T.Sequential(
        T.Unflatten(1, (1, 28, 28)), T.Conv2d(1, 32, 3, padding=1), T.ReLU(), T.MaxPool2d(2),
        T.Conv2d(32, 64, 3, padding=1), T.ReLU(), T.MaxPool2d(2), T.Flatten(), T.Linear(3136, 128), T.ReLU(),
        T.Linear(128, 10),
    )  # fmt: skip
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(32, 784)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    logits = model(x)
    loss, d = nn.cross_entropy(logits, y)
    model.backward(d, input_grad=False)
    lt = torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)), torch.from_numpy(y))
    lt.backward()
    assert loss == np.float32(lt.item()) or abs(loss - lt.item()) < 1e-5
    for name, p in twin.named_parameters():
        np.testing.assert_allclose(model.named_grads()[name], p.grad.numpy(), rtol=2e-3, atol=2e-6, err_msg=name)


def test_kernel_taller_than_the_input_on_the_same_width_path() -> None:
    """Found by hypothesis on a fresh clone: kernel rows that read only padding must not wrap around."""
    for k, p, size in (((4, 3), (1, 1), (2, 2)), ((4, 3), (1, 1), (2, 1)), ((4, 1), (0, 0), (4, 3))):
        compare_with_torch(
            lambda k=k, p=p: nn.Conv2d(2, 3, k, padding=p),
            lambda k=k, p=p: T.Conv2d(2, 3, k, padding=p),
            (2, 2, *size),
        )
