"""Prodigy equals ``pytorch_optimizer.Prodigy`` 4.1.0 over a grid of its options (float64, 200 steps).

The oracle keeps its d-estimate sums in ``torch.tensor([0.0])``, i.e. in torch's default dtype: the
conformance tests run it with the default dtype float64 (``rtol=1e-7``); one test runs it as shipped
(float32 sums), which agrees to the float32 precision of d.
"""

from __future__ import annotations

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
    {"lr": 0.5, "d0": 1e-3},
    {"betas": (0.8, 0.99), "beta3": 0.9},
    {"d_coef": 0.5, "growth_rate": 1.05},
    {"weight_decay": 0.1},
    {"weight_decay": 0.01, "fixed_decay": True},
    {"bias_correction": True},
    {"safeguard_warmup": True},
    {"eps": None},
    {"eps": 1e-4, "d0": 1e-2},
    {"maximize": True},
]


def _id(kwargs):
    return ",".join(f"{k}={v}" for k, v in kwargs.items()) or "default"


@pytest.fixture
def float64_default_dtype():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.mark.parametrize("kwargs", CASES, ids=_id)
def test_prodigy_matches_pytorch_optimizer(kwargs, float64_default_dtype):
    params0, grad_fn = O.mixed()
    sign = -1.0 if kwargs.get("maximize") else 1.0
    ours = O.run_descend(dc.optim.prodigy(**kwargs), params0, grad_fn, STEPS, sign)
    theirs = O.run_torch(lambda ps: po.Prodigy(ps, **kwargs), params0, grad_fn, STEPS, sign)
    O.assert_matches(ours, theirs, params0, RTOL, what=_id(kwargs))


def test_prodigy_foreach_path_matches(float64_default_dtype):
    params0, grad_fn = O.mixed()
    kwargs = {"weight_decay": 0.1, "d0": 1e-4}
    ours = O.run_descend(dc.optim.prodigy(**kwargs), params0, grad_fn, STEPS)
    theirs = O.run_torch(lambda ps: po.Prodigy(ps, foreach=True, **kwargs), params0, grad_fn, STEPS)
    O.assert_matches(ours, theirs, params0, RTOL, what="foreach")


def test_prodigy_on_torch_tensors_through_descend_torch(float64_default_dtype):
    params0, grad_fn = O.mixed()
    ours = O.run_descend_torch(dc.optim.prodigy(weight_decay=0.1), params0, grad_fn, STEPS)
    theirs = O.run_torch(lambda ps: po.Prodigy(ps, weight_decay=0.1), params0, grad_fn, STEPS)
    O.assert_matches(ours, theirs, params0, RTOL, what="descend.torch")


def test_prodigy_against_the_shipped_float32_sums():
    params0, grad_fn = O.mixed()
    ours = O.run_descend(dc.optim.prodigy(), params0, grad_fn, STEPS)
    theirs = O.run_torch(lambda ps: po.Prodigy(ps), params0, grad_fn, STEPS)
    O.assert_matches(ours, theirs, params0, rtol=1e-4, what="float32 d")


def test_prodigy_grows_d_from_d0():
    params0, grad_fn = O.mixed()
    tx = dc.optim.prodigy()
    params = {k: v.copy() for k, v in params0.items()}
    state = tx.init(params)
    for _ in range(50):
        u, state = tx.update(grad_fn(params), state, params)
        params = dc.optim.apply_updates(params, u)
    d = state[-1].d
    assert d > 1e3 * 1e-6, d  # from 1e-6 to the scale of ‖θ₀ − θ*‖


def test_prodigy_refuses_the_no_op_coupled_decay():
    with pytest.raises(ParameterError, match="prodigy: weight_decouple must be True when weight_decay > 0"):
        dc.optim.prodigy(weight_decay=0.1, weight_decouple=False)
    dc.optim.prodigy(weight_decouple=False)  # harmless without decay
    with pytest.raises(ParameterError, match=r"prodigy: d0 must be in \(0, inf\), got 0"):
        dc.optim.prodigy(d0=0)
