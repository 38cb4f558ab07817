"""Compare optimizers on one network and data set: a DeepOBS-style protocol over many training runs.

For each optimizer, :func:`run_comparison`

1. trains one run per learning rate of a small log-spaced grid at the first seed (the *search*),
2. picks the learning rate with the best final validation metric (a diverged run never wins), and
3. reruns that learning rate with the remaining seeds (the *seeds* phase),

so every optimizer is judged at its own best learning rate, with a spread over seeds. The runs go in
parallel over worker processes, or the workers of a Dask cluster (``scheduler="tcp://HOST:8786"``, see
:mod:`descend.lab.executors`); each is an ordinary run directory as ``descend train`` writes it
(:func:`descend.train.experiment.run`)::

    DIR/comparison.json                     manifest: format version, the plan, the selected lrs
    DIR/experiment.toml                     the plan as a --config file (reproduces the comparison)
    DIR/runs/adam/lr=1e-03/seed=0/          config.json, metrics.csv, checkpoint, summary.json
    DIR/report.html, DIR/*.png              written by :mod:`descend.lab.report`

Everything is rebuilt from the run directories: a run whose ``summary.json`` exists is finished and
never recomputed; one with a checkpoint but no summary continues from its checkpoint (bitwise as if
never interrupted), so an interrupted comparison resumes where it stopped. Each worker writes only
into its own run's directory, holding its lock (:mod:`descend.train.lock`; the parent holds the root's),
and only the parent writes the manifest (atomically), so concurrent results are never lost or mixed.
Workers die with the parent, even when it is SIGKILLed, so the same command can be rerun at once. A plan
is checked whole (every run's optimizer, schedule and callbacks built once, the data loaded) before
anything is written. A directory that does not match the plan (another format version,
a run's ``config.json`` edited, a run that is not part of the grid) is reported as a
:class:`ComparisonError`, never silently mixed in.

This module is the orchestration; each other part has its own module, and the names below are re-exported here:
:mod:`descend.lab.plan` (the plan and its runs), :mod:`descend.lab.plan_files` (experiment files and command
lines), :mod:`descend.lab.store` (the directory: manifest, lock, checks), :mod:`descend.lab.results` (runs on disk,
the learning-rate selection, the ranking), :mod:`descend.lab.workers` (what a worker runs) and
:mod:`descend.lab.progress` (the terminal display).

>>> plan = make_plan({"epochs": 5}, optimizers=["sgd", "adam"], seeds=2)
>>> comparison = run_comparison(plan, "compare-demo", workers=2)
>>> for row in comparison.ranking(): print(row.optimizer, row.best_lr, row.final_mean)
"""

from __future__ import annotations

import concurrent.futures as cf
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from descend.errors import ParameterError
from descend.lab import executors
from descend.lab.plan import (
    BASE_KEYS,
    DEFAULT_EPOCHS,
    DEFAULT_GRIDS,
    DEFAULT_OPTIMIZERS,
    DEFAULT_SEEDS,
    FORMAT,
    RUNS,
    ComparisonError,
    RunSpec,
    expected_runs,
    format_lr,
    lr_name,
    make_plan,
    normal_plan,
    planned_runs,
    run_config,
    run_id,
    run_spec,
)
from descend.lab.plan_files import plan_to_command, plan_to_toml, read_experiment
from descend.lab.progress import Progress
from descend.lab.results import Comparison, Row, RunResult, best_lr, finished_summary, select_lr
from descend.lab.store import (
    LOCK,
    MANIFEST,
    RECORD_KEYS,
    check_record,
    load,
    locked,
    prepare,
    verify,
    write_manifest,
)
from descend.lab.workers import default_workers
from descend.train import experiment as ex

# ------------------------------------------------------------------------------------------------------ run


def run_comparison(
    plan: dict[str, Any] | None,
    root: str | os.PathLike,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    scheduler: str = executors.LOCAL,
    max_concurrent: int | None = None,
    record: Mapping[str, Any] | None = None,
) -> Comparison:
    """Run (or continue) the comparison ``plan`` in directory ``root`` and return it, complete.

    ``plan=None`` continues whatever comparison ``root`` holds. Finished runs are never recomputed.
    ``scheduler``: ``"local"`` trains the runs in ``workers`` processes of this machine (default: one per core);
    ``"tcp://HOST:PORT"`` sends them to that Dask cluster's workers, at most ``max_concurrent`` at a time
    (default: as many as it takes), which must see ``root`` at the same path (:mod:`descend.lab.executors`).
    ``record``: what a new directory's manifest keeps besides the plan (:data:`RECORD_KEYS`: the exact ``argv``
    it was started with, the ``workload``), shown by the report.
    """
    root = Path(root)
    check_record(record)
    scheduler = executors.parse_scheduler(scheduler)
    executors.check_options(scheduler, workers, max_concurrent)
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ParameterError(f"compare: workers must be >= 1, got {workers}")
    progress = progress or Progress(None)
    if not (root / MANIFEST).exists():
        if plan is None:
            raise ComparisonError(f"{root} is not a comparison directory (no {MANIFEST})")
        if root.exists() and any(p.name != LOCK for p in root.iterdir()):  # before the lock file: touch nothing
            raise ComparisonError(f"{root} exists and is not a comparison directory; choose another --out")
    if plan is not None:  # everything is checked before anything is written: the plan, then its data
        plan = normal_plan(plan)
        _load_first_data(plan)
    if scheduler != executors.LOCAL:
        executors.require_dask(scheduler)
    with locked(root):  # creates root (and removes it again, still empty, if anything fails before prepare)
        # The cluster is contacted once the directory is ours, and before anything is written into it.
        with executors.open_engine(scheduler, workers=workers, max_concurrent=max_concurrent) as engine:
            comparison = prepare(root, plan, record)
            if plan is None:
                _load_first_data(comparison.plan)
            _execute(comparison, engine, progress)
        comparison.refresh()
        verify(comparison)
    return comparison


