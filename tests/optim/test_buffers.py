"""Output buffers of the pure path: recycled, but never while the caller can still see them.

The fused ``tx.update`` and ``apply_updates`` hand out arrays from a
:class:`~descend.optim._buffers.BufferPool`, whose buffer goes back to the pool only
when the array handed out, and every view of it, is deallocated (no reference
counting heuristics). These tests hold on to everything a long run returns and check
that none of it ever changes, that dropped buffers are reused, and the opt-in
``donating_update`` (the new state written into the donated state's arrays).
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

import descend as dc
from descend.optim import _buffers, fused
from descend.optim._buffers import MIN_ELEMENTS, BufferPool

needs_fused = pytest.mark.skipif(not fused.ENABLED, reason="the fused kernels are off (no numba, or DESCEND_FUSED=0)")

N = MIN_ELEMENTS + 13  # pooled, and odd
CONFIGS = [
    ("adam", dict(lr=1e-2, weight_decay=0.1)),
    ("adamw", dict(lr=1e-2)),
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("sgd", dict(lr=0.1)),
    ("adagrad", dict(lr=0.1)),
    ("rmsprop", dict(lr=1e-2)),
    ("rmsprop", dict(lr=1e-2, centered=True, momentum=0.5)),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CONFIGS)]


def _arrays(state) -> list[np.ndarray]:
    return [v for v in dc.optim.state_to_dict(state).values() if isinstance(v, np.ndarray) and v.size > 1]


def _state_arrays(state) -> list[np.ndarray]:
    """The state's own array objects (state_to_dict copies)."""
    out = []
    for link in state:
        for value in link:
            if isinstance(value, np.ndarray):
                out.append(value)
            elif isinstance(value, dict):
                out.extend(v for v in value.values() if isinstance(v, np.ndarray))
    return out


@needs_fused
@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=IDS)
@pytest.mark.parametrize("tree", [False, True], ids=["array", "tree"])
def test_nothing_returned_ever_changes_while_it_is_held(name, kwargs, tree) -> None:
    rng = np.random.default_rng(0)
    tx = getattr(dc.optim, name)(**kwargs)
    params = rng.standard_normal(N).astype(np.float32)
    if tree:
        params = {"a": params, "b": rng.standard_normal((2, N)).astype(np.float32)}
    state = tx.init(params)
    held = []  # every update, every state array, every new parameter array, with a copy taken when returned
    before = fused.calls[name]
    for _ in range(30):
        grads = dc.optim.tree.tree_map(lambda p: rng.standard_normal(p.shape).astype(np.float32), params)
        updates, state = tx.update(grads, state, params)
        params = dc.optim.apply_updates(params, updates)
        for a in [*dc.optim.tree.leaves(updates), *_state_arrays(state), *dc.optim.tree.leaves(params)]:
            held.append((a, a.copy()))
    assert fused.calls[name] - before == 30, "the fused pure path ran every step"
    for a, copy in held:
        np.testing.assert_array_equal(a, copy)
    addresses = [a.ctypes.data for a, _ in held]
    assert len(set(addresses)) == len(addresses), "no two arrays the caller holds share a buffer"


@needs_fused
@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=IDS)
def test_dropped_buffers_are_reused_and_a_held_view_keeps_its_buffer(name, kwargs) -> None:
    rng = np.random.default_rng(1)
    tx = getattr(dc.optim, name)(**kwargs)
    params = rng.standard_normal(N).astype(np.float32)
    state = tx.init(params)
    seen: set[int] = set()
    views = []
    for t in range(40):
        updates, state = tx.update(rng.standard_normal(N).astype(np.float32), state, params)
        seen.add(updates.ctypes.data)
        if t % 10 == 0:  # hold only a view (and a memoryview of another view) of some updates
            view = updates[5:]
            views.append((view, view.copy(), memoryview(updates[::2]), updates[::2].copy()))
        params = dc.optim.apply_updates(params, updates)
        del updates
    arrays_per_step = 1 + len(_arrays(state))
    assert len(seen) < 40, "buffers of dropped arrays are handed out again"
    assert len(seen) <= 4 * arrays_per_step + 2 * len(views), f"{len(seen)} buffers for 40 steps"
    for view, copy, mem, mem_copy in views:
        np.testing.assert_array_equal(view, copy)
        np.testing.assert_array_equal(np.asarray(mem), mem_copy)


