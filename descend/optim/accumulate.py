"""Gradient accumulation: ``accumulate(inner, every_k)``, one optimizer step per k micro-batches.

With a memory budget of ``B`` samples per forward/backward and a wanted batch
of ``k·B``, call ``update`` once per micro-batch; every k-th call steps the
optimizer with the mean of the k gradients, which is the gradient of the large
batch when every micro-batch loss is a mean over ``B`` samples::

    tx = accumulate(adamw(lr=1e-3), every_k=4)
"""

from __future__ import annotations

from typing import Any, NamedTuple

from descend._validation import Interval, check
from descend.optim._backend import tree_namespace
from descend.optim.base import GradientTransformation
from descend.optim.masking import IS_TRANSFORMATION
from descend.optim.tree import Tree, check_same_structure, tree_map, tree_zeros_like

State = Any


class AccumulateState(NamedTuple):
    mini_step: int  # micro-batches accumulated since the last inner step, in [0, every_k)
    acc_grads: Tree  # Σ of those micro-batch gradients (zeros after an inner step)
    inner_state: State  # the inner transformation's state (changes on every every_k-th call only)


def accumulate(inner: GradientTransformation, every_k: int) -> GradientTransformation:
    """Call ``inner`` on the mean gradient of every ``every_k`` = k consecutive calls:

    .. math::
        \\bar g = \\frac{1}{k} \\sum_{j=1}^{k} g_j, \\qquad
        u_j = 0 \\ (j < k), \\qquad u_k = \\text{inner}(\\bar g)

    The first k − 1 calls of each cycle return zero updates and leave the inner
    state untouched (the parameters do not move, so ``inner`` sees the same
    params it would after one step on the large batch); the k-th returns
    ``inner``'s update for ``ḡ`` and resets the sum. ``accumulate(tx, k)`` on k
    micro-batches is therefore exactly ``tx`` on their mean gradient, step
    counter and learning-rate schedule included (they count optimizer steps,
    not micro-batches). The sum is kept in the parameters' dtype and divided
    once by k. Same as optax's ``MultiSteps`` (which keeps a running mean
    instead of a sum); torch users get this by calling ``backward()`` k times
    on ``loss / k`` before ``step()``.

    Wrap it in :func:`descend.optim.guard_not_finite` to drop a micro-batch
    with a NaN gradient instead of poisoning the sum.
    """
    owner = "accumulate"
    check(owner, "inner", inner, IS_TRANSFORMATION)
    check(owner, "every_k", every_k, Interval(1, None, integer=True))
    k = int(every_k)
    kf = float(k)

    def init(params: Tree) -> AccumulateState:
        return AccumulateState(mini_step=0, acc_grads=tree_zeros_like(params), inner_state=inner.init(params))

    def update(updates: Tree, state: AccumulateState, params: Tree | None = None):
        check_same_structure(updates, state.acc_grads, "grads", "accumulated grads", owner)
        xp = tree_namespace(updates)
        # asarray(..., dtype): the sum stays in the params' dtype (and 0-d leaves stay arrays) for state I/O
        acc = tree_map(lambda a, g: xp.asarray(a + g, dtype=a.dtype), state.acc_grads, updates)
        if state.mini_step + 1 < k:
            return tree_zeros_like(updates), AccumulateState(state.mini_step + 1, acc, state.inner_state)
        mean = tree_map(lambda a: a / kf, acc)
        updates, inner_state = inner.update(mean, state.inner_state, params)
        return updates, AccumulateState(0, tree_zeros_like(state.acc_grads), inner_state)

    return GradientTransformation(init, update)


__all__ = ["AccumulateState", "accumulate"]
