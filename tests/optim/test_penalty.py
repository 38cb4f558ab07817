"""One L1/L2 penalty (descend.optim.regularization.penalty) behind the Trainer, lr_find, dc.nn.l1_penalty /
l2_penalty and the add_l1_penalty / add_l2_penalty links: against a float64 oracle, and the same numbers as the
four formulas it replaced."""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc
from descend import nn
from descend.lab.lr_find import lr_range_test
from descend.optim.regularization import l1_gradient, penalty
from descend.train import Trainer


def _oracle(w, l1, l2, mask):
    w64, m = w.astype(np.float64), (np.ones_like(w, np.float64) if mask is None else mask.astype(np.float64))
    value = l1 * np.sum(m * np.abs(w64)) + 0.5 * l2 * np.sum(m * w64 * w64)
    return value, l1 * m * np.sign(w64) + l2 * m * w64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("l1", "l2"), [(0.0, 0.3), (0.05, 0.0), (0.05, 0.3), (0.0, 0.0)])
@pytest.mark.parametrize("masked", [False, True])
def test_penalty_value_and_gradient(dtype, l1, l2, masked) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal(1001).astype(dtype)
    w[:5] = 0.0  # sign(0) = 0
    mask = (rng.random(1001) > 0.3).astype(dtype) if masked else None
    g0 = rng.standard_normal(1001).astype(dtype)
    g = g0.copy()
    w_copy = w.copy()
    value = penalty(w, g, l1, l2, mask)
    expected_value, expected_grad = _oracle(w, l1, l2, mask)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert value == pytest.approx(expected_value, rel=tol, abs=1e-12)
    np.testing.assert_allclose(g - g0, expected_grad, rtol=tol, atol=tol)
    assert g.dtype == dtype
    np.testing.assert_array_equal(w, w_copy)
    assert penalty(w, None, l1, l2, mask) == value  # value only
    g2 = g0.copy()
    assert penalty(w, g2, l1, l2, mask, value=False) == 0.0
    np.testing.assert_array_equal(g2, g)


def test_same_numbers_as_the_trainer_formula_it_replaced() -> None:
    """The Trainer's old in-place form, bit for bit (0/1 masks: λ·(m·θ) and (λ·m)·θ round the same)."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal(4097).astype(np.float32)
    mask = (rng.random(4097) > 0.2).astype(np.float32)
    l1, l2 = 1e-4, 3e-3
    g_old = rng.standard_normal(4097).astype(np.float32)
    g_new = g_old.copy()
    old = 0.5 * l2 * float(np.dot(w * mask, w))
    g_old += (l2 * mask) * w
    old += l1 * float(np.abs(w * mask).sum())
    g_old += (l1 * mask) * np.sign(w)
    assert penalty(w, g_new, l1, l2, mask) == old
    np.testing.assert_array_equal(g_new, g_old)


def test_every_caller_uses_it() -> None:
    rng = np.random.default_rng(2)
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    model.params[:] = rng.standard_normal(model.params.size).astype(np.float32)
    mask = model.decay_mask()
    g0 = rng.standard_normal(model.params.size).astype(np.float32)
    expected = g0.copy()
    expected_value = penalty(model.params, expected, 0.01, 0.2, mask)
    # dc.nn.l2_penalty + l1_penalty (weights only, by segments)
    model.grads[:] = g0
    value = nn.l2_penalty(model, 0.2) + nn.l1_penalty(model, 0.01)
    assert value == pytest.approx(expected_value, rel=1e-6)
    np.testing.assert_allclose(model.grads, expected, rtol=1e-6, atol=1e-7)
    # Trainer(l1=, l2=)
    trainer = Trainer(model, "cross_entropy", dc.optim.sgd(lr=0.1), l1=0.01, l2=0.2)
    model.grads[:] = g0
    assert trainer._penalty() == expected_value
    np.testing.assert_array_equal(model.grads, expected)
    # The chain links: u + λ₁·sign(θ), u + λ₂·θ
    u = rng.standard_normal(model.params.size).astype(np.float32)
    tx = dc.optim.chain(dc.optim.add_l1_penalty(0.01), dc.optim.add_l2_penalty(0.2))
    out, _ = tx.update(u, tx.init(model.params), model.params)
    g = u.copy()
    penalty(model.params, g, 0.01, 0.2)
    np.testing.assert_allclose(out, g, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(l1_gradient(model.params, 0.01), 0.01 * np.sign(model.params))


def test_lr_find_applies_the_penalty() -> None:
    """lr_find with l2 follows the gradients the penalty adds (a run with and one without differ)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    runs = []
    for l2 in (0.0, 5.0):
        net = nn.mlp(4, (8,), 2, seed=0)
        result = lr_range_test(net, "cross_entropy", "sgd", (x, y), steps=20, batch_size=16, max_lr=1.0, l2=l2)
        runs.append(result.losses)
    assert runs[0][0] == runs[1][0] and not np.array_equal(runs[0][5:], runs[1][5:])


def test_a_flat_decay_array_on_a_tree_of_parameters_is_one_clear_error() -> None:
    """The flat-buffer idiom ``weight_decay=λ * model.decay_mask()`` on the named tree the Trainer now passes."""
    import descend as dc
    from descend.errors import ParameterError

    model = dc.nn.presets.mlp(4, (3,), 2, seed=0)
    params = dict(model.named_parameters())
    tx = dc.optim.sgd(lr=0.1, weight_decay=1e-2 * model.decay_mask())
    grads = {k: np.ones_like(v) for k, v in params.items()}
    with pytest.raises(ParameterError, match=r"must broadcast to each parameter, got shape \(\d+,\) for a parameter"):
        tx.update(grads, tx.init(params), params)
