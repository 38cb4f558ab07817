"""Named workloads and ``descend compare --workload``: what a workload fixes, its targets, the quick budget's
subsample, one clear error per bad combination, and ``--workload all``: a directory per workload, one combined
report with the performance profile and the ties, resumable without recomputing."""

from __future__ import annotations

import html
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from descend.cli.main import main
from descend.data import vision
from descend.errors import ParameterError
from descend.lab import suite as S
from descend.lab import workloads as W
from tests.lab.test_compare import snapshot


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch) -> Path:
    """The quick budget's subsamples go into a fresh cache (shared by this module's tests)."""
    path = tmp_path_factory.getbasetemp() / "descend-cache"
    monkeypatch.setenv("DESCEND_CACHE", str(path))
    return path


def has_fashion_mnist() -> bool:
    try:
        vision.locate(vision.FASHION_MNIST, download=False)
    except Exception:
        return False
    return True


needs_fashion = pytest.mark.skipif(not has_fashion_mnist(), reason="Fashion-MNIST is not installed (make data)")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_four_workloads_and_their_targets() -> None:
    assert W.names() == ("mnist1d-mlp", "mnist1d-cnn", "fmnist-mlp", "fmnist-cnn")
    targets = {n: W.get(n).target for n in W.names()}
    assert targets == {"mnist1d-mlp": 0.68, "mnist1d-cnn": 0.94, "fmnist-mlp": 0.883, "fmnist-cnn": 0.916}
    for w in W.WORKLOADS.values():
        assert "descend" in w.target_source and w.quick_target < w.target
    base = W.get("fmnist-cnn").base()
    assert {k: base[k] for k in ("dataset", "model", "batch_size", "epochs", "validation", "schedule")} == {
        "dataset": "fashion-mnist", "model": "cnn", "batch_size": 128, "epochs": 10, "validation": 0.1,
        "schedule": "cosine"}  # fmt: skip
    assert W.get("mnist1d-mlp").base(overrides={"epochs": 3, "schedule": "constant"})["epochs"] == 3
    assert [w.name for w in W.resolve("all")] == list(W.names())
    assert [w.name for w in W.resolve("fmnist-mlp, mnist1d-cnn")] == ["fmnist-mlp", "mnist1d-cnn"]


VALID = "mnist1d-mlp, mnist1d-cnn, fmnist-mlp, fmnist-cnn, all"
FIXED = "--workload fixes the data set, model, batch size and validation split; it takes no --dataset"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: W.get("cifar"), rf"unknown workload 'cifar'; valid workloads: {VALID}"),
        (lambda: W.resolve("fmnist-mlp,fmnist-mlp"), r"workloads must differ"),
        (lambda: W.get("fmnist-mlp").base("slow"), r"unknown budget 'slow'; valid budgets: full, quick"),
        (lambda: W.get("fmnist-mlp").base(overrides={"batch_size": 32}), r"no batch_size \(keys you may set: "),
        (lambda: W.get("fmnist-mlp").base(overrides={"frob": 1}), r"unknown key\(s\) frob; keys you may set: "),
    ],
)
def test_bad_workload_input(call, message) -> None:
    with pytest.raises(ParameterError, match=message):
        call()


