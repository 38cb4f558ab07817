"""Schedules and the plateau controller driving real optimizers, against torch.optim."""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc

torch = pytest.importorskip("torch")

A = np.array([1.0, 3.0, 0.5, 2.0])  # f(w) = ½·Σ a·w² + b·w, gradient a·w + b
B = np.array([0.3, -1.0, 2.0, 0.0])
W0 = np.array([1.0, -2.0, 0.5, 3.0])


def _grad(w: np.ndarray) -> np.ndarray:
    return A * w + B


def _loss(w: np.ndarray) -> float:
    return float(0.5 * np.sum(A * w * w) + np.sum(B * w))


def _torch_setup(lr: float, momentum: float):
    p = torch.nn.Parameter(torch.tensor(W0, dtype=torch.float64))
    return p, torch.optim.SGD([p], lr=lr, momentum=momentum)


def _torch_step(p, opt) -> None:
    opt.zero_grad()
    p.grad = torch.tensor(_grad(p.detach().numpy()), dtype=torch.float64)
    opt.step()


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_with_step_decay_equals_torch_sgd_with_steplr(momentum) -> None:
    schedule = dc.schedules.step_decay(0.1, 10, 0.5)
    tx = dc.optim.sgd(lr=schedule, momentum=momentum)
    w = W0.copy()
    state = tx.init(w)
    p, opt = _torch_setup(0.1, momentum)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    for t in range(40):
        torch_lr = float(opt.param_groups[0]["lr"])  # the rate torch uses for this step
        _torch_step(p, opt)
        sched.step()
        updates, state = tx.update(_grad(w), state, w)
        w = dc.optim.apply_updates(w, updates)
        assert dc.optim.get_lr(state) == pytest.approx(torch_lr, rel=1e-15), t
        assert dc.optim.get_lr(state) == schedule(t)
        assert dc.optim.get_step(state) == t + 1
        np.testing.assert_allclose(w, p.detach().numpy(), rtol=1e-10, atol=0)
    assert dc.optim.get_lr(state) == 0.1 * 0.5**3
    assert not np.allclose(w, W0)


def test_plateau_scale_on_top_of_a_schedule_equals_torch_steplr_with_reducelronplateau() -> None:
    # torch's StepLR multiplies the current lr, which ReduceLROnPlateau has already cut, so in torch the
    # two compose as a product: exactly descend's schedule(t)·scale when min_lr does not bite.
    steps_per_epoch, epochs = 5, 16
    schedule = dc.schedules.step_decay(0.2, 20, 0.5)
    plateau = dc.schedules.reduce_on_plateau(factor=0.5, patience=1, threshold=0.3, semantics="torch")
    tx = dc.optim.sgd(lr=schedule, momentum=0.5)
    w = W0.copy()
    state, pstate = tx.init(w), plateau.init()

    p, opt = _torch_setup(0.2, 0.5)
    step_lr = torch.optim.lr_scheduler.StepLR(opt, step_size=20, gamma=0.5)
    on_plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1, threshold=0.3)
    for _ in range(epochs):
        for _ in range(steps_per_epoch):
            torch_lr = float(opt.param_groups[0]["lr"])
            _torch_step(p, opt)
            step_lr.step()
            updates, state = tx.update(_grad(w), state, w)
            w = dc.optim.apply_updates(w, updates)
            assert dc.optim.get_lr(state) == pytest.approx(torch_lr, rel=1e-12)
        metric = _loss(w) + 10.0  # positive (the minimum of f is about -4.2), so both semantics agree
        on_plateau.step(_loss(p.detach().numpy()) + 10.0)
        pstate = plateau.update(pstate, metric, lr=schedule(dc.optim.get_step(state)))
        state = dc.optim.set_lr_scale(state, pstate.scale)
        np.testing.assert_allclose(w, p.detach().numpy(), rtol=1e-10, atol=0)
    assert pstate.num_reductions >= 2
    assert schedule(dc.optim.get_step(state)) * pstate.scale == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)


def test_every_optimizer_factory_in_the_core_accepts_a_schedule() -> None:
    schedule = dc.schedules.warmup_cosine_decay(0.0, 1e-2, 3, 10)
    for make in (dc.optim.sgd, dc.optim.adam, dc.optim.adamw):
        tx = make(lr=schedule)
        w = W0.copy()
        state = tx.init(w)
        used = []
        for _ in range(12):
            updates, state = tx.update(_grad(w), state, w)
            w = dc.optim.apply_updates(w, updates)
            used.append(dc.optim.get_lr(state))
        assert used == [schedule(t) for t in range(12)]
        assert used[0] == 0.0 and used[3] == 1e-2 and used[-1] == 0.0
