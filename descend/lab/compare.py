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

>>> plan = make_plan({"epochs": 5}, optimizers=["sgd", "adam"], seeds=2)
>>> comparison = run_comparison(plan, "compare-demo", workers=2)
>>> for row in comparison.ranking(): print(row.optimizer, row.best_lr, row.final_mean)
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from descend._io import atomic_write_text
from descend.errors import DescendError, ParameterError
from descend.lab import executors
from descend.optim import registry
from descend.train import experiment as ex
from descend.train import lock
from descend.train.callbacks import Callback

#: Written into ``comparison.json``; a directory with another value was made by another version.
FORMAT = "descend-compare/1"
MANIFEST, PLAN_TOML, RUNS, LOCK = "comparison.json", "experiment.toml", "runs", lock.LOCK_NAME

#: The seed documents' optimizers, plus AdamW.
DEFAULT_OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")

#: name -> default learning-rate grid (log-spaced, half decades, centred on each family's usual good value for a
#: small MLP): a view of descend.optim.registry, where every named optimizer is defined.
DEFAULT_GRIDS: dict[str, tuple[float, ...]] = registry.grids()
DEFAULT_EPOCHS = 20
DEFAULT_SEEDS = 3

#: Configuration keys a comparison varies per run; every other key of DEFAULTS is shared by all runs.
PER_RUN_KEYS = ("optimizer", "lr", "seed", "optimizer_args")
BASE_KEYS = tuple(k for k in ex.DEFAULTS if k not in PER_RUN_KEYS)


class ComparisonError(DescendError, ValueError):
    """A comparison directory or plan is inconsistent, or a comparison could not be run."""


# ------------------------------------------------------------------------------------------------------ plan


def lr_name(lr: float) -> str:
    """The directory name of a learning rate: ``1e-03``, ``3e-04``, ``3.16e-03``, ``1e+00``."""
    mantissa, exponent = f"{lr:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"lr={mantissa}e{exponent}"


def format_lr(lr: float | None) -> str:
    """``1e-03`` as in the directory names (``—`` for None)."""
    return "—" if lr is None else lr_name(lr)[3:]


@dataclass(frozen=True)
class RunSpec:
    """One planned training run of the comparison."""

    optimizer: str
    lr: float
    seed: int
    phase: str  # "search" (the grid, first seed) or "seeds" (the selected lr, other seeds)
    config: dict[str, Any] = field(compare=False, hash=False, repr=False)

    @property
    def key(self) -> tuple[str, float, int]:
        return (self.optimizer, self.lr, self.seed)

    @property
    def relpath(self) -> str:
        return f"{RUNS}/{self.optimizer}/{lr_name(self.lr)}/seed={self.seed}"

    @property
    def label(self) -> str:
        return f"{self.optimizer} lr={format_lr(self.lr)} seed={self.seed}"

    @property
    def run_id(self) -> str:
        """The run's identity: the SHA-256 of its configuration, seed included (see :func:`run_id`)."""
        return run_id(self.config)


def run_id(config: Mapping[str, Any]) -> str:
    """The hash that identifies a run: the one its checkpoint records (``config_sha256``, of the configuration
    without ``epochs``; a comparison's runs all have the plan's). A resubmitted run whose directory holds a
    checkpoint with this hash continues from it; one with another hash is refused."""
    from descend.train.checkpoint import config_hash

    return config_hash(dict(config))


def _listify(obj: Any) -> Any:
    """JSON's view of a value (tuples become lists), so plans compare equal after a round trip."""
    return json.loads(json.dumps(obj))


