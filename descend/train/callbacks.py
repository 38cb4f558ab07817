"""Callbacks: hooks the :class:`~descend.train.Trainer` calls as training goes.

Each callback may implement any of ``on_train_begin(trainer)``,
``on_epoch_begin(trainer, epoch)``, ``on_batch_end(trainer, step, logs)``,
``on_epoch_end(trainer, epoch, logs)`` and ``on_train_end(trainer, logs)``, and
``state_dict()`` / ``load_state_dict(d)`` (JSON-safe) and ``state_arrays()`` /
``load_state_arrays(arrays)`` (NumPy arrays, stored in the checkpoint's npz) so that
a resumed run continues exactly. Setting ``trainer.stop_training = True`` ends training
after the current epoch.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import numpy as np

from descend._validation import BOOL, NONNEGATIVE, POSITIVE, Interval, OneOf, check
from descend.errors import NonFiniteError, ParameterError


class Callback:
    """Base class: every hook does nothing."""

    def on_train_begin(self, trainer) -> None: ...
    def on_epoch_begin(self, trainer, epoch: int) -> None: ...
    def on_batch_end(self, trainer, step: int, logs: dict[str, float]) -> None: ...
    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None: ...
    def on_train_end(self, trainer, logs: dict[str, float]) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Array state (kept in the checkpoint as arrays, not JSON)."""
        return {}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        pass


def _resolve_mode(owner: str, monitor: str, mode: str) -> str:
    check(owner, "mode", mode, OneOf("auto", "min", "max"))
    if mode != "auto":
        return mode
    return "max" if "acc" in monitor else "min"


def _monitored(owner: str, monitor: str, logs: dict[str, float]) -> float:
    if monitor not in logs:
        raise ParameterError(f"{owner}: monitor {monitor!r} is not a logged metric; available: {sorted(logs)}")
    return float(logs[monitor])


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights`` the parameters of the best epoch are put back
    at the end (as Keras does when training stops early or ends), and the trainer's
    ``checkpoint_weights`` says so (``"best (epoch 7)"``, epochs counted from 1). The best
    parameters are part of the checkpoint, so a resumed run restores the same ones.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ):
        check("EarlyStopping", "patience", patience, Interval(0, None, integer=True))
        check("EarlyStopping", "min_delta", min_delta, NONNEGATIVE)
        check("EarlyStopping", "restore_best_weights", restore_best_weights, BOOL)
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.mode = _resolve_mode("EarlyStopping", monitor, mode)
        self.restore_best_weights = restore_best_weights
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = -1
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_params: np.ndarray | None = None

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        value = _monitored("EarlyStopping", self.monitor, logs)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_params = trainer.model.params.copy()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                trainer.stop_training = True

    def on_train_end(self, trainer, logs: dict[str, float]) -> None:
        if self.restore_best_weights and self.best_params is not None:
            trainer.model.params[...] = self.best_params
            trainer.checkpoint_weights = f"best (epoch {self.best_epoch + 1})"

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = float(state["best"]), int(state["best_epoch"]), int(state["wait"])
        stopped = state.get("stopped_epoch")
        self.stopped_epoch = None if stopped is None else int(stopped)

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {} if self.best_params is None else {"best_params": self.best_params}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        best = arrays.get("best_params")
        self.best_params = None if best is None else np.array(best, copy=True)


