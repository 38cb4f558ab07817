"""The Adam family and beyond: hand-computed oracles, the seeds' momentum forms, Lion, validation, dtypes.

torch conformance over 300 steps lives in ``test_torch_conformance.py``; this file
checks what torch cannot: one- and two-step oracles computed by hand from the
update rules (seed 000's Adam without bias correction, the seeds' heavy-ball
forms, Lion, which torch 2.13 does not have), the learning-rate plumbing and
the validation messages.
"""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc
from descend.errors import ParameterError
from descend.optim.state import find_fields
from tests.optim import problems


def _step(tx, params, grads_seq):
    """Apply ``tx`` to fixed gradients; return the parameter trajectory and the final state."""
    state = tx.init(params)
    trajectory = []
    for g in grads_seq:
        updates, state = tx.update(g, state, params)
        params = dc.optim.apply_updates(params, updates)
        trajectory.append(params)
    return trajectory, state


THETA0 = np.array([1.0, -2.0])
G1 = np.array([0.5, -1.0])
G2 = np.array([0.25, 0.5])


# --- Adam: seed 001/002 (bias-corrected) and seed 000 (not) -------------------------------------------------


def test_adam_one_step_with_bias_correction() -> None:
    # m̂₁ = g, v̂₁ = g², so θ₁ = θ₀ − η·g/(|g| + ε):
    #   0.1·0.5/(0.5 + 1e-8) = 0.09999999800000004,  0.1·1/(1 + 1e-8) = 0.09999999900000001
    (theta1,), state = _step(dc.optim.adam(lr=0.1), THETA0, [G1])
    np.testing.assert_allclose(theta1, [0.900000002, -1.900000001], rtol=1e-15)
    (m1,) = find_fields(state, "exp_avg")
    (v1,) = find_fields(state, "exp_avg_sq")
    np.testing.assert_allclose(m1, [0.05, -0.1], rtol=1e-15)  # m₁ = (1−β₁)g
    np.testing.assert_allclose(v1, [0.00025, 0.001], rtol=1e-15)  # v₁ = (1−β₂)g²
    # with ε = 0 the first step is exactly η·sign(g), whatever |g|
    (theta1,), _ = _step(dc.optim.adam(lr=0.1, eps=0.0), THETA0, [G1])
    np.testing.assert_allclose(theta1, [0.9, -1.9], rtol=1e-15)


def test_adam_one_step_without_bias_correction_is_seed_000() -> None:
    # seed 000: θ ← θ − α·m/(√v + ε) with m = 0.1·g, v = 0.001·g²: m/√v = 0.1/√0.001 = √10 per unit sign.
    (theta1,), _ = _step(dc.optim.adam(lr=0.1, eps=0.0, bias_correction=False), THETA0, [G1])
    np.testing.assert_allclose(theta1, [1.0 - 0.1 * np.sqrt(10.0), -2.0 + 0.1 * np.sqrt(10.0)], rtol=1e-14)
    np.testing.assert_allclose(theta1, [0.683772233983162, -1.683772233983162], rtol=1e-14)
    # with the default ε the denominator is √v + ε = 0.0158113883... + 1e-8
    (theta1,), _ = _step(dc.optim.adam(lr=0.1, bias_correction=False), THETA0, [G1])
    expected = THETA0 - 0.1 * (0.1 * G1) / (np.sqrt(0.001 * G1**2) + 1e-8)
    np.testing.assert_allclose(theta1, expected, rtol=1e-15)
    assert abs(theta1[0] - 0.683772234) < 1e-6  # the step is √10 ≈ 3.16 times the bias-corrected one


