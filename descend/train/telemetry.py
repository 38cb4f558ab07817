"""Training telemetry: global and per-layer gradient norms, update-to-weight ratios.

A *layer* is a parameter name up to its last dot: the model's named
parameters ``"0.weight"`` and ``"0.bias"`` belong to layer ``"0"``, so the
columns of ``metrics.csv`` (``grad_norm/0``, ``update_ratio/0``) are named by
the parameter names the optimizer sees. Because a model's parameters live in
one flat buffer and a layer's parameters are adjacent in it, every per-layer
quantity of the buffer is one ``np.add.reduceat`` over its squares; an
optimizer's update, a tree ``{name: array}`` like the parameters, is summed
leaf by leaf into the same layers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np


class LayerSlices(NamedTuple):
    names: list[str]  # layer names in buffer order
    starts: np.ndarray  # offset of each layer's first parameter


def layer_of(name: str) -> str:
    """The layer a parameter belongs to: its name up to the last dot (``"1.weight"`` -> ``"1"``)."""
    return name.rsplit(".", 1)[0] if "." in name else name


def layer_slices(layout: Iterable[Any]) -> LayerSlices:
    """Group a model's ``layout`` (name, offset, shape, size) into contiguous layers."""
    names: list[str] = []
    starts: list[int] = []
    for info in layout:
        layer = layer_of(info.name)
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


def tree_norms(tree: Any, slices: LayerSlices) -> np.ndarray:
    """L2 norm of each layer of a named tree (``{name: array}``, e.g. an update), or of a flat buffer.

    Leaves are assigned to layers by name (:func:`layer_of`); float64 accumulation.
    """
    if isinstance(tree, np.ndarray):
        return segment_norms(tree, slices)
    index = {name: i for i, name in enumerate(slices.names)}
    sums = np.zeros(len(slices.names))
    for name, leaf in tree.items():
        sums[index[layer_of(name)]] += float(np.square(leaf, dtype=np.float64).sum())
    return np.sqrt(sums)


def global_norm(x: np.ndarray) -> float:
    """‖x‖₂ from one BLAS dot in x's own dtype: it runs every step, so no float64 copy of the buffer.

    BLAS accumulates in blocked partial sums, so float32 keeps about 1e-6 relative accuracy at 1M
    elements (telemetry only).
    """
    return float(np.sqrt(np.dot(x, x)))
