"""Telemetry norms against float64 NumPy references."""

from __future__ import annotations

import numpy as np

from descend.nn import mlp
from descend.train.telemetry import global_norm, layer_slices, segment_norms


def test_global_norm_of_a_float32_buffer_matches_float64() -> None:
    x = np.random.default_rng(0).normal(size=1_000_003).astype(np.float32) * 1e3
    exact = np.sqrt(np.sum(x.astype(np.float64) ** 2))
    assert abs(global_norm(x) - exact) <= 1e-5 * exact  # float32 BLAS dot: ~1e-6 at 1M elements
    assert global_norm(np.zeros(5, np.float32)) == 0.0


def test_segment_norms_are_the_norms_of_each_layer() -> None:
    model = mlp(7, (5, 3), 2, seed=0)
    slices = layer_slices(model.layout)
    norms = segment_norms(model.params, slices)
    weights = model.state_dict()
    for name, value in zip(slices.names, norms, strict=True):
        own = [v for k, v in weights.items() if k.split(".")[0] == name]
        np.testing.assert_allclose(value, np.sqrt(sum(np.sum(v.astype(np.float64) ** 2) for v in own)), rtol=1e-12)
