"""Small networks and data sets shared by the diagnostics tests (float64 twins in torch: twin.py)."""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc


def blobs(n: int, features: int, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centers = rng.standard_normal((classes, features)) * 1.5
    x = centers[y] + rng.standard_normal((n, features))
    return x.astype(np.float32), y.astype(np.int64)


def tanh_mlp() -> dc.nn.Sequential:
    return dc.nn.mlp(4, (6,), 3, activation="tanh", seed=1)


def relu_mlp() -> dc.nn.Sequential:
    return dc.nn.mlp(4, (8, 5), 3, activation="relu", seed=2)


def small_cnn() -> dc.nn.Sequential:
    return dc.nn.Sequential(
        dc.nn.Reshape(1, 6, 6),
        dc.nn.Conv2d(1, 2, 3, padding=1),
        dc.nn.ReLU(),
        dc.nn.MaxPool2d(2),
        dc.nn.Flatten(),
        dc.nn.Linear(18, 3),
        rng=3,
    )


@pytest.fixture
def data4() -> tuple[np.ndarray, np.ndarray]:
    return blobs(40, 4)


@pytest.fixture
def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    return rng.standard_normal((24, 36)).astype(np.float32), rng.integers(0, 3, 24)
