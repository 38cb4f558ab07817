"""descend compare on a Dask cluster (descend.lab.executors): a real scheduler and two workers on 127.0.0.1; a worker
SIGKILLed mid-run loses nothing and the results equal a local comparison bit for bit; a killed comparison's cluster
runs stop and its rerun is exact; a resubmitted run resumes from its checkpoint (its configuration hash checked);
and every misuse (no dask, a bad address, an unreachable scheduler, the other engine's option) is one clear error."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from descend.cli.main import main
from descend.errors import DescendError
from descend.lab import compare as C
from descend.lab import executors as X
from descend.lab import workers as W
from descend.train import lock, read_metrics
from descend.train.callbacks import Callback
from descend.train.checkpoint import read_checkpoint_meta
from tests.helpers import blobs, csv_rows, wait_for
from tests.lab.test_compare_faults import _without_time

EPOCHS = 300  # ~3 s a run: long enough to kill a worker in the middle of one
ARGS = ["--hidden", "16", "--epochs", str(EPOCHS), "--batch-size", "32", "--optimizers", "sgd,adam",
        "--lrs", "sgd=0.05,0.1", "--lrs", "adam=0.003,0.01", "--seeds", "2", "--quiet", "--no-report"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return blobs(tmp_path_factory.mktemp("data") / "blobs.npz")


def _argv(data: Path, out: Path, *extra: str) -> list[str]:
    return ["compare", "--dataset", str(data), *ARGS, *extra, "--out", str(out)]


def _model_arrays(root: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for run in sorted(root.glob("runs/*/*/*")):
        with np.load(run / "checkpoint", allow_pickle=False) as f:
            out[run.relative_to(root).as_posix()] = {k: f[k] for k in f.files if k.startswith("model/")}
    return out


def assert_same_results(a: Path, b: Path) -> None:
    """Every run's summary.json (less wall_time), metrics.csv (less time) and checkpoint model arrays, bit for bit."""
    runs_a, runs_b = _without_time(a), _without_time(b)
    assert runs_a.keys() == runs_b.keys()
    for run, (summary, rows) in runs_a.items():
        other_summary, other_rows = runs_b[run]
        differ = sorted(k for k in summary.keys() | other_summary.keys() if summary.get(k) != other_summary.get(k))
        assert not differ, (run, {k: (summary.get(k), other_summary.get(k)) for k in differ})
        assert rows == other_rows, (run, next(((x, y) for x, y in zip(rows, other_rows, strict=False) if x != y), None))
    arrays_a, arrays_b = _model_arrays(a), _model_arrays(b)
    assert arrays_a.keys() == arrays_b.keys() and len(arrays_a) == 6
    for run, arrays in arrays_a.items():
        assert arrays.keys() == arrays_b[run].keys() and arrays, run
        for name, value in arrays.items():
            assert value.dtype == arrays_b[run][name].dtype and value.tobytes() == arrays_b[run][name].tobytes(), (
                run, name)  # fmt: skip


# ----------------------------------------------------------------------------------------- misuse, no cluster


