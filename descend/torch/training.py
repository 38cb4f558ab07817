"""Training with ``torch.nn`` and :mod:`descend.torch`: ``backend = "torch"`` of :func:`descend.train.experiment.run`.

``descend train --backend torch [--device cpu|cuda]`` runs the same recipe as the NumPy backend and
leaves the same run directory (``config.json``, ``metrics.csv`` with the same columns,
``checkpoint``, ``summary.json`` with the same keys), which ``descend compare`` and its report read
unchanged. Everything but the arithmetic is shared with the NumPy backend:

* data, split and normalization: :func:`~descend.train.experiment.load_data`; the batches are drawn by
  a :class:`descend.data.Loader` with the same seed, so both backends see the same batches in the same
  order (the data sits on the device once; each batch is gathered there by index);
* model: the preset of :func:`~descend.train.experiment.build_model` translated to ``torch.nn``, with
  the same initial weights (:mod:`descend.torch.models`);
* optimizer: the configuration's optimizer as its :mod:`descend.torch` drop-in class, the learning rate
  (a float or a descend schedule from :func:`~descend.train.experiment.build_schedule`) evaluated at the
  optimizer's step count as in NumPy; weight decay on weights only (a second parameter group of
  biases and norm layers with ``weight_decay = 0``); L1/L2 penalties on the weights;
* callbacks: those of :func:`~descend.train.experiment.build_callbacks` (reduce-on-plateau, early stopping
  with the best weights restored, stop on NaN), and any others that use the trainer's counters;
* the run-directory lock, the atomic ``.npz`` checkpoint (no pickle: tensors are stored as NumPy
  arrays, the optimizer's ``state_dict()`` flattened into ``optimizer/<param>/<key>``, the torch RNG
  states as byte arrays) and the summary.

``--resume`` continues from the checkpoint; on the CPU (with ``torch.use_deterministic_algorithms(True)``
and a fixed number of threads) the resumed run ends bitwise equal to an uninterrupted one. Dropout
draws from torch's generators, seeded with the run's seed inside :func:`torch.random.fork_rng`,
so a run leaves the caller's torch RNG state as it found it.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from descend._validation import Interval, check
from descend.errors import DescendError, ParameterError
from descend.optim.learning_rate import resolve_lr
from descend.torch.models import build_model, decays
from descend.torch.optimizers import CLASSES, class_name
from descend.train import callbacks as C
from descend.train import experiment as ex
from descend.train.checkpoint import CheckpointError
from descend.train.trainer import (
    CONFIG,
    LAST_PARAMS,
    History,
    TrainingLoop,
    _as_xy,
)

#: Checkpoint array names of the torch generators' states (CPU, and the CUDA device's when training on one).
RNG_CPU, RNG_CUDA = "rng/torch", "rng/cuda"
_OPTIMIZER = "optimizer/"


# ------------------------------------------------------------------------------------------------------ build


def build_optimizer(cfg: dict[str, Any], model: torch.nn.Module, steps_per_epoch: int, lr: Any = None):
    """The configuration's optimizer as its :mod:`descend.torch` class over ``model``'s parameters.

    The torch twin of :func:`descend.train.experiment.build_optimizer`: the same factory and keyword
    arguments (``"momentum"`` is ``SGD(momentum=0.9)``), the same learning rate or schedule, and a given
    ``weight_decay`` on the weights only.
    """
    factory_name, fixed = ex.OPTIMIZERS[cfg["optimizer"]]
    cls = CLASSES[class_name(factory_name)]
    allowed = [p for p in cls.hyperparameters if p != "lr"]
    unknown = sorted(set(cfg["optimizer_args"]) - set(allowed))
    if unknown:
        raise ParameterError(
            f"config: {cfg['optimizer']} takes no option(s) {', '.join(unknown)}; its options: {', '.join(allowed)}"
        )
    rate = ex.build_schedule(cfg, steps_per_epoch) if lr is None else lr
    kwargs = {**fixed, **cfg["optimizer_args"]}
    named = list(model.named_parameters())
    signature = inspect.signature(cls).parameters
    wd, mask = ex._weight_decay_plan(cfg, kwargs, allowed, signature, lambda no_decay: decays(model, no_decay))
    if mask is not None:  # the no_decay rules (default biases and norm layers) spare what they select
        kwargs.pop("weight_decay", None)
        groups = [
            {"params": [p for n, p in named if mask[n]], "weight_decay": wd},
            {"params": [p for n, p in named if not mask[n]], "weight_decay": 0.0},
        ]
        params: Any = [g for g in groups if g["params"]]
    else:
        if wd is not None:  # the optimizer's own default when --no-decay routed it (as the NumPy backend)
            kwargs["weight_decay"] = wd
        params = [p for _, p in named]
    return cls(params, lr=rate, **kwargs)


# ---------------------------------------------------------------------------------------------------- callbacks


class EarlyStopping(C.EarlyStopping):
    """:class:`descend.train.callbacks.EarlyStopping` for a :class:`TorchTrainer` (the best weights as one
    flat NumPy array, as in NumPy, so the checkpoint holds them the same way)."""

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        value = C._monitored("EarlyStopping", self.monitor, logs)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_params = trainer.flat_params()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                trainer.stop_training = True

    def on_train_end(self, trainer, logs: dict[str, float]) -> None:
        if self.restore_best_weights and self.best_params is not None:
            trainer.set_flat_params(self.best_params)
            trainer.checkpoint_weights = f"best (epoch {self.best_epoch + 1})"


class ReduceLROnPlateau(C.ReduceLROnPlateau):
    """:class:`descend.train.callbacks.ReduceLROnPlateau` for a :class:`TorchTrainer`: the controller's
    multiplier scales each parameter group's learning rate (schedule included)."""

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        value = C._monitored("ReduceLROnPlateau", self.monitor, logs)
        self.state = self.controller.update(self.state, value, lr=trainer.base_lr())
        trainer.set_lr_scale(self.state.scale)


