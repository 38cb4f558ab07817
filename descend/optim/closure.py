"""Optimizers that evaluate the objective themselves: the closure API of L-BFGS and SAM.

A :class:`~descend.optim.GradientTransformation` maps one gradient to one update. L-BFGS's line
search and SAM's second gradient need to evaluate the loss and gradient at points of their own
choosing, so they take a function instead::

    def fun_and_grad(params):            # the objective at params: (loss, gradient tree)
        return loss(params), grad(params)

    opt = dc.optim.lbfgs(line_search_fn="strong_wolfe")
    result = opt.minimize(fun_and_grad, params, steps=10)      # result.params, result.state, result.loss

    state = opt.init(params)                                   # or step by step, as torch's opt.step(closure)
    params, state, loss = opt.step(fun_and_grad, params, state)

``step`` returns the loss at the parameters it started from (torch's ``step(closure)`` returns the
closure's first loss). Parameters are never modified in place: each step returns new ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from descend._validation import Interval, check
from descend.errors import ParameterError, StructureError
from descend.optim.tree import Tree, check_same_structure

State = Any
FunAndGrad = Callable[[Tree], tuple[float, Tree]]


class Minimized(NamedTuple):
    """What :meth:`ClosureOptimizer.minimize` returns."""

    params: Tree  # the parameters after the last step
    state: State  # the optimizer state after the last step (pass it to step / minimize to continue)
    loss: float  # the loss at the start of the last step (as torch's ``step`` returns it)


class ClosureOptimizer(NamedTuple):
    """``init(params) -> state`` and ``step(fun_and_grad, params, state) -> (params, state, loss)``."""

    init: Callable[[Tree], State]
    step: Callable[[FunAndGrad, Tree, State], tuple[Tree, State, float]]

    def minimize(self, fun_and_grad: FunAndGrad, params: Tree, steps: int = 1, state: State = None) -> Minimized:
        """``steps`` calls of :attr:`step` from ``params`` (and ``state``, default ``init(params)``)."""
        check("minimize", "steps", steps, Interval(1, None, integer=True))
        if not callable(fun_and_grad):
            raise ParameterError(
                f"minimize: fun_and_grad must be a callable params -> (loss, grads), got {fun_and_grad!r}"
            )
        if state is None:
            state = self.init(params)
        loss = float("nan")
        for _ in range(int(steps)):
            params, state, loss = self.step(fun_and_grad, params, state)
        return Minimized(params, state, loss)


def evaluate(fun_and_grad: FunAndGrad, params: Tree, owner: str) -> tuple[float, Tree]:
    """Call ``fun_and_grad(params)`` and check what it returns: a real loss and a tree shaped like ``params``."""
    out = fun_and_grad(params)
    if not isinstance(out, tuple) or len(out) != 2:
        raise ParameterError(
            f"{owner}: fun_and_grad must return a pair (loss, grads), got {type(out).__name__}"
            + (f" of length {len(out)}" if isinstance(out, tuple) else "")
        )
    loss, grads = out
    try:
        value = float(loss)
    except (TypeError, ValueError):
        raise ParameterError(f"{owner}: fun_and_grad must return a real loss, got {loss!r}") from None
    try:
        check_same_structure(grads, params, "grads", "params", owner)
    except StructureError as error:
        raise StructureError(f"{error} (fun_and_grad's gradient must have the structure of params)") from None
    return value, grads


__all__ = ["ClosureOptimizer", "FunAndGrad", "Minimized", "evaluate"]
