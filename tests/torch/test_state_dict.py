"""state_dict / load_state_dict: torch's layout for the optimizers torch has, both ways; descend's layout otherwise."""

from __future__ import annotations

import copy

import pytest
import torch

import descend.torch as dtorch
from descend import optim
from descend.errors import StructureError
from tests.torch.helpers import TORCH_HAS, assert_same_tensors, clone, make_params, run, saved, torch_optimizer

K, N = 6, 6  # steps before the hand-over, steps after
DTYPES = [torch.float64, torch.float32]


def _params_equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype
        assert torch.equal(x, y)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(TORCH_HAS))
def test_torch_state_loads_into_descend_and_back_bit_for_bit(name: str, dtype: torch.dtype) -> None:
    """torch → descend → torch continues exactly as torch's own save/load, and descend continues as torch does."""
    kwargs = TORCH_HAS[name]
    ref_params = make_params(dtype)
    ref = torch_optimizer(name, ref_params, **kwargs)
    run(ref, ref_params, K)
    sd = saved(ref)

    c_params = clone(ref_params)  # torch's own save / load: the reference
    c = torch_optimizer(name, c_params, **kwargs)
    c.load_state_dict(copy.deepcopy(sd))
    d_params = clone(ref_params)
    ours = getattr(dtorch, name)(d_params, **kwargs)
    ours.load_state_dict(copy.deepcopy(sd))
    keys = None if name != "SGD" else ["momentum_buffer"]  # descend also records the step, torch's SGD does not
    # descend holds what torch holds after the load (Π μ_i of NAdam in the dtype it was saved in)
    assert_same_tensors(ours.state_dict(), c.state_dict(), keys, by_value=("mu_product",))

    b_params = clone(ref_params)
    b = torch_optimizer(name, b_params, **kwargs)
    b.load_state_dict(saved(ours))
    run(b, b_params, N)
    run(c, c_params, N)
    _params_equal(b_params, c_params)
    assert_same_tensors(b.state_dict(), c.state_dict(), keys)

    run(ours, d_params, N)  # descend's own continuation: torch's arithmetic to rounding
    rtol = 1e-7 if dtype == torch.float64 else 2e-5
    for x, y in zip(d_params, c_params, strict=True):
        assert x.dtype == dtype
        torch.testing.assert_close(x, y, rtol=rtol, atol=1e-6 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(TORCH_HAS))
def test_descend_state_loads_into_torch_and_back_bit_for_bit(name: str, dtype: torch.dtype) -> None:
    """descend → torch → descend continues exactly as descend's own save/load, which continues as if never saved."""
    kwargs = TORCH_HAS[name]
    params = make_params(dtype)
    ours = getattr(dtorch, name)(params, **kwargs)
    ref_params = clone(params)
    run(ours, params, K)
    sd = saved(ours)
    ref = torch_optimizer(name, ref_params, **kwargs)  # torch's own K steps: the layout descend must write
    run(ref, ref_params, K)
    for i, state in saved(ref)["state"].items():
        assert set(sd["state"][i]) == set(state) | {"step"}  # descend also records the step in SGD's
        assert float(sd["state"][i]["step"]) == K
        for key, value in state.items():
            expected = torch.float64 if key == "mu_product" else value.dtype  # descend keeps Π μ_i in double
            assert (sd["state"][i][key].dtype, sd["state"][i][key].shape) == (expected, value.shape), key

    t_params = clone(params)
    theirs = torch_optimizer(name, t_params, **kwargs)
    theirs.load_state_dict(copy.deepcopy(sd))
    sd_t = saved(theirs)

    d2_params, d3_params = clone(params), clone(params)
    d2 = getattr(dtorch, name)(d2_params, **kwargs)
    d2.load_state_dict(sd_t)
    d3 = getattr(dtorch, name)(d3_params, **kwargs)
    d3.load_state_dict(copy.deepcopy(sd))
    run(d2, d2_params, N)
    run(d3, d3_params, N)
    run(ours, params, N)  # never saved
    _params_equal(d3_params, params)
    assert_same_tensors(d3.state_dict(), ours.state_dict())
    if name == "NAdam" and dtype == torch.float32:
        # torch casts every state tensor but "step" to the parameter's dtype on load: Π μ_i goes through float32
        for x, y in zip(d2_params, d3_params, strict=True):
            torch.testing.assert_close(x, y, rtol=1e-6, atol=0.0)
    else:
        _params_equal(d2_params, d3_params)
        assert_same_tensors(d2.state_dict(), d3.state_dict())

    run(theirs, t_params, N)  # torch continues descend's run: the same to rounding
    rtol = 1e-7 if dtype == torch.float64 else 2e-5
    for x, y in zip(t_params, params, strict=True):
        torch.testing.assert_close(x, y, rtol=rtol, atol=1e-6 if dtype == torch.float32 else 1e-12)


