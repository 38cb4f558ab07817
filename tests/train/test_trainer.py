"""The training loop: equality with a torch loop, resume, telemetry and callbacks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import descend as dc
from descend import nn
from descend.train import (
    CheckpointError,
    EarlyStopping,
    ReduceLROnPlateau,
    TerminateOnNaN,
    Trainer,
    load_checkpoint,
    read_metrics,
)


def _data(n=256, d=12, k=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=(d, k)).astype(np.float32)
    y = (x @ w + 0.5 * rng.normal(size=(n, k))).argmax(axis=1).astype(np.int64)
    return x, y


def _model(dropout=0.0, seed=0):
    return nn.mlp(12, hidden=(32, 16), out=4, dropout=dropout, seed=seed)


def test_one_epoch_equals_a_torch_training_loop_with_the_same_batches() -> None:
    torch = pytest.importorskip("torch")
    x, y = _data()
    model = _model()
    tnet = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(12, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 4),
    )
    tnet.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
    trainer = Trainer(model, "cross_entropy", dc.optim.sgd(lr=0.1, momentum=0.9), seed=3)
    trainer.fit((x, y), epochs=2, batch_size=32)
    opt = torch.optim.SGD(tnet.parameters(), lr=0.1, momentum=0.9)
    loader = dc.data.Loader((x, y), 32, seed=3)
    for _ in range(2):
        for xb, yb in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(tnet(torch.from_numpy(xb.copy())), torch.from_numpy(yb.copy())).backward()
            opt.step()
    ours = model.state_dict()
    for k, v in tnet.state_dict().items():
        np.testing.assert_allclose(ours[k], v.numpy(), rtol=2e-4, atol=2e-5, err_msg=k)
    assert trainer.step == 16


def test_run_directory_metrics_and_checkpoint(tmp_path) -> None:
    x, y = _data()
    trainer = Trainer(_model(), "cross_entropy", dc.optim.adam(lr=1e-2), run_dir=tmp_path, seed=1)
    hist = trainer.fit((x, y), (x[:64], y[:64]), epochs=3, batch_size=64, config={"note": "test"})
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [int(r["step"]) for r in rows] == [4, 8, 12]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "grad_norm", "grad_norm/1", "update_ratio/5"):
        assert key in rows[0], key
        assert np.isfinite(float(rows[-1][key])), key
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"]), "training did not reduce the loss"
    assert hist["val_accuracy"] == [float(r["val_accuracy"]) for r in rows]
    arrays, meta = load_checkpoint(tmp_path / "checkpoint")
    assert meta["epoch"] == 3 and meta["step"] == 12
    np.testing.assert_array_equal(arrays["model/1.weight"], trainer.model.state_dict()["1.weight"])
    assert (tmp_path / "config.json").read_text().strip().startswith("{")


def test_resume_after_an_interruption_is_bitwise_identical(tmp_path) -> None:
    x, y = _data()
    full = Trainer(_model(dropout=0.2), "cross_entropy", dc.optim.adamw(lr=1e-2), run_dir=tmp_path / "a", seed=5)
    full.fit((x, y), epochs=4, batch_size=50)
    part = Trainer(_model(dropout=0.2), "cross_entropy", dc.optim.adamw(lr=1e-2), run_dir=tmp_path / "b", seed=5)
    part.fit((x, y), epochs=2, batch_size=50)
    again = Trainer(_model(dropout=0.2), "cross_entropy", dc.optim.adamw(lr=1e-2), run_dir=tmp_path / "b", seed=5)
    again.fit((x, y), epochs=4, batch_size=50, resume=True)
    np.testing.assert_array_equal(again.model.params, full.model.params)
    assert again.step == full.step
    a = read_metrics(tmp_path / "a" / "metrics.csv")
    b = read_metrics(tmp_path / "b" / "metrics.csv")
    assert [r["loss"] for r in a] == [r["loss"] for r in b]


SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import descend as dc
    from descend import nn
    from descend.train import Trainer, Callback
    from tests.train.test_trainer import _data, _model

    class Kill(Callback):
        def on_batch_end(self, trainer, step, logs):
            if step == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    x, y = _data()
    t = Trainer(_model(dropout=0.2), "cross_entropy", dc.optim.adam(lr=1e-2), run_dir=sys.argv[1], seed=9,
                callbacks=[Kill()])
    t.fit((x, y), epochs=5, batch_size=40, resume=os.path.exists(os.path.join(sys.argv[1], "checkpoint")))
    """
)


def test_resume_after_sigkill_mid_epoch_is_bitwise_identical(tmp_path) -> None:
    x, y = _data()
    ref = Trainer(_model(dropout=0.2), "cross_entropy", dc.optim.adam(lr=1e-2), run_dir=tmp_path / "ref", seed=9)
    ref.fit((x, y), epochs=5, batch_size=40)
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    # 7 batches per epoch: step 17 is in the middle of epoch 3, after the checkpoint of epoch 2.
    proc = subprocess.run([sys.executable, str(script), str(run), "17"], env=env, capture_output=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    _, meta = load_checkpoint(run / "checkpoint")
    assert meta["epoch"] == 2
    assert len(read_metrics(run / "metrics.csv")) == 2
    resumed = Trainer(_model(dropout=0.2), "cross_entropy", dc.optim.adam(lr=1e-2), run_dir=run, seed=9)
    resumed.fit((x, y), epochs=5, batch_size=40, resume=True)
    np.testing.assert_array_equal(resumed.model.params, ref.model.params)
    assert [r["loss"] for r in read_metrics(run / "metrics.csv")] == [
        r["loss"] for r in read_metrics(tmp_path / "ref" / "metrics.csv")
    ]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[: len(b) // 2], "truncated or corrupt"),
        (lambda b: b"not a zip file at all", "truncated or corrupt"),
        (lambda b: b"", "truncated or corrupt"),
    ],
)
def test_a_damaged_checkpoint_gives_a_clear_error(tmp_path, mutate, message) -> None:
    x, y = _data()
    t = Trainer(_model(), "cross_entropy", dc.optim.sgd(lr=0.1), run_dir=tmp_path)
    t.fit((x, y), epochs=1, batch_size=64)
    path = tmp_path / "checkpoint"
    path.write_bytes(mutate(path.read_bytes()))
    t2 = Trainer(_model(), "cross_entropy", dc.optim.sgd(lr=0.1), run_dir=tmp_path)
    with pytest.raises(CheckpointError, match=message):
        t2.fit((x, y), epochs=2, batch_size=64, resume=True)


