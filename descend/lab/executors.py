"""Where the runs of ``descend compare`` go: a local process pool, or a Dask distributed cluster, behind one interface.

``--scheduler local`` (the default) trains the runs in ``--workers`` spawned processes of this machine, which die
with the comparison (:class:`LocalPool`); Dask is not needed. ``--scheduler tcp://HOST:8786`` sends them to a
running Dask cluster (:class:`DaskCluster`; ``pip install 'descend[cluster]'``)::

    dask scheduler                                   # on one machine: prints tcp://HOST:8786
    dask worker tcp://HOST:8786 --nworkers -1 --nthreads 1   # each machine that trains: one process per core
    descend compare --scheduler tcp://HOST:8786 --out /shared/compare-mnist1d-mlp

Both engines hand out standard-library :class:`concurrent.futures.Future` objects (Dask's through
``distributed.Client.get_executor()``), so the comparison's loop (:func:`descend.lab.compare._execute`) is the
same for both; no scheduler of descend's own is involved. A run on the cluster writes into the comparison's run
store exactly as a local one: its run directory, on a file system every worker and the comparison share at the
same path, locked by the worker that trains it. A run is identified by its directory and the hash of its
configuration (seed included; :attr:`descend.lab.compare.RunSpec.run_id`), which its checkpoint records: a
resubmitted run (a retry, or a rerun of the comparison) continues from its checkpoint, or returns its summary
when an earlier attempt finished it, and a checkpoint of another configuration is refused.

A worker that dies mid-run (killed, out of memory) loses nothing: its lock is released by the kernel (or, where
the file system has no ``flock``, found stale because its pid is dead on that host), the scheduler gives the run
to another worker (up to ``distributed.scheduler.allowed-failures`` deaths, 3 by default), and that worker
resumes it from its last checkpoint, bit for bit. A run whose task the comparison cancels (Ctrl-C, or the
comparison killed, which disconnects its client) stops at its next check (:data:`CANCEL_CHECK_INTERVAL`) and
releases its directory, so the same command can be rerun at once. Progress comes from polling the run
directories (``metrics.csv``, and the lock, which names the host and pid training the run).

Dask moves functions, arguments and results between the comparison and the workers with pickle: connect only
to a cluster you trust.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from descend.errors import DescendError, ParameterError
from descend.train import lock
from descend.train.callbacks import Callback

#: The default scheduler: a pool of processes on this machine.
LOCAL = "local"
#: The command that installs what ``--scheduler tcp://...`` needs.
INSTALL = "pip install 'descend[cluster]'"
#: Seconds to reach the scheduler before giving up.
CONNECT_TIMEOUT = 10.0
#: Times Dask reruns a run whose task raised (a file-system hiccup on the shared directory, a run lock still held
#: by a cancelled task of an earlier comparison). A worker's death is not an exception: the scheduler reschedules
#: the run by itself, up to its ``distributed.scheduler.allowed-failures``.
RETRIES = 2
#: Seconds a cluster task waits for its run directory's lock (a cancelled task of an earlier attempt stops within
#: about :data:`CANCEL_CHECK_INTERVAL` plus one batch; a stale lock is taken over at once).
RUN_LOCK_WAIT = 30.0
#: Seconds between a cluster task's looks at whether its task was cancelled.
CANCEL_CHECK_INTERVAL = 0.5
#: Seconds between two polls of the run directories for the progress display.
POLL_INTERVAL = 0.5

_ADDRESS = re.compile(r"tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?")


def parse_scheduler(value: Any) -> str:
    """``"local"`` or a Dask scheduler address ``tcp://HOST:PORT`` (checked, not contacted)."""
    if value is None or value == LOCAL:
        return LOCAL
    if isinstance(value, str) and _ADDRESS.fullmatch(value.strip()):
        return value.strip()
    raise ParameterError(
        f"compare: scheduler must be 'local' (a process pool on this machine) or a Dask scheduler address "
        f"tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786), got {value!r}"
    )


def require_dask(scheduler: str) -> Any:
    """The ``distributed`` module, imported now; one clear error with the install command when it is missing."""
    try:
        import distributed
    except ImportError:
        raise DescendError(
            f"descend compare --scheduler {scheduler} needs Dask distributed, which is not installed here: {INSTALL}"
        ) from None
    return distributed


