"""The Hessian of a training loss as a linear operator: Hessian-vector products without forming H.

Method: a **central difference of gradients in float64**,

.. math::
    H v ≈ \\frac{∇L(θ + t v) − ∇L(θ − t v)}{2t},
    \\qquad t = h · \\max(‖θ‖, 1) / ‖v‖, \\quad h = 10^{-5}\\ (\\texttt{step}),

two gradient evaluations per product (plus one forward pass per point to freeze the kinks of
ReLU / max-pool layers, see :mod:`descend.diagnostics.objective`). Its error is
``O(t²·‖∇³L‖)`` (truncation) plus ``O(ε·‖∇L‖/t)`` (rounding, ε = 2.2e-16): with h = 1e-5 both are
near 1e-10 relative. Measured (``tests/diagnostics/test_hessian.py``): the relative error of Hv
against ``torch.autograd.functional.hvp`` is below 1e-8 on tanh and ReLU MLPs and a CNN with max
pooling, and the Hessian formed column by column from these products matches torch's exact
Hessian to 1e-8 relative (Frobenius). A product costs 2 gradient evaluations; ``benchmarks/hvp.py``
measures it against one gradient.

>>> obj = ModelObjective(model, x, y, "cross_entropy")
>>> H = HessianOperator(obj)                # at the model's current parameters
>>> Hv = H @ v                               # or H.matvec(v)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from descend._validation import Interval, check
from descend.diagnostics.objective import FunctionObjective, ModelObjective, as_vector
from descend.errors import ParameterError

#: The relative step h of the central difference (see the module docstring).
DEFAULT_STEP = 1e-5


class HessianOperator:
    """``H = ∇²L(θ₀)`` at a fixed point ``θ₀`` as a symmetric linear operator of size ``n``.

    ``objective``: a :class:`ModelObjective` or :class:`FunctionObjective`; ``point``: θ₀ (default:
    the objective's own point, the model's parameters). Counts ``matvecs`` and, through the
    objective, ``gradient_evaluations``.
    """

    def __init__(self, objective: ModelObjective | FunctionObjective, point: Any = None, *, step: float = DEFAULT_STEP):
        if not isinstance(objective, ModelObjective | FunctionObjective):
            raise ParameterError(
                "HessianOperator: objective must be a ModelObjective or FunctionObjective, "
                f"got {type(objective).__name__}"
            )
        check("HessianOperator", "step", step, Interval(0, 1e-2, closed="right"))
        self.objective = objective
        self.size = objective.size
        self.point = (
            objective.point.copy() if point is None else as_vector("HessianOperator", "point", point, self.size)
        )
        self.step = float(step)
        self.matvecs = 0
        self._scale = max(float(np.linalg.norm(self.point)), 1.0)
        self._token = objective.freeze(self.point)
        self._gradient: np.ndarray | None = None

    def _frozen(self) -> None:
        """Several operators may share one objective: re-record the kink patterns if another one froze it since."""
        if self.objective.frozen_token != self._token:
            self._token = self.objective.freeze(self.point)

    @property
    def gradient_evaluations(self) -> int:
        return self.objective.gradient_evaluations

    @property
    def shape(self) -> tuple[int, int]:
        return (self.size, self.size)

    def gradient(self) -> np.ndarray:
        """``∇L(θ₀)`` (computed once)."""
        if self._gradient is None:
            self._frozen()
            self._gradient = self.objective.gradient(self.point, frozen=True)
        return self._gradient.copy()

    def matvec(self, v: Any) -> np.ndarray:
        """``H v`` (float64)."""
        v = np.asarray(v, dtype=np.float64)
        if v.shape != (self.size,):
            raise ParameterError(f"HessianOperator: v must have shape ({self.size},), got {v.shape}")
        norm = float(np.linalg.norm(v))
        self.matvecs += 1
        if norm == 0.0:
            return np.zeros(self.size)
        t = self.step * self._scale / norm
        self._frozen()
        plus = self.objective.gradient(self.point + t * v, frozen=True)
        minus = self.objective.gradient(self.point - t * v, frozen=True)
        return (plus - minus) / (2.0 * t)

    __matmul__ = matvec

    def dense(self) -> np.ndarray:
        """The full Hessian, column by column (``H e_i``; n products: small models only), symmetrized."""
        if self.size > 20_000:
            raise ParameterError(
                f"HessianOperator.dense: {self.size} parameters need {self.size} products and "
                f"{self.size**2 * 8 / 2**30:.1f} GiB; use the spectrum functions (at most 20000 parameters)"
            )
        eye = np.zeros(self.size)
        cols = np.empty((self.size, self.size))
        for i in range(self.size):
            eye[i] = 1.0
            cols[:, i] = self.matvec(eye)
            eye[i] = 0.0
        return 0.5 * (cols + cols.T)


class PreconditionedOperator:
    """``P^{-1/2} H P^{-1/2}`` for a diagonal preconditioner ``P > 0``: its eigenvalues are those of P⁻¹H.

    For Adam, P = (1 − β₁ᵗ)(√v̂ₜ + ε) (:func:`adam_preconditioner`) makes the largest of them the
    *preconditioned sharpness* of Cohen et al. (2022), which settles near (2 + 2β₁)/((1 − β₁)η).
    """

    def __init__(self, operator: HessianOperator, diagonal: Any):
        p = as_vector("PreconditionedOperator", "diagonal", diagonal, operator.size)
        if np.any(p <= 0):
            raise ParameterError(
                f"PreconditionedOperator: the preconditioner must be > 0 everywhere, got min {float(p.min()):.3g}"
            )
        self.operator = operator
        self.size = operator.size
        self.diagonal = p
        self._scale = 1.0 / np.sqrt(p)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.size, self.size)

    @property
    def gradient_evaluations(self) -> int:
        return self.operator.gradient_evaluations

    def matvec(self, v: Any) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        return self._scale * self.operator.matvec(self._scale * v)

    __matmul__ = matvec


def adam_preconditioner(
    state: Any, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, names: Any = None
) -> np.ndarray:
    """Adam's diagonal preconditioner ``P = (1 − β₁ᵗ)(√(vₜ/(1 − β₂ᵗ)) + ε)`` from an optimizer state.

    ``state``: the state of ``descend.optim.adam`` / ``adamw`` (or any chain holding one
    ``ScaleByAdamState``) over a flat parameter vector, or over a tree of arrays (a dict keyed by
    parameter names is laid out in the order of ``names``, e.g. ``[p.name for p in model.layout]``;
    other trees in their own order). Adam's step is ``−η P⁻¹ mₜ`` with ``mₜ`` the
    exponential average of gradients, so P⁻¹H is the matrix whose largest eigenvalue its stability
    depends on (Cohen et al. 2022, "Adaptive gradient methods at the edge of stability").
    """
    from descend.optim.adam import ScaleByAdamState

    found = [s for s in _walk(state) if isinstance(s, ScaleByAdamState)]
    if not found:
        raise ParameterError(
            "adam_preconditioner: the optimizer state holds no Adam state (ScaleByAdamState); preconditioned "
            "sharpness is defined here for adam and adamw"
        )
    adam = found[0]
    b1, b2 = float(betas[0]), float(betas[1])
    t = max(int(adam.count), 1)
    v = _flat(adam.exp_avg_sq if adam.max_exp_avg_sq is None else adam.max_exp_avg_sq, names)
    return (1.0 - b1**t) * (np.sqrt(v / (1.0 - b2**t)) + float(eps))


def _flat(tree: Any, names: Any) -> np.ndarray:
    if isinstance(tree, dict):
        keys = list(names) if names is not None and set(names) == set(tree) else list(tree)
        return np.concatenate([_flat(tree[k], None) for k in keys]) if keys else np.zeros(0)
    if isinstance(tree, list | tuple):
        return np.concatenate([_flat(v, None) for v in tree]) if tree else np.zeros(0)
    return np.asarray(tree, dtype=np.float64).reshape(-1)


def _walk(state: Any):
    yield state
    if isinstance(state, tuple | list):
        for child in state:
            yield from _walk(child)
    elif isinstance(state, dict):
        for child in state.values():
            yield from _walk(child)