# --- heavy-ball momentum in both seed conventions ------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "v1", "v2"),
    [
        ("seed000", [-0.05, 0.1], [-0.07, 0.04]),  # v = βv − αg: velocity points downhill
        ("seed001", [0.05, -0.1], [0.07, -0.04]),  # v = γv + ηg: velocity points uphill, θ ← θ − v
    ],
)
def test_heavy_ball_two_steps_in_both_seed_conventions(form, v1, v2) -> None:
    # seed000: v₁ = −0.1·g₁ = (−0.05, 0.1), θ₁ = θ₀ + v₁ = (0.95, −1.9);
    #          v₂ = 0.9·v₁ − 0.1·g₂ = (−0.07, 0.04), θ₂ = (0.88, −1.86). seed001: same θ, v of opposite sign.
    tx = dc.optim.momentum(lr=0.1, beta=0.9, form=form)
    state = tx.init(THETA0)
    u1, state = tx.update(G1, state, THETA0)
    theta1 = dc.optim.apply_updates(THETA0, u1)
    (velocity,) = find_fields(state, "velocity")
    np.testing.assert_allclose(velocity, v1, rtol=1e-15)
    np.testing.assert_allclose(theta1, [0.95, -1.9], rtol=1e-15)
    u2, state = tx.update(G2, state, theta1)
    theta2 = dc.optim.apply_updates(theta1, u2)
    (velocity,) = find_fields(state, "velocity")
    np.testing.assert_allclose(velocity, v2, rtol=1e-14)
    np.testing.assert_allclose(theta2, [0.88, -1.86], rtol=1e-15)
    assert dc.optim.get_lr(state) == 0.1


def _mixed_run(tx, steps: int):
    params = problems.mixed_params()
    state = tx.init(params)
    for _ in range(steps):
        updates, state = tx.update(problems.mixed_grad(params), state, params)
        params = dc.optim.apply_updates(params, updates)
    return params


@pytest.mark.parametrize("form", ["seed000", "seed001"])
def test_momentum_equals_sgd_momentum_at_constant_lr_but_not_under_a_step_schedule(form) -> None:
    ours = _mixed_run(dc.optim.momentum(lr=0.02, beta=0.9, form=form), 50)
    torch_style = _mixed_run(dc.optim.sgd(lr=0.02, momentum=0.9), 50)
    start = problems.mixed_params()
    for k in ours:
        assert not np.allclose(ours[k], start[k])
        np.testing.assert_allclose(ours[k], torch_style[k], rtol=1e-12, err_msg=k)

    def schedule(t: int) -> float:
        return 0.02 if t < 20 else 0.002

    ours = _mixed_run(dc.optim.momentum(lr=schedule, beta=0.9, form=form), 50)
    torch_style = _mixed_run(dc.optim.sgd(lr=schedule, momentum=0.9), 50)
    gap = max(float(np.max(np.abs(ours[k] - torch_style[k]))) for k in ours)
    # after the drop, sgd scales the whole buffer (built with η = 0.02) by 0.002; the seeds keep it
    assert gap > 1e-2, gap


def test_momentum_under_a_schedule_follows_the_seed_formula() -> None:
    def schedule(t: int) -> float:
        return 0.1 if t < 2 else 0.01

    grads = [G1, G2, np.array([-1.0, 0.5]), np.array([0.3, 0.3])]
    trajectory, _ = _step(dc.optim.momentum(lr=schedule, beta=0.9), THETA0, grads)
    theta, v = THETA0.copy(), np.zeros(2)
    for t, g in enumerate(grads):
        v = 0.9 * v - schedule(t) * g  # seed 000, literally
        theta = theta + v
        np.testing.assert_allclose(trajectory[t], theta, rtol=1e-14)


def test_momentum_weight_decay_and_maximize() -> None:
    decayed = _mixed_run(dc.optim.momentum(lr=0.02, beta=0.9, weight_decay=0.1), 30)
    reference = _mixed_run(dc.optim.sgd(lr=0.02, momentum=0.9, weight_decay=0.1), 30)
    for k in decayed:
        np.testing.assert_allclose(decayed[k], reference[k], rtol=1e-12)
    tx = dc.optim.momentum(lr=0.1, maximize=True)
    (theta1,), _ = _step(tx, THETA0, [G1])
    np.testing.assert_allclose(theta1, THETA0 + 0.1 * G1, rtol=1e-15)  # ascent


# --- Lion ------------------------------------------------------------------------------------------------


