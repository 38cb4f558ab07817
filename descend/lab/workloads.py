"""Named workloads (AlgoPerf in miniature): a fixed model, data set, batch size, epoch budget and validation target.

``descend compare --workload fmnist-cnn`` compares optimizers on one of them by the usual protocol (a
log-spaced learning-rate grid at the first seed, the best rate rerun with more seeds;
:mod:`descend.lab.compare`), and reports, besides the ranking, the steps and time each optimizer took to reach
the workload's target. ``--workload all`` runs the four and scores them together with a performance profile
(:mod:`descend.lab.profile`, :mod:`descend.lab.suite`).

What a workload fixes is the problem: data set, model (preset, widths, dropout), batch size, epoch budget,
the validation fraction and the target. What the comparison varies is the training algorithm: the optimizer,
its learning rate and the schedule (the workloads default to the cosine schedule their targets were set with;
``--schedule`` replaces it for every optimizer alike).

The targets are the best published test accuracies that descend reproduces with these models (its own
numbers and recipes: ``docs/results.md``, ``benchmarks/results/quality.md``):

==============  =====================================  ======  ================================================
workload        model and budget                       target  where the target comes from
==============  =====================================  ======  ================================================
mnist1d-mlp     MLP 512-512, dropout 0.5, batch 64,    0.68    MNIST-1D paper (Greydanus 2020), MLP; descend's
                100 epochs                                     recipe (Adam 1e-3, cosine): 0.734 test
mnist1d-cnn     1-D CNN preset, dropout 0.5, batch     0.94    MNIST-1D paper, CNN; descend: 0.956 test
                64, 80 epochs                                  (Adam 2e-3, cosine)
fmnist-mlp      MLP 256-128, batch 128, 10 epochs      0.883   Fashion-MNIST benchmark table, MLP 256-128-100;
                                                               descend: 0.895 test (Adam 1e-3, cosine)
fmnist-cnn      CNN preset (2 conv + pool), batch      0.916   Fashion-MNIST benchmark table, 2 conv + pooling;
                128, 10 epochs                                 descend: 0.924 test (Adam 1e-3, cosine)
==============  =====================================  ======  ================================================

The comparison measures the *validation* accuracy (a tenth of the training split held out), against a target
set on the test split: the two estimate the same accuracy, the validation one with fewer samples (400 for
MNIST-1D, so ± 2 points of noise per run).

``budget="quick"`` is a smoke test, not the workload: the same model and batch size for 2 epochs on a
stratified subsample (1,000 training and 500 test examples, seeded) with low targets that a tuned optimizer
reaches in that time; the subsample is written once into the descend cache (``$DESCEND_CACHE/workloads``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from descend.errors import DataError, ParameterError
from descend.train import experiment as ex

BUDGETS = ("full", "quick")
#: The quick budget's subsample (per split: examples per class) and epochs.
QUICK_TRAIN_PER_CLASS, QUICK_TEST_PER_CLASS, QUICK_EPOCHS = 100, 50, 2
#: Bumped when the quick subsample would change (part of its cache file name).
QUICK_VERSION = 1


@dataclass(frozen=True)
class Workload:
    """One fixed problem to compare optimizers on."""

    name: str
    title: str  # "MLP 512-512 on MNIST-1D"
    dataset: str  # a built-in data set
    model: str
    hidden: tuple[int, ...]
    dropout: float
    batch_size: int
    epochs: int  # the budget
    target: float  # validation accuracy to reach
    target_source: str  # how the target was set
    quick_target: float  # the target of the quick budget (a smoke test)
    schedule: str = "cosine"  # the default schedule (the one the target was set with)
    validation: float = 0.1
    extra: Mapping[str, Any] = field(default_factory=dict)

    def base(self, budget: str = "full", overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The configuration keys every run of the workload shares (``make_plan``'s ``base``).

        ``budget="quick"`` writes (once) and uses the subsample files; ``overrides``: keys the user may set
        (``epochs``, ``schedule``, ``schedule_args``, ``data_dir``, ...), checked by :func:`check_overrides`.
        """
        check_budget(budget)
        overrides = dict(overrides or {})
        check_overrides(overrides)
        base: dict[str, Any] = {
            "dataset": self.dataset,
            "model": self.model,
            "hidden": list(self.hidden),
            "dropout": self.dropout,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "validation": self.validation,
            "schedule": self.schedule,
            **self.extra,
        }
        if budget == "quick":
            train, test = quick_data(self.dataset, overrides.get("data_dir"))
            base.update(dataset=str(train), test_data=str(test), normalize="none", epochs=QUICK_EPOCHS)
            overrides.pop("data_dir", None)  # the subsample files are the data now
        base.update(overrides)
        return base

    def target_for(self, budget: str) -> float:
        check_budget(budget)
        return self.quick_target if budget == "quick" else self.target

    def record(self, budget: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What the comparison's manifest keeps about the workload (the report shows it)."""
        changed = {k: v for k, v in sorted((overrides or {}).items()) if k not in ("data_dir",)}
        return {
            "name": self.name,
            "title": self.title,
            "budget": budget,
            "target": self.target_for(budget),
            "target_source": self.target_source if budget == "full" else (
                f"quick budget (smoke test): {QUICK_EPOCHS} epochs on {10 * QUICK_TRAIN_PER_CLASS} training and "
                f"{10 * QUICK_TEST_PER_CLASS} test examples; the workload's own target is {self.target:g}"
            ),
            "epochs": self.epochs,
            "changed": changed,  # what the user set besides the workload (epochs: the budget is not the workload's)
        }  # fmt: skip


_MNIST1D_SOURCE = "MNIST-1D paper (Greydanus 2020)"
_FMNIST_SOURCE = "Fashion-MNIST benchmark table (Xiao et al. 2017)"

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "mnist1d-mlp", "MLP 512-512 (dropout 0.5) on MNIST-1D", "mnist1d", "mlp", (512, 512), 0.5, 64, 100,
            0.68, f"{_MNIST1D_SOURCE}: MLP 0.68 test accuracy; descend's recipe (Adam 1e-3, cosine, 100 epochs) "
            "reaches 0.734", quick_target=0.2,
        ),
        Workload(
            "mnist1d-cnn", "1-D CNN (dropout 0.5) on MNIST-1D", "mnist1d", "cnn", (256, 128), 0.5, 64, 80,
            0.94, f"{_MNIST1D_SOURCE}: CNN 0.94 test accuracy; descend's recipe (Adam 2e-3, cosine, 80 epochs) "
            "reaches 0.956", quick_target=0.2,
        ),
        Workload(
            "fmnist-mlp", "MLP 256-128 on Fashion-MNIST", "fashion-mnist", "mlp", (256, 128), 0.0, 128, 10,
            0.883, f"{_FMNIST_SOURCE}: MLP 256-128-100 0.883 test accuracy; descend's recipe (Adam 1e-3, cosine, "
            "10 epochs) reaches 0.895", quick_target=0.6,
        ),
        Workload(
            "fmnist-cnn", "CNN (2 conv + pool) on Fashion-MNIST", "fashion-mnist", "cnn", (256, 128), 0.0, 128, 10,
            0.916, f"{_FMNIST_SOURCE}: 2 conv + pooling 0.916 test accuracy; descend's recipe (Adam 1e-3, cosine, "
            "10 epochs) reaches 0.924", quick_target=0.5,
        ),
    )
}  # fmt: skip

