"""A comparison's plan as files and commands: an experiment file (TOML) read into :func:`~descend.lab.plan.make_plan`'s
arguments (:func:`read_experiment`), and a plan written back as an experiment file (:func:`plan_to_toml`) or as the
``descend compare`` command line that runs it (:func:`plan_to_command`).

>>> from descend.lab.plan import make_plan
>>> plan = make_plan(optimizers=["sgd"], grid=[0.1, 0.3], seeds=1)
>>> plan_to_command(plan, "out")
'descend compare --optimizers sgd --lrs sgd=0.1,0.3 --seeds 1 --out out'
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from descend.lab.plan import (
    BASE_KEYS,
    DEFAULT_EPOCHS,
    DEFAULT_GRIDS,
    DEFAULT_OPTIMIZERS,
    DEFAULT_SEEDS,
    FORMAT,
    ComparisonError,
)
from descend.train import experiment as ex

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


__all__ = ["TOML_KEYS", "plan_to_command", "plan_to_toml", "read_experiment"]
