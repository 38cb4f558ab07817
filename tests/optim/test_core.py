"""The transformation core: trees, chain, apply_updates, state I/O and lr access."""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc
from descend.errors import ParameterError, StructureError


def _params():
    return {"W": np.ones((2, 3)), "b": np.zeros(3)}


def test_apply_updates_adds_leafwise_and_keeps_dtype() -> None:
    p = {"a": np.array([1.0, 2.0], dtype=np.float32), "b": [np.array([3.0])]}
    u = {"a": np.array([0.5, -1.0], dtype=np.float32), "b": [np.array([1.0])]}
    out = dc.optim.apply_updates(p, u)
    np.testing.assert_array_equal(out["a"], [1.5, 1.0])
    assert out["a"].dtype == np.float32
    np.testing.assert_array_equal(out["b"][0], [4.0])
    assert p["a"][0] == 1.0, "apply_updates must not modify its inputs"


@pytest.mark.parametrize(
    ("grads", "message"),
    [
        (
            {"W": np.ones((2, 3))},
            r"update: grads and params differ at the top level: grads is a dict with keys \['W'\]",
        ),
        (
            {"W": np.ones((3, 2)), "b": np.zeros(3)},
            r"grads\['W'\] has shape \(3, 2\) but params\['W'\] has shape \(2, 3\)",
        ),
        ([np.ones((2, 3)), np.zeros(3)], r"grads is a list of length 2, params is a dict"),
    ],
)
def test_mismatched_grads_raise_a_clear_error(grads, message) -> None:
    params = _params()
    tx = dc.optim.adam(lr=0.1)
    state = tx.init(params)
    with pytest.raises(StructureError, match=message):
        tx.update(grads, state, params)


def test_apply_updates_checks_structure() -> None:
    with pytest.raises(StructureError, match=r"updates\['b'\] has shape \(2,\) but params\['b'\] has shape \(3,\)"):
        dc.optim.apply_updates(_params(), {"W": np.ones((2, 3)), "b": np.ones(2)})


def test_chain_rejects_non_transformations() -> None:
    with pytest.raises(ParameterError, match="chain: argument 1 must be a GradientTransformation, got float"):
        dc.optim.chain(dc.optim.identity(), 0.1)


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        (dc.optim.adam, {"betas": (1.5, 0.999)}, r"adam: betas\[0\] must be in \[0, 1\), got 1.5"),
        (dc.optim.adam, {"betas": (0.9, 1.0)}, r"adam: betas\[1\] must be in \[0, 1\), got 1.0"),
        (dc.optim.adam, {"betas": 0.9}, r"adam: betas must be a pair of numbers, got 0.9"),
        (dc.optim.adam, {"lr": -1}, r"adam: lr must be a float in \[0, inf\) or a schedule \(callable\), got -1"),
        (dc.optim.adam, {"eps": float("nan")}, r"adam: eps must be in \[0, inf\), got nan"),
        (dc.optim.adam, {"amsgrad": 1}, r"adam: amsgrad must be a bool, got 1"),
        (dc.optim.adamw, {"weight_decay": -0.1}, r"adamw: weight_decay must be in \[0, inf\) or an array.*, got -0.1"),
        (dc.optim.sgd, {"lr": "0.1"}, r"sgd: lr must be a float in \[0, inf\) or a schedule \(callable\), got '0.1'"),
        (dc.optim.sgd, {"momentum": -0.5}, r"sgd: momentum must be in \[0, inf\), got -0.5"),
        (dc.optim.sgd, {"dampening": 2.0}, r"sgd: dampening must be in \[0, 1\], got 2.0"),
        (dc.optim.sgd, {"nesterov": True}, r"sgd: nesterov=True requires momentum > 0 and dampening = 0"),
        (dc.optim.sgd, {"maximize": "yes"}, r"sgd: maximize must be a bool, got 'yes'"),
    ],
)
def test_hyperparameters_are_validated_at_construction(factory, kwargs, message) -> None:
    with pytest.raises(ParameterError, match=message):
        factory(**kwargs)


def test_state_round_trips_through_a_flat_dict_of_arrays() -> None:
    params = _params()
    tx = dc.optim.adam(lr=0.1, amsgrad=True)
    state = tx.init(params)
    for i in range(3):
        _, state = tx.update({"W": np.full((2, 3), i + 1.0), "b": np.arange(3.0)}, state, params)
    flat = dc.optim.state_to_dict(state)
    assert all(isinstance(v, np.ndarray) for v in flat.values())
    # Through np.savez / np.load(allow_pickle=False) exactly as a checkpoint would.
    import io

    buf = io.BytesIO()
    np.savez(buf, **flat)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as f:
        loaded = {k: f[k] for k in f.files}
    restored = dc.optim.state_from_dict(tx.init(params), loaded)
    g = {"W": np.full((2, 3), 0.3), "b": np.ones(3)}
    u1, _ = tx.update(g, state, params)
    u2, s2 = tx.update(g, restored, params)
    for k in u1:
        np.testing.assert_array_equal(u1[k], u2[k])
    assert dc.optim.get_step(s2) == 4
    assert type(dc.optim.get_step(s2)) is int


