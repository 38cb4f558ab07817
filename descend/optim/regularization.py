"""Penalties that act through the gradient: L2 (weight decay) and L1.

*Coupled* penalties are added to the gradient before any preconditioning, as
``torch.optim.Adam(weight_decay=λ)`` and the L2 penalty ``λ/2·‖θ‖²`` of seed 002
do. *Decoupled* weight decay (AdamW, Loshchilov & Hutter 2019) is the same
``add_decayed_weights`` placed after the preconditioner and before
``scale_by_learning_rate``, so the decay is ``η·λ·θ`` whatever Adam does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from descend._validation import NONNEGATIVE, WEIGHT_DECAY, check
from descend.errors import ParameterError
from descend.optim._backend import namespace
from descend.optim.base import GradientTransformation, identity, stateless
from descend.optim.tree import Tree, tree_map


def _require_params(owner: str, params: Tree | None) -> Tree:
    if params is None:
        raise ParameterError(f"{owner}: update needs params (call tx.update(grads, state, params))")
    return params


def add_decayed_weights(weight_decay: float | np.ndarray = 0.0) -> GradientTransformation:
    """L2 / weight decay: ``u ← u + λ·θ`` (λ = ``weight_decay``).

    Placed first in a chain it is torch's coupled ``weight_decay`` (the gradient
    of ``λ/2·‖θ‖²``); placed after an adaptive scaling it is AdamW's decoupled
    decay. λ may be an array broadcastable to each parameter leaf: with a
    model's flat buffer, ``1e-2 * model.decay_mask()`` decays the weights and
    leaves biases and norm layers alone (torch needs two parameter groups).
    """
    check("add_decayed_weights", "weight_decay", weight_decay, WEIGHT_DECAY)
    if isinstance(weight_decay, np.ndarray):
        if not weight_decay.any():
            return identity()
        per_dtype: dict[np.dtype, np.ndarray] = {}
        fits: set[tuple[int, ...]] = set()

        def decay(u: np.ndarray, p: np.ndarray) -> np.ndarray:
            if p.shape not in fits:
                try:
                    if np.broadcast_shapes(weight_decay.shape, p.shape) != p.shape:
                        raise ValueError
                except ValueError:
                    raise ParameterError(
                        f"add_decayed_weights: a weight_decay array must broadcast to each parameter, got shape "
                        f"{weight_decay.shape} for a parameter of shape {p.shape}; with a model's named parameters "
                        "route the decay by rules instead: partition({'decay': opt(weight_decay=λ), 'no_decay': "
                        "opt(weight_decay=0)}, Rules(...)) or descend train --no-decay"
                    ) from None
                fits.add(p.shape)
            wd = per_dtype.get(p.dtype)
            if wd is None:  # cast once per dtype, so float32 params stay float32
                wd = per_dtype[p.dtype] = weight_decay.astype(p.dtype)
            return u + wd * p
    else:
        lam = float(weight_decay)
        if lam == 0.0:
            return identity()

        def decay(u: np.ndarray, p: np.ndarray) -> np.ndarray:
            return u + lam * p

    def fn(updates: Tree, params: Tree | None) -> Tree:
        params = _require_params("add_decayed_weights", params)
        return tree_map(decay, updates, params)

    return stateless(fn)


def add_l1_penalty(l1: float = 0.0) -> GradientTransformation:
    """L1 / lasso: ``u ← u + λ₁·sign(θ)``, the (sub)gradient of ``λ₁·‖θ‖₁``."""
    check("add_l1_penalty", "l1", l1, NONNEGATIVE)
    lam = float(l1)
    if lam == 0.0:
        return identity()

    def fn(updates: Tree, params: Tree | None) -> Tree:
        params = _require_params("add_l1_penalty", params)
        return tree_map(lambda u, p: u + l1_gradient(p, lam), updates, params)

    return stateless(fn)


def add_l2_penalty(l2: float = 0.0) -> GradientTransformation:
    """Coupled L2: ``u ← u + λ₂·θ``, the gradient of ``λ₂/2·‖θ‖²`` (alias of coupled weight decay)."""
    check("add_l2_penalty", "l2", l2, NONNEGATIVE)
    return add_decayed_weights(l2)


def l1_gradient(p: Any, lam: float) -> Any:
    """``λ₁·sign(θ)``, the (sub)gradient of ``λ₁·‖θ‖₁`` (in θ's array namespace)."""
    s = namespace(p).sign(p)
    try:
        s *= lam  # in place on the new array: one temporary
    except (TypeError, RuntimeError):  # integer parameters: the product is float
        return lam * namespace(p).sign(p)
    return s


def penalty(
    params: np.ndarray,
    grads: np.ndarray | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
    mask: np.ndarray | None = None,
    *,
    value: bool = True,
) -> float:
    """The L1 + L2 penalty of one parameter array; its gradient is added into ``grads`` in place.

    ::

        R = λ₁ · Σ m·|θ|  +  λ₂/2 · Σ m·θ²          ∂R/∂θ = λ₁ · m·sign(θ)  +  λ₂ · m·θ

    ``m`` is ``mask`` (e.g. ``model.decay_mask()``: 1 for weights, 0 for biases
    and norm layers) or 1. The one implementation of the penalty in descend:
    ``Trainer(l1=, l2=)``, ``dc.lab.lr_find``, ``dc.nn.l1_penalty`` /
    ``l2_penalty`` call it, and :func:`add_l1_penalty` / :func:`add_l2_penalty`
    apply the same gradient as chain links. Returns R (0.0 with
    ``value=False``, which skips those two passes).
    ``params`` and ``grads`` may be views (a slice of a model's flat buffer).
    """
    w = params
    wm = w if mask is None else w * mask  # the one temporary (none without a mask)
    total = 0.0
    if value:
        if l2:
            total += 0.5 * l2 * float(np.dot(wm.reshape(-1), w.reshape(-1)))
        if l1:
            total += l1 * float(np.abs(wm).sum())  # NumPy's pairwise sum, in θ's dtype
    if grads is not None:
        if l2:
            if wm is w:
                grads += l2 * w
            else:
                wm *= l2  # our own temporary: λ₂·(m·θ), no second one
                grads += wm
        if l1:
            s = l1_gradient(w, l1)
            if mask is not None:
                s *= mask
            grads += s
    return total
