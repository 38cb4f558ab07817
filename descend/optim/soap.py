"""SOAP (Vyas et al. 2024, "SOAP: Improving and Stabilizing Shampoo using Adam"): Adam in the eigenbasis of
Shampoo's preconditioner.

The reference is ``pytorch_optimizer.SOAP`` 4.1.0, whose keyword names and defaults these take.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from descend._validation import (
    BOOL,
    LEARNING_RATE,
    NONNEGATIVE,
    UNIT_OPEN_RIGHT,
    WEIGHT_DECAY,
    AnyOf,
    Interval,
    OneOf,
    check,
    check_pair,
)
from descend.errors import ParameterError
from descend.optim._backend import namespace, ndim, zeros
from descend.optim._leaf import decay_is_on
from descend.optim.base import GradientTransformation, chain
from descend.optim.layout import Layout, maybe_by_layout
from descend.optim.learning_rate import ScalarOrSchedule, resolve_lr, scale
from descend.optim.tree import Tree, tree_map, tree_zeros_like


class ScaleBySoapState(NamedTuple):
    count: int  # steps done (the first one only builds the preconditioner)
    lr: float  # η of the last update
    lr_scale: float  # plateau multiplier s
    exp_avg: Tree  # m_t, in the parameters' own basis
    exp_avg_sq: Tree  # v_t, in the eigenbasis Q
    GG: Tree  # per leaf: a tuple with, per (merged) axis, the moving average of G·Gᵀ over the other axes (or None)
    Q: Tree  # per leaf: a tuple with, per axis, the eigenbasis of that GG (or None: not preconditioned)


class _Leaf(NamedTuple):
    delta: Any
    m: Any
    v: Any
    gg: tuple
    q: tuple


def merge_small_dims(shape: tuple[int, ...], max_dim: int) -> list[int]:
    """Merge neighbouring small axes while their product stays ≤ ``max_dim`` (pytorch-optimizer's helper, except
    that a shape which merges into a single axis stays that axis: pytorch-optimizer returns ``[1]`` and then
    fails to reshape the gradient)."""
    merged: list[int] = []
    product = 1
    for dim in shape:
        product *= dim
        if product > max_dim:
            merged.append(product // dim)
            product = dim
    merged.append(product)
    return merged


def scale_by_soap(
    lr: ScalarOrSchedule = 3e-3,
    betas: tuple[float, float] = (0.95, 0.95),
    shampoo_beta: float | None = None,
    weight_decay: float = 1e-2,
    precondition_frequency: int = 10,
    max_precondition_dim: int = 10000,
    merge_dims: bool = False,
    precondition_1d: bool = False,
    correct_bias: bool = True,
    normalize_gradient: bool = False,
    data_format: str = "channels_first",
    eps: float = 1e-8,
    owner: str = "scale_by_soap",
) -> GradientTransformation:
    """SOAP's whole update, learning rate and decoupled weight decay included:

    .. math::
        L_i ← β_s L_i + (1-β_s)\\, G_{(i)} G_{(i)}^T \\ \\text{per axis } i, \\quad
        Q_i = \\text{eigenvectors of } L_i
        \\ \\text{(first step; then every } f \\text{ steps one power-iteration + QR)}\\\\
        G' = G ×_i Q_i^T, \\quad m ← β_1 m + (1-β_1) G, \\quad v ← β_2 v + (1-β_2) G'^2\\\\
        N = (Q\\text{-rotated } m / (\\sqrt{v} + ε)) ×_i Q_i, \\quad
        θ ← (θ − η\\sqrt{1-β_2^t}/(1-β_1^t)\\, N)(1 − ηλ)

    β_s = ``shampoo_beta`` (None: β₂), f = ``precondition_frequency``; axes longer than
    ``max_precondition_dim`` (and vectors unless ``precondition_1d``) keep the identity basis;
    ``merge_dims`` merges small axes first; ``normalize_gradient`` divides N by its RMS (+ε). As in
    pytorch-optimizer: the first step only builds the preconditioner; t counts from the second step;
    m is kept in the original basis and rotated each step, v in the eigenbasis (re-sorted with the
    basis); the QR of the power iteration runs in float32 (the eigendecomposition in the parameters'
    dtype); the decay multiplies after the step. Within a repeated eigenvalue (a rank-deficient
    first G·Gᵀ) the eigenbasis is LAPACK's choice, so two LAPACKs may follow different (equally valid)
    trajectories there.
    """
    b1, b2 = check_pair(owner, "betas", betas, UNIT_OPEN_RIGHT)
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "shampoo_beta", shampoo_beta, AnyOf(OneOf(None), UNIT_OPEN_RIGHT))
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    check(owner, "precondition_frequency", precondition_frequency, Interval(1, None, integer=True))
    check(owner, "max_precondition_dim", max_precondition_dim, Interval(1, None, integer=True))
    for name, flag in (
        ("merge_dims", merge_dims),
        ("precondition_1d", precondition_1d),
        ("correct_bias", correct_bias),
        ("normalize_gradient", normalize_gradient),
    ):
        check(owner, name, flag, BOOL)
    check(owner, "data_format", data_format, OneOf("channels_first", "channels_last"))
    check(owner, "eps", eps, NONNEGATIVE)
    b1, b2, eps = float(b1), float(b2), float(eps)
    wd = weight_decay if isinstance(weight_decay, np.ndarray) else float(weight_decay)  # a model's decay mask · λ
    decays = decay_is_on(weight_decay)
    sb = b2 if shampoo_beta is None else float(shampoo_beta)
    freq, max_dim = int(precondition_frequency), int(max_precondition_dim)
    channels_last = data_format == "channels_last"

    def merged(g: Any) -> Any:
        xp = namespace(g)
        if channels_last and ndim(g) == 4:
            g = xp.permute_dims(g, (0, 3, 1, 2))
        return xp.reshape(g, tuple(merge_small_dims(tuple(g.shape), max_dim)))

    def unmerge(g: Any, like: Any) -> Any:
        xp = namespace(g)
        if channels_last and ndim(like) == 4:
            shape = (like.shape[0], like.shape[3], like.shape[1], like.shape[2])
            return xp.permute_dims(xp.reshape(g, shape), (0, 2, 3, 1))
        return xp.reshape(g, tuple(like.shape))

    def axes_of(p: Any) -> list[int]:
        """The lengths of the axes that get a preconditioner slot (merged if asked)."""
        if ndim(p) == 1:
            return [p.shape[0]]
        return merge_small_dims(tuple(p.shape), max_dim) if merge_dims else list(p.shape)

    def preconditioned(p: Any) -> list[bool]:
        if ndim(p) == 1:
            return [precondition_1d and p.shape[0] <= max_dim]
        return [n <= max_dim for n in axes_of(p)]

    def project(g: Any, q: tuple, forward: bool) -> Any:
        xp = namespace(g)
        like = g
        if merge_dims and ndim(g) > 1:
            g = merged(g)
        for mat in q:
            if mat is not None:
                g = xp.tensordot(g, mat, axes=([0], [0 if forward else 1]))
            else:
                g = xp.permute_dims(g, (*range(1, ndim(g)), 0))
        if merge_dims and ndim(like) > 1:
            g = unmerge(g, like)
        return g

    def update_gg(g: Any, gg: tuple) -> tuple:
        xp = namespace(g)
        if ndim(g) == 1:
            if gg[0] is None:
                return gg
            outer = xp.reshape(g, (-1, 1)) @ xp.reshape(g, (1, -1))
            return (_lerp(gg[0], outer, 1.0 - sb),)
        if merge_dims:
            g = merged(g)
        out = []
        for idx, mat in enumerate(gg):
            if mat is None:
                out.append(None)
                continue
            others = [i for i in range(ndim(g)) if i != idx]
            outer = xp.tensordot(g, g, axes=(others, others))
            out.append(_lerp(mat, outer, 1.0 - sb))
        return tuple(out)

    def eigenbases(gg: tuple) -> tuple:
        out = []
        for mat in gg:
            if mat is None:
                out.append(None)
                continue
            xp = namespace(mat)
            n = mat.shape[0]
            eye = np.eye(n, dtype=mat.dtype) if xp is np else xp.eye(n, dtype=mat.dtype, device=mat.device)
            if mat.dtype in (xp.float32, xp.float64):
                _, vectors = xp.linalg.eigh(mat + 1e-30 * eye)
            else:  # bfloat16/float16 have no eigh: float64, as pytorch-optimizer falls back to
                _, vectors = xp.linalg.eigh(xp.astype(mat, xp.float64) + 1e-30 * xp.astype(eye, xp.float64))
                vectors = xp.astype(vectors, mat.dtype)
            out.append(xp.flip(vectors, axis=1))  # descending eigenvalues
        return tuple(out)

    def refreshed(gg: tuple, q: tuple, v: Any) -> tuple[tuple, Any]:
        """One power iteration + QR per axis; v's axes are re-sorted with the new basis."""
        like = v
        if merge_dims and ndim(v) > 1:
            v = merged(v)
        out = []
        for ind, (mat, o) in enumerate(zip(gg, q, strict=True)):
            if mat is None:
                out.append(None)
                continue
            xp = namespace(mat)
            product = mat @ o
            est_eig = xp.sum(o * product, axis=0)
            order = xp.argsort(-est_eig) if xp is np else xp.argsort(est_eig, descending=True)
            v = xp.take(v, order, axis=ind)
            power_iter = xp.take(product, order, axis=1)
            qm, _ = xp.linalg.qr(xp.astype(power_iter, xp.float32))  # as pytorch-optimizer: QR in float32
            out.append(xp.astype(qm, power_iter.dtype))
        if merge_dims and ndim(like) > 1:
            v = unmerge(v, like)
        return tuple(out), v

    def init(params: Tree) -> ScaleBySoapState:
        def gg0(p: Any) -> tuple:
            return tuple(zeros((n, n), p) if on else None for n, on in zip(axes_of(p), preconditioned(p), strict=True))

        gg = tree_map(gg0, params)
        z = tree_zeros_like
        return ScaleBySoapState(0, resolve_lr(lr, 0), 1.0, z(params), z(params), gg, gg)

    def update(updates: Tree, state: ScaleBySoapState, params: Tree | None = None):
        if params is None:
            raise ParameterError(f"{owner}: update needs params (the weight decay multiplies them)")
        eta = resolve_lr(lr, state.count) * state.lr_scale
        if state.count == 0:  # build the preconditioner from the first gradient; no step
            gg = tree_map(update_gg, updates, state.GG)
            q = tree_map(lambda g, gg_: eigenbases(gg_), updates, gg)
            new = ScaleBySoapState(1, eta, state.lr_scale, state.exp_avg, state.exp_avg_sq, gg, q)
            return tree_zeros_like(updates), new
        step = state.count  # pytorch-optimizer's group["step"] − 1
        step_size = eta
        if correct_bias:
            step_size *= math.sqrt(1.0 - b2**step) / (1.0 - b1**step)

        def leaf(g: Any, m: Any, v: Any, gg: tuple, q: tuple, p: Any) -> _Leaf:
            xp = namespace(g)
            g_proj = project(g, q, True)
            m = _lerp(m, g, 1.0 - b1)
            v = _lerp(v, g_proj * g_proj, 1.0 - b2)
            denominator = xp.sqrt(v) + eps
            direction = project(project(m, q, True) / denominator, q, False)
            if normalize_gradient:
                direction = direction / (float(xp.sqrt(xp.mean(direction * direction))) + eps)
            stepped = p - step_size * direction
            delta = stepped - p
            if decays:
                delta = delta - (eta * wd) * stepped
            gg = update_gg(g, gg)
            if step % freq == 0:
                q, v = refreshed(gg, q, v)
            return _Leaf(delta, m, v, gg, q)

        out = tree_map(leaf, updates, state.exp_avg, state.exp_avg_sq, state.GG, state.Q, params)
        pick = lambda name: tree_map(lambda r: getattr(r, name), out)  # noqa: E731
        new = ScaleBySoapState(state.count + 1, eta, state.lr_scale, pick("m"), pick("v"), pick("gg"), pick("q"))
        return pick("delta"), new

    return GradientTransformation(init, update)


