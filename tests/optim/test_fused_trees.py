"""The fused kernels on parameter trees (a list / dict of arrays), leaf by leaf.

The pure ``tx.update`` and the in-place ``dc.optim.step`` run 1,000 steps on a tree
and must agree with the reference chain (``tx.update.reference``) within float32
rounding / 1e-12; a tree with one ineligible leaf (anywhere, in the parameters,
gradients or state) must run the reference chain for the whole step, so that no
leaf is updated twice or not at all.
"""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc
from descend.optim import fused
from descend.optim.tree import leaves, tree_map

pytestmark = pytest.mark.skipif(not fused.ENABLED, reason="numba is not installed: only the reference path exists")

STEPS = 1000
TOL = {np.float32: dict(rtol=1e-5, atol=1e-7), np.float64: dict(rtol=1e-12, atol=1e-14)}
SHAPES = {"conv": (3, 2, 3, 3), "bias": (3,), "scalar": (), "dense": [(7, 5), (1,), (11,)]}

CASES = [
    ("adam", dict(lr=1e-2)),
    ("adam", dict(lr=dc.schedules.cosine_decay(2e-2, STEPS), weight_decay=0.1, maximize=True)),
    ("adamw", dict(lr=1e-2, betas=(0.8, 0.99))),
    ("sgd", dict(lr=0.05, weight_decay=0.01)),
    ("sgd", dict(lr=0.02, momentum=0.9, nesterov=True)),
    ("adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
    ("rmsprop", dict(lr=1e-2)),
    ("rmsprop", dict(lr=1e-2, centered=True, momentum=0.9, weight_decay=0.01)),
]


def _ids(case) -> str:
    name, kwargs = case
    return name + "(" + ",".join(kwargs) + ")"


def _tree(make):
    return {
        "conv": make(SHAPES["conv"]),
        "bias": make(SHAPES["bias"]),
        "scalar": make(SHAPES["scalar"]),
        "dense": [make(s) for s in SHAPES["dense"]],
    }


class TreeProblem:
    """g = A ⊙ (θ − c) + noise_t on every leaf."""

    def __init__(self, dtype, seed=0):
        rng = np.random.default_rng(seed)
        self.dtype = dtype
        self.curv = _tree(lambda s: rng.uniform(0.1, 3.0, s).astype(dtype))
        self.center = _tree(lambda s: rng.standard_normal(s).astype(dtype))
        self.noise = [_tree(lambda s: (0.1 * rng.standard_normal(s)).astype(dtype)) for _ in range(16)]
        self.start = _tree(lambda s: rng.standard_normal(s).astype(dtype))

    def grad(self, params, t):
        noise = self.noise[t % len(self.noise)]
        return tree_map(
            lambda p, a, c, e: np.asarray(a * (p - c) + e, dtype=self.dtype), params, self.curv, self.center, noise
        )


def _copy(tree):
    return tree_map(lambda x: np.array(x, copy=True), tree)


def _leaves(tree):
    return leaves(tree)


def _reference(tx, problem, steps):
    params = _copy(problem.start)
    state = tx.init(params)
    for t in range(steps):
        updates, state = tx.update.reference(problem.grad(params, t), state, params)
        params = dc.optim.apply_updates(params, updates)
    return params, state


def _assert_trees_close(a, b, dtype):
    la, lb = _leaves(a), _leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        assert np.shape(x) == np.shape(y) and np.asarray(x).dtype == dtype
        np.testing.assert_allclose(x, y, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_tree_pure_update_equals_reference_over_1000_steps(case, dtype):
    name, kwargs = case
    tx = getattr(dc.optim, name)(**kwargs)
    problem = TreeProblem(dtype)
    params = _copy(problem.start)
    state = tx.init(params)
    before = fused.calls[name]
    for t in range(STEPS):
        updates, state = tx.update(problem.grad(params, t), state, params)
        params = dc.optim.apply_updates(params, updates)
    assert fused.calls[name] - before == STEPS, "the fused kernels must run on an eligible tree"
    p_ref, s_ref = _reference(tx, problem, STEPS)
    assert not np.allclose(_leaves(p_ref)[0], _leaves(problem.start)[0], atol=1e-3), "the problem must move θ"
    _assert_trees_close(params, p_ref, dtype)
    flat, flat_ref = dc.optim.state_to_dict(state), dc.optim.state_to_dict(s_ref)
    assert flat.keys() == flat_ref.keys()
    for key in flat_ref:
        np.testing.assert_allclose(flat[key], flat_ref[key], err_msg=key, **TOL[dtype])
    assert dc.optim.get_step(state) == STEPS
    assert dc.optim.get_lr(state) == dc.optim.get_lr(s_ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_tree_step_in_place_equals_reference_over_1000_steps(case, dtype):
    name, kwargs = case
    tx = getattr(dc.optim, name)(**kwargs)
    problem = TreeProblem(dtype)
    params = _copy(problem.start)
    ids = [id(x) for x in _leaves(params)]
    state = tx.init(params)
    before = fused.calls[name]
    for t in range(STEPS):
        grads = problem.grad(params, t)
        g_copy = _copy(grads)
        state = dc.optim.step(tx, params, grads, state)
        if t == 0:
            for g, c in zip(_leaves(grads), _leaves(g_copy), strict=True):
                np.testing.assert_array_equal(g, c)
    assert fused.calls[name] - before == STEPS
    assert [id(x) for x in _leaves(params)] == ids, "θ is updated in place, leaf by leaf"
    p_ref, s_ref = _reference(tx, problem, STEPS)
    _assert_trees_close(params, p_ref, dtype)
    flat, flat_ref = dc.optim.state_to_dict(state), dc.optim.state_to_dict(s_ref)
    for key in flat_ref:
        np.testing.assert_allclose(flat[key], flat_ref[key], err_msg=key, **TOL[dtype])


def _spoil_last(tree, how):
    """A copy of ``tree`` whose last leaf is ineligible for the kernels."""
    tree = _copy(tree)
    last = tree["dense"][-1]
    if how == "strided":
        wide = np.zeros(2 * last.size, last.dtype)
        wide[::2] = last
        tree["dense"][-1] = wide[::2]
    elif how == "dtype":
        tree["dense"][-1] = last.astype(np.float64 if last.dtype == np.float32 else np.float32)
    elif how == "readonly":
        last.flags.writeable = False
    return tree


@pytest.mark.parametrize("where", ["params", "grads", "state"])
@pytest.mark.parametrize("how", ["strided", "dtype"])
@pytest.mark.parametrize("name", ["adam", "sgd-momentum", "adagrad", "rmsprop"])
def test_one_ineligible_leaf_sends_the_whole_step_to_the_reference(name, how, where):
    make = {
        "adam": lambda: dc.optim.adam(lr=0.1, weight_decay=0.01),
        "sgd-momentum": lambda: dc.optim.sgd(lr=0.1, momentum=0.9),
        "adagrad": lambda: dc.optim.adagrad(lr=0.1),
        "rmsprop": lambda: dc.optim.rmsprop(lr=0.1),
    }[name]
    problem = TreeProblem(np.float32, seed=1)
    tx = make()
    params = _copy(problem.start)
    state = tx.init(params)
    for t in range(3):  # a few steps first, so that the state is not all zeros
        state = dc.optim.step(tx, params, problem.grad(params, t), state)
    grads = problem.grad(params, 3)
    if where == "params":
        params = _spoil_last(params, how)
    elif where == "grads":
        grads = _spoil_last(grads, how)
    else:
        state = _copy_state(state)
        moments = next(v for link in state for v in link if isinstance(v, dict))  # the first tree in the state
        moments["dense"][-1] = _spoil_last(moments, how)["dense"][-1]
    # (a copy of the state would be contiguous again: the spoiled state itself goes in; the reference is pure)
    fresh = (lambda s: s) if where == "state" else _copy_state
    expected_updates, expected_state = tx.update.reference(_copy(grads), fresh(state), _copy(params))
    expected = dc.optim.apply_updates(params, expected_updates)

    total = sum(fused.calls.values())
    updates, _ = tx.update(grads, fresh(state), params)
    assert sum(fused.calls.values()) == total, "an ineligible leaf must send the step to the reference chain"
    for u, e in zip(_leaves(updates), _leaves(expected_updates), strict=True):
        np.testing.assert_array_equal(u, e)

    p = _copy(params) if how != "strided" or where != "params" else params
    state2 = dc.optim.step(tx, p, grads, fresh(state))
    assert sum(fused.calls.values()) == total
    for a, b in zip(_leaves(p), _leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)  # each leaf updated exactly once
    assert dc.optim.get_step(state2) == dc.optim.get_step(expected_state)


def _copy_state(state):
    return dc.optim.state_from_dict(state, dc.optim.state_to_dict(state))


def test_readonly_leaf_in_place_takes_the_reference_and_raises():
    tx = dc.optim.adam(lr=0.1)
    problem = TreeProblem(np.float32, seed=2)
    params = _spoil_last(problem.start, "readonly")
    state = tx.init(params)
    grads = problem.grad(params, 0)
    before = [np.array(x, copy=True) for x in _leaves(params)]
    with pytest.raises(dc.errors.ParameterError, match="writeable"):
        dc.optim.step(tx, params, grads, state)
    for a, b in zip(_leaves(params), before, strict=True):
        np.testing.assert_array_equal(a, b)  # nothing was written before the error


def test_per_element_weight_decay_with_a_tree():
    # a decay array shaped like every leaf: the kernels use it per leaf, as the chain does
    wd = np.array([0.0, 0.1, 0.2, 0.3])
    params = {"w": np.ones(4, np.float32), "b": np.zeros(4, np.float32)}
    grads = {"w": np.full(4, 0.5, np.float32), "b": np.ones(4, np.float32)}
    tx = dc.optim.adamw(weight_decay=wd)
    before = fused.calls["adamw"]
    updates, _ = tx.update(grads, tx.init(params), params)
    assert fused.calls["adamw"] == before + 1
    expected, _ = tx.update.reference(grads, tx.init(params), params)
    for k in params:
        np.testing.assert_allclose(updates[k], expected[k], rtol=1e-6, atol=1e-8)
    # one that only broadcasts to a leaf: the whole step runs the chain
    params["w"], grads["w"] = np.ones((3, 4), np.float32), np.full((3, 4), 0.5, np.float32)
    updates, _ = tx.update(grads, tx.init(params), params)
    assert fused.calls["adamw"] == before + 1
    expected, _ = tx.update.reference(grads, tx.init(params), params)
    for k in params:
        np.testing.assert_array_equal(updates[k], expected[k])


def test_tree_structure_mismatch_still_raises():
    tx = dc.optim.adam()
    params = {"w": np.ones(3, np.float32)}
    with pytest.raises(dc.errors.StructureError):
        tx.update({"v": np.ones(3, np.float32)}, tx.init(params), params)


# ------------------------------------------------------- a model's named tree: leaves that tile one buffer


class _KernelCounter:
    """Counts kernel launches (``kernels.run``): one per pass over memory."""

    def __init__(self, monkeypatch):
        kernels = fused._kernels()
        self.n = 0
        real = kernels.run

        def run(*args, **kwargs):
            self.n += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(kernels, "run", run)


def _model_pair(dtype):
    """Two identical models: the tree of one is compared with the flat buffer of the other."""
    model = dc.nn.cnn1d(2, 8, channels=(3,), kernel_size=3, hidden=5, out=4, seed=3, dtype=dtype)
    return model, model.copy()


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_a_model_tree_runs_one_kernel_pass_and_equals_the_flat_buffer_bitwise(case, monkeypatch):
    name, kwargs = case
    tx = getattr(dc.optim, name)(**kwargs)
    a, b = _model_pair(np.float32)
    tree, gtree = a.named_parameters(), a.named_grads()
    sa, sb = tx.init(tree), tx.init(b.params)
    counter = _KernelCounter(monkeypatch)
    rng = np.random.default_rng(0)
    for t in range(60):
        g = rng.standard_normal(a.params.shape).astype(np.float32)
        a.grads[...] = g
        b.grads[...] = g
        before = counter.n
        if t % 3 == 0:  # pure
            updates, sa = tx.update(gtree, sa, tree)
            assert list(updates) == list(tree)
            for k, p in tree.items():
                np.add(p, updates[k], out=p)
            del updates
        elif t % 3 == 1:  # in place
            sa = fused.step(tx, tree, gtree, sa)
        else:  # donated
            updates, sa = fused.donating_update(tx, gtree, sa, tree)
            for k, p in tree.items():
                np.add(p, updates[k], out=p)
            del updates
        assert counter.n - before == 1, "one pass over the whole buffer, not one per leaf"
        sb = fused.step(tx, b.params, b.grads, sb)
    np.testing.assert_array_equal(a.params, b.params)
    fa, fb = dc.optim.state_to_dict(sa), dc.optim.state_to_dict(sb)
    for key, value in fb.items():
        if value.shape == b.params.shape:  # a moment: the tree's leaves, joined in order, are the buffer's
            np.testing.assert_array_equal(np.concatenate([fa[f"{key}.{n}"].ravel() for n in tree]), value)
        else:
            np.testing.assert_array_equal(fa[key], value)


def test_init_lays_the_state_out_as_views_of_one_buffer_per_moment():
    from descend.optim._buffers import span

    model, _ = _model_pair(np.float64)
    tree = model.named_parameters()
    state = dc.optim.adam(lr=1e-3).init(tree)
    moments = [dc.optim.state.find_fields(state, f)[0] for f in ("exp_avg", "exp_avg_sq")]
    flats = [span(leaves(m)) for m in moments]
    assert all(f is not None and f.size == model.params.size for f in flats)
    assert not np.shares_memory(flats[0], flats[1]) and not np.shares_memory(flats[0], model.params)
    assert [v.shape for v in moments[0].values()] == [v.shape for v in tree.values()]
    # A tree that does not tile one buffer keeps the chain's own state (separate arrays).
    copies = {k: v.copy() for k, v in tree.items()}
    state = dc.optim.adam(lr=1e-3).init(copies)
    assert span(leaves(dc.optim.state.find_fields(state, "exp_avg")[0])) is None


def test_a_restored_scattered_state_is_packed_on_its_first_step(monkeypatch):
    from descend.optim._buffers import span

    tx = dc.optim.sgd(lr=0.1, momentum=0.9)
    a, b = _model_pair(np.float32)
    tree, gtree = a.named_parameters(), a.named_grads()
    state = tx.init(tree)
    a.grads[...] = 1.0
    b.grads[...] = 1.0
    state = fused.step(tx, tree, gtree, state)
    restored = dc.optim.state_from_dict(tx.init(tree), dc.optim.state_to_dict(state))
    assert span(leaves(dc.optim.state.find_fields(restored, "momentum_buffer")[0])) is None  # scattered copies
    counter = _KernelCounter(monkeypatch)
    new = fused.step(tx, tree, gtree, restored)
    assert counter.n == 1
    assert span(leaves(dc.optim.state.find_fields(new, "momentum_buffer")[0])) is not None
    sb = fused.step(tx, b.params, b.grads, tx.init(b.params))
    sb = fused.step(tx, b.params, b.grads, sb)
    np.testing.assert_array_equal(a.params, b.params)


def test_a_tree_out_of_buffer_order_runs_leaf_by_leaf_with_the_same_result(monkeypatch):
    tx = dc.optim.adam(lr=1e-2)
    a, b = _model_pair(np.float32)
    names = list(a.named_parameters())[::-1]  # views, but not in buffer order: no single span
    tree = {k: a.named_parameters()[k] for k in names}
    gtree = {k: a.named_grads()[k] for k in names}
    sa, sb = tx.init(tree), tx.init(b.params)
    counter = _KernelCounter(monkeypatch)
    rng = np.random.default_rng(1)
    for _ in range(5):
        g = rng.standard_normal(a.params.shape).astype(np.float32)
        a.grads[...] = g
        b.grads[...] = g
        sa = fused.step(tx, tree, gtree, sa)
        sb = fused.step(tx, b.params, b.grads, sb)
    assert counter.n == 5 * len(names) + 5
    np.testing.assert_array_equal(a.params, b.params)


def test_a_per_element_decay_array_never_runs_on_a_spanning_tree():
    """The reference cannot broadcast a buffer-sized decay array over the leaves: nor may the fast path."""
    a, _ = _model_pair(np.float32)
    tree, gtree = a.named_parameters(), a.named_grads()
    tx = dc.optim.adam(lr=1e-2, weight_decay=np.full(a.params.size, 0.1, np.float32))
    with pytest.raises((dc.errors.StructureError, ValueError)):  # the reference's error, not a silent success
        tx.update(gtree, tx.init(tree), tree)
