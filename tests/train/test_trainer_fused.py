"""The trainer's optimizer step: in place (``dc.optim.step``) except on telemetry steps, same results either way.

``Trainer._train_epoch`` runs the in-place step (a fused kernel for the named
optimizers) on ordinary steps and the pure ``tx.update`` plus an addition on
telemetry steps. These tests check that this changes nothing: the parameters
equal a plain ``tx.update`` / add loop bit for bit, equal a run with the fused
kernels switched off within float32 rounding, and a resumed run is bitwise the
same as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc
from descend import nn
from descend.optim import fused
from descend.train import Trainer

OPTIMIZERS = {
    "adam": lambda: dc.optim.adam(lr=1e-2, weight_decay=1e-3),
    "adamw": lambda: dc.optim.adamw(lr=1e-2),
    "sgd": lambda: dc.optim.sgd(lr=0.05, momentum=0.9, nesterov=True),
    "adagrad": lambda: dc.optim.adagrad(lr=0.05),
    "rmsprop": lambda: dc.optim.rmsprop(lr=1e-3),
    "rmsprop-centered": lambda: dc.optim.rmsprop(lr=1e-3, centered=True, momentum=0.5),
    "nadam": lambda: dc.optim.nadam(lr=1e-2),  # no kernel: the reference chain, in place
}


def _data(n=300, d=12, k=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=(d, k)).astype(np.float32)
    y = (x @ w + 0.5 * rng.normal(size=(n, k))).argmax(axis=1).astype(np.int64)
    return x, y


def _trainer(name, **kwargs):
    model = nn.mlp(12, hidden=(32, 16), out=4, seed=1)
    return Trainer(model, "cross_entropy", OPTIMIZERS[name](), seed=5, telemetry_every=4, **kwargs)


def _manual_run(name, x, y, epochs, batch_size):
    """The loop the trainer replaces: pure update, then ``params += updates``, every step."""
    t = _trainer(name)
    model, loss, tx = t.model, t.loss, t.optimizer
    state = tx.init(model.params)
    loader = dc.data.Loader((x, y), batch_size, seed=5)
    model.train()
    for _ in range(epochs):
        for xb, yb in loader:
            loss.forward(model.forward(xb), yb)
            model.backward(loss.backward(), input_grad=False)
            updates, state = tx.update(model.grads, state, model.params)
            np.add(model.params, updates, out=model.params)
    return model.params


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_in_place_steps_equal_update_and_add_bitwise(name) -> None:
    x, y = _data()
    t = _trainer(name)
    before = sum(fused.calls.values())
    t.fit((x, y), epochs=3, batch_size=32)
    if fused.ENABLED and name != "nadam":
        assert sum(fused.calls.values()) - before == t.step, "every step must take the fused kernel"
    np.testing.assert_array_equal(t.model.params, _manual_run(name, x, y, epochs=3, batch_size=32))


@pytest.mark.skipif(not fused.ENABLED, reason="numba is not installed: only the reference path exists")
@pytest.mark.parametrize("name", ["adam", "sgd", "adagrad", "rmsprop", "rmsprop-centered"])
def test_fused_trainer_equals_the_reference_trainer(name) -> None:
    x, y = _data()
    fast = _trainer(name)
    fast.fit((x, y), epochs=3, batch_size=32)
    before = sum(fused.calls.values())
    with dc.config.using(fused=False):
        slow = _trainer(name)
        slow.fit((x, y), epochs=3, batch_size=32)
    assert sum(fused.calls.values()) == before
    assert not np.allclose(slow.model.params, _trainer(name).model.params, rtol=0, atol=1e-3), "training moved"
    np.testing.assert_allclose(fast.model.params, slow.model.params, rtol=1e-5, atol=1e-6)
    for key in ("loss", "grad_norm", "grad_norm/1", "update_ratio/1", "update_ratio/5"):
        assert len(fast.history[key]) == 3, key
        np.testing.assert_allclose(fast.history[key], slow.history[key], rtol=1e-4, err_msg=key)


@pytest.mark.parametrize("name", ["adam", "sgd", "rmsprop-centered"])
def test_resume_with_the_in_place_step_is_bitwise_identical(name, tmp_path) -> None:
    x, y = _data()
    ref = _trainer(name)
    ref.fit((x, y), epochs=4, batch_size=48)
    first = _trainer(name, run_dir=tmp_path)
    first.fit((x, y), epochs=2, batch_size=48)
    again = _trainer(name, run_dir=tmp_path)
    again.fit((x, y), epochs=4, batch_size=48, resume=True)
    np.testing.assert_array_equal(again.model.params, ref.model.params)
    assert again.history["loss"] == ref.history["loss"]
    assert again.history["update_ratio/1"] == ref.history["update_ratio/1"] != []
