"""Small synthetic IDX files written byte by byte (independent of descend.data.idx.write_idx)."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray, code: int, be_dtype: str) -> bytes:
    """The IDX encoding of ``array`` built by hand: 0x00 0x00, type code, ndim, big-endian dims, big-endian data."""
    head = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return head + array.astype(be_dtype).tobytes()


def fake_images(n_train: int = 20, n_test: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }


def write_fake_set(directory: Path, *, gz: bool = True, seed: int = 0, **sizes: int) -> dict[str, np.ndarray]:
    """Write the four MNIST-style files into ``directory``; return the arrays by file stem."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = fake_images(seed=seed, **sizes)
    for stem, arr in arrays.items():
        raw = idx_bytes(arr, 0x08, "u1")
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(raw, mtime=0))
        else:
            (directory / stem).write_bytes(raw)
    return arrays


def sha256s(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("*.gz"))}
