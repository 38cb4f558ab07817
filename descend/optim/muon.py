"""Muon (Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks"): momentum whose
update is orthogonalised by a Newton–Schulz iteration.

The reference is ``torch.optim.Muon`` (torch 2.13), whose keyword names and defaults these take, with
non-matrix parameters routed to AdamW as Keller Jordan's ``MuonWithAuxAdam`` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from descend._validation import (
    BOOL,
    LEARNING_RATE,
    NONNEGATIVE,
    UNIT_OPEN_RIGHT,
    WEIGHT_DECAY,
    Interval,
    OneOf,
    check,
    check_pair,
)
from descend.errors import ParameterError, StructureError
from descend.optim._backend import describe, is_array, namespace, ndim
from descend.optim._leaf import leaf_norm
from descend.optim.adam import scale_by_adam
from descend.optim.base import GradientTransformation, chain
from descend.optim.layout import Layout, by_layout
from descend.optim.learning_rate import ScalarOrSchedule, scale, scale_by_learning_rate
from descend.optim.masking import partition
from descend.optim.regularization import add_decayed_weights
from descend.optim.tree import Tree, tree_map, tree_zeros_like

# Keller Jordan's quintic coefficients and defaults, as torch.optim.Muon has them
DEFAULT_NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
DEFAULT_NS_STEPS = 5
DEFAULT_EPS = 1e-7


def newton_schulz(
    g: Any,
    ns_coefficients: tuple[float, float, float] = DEFAULT_NS_COEFFICIENTS,
    ns_steps: int = DEFAULT_NS_STEPS,
    eps: float = DEFAULT_EPS,
) -> Any:
    """Approximately orthogonalise the matrix ``g`` (``U·Vᵀ`` of its SVD ``U·S·Vᵀ``, roughly):

    .. math::
        X_0 = G / \\max(‖G‖_F, ε), \\qquad A = X X^T, \\quad X ← a X + (b A + c A^2) X \\quad (k \\text{ times})

    with (a, b, c) = ``ns_coefficients`` and k = ``ns_steps``, on Gᵀ when G has more rows than
    columns (so X Xᵀ is the smaller Gram matrix). Keller Jordan's coefficients overshoot on purpose:
    the singular values end up in roughly [0.7, 1.2] rather than at 1. torch.optim.Muon runs the
    iteration in bfloat16; here it runs in the dtype of ``g`` (float64 in the tests, where torch's
    iteration with the cast removed agrees to 1e-7).
    """
    a, b, c = (float(v) for v in ns_coefficients)
    tall = g.shape[0] > g.shape[1]
    x = g.T if tall else g
    x = x / max(leaf_norm(x), float(eps))
    for _ in range(int(ns_steps)):
        gram = x @ x.T
        poly = b * gram + c * (gram @ gram)  # torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = a * x + poly @ x  # torch.addmm(x, poly, x, beta=a)
    return x.T if tall else x


def adjusted_lr_ratio(adjust_lr_fn: str | None, shape: Sequence[int]) -> float:
    """The factor torch.optim.Muon multiplies the learning rate by for a matrix of ``shape`` (A, B):
    ``None`` / ``"original"``: √max(1, A/B) (Keller Jordan's); ``"match_rms_adamw"``: 0.2·√max(A, B) (Moonshot's,
    which makes the update's RMS that of AdamW)."""
    rows, cols = shape[0], shape[1]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1, rows / cols))
    return 0.2 * math.sqrt(max(rows, cols))


def _as_matrix(x: Any) -> Any:
    """A convolution kernel (out, in, kh, kw) as the (out, in·kh·kw) matrix Muon orthogonalises."""
    return x if ndim(x) == 2 else namespace(x).reshape(x, (x.shape[0], -1))


def _lerp(start: Any, end: Any, weight: float) -> Any:
    """``torch.lerp``: ``start + w·(end − start)``, evaluated from the nearer end."""
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


class ScaleByMuonState(NamedTuple):
    count: int  # t, updates done so far
    momentum_buffer: Tree  # B_t