def test_lion_two_steps_by_hand() -> None:
    # η = 0.1, β = (0.9, 0.99), λ = 0.5, θ₀ = (1, −2, 0.5)
    # step 1: c = 0.1·g₁ = (0.03, −0.02, 0) → sign (1, −1, 0); θ₁ = θ₀ − 0.1·(sign + 0.5·θ₀) = (0.85, −1.8, 0.475)
    #         m₁ = 0.01·g₁ = (0.003, −0.002, 0)
    # step 2: c = 0.9·m₁ + 0.1·g₂ = (−0.0073, −0.0418, 0.005) → sign (−1, −1, 1)
    #         θ₂ = θ₁ − 0.1·(sign + 0.5·θ₁) = (0.9075, −1.61, 0.35125); m₂ = 0.99·m₁ + 0.01·g₂
    theta0 = np.array([1.0, -2.0, 0.5])
    g1, g2 = np.array([0.3, -0.2, 0.0]), np.array([-0.1, -0.4, 0.05])
    tx = dc.optim.lion(lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)
    (theta1, theta2), state = _step(tx, theta0, [g1, g2])
    np.testing.assert_allclose(theta1, [0.85, -1.8, 0.475], rtol=1e-15)
    np.testing.assert_allclose(theta2, [0.9075, -1.61, 0.35125], rtol=1e-15)
    (m2,) = find_fields(state, "exp_avg")
    np.testing.assert_allclose(m2, [0.00197, -0.00598, 0.0005], rtol=1e-13)
    # the stored momentum (β₂) and the step direction (β₁) disagree in sign on coordinate 0
    assert m2[0] > 0 and theta2[0] > theta1[0]


def _lion_paper(theta, grad_fn, steps, lr, beta1, beta2, wd):
    """Chen et al. 2023, Algorithm 2, transcribed line by line."""
    m = np.zeros_like(theta)
    for _ in range(steps):
        g = grad_fn(theta)
        c = beta1 * m + (1 - beta1) * g
        theta = theta - lr * (np.sign(c) + wd * theta)
        m = beta2 * m + (1 - beta2) * g
    return theta


@pytest.mark.parametrize(("betas", "wd"), [((0.9, 0.99), 0.0), ((0.95, 0.98), 0.1), ((0.5, 0.9), 1.0)])
def test_lion_matches_the_paper_algorithm(betas, wd) -> None:
    x0 = problems.rosenbrock_params()
    expected = _lion_paper(x0, problems.rosenbrock_grad, 200, 1e-3, *betas, wd)
    tx = dc.optim.lion(lr=1e-3, betas=betas, weight_decay=wd)
    x, state = x0.copy(), tx.init(x0)
    for _ in range(200):
        updates, state = tx.update(problems.rosenbrock_grad(x), state, x)
        x = dc.optim.apply_updates(x, updates)
    assert not np.allclose(x, x0)
    np.testing.assert_allclose(x, expected, rtol=1e-13)


def test_lion_defaults_are_the_papers() -> None:
    import inspect

    sig = inspect.signature(dc.optim.lion)
    assert sig.parameters["lr"].default == 1e-4
    assert sig.parameters["betas"].default == (0.9, 0.99)
    assert sig.parameters["weight_decay"].default == 0.0
    assert sig.parameters["maximize"].kind is inspect.Parameter.KEYWORD_ONLY


# --- the other members, one-step oracles -------------------------------------------------------------------


def test_adamax_one_step() -> None:
    # m₁ = 0.1·g, u₁ = |g| + ε, θ₁ = θ₀ − η/(1 − 0.9)·m₁/u₁ = θ₀ − η·sign(g) with ε = 0
    (theta1,), _ = _step(dc.optim.adamax(lr=0.1, eps=0.0), THETA0, [G1])
    np.testing.assert_allclose(theta1, [0.9, -1.9], rtol=1e-15)
    # ε inside the max (torch), not added to u (Keras): u₁ = |g| + 0.5
    (theta1,), _ = _step(dc.optim.adamax(lr=0.1, eps=0.5), THETA0, [G1])
    np.testing.assert_allclose(theta1, [1.0 - 0.1 * 0.5 / 1.0, -2.0 + 0.1 * 1.0 / 1.5], rtol=1e-15)