#: NumPy-backend callbacks that reach into the weights or the optimizer state -> their torch versions.
_TORCH_CALLBACKS: dict[type, type] = {C.EarlyStopping: EarlyStopping, C.ReduceLROnPlateau: ReduceLROnPlateau}


def for_torch(callbacks: Sequence[C.Callback]) -> list[C.Callback]:
    """``callbacks`` made to work with a :class:`TorchTrainer`: an ``EarlyStopping`` or ``ReduceLROnPlateau``
    of :mod:`descend.train.callbacks` becomes its torch version here (same settings, same state, same name in
    the checkpoint); every other callback is kept as it is (it may use the trainer's counters:
    ``epoch``, ``epochs``, ``step``, ``batches_per_epoch``, ``stop_training``, ``diverged``)."""
    out = []
    for cb in callbacks:
        torch_type = _TORCH_CALLBACKS.get(type(cb))
        if torch_type is not None:
            cb.__class__ = torch_type  # a subclass that adds no attributes: the configured object carries over
        out.append(cb)
    return out


# ------------------------------------------------------------------------------------------------------ trainer


def _tensor(a: np.ndarray) -> torch.Tensor:
    """A tensor sharing ``a``'s memory when ``a`` is writable (torch warns on read-only arrays), else a copy."""
    a = np.asarray(a)
    return torch.from_numpy(a if a.flags.writeable and a.flags.c_contiguous else np.array(a, copy=True, order="C"))


