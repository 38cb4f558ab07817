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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from descend._io import atomic_write_json
from descend._validation import BOOL, Constraint, Interval, OneOf, check
from descend.errors import DataError, ParameterError
from descend.optim import registry
from descend.train import backends


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
    "schedule_args": {},  # in epochs; the keys each schedule takes: SCHEDULE_ARGS
    "weight_decay": None,  # None: the optimizer's default; applied to weights only (not biases/norms)
    "no_decay": None,  # what weight decay and l1/l2 spare: routing-rule selectors; None: ["bias", "norm"]
    "l1": 0.0,
    "l2": 0.0,
    "dropout": 0.0,
    "init": None,  # None: He for ReLU layers; any descend.init name
    "epochs": 10,
    "batch_size": 128,  # None: full batch; 1: stochastic; k: mini-batch (0 is an error)
    "seed": 0,
    "validation": 0.1,  # fraction of the training set held out (0: none)
    "early_stopping": None,  # patience in epochs on val_loss, or None
    "data_dir": None,
    "normalize": "auto",  # auto | none | standard | minmax (per feature, fitted on the training split; see load_data)
    "label_column": -1,  # .csv data: the label column's index (negative from the end) or its header name
    "test_data": None,  # a .csv/.npz test set of a file data set, instead of 20 % of dataset split off
    "backend": "numpy",  # numpy (descend.nn) | torch (torch.nn + descend.torch; descend.torch.training)
    "device": "cpu",  # cpu | cuda | cuda:N (backend torch only)
    "track_sharpness": None,  # K: λ_max every K steps to sharpness.csv, noise scale per epoch (descend.diagnostics)
}

#: name -> (factory name in descend.optim, fixed keyword arguments): a view of descend.optim.registry, where
#: every named optimizer is defined ("momentum" is torch's SGD(momentum=0.9); the heavy-ball forms have own names).
OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = registry.factories()

MODELS = ("mlp", "cnn", "logistic")
SCHEDULES = ("constant", "step", "exponential", "cosine", "one-cycle", "warmup-cosine", "plateau")
BUILTIN_DATASETS = ("mnist1d", "fashion-mnist", "mnist")
NORMALIZE = ("auto", "none", "standard", "minmax")

_NONNEG = Interval(0, math.inf, closed="left")  # finite and >= 0
_POS = Interval(0, math.inf, closed="neither")
_EPOCHS = " (epochs)"
#: The schedule arguments each schedule takes, in the user's units: name -> (constraint, unit).
#: warmup-cosine's warmup_epochs must also be below the run's epochs.
SCHEDULE_ARGS: dict[str, dict[str, tuple[Constraint, str]]] = {
    "constant": {},
    "step": {"step_size": (Interval(1, None, integer=True), _EPOCHS), "gamma": (_NONNEG, "")},
    "exponential": {"gamma": (_POS, " (per epoch)")},
    "cosine": {"alpha": (_NONNEG, "")},
    "one-cycle": {
        "pct_start": (Interval(0, 1), ""),
        "anneal_strategy": (OneOf("cos", "linear"), ""),
        "div_factor": (_POS, ""),
        "final_div_factor": (_POS, ""),
        "three_phase": (BOOL, ""),
    },
    "warmup-cosine": {"warmup_epochs": (_NONNEG, _EPOCHS)},
    "plateau": {  # reduce-on-plateau of the monitored loss, once per epoch; defaults factor 0.5, patience 2
        "factor": (Interval(0, 1, closed="left"), ""),
        "patience": (Interval(0, None, integer=True), _EPOCHS),
        "threshold": (_NONNEG, ""),
        "threshold_mode": (OneOf("rel", "abs"), ""),
        "cooldown": (Interval(0, None, integer=True), _EPOCHS),
        "min_lr": (_NONNEG, ""),
        "mode": (OneOf("auto", "min", "max"), ""),
    },
}

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
    _validate_no_decay(cfg)
    check(owner, "l1", cfg["l1"], Interval(0, None))
    check(owner, "l2", cfg["l2"], Interval(0, None))
    check(owner, "dropout", cfg["dropout"], Interval(0, 1, closed="left"))
    check(owner, "epochs", cfg["epochs"], Interval(1, None, integer=True))
    if cfg["batch_size"] is not None and not Interval(1, None, integer=True).accepts(cfg["batch_size"]):
        raise ParameterError(
            f"config: batch_size must be an integer >= 1 or None (full batch), got {cfg['batch_size']!r}"
        )
    check(owner, "seed", cfg["seed"], Interval(0, None, integer=True))
    check(owner, "validation", cfg["validation"], Interval(0, 1, closed="left"))
    if cfg["early_stopping"] is not None:
        check(owner, "early_stopping", cfg["early_stopping"], Interval(1, None, integer=True))
    if cfg.get("track_sharpness") is not None:
        check(owner, "track_sharpness", cfg["track_sharpness"], Interval(1, None, integer=True))
        if cfg.get("backend", "numpy") != "numpy":
            raise ParameterError(f"config: track_sharpness needs backend 'numpy', got backend {cfg['backend']!r}")
    if cfg["init"] is not None:
        from descend.init import names

        _choice("init", cfg["init"], names())
    _validate_data_keys(cfg)
    backends.validate(cfg)
    _check_schedule_args(cfg["schedule"], cfg["schedule_args"], cfg["epochs"])