def test_the_pool_recycles_only_after_every_view_is_gone() -> None:
    pool = BufferPool(keep=2)
    a = pool.empty((N,), np.float32)
    address = a.ctypes.data
    view, mem = a[3:], memoryview(a)
    derived = np.frombuffer(mem, np.float32)
    del a
    gc.collect()
    assert pool.free_count() == 0
    del view, mem
    assert pool.free_count() == 0, "the array made from the memoryview still holds it"
    del derived
    assert pool.free_count() == 1
    b = pool.empty((N,), np.float32)
    assert b.ctypes.data == address and pool.free_count() == 0
    c = pool.empty((N,), np.float32)
    assert c.ctypes.data != address
    assert b.flags.writeable and b.flags.c_contiguous and b.shape == (N,) and b.dtype == np.float32
    small = pool.empty((10,), np.float64)  # not pooled: an ordinary array
    assert small.base is None and small.flags.owndata
    del b, c
    assert pool.free_count() == 2
    d = [pool.empty((N,), np.float32) for _ in range(3)]
    del d
    assert pool.free_count() == 2, "at most `keep` free buffers per key"


def test_apply_updates_is_exactly_the_old_sum() -> None:
    rng = np.random.default_rng(2)
    for dtype in (np.float32, np.float64):
        p, u = rng.standard_normal(N).astype(dtype), rng.standard_normal(N).astype(dtype)
        out = dc.optim.apply_updates(p, u)
        assert out.dtype == dtype and type(out.base) is _buffers._Lease
        np.testing.assert_array_equal(out, np.asarray(p + u, dtype=dtype))
    p32, u64 = np.ones(N, np.float32), np.full(N, 1e-9)  # mixed dtypes: the unpooled path, same rule
    assert dc.optim.apply_updates(p32, u64).dtype == np.float32


@needs_fused
@pytest.mark.parametrize(("name", "kwargs"), CONFIGS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_donating_update_equals_update_and_reuses_the_state(name, kwargs, dtype) -> None:
    rng = np.random.default_rng(3)
    tx = getattr(dc.optim, name)(**kwargs)
    p_ref = p_don = rng.standard_normal(N).astype(dtype)
    s_ref = s_don = tx.init(p_ref)
    before = fused.calls[name]
    for _ in range(50):
        g = rng.standard_normal(N).astype(dtype)
        g_copy, p_copy = g.copy(), p_don.copy()
        u_ref, s_ref = tx.update(g, s_ref, p_ref)
        donated = _state_arrays(s_don)
        u_don, s_don = dc.optim.donating_update(tx, g, s_don, p_don)
        np.testing.assert_array_equal(g, g_copy)
        np.testing.assert_array_equal(p_don, p_copy)
        new = _state_arrays(s_don)
        assert [a.ctypes.data for a in new] == [a.ctypes.data for a in donated], "the state is written in place"
        assert all(not np.shares_memory(u_don, a) for a in (*new, g, p_don))
        np.testing.assert_array_equal(u_don, u_ref)
        p_ref, p_don = dc.optim.apply_updates(p_ref, u_ref), dc.optim.apply_updates(p_don, u_don)
    assert fused.calls[name] - before == 100
    for a, b in zip(_arrays(s_ref), _arrays(s_don), strict=True):
        np.testing.assert_array_equal(a, b)


@needs_fused
def test_donating_update_falls_back_without_writing_what_it_may_not() -> None:
    rng = np.random.default_rng(4)
    g, p = rng.standard_normal(N).astype(np.float32), rng.standard_normal(N).astype(np.float32)
    tx = dc.optim.adam(lr=0.1)
    state = tx.update(g, tx.init(p), p)[1]
    for a in _state_arrays(state):
        a.flags.writeable = False  # a read-only state cannot be donated: the pure kernel runs
    frozen = [a.copy() for a in _state_arrays(state)]
    u, new = dc.optim.donating_update(tx, g, state, p)
    for a, copy in zip(_state_arrays(state), frozen, strict=True):
        np.testing.assert_array_equal(a, copy)
    np.testing.assert_array_equal(u, tx.update(g, state, p)[0])
    assert all(a.flags.writeable for a in _state_arrays(new))
    nadam = dc.optim.nadam(lr=0.1)  # no kernel: plain tx.update
    s = nadam.init(p)
    np.testing.assert_array_equal(dc.optim.donating_update(nadam, g, s, p)[0], nadam.update(g, s, p)[0])
