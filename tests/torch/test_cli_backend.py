"""``descend train --backend torch`` and ``descend compare --backend torch``: the same presets, recipe, run
directory and report as the NumPy backend, trained with ``torch.nn`` and ``descend.torch``.

The torch presets are the NumPy presets translated layer by layer (same outputs from the same weights);
the same recipe gives the same numbers on both backends (same batches, same initial weights, the same
optimizer); MNIST-1D accuracy agrees within seed noise; ``--resume`` continues bit for bit on the CPU;
bad backend/device input is one clear error (exit 2) before anything is written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from descend import nn as dnn
from descend.cli.main import main
from descend.errors import ParameterError
from descend.torch import models
from descend.train import Callback, load_checkpoint, read_metrics
from descend.train import experiment as ex
from tests.helpers import blobs


@pytest.fixture(autouse=True)
def deterministic_single_thread():
    """Bitwise reproducible CPU kernels for every test here (and the caller's settings back afterwards)."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return blobs(tmp_path_factory.mktemp("data") / "blobs.npz", n=240, features=5, spread=1.0)


def train(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["train", "--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def columns(out: Path) -> list[str]:
    return (out / "metrics.csv").read_text().splitlines()[0].split(",")


# ------------------------------------------------------------------------------------------------ presets


@pytest.mark.parametrize(
    ("name", "args", "features"),
    [
        ("mlp", dict(in_features=40, hidden=(32, 16), out=10, dropout=0.2, seed=3), 40),
        ("mlp", dict(in_features=40, hidden=(16,), out=10, activation="tanh", batchnorm=True, seed=1), 40),
        ("cnn1d", dict(in_channels=1, length=40, channels=(4, 8), hidden=16, dropout=0.1, seed=2), 40),
        ("cnn2d", dict(in_channels=1, image_size=28, channels=(4, 8), hidden=16, seed=5), 784),
        ("logistic", dict(in_features=40, out=10, init="xavier_uniform"), 40),
    ],
)
def test_the_torch_presets_are_the_numpy_presets_in_torch_nn(name, args, features) -> None:
    ours = getattr(dnn, name)(**args)
    theirs = getattr(models, name)(**args)
    assert isinstance(theirs, torch.nn.Sequential)
    # the same parameter names (torch's "1.weight"), shapes and initial values (He / Xavier as NumPy draws them)
    params = dict(theirs.named_parameters())
    assert list(params) == [info.name for info in ours.layout]
    for key, value in ours.named_parameters().items():
        np.testing.assert_array_equal(params[key].detach().numpy(), value, err_msg=key)
    # ... and the same function of the input: layer sizes, activations, pooling, flattening order
    x = np.random.default_rng(0).standard_normal((6, features)).astype(np.float32)
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        np.testing.assert_allclose(theirs(torch.tensor(x)).numpy(), ours.forward(x), rtol=1e-5, atol=1e-5)


def test_weight_decay_and_penalties_spare_biases_and_norm_layers_as_in_numpy() -> None:
    ours = dnn.mlp(6, (4,), 3, batchnorm=True)
    mask = models.decays(models.from_descend(ours))
    expected = {info.name: bool(ours.decay_mask()[info.offset]) for info in ours.layout}
    assert mask == expected and mask["1.weight"] and not mask["1.bias"] and not mask["2.weight"]


def test_a_layer_without_a_torch_twin_is_refused_by_name() -> None:
    with pytest.raises(ParameterError, match=r"layer 1 \(Softmax\) has no torch.nn twin"):
        models.from_descend(dnn.Sequential(dnn.Linear(3, 2), dnn.Softmax()))


# --------------------------------------------------------------------------------------------- same recipe


def test_train_backend_torch_writes_the_run_directory_the_numpy_backend_writes(tmp_path, capsys, data) -> None:
    recipe = ["--dataset", str(data), "--hidden", "16", "--epochs", "3", "--batch-size", "32", "--lr", "1e-2"]
    code, out, err = train(capsys, *recipe, "--backend", "torch", "--out", str(tmp_path / "torch"))
    assert code == 0, err
    assert out.splitlines()[0].endswith("parameters, torch.nn on cpu"), out
    code, _, err = train(capsys, *recipe, "--out", str(tmp_path / "numpy"))
    assert code == 0, err
    t, n = tmp_path / "torch", tmp_path / "numpy"
    assert sorted(p.name for p in t.iterdir()) == sorted(p.name for p in n.iterdir())
    assert {"config.json", "metrics.csv", "checkpoint", "summary.json"} <= {p.name for p in t.iterdir()}
    config = json.loads((t / "config.json").read_text())
    assert config["backend"] == "torch" and config["device"] == "cpu"
    assert columns(t) == columns(n)  # grad_norm/1, update_ratio/3, ...: the layers have the same names
    st, sn = (json.loads((d / "summary.json").read_text()) for d in (t, n))
    assert st.keys() == sn.keys() and st["final"].keys() == sn["final"].keys()
    assert st["parameters"] == sn["parameters"] and st["status"] == "completed"
    # the checkpoint: descend's npz (read without pickle), the parameters under the same names
    arrays, meta = load_checkpoint(t / "checkpoint")
    numpy_arrays, _ = load_checkpoint(n / "checkpoint")
    model_keys = sorted(k for k in arrays if k.startswith("model/"))
    assert model_keys == sorted(k for k in numpy_arrays if k.startswith("model/"))
    assert meta["backend"] == "torch" and meta["epoch"] == 3 and any(k.startswith("optimizer/") for k in arrays)


RECIPES = {
    "momentum, cosine, decay and penalties": dict(
        optimizer="momentum", lr=0.05, schedule="cosine", weight_decay=1e-3, l1=1e-4, l2=1e-3
    ),
    "adamw's default decay, plateau, early stopping": dict(
        optimizer="adamw",
        lr=3e-2,
        schedule="plateau",
        schedule_args={"patience": 0, "factor": 0.5},
        early_stopping=2,
        epochs=8,
    ),
    "no_decay rules: the first layer and the biases are spared": dict(
        optimizer="adamw", lr=1e-2, schedule="exponential", weight_decay=0.1, l2=1e-3, no_decay=["bias", "1.*"]
    ),
    "rmsprop, step decay, full batch": dict(
        optimizer="rmsprop", lr=1e-2, schedule="step", schedule_args={"step_size": 2}, batch_size=None
    ),
}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_the_same_recipe_gives_the_same_numbers_on_both_backends(tmp_path, data, recipe) -> None:
    """Same data, batches, initial weights and optimizer: the two backends differ only in float rounding."""
    cfg = {"dataset": str(data), "hidden": [16], "epochs": 5, "batch_size": 32, **RECIPES[recipe]}
    a = ex.run({**cfg, "backend": "torch"}, tmp_path / "torch")
    b = ex.run(cfg, tmp_path / "numpy")
    for key in ("epochs", "steps", "checkpoint_weights", "status"):
        assert a[key] == b[key], key
    rows_a = read_metrics(tmp_path / "torch" / "metrics.csv")
    rows_b = read_metrics(tmp_path / "numpy" / "metrics.csv")
    assert len(rows_a) == len(rows_b)
    lrs = [r["lr"] for r in rows_b]
    assert len(set(lrs)) > 1 or recipe.startswith("adamw")  # the schedule moved the rate
    for ra, rb in zip(rows_a, rows_b, strict=True):
        for key in ("lr", "loss", "val_loss", "grad_norm", "penalty", "grad_norm/1", "update_ratio/3"):
            if rb[key] is None:
                assert ra[key] is None, key
                continue
            assert ra[key] == pytest.approx(rb[key], rel=2e-4, abs=1e-6), (ra["epoch"], key)
        for key in ("accuracy", "val_accuracy"):  # at most one of the 19 validation samples classified otherwise
            assert abs(ra[key] - rb[key]) <= 1.01 / 19, (ra["epoch"], key)
    assert a["test_loss"] == pytest.approx(b["test_loss"], rel=2e-4)
    if recipe.startswith("adamw"):  # the plateau controller cut the rate, and early stopping ended the run
        assert rows_a[-1]["lr"] < 3e-2 and a["status"] == "stopped early"


def test_a_diverging_torch_run_exits_3_with_a_complete_run_directory(tmp_path, capsys, data) -> None:
    out = tmp_path / "run"
    argv = ["--dataset", str(data), "--hidden", "8", "--epochs", "3", "--optimizer", "sgd", "--lr", "1e10"]
    code, _, err = train(capsys, *argv, "--backend", "torch", "--out", str(out))
    assert code == 3 and "descend: diverged at epoch " in err, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["test_accuracy"] is None and summary["epochs"] < 3
    assert (out / "checkpoint").is_file() and len(read_metrics(out / "metrics.csv")) == summary["epochs"]


# ---------------------------------------------------------------------------------------------------- resume


class Interrupted(Exception):
    pass


class InterruptAt(Callback):
    """Stops the run at the start of epoch ``epoch`` (0-based), after that epoch's checkpoint: what the
    directory holds then is what a SIGKILL at that moment leaves."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        if epoch == self.epoch:
            raise Interrupted


def without_time(out: Path) -> tuple[dict, list[dict]]:
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("wall_time")
    rows = [{k: v for k, v in row.items() if k != "time"} for row in read_metrics(out / "metrics.csv")]
    return summary, rows


@pytest.mark.parametrize(
    "extra",
    [
        dict(optimizer="adamw", dropout=0.3, schedule="plateau", schedule_args={"patience": 0}, l2=1e-3),
        dict(optimizer="nesterov", lr=0.05, dropout=0.2, schedule="cosine", weight_decay=1e-3, early_stopping=2),
    ],
    ids=["adamw-dropout-plateau", "nesterov-cosine-early-stopping"],
)
def test_resume_continues_bit_for_bit_on_the_cpu(tmp_path, data, extra) -> None:
    cfg = {"dataset": str(data), "hidden": [16], "epochs": 5, "batch_size": 32, "backend": "torch", **extra}
    before = torch.get_rng_state()
    ref = ex.run(cfg, tmp_path / "ref")
    assert torch.equal(torch.get_rng_state(), before), "a run leaves the caller's torch RNG as it found it"
    run = tmp_path / "run"
    with pytest.raises(Interrupted):
        ex.run(cfg, run, callbacks=[InterruptAt(2)])
    assert load_checkpoint(run / "checkpoint")[1]["epoch"] == 2 and not (run / "summary.json").exists()
    resumed = ex.run(cfg, run, resume=True)
    assert resumed["test_accuracy"] == ref["test_accuracy"]
    assert without_time(run) == without_time(tmp_path / "ref")
    ours, _ = load_checkpoint(run / "checkpoint")
    theirs, _ = load_checkpoint(tmp_path / "ref" / "checkpoint")
    assert ours.keys() == theirs.keys()
    for key in ours:  # parameters, optimizer state, early stopping's best weights, RNG: bit for bit
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)


def test_resume_refuses_to_switch_backends(tmp_path, data) -> None:
    cfg = {"dataset": str(data), "hidden": [8], "epochs": 1}
    ex.run(cfg, tmp_path / "run")
    with pytest.raises(ParameterError, match=r"backend: 'numpy' -> 'torch'"):
        ex.run({"backend": "torch"}, tmp_path / "run", resume=True)
    with pytest.raises(ParameterError, match=r"allow_change: backend cannot change on resume"):
        ex.run({"backend": "torch"}, tmp_path / "run", resume=True, allow_change=["backend"])


# ------------------------------------------------------------------------------------------------- accuracy


@pytest.mark.slow  # about 3-8 s: six short MNIST-1D runs
def test_torch_reaches_the_numpy_backends_mnist1d_accuracy_within_seed_noise(tmp_path) -> None:
    """The MLP preset on MNIST-1D, a short recipe, 3 seeds on each backend."""
    recipe = {"dataset": "mnist1d", "model": "mlp", "hidden": [128], "optimizer": "adam", "lr": 3e-3, "epochs": 5}
    acc: dict[str, list[float]] = {}
    for backend in ("numpy", "torch"):
        acc[backend] = [
            ex.run({**recipe, "seed": s, "backend": backend}, tmp_path / f"{backend}-{s}")["test_accuracy"]
            for s in range(3)
        ]
    a, b = np.array(acc["torch"]), np.array(acc["numpy"])
    pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    assert b.mean() > 0.3, acc  # the recipe learns something (chance is 0.1)
    assert abs(a.mean() - b.mean()) <= max(0.02, 3 * pooled), acc


# ------------------------------------------------------------------------------------------------ bad input


def test_cuda_requested_without_cuda_exits_2_before_writing(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    code, _, err = train(capsys, "--backend", "torch", "--device", "cuda", "--epochs", "1", "--out", str(out))
    assert code == 2
    assert err.startswith("descend: error: config: device 'cuda' needs a CUDA GPU, but torch"), err
    assert "use device 'cpu'" in err and err.count("\n") == 1, err
    assert not out.exists()


def test_a_missing_cuda_index_is_named(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ParameterError, match=r"device 'cuda:2': this machine has 2 CUDA device\(s\), cuda:0 to cuda:1"):
        ex.make_config(backend="torch", device="cuda:2")


def test_the_torch_backend_without_torch_exits_2_with_the_install_command(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # `import torch` fails as if not installed
    out = tmp_path / "run"
    code, _, err = train(capsys, "--backend", "torch", "--epochs", "1", "--out", str(out))
    assert code == 2
    assert err == (
        "descend: error: config: backend 'torch' needs PyTorch, which is not installed; "
        "install it with pip install 'descend[torch]'\n"
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--device", "cuda"], "device 'cuda' needs backend 'torch' (the numpy backend runs on the CPU)"),
        (["--backend", "torch", "--device", "gpu"], "device must be cpu, cuda or cuda:N (N a GPU index), got 'gpu'"),
        (["--backend", "jax"], "argument --backend: invalid choice: 'jax'"),
    ],
)
def test_bad_backend_and_device_values_are_one_clear_error(tmp_path, capsys, argv, message) -> None:
    out = tmp_path / "run"
    code, _, err = train(capsys, *argv, "--epochs", "1", "--out", str(out))
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not out.exists()


# -------------------------------------------------------------------------------------------------- compare


@pytest.mark.slow
def test_compare_backend_torch_writes_the_same_report(tmp_path, capsys, data) -> None:
    out = tmp_path / "cmp"
    argv = ["compare", "--backend", "torch", "--dataset", str(data), "--hidden", "8", "--epochs", "2",
            "--batch-size", "32", "--optimizers", "sgd,adam", "--lrs", "sgd=0.05,0.1", "--lrs", "adam=1e-3,1e-2",
            "--seeds", "2", "--workers", "2", "--quiet", "--out", str(out)]  # fmt: skip
    code = main(argv)
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert stdout.splitlines()[0].startswith("#  optimizer  best lr  final val accuracy (mean ± std)"), stdout
    assert (out / "report.html").is_file() and (out / "curves_epoch.png").is_file()
    plan = json.loads((out / "comparison.json").read_text())["plan"]
    assert plan["base"]["backend"] == "torch" and "--backend torch" in (out / "comparison.json").read_text()
    configs = [json.loads(p.read_text()) for p in (out / "runs").glob("*/*/*/config.json")]
    assert len(configs) == 6 and {c["backend"] for c in configs} == {"torch"}
    html = (out / "report.html").read_text()
    assert "grad_norm" in html or "update_ratio" in html or "‖Δw‖/‖w‖" in html


@pytest.mark.parametrize("optimizer", ["lbfgs", "sam"])
def test_a_closure_optimizer_with_the_torch_backend_is_one_clear_error(tmp_path, capsys, data, optimizer) -> None:
    out = tmp_path / "run"
    argv = ["--dataset", str(data), "--optimizer", optimizer, "--batch-size", "full", "--backend", "torch"]
    code, _, err = train(capsys, *argv, "--out", str(out))
    assert code == 2 and f"optimizer '{optimizer}' needs a closure" in err and "use backend 'numpy'" in err, err
    assert not out.exists()
