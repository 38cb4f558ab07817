"""Deterministic test problems whose gradients depend on the trajectory.

Each problem is a pair (initial params, grad function) in float64. The same
NumPy gradient function drives both descend and torch, so any difference in the
parameters comes from the optimizers alone.
"""

from __future__ import annotations

import numpy as np

_rng = np.random.default_rng(20261123)
_X = _rng.normal(size=(16, 5))
_Y = _rng.normal(size=(16, 3))
_C = np.array([0.5, 1.0, 2.0, 4.0])


def mixed_params() -> dict[str, np.ndarray]:
    """A matrix, a bias and a vector: 2-D leaves matter for Adafactor.

    They start far (distance > 4 per coordinate) from the minimum so that no
    optimizer at the test learning rates reaches it within 300 steps: at a
    minimum, adaptive methods divide rounding noise by rounding noise and two
    correct implementations drift apart chaotically.
    """
    rng = np.random.default_rng(7)
    return {
        "W": rng.normal(size=(5, 3)) + 5.0,
        "b": rng.normal(size=3) - 5.0,
        "v": rng.normal(size=4) + 6.0,
    }


def mixed_grad(p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """∇ of ½‖XW + b − Y‖²/n + 0.1·Σcos W + 0.05‖b‖² + ½Σc(v−1)² − (0.2/3)·Σcos 3v."""
    r = (_X @ p["W"] + p["b"] - _Y) / len(_X)
    return {
        "W": _X.T @ r - 0.1 * np.sin(p["W"]),
        "b": r.sum(axis=0) + 0.1 * p["b"],
        "v": _C * (p["v"] - 1.0) + 0.2 * np.sin(3.0 * p["v"]),
    }


def quadratic_params() -> np.ndarray:
    return np.array([3.0, -2.0, 1.5, 0.5])


def quadratic_grad(w: np.ndarray) -> np.ndarray:
    """∇ of ½ Σ c_i w_i² with condition number 8."""
    return _C * w


def rosenbrock_params() -> np.ndarray:
    return np.array([-1.5, 2.0])


def rosenbrock_loss(w: np.ndarray) -> float:
    x, y = w
    return float((1 - x) ** 2 + 100 * (y - x * x) ** 2)


def rosenbrock_grad(w: np.ndarray) -> np.ndarray:
    x, y = w
    return np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])