def test_the_scheduler_is_local_or_a_tcp_address(tmp_path, data, capsys) -> None:
    assert X.parse_scheduler(None) == X.parse_scheduler("local") == "local"
    assert X.parse_scheduler("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert X.parse_scheduler("tcp://[::1]:8786") == "tcp://[::1]:8786"
    for bad in ("10.0.0.5:8786", "http://host:8786", "tcp://", "tcp://host:port", "Local"):
        with pytest.raises(C.ParameterError, match=r"'local' .* or a Dask scheduler address tcp://HOST:PORT .*got"):
            X.parse_scheduler(bad)
    assert main(_argv(data, tmp_path / "cmp", "--scheduler", "10.0.0.5:8786")) == 2
    err = capsys.readouterr().err
    assert "--scheduler" in err and "tcp://HOST:PORT" in err and "got '10.0.0.5:8786'" in err, err
    assert not (tmp_path / "cmp").exists()


def test_without_dask_the_cluster_scheduler_exits_2_with_the_install_command(tmp_path, data, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    code = main(_argv(data, tmp_path / "cmp", "--scheduler", "tcp://127.0.0.1:8786"))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip().splitlines() == [
        "descend: error: descend compare --scheduler tcp://127.0.0.1:8786 needs Dask distributed, which is not "
        "installed here: pip install 'descend[cluster]'"
    ]
    assert not (tmp_path / "cmp").exists()
    with pytest.raises(DescendError, match=r"pip install 'descend\[cluster\]'"):  # the library says the same
        C.run_comparison(C.make_plan({"dataset": str(data)}, optimizers=["sgd"], grid=[0.1], seeds=1),
                         tmp_path / "lib", scheduler="tcp://127.0.0.1:8786")  # fmt: skip
    assert not (tmp_path / "lib").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], r"workers \(--workers\) sizes the local process "
         r"pool; on a Dask cluster \(tcp://127.0.0.1:8786\) .* --max-concurrent N; got workers=2"),
        (["--max-concurrent", "2"], r"max_concurrent \(--max-concurrent\) limits the runs sent to a Dask cluster .*"
         r"got 2 with the local scheduler"),
    ],
)  # fmt: skip
def test_each_engine_option_only_with_its_engine(tmp_path, data, capsys, extra, message) -> None:
    code = main(_argv(data, tmp_path / "cmp", *extra))
    err = capsys.readouterr().err
    assert code == 2 and re.search(message, err), err
    assert not (tmp_path / "cmp").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_is_reported_and_nothing_is_written(tmp_path, data, capsys, monkeypatch) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setattr(X, "CONNECT_TIMEOUT", 1.0)
    address = f"tcp://127.0.0.1:{_closed_port()}"
    code = main(_argv(data, tmp_path / "cmp", "--scheduler", address))
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"descend: error: compare: cannot reach the Dask scheduler at {address} within 1 s" in err, err
    assert f"dask worker {address}" in err and "--scheduler local" in err
    assert not (tmp_path / "cmp").exists()


# ---------------------------------------------------------------------------------- a resubmitted run resumes


class _Die(Callback):
    """Stands for a worker killed at the start of epoch ``at`` (epochs 1..at are written and checkpointed)."""

    def __init__(self, at: int):
        self.at = at

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        if epoch == self.at:
            raise KeyboardInterrupt("killed")


class _Began(Callback):
    def __init__(self):
        self.at: list[int] = []

    def on_train_begin(self, trainer) -> None:
        self.at.append(trainer.epoch)


def _metrics(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in read_metrics(run / "metrics.csv")]


def _snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(directory.iterdir())}


@pytest.fixture
def specs(data) -> list[C.RunSpec]:
    plan = C.make_plan({"dataset": str(data), "hidden": [8], "epochs": 6, "batch_size": 32},
                       optimizers=["adam"], grid=[1e-3, 1e-2], seeds=1)  # fmt: skip
    return C.planned_runs(plan)