def _load_first_data(plan: Mapping[str, Any]) -> None:
    """Load the data set once in the parent: a missing or bad data set is reported before any run starts."""
    first = plan["optimizers"][0]
    ex.load_data(run_config(plan, first, plan["grid"][first][0], plan["seeds"][0]))


def _execute(comparison: Comparison, engine: executors.Engine, progress: Progress) -> None:
    """Train the runs still to do on ``engine``, selecting each optimizer's lr as soon as its search is done."""
    plan, root, metric = comparison.plan, comparison.root, comparison.metric
    progress.total_runs = expected_runs(plan) - sum(
        len(plan["seeds"]) - 1 for n, lr in comparison.selected.items() if lr is None
    )
    progress.total_epochs = progress.total_runs * plan["base"]["epochs"]

    def pending_of(specs: Sequence[RunSpec]) -> list[RunSpec]:
        out = []
        for spec in specs:
            result = comparison.runs.get(spec.key)
            if result is None:
                path = root / spec.relpath
                result = comparison.runs[spec.key] = RunResult(spec, path, finished_summary(path, spec))
            if result.finished:
                progress.finish(spec, result.summary or {}, metric, skipped=True)
                progress.done_epochs += spec.config["epochs"]
            else:
                out.append(spec)
        return out

    todo = pending_of(planned_runs(plan, comparison.selected))
    skipped = progress.done_runs
    if skipped:
        progress.message(f"resuming {root}: {skipped} of {progress.total_runs} runs already finished")
    if len(comparison.selected) == len(plan["optimizers"]) and not todo:
        return

    if engine.announce:
        progress.message(engine.announce)
    futures: dict[cf.Future, RunSpec] = {}
    store = root.resolve()  # the run store, by a path that means the same on every worker
    try:

        def submit(spec: RunSpec) -> None:
            progress.start(spec)
            futures[engine.submit(spec.relpath, str(store / spec.relpath), spec.config)] = spec

        for spec in todo:
            submit(spec)
        _decide(comparison, progress, submit, pending_of)
        while futures:
            done, _ = cf.wait(list(futures), timeout=0.1, return_when=cf.FIRST_COMPLETED)
            for update in engine.updates():
                progress.update(*update)
            for future in done:
                spec = futures.pop(future)
                summary = engine.result(future, spec.label)  # a DescendError in a worker ends the comparison
                comparison.runs[spec.key] = RunResult(spec, root / spec.relpath, summary)
                progress.done_epochs += spec.config["epochs"]
                progress.finish(spec, summary, metric)
                _decide(comparison, progress, submit, pending_of)
            progress.draw()
    except KeyboardInterrupt:
        # Stop now: the runs cut off continue from their checkpoints next time (checkpoints are written atomically).
        engine.interrupt()
        raise
    except BaseException:
        engine.close(cancel=True)
        raise
    finally:
        progress.close()
    engine.close()


def _decide(comparison: Comparison, progress: Progress, submit, pending_of) -> None:
    """Select the learning rate of every optimizer whose search is finished, record it, start its seed runs."""
    plan, metric = comparison.plan, comparison.metric
    new = []
    for name in plan["optimizers"]:
        if name in comparison.selected:
            continue
        search = [comparison.runs.get((name, lr, plan["seeds"][0])) for lr in plan["grid"][name]]
        if all(r is not None and r.finished for r in search):
            comparison.selected[name] = best_lr(search, metric)
            new.append((name, search))
    if not new:
        return
    # The manifest records a selection before any of its seed runs exists (a crash in between stays consistent).
    comparison.manifest["selected"] = dict(comparison.selected)
    write_manifest(comparison.root, comparison.manifest)
    for name, search in new:
        lr = comparison.selected[name]
        if lr is None:
            progress.total_runs -= len(plan["seeds"]) - 1
            progress.total_epochs -= (len(plan["seeds"]) - 1) * plan["base"]["epochs"]
            progress.message(f"{name}: diverged at every learning rate of its grid; no seed runs")
            continue
        best = max(v for v in (r.final(metric) for r in search) if v is not None)
        seeds = plan["seeds"][1:]
        progress.message(
            f"{name}: best lr {format_lr(lr)} ({metric} {best:.4f})"
            + (f"; seeds {', '.join(map(str, seeds))} next" if seeds else "")
        )
        for spec in pending_of([run_spec(plan, name, lr, seed, "seeds") for seed in seeds]):
            submit(spec)


__all__ = [
    "BASE_KEYS",
    "DEFAULT_EPOCHS",
    "DEFAULT_GRIDS",
    "DEFAULT_OPTIMIZERS",
    "DEFAULT_SEEDS",
    "FORMAT",
    "MANIFEST",
    "RECORD_KEYS",
    "RUNS",
    "Comparison",
    "ComparisonError",
    "Progress",
    "Row",
    "RunResult",
    "RunSpec",
    "default_workers",
    "expected_runs",
    "format_lr",
    "load",
    "lr_name",
    "make_plan",
    "plan_to_command",
    "plan_to_toml",
    "planned_runs",
    "prepare",
    "read_experiment",
    "run_comparison",
    "run_config",
    "run_id",
    "select_lr",
    "verify",
]
