"""Checkpoints without pickle: one ``.npz`` of named arrays plus JSON metadata.

Written atomically (a temporary file in the same directory, fsync, then
``os.replace``), so a crash or SIGKILL mid-write leaves the previous checkpoint
intact. Loaded with ``allow_pickle=False``; a truncated or foreign file raises
:class:`CheckpointError` with the path and what is wrong.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from descend.errors import DescendError

FORMAT = "descend-checkpoint"
VERSION = 1
_META_KEY = "__meta__"


class CheckpointError(DescendError, ValueError):
    """A checkpoint is missing, truncated, or not a descend checkpoint."""


def save_checkpoint(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write ``arrays`` and JSON-serializable ``meta`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if _META_KEY in arrays:
        raise CheckpointError(f"save_checkpoint: the array name {_META_KEY!r} is reserved")
    header = {"format": FORMAT, "version": VERSION, **meta}
    payload = dict(arrays)
    payload[_META_KEY] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Return ``(arrays, meta)``; raise :class:`CheckpointError` on anything unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # Open the file ourselves: np.load leaks its handle when the zip is unreadable.
        with path.open("rb") as fh, np.load(fh, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    raw = arrays.pop(_META_KEY, None)
    if raw is None:
        raise CheckpointError(f"checkpoint {path} is not a descend checkpoint (no metadata)")
    try:
        meta = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} has unreadable metadata ({exc})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a descend checkpoint (format {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {meta.get('version')!r}; this descend reads version {VERSION}"
        )
    return arrays, meta


def rng_state_to_json(rng: np.random.Generator) -> dict[str, Any]:
    """A JSON-safe copy of a Generator's bit-generator state (128-bit ints as strings)."""

    def enc(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: enc(v) for k, v in x.items()}
        if isinstance(x, int) and not isinstance(x, bool):
            return {"int": str(x)}
        return x

    return enc(rng.bit_generator.state)


def rng_from_json(state: dict[str, Any]) -> np.random.Generator:
    def dec(x: Any) -> Any:
        if isinstance(x, dict):
            if set(x) == {"int"}:
                return int(x["int"])
            return {k: dec(v) for k, v in x.items()}
        return x

    decoded = dec(state)
    bitgen = getattr(np.random, decoded["bit_generator"])()
    bitgen.state = decoded
    return np.random.Generator(bitgen)