def test_a_checkpoint_of_another_optimizer_is_refused(tmp_path) -> None:
    x, y = _data()
    Trainer(_model(), "cross_entropy", dc.optim.sgd(lr=0.1), run_dir=tmp_path).fit((x, y), epochs=1)
    t = Trainer(_model(), "cross_entropy", dc.optim.adam(lr=0.1), run_dir=tmp_path)
    with pytest.raises(CheckpointError, match="does not fit this model and optimizer"):
        t.fit((x, y), epochs=2, resume=True)


def test_early_stopping_restores_the_best_weights() -> None:
    x, y = _data()
    t = Trainer(
        _model(),
        "cross_entropy",
        dc.optim.sgd(lr=0.5, momentum=0.9),
        callbacks=[EarlyStopping("val_loss", patience=2, restore_best_weights=True)],
    )
    # Validate on a tiny noisy subset so val_loss stops improving early.
    hist = t.fit((x[:200], y[:200]), (x[200:], y[200:]), epochs=60, batch_size=16)
    es = t.callbacks[0]
    assert es.stopped_epoch is not None and len(hist) < 60
    best_epoch = int(np.argmin(hist["val_loss"]))
    assert es.best_epoch == best_epoch
    assert t.evaluate((x[200:], y[200:]))["loss"] == pytest.approx(hist["val_loss"][best_epoch], rel=1e-5)


def test_reduce_lr_on_plateau_scales_the_learning_rate() -> None:
    x, y = _data()
    cb = ReduceLROnPlateau("loss", factor=0.5, patience=0, threshold=10.0)  # never "improves" by 1000 %
    t = Trainer(_model(), "cross_entropy", dc.optim.sgd(lr=0.1), callbacks=[cb])
    hist = t.fit((x, y), epochs=4, batch_size=64)
    # The first metric always becomes the best; each later epoch is "not better" and halves the lr.
    np.testing.assert_allclose(hist["lr"], [0.1, 0.1, 0.05, 0.025])


def test_resume_restores_callback_state_even_with_an_extra_callback(tmp_path) -> None:
    import io

    from descend.train import ProgressBar

    x, y = _data()

    def plateau():
        return ReduceLROnPlateau("loss", factor=0.5, patience=0, threshold=10.0)

    full = Trainer(_model(), "cross_entropy", dc.optim.sgd(lr=0.1), callbacks=[plateau()], run_dir=tmp_path / "a")
    full.fit((x, y), epochs=4, batch_size=64)
    part = Trainer(_model(), "cross_entropy", dc.optim.sgd(lr=0.1), callbacks=[plateau()], run_dir=tmp_path / "b")
    part.fit((x, y), epochs=2, batch_size=64)
    extra = [ProgressBar(stream=io.StringIO()), plateau()]  # a display added on resume shifts no state
    again = Trainer(_model(), "cross_entropy", dc.optim.sgd(lr=0.1), callbacks=extra, run_dir=tmp_path / "b")
    hist = again.fit((x, y), epochs=4, batch_size=64, resume=True)
    np.testing.assert_allclose(hist["lr"], [0.1, 0.1, 0.05, 0.025])
    np.testing.assert_array_equal(again.model.params, full.model.params)


def test_terminate_on_nan_stops_a_diverging_run() -> None:
    x, y = _data()
    t = Trainer(_model(), "cross_entropy", dc.optim.sgd(lr=1e6), callbacks=[TerminateOnNaN()])
    with np.errstate(all="ignore"):
        hist = t.fit((x, y), epochs=5, batch_size=64)
    assert t.diverged and len(hist) == 1


def test_l2_penalty_is_reported_and_acts_on_weights_only() -> None:
    x, y = _data()
    model = _model()
    w0 = model.params.copy()
    t = Trainer(model, "cross_entropy", dc.optim.sgd(lr=0.0), l2=0.1)
    hist = t.fit((x, y), epochs=1, batch_size=None)
    mask = model.decay_mask()
    expected = 0.5 * 0.1 * float(np.sum(mask * w0.astype(np.float64) ** 2))
    assert hist["penalty"][0] == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(model.grads[mask == 0] - t.model.grads[mask == 0], 0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, r"fit: epochs must be an integer in \[1, inf\), got 0"),
        ({"batch_size": 0}, r"fit: batch_size must be an integer in \[1, inf\), got 0"),
        ({"resume": True}, "resume=True needs a run_dir"),
    ],
)
def test_fit_validates_its_arguments(kwargs, message) -> None:
    x, y = _data()
    t = Trainer(_model(), "cross_entropy", dc.optim.sgd(lr=0.1))
    with pytest.raises(dc.errors.ParameterError, match=message):
        t.fit((x, y), **kwargs)