def _validate_no_decay(cfg: dict[str, Any]) -> None:
    """``no_decay``: None or a list of routing-rule selectors (``bias``, ``norm``, ``ndim<2``, ``0.*``, ``re:...``)."""
    from descend.optim.masking import SELECTOR_FORMS, selector

    value = cfg["no_decay"]
    if value is None:
        return
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ParameterError(
            f'config: no_decay must be a list of selectors, each {SELECTOR_FORMS} (e.g. ["bias", "norm"]), '
            f"got {value!r}"
        )
    for item in value:
        selector(item, "config: no_decay")


def _is_csv(path: Any) -> bool:
    return isinstance(path, str) and Path(path).suffix.lower() == ".csv"


def _validate_data_keys(cfg: dict[str, Any]) -> None:
    check("config", "normalize", cfg["normalize"], OneOf(*NORMALIZE))
    column = cfg["label_column"]
    if not ((isinstance(column, int) and not isinstance(column, bool)) or (isinstance(column, str) and column)):
        raise ParameterError(f"config: label_column must be a column index or a column name, got {column!r}")
    test = cfg["test_data"]
    if test is not None and not (isinstance(test, str) and test):
        raise ParameterError(f"config: test_data must be a .csv/.npz file path or None, got {test!r}")
    builtin = cfg["dataset"].lower().replace("_", "-") in BUILTIN_DATASETS
    if builtin and test is not None:
        raise ParameterError(
            f"config: test_data replaces the 20 % test split of a file data set; {cfg['dataset']} is a built-in "
            f"data set with its own test set (got test_data={test!r})"
        )
    if column != -1 and not (_is_csv(cfg["dataset"]) or _is_csv(test)):
        raise ParameterError(
            f"config: label_column applies to .csv data sets (an .npz holds arrays x and y; built-in data sets "
            f"have their labels), got label_column={column!r} for {cfg['dataset']}"
        )


def _check_schedule_args(name: str, args: dict[str, Any], epochs: int) -> None:
    """Each argument of schedule ``name`` in the user's units (epochs), before any is converted to steps."""
    spec = SCHEDULE_ARGS[name]
    unknown = [k for k in args if k not in spec]
    if unknown:
        takes = ", ".join(spec) if spec else "no arguments"
        raise ParameterError(f"config: schedule {name!r} takes {takes}; got {', '.join(unknown)}")
    for key, value in args.items():
        constraint, unit = spec[key]
        if key == "warmup_epochs":
            constraint = Interval(0, epochs, closed="left")
        if not constraint.accepts(value):
            raise ParameterError(f"config: schedule {name!r}: {key} must be {constraint}{unit}, got {value!r}")


# ------------------------------------------------------------------------------------------------------- build


