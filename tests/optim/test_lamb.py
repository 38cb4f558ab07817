"""LAMB equals ``pytorch_optimizer.Lamb`` 4.1.0 over a grid of its options (float64, 200 steps)."""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc
from descend.errors import ParameterError
from tests.optim import _oracles as O

torch = pytest.importorskip("torch")
po = pytest.importorskip("pytorch_optimizer")

STEPS = 200
RTOL = 1e-7

CASES = [
    {},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False},
    {"lr": 1e-2, "weight_decay": 0.05, "fixed_decay": True},
    {"lr": 1e-2, "rectify": True},
    {"lr": 1e-2, "rectify": True, "degenerated_to_sgd": True, "weight_decay": 0.1},
    {"lr": 1e-2, "rectify": True, "n_sma_threshold": 4},
    {"lr": 3e-3, "grad_averaging": False, "betas": (0.8, 0.99)},
    {"lr": 1e-2, "adam": True, "eps": 1e-8},
    {"lr": 1e-2, "maximize": True},
]


def _id(kwargs):
    return ",".join(f"{k}={v}" for k, v in kwargs.items()) or "default"


@pytest.mark.parametrize("foreach", [False, None])
@pytest.mark.parametrize("kwargs", CASES, ids=_id)
def test_lamb_matches_pytorch_optimizer(kwargs, foreach):
    params0, grad_fn = O.mixed()
    sign = -1.0 if kwargs.get("maximize") else 1.0
    ours = O.run_descend(dc.optim.lamb(**kwargs), params0, grad_fn, STEPS, sign)
    theirs = O.run_torch(lambda ps: po.Lamb(ps, foreach=foreach, **kwargs), params0, grad_fn, STEPS, sign)
    O.assert_matches(ours, theirs, params0, RTOL, what=_id(kwargs))


def test_lamb_pre_norm_matches_within_the_oracles_float32_norm():
    """pytorch-optimizer measures the global gradient norm of ``pre_norm`` in float32 (it calls
    ``.float()``); descend measures it in float64, so the factors differ by ~1e-8 relative."""
    kwargs = {"lr": 1e-2, "pre_norm": True, "max_grad_norm": 0.5}
    params0, grad_fn = O.mixed()
    ours = O.run_descend(dc.optim.lamb(**kwargs), params0, grad_fn, STEPS)
    theirs = O.run_torch(lambda ps: po.Lamb(ps, **kwargs), params0, grad_fn, STEPS)
    O.assert_matches(ours, theirs, params0, rtol=1e-6, what="pre_norm")
    without = O.run_descend(dc.optim.lamb(lr=1e-2), params0, grad_fn, STEPS)
    assert not np.allclose(without["W"], theirs["W"], rtol=1e-6), "pre_norm changed nothing: vacuous"


def test_lamb_on_torch_tensors_through_descend_torch():
    kwargs = {"lr": 1e-2, "weight_decay": 0.1}
    params0, grad_fn = O.mixed()
    ours = O.run_descend_torch(dc.optim.lamb(**kwargs), params0, grad_fn, STEPS)
    theirs = O.run_torch(lambda ps: po.Lamb(ps, **kwargs), params0, grad_fn, STEPS)
    O.assert_matches(ours, theirs, params0, RTOL, what="descend.torch")


def test_lamb_has_one_trust_ratio_per_leaf():
    """Each leaf's first step has the norm of that leaf's weights (τ = ‖θ‖/‖r‖, step size η/(1−β₁) = 1),
    whatever the scale of its gradient."""
    tx = dc.optim.lamb(lr=0.1, eps=1e-12)
    params = {"a": np.full(4, 2.0), "b": np.full(3, -1.0)}
    g = {"a": np.array([1.0, -2.0, 0.5, 3.0]), "b": np.array([0.1, 0.2, -0.3])}
    u1, _ = tx.update(g, tx.init(params), params)
    u2, _ = tx.update({"a": 1000.0 * g["a"], "b": g["b"]}, tx.init(params), params)
    for k in params:
        np.testing.assert_allclose(np.linalg.norm(u1[k]), np.linalg.norm(params[k]), rtol=1e-9)
        np.testing.assert_allclose(u2[k], u1[k], rtol=1e-9)


def test_lamb_rejects_bad_hyperparameters_with_one_message():
    with pytest.raises(ParameterError, match=r"lamb: betas\[1\] must be in \[0, 1\), got 1.5"):
        dc.optim.lamb(betas=(0.9, 1.5))
    with pytest.raises(ParameterError, match=r"lamb: max_grad_norm must be in \[0, inf\), got -1"):
        dc.optim.lamb(max_grad_norm=-1)
    with pytest.raises(ParameterError, match="lamb: rectify must be a bool, got 'yes'"):
        dc.optim.lamb(rectify="yes")


def test_lamb_update_without_params_is_a_clear_error():
    tx = dc.optim.lamb()
    p = {"w": np.ones(3)}
    with pytest.raises(ParameterError, match="lamb: update needs params"):
        tx.update(p, tx.init(p))
