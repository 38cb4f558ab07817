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
#: The command line the fixture's comparison records (a path with a space: it must come back quoted).
ARGV = ["descend", "compare", "--optimizers", "sgd,adam,momentum", "--out", "my dir/cmp"]


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, str]:
    """A comparison with a step schedule and early stopping, and its report."""
    root = tmp_path_factory.mktemp("report")
    plan = tiny_plan(
        blobs(root / "blobs.npz"), base={"epochs": 4, "schedule": "step", "schedule_args": {"step_size": 2}}
    )
    comparison = C.run_comparison(plan, root / "cmp", workers=2, record={"argv": ARGV})
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
    assert vanish[0].text == "sgd at lr 1e-01: gradients of 1.* (input side) vanish: norm collapsed from 1 to 1e-05."
    assert any("vanish toward the input" in f.text for f in vanish)
    explode = R._run_findings(_run(_rows([1.0, 1.0, 1.0], [1.0, 50.0, 5000.0])))
    assert [f.text for f in explode] == [
        "sgd at lr 1e-01: gradients of 3.* (output) exploded: norm grew from 1 to 5e+03."
    ]
    nan = R._run_findings(_run(_rows([1.0, float("nan")], [1.0, 1.0])))
    assert "exploded (norm became NaN/inf)" in nan[0].text
    big = R._run_findings(_run(_rows([1.0, 1.0], [1.0, 1.0], ratio=0.5)))
    assert len(big) == 2 and all("updates of " in f.text and "are large" in f.text for f in big)
    assert all("layer 1" not in f.text and "layer 3" not in f.text for f in vanish + explode + big)


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


# ------------------------------------------------------------------------------- honest statistics, defects fixed


def test_table_has_bootstrap_intervals_and_shared_ranks(written) -> None:
    root, page = written
    comparison = C.load(root)
    headers, cells = R.table(comparison)
    assert headers[3].startswith("final val accuracy (mean ± std)") and headers[4] == "95 % CI"
    assert headers[5].startswith("best val accuracy") and headers[6] == "95 % CI"
    unc = R.uncertainty(comparison)
    by_name = {row[1]: row for row in cells}
    assert by_name["momentum"][4] == "—"  # diverged at every lr: no interval
    for name in ("sgd", "adam"):
        iv = unc.final[name]
        assert iv.n == 2 and iv.low <= iv.estimate <= iv.high and by_name[name][4] == str(iv)
    tied = len(unc.groups[0]) > 1
    assert (by_name["sgd"][0] == by_name["adam"][0]) == tied  # tied optimizers share their rank
    ties = html.unescape(re.search(r'<p class="caption" id="ties">(.*?)</p>', page, re.S)[1])
    assert ("are tied: their 95 % intervals overlap." in ties) == tied


def test_report_warns_about_grid_edges(written) -> None:
    _, page = written
    warnings = html.unescape(re.search(r'<ul class="findings" id="protocol-warnings">(.*?)</ul>', page, re.S)[1])
    # sgd's grid is [0.05, 1e6]: 1e6 diverges, so 0.05, the smallest, wins
    assert "sgd: the selected lr 5e-02 is the smallest of its grid (5e-02 … 1e+06): the best rate may lie below" in (
        warnings
    )
    assert "--lrs sgd=" in warnings
    assert "momentum" not in warnings  # nothing selected: no edge to warn about


class _Stub:
    """What protocol_warnings reads of a comparison."""

    metric = "val_accuracy"

    def __init__(self, grid: dict, selected: dict, curves: dict, epochs: int) -> None:
        self.plan = {"optimizers": list(grid), "grid": grid, "base": {"epochs": epochs}}
        self.selected = selected
        self.curves = curves

    def seed_results(self, name: str) -> list[RunResult]:
        return [_run([{"epoch": i + 1, "val_accuracy": v} for i, v in enumerate(c)], name) for c in self.curves[name]]


def test_protocol_warnings_edge_and_still_improving() -> None:
    rising = [[0.5 + 0.02 * i for i in range(10)], [0.52 + 0.02 * i for i in range(10)]]  # still +0.04 at the end
    flat = [[0.9] * 10, [0.91] * 10]
    stub = _Stub({"adam": [1e-4, 1e-3, 1e-2], "sgd": [0.01, 0.1]}, {"adam": 1e-3, "sgd": 0.1},
                 {"adam": rising, "sgd": flat}, 10)  # fmt: skip
    texts = [f.text for f in R.protocol_warnings(stub)]
    assert texts == [
        "adam: val accuracy still rose by 0.040 over the last 3 epochs (of 10, mean over seeds): the budget was too "
        "short to see where it ends; train longer (--epochs).",
        "sgd: the selected lr 1e-01 is the largest of its grid (1e-02 … 1e-01): the best rate may lie above it; "
        "extend the grid, e.g. --lrs sgd=0.01,0.1,1,10",
    ]
    assert R.extended_grid([1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3], "high") == [1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 0.9, 3.0]
    assert R.extended_grid([1e-3, 1e-2], "low") == [1e-5, 1e-4, 1e-3, 1e-2]


def test_protocol_phrases() -> None:
    assert R.seeds_phrase([]) == "no other seeds"
    assert R.seeds_phrase([1]) == "seed 1"
    assert R.seeds_phrase([1, 2]) == "seeds 1 and 2"
    assert R.seeds_phrase([1, 2, 7]) == "seeds 1, 2 and 7"
    assert R.param_label("4") == "4.*" and R.param_label("encoder.fc1") == "encoder.fc1"
    assert R.started_as({"argv": ["descend", "compare", "--out", "a b"]}) == (
        "Started as (the exact command line):",
        "descend compare --out 'a b'",
    )
    caption, command = R.started_as({"command": "descend compare --epochs 5"})
    assert "not recorded" in caption and command == "descend compare --epochs 5"


