"""The optimizer sees the model: the Trainer, ``descend train`` and checkpoints hand it the named parameter tree.

Adafactor through the Trainer factors every matrix and equals ``torch.optim.Adafactor`` on the same named tensors;
``--no-decay`` routes weight decay by rules; the tree's state resumes bitwise; telemetry is named by parameters.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import descend as dc
from descend import nn
from descend.cli.main import main
from descend.data import Loader
from descend.optim import fused
from descend.torch.models import from_descend
from descend.train import Trainer
from descend.train import experiment as ex
from descend.train.checkpoint import load_checkpoint
from tests.helpers import blobs


def _data(n=96, d=16, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, :k] + 0.3 * rng.normal(size=(n, k))).argmax(axis=1).astype(np.int64)
    return x, y


def _torch_twin_run(model, x, y, *, epochs, batch_size, seed, make_optimizer):
    """The same model in torch.nn (same names and initial weights), trained on the Trainer's batch order."""
    net = from_descend(model)
    opt = make_optimizer(net.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = Loader((x, y), batch_size, shuffle=True, seed=seed)
    for epoch in range(epochs):
        order = loader.order(epoch)
        for i in range(0, len(order), batch_size):
            b = order[i : i + batch_size]
            opt.zero_grad()
            loss_fn(net(torch.from_numpy(x[b])), torch.from_numpy(y[b])).backward()
            opt.step()
    return {k: v.detach().numpy() for k, v in net.named_parameters()}, opt


@pytest.mark.parametrize("preset", ["mlp", "cnn1d"])
def test_adafactor_through_the_trainer_equals_torch_adafactor_on_the_named_tensors(preset):
    x, y = _data()
    build = {
        "mlp": lambda: nn.mlp(16, (12, 8), 3, seed=1),
        "cnn1d": lambda: nn.cnn1d(1, 16, channels=(4, 6), kernel_size=3, hidden=8, out=3, seed=1),
    }[preset]
    model = build()
    twin, opt = _torch_twin_run(
        model, x, y, epochs=2, batch_size=16, seed=5, make_optimizer=lambda p: torch.optim.Adafactor(p, lr=0.01)
    )
    trainer = Trainer(model, "cross_entropy", dc.optim.adafactor(lr=0.01), seed=5, telemetry_every=3)
    trainer.fit((x, y), epochs=2, batch_size=16)
    ours = model.named_parameters()
    assert list(ours) == list(twin)
    for name, value in twin.items():
        np.testing.assert_allclose(ours[name], value, rtol=2e-5, atol=2e-6, err_msg=name)
    # The state is torch's: a row and a column moment for every matrix (conv kernels: over the last two axes).
    state = dc.optim.state.find_fields(trainer.opt_state, "row_var")[0]
    for (name, p), tstate in zip(ours.items(), opt.state.values(), strict=True):
        if p.ndim >= 2:
            assert state[name].shape == tuple(tstate["row_var"].shape), name
    # The flat buffer, as the Trainer handed it before: one variance vector and the RMS of the whole model.
    flat = build()
    flat_tx = dc.optim.adafactor(lr=0.01)
    flat_state = flat_tx.init(flat.params)
    loss = nn.CrossEntropyLoss()
    loader = Loader((x, y), 16, shuffle=True, seed=5)
    for _ in range(2):
        for xb, yb in loader:
            loss.forward(flat.forward(xb), yb)
            flat.backward(loss.backward(), input_grad=False)
            updates, flat_state = flat_tx.update(flat.grads, flat_state, flat.params)
            flat.params[...] += updates
    far = max(float(np.max(np.abs(flat.named_parameters()[k] - v))) for k, v in twin.items())
    assert far > 1e-3, "the flat buffer is a different algorithm: the test must be able to tell"


@pytest.mark.parametrize(("model", "features", "shapes"), [
    ("mlp", 5, {"1.weight": ((8, 1), (1, 5)), "3.weight": ((3, 1), (1, 8))}),
    ("cnn", 16, {"1.weight": ((32, 1, 1), (32, 1, 5)), "4.weight": ((64, 32, 1), (64, 1, 5)),
                 "8.weight": ((8, 1), (1, 256)), "10.weight": ((3, 1), (1, 8))}),  # cnn1d: 1-D signals
    ("cnn", 784, {"1.weight": ((32, 1, 3, 1), (32, 1, 1, 3)), "4.weight": ((64, 32, 3, 1), (64, 32, 1, 3)),
                  "8.weight": ((8, 1), (1, 3136)), "10.weight": ((3, 1), (1, 8))}),  # cnn2d: 28x28 images
])  # fmt: skip
def test_descend_train_adafactor_keeps_factored_moments_per_matrix(tmp_path, capsys, model, features, shapes):
    data = blobs(tmp_path / "blobs.npz", n=60, features=features)
    out = tmp_path / "run"
    code = main(["train", "--quiet", "--dataset", str(data), "--model", model, "--hidden", "8", "--epochs", "1",
                 "--optimizer", "adafactor", "--lr", "0.01", "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    arrays, _ = load_checkpoint(out / "checkpoint")
    names = {k[len("model/") :] for k in arrays if k.startswith("model/")}
    for name in names:
        row, col, var = (arrays.get(f"optimizer/0.{field}.{name}") for field in ("row_var", "col_var", "variance"))
        if name in shapes:
            assert (row.shape, col.shape) == shapes[name], name
            assert var is None
        else:  # biases: a full variance
            assert row is None and col is None and var.shape == arrays[f"model/{name}"].shape, name
    assert set(shapes) <= names


def _one_step(model, cfg, grads):
    tx = ex.build_optimizer(ex.make_config(cfg), model, 1)
    tree = model.named_parameters()
    state = tx.init(tree)
    updates, _ = tx.update({k: grads[k] for k in tree}, state, tree)
    return updates


def test_no_decay_changes_only_the_parameters_it_names():
    model = nn.mlp(6, (5,), 3, batchnorm=True, seed=0)
    rng = np.random.default_rng(1)
    model.params[...] = rng.normal(size=model.params.shape)  # biases and norm shifts start at 0: decay would be 0
    grads = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in model.named_parameters().items()}
    base = {"optimizer": "sgd", "lr": 0.1, "weight_decay": 0.5}
    everything = _one_step(model, {**base, "no_decay": []}, grads)
    spared = _one_step(model, {**base, "no_decay": ["bias", "norm"]}, grads)
    default = _one_step(model, base, grads)
    roles = model.param_roles()
    for name in everything:
        changed = not np.array_equal(everything[name], spared[name])
        assert changed == ("bias" in roles[name] or "norm" in roles[name]), name
        np.testing.assert_array_equal(default[name], spared[name])  # the default rules: bias, norm
        if changed:  # spared: the plain gradient step, no decay
            np.testing.assert_allclose(spared[name], -0.1 * grads[name], rtol=1e-6)
    only_head = _one_step(model, {**base, "no_decay": ["head"]}, grads)
    assert [n for n in everything if not np.array_equal(everything[n], only_head[n])] == ["4.weight", "4.bias"]


def test_no_decay_on_the_command_line_and_in_the_config(tmp_path, capsys):
    data = blobs(tmp_path / "blobs.npz", n=60)
    out = tmp_path / "run"
    code = main(["train", "--quiet", "--dataset", str(data), "--hidden", "8", "--epochs", "1", "--optimizer", "adamw",
                 "--weight-decay", "0.1", "--no-decay", "bias,ndim<2,re:3\\..*", "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["no_decay"] == ["bias", "ndim<2", "re:3\\..*"]
    code = main(
        ["train", "--quiet", "--dataset", str(data), "--no-decay", "bias,ndim<<2", "--out", str(tmp_path / "x")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "--no-decay" in err and "ndim<<2" in err and "ndim<2" in err
    with pytest.raises(dc.errors.ParameterError, match=r"rule\(s\) '7\.\*' match no parameter; names are 1\.weight"):
        ex.build_optimizer(ex.make_config(weight_decay=0.1, no_decay=["7.*"]), nn.mlp(4, (3,), 2), 1)
    with pytest.raises(dc.errors.ParameterError, match="no_decay must be a list of selectors"):
        ex.make_config(no_decay="bias")


def test_resume_restores_the_tree_state_bitwise(tmp_path):
    x, y = _data()

    def trainer(**kw):
        model = nn.mlp(16, (12,), 3, seed=2)
        return Trainer(model, "cross_entropy", dc.optim.adam(lr=1e-2), seed=3, telemetry_every=4, **kw)

    ref = trainer()
    ref.fit((x, y), epochs=4, batch_size=16)
    trainer(run_dir=tmp_path).fit((x, y), epochs=2, batch_size=16)
    arrays, _ = load_checkpoint(tmp_path / "checkpoint")
    assert "optimizer/1.exp_avg.1.weight" in arrays and arrays["optimizer/1.exp_avg.1.weight"].shape == (12, 16)
    again = trainer(run_dir=tmp_path)
    before = fused.calls["adam"]
    again.fit((x, y), epochs=4, batch_size=16, resume=True)
    np.testing.assert_array_equal(again.model.params, ref.model.params)
    if fused.ENABLED:  # the restored (scattered) state was packed: the kernel kept running on the tree
        assert fused.calls["adam"] - before == again.step // 2
    moments = dc.optim.state.find_fields(again.opt_state, "exp_avg")[0]
    assert isinstance(moments, dict) and list(moments) == list(again.model.named_parameters())


def test_telemetry_names_layers_by_parameter_names_with_a_layer_wise_optimizer(tmp_path):
    """Muon needs the model's matrices (a flat buffer is refused): per-layer norms of its tree update, by name."""
    x, y = _data()
    model = nn.mlp(16, (12, 8), 3, seed=0)
    trainer = Trainer(model, "cross_entropy", dc.optim.muon(lr=0.02), run_dir=tmp_path, telemetry_every=2)
    trainer.fit((x, y), epochs=1, batch_size=32)
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    layers = ["1", "3", "5"]
    assert sorted({n.rsplit(".", 1)[0] for n in model.named_parameters()}) == layers
    assert [c for c in header if c.startswith("grad_norm/")] == [f"grad_norm/{n}" for n in layers]
    assert [c for c in header if c.startswith("update_ratio/")] == [f"update_ratio/{n}" for n in layers]
    ratios = [trainer.history[f"update_ratio/{n}"][0] for n in layers]
    assert all(np.isfinite(r) and r > 0 for r in ratios)


def test_a_flat_vector_optimizer_still_trains_through_the_trainer():
    """An optimizer that only takes one flat vector (``by_layout``) gets the model's buffer."""
    x, y = _data()
    model = nn.mlp(16, (12,), 3, seed=0)
    tx = dc.optim.lamb(lr=1e-2, layout=model.layout)
    trainer = Trainer(model, "cross_entropy", tx, seed=0)
    before = model.params.copy()
    trainer.fit((x, y), epochs=1, batch_size=32)
    assert not np.array_equal(before, model.params)


@pytest.mark.parametrize("name", ["adamw", "adam", "momentum", "rmsprop", "adagrad", "nadam"])
def test_weight_decay_by_rules_gives_the_bits_of_the_old_per_element_mask(name):
    """The default rules (biases and norm layers spared) as two parameter groups on the tree: for an elementwise
    optimizer, bitwise the old single optimizer with ``weight_decay = λ · decay_mask()`` on the flat buffer,
    in-place (fused) and pure steps alike."""
    a = nn.mlp(12, (8, 6), 3, batchnorm=True, seed=1)
    b = a.copy()
    new = ex.build_optimizer(ex.make_config(optimizer=name, lr=0.01, weight_decay=0.05), a, 1)
    factory, fixed = ex.OPTIMIZERS[name]
    old = getattr(dc.optim, factory)(**fixed, lr=0.01, weight_decay=(0.05 * b.decay_mask()).astype(np.float32))
    tree, grads = a.named_parameters(), a.named_grads()
    sa, sb = new.init(tree), old.init(b.params)
    rng = np.random.default_rng(0)
    for t in range(40):
        g = rng.normal(size=a.params.shape).astype(np.float32)
        a.grads[...] = g
        b.grads[...] = g
        if t % 4 == 0:
            updates, sa = new.update(grads, sa, tree)
            for k, p in tree.items():
                np.add(p, updates[k], out=p)
        else:
            sa = fused.step(new, tree, grads, sa)
        sb = fused.step(old, b.params, b.grads, sb)
    np.testing.assert_array_equal(a.params, b.params)
    assert isinstance(sa, dc.optim.PartitionState)


def test_no_decay_in_an_experiment_file_round_trips(tmp_path):
    from descend.lab import compare

    path = tmp_path / "experiment.toml"
    path.write_text('no_decay = ["bias", "head"]\noptimizers = ["sgd"]\nepochs = 2\n')
    plan = compare.make_plan(**compare.read_experiment(path))
    assert plan["base"]["no_decay"] == ["bias", "head"]
    assert 'no_decay = ["bias", "head"]' in compare.plan_to_toml(plan)
    assert "--no-decay bias,head" in compare.plan_to_command(plan)
    path.write_text('no_decay = "bias"\n')
    with pytest.raises(dc.errors.DescendError, match="no_decay must be a list of selectors"):
        compare.make_plan(**compare.read_experiment(path))
