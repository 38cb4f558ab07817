"""descend.torch.Optimizer and the drop-in classes behave as torch.optim optimizers."""

from __future__ import annotations

import copy
import inspect
import subprocess
import sys

import numpy as np
import pytest
import torch

import descend as dc
import descend.torch as dtorch
from descend.errors import ParameterError
from descend.torch.optimizers import class_name, factories
from tests.torch.helpers import TORCH_HAS, clone, loss_of, make_params, run, run_numpy

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
ALL_CLASSES = {name: dict(TORCH_HAS.get(name, {})) for name in dtorch.optimizers.CLASSES}
ALL_CLASSES["Lion"] = dict(lr=1e-3, weight_decay=0.1)
ALL_CLASSES["Momentum"] = dict(lr=0.01, form="seed001")
# Steps that bfloat16 (spacing 2^-8 near 1) can see within 3 steps: ADOPT's first step only fills v, Prodigy's
# d starts at 1e-6, Muon's default lr is 1e-3.
ALL_CLASSES["ADOPT"] = dict(lr=0.1)
ALL_CLASSES["Muon"] = dict(lr=0.1)
ALL_CLASSES["Prodigy"] = dict(d0=1e-2)


def _close(a, b, rtol=1e-7, atol=1e-12):
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol)


def test_import_descend_does_not_import_torch() -> None:
    code = "import sys, descend, descend.optim; assert not {'torch', 'array_api_compat'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_named_optimizer_has_a_drop_in_class_with_torchs_arguments() -> None:
    assert {"sgd", "adam", "adamw", "lion", "momentum"} <= set(factories())
    for factory_name, factory in factories().items():
        cls = getattr(dtorch, class_name(factory_name))
        assert issubclass(cls, torch.optim.Optimizer) and issubclass(cls, dtorch.Optimizer)
        ours = inspect.signature(cls).parameters
        for key, p in inspect.signature(factory).parameters.items():
            assert key in ours and (ours[key].default == p.default or p.default is inspect.Parameter.empty), key
        theirs = getattr(torch.optim, cls.__name__, None)
        if theirs is not None:  # every argument torch takes, with torch's default
            for key, p in inspect.signature(theirs).parameters.items():
                assert key in ours, (cls.__name__, key)
                assert key == "params" or ours[key].default == p.default, (cls.__name__, key)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(ALL_CLASSES))
def test_state_lives_on_the_parameters_device_and_dtype(name: str, device: str, dtype: torch.dtype) -> None:
    params = make_params(dtype, device)
    start = clone(params)
    opt = getattr(dtorch, name)(params, **ALL_CLASSES[name])
    run(opt, params, 3)
    assert all(p.dtype == dtype and p.device.type == device and torch.isfinite(p).all() for p in params)
    assert not all(torch.equal(a, p) for a, p in zip(start, params, strict=True))
    for p in params:
        tensors = {k: v for k, v in opt.state[p].items() if isinstance(v, torch.Tensor) and v.dim() > 0}
        assert tensors, name
        for key, value in tensors.items():
            assert value.dtype == dtype and value.device == p.device, (key, value.dtype, value.device)


def test_no_numpy_call_touches_a_tensor(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self, *args, **kwargs):
        raise AssertionError("a NumPy call converted a tensor")

    monkeypatch.setattr(torch.Tensor, "__array__", refuse)
    chains = [
        dc.optim.chain(dc.optim.clip_by_global_norm(0.5), dc.optim.clip(0.3), dc.optim.adamw(0.01)),
        dc.optim.guard_not_finite(dc.optim.adam(0.01), action="zero"),
        dc.optim.accumulate(dc.optim.rmsprop(0.01, centered=True), 2),
        dc.optim.masked(dc.optim.adagrad(0.1), lambda ps: [p.ndim > 1 for p in ps]),
        dc.optim.partition({"a": dc.optim.adam(0.01), "s": dc.optim.sgd(0.1)}, ["a", "s", "a"]),
        dc.optim.chain(dc.optim.add_l1_penalty(0.01), dc.optim.sgd(0.1)),
    ]
    for tx in chains:
        params = make_params(torch.float32)
        run(dtorch.Optimizer(params, tx), params, 3)
    for name, kwargs in ALL_CLASSES.items():
        params = make_params(torch.float32)
        run(getattr(dtorch, name)(params, **kwargs), params, 3)
    plateau = dc.schedules.reduce_on_plateau(patience=0)
    pstate = plateau.update(plateau.init(), torch.tensor(1.0))  # a loss tensor as the metric
    assert plateau.update(pstate, torch.tensor(2.0)).scale == 0.1
    with pytest.raises(AssertionError, match="converted a tensor"):
        np.sqrt(torch.ones(2))  # the guard above is live