def scale_by_muon(
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_coefficients: tuple[float, float, float] = DEFAULT_NS_COEFFICIENTS,
    eps: float = DEFAULT_EPS,
    ns_steps: int = DEFAULT_NS_STEPS,
    adjust_lr_fn: str | None = None,
    owner: str = "scale_by_muon",
) -> GradientTransformation:
    """Muon's direction for matrices (and convolution kernels, as matrices), before decay and the learning rate:

    .. math::
        B_t = μ B_{t-1} + (1-μ) G_t, \\quad
        \\tilde B_t = (1-μ) G_t + μ B_t \\ \\text{(nesterov) or } B_t, \\quad
        d_t = r(A, B)\\; \\mathrm{NS}(\\tilde B_t)

    μ = ``momentum`` (torch.optim.Muon's buffer is this exponential average, although its docstring
    writes B_t = μB_{t−1} + G_t), NS = :func:`newton_schulz`, r = :func:`adjusted_lr_ratio` of the
    (flattened) shape (A, B). Every leaf must have two or more axes; one with more is flattened to
    (shape[0], −1) first, as Keller Jordan does for convolution kernels (torch accepts 2-D only).
    """
    check(owner, "momentum", momentum, UNIT_OPEN_RIGHT)
    check(owner, "nesterov", nesterov, BOOL)
    _check_ns(owner, ns_coefficients, ns_steps, eps)
    check(owner, "adjust_lr_fn", adjust_lr_fn, OneOf(None, "original", "match_rms_adamw"))
    mu = float(momentum)

    def init(params: Tree) -> ScaleByMuonState:
        return ScaleByMuonState(0, tree_zeros_like(params))

    def leaf(g: Any, buf: Any) -> Any:
        if ndim(g) < 2:
            raise ParameterError(
                f"{owner}: Muon orthogonalises matrices; a leaf must have 2 or more axes, got {describe(g)} "
                "(muon() routes such leaves to AdamW)"
            )
        u = _lerp(g, buf, mu) if nesterov else buf
        matrix = _as_matrix(u)
        ortho = newton_schulz(matrix, ns_coefficients, ns_steps, eps)
        ratio = adjusted_lr_ratio(adjust_lr_fn, matrix.shape)
        return namespace(g).reshape(ratio * ortho, tuple(g.shape))

    def update(updates: Tree, state: ScaleByMuonState, params: Tree | None = None):
        buf = tree_map(lambda b, g: _lerp(b, g, 1.0 - mu), state.momentum_buffer, updates)
        return tree_map(leaf, updates, buf), ScaleByMuonState(state.count + 1, buf)

    return GradientTransformation(init, update)


def _check_ns(owner: str, ns_coefficients: Any, ns_steps: Any, eps: Any) -> None:
    if (
        isinstance(ns_coefficients, str)
        or not isinstance(ns_coefficients, Sequence)
        or len(ns_coefficients) != 3
        or not all(Interval(None, None).accepts(c) for c in ns_coefficients)
    ):
        raise ParameterError(f"{owner}: ns_coefficients must be three real numbers (a, b, c), got {ns_coefficients!r}")
    check(owner, "ns_steps", ns_steps, Interval(0, 99, integer=True))
    check(owner, "eps", eps, NONNEGATIVE)


def is_muon_leaf(x: Any) -> bool:
    """The default choice of leaves for Muon: two or more axes (matrices, convolution kernels)."""
    return ndim(x) >= 2


