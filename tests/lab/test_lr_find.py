"""The learning-rate range test: the sweep, the smoothing, divergence, the suggestions and the plot."""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc
from descend import nn
from descend.data import Loader
from descend.errors import ParameterError
from descend.lab.lr_find import LRFindResult, lr_range_test, plot_lr_find, smooth
from descend.train import Trainer
from descend.train import experiment as ex


def regression(n: int = 64, d: int = 5, dtype=np.float64, seed: int = 0):
    """Linear least squares: full-batch GD on it diverges exactly when lr > 2/L."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = x @ rng.normal(size=(d, 1)) + 0.1 * rng.normal(size=(n, 1))
    a = np.hstack([x, np.ones((n, 1))])
    smoothness = 2.0 / n * float(np.linalg.eigvalsh(a.T @ a).max())  # L of mean((Xw + b − y)²)
    return x.astype(dtype), y.astype(dtype), smoothness


def independent_ema(losses, beta):
    out, avg = [], 0.0
    for t, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**t))
    return np.array(out)


def test_the_rates_are_exactly_exponential_and_the_losses_are_those_of_real_gradient_descent() -> None:
    x, y, _ = regression()
    model = nn.Linear(5, 1, rng=0, dtype=np.float64)
    w0, b0 = model.weight.copy(), model.bias.copy()
    steps, lo, hi = 50, 1e-4, 1e-1
    r = lr_range_test(model, "mse", "sgd", (x, y), batch_size=None, min_lr=lo, max_lr=hi, steps=steps)
    assert isinstance(r, LRFindResult) and not r.stopped_early and r.steps_run == steps
    expected = lo * (hi / lo) ** (np.arange(steps) / (steps - 1))
    np.testing.assert_allclose(r.lrs, expected, rtol=1e-13, atol=0)
    assert r.lrs[0] == lo and r.lrs[-1] == pytest.approx(hi, rel=1e-14)
    # Replay by hand: ℓ_t at (w_t, b_t), then w_{t+1} = w_t − η_t ∇ℓ.
    w, b, losses = w0.T.copy(), b0.copy(), []
    for eta in expected:
        resid = x @ w + b - y
        losses.append(float(np.mean(resid**2)))
        g = 2 * resid / len(x)
        w, b = w - eta * (x.T @ g), b - eta * g.sum(axis=0)
    np.testing.assert_allclose(r.losses, losses, rtol=1e-10)
    assert "completed all 50 steps" in r.reason


@pytest.mark.parametrize("beta", [0.98, 0.9, 0.0])
def test_the_smoothed_loss_is_the_bias_corrected_ema(beta) -> None:
    x, y, _ = regression()
    r = lr_range_test(nn.Linear(5, 1, rng=1, dtype=np.float64), "mse", "adam", (x, y), batch_size=16,
                      min_lr=1e-4, max_lr=1e-1, steps=40, beta=beta)  # fmt: skip
    np.testing.assert_allclose(r.smoothed, independent_ema(r.losses, beta), rtol=1e-12)
    np.testing.assert_allclose(smooth(r.losses, beta), r.smoothed, rtol=1e-12)
    assert r.smoothed[0] == r.losses[0]  # bias correction: no pull towards the zero start
    assert r.best_loss == r.smoothed.min() and r.min_loss_lr == r.lrs[np.argmin(r.smoothed)]
    assert r.min_loss_suggestion == pytest.approx(r.min_loss_lr / 10)


def test_divergence_stops_early_past_the_stability_limit() -> None:
    x, y, smoothness = regression()
    limit = 2.0 / smoothness  # full-batch GD on a quadratic converges iff lr < 2/L
    r = lr_range_test(nn.Linear(5, 1, rng=0, dtype=np.float64), "mse", "sgd", (x, y), batch_size=None,
                      min_lr=1e-3, max_lr=100.0, steps=200)  # fmt: skip
    assert r.stopped_early and r.steps_run < 200
    assert r.reason.startswith("diverged: the smoothed loss") and "4 × its minimum" in r.reason
    assert r.smoothed[-1] > 4 * r.best_loss >= 4 * r.smoothed.min()
    assert np.all(r.smoothed[:-1] <= 4 * np.minimum.accumulate(r.smoothed)[:-1])  # it stopped at the first one
    assert limit < r.lrs[-1] < 10 * limit
    assert r.suggestion is not None and r.suggestion < limit


def test_a_non_finite_loss_stops_the_sweep_without_the_threshold() -> None:
    x, y, _ = regression(dtype=np.float32)
    r = lr_range_test(nn.Linear(5, 1, rng=0), "mse", "sgd", (x, y), batch_size=None, min_lr=1e-3, max_lr=100.0,
                      steps=200, diverge_threshold=None)  # fmt: skip
    assert r.stopped_early and r.steps_run < 200
    assert r.reason.startswith("diverged: the loss became") and ("inf" in r.reason or "nan" in r.reason)
    assert np.all(np.isfinite(r.losses)) and np.all(np.isfinite(r.smoothed))


def test_the_callers_model_and_loader_are_unchanged_and_the_loader_cycles() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)).astype(np.float32), rng.integers(0, 3, size=40)
    model = nn.mlp(6, (8,), 3, dropout=0.2, seed=0)
    before = model.params.copy()
    model.eval()
    loader = Loader((x, y), 16, seed=3)  # 3 batches per epoch: 25 steps need 9 epochs
    state = loader.state()
    r = lr_range_test(model, "cross_entropy", "momentum", loader, steps=25, max_lr=1.0)
    assert r.steps_run == 25 and not r.stopped_early
    np.testing.assert_array_equal(model.params, before)
    assert not model.training and loader.state() == state
    # The same sweep from the (x, y) pair with the loader's seed and batch size sees the same batches.
    again = lr_range_test(model, "cross_entropy", "momentum", (x, y), batch_size=16, seed=3, steps=25, max_lr=1.0)
    np.testing.assert_array_equal(again.losses, r.losses)


def test_a_factory_and_a_name_give_the_same_sweep() -> None:
    x, y, _ = regression()
    model = nn.Linear(5, 1, rng=0, dtype=np.float64)
    kw = {"batch_size": 16, "steps": 30, "min_lr": 1e-4, "max_lr": 1.0}
    by_name = lr_range_test(model, "mse", "sgd", (x, y), optimizer_args={"momentum": 0.5}, **kw)
    by_factory = lr_range_test(model, "mse", lambda lr: dc.optim.sgd(lr=lr, momentum=0.5), (x, y), **kw)
    np.testing.assert_array_equal(by_name.losses, by_factory.losses)
    plain = lr_range_test(model, "mse", "sgd", (x, y), **kw)
    assert not np.array_equal(plain.losses, by_name.losses)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_lr": 1.0, "max_lr": 0.1}, r"max_lr must be greater than min_lr \(1\), got 0.1"),
        ({"min_lr": 0.0}, r"min_lr must be"),
        ({"max_lr": -1.0}, r"max_lr must be"),
        ({"steps": 9}, r"steps must be"),
        ({"beta": 1.0}, r"beta must be"),
        ({"diverge_threshold": 1.0}, r"diverge_threshold must be"),
        ({"optimizer": "frob"}, r"unknown optimizer 'frob'; valid optimizers: sgd, momentum"),
        ({"optimizer_args": {"lr": 0.1}}, r"optimizer_args must not set lr"),
        ({"optimizer_args": {"frob": 1}}, r"bad optimizer_args for 'sgd'"),
    ],
)
def test_bad_arguments_are_one_clear_error(kwargs, message) -> None:
    x, y, _ = regression()
    optimizer = kwargs.pop("optimizer", "sgd")
    with pytest.raises(ParameterError, match=message):
        lr_range_test(nn.Linear(5, 1, rng=0), "mse", optimizer, (x, y), **kwargs)


@pytest.fixture(scope="module")
def mnist1d():
    cfg = ex.make_config({"seed": 0, "hidden": [64]})  # a small MLP keeps the test fast
    train, val, _ = ex.load_data(cfg)
    return cfg, train, val


@pytest.mark.parametrize(("name", "low", "high"), [("sgd", 1e-3, 1.0), ("adam", 1e-4, 1e-1)])
def test_the_suggestion_on_mnist1d_is_sensible_and_trains_better_than_min_lr(mnist1d, name, low, high) -> None:
    cfg, train, val = mnist1d
    r = lr_range_test(ex.build_model(cfg, train), "cross_entropy", name, train, steps=100, seed=0)
    assert r.suggestion is not None and low < r.suggestion < high
    assert r.suggestion < r.min_loss_lr  # the steepest descent comes before the minimum

    def val_loss(lr: float) -> float:
        trainer = Trainer(ex.build_model(cfg, train), "cross_entropy", getattr(dc.optim, name)(lr=lr), seed=0)
        trainer.fit(train, epochs=3, batch_size=128)
        return trainer.evaluate(val)["loss"]

    at_suggestion, at_min = val_loss(r.suggestion), val_loss(r.min_lr)
    assert np.isfinite(at_suggestion) and at_suggestion < at_min - 0.3


def test_the_plot_is_a_png_with_the_curve_and_the_suggestion(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    x, y, _ = regression()
    r = lr_range_test(nn.Linear(5, 1, rng=0, dtype=np.float64), "mse", "sgd", (x, y), batch_size=None,
                      min_lr=1e-3, max_lr=100.0, steps=200)  # fmt: skip
    out = tmp_path / "sub" / "lr.png"
    fig = plot_lr_find(r, out, dpi=50)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(out)[..., :3]
    assert img.shape[:2] == (250, 400)
    assert img.std() > 0.05  # not blank
    red = np.array([0xD6, 0x27, 0x28]) / 255  # C3, the suggestion's line
    assert np.count_nonzero(np.abs(img - red).max(axis=-1) < 0.1) > 20
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert any("suggested lr" in t.get_text() for t in ax.get_legend().get_texts())
    with pytest.raises(ParameterError, match="is a directory"):
        plot_lr_find(r, tmp_path)
