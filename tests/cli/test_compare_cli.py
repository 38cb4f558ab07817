"""``descend compare`` and the comparison part of ``descend demo``: the table, the report path, resuming by
running the same command again, and one clear error (exit 2) for each bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from descend.cli import compare as cli_compare
from descend.cli.main import build_parser, main
from descend.lab import compare as C
from tests.lab.test_compare import blobs, snapshot


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return blobs(tmp_path_factory.mktemp("data") / "blobs.npz")


def small(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--dataset", str(data), "--hidden", "8", "--epochs", "2", "--batch-size", "32",
            "--optimizers", "sgd,adam", "--lrs", "0.05,1e-2", "--lrs", "adam=1e-3,1e-2", "--seeds", "2",
            "--workers", "2", "--out", str(out), *extra]  # fmt: skip


@pytest.mark.slow
def test_compare_prints_the_ranked_table_and_the_report_path(tmp_path, capsys, data) -> None:
    out = tmp_path / "cmp"
    code, stdout, err = run(capsys, *small(data, out))
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0].startswith("#  optimizer  best lr  final val accuracy (mean ± std)")
    assert {lines[2].split()[1], lines[3].split()[1]} == {"sgd", "adam"}
    assert f"report: {out / 'report.html'}" in lines
    assert (out / "report.html").is_file() and (out / "curves_epoch.png").is_file()
    plan = json.loads((out / "comparison.json").read_text())["plan"]
    assert plan["grid"] == {"sgd": [0.01, 0.05], "adam": [0.001, 0.01]} and plan["seeds"] == [0, 1]
    # the progress went to stderr as plain lines (not a terminal): every run, and each selection
    assert err.count("completed") + err.count("diverged") >= 6
    assert "sgd: best lr" in err and "adam: best lr" in err

    # The same command again: nothing is recomputed, the same table is printed.
    runs_before = snapshot(out / "runs")
    code, again, err = run(capsys, *small(data, out))
    assert code == 0, err
    assert snapshot(out / "runs") == runs_before
    assert again.splitlines()[:4] == lines[:4]
    assert "resuming" in err and "6 of 6 runs already finished" in err

    # --resume continues whatever the directory holds; it takes no plan options
    code, _, err = run(capsys, "--resume", str(out), "--epochs", "3")
    assert code == 2 and "it takes no --epochs" in err
    code, resumed, err = run(capsys, "--resume", str(out), "--quiet", "--no-report")
    assert code == 0 and err == "" and resumed.splitlines()[:4] == lines[:4]

    # a hand-edited run is reported, exit 2, one line
    config_path = next((out / "runs").glob("adam/*/seed=0/config.json"))
    config = json.loads(config_path.read_text())
    config["epochs"] = 5
    config_path.write_text(json.dumps(config))
    code, _, err = run(capsys, *small(data, out))
    assert code == 2
    assert err.startswith("descend: error: ") and "does not match the comparison's plan (epochs: 5 instead of 2)" in err
    assert len(err.strip().splitlines()) == 1


def test_a_diverging_optimizer_is_shown_as_diverged(tmp_path, capsys, data) -> None:
    out = tmp_path / "cmp"
    code, stdout, err = run(capsys, "--dataset", str(data), "--hidden", "8", "--epochs", "2", "--optimizers",
                            "adam,sgd", "--lrs", "adam=1e-2", "--lrs", "sgd=1e6", "--seeds", "1", "--out", str(out),
                            "--no-report", "--workers", "2")  # fmt: skip
    assert code == 0, err
    last = stdout.splitlines()[3].split()
    assert last[:3] == ["2", "sgd", "—"] and " ".join(last[-4:]) == "diverged at every lr"
    assert "sgd lr=1e+06 seed=0: diverged" in err


def test_unknown_optimizer_lists_the_valid_ones(capsys) -> None:
    code, _, err = run(capsys, "--optimizers", "sgd,adamm")
    assert code == 2
    assert "unknown optimizer 'adamm'; valid optimizers: sgd, momentum, nesterov, adagrad" in err


def test_bad_toml_reports_its_line(tmp_path, capsys) -> None:
    path = tmp_path / "exp.toml"
    path.write_text('epochs = 3\noptimizers = ["sgd"]\nseeds = 2\n[grid\nsgd = [0.1]\n')
    code, _, err = run(capsys, "--config", str(path))
    assert code == 2 and "exp.toml: invalid TOML" in err and "line 4" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seed", "3"], "use --seeds N"),
        (["--lrs", "0"], "argument --lrs/--lr: expected learning rates > 0"),
        (["--lrs", "lion=1e-4"], "lion is not among the optimizers compared"),
        (["--seeds", "0"], "argument --seeds"),
        (["--workers", "0"], "argument --workers"),
        (["--schedule", "linear"], "invalid choice"),
        (["--config", "/nonexistent/exp.toml"], "cannot read the experiment file"),
    ],
)
def test_bad_options_are_one_line_errors(capsys, argv, message) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err, err


def plan_of(*argv: str) -> dict:
    return cli_compare.plan_from_args(build_parser().parse_args(["compare", *argv]))


def test_toml_then_options(tmp_path, data) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(
        f'dataset = "{data.name}"\nepochs = 7\noptimizers = ["sgd", "adam"]\nseeds = 2\nschedule = "cosine"\n'
        "[grid]\nsgd = [0.1, 0.3]\n"
    )
    shutil.copy(data, tmp_path / data.name)
    plan = plan_of("--config", str(path))
    assert plan["base"]["dataset"] == str((tmp_path / data.name).resolve())  # relative to the file
    assert plan["base"]["epochs"] == 7 and plan["base"]["schedule"] == "cosine"
    assert plan["grid"] == {"sgd": [0.1, 0.3], "adam": list(C.DEFAULT_GRIDS["adam"])}
    plan = plan_of("--config", str(path), "--epochs", "3", "--lrs", "adam=1e-4:1e-2:3", "--opt", "weight_decay=0.1")
    assert plan["base"]["epochs"] == 3 and plan["grid"]["adam"] == [1e-4, 1e-3, 1e-2]
    assert plan["grid"]["sgd"] == [0.1, 0.3]
    assert plan["optimizer_args"] == {"sgd": {"weight_decay": 0.1}, "adam": {"weight_decay": 0.1}}


def test_defaults_are_the_documented_comparison() -> None:
    plan = plan_of()
    assert plan == C.make_plan()
    assert C.expected_runs(plan) == 7 * 6 + 7 * 2


@pytest.mark.slow
def test_demo_ends_with_the_comparison_and_the_report_path(tmp_path, capsys, monkeypatch, data) -> None:
    from descend.cli import demo

    tiny = C.make_plan({"dataset": str(data), "hidden": [8], "epochs": 2}, optimizers=["sgd", "adam"],
                       grid={"sgd": [0.05], "adam": [1e-2]}, seeds=1)  # fmt: skip
    monkeypatch.setattr(demo, "default_plan", lambda: tiny)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--workers", "2"]) == 0
    stdout = capsys.readouterr().out
    assert "Iteration 1: w = 0.6000, loss = 5.7600" in stdout  # the seed walk still comes first
    assert "descend compare: sgd, adam" in stdout
    assert stdout.rstrip().splitlines()[-2] == f"report: {out / 'report.html'}"
    assert (out / "report.html").is_file()
