"""A small problem with trajectory-dependent gradients, run by descend.torch and torch.optim alike."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

# Every optimizer torch also has, with options that make it keep all its state (amsgrad, centered, momentum).
TORCH_HAS: dict[str, dict[str, Any]] = {
    "SGD": dict(lr=0.05, momentum=0.9, weight_decay=0.01),
    "Adam": dict(lr=0.01, amsgrad=True),
    "AdamW": dict(lr=0.01),
    "Adagrad": dict(lr=0.1, lr_decay=0.01),
    "RMSprop": dict(lr=0.01, momentum=0.5, centered=True),
    "Adadelta": dict(lr=1.0),
    "Adamax": dict(lr=0.01),
    "NAdam": dict(lr=0.01),
    "RAdam": dict(lr=0.01),
    "ASGD": dict(lr=0.01, t0=3),
    "Rprop": dict(lr=0.01),
    "Adafactor": dict(lr=0.01),
}

_gen = torch.Generator().manual_seed(20261123)
_X = torch.randn(16, 5, generator=_gen, dtype=torch.float64)
_Y = torch.randn(16, 3, generator=_gen, dtype=torch.float64)


def make_params(dtype: torch.dtype = torch.float64, device: str = "cpu") -> list[torch.Tensor]:
    """A matrix (Adafactor factors it), a bias and a vector, away from the minimum."""
    gen = torch.Generator().manual_seed(7)
    w = torch.randn(5, 3, generator=gen, dtype=torch.float64) + 2.0
    b = torch.randn(3, generator=gen, dtype=torch.float64) - 2.0
    v = torch.randn(4, generator=gen, dtype=torch.float64) + 3.0
    return [t.to(dtype=dtype, device=device).requires_grad_() for t in (w, b, v)]


def loss_of(params: list[torch.Tensor]) -> torch.Tensor:
    w, b, v = params
    x, y = _X.to(dtype=w.dtype, device=w.device), _Y.to(dtype=w.dtype, device=w.device)
    r = x @ w + b - y
    return 0.5 * (r * r).mean() + 0.1 * torch.cos(w).sum() + 0.05 * (b * b).sum() + ((v - 1.0) ** 2).sum()


def clone(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().clone().requires_grad_() for p in params]


def run(opt: torch.optim.Optimizer, params: list[torch.Tensor], steps: int, loss: Callable = loss_of) -> None:
    for _ in range(steps):
        opt.zero_grad()
        loss(params).backward()
        opt.step()


def run_numpy(tx: Any, steps: int) -> list[Any]:
    """``tx`` stepped ``steps`` times on NumPy copies of :func:`make_params`, torch computing only the gradients:
    the NumPy backend's trajectory, to compare a ``descend.torch`` run with."""
    from descend.optim import apply_updates

    ref = [p.detach().numpy().copy() for p in make_params()]
    state = tx.init(ref)
    for _ in range(steps):
        t = [torch.tensor(x, requires_grad=True) for x in ref]
        loss_of(t).backward()
        updates, state = tx.update([x.grad.numpy() for x in t], state, ref)
        ref = apply_updates(ref, updates)
    return ref


def torch_optimizer(name: str, params: list[torch.Tensor], **kwargs: Any) -> torch.optim.Optimizer:
    """torch.optim's class on its reference single-tensor path."""
    return getattr(torch.optim, name)(params, foreach=False, **kwargs)


def saved(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """``state_dict()`` as torch.save + torch.load would give it back: no tensor shared with the optimizer."""
    return copy.deepcopy(opt.state_dict())


def assert_same_tensors(a: dict[str, Any], b: dict[str, Any], keys: Any = None, by_value: tuple = ()) -> None:
    """Per-parameter states equal bit for bit (values and dtypes), over ``keys`` (default: all of ``b``'s).

    ``by_value``: scalar entries compared as numbers (descend keeps NAdam's ``mu_product`` in its saved dtype).
    """
    assert a["state"].keys() == b["state"].keys()
    for i in b["state"]:
        for k in keys or b["state"][i]:
            x, y = a["state"][i][k], b["state"][i][k]
            if k in by_value:
                assert float(x) == float(y), (i, k, x, y)
            elif isinstance(y, torch.Tensor):
                assert x.dtype == y.dtype, (i, k, x.dtype, y.dtype)
                assert torch.equal(x, y), (i, k)
            else:
                assert x == y, (i, k, x, y)
