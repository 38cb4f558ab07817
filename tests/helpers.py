"""Small data sets shared by the CLI and lab tests."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def blobs(path: Path, n: int = 240, classes: int = 3, features: int = 5, *, spread: float = 3.0, seed: int = 0) -> Path:
    """Gaussian blobs around ``classes`` random centres (std ``spread``) as .npz (x float32, y); separable at 3."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centers = rng.normal(0, spread, size=(classes, features))
    x = centers[y] + rng.normal(0, 1, size=(n, features))
    np.savez(path, x=x.astype(np.float32), y=y)
    return path


def wait_for(predicate, timeout: float, what: str) -> None:
    """Poll ``predicate`` every 20 ms; fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def csv_rows(path: Path) -> int:
    """Data rows of a CSV file written so far (0 before it exists)."""
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0
