"""Named optimizers: each is a ``chain`` of small transformations.

Every factory takes exactly torch.optim's keyword names and defaults, validates
them at construction ("adam: betas[0] must be in [0, 1), got 1.5"), and is
proven equal to its torch.optim class in ``tests/optim/test_torch_conformance.py``.
The docstring of each states the update rule in the seed documents' symbols.
"""

from __future__ import annotations

from descend._validation import BOOL, LEARNING_RATE, NONNEGATIVE, UNIT_CLOSED, WEIGHT_DECAY, OneOf, check
from descend.errors import ParameterError
from descend.optim import fused
from descend.optim.adadelta import scale_by_adadelta
from descend.optim.adafactor import scale_by_adafactor
from descend.optim.adagrad import adagrad_learning_rate, scale_by_adagrad
from descend.optim.adam import scale_by_adam
from descend.optim.adamax import scale_by_adamax
from descend.optim.ademamix import ademamix as ademamix
from descend.optim.adopt import adopt as adopt
from descend.optim.asgd import scale_by_asgd
from descend.optim.base import GradientTransformation, chain
from descend.optim.lamb import lamb as lamb  # re-exported: the named optimizers of issue 10 live in their modules
from descend.optim.lars import lars as lars
from descend.optim.lbfgs import lbfgs as lbfgs
from descend.optim.learning_rate import ScalarOrSchedule, scale, scale_by_learning_rate
from descend.optim.lion import scale_by_lion
from descend.optim.lookahead import lookahead as lookahead
from descend.optim.momentum import heavy_ball, trace
from descend.optim.muon import muon as muon
from descend.optim.nadam import scale_by_nadam
from descend.optim.prodigy import prodigy as prodigy
from descend.optim.radam import scale_by_radam
from descend.optim.regularization import add_decayed_weights
from descend.optim.rms import scale_by_rms
from descend.optim.rprop import scale_by_rprop
from descend.optim.sam import sam as sam
from descend.optim.schedule_free import schedule_free_adamw as schedule_free_adamw
from descend.optim.schedule_free import schedule_free_sgd as schedule_free_sgd
from descend.optim.soap import soap as soap


def _fused(build):
    """Give the factory's optimizers a fused numba kernel for one contiguous float buffer.

    The chain each factory builds stays the definition; trees, views, amsgrad and machines
    without numba run it (see :mod:`descend.optim.fused`).
    """
    return lambda factory: fused.accelerate(factory, build)


def _maybe_negate(maximize: bool, owner: str) -> list[GradientTransformation]:
    check(owner, "maximize", maximize, BOOL)
    return [scale(-1.0)] if maximize else []


