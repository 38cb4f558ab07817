"""L1 / L2 penalties on a model's weights, reported separately from the data loss.

Both return the penalty value and *add* its gradient into ``model.grads``, so
call them after ``model.backward`` (which sets the gradients)::

    loss, dlogits = dc.nn.cross_entropy(model(x), y)
    model.backward(dlogits, input_grad=False)
    reg = dc.nn.l2_penalty(model, 1e-4)      # report loss and reg separately

By default only weights are penalized: biases and norm-layer parameters are
excluded by the same rules as :meth:`Module.decay_mask`. Pass ``mask`` (a
per-element array over ``model.params``, e.g. from ``model.param_values``) to
choose otherwise.

    L2 (seed 002, ridge):  R = λ/2 · Σ w²,  ∂R/∂w = λ·w   (the coupled weight decay of torch.optim)
    L1 (lasso):            R = λ · Σ |w|,   ∂R/∂w = λ·sign(w)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from descend._validation import NONNEGATIVE, check
from descend.nn.module import Module, ShapeError


def _segments(model: Module, mask: Any) -> list[tuple[slice, Any]]:
    """Contiguous ``(slice, weight)`` runs of the buffer the penalty applies to."""
    if mask is None:
        table = model.param_table(Module.no_decay_rules(), default=1)
        return [(slice(i.offset, i.offset + i.size), None) for i in model.layout if table[i.name]]
    m = np.asarray(mask)
    if m.shape != model.params.shape:
        raise ShapeError(f"penalty: mask must have the shape of model.params {model.params.shape}, got {m.shape}")
    return [(slice(0, model.params.size), m.astype(model.dtype, copy=False))]


def l2_penalty(model: Module, lam: float, mask: Any = None) -> float:
    """``λ/2 · Σ w²`` over the weights; adds ``λ·w`` into ``model.grads``."""
    lam = float(check("l2_penalty", "lam", lam, NONNEGATIVE))
    total = 0.0
    if lam == 0.0:
        return total
    p, g = model.params, model.grads
    for sl, m in _segments(model, mask):
        w = p[sl] if m is None else p[sl] * m
        total += float(np.dot(w, p[sl]))
        g[sl] += lam * w
    return 0.5 * lam * total


def l1_penalty(model: Module, lam: float, mask: Any = None) -> float:
    """``λ · Σ |w|`` over the weights; adds ``λ·sign(w)`` into ``model.grads``."""
    lam = float(check("l1_penalty", "lam", lam, NONNEGATIVE))
    total = 0.0
    if lam == 0.0:
        return total
    p, g = model.params, model.grads
    for sl, m in _segments(model, mask):
        a = np.abs(p[sl]) if m is None else np.abs(p[sl]) * m
        total += float(np.sum(a, dtype=np.float64))
        s = np.sign(p[sl])
        g[sl] += lam * (s if m is None else s * m)
    return lam * total