def test_radam_uses_momentum_sgd_until_rho_exceeds_5() -> None:
    # β₂ = 0.999: ρ_t = 1, 2.0, 3.0, 4.0, 4.996, 5.994, ...: the first five steps are θ ← θ − η·m̂_t.
    rho = [_rho(0.999, t) for t in range(1, 7)]
    assert max(rho[:5]) <= 5.0 < rho[5]
    rng = np.random.default_rng(1)
    grads = [rng.normal(size=2) for _ in range(6)]
    trajectory, _ = _step(dc.optim.radam(lr=0.1), THETA0, grads)
    np.testing.assert_allclose(trajectory[0], THETA0 - 0.1 * grads[0], rtol=1e-15)  # m̂₁ = g₁
    m = np.zeros(2)
    theta = THETA0.copy()
    for t, g in enumerate(grads[:5], start=1):
        m = 0.9 * m + 0.1 * g
        theta = theta - 0.1 * m / (1 - 0.9**t)
        np.testing.assert_allclose(trajectory[t - 1], theta, rtol=1e-14)
    # the sixth step is rectified: θ ← θ − η·m̂·r·√(1−β₂ᵗ)/(√v + ε)
    m = 0.9 * m + 0.1 * grads[5]
    assert not np.allclose(trajectory[5], theta - 0.1 * m / (1 - 0.9**6))
    v = sum(0.001 * 0.999 ** (6 - i) * g**2 for i, g in enumerate(grads, start=1))
    rho_inf, rho6 = 2 / 0.001 - 1, rho[5]
    r = np.sqrt((rho6 - 4) * (rho6 - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho6))
    expected = theta - 0.1 * m / (1 - 0.9**6) * r * np.sqrt(1 - 0.999**6) / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(trajectory[5], expected, rtol=1e-13)


def _rho(beta2: float, t: int) -> float:
    rho_inf = 2 / (1 - beta2) - 1
    return rho_inf - 2 * t * beta2**t / (1 - beta2**t)


def test_nadam_first_step_and_momentum_schedule() -> None:
    # μ_t = β₁(1 − ½·0.96^(0.004t)); step 1 with m₁ = 0.1g and √v̂₁ = |g| (ε = 0):
    # θ₁ = θ₀ − η·[(1−μ₁)/(1−μ₁)·sign(g) + μ₂/(1−μ₁μ₂)·0.1·sign(g)]
    mu1 = 0.9 * (1 - 0.5 * 0.96**0.004)
    mu2 = 0.9 * (1 - 0.5 * 0.96**0.008)
    (theta1,), state = _step(dc.optim.nadam(lr=0.1, eps=0.0), THETA0, [G1])
    step = 0.1 * (1.0 + mu2 / (1 - mu1 * mu2) * 0.1)
    np.testing.assert_allclose(theta1, THETA0 - step * np.sign(G1), rtol=1e-14)
    (mu_product,) = find_fields(state, "mu_product")
    assert mu_product == pytest.approx(mu1, rel=1e-15)


# --- Adafactor --------------------------------------------------------------------------------------------


def test_adafactor_one_step_on_a_rank_one_gradient_is_a_relative_sign_step() -> None:
    # t = 1: 1 − β̂₂ = 1, so R = row means of g², C = column means; for g = a·bᵀ, R·C/mean(R) = g² exactly,
    # u = sign(g), RMS(u) = 1 (no clipping), α = max(ε₂, RMS(θ))·min(η, 1) = 2·0.01.
    theta0 = {"W": np.full((2, 2), 2.0), "b": np.array([2.0, -2.0])}
    g = {"W": np.outer([1.0, 2.0], [3.0, -1.0]), "b": np.array([0.5, -4.0])}
    (theta1,), state = _step(dc.optim.adafactor(lr=0.01), theta0, [g])
    np.testing.assert_allclose(theta1["W"], [[1.98, 2.02], [1.98, 2.02]], rtol=1e-15)
    np.testing.assert_allclose(theta1["b"], [1.98, -1.98], rtol=1e-15)
    (adafactor_state,) = state
    np.testing.assert_allclose(adafactor_state.row_var["W"], [[5.0], [20.0]])  # (9 + 1)/2, (36 + 4)/2
    np.testing.assert_allclose(adafactor_state.col_var["W"], [[22.5, 2.5]])  # (9 + 36)/2, (1 + 4)/2
    assert adafactor_state.variance["W"] is None and adafactor_state.row_var["b"] is None


def test_adafactor_eps1_floors_the_mean_of_the_row_factor() -> None:
    # g = 0.6 everywhere: R = C = 0.36, mean(R) = 0.36 < ε₁ = 0.5, so v̂ = 0.36·0.36/0.5 = 0.2592 (> ε₁² = 0.25)
    # u = 0.6/√0.2592 = 5/(3√2) ≈ 1.1785; RMS(u) < d = 2, no clipping; α = RMS(θ)·η = 2·0.01
    theta0, g = np.full((2, 2), 2.0), np.full((2, 2), 0.6)
    tx = dc.optim.adafactor(lr=0.01, eps=(0.5, 1e-3), d=2.0)
    (theta1,), _ = _step(tx, theta0, [g])
    np.testing.assert_allclose(theta0 - theta1, 0.02 * 5 / (3 * np.sqrt(2)), rtol=1e-14)
    torch = pytest.importorskip("torch")
    w = torch.tensor(theta0.copy())
    opt = torch.optim.Adafactor([w], lr=0.01, eps=(0.5, 1e-3), d=2.0, foreach=False)
    w.grad = torch.from_numpy(g.copy())
    opt.step()
    np.testing.assert_allclose(theta1, w.numpy(), rtol=1e-15)


