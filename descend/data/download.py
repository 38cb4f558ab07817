"""Cache directory and verified downloads.

Downloads stream into a temporary file next to the destination while hashing,
and are renamed into place only when the SHA-256 matches, so an interrupted or
tampered transfer never leaves a file that a later run would trust.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from descend.errors import DataError

CACHE_ENV = "DESCEND_CACHE"
DATA_ENV = "DESCEND_DATA"


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The cache directory: ``path`` if given, else ``$DESCEND_CACHE``, else ``~/.cache/descend``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "descend"


def publish(tmp: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Atomically move a finished temporary file (``mkstemp`` makes it 0600) to ``dest`` as an ordinary 0644 file."""
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest)


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: str | os.PathLike, sha256: str, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` if its SHA-256 is ``sha256``; raise :class:`DataError` otherwise.

    The bytes go to a temporary file in ``dest``'s directory and are renamed to
    ``dest`` atomically after the checksum matched; on any failure nothing is
    left behind.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as response:
                while chunk := response.read(1 << 20):
                    h.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except urllib.error.HTTPError as exc:
            raise DataError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise DataError(f"could not download {url}: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise DataError(f"could not download {url}: {type(exc).__name__}: {exc}") from None
        got = h.hexdigest()
        if got != sha256.lower():
            raise DataError(
                f"downloaded {url} but its SHA-256 is {got}, expected {sha256.lower()}; the file was discarded "
                f"and nothing was written to {dest} (a truncated transfer, a proxy's error page or a changed mirror)"
            )
        publish(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest
