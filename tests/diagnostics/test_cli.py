"""``descend diagnose RUN_DIR`` on a run from ``descend train``, ``descend diagnose eos``, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from descend.cli.main import main
from descend.diagnostics.report import FIGURES, HTML_NAME, JSON_NAME, _load_run
from tests.diagnostics.twin import exact_hessian, loss_of_flat
from tests.helpers import blobs


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def run_dir(tmp_path, capsys):
    data = blobs(tmp_path / "blobs.npz", n=120)
    out = tmp_path / "run"
    code, _, err = cli(capsys, "train", "--quiet", "--dataset", str(data), "--hidden", "6", "--epochs", "3",
                       "--optimizer", "sgd", "--lr", "0.1", "--batch-size", "32", "--track-sharpness", "3",
                       "--out", str(out))  # fmt: skip
    assert code == 0, err
    return out


def test_diagnose_a_trained_run(run_dir, capsys):
    code, out, err = cli(capsys, "diagnose", str(run_dir), "--quiet", "--trace-samples", "20", "--slice-points", "5")
    assert code == 0, err
    numbers = json.loads((run_dir / JSON_NAME).read_text())
    # The Hessian of the whole training set (fewer examples than --samples) at the final checkpoint.
    _, model, train = _load_run(run_dir)
    lam = np.linalg.eigvalsh(exact_hessian(loss_of_flat(model, train.x, train.y), model.params.astype(np.float64)))
    assert numbers["examples"] == len(train)
    np.testing.assert_allclose(numbers["hessian"]["top_eigenvalues"], lam[::-1][:5], rtol=1e-5)
    tr = numbers["hessian"]["trace"]
    assert tr["low"] <= lam.sum() <= tr["high"]
    assert numbers["stability_threshold"] == pytest.approx(2 / 0.1)
    page = (run_dir / HTML_NAME).read_text()
    for name in FIGURES.values():  # the run tracked its sharpness: all four figures
        assert (run_dir / name).stat().st_size > 1000
        assert f'src="{name}"' in page
    assert "2/η" in page and "B_simple" in page
    assert "top eigenvalues" in out and "report:" in out


def test_diagnose_refuses_what_is_not_a_run(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = cli(capsys, "diagnose", str(tmp_path / "empty"))
    assert code == 2
    assert "is not a run directory: it needs config.json and checkpoint" in err
    assert list((tmp_path / "empty").iterdir()) == []  # nothing written
    code, _, err = cli(capsys, "diagnose", str(tmp_path / "nowhere"))
    assert code == 2 and "neither 'eos' nor a run directory" in err


def test_diagnose_eos_bad_options(capsys, tmp_path):
    code, _, err = cli(capsys, "diagnose", "eos", "--lrs", "2/0", "--out", str(tmp_path / "o"))
    assert code == 2 and "argument --lrs: must be step sizes > 0" in err
    code, _, err = cli(capsys, "diagnose", "eos", "--examples", "5")
    assert code == 2 and "argument --examples: must be an integer in [10, 4000], got '5'" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_diagnose_eos_quick_reproduces_the_plateau(capsys, tmp_path):
    """The small version of the edge-of-stability figure: λ_max rises to 2/η and stays in [0.9, 1.2]·2/η."""
    out = tmp_path / "eos"
    code, stdout, err = cli(capsys, "diagnose", "eos", "--quick", "--quiet", "--out", str(out))
    assert code == 0, err
    summary = json.loads((out / "eos.json").read_text())
    assert [round(2 / r["lr"]) for r in summary["runs"]] == [20, 30]
    for r in summary["runs"]:
        assert r["reached_at_step"] is not None and r["after_rise"] >= 15
        assert 0.9 <= r["ratio_min"] and r["ratio_max"] <= 1.2 and r["in_band"] == 1.0
    assert (out / "eos.png").stat().st_size > 10_000 and (out / "eos_trajectory.png").is_file()
    assert "GD η = 2/20" in stdout


def test_compare_with_diagnostics_draws_sharpness_per_optimizer(tmp_path, capsys):
    data = blobs(tmp_path / "blobs.npz", n=120)
    out = tmp_path / "cmp"
    argv = ["--dataset", str(data), "--hidden", "6", "--optimizers", "sgd,adam", "--lrs", "0.05", "--seeds", "1"]
    argv += ["--epochs", "2", "--batch-size", "16", "--diagnostics", "2", "--workers", "1", "--no-report"]
    code, stdout, err = cli(capsys, "compare", *argv, "--quiet", "--out", str(out))
    assert code == 0, err
    assert (out / "sharpness.png").stat().st_size > 5000
    for name in ("sgd", "adam"):
        rows = (out / "runs" / name / "lr=5e-02" / "seed=0" / "sharpness.csv").read_text().splitlines()
        assert rows[0].startswith("step,epoch,lr,sharpness") and len(rows) > 2
    assert "final sharpness λ_max: sgd (lr 0.05)" in stdout


def test_compare_report_embeds_the_sharpness_figure(tmp_path, capsys):
    """With --diagnostics the report has a Sharpness section with the figure inline, drawn once."""
    data = blobs(tmp_path / "blobs.npz", n=120)
    out = tmp_path / "cmp"
    argv = ["--dataset", str(data), "--hidden", "6", "--optimizers", "sgd,adam", "--lrs", "0.05", "--seeds", "1"]
    argv += ["--epochs", "2", "--batch-size", "16", "--diagnostics", "2", "--workers", "1"]
    code, stdout, err = cli(capsys, "compare", *argv, "--quiet", "--out", str(out))
    assert code == 0, err
    page = (out / "report.html").read_text()
    assert '<section id="sharpness">' in page and 'id="fig-sharpness"' in page and "2/η" in page
    assert (out / "sharpness.png").stat().st_size > 5000 and "sharpness: " in stdout