def test_quick_data_is_a_seeded_stratified_subsample(cache) -> None:
    train, test = W.quick_data("mnist1d")
    assert train.parent == cache / "workloads" and train.name.startswith("mnist1d-quick-v1-")
    with np.load(train) as f:
        x, y = f["x"], f["y"]
    with np.load(test) as f:
        yt = f["y"]
    assert x.shape == (1000, 40) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [100] * 10 and np.bincount(yt).tolist() == [50] * 10
    before = train.stat().st_mtime_ns
    assert W.quick_data("mnist1d") == (train, test) and train.stat().st_mtime_ns == before  # once, then reused
    base = W.get("mnist1d-cnn").base("quick")
    assert (base["dataset"], base["test_data"], base["epochs"], base["normalize"]) == (str(train), str(test), 2, "none")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workload", "fmnist-cnn", "--dataset", "mnist1d"], FIXED),
        (["--workload", "all", "--batch-size", "32", "--hidden", "8"], FIXED.replace("--dataset", "--hidden, --batch")),
        (["--workload", "all", "--target", "0.5"], "--workload sets its target; it takes no --target"),
        (["--workload", "frob"], "unknown workload 'frob'; valid workloads: mnist1d-mlp"),
        (["--budget", "quick"], "--budget goes with --workload"),
        (["--workload", "mnist1d-mlp", "--optimizers", "adamm"], "compare: unknown optimizer 'adamm'; valid"),
    ],
)
def test_bad_workload_options_are_one_line_and_exit_2(capsys, tmp_path, argv, message) -> None:
    code, out, err = run(capsys, *argv, "--out", str(tmp_path / "out"))
    assert code == 2 and out == ""
    assert err.startswith(f"descend: error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.slow
def test_one_workload_quick_records_the_workload_and_the_command(capsys, tmp_path) -> None:
    out = tmp_path / "cmp"
    argv = ["--workload", "mnist1d-mlp", "--budget", "quick", "--optimizers", "sgd,adam", "--lrs", "sgd=0.1",
            "--lrs", "adam=3e-3", "--seeds", "2", "--workers", "2", "--quiet", "--out", str(out)]  # fmt: skip
    code, stdout, err = run(capsys, *argv)
    assert code == 0, err
    manifest = json.loads((out / "comparison.json").read_text())
    assert manifest["argv"] == ["descend", "compare", *argv]
    assert manifest["workload"]["name"] == "mnist1d-mlp" and manifest["workload"]["budget"] == "quick"
    assert manifest["plan"]["target"] == W.get("mnist1d-mlp").quick_target
    assert manifest["plan"]["base"]["hidden"] == [512, 512] and manifest["plan"]["base"]["batch_size"] == 64
    page = html.unescape((out / "report.html").read_text())
    assert "Workload mnist1d-mlp: 2 optimizers compared" in page
    assert "target validation accuracy 0.2" in page and "the workload's own target is 0.68" in page
    started = re.search(r'<pre id="started-as">(.*?)</pre>', page, re.S)[1]
    assert started == shlex.join(["descend", "compare", *argv])
    assert re.match(r"#  optimizer  best lr  final val accuracy \(mean ± std\) +95 % CI", stdout)


@needs_fashion
@pytest.mark.slow
def test_all_workloads_quick_profile_ties_and_resume(capsys, tmp_path) -> None:
    root = tmp_path / "suite"
    argv = ["--workload", "all", "--budget", "quick", "--optimizers", "sgd,adam", "--lrs", "sgd=0.1",
            "--lrs", "adam=1e-3", "--seeds", "2", "--workers", "2", "--out", str(root)]  # fmt: skip
    code, stdout, err = run(capsys, *argv)
    assert code == 0, err
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(W.names())
    for name in W.names():  # each an ordinary comparison directory with its own report
        assert (root / name / "comparison.json").is_file() and (root / name / "report.html").is_file()
        assert json.loads((root / name / "comparison.json").read_text())["workload"]["name"] == name
    manifest = json.loads((root / S.MANIFEST).read_text())
    assert manifest["format"] == S.FORMAT and manifest["argv"] == ["descend", "compare", *argv]
    assert manifest["workloads"] == list(W.names()) and manifest["budget"] == "quick"
    # the combined report: the profile figure, the scores table, each workload's ranking with its ties
    page = html.unescape((root / "report.html").read_text())
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="performance profiles"', page)
    assert (root / "profile.png").read_bytes().startswith(b"\x89PNG")
    scores = re.search(r'<table id="scores">(.*?)</table>', page, re.S)[1]
    assert scores.count("<tr>") == 3 and "profile score (steps)" in scores
    for name in W.names():
        assert f'id="workload-{name}"' in page and f'href="{name}/report.html"' in page
    assert page.count('id="ties"') == 4 and ("are tied: their 95 % intervals overlap" in page or
                                             "No two optimizers are tied" in page)  # fmt: skip
    data = json.loads((root / "report-data.json").read_text())
    assert set(data["steps_to_target"]) == set(W.names()) and set(data["score_steps"]) == {"sgd", "adam"}
    assert all(0 <= v <= 1 for v in data["score_steps"].values())
    assert max(data["score_steps"].values()) > 0  # someone reached a quick target
    assert "performance-profile scores" in stdout and f"report: {(root / 'report.html').resolve()}" in stdout

    # the same command again, and --resume: nothing is recomputed
    runs = {n: snapshot(root / n / "runs") for n in W.names()}
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    assert {n: snapshot(root / n / "runs") for n in W.names()} == runs
    code, _, err = run(capsys, "--resume", str(root), "--quiet")
    assert code == 0, err
    assert {n: snapshot(root / n / "runs") for n in W.names()} == runs
    code, _, err = run(capsys, "--resume", str(root), "--seeds", "3")
    assert code == 2 and "it takes no --seeds" in err
    # another plan into the same directory is refused, naming the difference
    code, _, err = run(capsys, *[a if a != "2" else "3" for a in argv])
    assert code == 2 and "holds a different workload comparison" in err and "seeds" in err