@_fused(fused.build_sgd)
def sgd(
    lr: ScalarOrSchedule = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Stochastic gradient descent, with optional momentum (``torch.optim.SGD``).

    Plain (seed 000, 001): ``θ ← θ − η·g``. With weight decay λ the gradient is
    ``g + λθ``; with momentum μ and dampening τ::

        b_1 = g_1,   b_t = μ·b_{t−1} + (1−τ)·g_t,   θ ← θ − η·b_t
        nesterov:    θ ← θ − η·(g_t + μ·b_t)

    Whether this is batch, mini-batch or stochastic gradient descent depends only
    on how many samples the gradient was averaged over (``batch_size`` of the
    data loader), not on the optimizer. The seed documents' heavy-ball forms with
    η inside the velocity are :func:`momentum`.
    """
    owner = "sgd"
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "momentum", momentum, NONNEGATIVE)
    check(owner, "dampening", dampening, UNIT_CLOSED)
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    check(owner, "nesterov", nesterov, BOOL)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ParameterError(
            "sgd: nesterov=True requires momentum > 0 and dampening = 0, "
            f"got momentum={momentum!r}, dampening={dampening!r}"
        )
    links = _maybe_negate(maximize, owner)
    links.append(add_decayed_weights(weight_decay))
    if momentum != 0:
        links.append(trace(momentum, dampening, nesterov))
    links.append(scale_by_learning_rate(lr, owner=owner))
    return chain(*links)


@_fused(fused.build_adam)
def adam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
    bias_correction: bool = True,
) -> GradientTransformation:
    """Adam (``torch.optim.Adam``), in the symbols of seed 001 / 002::

        m_t = β₁·m_{t−1} + (1−β₁)·g_t          (betas[0] = β₁)
        v_t = β₂·v_{t−1} + (1−β₂)·g_t²         (betas[1] = β₂)
        m̂_t = m_t/(1−β₁ᵗ),  v̂_t = v_t/(1−β₂ᵗ)
        θ ← θ − η·m̂_t/(√v̂_t + ε)               (lr = η, eps = ε)

    ``weight_decay`` λ adds λθ to g (coupled L2, torch's Adam and Keras'
    ``Adam(weight_decay)`` differ here: Keras decouples), or with
    ``decoupled_weight_decay=True`` subtracts η·λ·θ (that is AdamW).
    ``amsgrad`` uses max(v_t); ``bias_correction=False`` is seed 000's Adam,
    ``θ ← θ − α·m/(√v + ε)``, which torch and Keras do not offer.
    """
    owner = "adam"
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    check(owner, "decoupled_weight_decay", decoupled_weight_decay, BOOL)
    links = _maybe_negate(maximize, owner)
    if not decoupled_weight_decay:
        links.append(add_decayed_weights(weight_decay))
    links.append(scale_by_adam(betas, eps, amsgrad, bias_correction, owner=owner))
    if decoupled_weight_decay:
        links.append(add_decayed_weights(weight_decay))
    links.append(scale_by_learning_rate(lr, owner=owner))
    return chain(*links)


@_fused(fused.build_adamw)
def adamw(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """AdamW (``torch.optim.AdamW``, Loshchilov & Hutter 2019): Adam with decoupled decay::

        θ ← θ − η·(m̂_t/(√v̂_t + ε) + λ·θ)

    Same as ``adam(..., decoupled_weight_decay=True)`` but with torch's default
    λ = 0.01. Keras' ``AdamW`` uses λ = 0.004; optax's ``adamw`` uses 1e-4.
    """
    check("adamw", "lr", lr, LEARNING_RATE)
    check("adamw", "weight_decay", weight_decay, WEIGHT_DECAY)
    links = _maybe_negate(maximize, "adamw")
    links += [
        scale_by_adam(betas, eps, amsgrad, owner="adamw"),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(lr, owner="adamw"),
    ]
    return chain(*links)


@_fused(fused.build_adagrad)
def adagrad(
    lr: ScalarOrSchedule = 1e-2,
    lr_decay: float = 0,
    weight_decay: float = 0,
    initial_accumulator_value: float = 0,
    eps: float = 1e-10,
    *,
    maximize: bool = False,
    eps_inside_sqrt: bool = False,
) -> GradientTransformation:
    """AdaGrad (``torch.optim.Adagrad``; Duchi, Hazan & Singer 2011), in seed 001's symbols::

        g_t ← g_t + λ·θ                          (weight_decay = λ, coupled L2)
        G_t = G_{t−1} + g_t²,   G_0 = τ          (initial_accumulator_value = τ)
        η_t = η / (1 + (t−1)·δ),  t = 1, 2, …    (lr = η, lr_decay = δ)
        θ ← θ − η_t · g_t / (√G_t + ε)           (eps = ε: torch, the default)
        θ ← θ − η_t / √(G_t + ε) · g_t           (eps_inside_sqrt=True: seed 001's form)

    Seed 001 writes the second form with δ = 0 and G_0 = 0. The two forms agree
    closely once G_t ≫ ε and differ while G_t is tiny: the denominators are at
    least √ε = 1e-5 (seed) and ε = 1e-10 (torch), so a first step with
    |g| = 1e-6 moves 0.0995·η in the seed form and 0.9999·η in torch's. Keras'
    ``Adagrad`` uses the seed form (ε inside the root) with defaults η = 1e-3,
    τ = 0.1, ε = 1e-7, has no ``lr_decay``, and its ``weight_decay`` is
    decoupled (θ ← θ − η·λ·θ). ``lr`` may be a schedule: η_t = lr(t−1)/(1 + (t−1)·δ).
    ``get_lr(state)`` reads the decayed η_t of the last update (times the plateau
    scale s).
    """
    owner = "adagrad"
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    schedule = adagrad_learning_rate(lr, lr_decay, owner=owner)
    links = _maybe_negate(maximize, owner)
    links += [
        add_decayed_weights(weight_decay),
        scale_by_adagrad(initial_accumulator_value, eps, eps_inside_sqrt, owner=owner),
        scale_by_learning_rate(schedule, owner=owner),
    ]
    return chain(*links)


@_fused(fused.build_rmsprop)
def rmsprop(
    lr: ScalarOrSchedule = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0,
    momentum: float = 0,
    centered: bool = False,
    *,
    maximize: bool = False,
    eps_inside_sqrt: bool = False,
) -> GradientTransformation:
    """RMSprop (``torch.optim.RMSprop``; Hinton 2012), in the symbols of seeds 001 / 002::

        g_t ← g_t + λ·θ                                 (weight_decay = λ, coupled L2)
        E[g²]_t = γ·E[g²]_{t−1} + (1−γ)·g_t²,  E[g²]_0 = 0   (alpha = γ: seed 001's γ, seed 002's ρ)
        v_t = E[g²]_t,  or with centered=True:
        v_t = E[g²]_t − E[g]_t²,  E[g]_t = γ·E[g]_{t−1} + (1−γ)·g_t
        d_t = g_t / (√v_t + ε)                          (eps = ε: torch, the default)
        d_t = g_t / √(v_t + ε)                          (eps_inside_sqrt=True: seeds 001, 002)
        μ = 0:  θ ← θ − η·d_t                           (lr = η)
        μ > 0:  b_t = μ·b_{t−1} + d_t,  θ ← θ − η·b_t    (momentum = μ, b_0 = 0)

    With ``eps_inside_sqrt=True``, μ = 0 and no centering this is the seeds'
    ``θ ← θ − η/√(E[g²] + ε)·g`` (seed 002 suggests γ = 0.9; torch's default is
    0.99). Keras' ``RMSprop`` also puts ε inside the root; its defaults are
    η = 1e-3, ρ = 0.9, ε = 1e-7, its momentum folds η into the buffer
    (b ← μ·b + η·d, θ ← θ − b: the same trajectory for a constant η, not under
    a schedule) and its ``weight_decay`` is decoupled. torch accepts any
    α ≥ 0; here α must be in [0, 1]. ``maximize`` is keyword-only (torch's
    ``capturable`` and ``foreach`` come before it positionally and have no
    meaning here).
    """
    owner = "rmsprop"
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    links = _maybe_negate(maximize, owner)
    links += [
        add_decayed_weights(weight_decay),
        scale_by_rms(alpha, eps, centered, momentum, eps_inside_sqrt, owner=owner),
        scale_by_learning_rate(lr, owner=owner),
    ]
    return chain(*links)


def adadelta(
    lr: ScalarOrSchedule = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Adadelta (``torch.optim.Adadelta``; Zeiler 2012)::

        g_t ← g_t + λ·θ                                       (weight_decay = λ, coupled L2)
        E[g²]_t = ρ·E[g²]_{t−1} + (1−ρ)·g_t²                  (rho = ρ)
        Δθ_t = −√(E[Δθ²]_{t−1} + ε) / √(E[g²]_t + ε) · g_t    (eps = ε)
        E[Δθ²]_t = ρ·E[Δθ²]_{t−1} + (1−ρ)·Δθ_t²               (both averages start at 0)
        θ ← θ + η·Δθ_t                                        (lr = η)

    It is seed 002's RMSprop (ε inside the root) with η replaced by the RMS of
    the past steps, so units match and η = 1 (torch's default) is Zeiler's
    algorithm; η here only rescales, and E[Δθ²] accumulates the unscaled Δθ as
    in torch and Keras. The seeds do not cover Adadelta. Keras' ``Adadelta``
    is the same rule with defaults η = 1e-3, ρ = 0.95, ε = 1e-7 and decoupled
    ``weight_decay``.
    """
    owner = "adadelta"
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    links = _maybe_negate(maximize, owner)
    links += [
        add_decayed_weights(weight_decay),
        scale_by_adadelta(rho, eps, owner=owner),
        scale_by_learning_rate(lr, owner=owner),
    ]
    return chain(*links)


def rprop(
    lr: ScalarOrSchedule = 1e-2,
    etas: tuple[float, float] = (0.5, 1.2),
    step_sizes: tuple[float, float] = (1e-6, 50),
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Rprop (``torch.optim.Rprop``; Riedmiller & Braun 1993), per-coordinate sign steps::

        f_t = η₊ if g_t·g_{t−1} > 0,  η₋ if < 0,  1 if = 0        (etas = (η₋, η₊), 0 < η₋ < 1 < η₊)
        Δ_t = clip(Δ_{t−1}·f_t, Δ_min, Δ_max),  Δ_0 = η           (lr = η, step_sizes = (Δ_min, Δ_max))
        g_t ← 0 where f_t = η₋                                    (skip the step after a sign flip)
        θ ← θ − sign(g_t)·Δ_t

    The learning rate is only the initial step size, so its scale hardly
    matters: Δ adapts geometrically within [Δ_min, Δ_max]. With a float ``lr``
    this is torch's Rprop exactly. torch reads ``lr`` once and ignores later
    changes; here a schedule (with ``lr(0) > 0``) and the plateau scale s of
    :func:`descend.optim.set_lr_scale` multiply every step by ``s·lr(t)/lr(0)``
    (a float lr: by s) while Δ evolves as in torch; ``get_lr`` reads ``s·lr(t)``.
    Rprop has no weight decay in torch (chain ``add_decayed_weights`` first if
    wanted). The seeds and Keras have no Rprop; it is meant for full-batch
    gradients, since the sign test is unreliable on noisy mini-batch gradients.
    """
    owner = "rprop"
    links = _maybe_negate(maximize, owner)
    links.append(scale_by_rprop(lr, etas, step_sizes, owner=owner))
    return chain(*links)


def asgd(
    lr: ScalarOrSchedule = 1e-2,
    lambd: float = 1e-4,
    alpha: float = 0.75,
    t0: float = 1e6,
    weight_decay: float = 0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Averaged SGD (``torch.optim.ASGD``; Polyak & Juditsky 1992, Bottou's step-size schedule)::

        g_t ← g_t + λ_w·θ                           (weight_decay = λ_w, coupled L2)
        η_t = η / (1 + λ·η·(t−1))^α,  t = 1, 2, …   (lr = η, lambd = λ, alpha = α)
        θ ← θ·(1 − λ·η_t) − η_t·g_t
        μ_t = 1 / max(1, t − 1 − t0)                (t0 = t0)
        θ̄ ← θ if μ_t = 1, else θ̄ + μ_t·(θ − θ̄)

    Seed 001's plain gradient descent ``θ ← θ − η·g`` is the case λ = 0. The
    average θ̄ (torch's ``ax``) is θ_t while t ≤ t0 + 2 and then, for an
    integer t0, the mean of θ_{t0+2}, …, θ_t; the steps never use it. Read it
    with ``descend.optim.get_averaged_params(state)`` and evaluate the model
    there. With torch's default t0 = 1e6 no averaging happens in practice.
    ``lr`` may be a schedule (η_t uses lr(t−1)) and the plateau scale s
    multiplies η inside the formula; ``get_lr`` reads η_t. torch stores η and
    μ as float32 unless its default dtype is float64; here they are doubles
    (a ~1e-8 relative difference). Keras has no ASGD.
    """
    owner = "asgd"
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    links = _maybe_negate(maximize, owner)
    links += [add_decayed_weights(weight_decay), scale_by_asgd(lr, lambd, alpha, t0, owner=owner)]
    return chain(*links)


def adamax(
    lr: ScalarOrSchedule = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Adamax (``torch.optim.Adamax``; Kingma & Ba 2015, §7.1), Adam with an ∞-norm::

        g ← g + λ·θ                            (weight_decay = λ, coupled L2)
        m_t = β₁·m_{t−1} + (1−β₁)·g_t          (betas[0] = β₁)
        u_t = max(β₂·u_{t−1}, |g_t| + ε)       (betas[1] = β₂, eps = ε)
        θ ← θ − η/(1−β₁ᵗ) · m_t/u_t            (lr = η)

    It replaces Adam's v_t (seed 001/002) by an exponentially weighted maximum of
    |g|, which needs no square root and no bias correction (m_t still has one). Defaults are torch's
    (η = 2e-3, the paper's). Keras' ``Adamax`` defaults to η = 1e-3, ε = 1e-7 and
    writes ``u_t = max(β₂u, |g|)``, ``θ ← θ − η/(1−β₁ᵗ)·m_t/(u_t + ε)``, which
    differs from torch when ε is not negligible. The seeds do not cover Adamax.
    """
    owner = "adamax"
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    links = _maybe_negate(maximize, owner)
    links += [
        add_decayed_weights(weight_decay),
        scale_by_adamax(betas, eps, owner=owner),
        scale_by_learning_rate(lr, owner=owner),
    ]
    return chain(*links)


def nadam(
    lr: ScalarOrSchedule = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0,
    momentum_decay: float = 4e-3,
    decoupled_weight_decay: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """NAdam (``torch.optim.NAdam``; Dozat 2016), Adam with Nesterov momentum::

        μ_t = β₁·(1 − ½·0.96^(t·ψ))                  (momentum_decay = ψ)
        m_t = β₁·m_{t−1} + (1−β₁)·g_t                (betas[0] = β₁)
        v_t = β₂·v_{t−1} + (1−β₂)·g_t²               (betas[1] = β₂)
        v̂_t = v_t/(1−β₂ᵗ)
        θ ← θ − η·[(1−μ_t)/(1−Π_{i≤t} μ_i) · g_t + μ_{t+1}/(1−Π_{i≤t+1} μ_i) · m_t] / (√v̂_t + ε)

    (lr = η, eps = ε.) Compared with seed 001/002's Adam, the bias-corrected m̂_t
    is replaced by a look-ahead mix of the current gradient and the momentum,
    with the warming schedule μ_t. ``weight_decay`` λ adds λθ to g (coupled), or
    with ``decoupled_weight_decay=True`` multiplies θ by (1 − η·λ) first
    (NAdamW). ``decoupled_weight_decay`` is positional, as in torch. Keras 3's
    ``Nadam`` defaults to η = 1e-3, ε = 1e-7 and uses μ_t = β₁·(1 − ½·0.96ᵗ),
    i.e. ψ = 1 (tf.keras' OptimizerV2 Nadam had ψ = 0.004); torch keeps Π μ_i in
    float32 unless its default dtype is float64 (here: a double).
    """
    owner = "nadam"
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    check(owner, "decoupled_weight_decay", decoupled_weight_decay, BOOL)
    links = _maybe_negate(maximize, owner)
    if not decoupled_weight_decay:
        links.append(add_decayed_weights(weight_decay))
    links.append(scale_by_nadam(betas, eps, momentum_decay, owner=owner))
    if decoupled_weight_decay:
        links.append(add_decayed_weights(weight_decay))
    links.append(scale_by_learning_rate(lr, owner=owner))
    return chain(*links)


def radam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0,
    decoupled_weight_decay: bool = False,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """RAdam (``torch.optim.RAdam``; Liu et al. 2020), Adam with a rectified warm-up::

        m_t = β₁·m_{t−1} + (1−β₁)·g_t,  v_t = β₂·v_{t−1} + (1−β₂)·g_t²   (betas = (β₁, β₂))
        m̂_t = m_t/(1−β₁ᵗ)
        ρ_∞ = 2/(1−β₂) − 1,  ρ_t = ρ_∞ − 2t·β₂ᵗ/(1−β₂ᵗ)
        ρ_t > 5:  r_t = √[(ρ_t−4)(ρ_t−2)ρ_∞ / ((ρ_∞−4)(ρ_∞−2)ρ_t)]
                  θ ← θ − η · m̂_t · √(1−β₂ᵗ)/(√v_t + ε) · r_t        (lr = η, eps = ε)
        ρ_t ≤ 5:  θ ← θ − η · m̂_t                                   (momentum SGD)

    Seed 001/002's Adam with bias correction is the limit r_t → 1 (up to where ε
    goes: here it is added to the raw √v_t). ``weight_decay`` λ adds λθ to g, or
    with ``decoupled_weight_decay=True`` (positional, as in torch) multiplies θ
    by (1 − η·λ) first (RAdamW). Keras has no RAdam (TensorFlow Addons had one,
    with a warm-up schedule of its own).
    """
    owner = "radam"
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    check(owner, "decoupled_weight_decay", decoupled_weight_decay, BOOL)
    links = _maybe_negate(maximize, owner)
    if not decoupled_weight_decay:
        links.append(add_decayed_weights(weight_decay))
    links.append(scale_by_radam(betas, eps, owner=owner))
    if decoupled_weight_decay:
        links.append(add_decayed_weights(weight_decay))
    links.append(scale_by_learning_rate(lr, owner=owner))
    return chain(*links)


def adafactor(
    lr: ScalarOrSchedule = 1e-2,
    beta2_decay: float = -0.8,
    eps: tuple[float | None, float] = (None, 1e-3),
    d: float = 1.0,
    weight_decay: float = 0.0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Adafactor (``torch.optim.Adafactor``; Shazeer & Stern 2018), factored second moments::

        1 − β̂₂_t = t^c                                   (beta2_decay = c)
        ρ_t = min(η, 1/√t),  α_t = max(ε₂, RMS(θ))·ρ_t   (lr = η, eps = (ε₁, ε₂))
        θ with ndim ≥ 2:  R_t, C_t = moving row / column means of g² (rate t^c)
                          v̂_t = R_t·C_t / max(mean(R_t), ε₁)
        θ with ndim < 2:  v̂_t = V_t, moving average of g² (rate t^c)
        u_t = g / √max(v̂_t, ε₁²)
        θ ← θ·(1 − η·λ) − α_t · u_t / max(1, RMS(u_t)/d)  (weight_decay = λ, d = d)

    ε₁ = None means the machine epsilon of θ's dtype. Like seed 001/002's Adam
    it divides by a root-mean-square of past gradients, but without a first
    moment m, with a β₂ that grows towards 1 over time instead of a constant,
    with v stored as a row and a column vector for matrices, and with a step
    relative to the size of θ. η only caps the relative step ρ_t (the paper's
    schedule is ρ_t = min(1e-2, 1/√t), torch's default η = 1e-2 reproduces it)
    and scales the weight decay. Keras' ``Adafactor`` defaults to η = 1e-3,
    adds ε₁ = 1e-30 to g² instead of clamping and calls d ``clip_threshold``.
    """
    owner = "adafactor"
    check(owner, "lr", lr, LEARNING_RATE)
    links = _maybe_negate(maximize, owner)
    links.append(scale_by_adafactor(lr, beta2_decay, eps, d, weight_decay, owner=owner))
    return chain(*links)


def lion(
    lr: ScalarOrSchedule = 1e-4,
    betas: tuple[float, float] = (0.9, 0.99),
    weight_decay: float = 0.0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2)::

        c_t = β₁·m_{t−1} + (1−β₁)·g_t          (betas[0] = β₁)
        θ ← θ − η·(sign(c_t) + λ·θ)            (lr = η, weight_decay = λ, decoupled)
        m_t = β₂·m_{t−1} + (1−β₂)·g_t          (betas[1] = β₂)

    torch 2.13 has no Lion; the defaults are the paper's (η = 1e-4, β = (0.9, 0.99),
    λ = 0), named after torch's conventions. Unlike seed 001/002's Adam there is
    no second moment: the sign makes every coordinate move by exactly η (or 0),
    so η should be 3–10× smaller than Adam's and λ 3–10× larger. Keras 3's
    ``Lion`` defaults to η = 1e-3 (tf.keras 2.13: 1e-4) and no weight decay;
    optax's ``lion`` to λ = 1e-3.
    """
    owner = "lion"
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    links = _maybe_negate(maximize, owner)
    links += [
        scale_by_lion(betas, owner=owner),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(lr, owner=owner),
    ]
    return chain(*links)


def momentum(
    lr: ScalarOrSchedule,
    beta: float = 0.9,
    form: str = "seed000",
    weight_decay: float = 0.0,
    *,
    maximize: bool = False,
) -> GradientTransformation:
    """Heavy-ball momentum as the seed documents write it (η inside the velocity).

    ``form="seed000"`` (seed 000; also Keras' ``SGD(momentum=β)``)::

        v ← β·v − α·g,   θ ← θ + v           (lr = α, beta = β)

    ``form="seed001"`` (seed 001; Sutskever et al. 2013)::

        v ← γ·v + η·g,   θ ← θ − v           (lr = η, beta = γ)

    The two are the same trajectory; the state's ``velocity`` keeps the chosen
    seed's sign. ``weight_decay`` λ adds λθ to g first. With a constant
    learning rate both equal ``sgd(momentum=β)`` (torch's ``SGD``, which keeps
    b ← β·b + g and steps θ ← θ − η·b); under a schedule they differ, because
    torch applies the current η to the whole buffer while here each past
    gradient keeps the η it was taken with. There is no torch class for this
    form (a thin factory over :func:`descend.optim.heavy_ball`).
    """
    owner = "momentum"
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "beta", beta, UNIT_CLOSED)
    check(owner, "form", form, OneOf("seed000", "seed001"))
    check(owner, "weight_decay", weight_decay, WEIGHT_DECAY)
    links = _maybe_negate(maximize, owner)
    links += [add_decayed_weights(weight_decay), heavy_ball(lr, beta, form)]
    return chain(*links)


def lookahead_adam(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    k: int = 5,
    alpha: float = 0.5,
    pullback_momentum: str = "none",
) -> GradientTransformation:
    """Lookahead around Adam, by name (``descend train --optimizer lookahead-adam``)::

        θ ← θ + adam_update(g)                          (the fast weights)
        every k-th step:  θ ← φ + α·(θ − φ),  φ ← θ     (the slow weights φ)

    Exactly ``lookahead(adam(lr, betas, eps, weight_decay), k, alpha, pullback_momentum)``
    (``pytorch_optimizer.Lookahead(torch.optim.Adam)``); for any other inner optimizer use
    :func:`lookahead` directly.
    """
    return lookahead(adam(lr, betas, eps, weight_decay), k, alpha, pullback_momentum)


def lookahead_sgd(
    lr: ScalarOrSchedule = 1e-3,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    k: int = 5,
    alpha: float = 0.5,
    pullback_momentum: str = "none",
) -> GradientTransformation:
    """Lookahead around SGD with momentum, by name (``descend train --optimizer lookahead-sgd``): exactly
    ``lookahead(sgd(lr, momentum, 0, weight_decay, nesterov), k, alpha, pullback_momentum)``; with
    ``pullback_momentum`` ``"reset"`` or ``"pullback"`` the momentum buffer follows the synchronisations."""
    return lookahead(sgd(lr, momentum, 0.0, weight_decay, nesterov), k, alpha, pullback_momentum)
