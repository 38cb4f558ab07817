"""Drive descend and a torch-based oracle over the same float64 trajectory problem (shared by the
conformance tests of the optimizers whose reference lives outside torch.optim: pytorch-optimizer,
schedulefree, torch.optim.Muon / LBFGS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import descend as dc
from tests.optim import problems

Params = dict[str, np.ndarray]


def mixed() -> tuple[Params, Callable[[Params], Params]]:
    """A 5×3 matrix, a bias and a vector, far from the minimum (see :mod:`tests.optim.problems`)."""
    return problems.mixed_params(), problems.mixed_grad


def run_descend(tx, params0: Params, grad_fn, steps: int, sign: float = 1.0) -> Params:
    """``steps`` updates of ``tx`` on NumPy arrays; the gradient is ``sign·∇`` (−1 with ``maximize``)."""
    params = {k: v.copy() for k, v in params0.items()}
    state = tx.init(params)
    for _ in range(steps):
        grads = {k: sign * g for k, g in grad_fn(params).items()}
        updates, state = tx.update(grads, state, params)
        params = dc.optim.apply_updates(params, updates)
    return params


def run_torch(make_opt: Callable[[list[Any]], Any], params0: Params, grad_fn, steps: int, sign: float = 1.0):
    """``steps`` of ``make_opt(list_of_float64_tensors).step()``, fed the same gradients."""
    import torch

    tparams = {k: torch.tensor(v.copy(), dtype=torch.float64, requires_grad=True) for k, v in params0.items()}
    opt = make_opt(list(tparams.values()))
    for _ in range(steps):
        current = {k: t.detach().numpy().copy() for k, t in tparams.items()}
        for k, g in grad_fn(current).items():
            tparams[k].grad = torch.from_numpy(sign * g)
        opt.step()
    return {k: t.detach().numpy().copy() for k, t in tparams.items()}


def run_descend_torch(tx, params0: Params, grad_fn, steps: int, sign: float = 1.0) -> Params:
    """The same transformation on float64 tensors behind ``descend.torch.Optimizer``."""
    import descend.torch as dtorch

    return run_torch(lambda ps: dtorch.Optimizer(ps, tx), params0, grad_fn, steps, sign)


def assert_matches(ours: Params, theirs: Params, params0: Params, rtol: float, atol: float = 1e-12, what: str = ""):
    moved = any(not np.allclose(ours[k], params0[k]) for k in params0)
    assert moved, f"{what}: the optimizer did not move the parameters: the comparison would be vacuous"
    for k in params0:
        assert ours[k].dtype == params0[k].dtype, f"{what}: {k} changed dtype"
        np.testing.assert_allclose(ours[k], theirs[k], rtol=rtol, atol=atol, err_msg=f"{what}: {k}")
