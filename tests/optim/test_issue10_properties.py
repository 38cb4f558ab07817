"""Properties every optimizer of issue 10 that is a GradientTransformation must have (the registry of
``test_all_optimizers.py`` for the older ones): float32 stays float32 in updates and state, the state
round-trips through ``state_to_dict`` / ``state_from_dict``, lr = 0 changes nothing, and each one
descends on the ill-conditioned quadratic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import descend as dc
from tests.optim import problems

O = dc.optim
FACTORIES = {
    "lamb": lambda lr: O.lamb(lr=lr, weight_decay=0.01),
    "lars": lambda lr: O.lars(lr=lr, weight_decay=0.01, trust_coefficient=0.1),
    "lookahead": lambda lr: O.lookahead(O.sgd(lr=lr, momentum=0.9), pullback_momentum="pullback"),
    "adopt": lambda lr: O.adopt(lr=lr),
    "ademamix": lambda lr: O.ademamix(lr=lr, t_alpha_beta3=10),
    "schedule_free_sgd": lambda lr: O.schedule_free_sgd(lr=lr, warmup_steps=2),
    "schedule_free_adamw": lambda lr: O.schedule_free_adamw(lr=lr, weight_decay=0.01),
    "muon": lambda lr: O.muon(lr=lr, adamw_lr=lr),
    "prodigy": lambda lr: O.prodigy(lr=lr / 0.05, weight_decay=0.01),
    "soap": lambda lr: O.soap(lr=lr, precondition_frequency=2),
}
# schedule-free's y = β·x + (1−β)·z equals θ only up to rounding when x = z = θ
EXACT_AT_LR_ZERO = sorted(set(FACTORIES) - {"schedule_free_sgd", "schedule_free_adamw"})

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved_in_updates_and_state(name, dtype):
    rng = np.random.default_rng(0)
    params = {"W": rng.normal(size=(4, 3)).astype(dtype), "b": rng.normal(size=3).astype(dtype)}
    tx = FACTORIES[name](0.01)
    state = tx.init(params)
    for _ in range(4):
        grads = {k: rng.normal(size=v.shape).astype(dtype) for k, v in params.items()}
        updates, state = tx.update(grads, state, params)
        for k in params:
            assert updates[k].dtype == dtype, f"{name}: updates[{k!r}] is {updates[k].dtype}"
        params = O.apply_updates(params, updates)
    for key, arr in O.state_to_dict(state).items():
        if arr.ndim > 0 and np.issubdtype(arr.dtype, np.floating):
            assert arr.dtype == dtype, f"{name}: state {key} is {arr.dtype}"


@pytest.mark.parametrize("name", sorted(FACTORIES))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_finite_inputs_give_finite_updates_and_state_round_trips(name, data):
    shape = data.draw(st.sampled_from([(3,), (2, 3), (3, 2)]))
    x = {"w": data.draw(hnp.arrays(np.float64, shape, elements=finite)), "b": np.array([0.5, -1.0])}
    tx = FACTORIES[name](0.01)
    state = tx.init(x)
    p = {k: v.copy() for k, v in x.items()}
    for _ in range(data.draw(st.integers(1, 4))):
        g = {"w": data.draw(hnp.arrays(np.float64, shape, elements=finite)), "b": np.array([1.0, 2.0])}
        updates, state = tx.update(g, state, p)
        assert all(np.all(np.isfinite(u)) for u in updates.values()), f"{name}: non-finite update"
        p = O.apply_updates(p, updates)
    restored = O.state_from_dict(tx.init(x), O.state_to_dict(state))
    g = {"w": data.draw(hnp.arrays(np.float64, shape, elements=finite)), "b": np.array([1.0, 2.0])}
    u1, _ = tx.update(g, state, p)
    u2, _ = tx.update(g, restored, p)
    for k in u1:
        np.testing.assert_array_equal(u1[k], u2[k])


@pytest.mark.parametrize("name", EXACT_AT_LR_ZERO)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_zero_learning_rate_changes_nothing(name, data):
    x = {"W": data.draw(hnp.arrays(np.float64, (3, 2), elements=finite)), "b": np.array([0.5, -1.0])}
    tx = FACTORIES[name](0.0)
    state = tx.init(x)
    p = {k: v.copy() for k, v in x.items()}
    for _ in range(3):
        g = {k: data.draw(hnp.arrays(np.float64, v.shape, elements=finite)) for k, v in x.items()}
        updates, state = tx.update(g, state, p)
        p = O.apply_updates(p, updates)
    for k in x:
        np.testing.assert_array_equal(p[k], x[k])


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_descends_on_the_ill_conditioned_quadratic(name):
    c = np.array([0.5, 1.0, 2.0, 4.0])
    x0 = {"W": problems.quadratic_params().reshape(2, 2), "b": problems.quadratic_params()}

    def loss(p):
        return 0.5 * sum(float(np.sum(c * v.reshape(-1) ** 2)) for v in p.values())

    tx = FACTORIES[name](0.02)
    p, state = x0, tx.init(x0)
    for _ in range(300):
        updates, state = tx.update({k: (c * v.reshape(-1)).reshape(v.shape) for k, v in p.items()}, state, p)
        p = O.apply_updates(p, updates)
    assert loss(p) < 0.2 * loss(x0), f"{name}: {loss(x0):.3g} -> {loss(p):.3g}"