def load_data(cfg: dict[str, Any]):
    """``(train, validation or None, test)`` Datasets for the configuration's data set.

    A file data set (``.csv``/``.npz``) is split at random (seeded) into 80 % training and 20 % test
    samples, unless ``test_data`` names a test file (same columns; its labels must be the data set's
    classes). The ``validation`` fraction is then held out of the training part.

    ``normalize``: ``"standard"`` (mean 0, standard deviation 1 per feature) or ``"minmax"`` ([0, 1]
    per feature) with statistics fitted on the training split only and applied to all three;
    ``"none"``: the inputs as read; ``"auto"`` (default): ``"standard"`` for a file data set, and each
    built-in data set as its loader prepares it (MNIST-1D as generated, (Fashion-)MNIST pixels
    standardized with the training images' mean and standard deviation). The fitted
    :class:`~descend.data.Normalization` is each returned Dataset's ``normalization``
    (:func:`describe_data` puts it into ``summary.json``).
    """
    from descend.data import Normalization, Splits, load, train_validation_split

    name, method = cfg["dataset"], cfg["normalize"]
    key = name.lower().replace("_", "-")
    if key in BUILTIN_DATASETS:
        kwargs: dict[str, Any] = {}
        if key != "mnist1d":
            kwargs = {"flatten": True, "normalize": method == "auto", "data_dir": cfg["data_dir"]}
        splits = load(key, **kwargs)
        fit = None if method in ("auto", "none") else method
    else:
        full = _read_file(cfg, "dataset")
        if cfg["test_data"] is None:
            rest, test = train_validation_split(full, 0.2, cfg["seed"])
            splits = Splits(rest, test)
        else:
            splits = Splits(full, _read_file(cfg, "test_data", like=full))
        fit = "standard" if method == "auto" else (None if method == "none" else method)
    train, val, test = splits.train, None, splits.test
    if cfg["validation"]:
        train, val = train_validation_split(splits.train, cfg["validation"], np.random.default_rng(cfg["seed"]))
    if fit is not None:
        norm = Normalization.fit(train, fit)
        train, test = norm.apply(train), norm.apply(test)
        val = None if val is None else norm.apply(val)
    return train, val, test


def _read_file(cfg: dict[str, Any], key: str, like: Any = None):
    """The data set in the file ``cfg[key]`` (``.csv`` or ``.npz``); ``like``: the data set a test file must match."""
    from descend.data import from_arrays, from_csv

    name = cfg[key]
    path = Path(name)
    what = "dataset" if key == "dataset" else "test_data"
    if not path.is_file():
        if key == "dataset":
            raise DataError(
                f"dataset {name!r} is neither a built-in data set ({', '.join(BUILTIN_DATASETS)}) "
                "nor an existing .csv/.npz file"
            )
        raise DataError(f"test_data {name!r} is not an existing .csv/.npz file")
    match = {} if like is None else {"num_classes": like.num_classes, "classes": like.classes}
    if path.suffix.lower() == ".csv":
        ds = from_csv(path, label_column=cfg["label_column"], **match)
    elif path.suffix.lower() == ".npz":
        ds = _from_npz(path, from_arrays, **match)
    else:
        raise DataError(f"{what} {name!r}: a file data set must be .csv or .npz, got {path.suffix or 'no suffix'}")
    if like is not None and ds.sample_shape != like.sample_shape:
        if len(ds.sample_shape) == len(like.sample_shape) == 1:
            given = f"{ds.num_features} features per sample, the data set {like.num_features}"
        else:
            given = f"samples of shape {ds.sample_shape}, the data set {like.sample_shape}"
        raise DataError(f"test_data {name!r}: the test data has {given} ({cfg['dataset']})")
    return ds


