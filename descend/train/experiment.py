"""One training run from a plain configuration: what ``descend train`` and ``descend compare`` execute.

A configuration is a JSON-able dict (see :data:`DEFAULTS`); :func:`run` turns it into
data set → batches → model → loss → optimizer → :class:`~descend.train.Trainer`, trains, and
leaves a complete run directory::

    DIR/config.json    the configuration, exactly as run (written first)
    DIR/metrics.csv    one row per epoch, appended and flushed as training goes
    DIR/checkpoint     parameters, optimizer/plateau state, counters and RNG states (no pickle)
    DIR/summary.json   final and best metrics, test accuracy, wall time, steps, status (written last)

>>> summary = run({"dataset": "mnist1d", "optimizer": "adam", "lr": 1e-3, "epochs": 5}, "runs/adam")
"""

from __future__ import annotations

import inspect
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from descend._validation import Interval, check
from descend.errors import DataError, ParameterError


class _Unset:
    """The default of a command-line option the user did not give (so the configuration's default applies)."""

    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()

#: Every key a configuration may have, with its default.
DEFAULTS: dict[str, Any] = {
    "dataset": "mnist1d",  # mnist1d | fashion-mnist | mnist | PATH (.csv or .npz with arrays x, y)
    "model": "mlp",  # mlp | cnn | logistic
    "hidden": [256, 128],  # MLP widths (the CNN's dense layer takes hidden[0] when given)
    "optimizer": "adam",  # any name of OPTIMIZERS
    "lr": 1e-3,
    "optimizer_args": {},  # extra keyword arguments of the optimizer factory (betas, eps, ...)
    "schedule": "constant",  # constant | step | exponential | cosine | one-cycle | warmup-cosine | plateau
    "schedule_args": {},  # step: step_size (epochs), gamma; exponential: gamma (per epoch); ...
    "weight_decay": None,  # None: the optimizer's default; applied to weights only (not biases/norms)
    "l1": 0.0,
    "l2": 0.0,
    "dropout": 0.0,
    "init": None,  # None: He for ReLU layers; any descend.init name
    "epochs": 10,
    "batch_size": 128,  # None or 0: full batch; 1: stochastic; k: mini-batch
    "seed": 0,
    "validation": 0.1,  # fraction of the training set held out (0: none)
    "early_stopping": None,  # patience in epochs on val_loss, or None
    "data_dir": None,
}

#: name -> (factory name in descend.optim, fixed keyword arguments). The seed documents' names are aliases.
OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "sgd": ("sgd", {}),
    "momentum": ("sgd", {"momentum": 0.9}),
    "nesterov": ("sgd", {"momentum": 0.9, "nesterov": True}),
    "adagrad": ("adagrad", {}),
    "rmsprop": ("rmsprop", {}),
    "adadelta": ("adadelta", {}),
    "adam": ("adam", {}),
    "adamw": ("adamw", {}),
    "adamax": ("adamax", {}),
    "nadam": ("nadam", {}),
    "radam": ("radam", {}),
    "asgd": ("asgd", {}),
    "rprop": ("rprop", {}),
    "adafactor": ("adafactor", {}),
    "lion": ("lion", {}),
}

MODELS = ("mlp", "cnn", "logistic")
SCHEDULES = ("constant", "step", "exponential", "cosine", "one-cycle", "warmup-cosine", "plateau")
BUILTIN_DATASETS = ("mnist1d", "fashion-mnist", "mnist")

CONFIG, METRICS, CHECKPOINT, SUMMARY = "config.json", "metrics.csv", "checkpoint", "summary.json"


# ------------------------------------------------------------------------------------------------ configuration


