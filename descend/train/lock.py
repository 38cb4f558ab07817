"""One writer per directory: the lock file that ``descend train``, ``descend compare`` and its workers take.

A run directory (or a comparison's root) is written by one process at a time. The writer holds
``DIR/.lock``, a small JSON file naming it (pid, host, what it is, when it started); a second writer is
refused with that owner named::

    run directory runs/a is in use by pid 1234 (descend train, started 2025-06-01 12:00:03 on host1);
    wait for it to finish, or stop it first

On POSIX the lock is an ``fcntl.flock`` on that file, so the kernel releases it the moment its holder
dies, even by SIGKILL; the JSON left behind by a killed holder is *stale*: the next writer takes the
lock over and says so on stderr (``pid 1234, which is no longer running``). Elsewhere the file is
created with ``O_EXCL`` and a lock whose pid is dead (on this host) is taken over the same way.

The lock is re-entrant within one thread (``experiment.run`` holds it and ``Trainer.fit`` takes it
again), and the file is removed when the outermost holder releases it, so a finished or failed run
leaves no lock behind (and a directory the lock itself created is removed again while still empty).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from descend.errors import DescendError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: The lock file's name inside the locked directory.
LOCK_NAME = ".lock"


class LockError(DescendError, RuntimeError):
    """The directory is being written by another process (the message names it)."""


@dataclass
class _Held:
    fd: int
    thread: int
    what: str
    depth: int
    created_dir: bool


_HELD: dict[str, _Held] = {}
_GUARD = threading.Lock()


def _default_note(text: str) -> None:
    sys.stderr.write(f"descend: note: {text}\n")
    sys.stderr.flush()


def _key(directory: Path) -> str:
    return os.path.realpath(directory)


def owner(directory: str | os.PathLike) -> dict[str, Any] | None:
    """What ``DIR/.lock`` says about its holder (pid, host, what, started), or None if there is none."""
    return _read_info(Path(directory) / LOCK_NAME)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie, dead but not yet reaped, counts as dead)."""
    if pid <= 0:
        return False
    if os.name == "nt":  # pragma: no cover - os.kill(pid, 0) would terminate the process there
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OSError:  # pragma: no cover - Windows without that pid
        return False
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] not in "ZX"
    return True


def _windows_pid_alive(pid: int) -> bool:  # pragma: no cover - Windows
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.GetLastError() == 5  # access denied: it exists
    try:
        code = ctypes.c_ulong()
        return not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) or code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def describe(info: dict[str, Any] | None) -> str:
    """``pid 1234 (descend train, started 2025-06-01 12:00:03 on host1)``."""
    if not info:
        return "another process (its lock file is empty or unreadable)"
    pid = info.get("pid", "?")
    what = info.get("what", "descend")
    started = info.get("started", "?")
    host = info.get("host")
    where = f" on {host}" if host and host != socket.gethostname() else ""
    return f"pid {pid} ({what}, started {started}{where})"


@contextlib.contextmanager
def hold(
    directory: str | os.PathLike,
    what: str,
    *,
    kind: str = "run directory",
    wait: float = 0.0,
    note: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Hold ``directory``'s lock for the ``with`` block (creating the directory if needed).

    ``what`` says who holds it (``"descend train"``), ``kind`` what the directory is in messages. A held
    lock raises :class:`LockError` naming its owner, after retrying for ``wait`` seconds. A stale lock
    (its holder died) is taken over with a line through ``note`` (default: stderr).
    """
    directory = Path(directory)
    acquire(directory, what, kind=kind, wait=wait, note=note)
    try:
        yield directory / LOCK_NAME
    finally:
        release(directory)


def acquire(
    directory: str | os.PathLike,
    what: str,
    *,
    kind: str = "run directory",
    wait: float = 0.0,
    note: Callable[[str], None] | None = None,
) -> None:
    """Take ``directory``'s lock (see :func:`hold`); pair with :func:`release`."""
    directory = Path(directory)
    note = note or _default_note
    key = _key(directory)
    with _GUARD:
        held = _HELD.get(key)
        if held is not None:
            if held.thread != threading.get_ident():
                raise LockError(
                    f"{kind} {directory} is in use by this process ({held.what}, in another thread); "
                    "one writer per directory"
                )
            held.depth += 1
            return
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + max(0.0, float(wait))
    while True:
        try:
            fd = _take(directory, what, note, kind)
            break
        except LockError:
            if time.monotonic() >= deadline:
                if created:
                    _remove_empty(directory)
                raise
            time.sleep(0.05)
    with _GUARD:
        _HELD[key] = _Held(fd, threading.get_ident(), what, 1, created)


def release(directory: str | os.PathLike) -> None:
    """Give the lock back; the outermost release removes the lock file."""
    directory = Path(directory)
    key = _key(directory)
    with _GUARD:
        held = _HELD.get(key)
        if held is None:
            return
        held.depth -= 1
        if held.depth > 0:
            return
        del _HELD[key]
    path = directory / LOCK_NAME
    try:
        # Unlink while still holding it: whoever opened the old file re-checks its inode after locking.
        with contextlib.suppress(OSError):
            if _same_file(held.fd, path):
                path.unlink()
    finally:
        os.close(held.fd)  # closing releases the flock
    if held.created_dir:
        _remove_empty(directory)


def _remove_empty(directory: Path) -> None:
    with contextlib.suppress(OSError):
        directory.rmdir()  # only succeeds while empty


def _info(what: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "what": what,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "argv": sys.argv[:8],
    }


def _read_info(path: Path) -> dict[str, Any] | None:
    for _ in range(5):  # the holder writes its line right after taking the lock: give it a moment
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError):
            return None
        try:
            info = json.loads(text)
        except json.JSONDecodeError:
            time.sleep(0.01)
            continue
        return info if isinstance(info, dict) else None
    return None