def test_a_resubmitted_run_resumes_from_its_checkpoint_and_a_finished_one_is_returned(tmp_path, specs) -> None:
    spec = specs[0]
    ref, run = tmp_path / "ref", tmp_path / "run"
    W.train(spec.relpath, str(ref), spec.config)
    with pytest.raises(KeyboardInterrupt):  # the first attempt dies at epoch 4
        W.train(spec.relpath, str(run), spec.config, callbacks=[_Die(3)])
    assert csv_rows(run / "metrics.csv") == 3 and not (run / "summary.json").exists()
    assert read_checkpoint_meta(run / "checkpoint")["config_sha256"] == spec.run_id == C.run_id(spec.config)
    began = _Began()
    summary = W.train(spec.relpath, str(run), spec.config, callbacks=[began])  # resubmitted
    assert began.at == [3]  # it continued from the checkpoint of epoch 3, not from scratch
    a, b = (json.loads((d / "summary.json").read_text()) for d in (ref, run))
    assert {k: v for k, v in a.items() if k != "wall_time"} == {k: v for k, v in b.items() if k != "wall_time"}
    assert summary == b
    assert _metrics(ref) == _metrics(run) and [r["epoch"] for r in _metrics(run)] == [1, 2, 3, 4, 5, 6]
    with np.load(ref / "checkpoint") as f, np.load(run / "checkpoint") as g:
        assert [k for k in f.files if k.startswith("model/")] and all(
            np.array_equal(f[k], g[k]) for k in f.files if k.startswith("model/"))  # fmt: skip
    # Resubmitted once more (a duplicate retry): the finished run's summary comes back, nothing is touched.
    before = _snapshot(run)
    again = _Began()
    assert W.train(spec.relpath, str(run), spec.config, callbacks=[again]) == summary
    assert again.at == [] and _snapshot(run) == before


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path, specs) -> None:
    first, second = specs
    W.train(first.relpath, str(tmp_path / "a"), first.config)
    run = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        W.train(second.relpath, str(run), second.config, callbacks=[_Die(2)])
    (run / "checkpoint").write_bytes((tmp_path / "a" / "checkpoint").read_bytes())  # another run's checkpoint
    before = _snapshot(run)
    with pytest.raises(C.ComparisonError) as e:
        W.train(second.relpath, str(run), second.config)
    assert str(e.value) == (
        f"{run / 'checkpoint'}: the checkpoint of another run (configuration hash {first.run_id[:12]}, this run's "
        f"{second.run_id[:12]}); the run directory was edited or copied: delete {run} to train this run again"
    )
    assert first.run_id != second.run_id and _snapshot(run) == before


# ------------------------------------------------------------------------------------ progress and throttling


def test_progress_from_the_run_directories_says_epoch_loss_and_where(tmp_path) -> None:
    run = tmp_path / "runs" / "sgd" / "lr=1e-01" / "seed=0"
    now = [0.0]
    watch = X.RunWatcher(interval=0.5, clock=lambda: now[0])
    runs = [("runs/sgd/lr=1e-01/seed=0", str(run), 10)]
    assert watch.poll(runs) == []  # not started: nothing to say
    with lock.hold(run, "test worker"):
        (run / "metrics.csv").write_text("epoch,step,time,lr,loss\n1,8,0.1,0.1,0.9\n2,16,0.2,0.1,0.5\n3,2")
        now[0] = 1.0
        where = f"{socket.gethostname()}:{os.getpid()}"
        assert watch.poll(runs) == [("runs/sgd/lr=1e-01/seed=0", "epoch", 2.0, 10, 0.5, where)]  # the torn row: not yet
        now[0] = 1.2
        with (run / "metrics.csv").open("a") as f:
            f.write(",0.3,0.1,0.25\n")
        assert watch.poll(runs) == []  # polled at most every 0.5 s
        now[0] = 2.0
        assert watch.poll(runs) == [("runs/sgd/lr=1e-01/seed=0", "epoch", 3.0, 10, 0.25, where)]
        now[0] = 3.0
        assert watch.poll(runs) == []  # nothing new
    progress = C.Progress(stream=None, live=True)
    spec = C.RunSpec("sgd", 0.1, 0, "search", {"epochs": 10})
    progress.start(spec)
    progress.update(spec.relpath, "epoch", 3.0, 10, 0.25, "node7:4242")
    line = progress._lines()[1]
    assert "epoch   4/10" in line and "loss 0.2500" in line and line.endswith(" on node7:4242"), line

    class Stream(list):
        write = list.append

        def flush(self):
            pass

    progress.stream = Stream()
    progress.live = False
    progress.total_runs = 1
    progress.finish(
        spec, {"status": "completed", "final": {"accuracy": 0.5}, "epochs": 10, "wall_time": 1.0}, "accuracy"
    )
    assert progress.stream == [
        "[1/1] sgd lr=1e-01 seed=0: completed, accuracy 0.5000 (10 epochs, 1.0 s) on node7:4242\n"
    ]


