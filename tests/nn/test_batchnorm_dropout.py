"""BatchNorm running statistics and train/eval against torch over several steps; Dropout statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from descend import nn
from descend.nn import ShapeError


@pytest.mark.parametrize(
    ("ours", "theirs", "shape"),
    [
        (lambda: nn.BatchNorm1d(5), lambda: torch.nn.BatchNorm1d(5), (7, 5)),
        (lambda: nn.BatchNorm1d(5, momentum=0.3), lambda: torch.nn.BatchNorm1d(5, momentum=0.3), (4, 5, 6)),
        (lambda: nn.BatchNorm2d(3, momentum=None), lambda: torch.nn.BatchNorm2d(3, momentum=None), (4, 3, 5, 5)),
        (lambda: nn.BatchNorm2d(3, eps=1e-3), lambda: torch.nn.BatchNorm2d(3, eps=1e-3), (2, 3, 4, 4)),
    ],
    ids=["bn1d", "bn1d_ncl_momentum", "bn2d_cumulative", "bn2d_eps"],
)
def test_running_stats_and_eval_match_torch_over_steps(ours, theirs, shape):
    rng = np.random.default_rng(0)
    a, b = ours().astype(np.float64), theirs().double()
    for _ in range(5):
        x = rng.standard_normal(shape) * 3 + 1.5
        a(x)
        b(torch.from_numpy(x))
    sd = b.state_dict()
    np.testing.assert_allclose(a.running_mean, sd["running_mean"].numpy(), rtol=1e-12)
    np.testing.assert_allclose(a.running_var, sd["running_var"].numpy(), rtol=1e-12)  # unbiased update
    assert int(a.num_batches_tracked) == int(sd["num_batches_tracked"]) == 5
    a.eval(), b.eval()
    x = rng.standard_normal(shape)
    before = a.running_mean.copy()
    with torch.no_grad():
        np.testing.assert_allclose(a(x), b(torch.from_numpy(x)).numpy(), rtol=1e-12)
    np.testing.assert_array_equal(a.running_mean, before)  # eval never updates the statistics


def test_batchnorm_normalizes_with_biased_variance():
    bn = nn.BatchNorm1d(1, affine=False).astype(np.float64)
    y = bn(np.array([[1.0], [2.0], [3.0], [6.0]]))
    assert y.mean() == pytest.approx(0, abs=1e-12)
    assert y.var() == pytest.approx(1 - 1e-5 / (np.var([1, 2, 3, 6]) + 1e-5), rel=1e-9)
    assert bn.running_var[0] == pytest.approx(0.9 + 0.1 * np.var([1, 2, 3, 6], ddof=1))


def test_batchnorm_needs_more_than_one_value_per_channel_in_training():
    with pytest.raises(ShapeError, match="expected more than 1 value per channel when training"):
        nn.BatchNorm1d(3)(np.ones((1, 3)))
    bn = nn.BatchNorm1d(3).eval()
    assert bn(np.ones((1, 3))).shape == (1, 3)


def test_dropout_statistics():
    layer = nn.Dropout(0.3, rng=np.random.default_rng(0))
    x = np.ones((100, 1000), np.float32)
    y = layer(x)
    assert y.dtype == np.float32
    dropped = np.mean(y == 0)
    assert abs(dropped - 0.3) < 4 * np.sqrt(0.3 * 0.7 / x.size)
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)  # inverted: survivors scaled by 1/(1−p)
    assert y.mean() == pytest.approx(1.0, abs=0.01)
    dx = layer.backward(np.full_like(x, 2.0))
    np.testing.assert_array_equal(dx == 0, y == 0)  # the same mask
    np.testing.assert_allclose(dx[dx != 0], 2 / 0.7, rtol=1e-6)


def test_dropout_eval_is_identity_and_p0_p1():
    layer = nn.Dropout(0.5).eval()
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    assert layer(x) is x
    assert layer.backward(x) is x
    np.testing.assert_array_equal(nn.Dropout(0.0)(x), x)
    assert not nn.Dropout(1.0)(x).any()


def test_dropout_is_seeded_and_layers_get_distinct_streams():
    def model(seed):
        return nn.Sequential(nn.Dropout(0.5), nn.Dropout(0.5), rng=seed)

    x = np.ones((50, 50))
    m1, m2 = model(0), model(0)
    np.testing.assert_array_equal(m1[0](x), m2[0](x))
    np.testing.assert_array_equal(m1[1](x), m2[1](x))
    assert not np.array_equal(model(0)[0](x), model(0)[1](x))
    assert not np.array_equal(model(0)[0](x), model(1)[0](x))
    masks = [m1[0](x) for _ in range(2)]
    assert not np.array_equal(*masks)  # a new mask every step


def test_global_random_state_untouched_by_dropout():
    np.random.seed(0)  # noqa: NPY002 (checking it is untouched)
    state = np.random.get_state()[1].copy()  # noqa: NPY002 (checking it is untouched)
    nn.Dropout(0.5)(np.ones(100))
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002