#: The configuration keys a workload fixes (the problem); the others are the training algorithm's or free.
FIXED_KEYS = ("dataset", "model", "hidden", "dropout", "batch_size", "validation", "test_data", "normalize",
              "label_column")  # fmt: skip
#: Keys a user may still set: the budget (``epochs``, recorded as changed), the schedule, regularization, where the
#: data are, the backend: every shared configuration key that the workload does not fix.
FREE_KEYS = tuple(k for k in ex.DEFAULTS if k not in (*FIXED_KEYS, "optimizer", "lr", "seed", "optimizer_args"))


def names() -> tuple[str, ...]:
    return tuple(WORKLOADS)


def get(name: str) -> Workload:
    """The workload ``name``; an unknown one lists the valid names."""
    if name not in WORKLOADS:
        raise ParameterError(f"unknown workload {name!r}; valid workloads: {', '.join(WORKLOADS)}, all")
    return WORKLOADS[name]


def resolve(text: str) -> list[Workload]:
    """``"all"`` (every workload), one name, or names separated by commas."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ParameterError(f"workload: expected a workload name or 'all', got {text!r}")
    if items == ["all"]:
        return list(WORKLOADS.values())
    if len(set(items)) != len(items):
        raise ParameterError(f"workload: workloads must differ, got {text!r}")
    return [get(n) for n in items]


def check_budget(budget: str) -> None:
    if budget not in BUDGETS:
        raise ParameterError(f"workload: unknown budget {budget!r}; valid budgets: {', '.join(BUDGETS)}")


def check_overrides(overrides: Mapping[str, Any]) -> None:
    """A workload fixes the problem: only :data:`FREE_KEYS` may be given."""
    fixed = sorted(set(overrides) & set(FIXED_KEYS))
    if fixed:
        raise ParameterError(
            f"workload: a workload fixes the data set, model, batch size and validation split; it takes no "
            f"{', '.join(fixed)} (keys you may set: {', '.join(FREE_KEYS)})"
        )
    unknown = sorted(set(overrides) - set(FREE_KEYS))
    if unknown:
        raise ParameterError(f"workload: unknown key(s) {', '.join(unknown)}; keys you may set: {', '.join(FREE_KEYS)}")


# ------------------------------------------------------------------------------------------------ quick data


def _subsample(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``per_class`` examples of each class (all of a smaller class), in a seeded random order."""
    picked = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        picked.append(rng.permutation(idx)[:per_class])
    return rng.permutation(np.concatenate(picked))


