"""L-BFGS equals ``torch.optim.LBFGS`` (torch 2.13) over torch's own test matrix for it
(``optim_inputs_func_lbfgs``: both ``line_search_fn`` settings) and more, float64, ≥ 100 iterations."""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc
from descend.errors import ParameterError
from tests.optim import _oracles as O
from tests.optim import problems

torch = pytest.importorskip("torch")

RTOL = 1e-7
_X, _Y, _C = problems._X, problems._Y, problems._C


def mixed_loss(p):
    """The loss whose gradient is ``problems.mixed_grad``."""
    r = _X @ p["W"] + p["b"] - _Y
    return float(
        0.5 * np.sum(r * r) / len(_X)
        + 0.1 * np.sum(np.cos(p["W"]))
        + 0.05 * np.sum(p["b"] ** 2)
        + 0.5 * np.sum(_C * (p["v"] - 1.0) ** 2)
        - (0.2 / 3) * np.sum(np.cos(3.0 * p["v"]))
    )


PROBLEMS = {
    "mixed": (problems.mixed_params, lambda p: (mixed_loss(p), problems.mixed_grad(p))),
    "rosenbrock": (
        lambda: {"w": problems.rosenbrock_params()},
        lambda p: (problems.rosenbrock_loss(p["w"]), {"w": problems.rosenbrock_grad(p["w"])}),
    ),
}

# torch/testing/_internal/common_optimizers.py: optim_inputs_func_lbfgs (the Tensor lr 0.001 as a float), and more
CASES = [
    ({}, "mixed", 8),
    ({"lr": 0.01}, "mixed", 8),
    ({"lr": 0.001}, "mixed", 8),
    ({"tolerance_grad": 1e-6}, "mixed", 8),
    ({"line_search_fn": "strong_wolfe"}, "mixed", 8),
    ({"line_search_fn": "strong_wolfe"}, "rosenbrock", 8),
    ({"lr": 0.2}, "rosenbrock", 8),  # lr = 1 without a line search is chaotic on Rosenbrock: 1e-5 apart after 80
    ({"lr": 0.01}, "rosenbrock", 8),
    ({"history_size": 3, "max_iter": 7, "lr": 0.2}, "mixed", 20),
    ({"history_size": 2, "max_iter": 5, "line_search_fn": "strong_wolfe", "lr": 0.5}, "rosenbrock", 30),
    ({"max_iter": 30, "max_eval": 12, "line_search_fn": "strong_wolfe"}, "mixed", 10),
    ({"lr": 0.1, "tolerance_change": 1e-5}, "mixed", 10),
]


def _id(case):
    kwargs, problem, steps = case
    return problem + ":" + (",".join(f"{k}={v}" for k, v in kwargs.items()) or "default") + f"x{steps}"


def _run_torch(kwargs, params0, fun_and_grad, steps):
    tparams = {k: torch.tensor(v.copy(), dtype=torch.float64, requires_grad=True) for k, v in params0.items()}
    opt = torch.optim.LBFGS(list(tparams.values()), **kwargs)
    losses = []

    def closure():
        loss, grads = fun_and_grad({k: t.detach().numpy().copy() for k, t in tparams.items()})
        for k, g in grads.items():
            tparams[k].grad = torch.from_numpy(g)
        return torch.tensor(loss, dtype=torch.float64)

    for _ in range(steps):
        losses.append(float(opt.step(closure)))
    state = opt.state[opt._params[0]]
    return {k: t.detach().numpy().copy() for k, t in tparams.items()}, losses, state


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_lbfgs_matches_torch(case):
    kwargs, problem, steps = case
    make, fun_and_grad = PROBLEMS[problem]
    params0 = make()
    opt = dc.optim.lbfgs(**kwargs)
    params, state, losses = params0, opt.init(params0), []
    for _ in range(steps):
        params, state, loss = opt.step(fun_and_grad, params, state)
        losses.append(loss)
    theirs, their_losses, their_state = _run_torch(kwargs, params0, fun_and_grad, steps)
    O.assert_matches(params, theirs, params0, RTOL, what=_id(case))
    np.testing.assert_allclose(losses, their_losses, rtol=RTOL, atol=1e-12)
    assert state.func_evals == their_state["func_evals"]
    assert state.n_iter == their_state["n_iter"]
    assert state.n_iter >= 30, "too few iterations to be a meaningful comparison"


def test_lbfgs_on_torch_tensors():
    make, fun_and_grad = PROBLEMS["mixed"]
    params0 = make()

    def torch_fun_and_grad(p):
        loss, g = fun_and_grad({k: v.numpy() for k, v in p.items()})
        return loss, {k: torch.from_numpy(v) for k, v in g.items()}

    kwargs = {"line_search_fn": "strong_wolfe"}
    ours = dc.optim.lbfgs(**kwargs).minimize(
        torch_fun_and_grad, {k: torch.from_numpy(v) for k, v in params0.items()}, 8
    )
    theirs, _, _ = _run_torch(kwargs, params0, fun_and_grad, 8)
    O.assert_matches({k: v.numpy() for k, v in ours.params.items()}, theirs, params0, RTOL, what="torch tensors")


def test_lbfgs_minimizes_rosenbrock():
    make, fun_and_grad = PROBLEMS["rosenbrock"]
    result = dc.optim.lbfgs(line_search_fn="strong_wolfe").minimize(fun_and_grad, make(), steps=5)
    np.testing.assert_allclose(result.params["w"], [1.0, 1.0], atol=1e-5)
    assert result.loss < 1e-9


def test_lbfgs_rejects_bad_arguments_with_one_message():
    with pytest.raises(ParameterError, match="lbfgs: line_search_fn must be one of None or one of 'strong_wolfe'"):
        dc.optim.lbfgs(line_search_fn="armijo")
    with pytest.raises(ParameterError, match=r"lbfgs: history_size must be an integer in \[1, inf\), got 0"):
        dc.optim.lbfgs(history_size=0)
    opt = dc.optim.lbfgs()
    with pytest.raises(ParameterError, match="lbfgs: state must be an LbfgsState"):
        opt.step(lambda p: (0.0, p), np.ones(2), {})
