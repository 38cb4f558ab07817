"""Atomic file writes: a reader (or a crash, or SIGKILL) sees the old file or the new one, never a mix.

Every writer of a run or comparison directory (``config.json``, ``summary.json``, ``comparison.json``,
``experiment.toml``, ``report.html``, the ``checkpoint`` npz, a rewritten ``metrics.csv``) goes through
:func:`atomic_write`: the content goes to a temporary file in the same directory (so the final rename
never crosses file systems), is flushed and fsynced, gets the usual mode (``0o666`` less the umask, not
``mkstemp``'s ``0o600``), and replaces the target with :func:`os.replace`; the directory is then fsynced
(best effort) so the rename itself survives a power cut. On any failure the temporary file is removed
and the target is left as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(f)`` on a binary temporary file next to ``path``, then make it ``path`` atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(
    path: str | os.PathLike,
    obj: Any,
    *,
    indent: int | None = 2,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
    allow_nan: bool = True,
) -> Path:
    """``json.dumps(obj, ...)`` plus a final newline, written atomically; serialization errors raise
    before anything is written."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default, allow_nan=allow_nan) + "\n"
    return atomic_write_text(path, text)


def _umask() -> int:
    """The process's umask; read from /proc where possible (setting it to read it races with other threads)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Persist a rename (POSIX); a no-op where directories cannot be opened (Windows)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]
