"""descend.lab.compare: the protocol (grid at seed 0, best lr by validation, more seeds), the directory it leaves,
resuming without recomputing, and every inconsistency reported instead of mixed in."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from descend.lab import compare as C
from descend.lab.compare import ComparisonError
from descend.train import read_metrics
from tests import helpers

# Two working optimizers (sgd with one diverging learning rate) and one that diverges at every learning rate.
GRID = {"sgd": [0.05, 1e6], "adam": [1e-3, 1e-2], "momentum": [1e6, 1e7]}


def blobs(path: Path, n: int = 300, classes: int = 3, features: int = 6, seed: int = 0) -> Path:
    """A small, noisy classification data set as .npz (x, y)."""
    return helpers.blobs(path, n, classes, features, spread=1.5, seed=seed)


def tiny_plan(data: Path, **kw) -> dict:
    base = {"dataset": str(data), "hidden": [8], "epochs": 2, "batch_size": 32, **kw.pop("base", {})}
    return C.make_plan(base, optimizers=list(GRID), grid=GRID, seeds=2, **kw)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, dict]:
    """One comparison run once; tests that change it work on a copy."""
    root = tmp_path_factory.mktemp("compare")
    plan = tiny_plan(blobs(root / "blobs.npz"))
    C.run_comparison(plan, root / "cmp", workers=2)
    return root / "cmp", plan


@pytest.fixture
def copy(finished, tmp_path) -> Path:
    shutil.copytree(finished[0], tmp_path / "cmp")
    return tmp_path / "cmp"


def summaries(root: Path) -> dict[tuple[str, float, int], dict]:
    out = {}
    for path in root.glob("runs/*/*/*/summary.json"):
        s = json.loads(path.read_text())
        out[(s["config"]["optimizer"], s["config"]["lr"], s["config"]["seed"])] = s
    return out


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------------------------ the protocol


def test_directory_layout_and_manifest(finished) -> None:
    root, plan = finished
    manifest = json.loads((root / "comparison.json").read_text())
    assert manifest["format"] == C.FORMAT and manifest["plan"] == plan
    # 6 search runs at seed 0; seed 1 only for sgd and adam (momentum diverged everywhere)
    dirs = sorted(p.relative_to(root).as_posix() for p in root.glob("runs/*/*/*"))
    adam = C.lr_name(manifest["selected"]["adam"])  # data-driven; the next test checks the choice
    assert dirs == sorted(
        [
            "runs/adam/lr=1e-02/seed=0",
            "runs/adam/lr=1e-03/seed=0",
            f"runs/adam/{adam}/seed=1",
            "runs/momentum/lr=1e+06/seed=0",
            "runs/momentum/lr=1e+07/seed=0",
            "runs/sgd/lr=1e+06/seed=0",
            "runs/sgd/lr=5e-02/seed=0",
            "runs/sgd/lr=5e-02/seed=1",
        ]
    )
    for d in root.glob("runs/*/*/*"):
        assert {p.name for p in d.iterdir()} == {"config.json", "metrics.csv", "checkpoint", "summary.json"}
        config = json.loads((d / "config.json").read_text())
        assert (
            d.relative_to(root).as_posix()
            == f"runs/{config['optimizer']}/{C.lr_name(config['lr'])}/seed={config['seed']}"
        )
        assert config["epochs"] == 2 and config["hidden"] == [8]
    # the experiment file reproduces the plan exactly
    again = C.make_plan(**C.read_experiment(root / "experiment.toml"))
    assert again == plan


def test_best_lr_is_the_best_final_validation_accuracy(finished) -> None:
    root, _ = finished
    manifest = json.loads((root / "comparison.json").read_text())
    found = summaries(root)
    for name in ("sgd", "adam"):
        search = {lr: found[(name, lr, 0)] for lr in GRID[name]}
        finite = {lr: s["final"]["val_accuracy"] for lr, s in search.items() if s["status"] != "diverged"}
        best = max(finite.values())
        winners = [lr for lr, v in finite.items() if v == best]
        assert manifest["selected"][name] in winners
        # the seed runs are at the selected lr and nowhere else
        seed_runs = [key for key in found if key[0] == name and key[2] == 1]
        assert seed_runs == [(name, manifest["selected"][name], 1)]
    assert manifest["selected"]["momentum"] is None
    assert manifest["selected"]["sgd"] == 0.05  # 1e6 diverged, so it cannot win


def test_ranking_is_computed_from_the_run_summaries(finished) -> None:
    root, _ = finished
    comparison = C.load(root)
    found = summaries(root)
    rows = {r.optimizer: r for r in comparison.ranking()}
    for name in ("sgd", "adam"):
        lr = comparison.selected[name]
        finals = [found[(name, lr, s)]["final"]["val_accuracy"] for s in (0, 1)]
        bests = [found[(name, lr, s)]["best"]["val_accuracy"] for s in (0, 1)]
        assert rows[name].final_mean == pytest.approx(np.mean(finals))
        assert rows[name].final_std == pytest.approx(np.std(finals))
        assert rows[name].best_mean == pytest.approx(np.mean(bests))
        assert rows[name].status == "ok" and rows[name].seeds_ok == 2
    ranked = [r.optimizer for r in comparison.ranking()]
    assert ranked[-1] == "momentum"  # diverged everywhere: last, not dropped
    ok = [r for r in comparison.ranking() if r.final_mean is not None]
    assert [r.final_mean for r in ok] == sorted((r.final_mean for r in ok), reverse=True)


def test_diverged_runs_are_kept_and_labelled(finished) -> None:
    root, _ = finished
    comparison = C.load(root)
    sgd_big = comparison.runs[("sgd", 1e6, 0)]
    assert sgd_big.diverged and sgd_big.summary["status"] == "diverged"
    rows = {r.optimizer: r for r in comparison.ranking()}
    assert rows["momentum"].status == "diverged at every lr" and rows["momentum"].best_lr is None
    assert rows["momentum"].diverged_lrs == [1e6, 1e7]
    assert rows["sgd"].diverged_lrs == [1e6] and rows["sgd"].grid[1e6] is None
    # sensitivity: best minus the grid's mean, a diverged run counting 0
    best = rows["sgd"].grid[0.05]
    assert rows["sgd"].sensitivity == pytest.approx(best - (best + 0.0) / 2)


def test_time_to_target_reads_metrics(finished) -> None:
    root, _ = finished
    comparison = C.load(root)
    target = comparison.target()
    row = next(r for r in comparison.ranking() if r.optimizer == "adam")
    epochs = []
    for seed in (0, 1):
        rows = read_metrics(root / C.RUNS / "adam" / C.lr_name(row.best_lr) / f"seed={seed}" / "metrics.csv")
        hit = [r["epoch"] for r in rows if r["val_accuracy"] >= target]
        if hit:
            epochs.append(hit[0])
    assert row.target_reached == len(epochs)
    if epochs:
        assert row.target_epochs == pytest.approx(np.mean(epochs))


# ---------------------------------------------------------------------------------------------------- resume


def test_resume_recomputes_only_the_missing_runs(copy) -> None:
    plan = json.loads((copy / "comparison.json").read_text())["plan"]
    interrupted = copy / "runs/sgd/lr=5e-02/seed=1"  # finished, but its summary never written
    killed_early = copy / "runs/adam/lr=1e-03/seed=0"  # killed before its first checkpoint
    reference = {p: json.loads((p / "summary.json").read_text()) for p in (interrupted, killed_early)}
    (interrupted / "summary.json").unlink()
    for name in ("summary.json", "checkpoint", "metrics.csv"):
        (killed_early / name).unlink()
    before = snapshot(copy)
    C.run_comparison(plan, copy, workers=2)
    after = snapshot(copy)
    touched = {k for k in after if k not in before or before[k] != after[k]}
    assert touched, "the two runs were not redone"
    assert all(k.startswith(("runs/sgd/lr=5e-02/seed=1/", "runs/adam/lr=1e-03/seed=0/")) for k in touched), touched
    for path, ref in reference.items():
        again = json.loads((path / "summary.json").read_text())
        assert again["final"] == ref["final"] and again["status"] == ref["status"]  # same numbers, bitwise


def test_a_finished_comparison_is_not_rerun(copy) -> None:
    plan = json.loads((copy / "comparison.json").read_text())["plan"]
    before = snapshot(copy)
    C.run_comparison(plan, copy, workers=2)
    assert snapshot(copy) == before


# ------------------------------------------------------------------------------------------ inconsistencies


def test_edited_run_config_is_reported(copy) -> None:
    path = copy / "runs/adam/lr=1e-02/seed=0/config.json"
    config = json.loads(path.read_text())
    config["batch_size"] = 16
    path.write_text(json.dumps(config))
    with pytest.raises(ComparisonError, match=r"config\.json: does not match the comparison's plan.*batch_size"):
        C.load(copy)


def test_manifest_of_another_version_is_reported(copy) -> None:
    path = copy / "comparison.json"
    manifest = json.loads(path.read_text())
    manifest["format"] = "descend-compare/0"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ComparisonError, match="another version of descend"):
        C.run_comparison(None, copy, workers=1)


def test_a_run_outside_the_plan_is_reported(copy) -> None:
    shutil.copytree(copy / "runs/adam/lr=1e-02/seed=0", copy / "runs/adam/lr=3e-02/seed=0")
    with pytest.raises(ComparisonError, match=r"lr=3e-02/seed=0: not a run of this comparison's plan"):
        C.load(copy)


def test_edited_summary_that_changes_the_selection_is_reported(copy) -> None:
    comparison = C.load(copy)
    loser = next(lr for lr in GRID["adam"] if lr != comparison.selected["adam"])
    path = copy / "runs/adam" / C.lr_name(loser) / "seed=0/summary.json"
    summary = json.loads(path.read_text())
    summary["final"]["val_accuracy"] = 2.0
    path.write_text(json.dumps(summary))
    with pytest.raises(ComparisonError, match="does not follow from its search runs"):
        C.load(copy)


def test_another_plan_in_the_same_directory_is_refused(finished, copy) -> None:
    _, plan = finished
    other = C.make_plan({**plan["base"], "epochs": 3}, optimizers=list(GRID), grid=GRID, seeds=2)
    with pytest.raises(ComparisonError, match=r"holds a different comparison \(epochs 2 there, 3 asked\)"):
        C.run_comparison(other, copy, workers=1)


def test_a_foreign_directory_is_refused(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    plan = C.make_plan({"epochs": 1}, optimizers=["adam"], grid=[1e-3], seeds=1)
    with pytest.raises(ComparisonError, match="exists and is not a comparison directory"):
        C.run_comparison(plan, tmp_path, workers=1)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


# ------------------------------------------------------------------------------------------------ plans, files


def test_unknown_optimizer_lists_the_valid_ones() -> None:
    with pytest.raises(Exception, match=r"unknown optimizer 'adamm'; valid optimizers: sgd, momentum, nesterov"):
        C.make_plan(optimizers=["adamm"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grid": {"adam": []}}, "grid of adam is empty"),
        ({"grid": [1e-3, -1.0]}, "learning rates must be finite and > 0"),
        ({"grid": {"sgd": [0.1]}}, "learning rates given for sgd, which is not among"),
        ({"seeds": 0}, "seeds must be >= 1"),
        ({"seeds": [1, 1]}, "seeds must differ"),
        ({"base": {"lr": 0.1}}, "'lr' varies per run"),
        ({"base": {"epoch": 3}}, "unknown key.*epoch.*valid keys"),
        ({"optimizer_args": {"adam": {"momentum": 0.9}}}, "adam takes no option.*momentum"),
    ],
)
def test_bad_plans_name_the_problem(kwargs, message) -> None:
    base = kwargs.pop("base", {})
    with pytest.raises(Exception, match=message):
        C.make_plan(base, optimizers=["adam"], **kwargs)


def test_default_plan_is_the_seed_optimizers_plus_adamw() -> None:
    plan = C.make_plan()
    assert plan["optimizers"] == ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]
    assert plan["base"]["dataset"] == "mnist1d" and plan["base"]["model"] == "mlp"
    assert plan["metric"] == "val_accuracy" and plan["seeds"] == [0, 1, 2]
    for name, lrs in plan["grid"].items():  # log-spaced: a constant ratio between neighbours (1, 3, 10, ...)
        ratios = [b / a for a, b in itertools.pairwise(lrs)]
        assert all(2.5 < r < 4 for r in ratios), (name, lrs)


def test_lr_directory_names() -> None:
    assert [C.lr_name(v) for v in (1e-3, 3e-4, 0.1, 1.0, 3.16e-3, 1e6)] == [
        "lr=1e-03", "lr=3e-04", "lr=1e-01", "lr=1e+00", "lr=3.16e-03", "lr=1e+06",
    ]  # fmt: skip


def test_bad_toml_reports_its_line(tmp_path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text('dataset = "mnist1d"\nepochs = 3\noptimizers = ["sgd", "adam"\nseeds = 2\n')
    with pytest.raises(ComparisonError, match=r"exp\.toml: invalid TOML: .*line 4"):
        C.read_experiment(path)


def test_toml_unknown_key_and_values(tmp_path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text("epoch = 3\n")
    with pytest.raises(ComparisonError, match=r"unknown key\(s\) epoch; valid keys: dataset, model"):
        C.read_experiment(path)
    path.write_text(
        'optimizers = ["sgd", "adam"]\nepochs = 4\nseeds = [0, 5]\n[grid]\nsgd = [0.1, 1]\n'
        "[optimizer_args.adam]\nbetas = [0.9, 0.99]\n"
    )
    plan = C.make_plan(**C.read_experiment(path))
    assert plan["grid"]["sgd"] == [0.1, 1.0] and plan["grid"]["adam"] == list(C.DEFAULT_GRIDS["adam"])
    assert plan["seeds"] == [0, 5] and plan["base"]["epochs"] == 4
    assert plan["optimizer_args"] == {"adam": {"betas": [0.9, 0.99]}}
    path.write_text(C.plan_to_toml(plan))
    assert C.make_plan(**C.read_experiment(path)) == plan


def test_plan_command_names_what_differs_from_the_defaults() -> None:
    plan = C.make_plan({"epochs": 5, "hidden": [32]}, optimizers=["sgd", "adam"], grid={"adam": [1e-3]}, seeds=2)
    command = C.plan_to_command(plan, "out dir")
    assert command == (
        "descend compare --hidden 32 --epochs 5 --optimizers sgd,adam --lrs adam=0.001 --seeds 2 --out 'out dir'"
    )