class TorchTrainer(TrainingLoop):
    """Train a ``torch.nn`` classifier with a :mod:`descend.torch` optimizer, as :class:`descend.train.Trainer`
    trains a descend model: the same per-epoch logs and ``metrics.csv`` columns, checkpoints, callbacks
    and resume.

    Parameters
    ----------
    model: a ``torch.nn.Module`` mapping a batch of inputs to logits (cross-entropy loss).
    optimizer: a ``torch.optim.Optimizer`` from :mod:`descend.torch`; each group's ``lr`` (a float or a
        descend schedule of the step count) is the rate the plateau multiplier scales.
    callbacks, run_dir, seed, l1, l2, telemetry_every, checkpoint_every: as for the NumPy trainer
        (``seed`` seeds the batch order and, through torch's generators, dropout).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        callbacks: Sequence[C.Callback] = (),
        run_dir: str | os.PathLike | None = None,
        seed: int = 0,
        l1: float = 0.0,
        l2: float = 0.0,
        no_decay: Any = None,
        telemetry_every: int = 10,
        checkpoint_every: int = 1,
    ):
        owner = "TorchTrainer"
        check(owner, "seed", seed, Interval(0, None, integer=True))
        check(owner, "l1", l1, Interval(0, None))
        check(owner, "l2", l2, Interval(0, None))
        check(owner, "telemetry_every", telemetry_every, Interval(1, None, integer=True))
        check(owner, "checkpoint_every", checkpoint_every, Interval(1, None, integer=True))
        named = list(model.named_parameters())
        if not named:
            raise ParameterError(f"{owner}: the model has no parameters to train")
        self.model, self.optimizer = model, optimizer
        self.callbacks = for_torch(callbacks)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.seed, self.l1, self.l2 = int(seed), float(l1), float(l2)
        self.telemetry_every, self.checkpoint_every = int(telemetry_every), int(checkpoint_every)
        self.device = named[0][1].device
        self._params = [p for _, p in named]
        self.num_parameters = sum(p.numel() for p in self._params)
        mask = decays(model, no_decay)
        self._penalized = [p for n, p in named if mask[n]] if (self.l1 or self.l2) else []
        # A layer is a parameter name up to its last dot ("1.weight", "1.bias" -> "1"), as in descend.train.telemetry.
        self.layers: list[str] = []
        ids = []
        for name, _ in named:
            layer = name.rsplit(".", 1)[0] if "." in name else name
            if not self.layers or self.layers[-1] != layer:
                self.layers.append(layer)
            ids.append(len(self.layers) - 1)
        # layers x parameters, 1 where the parameter belongs to the layer: per-layer sums are one matmul
        # (deterministic on every device, unlike index_add_ on CUDA)
        self._layer_matrix = torch.zeros(len(self.layers), len(ids), dtype=torch.float64, device=self.device)
        self._layer_matrix[ids, list(range(len(ids)))] = 1.0
        self._base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.rate = self._base_lrs[0]  # every group follows the configuration's rate or schedule
        self.lr_scale = 1.0
        self.loader = None
        self.history = History()
        self.epoch = 0
        self.step = 0
        self.epochs = 0
        self.batches_per_epoch = 0
        self.stop_training = False
        self.diverged = False
        self.checkpoint_weights = "last"
        self.config: dict[str, Any] | None = None
        self.wall_time = 0.0
        self._last_params: np.ndarray | None = None
        self._saved: tuple[int, bool, str] | None = None
        self._x = self._y = None

    # ----------------------------------------------------------------- helpers

    def lr(self) -> float:
        """The learning rate of the last update (the first one's before any), as NumPy logs it."""
        if self.step == 0:
            return resolve_lr(self.rate, 0)
        return resolve_lr(self.rate, self.step - 1) * self.lr_scale

    def base_lr(self) -> float:
        """The learning rate of the last update before any plateau scaling."""
        return resolve_lr(self.rate, max(self.step - 1, 0))

    def set_lr_scale(self, scale: float) -> None:
        """Multiply every group's learning rate (or schedule) by ``scale`` from the next update on."""
        scale = float(scale)
        if scale == self.lr_scale:
            return
        self.lr_scale = scale
        for group, base in zip(self.optimizer.param_groups, self._base_lrs, strict=True):
            group["lr"] = base if scale == 1.0 else _scaled(base, scale)

    def flat_params(self) -> np.ndarray:
        """A copy of every parameter, flattened and concatenated in ``model.parameters()`` order."""
        return np.concatenate([p.detach().cpu().numpy().ravel() for p in self._params])

    def set_flat_params(self, flat: np.ndarray) -> None:
        flat = np.asarray(flat)
        if flat.shape != (self.num_parameters,):
            raise CheckpointError(f"flat parameters of shape {flat.shape}; this model has {self.num_parameters}")
        offset = 0
        with torch.no_grad():
            for p in self._params:
                n = p.numel()
                p.copy_(_tensor(flat[offset : offset + n].reshape(p.shape)))
                offset += n

    def _penalty(self) -> torch.Tensor | None:
        """λ₁ Σ|w| + λ₂/2 Σ w² over the weights (not biases or norm layers), as NumPy's ``penalty``."""
        if not self._penalized:
            return None
        total = torch.zeros((), device=self.device)
        if self.l1:
            total = total + self.l1 * sum(p.abs().sum() for p in self._penalized)
        if self.l2:
            total = total + (self.l2 / 2) * sum(p.square().sum() for p in self._penalized)
        return total

    def _layer_norms(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """L2 norm of each layer's tensors (float64 accumulation, on the device)."""
        squares = torch.stack([t.detach().double().square().sum() for t in tensors])
        return (self._layer_matrix @ squares).sqrt()

    def _tensors(self, data: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
            return data
        x, y = _as_xy(data, "TorchTrainer", what)
        return _tensor(x).to(self.device), _tensor(np.asarray(y, dtype=np.int64)).to(self.device)

    # ------------------------------------------------------------------- train

    _owner = "TorchTrainer"

    def _load_train(self, train: Any) -> tuple[Any, int]:
        self._x, self._y = self._tensors(train, "train")
        # Batches of sample indices, in the order the NumPy backend's Loader((x, y), ...) draws them.
        return np.arange(len(self._x)), len(self._x)

    def _load_validation(self, validation: Any) -> Any:
        return None if validation is None else self._tensors(validation, "validation")

    def _run_context(self) -> contextlib.AbstractContextManager:
        return self._own_rng()

    def _weights(self) -> np.ndarray:
        return self.flat_params()

    def _metric_layers(self) -> list[str]:
        return self.layers

    @contextlib.contextmanager
    def _own_rng(self) -> Iterator[None]:
        """torch's generators seeded with the run's seed (restored from the checkpoint on resume) for the
        run, and the caller's states back afterwards."""
        cuda = self.device.type == "cuda"
        devices = [self.device.index if self.device.index is not None else torch.cuda.current_device()] if cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.random.default_generator.manual_seed(self.seed)
            if cuda:
                with torch.cuda.device(devices[0]):
                    torch.cuda.manual_seed(self.seed)
            yield

    def _train_epoch(self) -> dict[str, float]:
        model, opt, params = self.model, self.optimizer, self._params
        model.train()
        total_loss = total_penalty = 0.0
        seen = 0
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        gnorm_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        gnorm_n = 0
        layer_g = np.zeros(len(self.layers))
        layer_r = np.zeros(len(self.layers))
        tel_n = 0
        classify = False
        for b, idx in enumerate(self.loader):
            index = torch.from_numpy(np.array(idx)).to(self.device)
            xb, yb = self._x[index], self._y[index]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            penalty = self._penalty()
            opt.zero_grad(set_to_none=True)
            (loss if penalty is None else loss + penalty).backward()
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            gnorm_sum += torch.nn.utils.get_total_norm(grads).double()
            gnorm_n += 1
            telemetry = self.step % self.telemetry_every == 0 or b == self.batches_per_epoch - 1
            if telemetry:  # per-layer gradient norms and update-to-weight ratios ‖Δw‖/‖w‖ of this step
                before = [p.detach().clone() for p in params]
                gn = self._layer_norms(grads)
            opt.step()
            if telemetry:
                un = self._layer_norms([p.detach() - w for p, w in zip(params, before, strict=True)])
                g, u, w = torch.stack([gn, un, self._layer_norms(before)]).cpu().numpy()
                layer_g += g
                layer_r += np.divide(u, w, out=np.zeros_like(u), where=w > 0)
                tel_n += 1
            self.step += 1
            value = loss.item()
            n = len(idx)
            seen += n
            total_loss += value * n
            if penalty is not None:
                total_penalty += penalty.item() * n
            if logits.ndim == 2 and logits.shape[1] > 1:
                classify = True
                correct += (logits.detach().argmax(dim=1) == yb).sum()
            if self.callbacks:
                batch_logs = {"batch": b, "loss": value, "lr": self.lr()}
                for cb in self.callbacks:
                    cb.on_batch_end(self, self.step, batch_logs)
            if not math.isfinite(value):
                self.diverged = True
            if self.stop_training or self.diverged:
                break
        logs = {"lr": self.lr(), "loss": total_loss / max(seen, 1)}
        if classify:
            logs["accuracy"] = int(correct) / max(seen, 1)
        if self.l1 or self.l2:
            logs["penalty"] = total_penalty / max(seen, 1)
        logs["grad_norm"] = float(gnorm_sum) / max(gnorm_n, 1)
        for name, g, r in zip(self.layers, layer_g / max(tel_n, 1), layer_r / max(tel_n, 1), strict=True):
            logs[f"grad_norm/{name}"] = float(g)
            logs[f"update_ratio/{name}"] = float(r)
        return logs

    # -------------------------------------------------------------- inference

    @torch.no_grad()
    def predict(self, x: Any, batch_size: int = 1024) -> torch.Tensor:
        """Model outputs (logits) in evaluation mode, on the model's device."""
        check("predict", "batch_size", batch_size, Interval(1, None, integer=True))
        x = x if isinstance(x, torch.Tensor) else _tensor(x).to(self.device)
        was_training = self.model.training
        self.model.eval()
        try:
            outs = [self.model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        finally:
            self.model.train(was_training)
        return torch.cat(outs) if outs else torch.zeros((0,), device=self.device)

    def evaluate(self, data: Any, batch_size: int = 1024) -> dict[str, float]:
        """``{"loss": ..., "accuracy": ...}`` over ``data`` (a Dataset, an (x, y) pair) in evaluation mode."""
        x, y = self._tensors(data, "data")
        logits = self.predict(x, batch_size)
        out = {"loss": float(F.cross_entropy(logits, y)) if len(y) else math.nan}
        if logits.ndim == 2 and logits.shape[1] > 1:
            out["accuracy"] = int((logits.argmax(dim=1) == y).sum()) / max(len(y), 1)
        return out

    # ------------------------------------------------------------ checkpoints

    def _checkpoint_parts(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
        arrays = {f"model/{k}": v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}
        scalars: dict[str, dict[str, Any]] = {}
        for index, state in self.optimizer.state_dict()["state"].items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    arrays[f"{_OPTIMIZER}{index}/{key}"] = value.detach().cpu().numpy()
                else:  # a Python scalar or string (descend's own layout): JSON
                    scalars.setdefault(str(index), {})[key] = value
        rngs = {RNG_CPU: torch.get_rng_state().numpy()}
        if self.device.type == "cuda":
            rngs[RNG_CUDA] = torch.cuda.get_rng_state(self.device).numpy()
        first = {"backend": "torch", "device": str(self.device)}
        return arrays, rngs, first, {"lr_scale": self.lr_scale, "optimizer_scalars": scalars}

    def _load_weights(self, path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        if meta.get("backend", "numpy") != "torch":
            raise CheckpointError(
                f"checkpoint {path} was written by the {meta.get('backend', 'numpy')} backend; resume it with "
                f"backend {meta.get('backend', 'numpy')!r}, not 'torch'"
            )
        model_state = {k[len("model/") :]: _tensor(v) for k, v in arrays.items() if k.startswith("model/")}
        state: dict[int, dict[str, Any]] = {}
        for key, value in arrays.items():
            if key.startswith(_OPTIMIZER):
                index, _, name = key[len(_OPTIMIZER) :].partition("/")
                state.setdefault(int(index), {})[name] = _tensor(value)
        for index, values in meta.get("optimizer_scalars", {}).items():
            state.setdefault(int(index), {}).update(values)
        saved = self.optimizer.state_dict()
        saved["state"] = state
        try:
            self.model.load_state_dict(model_state)
            self.optimizer.load_state_dict(saved)
        except (DescendError, RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path} does not fit this model and optimizer: {exc}") from None
        if LAST_PARAMS in arrays:  # the final checkpoint of a run that restored other weights: train on from these
            self.set_flat_params(arrays[LAST_PARAMS])

    def _load_extra(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.set_lr_scale(float(meta.get("lr_scale", 1.0)))
        if RNG_CPU in arrays:
            torch.set_rng_state(_tensor(arrays[RNG_CPU]))
        if RNG_CUDA in arrays and self.device.type == "cuda":
            torch.cuda.set_rng_state(_tensor(arrays[RNG_CUDA]), self.device)


def _scaled(rate: Any, scale: float) -> Any:
    """``rate × scale``: a float, or a schedule whose every value is multiplied (as NumPy's ``lr_scale``)."""
    if not callable(rate):
        return float(rate) * scale
    return lambda count: resolve_lr(rate, count) * scale


# ---------------------------------------------------------------------------------------------------------- run


def run_torch(
    config: dict[str, Any],
    out: Path,
    data: tuple[Any, Any, Any],
    *,
    resume: bool = False,
    callbacks: Sequence[C.Callback] = (),
    record: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The torch half of :func:`descend.train.experiment.run`, called by it with the run directory locked, the
    configuration validated (and, on resume, checked against the checkpoint) and the data loaded; ``record``:
    what a resume changed, for ``config.json``. Returns the summary, also written to ``summary.json``."""
    train, val, test = data
    model = build_model(config, train, device=config["device"])
    bs = config["batch_size"] or None
    steps_per_epoch = 1 if bs is None else math.ceil(len(train) / bs)
    optimizer = build_optimizer(config, model, steps_per_epoch)
    trainer = TorchTrainer(
        model,
        optimizer,
        callbacks=[*ex.build_callbacks(config, val is not None), *callbacks],
        run_dir=out,
        seed=config["seed"],
        l1=config["l1"],
        l2=config["l2"],
        no_decay=config["no_decay"],
    )
    if record is not None:  # everything is built and checked: record the extension / allowed change, then train
        ex._write_json_atomic(out / CONFIG, {**config, **record})
        (out / ex.SUMMARY).unlink(missing_ok=True)
    history = trainer.fit(
        (train.x, train.y),
        None if val is None else (val.x, val.y),
        epochs=config["epochs"],
        batch_size=bs,
        resume=resume,
        config=config,
    )
    counted = SimpleNamespace(params=SimpleNamespace(size=trainer.num_parameters))  # what _summary reads of a model
    summary = ex._summary(config, trainer, history, test, counted)
    summary["data"] = ex.describe_data(config, train)
    ex._write_json_atomic(out / ex.SUMMARY, summary)
    return summary


def warm_up(config: dict[str, Any], data: tuple[Any, Any, Any]) -> None:
    """One forward/backward pass and one optimizer step on a throwaway copy of the configuration's model
    (``descend compare`` workers: torch's kernels load here, not inside the first run's wall time)."""
    train = data[0]
    model = build_model(config, train, device=config["device"])
    optimizer = build_optimizer(config, model, 1)
    x = _tensor(train.x[:4]).to(config["device"])
    y = _tensor(np.asarray(train.y[:4], dtype=np.int64)).to(config["device"])
    F.cross_entropy(model(x), y).backward()
    optimizer.step()


__all__ = ["EarlyStopping", "ReduceLROnPlateau", "TorchTrainer", "build_optimizer", "for_torch", "run_torch", "warm_up"]