_QUICK: dict[tuple[str, str | None, str], tuple[Path, Path]] = {}


def quick_data(dataset: str, data_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The quick budget's (train, test) ``.npz`` files of ``dataset`` (arrays ``x``, ``y``), written into
    ``$DESCEND_CACHE/workloads`` on first use; the name holds a hash of the arrays, so a file is never stale."""
    from descend.data import cache_dir, load

    memo = (dataset, None if data_dir is None else str(data_dir), str(cache_dir()))
    known = _QUICK.get(memo)
    if known is not None and all(p.is_file() for p in known):  # this process made them: no need to load again
        return known
    kwargs: dict[str, Any] = {}
    if dataset != "mnist1d":
        kwargs = {"flatten": True, "normalize": True, "data_dir": data_dir}
    splits = load(dataset, **kwargs)
    rng = np.random.default_rng(QUICK_VERSION)
    arrays = {}
    for role, ds, per_class in (("train", splits.train, QUICK_TRAIN_PER_CLASS), ("test", splits.test,
                                                                             QUICK_TEST_PER_CLASS)):  # fmt: skip
        x, y = np.asarray(ds.x), np.asarray(ds.y)
        idx = _subsample(y, per_class, rng)
        arrays[role] = (np.ascontiguousarray(x[idx].reshape(len(idx), -1), dtype=np.float32), y[idx].astype(np.int64))
    digest = hashlib.sha256()
    for x, y in arrays.values():
        digest.update(x.tobytes())
        digest.update(y.tobytes())
    key = digest.hexdigest()[:12]
    folder = cache_dir() / "workloads"
    paths = []
    for role, (x, y) in arrays.items():
        path = folder / f"{dataset}-quick-v{QUICK_VERSION}-{key}-{role}.npz"
        if not path.is_file():
            _write_npz(path, x, y)
        paths.append(path)
    _QUICK[memo] = (paths[0], paths[1])
    return paths[0], paths[1]


def _write_npz(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise DataError(
            f"workload: cannot write the quick budget's data into {path.parent} ({e.strerror or e}); "
            "set DESCEND_CACHE to a writable folder"
        ) from None
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, x=x, y=y)
        os.replace(tmp, path)
    except OSError as e:
        raise DataError(f"workload: cannot write {path} ({e.strerror or e}); set DESCEND_CACHE") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


__all__ = [
    "BUDGETS",
    "FIXED_KEYS",
    "FREE_KEYS",
    "WORKLOADS",
    "Workload",
    "check_budget",
    "check_overrides",
    "get",
    "names",
    "quick_data",
    "resolve",
]
