"""One helper compares a descend layer with its torch.nn twin, forward and backward (tinygrad style)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

import descend as dc

TOL = {np.float64: {"rtol": 1e-10, "atol": 1e-12}, np.float32: {"rtol": 2e-4, "atol": 2e-5}}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}


def to_torch_state(module: dc.nn.Module) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.array(v)) for k, v in module.state_dict().items()}


def randomize(module: dc.nn.Module, rng: np.random.Generator) -> None:
    """Random parameters (so ones/zeros inits cannot hide a bug) and positive running variances."""
    module.params[...] = rng.standard_normal(module.params.size) * 0.5 + 0.1
    for m in module.modules():
        if getattr(m, "track_running_stats", False):
            m.running_mean[...] = rng.standard_normal(m.running_mean.shape)
            m.running_var[...] = rng.uniform(0.5, 2.0, m.running_var.shape)


def compare_with_torch(
    make_ours: Callable[[], dc.nn.Module],
    make_theirs: Callable[[], torch.nn.Module],
    x_shape: tuple[int, ...],
    dtype: type = np.float64,
    train: bool = True,
    seed: int = 0,
    x_scale: float = 1.0,
) -> None:
    """Same parameters, same input: outputs, input gradients, parameter gradients and buffers must agree."""
    rng = np.random.default_rng(seed)
    tol = TOL[dtype]
    ours = make_ours().astype(dtype)
    randomize(ours, rng)
    theirs = make_theirs().to(TORCH_DTYPE[dtype])
    theirs.load_state_dict(to_torch_state(ours), strict=True)
    ours.train(train)
    theirs.train(train)

    x = (rng.standard_normal(x_shape) * x_scale).astype(dtype)
    y = ours.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    assert y.dtype == dtype, f"forward returned {y.dtype}"
    np.testing.assert_allclose(y, yt.detach().numpy(), **tol, err_msg="forward")

    dout = rng.standard_normal(y.shape).astype(dtype)
    dx = ours.backward(dout)
    yt.backward(torch.tensor(dout))
    assert dx.dtype == dtype, f"backward returned {dx.dtype}"
    np.testing.assert_allclose(dx, xt.grad.numpy(), **tol, err_msg="input gradient")

    named = dict(theirs.named_parameters())
    grads = ours.named_grads()
    assert list(grads) == list(named), "parameter names/order differ from torch"
    assert ours.grads.dtype == dtype and ours.params.dtype == dtype
    for name, g in grads.items():
        assert g.dtype == dtype
        np.testing.assert_allclose(g, named[name].grad.numpy(), **tol, err_msg=f"gradient of {name}")
    theirs_state = theirs.state_dict()
    for name, value in ours.state_dict().items():
        np.testing.assert_allclose(value, theirs_state[name].numpy(), **tol, err_msg=f"state {name}")
