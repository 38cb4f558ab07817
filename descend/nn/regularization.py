"""L1 / L2 penalties on a model's weights, reported separately from the data loss.

Both return the penalty value and *add* its gradient into ``model.grads``, so
call them after ``model.backward`` (which sets the gradients)::

    loss, dlogits = dc.nn.cross_entropy(model(x), y)
    model.backward(dlogits, input_grad=False)
    reg = dc.nn.l2_penalty(model, 1e-4)      # report loss and reg separately

By default only weights are penalized: biases and norm-layer parameters are
excluded by the same rules as :meth:`Module.decays` (``no_decay``). Pass ``mask`` (a
per-element array over ``model.params``, e.g. from ``model.param_values``) to
choose otherwise.

    L2 (seed 002, ridge):  R = λ/2 · Σ w²,  ∂R/∂w = λ·w   (the coupled weight decay of torch.optim)
    L1 (lasso):            R = λ · Σ |w|,   ∂R/∂w = λ·sign(w)

The arithmetic is :func:`descend.optim.regularization.penalty`, the one implementation that the
Trainer's ``l1`` / ``l2`` and ``lr_find`` use too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from descend._validation import NONNEGATIVE, check
from descend.nn.module import Module, ShapeError
from descend.optim.regularization import penalty


def _segments(model: Module, mask: Any) -> list[tuple[slice, Any]]:
    """Contiguous ``(slice, weight)`` runs of the buffer the penalty applies to."""
    if mask is None:
        table = model.decays()
        return [(slice(i.offset, i.offset + i.size), None) for i in model.layout if table[i.name]]
    m = np.asarray(mask)
    if m.shape != model.params.shape:
        raise ShapeError(f"penalty: mask must have the shape of model.params {model.params.shape}, got {m.shape}")
    return [(slice(0, model.params.size), m.astype(model.dtype, copy=False))]


def l2_penalty(model: Module, lam: float, mask: Any = None) -> float:
    """``λ/2 · Σ w²`` over the weights; adds ``λ·w`` into ``model.grads``."""
    lam = float(check("l2_penalty", "lam", lam, NONNEGATIVE))
    return _apply(model, mask, l2=lam)


def l1_penalty(model: Module, lam: float, mask: Any = None) -> float:
    """``λ · Σ |w|`` over the weights; adds ``λ·sign(w)`` into ``model.grads``."""
    lam = float(check("l1_penalty", "lam", lam, NONNEGATIVE))
    return _apply(model, mask, l1=lam)


def _apply(model: Module, mask: Any, l1: float = 0.0, l2: float = 0.0) -> float:
    """:func:`descend.optim.regularization.penalty` on each run of the buffer it applies to."""
    if l1 == 0.0 and l2 == 0.0:
        return 0.0
    p, g = model.params, model.grads
    return float(sum(penalty(p[sl], g[sl], l1=l1, l2=l2, mask=m) for sl, m in _segments(model, mask)))
