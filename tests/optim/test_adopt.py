"""ADOPT equals ``pytorch_optimizer.ADOPT`` 4.1.0 over a grid of its options (float64, 200 steps)."""

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
    {"lr": 0.05},
    {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-3},
    {"lr": 0.05, "weight_decay": 0.1},
    {"lr": 0.05, "weight_decay": 0.1, "weight_decouple": True},
    {"lr": 0.05, "weight_decay": 0.01, "weight_decouple": True, "fixed_decay": True},
    {"lr": 0.05, "clip_lambda": None},
    {"lr": 0.05, "clip_lambda": lambda t: 0.3},
    {"lr": 0.05, "maximize": True},
]


def _id(kwargs):
    return ",".join(f"{k}={'fn' if callable(v) else v}" for k, v in kwargs.items()) or "default"


@pytest.mark.parametrize("foreach", [False, None])
@pytest.mark.parametrize("kwargs", CASES, ids=_id)
def test_adopt_matches_pytorch_optimizer(kwargs, foreach):
    params0, grad_fn = O.mixed()
    sign = -1.0 if kwargs.get("maximize") else 1.0
    ours = O.run_descend(dc.optim.adopt(**kwargs), params0, grad_fn, STEPS, sign)
    theirs = O.run_torch(lambda ps: po.ADOPT(ps, foreach=foreach, **kwargs), params0, grad_fn, STEPS, sign)
    O.assert_matches(ours, theirs, params0, RTOL, what=_id(kwargs))


def test_adopt_on_torch_tensors_through_descend_torch():
    kwargs = {"lr": 0.05, "weight_decay": 0.1}
    params0, grad_fn = O.mixed()
    ours = O.run_descend_torch(dc.optim.adopt(**kwargs), params0, grad_fn, STEPS)
    theirs = O.run_torch(lambda ps: po.ADOPT(ps, **kwargs), params0, grad_fn, STEPS)
    O.assert_matches(ours, theirs, params0, RTOL, what="descend.torch")


def test_adopt_first_step_only_initialises_the_second_moment():
    tx = dc.optim.adopt(lr=0.1)
    p = {"w": np.array([1.0, -2.0])}
    u, state = tx.update({"w": np.array([3.0, 4.0])}, tx.init(p), p)
    np.testing.assert_array_equal(u["w"], [0.0, 0.0])
    u, state = tx.update({"w": np.array([3.0, 4.0])}, state, p)  # n = g/|g| = 1 → m = 0.1 → −η·m
    np.testing.assert_allclose(u["w"], [-0.01, -0.01])


def test_adopt_rejects_bad_arguments_with_one_message():
    with pytest.raises(ParameterError, match=r"adopt: clip_lambda must be one of None or a callable, got 1\.0"):
        dc.optim.adopt(clip_lambda=1.0)
    tx = dc.optim.adopt(clip_lambda=lambda t: "x")
    p = {"w": np.ones(2)}
    _, state = tx.update(p, tx.init(p), p)
    with pytest.raises(ParameterError, match="adopt: clip_lambda must return a real number, got 'x' at step 2"):
        tx.update(p, state, p)
