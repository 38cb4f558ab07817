"""descend.train.lock: one writer per directory, the owner named, a dead holder's lock taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from descend.train import lock
from descend.train.lock import LockError

HOLDER = textwrap.dedent(
    """
    import sys, time
    from descend.train import lock
    lock.acquire(sys.argv[1], "test holder")
    print("locked", flush=True)
    time.sleep(60)
    """
)


def _start_holder(directory: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"locked"
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


def test_a_second_writer_is_refused_with_the_owner_named(tmp_path) -> None:
    proc = _start_holder(tmp_path / "run")
    try:
        with pytest.raises(LockError) as info, lock.hold(tmp_path / "run", "descend train"):
            pass
        message = str(info.value)
        assert f"run directory {tmp_path / 'run'} is in use by pid {proc.pid} (test holder, started " in message
        assert lock.owner(tmp_path / "run")["pid"] == proc.pid
    finally:
        _stop(proc)


def test_a_dead_holders_lock_is_taken_over_with_a_note(tmp_path) -> None:
    proc = _start_holder(tmp_path / "run")
    proc.send_signal(signal.SIGKILL)
    _stop(proc)
    assert (tmp_path / "run" / lock.LOCK_NAME).exists()  # SIGKILL left the file behind
    notes: list[str] = []
    with lock.hold(tmp_path / "run", "descend train", note=notes.append) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert len(notes) == 1 and f"pid {proc.pid}" in notes[0] and "no longer running" in notes[0], notes
    assert not (tmp_path / "run" / lock.LOCK_NAME).exists()


def test_reentrant_in_one_thread_and_removed_by_the_outermost_release(tmp_path) -> None:
    with lock.hold(tmp_path / "r", "outer"), lock.hold(tmp_path / "r", "inner"):
        assert lock.owner(tmp_path / "r")["what"] == "outer"
    assert sorted(os.listdir(tmp_path)) == []  # the lock file went, and with it the directory the lock made
    errors: list[Exception] = []
    with lock.hold(tmp_path / "r", "outer"):
        (tmp_path / "r" / "data").write_text("x")

        def other() -> None:
            try:
                lock.acquire(tmp_path / "r", "thread")
            except LockError as e:
                errors.append(e)

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(errors) == 1 and "in another thread" in str(errors[0])
    assert sorted(os.listdir(tmp_path / "r")) == ["data"]


def test_wait_retries_until_the_holder_is_gone(tmp_path) -> None:
    proc = _start_holder(tmp_path / "run")
    threading.Timer(0.3, proc.kill).start()
    try:
        t0 = time.monotonic()
        with lock.hold(tmp_path / "run", "waiter", wait=10.0, note=lambda _: None):
            assert time.monotonic() - t0 < 9
    finally:
        _stop(proc)


def test_the_exclusive_create_fallback(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(lock, "_USE_FLOCK", False)
    proc = _start_holder(tmp_path / "run")  # the holder uses flock; its file still names it
    try:
        with pytest.raises(LockError, match=f"in use by pid {proc.pid}"):
            lock.acquire(tmp_path / "run", "fallback")
    finally:
        _stop(proc)
    notes: list[str] = []
    with lock.hold(tmp_path / "run", "fallback", note=notes.append):
        assert lock.owner(tmp_path / "run")["what"] == "fallback"
        with pytest.raises(LockError, match="in use by this process"):
            threading_error(tmp_path / "run")
    assert "no longer running" in notes[0]
    assert not (tmp_path / "run" / lock.LOCK_NAME).exists()


def threading_error(directory: Path) -> None:
    errors: list[Exception] = []

    def other() -> None:
        try:
            lock.acquire(directory, "thread")
        except LockError as e:
            errors.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    raise errors[0]


def test_pid_alive() -> None:
    assert lock.pid_alive(os.getpid())
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not lock.pid_alive(proc.pid)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{zombie.pid}/stat").exists():
        if Path(f"/proc/{zombie.pid}/stat").read_text().split(") ")[1][0] == "Z":
            break
        time.sleep(0.02)
    assert not lock.pid_alive(zombie.pid)  # exited but not yet reaped: dead
    zombie.wait()