def test_adafactor_factors_the_last_two_axes() -> None:
    params = {"T": np.ones((2, 4, 3)), "W": np.ones((5, 3)), "b": np.ones(3), "s": np.array(1.5)}
    (state,) = dc.optim.adafactor().init(params)
    assert state.row_var["T"].shape == (2, 4, 1) and state.col_var["T"].shape == (2, 1, 3)
    assert state.row_var["W"].shape == (5, 1) and state.col_var["W"].shape == (1, 3)
    assert state.variance["b"].shape == (3,) and state.variance["s"].shape == ()
    assert state.variance["T"] is None and state.row_var["s"] is None


@pytest.mark.parametrize("lr", [10.0, 0.3])
def test_adafactor_relative_step_is_min_of_lr_and_inverse_sqrt_t(lr) -> None:
    # a constant gradient gives u = 1 (no clipping), so each step is max(ε₂, RMS(θ))·min(η, 1/√t)
    theta0 = np.array([1.0, 2.0, 3.0, 4.0])
    trajectory, _ = _step(dc.optim.adafactor(lr=lr), theta0, [np.ones(4)] * 20)
    previous = [theta0, *trajectory[:-1]]
    for t, (before, after) in enumerate(zip(previous, trajectory, strict=True), start=1):
        alpha = max(1e-3, float(np.sqrt(np.mean(before**2)))) * min(lr, 1 / np.sqrt(t))
        np.testing.assert_allclose(before - after, alpha, rtol=1e-13, err_msg=f"t={t}")


def test_adafactor_needs_params() -> None:
    tx = dc.optim.adafactor()
    state = tx.init(np.ones(3))
    with pytest.raises(ParameterError, match=r"adafactor: update needs params"):
        tx.update(np.ones(3), state)


def test_adafactor_matches_torch_on_3d_and_0d_leaves() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    params = {"T": rng.normal(size=(2, 4, 3)) + 3.0, "s": np.array(2.5)}
    target = {"T": rng.normal(size=(2, 4, 3)), "s": np.array(-1.0)}

    def grad(p):
        return {k: (p[k] - target[k]) * (1.0 + 0.1 * np.cos(p[k])) for k in p}

    tx = dc.optim.adafactor(lr=0.01, weight_decay=0.05)
    ours, state = {k: v.copy() for k, v in params.items()}, tx.init(params)
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt = torch.optim.Adafactor(list(tparams.values()), lr=0.01, weight_decay=0.05, foreach=False)
    for _ in range(100):
        updates, state = tx.update(grad(ours), state, ours)
        ours = dc.optim.apply_updates(ours, updates)
        for k, g in grad({k: t.detach().numpy().copy() for k, t in tparams.items()}).items():
            tparams[k].grad = torch.from_numpy(np.asarray(g))
        opt.step()
    for k in params:
        assert not np.allclose(ours[k], params[k])
        np.testing.assert_allclose(ours[k], tparams[k].detach().numpy(), rtol=1e-10, err_msg=k)


# --- learning rate in state, validation, dtypes ------------------------------------------------------------