def check_options(scheduler: str, workers: int | None, max_concurrent: int | None) -> None:
    """``workers`` sizes the local pool, ``max_concurrent`` limits the runs sent to a cluster: each only with its
    engine."""
    if scheduler == LOCAL:
        if max_concurrent is not None:
            raise ParameterError(
                f"compare: max_concurrent (--max-concurrent) limits the runs sent to a Dask cluster "
                f"(--scheduler tcp://HOST:PORT); the local pool runs --workers at a time; got {max_concurrent} "
                f"with the local scheduler"
            )
        return
    if workers is not None:
        raise ParameterError(
            f"compare: workers (--workers) sizes the local process pool; on a Dask cluster ({scheduler}) its "
            f"workers train the runs: limit how many at once with --max-concurrent N; got workers={workers}"
        )
    if max_concurrent is not None and (isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int)
                                       or max_concurrent < 1):  # fmt: skip
        raise ParameterError(f"compare: max_concurrent must be an integer >= 1, got {max_concurrent!r}")


def open_engine(scheduler: Any = LOCAL, *, workers: int = 1, max_concurrent: int | None = None) -> Engine:
    """The engine for ``scheduler`` (see :func:`parse_scheduler`); a cluster is contacted now."""
    scheduler = parse_scheduler(scheduler)
    if scheduler == LOCAL:
        return LocalPool(workers)
    return DaskCluster(scheduler, max_concurrent=max_concurrent)


