"""The gradient noise scale B_simple = tr(Σ)/|G|² (McCandlish, Kaplan, Amodei et al. 2018, "An empirical
model of large-batch training"), from gradient norms at two batch sizes.

A mini-batch gradient G_B of B examples drawn **with replacement** has E|G_B|² = |G|² + tr(Σ)/B, with G
the full-batch gradient and Σ the covariance of one example's gradient (over the data set, divided
by N). Two batch sizes b < B give two equations, solved as in the paper's appendix A.1:

.. math::
    |G|^2 ≈ \\frac{B\\,\\overline{|G_B|^2} − b\\,\\overline{|G_b|^2}}{B − b}, \\qquad
    \\operatorname{tr}Σ ≈ \\frac{\\overline{|G_b|^2} − \\overline{|G_B|^2}}{1/b − 1/B},

each unbiased; B_simple is their ratio (averages over ``draws`` batches of each size). B_simple is the
batch size above which a larger batch stops buying proportionally faster progress: at B ≪ B_simple
the step is dominated by noise, at B ≫ B_simple by the curvature.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from descend._validation import Interval, check
from descend.diagnostics.objective import ModelObjective
from descend.errors import ParameterError


class NoiseScale(NamedTuple):
    """B_simple with its ingredients: tr Σ, |G|² (both unbiased estimates), the mean squared gradient
    norms at the two batch sizes, the sizes and the number of batches of each."""

    b_simple: float
    trace_sigma: float
    grad_sq: float
    small_sq: float
    big_sq: float
    small: int
    big: int
    draws: int


def noise_scale_from_norms(small_sq: float, big_sq: float, small: int, big: int) -> tuple[float, float, float]:
    """``(B_simple, tr Σ, |G|²)`` from mean squared gradient norms at batch sizes ``small`` < ``big``."""
    if not big > small >= 1:
        raise ParameterError(f"noise scale: the batch sizes must satisfy 1 <= small < big, got {small} and {big}")
    grad_sq = (big * big_sq - small * small_sq) / (big - small)
    trace = (small_sq - big_sq) / (1.0 / small - 1.0 / big)
    b = trace / grad_sq if grad_sq > 0 else math.inf
    return float(b), float(trace), float(grad_sq)


def gradient_noise_scale(
    objective: ModelObjective,
    point: Any = None,
    *,
    small: int = 32,
    big: int | None = None,
    draws: int = 8,
    rng: Any = 0,
) -> NoiseScale:
    """B_simple at ``point`` (default the objective's) from ``draws`` batches of ``small`` and of ``big`` examples.

    ``big`` defaults to min(16·small, N). Batches are drawn with replacement (the estimator's
    assumption). Cost: ``draws·(small + big)`` per-example gradients. When the full gradient is
    smaller than the noise can resolve, |G|² may come out ≤ 0 and B_simple is inf.
    """
    owner = "gradient_noise_scale"
    if not isinstance(objective, ModelObjective):
        raise ParameterError(f"{owner}: objective must be a ModelObjective, got {type(objective).__name__}")
    n = objective.num_examples
    check(owner, "small", small, Interval(1, None, integer=True))
    big = min(16 * int(small), n) if big is None else big
    check(owner, "big", big, Interval(int(small) + 1, None, integer=True))
    check(owner, "draws", draws, Interval(1, None, integer=True))
    theta = objective.point if point is None else np.asarray(point, dtype=np.float64)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    sq = {}
    for size in (int(small), int(big)):
        norms = [
            float(np.sum(objective.batch_gradient(theta, gen.integers(0, n, size)) ** 2)) for _ in range(int(draws))
        ]
        sq[size] = float(np.mean(norms))
    b, trace, grad_sq = noise_scale_from_norms(sq[int(small)], sq[int(big)], int(small), int(big))
    return NoiseScale(b, trace, grad_sq, sq[int(small)], sq[int(big)], int(small), int(big), int(draws))


def exact_noise_scale(objective: ModelObjective, point: Any = None) -> tuple[float, float, float]:
    """``(B_simple, tr Σ, |G|²)`` from every example's own gradient (N gradients: small data sets, tests)."""
    theta = objective.point if point is None else np.asarray(point, dtype=np.float64)
    n = objective.num_examples
    grads = np.stack([objective.batch_gradient(theta, np.array([i])) for i in range(n)])
    mean = grads.mean(axis=0)
    trace = float(np.sum((grads - mean) ** 2) / n)
    grad_sq = float(mean @ mean)
    return trace / grad_sq, trace, grad_sq
