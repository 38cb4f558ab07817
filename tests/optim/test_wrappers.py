"""The composable wrappers: clipping, masking / partition, the non-finite guard and gradient accumulation.

References: ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``, torch
optimizers with parameter groups (or one optimizer per group), hand-computed
one-step oracles, and the inner optimizer run on the mean gradient.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

import descend as dc
from descend.errors import NonFiniteError, ParameterError, StructureError
from descend.optim.tree import leaves
from tests.optim import problems

torch = pytest.importorskip("torch")

RTOL = 1e-7
ATOL = 1e-12
STEPS = 100


def _decay_mask(p):
    return {k: v.ndim > 1 for k, v in p.items()}


def _random_tree(rng: np.random.Generator, scale: float):
    """Nested dict / list / tuple tree of float64 leaves, including a 0-d and a size-1 leaf."""
    return {
        "W": scale * rng.normal(size=(4, 3)),
        "layers": [scale * rng.normal(size=5), (scale * rng.normal(size=(2, 2, 2)), np.asarray(scale * rng.normal()))],
        "b": scale * rng.normal(size=1),
    }


def _torch_grads(tree):
    """Parameters whose ``.grad`` are copies of the leaves of ``tree`` (in tree order)."""
    ps = []
    for leaf in leaves(tree):
        p = torch.zeros(np.shape(leaf), dtype=torch.float64, requires_grad=True)
        p.grad = torch.tensor(np.array(leaf, dtype=np.float64))
        ps.append(p)
    return ps


def _flat(state):
    return dc.optim.state_to_dict(state)


def _assert_state_equal(a, b):
    fa, fb = _flat(a), _flat(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


def _assert_tree_equal(a, b):
    la, lb = leaves(a), leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(x, y)


# --- global_norm, clip_by_global_norm, clip ----------------------------------------------------------------


def test_global_norm_is_the_l2_norm_of_all_leaves_together() -> None:
    tree = _random_tree(np.random.default_rng(0), 1.0)
    flat = np.concatenate([np.ravel(x) for x in leaves(tree)])
    n = dc.optim.global_norm(tree)
    assert type(n) is float
    assert n == pytest.approx(float(np.sqrt(np.sum(flat**2))), rel=1e-14)
    assert dc.optim.global_norm({}) == 0.0
    assert dc.optim.global_norm(np.array([3.0, 4.0])) == 5.0
    assert dc.optim.global_norm([np.array([3.0], dtype=np.float32), np.array([[4.0]])]) == 5.0


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("scale", [0.01, 0.3, 1.0, 7.0])
@pytest.mark.parametrize("max_norm", [0.5, 2.0])
def test_clip_by_global_norm_matches_torch(seed, scale, max_norm) -> None:
    grads = _random_tree(np.random.default_rng(seed), scale)
    tx = dc.optim.clip_by_global_norm(max_norm)
    out, state = tx.update(grads, tx.init(grads))
    tparams = _torch_grads(grads)
    total = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=2.0, foreach=False)
    assert state.global_norm == pytest.approx(float(total), rel=1e-12)
    for ours, p in zip(leaves(out), tparams, strict=True):
        np.testing.assert_allclose(ours, p.grad.numpy(), rtol=1e-12, atol=0)
    if state.global_norm + 1e-6 <= max_norm:  # below the threshold: a no-op, exactly
        _assert_tree_equal(out, grads)
    else:
        assert dc.optim.global_norm(out) == pytest.approx(max_norm, rel=1e-5)


def test_clip_by_global_norm_no_op_and_threshold_cases() -> None:
    g = {"a": np.array([3.0, 4.0])}  # norm 5
    tx = dc.optim.clip_by_global_norm(5.0 + 2e-6)  # 5 + 1e-6 < max_norm: untouched, same bits
    out, state = tx.update(g, tx.init(g))
    np.testing.assert_array_equal(out["a"], g["a"])
    assert state.global_norm == 5.0
    # At the threshold torch still scales, by max_norm / (norm + 1e-6) = 5 / (5 + 1e-6).
    tx = dc.optim.clip_by_global_norm(5.0)
    out, _ = tx.update(g, tx.init(g))
    np.testing.assert_allclose(out["a"], np.array([3.0, 4.0]) * (5.0 / (5.0 + 1e-6)), rtol=1e-15)
    assert out["a"][1] < 4.0
    (tp,) = _torch_grads(g)
    torch.nn.utils.clip_grad_norm_([tp], 5.0)
    np.testing.assert_array_equal(out["a"], tp.grad.numpy())
    # A zero gradient stays zero (the 1e-6 keeps the coefficient finite); inf never clips.
    z = {"a": np.zeros(3)}
    out, state = tx.update(z, tx.init(z))
    np.testing.assert_array_equal(out["a"], 0.0)
    assert state.global_norm == 0.0
    tx = dc.optim.clip_by_global_norm(float("inf"))
    big = {"a": np.array([3e10, 4e10])}
    out, state = tx.update(big, tx.init(big))
    np.testing.assert_array_equal(out["a"], big["a"])
    assert state.global_norm == 5e10


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_clip_by_global_norm_non_finite_like_torch(bad) -> None:
    g = {"a": np.array([1.0, bad, -2.0]), "b": np.array([3.0, 4.0])}
    tx = dc.optim.clip_by_global_norm(1.0)
    out, state = tx.update(g, tx.init(g))
    tparams = _torch_grads(g)
    torch.nn.utils.clip_grad_norm_(tparams, 1.0, foreach=False)
    for ours, p in zip(leaves(out), tparams, strict=True):
        np.testing.assert_array_equal(ours, p.grad.numpy())  # NaN positions must agree too
    assert np.isnan(out["b"]).all() if np.isnan(bad) else (out["b"] == 0.0).all()
    assert np.isnan(state.global_norm) if np.isnan(bad) else state.global_norm == np.inf


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("max_delta", [0.1, 1.0, 5.0])
def test_clip_by_value_matches_torch(seed, max_delta) -> None:
    grads = _random_tree(np.random.default_rng(seed), 2.0)
    grads["layers"][0][0] = np.nan
    tx = dc.optim.clip(max_delta)
    out, state = tx.update(grads, tx.init(grads))
    assert state == dc.optim.EmptyState()
    tparams = _torch_grads(grads)
    torch.nn.utils.clip_grad_value_(tparams, max_delta, foreach=False)
    for ours, theirs, p in zip(leaves(out), leaves(grads), tparams, strict=True):
        np.testing.assert_array_equal(ours, p.grad.numpy())
        assert np.nanmax(np.abs(ours)) <= max_delta
        inside = np.abs(theirs) <= max_delta
        np.testing.assert_array_equal(ours[inside], theirs[inside])  # untouched below the bound


def _run_torch(groups, grad_fn, params0, make_opts, clip=None, steps=STEPS):
    """Run torch optimizers built by ``make_opts(tparams)`` on ``grad_fn``; optional clip_grad_norm_ first."""
    tparams = {k: torch.tensor(v.copy(), dtype=torch.float64, requires_grad=True) for k, v in params0.items()}
    opts = make_opts(tparams)
    for _ in range(steps):
        current = {k: t.detach().numpy().copy() for k, t in tparams.items()}
        for k, g in grad_fn(current).items():
            tparams[k].grad = torch.from_numpy(g)
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(list(tparams.values()), clip, foreach=False)
        for opt in opts:
            opt.step()
    return {k: t.detach().numpy() for k, t in tparams.items()}


def _run_descend(tx, grad_fn, params0, steps=STEPS, record=None):
    params = {k: v.copy() for k, v in params0.items()}
    state = tx.init(params)
    for _ in range(steps):
        updates, state = tx.update(grad_fn(params), state, params)
        params = dc.optim.apply_updates(params, updates)
        if record is not None:
            record.append(state)
    return params, state


def _assert_matches(ours, theirs, params0) -> None:
    assert any(not np.allclose(ours[k], params0[k]) for k in params0), "nothing moved: vacuous comparison"
    for k in params0:
        assert ours[k].dtype == np.float64
        np.testing.assert_allclose(ours[k], theirs[k], rtol=RTOL, atol=ATOL, err_msg=k)


@pytest.mark.parametrize(
    ("inner", "torch_opt", "max_norm"),
    [
        (
            lambda: dc.optim.adamw(lr=0.05, weight_decay=0.1),
            lambda ps: [torch.optim.AdamW(ps, lr=0.05, weight_decay=0.1, foreach=False)],
            10.0,
        ),
        (
            lambda: dc.optim.sgd(lr=0.002, momentum=0.9),
            lambda ps: [torch.optim.SGD(ps, lr=0.002, momentum=0.9, foreach=False)],
            20.0,
        ),
    ],
    ids=["adamw", "sgd-momentum"],
)
def test_clip_then_optimizer_matches_torch(inner, torch_opt, max_norm) -> None:
    params0 = problems.mixed_params()
    tx = dc.optim.chain(dc.optim.clip_by_global_norm(max_norm), inner())
    states = []
    ours, _ = _run_descend(tx, problems.mixed_grad, params0, record=states)
    theirs = _run_torch(None, problems.mixed_grad, params0, lambda t: torch_opt(list(t.values())), clip=max_norm)
    norms = np.array([s[0].global_norm for s in states])
    assert (norms > max_norm).any() and (norms < max_norm).any(), "both the clipped and the free regime must occur"
    _assert_matches(ours, theirs, params0)


# --- masked / partition --------------------------------------------------------------------------------------


def test_masked_weight_decay_leaves_biases_undecayed_one_step_by_hand() -> None:
    params = {"W": np.array([[1.0, 2.0], [3.0, -4.0]]), "b": np.array([1.0, -1.0])}
    grads = {"W": np.array([[0.5, 0.0], [-1.0, 2.0]]), "b": np.array([0.25, 0.5])}
    tx = dc.optim.chain(dc.optim.masked(dc.optim.add_decayed_weights(0.1), _decay_mask), dc.optim.sgd(lr=0.5))
    updates, state = tx.update(grads, tx.init(params), params)
    new = dc.optim.apply_updates(params, updates)
    # W ← W − 0.5·(g + 0.1·W); b ← b − 0.5·g (no decay)
    np.testing.assert_allclose(new["W"], [[1.0 - 0.5 * 0.6, 2.0 - 0.5 * 0.2], [3.0 - 0.5 * -0.7, -4.0 - 0.5 * 1.6]])
    np.testing.assert_allclose(new["b"], [1.0 - 0.125, -1.0 - 0.25])
    # Zero gradients: only the weights move (shrink by 1 − η·λ = 0.95).
    zero = {k: np.zeros_like(v) for k, v in params.items()}
    updates, _ = tx.update(zero, state, params)
    np.testing.assert_allclose(updates["W"], -0.05 * params["W"])
    np.testing.assert_array_equal(updates["b"], 0.0)


def test_masked_passes_unselected_leaves_through_and_keeps_state_only_for_selected() -> None:
    params = {"enc": [np.ones(2), np.ones((2, 2))], "head": np.ones(3)}
    tx = dc.optim.masked(dc.optim.adam(lr=0.1), {"enc": [False, True], "head": True})
    state = tx.init(params)
    grads = {"enc": [np.full(2, 7.0), np.full((2, 2), 2.0)], "head": np.full(3, -1.0)}
    updates, state = tx.update(grads, state, params)
    assert updates["enc"][0] is grads["enc"][0]  # untouched, not even copied
    np.testing.assert_allclose(updates["enc"][1], -0.1)  # Adam's first step is −η·sign(g)
    np.testing.assert_allclose(updates["head"], 0.1)
    assert isinstance(updates["enc"], list)
    keys = sorted(k for k in _flat(state) if ".exp_avg." in k)
    assert keys == ["inner_state.1.exp_avg.enc.1", "inner_state.1.exp_avg.head"]  # no moments for enc[0]
    # A prefix mask: one bool for a whole sub-tree; nothing selected gives an empty inner tree.
    tx = dc.optim.masked(dc.optim.scale(0.0), {"enc": True, "head": False})
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_array_equal(updates["enc"][0], 0.0)
    np.testing.assert_array_equal(updates["enc"][1], 0.0)
    assert updates["head"] is grads["head"]
    tx = dc.optim.masked(dc.optim.adam(lr=0.1), False)
    state = tx.init(params)
    assert state.inner_state[1].exp_avg == {}
    assert not any("exp_avg" in k for k in _flat(state))
    updates, _ = tx.update(grads, state, params)
    _assert_tree_equal(updates, grads)


def test_masked_weight_decay_equals_torch_param_groups_decoupled() -> None:
    params0 = problems.mixed_params()  # W is 5×3 (decayed), b and v are vectors (not decayed)
    tx = dc.optim.chain(
        dc.optim.scale_by_adam(),
        dc.optim.masked(dc.optim.add_decayed_weights(0.3), _decay_mask),
        dc.optim.scale_by_learning_rate(0.05),
    )
    ours, _ = _run_descend(tx, problems.mixed_grad, params0)

    def make(t):
        groups = [{"params": [t["W"]], "weight_decay": 0.3}, {"params": [t["b"], t["v"]], "weight_decay": 0.0}]
        return [torch.optim.AdamW(groups, lr=0.05, foreach=False)]

    theirs = _run_torch(None, problems.mixed_grad, params0, make)
    _assert_matches(ours, theirs, params0)
    # and the mask matters: decaying everything gives a different result
    unmasked, _ = _run_descend(dc.optim.adamw(lr=0.05, weight_decay=0.3), problems.mixed_grad, params0)
    assert not np.allclose(unmasked["b"], theirs["b"], rtol=1e-4)


def test_masked_coupled_weight_decay_equals_torch_adam_param_groups() -> None:
    params0 = problems.mixed_params()
    tx = dc.optim.chain(dc.optim.masked(dc.optim.add_decayed_weights(0.1), _decay_mask), dc.optim.adam(lr=0.05))
    ours, _ = _run_descend(tx, problems.mixed_grad, params0)

    def make(t):
        groups = [{"params": [t["W"]], "weight_decay": 0.1}, {"params": [t["b"], t["v"]]}]
        return [torch.optim.Adam(groups, lr=0.05, foreach=False)]

    _assert_matches(ours, _run_torch(None, problems.mixed_grad, params0, make), params0)


@pytest.mark.parametrize("callable_labels", [False, True])
def test_partition_equals_two_torch_optimizers(callable_labels) -> None:
    params0 = problems.mixed_params()
    labels = {"W": "adam", "b": "sgd", "v": "sgd"}
    tx = dc.optim.partition(
        {"adam": dc.optim.adam(lr=0.03, betas=(0.8, 0.99)), "sgd": dc.optim.sgd(lr=0.02, momentum=0.9, nesterov=True)},
        (lambda p: {k: "adam" if v.ndim > 1 else "sgd" for k, v in p.items()}) if callable_labels else labels,
    )
    ours, state = _run_descend(tx, problems.mixed_grad, params0)

    def make(t):
        return [
            torch.optim.Adam([t["W"]], lr=0.03, betas=(0.8, 0.99), foreach=False),
            torch.optim.SGD([t["b"], t["v"]], lr=0.02, momentum=0.9, nesterov=True, foreach=False),
        ]

    _assert_matches(ours, _run_torch(None, problems.mixed_grad, params0, make), params0)
    assert sorted(state.inner_states) == ["adam", "sgd"]
    assert dc.optim.get_step(state) == STEPS


def test_partition_prefix_labels_on_nested_lists() -> None:
    params = {"enc": [np.ones(2), (np.ones((2, 2)), np.ones(1))], "head": np.ones(3)}
    grads = {"enc": [np.full(2, 2.0), (np.full((2, 2), 3.0), np.full(1, 4.0))], "head": np.full(3, 5.0)}
    tx = dc.optim.partition(
        {"frozen": dc.optim.scale(0.0), "train": dc.optim.sgd(lr=0.1)}, {"enc": "frozen", "head": "train"}
    )
    updates, state = tx.update(grads, tx.init(params), params)
    for leaf in leaves(updates["enc"]):
        np.testing.assert_array_equal(leaf, 0.0)
    np.testing.assert_allclose(updates["head"], -0.5)
    assert isinstance(updates["enc"], list) and isinstance(updates["enc"][1], tuple)
    # an unused label is allowed and gets an empty tree
    tx = dc.optim.partition({"a": dc.optim.adam(lr=0.1), "unused": dc.optim.adam(lr=0.1)}, "a")
    state = tx.init(params)
    assert state.inner_states["unused"][1].exp_avg == {}
    updates, _ = tx.update(grads, state, params)
    np.testing.assert_allclose(updates["head"], -0.1)


def test_mask_and_labels_must_match_the_params() -> None:
    params = {"W": np.ones((2, 3)), "b": np.ones(3)}
    with pytest.raises(
        StructureError,
        match=r"masked: mask and params differ at the top level: mask is a dict with keys \['W'\], "
        r"params is a dict with keys \['W', 'b'\]",
    ):
        dc.optim.masked(dc.optim.sgd(), {"W": True}).init(params)
    with pytest.raises(
        ParameterError,
        match=r"masked: mask\['W'\] must be a bool, got an array of shape \(2, 3\) \(masks and labels select whole",
    ):
        dc.optim.masked(dc.optim.sgd(), lambda p: {k: v > 0 for k, v in p.items()}).init(params)
    with pytest.raises(StructureError, match=r"partition: labels and params differ at \['b'\]: labels is a list"):
        dc.optim.partition({"a": dc.optim.sgd()}, {"W": "a", "b": ["a"]}).init(params)
    with pytest.raises(ParameterError, match=r"partition: labels\['b'\] must be a label \(one of \['a'\]\), got 'c'"):
        dc.optim.partition({"a": dc.optim.sgd()}, lambda p: {"W": "a", "b": "c"}).init(params)


# --- guard_not_finite ------------------------------------------------------------------------------------------

BAD_STEP = 5  # 1-based step number at which a non-finite value is injected
N_GUARD_STEPS = 9


def _inject(grads, bad):
    g = {k: v.copy() for k, v in grads.items()}
    g["W"][0, 1] = bad
    return g


def _guard_run(tx, bad, bad_steps=(BAD_STEP,)):
    """Run ``tx`` on the mixed problem, injecting ``bad`` at ``bad_steps``; return per-step (params, state, updates)."""
    params = problems.mixed_params()
    state = tx.init(params)
    out = []
    for step in range(1, N_GUARD_STEPS + 1):
        grads = problems.mixed_grad(params)
        if step in bad_steps:
            grads = _inject(grads, bad)
        updates, state = tx.update(grads, state, params)
        params = dc.optim.apply_updates(params, updates)
        out.append((params, state, updates))
    return out


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_guard_skip_leaves_params_and_inner_state_untouched(bad) -> None:
    tx = dc.optim.guard_not_finite(dc.optim.adam(lr=0.05), action="skip")
    run = _guard_run(tx, bad)
    before_p, before_s, _ = run[BAD_STEP - 2]
    after_p, after_s, updates = run[BAD_STEP - 1]
    for k in updates:
        np.testing.assert_array_equal(updates[k], 0.0)
    _assert_tree_equal(after_p, before_p)
    _assert_state_equal(after_s.inner_state, before_s.inner_state)
    assert (after_s.step, after_s.num_skipped, after_s.total_skipped) == (BAD_STEP, 1, 1)
    final = run[-1][1]
    assert (final.step, final.num_skipped, final.total_skipped) == (N_GUARD_STEPS, 0, 1)
    assert dc.optim.get_step(final) == N_GUARD_STEPS - 1  # the optimizer did one step fewer
    # The whole trajectory is adam's with that step left out, to the last bit.
    ref = dc.optim.adam(lr=0.05)
    params = problems.mixed_params()
    state = ref.init(params)
    for _ in range(N_GUARD_STEPS - 1):
        updates, state = ref.update(problems.mixed_grad(params), state, params)
        params = dc.optim.apply_updates(params, updates)
    _assert_tree_equal(run[-1][0], params)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_guard_zero_replaces_non_finite_entries_and_steps(bad) -> None:
    tx = dc.optim.guard_not_finite(dc.optim.adam(lr=0.05), action="zero")
    run = _guard_run(tx, bad)
    ref = dc.optim.adam(lr=0.05)
    params = problems.mixed_params()
    state = ref.init(params)
    for step in range(1, N_GUARD_STEPS + 1):
        grads = problems.mixed_grad(params)
        if step == BAD_STEP:
            grads = _inject(grads, 0.0)
        updates, state = ref.update(grads, state, params)
        params = dc.optim.apply_updates(params, updates)
    _assert_tree_equal(run[-1][0], params)
    assert all(np.isfinite(x).all() for x in leaves(run[-1][0]))
    final = run[-1][1]
    assert (final.num_skipped, final.total_skipped) == (0, 1)
    assert dc.optim.get_step(final) == N_GUARD_STEPS


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.nan, "guard_not_finite: non-finite gradient at step 5 in params['W']: 1 NaN, 0 inf"),
        (np.inf, "guard_not_finite: non-finite gradient at step 5 in params['W']: 0 NaN, 1 inf"),
        (-np.inf, "guard_not_finite: non-finite gradient at step 5 in params['W']: 0 NaN, 1 inf"),
    ],
)
def test_guard_raise_names_step_and_parameter(bad, message) -> None:
    tx = dc.optim.guard_not_finite(dc.optim.adam(lr=0.05), action="raise")
    with pytest.raises(NonFiniteError) as info:
        _guard_run(tx, bad)
    assert str(info.value) == message
    assert isinstance(info.value, FloatingPointError)


def test_guard_raise_reports_every_offending_leaf() -> None:
    params = {"W": np.ones((2, 2)), "b": np.ones(3), "c": [np.ones(2)]}
    grads = {"W": np.array([[np.nan, 1.0], [np.nan, 2.0]]), "b": np.array([np.inf, -np.inf, np.nan]), "c": [np.ones(2)]}
    tx = dc.optim.guard_not_finite(action="raise")
    state = tx.init(params)
    _, state = tx.update(params, state, params)
    with pytest.raises(NonFiniteError) as info:
        tx.update(grads, state, params)
    assert str(info.value) == (
        "guard_not_finite: non-finite gradient at step 2 in params['W']: 2 NaN, 0 inf; params['b']: 1 NaN, 2 inf"
    )


def test_guard_max_consecutive() -> None:
    tx = dc.optim.guard_not_finite(dc.optim.sgd(lr=0.01), action="skip", max_consecutive=2)
    run = _guard_run(tx, np.nan, bad_steps=(2, 3, 5, 6))  # two in a row, twice: allowed
    assert run[-1][1].total_skipped == 4
    assert run[2][1].num_skipped == 2 and run[3][1].num_skipped == 0
    with pytest.raises(NonFiniteError) as info:
        _guard_run(tx, np.inf, bad_steps=(2, 3, 4))
    assert str(info.value) == (
        "guard_not_finite: 3 consecutive non-finite gradients, more than max_consecutive=2 "
        "(the last at step 4 in params['W']: 0 NaN, 1 inf)"
    )
    with pytest.raises(NonFiniteError, match="1 consecutive non-finite gradients, more than max_consecutive=0"):
        _guard_run(dc.optim.guard_not_finite(dc.optim.sgd(lr=0.01), action="zero", max_consecutive=0), np.nan)


def test_guard_without_inner_is_a_chain_link() -> None:
    params = {"W": np.ones(3)}
    tx = dc.optim.chain(dc.optim.guard_not_finite(action="zero"), dc.optim.sgd(lr=0.5))
    grads = {"W": np.array([1.0, np.nan, -np.inf])}
    updates, state = tx.update(grads, tx.init(params), params)
    np.testing.assert_array_equal(updates["W"], [-0.5, 0.0, 0.0])
    assert np.isnan(grads["W"][1]), "the input gradients must not be modified"
    assert state[0].total_skipped == 1


# --- accumulate ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_inner",
    [
        lambda: dc.optim.sgd(lr=0.05, momentum=0.9),
        lambda: dc.optim.adam(lr=0.05),
        lambda: dc.optim.adamw(lr=lambda t: 0.05 / (1 + t), weight_decay=0.1),  # uses params and a schedule
    ],
    ids=["sgd-momentum", "adam", "adamw-schedule"],
)
@pytest.mark.parametrize("k", [1, 3])
def test_accumulate_equals_inner_on_the_mean_gradient(make_inner, k) -> None:
    rng = np.random.default_rng(3)
    tx, ref = dc.optim.accumulate(make_inner(), every_k=k), make_inner()
    params = problems.mixed_params()
    ref_params = {name: v.copy() for name, v in params.items()}
    state, ref_state = tx.init(params), ref.init(ref_params)
    for outer in range(6):
        micro = [
            {name: g + rng.normal(size=g.shape) for name, g in problems.mixed_grad(params).items()} for _ in range(k)
        ]
        for j, g in enumerate(micro):
            inner_before = state.inner_state
            updates, state = tx.update(g, state, params)
            if j < k - 1:
                for u in updates.values():
                    np.testing.assert_array_equal(u, 0.0)
                assert state.inner_state is inner_before
                assert state.mini_step == j + 1
            params = dc.optim.apply_updates(params, updates)
        mean = {}  # ((g_1 + g_2) + …) / k, in the order the sum is accumulated
        for name in params:
            total = micro[0][name]
            for m in micro[1:]:
                total = total + m[name]
            mean[name] = total / k
        ref_updates, ref_state = ref.update(mean, ref_state, ref_params)
        ref_params = dc.optim.apply_updates(ref_params, ref_updates)
        _assert_tree_equal(params, ref_params)
        assert state.mini_step == 0
        assert dc.optim.get_step(state) == outer + 1  # optimizer steps, not micro-batches
    _assert_state_equal(state.inner_state, ref_state)


# --- validation ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: dc.optim.clip(-1.0), r"clip: max_delta must be in \(0, inf\), got -1.0"),
        (lambda: dc.optim.clip(0), r"clip: max_delta must be in \(0, inf\), got 0"),
        (lambda: dc.optim.clip_by_global_norm(0.0), r"clip_by_global_norm: max_norm must be in \(0, inf\), got 0.0"),
        (lambda: dc.optim.clip_by_global_norm("1"), r"clip_by_global_norm: max_norm must be in \(0, inf\), got '1'"),
        (
            lambda: dc.optim.clip_by_global_norm(float("nan")),
            r"clip_by_global_norm: max_norm must be in \(0, inf\), got nan",
        ),
        (
            lambda: dc.optim.accumulate(dc.optim.sgd(), 0),
            r"accumulate: every_k must be an integer in \[1, inf\), got 0",
        ),
        (
            lambda: dc.optim.accumulate(dc.optim.sgd(), 2.5),
            r"accumulate: every_k must be an integer in \[1, inf\), got 2.5",
        ),
        (lambda: dc.optim.accumulate(0.1, 2), r"accumulate: inner must be a GradientTransformation, got 0.1"),
        (
            lambda: dc.optim.guard_not_finite(dc.optim.sgd(), action="ignore"),
            r"guard_not_finite: action must be one of 'skip', 'zero', 'raise', got 'ignore'",
        ),
        (
            lambda: dc.optim.guard_not_finite(dc.optim.sgd(), max_consecutive=-1),
            r"guard_not_finite: max_consecutive must be None or an integer in \[0, inf\), got -1",
        ),
        (
            lambda: dc.optim.guard_not_finite(action="skip"),
            r"guard_not_finite: action='skip' needs the transformation to skip: .*got inner=None",
        ),
        (
            lambda: dc.optim.guard_not_finite(dc.optim.sgd(), action="raise", max_consecutive=3),
            r"guard_not_finite: max_consecutive applies to action='skip' or 'zero', got max_consecutive=3",
        ),
        (
            lambda: dc.optim.guard_not_finite("sgd", action="zero"),
            r"guard_not_finite: inner must be a GradientTransformation, got 'sgd'",
        ),
        (lambda: dc.optim.masked("sgd", True), r"masked: inner must be a GradientTransformation, got 'sgd'"),
        (lambda: dc.optim.masked(dc.optim.sgd(), {"W": 1}), r"masked: mask\['W'\] must be a bool, got 1"),
        (
            lambda: dc.optim.masked(dc.optim.sgd(), 0.5),
            r"masked: mask must be a tree of bools \(True where inner applies\) or a callable params -> tree of bools, "
            r"got 0.5",
        ),
        (
            lambda: dc.optim.partition({}, "a"),
            r"partition: transforms must be a non-empty dict \{label: GradientTransformation\}, got \{\}",
        ),
        (
            lambda: dc.optim.partition({0: dc.optim.sgd()}, 0),
            r"partition: transforms keys must be labels \(str\), got 0",
        ),
        (
            lambda: dc.optim.partition({"a": 0.1}, "a"),
            r"partition: transforms\['a'\] must be a GradientTransformation, got 0.1",
        ),
        (
            lambda: dc.optim.partition({"a": dc.optim.sgd()}, {"W": "a", "b": "x"}),
            r"partition: labels\['b'\] must be a label \(one of \['a'\]\), got 'x'",
        ),
        (
            lambda: dc.optim.partition({"a": dc.optim.sgd()}, 3),
            r"partition: labels must be a tree of labels \(each one of \['a'\]\) or a callable params -> tree of "
            r"labels, got 3",
        ),
    ],
)
def test_arguments_are_validated_at_construction(build, message) -> None:
    with pytest.raises(ParameterError, match=message):
        build()


# --- state round-trip and dtypes -------------------------------------------------------------------------------


def _nested_params(dtype=np.float64):
    rng = np.random.default_rng(11)
    return {
        "W": rng.normal(size=(3, 2)).astype(dtype),
        "layers": [rng.normal(size=2).astype(dtype), rng.normal(size=(2, 2)).astype(dtype)],
        "b": rng.normal(size=3).astype(dtype),
    }


def _nested_grad(p):
    return {
        "W": 2.0 * p["W"] - 1.0,
        "layers": [np.sin(p["layers"][0]), p["layers"][1] ** 3],
        "b": p["b"] - 0.5,
    }


def _ndim_mask(p):
    return {"W": True, "layers": [False, True], "b": False}


WRAPPERS = {
    "clip": lambda: dc.optim.chain(dc.optim.clip(0.5), dc.optim.adam(lr=0.01)),
    "clip_by_global_norm": lambda: dc.optim.chain(dc.optim.clip_by_global_norm(1.0), dc.optim.adamw(lr=0.01)),
    "masked": lambda: dc.optim.chain(
        dc.optim.masked(dc.optim.add_decayed_weights(0.1), _ndim_mask), dc.optim.masked(dc.optim.adam(0.01), _ndim_mask)
    ),
    "partition": lambda: dc.optim.partition(
        {"adam": dc.optim.adam(lr=0.01, amsgrad=True), "sgd": dc.optim.sgd(lr=0.01, momentum=0.9)},
        {"W": "adam", "layers": ["sgd", "adam"], "b": "sgd"},
    ),
    "guard": lambda: dc.optim.guard_not_finite(dc.optim.adam(lr=0.01), action="skip", max_consecutive=3),
    "accumulate": lambda: dc.optim.accumulate(dc.optim.sgd(lr=0.01, momentum=0.9), every_k=3),
}


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_state_round_trips_through_state_to_dict(name) -> None:
    tx = WRAPPERS[name]()
    params = _nested_params()
    state = tx.init(params)
    for i in range(4):  # 4 calls: accumulate is mid-cycle, the guard has skipped one step
        grads = _nested_grad(params)
        if i == 2:
            grads["b"] = grads["b"] * np.nan if name == "guard" else grads["b"]
        updates, state = tx.update(grads, state, params)
        params = dc.optim.apply_updates(params, updates)
    flat = dc.optim.state_to_dict(state)
    buf = io.BytesIO()
    np.savez(buf, **flat)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as f:
        loaded = {k: f[k] for k in f.files}
    restored = dc.optim.state_from_dict(tx.init(params), loaded)
    _assert_state_equal(restored, state)
    assert type(restored) is type(state)
    p1, p2, s1, s2 = params, params, state, restored
    for _ in range(3):
        u1, s1 = tx.update(_nested_grad(p1), s1, p1)
        u2, s2 = tx.update(_nested_grad(p2), s2, p2)
        p1, p2 = dc.optim.apply_updates(p1, u1), dc.optim.apply_updates(p2, u2)
    _assert_tree_equal(p1, p2)
    _assert_state_equal(s1, s2)
    if name == "guard":
        assert s2.total_skipped == 1
    if name == "accumulate":
        assert s2.mini_step == 1


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_float32_is_preserved_and_inputs_are_not_modified(name) -> None:
    tx = WRAPPERS[name]()
    params = _nested_params(np.float32)
    state = tx.init(params)
    for _ in range(3):
        grads = _nested_grad(params)
        grads["W"] = grads["W"] * np.float32(10.0)  # large enough for the norm clip to act
        saved_grads = [x.copy() for x in leaves(grads)]
        saved_params = [x.copy() for x in leaves(params)]
        updates, state = tx.update(grads, state, params)
        for x, y in zip(leaves(grads), saved_grads, strict=True):
            np.testing.assert_array_equal(x, y)
        for x, y in zip(leaves(params), saved_params, strict=True):
            np.testing.assert_array_equal(x, y)
        assert all(u.dtype == np.float32 for u in leaves(updates))
        params = dc.optim.apply_updates(params, updates)
        assert all(p.dtype == np.float32 for p in leaves(params))
    arrays = {k: v for k, v in dc.optim.state_to_dict(state).items() if v.ndim > 0}
    assert arrays, "the state should hold per-parameter arrays"
    for k, v in arrays.items():
        assert v.dtype == np.float32, k
    if name == "clip_by_global_norm":
        assert type(state[0].global_norm) is float and state[0].global_norm > 1.0
