"""Gradient clipping: by value (``clip``) and by the global L2 norm (``clip_by_global_norm``).

Both are placed first in a chain, before any preconditioning, exactly where
``torch.nn.utils.clip_grad_value_`` / ``clip_grad_norm_`` sit between
``backward()`` and ``optimizer.step()``::

    tx = chain(clip_by_global_norm(1.0), adamw(lr=1e-3))

``clip_by_global_norm`` records the norm it measured (before clipping) in its
state so a training loop can log it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from descend._validation import POSITIVE, check
from descend.optim._backend import namespace, tree_namespace
from descend.optim.base import GradientTransformation, stateless
from descend.optim.tree import Tree, leaves, tree_map

# torch.nn.utils.clip_grad_norm_ adds this to the norm before dividing (it keeps the
# coefficient finite for a zero gradient and makes it slightly below 1 at the threshold).
_NORM_EPS = 1e-6


def global_norm(tree: Tree) -> float:
    """``‖g‖₂`` of all leaves of ``tree`` taken together, as a Python float.

    Computed as torch does (the L2 norm of the per-leaf L2 norms), accumulated
    in float64 whatever the leaves' dtype. An empty tree has norm 0. A NaN
    anywhere gives NaN, an inf (and no NaN) gives inf. Torch tensors are
    reduced on their device, with one transfer of the result.
    """
    xs = leaves(tree)
    xp = namespace(xs[0]) if xs else np
    if xp is not np:
        norms = [xp.linalg.vector_norm(xp.astype(x, xp.float64)) for x in xs]
        return float(xp.linalg.vector_norm(xp.stack(norms)))
    norms = [_leaf_norm(x) for x in xs]
    if not norms:
        return 0.0
    return float(np.linalg.norm(np.asarray(norms, dtype=np.float64)))


def _leaf_norm(x: Tree) -> float:
    x64 = np.asarray(x, dtype=np.float64).ravel()
    return float(np.sqrt(np.dot(x64, x64)))


def clip(max_delta: float) -> GradientTransformation:
    """Element-wise clipping by value: ``u ← min(max(u, −c), c)`` (``max_delta`` = c > 0).

    Same as ``torch.nn.utils.clip_grad_value_(params, clip_value=c)``; NaN
    entries stay NaN. Stateless.
    """
    check("clip", "max_delta", max_delta, POSITIVE)
    c = float(max_delta)

    def fn(updates: Tree, params: Tree | None) -> Tree:
        xp = tree_namespace(updates)
        return tree_map(lambda u: xp.clip(u, -c, c), updates)

    return stateless(fn)


class ClipByGlobalNormState(NamedTuple):
    global_norm: float  # ‖g‖₂ of the last gradients seen, before clipping (0.0 before the first update)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Rescale all leaves together so that their global L2 norm is at most ``max_norm``:

    .. math::
        n = \\|g\\|_2 = \\sqrt{\\textstyle\\sum_i \\|g_i\\|_2^2}, \\qquad
        c = \\frac{\\text{max\\_norm}}{n + 10^{-6}}, \\qquad
        u ← c · g \\ \\text{if}\\ c < 1 \\ \\text{else}\\ g

    This is ``torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=2)``
    to the formula, including the ``1e-6`` in the denominator (so a gradient
    whose norm equals ``max_norm`` is scaled by ``1 − 1e-6/max_norm``, not left
    alone) and its behaviour on non-finite gradients: a NaN norm makes every
    entry NaN, an inf norm makes finite entries 0 and infinite ones NaN (wrap
    the optimizer in :func:`descend.optim.guard_not_finite` to skip such
    steps). optax's ``clip_by_global_norm`` has no ``1e-6`` and differs from
    torch by that much. ``max_norm=float("inf")`` never clips and only records
    the norm.

    The state's ``global_norm`` is the norm ``n`` of the last gradients,
    before clipping (what torch's function returns).
    """
    check("clip_by_global_norm", "max_norm", max_norm, POSITIVE)
    max_norm = float(max_norm)

    def init(params: Tree) -> ClipByGlobalNormState:
        return ClipByGlobalNormState(global_norm=0.0)

    def update(updates: Tree, state: ClipByGlobalNormState, params: Tree | None = None):
        norm = global_norm(updates)
        coef = max_norm / (norm + _NORM_EPS)
        # torch multiplies by clamp(coef, max=1); multiplying by 1.0 is exact, so skipping it is the same.
        # A NaN coef (NaN norm) fails `coef < 1` but torch's clamp keeps the NaN: apply it too.
        if coef < 1.0 or math.isnan(coef):
            with np.errstate(invalid="ignore"):  # inf · 0 = NaN, as in torch, on purpose
                updates = tree_map(lambda u: u * coef, updates)
        return updates, ClipByGlobalNormState(global_norm=norm)

    return GradientTransformation(init, update)


__all__ = ["ClipByGlobalNormState", "clip", "clip_by_global_norm", "global_norm"]
