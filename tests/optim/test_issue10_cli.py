"""The optimizers of issue 10 through ``descend train`` (OPTIMIZERS) and the Trainer (SAM's second gradient)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import descend as dc
from descend import nn
from descend.cli.main import main
from descend.errors import ParameterError
from descend.train import Trainer, load_checkpoint
from tests.helpers import blobs

TRAINS = [
    "lamb",
    "lars",
    "adopt",
    "ademamix",
    "schedule-free-sgd",
    "schedule-free-adamw",
    "prodigy",
    "soap",
    "sam",
    "asam",
    "lookahead-adam",
    "lookahead-sgd",
]
LRS = {
    "lookahead-sgd": "0.1",
    "lars": "0.1",
    "schedule-free-sgd": "0.1",
    "prodigy": "1.0",
    "sam": "0.05",
    "asam": "0.05",
}


@pytest.mark.parametrize("name", TRAINS)
def test_descend_train_runs_each_new_optimizer(name, tmp_path, capsys):
    data = blobs(tmp_path / "blobs.npz")
    out = tmp_path / "run"
    code = main(["train", "--quiet", "--dataset", str(data), "--hidden", "8", "--epochs", "8", "--batch-size", "32",
                 "--optimizer", name, "--lr", LRS.get(name, "0.03"), "--out", str(out)])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["test_accuracy"] > 0.5, summary  # separable blobs: each of them learns something


@pytest.mark.parametrize("name", TRAINS)
def test_descend_train_with_weight_decay_on_the_weights_only(name, tmp_path, capsys):
    """``--weight-decay`` arrives as a per-element array (the model's decay mask times λ): every factory takes it."""
    data = blobs(tmp_path / "blobs.npz", n=60)
    code = main(["train", "--quiet", "--dataset", str(data), "--hidden", "8", "--epochs", "1", "--optimizer", name,
                 "--lr", LRS.get(name, "0.03"), "--weight-decay", "0.01", "--out", str(tmp_path / "run")])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 0, err


@pytest.mark.parametrize(("model", "matrices"), [
    ("mlp", {"1.weight": (8, 40), "3.weight": (3, 8)}),
    ("cnn", {"1.weight": (32, 1, 5), "4.weight": (64, 32, 5), "8.weight": (8, 640), "10.weight": (3, 8)}),
])  # fmt: skip
def test_descend_train_muon_keeps_momentum_per_matrix_and_adamw_for_the_rest(tmp_path, capsys, model, matrices):
    """Muon orthogonalizes each weight matrix (conv kernels flattened when it steps them); biases go to AdamW."""
    data = blobs(tmp_path / "blobs.npz", n=60, features=40)
    out = tmp_path / "run"
    code = main(["train", "--quiet", "--dataset", str(data), "--model", model, "--hidden", "8", "--epochs", "1",
                 "--optimizer", "muon", "--lr", "0.02", "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    arrays, _ = load_checkpoint(out / "checkpoint")
    prefix = "optimizer/0.inner_states."
    momentum = {k.split("momentum_buffer.")[1]: v.shape for k, v in arrays.items() if "momentum_buffer." in k}
    assert momentum == matrices
    adam = {k.split("exp_avg.")[1] for k in arrays if k.startswith(prefix + "adamw.0.exp_avg.")}
    assert adam == {name.replace("weight", "bias") for name in matrices}


def _data(n=96, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = (x @ rng.normal(size=(d, k))).argmax(axis=1).astype(np.int64)
    return x, y


def test_trainer_takes_the_sam_gradient_at_the_perturbed_point():
    """One Trainer epoch with SAM equals the closure API driven by hand with the same batches."""
    x, y = _data()
    model = nn.mlp(6, hidden=(5,), out=3, seed=0, dtype=np.float64)
    twin = nn.mlp(6, hidden=(5,), out=3, seed=0, dtype=np.float64)
    opt = dc.optim.sam(dc.optim.sgd(lr=0.1, momentum=0.9), rho=0.2, adaptive=True)
    trainer = Trainer(model, "cross_entropy", opt, seed=0)
    trainer.fit((x, y), epochs=1, batch_size=32, shuffle=False)
    loss_fn = nn.CrossEntropyLoss()

    def fun_and_grad_for(xb, yb):
        def fun_and_grad(p):
            twin.params[...] = p
            value = float(loss_fn.forward(twin.forward(xb), yb))
            twin.backward(loss_fn.backward(), input_grad=False)
            return value, twin.grads.copy()

        return fun_and_grad

    params, state = twin.params.copy(), opt.init(twin.params)
    for i in range(0, len(x), 32):
        params, state, _ = opt.step(fun_and_grad_for(x[i : i + 32], y[i : i + 32]), params, state)
    np.testing.assert_allclose(model.params, params, rtol=1e-12, atol=1e-14)
    plain = nn.mlp(6, hidden=(5,), out=3, seed=0, dtype=np.float64)
    Trainer(plain, "cross_entropy", dc.optim.sgd(lr=0.1, momentum=0.9), seed=0).fit(
        (x, y), epochs=1, batch_size=32, shuffle=False
    )
    assert not np.allclose(plain.params, model.params)


def test_trainer_refuses_lbfgs_on_mini_batches_naming_full_batch():
    model = nn.mlp(6, hidden=(5,), out=3, seed=0)
    trainer = Trainer(model, "cross_entropy", dc.optim.lbfgs())  # full batch works: tests/train/test_lbfgs_trainer
    x, y = np.zeros((8, 6)), np.zeros(8, dtype=np.int64)
    with pytest.raises(ParameterError, match=r"fit: L-BFGS needs full-batch training .*--batch-size full"):
        trainer.fit((x, y), epochs=1, batch_size=4)
