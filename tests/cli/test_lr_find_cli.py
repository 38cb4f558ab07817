"""``descend lr-find``: what it prints and writes, and one clear error (exit 2) for each bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from descend.cli.main import main
from tests.helpers import blobs

pytest.importorskip("matplotlib")


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["lr-find", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_lr_find_prints_the_curve_the_suggestion_and_writes_the_plot(tmp_path, capsys) -> None:
    data = blobs(tmp_path / "blobs.npz")
    out = tmp_path / "plots" / "find.png"
    code, stdout, err = cli(capsys, "--dataset", str(data), "--hidden", "16", "--optimizer", "sgd",
                            "--batch-size", "32", "--steps", "60", "--min-lr", "1e-5", "--max-lr", "100",
                            "--out", str(out))  # fmt: skip
    assert code == 0, err
    assert err == ""
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    assert "mlp on " in stdout and "with sgd, 60 steps from 1e-05 to 100" in stdout
    assert re.search(r"^step\s+lr\s+loss\s+smoothed", stdout, re.M)
    rows = re.findall(r"^\s*(\d+)\s+([0-9.e+-]+)\s+[0-9.]+\s+[0-9.]+", stdout, re.M)
    steps = [int(s) for s, _ in rows]
    assert steps[0] == 0 and steps == sorted(steps) and len(steps) >= 5
    lrs = np.array([float(v) for _, v in rows])
    np.testing.assert_allclose(lrs, 1e-5 * 1e7 ** (np.array(steps) / 59), rtol=5e-3)  # printed to 3 digits
    match = re.search(r"^suggested lr: ([0-9.e+-]+) \(steepest descent", stdout, re.M)
    assert match and 1e-5 < float(match.group(1)) < 100
    assert "← suggested" in stdout and "lowest smoothed loss" in stdout
    assert re.search(r"^alternative: [0-9.e+-]+ \(lowest smoothed loss", stdout, re.M)
    assert re.search(r"^stopped: (diverged|completed)", stdout, re.M)
    assert stdout.rstrip().endswith(f"plot: {out}")


def test_default_output_and_unused_options_are_noted(tmp_path, capsys, monkeypatch) -> None:
    data = blobs(tmp_path / "blobs.npz")
    monkeypatch.chdir(tmp_path)
    code, stdout, err = cli(capsys, "--dataset", str(data), "--hidden", "8", "--steps", "20", "--lr", "0.1",
                            "--epochs", "3")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "lr-find.png").is_file() and "plot: lr-find.png" in stdout
    assert err.strip() == "note: lr-find sweeps its own learning rate; --lr, --epochs not used"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--min-lr", "1", "--max-lr", "0.5"], r"argument --max-lr: must be greater than --min-lr \(1\), got 0.5"),
        (["--min-lr", "1e-3", "--max-lr", "1e-3"], r"argument --max-lr: must be greater than --min-lr"),
        (["--min-lr", "0"], r"argument --min-lr: must be a number in \(0, inf\), got '0'"),
        (["--max-lr", "-1"], r"argument --max-lr: must be a number in \(0, inf\), got '-1'"),
        (["--steps", "5"], r"argument --steps: must be an integer in \[10, 100000\], got '5'"),
        (["--steps", "ten"], r"argument --steps: must be an integer"),
        (["--optimizer", "frob"], r"invalid choice: 'frob'"),
        (["--model", "resnet"], r"invalid choice: 'resnet'"),
        (["--dataset", "cifar10"], r"dataset 'cifar10' is neither a built-in data set"),
        (["--opt", "frob=1"], r"config: adam takes no option\(s\) frob"),
        (["--out", "plot.txt"], r"argument --out: 'plot.txt' must end in .png"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, argv, message) -> None:
    monkeypatch.chdir(tmp_path)
    code, stdout, err = cli(capsys, *argv)
    assert code == 2 and stdout == ""
    assert err.startswith("descend: error: ") and err.count("\n") == 1
    assert re.search(message, err), err
    assert not Path("lr-find.png").exists()


def test_an_output_directory_is_refused(tmp_path, capsys) -> None:
    code, _, err = cli(capsys, "--out", str(tmp_path))
    assert code == 2 and "is a directory" in err


def test_lr_find_is_listed_in_the_help(capsys) -> None:
    assert main(["--help"]) == 0
    assert "lr-find" in capsys.readouterr().out
