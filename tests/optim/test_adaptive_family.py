"""The adaptive family: hand-computed oracles, the seeds' ε placement, learning-rate plumbing, validation, dtypes.

torch conformance over 300 steps lives in ``test_torch_conformance.py``; this
file checks one- and two-step trajectories computed by hand from the update
rules, in torch's form (ε added to the root) and in the seed documents' form
(ε inside the root, ``eps_inside_sqrt=True``), the learning rate as
``get_lr`` / ``set_lr_scale`` see it, ASGD's average against torch's ``ax``,
and every validation message.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import descend as dc
from descend.errors import ParameterError, StructureError
from descend.optim.state import find_fields

THETA0 = np.array([1.0, -2.0])
G1 = np.array([0.5, -1.0])
G2 = np.array([0.25, 0.5])
G3 = np.array([-0.5, 0.25])


def _run(tx, params, grads_seq):
    """Apply ``tx`` to fixed gradients; return the parameter trajectory and the final state."""
    state = tx.init(params)
    trajectory = []
    for g in grads_seq:
        updates, state = tx.update(g, state, params)
        params = dc.optim.apply_updates(params, updates)
        trajectory.append(params)
    return trajectory, state


# --- AdaGrad: torch's form and seed 001's form ------------------------------------------------------------


def test_adagrad_two_steps_torch_form() -> None:
    # η = 0.1, ε = 0.01.  G₁ = g₁² = (0.25, 1):  θ₁ = θ₀ − 0.1·g₁/(√G₁ + ε) = (1 − 0.05/0.51, −2 + 0.1/1.01)
    # G₂ = G₁ + g₂² = (0.3125, 1.25):           θ₂ = θ₁ − 0.1·g₂/(√G₂ + ε)
    (theta1, theta2), state = _run(dc.optim.adagrad(lr=0.1, eps=0.01), THETA0, [G1, G2])
    np.testing.assert_allclose(theta1, [0.9019607843137255, -1.9009900990099010], rtol=1e-15)
    np.testing.assert_allclose(theta2, [0.8580253654296868, -1.9453150045523402], rtol=1e-15)
    (acc,) = find_fields(state, "sum_of_squares")
    np.testing.assert_array_equal(acc, [0.3125, 1.25])


def test_adagrad_two_steps_seed_form() -> None:
    # seed 001: θ ← θ − η/√(G + ε)·g.  θ₁ = (1 − 0.05/√0.26, −2 + 0.1/√1.01);  θ₂ = θ₁ − 0.1·g₂/√(G₂ + ε)
    tx = dc.optim.adagrad(lr=0.1, eps=0.01, eps_inside_sqrt=True)
    (theta1, theta2), _ = _run(tx, THETA0, [G1, G2])
    np.testing.assert_allclose(theta1, [0.9019419324309080, -1.9004962809790011], rtol=1e-15)
    np.testing.assert_allclose(theta2, [0.8579193871146268, -1.9450398212977385], rtol=1e-15)


def test_adagrad_first_step_without_eps_is_a_sign_step_in_both_forms() -> None:
    # G₁ = g₁², so g₁/√G₁ = sign(g₁): θ₁ = θ₀ − η·sign(g₁) whatever |g₁|
    for inside in (False, True):
        (theta1,), _ = _run(dc.optim.adagrad(lr=0.1, eps=0.0, eps_inside_sqrt=inside), THETA0, [G1])
        np.testing.assert_allclose(theta1, [0.9, -1.9], rtol=1e-15)


def test_adagrad_initial_accumulator_and_lr_decay() -> None:
    # τ = 0.75: G₁ = (1, 1.75); δ = 1: η₁ = 0.1, η₂ = 0.1/(1 + 1·1) = 0.05.  ε = 0.
    #   θ₁ = (1 − 0.1·0.5/1, −2 + 0.1·1/√1.75);  G₂ = (1.0625, 2);  θ₂ = θ₁ − 0.05·(0.25/√1.0625, 0.5/√2)
    tx = dc.optim.adagrad(lr=0.1, lr_decay=1.0, initial_accumulator_value=0.75, eps=0.0)
    (theta1, theta2), state = _run(tx, THETA0, [G1, G2])
    np.testing.assert_allclose(theta1, [0.95, -2.0 + 0.1 / np.sqrt(1.75)], rtol=1e-15)
    np.testing.assert_allclose(theta2, theta1 - 0.05 * np.array([0.25 / np.sqrt(1.0625), 0.5 / np.sqrt(2.0)]))
    np.testing.assert_allclose(theta2, [0.9378732187481834, -1.9420847749278182], rtol=1e-15)
    assert dc.optim.get_lr(state) == 0.05  # the decayed rate of the last update


# --- RMSprop: torch's form and the seeds' form ------------------------------------------------------------


def test_rmsprop_two_steps_torch_form() -> None:
    # γ = α = 0.9, η = 0.1, ε = 0.01.  E₁ = 0.1·g₁² = (0.025, 0.1):  θ₁ = θ₀ − 0.1·g₁/(√E₁ + ε)
    # E₂ = 0.9·E₁ + 0.1·g₂² = (0.02875, 0.115):                   θ₂ = θ₁ − 0.1·g₂/(√E₂ + ε)
    (theta1, theta2), state = _run(dc.optim.rmsprop(lr=0.1, alpha=0.9, eps=0.01), THETA0, [G1, G2])
    np.testing.assert_allclose(theta1, [1 - 0.05 / (np.sqrt(0.025) + 0.01), -2 + 0.1 / (np.sqrt(0.1) + 0.01)])
    np.testing.assert_allclose(theta1, [0.7025825642401226, -1.6934656996828449], rtol=1e-15)
    np.testing.assert_allclose(theta2, [0.5633519799660111, -1.8366843677229943], rtol=1e-15)
    (sq,) = find_fields(state, "square_avg")
    np.testing.assert_allclose(sq, [0.02875, 0.115], rtol=1e-15)


def test_rmsprop_two_steps_seed_form() -> None:
    # seeds 001/002: θ ← θ − η/√(E[g²] + ε)·g.  θ₁ = (1 − 0.05/√0.035, −2 + 0.1/√0.11);  θ₂ = θ₁ − 0.1·g₂/√(E₂ + ε)
    tx = dc.optim.rmsprop(lr=0.1, alpha=0.9, eps=0.01, eps_inside_sqrt=True)
    (theta1, theta2), _ = _run(tx, THETA0, [G1, G2])
    np.testing.assert_allclose(theta1, [0.7327387580875756, -1.6984886554222364], rtol=1e-15)
    np.testing.assert_allclose(theta2, [0.6057386310873851, -1.8399100116595459], rtol=1e-15)


def test_rmsprop_first_step_without_eps_is_sqrt10_sign_step() -> None:
    # E₁ = 0.1·g², so g/√E₁ = √10·sign(g): θ₁ = θ₀ − 0.1·√10·sign(g₁), in both forms
    for inside in (False, True):
        (theta1,), _ = _run(dc.optim.rmsprop(lr=0.1, alpha=0.9, eps=0.0, eps_inside_sqrt=inside), THETA0, [G1])
        np.testing.assert_allclose(theta1, [1 - 0.1 * np.sqrt(10), -2 + 0.1 * np.sqrt(10)], rtol=1e-15)


def test_rmsprop_centered_with_momentum_two_steps() -> None:
    # E[g]₁ = 0.1·g₁ = (0.05, −0.1);  v₁ = E₁ − E[g]₁² = (0.0225, 0.09), √v₁ + ε = (0.16, 0.31)
    # b₁ = d₁ = (3.125, −1/0.31);  θ₁ = θ₀ − 0.1·b₁ = (0.6875, −2 + 0.1/0.31)
    # E[g]₂ = (0.07, −0.04), E₂ = (0.02875, 0.115): v₂ = (0.02385, 0.1134);  b₂ = 0.9·b₁ + g₂/(√v₂ + ε)
    tx = dc.optim.rmsprop(lr=0.1, alpha=0.9, eps=0.01, centered=True, momentum=0.9)
    (theta1, theta2), state = _run(tx, THETA0, [G1, G2])
    np.testing.assert_allclose(theta1, [0.6875, -2 + 0.1 / 0.31], rtol=1e-15)
    b2 = 0.9 * np.array([3.125, -1 / 0.31]) + G2 / (np.sqrt([0.02385, 0.1134]) + 0.01)
    np.testing.assert_allclose(theta2, theta1 - 0.1 * b2, rtol=1e-14)
    np.testing.assert_allclose(theta2, [0.2542137346159947, -1.5312932282136961], rtol=1e-14)
    (ga,) = find_fields(state, "grad_avg")
    np.testing.assert_allclose(ga, [0.07, -0.04], rtol=1e-15)
    (buf,) = find_fields(state, "momentum_buffer")
    np.testing.assert_allclose(buf, b2, rtol=1e-14)


def test_rmsprop_momentum_is_trace_after_scale_by_rms() -> None:
    rng = np.random.default_rng(3)
    grads = [rng.normal(size=4) for _ in range(5)]
    x0 = rng.normal(size=4)
    a, _ = _run(dc.optim.rmsprop(lr=0.05, momentum=0.8, centered=True), x0, grads)
    composed = dc.optim.chain(
        dc.optim.scale_by_rms(alpha=0.99, eps=1e-8, centered=True),
        dc.optim.trace(momentum=0.8),
        dc.optim.scale_by_learning_rate(0.05),
    )
    b, _ = _run(composed, x0, grads)
    np.testing.assert_array_equal(a[-1], b[-1])


# --- where ε goes: the seeds' form against torch's -----------------------------------------------------------


@pytest.mark.parametrize("name", ["adagrad", "rmsprop"])
def test_eps_inside_sqrt_differs_from_default_as_expected(name) -> None:
    # One step from G = 0 (AdaGrad: G₁ = g², RMSprop with α = 0: E₁ = g²), ε = 1e-10 (AdaGrad's default):
    #   torch: η·g/(|g| + ε),  seeds: η·g/√(g² + ε).
    extra = {"alpha": 0.0} if name == "rmsprop" else {}
    g = np.array([1.0, 1e-3, 1e-5, 1e-6])
    x0 = np.zeros(4)
    make = getattr(dc.optim, name)
    (torch_form,), _ = _run(make(lr=1.0, eps=1e-10, **extra), x0, [g])
    (seed_form,), _ = _run(make(lr=1.0, eps=1e-10, eps_inside_sqrt=True, **extra), x0, [g])
    np.testing.assert_allclose(-torch_form, g / (g + 1e-10), rtol=1e-15)
    np.testing.assert_allclose(-seed_form, g / np.sqrt(g * g + 1e-10), rtol=1e-15)
    # large gradients: the forms agree (relative gap ≈ ε/|g| for torch vs ε/(2g²) for the seeds)
    assert abs(seed_form[0] / torch_form[0] - 1) < 1e-9
    # tiny gradients: √ε = 1e-5 dominates the seeds' denominator, so the step shrinks ~10× at |g| = 1e-6,
    # while torch's ε = 1e-10 still lets it take an almost full sign step
    assert -torch_form[3] > 0.999
    np.testing.assert_allclose(-seed_form[3], 1e-6 / np.sqrt(1e-12 + 1e-10), rtol=1e-15)
    assert -seed_form[3] < 0.1
    assert np.all(np.abs(seed_form[1:]) < np.abs(torch_form[1:]))  # √(g² + ε) > |g| + ε while 2|g| + ε < 1


# --- Adadelta, Rprop, ASGD by hand ----------------------------------------------------------------------------


def test_adadelta_two_steps() -> None:
    # ρ = 0.5, ε = 0.01, η = 1.  E₁ = 0.5·g₁² = (0.125, 0.5);  Δ₁ = −√(0 + ε)/√(E₁ + ε)·g₁
    # A₁ = 0.5·Δ₁²;  E₂ = 0.5·E₁ + 0.5·g₂²;  Δ₂ = −√(A₁ + ε)/√(E₂ + ε)·g₂
    (theta1, theta2), state = _run(dc.optim.adadelta(lr=1.0, rho=0.5, eps=0.01), THETA0, [G1, G2])
    d1 = -np.sqrt(0.01) / np.sqrt(np.array([0.135, 0.51])) * G1
    np.testing.assert_allclose(theta1, THETA0 + d1, rtol=1e-15)
    np.testing.assert_allclose(theta1, [1 - 0.05 / np.sqrt(0.135), -2 + 0.1 / np.sqrt(0.51)], rtol=1e-15)
    a1 = 0.5 * d1**2
    e2 = 0.5 * np.array([0.125, 0.5]) + 0.5 * G2**2
    d2 = -np.sqrt(a1 + 0.01) / np.sqrt(e2 + 0.01) * G2
    np.testing.assert_allclose(theta2, theta1 + d2, rtol=1e-15)
    (acc,) = find_fields(state, "acc_delta")
    np.testing.assert_allclose(acc, 0.5 * a1 + 0.5 * d2**2, rtol=1e-15)


def test_rprop_three_steps() -> None:
    # Δ₀ = 0.1, η₋ = 0.5, η₊ = 2, Δ ∈ [0.01, 0.3].  Gradient signs: (+, −), (+, +), (−, +).
    #   step 1: prev = 0 → f = 1, Δ = (0.1, 0.1), θ₁ = θ₀ − 0.1·(+1, −1) = (0.9, −1.9)
    #   step 2: coord 0 keeps its sign → Δ = 0.2; coord 1 flips → Δ = 0.05 and no step: θ₂ = (0.7, −1.9)
    #   step 3: coord 0 flips → Δ = 0.1, no step; coord 1 had g := 0 → f = 1, Δ = 0.05: θ₃ = (0.7, −1.95)
    tx = dc.optim.rprop(lr=0.1, etas=(0.5, 2.0), step_sizes=(0.01, 0.3))
    (t1, t2, t3), state = _run(tx, THETA0, [G1, G2, G3])
    np.testing.assert_allclose(t1, [0.9, -1.9], rtol=1e-15)
    np.testing.assert_allclose(t2, [0.7, -1.9], rtol=1e-15)
    np.testing.assert_allclose(t3, [0.7, -1.95], rtol=1e-15)
    (step,) = find_fields(state, "step_size")
    np.testing.assert_array_equal(step, [0.1, 0.05])
    (prev,) = find_fields(state, "prev")
    np.testing.assert_array_equal(prev, [0.0, 0.25])


def test_rprop_clips_the_first_step_and_the_growth() -> None:
    # lr above Δ_max: the first step is already clipped; then Δ stays at Δ_max while the sign holds
    tx = dc.optim.rprop(lr=1.0, etas=(0.5, 1.2), step_sizes=(1e-6, 0.25))
    traj, _ = _run(tx, np.zeros(1), [np.ones(1)] * 3)
    np.testing.assert_allclose(np.concatenate(traj), [-0.25, -0.5, -0.75], rtol=1e-15)


def test_asgd_three_steps_and_average() -> None:
    # η = 0.1, λ = 0.5, α = 1, t0 = 0.  η_t = 0.1/(1 + 0.05·t):  η = 0.1, 0.1/1.05, 0.1/1.1
    #   θ₁ = θ₀·(1 − 0.05) − 0.1·g₁ = (0.9, −1.8)
    #   θ₂ = θ₁·(1 − 0.5·η₁) − η₁·g₂ = (5/6, −37/21)
    #   θ₃ = θ₂·(1 − 0.5·η₂) − η₂·g₃ = (37/44, −75/44)
    # μ = 1/max(1, t − t0) for t = 0, 1, 2: 1, 1, 1/2 → θ̄₁ = θ₁, θ̄₂ = θ₂, θ̄₃ = (θ₂ + θ₃)/2
    tx = dc.optim.asgd(lr=0.1, lambd=0.5, alpha=1.0, t0=0)
    (t1, t2, t3), state = _run(tx, THETA0, [G1, G2, G3])
    np.testing.assert_allclose(t1, [0.9, -1.8], rtol=1e-15)
    np.testing.assert_allclose(t2, [5 / 6, -37 / 21], rtol=1e-15)
    np.testing.assert_allclose(t3, [37 / 44, -75 / 44], rtol=1e-15)
    np.testing.assert_allclose(dc.optim.get_averaged_params(state), (t2 + t3) / 2, rtol=1e-15)
    assert dc.optim.get_lr(state) == pytest.approx(0.1 / 1.1, rel=1e-15)


def test_asgd_average_is_a_copy_until_t0_plus_2_then_the_mean_from_there() -> None:
    rng = np.random.default_rng(5)
    params = {"w": rng.normal(size=3)}
    grads = [{"w": rng.normal(size=3)} for _ in range(8)]
    tx = dc.optim.asgd(lr=0.05, t0=3)
    state = tx.init(params)
    traj = []
    for k, g in enumerate(grads, start=1):  # update k uses μ = 1/max(1, k − 1 − t0)
        updates, state = tx.update(g, state, params)
        params = dc.optim.apply_updates(params, updates)
        traj.append(params["w"])
        ax = dc.optim.get_averaged_params(state)["w"]
        if k <= 5:  # μ = 1 for k ≤ t0 + 2: a copy of the iterate
            np.testing.assert_array_equal(ax, params["w"])
        else:  # the running mean of θ₅, …, θ_k
            np.testing.assert_allclose(ax, np.mean(traj[4:], axis=0), rtol=1e-14)
            assert not np.allclose(ax, params["w"], rtol=1e-6)
    with pytest.raises(StructureError, match=r"get_averaged_params: .* no ASGD average"):
        dc.optim.get_averaged_params(dc.optim.sgd(lr=0.1).init(params))


def test_asgd_average_matches_torch_ax() -> None:
    torch = pytest.importorskip("torch")
    from tests.optim import problems

    params0 = problems.mixed_params()
    kwargs = dict(lr=0.02, lambd=0.01, alpha=0.75, t0=20, weight_decay=0.05)
    tx = dc.optim.asgd(**kwargs)
    params = {k: v.copy() for k, v in params0.items()}
    state = tx.init(params)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # torch then keeps η and μ in double, as descend does
    try:
        tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params0.items()}
        opt = torch.optim.ASGD(list(tparams.values()), foreach=False, **kwargs)
        for _ in range(100):
            grads = problems.mixed_grad(params)
            updates, state = tx.update(grads, state, params)
            params = dc.optim.apply_updates(params, updates)
            tgrads = problems.mixed_grad({k: t.detach().numpy().copy() for k, t in tparams.items()})
            for k, g in tgrads.items():
                tparams[k].grad = torch.from_numpy(g)
            opt.step()
    finally:
        torch.set_default_dtype(previous)
    ax = dc.optim.get_averaged_params(state)
    for k, t in tparams.items():
        np.testing.assert_allclose(params[k], t.detach().numpy(), rtol=1e-12)
        torch_ax = opt.state[t]["ax"].numpy()
        np.testing.assert_allclose(ax[k], torch_ax, rtol=1e-12)
        assert not np.allclose(ax[k], params[k], rtol=1e-6)  # the average really differs from the iterate
    assert dc.optim.get_lr(state) == pytest.approx(0.02 / (1 + 0.01 * 0.02 * 99) ** 0.75, rel=1e-15)


# --- the learning rate in the state: get_lr, set_lr_scale, schedules ---------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("adagrad", dict(lr=0.1, lr_decay=0.5)),
        ("rmsprop", dict(lr=0.01, momentum=0.9, centered=True)),
        ("adadelta", dict(lr=0.5)),
        ("rprop", dict(lr=0.01)),
        ("asgd", dict(lr=0.1, lambd=0.1)),
    ],
)
def test_lr_is_readable_and_scalable(name, kwargs) -> None:
    rng = np.random.default_rng(11)
    x0 = rng.normal(size=3)
    grads = [rng.normal(size=3) for _ in range(4)]
    tx = getattr(dc.optim, name)(**kwargs)
    state = tx.init(x0)
    assert dc.optim.get_lr(state) == kwargs["lr"]
    x = x0
    for g in grads[:3]:
        u, state = tx.update(g, state, x)
        x = dc.optim.apply_updates(x, u)
    assert dc.optim.get_step(state) == 3
    u_full, _ = tx.update(grads[3], state, x)
    u_half, half_state = tx.update(grads[3], dc.optim.set_lr_scale(state, 0.5), x)
    lr_full = dc.optim.get_lr(tx.update(grads[3], state, x)[1])
    if name == "asgd":  # s scales lr inside η = s·lr/(1 + λ·s·lr·t)^α, and λη·θ decays with it
        eta = lambda lr: lr / (1 + 0.1 * lr * 3) ** 0.75  # noqa: E731
        assert dc.optim.get_lr(half_state) == pytest.approx(eta(0.05), rel=1e-15)
        np.testing.assert_allclose(u_half, -eta(0.05) * (grads[3] + 0.1 * x), rtol=1e-14)
        np.testing.assert_allclose(u_full, -eta(0.1) * (grads[3] + 0.1 * x), rtol=1e-14)
    else:
        assert dc.optim.get_lr(half_state) == 0.5 * lr_full
        np.testing.assert_allclose(u_half, 0.5 * u_full, rtol=1e-15)
    if name == "adagrad":
        assert lr_full == pytest.approx(0.1 / (1 + 0.5 * 3), rel=1e-15)


def test_adagrad_lr_schedule_combines_with_lr_decay() -> None:
    # η_t = lr(t)/(1 + t·δ) with t the updates done before: lr(t) = 0.2·0.5^t, δ = 1 → η = 0.2, 0.05, 1/60
    tx = dc.optim.adagrad(lr=lambda t: 0.2 * 0.5**t, lr_decay=1.0, eps=0.0)
    traj, state = _run(tx, np.zeros(1), [np.ones(1)] * 3)
    # G = 1, 2, 3: steps η_t/√t
    expected = -np.cumsum([0.2, 0.05 / np.sqrt(2), (0.05 / 3) / np.sqrt(3)])
    np.testing.assert_allclose(np.concatenate(traj), expected, rtol=1e-15)
    assert dc.optim.get_lr(state) == pytest.approx(0.05 / 3, rel=1e-15)


def test_rprop_schedule_modulates_steps_relative_to_lr0() -> None:
    # Δ evolves exactly as with a float lr; the update is multiplied by lr(t)/lr(0)
    grads = [np.array([1.0, -1.0])] * 4
    const, s_const = _run(dc.optim.rprop(lr=0.1), np.zeros(2), grads)
    sched, s_sched = _run(dc.optim.rprop(lr=lambda t: 0.1 if t < 2 else 0.025), np.zeros(2), grads)
    steps_const = np.diff(np.vstack([np.zeros(2), *const]), axis=0)
    steps_sched = np.diff(np.vstack([np.zeros(2), *sched]), axis=0)
    np.testing.assert_allclose(steps_sched[:2], steps_const[:2], rtol=1e-15)
    np.testing.assert_allclose(steps_sched[2:], 0.25 * steps_const[2:], rtol=1e-15)
    np.testing.assert_array_equal(find_fields(s_sched, "step_size")[0], find_fields(s_const, "step_size")[0])
    np.testing.assert_allclose(steps_const[:, 0], [-0.1, -0.12, -0.144, -0.1728], rtol=1e-15)
    assert dc.optim.get_lr(s_sched) == 0.025


# --- validation: every bad hyperparameter names owner, parameter, range and value ---------------------------

LR_RANGE = "a float in [0, inf) or a schedule (callable)"
WD_RANGE = "in [0, inf) or an array of such values"

BAD = [
    ("adagrad", dict(lr=-0.1), f"adagrad: lr must be {LR_RANGE}, got -0.1"),
    ("adagrad", dict(lr=float("nan")), f"adagrad: lr must be {LR_RANGE}, got nan"),
    ("adagrad", dict(lr_decay=-1.0), "adagrad: lr_decay must be in [0, inf), got -1.0"),
    ("adagrad", dict(weight_decay=-0.5), f"adagrad: weight_decay must be {WD_RANGE}, got -0.5"),
    ("adagrad", dict(initial_accumulator_value=-1), "adagrad: initial_accumulator_value must be in [0, inf), got -1"),
    ("adagrad", dict(eps=-1e-10), "adagrad: eps must be in [0, inf), got -1e-10"),
    ("adagrad", dict(maximize=1), "adagrad: maximize must be a bool, got 1"),
    ("adagrad", dict(eps_inside_sqrt="yes"), "adagrad: eps_inside_sqrt must be a bool, got 'yes'"),
    ("rmsprop", dict(lr=-1), f"rmsprop: lr must be {LR_RANGE}, got -1"),
    ("rmsprop", dict(alpha=1.5), "rmsprop: alpha must be in [0, 1], got 1.5"),
    ("rmsprop", dict(alpha=-0.1), "rmsprop: alpha must be in [0, 1], got -0.1"),
    ("rmsprop", dict(eps=-1.0), "rmsprop: eps must be in [0, inf), got -1.0"),
    ("rmsprop", dict(weight_decay=-1), f"rmsprop: weight_decay must be {WD_RANGE}, got -1"),
    ("rmsprop", dict(momentum=-0.9), "rmsprop: momentum must be in [0, inf), got -0.9"),
    ("rmsprop", dict(centered=None), "rmsprop: centered must be a bool, got None"),
    ("rmsprop", dict(maximize="no"), "rmsprop: maximize must be a bool, got 'no'"),
    ("rmsprop", dict(eps_inside_sqrt=0), "rmsprop: eps_inside_sqrt must be a bool, got 0"),
    ("adadelta", dict(lr=-1.0), f"adadelta: lr must be {LR_RANGE}, got -1.0"),
    ("adadelta", dict(rho=1.1), "adadelta: rho must be in [0, 1], got 1.1"),
    ("adadelta", dict(eps=-1e-6), "adadelta: eps must be in [0, inf), got -1e-06"),
    ("adadelta", dict(weight_decay=-0.1), f"adadelta: weight_decay must be {WD_RANGE}, got -0.1"),
    ("adadelta", dict(maximize=None), "adadelta: maximize must be a bool, got None"),
    ("rprop", dict(lr=-0.01), f"rprop: lr must be {LR_RANGE}, got -0.01"),
    ("rprop", dict(lr=lambda t: 0.0), "rprop: lr(0) must be in (0, inf), got 0.0"),
    ("rprop", dict(etas=(1.5, 2.0)), "rprop: etas[0] must be in (0, 1), got 1.5"),
    ("rprop", dict(etas=(0.0, 1.2)), "rprop: etas[0] must be in (0, 1), got 0.0"),
    ("rprop", dict(etas=(0.5, 1.0)), "rprop: etas[1] must be in (1, inf), got 1.0"),
    ("rprop", dict(etas=0.5), "rprop: etas must be a pair of numbers, got 0.5"),
    ("rprop", dict(etas=(0.5, 1.2, 2.0)), "rprop: etas must be a pair of numbers, got (0.5, 1.2, 2.0)"),
    ("rprop", dict(step_sizes=(-1e-6, 50)), "rprop: step_sizes[0] must be in [0, inf), got -1e-06"),
    ("rprop", dict(step_sizes=(1e-6, float("nan"))), "rprop: step_sizes[1] must be in [0, inf), got nan"),
    (
        "rprop",
        dict(step_sizes=(1.0, 0.5)),
        "rprop: step_sizes must be a pair (min, max) with min <= max, got (1.0, 0.5)",
    ),
    ("rprop", dict(maximize=0), "rprop: maximize must be a bool, got 0"),
    ("asgd", dict(lr=-0.01), f"asgd: lr must be {LR_RANGE}, got -0.01"),
    ("asgd", dict(lambd=-1e-4), "asgd: lambd must be in [0, inf), got -0.0001"),
    ("asgd", dict(alpha=-0.75), "asgd: alpha must be in [0, inf), got -0.75"),
    ("asgd", dict(t0=-1), "asgd: t0 must be in [0, inf), got -1"),
    ("asgd", dict(weight_decay=-1), f"asgd: weight_decay must be {WD_RANGE}, got -1"),
    ("asgd", dict(maximize="yes"), "asgd: maximize must be a bool, got 'yes'"),
]


@pytest.mark.parametrize(("name", "kwargs", "message"), BAD, ids=[f"{n}-{next(iter(k))}" for n, k, _ in BAD])
def test_bad_hyperparameters_raise_parameter_error(name, kwargs, message) -> None:
    with pytest.raises(ParameterError, match=f"^{re.escape(message)}$"):
        getattr(dc.optim, name)(**kwargs)


def test_asgd_needs_params() -> None:
    tx = dc.optim.asgd()
    state = tx.init(np.zeros(2))
    with pytest.raises(ParameterError, match=r"^asgd: update needs params"):
        tx.update(np.ones(2), state)


@pytest.mark.parametrize("name", ["adagrad", "rmsprop", "adadelta", "rprop", "asgd"])
def test_defaults_are_torch_defaults(name) -> None:
    import inspect

    torch = pytest.importorskip("torch")
    cls = getattr(torch.optim, {"rmsprop": "RMSprop", "asgd": "ASGD"}.get(name, name.capitalize()))
    theirs = inspect.signature(cls.__init__).parameters
    ours = inspect.signature(getattr(dc.optim, name)).parameters
    skip = {"self", "params", "foreach", "capturable", "differentiable", "fused"}
    assert {k for k in theirs if k not in skip} == {k for k in ours if k != "eps_inside_sqrt"}
    for key, p in ours.items():
        if key in theirs:
            assert p.default == theirs[key].default, (name, key)
    # torch's non-keyword-only parameters come first in the same order (maximize is keyword-only here)
    positional = [k for k, p in theirs.items() if k not in skip and p.kind is p.POSITIONAL_OR_KEYWORD]
    assert [k for k, p in ours.items() if p.kind is p.POSITIONAL_OR_KEYWORD] == [
        k for k in positional if k != "maximize"
    ]


# --- dtypes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.1)),
        ("adagrad", dict(lr=0.1, eps_inside_sqrt=True, maximize=True)),
        ("rmsprop", dict(lr=0.01, centered=True, momentum=0.9, weight_decay=0.1)),
        ("rmsprop", dict(lr=0.01, eps_inside_sqrt=True, alpha=0.3, centered=True)),
        ("adadelta", dict(lr=1.0, weight_decay=0.1, maximize=True)),
        ("rprop", dict(lr=0.3, etas=(0.3, 1.7), step_sizes=(1e-3, 0.5))),
        ("rprop", dict(lr=lambda t: 0.01 * 0.9**t, maximize=True)),
        ("asgd", dict(lr=0.1, lambd=0.1, t0=1, weight_decay=0.1)),
    ],
)
def test_float32_in_float32_out(name, kwargs) -> None:
    rng = np.random.default_rng(2)
    params = {
        "W": rng.normal(size=(4, 3)).astype(np.float32),
        "b": rng.normal(size=3).astype(np.float32),
        "s": np.array(0.5, dtype=np.float32),
    }
    tx = getattr(dc.optim, name)(**kwargs)
    state = tx.init(params)
    for _ in range(4):
        grads = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
        updates, state = tx.update(grads, state, params)
        for k in params:
            assert np.asarray(updates[k]).dtype == np.float32, (name, k)
            assert np.all(np.isfinite(updates[k])), (name, k)
        params = dc.optim.apply_updates(params, updates)
    for k, v in params.items():
        assert v.dtype == np.float32, (name, k)
    flat = dc.optim.state_to_dict(state)
    per_leaf = [key for key in flat if key.rsplit(".", 1)[-1] in params]  # accumulators, averages, step sizes
    assert per_leaf, name
    for key in per_leaf:
        assert flat[key].dtype == np.float32, (name, key, flat[key].dtype)
    assert isinstance(dc.optim.get_lr(state), float)
