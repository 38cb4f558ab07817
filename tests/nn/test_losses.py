"""Losses against torch.nn.functional (value and gradient), stability at huge logits, accuracy, errors."""

# ruff: noqa: E501  (one line per case, tinygrad style)

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from descend import nn
from descend.errors import ParameterError
from descend.nn import ShapeError

TOL = {np.float64: {"rtol": 1e-10, "atol": 1e-12}, np.float32: {"rtol": 1e-4, "atol": 1e-6}}


def _check(ours, theirs, x, *args, dtype):
    loss, grad = ours(x.astype(dtype), *args)
    xt = torch.tensor(x.astype(dtype), requires_grad=True)
    lt = theirs(xt, *[torch.tensor(a) for a in args])
    lt.sum().backward()
    assert grad.dtype == dtype
    np.testing.assert_allclose(np.asarray(loss), lt.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(grad, xt.grad.numpy(), **TOL[dtype])
    return loss


rng = np.random.default_rng(0)
LOGITS = rng.standard_normal((8, 5)) * 3
LABELS = rng.integers(0, 5, 8)
PROBS = rng.dirichlet(np.ones(5), 8)
BIN = rng.uniform(size=(8, 5))

# fmt: off
CASES = [
    ("ce_mean", lambda x, t: nn.cross_entropy(x, t), lambda x, t: F.cross_entropy(x, t), LOGITS, LABELS),
    ("ce_sum", lambda x, t: nn.cross_entropy(x, t, "sum"), lambda x, t: F.cross_entropy(x, t, reduction="sum"), LOGITS, LABELS),
    ("ce_none", lambda x, t: nn.cross_entropy(x, t, "none"), lambda x, t: F.cross_entropy(x, t, reduction="none"), LOGITS, LABELS),
    ("ce_smoothing", lambda x, t: nn.cross_entropy(x, t, label_smoothing=0.1), lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), LOGITS, LABELS),
    ("ce_probs", lambda x, t: nn.cross_entropy(x, t), lambda x, t: F.cross_entropy(x, t), LOGITS, PROBS),
    ("ce_probs_smoothing", lambda x, t: nn.cross_entropy(x, t, label_smoothing=0.3), lambda x, t: F.cross_entropy(x, t, label_smoothing=0.3), LOGITS, PROBS),
    ("ce_huge_logits", lambda x, t: nn.cross_entropy(x, t), lambda x, t: F.cross_entropy(x, t), LOGITS * 1e4, LABELS),
    ("bce", lambda x, t: nn.binary_cross_entropy_with_logits(x, t), lambda x, t: F.binary_cross_entropy_with_logits(x, t), LOGITS, BIN),
    ("bce_sum", lambda x, t: nn.binary_cross_entropy_with_logits(x, t, "sum"), lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="sum"), LOGITS, BIN),
    ("bce_huge_logits", lambda x, t: nn.binary_cross_entropy_with_logits(x, t), lambda x, t: F.binary_cross_entropy_with_logits(x, t), LOGITS * 1e4, BIN),
    ("mse", lambda x, t: nn.mse_loss(x, t), lambda x, t: F.mse_loss(x, t), LOGITS, BIN),
    ("mse_none", lambda x, t: nn.mse_loss(x, t, "none"), lambda x, t: F.mse_loss(x, t, reduction="none"), LOGITS, BIN),
]
# fmt: on


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize(("name", "ours", "theirs", "x", "t"), CASES, ids=[c[0] for c in CASES])
def test_loss_matches_torch(name, ours, theirs, x, t, dtype):
    if t.dtype.kind == "f":
        t = t.astype(dtype)
    _check(ours, theirs, x, t, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_stable_at_1e4(dtype):
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4], [0.0, 0.0, 0.0]], dtype)
    loss, grad = nn.cross_entropy(logits, np.array([0, 1, 2]))
    # rows: log(1) = 0; log 2 (two equal maxima); log 3
    assert loss == pytest.approx((0 + np.log(2) + np.log(3)) / 3, rel=1e-6)
    assert np.all(np.isfinite(grad)) and grad.dtype == dtype
    np.testing.assert_allclose(grad * 3, [[0, 0, 0], [0, -0.5, 0.5], [1 / 3, 1 / 3, -2 / 3]], atol=1e-6)
    wrong, _ = nn.cross_entropy(logits[:1], np.array([2]))
    assert wrong == pytest.approx(2e4, rel=1e-6)


def test_loss_objects_forward_backward():
    crit = nn.CrossEntropyLoss()
    with pytest.raises(RuntimeError, match="backward called before forward"):
        crit.backward()
    loss = crit(LOGITS, LABELS)
    ref_loss, ref_grad = nn.cross_entropy(LOGITS, LABELS)
    assert loss == ref_loss
    np.testing.assert_array_equal(crit.backward(), ref_grad)
    assert nn.MSELoss("sum")(np.ones(3), np.zeros(3)) == 3.0
    assert nn.BCEWithLogitsLoss()(np.zeros(2), np.ones(2)) == pytest.approx(np.log(2))
    assert nn.get_loss("mse") is nn.mse_loss
    with pytest.raises(ParameterError, match="unknown loss 'hinge'; valid names are"):
        nn.get_loss("hinge")


def test_accuracy():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert nn.accuracy(logits, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    assert nn.accuracy(np.array([0.5, -1.0, 2.0]), np.array([1, 0, 0])) == pytest.approx(2 / 3)
    assert nn.accuracy(np.array([[0.5], [-1.0]]), np.array([1, 0])) == 1.0


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: nn.cross_entropy(LOGITS, LABELS + 10),
            ParameterError,
            "target classes must be in \\[0, 5\\), got min 1[0-4] max 1[0-4]",
        ),
        (
            lambda: nn.cross_entropy(LOGITS, LABELS[:3]),
            ShapeError,
            "expected integer targets of shape \\(8,\\), got \\(3,\\)",
        ),
        (lambda: nn.cross_entropy(LOGITS[0], LABELS), ShapeError, "expected logits of shape \\(N, C\\), got \\(5,\\)"),
        (
            lambda: nn.cross_entropy(LOGITS, PROBS[:, :3]),
            ShapeError,
            "expected probability targets of shape \\(8, 5\\)",
        ),
        (
            lambda: nn.cross_entropy(LOGITS, LABELS, reduction="avg"),
            ParameterError,
            "reduction must be one of 'mean', 'sum', 'none', got 'avg'",
        ),
        (
            lambda: nn.cross_entropy(LOGITS, LABELS, label_smoothing=1.5),
            ParameterError,
            "label_smoothing must be in \\[0, 1\\]",
        ),
        (
            lambda: nn.mse_loss(LOGITS, BIN[:2]),
            ShapeError,
            "mse_loss: target shape \\(2, 5\\) must equal the input shape \\(8, 5\\)",
        ),
        (lambda: nn.binary_cross_entropy_with_logits(LOGITS, BIN.T), ShapeError, "target shape \\(5, 8\\)"),
    ],
    ids=[
        "class_range",
        "target_shape",
        "logits_ndim",
        "prob_shape",
        "reduction",
        "smoothing",
        "mse_shape",
        "bce_shape",
    ],
)
def test_loss_validation(call, error, message):
    with pytest.raises(error, match=message):
        call()