def describe_data(cfg: dict[str, Any], train) -> dict[str, Any]:
    """What a run trained on, for ``summary.json``: features, classes (names, sorted, when the labels were
    names) and the normalization (``{"method", "shift", "scale"}``; ``"built-in"``: the data set's own)."""
    if train.normalization is not None:
        normalization = train.normalization.to_json()
    elif cfg["normalize"] == "auto" and cfg["dataset"].lower().replace("_", "-") in BUILTIN_DATASETS:
        normalization = {"method": "built-in"}
    else:
        normalization = {"method": "none"}
    return {
        "features": int(train.num_features),
        "num_classes": int(train.num_classes),
        "classes": None if train.classes is None else list(train.classes),
        "normalization": normalization,
    }


def _from_npz(path: Path, from_arrays: Callable[..., Any], **kwargs: Any):
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = {"x", "y"} - set(f.files)
            if missing:
                raise DataError(f"{path}: an .npz data set needs arrays 'x' and 'y'; it has {', '.join(f.files)}")
            x, y = f["x"], f["y"]
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    return from_arrays(x, y, name=path.stem, **kwargs)


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
    """The learning rate: a float, or a schedule of the step count.

    ``schedule_args`` are in epochs (:data:`SCHEDULE_ARGS`) and are checked as given before they are
    converted to steps. ``plateau`` is a callback (:func:`build_callbacks`): its rate here is constant.
    """
    from descend import schedules as S

    lr, name, args, epochs = cfg["lr"], cfg["schedule"], dict(cfg["schedule_args"]), cfg["epochs"]
    _check_schedule_args(name, args, epochs)
    total = epochs * steps_per_epoch
    if name in ("constant", "plateau"):
        return lr
    if name == "step":
        step_size = int(args.get("step_size", max(1, epochs // 3)))
        return S.step_decay(lr, step_size * steps_per_epoch, args.get("gamma", 0.1))
    if name == "exponential":
        return S.exponential_decay(lr, args.get("gamma", 0.95), transition_steps=steps_per_epoch, staircase=True)
    if name == "cosine":
        return S.cosine_decay(lr, total, args.get("alpha", 0.0))
    if name == "one-cycle":
        return S.one_cycle(lr, total, **args)
    warmup = max(1, int(args.get("warmup_epochs", 1) * steps_per_epoch))
    warmup = min(warmup, total - 1)  # at least one step of decay (a run of one step has no warm-up)
    return S.warmup_cosine_decay(0.0, lr, warmup, total)


def _weight_decay_plan(
    cfg: dict[str, Any],
    kwargs: dict[str, Any],
    allowed: Sequence[str],
    signature: Mapping[str, inspect.Parameter],
    decays: Callable[[Any], dict[str, bool]],
) -> tuple[Any, dict[str, bool] | None]:
    """Which weight decay applies and to which parameters, for both backends' ``build_optimizer``.

    ``cfg["weight_decay"]``, when given, goes into ``kwargs`` (an error naming ``allowed`` when the optimizer has
    none). The decay that applies is ``kwargs``' one; with ``no_decay`` given and none set, the optimizer's own
    default (``signature``'s) is routed by the rules too. Returns ``(decay, {name: decays?})``, the mapping from
    ``decays(no_decay)``, or ``(decay, None)`` when no decay applies (None or 0).
    """
    if cfg["weight_decay"] is not None:
        if "weight_decay" not in allowed:
            raise ParameterError(
                f"config: {cfg['optimizer']} has no weight decay (got weight_decay={cfg['weight_decay']!r}); "
                f"its options: {', '.join(allowed)}"
            )
        kwargs["weight_decay"] = cfg["weight_decay"]
    no_decay = cfg.get("no_decay")
    wd = kwargs.get("weight_decay")
    if wd is None and no_decay is not None and "weight_decay" in allowed:
        wd = signature["weight_decay"].default  # --no-decay given: route the optimizer's own decay too
    if not wd:
        return wd, None
    return wd, decays(no_decay)


def build_optimizer(cfg: dict[str, Any], model, steps_per_epoch: int, lr: Any = None):
    """The optimizer of the configuration over the model's named parameter tree (``model.named_parameters()``).

    A weight decay (``weight_decay``, or an ``optimizer_args`` one; with ``no_decay`` given, also the
    optimizer's own default) applies to the parameters the ``no_decay`` rules do not select (default:
    biases and norm layers; :meth:`descend.nn.Module.decays`): as torch's two parameter groups,
    ``partition({"decay": opt(weight_decay=λ), "no_decay": opt(weight_decay=0)}, labels)``. ``lr`` (a
    float or a schedule), when given, replaces the configuration's rate and schedule (``descend
    lr-find`` passes its exponential sweep).
    """
    from descend import optim

    factory_name, fixed = OPTIMIZERS[cfg["optimizer"]]
    factory = getattr(optim, factory_name)
    signature = inspect.signature(factory).parameters
    allowed = [p for p in signature if p != "lr"]
    unknown = sorted(set(cfg["optimizer_args"]) - set(allowed))
    if unknown:
        raise ParameterError(
            f"config: {cfg['optimizer']} takes no option(s) {', '.join(unknown)}; its options: {', '.join(allowed)}"
        )
    rate = build_schedule(cfg, steps_per_epoch) if lr is None else lr
    kwargs = {**fixed, **cfg["optimizer_args"], "lr": rate}
    wd, decays = _weight_decay_plan(cfg, kwargs, allowed, signature, model.decays)
    if decays is None:
        return factory(**kwargs)
    decayed = factory(**{**kwargs, "weight_decay": wd})
    if all(decays.values()):
        return decayed
    spared = factory(**{**kwargs, "weight_decay": 0.0})
    if not any(decays.values()):
        return spared
    labels = {name: "decay" if on else "no_decay" for name, on in decays.items()}
    if isinstance(decayed, optim.SharpnessAware):  # the perturbation is global: one SAM around both groups
        sam_args = {k: kwargs[k] for k in ("rho", "adaptive", "use_gc", "perturb_eps") if k in kwargs}
        groups = optim.partition({"decay": decayed.optimizer, "no_decay": spared.optimizer}, labels)
        return optim.sam(groups, **sam_args)
    return optim.partition({"decay": decayed, "no_decay": spared}, labels)


def build_callbacks(cfg: dict[str, Any], has_validation: bool) -> list:
    from descend.train.callbacks import EarlyStopping, ReduceLROnPlateau, TerminateOnNaN

    monitor = "val_loss" if has_validation else "loss"
    callbacks: list = [TerminateOnNaN()]
    if cfg["schedule"] == "plateau":
        _check_schedule_args("plateau", cfg["schedule_args"], cfg["epochs"])
        args = {"factor": 0.5, "patience": 2, **cfg["schedule_args"]}
        for key in ("patience", "cooldown"):  # 2.0 from a TOML file is 2 epochs
            if key in args:
                args[key] = int(args[key])
        callbacks.append(ReduceLROnPlateau(monitor=monitor, **args))
    if cfg["early_stopping"]:
        callbacks.append(EarlyStopping(monitor=monitor, patience=cfg["early_stopping"], restore_best_weights=True))
    if cfg.get("track_sharpness"):
        from descend.diagnostics.callbacks import NoiseScaleLogger, SharpnessTracker

        adam = OPTIMIZERS[cfg["optimizer"]][0] in ("adam", "adamw")
        args = {k: cfg["optimizer_args"][k] for k in ("betas", "eps") if adam and k in cfg["optimizer_args"]}
        callbacks += [SharpnessTracker(int(cfg["track_sharpness"]), preconditioned=adam, **args), NoiseScaleLogger()]
    return callbacks


# --------------------------------------------------------------------------------------------------------- run


def run(
    config: dict[str, Any],
    out: str | os.PathLike,
    *,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    data: tuple[Any, Any, Any] | None = None,
    allow_change: Sequence[str] = (),
) -> dict[str, Any]:
    """Train the configuration into run directory ``out`` and return the summary (also in ``summary.json``).

    ``resume=True`` continues the run in ``out`` from its checkpoint; the result is bitwise identical to an
    uninterrupted run. The configuration is the one the checkpoint was written with: ``config.json``
    (and ``config``, whose keys override it) may differ from it only in ``epochs`` and in the keys named
    by ``allow_change`` (e.g. ``("data_dir",)`` after moving the data); any other difference is refused,
    naming each changed key with its old and new value. ``epochs`` may change (grow, or shrink down to
    the epochs already done) only when the schedule does not depend on the run's total length
    (constant, exponential, plateau, step with an explicit ``step_size``); the change is recorded in
    ``config.json`` (``"extended": [{"from": 60, "to": 80, "at_epoch": 60}]``, and allowed key changes
    under ``"changed"``). Without ``resume``, ``out`` must not already hold a run: nothing written
    before is ever overwritten. ``data`` (train, validation, test) skips loading (the lab reuses it).

    One process writes ``out`` at a time (:mod:`descend.train.lock`): a second writer is refused with the
    first one named.
    """
    from descend.train import lock
    from descend.train.trainer import Trainer

    out = Path(out)
    allowed = _allowed_changes(allow_change, resume)
    if resume:
        if not out.is_dir():
            raise ParameterError(f"--resume {out}: not a run directory (it does not exist)")
    else:
        config = make_config(config)
    with lock.hold(out, "descend train"):
        record: dict[str, Any] | None = None
        if resume:
            config, record = _resume_config(out, config, allowed)
        elif (out / CONFIG).exists() or (out / CHECKPOINT).exists():
            raise ParameterError(
                f"{out} already holds a run (config.json/checkpoint); continue it with --resume {out} "
                "or choose another output directory"
            )
        train, val, test = data if data is not None else load_data(config)
        if config["backend"] == "torch":  # the same run directory, trained with torch.nn and descend.torch
            from descend.torch.training import run_torch

            return run_torch(config, out, (train, val, test), resume=resume, callbacks=callbacks, record=record)
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
            no_decay=config["no_decay"],
        )
        if record is not None:  # everything is validated: record the extension / allowed change, then train
            _write_json_atomic(out / CONFIG, {**config, **record})
            (out / SUMMARY).unlink(missing_ok=True)  # it described the run before the change
        history = trainer.fit(
            (train.x, train.y),
            None if val is None else (val.x, val.y),
            epochs=config["epochs"],
            batch_size=bs,
            resume=resume,
            config=config,
        )
        summary = _summary(config, trainer, history, test, model)
        summary["data"] = describe_data(config, train)  # classes and normalization, to read the results
        _write_json_atomic(out / SUMMARY, summary)
    return summary


#: Schedules whose learning rate at a step depends on the run's total length: such a run cannot change length.
LENGTH_DEPENDENT_SCHEDULES = ("cosine", "one-cycle", "warmup-cosine")
#: Keys ``config.json`` may hold besides the configuration: the record of how a resumed run was changed.
RECORD_KEYS = ("extended", "changed")


def _allowed_changes(allow_change: Sequence[str], resume: bool) -> tuple[str, ...]:
    if isinstance(allow_change, str):
        allow_change = (allow_change,)
    names = tuple(str(k).replace("-", "_") for k in allow_change)
    if names and not resume:
        raise ParameterError(f"allow_change ({', '.join(names)}) applies only when resuming a run")
    for key in names:
        if key == "backend":
            raise ParameterError(
                "allow_change: backend cannot change on resume (the checkpoint holds one backend's state); "
                "start a new run with the other backend"
            )
        if key == "epochs":
            raise ParameterError("allow_change: epochs has its own rule (give the new number of epochs); not 'epochs'")
        if key not in DEFAULTS:
            keys = ", ".join(k for k in DEFAULTS if k != "epochs")
            raise ParameterError(f"allow_change: unknown configuration key {key!r}; valid keys: {keys}")
    return names


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _resume_config(
    out: Path, config: dict[str, Any] | None, allowed: Sequence[str] = ()
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The configuration to continue ``out`` with, and the record to add to its ``config.json`` (or None)."""
    from descend.train.checkpoint import config_hash, read_checkpoint_meta

    path = out / CONFIG
    if not path.is_file() or not (out / CHECKPOINT).exists():
        raise ParameterError(f"--resume {out}: not a run directory (it needs {CONFIG} and {CHECKPOINT})")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ParameterError(f"--resume {out}: {CONFIG} is not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ParameterError(f"--resume {out}: {CONFIG} must hold a JSON object")
    record = {k: doc.pop(k) for k in RECORD_KEYS if k in doc}
    dataset = doc.get("dataset")
    file_data = isinstance(dataset, str) and dataset.lower().replace("_", "-") not in BUILTIN_DATASETS
    if "normalize" not in doc and file_data:
        doc["normalize"] = "none"  # written before descend normalized file data sets: its data stays as trained
    for key, entries in record.items():
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ParameterError(f"--resume {out}: {CONFIG} key {key!r} must be a list of records, got {entries!r}")
    saved = make_config(doc)
    effective = make_config({**saved, **(config or {})})
    meta = read_checkpoint_meta(out / CHECKPOINT)
    done = int(meta.get("epoch", 0))
    checkpointed = meta.get("config")
    reference = make_config(checkpointed) if isinstance(checkpointed, dict) else saved
    total = int(meta.get("epochs_total") or reference["epochs"])

    changed: dict[str, tuple[Any, Any]] = {}
    if meta.get("config_sha256") != config_hash(effective):
        changed = {
            k: (reference[k], effective[k])
            for k in DEFAULTS
            if k != "epochs" and _canonical(reference[k]) != _canonical(effective[k])
        }
    refused = [k for k in changed if k not in allowed]
    if refused:
        diffs = "; ".join(f"{k}: {changed[k][0]!r} -> {changed[k][1]!r}" for k in refused)
        flags = " ".join(f"--allow-change {k}" for k in refused)
        raise ParameterError(
            f"--resume {out}: the configuration differs from the one its checkpoint was trained with ({diffs}); "
            f"resuming would not continue the same run. Undo the change, start a new run, or accept it with "
            f"{flags} (allow_change={tuple(refused)!r})"
        )

    target = effective["epochs"]
    extended = list(record.get("extended", []))
    if target != total:
        if target < done:
            raise ParameterError(
                f"--resume {out}: epochs {target} is fewer than the {done} epochs this run has already done; "
                f"give at least --epochs {done}"
            )
        schedule = effective["schedule"]
        implicit_step = schedule == "step" and "step_size" not in effective["schedule_args"]
        if schedule in LENGTH_DEPENDENT_SCHEDULES or implicit_step:
            why = (
                "its step_size defaults to epochs // 3"
                if implicit_step
                else "its learning rate at each step depends on the total number of epochs"
            )
            raise ParameterError(
                f"--resume {out}: cannot change the length of a run with the {schedule!r} schedule from {total} to "
                f"{target} epochs: {why}, so the rate would jump where the old and the new schedule meet. Finish it "
                f"with --epochs {total}, or start a new run with --epochs {target}"
            )
        entry = {"from": total, "to": target, "at_epoch": done}
        if not extended or extended[-1] != entry:  # not already recorded by an attempt cut off before a checkpoint
            extended.append(entry)
    changes = list(record.get("changed", []))
    for k in DEFAULTS:
        if k in changed:
            entry = {"key": k, "from": changed[k][0], "to": changed[k][1], "at_epoch": done}
            if entry not in changes:
                changes.append(entry)
    new_record = {"extended": extended, "changed": changes}
    new_record = {k: v for k, v in new_record.items() if v}
    if new_record == record and _canonical(saved) == _canonical(effective):
        return effective, None
    return effective, new_record


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
    summary["checkpoint_weights"] = trainer.checkpoint_weights  # "last", or "best (epoch 7)" (early stopping)
    summary["config"] = config
    return summary


def _write_json_atomic(path: Path, obj: Any) -> None:
    atomic_write_json(path, _finite(obj), default=_json_default, allow_nan=False)


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
    "NORMALIZE",
    "OPTIMIZERS",
    "SCHEDULES",
    "SCHEDULE_ARGS",
    "build_model",
    "build_optimizer",
    "build_schedule",
    "describe_data",
    "load_data",
    "make_config",
    "read_summary",
    "run",
    "validate",
]