class TerminateOnNaN(Callback):
    """Stop training (and say where) as soon as the batch loss is NaN or inf."""

    def __init__(self, raise_error: bool = False):
        self.raise_error = raise_error
        self.terminated_at: int | None = None

    def on_batch_end(self, trainer, step: int, logs: dict[str, float]) -> None:
        loss = logs.get("loss", 0.0)
        if not math.isfinite(loss):
            self.terminated_at = step
            trainer.stop_training = True
            trainer.diverged = True
            if self.raise_error:
                raise NonFiniteError(f"loss became {loss} at step {step}")


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving.

    Wraps :func:`descend.schedules.reduce_on_plateau`; the multiplier applies on
    top of any schedule through :func:`descend.optim.set_lr_scale`.
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", **kwargs: Any):
        from descend.schedules import reduce_on_plateau

        self.monitor = monitor
        self.mode = _resolve_mode("ReduceLROnPlateau", monitor, mode)
        self.controller = reduce_on_plateau(mode=self.mode, **kwargs)
        self.state = self.controller.init()

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        from descend.optim import set_lr_scale

        value = _monitored("ReduceLROnPlateau", self.monitor, logs)
        self.state = self.controller.update(self.state, value, lr=trainer.base_lr())
        trainer.opt_state = set_lr_scale(trainer.opt_state, self.state.scale)

    def state_dict(self) -> dict[str, Any]:
        from descend.optim import state_to_dict

        return {k: v.item() for k, v in state_to_dict(self.state).items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from descend.optim import state_from_dict

        self.state = state_from_dict(self.controller.init(), {k: np.asarray(v) for k, v in state.items()})


class ModelCheckpoint(Callback):
    """Save the model parameters to ``path`` (``.npz``) each epoch, or only on improvement."""

    def __init__(self, path: str, monitor: str = "val_loss", mode: str = "auto", save_best_only: bool = True):
        check("ModelCheckpoint", "save_best_only", save_best_only, BOOL)
        self.path, self.monitor, self.save_best_only = path, monitor, save_best_only
        self.mode = _resolve_mode("ModelCheckpoint", monitor, mode)
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        from descend.train.checkpoint import save_checkpoint

        value = _monitored("ModelCheckpoint", self.monitor, logs) if self.save_best_only else 0.0
        better = value < self.best if self.mode == "min" else value > self.best
        if not self.save_best_only or better:
            self.best = value
            save_checkpoint(self.path, trainer.model.state_dict(), {"epoch": epoch, self.monitor: value})

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])


class ProgressBar(Callback):
    """A one-line progress bar per epoch with the running metrics on it."""

    def __init__(self, stream=None, width: int = 24, min_interval: float = 0.1):
        check("ProgressBar", "width", width, Interval(1, None, integer=True))
        check("ProgressBar", "min_interval", min_interval, POSITIVE)
        self.stream = stream or sys.stderr
        self.width, self.min_interval = int(width), float(min_interval)
        self._last = 0.0
        isatty = getattr(self.stream, "isatty", None)
        self._live = bool(isatty and isatty())

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        self._epoch, self._t0, self._last = epoch, time.perf_counter(), 0.0

    def _line(self, trainer, done: int, total: int, logs: dict[str, float]) -> str:
        filled = int(self.width * done / max(total, 1))
        bar = "█" * filled + "·" * (self.width - filled)
        shown = "  ".join(f"{k} {v:.4g}" for k, v in logs.items() if k in ("loss", "accuracy", "lr"))
        return f"\repoch {self._epoch + 1}/{trainer.epochs} {bar} {done}/{total}  {shown}"

    def on_batch_end(self, trainer, step: int, logs: dict[str, float]) -> None:
        if not self._live:  # a log file or pipe gets one line per epoch, not carriage-return frames
            return
        now = time.perf_counter()
        if now - self._last >= self.min_interval:
            self._last = now
            self.stream.write(self._line(trainer, logs["batch"] + 1, trainer.batches_per_epoch, logs))
            self.stream.flush()

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        line = self._line(trainer, trainer.batches_per_epoch, trainer.batches_per_epoch, logs).lstrip("\r")
        if self._live:
            line = "\r" + line
        extra = "  ".join(f"{k} {logs[k]:.4g}" for k in ("val_loss", "val_accuracy") if k in logs)
        self.stream.write(f"{line}  {extra}  {time.perf_counter() - self._t0:.1f}s\n")
        self.stream.flush()
