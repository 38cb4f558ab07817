"""Checkpoints without pickle: one ``.npz`` of named arrays plus JSON metadata.

Written atomically (:func:`descend._io.atomic_write`: a temporary file in the same
directory, fsync, then ``os.replace``), so a crash or SIGKILL mid-write leaves the previous checkpoint
intact. Loaded with ``allow_pickle=False``; a truncated or foreign file raises
:class:`CheckpointError` with the path and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from descend._io import atomic_write
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
    return atomic_write(path, lambda f: np.savez(f, **payload))


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Return ``(arrays, meta)``; raise :class:`CheckpointError` on anything unreadable."""
    arrays = _read(path, None)
    return arrays, _meta(path, arrays.pop(_META_KEY, None))


def read_checkpoint_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's metadata alone (its arrays are not read); raises like :func:`load_checkpoint`."""
    return _meta(path, _read(path, _META_KEY).get(_META_KEY))


def _read(path: str | os.PathLike, only: str | None) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # Open the file ourselves: np.load leaks its handle when the zip is unreadable.
        with path.open("rb") as fh, np.load(fh, allow_pickle=False) as f:
            return {k: f[k] for k in f.files if only is None or k == only}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}: {exc})") from None


def _meta(path: str | os.PathLike, raw: np.ndarray | None) -> dict[str, Any]:
    if raw is None:
        raise CheckpointError(f"checkpoint {path} is not a descend checkpoint (no metadata)")
    try:
        meta = json.loads(raw.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} has unreadable metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"checkpoint {path} is not a descend checkpoint (format {fmt!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {meta.get('version')!r}; this descend reads version {VERSION}"
        )
    return meta


def canonical_config(config: dict[str, Any]) -> str:
    """The configuration as canonical JSON (sorted keys, no spaces; tuples are lists): equal text, equal run."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=True)


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 of :func:`canonical_config` without ``epochs`` (a run's length has its own rule on resume)."""
    rest = {k: v for k, v in config.items() if k != "epochs"}
    return hashlib.sha256(canonical_config(rest).encode()).hexdigest()


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