def make_plan(
    base: Mapping[str, Any] | None = None,
    *,
    optimizers: Sequence[str] | None = None,
    grid: Mapping[str, Sequence[float]] | Sequence[float] | None = None,
    seeds: int | Sequence[int] = DEFAULT_SEEDS,
    optimizer_args: Mapping[str, Mapping[str, Any]] | None = None,
    target: float | None = None,
) -> dict[str, Any]:
    """A validated, JSON-able plan.

    ``base``: configuration keys shared by every run (any key of :data:`~descend.train.experiment.DEFAULTS`
    but optimizer, lr, seed and optimizer_args); the comparison's default is ``epochs`` =
    :data:`DEFAULT_EPOCHS`. ``grid``: one list of learning rates for every optimizer, or a mapping
    optimizer -> list (optimizers it leaves out get :data:`DEFAULT_GRIDS`). ``seeds``: a number of seeds
    (0, 1, ...) or the list of seeds; the search runs at the first. ``optimizer_args``: extra keyword
    arguments per optimizer. ``target``: the validation metric value whose first crossing the table
    reports (None: 90 % of the best mean final value).
    """
    base = dict(base or {})
    for key in PER_RUN_KEYS:
        if key in base:
            raise ParameterError(f"compare: {key!r} varies per run; give optimizers, a grid and seeds instead")
    unknown = sorted(set(base) - set(BASE_KEYS))
    if unknown:
        raise ParameterError(f"compare: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(BASE_KEYS)}")
    base = {"epochs": DEFAULT_EPOCHS, **base}
    shared = ex.make_config(base)  # validates the shared keys
    shared = {k: shared[k] for k in BASE_KEYS}

    names = list(DEFAULT_OPTIMIZERS if optimizers is None else optimizers)
    if not names:
        raise ParameterError("compare: give at least one optimizer")
    for name in names:
        if name not in ex.OPTIMIZERS:
            raise ParameterError(f"compare: unknown optimizer {name!r}; valid optimizers: {', '.join(ex.OPTIMIZERS)}")
    if len(set(names)) != len(names):
        raise ParameterError(f"compare: optimizers must differ, got {', '.join(names)}")

    if grid is None:
        grid = {}
    if not isinstance(grid, Mapping):
        grid = {name: list(grid) for name in names}
    strays = sorted(set(grid) - set(names))
    if strays:
        raise ParameterError(
            f"compare: learning rates given for {', '.join(strays)}, which is not among the optimizers "
            f"compared ({', '.join(names)})"
        )
    lrs: dict[str, list[float]] = {}
    for name in names:
        values = [float(v) for v in grid.get(name, DEFAULT_GRIDS[name])]
        if not values:
            raise ParameterError(f"compare: the learning-rate grid of {name} is empty")
        for v in values:
            if not (math.isfinite(v) and v > 0):
                raise ParameterError(f"compare: learning rates must be finite and > 0, got {v!r} for {name}")
        dirs = [lr_name(v) for v in values]
        if len(set(dirs)) != len(dirs):
            raise ParameterError(
                f"compare: the grid of {name} has learning rates equal to 3 significant digits: {values}"
            )
        lrs[name] = sorted(values)

    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ParameterError(f"compare: seeds must be >= 1, got {seeds}")
        seed_list = list(range(seeds))
    else:
        seed_list = list(seeds)
        if not seed_list or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seed_list):
            raise ParameterError(f"compare: seeds must be a count >= 1 or a list of integers >= 0, got {seeds!r}")
        if len(set(seed_list)) != len(seed_list):
            raise ParameterError(f"compare: seeds must differ, got {seed_list}")

    args = {k: dict(v) for k, v in (optimizer_args or {}).items()}
    strays = sorted(set(args) - set(names))
    if strays:
        raise ParameterError(f"compare: optimizer_args given for {', '.join(strays)}, not among the optimizers")
    metric = "val_accuracy" if shared["validation"] else "accuracy"
    fraction = isinstance(target, int | float) and not isinstance(target, bool) and 0 < target <= 1
    if target is not None and not fraction:
        raise ParameterError(
            f"compare: target must be in (0, 1] for the metric {metric} (an accuracy: 0.9 is 90 %), got {target!r}"
        )

    plan = {
        "base": shared,
        "optimizers": names,
        "grid": lrs,
        "optimizer_args": {n: args[n] for n in names if args.get(n)},
        "seeds": seed_list,
        "metric": "val_accuracy" if shared["validation"] else "accuracy",
        "target": None if target is None else float(target),
    }
    plan = _listify(plan)
    for spec in planned_runs(plan):  # every run's configuration is valid, and its optimizer accepts its args
        _check_optimizer_args(spec.optimizer, spec.config["optimizer_args"])
    _check_builds(plan)
    return plan


def _check_builds(plan: Mapping[str, Any]) -> None:
    """Build every run's optimizer, schedule and callbacks once, on a tiny stand-in model, so that a bad
    value (``betas = [0.9]``, ``step_size = -1``) is reported now, not by a worker after the comparison
    directory has been written. (The seed does not enter these builds: the search runs stand for all.)"""
    from descend.nn import logistic

    model = logistic(4, 2)
    has_validation = bool(plan["base"]["validation"])
    for spec in planned_runs(plan):
        try:
            rate = ex.build_schedule(spec.config, 1)
            if callable(rate):
                rate(0)
            ex.build_optimizer(spec.config, model, 1)
            ex.build_callbacks(spec.config, has_validation)
        except DescendError as e:
            raise ParameterError(f"compare: {spec.optimizer} at lr {format_lr(spec.lr)}: {e}") from None
        except TypeError as e:  # an unexpected keyword in schedule_args
            raise ParameterError(f"compare: {spec.optimizer} at lr {format_lr(spec.lr)}: bad arguments ({e})") from None


def _check_optimizer_args(name: str, args: Mapping[str, Any]) -> None:
    import inspect

    from descend import optim

    factory = getattr(optim, ex.OPTIMIZERS[name][0])
    allowed = [p for p in inspect.signature(factory).parameters if p != "lr"]
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise ParameterError(
            f"compare: {name} takes no option(s) {', '.join(unknown)}; its options: {', '.join(allowed)}"
        )


def run_config(plan: Mapping[str, Any], optimizer: str, lr: float, seed: int) -> dict[str, Any]:
    """The full configuration of one run (as its ``config.json`` holds it)."""
    args = plan["optimizer_args"].get(optimizer, {})
    cfg = {**plan["base"], "optimizer": optimizer, "lr": lr, "seed": seed, "optimizer_args": args}
    return ex.make_config(cfg)