def test_report_shows_the_exact_command_and_no_raw_markup(written) -> None:
    root, page = written
    started = html.unescape(re.search(r'<pre id="started-as">(.*?)</pre>', page, re.S)[1])
    assert started == "descend compare --optimizers sgd,adam,momentum --out 'my dir/cmp'"
    assert json.loads((root / "comparison.json").read_text())["argv"] == ARGV
    protocol = re.search(r"<header>(.*?)</header>", page, re.S)[1]
    assert "rerun with\nseed 1." in protocol and "seeds 1." not in protocol
    footer = re.search(r"<footer>(.*?)</footer>", page, re.S)[1]
    assert "&lt;script" not in footer and "<script" not in footer
    assert f'<a href="{R.REPORT_DATA}">' in footer
    embedded = json.loads(re.search(r'<script type="application/json" id="comparison-data">(.*?)</script>', page,
                                    re.S)[1])  # fmt: skip
    assert json.loads((root / R.REPORT_DATA).read_text()) == embedded
    assert set(embedded["intervals"]) == {"sgd", "adam", "momentum"} and embedded["tie_groups"]
    flow = html.unescape(re.search(r'<section id="gradient-flow">(.*?)</section>', page, re.S)[1])
    assert "named by its parameters" in flow and "module indices" not in flow


def test_cli_records_the_exact_command_line(tmp_path, capsys) -> None:
    from descend.cli.main import main

    data = blobs(tmp_path / "blobs.npz")
    out = str(tmp_path / "c")
    argv = ["compare", "--dataset", str(data), "--hidden", "4", "--epochs", "1", "--optimizers", "sgd", "--lrs",
            "0.1", "--seeds", "1", "--workers", "1", "--quiet", "--no-report", "--out", out]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "c" / "comparison.json").read_text())["argv"] == ["descend", *argv]


def test_relative_lr_panel_tells_coinciding_lines_apart(written) -> None:
    root, _ = written
    plt = R._pyplot()
    fig = R._lr_figure(plt, C.load(root))
    try:
        ax2 = fig.axes[1]
        lines = [line for line in ax2.get_lines() if not line.get_label().startswith("_")]
        assert len(lines) == 2  # sgd and adam (momentum has no selected lr)
        assert len({line.get_marker() for line in lines}) == 2 and len({line.get_linestyle() for line in lines}) == 2
        # the same step schedule: both relative curves coincide, and the panel says so where they end
        assert [t.get_text() for t in ax2.texts] == ["sgd = adam (identical)"]
    finally:
        plt.close(fig)
    assert R.identical_groups({"a": (np.arange(3.0), np.ones(3)), "b": (np.arange(3.0), np.ones(3)),
                               "c": (np.arange(3.0), np.array([1.0, 0.5, 0.5]))}) == [["a", "b"]]  # fmt: skip
    styles = R.line_styles(30)
    assert len({(s["marker"], s["ls"]) for s in styles}) == 30


def test_overfitting_axis_is_clipped_to_the_robust_range() -> None:
    plt = R._pyplot()
    fig, ax = plt.subplots()
    try:
        x = np.arange(1.0, 11.0)
        calm = ax.plot(x, 0.1 + 0.01 * x, color="C0")[0]
        spiky = ax.plot(x, np.r_[40.0, 0.12 + 0.01 * x[1:]], color="C1")[0]  # one outlier in epoch 1
        limits = R.clip_axis(ax, [calm, spiky])
        assert limits is not None and limits.clipped == 1 and limits.total == 20
        low, high = ax.get_ylim()
        assert high < 1.0 and low < 0.11
        edge = [line for line in ax.get_lines() if line.get_label() == "_clipped"]
        assert len(edge) == 1 and edge[0].get_marker() == "^" and list(edge[0].get_ydata()) == [high]
        assert R.clip_axis(ax, [calm]) is None  # nothing to clip: the axis is left alone
    finally:
        plt.close(fig)


@needs_chromium
@pytest.mark.slow
def test_report_does_not_scroll_sideways_at_700_px(tmp_path) -> None:
    # Six learning rates per optimizer (the default grids' length) and a long directory name: the widest content.
    data = blobs(tmp_path / "blobs.npz")
    plan = C.make_plan({"dataset": str(data), "hidden": [4], "epochs": 1, "batch_size": 64},
                       optimizers=["sgd", "adam"], seeds=1)  # fmt: skip
    root = tmp_path / ("a-long-directory-name-without-any-place-to-break-it-" * 3) / "cmp"
    comparison = C.run_comparison(plan, root, workers=2)
    R.write_report(comparison)
    probe = root / "probe.html"
    probe.write_text(
        (root / R.REPORT)
        .read_text(encoding="utf-8")
        .replace(
            "</body>",
            '<script>document.body.setAttribute("data-scroll-width", '
            "String(document.documentElement.scrollWidth));</script></body>",
        ),
        encoding="utf-8",
    )
    dom = _chromium("--window-size=700,1000", "--dump-dom", probe.resolve().as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    width = int(re.search(r'data-scroll-width="(\d+)"', dom.stdout)[1])
    assert width <= 700
