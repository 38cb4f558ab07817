"""Sharpness tracking and the noise scale during training: exact values, no effect on training, resume."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import descend as dc
from descend.diagnostics.callbacks import NoiseScaleLogger, SharpnessTracker, read_rows
from descend.errors import ParameterError
from descend.train import experiment as ex
from tests.diagnostics.conftest import blobs, tanh_mlp
from tests.diagnostics.twin import exact_hessian, loss_of_flat
from tests.helpers import blobs as blobs_file


def _fit(callbacks, steps=12):
    x, y = blobs(40, 4)
    model = tanh_mlp()
    trainer = dc.Trainer(model, "cross_entropy", dc.optim.sgd(lr=0.5), callbacks=callbacks)
    trainer.fit((x, y), epochs=steps, batch_size=None)
    return model, trainer, x, y


def test_tracked_sharpness_is_the_top_eigenvalue_and_training_is_unchanged():
    tracker = SharpnessTracker(4, iterations=60, tol=1e-10)
    model, _, x, y = _fit([tracker])
    plain, _, _, _ = _fit([])
    assert np.array_equal(model.params, plain.params)  # measuring does not change training
    assert [r["step"] for r in tracker.rows] == [4, 8, 12]
    last = tracker.rows[-1]
    lam = np.linalg.eigvalsh(exact_hessian(loss_of_flat(model, x, y), model.params.astype(np.float64)))
    assert last["sharpness"] == pytest.approx(lam[-1], rel=1e-6)
    assert last["threshold"] == pytest.approx(2 / 0.5)
    assert "preconditioned_sharpness" not in last  # plain SGD has no preconditioner


def test_adam_runs_track_the_preconditioned_sharpness():
    x, y = blobs(40, 4)
    model = tanh_mlp()
    tracker = SharpnessTracker(5, iterations=60, tol=1e-10, betas=(0.9, 0.99), eps=1e-8)
    tx = dc.optim.adam(lr=0.01, betas=(0.9, 0.99), eps=1e-8)
    trainer = dc.Trainer(model, "cross_entropy", tx, callbacks=[tracker])
    trainer.fit((x, y), epochs=5, batch_size=None)
    row = tracker.rows[-1]
    h = exact_hessian(loss_of_flat(model, x, y), model.params.astype(np.float64))
    from descend.diagnostics import adam_preconditioner

    p = adam_preconditioner(trainer.opt_state, (0.9, 0.99), 1e-8, [q.name for q in model.layout])
    expected = np.max(np.linalg.eigvals(h / p[:, None]).real)
    assert row["preconditioned_sharpness"] == pytest.approx(expected, rel=1e-6)
    assert row["adam_threshold"] == pytest.approx(38 / 0.01)


def test_noise_logger_writes_one_value_per_epoch():
    logger = NoiseScaleLogger(small=4, big=32, draws=2)
    _fit([logger], steps=3)
    assert [r["epoch"] for r in logger.rows] == [1, 2, 3]
    assert all(r["b_simple"] > 0 for r in logger.rows)


def test_run_with_track_sharpness_writes_csvs_and_resumes_exactly(tmp_path):
    data = blobs_file(tmp_path / "blobs.npz", n=120)
    cfg = {"dataset": str(data), "hidden": [8], "epochs": 2, "batch_size": 32, "track_sharpness": 2}
    ex.run(cfg, tmp_path / "whole")
    rows = read_rows(tmp_path / "whole" / "sharpness.csv")
    assert [int(r["step"]) for r in rows] == [2, 4, 6]  # 86 training examples / 32: 3 steps per epoch
    assert all(r["preconditioned_sharpness"] > 0 for r in rows)  # adam, the default optimizer
    noise = read_rows(tmp_path / "whole" / "noise_scale.csv")
    assert [int(r["epoch"]) for r in noise] == [1, 2]
    # Interrupted after epoch 1 and resumed: the same rows (warm starts are in the checkpoint).
    ex.run({**cfg, "epochs": 1}, tmp_path / "cut")
    with (tmp_path / "cut" / "sharpness.csv").open("a") as f:
        f.write("99,3,0.001,1.0,2")  # a row torn by a crash after the checkpoint: dropped on resume
    ex.run({"epochs": 2}, tmp_path / "cut", resume=True)

    def cells(path):
        with path.open() as f:
            return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]

    assert cells(tmp_path / "cut" / "sharpness.csv") == cells(tmp_path / "whole" / "sharpness.csv")
    assert cells(tmp_path / "cut" / "noise_scale.csv") == cells(tmp_path / "whole" / "noise_scale.csv")


def test_track_sharpness_is_validated():
    with pytest.raises(ParameterError, match=r"config: track_sharpness must be an integer in \[1, inf\), got 0"):
        ex.make_config({"track_sharpness": 0})
    with pytest.raises(ParameterError, match=r"SharpnessTracker: every must be an integer in \[1, inf\), got 2.5"):
        SharpnessTracker(2.5)
