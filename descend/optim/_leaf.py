"""Small per-leaf helpers shared by the layer-wise optimizers (LAMB, LARS, Muon, SOAP, ...), on both backends."""

from __future__ import annotations

from typing import Any

import numpy as np

from descend.optim._backend import namespace


def leaf_norm(x: Any) -> float:
    """``‖x‖₂`` of one array leaf (all its entries), as a Python float, in the leaf's namespace."""
    xp = namespace(x)
    if xp is np:
        flat = np.asarray(x).ravel()
        return float(np.sqrt(np.dot(flat, flat)))
    return float(xp.linalg.vector_norm(x))


def decay_is_on(weight_decay: Any) -> bool:
    """Whether a validated ``weight_decay`` (a float or a per-element array) decays anything."""
    if isinstance(weight_decay, np.ndarray):
        return bool(weight_decay.any())
    return float(weight_decay) != 0.0


def clone(x: Any) -> Any:
    """A copy of an array leaf that shares no memory and, for a torch parameter, no autograd history."""
    if isinstance(x, np.ndarray):
        return x.copy()
    detach = getattr(x, "detach", None)
    if detach is not None:  # a torch tensor (maybe a requires_grad parameter)
        return detach().clone()
    return namespace(x).asarray(x, copy=True)


__all__ = ["clone", "decay_is_on", "leaf_norm"]
