"""``descend landscape``: writes the picture, prints the table, and refuses bad input with exit code 2."""

from __future__ import annotations

import pytest

from descend.cli.main import main
from descend.lab import functions, landscape

pytest.importorskip("matplotlib")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["landscape", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def table_rows(out: str) -> dict[str, list[str]]:
    lines = out.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("---"))
    return {line.split()[0]: line.split() for line in lines[rule + 1 :]}


def test_default_run_writes_the_saddle_png_and_a_table(capsys, tmp_path, monkeypatch) -> None:
    from matplotlib.image import imread

    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "--steps", "40")
    assert code == 0, err
    assert err == ""
    assert out.splitlines()[0].startswith("wrote landscape-saddle.png (PNG: 6 optimizer path(s)")
    assert "no minimum (unbounded below): paths stop where they leave the plot box" in out
    image = imread(tmp_path / "landscape-saddle.png")
    assert image.shape[:2] == (480, 1200) and (image[..., :3] < 0.9).any(axis=-1).mean() > 0.02
    rows = table_rows(out)
    assert list(rows) == list(landscape.DEFAULT_OPTIMIZERS)
    assert rows["sgd"][1:6] == ["0.02", "40", rows["sgd"][3], "—", "no"]
    assert " ".join(rows["adam"][5:]) == "no, left the box at step 29"


def test_options_reach_the_run(capsys, tmp_path) -> None:
    out_path = tmp_path / "a" / "b" / "rb.png"
    code, out, err = run_cli(
        capsys,
        "--function", "rosenbrock", "--optimizers", "sgd,adam", "--lr", "adam=0.1", "--lr", "sgd=0.001",
        "--steps", "30", "--start", "-1,2", "--out", str(out_path),
    )  # fmt: skip
    assert code == 0, err
    assert out_path.is_file()
    assert "start (-1, 2); minimum f* = 0 at (1, 1)" in out
    rows = table_rows(out)
    assert list(rows) == ["sgd", "adam"]
    assert rows["sgd"][1:3] == ["0.001", "30"] and rows["adam"][1:3] == ["0.1", "30"]
    assert rows["adam"][5] == "no"
    expected = landscape.trajectories(functions.rosenbrock(), ["adam"], 30, start=(-1, 2), lrs={"adam": 0.1})
    assert rows["adam"][3] == f"{expected['adam'].loss[-1]:.3e}"


def test_one_learning_rate_for_all_and_a_divergence(capsys, tmp_path) -> None:
    code, out, _ = run_cli(
        capsys, "--function", "quadratic", "--optimizers", "sgd,momentum", "--lr", "0.05", "--steps", "50",
        "--out", str(tmp_path / "q.png"),
    )  # fmt: skip
    assert code == 0
    rows = table_rows(out)
    assert rows["sgd"][1] == rows["momentum"][1] == "0.05"
    assert rows["sgd"][5] == "yes"  # 0.05 > 2/κ = 0.02 on the steep axis


def test_gif(capsys, tmp_path) -> None:
    from PIL import Image

    out_path = tmp_path / "seed.gif"
    code, out, err = run_cli(capsys, "--function", "seed", "--start", "-0.5", "--steps", "6", "--gif", "--out",
                             str(out_path))  # fmt: skip
    assert code == 0, err
    assert out.startswith(f"wrote {out_path} (GIF:")
    with Image.open(out_path) as gif:
        assert gif.n_frames > 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--function", "booth"],
            "unknown function 'booth' (choose from 'seed', 'quadratic', 'saddle', 'rosenbrock', "
            "'beale', 'himmelblau', 'rastrigin')",
        ),
        (
            ["--optimizers", "sgd,lbfgs"],
            # every optimizer of descend.optim.registry that runs on a vector (lbfgs takes a closure; muon, sam
            # and asam need matrices or a second gradient)
            "unknown optimizer 'lbfgs' (choose from 'sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adadelta', "
            "'adam', 'adamw', 'adamax', 'nadam', 'radam', 'asgd', 'rprop', 'adafactor', 'lion', 'lamb', 'lars', "
            "'adopt', 'ademamix', 'schedule-free-sgd', 'schedule-free-adamw', 'prodigy', 'soap', 'lookahead-adam', "
            "'lookahead-sgd', 'heavy-ball-seed000', 'heavy-ball-seed001')",
        ),
        (["--optimizers", ","], "argument --optimizers: expected optimizer names separated by commas, got ','"),
        (["--start", "1"], "argument --start: saddle needs 2 number(s) (X,Y), got 1: 1"),
        (["--function", "seed", "--start", "1,2"], "argument --start: seed needs 1 number(s) (w), got 2: 1,2"),
        (
            ["--start", "1,x"],
            "argument --start: expected finite numbers separated by a comma, like -1,0.001; got '1,x'",
        ),
        (["--start", "nan,0"], "argument --start: expected finite numbers"),
        (["--start", "9,9"], "argument --start: (9, 9) is outside the plot box of saddle ([-1.5, 1.5], [-1.5, 1.5])"),
        (["--lr", "-1"], "argument --lr: expected a learning rate > 0 or NAME=LR items"),
        (["--lr", "adam=fast"], "argument --lr: expected a learning rate > 0 or NAME=LR items"),
        (["--lr", "=0.1"], "argument --lr: expected a learning rate > 0 or NAME=LR items"),
        (
            ["--optimizers", "sgd", "--lr", "adam=0.1"],
            "argument --lr: 'adam' is not among the optimizers being run (sgd)",
        ),
        (["--steps", "0"], "argument --steps: must be an integer in [1, 100000], got '0'"),
        (["--out", "picture.jpg"], "argument --out: 'picture.jpg' must end in .png (use --gif for a .gif)"),
        (["--gif", "--out", "x.png"], "argument --out: 'x.png' must end in .gif (use without --gif for a .png)"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch, argv, message) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err == f"descend: error: {message}\n" or (
        err.startswith(f"descend: error: {message}") and err.count("\n") == 1
    )
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_out_may_not_be_a_directory(capsys, tmp_path) -> None:
    (tmp_path / "pics.png").mkdir()
    code, _, err = run_cli(capsys, "--out", str(tmp_path / "pics.png"))
    assert code == 2
    target = tmp_path / "pics.png"
    assert err == f"descend: error: argument --out: '{target}' is a directory; give a file name ending in .png\n"


def test_negative_start_without_equals_sign(capsys, tmp_path) -> None:
    code, out, err = run_cli(capsys, "--start", "-0.5,-0.01", "--optimizers", "sgd", "--steps", "3", "--out",
                             str(tmp_path / "s.png"))  # fmt: skip
    assert code == 0, err
    assert "start (-0.5, -0.01)" in out


def test_help_lists_the_functions_and_optimizers(capsys) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    flat = " ".join(out.split())
    assert "seed, quadratic, saddle, rosenbrock, beale, himmelblau, rastrigin" in flat
    assert "sgd, momentum, nesterov, adagrad, rmsprop, adam" in flat