def test_per_group_hyperparameters_and_named_parameters_work_as_in_torch() -> None:
    params = make_params()
    groups = lambda ps: [  # noqa: E731
        {"params": [("w", ps[0])], "weight_decay": 0.0},
        {"params": [("b", ps[1]), ("v", ps[2])], "lr": 0.05, "betas": (0.8, 0.99)},
    ]
    ours_p, theirs_p = clone(params), clone(params)
    ours = dtorch.AdamW(groups(ours_p), lr=0.01, weight_decay=0.1)
    theirs = torch.optim.AdamW(groups(theirs_p), lr=0.01, weight_decay=0.1, foreach=False)
    run(ours, ours_p, 20)
    run(theirs, theirs_p, 20)
    _close(ours_p, theirs_p)
    assert ours.param_groups[0]["weight_decay"] == 0.0 and ours.param_groups[1]["betas"] == (0.8, 0.99)
    assert ours.state_dict()["param_groups"][1]["param_names"] == ["b", "v"]


SCHEDULERS = {
    "StepLR": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.5),
    "OneCycleLR": lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=30),  # cycles betas[0]
    "CosineAnnealingWarmRestarts": lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=7),
}


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_torch_lr_schedulers_drive_the_learning_rate(scheduler: str) -> None:
    params = make_params()
    trajectories = []
    for make in (dtorch.Adam, lambda ps, **kw: torch.optim.Adam(ps, foreach=False, **kw)):
        ps = clone(params)
        opt = make(ps, lr=0.01)
        sched = SCHEDULERS[scheduler](opt)
        lrs = []
        for _ in range(30):
            opt.zero_grad()
            loss_of(ps).backward()
            opt.step()
            sched.step()
            lrs.append((opt.param_groups[0]["lr"], opt.param_groups[0]["betas"]))
        trajectories.append((ps, lrs))
    (ours, our_lrs), (theirs, their_lrs) = trajectories
    assert our_lrs == their_lrs and len({lr for lr, _ in our_lrs}) > 3
    _close(ours, theirs)


def test_reduce_lr_on_plateau_drives_the_learning_rate() -> None:
    params = make_params()
    metrics = [1.0, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
    runs = []
    for make in (dtorch.SGD, lambda ps, **kw: torch.optim.SGD(ps, foreach=False, **kw)):
        ps = clone(params)
        opt = make(ps, lr=0.01, momentum=0.9)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
        for m in metrics:
            run(opt, ps, 1)
            sched.step(m)
        runs.append((ps, opt.param_groups[0]["lr"]))
    (ours, our_lr), (theirs, their_lr) = runs
    assert our_lr == their_lr < 0.01 / 4
    _close(ours, theirs)


def test_a_descend_schedule_as_lr_is_evaluated_at_the_step_count() -> None:
    schedule = dc.schedules.warmup_cosine_decay(0.0, 0.05, warmup_steps=5, decay_steps=20)
    params = make_params()
    opt = dtorch.Adam(params, lr=schedule)
    run(opt, params, 20)
    ref = run_numpy(dc.optim.adam(lr=schedule), 20)
    for p, r in zip(params, ref, strict=True):
        np.testing.assert_allclose(p.detach().numpy(), r, rtol=1e-12, atol=0)


def test_any_chain_steps_the_tensors_as_it_steps_numpy_arrays() -> None:
    tx = dc.optim.chain(dc.optim.clip_by_global_norm(1.0), dc.optim.adamw(0.01, weight_decay=0.1))
    params = make_params()
    run(dtorch.Optimizer(params, tx), params, 20)
    ref = run_numpy(tx, 20)
    for p, r in zip(params, ref, strict=True):
        np.testing.assert_allclose(p.detach().numpy(), r, rtol=1e-12, atol=0)


def test_a_group_with_its_own_tx_follows_its_lr_through_lr_scale() -> None:
    params = make_params()
    ours_p, theirs_p = clone(params), clone(params)
    ours = dtorch.Optimizer(
        [{"params": ours_p[:2], "tx": dc.optim.sgd(0.1, momentum=0.9)}, {"params": ours_p[2:]}],
        dc.optim.sgd(0.02),
    )
    assert [g["lr"] for g in ours.param_groups] == [0.1, 0.02]  # each group starts at its transformation's lr
    theirs = torch.optim.SGD([{"params": theirs_p[:2], "momentum": 0.9, "lr": 0.1}, {"params": theirs_p[2:]}], lr=0.02)
    scheds = [torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5) for o in (ours, theirs)]
    for _ in range(12):
        for opt, ps, sched in ((ours, ours_p, scheds[0]), (theirs, theirs_p, scheds[1])):
            run(opt, ps, 1)
            sched.step()
    assert ours.param_groups[0]["lr"] == 0.1 / 16
    _close(ours_p, theirs_p, rtol=1e-12)
    assert "tx" not in ours.state_dict()["param_groups"][0]


