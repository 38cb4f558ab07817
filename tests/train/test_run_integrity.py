"""Run directories: nothing lost, nothing confusing.

One writer at a time (a second ``descend train`` on a directory in use is refused, the owner named; a
SIGKILLed writer's lock is taken over), early stopping's best weights in the checkpoint, a changed
configuration refused on resume unless allowed by name, and ``--epochs`` changes only where the
schedule allows them (and recorded in ``config.json``)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from descend.cli.main import main
from descend.errors import DataError, ParameterError
from descend.train import Callback, load_checkpoint, lock, read_metrics
from descend.train import experiment as ex
from tests.helpers import blobs, csv_rows, wait_for


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return blobs(tmp_path_factory.mktemp("data") / "blobs.npz", n=240, features=5, spread=1.0)


def config(data: Path, **kw) -> dict:
    return {"dataset": str(data), "hidden": [16], "epochs": 4, "batch_size": 32, "lr": 1e-2, **kw}


class Interrupted(Exception):
    pass


class InterruptAt(Callback):
    """Stops the process's training at the start of epoch ``epoch`` (0-based), after that epoch's checkpoint:
    what the directory holds then is what a SIGKILL at that moment leaves."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        if epoch == self.epoch:
            raise Interrupted


def read_checkpoint_meta(path: Path) -> dict:
    return load_checkpoint(path)[1]


def interrupted_run(cfg: dict, out: Path, epoch: int) -> None:
    with pytest.raises(Interrupted):
        ex.run(cfg, out, callbacks=[InterruptAt(epoch)])
    assert read_checkpoint_meta(out / "checkpoint")["epoch"] == epoch


