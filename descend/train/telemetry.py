"""Training telemetry: global and per-layer gradient norms, update-to-weight ratios.

A *layer* is the parameter name up to its last dot (``"0.weight"`` and
``"0.bias"`` belong to layer ``"0"``). Because a model's parameters live in one
flat buffer and a layer's parameters are adjacent in it, every per-layer
quantity is one ``np.add.reduceat`` over the squared buffer.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class LayerSlices(NamedTuple):
    names: list[str]  # layer names in buffer order
    starts: np.ndarray  # offset of each layer's first parameter


def layer_slices(layout) -> LayerSlices:
    """Group a model's ``layout`` (name, offset, shape, size) into contiguous layers."""
    names: list[str] = []
    starts: list[int] = []
    for info in layout:
        layer = info.name.rsplit(".", 1)[0] if "." in info.name else info.name
        if not names or names[-1] != layer:
            names.append(layer)
            starts.append(info.offset)
    return LayerSlices(names, np.asarray(starts, dtype=np.intp))


def segment_norms(x: np.ndarray, slices: LayerSlices) -> np.ndarray:
    """L2 norm of each layer's segment of the flat buffer ``x`` (float64 accumulation)."""
    if len(slices.names) == 0:
        return np.zeros(0)
    sq = np.square(x, dtype=np.float64)
    return np.sqrt(np.add.reduceat(sq, slices.starts))


def global_norm(x: np.ndarray) -> float:
    """‖x‖₂ from one BLAS dot in x's own dtype: it runs every step, so no float64 copy of the buffer.

    BLAS accumulates in blocked partial sums, so float32 keeps about 1e-6 relative accuracy at 1M
    elements (telemetry only).
    """
    return float(np.sqrt(np.dot(x, x)))