def test_the_throttle_hands_on_at_most_limit_calls_in_order() -> None:
    gate, started = threading.Event(), []

    def task(i: int) -> int:
        started.append(i)
        gate.wait(10)
        if i == 3:
            raise ValueError("three")
        return i * i

    with cf.ThreadPoolExecutor(8) as pool:
        throttle = X.Throttle(pool, limit=2)
        futures = [throttle.submit(task, i) for i in range(5)]
        wait_for(lambda: len(started) == 2, 5, "two calls to start")
        time.sleep(0.1)
        assert started == [0, 1] and throttle.in_flight == 2 and not any(f.done() for f in futures)
        gate.set()
        throttle.join()
        assert sorted(started) == [0, 1, 2, 3, 4] and started[:2] == [0, 1] and throttle.in_flight == 0
        assert [f.result() for i, f in enumerate(futures) if i != 3] == [0, 1, 4, 16]
        with pytest.raises(ValueError, match="three"):
            futures[3].result()
        gate.clear()
        started.clear()
        waiting = X.Throttle(pool, limit=1)
        first, second = waiting.submit(task, 0), waiting.submit(task, 1)
        waiting.cancel()  # the one not handed on is cancelled; the one running is the executor's
        assert second.cancelled() and not first.done()
        gate.set()
        assert first.result(timeout=5) == 0 and started == [0]


# ------------------------------------------------------------------------------------------ a real cluster


