"""Bad input to the subcommands: one line ``descend: error: ...``, exit 2, and nothing written.

Also the run that diverges (exit 3, one line, a valid run directory) and the data options
(``--normalize``, ``--label-column``, ``--test-data``) that make a CSV of your own train well.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from descend.cli.main import main
from descend.lab import compare as C
from descend.train import experiment as ex
from descend.train import read_metrics
from tests.helpers import blobs


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def assert_one_line_error(code: int, err: str, *parts: str) -> None:
    assert code == 2, err
    assert err.startswith("descend: error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, err


def write_csv(path: Path, x: np.ndarray, labels, header: list[str] | None = None) -> Path:
    lines = [",".join(header)] if header else []
    lines += [",".join([*(f"{v:.6g}" for v in row), str(label)]) for row, label in zip(x, labels, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def blob_arrays(n: int = 240, classes: int = 3, features: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centers = rng.normal(0, 3, size=(classes, features))
    return centers[y] + rng.normal(0, 1, size=(n, features)), y


@pytest.fixture
def data(tmp_path) -> Path:
    return blobs(tmp_path / "blobs.npz", n=60)


TRAIN = ("train", "--quiet", "--epochs", "1", "--hidden", "4")
COMPARE = ("compare", "--quiet", "--no-report", "--optimizers", "sgd", "--lrs", "0.1", "--seeds", "1",
           "--epochs", "1", "--workers", "1", "--hidden", "4")  # fmt: skip


# ------------------------------------------------------------------------------------------------ --out


def _command(name: str, data: Path) -> tuple[str, ...]:
    return {
        "train": (*TRAIN, "--dataset", str(data)),
        "compare": (*COMPARE, "--dataset", str(data)),
        "landscape": ("landscape", "--steps", "3"),
        "lr-find": ("lr-find", "--dataset", str(data), "--hidden", "4", "--steps", "10"),
    }[name]


@pytest.mark.parametrize("command", ["train", "compare"])
def test_an_output_directory_that_is_a_file_is_one_error(tmp_path, capsys, data, command) -> None:
    (tmp_path / "taken").write_text("mine\n")
    before = tree(tmp_path)
    code, out, err = cli(capsys, *_command(command, data), "--out", str(tmp_path / "taken"))
    assert_one_line_error(code, err, "argument --out", str(tmp_path / "taken"), "is a file")
    assert out == "" and tree(tmp_path) == before and (tmp_path / "taken").read_text() == "mine\n"


@pytest.mark.parametrize(
    ("command", "name"),
    [("train", "run"), ("compare", "cmp"), ("landscape", "x.png"), ("lr-find", "x.png")],
)
def test_an_output_below_a_file_is_one_error(tmp_path, capsys, data, command, name) -> None:
    (tmp_path / "taken").write_text("mine\n")
    before = tree(tmp_path)
    target = tmp_path / "taken" / "sub" / name
    code, out, err = cli(capsys, *_command(command, data), "--out", str(target))
    assert_one_line_error(code, err, "argument --out", f"{tmp_path / 'taken'}, which is a file")
    assert out == "" and tree(tmp_path) == before


@pytest.mark.parametrize(
    ("command", "name", "compute"),
    [
        ("train", "run", "descend.train.experiment.load_data"),
        ("compare", "cmp", "descend.lab.compare.run_comparison"),
        ("landscape", "x.png", "descend.lab.landscape.trajectories"),
        ("lr-find", "x.png", "descend.lab.lr_find.lr_range_test"),
    ],
)
def test_a_read_only_output_directory_is_refused_before_any_computation(
    tmp_path, capsys, monkeypatch, data, readonly_dir, command, name, compute
) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("computed before checking the output directory")

    monkeypatch.setattr(compute, boom)
    before = tree(tmp_path)
    code, out, err = cli(capsys, *_command(command, data), "--out", str(readonly_dir / name))
    assert_one_line_error(code, err, "argument --out", f"cannot write to {readonly_dir}")
    assert out == "" and tree(tmp_path) == before


# ------------------------------------------------------------------------------------------- compare


def test_a_toml_file_that_is_not_utf8_is_one_error(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "exp.toml"
    path.write_bytes(b'epochs = 2\noptimizers = ["sgd"]\n# caf\xe9 (latin-1)\n')
    code, _, err = cli(capsys, "compare", "--config", str(path))
    assert_one_line_error(code, err, "exp.toml", "not UTF-8", "byte 37")
    assert tree(tmp_path) == ["exp.toml"]


@pytest.mark.parametrize("target", ["2", "0", "-0.5", "1.5"])
def test_compare_target_outside_0_1_is_refused(tmp_path, capsys, monkeypatch, target) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, *COMPARE, "--target", target)
    assert_one_line_error(code, err, "target", "(0, 1]", f"got {float(target)!r}", "val_accuracy")
    assert tree(tmp_path) == []


def test_compare_target_in_a_toml_file_is_checked_too(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp.toml").write_text('optimizers = ["sgd"]\ntarget = 90\nvalidation = 0\n')
    code, _, err = cli(capsys, "compare", "--config", "exp.toml")
    assert_one_line_error(code, err, "target must be in (0, 1]", "accuracy", "got 90")
    assert tree(tmp_path) == ["exp.toml"]
    assert C.make_plan({"epochs": 1}, optimizers=["sgd"], target=1)["target"] == 1.0


def test_compare_with_a_bad_data_file_writes_nothing(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.csv").write_text("1,2,0\n3,4,1\n5,6,1e9\n")
    code, _, err = cli(capsys, *COMPARE, "--dataset", "d.csv", "--out", "cmp")
    assert_one_line_error(code, err, "line 3", "1e9")
    assert tree(tmp_path) == ["d.csv"]


# ------------------------------------------------------------------------------------- configuration


def test_batch_size_0_is_refused_and_full_stays_explicit(tmp_path, capsys, data) -> None:
    code, _, err = cli(capsys, *TRAIN, "--dataset", str(data), "--batch-size", "0", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "argument --batch-size", "--batch-size full", "got '0'")
    assert not (tmp_path / "r").exists()
    with pytest.raises(ex.ParameterError, match=r"batch_size must be an integer >= 1 or None \(full batch\), got 0"):
        ex.make_config({"batch_size": 0})
    assert ex.make_config({"batch_size": None})["batch_size"] is None
    code, _, err = cli(capsys, *TRAIN, "--dataset", str(data), "--batch-size", "full", "--out", str(tmp_path / "f"))
    assert code == 0, err
    assert json.loads((tmp_path / "f" / "config.json").read_text())["batch_size"] is None


@pytest.mark.parametrize(
    ("schedule", "args", "message"),
    [
        ("warmup-cosine", ["warmup_epochs=-1"], "warmup_epochs must be in [0, 3) (epochs), got -1"),
        ("warmup-cosine", ["warmup_epochs=3"], "warmup_epochs must be in [0, 3) (epochs), got 3"),
        ("step", ["step_size=-1"], "step_size must be an integer in [1, inf) (epochs), got -1"),
        ("step", ["step_size=0"], "step_size must be an integer in [1, inf) (epochs), got 0"),
        ("step", ["gamma=-2"], "gamma must be in [0, inf), got -2"),
        ("exponential", ["gamma=0"], "gamma must be in (0, inf) (per epoch), got 0"),
        ("cosine", ["warmup=1"], "schedule 'cosine' takes alpha; got warmup"),
        ("constant", ["gamma=1"], "schedule 'constant' takes no arguments; got gamma"),
        ("one-cycle", ["pct_start=2"], "pct_start must be in [0, 1], got 2"),
        ("plateau", ["patience=-1"], "patience must be an integer in [0, inf) (epochs), got -1"),
        ("plateau", ["factor=1.5"], "factor must be in [0, 1), got 1.5"),
        ("plateau", ["mode=up"], "mode must be one of 'auto', 'min', 'max', got 'up'"),
        ("plateau", ["frob=1"], "takes factor, patience, threshold, threshold_mode, cooldown, min_lr, mode; got frob"),
    ],
)
def test_schedule_arguments_are_checked_in_epochs_before_anything_is_written(
    tmp_path, capsys, data, schedule, args, message
) -> None:
    argv = [a for arg in args for a in ("--schedule-arg", arg)]
    out = tmp_path / "r"
    code, _, err = cli(capsys, *TRAIN, "--dataset", str(data), "--epochs", "3", "--batch-size", "10",
                       "--schedule", schedule, *argv, "--out", str(out))  # fmt: skip
    assert_one_line_error(code, err, f"config: schedule {schedule!r}", message)
    assert not out.exists()


def test_plateau_arguments_reach_the_controller(tmp_path, capsys, data) -> None:
    cfg = ex.make_config(
        {"schedule": "plateau", "schedule_args": {"patience": 0, "factor": 0.25, "cooldown": 1, "min_lr": 1e-5}}
    )
    (plateau,) = [cb for cb in ex.build_callbacks(cfg, True) if type(cb).__name__ == "ReduceLROnPlateau"]
    state = plateau.controller.init()
    for value in (1.0, 2.0, 3.0, 4.0):  # patience 0: each bad epoch reduces, cooldown 1 skips every other one
        state = plateau.controller.update(state, value, lr=1e-3)
    assert state.num_reductions == 2 and state.scale == pytest.approx(0.25**2)
    assert ex.build_schedule(cfg, 10) == cfg["lr"]
    out = tmp_path / "r"
    code, _, err = cli(capsys, *TRAIN, "--dataset", str(data), "--epochs", "3", "--schedule", "plateau",
                       "--schedule-arg", "patience=0", "--schedule-arg", "factor=0.5", "--schedule-arg", "mode=min",
                       "--out", str(out))  # fmt: skip
    assert code == 0, err
    saved = json.loads((out / "config.json").read_text())
    assert saved["schedule_args"] == {"patience": 0, "factor": 0.5, "mode": "min"}


# ----------------------------------------------------------------------------------------- divergence


def test_divergence_is_one_line_exit_3_and_a_valid_run_directory(tmp_path, capsys, data) -> None:
    out = tmp_path / "run"
    code, stdout, err = cli(capsys, *TRAIN, "--dataset", str(data), "--epochs", "3", "--optimizer", "sgd",
                            "--lr", "1e10", "--out", str(out))  # fmt: skip
    assert code == 3, err
    assert err.count("\n") == 1 and err.startswith("descend: diverged at epoch "), err
    assert "RuntimeWarning" not in err and ("(loss " in err or "(val_loss " in err)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert json.loads((out / "config.json").read_text())["lr"] == 1e10
    rows = read_metrics(out / "metrics.csv")
    epoch = int(err.split("epoch ")[1].split()[0])
    assert 1 <= epoch <= len(rows) and rows[-1]["epoch"] == summary["epochs"]
    bad = rows[epoch - 1]
    assert not all(np.isfinite(bad[k]) for k in ("loss", "val_loss") if k in bad)
    assert "status" in stdout and "diverged" in stdout


def test_the_exit_codes_are_documented() -> None:
    import descend.cli.main as m

    assert re.search(r"\b3\b[^.;]*diverged", m.__doc__) and re.search(r"\b2\b[^.;]*usage error", m.__doc__)
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "exit code 3" in readme


@pytest.mark.parametrize(("lr", "word"), [("1.5", "diverges"), ("1", "does not converge")])
def test_quadratic_example_says_it_diverges(capsys, lr, word) -> None:
    code, out, err = cli(capsys, "example", "quadratic", "--lr", lr)
    assert code == 0 and err == ""
    assert len(out.splitlines()) == 11
    assert word in out.splitlines()[-1] and "0 < lr < 1" in out.splitlines()[-1]


def test_quadratic_example_that_converges_says_nothing_more(capsys) -> None:
    code, out, _ = cli(capsys, "example", "quadratic", "--lr", "0.9")
    assert code == 0 and len(out.splitlines()) == 10


# ------------------------------------------------------------------------------------------ CSV data


def test_a_huge_label_is_refused_naming_its_line(tmp_path, capsys) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n1,2,0\n3,4,1\n5,6,1e9\n")
    code, _, err = cli(capsys, *TRAIN, "--dataset", str(path), "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "line 4", "'1e9'", "at most 10000 classes")
    assert tree(tmp_path) == ["d.csv"]


def test_a_string_label_among_integers_is_refused_naming_its_line(tmp_path, capsys) -> None:
    x, y = blob_arrays(40)
    labels = [str(v % 2) for v in y]
    labels[17] = "cat"
    path = write_csv(tmp_path / "d.csv", x, labels)
    code, _, err = cli(capsys, *TRAIN, "--dataset", str(path), "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "line 18", "'cat'", "integers")
    assert tree(tmp_path) == ["d.csv"]


def test_string_labels_become_sorted_classes_printed_and_stored(tmp_path, capsys) -> None:
    x, y = blob_arrays(90)
    names = np.array(["zebra", "ant", "moth"])
    path = write_csv(tmp_path / "d.csv", x, names[y], header=["f1", "f2", "f3", "f4", "animal"])
    out = tmp_path / "r"
    code, stdout, err = cli(capsys, *TRAIN, "--dataset", str(path), "--epochs", "5", "--out", str(out))
    assert code == 0, err
    assert "classes: ant, moth, zebra" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"]["classes"] == ["ant", "moth", "zebra"]


def test_unscaled_features_are_standardized_by_default(tmp_path, capsys) -> None:
    x, y = blob_arrays(300)
    path = write_csv(tmp_path / "big.csv", x * 1e4, y)
    runs = {}
    for normalize in ("auto", "none", "minmax"):
        out = tmp_path / normalize
        flags = [] if normalize == "auto" else ["--normalize", normalize]
        code, _, err = cli(capsys, *TRAIN, "--dataset", str(path), "--epochs", "5", "--lr", "0.03",
                           "--batch-size", "16", *flags, "--out", str(out))  # fmt: skip
        assert code == 0, err
        runs[normalize] = json.loads((out / "summary.json").read_text())
    auto = runs["auto"]
    assert auto["config"]["normalize"] == "auto" and auto["data"]["normalization"]["method"] == "standard"
    assert auto["test_accuracy"] > 0.9 and auto["final"]["loss"] < 0.3
    assert runs["none"]["data"]["normalization"] == {"method": "none"}
    assert runs["none"]["final"]["loss"] > 10 * auto["final"]["loss"]
    assert runs["minmax"]["data"]["normalization"]["method"] == "minmax"
    assert len(auto["data"]["normalization"]["shift"]) == 4 == len(auto["data"]["normalization"]["scale"])


def test_normalization_statistics_come_from_the_training_split_only(tmp_path) -> None:
    x, y = blob_arrays(200)
    path = write_csv(tmp_path / "d.csv", x * 100, y)
    raw = ex.load_data(ex.make_config({"dataset": str(path), "normalize": "none"}))
    for method in ("standard", "minmax"):
        train, val, test = ex.load_data(ex.make_config({"dataset": str(path), "normalize": method}))
        tx = raw[0].x.astype(np.float64)
        if method == "standard":
            shift, scale = tx.mean(axis=0), tx.std(axis=0)
        else:
            shift, scale = tx.min(axis=0), tx.max(axis=0) - tx.min(axis=0)
        np.testing.assert_allclose(train.normalization.shift, shift, rtol=1e-5)
        np.testing.assert_allclose(train.normalization.scale, scale, rtol=1e-5)
        for part, base in ((train, raw[0]), (val, raw[1]), (test, raw[2])):
            np.testing.assert_allclose(part.x, (base.x - shift) / scale, rtol=1e-4, atol=1e-5)
        if method == "minmax":
            assert train.x.min() == 0 and train.x.max() == pytest.approx(1)
            assert test.x.min() != 0 or test.x.max() != pytest.approx(1)  # not refitted on the test split


def test_label_column_by_name_or_index(tmp_path, capsys) -> None:
    x, y = blob_arrays(60)
    lines = ["species,a,b,c,d"] + [
        ",".join([str(label), *(f"{v:.5g}" for v in row)]) for row, label in zip(x, y, strict=True)
    ]
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines) + "\n")
    for column in ("species", "0", "-5"):
        out = tmp_path / f"r{column}"
        code, _, err = cli(capsys, *TRAIN, "--dataset", str(path), "--label-column", column, "--out", str(out))
        assert code == 0, err
        summary = json.loads((out / "summary.json").read_text())
        assert summary["parameters"] == 4 * 4 + 4 + 4 * 3 + 3  # 4 features, 3 classes
        assert summary["config"]["label_column"] == (column if column == "species" else int(column))
    code, _, err = cli(capsys, *TRAIN, "--dataset", str(path), "--label-column", "kind", "--out", str(tmp_path / "x"))
    assert_one_line_error(code, err, "no column named 'kind'")
    assert not (tmp_path / "x").exists()
    code, _, err = cli(capsys, *TRAIN, "--dataset", str(blobs(tmp_path / "b.npz", n=30)), "--label-column", "0",
                       "--out", str(tmp_path / "y"))  # fmt: skip
    assert_one_line_error(code, err, "label_column applies to .csv data sets")
    assert not (tmp_path / "y").exists()


def test_test_data_replaces_the_20_percent_split(tmp_path, capsys) -> None:
    x, y = blob_arrays(200)
    path = write_csv(tmp_path / "train.csv", x, y)
    tx, ty = blob_arrays(60, seed=0)
    flipped = write_csv(tmp_path / "flipped.csv", tx, (ty + 1) % 3)  # same blobs, every label wrong
    train, val, test = ex.load_data(ex.make_config({"dataset": str(path), "test_data": str(flipped)}))
    assert len(train) + len(val) == 200 and len(test) == 60
    out = tmp_path / "r"
    code, _, err = cli(capsys, *TRAIN, "--dataset", str(path), "--test-data", str(flipped), "--epochs", "5",
                       "--lr", "0.03", "--batch-size", "16", "--out", str(out))  # fmt: skip
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final"]["val_accuracy"] > 0.9 and summary["test_accuracy"] < 0.1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1,2,3,0\n", "test data has 3 features per sample, the data set 4"),
        ("1,2,3,4,7\n", "label '7' must be in [0, 3)"),
    ],
)
def test_bad_test_data_is_one_error(tmp_path, capsys, content, message) -> None:
    x, y = blob_arrays(60)
    path = write_csv(tmp_path / "train.csv", x, y)
    (tmp_path / "t.csv").write_text(content)
    code, _, err = cli(capsys, *TRAIN, "--dataset", str(path), "--test-data", str(tmp_path / "t.csv"),
                       "--out", str(tmp_path / "r"))  # fmt: skip
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "r").exists()


def test_data_options_do_not_apply_to_builtin_data_sets(tmp_path, capsys) -> None:
    with pytest.raises(ex.ParameterError, match="test_data replaces the 20 % test split of a file data set"):
        ex.make_config({"dataset": "mnist1d", "test_data": "t.csv"})
    with pytest.raises(ex.ParameterError, match="normalize must be one of 'auto', 'none', 'standard', 'minmax'"):
        ex.make_config({"normalize": "zscore"})
    code, _, err = cli(capsys, *TRAIN, "--normalize", "zscore", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "argument --normalize", "zscore")


def test_compare_toml_takes_the_data_options_relative_to_the_file(tmp_path, capsys) -> None:
    x, y = blob_arrays(60)
    (tmp_path / "exp").mkdir()
    write_csv(tmp_path / "exp" / "train.csv", x, y)
    write_csv(tmp_path / "exp" / "test.csv", x[:20], y[:20])
    (tmp_path / "exp" / "e.toml").write_text(
        'dataset = "train.csv"\ntest_data = "test.csv"\nnormalize = "minmax"\nlabel_column = 4\n'
    )
    kwargs = C.read_experiment(tmp_path / "exp" / "e.toml")
    assert kwargs["base"]["test_data"] == str((tmp_path / "exp" / "test.csv").resolve())
    plan = C.make_plan(kwargs["base"], optimizers=["sgd"])
    assert plan["base"]["normalize"] == "minmax" and plan["base"]["label_column"] == 4


def test_schedules_are_built_from_epoch_arguments() -> None:
    step = ex.build_schedule(ex.make_config({"schedule": "step", "schedule_args": {"step_size": 2.0}}), 5)
    assert step(9) == pytest.approx(1e-3) and step(10) == pytest.approx(1e-4)  # 2 epochs of 5 steps
    one = ex.make_config({"schedule": "warmup-cosine", "epochs": 1})  # default warm-up of 1 epoch = the whole run
    assert ex.build_schedule(one, 1)(0) == pytest.approx(1e-3)  # one step: no room for a warm-up
    four = ex.build_schedule(one, 4)  # warm up over 3 steps, then 1 step of decay
    assert [four(t) for t in range(4)] == pytest.approx([0.0, 1e-3 / 3, 2e-3 / 3, 1e-3])
