"""The training loop: batches → model → loss → gradients → optimizer → parameters.

``Trainer(model, loss, optimizer).fit(train, validation, epochs, batch_size)``
runs mini-batch gradient descent (``batch_size=None`` is full-batch gradient
descent, ``1`` is stochastic gradient descent), logs telemetry each epoch to the
history and to ``run_dir/metrics.csv``, and checkpoints atomically to
``run_dir/checkpoint`` so that ``fit(..., resume=True)`` continues an
interrupted run and ends with bitwise the same parameters.

One process writes a run directory at a time: ``fit`` holds its lock
(:mod:`descend.train.lock`) while it writes. The final checkpoint holds the
weights the run ends with (the best epoch's when early stopping restores them,
named in ``checkpoint_weights`` and the checkpoint's ``weights``; the last
epoch's are kept beside them so that a resumed run continues exactly).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from descend._io import atomic_write_json
from descend._validation import BOOL, Interval, check
from descend.errors import DescendError, ParameterError, StructureError
from descend.optim import get_lr, state_from_dict, state_to_dict
from descend.optim.base import GradientTransformation
from descend.optim.closure import ClosureOptimizer
from descend.optim.fused import step as optim_step
from descend.optim.masking import named_leaves
from descend.optim.regularization import penalty
from descend.optim.sam import SharpnessAware
from descend.optim.schedule_free import schedule_free_states
from descend.train import lock
from descend.train.callbacks import Callback
from descend.train.checkpoint import (
    CheckpointError,
    config_hash,
    load_checkpoint,
    rng_from_json,
    rng_state_to_json,
    save_checkpoint,
)
from descend.train.metrics import MetricsWriter
from descend.train.telemetry import global_norm, layer_slices, segment_norms, tree_norms

CHECKPOINT = "checkpoint"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
CONFIG = "config.json"
#: The last epoch's parameters in a final checkpoint whose model weights are others (restored best ones).
LAST_PARAMS = "last/params"


class History:
    """Per-epoch logs: ``history["val_accuracy"]`` is a list over epochs."""

    def __init__(self, rows: list[dict[str, float]] | None = None):
        self.rows: list[dict[str, float]] = list(rows or [])

    def append(self, row: dict[str, float]) -> None:
        self.rows.append(dict(row))

    def __getitem__(self, key: str) -> list[float]:
        return [r[key] for r in self.rows if key in r]

    def __len__(self) -> int:
        return len(self.rows)

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.rows:
            seen.update(dict.fromkeys(r))
        return list(seen)

    def best(self, key: str, mode: str = "max") -> tuple[int, float]:
        values = [(i, v) for i, v in enumerate(self[key]) if math.isfinite(v)]
        if not values:
            return -1, math.nan
        return (max if mode == "max" else min)(values, key=lambda iv: iv[1])


class TrainingLoop:
    """What both training loops share (:class:`Trainer`, NumPy; :class:`descend.torch.training.TorchTrainer`):
    ``fit``'s checks, the run directory (its lock, ``config.json``, ``metrics.csv``), resume, the epoch loop with
    its callbacks and history, the checkpoint cadence and the final checkpoint, and the parts of a checkpoint
    that are not the backend's arrays.

    A backend provides ``_train_epoch() -> logs``, ``evaluate(data)``, the data (``_load_train``,
    ``_load_validation``), the weights as one flat array (``_weights``), the layer names of the metrics columns
    (``_metric_layers``), and its checkpoint parts (``_checkpoint_parts``, ``_load_weights``, ``_load_extra``).
    """

    _owner = "Trainer"  # who holds the run directory's lock, in messages

    def fit(
        self,
        train: Any,
        validation: Any = None,
        *,
        epochs: int = 1,
        batch_size: int | None = 32,
        shuffle: bool = True,
        resume: bool = False,
        config: dict[str, Any] | None = None,
    ) -> History:
        """Train for ``epochs`` epochs (in total, counting those of a resumed run)."""
        from descend.data import Loader

        check("fit", "epochs", epochs, Interval(1, None, integer=True))
        self._check_batching(batch_size)
        if batch_size is not None:
            check("fit", "batch_size", batch_size, Interval(1, None, integer=True))
        check("fit", "shuffle", shuffle, BOOL)
        check("fit", "resume", resume, BOOL)
        data, n = self._load_train(train)
        if n == 0:
            raise ParameterError("fit: the training set is empty")
        validation = self._load_validation(validation)
        self.epochs = int(epochs)
        self.loader = Loader(data, batch_size, shuffle=shuffle, seed=self.seed)
        self.batches_per_epoch = len(self.loader)
        if config is not None:
            self.config = config
        if resume and self.run_dir is None:
            raise ParameterError("fit: resume=True needs a run_dir")
        held = lock.hold(self.run_dir, f"{self._owner}.fit") if self.run_dir is not None else contextlib.nullcontext()
        with held, self._run_context():
            return self._fit(validation, resume)

    def _fit(self, validation: Any, resume: bool) -> History:
        writer = None
        self.stop_training = False
        self.checkpoint_weights, self._last_params = "last", None
        if self.run_dir is not None and self.config is not None and not resume:
            _write_json(self.run_dir / CONFIG, self.config)
        if resume:
            self._restore()
        if self.run_dir is not None:
            writer = MetricsWriter(self.run_dir / METRICS, _columns(self._metric_layers(), validation is not None))
            if resume:
                writer.truncate_after(self.epoch)
        for cb in self.callbacks:
            cb.on_train_begin(self)
        t_start = time.perf_counter() - self.wall_time
        logs: dict[str, float] = {}
        while self.epoch < self.epochs and not self.stop_training:
            for cb in self.callbacks:
                cb.on_epoch_begin(self, self.epoch)
            with self._epoch_context():
                logs = self._train_epoch()
                if validation is not None and not self.diverged:
                    logs.update({f"val_{k}": v for k, v in self.evaluate(validation).items()})
            self.epoch += 1
            self.wall_time = time.perf_counter() - t_start
            logs = {"epoch": self.epoch, "step": self.step, "time": self.wall_time, **logs}
            self.history.append(logs)
            for cb in self.callbacks:
                cb.on_epoch_end(self, self.epoch - 1, logs)
            if writer is not None:
                writer.append(logs)
            if self.run_dir is not None and self.epoch % self.checkpoint_every == 0:
                self.save()
        last = np.array(self._weights(), copy=True) if self.run_dir is not None else None
        for cb in self.callbacks:
            cb.on_train_end(self, logs)
        if self.run_dir is not None:
            # The final checkpoint holds the weights the run reports (restored best ones included), with the
            # last epoch's beside them when they differ: a resumed run continues from those.
            self._last_params = None if np.array_equal(last, self._weights()) else last
            if self._last_params is not None or self._saved != self._save_token():
                self.save()
        return self.history

    # --------------------------------------------------------- backend hooks

    def _load_train(self, train: Any) -> tuple[Any, int]:
        """What the :class:`descend.data.Loader` batches, and the number of training samples."""
        raise NotImplementedError

    def _load_validation(self, validation: Any) -> Any:
        return validation

    def _check_batching(self, batch_size: Any) -> None:
        """Refuse a ``batch_size`` the optimizer cannot train with (before anything is written)."""

    def _run_context(self) -> contextlib.AbstractContextManager:
        """Held around the whole run (inside the run directory's lock)."""
        return contextlib.nullcontext()

    def _epoch_context(self) -> contextlib.AbstractContextManager:
        """Held around each epoch's training and validation."""
        return contextlib.nullcontext()

    def _weights(self) -> np.ndarray:
        """The model's weights as one flat array (a view or a copy)."""
        raise NotImplementedError

    def _metric_layers(self) -> list[str]:
        raise NotImplementedError

    def _checkpoint_parts(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
        """``(arrays, arrays_last, meta_first, meta_extra)``: the model's and optimizer's arrays, arrays written after
        the shared ones, metadata before the counters and metadata after the loader's state."""
        raise NotImplementedError

    def _load_weights(self, path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Model and optimizer state from a checkpoint (and its ``LAST_PARAMS``)."""
        raise NotImplementedError

    def _load_extra(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """What ``_checkpoint_parts`` added besides the model and the optimizer (RNG states...)."""

    # ------------------------------------------------------------ checkpoints

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write parameters, optimizer state, RNG states and counters atomically (an ``.npz``, no pickle)."""
        own = path is None
        if path is None:
            if self.run_dir is None:
                raise ParameterError(f"save: give a path or construct the {self._owner} with run_dir")
            path = self.run_dir / CHECKPOINT
        arrays, arrays_last, meta_first, meta_extra = self._checkpoint_parts()
        keyed = _keyed(self.callbacks)
        for key, cb in keyed.items():
            arrays.update({f"callbacks/{key}/{name}": np.asarray(a) for name, a in cb.state_arrays().items()})
        if self._last_params is not None:
            arrays[LAST_PARAMS] = self._last_params
        arrays.update(arrays_last)
        meta = {
            **meta_first,
            "epoch": self.epoch,
            "step": self.step,
            "epochs_total": self.epochs,
            "wall_time": self.wall_time,
            "diverged": self.diverged,
            "stop_training": self.stop_training,
            "weights": self.checkpoint_weights,
            "loader": self.loader.state() if self.loader is not None else None,
            **meta_extra,
            "callbacks": {key: cb.state_dict() for key, cb in keyed.items()},
            "history": self.history.rows,
        }
        if self.config is not None:
            meta["config"] = self.config
            meta["config_sha256"] = config_hash(self.config)
        written = save_checkpoint(path, arrays, meta)
        if own:
            self._saved = self._save_token()
        return written

    def _save_token(self) -> tuple[int, bool, str]:
        return (self.epoch, self.stop_training, self.checkpoint_weights)

    def _restore(self, path: str | os.PathLike | None = None) -> None:
        if path is None:
            if self.run_dir is None:
                raise ParameterError("fit: resume=True needs a run_dir")
            path = self.run_dir / CHECKPOINT
        arrays, meta = load_checkpoint(path)
        self._load_weights(path, arrays, meta)
        self.epoch, self.step = int(meta["epoch"]), int(meta["step"])
        self.wall_time = float(meta.get("wall_time", 0.0))
        self.diverged = bool(meta.get("diverged", False))
        self.stop_training = bool(meta.get("stop_training", False))  # a run that stopped early stays stopped
        if self.loader is not None and meta.get("loader") is not None:
            self.loader.set_state(meta["loader"])
        # By class and rank within the class: adding a stateless callback (a progress display) on resume
        # does not shift the others' state.
        saved_cbs = meta.get("callbacks", {})
        for key, cb in _keyed(self.callbacks).items():
            if key in saved_cbs:
                cb.load_state_dict(saved_cbs[key])
            prefix = f"callbacks/{key}/"
            cb_arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            if cb_arrays:
                cb.load_state_arrays(cb_arrays)
        self._load_extra(arrays, meta)
        self.history = History(meta.get("history", []))
        self._saved = self._save_token()


def _as_xy(data: Any, owner: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    if data is None:
        raise ParameterError(f"{owner}: {what} must be a Dataset or an (x, y) pair, got None")
    if hasattr(data, "x") and hasattr(data, "y"):
        return data.x, data.y
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return np.asarray(data[0]), np.asarray(data[1])
    raise ParameterError(f"{owner}: {what} must be a Dataset or an (x, y) pair, got {type(data).__name__}")


class Trainer(TrainingLoop):
    """Train a :mod:`descend.nn` model with a :mod:`descend.optim` optimizer.

    Parameters
    ----------
    model: a ``descend.nn`` module whose parameters live in ``model.params``.
    loss: a ``descend.nn`` loss (``forward(logits, y) -> float``, ``backward() -> dlogits``)
        or its name (``"cross_entropy"``, ``"mse"``, ``"binary_cross_entropy"``).
    optimizer: a :class:`~descend.optim.GradientTransformation`, or a SAM optimizer
        (:func:`descend.optim.sam`: each step takes a second gradient at the perturbed point), or a
        closure optimizer (:func:`descend.optim.lbfgs`: full batch only, ``fit(batch_size=None)``; each
        epoch is one step, which evaluates the full-batch objective as often as its line search needs). It
        sees the model's named parameter tree ``{name: view}`` (``model.named_parameters()``, torch's
        names and shapes: Adafactor factors each matrix, LAMB / LARS / Muon see each layer,
        ``partition`` routes by name); an optimizer that only takes one flat vector (``by_layout``)
        gets ``model.params``.
    callbacks: :class:`~descend.train.callbacks.Callback` objects.
    run_dir: where ``metrics.csv``, ``checkpoint`` and ``summary.json`` go (None: nowhere).
    seed: seeds the shuffling of batches (:class:`descend.data.Loader`); the
        model's own generators draw dropout masks.
    l1, l2: penalties λ₁‖w‖₁ and λ₂/2‖w‖² on the weights (not biases or norm
        layers), added to the loss and reported separately as ``penalty``.
    no_decay: the parameters the L1/L2 penalties spare, as routing-rule selectors
        (:meth:`descend.nn.Module.decays`; default biases and norm layers).
    telemetry_every: compute per-layer gradient norms and update ratios every
        this many steps (and on the last step of each epoch).
    """

    def __init__(
        self,
        model,
        loss: Any = "cross_entropy",
        optimizer: GradientTransformation | None = None,
        *,
        callbacks: Sequence[Callback] = (),
        run_dir: str | os.PathLike | None = None,
        seed: int = 0,
        l1: float = 0.0,
        l2: float = 0.0,
        telemetry_every: int = 10,
        checkpoint_every: int = 1,
        no_decay: Sequence[str] | None = None,
    ):
        from descend.optim import adam

        check("Trainer", "seed", seed, Interval(0, None, integer=True))
        check("Trainer", "l1", l1, Interval(0, None))
        check("Trainer", "l2", l2, Interval(0, None))
        check("Trainer", "telemetry_every", telemetry_every, Interval(1, None, integer=True))
        check("Trainer", "checkpoint_every", checkpoint_every, Interval(1, None, integer=True))
        if optimizer is None:
            optimizer = adam(lr=1e-3)
        self.sam = None  # a SAM optimizer: its wrapped optimizer steps, fed the gradient at θ + ε
        if isinstance(optimizer, SharpnessAware):
            self.sam, optimizer = optimizer, optimizer.optimizer
        self.closure = None  # a closure optimizer (L-BFGS): it evaluates the full-batch objective itself
        if isinstance(optimizer, ClosureOptimizer):
            self.closure = optimizer
        elif not isinstance(optimizer, GradientTransformation):
            raise ParameterError(
                "Trainer: optimizer must be a GradientTransformation, a SAM optimizer or a closure optimizer "
                f"(descend.optim.lbfgs), got {type(optimizer).__name__}"
            )
        self.model = model
        self.loss = _resolve_loss(loss)
        self.optimizer = optimizer
        self.callbacks = list(callbacks)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.seed = int(seed)
        self.l1, self.l2 = float(l1), float(l2)
        self.telemetry_every = int(telemetry_every)
        self.checkpoint_every = int(checkpoint_every)
        # The optimizer sees the named tree of views into the flat buffer (or the buffer, for a by_layout one).
        self._opt_params, self._opt_grads = model.named_parameters(), model.named_grads()
        try:
            self.opt_state = optimizer.init(self._opt_params)
        except StructureError:
            self._opt_params, self._opt_grads = model.params, model.grads
            self.opt_state = optimizer.init(self._opt_params)
        self.loader = None  # built by fit()
        self.history = History()
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps completed
        self.stop_training = False
        self.diverged = False
        self.checkpoint_weights = "last"  # which weights the model (and the final checkpoint) holds
        self.config: dict[str, Any] | None = None
        self._last_params: np.ndarray | None = None  # the last epoch's weights, when others were restored
        self._saved: tuple[int, bool, str] | None = None
        self.epochs = 0
        self.batches_per_epoch = 0
        self.wall_time = 0.0
        self._slices = layer_slices(model.layout)
        self._weight_mask = model.decay_mask(no_decay=no_decay) if (self.l1 or self.l2) else None

    # ----------------------------------------------------------------- helpers

    def base_lr(self) -> float | None:
        """The learning rate of the last update before any plateau scaling."""
        from descend.optim.state import find_fields

        lr = get_lr(self.opt_state)
        scales = find_fields(self.opt_state, "lr_scale")
        if lr is None or not scales or scales[0] == 0:
            return lr
        return lr / float(scales[0])

    def _penalty(self) -> float:
        """Add the L1/L2 penalty gradients into ``model.grads`` and return the penalty value."""
        if self._weight_mask is None:
            return 0.0
        return penalty(self.model.params, self.model.grads, self.l1, self.l2, self._weight_mask)

    # ------------------------------------------------------------------- train

    def _load_train(self, train: Any) -> tuple[Any, int]:
        x, y = _as_xy(train, "fit", "train")
        return (x, y), len(x)

    def _check_batching(self, batch_size: Any) -> None:
        if self.closure is not None and batch_size is not None:
            raise ParameterError(
                "fit: L-BFGS needs full-batch training (batch_size=None; descend train --batch-size full): its line "
                f"search and curvature pairs need one fixed objective, got batch_size={batch_size!r}"
            )

    def _epoch_context(self) -> contextlib.AbstractContextManager:
        return np.errstate(over="ignore", invalid="ignore", divide="ignore")  # divergence: reported, not warned

    def _weights(self) -> np.ndarray:
        return self.model.params

    def _metric_layers(self) -> list[str]:
        return self._slices.names

    def _sam_gradient(self, xb: np.ndarray, yb: np.ndarray) -> None:
        """SAM's second evaluation: ``model.grads`` becomes the gradient at θ + ε on the same batch (θ restored).

        The model runs forward twice per step (dropout draws new masks, BatchNorm updates its running
        statistics twice); the loss and gradient norm logged are those at θ.
        """
        params = self.model.params
        saved = params.copy()
        _add_into(self._opt_params, self.sam.perturbation(self._opt_grads, self._opt_params))
        self.loss.forward(self.model.forward(xb), yb)
        self.model.backward(self.loss.backward(), input_grad=False)
        self._penalty()
        params[...] = saved

    def _closure_epoch(self) -> dict[str, float]:
        """One epoch of a closure optimizer (L-BFGS): one step on the full batch.

        The step calls ``fun_and_grad(params)``, which puts params into the model and runs forward and backward
        on the whole training set (plus the L1/L2 penalty): several times per step (the line search), so
        BatchNorm updates its running statistics and dropout draws masks at each evaluation. The step's
        metrics are those of its first evaluation, at the parameters it starts from (torch's ``orig_loss``).
        """
        model, loss_fn = self.model, self.loss
        model.train()
        params, grads = model.params, model.grads
        tree, grad_tree = self._opt_params, self._opt_grads
        logs: dict[str, float] = {}
        for b, (xb, yb) in enumerate(self.loader):
            first: dict[str, Any] = {}

            def fun_and_grad(p: Any, xb: Any = xb, yb: Any = yb, first: dict[str, Any] = first) -> tuple[float, Any]:
                _set_into(tree, p)
                logits = model.forward(xb)
                loss = float(loss_fn.forward(logits, yb))
                model.backward(loss_fn.backward(), input_grad=False)
                pen = self._penalty()
                if not first:
                    first.update(loss=loss, penalty=pen, logits=logits.copy(), grads=grads.copy())
                return loss + pen, _copy_tree(grad_tree)

            start = params.copy()
            # A copy: the optimizer keeps the point it starts from while fun_and_grad writes its trials into the model.
            new, self.opt_state, _ = self.closure.step(fun_and_grad, _copy_tree(tree), self.opt_state)
            _set_into(tree, new)
            self.step += 1
            loss, logits, g = first["loss"], first["logits"], first["grads"]
            logs = {"lr": float(get_lr(self.opt_state) or 0.0), "loss": loss}
            if logits.ndim == 2 and logits.shape[1] > 1:
                logs["accuracy"] = float(np.count_nonzero(logits.argmax(axis=1) == yb)) / max(len(yb), 1)
            if self.l1 or self.l2:
                logs["penalty"] = first["penalty"]
            logs["grad_norm"] = global_norm(g)
            wn = segment_norms(start, self._slices)
            un = segment_norms(params - start, self._slices)
            ratios = np.divide(un, wn, out=np.zeros_like(un), where=wn > 0)
            for name, gn, r in zip(self._slices.names, segment_norms(g, self._slices), ratios, strict=True):
                logs[f"grad_norm/{name}"] = float(gn)
                logs[f"update_ratio/{name}"] = float(r)
            if self.callbacks:
                batch_logs = {"batch": b, "loss": loss, "lr": logs["lr"]}
                for cb in self.callbacks:
                    cb.on_batch_end(self, self.step, batch_logs)
            if not math.isfinite(loss):
                self.diverged = True
            if self.stop_training or self.diverged:
                break
        return logs

    def _train_epoch(self) -> dict[str, float]:
        if self.closure is not None:
            return self._closure_epoch()
        model, loss_fn, tx = self.model, self.loss, self.optimizer
        model.train()
        params, grads = model.params, model.grads
        tree, grad_tree = self._opt_params, self._opt_grads  # what the optimizer sees: views of params / grads
        total_loss = total_correct = total_penalty = 0.0
        seen = 0
        gnorm_sum, gnorm_n = 0.0, 0
        layer_g = np.zeros(len(self._slices.names))
        layer_r = np.zeros(len(self._slices.names))
        tel_n = 0
        for b, (xb, yb) in enumerate(self.loader):
            logits = model.forward(xb)
            loss = float(loss_fn.forward(logits, yb))
            model.backward(loss_fn.backward(), input_grad=False)
            penalty = self._penalty()
            gnorm_sum += global_norm(grads)
            gnorm_n += 1
            if self.sam is not None:
                self._sam_gradient(xb, yb)
            last = b == self.batches_per_epoch - 1
            if self.step % self.telemetry_every == 0 or last:
                # A telemetry step needs the update itself (update-to-weight ratios): the pure update, then
                # the same float addition the in-place step does, so parameters are bitwise the same either way.
                updates, self.opt_state = tx.update(grad_tree, self.opt_state, tree)
                gn = segment_norms(grads, self._slices)
                wn = segment_norms(params, self._slices)
                un = tree_norms(updates, self._slices)
                layer_g += gn
                layer_r += np.divide(un, wn, out=np.zeros_like(un), where=wn > 0)
                tel_n += 1
                _add_into(tree, updates)
                del updates  # lets the fused path's buffer pool recycle it
            else:
                # Every other step: one in-place pass (a fused kernel when the optimizer has one).
                self.opt_state = optim_step(tx, tree, grad_tree, self.opt_state)
            self.step += 1
            n = len(yb)
            seen += n
            total_loss += loss * n
            total_penalty += penalty * n
            if logits.ndim == 2 and logits.shape[1] > 1:
                total_correct += float(np.count_nonzero(logits.argmax(axis=1) == yb))
            if self.callbacks:  # reading the lr walks the optimizer state: only when someone listens
                batch_logs = {"batch": b, "loss": loss, "lr": get_lr(self.opt_state) or 0.0}
                for cb in self.callbacks:
                    cb.on_batch_end(self, self.step, batch_logs)
            if not math.isfinite(loss):
                self.diverged = True
            if self.stop_training or self.diverged:
                break
        logs = {
            "lr": float(get_lr(self.opt_state) or 0.0),
            "loss": total_loss / max(seen, 1),
        }
        if total_correct or (logits.ndim == 2 and logits.shape[1] > 1):
            logs["accuracy"] = total_correct / max(seen, 1)
        if self.l1 or self.l2:
            logs["penalty"] = total_penalty / max(seen, 1)
        logs["grad_norm"] = gnorm_sum / max(gnorm_n, 1)
        for name, g, r in zip(self._slices.names, layer_g / max(tel_n, 1), layer_r / max(tel_n, 1), strict=True):
            logs[f"grad_norm/{name}"] = float(g)
            logs[f"update_ratio/{name}"] = float(r)
        return logs

    # -------------------------------------------------------------- inference

    def predict(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Model outputs (logits) in evaluation mode (a schedule-free optimizer's: at its average x)."""
        check("predict", "batch_size", batch_size, Interval(1, None, integer=True))
        was_training = self.model.training
        self.model.eval()
        train_weights = self._load_eval_weights()
        try:
            outs = [self.model.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        finally:
            self.model.train(was_training)
            if train_weights is not None:
                self.model.params[...] = train_weights
        return np.concatenate(outs) if outs else np.zeros((0,))

    def _load_eval_weights(self) -> np.ndarray | None:
        """Schedule-free optimizers train at y and are evaluated at x (schedulefree's ``optimizer.eval()``): put x
        into the model and return the training weights to restore (None for every other optimizer).

        x is a tree like the parameters (or the flat buffer); under ``partition`` each group's state holds the x
        of its own parameters, by name."""
        found = [s.x for s in schedule_free_states(self.opt_state)]
        flat = self.model.params
        if isinstance(self._opt_params, np.ndarray):
            found = [x for x in found if isinstance(x, np.ndarray) and x.shape == flat.shape]
            if not found:
                return None
            train_weights = flat.copy()
            flat[...] = found[0]
            return train_weights
        views = self._opt_params
        pieces = [(name, x) for tree in found if isinstance(tree, dict) for name, x in named_leaves(tree)]
        pieces = [(name, x) for name, x in pieces if name in views and np.shape(x) == views[name].shape]
        if not pieces:
            return None
        train_weights = flat.copy()
        for name, x in pieces:
            views[name][...] = x
        return train_weights

    def evaluate(self, data: Any, batch_size: int = 1024) -> dict[str, float]:
        """``{"loss": ..., "accuracy": ...}`` over ``data`` in evaluation mode."""
        x, y = _as_xy(data, "evaluate", "data")
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # inf/NaN weights give an inf/NaN loss
            logits = self.predict(x, batch_size)
            out = {"loss": float(self.loss.forward(logits, y))}
        if logits.ndim == 2 and logits.shape[1] > 1:
            out["accuracy"] = float(np.mean(logits.argmax(axis=1) == y))
        return out

    # ------------------------------------------------------------ checkpoints

    def _checkpoint_parts(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
        arrays = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        arrays.update({f"optimizer/{k}": v for k, v in state_to_dict(self.opt_state).items()})
        return arrays, {}, {}, {"model_rngs": _model_rng_states(self.model)}

    def _load_weights(self, path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        model_arrays = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
        opt_arrays = {k[len("optimizer/") :]: v for k, v in arrays.items() if k.startswith("optimizer/")}
        try:
            self.model.load_state_dict(model_arrays)
            self.opt_state = state_from_dict(self.optimizer.init(self._opt_params), opt_arrays)
        except DescendError as exc:
            raise CheckpointError(f"checkpoint {path} does not fit this model and optimizer: {exc}") from None
        if LAST_PARAMS in arrays:  # the final checkpoint of a run that restored other weights: train on from these
            if arrays[LAST_PARAMS].shape != self.model.params.shape:
                raise CheckpointError(f"checkpoint {path} does not fit this model: {LAST_PARAMS} has another shape")
            self.model.params[...] = arrays[LAST_PARAMS]

    def _load_extra(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        _set_model_rng_states(self.model, meta.get("model_rngs", []))


def _add_into(params: Any, updates: Any) -> None:
    """``params += updates`` in place: a flat buffer, or each view of the named tree (the same float additions)."""
    if isinstance(params, np.ndarray):
        np.add(params, updates, out=params)
        return
    for name, p in params.items():
        np.add(p, updates[name], out=p)


def _set_into(params: Any, values: Any) -> None:
    """``params[...] = values`` in place: a flat buffer, or each view of the named tree."""
    if isinstance(params, np.ndarray):
        params[...] = values
        return
    for name, p in params.items():
        p[...] = values[name]


def _copy_tree(tree: Any) -> Any:
    """A copy of a flat buffer or of each array of a named tree (the model's gradient buffer is reused)."""
    if isinstance(tree, np.ndarray):
        return tree.copy()
    return {name: g.copy() for name, g in tree.items()}


def _keyed(callbacks: Sequence[Callback]) -> dict[str, Callback]:
    """``{"EarlyStopping#0": cb, ...}``: each callback named by its class and its rank among that class."""
    seen: dict[str, int] = {}
    keyed = {}
    for cb in callbacks:
        name = type(cb).__name__
        keyed[f"{name}#{seen.get(name, 0)}"] = cb
        seen[name] = seen.get(name, 0) + 1
    return keyed


def _columns(layers: list[str], validation: bool) -> list[str]:
    cols = ["epoch", "step", "time", "lr", "loss", "accuracy", "penalty"]
    if validation:
        cols += ["val_loss", "val_accuracy"]
    cols += ["grad_norm"] + [f"grad_norm/{n}" for n in layers] + [f"update_ratio/{n}" for n in layers]
    return cols


def _model_rng_states(model) -> list[Any]:
    """The generators that draw during training (Dropout's ``rng``), one entry per module."""
    return [
        rng_state_to_json(m.rng) if isinstance(getattr(m, "rng", None), np.random.Generator) else None
        for m in model.modules()
    ]


def _set_model_rng_states(model, states: list[Any]) -> None:
    modules = model.modules()
    if len(states) != len(modules):
        return
    for m, st in zip(modules, states, strict=True):
        if st is not None:
            m.rng = rng_from_json(st)


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj, sort_keys=True, default=_json_default)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _resolve_loss(loss: Any) -> Any:
    if isinstance(loss, str):
        from descend import nn

        table = {"cross_entropy": "CrossEntropyLoss", "mse": "MSELoss", "binary_cross_entropy": "BCEWithLogitsLoss"}
        if loss not in table:
            raise ParameterError(f"Trainer: loss must be one of {sorted(table)}, got {loss!r}")
        return getattr(nn, table[loss])()
    if not (hasattr(loss, "forward") and hasattr(loss, "backward")):
        raise ParameterError(f"Trainer: loss must be a descend.nn loss or its name, got {type(loss).__name__}")
    return loss
