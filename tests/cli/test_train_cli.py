"""``descend train``: the run directory it writes, resuming, and one clear error (exit 2) for each bad input."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest

from descend.cli.main import main
from descend.train import load_checkpoint, read_metrics
from tests.data.helpers import idx_bytes, write_fake_set
from tests.helpers import blobs


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["train", "--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_train_writes_a_complete_run_directory(tmp_path, capsys) -> None:
    data = blobs(tmp_path / "blobs.npz")
    out = tmp_path / "run"
    code, stdout, err = cli(capsys, "--dataset", str(data), "--hidden", "16", "--epochs", "3", "--lr", "0.01",
                            "--batch-size", "32", "--out", str(out))  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint", "config.json", "metrics.csv", "summary.json"]
    config = json.loads((out / "config.json").read_text())
    assert config["hidden"] == [16] and config["lr"] == 0.01 and config["batch_size"] == 32
    rows = read_metrics(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 3
    # 192 training samples (240 minus 20% test) minus 10% validation = 173 -> 6 batches of 32 per epoch
    assert summary["steps"] == 3 * 6 == rows[-1]["step"]
    assert summary["final"]["val_accuracy"] == rows[-1]["val_accuracy"]
    assert summary["best"]["val_accuracy"] == max(r["val_accuracy"] for r in rows)
    assert summary["test_accuracy"] > 0.9  # separable blobs
    assert summary["wall_time"] > 0
    assert f"{summary['test_accuracy']:.4f}" in stdout and str(out) in stdout


def test_full_batch_and_stochastic_batch_sizes(tmp_path, capsys) -> None:
    data = blobs(tmp_path / "blobs.npz", n=50)
    for flag, per_epoch in (("full", 1), ("1", 36)):  # 50 -> 40 train -> 36 after the validation split
        out = tmp_path / flag
        code, _, err = cli(capsys, "--dataset", str(data), "--epochs", "2", "--batch-size", flag, "--out", str(out))
        assert code == 0, err
        assert json.loads((out / "summary.json").read_text())["steps"] == 2 * per_epoch


def test_resume_continues_bitwise_identically(tmp_path, capsys) -> None:
    data = blobs(tmp_path / "blobs.npz")
    args = ["--dataset", str(data), "--hidden", "16", "--dropout", "0.2", "--lr", "0.01", "--batch-size", "16"]
    assert cli(capsys, *args, "--epochs", "4", "--out", str(tmp_path / "a"))[0] == 0
    assert cli(capsys, *args, "--epochs", "2", "--out", str(tmp_path / "b"))[0] == 0
    code, _, err = cli(capsys, "--resume", str(tmp_path / "b"), "--epochs", "4")
    assert code == 0, err
    a, _ = load_checkpoint(tmp_path / "a" / "checkpoint")
    b, _ = load_checkpoint(tmp_path / "b" / "checkpoint")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    sa, sb = (json.loads((tmp_path / d / "summary.json").read_text()) for d in "ab")
    assert sa["test_accuracy"] == sb["test_accuracy"] and sa["steps"] == sb["steps"]


def test_schedules_and_plateau_reach_the_logged_learning_rate(tmp_path, capsys) -> None:
    data = blobs(tmp_path / "blobs.npz")
    out = tmp_path / "step"
    code, _, err = cli(capsys, "--dataset", str(data), "--optimizer", "momentum", "--lr", "0.1", "--epochs", "4",
                       "--schedule", "step", "--schedule-arg", "step_size=2", "--schedule-arg", "gamma=0.5",
                       "--out", str(out))  # fmt: skip
    assert code == 0, err
    lrs = [r["lr"] for r in read_metrics(out / "metrics.csv")]
    # lr logged at the end of each epoch = the rate of its last step: epochs 1-2 at 0.1, 3-4 at 0.05
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.05, 0.05])


def test_weight_decay_spares_biases_and_is_decoupled_for_adamw() -> None:
    from descend.nn import mlp
    from descend.train.experiment import build_optimizer, make_config

    model = mlp(5, (8,), 3, seed=0)
    mask = model.decay_mask()
    assert 0 < mask.sum() < mask.size
    tree = model.named_parameters()  # the optimizer sees the named tree (as the Trainer gives it)
    zero = {k: np.zeros_like(v) for k, v in tree.items()}
    for name, expected in (("sgd", -0.1 * 0.5), ("adamw", -0.1 * 0.5)):
        tx = build_optimizer(make_config(optimizer=name, lr=0.1, weight_decay=0.5), model, steps_per_epoch=1)
        updates, _ = tx.update(zero, tx.init(tree), tree)
        flat = np.concatenate([updates[k].ravel() for k in tree])
        np.testing.assert_allclose(flat, expected * mask * model.params, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "cifar10"], r"dataset 'cifar10' is neither a built-in data set \(mnist1d, fashion-mnist"),
        (["--model", "resnet"], r"unknown .*'resnet'.*mlp.*cnn.*logistic|invalid choice: 'resnet'"),
        (["--optimizer", "adamm"], r"'adamm'.*sgd.*adam"),
        (["--init", "he"], r"unknown init 'he'; valid inits: .*kaiming_normal"),
        (["--lr", "-1"], r"argument --lr: must be a number in \(0, inf\), got '-1'"),
        (["--hidden", "256,x"], r"argument --hidden: must be positive integers"),
        (["--opt", "betas=0.9,1.5"], r"adam: betas\[1\] must be in \[0, 1\), got 1.5"),
        (["--opt", "foo=1"], r"adam takes no option\(s\) foo; its options: betas, eps"),
        (["--schedule", "step", "--schedule-arg", "warmup=3"], r"schedule 'step' takes step_size, gamma; got warmup"),
        (["--epochs", "0"], r"argument --epochs: must be an integer in \[1, inf\)"),
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path, capsys, argv, message) -> None:
    code, _, err = cli(capsys, *argv, "--out", str(tmp_path / "run"))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("descend: error: ")
    assert re.search(message, err), err
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "summary.json").exists()


NAN_ROWS, INF_ROWS = np.array([[np.nan, 0, 0]] * 10), np.array([[np.inf, 0, 0]] * 10)
BAD_LABELS = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, -1])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.npz", (np.zeros((10, 3)), np.zeros(9, int)), r"same number of samples, got 10 in x .* and 9 in y"),
        ("a.npz", (np.zeros((10, 3)), BAD_LABELS), r"labels must be >= 0, got -1 at y\[9\]"),
        ("a.npz", (NAN_ROWS, BAD_LABELS % 2), r"x must be finite; it has 10 NaN or inf values, the first in sample 0"),
        ("a.npz", (INF_ROWS, np.arange(10) % 2), r"x must be finite; it has 10 NaN or inf values"),
        ("t.txt", b"1,2\n", r"must be \.csv or \.npz"),
        ("b.npz", b"not a zip", r"not a readable \.npz"),
        ("b.csv", b"a,b,label\n1,2,0\n3,oops,1\n", r"line 3, column 2 \('b'\): 'oops' is not a number"),
    ],
    ids=["shape-mismatch", "negative-label", "nan", "inf", "wrong-suffix", "not-npz", "bad-csv"],
)
def test_bad_data_exit_2(tmp_path, capsys, name, content, message) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.savez(path, x=content[0], y=content[1])
    code, _, err = cli(capsys, "--dataset", str(path), "--out", str(tmp_path / "run"))
    assert code == 2, err
    assert re.search(message, err), err
    assert "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: (d / "train-images-idx3-ubyte.gz").unlink(), r"data_dir .* lacks train-images-idx3-ubyte.gz"),
        (
            lambda d: (d / "train-labels-idx1-ubyte.gz").write_bytes(
                gzip.compress((d / "train-labels-idx1-ubyte.gz").read_bytes()[:0] + b"\x00\x00\x08\x01\x00")
            ),
            r"truncated|too short|header",
        ),
        (
            lambda d: (d / "t10k-images-idx3-ubyte.gz").write_bytes(
                gzip.compress(b"\x12\x34\x08\x03" + idx_bytes(np.zeros((8, 28, 28), np.uint8), 8, "u1")[4:])
            ),
            r"magic",
        ),
    ],
    ids=["missing", "truncated", "wrong-magic"],
)
def test_missing_or_corrupt_idx_files_exit_2(tmp_path, capsys, monkeypatch, mutate, message) -> None:
    write_fake_set(tmp_path / "idx")
    mutate(tmp_path / "idx")
    code, _, err = cli(capsys, "--dataset", "mnist", "--data-dir", str(tmp_path / "idx"), "--out", str(tmp_path / "r"))
    assert code == 2, err
    assert re.search(message, err), err
    assert "Traceback" not in err and err.count("\n") == 1


def test_an_existing_run_is_never_overwritten(tmp_path, capsys) -> None:
    data = blobs(tmp_path / "blobs.npz")
    out = tmp_path / "run"
    assert cli(capsys, "--dataset", str(data), "--epochs", "1", "--out", str(out))[0] == 0
    before = snapshot(out)
    code, _, err = cli(capsys, "--dataset", str(data), "--epochs", "2", "--out", str(out))
    assert code == 2 and "already holds a run" in err and f"--resume {out}" in err
    assert snapshot(out) == before


def test_a_truncated_checkpoint_exits_2_and_is_left_alone(tmp_path, capsys) -> None:
    data = blobs(tmp_path / "blobs.npz")
    out = tmp_path / "run"
    assert cli(capsys, "--dataset", str(data), "--epochs", "1", "--out", str(out))[0] == 0
    ckpt = out / "checkpoint"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    before = snapshot(out)
    code, _, err = cli(capsys, "--resume", str(out), "--epochs", "2")
    assert code == 2 and "checkpoint" in err and "Traceback" not in err, err
    assert snapshot(out) == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--resume", "{tmp}/nowhere"], r"not a run directory"),
        (["--resume", "{tmp}/run", "--lr", "0.5"], r"only --epochs may change, got --lr"),
        (["--epochs", "2"], r"--out DIR is required"),
    ],
)
def test_resume_and_out_misuse(tmp_path, capsys, argv, message) -> None:
    data = blobs(tmp_path / "blobs.npz")
    assert cli(capsys, "--dataset", str(data), "--epochs", "1", "--out", str(tmp_path / "run"))[0] == 0
    code, _, err = cli(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert code == 2
    assert re.search(message, err), err


def test_cnn_on_vectors_is_refused_with_the_reason(tmp_path, capsys) -> None:
    data = blobs(tmp_path / "blobs.npz", features=6)
    x = np.load(data)["x"].reshape(-1, 2, 3)
    np.savez(tmp_path / "img.npz", x=x, y=np.load(data)["y"])
    code, _, err = cli(capsys, "--dataset", str(tmp_path / "img.npz"), "--model", "cnn", "--out", str(tmp_path / "r"))
    assert code == 2 and "model 'cnn' needs 28x28 images or 1-D signals" in err