def _lerp(start: Any, end: Any, weight: float) -> Any:
    """``torch.lerp``: ``start + w·(end − start)``, evaluated from the nearer end."""
    if weight < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


def soap(
    lr: ScalarOrSchedule = 3e-3,
    betas: tuple[float, float] = (0.95, 0.95),
    shampoo_beta: float | None = None,
    weight_decay: float = 1e-2,
    precondition_frequency: int = 10,
    max_precondition_dim: int = 10000,
    merge_dims: bool = False,
    precondition_1d: bool = False,
    correct_bias: bool = True,
    normalize_gradient: bool = False,
    data_format: str = "channels_first",
    eps: float = 1e-8,
    *,
    maximize: bool = False,
    layout: Layout | None = None,
) -> GradientTransformation:
    """SOAP (``pytorch_optimizer.SOAP`` 4.1.0; Vyas et al. 2024), Adam in Shampoo's eigenbasis::

        L ← β_s·L + (1−β_s)·G·Gᵀ,  R ← β_s·R + (1−β_s)·Gᵀ·G     (per axis; shampoo_beta = β_s)
        Q_L, Q_R = eigenvectors of L, R (refreshed every precondition_frequency steps)
        G' = Q_Lᵀ·G·Q_R;  m ← β₁·m + (1−β₁)·G;  v ← β₂·v + (1−β₂)·G'²   (betas = (β₁, β₂))
        θ ← (θ − η·√(1−β₂ᵗ)/(1−β₁ᵗ)·Q_L·(Q_Lᵀ·m·Q_R/(√v + ε))·Q_Rᵀ)·(1 − η·λ)   (lr = η, weight_decay = λ)

    Seed 001/002's Adam is the case Q = I: SOAP runs Adam's second moment in the basis where
    Shampoo's Kronecker-factored preconditioner is diagonal, which captures correlations between
    the rows and columns of a weight matrix. Vectors and axes longer than ``max_precondition_dim``
    stay in their own basis. The first step only builds the preconditioner. On a model's one flat
    buffer (a vector) SOAP is Adam unless ``layout=model.layout`` splits it into the model's parameters
    (:func:`descend.optim.by_layout`). The exact recursions and pytorch-optimizer's details:
    :func:`descend.optim.scale_by_soap`.
    """
    owner = "soap"
    check(owner, "maximize", maximize, BOOL)
    links = [scale(-1.0)] if maximize else []
    links.append(
        scale_by_soap(
            lr,
            betas,
            shampoo_beta,
            weight_decay,
            precondition_frequency,
            max_precondition_dim,
            merge_dims,
            precondition_1d,
            correct_bias,
            normalize_gradient,
            data_format,
            eps,
            owner=owner,
        )
    )
    return maybe_by_layout(chain(*links), layout, owner)


__all__ = ["ScaleBySoapState", "merge_small_dims", "scale_by_soap", "soap"]
