"""Schedule-free SGD / AdamW equal ``schedulefree`` 1.4.1's reference classes (float64, 200 steps), both the
training parameters y and the evaluation parameters x (``optimizer.eval()``)."""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc
from descend.errors import ParameterError, StructureError
from tests.optim import _oracles as O

torch = pytest.importorskip("torch")
sf = pytest.importorskip("schedulefree")

STEPS = 200
RTOL = 1e-7

SGD_CASES = [
    {"lr": 0.05},
    {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1},
    {"lr": 0.05, "warmup_steps": 20},
    {"lr": 0.05, "warmup_steps": 20, "r": 1.0, "weight_lr_power": 1.0},
]
ADAMW_CASES = [
    {},
    {"lr": 0.05},
    {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6, "warmup_steps": 30},
    {"lr": 0.05, "weight_decay": 0.1},
    {"lr": 0.05, "weight_decay": 0.1, "decay_at_z": True},
    {"lr": 0.05, "r": 2.0, "weight_lr_power": 0.0},
]


def _id(kwargs):
    return ",".join(f"{k}={v}" for k, v in kwargs.items()) or "default"


def _run_oracle(cls, kwargs, params0, grad_fn, steps):
    tparams = {k: torch.tensor(v.copy(), dtype=torch.float64, requires_grad=True) for k, v in params0.items()}
    opt = cls(list(tparams.values()), **kwargs)
    opt.train()
    for _ in range(steps):
        current = {k: t.detach().numpy().copy() for k, t in tparams.items()}
        for k, g in grad_fn(current).items():
            tparams[k].grad = torch.from_numpy(g)
        opt.step()
    y = {k: t.detach().numpy().copy() for k, t in tparams.items()}
    opt.eval()
    x = {k: t.detach().numpy().copy() for k, t in tparams.items()}
    return y, x


def _run_ours(tx, params0, grad_fn, steps):
    params = {k: v.copy() for k, v in params0.items()}
    state = tx.init(params)
    for _ in range(steps):
        updates, state = tx.update(grad_fn(params), state, params)
        params = dc.optim.apply_updates(params, updates)
    return params, dc.optim.schedule_free_eval_params(state, params)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("sgd", k) for k in SGD_CASES] + [("adamw", k) for k in ADAMW_CASES],
    ids=lambda v: v if isinstance(v, str) else _id(v),
)
def test_schedule_free_matches_the_reference(name, kwargs, capsys):
    params0, grad_fn = O.mixed()
    factory = getattr(dc.optim, f"schedule_free_{name}")
    cls = sf.SGDScheduleFreeReference if name == "sgd" else sf.AdamWScheduleFreeReference
    y, x = _run_ours(factory(**kwargs), params0, grad_fn, STEPS)
    ty, tx_ = _run_oracle(cls, kwargs, params0, grad_fn, STEPS)
    O.assert_matches(y, ty, params0, RTOL, what=f"y: {_id(kwargs)}")
    O.assert_matches(x, tx_, params0, RTOL, what=f"x: {_id(kwargs)}")
    assert not np.allclose(x["W"], y["W"]), "x = y: the eval comparison would be vacuous"


def test_schedule_free_on_torch_tensors_through_descend_torch(capsys):
    kwargs = {"lr": 0.05, "weight_decay": 0.1, "warmup_steps": 20}
    params0, grad_fn = O.mixed()
    ours = O.run_descend_torch(dc.optim.schedule_free_adamw(**kwargs), params0, grad_fn, STEPS)
    theirs, _ = _run_oracle(sf.AdamWScheduleFreeReference, kwargs, params0, grad_fn, STEPS)
    O.assert_matches(ours, theirs, params0, RTOL, what="descend.torch")


def test_schedule_free_maximize_flips_the_gradient():
    params0, grad_fn = O.mixed()
    up, _ = _run_ours(
        dc.optim.schedule_free_sgd(lr=0.05, maximize=True),
        params0,
        lambda p: {k: -g for k, g in grad_fn(p).items()},
        20,
    )
    down, _ = _run_ours(dc.optim.schedule_free_sgd(lr=0.05), params0, grad_fn, 20)
    for k in params0:
        np.testing.assert_allclose(up[k], down[k], rtol=1e-12)


def test_schedule_free_eval_params_errors_are_clear():
    with pytest.raises(StructureError, match="schedule_free_eval_params: this optimizer state has no schedule-free"):
        dc.optim.schedule_free_eval_params(dc.optim.sgd().init(np.zeros(2)), np.zeros(2))
    tx = dc.optim.schedule_free_sgd()
    with pytest.raises(StructureError, match="schedule_free_eval_params: "):
        dc.optim.schedule_free_eval_params(tx.init(np.zeros(2)), np.zeros(3))
    with pytest.raises(ParameterError, match=r"schedule_free_sgd: momentum must be in \(0, 1\), got 1"):
        dc.optim.schedule_free_sgd(momentum=1)


def test_trainer_evaluates_a_schedule_free_model_at_x_and_trains_at_y():
    from descend import nn
    from descend.train import Trainer

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4))
    y = (x @ rng.normal(size=(4, 3))).argmax(axis=1).astype(np.int64)
    model = nn.mlp(4, hidden=(6,), out=3, seed=0, dtype=np.float64)
    trainer = Trainer(model, "cross_entropy", dc.optim.schedule_free_adamw(lr=0.05), seed=0)
    trainer.fit((x, y), epochs=3, batch_size=16)
    y_weights = model.params.copy()
    got = trainer.evaluate((x, y))
    np.testing.assert_array_equal(model.params, y_weights)  # the training weights are back
    twin = nn.mlp(4, hidden=(6,), out=3, seed=0, dtype=np.float64)
    x_tree = dc.optim.schedule_free_eval_params(trainer.opt_state, model.named_parameters())  # the Trainer's tree
    for name, view in twin.named_parameters().items():
        view[...] = x_tree[name]
    twin.eval()
    expected = float(nn.CrossEntropyLoss().forward(twin.forward(x), y))
    assert got["loss"] == pytest.approx(expected, rel=1e-12)
    twin.params[...] = y_weights
    assert float(nn.CrossEntropyLoss().forward(twin.forward(x), y)) != pytest.approx(expected, rel=1e-6)