def _spec(plan: Mapping[str, Any], optimizer: str, lr: float, seed: int, phase: str) -> RunSpec:
    return RunSpec(optimizer, lr, seed, phase, run_config(plan, optimizer, lr, seed))


def planned_runs(plan: Mapping[str, Any], selected: Mapping[str, float | None] | None = None) -> list[RunSpec]:
    """The search runs, then the seed runs of the optimizers whose learning rate is ``selected``."""
    first, *others = plan["seeds"]
    specs = [_spec(plan, name, lr, first, "search") for name in plan["optimizers"] for lr in plan["grid"][name]]
    for name in plan["optimizers"]:
        lr = (selected or {}).get(name)
        if lr is not None:
            specs += [_spec(plan, name, lr, seed, "seeds") for seed in others]
    return specs


def expected_runs(plan: Mapping[str, Any]) -> int:
    """How many runs the plan has when no optimizer diverges at every learning rate."""
    return sum(len(plan["grid"][n]) for n in plan["optimizers"]) + len(plan["optimizers"]) * (len(plan["seeds"]) - 1)


# ------------------------------------------------------------------------------------------- TOML and files


#: Keys of an experiment file besides the shared configuration keys.
TOML_KEYS = ("optimizers", "lrs", "grid", "seeds", "optimizer_args", "target")


def read_experiment(path: str | os.PathLike) -> dict[str, Any]:
    """An experiment file (TOML) as keyword arguments of :func:`make_plan` (``base`` and the rest).

    A syntax error names its line; an unknown key lists the valid ones. A relative ``dataset`` or
    ``test_data`` path is taken relative to the file. The file is UTF-8 text (as TOML requires).
    """
    import tomllib

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ComparisonError(f"{path}: cannot read the experiment file ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ComparisonError(
            f"{path}: not UTF-8 text (byte {e.start}: {raw[e.start : e.start + 1]!r}); a TOML experiment file "
            "must be saved as UTF-8"
        ) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ComparisonError(f"{path}: invalid TOML: {e}") from None
    valid = (*BASE_KEYS, *TOML_KEYS)
    unknown = sorted(set(doc) - set(valid))
    if unknown:
        raise ComparisonError(f"{path}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(valid)}")
    base = {k: doc[k] for k in BASE_KEYS if k in doc}
    for key in ("dataset", "test_data"):
        value = base.get(key)
        if isinstance(value, str) and value.lower().replace("_", "-") not in ex.BUILTIN_DATASETS:
            candidate = path.parent / value
            if not Path(value).is_absolute() and candidate.exists():
                base[key] = str(candidate.resolve())
    kwargs: dict[str, Any] = {"base": base}
    if "optimizers" in doc:
        kwargs["optimizers"] = _names_of(path, "optimizers", doc["optimizers"])
    if "lrs" in doc and "grid" in doc:
        raise ComparisonError(f"{path}: give either lrs (one grid for all) or grid (per optimizer), not both")
    if "lrs" in doc:
        kwargs["grid"] = _numbers(path, "lrs", doc["lrs"])
    if "grid" in doc:
        if not isinstance(doc["grid"], dict):
            raise ComparisonError(f"{path}: grid must be a table of optimizer = [learning rates]")
        kwargs["grid"] = {k: _numbers(path, f"grid.{k}", v) for k, v in doc["grid"].items()}
    for key in ("seeds", "target"):
        if key in doc:
            kwargs[key] = doc[key]
    if "optimizer_args" in doc:
        value = doc["optimizer_args"]
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise ComparisonError(
                f"{path}: optimizer_args must be tables, e.g. [optimizer_args.adam] betas = [0.9, 0.99]"
            )
        kwargs["optimizer_args"] = value
    return kwargs