def make_config(overrides: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """:data:`DEFAULTS` updated with ``overrides`` and ``kwargs``, validated; unknown keys are an error."""
    cfg = dict(DEFAULTS)
    given = {**(overrides or {}), **kwargs}
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ParameterError(f"config: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(DEFAULTS)}")
    cfg.update(given)
    validate(cfg)
    return cfg


def _choice(key: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ParameterError(f"config: unknown {key} {value!r}; valid {key}s: {', '.join(allowed)}")


def validate(cfg: dict[str, Any]) -> None:
    """Raise :class:`ParameterError` naming the first bad key, what is allowed and what was given."""
    owner = "config"
    if not isinstance(cfg["dataset"], str) or not cfg["dataset"]:
        raise ParameterError(
            f"config: dataset must be one of {', '.join(BUILTIN_DATASETS)} or a file path, got {cfg['dataset']!r}"
        )
    _choice("model", cfg["model"], MODELS)
    _choice("optimizer", cfg["optimizer"], tuple(OPTIMIZERS))
    _choice("schedule", cfg["schedule"], SCHEDULES)
    hidden = cfg["hidden"]
    if isinstance(hidden, int) or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden):
        raise ParameterError(f"config: hidden must be a list of positive integers, got {hidden!r}")
    check(owner, "lr", cfg["lr"], Interval(0, None, closed="neither"))
    for key in ("optimizer_args", "schedule_args"):
        if not isinstance(cfg[key], dict):
            raise ParameterError(f"config: {key} must be a mapping of keyword arguments, got {cfg[key]!r}")
    if cfg["weight_decay"] is not None:
        check(owner, "weight_decay", cfg["weight_decay"], Interval(0, None))
    check(owner, "l1", cfg["l1"], Interval(0, None))
    check(owner, "l2", cfg["l2"], Interval(0, None))
    check(owner, "dropout", cfg["dropout"], Interval(0, 1, closed="left"))
    check(owner, "epochs", cfg["epochs"], Interval(1, None, integer=True))
    if cfg["batch_size"] is not None:
        check(owner, "batch_size", cfg["batch_size"], Interval(0, None, integer=True))
    check(owner, "seed", cfg["seed"], Interval(0, None, integer=True))
    check(owner, "validation", cfg["validation"], Interval(0, 1, closed="left"))
    if cfg["early_stopping"] is not None:
        check(owner, "early_stopping", cfg["early_stopping"], Interval(1, None, integer=True))
    if cfg["init"] is not None:
        from descend.init import names

        _choice("init", cfg["init"], names())


# ------------------------------------------------------------------------------------------------------- build


def load_data(cfg: dict[str, Any]):
    """``(train, validation or None, test)`` Datasets for the configuration's data set."""
    from descend.data import Splits, from_arrays, from_csv, load, train_validation_split

    name = cfg["dataset"]
    key = name.lower().replace("_", "-")
    if key in BUILTIN_DATASETS:
        kwargs: dict[str, Any] = {}
        if key != "mnist1d":
            kwargs = {"flatten": True, "normalize": True, "data_dir": cfg["data_dir"]}
        splits = load(key, **kwargs)
    else:
        path = Path(name)
        if not path.is_file():
            raise DataError(
                f"dataset {name!r} is neither a built-in data set ({', '.join(BUILTIN_DATASETS)}) "
                "nor an existing .csv/.npz file"
            )
        if path.suffix.lower() == ".csv":
            full = from_csv(path)
        elif path.suffix.lower() == ".npz":
            full = _from_npz(path, from_arrays)
        else:
            raise DataError(f"dataset {name!r}: a file data set must be .csv or .npz, got {path.suffix or 'no suffix'}")
        rest, test = train_validation_split(full, 0.2, cfg["seed"])
        splits = Splits(rest, test)
    train, val = splits.train, None
    if cfg["validation"]:
        train, val = train_validation_split(splits.train, cfg["validation"], np.random.default_rng(cfg["seed"]))
    return train, val, splits.test


def _from_npz(path: Path, from_arrays: Callable[..., Any]):
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = {"x", "y"} - set(f.files)
            if missing:
                raise DataError(f"{path}: an .npz data set needs arrays 'x' and 'y'; it has {', '.join(f.files)}")
            x, y = f["x"], f["y"]
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    return from_arrays(x, y, name=path.stem)


def build_model(cfg: dict[str, Any], train):
    """The model preset for the data's sample shape."""
    from descend.nn import cnn1d, cnn2d, logistic, mlp

    shape, classes, seed = train.sample_shape, train.num_classes, cfg["seed"]
    features = int(np.prod(shape))
    if cfg["model"] == "logistic":
        return logistic(features, classes)
    if cfg["model"] == "mlp":
        return mlp(features, tuple(cfg["hidden"]), classes, dropout=cfg["dropout"], init=cfg["init"], seed=seed)
    hidden = cfg["hidden"][0] if cfg["hidden"] else None
    common = {"out": classes, "dropout": cfg["dropout"], "init": cfg["init"], "seed": seed, "hidden": hidden}
    if features == 784:
        return cnn2d(1, 28, **common)
    if len(shape) == 1 or (len(shape) == 2 and shape[0] == 1):
        return cnn1d(1, shape[-1], **common)
    raise ParameterError(
        f"config: model 'cnn' needs 28x28 images or 1-D signals, got samples of shape {shape}; use mlp or logistic"
    )


def build_schedule(cfg: dict[str, Any], steps_per_epoch: int):
    """The learning rate: a float, or a schedule of the step count (epoch-based arguments are in epochs)."""
    from descend import schedules as S

    lr, name, args, epochs = cfg["lr"], cfg["schedule"], dict(cfg["schedule_args"]), cfg["epochs"]
    total = epochs * steps_per_epoch
    try:
        if name in ("constant", "plateau"):
            _no_args(name, args)
            return lr
        if name == "step":
            step_size = args.pop("step_size", max(1, epochs // 3))
            gamma = args.pop("gamma", 0.1)
            _no_args(name, args)
            return S.step_decay(lr, step_size * steps_per_epoch, gamma)
        if name == "exponential":
            gamma = args.pop("gamma", 0.95)
            _no_args(name, args)
            return S.exponential_decay(lr, gamma, transition_steps=steps_per_epoch, staircase=True)
        if name == "cosine":
            alpha = args.pop("alpha", 0.0)
            _no_args(name, args)
            return S.cosine_decay(lr, total, alpha)
        if name == "one-cycle":
            return S.one_cycle(lr, total, **args)
        warmup = args.pop("warmup_epochs", 1)
        _no_args(name, args)
        return S.warmup_cosine_decay(0.0, lr, max(1, int(warmup * steps_per_epoch)), total)
    except TypeError as e:
        raise ParameterError(f"config: bad schedule_args for {name!r}: {e}") from None


def _no_args(name: str, args: dict[str, Any]) -> None:
    if args:
        raise ParameterError(f"config: schedule {name!r} takes no argument(s) {', '.join(sorted(args))}")


def build_optimizer(cfg: dict[str, Any], model, steps_per_epoch: int, lr: Any = None):
    """The optimizer of the configuration over the model's flat buffer; weight decay spares biases and norms.

    ``lr`` (a float or a schedule), when given, replaces the configuration's rate and schedule
    (``descend lr-find`` passes its exponential sweep).
    """
    from descend import optim

    factory_name, fixed = OPTIMIZERS[cfg["optimizer"]]
    rate = build_schedule(cfg, steps_per_epoch) if lr is None else lr
    kwargs = {**fixed, **cfg["optimizer_args"], "lr": rate}
    if cfg["weight_decay"] is not None:
        kwargs["weight_decay"] = cfg["weight_decay"]
    wd = kwargs.get("weight_decay")
    if wd:
        kwargs["weight_decay"] = (float(wd) * model.decay_mask()).astype(model.params.dtype)
    factory = getattr(optim, factory_name)
    allowed = [p for p in inspect.signature(factory).parameters if p != "lr"]
    unknown = sorted(set(cfg["optimizer_args"]) - set(allowed))
    if unknown:
        raise ParameterError(
            f"config: {cfg['optimizer']} takes no option(s) {', '.join(unknown)}; its options: {', '.join(allowed)}"
        )
    return factory(**kwargs)


def build_callbacks(cfg: dict[str, Any], has_validation: bool) -> list:
    from descend.train.callbacks import EarlyStopping, ReduceLROnPlateau, TerminateOnNaN

    monitor = "val_loss" if has_validation else "loss"
    callbacks: list = [TerminateOnNaN()]
    if cfg["schedule"] == "plateau":
        args = {"factor": 0.5, "patience": 2, **cfg["schedule_args"]}
        callbacks.append(ReduceLROnPlateau(monitor=monitor, **args))
    if cfg["early_stopping"]:
        callbacks.append(EarlyStopping(monitor=monitor, patience=cfg["early_stopping"], restore_best_weights=True))
    return callbacks


# --------------------------------------------------------------------------------------------------------- run


def run(
    config: dict[str, Any],
    out: str | os.PathLike,
    *,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    data: tuple[Any, Any, Any] | None = None,
) -> dict[str, Any]:
    """Train the configuration into run directory ``out`` and return the summary (also in ``summary.json``).

    ``resume=True`` continues the run in ``out`` from its checkpoint (its ``config.json`` wins over
    ``config`` except for ``epochs``, which may grow); the result is bitwise identical to an
    uninterrupted run. Without ``resume``, ``out`` must not already hold a run: nothing written
    before is ever overwritten. ``data`` (train, validation, test) skips loading (the lab reuses it).
    """
    from descend.train.trainer import Trainer

    out = Path(out)
    if resume:
        config = _resume_config(out, config)
    else:
        config = make_config(config)
        if (out / CONFIG).exists() or (out / CHECKPOINT).exists():
            raise ParameterError(
                f"{out} already holds a run (config.json/checkpoint); continue it with --resume {out} "
                "or choose another output directory"
            )
    train, val, test = data if data is not None else load_data(config)
    model = build_model(config, train)
    bs = config["batch_size"] or None
    steps_per_epoch = 1 if bs is None else math.ceil(len(train) / bs)
    tx = build_optimizer(config, model, steps_per_epoch)
    trainer = Trainer(
        model,
        "cross_entropy",
        tx,
        callbacks=[*build_callbacks(config, val is not None), *callbacks],
        run_dir=out,
        seed=config["seed"],
        l1=config["l1"],
        l2=config["l2"],
    )
    history = trainer.fit(
        (train.x, train.y),
        None if val is None else (val.x, val.y),
        epochs=config["epochs"],
        batch_size=bs,
        resume=resume,
        config=config,
    )
    summary = _summary(config, trainer, history, test, model)
    _write_json_atomic(out / SUMMARY, summary)
    return summary


def _resume_config(out: Path, config: dict[str, Any] | None) -> dict[str, Any]:
    path = out / CONFIG
    if not path.is_file() or not (out / CHECKPOINT).exists():
        raise ParameterError(f"--resume {out}: not a run directory (it needs {CONFIG} and {CHECKPOINT})")
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ParameterError(f"--resume {out}: {CONFIG} is not valid JSON ({e})") from None
    if not isinstance(saved, dict):
        raise ParameterError(f"--resume {out}: {CONFIG} must hold a JSON object")
    saved = make_config(saved)
    if config and config.get("epochs") is not None:
        saved["epochs"] = config["epochs"]
    return saved


def _summary(config: dict[str, Any], trainer, history, test, model) -> dict[str, Any]:
    last = history.rows[-1] if len(history) else {}
    has_val = "val_accuracy" in last
    key = "val_accuracy" if has_val else "accuracy"
    status = "completed"
    if trainer.diverged or not all(math.isfinite(v) for v in last.values() if isinstance(v, float)):
        status = "diverged"
    elif trainer.epoch < config["epochs"]:
        status = "stopped early"
    summary: dict[str, Any] = {
        "status": status,
        "epochs": trainer.epoch,
        "steps": trainer.step,
        "wall_time": trainer.wall_time,
        "final": {k: last[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr") if k in last},
    }
    if len(history) and key in last:
        index, value = history.best(key, "max")
        summary["best"] = {key: value, "epoch": index + 1}
    if status != "diverged":
        metrics = trainer.evaluate((test.x, test.y))
        summary["test_loss"], summary["test_accuracy"] = metrics["loss"], metrics.get("accuracy")
    else:
        summary["test_loss"], summary["test_accuracy"] = None, None
    summary["parameters"] = int(model.params.size)
    summary["config"] = config
    return summary


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    tmp.write_text(json.dumps(_finite(obj), indent=2, default=_json_default, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _finite(obj: Any) -> Any:
    """NaN and inf become null: summary.json stays strict JSON that any tool reads."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float | np.floating) and not math.isfinite(obj):
        return None
    return obj


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def read_summary(out: str | os.PathLike) -> dict[str, Any] | None:
    """The run's ``summary.json``, or None if the run has not finished."""
    path = Path(out) / SUMMARY
    if not path.is_file():
        return None
    return json.loads(path.read_text())


__all__ = [
    "BUILTIN_DATASETS",
    "DEFAULTS",
    "MODELS",
    "OPTIMIZERS",
    "SCHEDULES",
    "build_model",
    "build_optimizer",
    "build_schedule",
    "load_data",
    "make_config",
    "read_summary",
    "run",
    "validate",
]
