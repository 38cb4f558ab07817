"""A comparison's results: its run directories as found on disk (:class:`RunResult`), the learning-rate selection
(:func:`select_lr`, a pure function of the grid and its runs' scores) and the ranked table (:class:`Comparison`,
:class:`Row`).

>>> select_lr([1e-3, 1e-2, 1e-1], [(0.91, -0.30), (0.93, -0.25), None])  # None: diverged
0.01
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from descend.errors import ParameterError
from descend.lab.plan import ComparisonError, RunSpec, planned_runs
from descend.train import experiment as ex

#: A run's score for the selection, higher is better: a number, or numbers compared in order; None: no score.
Score = float | tuple[float, ...] | None


def read_json(path: Path, what: str) -> Any:
    """The JSON document at ``path`` (``what`` names it in the error when it is missing or not JSON)."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ComparisonError(f"{path}: {what} is not readable JSON ({e})") from None


@dataclass
class RunResult:
    """One run directory as found on disk."""

    spec: RunSpec
    path: Path
    summary: dict[str, Any] | None  # None: not finished
    _metrics: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.summary is not None

    @property
    def diverged(self) -> bool:
        return self.summary is not None and self.summary.get("status") == "diverged"

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.csv`` (numbers), read once."""
        if self._metrics is None:
            from descend.train import read_metrics

            path = self.path / ex.METRICS
            self._metrics = read_metrics(path) if path.is_file() else []
        return self._metrics

    def final(self, metric: str) -> float | None:
        """The final value of ``metric`` (None when diverged, missing or not finite)."""
        if self.summary is None or self.diverged:
            return None
        value = self.summary.get("final", {}).get(metric)
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

    def best(self, metric: str) -> float | None:
        if self.summary is None or self.diverged:
            return None
        best = self.summary.get("best", {})
        value = best.get(metric)
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

    def score(self, metric: str) -> tuple[float, float]:
        """What the search maximizes: (final metric, −final loss); a diverged run scores −inf."""
        value = self.final(metric)
        if value is None:
            return (-math.inf, -math.inf)
        loss = self.summary.get("final", {}).get("val_loss" if metric.startswith("val_") else "loss")
        return (value, -float(loss) if isinstance(loss, int | float) and math.isfinite(loss) else -math.inf)

    def reach(self, metric: str, target: float) -> tuple[int, float] | None:
        """(epoch, wall time in s) of the first epoch whose ``metric`` is ≥ ``target``, or None."""
        for row in self.metrics:
            value = row.get(metric)
            if value is not None and math.isfinite(value) and value >= target:
                return int(row["epoch"]), float(row["time"])
        return None


def select_lr(lrs: Sequence[float], scores: Sequence[Score]) -> float | None:
    """The learning rate whose run scores best: ``scores[i]`` is the score of the run at ``lrs[i]``.

    A score is a number or a tuple of numbers compared in order, higher is better (a search run's
    :meth:`RunResult.score`: its final metric, then its negated final loss). A score that is None or whose first
    number is not finite (NaN, ±inf: a diverged run) never wins; a NaN further on counts as −inf. Equal scores:
    the smaller learning rate. None when no score can win (every run diverged, or there is no run).
    """
    if len(lrs) != len(scores):
        raise ParameterError(
            f"select_lr: lrs and scores must have the same length (one score per learning rate), got {len(lrs)} "
            f"learning rates and {len(scores)} scores"
        )
    bad = [lr for lr in lrs if not (_is_number(lr) and math.isfinite(lr) and lr > 0)]
    if bad:
        raise ParameterError(f"select_lr: learning rates must be finite numbers > 0, got {bad[0]!r}")
    best: tuple[tuple[float, ...], float] | None = None
    for lr, score in sorted(zip(lrs, scores, strict=True), key=lambda pair: pair[0]):
        key = _score_key(score)
        if key is not None and (best is None or key > best[0]):
            best = (key, lr)
    return None if best is None else best[1]


def _score_key(score: Score) -> tuple[float, ...] | None:
    """``score`` as a tuple of floats that compares in order (None: it cannot win)."""
    if score is None:
        return None
    values = (score,) if _is_number(score) else tuple(score) if isinstance(score, tuple | list) else ()
    if not values or not all(_is_number(v) for v in values):
        raise ParameterError(f"select_lr: a score must be None, a number or a tuple of numbers, got {score!r}")
    if not math.isfinite(values[0]):
        return None
    return tuple(-math.inf if math.isnan(v) else float(v) for v in values)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def best_lr(results: Sequence[RunResult], metric: str) -> float | None:
    """The learning rate :func:`select_lr` picks among the search runs ``results`` by their final ``metric``
    (ties: lower final loss, then the smaller learning rate); None when every run diverged."""
    return select_lr([r.spec.lr for r in results], [r.score(metric) for r in results])


@dataclass
class Row:
    """One optimizer's line of the ranked table."""

    optimizer: str
    best_lr: float | None
    status: str  # "ok", "diverged k/n seeds", "diverged at every lr", "incomplete"
    final_mean: float | None = None
    final_std: float | None = None
    best_mean: float | None = None
    best_std: float | None = None
    seeds_ok: int = 0
    seeds_total: int = 0
    target_epochs: float | None = None  # mean over the seeds that reached the target
    target_time: float | None = None
    target_reached: int = 0
    sensitivity: float | None = None  # best final metric minus the grid's mean (diverged runs count 0)
    grid: dict[float, float | None] = field(default_factory=dict)  # lr -> final metric (None: diverged)
    diverged_lrs: list[float] = field(default_factory=list)


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = math.fsum(values) / len(values)
    var = math.fsum((v - mean) ** 2 for v in values) / len(values)
    return mean, math.sqrt(var)