def test_grad_scaler_skips_steps_with_inf_or_nan_and_state_stays() -> None:
    params = make_params(torch.float32)
    ours_p, theirs_p = clone(params), clone(params)
    pairs = [(dtorch.Adam(ours_p, lr=0.01), ours_p), (torch.optim.Adam(theirs_p, lr=0.01, foreach=False), theirs_p)]
    scalers = [torch.amp.GradScaler("cpu", init_scale=1024.0) for _ in pairs]
    for step in range(8):
        for (opt, ps), scaler in zip(pairs, scalers, strict=True):
            opt.zero_grad()
            scaler.scale(loss_of(ps)).backward()
            if step in (2, 5):
                ps[1].grad[0] = float("inf") if step == 2 else float("nan")
                before = [p.detach().clone() for p in ps]
                state_before = {i: dict(opt.state[p]) for i, p in enumerate(ps)}
            scaler.step(opt)
            scaler.update()
            if step in (2, 5):
                assert all(torch.equal(a, p) for a, p in zip(before, ps, strict=True))
                if opt is pairs[0][0]:
                    assert all(opt.state[p] == state_before[i] for i, p in enumerate(ps))
    assert scalers[0].get_scale() == scalers[1].get_scale() == 1024.0 / 4
    assert float(pairs[0][0].state[ours_p[0]]["step"]) == 6.0
    _close(ours_p, theirs_p, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad_and_parameters_without_gradients_as_in_torch(set_to_none: bool) -> None:
    params = make_params()
    runs = []
    for make in (dtorch.Adam, lambda ps, **kw: torch.optim.Adam(ps, foreach=False, **kw)):
        ps = clone(params)
        opt = make(ps, lr=0.01)
        for step in range(6):
            opt.zero_grad(set_to_none=set_to_none)
            used = ps if step % 2 == 0 else ps[:2]  # v gets no gradient every other step
            loss_of([*used, ps[2].detach()] if len(used) == 2 else used).backward()
            opt.step()
        runs.append((ps, opt))
    (ours, ours_opt), (theirs, theirs_opt) = runs
    _close(ours, theirs)
    assert float(ours_opt.state[ours[2]]["step"]) == float(theirs_opt.state[theirs[2]]["step"])
    assert float(ours_opt.state[ours[2]]["step"]) == (3.0 if set_to_none else 6.0)


def test_a_parameter_first_trained_late_keeps_its_own_step_count() -> None:
    params = make_params()
    runs = []
    for make in (dtorch.Adam, lambda ps, **kw: torch.optim.Adam(ps, foreach=False, **kw)):
        ps = clone(params)
        opt = make(ps, lr=0.01)
        for step in range(6):
            opt.zero_grad()
            loss_of([ps[0], ps[1], ps[2] if step >= 3 else ps[2].detach()]).backward()
            opt.step()
        runs.append(ps)
    _close(*runs)


def test_closure_and_maximize() -> None:
    params = make_params()
    opt = dtorch.Lion(params, lr=1e-2, maximize=True)
    start = loss_of(params).item()

    def closure():
        opt.zero_grad()
        loss = loss_of(params)
        loss.backward()
        return loss

    first = opt.step(closure)
    assert first.item() == start
    for _ in range(10):
        opt.step(closure)
    assert loss_of(params).item() > start


def test_the_seed_momentum_forms_equal_torchs_sgd_with_a_constant_lr() -> None:
    params = make_params()
    runs = []
    for make in (
        lambda ps: dtorch.Momentum(ps, lr=0.01, beta=0.9, form="seed000"),
        lambda ps: dtorch.Momentum(ps, lr=0.01, beta=0.9, form="seed001"),
        lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, foreach=False),
    ):
        ps = clone(params)
        run(make(ps), ps, 20)
        runs.append(ps)
    _close(runs[0], runs[2], rtol=1e-10)
    _close(runs[1], runs[2], rtol=1e-10)


