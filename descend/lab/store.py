"""The comparison directory (:mod:`descend.lab.compare`): its manifest, its lock, and the checks that it holds
what its plan says::

    DIR/comparison.json                     manifest: format version, the plan, the selected lrs
    DIR/experiment.toml                     the plan as a --config file (reproduces the comparison)
    DIR/runs/adam/lr=1e-03/seed=0/          config.json, metrics.csv, checkpoint, summary.json

:func:`prepare` creates it (or opens it, checked against the plan asked for), :func:`load` opens a finished or
unfinished one, :func:`verify` checks every run directory against the plan. Only the process holding the
directory's lock (:func:`locked`) writes the manifest, atomically (:func:`write_manifest`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from descend._io import atomic_write_text
from descend.errors import DescendError, ParameterError
from descend.lab.plan import FORMAT, RUNS, ComparisonError, format_lr, listify, lr_name, make_plan, run_config
from descend.lab.plan_files import plan_to_command, plan_to_toml
from descend.lab.results import Comparison, best_lr, read_json
from descend.train import experiment as ex
from descend.train import lock

MANIFEST, PLAN_TOML, LOCK = "comparison.json", "experiment.toml", lock.LOCK_NAME

#: What a caller may record in a new comparison's manifest: the command line it was started with (a list of
#: strings, exactly as given) and the workload it runs (descend.lab.workloads.Workload.record).
RECORD_KEYS = ("argv", "workload")


def _write_atomic(path: Path, text: str) -> None:
    atomic_write_text(path, text)


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
    comparison = Comparison(root, _check_manifest(root, read_json(path, "the manifest")))
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
            lr = best_lr(search, comparison.metric)
            if lr != comparison.selected[name]:
                raise ComparisonError(
                    f"{root / MANIFEST}: {name}'s selected lr {format_lr(comparison.selected[name])} does not follow "
                    f"from its search runs (best: {format_lr(lr)}); a summary.json or the manifest was edited"
                )


def _check_run_config(run_dir: Path, planned: dict[str, Any]) -> None:
    planned = listify(planned)
    for name in (ex.CONFIG, ex.SUMMARY):
        path = run_dir / name
        if not path.is_file():
            continue
        doc = read_json(path, name)
        saved = doc.get("config") if name == ex.SUMMARY and isinstance(doc, dict) else doc
        if listify(saved) != planned:
            diff = _difference(saved, planned)
            raise ComparisonError(f"{path}: does not match the comparison's plan ({diff}); the run was edited")


def _difference(saved: Any, planned: dict[str, Any]) -> str:
    if not isinstance(saved, dict):
        return "not a configuration"
    keys = sorted(set(saved) | set(planned))
    diffs = [f"{k}: {saved.get(k, '<missing>')!r} instead of {planned.get(k, '<missing>')!r}"
             for k in keys if listify(saved.get(k)) != planned.get(k)]  # fmt: skip
    return "; ".join(diffs[:3]) or "differs"


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Only one ``descend compare`` writes a directory at a time (each worker also locks its run's directory)."""
    with lock.hold(root, "descend compare", kind="comparison directory"):
        yield


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Replace ``root``'s manifest atomically (a reader sees the old one or the new one, never a part)."""
    _write_atomic(root / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def check_record(record: Mapping[str, Any] | None) -> None:
    """``record`` holds only :data:`RECORD_KEYS`, and its ``argv`` is a list of strings."""
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
    check_record(record)
    path = root / MANIFEST
    if path.exists():
        manifest = _check_manifest(root, read_json(path, "the manifest"))
        if plan is not None and manifest["plan"] != plan:
            raise ComparisonError(
                f"{root} holds a different comparison ({plan_difference(manifest['plan'], plan)}); continue it "
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
            **listify(dict(record or {})),
        }
        _write_atomic(root / PLAN_TOML, plan_to_toml(plan))
        write_manifest(root, manifest)
    comparison = Comparison(root, manifest)
    verify(comparison)
    return comparison


def plan_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What differs between two plans (the first two differences), for an error message."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        if key == "base":
            for k in sorted(set(old["base"]) | set(new["base"])):
                if old["base"].get(k) != new["base"].get(k):
                    diffs.append(f"{k} {old['base'].get(k)!r} there, {new['base'].get(k)!r} asked")
        elif old.get(key) != new.get(key):
            diffs.append(f"{key} {old.get(key)!r} there, {new.get(key)!r} asked")
    return "; ".join(diffs[:2]) or "differs"


__all__ = [
    "LOCK",
    "MANIFEST",
    "PLAN_TOML",
    "RECORD_KEYS",
    "check_record",
    "load",
    "locked",
    "plan_difference",
    "prepare",
    "verify",
    "write_manifest",
]