def _dask(*args: str) -> list[str]:
    return [sys.executable, "-m", "dask", *args]


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group this test started (the dask command and its nanny's worker process)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``dask scheduler`` and two ``dask worker`` processes (one process, one thread each) on 127.0.0.1, no
    dashboard; every process is killed at the end, whatever happened."""
    pytest.importorskip("distributed")
    home = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "3",
           "DASK_TEMPORARY_DIRECTORY": str(home), **W.WORKER_ENV}  # fmt: skip
    procs: list[subprocess.Popen] = []
    logs = []

    def start(name: str, args: list[str]) -> Path:
        log = home / f"{name}.log"
        logs.append(log.open("w"))
        procs.append(subprocess.Popen(_dask(*args), stdout=logs[-1], stderr=subprocess.STDOUT, env=env, cwd=home,
                                      start_new_session=True))  # fmt: skip
        return log

    try:
        file = home / "scheduler.json"
        start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                            "--scheduler-file", str(file)])  # fmt: skip
        wait_for(lambda: file.exists() and "address" in file.read_text(), 30, "the scheduler")
        address = json.loads(file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:"), address
        workers = [
            start(f"worker{i}", ["worker", address, "--nworkers", "1", "--nthreads", "1", "--host", "127.0.0.1",
                                 "--no-dashboard", "--death-timeout", "60", "--local-directory", str(home / f"w{i}")])
            for i in range(2)
        ]  # fmt: skip
        wait_for(lambda: all("Registered to" in w.read_text() for w in workers), 60, "two workers")
        yield address, workers
    finally:
        for proc in reversed(procs):
            _stop_group(proc)
        for log in logs:
            log.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data) -> Path:
    """The same comparison, uninterrupted, on the local pool."""
    out = tmp_path_factory.mktemp("reference") / "cmp"
    assert main(_argv(data, out, "--workers", "2")) == 0
    return out


def _start_compare(argv: list[str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:  # the child has its own copy of the file descriptor
        return subprocess.Popen([sys.executable, "-m", "descend", *argv], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": os.getcwd()})  # fmt: skip


def _checkpointed(out: Path, proc: subprocess.Popen, log: Path):
    """A wait predicate: some run being trained has a checkpoint (fails at once if the comparison ended)."""

    def check() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"descend compare exited ({proc.returncode}) early:\n{log.read_text()}")
        return any(csv_rows(r / "metrics.csv") >= 2 for r in _holders(out))

    return check


def _holders(out: Path) -> dict[Path, dict]:
    """The runs being trained now (a lock file naming a live holder) and their holders."""
    found = {}
    for run in out.glob("runs/*/*/*"):
        info = lock.owner(run)
        if info and isinstance(info.get("pid"), int) and lock.pid_alive(info["pid"]):
            found[run] = info
    return found


@pytest.mark.slow
@pytest.mark.xdist_group("dask-cluster")
def test_a_worker_killed_mid_run_loses_nothing(tmp_path, data, cluster, reference, capsys) -> None:
    """SIGKILL the worker process training a run once it has a checkpoint: Dask gives the run to another worker,
    which takes over the dead worker's lock and resumes; the comparison ends on its own, equal to a local one; a
    second ``descend compare`` on the directory meanwhile is refused, naming the first."""
    address, worker_logs = cluster
    out = tmp_path / "cmp"
    argv = _argv(data, out, "--scheduler", address)
    argv.remove("--quiet")  # the plain progress lines: where each run was trained
    proc = _start_compare(argv, tmp_path / "log")
    try:
        wait_for(_checkpointed(out, proc, tmp_path / "log"), 60, "a run with a checkpoint")
        run, info = next((r, i) for r, i in _holders(out).items() if csv_rows(r / "metrics.csv") >= 2)
        assert "Dask worker tcp://127.0.0.1:" in info["what"], info
        os.kill(info["pid"], signal.SIGKILL)  # the worker process (its nanny starts another)
        assert csv_rows(run / "metrics.csv") < EPOCHS and not (run / "summary.json").exists()
        assert main(argv) == 2  # one comparison writes a directory at a time
        err = capsys.readouterr().err
        assert re.search(rf"comparison directory .*cmp is in use by pid {proc.pid} \(descend compare", err), err
        assert proc.wait(timeout=120) == 0, (tmp_path / "log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    log = (tmp_path / "log").read_text()
    assert f"runs go to the Dask cluster at {address}: 2 workers, 2 threads" in log, log
    assert re.search(r"\[6/6\] .*: completed, val_accuracy [0-9.]+ \(300 epochs, [0-9.]+ s\)", log), log
    stale = f"run directory {run} was locked by pid {info['pid']} "
    notes = "".join(w.read_text() for w in worker_logs)
    assert stale in notes and "which is no longer running; taking the lock over" in notes, notes[-3000:]
    assert not list(out.glob("runs/*/*/*/.lock"))
    assert_same_results(reference, out)


@pytest.mark.slow
@pytest.mark.xdist_group("dask-cluster")
def test_a_killed_comparison_stops_its_cluster_runs_and_its_rerun_is_exact(tmp_path, data, cluster, reference):
    """SIGKILL ``descend compare`` itself: its client's tasks are cancelled and the runs stop at once (their locks
    go), so the same command can be rerun at once; it finishes the comparison exactly as a local one."""
    address, _ = cluster
    out = tmp_path / "cmp"
    argv = _argv(data, out, "--scheduler", address)
    proc = _start_compare(argv, tmp_path / "log")
    try:
        wait_for(_checkpointed(out, proc, tmp_path / "log"), 60, "a run with a checkpoint")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        wait_for(lambda: not _holders(out), 2 + 2 * X.CANCEL_CHECK_INTERVAL, "the cluster runs to stop")
        assert any(0 < csv_rows(r / "metrics.csv") < EPOCHS for r in out.glob("runs/*/*/*"))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    rerun = _start_compare(argv, tmp_path / "log2")
    try:
        assert rerun.wait(timeout=120) == 0, (tmp_path / "log2").read_text()
    finally:
        if rerun.poll() is None:
            rerun.kill()
        rerun.wait(timeout=10)
    assert_same_results(reference, out)