def test_bad_arguments_are_refused_with_descends_message() -> None:
    params = make_params()
    with pytest.raises(ParameterError, match=r"adam: betas\[0\] must be in \[0, 1\), got 1.5"):
        dtorch.Adam(params, betas=(1.5, 0.999))
    with pytest.raises(ParameterError, match="capturable=True is not supported"):
        dtorch.Adam(params, capturable=True)
    with pytest.raises(ParameterError, match=r"sgd: lr must be a float in \[0, inf\) or a schedule"):
        dtorch.SGD(params, lr=-1.0)
    opt = dtorch.Adam(params[:2])
    with pytest.raises(ParameterError, match=r"adam: eps must be in \[0, inf\), got -1.0"):
        opt.add_param_group({"params": params[2:], "eps": -1.0})
    assert len(opt.param_groups) == 1  # the refused group was not added
    with pytest.raises(ParameterError, match="parameter group 0 has no 'tx' and the optimizer has no default tx"):
        dtorch.Optimizer(params)
    with pytest.raises(
        ParameterError, match=r"descend\.torch\.Optimizer: tx must be a GradientTransformation, got 'adam'"
    ):
        dtorch.Optimizer(params, tx="adam")
    with pytest.raises(ValueError, match="required optimization parameter lr"):
        dtorch.Momentum(params)
    foreach_is_accepted = dtorch.Adam(params, foreach=True, fused=False)
    run(foreach_is_accepted, params, 1)


def test_a_drop_in_group_may_carry_its_own_tx() -> None:
    params = make_params()
    opt = dtorch.Adam([{"params": params[:2]}, {"params": params[2:], "tx": dc.optim.lion(1e-3)}], lr=0.01)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 1e-3]
    run(opt, params, 3)
    assert set(opt.state[params[0]]) == {"step", "exp_avg", "exp_avg_sq"}
    assert opt.state[params[2]][dtorch.LAYOUT_KEY] == dtorch.LAYOUT_VERSION
    ref = clone(make_params()[2:])
    run(dtorch.Lion(ref, lr=1e-3), ref, 3, loss=lambda ps: loss_of([*clone(params[:2]), *ps]))
    assert torch.equal(ref[0], params[2])  # the group's chain alone, on its own tensors (Lion moves by ±lr)


def test_a_deep_copy_steps_on_its_own() -> None:
    params = make_params()
    opt = dtorch.Adam(params, lr=0.01)
    run(opt, params, 2)
    twin = copy.deepcopy(opt)
    twin_params = twin.param_groups[0]["params"]
    twin.param_groups[0]["lr"] = 0.0  # must not reach the original's chain
    run(twin, twin_params, 2)
    run(opt, params, 2)
    assert not torch.equal(params[0], twin_params[0])
    ref = make_params()
    run(dtorch.Adam(ref, lr=0.01), ref, 4)
    _close(params, ref, rtol=0, atol=0)


def test_rprop_scales_its_steps_by_a_changed_lr_where_torch_ignores_it() -> None:
    params = make_params()
    ours_p, theirs_p = clone(params), clone(params)
    ours = dtorch.Rprop(ours_p, lr=0.01)
    theirs = torch.optim.Rprop(theirs_p, lr=0.01, foreach=False)
    run(ours, ours_p, 3)
    run(theirs, theirs_p, 3)
    _close(ours_p, theirs_p, rtol=0, atol=0)
    before_ours, before_theirs = clone(ours_p), clone(theirs_p)
    for opt in (ours, theirs):
        opt.param_groups[0]["lr"] = 0.005  # as a scheduler would
    run(ours, ours_p, 1)
    run(theirs, theirs_p, 1)
    for a, b, p, q in zip(before_ours, before_theirs, ours_p, theirs_p, strict=True):
        torch.testing.assert_close((p - a).detach(), 0.5 * (q - b).detach(), rtol=1e-12, atol=0)  # Δ·lr/lr₀
