"""L-BFGS in the NumPy Trainer (full batch): equal to ``torch.optim.LBFGS`` driven by hand on the torch twin,
checkpointed and resumed bitwise, refused on mini-batches, and by name in ``descend train`` / ``descend compare``."""

from __future__ import annotations

import json

import numpy as np
import pytest

import descend as dc
from descend import nn
from descend.cli.main import main
from descend.errors import ParameterError
from descend.optim import state_from_dict, state_to_dict
from descend.train import Trainer
from tests.helpers import blobs

torch = pytest.importorskip("torch")
from descend.torch.models import from_descend  # noqa: E402

RTOL = 1e-6
EPOCHS = 4


def _data(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping classes (a fifth of the labels random): the loss has a finite, well-conditioned minimum."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1.0).astype(np.int64)
    noisy = rng.random(n) < 0.2
    y[noisy] = rng.integers(0, 3, size=int(noisy.sum()))
    return x, y


def _model():
    return nn.mlp(6, hidden=(5,), out=3, activation="tanh", seed=0, dtype=np.float64)


def _torch_lbfgs(model, x, y, epochs, l2=0.0):
    """torch.optim.LBFGS by hand on the twin: one ``step(closure)`` per epoch on the full batch."""
    net = from_descend(model)
    opt = torch.optim.LBFGS(net.parameters(), line_search_fn="strong_wolfe")
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xt), yt)
        if l2:  # the Trainer's penalty λ₂/2‖w‖² on the weights (not the biases)
            loss = loss + 0.5 * l2 * sum((p * p).sum() for name, p in net.named_parameters() if name.endswith("weight"))
        loss.backward()
        return loss

    losses = [float(opt.step(closure).detach()) for _ in range(epochs)]
    state = opt.state[opt._params[0]]
    return {k: v.detach().numpy() for k, v in net.state_dict().items()}, losses, state


@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_trainer_lbfgs_equals_torch_lbfgs_on_the_twin(l2):
    x, y = _data()
    model = _model()
    theirs, their_losses, their_state = _torch_lbfgs(_model(), x, y, EPOCHS, l2=l2)
    trainer = Trainer(model, "cross_entropy", dc.optim.lbfgs(line_search_fn="strong_wolfe"), seed=0, l2=l2)
    history = trainer.fit((x, y), epochs=EPOCHS, batch_size=None)
    assert trainer.step == EPOCHS
    ours = model.state_dict()
    assert set(ours) == set(theirs)
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=RTOL, atol=1e-9, err_msg=name)
    # logged: the first evaluation of each step (torch's orig_loss is loss + penalty)
    logged = np.array(history["loss"]) + (np.array(history["penalty"]) if l2 else 0.0)
    np.testing.assert_allclose(logged, their_losses, rtol=RTOL)
    assert their_losses[-1] < 0.7 * their_losses[0]  # it does train
    assert trainer.opt_state.n_iter == their_state["n_iter"] and trainer.opt_state.n_iter >= 3 * EPOCHS
    assert trainer.opt_state.func_evals == their_state["func_evals"]
    assert history["lr"] == [1.0] * EPOCHS and history["grad_norm"][0] > history["grad_norm"][-1]


def test_trainer_lbfgs_resumes_bitwise(tmp_path):
    x, y = _data()

    def trainer(run_dir):
        return Trainer(_model(), "cross_entropy", dc.optim.lbfgs(line_search_fn="strong_wolfe", history_size=3),
                       run_dir=run_dir, seed=0)  # fmt: skip

    whole = trainer(tmp_path / "whole")
    whole.fit((x, y), epochs=6, batch_size=None)
    trainer(tmp_path / "cut").fit((x, y), epochs=2, batch_size=None)
    resumed = trainer(tmp_path / "cut")
    resumed.fit((x, y), epochs=6, batch_size=None, resume=True)
    assert whole.opt_state.fill == 3  # the history filled up and rolled over
    np.testing.assert_array_equal(resumed.model.params, whole.model.params)
    a, b = state_to_dict(resumed.opt_state), state_to_dict(whole.opt_state)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert resumed.history["loss"] == whole.history["loss"]


def test_lbfgs_state_has_the_shape_of_init_and_round_trips():
    x, y = _data()
    model = _model()
    opt = dc.optim.lbfgs(history_size=4)
    trainer = Trainer(model, "cross_entropy", opt, seed=0)
    template = opt.init(model.named_parameters())
    trainer.fit((x, y), epochs=2, batch_size=None)
    state = trainer.opt_state
    assert state.old_dirs.shape == template.old_dirs.shape == (4, model.params.size)
    restored = state_from_dict(template, state_to_dict(state))
    assert restored.fill == state.fill > 0 and restored.n_iter == state.n_iter
    np.testing.assert_array_equal(restored.old_stps, state.old_stps)


@pytest.mark.parametrize("batch_size", [32, 1, 64])
def test_trainer_lbfgs_refuses_mini_batches_before_writing(tmp_path, batch_size):
    x, y = _data()
    trainer = Trainer(_model(), "cross_entropy", dc.optim.lbfgs(), run_dir=tmp_path / "run")
    with pytest.raises(ParameterError, match=rf"L-BFGS needs full-batch training .*got batch_size={batch_size}$"):
        trainer.fit((x, y), epochs=1, batch_size=batch_size)
    assert not (tmp_path / "run" / "config.json").exists() and not (tmp_path / "run" / "metrics.csv").exists()
    assert trainer.step == 0


def test_descend_train_and_compare_run_lbfgs_by_name(tmp_path, capsys):
    data = blobs(tmp_path / "blobs.npz")
    out = tmp_path / "run"
    code = main(["train", "--quiet", "--dataset", str(data), "--hidden", "8", "--epochs", "4", "--batch-size", "full",
                 "--optimizer", "lbfgs", "--lr", "1", "--out", str(out)])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["test_accuracy"] > 0.8, summary
    code = main(["train", "--quiet", "--dataset", str(data), "--hidden", "8", "--epochs", "1", "--batch-size", "32",
                 "--optimizer", "lbfgs", "--out", str(tmp_path / "mini")])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 2 and "descend: error:" in err and "L-BFGS needs full-batch training" in err, err
    code = main(["compare", "--quiet", "--dataset", str(data), "--hidden", "8", "--epochs", "2", "--batch-size", "full",
                 "--optimizers", "lbfgs", "--out", str(tmp_path / "cmp")])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 0, err
