"""SOAP equals ``pytorch_optimizer.SOAP`` 4.1.0 over a grid of its options (float64, 200 steps).

Two things make the oracle's trajectory LAPACK-dependent, and the tests are built around them:

* it computes the power-iteration QR in float32 (``power_iter.to(torch.float32)``); descend does the
  same, so on torch tensors (the same LAPACK) the two agree to ``rtol=1e-7``, while NumPy's float32 QR
  (another LAPACK) differs in the last float32 bits: the NumPy tests use ``rtol=5e-5``, the tightest
  that holds over 200 steps (measured: ≤ 2.8e-5, channels_last; ≤ 5e-6 elsewhere);
* the first eigenbasis comes from the first gradient alone, so a rank-deficient G·Gᵀ has a repeated
  eigenvalue 0 whose eigenvectors each LAPACK picks differently: the problems below keep every
  preconditioned axis full-rank at the first step (``max_precondition_dim`` leaves the long axes alone).
"""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc
from descend.errors import ParameterError
from tests.optim import _oracles as O

torch = pytest.importorskip("torch")
po = pytest.importorskip("pytorch_optimizer")

STEPS = 200
RTOL_NUMPY = 5e-5
RTOL_TORCH = 1e-7

_A = np.random.default_rng(5).normal(size=(7, 2))


def _params():
    r = np.random.default_rng(11)
    return {"W": r.normal(size=(5, 3)) + 3.0, "U": r.normal(size=(2, 6)) - 2.0, "b": r.normal(size=3) + 4.0}


def _grad(p):
    return {
        "W": 0.3 * (p["W"] - 1.0) + 0.2 * np.sin(p["W"]) + 0.05 * p["W"] @ np.ones((3, 3)),
        "U": (_A.T @ (_A @ p["U"] - 1.0)) / 7 + 0.1 * np.cos(p["U"]),
        "b": 0.5 * (p["b"] - 2.0) + 0.1 * np.sin(3 * p["b"]),
    }


def _conv_params():
    r = np.random.default_rng(13)
    return {"K": r.normal(size=(3, 1, 4)) + 1.0, "C": r.normal(size=(2, 1, 1, 3)) - 1.0}


def _conv_grad(p):
    return {k: 0.4 * (v - 0.5) + 0.2 * np.sin(2.0 * v) for k, v in p.items()}


CASES = [
    ({"max_precondition_dim": 4}, "mixed"),
    ({"max_precondition_dim": 4, "lr": 0.01, "precondition_frequency": 3}, "mixed"),
    ({"max_precondition_dim": 4, "lr": 0.01, "betas": (0.9, 0.99), "shampoo_beta": 0.8}, "mixed"),
    ({"max_precondition_dim": 4, "lr": 0.01, "weight_decay": 0.0, "correct_bias": False}, "mixed"),
    ({"max_precondition_dim": 4, "lr": 0.01, "normalize_gradient": True}, "mixed"),
    ({"max_precondition_dim": 4, "lr": 0.01, "precondition_1d": True, "eps": 1e-6}, "vector"),
    ({"max_precondition_dim": 4, "lr": 0.01, "maximize": True}, "mixed"),
    ({"max_precondition_dim": 3, "lr": 0.01, "merge_dims": True}, "conv"),
    ({"max_precondition_dim": 2, "lr": 0.01, "merge_dims": True, "data_format": "channels_last"}, "conv"),
]
PROBLEMS = {
    "mixed": (_params, _grad),
    # a one-entry vector: precondition_1d's 1×1 preconditioner is full-rank from the first step
    "vector": (
        lambda: {"w": np.array([3.0]), "W": _params()["W"]},
        lambda p: {"w": 0.5 * p["w"], "W": 0.3 * (p["W"] - 1.0) + 0.2 * np.sin(p["W"])},
    ),
    "conv": (_conv_params, _conv_grad),
}


def _id(case):
    kwargs, problem = case
    return problem + ":" + ",".join(f"{k}={v}" for k, v in kwargs.items())


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_soap_matches_pytorch_optimizer(case):
    kwargs, problem = case
    make, grad_fn = PROBLEMS[problem]
    params0 = make()
    sign = -1.0 if kwargs.get("maximize") else 1.0
    ours = O.run_descend(dc.optim.soap(**kwargs), params0, grad_fn, STEPS, sign)
    theirs = O.run_torch(lambda ps: po.SOAP(ps, **kwargs), params0, grad_fn, STEPS, sign)
    O.assert_matches(ours, theirs, params0, RTOL_NUMPY, what=_id(case))


@pytest.mark.parametrize("case", [CASES[1], CASES[4], CASES[8]], ids=_id)
def test_soap_on_torch_tensors_through_descend_torch(case):
    kwargs, problem = case
    make, grad_fn = PROBLEMS[problem]
    params0 = make()
    ours = O.run_descend_torch(dc.optim.soap(**kwargs), params0, grad_fn, STEPS)
    theirs = O.run_torch(lambda ps: po.SOAP(ps, **kwargs), params0, grad_fn, STEPS)
    O.assert_matches(ours, theirs, params0, RTOL_TORCH, what=_id(case))


def test_soap_is_not_adam():
    params0 = _params()
    ours = O.run_descend(dc.optim.soap(lr=0.01, max_precondition_dim=4), params0, _grad, 50)
    plain = O.run_descend(dc.optim.soap(lr=0.01, max_precondition_dim=1), params0, _grad, 50)  # identity bases
    assert not np.allclose(ours["W"], plain["W"], rtol=1e-3)
    np.testing.assert_allclose(ours["b"], plain["b"], rtol=1e-12)  # vectors keep the identity basis


def test_soap_first_step_only_builds_the_preconditioner():
    tx = dc.optim.soap()
    p = {"W": np.ones((2, 2))}
    u, state = tx.update({"W": np.array([[1.0, 2.0], [3.0, 4.0]])}, tx.init(p), p)
    np.testing.assert_array_equal(u["W"], np.zeros((2, 2)))
    assert state[-1].count == 1
    restored = dc.optim.state_from_dict(tx.init(p), dc.optim.state_to_dict(state))  # checkpointable
    np.testing.assert_array_equal(restored[-1].Q["W"][0], state[-1].Q["W"][0])


def test_soap_rejects_bad_arguments_with_one_message():
    with pytest.raises(ParameterError, match="soap: data_format must be one of 'channels_first', 'channels_last'"):
        dc.optim.soap(data_format="nhwc")
    with pytest.raises(ParameterError, match=r"soap: precondition_frequency must be an integer in \[1, inf\), got 0"):
        dc.optim.soap(precondition_frequency=0)
