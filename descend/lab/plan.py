"""The plan of a comparison (:mod:`descend.lab.compare`): which optimizers, learning rates and seeds, and the
configuration of each run.

A plan is a validated, JSON-able dict made by :func:`make_plan`; :func:`planned_runs` lists its runs
(:class:`RunSpec`: the grid search at the first seed, then the other seeds at each selected learning rate), and
:func:`run_config` gives one run's full configuration, as its ``config.json`` holds it.

>>> plan = make_plan({"epochs": 5}, optimizers=["sgd", "adam"], grid={"sgd": [0.1, 0.3], "adam": [1e-3]}, seeds=2)
>>> [spec.relpath for spec in planned_runs(plan)]
['runs/sgd/lr=1e-01/seed=0', 'runs/sgd/lr=3e-01/seed=0', 'runs/adam/lr=1e-03/seed=0']
>>> planned_runs(plan, {"sgd": 0.3})[-1].label
'sgd lr=3e-01 seed=1'
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from descend.errors import DescendError, ParameterError
from descend.optim import registry
from descend.train import experiment as ex

#: Written into ``comparison.json`` (and ``experiment.toml``); a directory with another value was made by another
#: version. 2: a run's configuration gained the data keys (normalize, label_column, test_data), backend/device and
#: track_sharpness, and the manifest records the command line: a version-1 directory is refused with that message.
FORMAT = "descend-compare/2"
#: The folder of a comparison directory that holds the run directories (``runs/adam/lr=1e-03/seed=0``).
RUNS = "runs"

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


def listify(obj: Any) -> Any:
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
    plan = listify(plan)
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


def run_spec(plan: Mapping[str, Any], optimizer: str, lr: float, seed: int, phase: str) -> RunSpec:
    return RunSpec(optimizer, lr, seed, phase, run_config(plan, optimizer, lr, seed))


def planned_runs(plan: Mapping[str, Any], selected: Mapping[str, float | None] | None = None) -> list[RunSpec]:
    """The search runs, then the seed runs of the optimizers whose learning rate is ``selected``."""
    first, *others = plan["seeds"]
    specs = [run_spec(plan, name, lr, first, "search") for name in plan["optimizers"] for lr in plan["grid"][name]]
    for name in plan["optimizers"]:
        lr = (selected or {}).get(name)
        if lr is not None:
            specs += [run_spec(plan, name, lr, seed, "seeds") for seed in others]
    return specs


def expected_runs(plan: Mapping[str, Any]) -> int:
    """How many runs the plan has when no optimizer diverges at every learning rate."""
    return sum(len(plan["grid"][n]) for n in plan["optimizers"]) + len(plan["optimizers"]) * (len(plan["seeds"]) - 1)


def normal_plan(plan: Mapping[str, Any]) -> dict[str, Any]:
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
    if again != listify(dict(plan)):
        raise ComparisonError("compare: the plan is not in make_plan's normal form; build it with make_plan")
    return again


__all__ = [
    "BASE_KEYS",
    "DEFAULT_EPOCHS",
    "DEFAULT_GRIDS",
    "DEFAULT_OPTIMIZERS",
    "DEFAULT_SEEDS",
    "FORMAT",
    "PER_RUN_KEYS",
    "RUNS",
    "ComparisonError",
    "RunSpec",
    "expected_runs",
    "format_lr",
    "listify",
    "lr_name",
    "make_plan",
    "normal_plan",
    "planned_runs",
    "run_config",
    "run_id",
    "run_spec",
]
