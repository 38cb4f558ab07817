"""The command line: seed 001's examples, --version, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

import descend
from descend.cli.main import main
from descend.errors import ParameterError


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def seed_walk(eta: float = 0.1, w: float = 0.0, steps: int = 10) -> list[str]:
    """Seed 001's own loop, verbatim apart from the parameters."""

    def loss(w):
        return (w - 3) ** 2

    def grad_loss(w):
        return 2 * (w - 3)

    lines = []
    for i in range(steps):
        grad = grad_loss(w)
        w = w - eta * grad
        lines.append(f"Iteration {i + 1}: w = {w:.4f}, loss = {loss(w):.4f}")
    return lines


def test_quadratic_example_prints_the_seed_walk(capsys) -> None:
    code, out, err = run_cli(capsys, "example", "quadratic")
    assert code == 0, err
    assert out.splitlines() == seed_walk()
    assert out.splitlines()[0] == "Iteration 1: w = 0.6000, loss = 5.7600"
    assert err == ""


def test_quadratic_example_options(capsys) -> None:
    code, out, _ = run_cli(capsys, "example", "quadratic", "--lr", "0.35", "--steps", "25", "--start", "-4.5")
    assert code == 0
    assert out.splitlines() == seed_walk(eta=0.35, w=-4.5, steps=25)


def test_quadratic_example_reports_divergence_without_warnings(capsys) -> None:
    # lr = 1.5 multiplies w − 3 by −2 each step: it overflows after ~1000 steps.
    code, out, err = run_cli(capsys, "example", "quadratic", "--lr", "1.5", "--steps", "5000")
    assert code == 0
    lines = out.splitlines()
    assert lines[:20] == seed_walk(eta=1.5, steps=20)
    assert lines[-1].startswith("stopped: the walk diverged at iteration ")
    assert "0 < lr < 1" in lines[-1]
    assert len(lines) < 5000
    assert err == ""


def test_lr_decay_example_prints_the_seed_table(capsys) -> None:
    code, out, err = run_cli(capsys, "example", "lr-decay")
    assert code == 0, err
    assert out.splitlines() == [f"Epoch {e + 1}: Learning Rate = {0.1 * 0.95**e:.5f}" for e in range(10)]
    assert out.splitlines()[0] == "Epoch 1: Learning Rate = 0.10000"


def test_lr_decay_example_options(capsys) -> None:
    code, out, _ = run_cli(capsys, "example", "lr-decay", "--lr", "0.5", "--decay-rate", "0.8", "--epochs", "30")
    assert code == 0
    assert out.splitlines() == [f"Epoch {e + 1}: Learning Rate = {0.5 * 0.8**e:.5f}" for e in range(30)]


def test_version_via_python_m() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "descend", "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"descend {descend.__version__}"


def test_help_lists_the_commands(capsys) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    assert "example" in out and "demo" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["frobnicate"], ["unknown command 'frobnicate'", "example", "demo"]),
        (["example", "fibonacci"], ["unknown example 'fibonacci'", "quadratic", "lr-decay"]),
        (["example", "quadratic", "--lr", "-1"], ["--lr", "must be a number in (0, inf)", "got '-1'"]),
        (["example", "quadratic", "--lr", "fast"], ["--lr", "must be a number in (0, inf)", "got 'fast'"]),
        (["example", "quadratic", "--lr", "nan"], ["--lr", "must be a number in (0, inf)", "got 'nan'"]),
        (["example", "quadratic", "--steps", "0"], ["--steps", "must be an integer in [1, 1000000]", "got '0'"]),
        (["example", "quadratic", "--steps", "2.5"], ["--steps", "must be an integer in [1, 1000000]", "got '2.5'"]),
        (["example", "quadratic", "--start", "inf"], ["--start", "must be a number in (-inf, inf)", "got 'inf'"]),
        (["example", "lr-decay", "--epochs", "-3"], ["--epochs", "must be an integer", "got '-3'"]),
        (["example", "quadratic", "--speed", "3"], ["unrecognized arguments: --speed 3"]),
        ([], ["missing command", "example", "demo"]),
        (["example"], ["missing command", "quadratic", "lr-decay"]),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(capsys, argv, expected) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("descend: error: ")
    for fragment in expected:
        assert fragment in lines[0]
    assert "Traceback" not in err


def test_library_errors_become_one_line(capsys, monkeypatch) -> None:
    from descend.lab import seeds

    def broken(**kwargs):
        raise ParameterError("quadratic_walk: steps must be an integer in [1, inf),\n got 0")

    monkeypatch.setattr(seeds, "quadratic_walk", broken)
    code, out, err = run_cli(capsys, "example", "quadratic")
    assert code == 2
    assert out == ""
    assert err == "descend: error: quadratic_walk: steps must be an integer in [1, inf), got 0\n"


def test_bad_input_in_a_real_process_has_no_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "descend", "example", "quadratic", "--lr", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == "descend: error: argument --lr: must be a number in (0, inf), got '-1'\n"


def test_quadratic_example_steps_through_sgd(capsys, monkeypatch) -> None:
    """The walk is dc.optim.sgd's init/update, not a hand-written update: a spy sees every step."""
    from descend.lab import seeds

    calls = {"init": 0, "update": 0, "lr": None}
    real_sgd = seeds.sgd

    def spy_sgd(lr, **kwargs):
        tx = real_sgd(lr=lr, **kwargs)
        calls["lr"] = lr

        def init(params):
            calls["init"] += 1
            return tx.init(params)

        def update(grads, state, params=None):
            calls["update"] += 1
            return tx.update(grads, state, params)

        return type(tx)(init, update)

    monkeypatch.setattr(seeds, "sgd", spy_sgd)
    code, out, _ = run_cli(capsys, "example", "quadratic", "--lr", "0.2", "--steps", "7")
    assert code == 0
    assert calls == {"init": 1, "update": 7, "lr": 0.2}
    assert out.splitlines() == seed_walk(eta=0.2, steps=7)