def _names_of(path: Path, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ComparisonError(f'{path}: {key} must be a list of names, e.g. ["sgd", "adam"]')
    return value


def _numbers(path: Path, key: str, value: Any) -> list[float]:
    if not isinstance(value, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise ComparisonError(f"{path}: {key} must be a list of numbers, e.g. [1e-3, 1e-2]")
    return [float(v) for v in value]


def plan_to_toml(plan: Mapping[str, Any]) -> str:
    """The plan as an experiment file: ``descend compare --config FILE`` runs exactly this comparison."""
    lines = ["# descend compare --config experiment.toml", f"# {FORMAT}", ""]
    for key in BASE_KEYS:
        value = plan["base"][key]
        if value is not None and key != "schedule_args":
            lines.append(f"{key} = {_toml_value(value)}")
    lines.append(f"optimizers = {_toml_value(plan['optimizers'])}")
    lines.append(f"seeds = {_toml_value(plan['seeds'])}")
    if plan["target"] is not None:
        lines.append(f"target = {_toml_value(plan['target'])}")
    lines += ["", "[grid]"]
    lines += [f"{name} = {_toml_value(plan['grid'][name])}" for name in plan["optimizers"]]
    if plan["base"]["schedule_args"]:
        lines += ["", "[schedule_args]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in plan["base"]["schedule_args"].items()]
    for name, args in plan["optimizer_args"].items():
        lines += ["", f"[optimizer_args.{name}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in args.items()]
    return "\n".join(lines) + "\n"


def plan_to_command(plan: Mapping[str, Any], out: str | os.PathLike | None = None) -> str:
    """A ``descend compare`` command line for the plan (options at their default left out)."""
    parts = ["descend", "compare"]
    defaults = {**ex.DEFAULTS, "epochs": DEFAULT_EPOCHS}
    for key in BASE_KEYS:
        value = plan["base"][key]
        if value == defaults[key] or key == "schedule_args":
            continue
        flag = "--" + key.replace("_", "-")
        if key == "hidden":
            parts += [flag, ",".join(map(str, value)) or "''"]
        elif key == "no_decay":
            parts += [flag, _shell(",".join(value) or "none")]
        elif key == "batch_size" and not value:
            parts += [flag, "full"]
        else:
            parts += [flag, _shell(str(value))]
    for k, v in plan["base"]["schedule_args"].items():
        parts += ["--schedule-arg", f"{k}={_toml_value(v).strip('[]').replace(' ', '')}"]
    if plan["optimizers"] != list(DEFAULT_OPTIMIZERS):
        parts += ["--optimizers", ",".join(plan["optimizers"])]
    for name in plan["optimizers"]:
        if plan["grid"][name] != sorted(DEFAULT_GRIDS[name]):
            parts += ["--lrs", f"{name}=" + ",".join(f"{v:g}" for v in plan["grid"][name])]
    seeds = plan["seeds"]
    if seeds != list(range(DEFAULT_SEEDS)):
        parts += ["--seeds", str(len(seeds)) if seeds == list(range(len(seeds))) else ",".join(map(str, seeds))]
    if plan["target"] is not None:
        parts += ["--target", f"{plan['target']:g}"]
    shared = None
    for name in plan["optimizers"]:
        args = plan["optimizer_args"].get(name, {})
        shared = args if shared is None or shared == args else "differs"
    if shared == "differs":
        parts += ["--config", "experiment.toml"]  # per-optimizer arguments only fit in the file
    elif shared:
        for k, v in shared.items():
            parts += ["--opt", f"{k}={_toml_value(v).strip('[]').replace(' ', '')}"]
    if out is not None:
        parts += ["--out", _shell(str(out))]
    return " ".join(parts)


def _shell(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
        )
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise ComparisonError(f"cannot write {value!r} to TOML")


def _write_atomic(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ComparisonError(f"{path}: {what} is not readable JSON ({e})") from None


# -------------------------------------------------------------------------------------------------- results


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


def select_lr(results: Sequence[RunResult], metric: str) -> float | None:
    """The learning rate of the search run with the best final ``metric`` (ties: lower loss, then the
    smaller learning rate); None when every run diverged."""
    best: RunResult | None = None
    for r in sorted(results, key=lambda r: r.spec.lr):
        if r.final(metric) is None:
            continue
        if best is None or r.score(metric) > best.score(metric):
            best = r
    return None if best is None else best.spec.lr


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
            self.runs[spec.key] = RunResult(spec, path, _finished_summary(path, spec))

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


def _finished_summary(path: Path, spec: RunSpec) -> dict[str, Any] | None:
    summary_path = path / ex.SUMMARY
    if not summary_path.is_file():
        return None
    summary = _read_json(summary_path, "the run summary")
    if not isinstance(summary, dict) or "status" not in summary:
        raise ComparisonError(f"{summary_path}: not a run summary (no status)")
    return summary


# ------------------------------------------------------------------------------------------------ directory


def _check_manifest(root: Path, manifest: Any) -> dict[str, Any]:
    path = root / MANIFEST
    if not isinstance(manifest, dict) or "format" not in manifest:
        raise ComparisonError(f"{path}: not a descend comparison manifest (no format)")
    if manifest["format"] != FORMAT:
        raise ComparisonError(
            f"{path}: written by another version of descend (format {manifest['format']!r}, this version reads "
            f"{FORMAT!r}); compare into a new directory"
        )
    for key in ("plan", "selected"):
        if not isinstance(manifest.get(key), dict):
            raise ComparisonError(f"{path}: the manifest has no {key}; it was edited or is damaged")
    try:
        again = make_plan(
            manifest["plan"]["base"],
            optimizers=manifest["plan"]["optimizers"],
            grid=manifest["plan"]["grid"],
            seeds=manifest["plan"]["seeds"],
            optimizer_args=manifest["plan"]["optimizer_args"],
            target=manifest["plan"]["target"],
        )
    except (KeyError, TypeError) as e:
        raise ComparisonError(f"{path}: the plan is incomplete ({e}); it was edited or is damaged") from None
    except DescendError as e:
        raise ComparisonError(f"{path}: the plan is not valid: {e}") from None
    if again != manifest["plan"]:
        raise ComparisonError(f"{path}: the plan is not in its normal form; it was edited by hand")
    for name, lr in manifest["selected"].items():
        if name not in again["optimizers"] or (lr is not None and lr not in again["grid"][name]):
            raise ComparisonError(f"{path}: selected learning rate {name}={lr!r} is not in the plan's grid")
    return manifest


def load(root: str | os.PathLike) -> Comparison:
    """The comparison in directory ``root``, checked against its manifest (raises :class:`ComparisonError`)."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise ComparisonError(f"{root} is not a comparison directory (no {MANIFEST})")
    comparison = Comparison(root, _check_manifest(root, _read_json(path, "the manifest")))
    verify(comparison)
    return comparison


def verify(comparison: Comparison) -> None:
    """Every run directory under ``runs/`` belongs to the plan and holds the planned configuration;
    the recorded selections follow from the finished search runs."""
    root, plan = comparison.root, comparison.plan
    allowed = {}
    for name in plan["optimizers"]:
        for lr in plan["grid"][name]:
            for seed in plan["seeds"]:
                allowed[f"{RUNS}/{name}/{lr_name(lr)}/seed={seed}"] = (name, lr, seed)
    runs_dir = root / RUNS
    if runs_dir.exists():
        for run_dir in sorted(p for p in runs_dir.glob("*/*/*")):
            rel = run_dir.relative_to(root).as_posix()
            if rel not in allowed:
                raise ComparisonError(f"{run_dir}: not a run of this comparison's plan (see {root / MANIFEST})")
            name, lr, seed = allowed[rel]
            if seed != plan["seeds"][0] and comparison.selected.get(name, "unset") != lr:
                raise ComparisonError(
                    f"{run_dir}: a seed run at a learning rate that was not selected for {name} "
                    f"(selected: {format_lr(comparison.selected.get(name))}); the directory was edited"
                )
            _check_run_config(run_dir, run_config(plan, name, lr, seed))
    for name in plan["optimizers"]:
        search = comparison.search_results(name)
        # A search run deleted after the selection is simply redone (runs are deterministic); the
        # selection is checked again once all of them are finished.
        if name in comparison.selected and all(r.finished for r in search):
            lr = select_lr(search, comparison.metric)
            if lr != comparison.selected[name]:
                raise ComparisonError(
                    f"{root / MANIFEST}: {name}'s selected lr {format_lr(comparison.selected[name])} does not follow "
                    f"from its search runs (best: {format_lr(lr)}); a summary.json or the manifest was edited"
                )


def _check_run_config(run_dir: Path, planned: dict[str, Any]) -> None:
    planned = _listify(planned)
    for name in (ex.CONFIG, ex.SUMMARY):
        path = run_dir / name
        if not path.is_file():
            continue
        doc = _read_json(path, name)
        saved = doc.get("config") if name == ex.SUMMARY and isinstance(doc, dict) else doc
        if _listify(saved) != planned:
            diff = _difference(saved, planned)
            raise ComparisonError(f"{path}: does not match the comparison's plan ({diff}); the run was edited")


def _difference(saved: Any, planned: dict[str, Any]) -> str:
    if not isinstance(saved, dict):
        return "not a configuration"
    keys = sorted(set(saved) | set(planned))
    diffs = [f"{k}: {saved.get(k, '<missing>')!r} instead of {planned.get(k, '<missing>')!r}"
             for k in keys if _listify(saved.get(k)) != planned.get(k)]  # fmt: skip
    return "; ".join(diffs[:3]) or "differs"


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Only one ``descend compare`` writes a directory at a time (each worker also locks its run's directory)."""
    with lock.hold(root, "descend compare", kind="comparison directory"):
        yield


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    _write_atomic(root / MANIFEST, json.dumps(manifest, indent=2) + "\n")


#: What a caller may record in a new comparison's manifest: the command line it was started with (a list of
#: strings, exactly as given) and the workload it runs (descend.lab.workloads.Workload.record).
RECORD_KEYS = ("argv", "workload")


def _check_record(record: Mapping[str, Any] | None) -> None:
    if record is None:
        return
    unknown = sorted(set(record) - set(RECORD_KEYS))
    if unknown:
        raise ParameterError(f"compare: record takes {', '.join(RECORD_KEYS)}; got {', '.join(unknown)}")
    argv = record.get("argv")
    if argv is not None and not (isinstance(argv, list | tuple) and all(isinstance(a, str) for a in argv)):
        raise ParameterError(f"compare: record argv must be a list of strings, got {argv!r}")


def prepare(
    root: str | os.PathLike, plan: dict[str, Any] | None, record: Mapping[str, Any] | None = None
) -> Comparison:
    """Create the comparison directory for ``plan``, or open the existing one (``plan=None``: whatever it holds).

    An existing directory must hold the same plan: otherwise it is reported, never mixed. ``record`` goes into a
    new directory's manifest (an existing one keeps what it was started with).
    """
    import descend

    root = Path(root)
    _check_record(record)
    path = root / MANIFEST
    if path.exists():
        manifest = _check_manifest(root, _read_json(path, "the manifest"))
        if plan is not None and manifest["plan"] != plan:
            raise ComparisonError(
                f"{root} holds a different comparison ({_plan_difference(manifest['plan'], plan)}); continue it "
                f"with 'descend compare --resume {root}' or choose another --out"
            )
    else:
        if plan is None:
            raise ComparisonError(f"{root} is not a comparison directory (no {MANIFEST})")
        if root.exists() and any(p.name != LOCK for p in root.iterdir()):
            raise ComparisonError(f"{root} exists and is not a comparison directory; choose another --out")
        root.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": FORMAT,
            "descend_version": descend.__version__,
            "command": plan_to_command(plan, root),
            "plan": plan,
            "selected": {},
            **_listify(dict(record or {})),
        }
        _write_atomic(root / PLAN_TOML, plan_to_toml(plan))
        _write_manifest(root, manifest)
    comparison = Comparison(root, manifest)
    verify(comparison)
    return comparison


def _plan_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    diffs = []
    for key in sorted(set(old) | set(new)):
        if key == "base":
            for k in sorted(set(old["base"]) | set(new["base"])):
                if old["base"].get(k) != new["base"].get(k):
                    diffs.append(f"{k} {old['base'].get(k)!r} there, {new['base'].get(k)!r} asked")
        elif old.get(key) != new.get(key):
            diffs.append(f"{key} {old.get(key)!r} there, {new.get(key)!r} asked")
    return "; ".join(diffs[:2]) or "differs"


# --------------------------------------------------------------------------------------------------- workers

_QUEUE: Any = None
_DATA: dict[str, Any] = {}
_WARM: set[str] = set()

#: Each worker computes single-threaded: with one BLAS thread per core the workers do not fight.
_WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
}


def _init_worker(progress_queue: Any, parent_pid: int | None = None) -> None:
    import warnings

    global _QUEUE
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    _QUEUE = progress_queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the workers itself
    # Overflow on the way to a NaN is how a diverging run ends; its summary says "diverged".
    warnings.simplefilter("ignore", RuntimeWarning)


#: Linux prctl option: the signal the kernel sends this process when its parent dies.
_PR_SET_PDEATHSIG = 1
#: Seconds between the fallback watchdog's looks at the parent pid.
_WATCH_INTERVAL = 0.2
#: Seconds a worker waits for its run directory's lock (a killed comparison's worker may still be dying).
_RUN_LOCK_WAIT = 5.0


def _die_with_parent(parent_pid: int, interval: float = _WATCH_INTERVAL) -> None:
    """End this worker when the comparison that started it ends, even by SIGKILL: a worker that lived on
    would keep writing run directories that a rerun of the comparison writes too.

    On Linux the kernel sends SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``); everywhere, a
    daemon thread checks every ``interval`` seconds that the parent pid is still ours (an orphan is
    adopted by another process) and kills the worker otherwise.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):  # best effort: the watchdog below covers a failure
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the prctl: no signal will come
        _kill_self()
    threading.Thread(target=_watch_parent, args=(parent_pid, interval), name="descend-watch-parent",
                     daemon=True).start()  # fmt: skip


def _watch_parent(parent_pid: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent_pid:
            _kill_self()


def _kill_self() -> None:
    if hasattr(signal, "SIGKILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(1)  # pragma: no cover - no SIGKILL (Windows)


def _warm_up(config: dict[str, Any], data) -> None:
    """One forward/backward pass and one optimizer update on a throwaway model, once per optimizer and
    worker: imports and compiled kernels load here, not inside the first run's measured wall time."""
    if config["optimizer"] in _WARM:
        return
    _WARM.add(config["optimizer"])
    if config.get("backend") == "torch":
        from descend.torch.training import warm_up

        with contextlib.suppress(Exception):  # best effort, as below
            warm_up(config, data)
        return
    import numpy as np

    from descend.nn import CrossEntropyLoss

    with contextlib.suppress(Exception):  # best effort: the real run reports any error itself
        train = data[0]
        model = ex.build_model(config, train)
        tx = ex.build_optimizer(config, model, 1)
        loss = CrossEntropyLoss()
        loss.forward(model.forward(train.x[:4]), train.y[:4])
        model.backward(loss.backward(), input_grad=False)
        tree = model.named_parameters()  # what the Trainer gives the optimizer
        state = tx.init(tree)
        tx.update({name: np.zeros_like(p) for name, p in tree.items()}, state, tree)


#: The configuration keys that decide a run's data (its split depends on the seed).
_DATA_KEYS = ("dataset", "validation", "seed", "data_dir", "normalize", "label_column", "test_data")


def _data_for(config: dict[str, Any]):
    """The data of a configuration, loaded once per worker (the split depends on the seed)."""
    key = json.dumps([config.get(k) for k in _DATA_KEYS])
    if key not in _DATA:
        _DATA[key] = ex.load_data(config)
    return _DATA[key]


def _train(
    relpath: str,
    run_dir: str,
    config: dict[str, Any],
    callbacks: Sequence[Callback] = (),
    lock_wait: float = _RUN_LOCK_WAIT,
    what: str | None = None,
) -> dict[str, Any]:
    """Worker: train (or continue) one run in its own directory, holding its lock; returns its summary.

    Resubmitting a run is safe (a retry after its worker died, a rerun of the comparison): one that an earlier
    attempt finished returns its summary, one with a checkpoint continues from it (bitwise as if never
    interrupted) once the checkpoint's configuration hash is found to be this run's (:func:`run_id`).
    """
    out = Path(run_dir)
    callbacks = [*([] if _QUEUE is None else [_Reporter(relpath, _QUEUE)]), *callbacks]
    data = _data_for(config)
    _warm_up(config, data)
    with lock.hold(out, what or f"descend compare worker of pid {os.getppid()}", wait=lock_wait):
        finished = _resubmitted_summary(out, config)
        if finished is not None:
            return finished
        resume = (out / ex.CHECKPOINT).exists()
        if resume:
            _check_run_id(out, config)
        else:  # a run killed before its first checkpoint: start it again from scratch
            for name in (ex.CONFIG, ex.METRICS):
                (out / name).unlink(missing_ok=True)
        return ex.run(config, out, resume=resume, callbacks=callbacks, data=data)


def _resubmitted_summary(out: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The summary of a run that an earlier attempt finished (None: not finished); another run's is refused."""
    path = out / ex.SUMMARY
    if not path.is_file():
        return None
    summary = _read_json(path, "the run summary")
    if not isinstance(summary, dict) or _listify(summary.get("config")) != _listify(config):
        raise ComparisonError(f"{path}: the summary of another run than {out}'s planned one; the run was edited")
    return summary


def _check_run_id(out: Path, config: dict[str, Any]) -> None:
    """The run's checkpoint was written by this run (its recorded configuration hash is :func:`run_id`)."""
    from descend.train.checkpoint import read_checkpoint_meta

    path = out / ex.CHECKPOINT
    recorded = read_checkpoint_meta(path).get("config_sha256")
    expected = run_id(config)
    if recorded != expected:
        raise ComparisonError(
            f"{path}: the checkpoint of another run (configuration hash {str(recorded)[:12]}, this run's "
            f"{expected[:12]}); the run directory was edited or copied: delete {out} to train this run again"
        )


class _Reporter(Callback):
    """A training callback that sends (run, epoch, loss) to the parent's progress display."""

    def __init__(self, relpath: str, progress_queue: Any, interval: float = 0.3):
        self.relpath, self.queue, self.interval = relpath, progress_queue, interval
        self._last = 0.0

    def _put(self, *message: Any) -> None:
        with contextlib.suppress(Exception):  # the display is best effort; training goes on
            self.queue.put_nowait((self.relpath, *message))

    def on_train_begin(self, trainer) -> None:
        self._put("begin", trainer.epoch, trainer.epochs, None)

    def on_batch_end(self, trainer, step: int, logs: dict[str, float]) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            fraction = (logs.get("batch", 0) + 1) / max(trainer.batches_per_epoch, 1)
            self._put("batch", trainer.epoch + fraction, trainer.epochs, float(logs.get("loss", math.nan)))

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        self._put("epoch", epoch + 1, trainer.epochs, float(logs.get("loss", math.nan)))


@contextlib.contextmanager
def _worker_environment() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in _WORKER_ENV}
    os.environ.update(_WORKER_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# -------------------------------------------------------------------------------------------------- progress


@dataclass
class _Live:
    spec: RunSpec
    epoch: float = 0.0
    epochs: int = 0
    loss: float | None = None
    started: bool = False  # the worker has begun it (it was queued before)
    where: str | None = None  # host:pid of the worker training it (a cluster's), when known


class Progress:
    """What the parent shows while the runs go: one line per active run and an overall bar.

    On a terminal the block is redrawn in place; otherwise (a log file, a pipe) one plain line is
    printed per event (a run finished, a learning rate selected). ``stream=None`` shows nothing.
    """

    def __init__(self, stream: TextIO | None = sys.stderr, live: bool | None = None, width: int = 28):
        self.stream = stream
        isatty = getattr(stream, "isatty", None)
        self.live = bool(isatty and isatty()) if live is None else live
        self.width = width
        self.active: dict[str, _Live] = {}
        self.total_runs = self.done_runs = 0
        self.total_epochs = 0
        self.done_epochs = 0.0
        self._drawn = 0
        self._last_draw = 0.0
        self._t0 = time.monotonic()

    def _write(self, text: str) -> None:
        if self.stream is not None:
            self.stream.write(text)
            self.stream.flush()

    def _clear(self) -> None:
        if self.live and self._drawn:
            self._write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def message(self, text: str) -> None:
        self._clear()
        self._write(text + "\n")
        self.draw(force=True)

    def start(self, spec: RunSpec) -> None:
        self.active[spec.relpath] = _Live(spec, epochs=spec.config["epochs"])

    def update(
        self, relpath: str, kind: str, epoch: float, epochs: int, loss: float | None, where: str | None = None
    ) -> None:
        live = self.active.get(relpath)
        if live is None:
            return
        live.epoch, live.epochs, live.started = float(epoch), int(epochs), True
        if loss is not None:
            live.loss = loss
        if where is not None:
            live.where = where

    def finish(self, spec: RunSpec, summary: dict[str, Any], metric: str, skipped: bool = False) -> None:
        live = self.active.pop(spec.relpath, None)
        self.done_runs += 1
        if skipped:
            return
        final = summary.get("final", {}).get(metric)
        result = f"{metric} {final:.4f}" if isinstance(final, float) and summary["status"] != "diverged" else ""
        status = summary["status"]
        self.message(
            f"[{self.done_runs:>{len(str(self.total_runs))}}/{self.total_runs}] {spec.label}: {status}"
            + (f", {result}" if result else "")
            + f" ({summary.get('epochs', 0)} epochs, {summary.get('wall_time', 0.0):.1f} s)"
            + (f" on {live.where}" if live is not None and live.where else "")
        )

    def _bar(self, fraction: float, width: int) -> str:
        filled = round(width * min(max(fraction, 0.0), 1.0))
        return "█" * filled + "·" * (width - filled)

    def _lines(self) -> list[str]:
        done_epochs = self.done_epochs + sum(a.epoch for a in self.active.values())
        fraction = done_epochs / self.total_epochs if self.total_epochs else 0.0
        elapsed = time.monotonic() - self._t0
        running = sorted((a for a in self.active.values() if a.started), key=lambda a: a.spec.relpath)
        lines = [
            f"compare {self._bar(fraction, self.width)} {100 * fraction:3.0f}%  runs {self.done_runs}/"
            f"{self.total_runs} done, {len(running)} running, {len(self.active) - len(running)} queued  "
            f"{elapsed:.0f} s"
        ]
        for a in running:
            loss = "" if a.loss is None or not math.isfinite(a.loss) else f"loss {a.loss:.4f}"
            if a.loss is not None and not math.isfinite(a.loss):
                loss = f"loss {a.loss}"
            frac = a.epoch / a.epochs if a.epochs else 0.0
            lines.append(
                f"  {a.spec.optimizer:<10} lr={format_lr(a.spec.lr):<9} seed={a.spec.seed:<3} "
                f"epoch {min(int(a.epoch) + 1, a.epochs):>3}/{a.epochs:<3} {self._bar(frac, 12)} {loss}"
                + (f" on {a.where}" if a.where else "")
            )
        return lines

    def draw(self, force: bool = False) -> None:
        if not self.live or self.stream is None:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        self._clear()
        lines = self._lines()
        self._write("\n".join(lines) + "\n")
        self._drawn = len(lines)

    def close(self) -> None:
        self._clear()


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
    _check_record(record)
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
        plan = _normal_plan(plan)
        _load_first_data(plan)
    if scheduler != executors.LOCAL:
        executors.require_dask(scheduler)
    with _locked(root):  # creates root (and removes it again, still empty, if anything fails before prepare)
        # The cluster is contacted once the directory is ours, and before anything is written into it.
        with executors.open_engine(scheduler, workers=workers, max_concurrent=max_concurrent) as engine:
            comparison = prepare(root, plan, record)
            if plan is None:
                _load_first_data(comparison.plan)
            _execute(comparison, engine, progress)
        comparison.refresh()
        verify(comparison)
    return comparison


def _normal_plan(plan: Mapping[str, Any]) -> dict[str, Any]:
    """``plan`` checked as :func:`make_plan` checks it (a hand-made plan is held to the same rules)."""
    try:
        again = make_plan(
            plan["base"],
            optimizers=plan["optimizers"],
            grid=plan["grid"],
            seeds=plan["seeds"],
            optimizer_args=plan["optimizer_args"],
            target=plan["target"],
        )
    except (KeyError, TypeError) as e:
        raise ComparisonError(f"compare: the plan is incomplete ({e}); build it with make_plan") from None
    if again != _listify(dict(plan)):
        raise ComparisonError("compare: the plan is not in make_plan's normal form; build it with make_plan")
    return again


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
                result = comparison.runs[spec.key] = RunResult(spec, path, _finished_summary(path, spec))
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
            comparison.selected[name] = select_lr(search, metric)
            new.append((name, search))
    if not new:
        return
    # The manifest records a selection before any of its seed runs exists (a crash in between stays consistent).
    comparison.manifest["selected"] = dict(comparison.selected)
    _write_manifest(comparison.root, comparison.manifest)
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
        for spec in pending_of([_spec(plan, name, lr, seed, "seeds") for seed in seeds]):
            submit(spec)


__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_GRIDS",
    "DEFAULT_OPTIMIZERS",
    "DEFAULT_SEEDS",
    "FORMAT",
    "Comparison",
    "ComparisonError",
    "Progress",
    "Row",
    "RunResult",
    "RunSpec",
    "default_workers",
    "load",
    "lr_name",
    "make_plan",
    "plan_to_command",
    "plan_to_toml",
    "planned_runs",
    "read_experiment",
    "run_comparison",
    "select_lr",
]
