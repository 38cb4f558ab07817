"""AdEMAMix equals ``pytorch_optimizer.AdEMAMix`` 4.1.0 over a grid of its options (float64, 200 steps)."""

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
    {"lr": 0.02},
    {"lr": 0.02, "betas": (0.8, 0.99, 0.999), "alpha": 2.0, "eps": 1e-6},
    {"lr": 0.02, "t_alpha_beta3": 150},
    {"lr": 0.02, "weight_decay": 0.1},
    {"lr": 0.02, "weight_decay": 0.1, "weight_decouple": True},
    {"lr": 0.02, "weight_decay": 0.01, "weight_decouple": True, "fixed_decay": True},
    {"lr": 0.02, "maximize": True},
]


def _id(kwargs):
    return ",".join(f"{k}={v}" for k, v in kwargs.items()) or "default"


@pytest.mark.parametrize("foreach", [False, None])
@pytest.mark.parametrize("kwargs", CASES, ids=_id)
def test_ademamix_matches_pytorch_optimizer(kwargs, foreach):
    params0, grad_fn = O.mixed()
    sign = -1.0 if kwargs.get("maximize") else 1.0
    ours = O.run_descend(dc.optim.ademamix(**kwargs), params0, grad_fn, STEPS, sign)
    theirs = O.run_torch(lambda ps: po.AdEMAMix(ps, foreach=foreach, **kwargs), params0, grad_fn, STEPS, sign)
    O.assert_matches(ours, theirs, params0, RTOL, what=_id(kwargs))


def test_ademamix_on_torch_tensors_through_descend_torch():
    kwargs = {"lr": 0.02, "t_alpha_beta3": 150, "weight_decay": 0.1, "weight_decouple": True}
    params0, grad_fn = O.mixed()
    ours = O.run_descend_torch(dc.optim.ademamix(**kwargs), params0, grad_fn, STEPS)
    theirs = O.run_torch(lambda ps: po.AdEMAMix(ps, **kwargs), params0, grad_fn, STEPS)
    O.assert_matches(ours, theirs, params0, RTOL, what="descend.torch")


def test_ademamix_with_alpha_zero_is_adam():
    params0, grad_fn = O.mixed()
    ours = O.run_descend(dc.optim.ademamix(lr=0.02, alpha=0.0), params0, grad_fn, 50)
    adam = O.run_descend(dc.optim.adam(lr=0.02), params0, grad_fn, 50)
    for k in params0:
        np.testing.assert_allclose(ours[k], adam[k], rtol=1e-12)


def test_ademamix_rejects_bad_arguments_with_one_message():
    with pytest.raises(ParameterError, match=r"ademamix: betas must be three numbers \(β₁, β₂, β₃\), got \(0.9, 0.9\)"):
        dc.optim.ademamix(betas=(0.9, 0.9))
    with pytest.raises(ParameterError, match=r"ademamix: betas\[2\] must be in \[0, 1\), got 1.0"):
        dc.optim.ademamix(betas=(0.9, 0.99, 1.0))
    with pytest.raises(ParameterError, match=r"ademamix: t_alpha_beta3 must be one of None or in \(0, inf\), got 0"):
        dc.optim.ademamix(t_alpha_beta3=0)