FACTORIES = [
    ("adamax", dict(lr=0.01, weight_decay=0.1)),
    ("nadam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("radam", dict(lr=0.01, weight_decay=0.1)),
    ("adafactor", dict(lr=0.01, weight_decay=0.1)),
    ("lion", dict(lr=0.01, weight_decay=0.1)),
    ("momentum", dict(lr=0.01, weight_decay=0.1)),
    ("momentum", dict(lr=0.01, form="seed001")),
    ("adam", dict(lr=0.01, bias_correction=False)),
]
FACTORY_IDS = [f"{name}-{i}" for i, (name, _) in enumerate(FACTORIES)]


@pytest.mark.parametrize(("name", "kwargs"), FACTORIES, ids=FACTORY_IDS)
def test_lr_is_readable_and_scalable(name, kwargs) -> None:
    params = problems.mixed_params()
    tx = getattr(dc.optim, name)(**kwargs)
    state = tx.init(params)
    assert dc.optim.get_lr(state) == kwargs["lr"]
    grads = problems.mixed_grad(params)
    full, state1 = tx.update(grads, state, params)
    assert dc.optim.get_lr(state1) == kwargs["lr"]
    assert dc.optim.get_step(state1) == 1
    half, state_half = tx.update(grads, dc.optim.set_lr_scale(state, 0.5), params)
    assert dc.optim.get_lr(state_half) == 0.5 * kwargs["lr"]
    for k in params:
        np.testing.assert_allclose(half[k], 0.5 * full[k], rtol=1e-12, err_msg=k)


@pytest.mark.parametrize("name", ["adamax", "nadam", "radam", "adafactor", "lion"])
def test_lr_schedule_is_evaluated_at_each_step(name) -> None:
    def schedule(t: int) -> float:
        return 0.01 / (1 + t)

    params = problems.mixed_params()
    tx = getattr(dc.optim, name)(lr=schedule)
    state = tx.init(params)
    for t in range(3):
        updates, state = tx.update(problems.mixed_grad(params), state, params)
        params = dc.optim.apply_updates(params, updates)
        assert dc.optim.get_lr(state) == schedule(t)


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        ("adam", {"betas": (1.5, 0.999)}, r"adam: betas\[0\] must be in \[0, 1\), got 1.5"),
        ("adamax", {"betas": (1.5, 0.999)}, r"adamax: betas\[0\] must be in \[0, 1\), got 1.5"),
        ("adamax", {"eps": -1e-8}, r"adamax: eps must be in \[0, inf\), got -1e-08"),
        ("adamax", {"weight_decay": -0.1}, r"adamax: weight_decay must be in \[0, inf\) or an array.*, got -0.1"),
        ("adamax", {"lr": -1}, r"adamax: lr must be a float in \[0, inf\) or a schedule \(callable\), got -1"),
        ("adamax", {"maximize": "yes"}, r"adamax: maximize must be a bool, got 'yes'"),
        ("nadam", {"betas": (0.9, 1.0)}, r"nadam: betas\[1\] must be in \[0, 1\), got 1.0"),
        ("nadam", {"momentum_decay": -4e-3}, r"nadam: momentum_decay must be in \[0, inf\), got -0.004"),
        ("nadam", {"decoupled_weight_decay": 1}, r"nadam: decoupled_weight_decay must be a bool, got 1"),
        ("nadam", {"eps": float("nan")}, r"nadam: eps must be in \[0, inf\), got nan"),
        ("radam", {"betas": 0.9}, r"radam: betas must be a pair of numbers, got 0.9"),
        ("radam", {"weight_decay": -1}, r"radam: weight_decay must be in \[0, inf\) or an array.*, got -1"),
        ("radam", {"decoupled_weight_decay": None}, r"radam: decoupled_weight_decay must be a bool, got None"),
        ("adafactor", {"beta2_decay": 0.5}, r"adafactor: beta2_decay must be in \(-inf, 0\], got 0.5"),
        ("adafactor", {"eps": (-1.0, 1e-3)}, r"adafactor: eps\[0\] must be None or in \[0, inf\), got -1.0"),
        ("adafactor", {"eps": (None, -1.0)}, r"adafactor: eps\[1\] must be in \[0, inf\), got -1.0"),
        ("adafactor", {"eps": (None, None)}, r"adafactor: eps\[1\] must be in \[0, inf\), got None"),
        ("adafactor", {"eps": 1e-3}, r"adafactor: eps must be a pair \(eps1 or None, eps2\), got 0.001"),
        ("adafactor", {"d": 0.5}, r"adafactor: d must be in \[1, inf\), got 0.5"),
        ("adafactor", {"weight_decay": -0.1}, r"adafactor: weight_decay must be in \[0, inf\), got -0.1"),
        ("adafactor", {"lr": "0.01"}, r"adafactor: lr must be a float in \[0, inf\) or a schedule"),
        ("adafactor", {"maximize": 0}, r"adafactor: maximize must be a bool, got 0"),
        ("lion", {"betas": (0.9, 1.5)}, r"lion: betas\[1\] must be in \[0, 1\), got 1.5"),
        ("lion", {"weight_decay": -1.0}, r"lion: weight_decay must be in \[0, inf\) or an array.*, got -1.0"),
        ("lion", {"lr": -1e-4}, r"lion: lr must be a float in \[0, inf\) or a schedule \(callable\), got -0.0001"),
        ("momentum", {"lr": 0.1, "beta": 1.5}, r"momentum: beta must be in \[0, 1\], got 1.5"),
        (
            "momentum",
            {"lr": 0.1, "form": "seed002"},
            r"momentum: form must be one of 'seed000', 'seed001', got 'seed002'",
        ),
        ("momentum", {"lr": -0.1}, r"momentum: lr must be a float in \[0, inf\) or a schedule \(callable\), got -0.1"),
        ("momentum", {"lr": 0.1, "weight_decay": -1}, r"momentum: weight_decay must be in \[0, inf\).*, got -1"),
    ],
)
def test_bad_hyperparameters_raise_a_clear_error(factory, kwargs, message) -> None:
    with pytest.raises(ParameterError, match=message):
        getattr(dc.optim, factory)(**kwargs)