def muon(
    lr: ScalarOrSchedule = 1e-3,
    weight_decay: float = 0.1,
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_coefficients: tuple[float, float, float] = DEFAULT_NS_COEFFICIENTS,
    eps: float = DEFAULT_EPS,
    ns_steps: int = DEFAULT_NS_STEPS,
    adjust_lr_fn: str | None = None,
    *,
    adamw_lr: ScalarOrSchedule = 3e-4,
    adamw_betas: tuple[float, float] = (0.9, 0.95),
    adamw_eps: float = 1e-10,
    adamw_weight_decay: float = 0.0,
    muon_leaves: Callable[[Any], bool] = is_muon_leaf,
    maximize: bool = False,
    layout: Layout | None = None,
) -> GradientTransformation:
    """Muon (``torch.optim.Muon``, torch 2.13) for matrices, AdamW for the rest (Keller Jordan's ``MuonWithAuxAdam``)::

        B_t = μ·B_{t−1} + (1−μ)·G_t                    (momentum = μ)
        B̃_t = (1−μ)·G_t + μ·B_t   (nesterov)  or B_t
        O_t = NS(B̃_t)                                   (ns_coefficients, ns_steps, eps: the Newton–Schulz iteration)
        θ ← θ − η·λ·θ − η·r(A, B)·O_t                   (lr = η, weight_decay = λ, adjust_lr_fn → r)

    r = √max(1, A/B) (``adjust_lr_fn=None`` or ``"original"``) or 0.2·√max(A, B) (``"match_rms_adamw"``)
    for an A×B matrix. Seed 001's momentum SGD is the case NS = identity, r = 1: Muon replaces the
    momentum matrix by the nearest (semi-)orthogonal matrix, so every direction of the layer's input
    space moves by the same amount. Leaves chosen by ``muon_leaves`` (default: two or more axes;
    convolution kernels (out, in, kh, kw) are orthogonalised as (out, in·kh·kw) matrices) take Muon,
    every other leaf (biases, norm layers, a model's flat buffer) takes ``adamw(adamw_lr, adamw_betas,
    adamw_eps, adamw_weight_decay)`` with Keller Jordan's defaults (3e-4, (0.9, 0.95), 1e-10, 0) —
    torch.optim.Muon refuses such parameters and leaves them to a second optimizer. torch runs the
    Newton–Schulz iteration in bfloat16, here it runs in the parameters' dtype; a schedule or plateau
    scale of ``lr`` applies to both parts. A model's one flat parameter buffer has no matrices:
    ``layout=model.layout`` splits it into the model's parameters (:func:`descend.optim.by_layout`),
    and without a layout a lone flat vector is refused rather than silently trained by AdamW.
    """
    owner = "muon"
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    check(owner, "adamw_lr", adamw_lr, LEARNING_RATE)
    check_pair(owner, "adamw_betas", adamw_betas, UNIT_OPEN_RIGHT)
    check(owner, "adamw_eps", adamw_eps, NONNEGATIVE)
    check(owner, "adamw_weight_decay", adamw_weight_decay, WEIGHT_DECAY)
    check(owner, "maximize", maximize, BOOL)
    if not callable(muon_leaves):
        raise ParameterError(f"{owner}: muon_leaves must be a callable leaf -> bool, got {muon_leaves!r}")
    matrices = chain(
        scale_by_muon(momentum, nesterov, ns_coefficients, eps, ns_steps, adjust_lr_fn, owner=owner),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(lr, owner=owner),
    )
    others = chain(
        scale_by_adam(adamw_betas, adamw_eps, owner=f"{owner} (adamw_betas)"),
        add_decayed_weights(adamw_weight_decay),
        scale_by_learning_rate(adamw_lr, owner=f"{owner} (adamw_lr)"),
    )
    labels = lambda params: tree_map(lambda p: "muon" if muon_leaves(p) else "adamw", params)  # noqa: E731
    links = [scale(-1.0)] if maximize else []
    links.append(partition({"muon": matrices, "adamw": others}, labels))
    tx = chain(*links)
    if layout is not None:
        return by_layout(tx, layout, owner)

    def init(params: Tree):
        if is_array(params) and ndim(params) == 1:
            raise StructureError(
                f"{owner}: params is one flat vector ({describe(params)}), which has no matrix for Muon and would "
                "all go to AdamW; for a model's flat buffer pass layout=model.layout (or optimize a tree of arrays)"
            )
        return tx.init(params)

    return GradientTransformation(init, tx.update)


__all__ = [
    "DEFAULT_EPS",
    "DEFAULT_NS_COEFFICIENTS",
    "DEFAULT_NS_STEPS",
    "ScaleByMuonState",
    "adjusted_lr_ratio",
    "is_muon_leaf",
    "muon",
    "newton_schulz",
    "scale_by_muon",
]
