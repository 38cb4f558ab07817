"""Lookahead equals ``pytorch_optimizer.Lookahead`` 4.1.0 around torch's optimizers (float64, 200 steps)."""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc
from descend.errors import ParameterError
from tests.optim import _oracles as O

torch = pytest.importorskip("torch")
po = pytest.importorskip("pytorch_optimizer")

STEPS = 200
RTOL = 1e-7

INNER = {
    "sgd": (lambda: dc.optim.sgd(lr=0.02, momentum=0.9), lambda ps: torch.optim.SGD(ps, lr=0.02, momentum=0.9)),
    "nesterov": (
        lambda: dc.optim.sgd(lr=0.02, momentum=0.9, nesterov=True),
        lambda ps: torch.optim.SGD(ps, lr=0.02, momentum=0.9, nesterov=True),
    ),
    "adam": (lambda: dc.optim.adam(lr=0.05), lambda ps: torch.optim.Adam(ps, lr=0.05, foreach=False)),
    "lars": (
        lambda: dc.optim.lars(lr=0.02, trust_coefficient=0.05),
        lambda ps: po.LARS(ps, lr=0.02, trust_coefficient=0.05),
    ),
}


@pytest.mark.parametrize("pullback", ["none", "reset", "pullback"])
@pytest.mark.parametrize("inner", sorted(INNER))
@pytest.mark.parametrize(("k", "alpha"), [(5, 0.5), (3, 0.8), (1, 0.3)])
def test_lookahead_matches_pytorch_optimizer(inner, pullback, k, alpha):
    ours_inner, theirs_inner = INNER[inner]
    params0, grad_fn = O.mixed()
    tx = dc.optim.lookahead(ours_inner(), k=k, alpha=alpha, pullback_momentum=pullback)
    ours = O.run_descend(tx, params0, grad_fn, STEPS)

    def make(ps):
        return po.Lookahead(theirs_inner(ps), k=k, alpha=alpha, pullback_momentum=pullback)

    theirs = O.run_torch(make, params0, grad_fn, STEPS)
    O.assert_matches(ours, theirs, params0, RTOL, what=f"{inner},{pullback},{k},{alpha}")
    plain = O.run_descend(ours_inner(), params0, grad_fn, STEPS)
    assert not np.allclose(plain["W"], ours["W"]), "lookahead changed nothing: vacuous"


def test_lookahead_on_torch_tensors_through_descend_torch():
    params0, grad_fn = O.mixed()
    tx = dc.optim.lookahead(dc.optim.sgd(lr=0.02, momentum=0.9), pullback_momentum="pullback")
    ours = O.run_descend_torch(tx, params0, grad_fn, STEPS)
    theirs = O.run_torch(
        lambda ps: po.Lookahead(torch.optim.SGD(ps, lr=0.02, momentum=0.9), pullback_momentum="pullback"),
        params0,
        grad_fn,
        STEPS,
    )
    O.assert_matches(ours, theirs, params0, RTOL, what="descend.torch")


def test_lookahead_slow_params_are_the_last_synchronised_weights():
    tx = dc.optim.lookahead(dc.optim.sgd(lr=0.1), k=2, alpha=0.5)
    params = {"w": np.array([1.0])}
    state = tx.init(params)
    for _ in range(2):  # two steps of −0.1·g with g = 1: fast 0.8, synced halfway from 1.0: 0.9
        u, state = tx.update({"w": np.array([1.0])}, state, params)
        params = dc.optim.apply_updates(params, u)
    np.testing.assert_allclose(params["w"], [0.9])
    np.testing.assert_allclose(dc.optim.lookahead_slow_params(state)["w"], [0.9])
    u, state = tx.update({"w": np.array([1.0])}, state, params)
    np.testing.assert_allclose(dc.optim.lookahead_slow_params(state)["w"], [0.9])


def test_lookahead_rejects_bad_arguments_with_one_message():
    with pytest.raises(ParameterError, match="lookahead: optimizer must be a GradientTransformation, got 'sgd'"):
        dc.optim.lookahead("sgd")
    with pytest.raises(ParameterError, match=r"lookahead: k must be an integer in \[1, inf\), got 0"):
        dc.optim.lookahead(dc.optim.sgd(), k=0)
    with pytest.raises(ParameterError, match="lookahead: pullback_momentum must be one of 'none', 'reset', 'pullback'"):
        dc.optim.lookahead(dc.optim.sgd(), pullback_momentum="pull")
    with pytest.raises(ParameterError, match="lookahead_slow_params: this optimizer state has no lookahead"):
        dc.optim.lookahead_slow_params(dc.optim.sgd().init(np.zeros(2)))


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (
            lambda: dc.optim.lookahead_adam(lr=0.05, weight_decay=0.01, k=3, alpha=0.8),
            lambda ps: po.Lookahead(torch.optim.Adam(ps, lr=0.05, weight_decay=0.01, foreach=False), k=3, alpha=0.8),
        ),
        (
            lambda: dc.optim.lookahead_sgd(lr=0.02, nesterov=True, pullback_momentum="pullback"),
            lambda ps: po.Lookahead(
                torch.optim.SGD(ps, lr=0.02, momentum=0.9, nesterov=True), pullback_momentum="pullback"
            ),
        ),
    ],
    ids=["lookahead_adam", "lookahead_sgd"],
)
def test_the_named_lookaheads_match_pytorch_optimizer(ours, theirs):
    """``lookahead-adam`` / ``lookahead-sgd`` (the names descend train and compare take) are Lookahead around
    torch's Adam and SGD."""
    params0, grad_fn = O.mixed()
    O.assert_matches(O.run_descend(ours(), params0, grad_fn, STEPS), O.run_torch(theirs, params0, grad_fn, STEPS),
                     params0, RTOL, what="named")  # fmt: skip