def test_factories_take_torchs_names_and_defaults() -> None:
    import inspect

    torch = pytest.importorskip("torch")
    pairs = [
        ("adamax", torch.optim.Adamax),
        ("nadam", torch.optim.NAdam),
        ("radam", torch.optim.RAdam),
        ("adafactor", torch.optim.Adafactor),
    ]
    torch_only = {"params", "foreach", "capturable", "differentiable"}
    for name, cls in pairs:
        ours = inspect.signature(getattr(dc.optim, name)).parameters
        theirs = {k: p for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}
        theirs = {k: p for k, p in theirs.items() if k not in torch_only}
        assert list(ours) == list(theirs), name
        for k, p in theirs.items():
            assert ours[k].default == p.default, (name, k)
            assert ours[k].kind == p.kind, (name, k)


@pytest.mark.parametrize(("name", "kwargs"), FACTORIES, ids=FACTORY_IDS)
def test_float32_stays_float32(name, kwargs) -> None:
    rng = np.random.default_rng(0)
    params = {
        "T": rng.normal(size=(2, 3, 4)).astype(np.float32),
        "W": rng.normal(size=(4, 3)).astype(np.float32),
        "b": rng.normal(size=3).astype(np.float32),
        "s": np.array(0.5, dtype=np.float32),
    }
    tx = getattr(dc.optim, name)(**kwargs)
    state = tx.init(params)
    for _ in range(3):
        grads = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
        updates, state = tx.update(grads, state, params)
        for k in params:
            assert updates[k].dtype == np.float32, (name, k)
        params = dc.optim.apply_updates(params, updates)
    floating = {k: a for k, a in dc.optim.state_to_dict(state).items() if np.issubdtype(a.dtype, np.floating)}
    assert any(a.ndim > 0 for a in floating.values())
    for key, arr in floating.items():
        if arr.ndim > 0:
            assert arr.dtype == np.float32, (name, key)
    restored = dc.optim.state_from_dict(tx.init(params), dc.optim.state_to_dict(state))
    grads = {k: np.ones_like(v) for k, v in params.items()}
    u1, _ = tx.update(grads, state, params)
    u2, _ = tx.update(grads, restored, params)
    for k in params:
        np.testing.assert_array_equal(u1[k], u2[k])


def test_updates_do_not_mutate_inputs_or_state() -> None:
    params = problems.mixed_params()
    for name in ["adamax", "nadam", "radam", "adafactor", "lion"]:
        tx = getattr(dc.optim, name)(lr=0.01, weight_decay=0.1)
        state = tx.init(params)
        _, state = tx.update(problems.mixed_grad(params), state, params)
        before_state = dc.optim.state_to_dict(state)
        before_params = {k: v.copy() for k, v in params.items()}
        grads = problems.mixed_grad(params)
        before_grads = {k: v.copy() for k, v in grads.items()}
        tx.update(grads, state, params)
        after_state = dc.optim.state_to_dict(state)
        for k, v in before_state.items():
            np.testing.assert_array_equal(after_state[k], v, err_msg=f"{name}: {k}")
        for k in params:
            np.testing.assert_array_equal(params[k], before_params[k])
            np.testing.assert_array_equal(grads[k], before_grads[k])
