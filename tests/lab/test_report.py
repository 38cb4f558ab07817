"""descend.lab.report: report.html is one self-contained page with every section, valid embedded PNGs (the same
bytes as the PNG files beside it), the ranked table and the data; it renders in headless Chromium."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from descend.lab import compare as C
from descend.lab import report as R
from descend.lab.compare import RunResult, RunSpec
from tests.lab.test_compare import GRID, blobs, tiny_plan

FIGURES = ("curves_epoch", "curves_time", "learning_rate", "lr_sensitivity", "gradient_flow", "overfitting")
SECTIONS = (
    "ranking-section",
    "curves",
    "learning-rate",
    "sensitivity",
    "gradient-flow",
    "overfitting",
    "configuration",
)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, str]:
    """A comparison with a step schedule and early stopping, and its report."""
    root = tmp_path_factory.mktemp("report")
    plan = tiny_plan(
        blobs(root / "blobs.npz"), base={"epochs": 4, "schedule": "step", "schedule_args": {"step_size": 2}}
    )
    comparison = C.run_comparison(plan, root / "cmp", workers=2)
    path = R.write_report(comparison)
    return root / "cmp", path.read_text(encoding="utf-8")


def test_report_has_every_section_and_figure(written) -> None:
    root, page = written
    assert page.startswith("<!DOCTYPE html>")
    for section in SECTIONS:
        assert f'id="{section}"' in page, section
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="[^"]*" id="fig-([a-z_]+)">', page)
    assert [name for _, name in images] == list(FIGURES)
    for data, name in images:
        raw = base64.b64decode(data, validate=True)
        assert raw.startswith(PNG)
        assert raw == (root / f"{name}.png").read_bytes()  # the same figure is saved beside the page
        import matplotlib.image

        pixels = matplotlib.image.imread(io.BytesIO(raw), format="png")
        assert pixels.shape[0] > 200 and pixels.shape[1] > 500 and float(np.std(pixels)) > 0.05
    # nothing is fetched: no external URL, script or stylesheet
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_report_table_and_data_match_the_comparison(written) -> None:
    root, page = written
    comparison = C.load(root)
    table = re.search(r'<table id="ranking">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)
    assert len(rows) == len(GRID)
    _, cells = R.table(comparison)
    for row, expected in zip(rows, cells, strict=True):
        text = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        assert text == expected
    assert any("diverged at every lr" in r for r in rows)
    assert "diverged" in re.search(r'<table id="grid">(.*?)</table>', page, re.S).group(1)
    data = json.loads(re.search(r'<script type="application/json" id="comparison-data">(.*?)</script>', page, re.S)[1])
    assert data["plan"] == comparison.plan and data["selected"] == {k: v for k, v in comparison.selected.items()}
    assert len(data["runs"]) == len(comparison.runs)
    assert {r["status"] for r in data["runs"]} == {"completed", "diverged"}


def test_report_shows_configuration_and_reproduce_command(written) -> None:
    root, page = written
    assert f"descend compare --config {root.resolve() / 'experiment.toml'} --out NEW_DIR" in html.unescape(page)
    toml = html.unescape(re.search(r'<pre id="experiment-toml">(.*?)</pre>', page, re.S)[1])
    assert toml == (root / "experiment.toml").read_text()
    assert 'schedule = "step"' in toml and "step_size = 2" in toml
    # the diverged runs are named in the gradient-flow section
    flow = re.search(r'<section id="gradient-flow">(.*?)</section>', page, re.S)[1]
    assert "momentum at lr 1e+06: the loss became NaN/inf" in html.unescape(flow)


def _run(rows: list[dict], optimizer: str = "sgd") -> RunResult:
    return RunResult(RunSpec(optimizer, 0.1, 0, "search", {}), Path("."), {"status": "completed"}, rows)


def _rows(g_in: list[float], g_out: list[float], ratio: float = 1e-3) -> list[dict]:
    return [
        {
            "epoch": i + 1,
            "loss": 1.0,
            "grad_norm/1": a,
            "grad_norm/3": b,
            "update_ratio/1": ratio,
            "update_ratio/3": ratio,
        }
        for i, (a, b) in enumerate(zip(g_in, g_out, strict=True))
    ]


def test_gradient_findings_flag_vanishing_and_exploding_layers() -> None:
    assert R._run_findings(_run(_rows([1.0, 0.8, 0.9], [1.0, 1.1, 0.9]))) == []
    vanish = R._run_findings(_run(_rows([1.0, 1e-2, 1e-5], [1.0, 1.0, 1.0])))
    assert vanish[0].text == (
        "sgd at lr 1e-01: gradients of layer 1 (input side) vanish: norm collapsed from 1 to 1e-05."
    )
    assert any("vanish toward the input" in f.text for f in vanish)
    explode = R._run_findings(_run(_rows([1.0, 1.0, 1.0], [1.0, 50.0, 5000.0])))
    assert [f.text for f in explode] == [
        "sgd at lr 1e-01: gradients of layer 3 (output) exploded: norm grew from 1 to 5e+03."
    ]
    nan = R._run_findings(_run(_rows([1.0, float("nan")], [1.0, 1.0])))
    assert "exploded (norm became NaN/inf)" in nan[0].text
    big = R._run_findings(_run(_rows([1.0, 1.0], [1.0, 1.0], ratio=0.5)))
    assert len(big) == 2 and all("updates of layer" in f.text and "are large" in f.text for f in big)


def test_early_stopping_epoch_follows_the_callback_rule() -> None:
    # best at epoch 2; epochs 3, 4, 5 do not improve -> patience 3 stops after epoch 5
    assert R.early_stopping_epoch([1.0, 0.5, 0.6, 0.5, 0.7, 0.4], 3) == (5, 2)
    assert R.early_stopping_epoch([1.0, 0.9, 0.8], 1) == (None, 3)
    assert R.early_stopping_epoch([1.0, float("nan")], 1) == (2, 1)


def test_band_is_mean_and_std_over_runs_with_a_finite_value() -> None:
    a = _run([{"epoch": 1, "time": 1.0, "loss": 1.0}, {"epoch": 2, "time": 2.0, "loss": 3.0}])
    b = _run([{"epoch": 1, "time": 3.0, "loss": 3.0}, {"epoch": 2, "time": 4.0, "loss": None}])
    x, mean, low, high = R.band([a, b], "loss")
    np.testing.assert_allclose(x, [1, 2])
    np.testing.assert_allclose(mean, [2.0, 3.0])
    np.testing.assert_allclose(low, [1.0, 3.0])
    np.testing.assert_allclose(high, [3.0, 3.0])
    x, _, _, _ = R.band([a, b], "loss", "time")
    np.testing.assert_allclose(x, [2.0, 2.0])  # epoch 2: only a's time counts (b has no finite loss there)


# ---------------------------------------------------------------------------------------------- in a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install chromium; .ci/run does it)"
)


def _chromium(*args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


@needs_chromium
@pytest.mark.slow
def test_report_renders_in_headless_chromium(written, tmp_path) -> None:
    root, _ = written
    url = (root / R.REPORT).resolve().as_uri()
    dom = _chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == len(FIGURES)
    table = re.search(r'<table id="ranking">(.*?)</table>', page, re.S)
    assert table is not None
    assert len(re.findall(r"<tr>", table.group(1))) == 1 + len(GRID)  # the header row and one per optimizer
    shot = tmp_path / "report.png"
    result = _chromium("--window-size=1200,1600", f"--screenshot={shot}", url)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (1600, 1200)
    colourful = np.mean(np.ptp(pixels, axis=2) > 0.2)  # lines, swatches, coloured text: not a blank page
    assert float(np.std(pixels)) > 0.05 and colourful > 0.002