class Engine:
    """Trains runs: :meth:`submit` returns a :class:`concurrent.futures.Future` of the run's summary."""

    #: A line for the progress display when the engine starts (None: nothing to say).
    announce: str | None = None

    def submit(self, relpath: str, run_dir: str, config: dict[str, Any]) -> cf.Future:
        raise NotImplementedError

    def updates(self) -> list[tuple[str, str, float, int, float | None, str | None]]:
        """Progress since the last call: ``(relpath, kind, epoch, epochs, loss, where)`` tuples."""
        return []

    def result(self, future: cf.Future, label: str) -> dict[str, Any]:
        """The summary of a finished run (a run's DescendError is raised as it is)."""
        return future.result()

    def interrupt(self) -> None:
        """Stop now (Ctrl-C): the runs cut off continue from their checkpoints next time."""
        self.close(cancel=True)

    def close(self, *, cancel: bool = False) -> None:
        """Wait for the runs submitted (``cancel``: cancel those not finished) and free the engine; idempotent."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close(cancel=exc[0] is not None)


# ----------------------------------------------------------------------------------------------------- local


class LocalPool(Engine):
    """``workers`` spawned processes of this machine (single-threaded BLAS each) that die with this process."""

    def __init__(self, workers: int):
        from descend.lab import workers as worker_side  # the functions the worker processes run

        self._worker_side = worker_side
        self.workers = int(workers)
        ctx = multiprocessing.get_context("spawn")
        self._messages = ctx.Queue()
        with worker_side.worker_environment():
            self._pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx,
                                                initializer=worker_side.init_worker,
                                                initargs=(self._messages, os.getpid()))  # fmt: skip
        self._closed = False

    def submit(self, relpath: str, run_dir: str, config: dict[str, Any]) -> cf.Future:
        with self._worker_side.worker_environment():  # workers spawn on demand and inherit the environment
            return self._pool.submit(self._worker_side.train, relpath, run_dir, config)

    def updates(self) -> list[tuple[str, str, float, int, float | None, str | None]]:
        import queue

        out = []
        while True:
            try:
                relpath, kind, epoch, epochs, loss = self._messages.get_nowait()
            except (queue.Empty, OSError, ValueError, EOFError):
                return out
            out.append((relpath, kind, epoch, epochs, loss, None))

    def result(self, future: cf.Future, label: str) -> dict[str, Any]:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return future.result()
        except BrokenProcessPool as e:
            raise self._worker_side.ComparisonError(
                f"compare: {label}: a worker process died ({e}); the runs keep their checkpoints: rerun the same "
                "command to continue"
            ) from None

    def interrupt(self) -> None:
        if self._closed:
            return
        self._closed = True
        for process in list((getattr(self._pool, "_processes", None) or {}).values()):
            process.terminate()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self, *, cancel: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=cancel)
        self._messages.close()


# --------------------------------------------------------------------------------------------------- cluster


class DaskCluster(Engine):
    """The workers of a running Dask distributed cluster, through ``Client.get_executor()``.

    At most ``max_concurrent`` runs are handed to the scheduler at a time (None: all, and Dask runs as many as
    its workers have threads); the others wait here, in order.
    """

    def __init__(self, address: str, *, max_concurrent: int | None = None):
        distributed = require_dask(address)
        self.address = address
        self.max_concurrent = max_concurrent
        self._distributed = distributed
        try:
            self.client = distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except OSError as e:
            raise DescendError(
                f"compare: cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT:g} s ({e}); start "
                f"one with 'dask scheduler' and its workers with 'dask worker {address}', or use --scheduler local"
            ) from None
        try:
            self._executor = self.client.get_executor(retries=RETRIES, pure=False)
            threads = self.client.nthreads()
        except BaseException:
            self.client.close()
            raise
        self._throttle = Throttle(self._executor, max_concurrent)
        self._runs: dict[cf.Future, tuple[str, str, int]] = {}
        self._watch = RunWatcher()
        self._closed = False
        limit = "" if max_concurrent is None else f", at most {max_concurrent} runs at a time"
        self.announce = (
            f"runs go to the Dask cluster at {address}: {len(threads)} workers, {sum(threads.values())} threads{limit}"
            if threads
            else f"runs go to the Dask cluster at {address}, which has no workers yet: start them with "
            f"'dask worker {address}'; the runs wait for them{limit}"
        )

    def submit(self, relpath: str, run_dir: str, config: dict[str, Any]) -> cf.Future:
        future = self._throttle.submit(run_on_worker, relpath, run_dir, config)
        self._runs[future] = (relpath, run_dir, int(config["epochs"]))
        return future

    def updates(self) -> list[tuple[str, str, float, int, float | None, str | None]]:
        self._throttle.refill()
        for future in [f for f in self._runs if f.done()]:
            del self._runs[future]
        return self._watch.poll(self._runs.values())

    def result(self, future: cf.Future, label: str) -> dict[str, Any]:
        distributed = self._distributed
        try:
            return future.result()
        except distributed.KilledWorker as e:
            raise DescendError(
                f"compare: {label}: the Dask workers that trained it died too often ({e}); the scheduler gives a "
                "task up after distributed.scheduler.allowed-failures deaths. The run keeps its checkpoint: rerun the "
                "same command to continue"
            ) from None
        except ImportError as e:  # the worker cannot unpickle the task: descend is missing there
            raise DescendError(
                f"compare: {label}: a Dask worker cannot import what the run needs ({e}); install descend on every "
                "worker, the same version as here"
            ) from None
        except (cf.CancelledError, distributed.CancelledError):
            raise DescendError(
                f"compare: {label}: its task was cancelled on the cluster (the scheduler restarted or lost it); the "
                "run keeps its checkpoint: rerun the same command to continue"
            ) from None

    def interrupt(self) -> None:
        self.close(cancel=True)

    def close(self, *, cancel: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if cancel:
                self._throttle.cancel()
            else:
                self._throttle.join()
            with contextlib.suppress(Exception):  # the scheduler may be gone already
                self._executor.shutdown(wait=False)  # cancels what is left: those tasks stop at their next check
        finally:
            with contextlib.suppress(Exception):
                self.client.close(timeout=CONNECT_TIMEOUT)


class Throttle:
    """Hands calls to ``executor`` with at most ``limit`` unfinished at a time (None: no limit); the others wait
    here, in order, for :meth:`refill` (called by the comparison's loop). :meth:`submit` returns a future at once."""

    def __init__(self, executor: cf.Executor, limit: int | None = None):
        self.executor, self.limit = executor, limit
        self._guard = threading.Lock()
        self._waiting: deque[tuple[cf.Future, Callable[..., Any], tuple[Any, ...]]] = deque()
        self._in_flight = 0
        self._inner: list[cf.Future] = []

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        outer: cf.Future = cf.Future()
        self._waiting.append((outer, fn, args))
        self.refill()
        return outer

    def refill(self) -> None:
        while self._waiting:
            with self._guard:
                if self.limit is not None and self._in_flight >= self.limit:
                    return
                self._in_flight += 1
            outer, fn, args = self._waiting.popleft()
            inner = self.executor.submit(fn, *args)
            self._inner.append(inner)
            inner.add_done_callback(lambda f, outer=outer: self._settle(outer, f))

    def _settle(self, outer: cf.Future, inner: cf.Future) -> None:  # on whichever thread finished ``inner``
        with self._guard:
            self._in_flight -= 1
        if inner.cancelled():
            outer.cancel() or outer.set_exception(cf.CancelledError())
        elif inner.exception() is not None:
            outer.set_exception(inner.exception())
        else:
            outer.set_result(inner.result())

    def join(self) -> None:
        """Wait until every call has been handed on and has finished."""
        while self._waiting or any(not f.done() for f in self._inner):
            self.refill()
            cf.wait(self._inner, timeout=0.1, return_when=cf.FIRST_COMPLETED)

    def cancel(self) -> None:
        """Cancel the calls still waiting here (those handed on are the executor's to cancel)."""
        for outer, _, _ in self._waiting:
            outer.cancel()
        self._waiting.clear()


def run_on_worker(relpath: str, run_dir: str, config: dict[str, Any]) -> dict[str, Any]:
    """The cluster task: train (or continue, or just return) one run, holding its directory's lock, and stop
    early when the task is cancelled."""
    import socket

    from descend.lab import workers

    stop = StopWhenCancelled()
    what = f"descend compare run on Dask worker {stop.worker_address or socket.gethostname()}"
    return workers.train(relpath, run_dir, config, callbacks=[stop], lock_wait=RUN_LOCK_WAIT, what=what)


class TaskCancelled(DescendError, RuntimeError):
    """The cluster cancelled the task training a run; it stops, and continues from its checkpoint next time."""


class StopWhenCancelled(Callback):
    """A training callback that ends a cluster run whose task was cancelled (its comparison stopped or went away):
    the run directory is released at once, for the next attempt to resume."""

    def __init__(self, interval: float = CANCEL_CHECK_INTERVAL):
        self.interval = interval
        self._last = time.monotonic()
        self.worker = self.key = self.worker_address = None
        with contextlib.suppress(Exception):  # outside a Dask task (a test calling it directly): never cancelled
            from distributed import get_worker
            from distributed.worker import thread_state

            self.worker = get_worker()
            self.key = thread_state.key
            self.worker_address = self.worker.address

    def cancelled(self) -> bool:
        if self.worker is None:
            return False
        task = self.worker.state.tasks.get(self.key)
        return task is None or task.state in ("cancelled", "released", "forgotten")

    def _check(self) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        if self.cancelled():
            raise TaskCancelled(f"compare: the task {self.key} was cancelled; the run stops at its last checkpoint")

    def on_train_begin(self, trainer) -> None:
        if self.cancelled():
            raise TaskCancelled(f"compare: the task {self.key} was cancelled before it began")

    def on_batch_end(self, trainer, step: int, logs: dict[str, float]) -> None:
        self._check()


# -------------------------------------------------------------------------------------------------- progress


class RunWatcher:
    """Progress read from the run directories (works wherever the runs train): the epochs in ``metrics.csv``,
    its last loss, and where the run is trained (the host and pid its lock names)."""

    def __init__(self, interval: float = POLL_INTERVAL, clock: Callable[[], float] = time.monotonic):
        self.interval, self.clock = interval, clock
        self._last = -float("inf")
        self._seen: dict[str, tuple[int, float | None, str | None]] = {}
        self._files: dict[str, tuple[float, int, int, float | None]] = {}

    def poll(self, runs) -> list[tuple[str, str, float, int, float | None, str | None]]:
        """``runs``: ``(relpath, run_dir, epochs)`` of the runs submitted and not finished."""
        now = self.clock()
        if now - self._last < self.interval:
            return []
        self._last = now
        out = []
        for relpath, run_dir, epochs in list(runs):
            info = lock.owner(run_dir)
            if not info:
                continue  # queued, or between two attempts
            where = f"{info.get('host', '?')}:{info.get('pid', '?')}"
            rows, loss = self._metrics(Path(run_dir) / "metrics.csv")
            state = (rows, loss, where)
            if self._seen.get(relpath) != state:
                self._seen[relpath] = state
                out.append((relpath, "epoch", float(rows), int(epochs), loss, where))
        return out

    def _metrics(self, path: Path) -> tuple[int, float | None]:
        key = str(path)
        try:
            stat = path.stat()
        except OSError:
            return 0, None
        cached = self._files.get(key)
        if cached is not None and cached[:2] == (stat.st_mtime, stat.st_size):
            return cached[2], cached[3]
        try:
            lines = path.read_text().split("\n")
        except (OSError, UnicodeDecodeError):
            return 0, None
        rows = [line for line in lines[1:-1] if line]  # the last piece: empty, or a row still being written
        loss = None
        if rows:
            header = lines[0].split(",")
            cells = rows[-1].split(",")
            with contextlib.suppress(ValueError, IndexError):
                loss = float(cells[header.index("loss")])
        self._files[key] = (stat.st_mtime, stat.st_size, len(rows), loss)
        return len(rows), loss


__all__ = [
    "CANCEL_CHECK_INTERVAL",
    "CONNECT_TIMEOUT",
    "INSTALL",
    "LOCAL",
    "RETRIES",
    "RUN_LOCK_WAIT",
    "DaskCluster",
    "Engine",
    "LocalPool",
    "RunWatcher",
    "StopWhenCancelled",
    "TaskCancelled",
    "Throttle",
    "check_options",
    "open_engine",
    "parse_scheduler",
    "require_dask",
]
