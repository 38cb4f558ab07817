"""The worker side of a comparison (:mod:`descend.lab.compare`): what a worker process of the local pool, or a task
on a Dask worker (:mod:`descend.lab.executors`), runs to train one run in its own directory.

:func:`train` trains (or continues, or just returns) one run, holding its directory's lock; the data set is loaded
once per worker and each optimizer warmed up once, outside the measured wall time. A local worker starts with
:func:`init_worker`, which ties its life to the comparison's (:func:`die_with_parent`) and sends its progress to
the parent's display; :func:`worker_environment` gives each worker one BLAS thread. The functions are found by
their qualified names (``descend.lab.workers.train``), as process spawning and Dask need.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from descend.lab.plan import ComparisonError, listify, run_id
from descend.lab.results import read_json
from descend.train import experiment as ex
from descend.train import lock
from descend.train.callbacks import Callback

_QUEUE: Any = None
_DATA: dict[str, Any] = {}
_WARM: set[str] = set()

#: Each worker computes single-threaded: with one BLAS thread per core the workers do not fight.
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
}


def init_worker(progress_queue: Any, parent_pid: int | None = None) -> None:
    import warnings

    global _QUEUE
    if parent_pid is not None:
        die_with_parent(parent_pid)
    _QUEUE = progress_queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the workers itself
    # Overflow on the way to a NaN is how a diverging run ends; its summary says "diverged".
    warnings.simplefilter("ignore", RuntimeWarning)


#: Linux prctl option: the signal the kernel sends this process when its parent dies.
_PR_SET_PDEATHSIG = 1
#: Seconds between the fallback watchdog's looks at the parent pid.
_WATCH_INTERVAL = 0.2
#: Seconds a worker waits for its run directory's lock (a killed comparison's worker may still be dying).
_RUN_LOCK_WAIT = 5.0


def die_with_parent(parent_pid: int, interval: float = _WATCH_INTERVAL) -> None:
    """End this worker when the comparison that started it ends, even by SIGKILL: a worker that lived on
    would keep writing run directories that a rerun of the comparison writes too.

    On Linux the kernel sends SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``); everywhere, a
    daemon thread checks every ``interval`` seconds that the parent pid is still ours (an orphan is
    adopted by another process) and kills the worker otherwise.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):  # best effort: the watchdog below covers a failure
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the prctl: no signal will come
        _kill_self()
    threading.Thread(target=_watch_parent, args=(parent_pid, interval), name="descend-watch-parent",
                     daemon=True).start()  # fmt: skip