class Comparison:
    """A comparison directory: its plan, its selected learning rates and its runs, read from disk."""

    def __init__(self, root: Path, manifest: dict[str, Any]):
        self.root = root
        self.manifest = manifest
        self.plan: dict[str, Any] = manifest["plan"]
        self.selected: dict[str, float | None] = dict(manifest.get("selected", {}))
        self.runs: dict[tuple[str, float, int], RunResult] = {}
        self.refresh()

    @property
    def metric(self) -> str:
        return self.plan["metric"]

    def refresh(self) -> None:
        """(Re)read every planned run directory."""
        self.runs = {}
        for spec in planned_runs(self.plan, self.selected):
            path = self.root / spec.relpath
            self.runs[spec.key] = RunResult(spec, path, finished_summary(path, spec))

    def search_results(self, optimizer: str) -> list[RunResult]:
        first = self.plan["seeds"][0]
        return [self.runs[(optimizer, lr, first)] for lr in self.plan["grid"][optimizer]]

    def seed_results(self, optimizer: str) -> list[RunResult]:
        """The runs at the selected learning rate, one per seed (empty before the selection)."""
        lr = self.selected.get(optimizer)
        if lr is None:
            return []
        return [self.runs[(optimizer, lr, s)] for s in self.plan["seeds"] if (optimizer, lr, s) in self.runs]

    @property
    def complete(self) -> bool:
        return all(o in self.selected for o in self.plan["optimizers"]) and all(r.finished for r in self.runs.values())

    def target(self) -> float:
        """The target of the time-to-target columns: the plan's, or 90 % of the best mean final value."""
        if self.plan["target"] is not None:
            return float(self.plan["target"])
        means = [row.final_mean for row in self._rows(None) if row.final_mean is not None]
        return math.floor(0.9 * max(means) * 1000) / 1000 if means else math.inf

    def ranking(self) -> list[Row]:
        """One row per optimizer, best first (by mean final metric; diverged and unfinished ones last)."""
        rows = self._rows(self.target())
        return sorted(rows, key=lambda r: (r.final_mean is None, -(r.final_mean or 0.0), r.optimizer))

    def _rows(self, target: float | None) -> list[Row]:
        metric = self.metric
        rows = []
        for name in self.plan["optimizers"]:
            search = self.search_results(name)
            grid = {r.spec.lr: r.final(metric) for r in search if r.finished}
            row = Row(name, self.selected.get(name), "ok", grid=grid)
            row.diverged_lrs = [r.spec.lr for r in search if r.diverged]
            if name not in self.selected or not all(r.finished for r in search):
                row.status = "incomplete"
                rows.append(row)
                continue
            if row.best_lr is None:
                row.status = "diverged at every lr"
                rows.append(row)
                continue
            scores = [0.0 if v is None else v for v in grid.values()]
            best_score = grid[row.best_lr]
            if best_score is not None and scores:
                row.sensitivity = best_score - math.fsum(scores) / len(scores)
            seeds = self.seed_results(name)
            row.seeds_total = len(seeds)
            if not all(r.finished for r in seeds):
                row.status = "incomplete"
            finals = [v for v in (r.final(metric) for r in seeds) if v is not None]
            bests = [v for v in (r.best(metric) for r in seeds) if v is not None]
            row.seeds_ok = len(finals)
            n_div = sum(r.diverged for r in seeds)
            if n_div and row.status == "ok":
                row.status = f"diverged {n_div}/{len(seeds)} seeds"
            row.final_mean, row.final_std = _mean_std(finals)
            row.best_mean, row.best_std = _mean_std(bests)
            if target is not None:
                reached = [x for x in (r.reach(metric, target) for r in seeds if r.finished) if x is not None]
                row.target_reached = len(reached)
                if reached:
                    row.target_epochs = math.fsum(e for e, _ in reached) / len(reached)
                    row.target_time = math.fsum(t for _, t in reached) / len(reached)
            rows.append(row)
        return rows


def finished_summary(path: Path, spec: RunSpec) -> dict[str, Any] | None:
    summary_path = path / ex.SUMMARY
    if not summary_path.is_file():
        return None
    summary = read_json(summary_path, "the run summary")
    if not isinstance(summary, dict) or "status" not in summary:
        raise ComparisonError(f"{summary_path}: not a run summary (no status)")
    return summary


__all__ = ["Comparison", "Row", "RunResult", "Score", "best_lr", "finished_summary", "read_json", "select_lr"]
