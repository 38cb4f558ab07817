"""SAM (Foret et al. 2021, "Sharpness-Aware Minimization") and ASAM (Kwon et al. 2021, adaptive SAM).

The reference is ``pytorch_optimizer.SAM`` 4.1.0 (``adaptive=True`` is ASAM), whose keyword names and
defaults these take. SAM needs the gradient at a second, perturbed point each step, so it is a
:class:`~descend.optim.closure.ClosureOptimizer` (``step(fun_and_grad, params, state)``) around any
:class:`~descend.optim.GradientTransformation`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from descend._validation import BOOL, NONNEGATIVE, check
from descend.optim._backend import namespace, ndim
from descend.optim._leaf import leaf_norm
from descend.optim.base import GradientTransformation, apply_updates
from descend.optim.closure import ClosureOptimizer, FunAndGrad, evaluate
from descend.optim.learning_rate import ScalarOrSchedule
from descend.optim.masking import IS_TRANSFORMATION
from descend.optim.tree import Tree, leaves, tree_map

State = Any


def centralize(g: Any) -> Any:
    """Gradient centralisation (Yong et al. 2020): a leaf with 2+ axes minus its mean over all axes but the first."""
    if ndim(g) <= 1:
        return g
    xp = namespace(g)
    return g - xp.mean(g, axis=tuple(range(1, ndim(g))), keepdims=True)


class SharpnessAware(NamedTuple):
    """A SAM optimizer: a :class:`ClosureOptimizer` that also exposes its two halves for training loops
    that evaluate the gradient themselves (``descend.train.Trainer``)."""

    init: Any  # params -> the wrapped optimizer's state
    step: Any  # (fun_and_grad, params, state) -> (params, state, loss)
    perturbation: Any  # (grads, params) -> ε, the offset of the point where the second gradient is taken
    optimizer: GradientTransformation  # the wrapped optimizer, fed the second gradient at the original params

    def minimize(self, fun_and_grad: FunAndGrad, params: Tree, steps: int = 1, state: State = None):
        return ClosureOptimizer.minimize(self, fun_and_grad, params, steps, state)  # type: ignore[arg-type]

    @property
    def update(self):
        """The wrapped optimizer's ``update``, *without* SAM's perturbation: for one-gradient loops that only
        need an approximation (``descend lr-find`` sweeps the base optimizer's learning rate)."""
        return self.optimizer.update


def sam(
    optimizer: GradientTransformation,
    rho: float = 0.05,
    adaptive: bool = False,
    use_gc: bool = False,
    perturb_eps: float = 1e-12,
) -> SharpnessAware:
    """SAM / ASAM around ``optimizer`` (``pytorch_optimizer.SAM`` 4.1.0)::

        g = ∇L(θ)                                   (the first evaluation; its loss is returned)
        T = |θ| (adaptive=True, ASAM) or 1           (per entry)
        ε = ρ·T²·g / (‖T·g‖₂ + ε₀)                   (rho = ρ, perturb_eps = ε₀; the norm over all leaves)
        g' = ∇L(θ + ε)                              (the second evaluation)
        θ ← θ + optimizer.update(g', θ)              (the wrapped optimizer's step, from θ)

    Seed 001's gradient descent steps along ∇L(θ); SAM steps along the gradient at the worst point of
    a ρ-ball (to first order), which favours flat minima; ASAM makes the ball scale-invariant per
    weight. ``use_gc`` centralises the first gradient of matrices before the perturbation (after its
    norm is taken, as pytorch-optimizer does). pytorch-optimizer takes the norm in float32; here in
    float64. Two gradient evaluations per step: ``step(fun_and_grad, params, state)`` (see
    :mod:`descend.optim.closure`); ``descend.train.Trainer`` takes a SAM optimizer too.
    """
    owner = "sam"
    check(owner, "optimizer", optimizer, IS_TRANSFORMATION)
    check(owner, "rho", rho, NONNEGATIVE)
    check(owner, "adaptive", adaptive, BOOL)
    check(owner, "use_gc", use_gc, BOOL)
    check(owner, "perturb_eps", perturb_eps, NONNEGATIVE)
    rho, eps0 = float(rho), float(perturb_eps)

    def perturbation(grads: Tree, params: Tree) -> Tree:
        if adaptive:
            weighted = tree_map(lambda g, p: g * namespace(p).abs(p), grads, params)
        else:
            weighted = grads
        norm = math.sqrt(sum(leaf_norm(w) ** 2 for w in leaves(weighted))) + eps0
        factor = rho / norm
        if use_gc:
            grads = tree_map(centralize, grads)
        if adaptive:
            return tree_map(lambda g, p: (p * p) * g * factor, grads, params)
        return tree_map(lambda g: g * factor, grads)

    def step(fun_and_grad: FunAndGrad, params: Tree, state: State):
        loss, grads = evaluate(fun_and_grad, params, owner)
        perturbed = apply_updates(params, perturbation(grads, params))
        _, grads2 = evaluate(fun_and_grad, perturbed, owner)
        updates, state = optimizer.update(grads2, state, params)
        return apply_updates(params, updates), state, loss

    return SharpnessAware(optimizer.init, step, perturbation, optimizer)


def sam_sgd(
    lr: ScalarOrSchedule = 1e-3,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    rho: float = 0.05,
    adaptive: bool = False,
    use_gc: bool = False,
    perturb_eps: float = 1e-12,
) -> SharpnessAware:
    """SAM around momentum SGD, ``sam(sgd(lr, momentum, weight_decay=..., nesterov=...), rho, ...)``: the
    configuration-file form (``descend train --optimizer sam``; ``asam`` sets ``adaptive=True, rho=0.5``,
    Kwon et al.'s setting)."""
    from descend.optim.alias import sgd

    return sam(sgd(lr, momentum, weight_decay=weight_decay, nesterov=nesterov), rho, adaptive, use_gc, perturb_eps)


__all__ = ["SharpnessAware", "centralize", "sam", "sam_sgd"]