def _watch_parent(parent_pid: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent_pid:
            _kill_self()


def _kill_self() -> None:
    if hasattr(signal, "SIGKILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(1)  # pragma: no cover - no SIGKILL (Windows)


def _warm_up(config: dict[str, Any], data) -> None:
    """One forward/backward pass and one optimizer update on a throwaway model, once per optimizer and
    worker: imports and compiled kernels load here, not inside the first run's measured wall time."""
    if config["optimizer"] in _WARM:
        return
    _WARM.add(config["optimizer"])
    if config.get("backend") == "torch":
        from descend.torch.training import warm_up

        with contextlib.suppress(Exception):  # best effort, as below
            warm_up(config, data)
        return
    import numpy as np

    from descend.nn import CrossEntropyLoss

    with contextlib.suppress(Exception):  # best effort: the real run reports any error itself
        train = data[0]
        model = ex.build_model(config, train)
        tx = ex.build_optimizer(config, model, 1)
        loss = CrossEntropyLoss()
        loss.forward(model.forward(train.x[:4]), train.y[:4])
        model.backward(loss.backward(), input_grad=False)
        tree = model.named_parameters()  # what the Trainer gives the optimizer
        state = tx.init(tree)
        tx.update({name: np.zeros_like(p) for name, p in tree.items()}, state, tree)


#: The configuration keys that decide a run's data (its split depends on the seed).
_DATA_KEYS = ("dataset", "validation", "seed", "data_dir", "normalize", "label_column", "test_data")


def _data_for(config: dict[str, Any]):
    """The data of a configuration, loaded once per worker (the split depends on the seed)."""
    key = json.dumps([config.get(k) for k in _DATA_KEYS])
    if key not in _DATA:
        _DATA[key] = ex.load_data(config)
    return _DATA[key]


def train(
    relpath: str,
    run_dir: str,
    config: dict[str, Any],
    callbacks: Sequence[Callback] = (),
    lock_wait: float = _RUN_LOCK_WAIT,
    what: str | None = None,
) -> dict[str, Any]:
    """Worker: train (or continue) one run in its own directory, holding its lock; returns its summary.

    Resubmitting a run is safe (a retry after its worker died, a rerun of the comparison): one that an earlier
    attempt finished returns its summary, one with a checkpoint continues from it (bitwise as if never
    interrupted) once the checkpoint's configuration hash is found to be this run's (:func:`run_id`).
    """
    out = Path(run_dir)
    callbacks = [*([] if _QUEUE is None else [_Reporter(relpath, _QUEUE)]), *callbacks]
    data = _data_for(config)
    _warm_up(config, data)
    with lock.hold(out, what or f"descend compare worker of pid {os.getppid()}", wait=lock_wait):
        finished = _resubmitted_summary(out, config)
        if finished is not None:
            return finished
        resume = (out / ex.CHECKPOINT).exists()
        if resume:
            _check_run_id(out, config)
        else:  # a run killed before its first checkpoint: start it again from scratch
            for name in (ex.CONFIG, ex.METRICS):
                (out / name).unlink(missing_ok=True)
        return ex.run(config, out, resume=resume, callbacks=callbacks, data=data)


def _resubmitted_summary(out: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The summary of a run that an earlier attempt finished (None: not finished); another run's is refused."""
    path = out / ex.SUMMARY
    if not path.is_file():
        return None
    summary = read_json(path, "the run summary")
    if not isinstance(summary, dict) or listify(summary.get("config")) != listify(config):
        raise ComparisonError(f"{path}: the summary of another run than {out}'s planned one; the run was edited")
    return summary


def _check_run_id(out: Path, config: dict[str, Any]) -> None:
    """The run's checkpoint was written by this run (its recorded configuration hash is :func:`run_id`)."""
    from descend.train.checkpoint import read_checkpoint_meta

    path = out / ex.CHECKPOINT
    recorded = read_checkpoint_meta(path).get("config_sha256")
    expected = run_id(config)
    if recorded != expected:
        raise ComparisonError(
            f"{path}: the checkpoint of another run (configuration hash {str(recorded)[:12]}, this run's "
            f"{expected[:12]}); the run directory was edited or copied: delete {out} to train this run again"
        )


class _Reporter(Callback):
    """A training callback that sends (run, epoch, loss) to the parent's progress display."""

    def __init__(self, relpath: str, progress_queue: Any, interval: float = 0.3):
        self.relpath, self.queue, self.interval = relpath, progress_queue, interval
        self._last = 0.0

    def _put(self, *message: Any) -> None:
        with contextlib.suppress(Exception):  # the display is best effort; training goes on
            self.queue.put_nowait((self.relpath, *message))

    def on_train_begin(self, trainer) -> None:
        self._put("begin", trainer.epoch, trainer.epochs, None)

    def on_batch_end(self, trainer, step: int, logs: dict[str, float]) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            fraction = (logs.get("batch", 0) + 1) / max(trainer.batches_per_epoch, 1)
            self._put("batch", trainer.epoch + fraction, trainer.epochs, float(logs.get("loss", math.nan)))

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        self._put("epoch", epoch + 1, trainer.epochs, float(logs.get("loss", math.nan)))


@contextlib.contextmanager
def worker_environment() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


__all__ = ["WORKER_ENV", "default_workers", "die_with_parent", "init_worker", "train", "worker_environment"]
