"""LARS equals ``pytorch_optimizer.LARS`` 4.1.0 over a grid of its options (float64, 200 steps)."""

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
    {"lr": 0.02, "trust_coefficient": 0.05},
    {"lr": 0.02, "trust_coefficient": 0.05, "weight_decay": 0.1},
    {"lr": 0.02, "trust_coefficient": 0.05, "nesterov": True, "momentum": 0.8},
    {"lr": 0.02, "trust_coefficient": 0.05, "dampening": 0.3},
    {"lr": 0.02, "trust_coefficient": 0.05, "momentum": 0.0, "weight_decay": 0.01},
    {"lr": 0.02, "trust_coefficient": 0.05, "maximize": True},
]


def _id(kwargs):
    return ",".join(f"{k}={v}" for k, v in kwargs.items()) or "default"


@pytest.mark.parametrize("foreach", [False, None])
@pytest.mark.parametrize("kwargs", CASES, ids=_id)
def test_lars_matches_pytorch_optimizer(kwargs, foreach):
    params0, grad_fn = O.mixed()
    sign = -1.0 if kwargs.get("maximize") else 1.0
    ours = O.run_descend(dc.optim.lars(**kwargs), params0, grad_fn, STEPS, sign)
    theirs = O.run_torch(lambda ps: po.LARS(ps, foreach=foreach, **kwargs), params0, grad_fn, STEPS, sign)
    O.assert_matches(ours, theirs, params0, RTOL, what=_id(kwargs))


def test_lars_on_torch_tensors_through_descend_torch():
    kwargs = {"lr": 0.02, "trust_coefficient": 0.05, "weight_decay": 0.1}
    params0, grad_fn = O.mixed()
    ours = O.run_descend_torch(dc.optim.lars(**kwargs), params0, grad_fn, STEPS)
    theirs = O.run_torch(lambda ps: po.LARS(ps, **kwargs), params0, grad_fn, STEPS)
    O.assert_matches(ours, theirs, params0, RTOL, what="descend.torch")


def test_lars_trust_ratio_is_per_matrix_leaf_and_vectors_are_plain_sgd():
    tx = dc.optim.lars(lr=1.0, momentum=0.0, trust_coefficient=0.1)
    params = {"W": np.full((2, 2), 3.0), "b": np.full(2, 3.0)}
    grads = {"W": np.full((2, 2), 100.0), "b": np.full(2, 100.0)}
    u, _ = tx.update(grads, tx.init(params), params)
    # W: τ = 0.1·6/200 → the step is τ·g = 0.3 per entry; b: the raw −η·g
    np.testing.assert_allclose(u["W"], np.full((2, 2), -0.3))
    np.testing.assert_allclose(u["b"], np.full(2, -100.0))


def test_lars_rejects_bad_hyperparameters_with_one_message():
    with pytest.raises(ParameterError, match=r"lars: momentum must be in \[0, 1\], got 1.5"):
        dc.optim.lars(momentum=1.5)
    with pytest.raises(ParameterError, match=r"lars: trust_coefficient must be in \[0, inf\), got -0.1"):
        dc.optim.lars(trust_coefficient=-0.1)
