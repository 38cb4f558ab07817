"""Loss-landscape slices of real networks (Li, Xu, Taylor, Studer & Goldstein 2018).

* :func:`filter_normalized_direction`: a Gaussian direction d in parameter space rescaled **filter by
  filter**: every row of a ``Linear`` weight and every output channel of a ``Conv`` weight gets the
  norm of the same filter of θ (d_f ← d_f/‖d_f‖·‖θ_f‖); biases and norm-layer parameters get 0 (the
  paper's "ignore bias and BN"). Without it, a slice mostly shows the scale of the weights: a
  network with 10x larger weights looks 10x flatter.
* :func:`slice_1d`: L(θ + αd) for α on a grid; :func:`slice_2d`: L(θ + αd₁ + βd₂) on a grid.
* :func:`trajectory_pca`: the training path θ₀, θ₁, ..., θ_T projected on the top two principal
  directions of θ_t − θ_T (the paper's section 7): the plane in which the path moved the most;
  :func:`plane_losses` evaluates the loss on that plane, for a contour plot with the path drawn on it
  (:func:`descend.diagnostics.plots.plot_trajectory`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from descend._validation import Interval, check
from descend.diagnostics.objective import ModelObjective, as_vector
from descend.errors import ParameterError
from descend.nn.module import Module, NormLayer


def filter_normalized_direction(model: Module, point: Any = None, rng: Any = 0) -> np.ndarray:
    """A random direction with the norm of θ's filters in every filter (float64, length ``num_params``)."""
    if not isinstance(model, Module):
        raise ParameterError(f"filter_normalized_direction: model must be a descend.nn.Module, got {type(model)}")
    theta = model.params.astype(np.float64) if point is None else as_vector(
        "filter_normalized_direction", "point", point, model.num_params
    )  # fmt: skip
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    d = gen.standard_normal(theta.size)
    owners = {info.name: module for info, module, _ in model._owners()}
    for info in model.layout:
        module = owners[info.name]
        sl = slice(info.offset, info.offset + info.size)
        if len(info.shape) < 2 or isinstance(module, NormLayer):
            d[sl] = 0.0
            continue
        dv = d[sl].reshape(info.shape[0], -1)
        tv = theta[sl].reshape(info.shape[0], -1)
        dn = np.linalg.norm(dv, axis=1, keepdims=True)
        tn = np.linalg.norm(tv, axis=1, keepdims=True)
        d[sl] = (dv / np.where(dn > 0, dn, 1.0) * tn).reshape(-1)
    return d


def slice_1d(objective: ModelObjective, direction: Any, alphas: Any = None, point: Any = None) -> np.ndarray:
    """``L(θ + α d)`` for each α of ``alphas`` (default 41 values in [−1, 1])."""
    theta = objective.point if point is None else as_vector("slice_1d", "point", point, objective.size)
    d = as_vector("slice_1d", "direction", direction, objective.size)
    a = np.linspace(-1.0, 1.0, 41) if alphas is None else np.asarray(alphas, dtype=np.float64).reshape(-1)
    return np.array([objective.value(theta + float(t) * d) for t in a])


def slice_2d(
    objective: ModelObjective, d1: Any, d2: Any, alphas: Any = None, betas: Any = None, point: Any = None
) -> np.ndarray:
    """``L(θ + α d₁ + β d₂)`` on the grid, shape ``(len(betas), len(alphas))`` (rows: β), for ``contour``."""
    theta = objective.point if point is None else as_vector("slice_2d", "point", point, objective.size)
    u = as_vector("slice_2d", "d1", d1, objective.size)
    v = as_vector("slice_2d", "d2", d2, objective.size)
    a = np.linspace(-1.0, 1.0, 21) if alphas is None else np.asarray(alphas, dtype=np.float64).reshape(-1)
    b = np.linspace(-1.0, 1.0, 21) if betas is None else np.asarray(betas, dtype=np.float64).reshape(-1)
    return np.array([[objective.value(theta + float(s) * u + float(t) * v) for s in a] for t in b])


class TrajectoryPlane(NamedTuple):
    """The plane of a training path: ``origin`` (the last point), two orthonormal ``directions`` (rows),
    the path's ``coords`` in it (T × 2), and the fraction of the path's variance each direction explains."""

    origin: np.ndarray
    directions: np.ndarray
    coords: np.ndarray
    explained: np.ndarray


def trajectory_pca(snapshots: Any) -> TrajectoryPlane:
    """The top two principal directions of the path ``θ_t − θ_T`` (T ≥ 3 snapshots as rows)."""
    path = np.asarray(snapshots, dtype=np.float64)
    if path.ndim != 2 or path.shape[0] < 3:
        raise ParameterError(
            f"trajectory_pca: snapshots must be a (T, n) array of T >= 3 parameter vectors, got shape {path.shape}"
        )
    origin = path[-1].copy()
    diff = path - origin
    centered = diff - diff.mean(axis=0)
    # SVD through the T × T Gram matrix: T is small, n may be millions.
    gram = centered @ centered.T
    w, u = np.linalg.eigh(gram)
    order = np.argsort(w)[::-1][:2]
    if w[order[-1]] <= 1e-300:
        raise ParameterError("trajectory_pca: the path does not span two directions (all snapshots on a line)")
    dirs = (centered.T @ u[:, order]) / np.sqrt(w[order])
    dirs = dirs.T
    explained = w[order] / max(float(np.sum(np.clip(w, 0, None))), 1e-300)
    return TrajectoryPlane(origin, dirs, diff @ dirs.T, explained)


def plane_losses(
    objective: ModelObjective, plane: TrajectoryPlane, points: int = 25, margin: float = 0.25
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(alphas, betas, losses)`` on a ``points`` × ``points`` grid of the plane covering the path (+ margin)."""
    check("plane_losses", "points", points, Interval(2, None, integer=True))
    lo, hi = plane.coords.min(axis=0), plane.coords.max(axis=0)
    pad = margin * np.maximum(hi - lo, 1e-12)
    a = np.linspace(lo[0] - pad[0], hi[0] + pad[0], int(points))
    b = np.linspace(lo[1] - pad[1], hi[1] + pad[1], int(points))
    grid = slice_2d(objective, plane.directions[0], plane.directions[1], a, b, point=plane.origin)
    return a, b, grid
