"""Adafactor (Shazeer & Stern 2018) as ``torch.optim.Adafactor`` computes it: ``scale_by_adafactor``.

The second moment of a matrix-shaped leaf is stored factored, as a row vector
and a column vector (memory ``n + m`` instead of ``n·m``); the step is relative
to the parameter's RMS and to ``1/√t``. Because the learning rate enters twice
(the relative step ``ρ_t = min(η, 1/√t)`` and the decoupled decay ``η·λ``), this
transformation produces the final update itself and keeps ``count``, ``lr`` and
``lr_scale`` in its state for :func:`descend.optim.get_lr` / ``set_lr_scale``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from descend._validation import LEARNING_RATE, NONNEGATIVE, Constraint, Interval, check
from descend.errors import ParameterError
from descend.optim._backend import namespace, ndim, size, zeros
from descend.optim._lerp import lerp
from descend.optim.base import GradientTransformation
from descend.optim.learning_rate import ScalarOrSchedule, resolve_lr
from descend.optim.tree import Tree, tree_map


class ScaleByAdafactorState(NamedTuple):
    count: int  # t, updates done so far
    lr: float  # η used by the last update (η_0 before the first)
    lr_scale: float  # multiplier from a plateau controller, 1.0 by default
    row_var: Tree  # R_t, shape (..., n, 1) for leaves with ndim >= 2, None for the others
    col_var: Tree  # C_t, shape (..., 1, m) for leaves with ndim >= 2, None for the others
    variance: Tree  # V_t, shape of the leaf for leaves with ndim < 2, None for the others


class _NoneOr(Constraint):
    def __init__(self, inner: Constraint):
        self.inner = inner
        self.description = f"None or {inner}"

    def accepts(self, value: Any) -> bool:
        return value is None or self.inner.accepts(value)


BETA2_DECAY = Interval(None, 0, closed="right")  # (-inf, 0]
CLIP_THRESHOLD = Interval(1, None, closed="left")  # [1, inf)


def _factored(x: Any) -> bool:
    return ndim(x) > 1


def _mean_square(xp: Any, g: Any, axis: int) -> Any:
    # torch: norm(g, dim).square_().div_(n), which rounds through the square root
    return xp.square(xp.sqrt(xp.sum(g * g, axis=axis, keepdims=True))) / g.shape[axis]


def _rms(xp: Any, x: Any) -> float:
    return float(xp.sqrt(xp.sum(x * x))) / (size(x) ** 0.5)


def scale_by_adafactor(
    lr: ScalarOrSchedule = 1e-2,
    beta2_decay: float = -0.8,
    eps: tuple[float | None, float] = (None, 1e-3),
    d: float = 1.0,
    weight_decay: float = 0.0,
    owner: str = "scale_by_adafactor",
) -> GradientTransformation:
    """Adafactor's update, learning rate and decoupled decay included.

    With ``t`` the step (from 1), η = ``lr`` (times ``lr_scale``), ``beta2_decay`` = c,
    ``eps`` = (ε₁, ε₂), ``d`` the clipping threshold and ``weight_decay`` = λ::

        β̂₂ = 1 − t^c                         (so 1 − β̂₂ = t^c; t = 1 takes g² whole)
        ρ_t = min(η, 1/√t),   α_t = max(ε₂, RMS(θ)) · ρ_t
        leaf with ndim ≥ 2 (factored over its last two axes):
            R_t = R_{t−1} + t^c·(mean(g², axis=−1) − R_{t−1})    (one value per row, n × 1)
            C_t = C_{t−1} + t^c·(mean(g², axis=−2) − C_{t−1})    (one value per column, 1 × m)
            v̂_t = R_t·C_t / max(mean(R_t), ε₁)
        leaf with ndim < 2:
            v̂_t = V_t = V_{t−1} + t^c·(g² − V_{t−1})
        u_t = g / √max(v̂_t, ε₁²)
        θ ← θ·(1 − η·λ) − α_t · u_t / max(1, RMS(u_t)/d)

    ``ε₁ = None`` means the machine epsilon of θ's dtype (``finfo(θ.dtype).eps``). This is torch's
    ``_single_tensor_adafactor``; it departs from the paper in three places: ε₁
    clamps the variance estimate (and the mean of R) from below instead of being
    added to g² (the paper and Keras add ε₁ = 1e-30); there is no first moment
    (the paper's optional β₁); and η caps the relative step ρ_t and scales the
    decoupled weight decay (the paper has neither; its R and C are sums, which
    gives the same v̂). torch takes ε₁ = finfo(dtype).eps from the *first*
    parameter of a group and reuses it for all; here each leaf uses its own
    dtype (identical when all leaves share a dtype). The parameter scale α_t
    uses θ before the decay, as torch does.
    """
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "beta2_decay", beta2_decay, BETA2_DECAY)
    if not isinstance(eps, (tuple, list)) or len(eps) != 2:
        raise ParameterError(f"{owner}: eps must be a pair (eps1 or None, eps2), got {eps!r}")
    eps1, eps2 = eps
    check(owner, "eps[0]", eps1, _NoneOr(NONNEGATIVE))
    check(owner, "eps[1]", eps2, NONNEGATIVE)
    check(owner, "d", d, CLIP_THRESHOLD)
    check(owner, "weight_decay", weight_decay, NONNEGATIVE)
    decay, clip, wd = float(beta2_decay), float(d), float(weight_decay)
    eps1 = None if eps1 is None else float(eps1)
    eps2 = float(eps2)

    def init(params: Tree) -> ScaleByAdafactorState:
        def row(p):
            return zeros((*p.shape[:-1], 1), like=p) if _factored(p) else None

        def col(p):
            return zeros((*p.shape[:-2], 1, p.shape[-1]), like=p) if _factored(p) else None

        def full(p):
            return None if _factored(p) else namespace(p).zeros_like(p)

        return ScaleByAdafactorState(
            0, resolve_lr(lr, 0), 1.0, tree_map(row, params), tree_map(col, params), tree_map(full, params)
        )

    def update(updates: Tree, state: ScaleByAdafactorState, params: Tree | None = None):
        if params is None:
            raise ParameterError(f"{owner}: update needs params (call tx.update(grads, state, params))")
        t = state.count + 1
        eta = resolve_lr(lr, state.count) * state.lr_scale
        step = float(t)
        weight = step**decay  # 1 − β̂₂_t
        rho = min(eta, 1.0 / (step**0.5))

        def leaf(g, p, r, c, v):
            xp = namespace(g)
            e1 = float(xp.finfo(p.dtype).eps) if eps1 is None else eps1
            alpha = max(eps2, _rms(xp, p)) * rho
            if _factored(g):
                r = lerp(r, _mean_square(xp, g, -1), weight)
                c = lerp(c, _mean_square(xp, g, -2), weight)
                var_estimate = xp.matmul(r, c) / xp.maximum(xp.mean(r, axis=-2, keepdims=True), e1)
            else:
                v = lerp(v, g * g, weight)
                var_estimate = v
            u = (1.0 / xp.sqrt(xp.maximum(var_estimate, e1 * e1))) * g  # torch: clamp_, rsqrt_, mul_
            denom = max(1.0, _rms(xp, u) / clip)
            out = (-alpha / denom) * u
            if wd != 0.0:
                out = out - (eta * wd) * p
            return out, r, c, v

        results = tree_map(leaf, updates, params, state.row_var, state.col_var, state.variance)
        out, rows, cols, variances = _unzip4(results, updates)
        return out, ScaleByAdafactorState(t, eta, state.lr_scale, rows, cols, variances)

    return GradientTransformation(init, update)


def _unzip4(results: Tree, like: Tree) -> tuple[Tree, Tree, Tree, Tree]:
    """Split a tree of 4-tuples (shaped like ``like``) into four trees."""
    out, rows, cols, variances = (tree_map(lambda _, res, i=i: res[i], like, results) for i in range(4))
    return out, rows, cols, variances


__all__ = ["ScaleByAdafactorState", "scale_by_adafactor"]