def _read_fd(fd: int) -> dict[str, Any] | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 65536).decode()
        info = json.loads(text) if text.strip() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) else None


def _write_fd(fd: int, info: dict[str, Any]) -> None:
    data = (json.dumps(info) + "\n").encode()
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)  # one small write: a reader sees all of it or (briefly) nothing
    os.fsync(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _in_use(kind: str, directory: Path, info: dict[str, Any] | None) -> LockError:
    return LockError(f"{kind} {directory} is in use by {describe(info)}; wait for it to finish, or stop it first")


def _stale_note(kind: str, directory: Path, info: dict[str, Any], note: Callable[[str], None]) -> None:
    pid = info.get("pid")
    same_host = info.get("host") in (None, socket.gethostname())
    if isinstance(pid, int) and pid == os.getpid() and same_host:
        return  # our own leftover (a lock file we could not remove)
    state = "which is no longer running" if isinstance(pid, int) and same_host and not pid_alive(pid) else (
        "which no longer holds it")  # fmt: skip
    note(f"{kind} {directory} was locked by {describe(info)}, {state}; taking the lock over")


def _take(directory: Path, what: str, note: Callable[[str], None], kind: str) -> int:
    path = directory / LOCK_NAME
    if fcntl is None or not _USE_FLOCK:
        return _take_exclusive(directory, what, note, kind)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _in_use(kind, directory, _read_info(path)) from None
        except OSError:  # no flock on this file system (some network mounts): the O_EXCL lock instead
            os.close(fd)
            with contextlib.suppress(OSError):
                if path.stat().st_size == 0:
                    path.unlink()
            return _take_exclusive(directory, what, note, kind)
        if not _same_file(fd, path):  # released and removed between our open and our flock: try again
            os.close(fd)
            continue
        break
    try:
        stale = _read_fd(fd)
        if stale:
            _stale_note(kind, directory, stale, note)
        _write_fd(fd, _info(what))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _take_exclusive(directory: Path, what: str, note: Callable[[str], None], kind: str) -> int:
    """The portable fallback: ``O_CREAT | O_EXCL``, and a dead pid's lock taken over."""
    path = directory / LOCK_NAME
    for _ in range(3):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            fd = -1
        if fd >= 0:
            try:
                _write_fd(fd, _info(what))
            except BaseException:
                os.close(fd)
                path.unlink(missing_ok=True)
                raise
            return fd
        info = _read_info(path)
        pid = (info or {}).get("pid")
        same_host = (info or {}).get("host") in (None, socket.gethostname())
        if not (isinstance(pid, int) and same_host and not pid_alive(pid)):
            raise _in_use(kind, directory, info)
        # Stale: move it aside under a name of our own (only one taker wins the rename), then retry.
        aside = path.with_name(f"{LOCK_NAME}.stale.{os.getpid()}")
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            continue
        moved = _read_info(aside)
        if moved != info:  # we moved a fresh lock, not the stale one: put it back and give up
            os.replace(aside, path)
            raise _in_use(kind, directory, moved)
        aside.unlink(missing_ok=True)
        _stale_note(kind, directory, info, note)
    raise _in_use(kind, directory, _read_info(path))


#: False forces the O_EXCL fallback (tests exercise it on POSIX).
_USE_FLOCK = True


__all__ = ["LOCK_NAME", "LockError", "acquire", "describe", "hold", "owner", "pid_alive", "release"]
