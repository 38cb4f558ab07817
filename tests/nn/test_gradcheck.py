"""Finite differences (float64) agree with every layer's and loss's analytic backward; gradcheck catches bugs."""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc
from descend import nn
from tests.nn.cases import CASES, IDS
from tests.nn.helpers import randomize


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradcheck_every_layer(case):
    rng = np.random.default_rng(1)
    layer = case["ours"]()
    randomize(layer, rng)
    layer.train(case["train"])
    x = rng.standard_normal(case["shape"]) * case.get("x_scale", 1.0)
    report = nn.gradcheck(layer, x, max_checks=None)
    assert report.ok
    assert any(e.name == "input" for e in report.entries)
    assert len(report.entries) == len(layer.layout) + 1


def test_gradcheck_dropout_replays_the_mask():
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    report = nn.gradcheck(model, np.random.default_rng(0).standard_normal((5, 6)))
    assert report.ok


def test_gradcheck_does_not_modify_the_module():
    layer = nn.Linear(4, 3)
    before = layer.params.copy()
    nn.gradcheck(layer, np.ones((2, 4)))
    np.testing.assert_array_equal(layer.params, before)
    assert layer.params.dtype == np.float32


@pytest.mark.parametrize("preset", ["mlp", "cnn1d", "cnn2d"])
def test_gradcheck_presets(preset):
    rng = np.random.default_rng(0)
    if preset == "mlp":
        model, x = nn.mlp(12, (10, 8), 4, dropout=0.3, batchnorm=True), rng.standard_normal((6, 12))
    elif preset == "cnn1d":
        model, x = nn.cnn1d(length=12, channels=(3, 4), hidden=6, out=3, batchnorm=True), rng.standard_normal((4, 12))
    else:
        model, x = nn.cnn2d(image_size=8, channels=(2, 3), hidden=5, out=3), rng.standard_normal((3, 1, 8, 8))
    assert nn.gradcheck(model, x, max_checks=40).ok


CE, BCE, MSE = nn.cross_entropy, nn.binary_cross_entropy_with_logits, nn.mse_loss
LOSS_CASES = [
    ("cross_entropy", CE, lambda rng: (rng.standard_normal((5, 4)) * 3, rng.integers(0, 4, 5)), {}),
    ("cross_entropy_sum", CE, lambda rng: (rng.standard_normal((5, 4)), rng.integers(0, 4, 5)), {"reduction": "sum"}),
    ("cross_entropy_none", CE, lambda rng: (rng.standard_normal((5, 4)), rng.integers(0, 4, 5)), {"reduction": "none"}),
    (
        "cross_entropy_smoothing",
        CE,
        lambda rng: (rng.standard_normal((5, 4)), rng.integers(0, 4, 5)),
        {"label_smoothing": 0.2},
    ),
    ("cross_entropy_probs", CE, lambda rng: (rng.standard_normal((5, 4)), rng.dirichlet(np.ones(4), 5)), {}),
    ("bce_with_logits", BCE, lambda rng: (rng.standard_normal((6, 3)) * 4, rng.uniform(size=(6, 3))), {}),
    ("mse", MSE, lambda rng: (rng.standard_normal((6, 3)), rng.standard_normal((6, 3))), {}),
]


@pytest.mark.parametrize(("name", "fn", "make", "kw"), LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_gradcheck_every_loss(name, fn, make, kw):
    x, t = make(np.random.default_rng(2))
    report = nn.gradcheck(lambda z, tt: fn(z, tt, **kw), x, t, max_checks=None)
    assert report.ok and report.entries[0].checked == x.size


def test_gradcheck_loss_object():
    x = np.random.default_rng(0).standard_normal((4, 3))
    assert nn.gradcheck(nn.CrossEntropyLoss(label_smoothing=0.1), x, np.array([0, 2, 1, 1])).ok


class _BrokenLinear(nn.Linear):
    """dW is off by 1 %: gradcheck must notice."""

    def backward(self, dout, input_grad=True):
        dx = super().backward(dout, input_grad)
        self.dweight *= 1.01
        return dx


def test_gradcheck_detects_a_wrong_gradient():
    layer = _BrokenLinear(4, 3)
    with pytest.raises(nn.GradcheckError, match=r"FAILED: max relative error .*\n.*BAD weight"):
        nn.gradcheck(layer, np.random.default_rng(0).standard_normal((5, 4)))
    report = nn.gradcheck(layer, np.random.default_rng(0).standard_normal((5, 4)), raise_on_fail=False)
    assert not report.ok
    assert report.max_rel_error == pytest.approx(0.01 / 1.01, rel=1e-3)
    assert [e.ok for e in report.entries] == [False, True, True]


def test_gradcheck_detects_a_wrong_input_gradient():
    def bad_mse(p, t):
        loss, g = nn.mse_loss(p, t)
        return loss, g * 0.5

    x = np.random.default_rng(0).standard_normal((3, 2))
    with pytest.raises(dc.errors.DescendError, match="BAD input"):
        nn.gradcheck(bad_mse, x, np.zeros((3, 2)))