def test_lion_uses_descends_versioned_layout_and_continues_bit_for_bit() -> None:
    params = make_params(torch.float32)
    opt = dtorch.Lion(params, lr=1e-3, weight_decay=0.1)
    run(opt, params, K)
    sd = saved(opt)
    state0 = sd["state"][0]
    assert state0[dtorch.LAYOUT_KEY] == dtorch.LAYOUT_VERSION
    momentum = [k for k, v in state0.items() if k.endswith("exp_avg")]
    assert len(momentum) == 1 and state0[momentum[0]].dtype == torch.float32
    assert [v for k, v in state0.items() if k.endswith("count")] == [K, K]  # Lion's link and the lr link
    again = clone(params)
    opt2 = dtorch.Lion(again, lr=1e-3, weight_decay=0.1)
    opt2.load_state_dict(sd)
    run(opt, params, N)
    run(opt2, again, N)
    _params_equal(params, again)


def _float64_sum():
    """A transformation whose state is float64 whatever the parameters' dtype (torch's loader would cast it)."""
    from typing import NamedTuple

    class State(NamedTuple):
        count: int
        total: list

    def init(params):
        return State(0, [torch.zeros(p.shape, dtype=torch.float64, device=p.device) for p in params])

    def update(updates, state, params=None):
        total = [t + g.to(torch.float64) for t, g in zip(state.total, updates, strict=True)]
        return [-0.1 * g for g in updates], State(state.count + 1, total)

    return optim.GradientTransformation(init, update)


def test_descend_layout_keeps_the_saved_dtypes() -> None:
    params = make_params(torch.float32)
    tx = _float64_sum()
    opt = dtorch.Optimizer(params, tx)
    run(opt, params, 3)
    sd = saved(opt)
    assert sd["state"][0]["total"].dtype == torch.float64
    other = dtorch.Optimizer(clone(params), tx)
    other.load_state_dict(sd)
    p0 = other.param_groups[0]["params"][0]
    assert other.state[p0]["total"].dtype == torch.float64  # torch.optim.Optimizer.load_state_dict casts to float32
    assert torch.equal(other.state[p0]["total"], sd["state"][0]["total"])


def _snapshot(opt: torch.optim.Optimizer) -> dict:
    return {id(p): dict(s) for p, s in opt.state.items()}


def test_loading_a_torch_layout_into_descends_layout_says_so_and_writes_nothing() -> None:
    params = make_params()
    adam = torch_optimizer("Adam", params, lr=0.01)
    run(adam, params, 2)
    lion = dtorch.Lion(clone(params))
    run(lion, lion.param_groups[0]["params"], 1)
    before = _snapshot(lion)
    with pytest.raises(StructureError, match=r"not in descend's layout version 1 .*got 'descend_layout': None"):
        lion.load_state_dict(saved(adam))
    assert _snapshot(lion) == before
    assert lion.param_groups[0]["lr"] == 1e-4


def test_a_missing_torch_key_is_named_and_nothing_is_written() -> None:
    params = make_params()
    src = torch_optimizer("Adam", params, lr=0.01)
    run(src, params, 2)
    sd = saved(src)
    del sd["state"][1]["exp_avg_sq"]
    sd["param_groups"][0]["lr"] = 0.5
    ours = dtorch.Adam(clone(params), lr=0.01)
    run(ours, ours.param_groups[0]["params"], 1)
    before = _snapshot(ours)
    with pytest.raises(
        StructureError, match=r"parameter 1 needs the keys \['exp_avg', 'exp_avg_sq'\].*missing \['exp_avg_sq'\]"
    ):
        ours.load_state_dict(sd)
    assert _snapshot(ours) == before
    assert ours.param_groups[0]["lr"] == 0.01


def test_a_state_of_the_wrong_shape_is_refused() -> None:
    params = make_params()
    src = dtorch.Adam(params, lr=0.01)
    run(src, params, 2)
    sd = saved(src)
    sd["state"][0]["exp_avg"] = torch.zeros(3, 5, dtype=torch.float64)
    ours = dtorch.Adam(clone(params), lr=0.01)
    with pytest.raises(
        StructureError, match=r"'1.exp_avg' of parameter 0 must be a tensor of shape \(5, 3\), got shape \(3, 5\)"
    ):
        ours.load_state_dict(sd)
    assert not ours.state


def test_a_different_number_of_groups_or_parameters_is_refused() -> None:
    params = make_params()
    sd = saved(dtorch.Adam(params))
    two_groups = dtorch.Adam([{"params": params[:1]}, {"params": params[1:]}])
    with pytest.raises(StructureError, match="the saved state has 1 parameter groups, this optimizer has 2"):
        two_groups.load_state_dict(sd)
    fewer = dtorch.Adam(params[:2])
    with pytest.raises(StructureError, match="parameter group 0 has 3 parameters in the saved state and 2 here"):
        fewer.load_state_dict(sd)
    with pytest.raises(StructureError, match="expected a dict with 'state' and 'param_groups', got \\['state'\\]"):
        fewer.load_state_dict({"state": {}})


def test_invalid_saved_hyperparameters_are_refused_before_anything_is_written() -> None:
    params = make_params()
    sd = saved(dtorch.Adam(params))
    sd["param_groups"][0]["betas"] = (1.5, 0.999)
    ours = dtorch.Adam(clone(params))
    with pytest.raises(Exception, match=r"adam: betas\[0\] must be in \[0, 1\), got 1.5"):
        ours.load_state_dict(sd)
    assert ours.param_groups[0]["betas"] == (0.9, 0.999)