def metrics_without_time(out: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time"} for row in read_metrics(out / "metrics.csv")]


def summary_without_time(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("wall_time")
    return summary


def model_arrays(out: Path) -> dict[str, np.ndarray]:
    arrays, _ = load_checkpoint(out / "checkpoint")
    return {k: v for k, v in arrays.items() if k.startswith("model/")}


def assert_same_run(a: Path, b: Path) -> None:
    """Bit for bit the same results (wall times aside), and one metrics row per epoch."""
    assert summary_without_time(a) == summary_without_time(b)
    rows = metrics_without_time(b)
    assert rows == metrics_without_time(a)
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
    ma, mb = model_arrays(a), model_arrays(b)
    assert ma.keys() == mb.keys()
    for k in ma:
        np.testing.assert_array_equal(ma[k], mb[k], err_msg=k)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# ----------------------------------------------------------------------------------------------- one writer


@pytest.mark.slow
def test_a_second_writer_is_refused_and_a_killed_writer_resumed_exactly(tmp_path, data, capsys) -> None:
    """``descend train --out R &`` then at once ``descend train --resume R``: refused while the first writes;
    after a SIGKILL of the first, the resume takes the stale lock over and ends bit for bit like a run never
    interrupted, with one metrics row per epoch."""
    argv = ["train", "--quiet", "--dataset", str(data), "--hidden", "16", "--batch-size", "32", "--lr", "0.01"]
    epochs = 150
    run = tmp_path / "run"
    log = (tmp_path / "log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "descend", *argv, "--epochs", str(epochs), "--out", str(run)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        wait_for(lambda: csv_rows(run / "metrics.csv") >= 2, 60, "the first epochs")
        code = main(["train", "--quiet", "--resume", str(run)])
        err = capsys.readouterr().err
        assert code == 2
        owner = rf"run directory {re.escape(str(run))} is in use by pid {proc.pid} \(descend train, started "
        assert re.search(owner, err), err
        code = main([*argv, "--epochs", "3", "--out", str(run)])
        assert code == 2 and f"in use by pid {proc.pid}" in capsys.readouterr().err
        assert proc.poll() is None, "the run did not last long enough to be interrupted"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        log.close()
    done = read_checkpoint_meta(run / "checkpoint")["epoch"]
    assert 1 <= done < epochs
    assert (run / lock.LOCK_NAME).exists()  # left by the SIGKILL
    code = main(["train", "--quiet", "--resume", str(run)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"was locked by pid {proc.pid}" in err and "no longer running" in err
    assert not (run / lock.LOCK_NAME).exists()
    assert main([*argv, "--epochs", str(epochs), "--out", str(tmp_path / "ref")]) == 0
    assert_same_run(tmp_path / "ref", run)


def test_train_into_a_locked_directory_is_refused_and_leaves_it_alone(tmp_path, data, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from descend.train import lock; lock.acquire(sys.argv[1], "
         "'descend compare worker'); print('ok', flush=True); time.sleep(60)", str(run)],
        stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == b"ok"
        before = snapshot(run)
        code = main(["train", "--quiet", "--dataset", str(data), "--epochs", "1", "--out", str(run)])
        err = capsys.readouterr().err
        assert code == 2 and f"in use by pid {holder.pid} (descend compare worker" in err, err
        assert snapshot(run) == before
    finally:
        holder.kill()
        holder.wait(timeout=10)
        holder.stdout.close()


def test_a_failed_start_leaves_no_directory_and_no_lock(tmp_path) -> None:
    with pytest.raises(DataError, match="neither a built-in"):
        ex.run({"dataset": str(tmp_path / "missing.npz"), "epochs": 1}, tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------- early stopping

ES = {"lr": 0.1, "early_stopping": 3, "validation": 0.25, "epochs": 30}


def test_the_checkpoint_holds_the_weights_the_summary_reports(tmp_path, data) -> None:
    cfg = config(data, **ES)
    summary = ex.run(cfg, tmp_path / "run")
    assert summary["status"] == "stopped early"
    arrays, meta = load_checkpoint(tmp_path / "run" / "checkpoint")
    match = re.fullmatch(r"best \(epoch (\d+)\)", summary["checkpoint_weights"])
    assert match and int(match.group(1)) < summary["epochs"], summary["checkpoint_weights"]
    assert meta["weights"] == summary["checkpoint_weights"]
    # The model the checkpoint holds gives exactly the reported test metrics.
    train, _, test = ex.load_data(ex.make_config(cfg))
    model = ex.build_model(ex.make_config(cfg), train)
    model.load_state_dict({k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")})
    from descend.train import Trainer

    metrics = Trainer(model).evaluate((test.x, test.y))
    assert metrics["loss"] == summary["test_loss"] and metrics["accuracy"] == summary["test_accuracy"]
    # ... and the best epoch's weights are arrays of the npz (not JSON), beside the last epoch's.
    assert "callbacks/EarlyStopping#0/best_params" in arrays and "last/params" in arrays
    assert not np.array_equal(arrays["last/params"], model.params)
    np.testing.assert_array_equal(arrays["callbacks/EarlyStopping#0/best_params"], model.params)


def test_without_early_stopping_the_checkpoint_holds_the_last_weights(tmp_path, data) -> None:
    summary = ex.run(config(data, epochs=2), tmp_path / "run")
    assert summary["checkpoint_weights"] == "last"
    arrays, meta = load_checkpoint(tmp_path / "run" / "checkpoint")
    assert meta["weights"] == "last" and "last/params" not in arrays


@pytest.mark.parametrize("cut", ["after the best epoch", "before the stop", "after the last checkpoint"])
def test_an_early_stopped_run_resumed_after_a_kill_reports_the_same(tmp_path, data, cut) -> None:
    cfg = config(data, **ES)
    ref = ex.run(cfg, tmp_path / "ref")
    stop = ref["epochs"]
    best = int(re.fullmatch(r"best \(epoch (\d+)\)", ref["checkpoint_weights"]).group(1))
    assert best + 1 < stop, (best, stop)  # patience 3: two checkpoints between the best epoch and the stop
    if cut == "after the last checkpoint":  # killed after the final checkpoint, before summary.json
        ex.run(cfg, tmp_path / "run")
        (tmp_path / "run" / "summary.json").unlink()
    else:  # the best weights exist only in the checkpoint now
        interrupted_run(cfg, tmp_path / "run", best + 1 if cut == "after the best epoch" else stop - 1)
    ex.run(cfg, tmp_path / "run", resume=True)
    assert_same_run(tmp_path / "ref", tmp_path / "run")


# ------------------------------------------------------------------------------------------ changed config


def _edit(out: Path, **changes) -> None:
    doc = json.loads((out / "config.json").read_text())
    doc.update(changes)
    (out / "config.json").write_text(json.dumps(doc, indent=2))


def test_resume_refuses_an_edited_config_naming_the_changed_keys(tmp_path, data, capsys) -> None:
    run = tmp_path / "run"
    interrupted_run(config(data), run, 2)
    _edit(run, seed=7, lr=0.5)
    before = snapshot(run)
    with pytest.raises(ParameterError) as info:
        ex.run({}, run, resume=True)
    message = str(info.value)
    assert "lr: 0.01 -> 0.5" in message and "seed: 0 -> 7" in message and "--allow-change lr" in message, message
    assert snapshot(run) == before
    code = main(["train", "--quiet", "--resume", str(run)])
    assert code == 2 and "seed: 0 -> 7" in capsys.readouterr().err
    # A key given on the command line is a change too.
    _edit(run, seed=0, lr=0.01)
    before = snapshot(run)
    code = main(["train", "--quiet", "--resume", str(run), "--data-dir", "/elsewhere"])
    assert code == 2 and "--allow-change" in capsys.readouterr().err
    assert snapshot(run) == before


def test_allow_change_accepts_the_named_keys_and_records_them(tmp_path, data, capsys) -> None:
    cfg = config(data)
    ex.run(cfg, tmp_path / "ref")
    run = tmp_path / "run"
    interrupted_run(cfg, run, 2)
    _edit(run, data_dir=str(tmp_path / "moved"))
    with pytest.raises(ParameterError, match=r"data_dir: None -> '.*moved'"):
        ex.run({}, run, resume=True)
    ex.run({}, run, resume=True, allow_change=("data_dir",))
    saved = json.loads((run / "config.json").read_text())
    assert saved["data_dir"] == str(tmp_path / "moved")
    assert saved["changed"] == [{"key": "data_dir", "from": None, "to": str(tmp_path / "moved"), "at_epoch": 2}]
    assert read_checkpoint_meta(run / "checkpoint")["config"]["data_dir"] == str(tmp_path / "moved")
    ref = summary_without_time(tmp_path / "ref")
    got = summary_without_time(run)
    assert got.pop("config")["data_dir"] == str(tmp_path / "moved")
    ref.pop("config")
    assert got == ref
    # From the command line: the option together with --allow-change naming it.
    interrupted_run(cfg, tmp_path / "cli", 1)
    argv = ["--resume", str(tmp_path / "cli"), "--data-dir", "/d", "--allow-change", "data-dir"]
    code = main(["train", "--quiet", *argv])
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["data_dir"] == "/d"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--out", "{tmp}/new", "--allow-change", "data_dir"], r"--allow-change data_dir applies only with --resume"),
        (["--resume", "{tmp}/run", "--allow-change", "colour"], r"unknown configuration key 'colour'; valid keys: "),
        (["--resume", "{tmp}/run", "--allow-change", "epochs"], r"epochs has its own rule"),
    ],
)
def test_allow_change_misuse(tmp_path, data, capsys, argv, message) -> None:
    interrupted_run(config(data), tmp_path / "run", 1)
    before = snapshot(tmp_path / "run")
    code = main(["train", "--quiet", *[a.format(tmp=tmp_path) for a in argv]])
    err = capsys.readouterr().err
    assert code == 2 and re.search(message, err), err
    assert snapshot(tmp_path / "run") == before and not (tmp_path / "new").exists()


# ------------------------------------------------------------------------------------------- --epochs changes


def test_extending_a_constant_rate_run_equals_the_longer_run_and_is_recorded(tmp_path, data, capsys) -> None:
    ex.run(config(data, epochs=5), tmp_path / "ref")
    run = tmp_path / "run"
    ex.run(config(data, epochs=3), run)
    assert main(["train", "--quiet", "--resume", str(run), "--epochs", "5"]) == 0, capsys.readouterr().err
    saved = json.loads((run / "config.json").read_text())
    assert saved["epochs"] == 5 and saved["extended"] == [{"from": 3, "to": 5, "at_epoch": 3}]
    assert_same_run(tmp_path / "ref", run)


@pytest.mark.parametrize(
    ("schedule", "args", "reason"),
    [
        ("cosine", {}, "depends on the total number of epochs"),
        ("one-cycle", {}, "depends on the total number of epochs"),
        ("warmup-cosine", {}, "depends on the total number of epochs"),
        ("step", {}, "step_size defaults to epochs // 3"),
    ],
)
def test_a_length_dependent_schedule_cannot_change_length(tmp_path, data, schedule, args, reason) -> None:
    run = tmp_path / "run"
    interrupted_run(config(data, epochs=6, schedule=schedule, schedule_args=args), run, 3)
    before = snapshot(run)
    with pytest.raises(ParameterError) as info:
        ex.run({"epochs": 8}, run, resume=True)
    message = str(info.value)
    assert f"the {schedule!r} schedule from 6 to 8 epochs" in message and reason in message, message
    assert "start a new run with --epochs 8" in message
    assert snapshot(run) == before


def test_a_step_schedule_with_its_step_size_given_can_be_extended(tmp_path, data) -> None:
    cfg = config(data, schedule="step", schedule_args={"step_size": 2, "gamma": 0.5})
    ex.run({**cfg, "epochs": 5}, tmp_path / "ref")
    ex.run({**cfg, "epochs": 3}, tmp_path / "run")
    ex.run({"epochs": 5}, tmp_path / "run", resume=True)
    assert_same_run(tmp_path / "ref", tmp_path / "run")


def test_epochs_below_those_done_are_refused(tmp_path, data) -> None:
    run = tmp_path / "run"
    interrupted_run(config(data, epochs=6), run, 3)
    before = snapshot(run)
    with pytest.raises(ParameterError, match=r"epochs 2 is fewer than the 3 epochs this run has already done"):
        ex.run({"epochs": 2}, run, resume=True)
    assert snapshot(run) == before


def test_an_extension_cut_off_before_its_first_checkpoint_is_recorded_once(tmp_path, data) -> None:
    ex.run(config(data, epochs=5), tmp_path / "ref")
    run = tmp_path / "run"
    ex.run(config(data, epochs=3), run)
    with pytest.raises(Interrupted):
        ex.run({"epochs": 5}, run, resume=True, callbacks=[InterruptAt(3)])
    assert json.loads((run / "config.json").read_text())["epochs"] == 5
    assert not (run / "summary.json").exists()  # the 3-epoch summary no longer describes the run
    ex.run({}, run, resume=True)
    assert json.loads((run / "config.json").read_text())["extended"] == [{"from": 3, "to": 5, "at_epoch": 3}]
    assert_same_run(tmp_path / "ref", run)


@pytest.mark.parametrize("torn", ["1", "3,18,0.01,0.5e"])  # a row cut after "1" (of epoch 12), or mid-number
def test_a_torn_metrics_row_is_dropped_on_resume(tmp_path, data, torn) -> None:
    ex.run(config(data), tmp_path / "ref")
    run = tmp_path / "run"
    interrupted_run(config(data), run, 2)
    with (run / "metrics.csv").open("a") as f:
        f.write(torn)
    ex.run({}, run, resume=True)
    assert_same_run(tmp_path / "ref", run)


def test_a_run_written_before_data_normalization_resumes_with_its_data_unchanged(tmp_path, data) -> None:
    """config.json of a file data set written before the ``normalize`` key existed: that version did not
    normalize, so the run continues on the same, unnormalized data (not refused, not silently standardized)."""
    cfg = config(data, epochs=4, normalize="none")
    ex.run(cfg, tmp_path / "ref")
    run = tmp_path / "run"
    interrupted_run(cfg, run, 2)
    saved = json.loads((run / "config.json").read_text())
    del saved["normalize"]
    (run / "config.json").write_text(json.dumps(saved))
    ex.run({}, run, resume=True)
    assert_same_run(tmp_path / "ref", run)
