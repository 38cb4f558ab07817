"""The fused kernels (descend.optim.fused) equal the reference chains they accelerate.

Each fast optimizer runs 1,000 steps on one contiguous buffer through its fused
``update`` and through the chain that defines it (``tx.update.reference``), with
schedules, weight decay (scalar and per-element), maximize, nesterov and a
plateau ``lr_scale``; the parameters must agree within float32 rounding
(float32) or to 1e-12 (float64). Other tests check that states move freely
between the two paths, that everything else falls back to the chain, that
``tx.update`` stays pure while reusing buffers, the in-place ``dc.optim.step``,
and one run against ``torch.optim.Adam(fused=True)``.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import descend as dc
from descend.optim import fused
from descend.optim._buffers import MIN_ELEMENTS

pytestmark = pytest.mark.skipif(not fused.ENABLED, reason="numba is not installed: only the reference path exists")

N = 301  # odd, so no kernel can rely on a multiple of the vector width
STEPS = 1000
TOL = {np.float32: dict(rtol=1e-5, atol=1e-7), np.float64: dict(rtol=1e-12, atol=1e-14)}


def _wd_array(dtype=np.float64) -> np.ndarray:
    mask = (np.arange(N) % 3 != 0).astype(dtype)  # like model.decay_mask(): some entries not decayed
    return 0.05 * mask


CASES = [
    ("adam", dict(lr=1e-2)),
    ("adam", dict(lr=dc.schedules.cosine_decay(2e-2, STEPS), weight_decay=0.1, maximize=True)),
    ("adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=_wd_array(), decoupled_weight_decay=True)),
    ("adam", dict(lr=1e-2, weight_decay=_wd_array())),
    ("adam", dict(lr=1e-3, bias_correction=False)),
    ("adamw", dict(lr=1e-2)),
    ("adamw", dict(lr=dc.schedules.exponential_decay(1e-2, 0.999), weight_decay=_wd_array(), maximize=True)),
    ("sgd", dict(lr=0.05)),
    ("sgd", dict(lr=0.05, weight_decay=0.01, maximize=True)),
    ("sgd", dict(lr=0.02, momentum=0.9, dampening=0.3)),
    ("sgd", dict(lr=dc.schedules.step_decay(0.02, step_size=200, gamma=0.5), momentum=0.9, nesterov=True)),
    ("sgd", dict(lr=0.02, momentum=0.5, weight_decay=_wd_array(), nesterov=True, maximize=True)),
    ("adagrad", dict(lr=0.1)),
    ("adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.05, initial_accumulator_value=0.1, maximize=True)),
    ("adagrad", dict(lr=0.1, eps_inside_sqrt=True, weight_decay=_wd_array())),
    ("rmsprop", dict(lr=1e-2)),
    ("rmsprop", dict(lr=1e-2, centered=True, momentum=0.9, weight_decay=0.01)),
    ("rmsprop", dict(lr=dc.schedules.linear_warmup(1e-2, 100), alpha=0.3, centered=True, eps_inside_sqrt=True)),
    ("rmsprop", dict(lr=1e-3, momentum=0.5, weight_decay=_wd_array(), maximize=True)),
]


def _ids(case) -> str:
    name, kwargs = case
    return name + "(" + ",".join(k for k in kwargs) + ")"


class Problem:
    """g = A(θ − c) + noise_t, a trajectory-dependent gradient (sign flipped for maximize)."""

    def __init__(self, dtype, maximize: bool = False, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.dtype = dtype
        self.curv = rng.uniform(0.1, 3.0, N).astype(dtype)
        self.center = rng.standard_normal(N).astype(dtype)
        self.noise = (0.1 * rng.standard_normal((STEPS, N))).astype(dtype)
        self.start = rng.standard_normal(N).astype(dtype)
        self.sign = -1.0 if maximize else 1.0

    def grad(self, params: np.ndarray, t: int) -> np.ndarray:
        g = self.curv * (params - self.center) + self.noise[t % STEPS]
        return (self.sign * g).astype(self.dtype)


def _run(update, tx, problem: Problem, steps: int, params=None, state=None, t0: int = 0):
    params = problem.start.copy() if params is None else params
    state = tx.init(params) if state is None else state
    for t in range(t0, t0 + steps):
        if t == 300:
            state = dc.optim.set_lr_scale(state, 0.5)  # a reduce-on-plateau decision
        if t == 600:
            state = dc.optim.set_lr_scale(state, 0.25)
        updates, state = update(problem.grad(params, t), state, params)
        params = dc.optim.apply_updates(params, updates)
    return params, state


def _cast_kwargs(kwargs: dict, dtype) -> dict:
    return {k: (v.astype(dtype) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_fused_equals_reference_chain_over_1000_steps(case, dtype) -> None:
    name, kwargs = case
    tx = getattr(dc.optim, name)(**_cast_kwargs(kwargs, dtype))
    problem = Problem(dtype, maximize=kwargs.get("maximize", False))
    before = fused.calls[name]
    p_fast, s_fast = _run(tx.update, tx, problem, STEPS)
    assert fused.calls[name] - before == STEPS, "the fused kernel must run for one contiguous buffer"
    p_ref, s_ref = _run(tx.update.reference, tx, problem, STEPS)
    assert p_fast.dtype == dtype
    assert np.all(np.isfinite(p_ref))
    assert not np.allclose(p_ref, problem.start, rtol=0, atol=1e-3), "the problem must move the parameters"
    np.testing.assert_allclose(p_fast, p_ref, **TOL[dtype])
    flat_fast, flat_ref = dc.optim.state_to_dict(s_fast), dc.optim.state_to_dict(s_ref)
    assert flat_fast.keys() == flat_ref.keys()
    for key in flat_ref:
        assert flat_fast[key].dtype == flat_ref[key].dtype, key
        np.testing.assert_allclose(flat_fast[key], flat_ref[key], err_msg=key, **TOL[dtype])
    assert dc.optim.get_lr(s_fast) == dc.optim.get_lr(s_ref)
    assert dc.optim.get_step(s_fast) == STEPS


@pytest.mark.parametrize("case", [CASES[1], CASES[6], CASES[11], CASES[13], CASES[16]], ids=_ids)
def test_state_moves_between_fused_and_reference_paths(case) -> None:
    name, kwargs = case
    dtype = np.float32
    tx = getattr(dc.optim, name)(**_cast_kwargs(kwargs, dtype))
    problem = Problem(dtype, maximize=kwargs.get("maximize", False))
    # 500 fused steps, a checkpoint round trip, 500 reference steps ...
    p, s = _run(tx.update, tx, problem, 500)
    s = dc.optim.state_from_dict(tx.init(p), dc.optim.state_to_dict(s))
    p_mixed, _ = _run(tx.update.reference, tx, problem, 500, params=p, state=s, t0=500)
    # ... and the reverse: 500 reference steps handed to the fused path.
    p2, s2 = _run(tx.update.reference, tx, problem, 500)
    before = fused.calls[name]
    p_mixed2, _ = _run(tx.update, tx, problem, 500, params=p2, state=s2, t0=500)
    assert fused.calls[name] - before == 500
    p_ref, _ = _run(tx.update.reference, tx, problem, STEPS)
    np.testing.assert_allclose(p_mixed, p_ref, **TOL[dtype])
    np.testing.assert_allclose(p_mixed2, p_ref, **TOL[dtype])


def _one_step(tx, grads, params):
    state = tx.init(params)
    return tx.update(grads, state, params)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("tree with a strided leaf", lambda: ({"w": np.ones(10, np.float32)[::2]}, {"w": np.ones(5, np.float32)})),
        ("strided view", lambda: (np.ones(10, np.float32)[::2], np.full(10, 0.5, np.float32)[::2])),
        ("fortran order", lambda: (np.ones((3, 4), order="F"), np.full((3, 4), 0.5, order="F"))),
        ("mixed dtypes", lambda: (np.ones(5, np.float32), np.full(5, 0.5, np.float64))),
        ("integer grads", lambda: (np.ones(5), np.full(5, 1, np.int64))),
        ("float16", lambda: (np.ones(5, np.float16), np.full(5, 0.5, np.float16))),
    ],
)
def test_everything_else_falls_back_to_the_reference_chain(name, make) -> None:
    params, grads = make()
    for factory in (dc.optim.adam, dc.optim.sgd, dc.optim.adagrad, dc.optim.rmsprop):
        tx = factory(lr=0.1, weight_decay=0.01)
        total = sum(fused.calls.values())
        updates, _ = _one_step(tx, grads, params)
        assert sum(fused.calls.values()) == total, f"{name} must not take the fused path"
        expected, _ = tx.update.reference(grads, tx.init(params), params)
        if isinstance(expected, dict):
            np.testing.assert_array_equal(updates["w"], expected["w"])
        else:
            np.testing.assert_array_equal(updates, expected)


def test_amsgrad_and_broadcast_weight_decay_use_the_chain() -> None:
    params, grads = np.ones((4, 3), np.float32), np.full((4, 3), 0.5, np.float32)
    assert not hasattr(dc.optim.adam(amsgrad=True).update, "reference"), "amsgrad has no kernel"
    tx = dc.optim.adamw(weight_decay=np.array([0.0, 0.1, 0.2]))  # broadcasts over rows: the chain handles it
    total = sum(fused.calls.values())
    updates, _ = _one_step(tx, grads, params)
    assert sum(fused.calls.values()) == total
    np.testing.assert_array_equal(updates, tx.update.reference(grads, tx.init(params), params)[0])


def test_fused_path_is_the_default_and_can_be_switched_off(monkeypatch) -> None:
    p, g = np.ones(8, np.float32), np.full(8, 0.5, np.float32)
    tx = dc.optim.adam(lr=1e-3)
    before = fused.calls["adam"]
    _one_step(tx, g, p)
    assert fused.calls["adam"] == before + 1
    with dc.config.using(fused=False):
        assert fused.ENABLED is False  # the old module attribute reads the configuration
        _one_step(tx, g, p)
        dc.optim.step(tx, p.copy(), g, tx.init(p))
        dc.optim.donating_update(tx, g, tx.init(p), p)
    assert fused.calls["adam"] == before + 1
    monkeypatch.setattr(fused, "ENABLED", False)  # and writes it, as before
    assert dc.config.fused is False
    _one_step(tx, g, p)
    assert fused.calls["adam"] == before + 1


def test_without_numba_the_reference_path_runs(monkeypatch) -> None:
    monkeypatch.setattr(dc.config, "fused", True)
    monkeypatch.setattr(fused, "_kernels_module", None)
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now raises ImportError
    monkeypatch.delitem(sys.modules, "descend.optim._kernels", raising=False)
    p, g = np.ones(8, np.float32), np.full(8, 0.5, np.float32)
    tx = dc.optim.adam(lr=1e-3)
    before = fused.calls["adam"]
    updates, _ = _one_step(tx, g, p)
    assert fused.calls["adam"] == before
    assert dc.config.fused is False  # switched off for the process, once
    np.testing.assert_array_equal(updates, tx.update.reference(g, tx.init(p), p)[0])


def test_update_is_pure_while_output_buffers_are_recycled() -> None:
    n = 3 * MIN_ELEMENTS + 7  # large enough to use the buffer pool
    rng = np.random.default_rng(1)
    tx = dc.optim.adam(lr=1e-2, weight_decay=0.1)
    params = rng.standard_normal(n).astype(np.float32)
    state = tx.init(params)
    kept = []  # (state, updates, copies) of every third step, which must never change afterwards
    ids = set()
    for t in range(12):
        grads = rng.standard_normal(n).astype(np.float32)
        g_copy, p_copy = grads.copy(), params.copy()
        s_copy = dc.optim.state_to_dict(state)
        updates, new_state = tx.update(grads, state, params)
        np.testing.assert_array_equal(grads, g_copy)
        np.testing.assert_array_equal(params, p_copy)
        for key, value in dc.optim.state_to_dict(state).items():
            np.testing.assert_array_equal(value, s_copy[key], err_msg=key)
        if t % 3 == 0:
            kept.append((new_state, updates, dc.optim.state_to_dict(new_state), updates.copy()))
        ids.update(a.ctypes.data for a in (updates, new_state[1].exp_avg, new_state[1].exp_avg_sq))
        params = params + updates
        state = new_state
    for s, u, s_copy, u_copy in kept:
        np.testing.assert_array_equal(u, u_copy)
        for key, value in dc.optim.state_to_dict(s).items():
            np.testing.assert_array_equal(value, s_copy[key], err_msg=key)
    assert len(ids) < 3 * 12, "dropped output buffers are reused"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [CASES[1], CASES[6], CASES[11], CASES[14], CASES[16]], ids=_ids)
def test_step_in_place_equals_update_and_apply(case, dtype) -> None:
    name, kwargs = case
    tx = getattr(dc.optim, name)(**_cast_kwargs(kwargs, dtype))
    problem = Problem(dtype, maximize=kwargs.get("maximize", False))
    params = problem.start.copy()
    buffer = params  # the same array object throughout
    state = tx.init(params)
    before = fused.calls[name]
    for t in range(200):
        grads = problem.grad(params, t)
        g_copy = grads.copy()
        state = dc.optim.step(tx, params, grads, state)
        np.testing.assert_array_equal(grads, g_copy)
    assert fused.calls[name] - before == 200
    assert params is buffer
    p_ref, s_ref = _run(tx.update.reference, tx, problem, 200)
    np.testing.assert_allclose(params, p_ref, **TOL[dtype])
    flat, flat_ref = dc.optim.state_to_dict(state), dc.optim.state_to_dict(s_ref)
    for key in flat_ref:
        np.testing.assert_allclose(flat[key], flat_ref[key], err_msg=key, **TOL[dtype])


def test_step_in_place_on_trees_and_other_optimizers() -> None:
    params = {"w": np.ones((2, 3)), "b": np.zeros(3)}
    grads = {"w": np.full((2, 3), 0.5), "b": np.ones(3)}
    w = params["w"]
    for tx in (dc.optim.adam(lr=0.1), dc.optim.nadam(lr=0.1)):
        expected_updates, _ = tx.update(grads, tx.init(params), params)
        expected = dc.optim.apply_updates(params, expected_updates)
        p = {k: v.copy() for k, v in params.items()}
        state = dc.optim.step(tx, p, grads, tx.init(p))
        assert dc.optim.get_step(state) == 1
        np.testing.assert_array_equal(p["w"], expected["w"])
        np.testing.assert_array_equal(p["b"], expected["b"])
    assert params["w"] is w and np.all(w == 1.0)
    frozen = np.ones(3)
    frozen.flags.writeable = False
    with pytest.raises(dc.errors.ParameterError, match="step: params must be writeable ndarrays"):
        dc.optim.step(dc.optim.nadam(), frozen, np.ones(3), dc.optim.nadam().init(frozen))


def test_fused_adam_matches_torch_fused_adam_float32() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    n, steps = 1000, 100
    start = rng.standard_normal(n).astype(np.float32)
    grads = rng.standard_normal((steps, n)).astype(np.float32)
    kwargs = dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01)
    tx = dc.optim.adam(**kwargs)
    params, state = start.copy(), tx.init(start)
    before = fused.calls["adam"]
    theta = torch.tensor(start.copy(), requires_grad=True)
    opt = torch.optim.Adam([theta], fused=True, **kwargs)
    for t in range(steps):
        g = grads[t] * (1.0 + 0.5 * params)  # depends on the trajectory
        state = dc.optim.step(tx, params, g.astype(np.float32), state)
        theta.grad = torch.from_numpy((grads[t] * (1.0 + 0.5 * theta.detach().numpy())).astype(np.float32))
        opt.step()
    assert fused.calls["adam"] - before == steps
    np.testing.assert_allclose(params, theta.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(state[1].exp_avg_sq, opt.state[theta]["exp_avg_sq"].numpy(), rtol=1e-4, atol=1e-9)
