"""Bad input to ``tx.update``, with every named optimizer: one clear error, nothing written.

* grads of another tree structure than the state (a bare ``KeyError`` before) and a
  leaf of the wrong shape (NumPy's broadcasting ``ValueError`` before) raise one
  :class:`~descend.errors.StructureError` that names the path, the expected and the given
  structure or shape, on the fused path and on the reference chains alike;
* a schedule that returns NaN or inf raises :class:`~descend.errors.NonFiniteError` at the
  step where it happens, naming the step, instead of silent NaN updates.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import descend as dc
from descend.errors import NonFiniteError, ParameterError, StructureError
from descend.optim import fused
from descend.optim.tree import tree_map

# name -> kwargs; every named optimizer, the stateful variant where the default keeps no per-parameter state.
NAMED = {
    "sgd": dict(lr=0.1, momentum=0.9),
    "adam": dict(lr=0.1),
    "adamw": dict(lr=0.1),
    "adagrad": dict(lr=0.1),
    "rmsprop": dict(lr=0.1),
    "adadelta": dict(lr=1.0),
    "rprop": dict(lr=0.1),
    "asgd": dict(lr=0.1, t0=0.0),  # averaging from the start: before t0 the state's average is not read
    "adamax": dict(lr=0.1),
    "nadam": dict(lr=0.1),
    "radam": dict(lr=0.1),
    "adafactor": dict(lr=0.1),
    "lion": dict(lr=0.1),
    "momentum": dict(lr=0.1),
}
FUSED = ["sgd", "adam", "adamw", "adagrad", "rmsprop"]


def _tree(dtype=np.float32, b_size: int = 3, second: str = "b") -> dict[str, np.ndarray]:
    return {"w": np.full((2, 3), 0.5, dtype), second: np.full(b_size, 0.25, dtype)}


def _make(name: str, **overrides):
    return getattr(dc.optim, name)(**{**NAMED[name], **overrides})


def _trained_state(tx, params):
    """The state after two steps (SGD's momentum buffer is not read on the first step, as in torch, nor is
    ASGD's average on its first two)."""
    grads = tree_map(lambda p: np.full_like(p, 0.5), params)
    state = tx.init(params)
    for _ in range(2):
        state = tx.update(grads, state, params)[1]
    return state


@pytest.mark.parametrize("name", list(NAMED))
def test_grads_with_other_keys_than_the_state_raise_a_structure_error(name) -> None:
    tx = _make(name)
    state = _trained_state(tx, _tree())
    grads = _tree(second="c")  # params agree with grads: only the state differs
    with pytest.raises(StructureError) as info:
        tx.update(grads, state, _tree(second="c"))
    message = str(info.value)
    assert "grads do not match the optimizer state" in message, message
    assert "keys ['b', 'w']" in message and "keys ['c', 'w']" in message, message


@pytest.mark.parametrize("name", list(NAMED))
@pytest.mark.parametrize("with_params", [True, False], ids=["params", "no-params"])
def test_a_leaf_of_the_wrong_shape_raises_a_structure_error_naming_it(name, with_params) -> None:
    tx = _make(name)
    state = _trained_state(tx, _tree())
    grads = _tree(b_size=4)
    if not with_params and name in ("adafactor", "asgd", "rprop"):
        pytest.skip(f"{name} needs params")
    with pytest.raises(StructureError, match=r"\['b'\].*expected shape \(3,\), got shape \(4,\)"):
        tx.update(grads, state, _tree(b_size=4) if with_params else None)


@pytest.mark.parametrize("name", list(NAMED))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_array_of_the_wrong_shape_raises_on_every_path(name, dtype) -> None:
    tx = _make(name)
    state = _trained_state(tx, np.ones(5, dtype))
    params, grads = np.ones(4, dtype), np.full(4, 0.5, dtype)
    expected = r"grads do not match the optimizer state at the top level .*expected shape \(5,\), got shape \(4,\)"
    with pytest.raises(StructureError, match=expected):
        tx.update(grads, state, params)
    with pytest.raises(StructureError, match=expected):
        dc.optim.donating_update(tx, grads, state, params)
    with pytest.raises(StructureError, match=expected):
        dc.optim.step(tx, params, grads, state)
    np.testing.assert_array_equal(params, 1.0)  # nothing written
    for leaf in dc.optim.state_to_dict(state).values():
        assert not np.isnan(leaf).any()


def test_a_state_from_another_optimizer_is_named() -> None:
    tx = dc.optim.adam()
    with pytest.raises(StructureError, match="the state has 1 link states but this optimizer has 3 links"):
        tx.update(np.ones(3), dc.optim.chain(dc.optim.scale(2.0)).init(np.ones(3)), np.ones(3))
    with pytest.raises(
        StructureError, match="link 1 of the state is a TraceState but this optimizer's is a ScaleByAdamState"
    ):
        tx.update(np.ones(3), dc.optim.sgd(momentum=0.9).init(np.ones(3)), np.ones(3))
    with pytest.raises(StructureError, match=r"the state must be the tuple of 3 link states from tx\.init, got a dict"):
        tx.update(np.ones(3), {"a": 1}, np.ones(3))


def test_tree_map_names_the_path_and_both_structures() -> None:
    a = {"x": [np.zeros(2), np.zeros(3)], "y": np.zeros(1)}
    with pytest.raises(StructureError, match=r"at \['x'\]: expected a list of length 2 .*has a list of length 1"):
        tree_map(lambda p, q: p + q, a, {"x": [np.zeros(2)], "y": np.zeros(1)})
    with pytest.raises(StructureError, match=r"at \['x'\]\[1\]: expected shape \(3,\) .*has shape \(4,\)"):
        tree_map(lambda p, q: p + q, a, {"x": [np.zeros(2), np.zeros(4)], "y": np.zeros(1)})
    with pytest.raises(StructureError, match=r"the top level: expected a dict with keys \['x', 'y'\]"):
        tree_map(lambda p, q: p + q, a, {"x": [np.zeros(2), np.zeros(3)], "y": np.zeros(1), "z": 1})
    with pytest.raises(StructureError, match=r"expected a dict with keys .* has a list of length 2"):
        tree_map(lambda p, q: p + q, a, [np.zeros(2), np.zeros(3)])
    # Other errors of fn are not mistaken for structure errors.
    with pytest.raises(ZeroDivisionError):
        tree_map(lambda p, q: 1 / 0, a, a)
    with pytest.raises(ValueError, match="mine"):
        tree_map(lambda p, q: (_ for _ in ()).throw(ValueError("mine")), np.zeros(2), np.zeros(2))
    # Leaves of the first tree may be matched by anything (a tuple a previous tree_map made).
    pairs = tree_map(lambda p: (p, p + 1), a)
    firsts = tree_map(lambda _, pair: pair[0], a, pairs)
    assert np.array_equal(firsts["x"][1], a["x"][1])


def _nan_after(step: int, lr: float = 0.05, value: float = math.nan):
    return lambda t: lr if t < step else value


@pytest.mark.parametrize("name", list(NAMED))
@pytest.mark.parametrize("fused_on", [True, False], ids=["fused", "reference"])
def test_a_nan_learning_rate_from_a_schedule_raises_at_its_step(name, fused_on) -> None:
    if fused_on and not fused.ENABLED:
        pytest.skip("numba is not installed")
    tx = _make(name, lr=_nan_after(3))
    params = np.linspace(-1.0, 1.0, 7).astype(np.float32)
    with dc.config.using(fused=fused_on):
        state = tx.init(params)
        for _ in range(3):
            state = dc.optim.step(tx, params, np.full(7, 0.5, np.float32), state)
        before = params.copy()
        with pytest.raises(NonFiniteError, match=r"schedule returned nan at step 3 .*must be finite"):
            dc.optim.step(tx, params, np.full(7, 0.5, np.float32), state)
        with pytest.raises(NonFiniteError, match="at step 3"):
            tx.update(np.full(7, 0.5, np.float32), state, params)
    np.testing.assert_array_equal(params, before)  # the failed in-place step wrote nothing


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_an_infinite_learning_rate_raises_too(value) -> None:
    tx = dc.optim.adam(lr=_nan_after(0, value=value))
    with pytest.raises(NonFiniteError, match=f"returned {value} at step 0"):
        tx.init(np.ones(3))


def test_a_schedule_that_returns_no_number_is_named() -> None:
    tx = dc.optim.sgd(lr=lambda t: "fast")
    with pytest.raises(ParameterError, match="the schedule must return a real number, got 'fast' at step 0"):
        tx.init(np.ones(3))