def test_state_from_dict_names_what_does_not_match() -> None:
    params = _params()
    tx = dc.optim.adam(lr=0.1)
    flat = dc.optim.state_to_dict(tx.init(params))
    with pytest.raises(StructureError, match=r"missing keys \['1.exp_avg.W'\]"):
        dc.optim.state_from_dict(tx.init(params), {k: v for k, v in flat.items() if k != "1.exp_avg.W"})
    bad = dict(flat)
    bad["1.exp_avg.W"] = np.zeros((3, 2))
    with pytest.raises(StructureError, match=r"1.exp_avg.W has shape \(3, 2\), expected \(2, 3\)"):
        dc.optim.state_from_dict(tx.init(params), bad)
    bad["1.exp_avg.W"] = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(StructureError, match="has dtype float32, expected float64"):
        dc.optim.state_from_dict(tx.init(params), bad)


def test_learning_rate_and_step_are_readable_and_scalable() -> None:
    params = np.array([1.0, -2.0])
    tx = dc.optim.sgd(lr=lambda t: 0.1 / (1 + t))
    state = tx.init(params)
    assert dc.optim.get_step(state) == 0
    used = []
    for _ in range(3):
        updates, state = tx.update(np.ones(2), state, params)
        used.append(dc.optim.get_lr(state))
        np.testing.assert_allclose(updates, -used[-1] * np.ones(2))
    np.testing.assert_allclose(used, [0.1, 0.05, 0.1 / 3])
    state = dc.optim.set_lr_scale(state, 0.5)
    updates, state = tx.update(np.ones(2), state, params)
    np.testing.assert_allclose(updates, -0.5 * 0.1 / 4 * np.ones(2))
    assert dc.optim.get_lr(state) == pytest.approx(0.5 * 0.1 / 4)
    assert dc.optim.get_step(state) == 4


def test_set_lr_scale_needs_a_learning_rate() -> None:
    with pytest.raises(StructureError, match="has no learning rate to scale"):
        dc.optim.set_lr_scale(dc.optim.identity().init(np.zeros(1)), 0.1)


def test_update_does_not_mutate_inputs_or_previous_state() -> None:
    params = {"W": np.ones((2, 2))}
    grads = {"W": np.full((2, 2), 0.5)}
    tx = dc.optim.sgd(lr=0.1, momentum=0.9)
    s0 = tx.init(params)
    _, s1 = tx.update(grads, s0, params)
    tx.update(grads, s1, params)
    before = dc.optim.state_to_dict(s1)
    tx.update(grads, s1, params)
    after = dc.optim.state_to_dict(s1)
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
    np.testing.assert_array_equal(grads["W"], 0.5)
    np.testing.assert_array_equal(params["W"], 1.0)


def test_per_element_weight_decay_equals_torch_parameter_groups() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0, b0 = rng.normal(size=6), rng.normal(size=3)
    flat = np.concatenate([w0, b0])
    mask = np.concatenate([np.ones(6), np.zeros(3)])  # decay the weights, not the biases
    tx = dc.optim.adamw(lr=0.05, weight_decay=0.3 * mask)
    state = tx.init(flat)
    tw, tb = (torch.tensor(a.copy(), requires_grad=True) for a in (w0, b0))
    opt = torch.optim.AdamW(
        [{"params": [tw], "weight_decay": 0.3}, {"params": [tb], "weight_decay": 0.0}], lr=0.05, foreach=False
    )
    for _ in range(50):
        g = np.sin(3 * flat) + flat
        updates, state = tx.update(g, state, flat)
        flat = dc.optim.apply_updates(flat, updates)
        tw.grad = torch.sin(3 * tw.detach()) + tw.detach()
        tb.grad = torch.sin(3 * tb.detach()) + tb.detach()
        opt.step()
    np.testing.assert_allclose(flat, np.concatenate([tw.detach().numpy(), tb.detach().numpy()]), rtol=1e-10)


def test_weight_decay_arrays_are_validated() -> None:
    with pytest.raises(ParameterError, match=r"adamw: weight_decay must be in \[0, inf\) or an array of such values"):
        dc.optim.adamw(weight_decay=np.array([0.1, -1.0]))
