"""descend compare under faults: a SIGKILLed comparison leaves no worker behind and its rerun ends exactly like
an uninterrupted one; every run directory has one writer; a plan that cannot run writes nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from descend.cli.main import main
from descend.errors import DataError, ParameterError
from descend.lab import compare as C
from descend.train import lock, read_metrics
from tests.helpers import blobs, csv_rows, wait_for
from tests.train.test_lock import _start_holder, _stop


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return blobs(tmp_path_factory.mktemp("data") / "blobs.npz")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    tree, out, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _without_time(root: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for run in sorted(root.glob("runs/*/*/*")):
        summary = json.loads((run / "summary.json").read_text())
        summary.pop("wall_time")
        rows = [{k: v for k, v in r.items() if k != "time"} for r in read_metrics(run / "metrics.csv")]
        out[run.relative_to(root).as_posix()] = (summary, rows)
    return out


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_killed_comparison_leaves_no_worker_and_its_rerun_is_exact(tmp_path, data, capsys) -> None:
    """``descend compare ... --out X &`` then ``kill -9`` the parent: its workers die with it (they used to live
    on and write the run directories a rerun writes too); the same command again finishes the comparison with
    one metrics row per epoch and results bit for bit those of an uninterrupted comparison."""
    epochs = 400
    argv = ["compare", "--dataset", str(data), "--hidden", "16", "--epochs", str(epochs), "--batch-size", "32",
            "--optimizers", "sgd,adam", "--lrs", "sgd=0.05", "--lrs", "adam=0.01", "--seeds", "1",
            "--workers", "2", "--quiet", "--no-report", "--out", str(tmp_path / "cmp")]  # fmt: skip
    log = (tmp_path / "log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "descend", *argv],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    workers: list[int] = []
    try:
        runs = [tmp_path / "cmp" / "runs" / "sgd" / "lr=5e-02" / "seed=0", tmp_path / "cmp/runs/adam/lr=1e-02/seed=0"]
        wait_for(lambda: all(csv_rows(r / "metrics.csv") >= 2 for r in runs), 60, "both runs to start")
        workers = [p for p in descendants(proc.pid) if lock.pid_alive(p)]
        holders = {lock.owner(r)["pid"] for r in runs}
        assert holders <= set(workers) and len(holders) == 2, (holders, workers)  # each run locked by its worker
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert all(csv_rows(r / "metrics.csv") < epochs for r in runs), "the runs ended before the kill"
        wait_for(lambda: not any(lock.pid_alive(p) for p in workers), 5, f"workers {workers} to die with the parent")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        log.close()
        for pid in workers:  # never leave one behind, even when the test fails
            if lock.pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    # The same command again, at once: it finishes the comparison.
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    for run in runs:
        assert [r["epoch"] for r in read_metrics(run / "metrics.csv")] == list(range(1, epochs + 1))
        assert not (run / lock.LOCK_NAME).exists()
    ref = [*argv[:-1], str(tmp_path / "ref")]
    assert main(ref) == 0
    assert _without_time(tmp_path / "ref") == _without_time(tmp_path / "cmp")


WATCHED = textwrap.dedent(
    """
    import os, subprocess, sys, time
    if sys.argv[1] == "parent":  # start the worker stand-in, say its pid, wait to be killed
        child = subprocess.Popen([sys.executable, __file__, "child", sys.argv[2], sys.argv[3]])
        print(child.pid, flush=True)
        time.sleep(60)
    else:
        from descend.lab import workers
        if sys.argv[2] == "watchdog":  # the portable fallback alone
            import threading
            threading.Thread(target=workers._watch_parent, args=(os.getppid(), 0.05), daemon=True).start()
        else:  # prctl alone: the watchdog looks only once an hour
            workers.die_with_parent(os.getppid(), interval=3600)
        open(sys.argv[3], "w").close()  # armed
        time.sleep(60)
    """
)


@pytest.mark.parametrize("how", ["watchdog", "prctl"])
def test_a_worker_dies_with_its_parent(tmp_path, how) -> None:
    if how == "prctl" and not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    script = tmp_path / "watched.py"
    script.write_text(WATCHED)
    armed = tmp_path / "armed"
    parent = subprocess.Popen(
        [sys.executable, str(script), "parent", how, str(armed)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    child = 0
    try:
        child = int(parent.stdout.readline())
        wait_for(armed.exists, 60, f"{how}: the child to import descend and arm itself")
        assert lock.pid_alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        wait_for(lambda: not lock.pid_alive(child), 5, f"{how}: the child to die with its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.wait(timeout=10)
        parent.stdout.close()
        if child and lock.pid_alive(child):
            os.kill(child, signal.SIGKILL)


# ------------------------------------------------------------------------------------- nothing written on error


def _toml(path: Path, data: Path, extra: str) -> Path:
    path.write_text(
        f'dataset = "{data}"\nhidden = [8]\nepochs = 1\nbatch_size = 32\noptimizers = ["sgd", "adam"]\n'
        f"seeds = [0]\n[grid]\nsgd = [0.05]\nadam = [0.01]\n{extra}"
    )
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[optimizer_args.adam]\nbetas = [0.9]\n", r"adam.*betas must be a pair of numbers, got \(?\[?0\.9"),
        ('schedule = "step"\n[schedule_args]\nstep_size = -1\n', r"step_size must be .*got -1"),
    ],
)
def test_a_plan_that_cannot_run_writes_nothing_and_the_fixed_one_runs(tmp_path, data, capsys, extra, message) -> None:
    if extra.startswith("schedule"):  # top-level keys go before the tables
        text = extra.split("[", 1)
        bad = _toml(tmp_path / "bad.toml", data, "")
        bad.write_text(text[0] + bad.read_text() + "[" + text[1])
    else:
        bad = _toml(tmp_path / "bad.toml", data, extra)
    out = tmp_path / "cmp"
    code = main(["compare", "--config", str(bad), "--workers", "1", "--quiet", "--no-report", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert re.search(message, err), err
    assert not out.exists(), sorted(p.name for p in out.iterdir())
    good = _toml(tmp_path / "good.toml", data, "")
    code = main(["compare", "--config", str(good), "--workers", "1", "--quiet", "--no-report", "--out", str(out)])
    assert code == 0, capsys.readouterr().err


def test_a_missing_data_set_is_reported_before_anything_is_written(tmp_path) -> None:
    plan = C.make_plan({"dataset": str(tmp_path / "missing.npz"), "epochs": 1}, optimizers=["sgd"], grid=[0.1], seeds=1)
    with pytest.raises(DataError, match=r"missing\.npz"):
        C.run_comparison(plan, tmp_path / "cmp", workers=1)
    assert not (tmp_path / "cmp").exists()


def test_make_plan_builds_every_optimizer(data) -> None:
    with pytest.raises(ParameterError, match=r"compare: adam at lr 1e-04: adam: betas must be a pair"):
        C.make_plan({"dataset": str(data)}, optimizers=["sgd", "adam"], optimizer_args={"adam": {"betas": [0.9]}})


def test_a_hand_made_plan_is_checked_like_make_plans(tmp_path, data) -> None:
    plan = C.make_plan({"dataset": str(data), "epochs": 1}, optimizers=["adam"], grid=[1e-3], seeds=1)
    plan["optimizer_args"] = {"adam": {"betas": [0.9]}}
    with pytest.raises(ParameterError, match="betas must be a pair"):
        C.run_comparison(plan, tmp_path / "cmp", workers=1)
    assert not (tmp_path / "cmp").exists()


def test_a_comparison_in_use_is_refused_with_its_owner(tmp_path, data) -> None:
    plan = C.make_plan({"dataset": str(data), "hidden": [8], "epochs": 1}, optimizers=["sgd"], grid=[0.1], seeds=1)
    holder = _start_holder(tmp_path / "cmp")
    try:
        with pytest.raises(lock.LockError, match=rf"comparison directory .*cmp is in use by pid {holder.pid} \(test"):
            C.run_comparison(plan, tmp_path / "cmp", workers=1)
    finally:
        _stop(holder)
    C.run_comparison(plan, tmp_path / "cmp", workers=1)
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == ["comparison.json", "experiment.toml", "runs"]
