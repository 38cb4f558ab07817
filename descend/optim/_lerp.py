"""``lerp``: the exponential moving average in torch's exact formula.

``torch.lerp(start, end, w)`` evaluates ``start + w·(end − start)`` when
``|w| < 0.5`` and ``end − (end − start)·(1 − w)`` otherwise. The two are equal in
exact arithmetic; choosing the same branch as torch keeps moving averages
(``m ← β·m + (1−β)·g`` written as ``lerp(m, g, 1−β)``) within an ulp of torch,
and makes ``w = 1`` return ``end`` exactly. Plain arithmetic, so it runs on
NumPy arrays and torch tensors alike.
"""

from __future__ import annotations

from typing import Any


def lerp(start: Any, end: Any, weight: float) -> Any:
    """``start + weight·(end − start)`` in torch's branch (``weight`` a Python float)."""
    weight = float(weight)
    diff = end - start
    if abs(weight) < 0.5:
        return start + weight * diff
    return end - diff * (1.0 - weight)
