"""Training callbacks: sharpness every k steps and the gradient noise scale every epoch.

``descend train --track-sharpness K`` (configuration key ``track_sharpness``) adds both:

* :class:`SharpnessTracker` writes ``RUN_DIR/sharpness.csv``, **one row per measurement** (every K
  optimizer steps): ``step, epoch, lr, sharpness, threshold`` (= 2/lr, where gradient descent on a
  quadratic of that curvature becomes unstable), and for Adam/AdamW also
  ``preconditioned_sharpness`` (λ_max of P⁻¹H) and ``adam_threshold`` (= (2 + 2β₁)/((1 − β₁)·lr)),
  plus the Lanczos ``iterations``, ``residual`` and ``seconds`` it took. Each measurement runs a few
  Lanczos steps (``iterations``, default 20) on the Hessian of the training loss over a fixed subset
  of ``samples`` training examples (default 1,000, drawn once with ``seed``), warm-started from the
  previous top eigenvector, so tracking costs about 2·iterations gradient evaluations of the subset.
* :class:`NoiseScaleLogger` writes ``RUN_DIR/noise_scale.csv``, one row per epoch: the gradient
  noise scale B_simple (:func:`descend.diagnostics.noise.gradient_noise_scale`) at the end of the
  epoch, from batches of the run's batch size and of 8 times it.

Neither touches the trainer's model, optimizer state or random streams (they work on a float64 copy
with their own generator), so a run with tracking trains exactly as one without. Their files are cut
back to the checkpoint on ``--resume`` and their warm-start vectors are part of the checkpoint.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from descend._io import atomic_write_text
from descend._validation import Interval, check
from descend.diagnostics.hessian import HessianOperator, PreconditionedOperator, adam_preconditioner
from descend.diagnostics.noise import gradient_noise_scale
from descend.diagnostics.objective import ModelObjective
from descend.diagnostics.spectrum import top_eigenvalues
from descend.errors import ParameterError
from descend.train.callbacks import Callback

SHARPNESS_CSV = "sharpness.csv"
NOISE_CSV = "noise_scale.csv"
SHARPNESS_COLUMNS = [
    "step",
    "epoch",
    "lr",
    "sharpness",
    "threshold",
    "preconditioned_sharpness",
    "adam_threshold",
    "iterations",
    "residual",
    "seconds",
]
NOISE_COLUMNS = ["epoch", "step", "b_simple", "trace_sigma", "grad_sq", "small", "big"]


class _Csv:
    """Rows appended and flushed; on resume the rows after the checkpoint are cut, atomically."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = path, columns

    def start(self, keep: Any = None) -> None:
        """Create the file, or keep the rows for which ``keep(row)`` is true (all rows: ``keep`` None)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        out = io.StringIO(newline="")
        w = csv.writer(out)
        w.writerow(self.columns)
        if self.path.is_file() and keep is not None:
            with self.path.open(newline="") as f:
                for row in csv.DictReader(f):
                    try:
                        ok = keep(row)
                    except (TypeError, ValueError):  # a row torn by a crash
                        ok = False
                    if ok:
                        w.writerow([row.get(k) or "" for k in self.columns])
        atomic_write_text(self.path, out.getvalue())

    def append(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(k)) for k in self.columns])
            f.flush()
            os.fsync(f.fileno())


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else str(v)
    return str(v)


def read_rows(path: str | os.PathLike) -> list[dict[str, float | None]]:
    """The rows of ``sharpness.csv`` / ``noise_scale.csv`` as floats (an empty cell: None)."""
    with Path(path).open(newline="") as f:
        return [{k: (float(v) if v not in (None, "") else None) for k, v in r.items()} for r in csv.DictReader(f)]


def _training_data(owner: str, trainer: Any, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    if x is not None and y is not None:
        return np.asarray(x), np.asarray(y)
    arrays = getattr(getattr(trainer, "loader", None), "_arrays", None)  # the Loader's (x, y) of fit()
    if not arrays or len(arrays) != 2:
        raise ParameterError(f"{owner}: give x and y (the training data): the trainer has no (x, y) loader")
    return np.asarray(arrays[0]), np.asarray(arrays[1])


def _subset(x: np.ndarray, y: np.ndarray, samples: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if samples is None or samples >= len(x):
        return x, y
    index = np.sort(np.random.default_rng(seed).choice(len(x), int(samples), replace=False))
    return x[index], y[index]


class SharpnessTracker(Callback):
    """λ_max of the training loss's Hessian every ``every`` steps (see the module docstring).

    ``preconditioned``: also track λ_max(P⁻¹H) with Adam's preconditioner (``"auto"``: when the
    optimizer state holds an Adam state); ``betas``/``eps``: the Adam hyperparameters it uses.
    ``rows`` keeps every measurement (also without a run directory).
    """

    def __init__(
        self,
        every: int,
        *,
        x: Any = None,
        y: Any = None,
        samples: int | None = 1000,
        iterations: int = 20,
        tol: float = 1e-4,
        preconditioned: bool | str = "auto",
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        seed: int = 0,
    ):
        owner = "SharpnessTracker"
        check(owner, "every", every, Interval(1, None, integer=True))
        if samples is not None:
            check(owner, "samples", samples, Interval(1, None, integer=True))
        check(owner, "iterations", iterations, Interval(2, None, integer=True))
        check(owner, "tol", tol, Interval(0, 1, closed="neither"))
        if preconditioned not in (True, False, "auto"):
            raise ParameterError(f"{owner}: preconditioned must be True, False or 'auto', got {preconditioned!r}")
        self.every, self.samples, self.iterations, self.tol = int(every), samples, int(iterations), float(tol)
        self.preconditioned, self.betas, self.eps, self.seed = preconditioned, tuple(betas), float(eps), int(seed)
        self._x, self._y = x, y
        self.rows: list[dict[str, Any]] = []
        self.vector: np.ndarray | None = None
        self.pvector: np.ndarray | None = None
        self._objective: ModelObjective | None = None
        self._csv: _Csv | None = None

    def on_train_begin(self, trainer: Any) -> None:
        x, y = _training_data("SharpnessTracker", trainer, self._x, self._y)
        xs, ys = _subset(x, y, self.samples, self.seed)
        self._objective = ModelObjective(trainer.model, xs, ys, trainer.loss, l2=getattr(trainer, "l2", 0.0))
        if getattr(trainer, "run_dir", None) is not None:
            self._csv = _Csv(Path(trainer.run_dir) / SHARPNESS_CSV, SHARPNESS_COLUMNS)
            done = int(trainer.step)
            self._csv.start(keep=(lambda r: int(float(r["step"])) <= done) if done else None)
        self.rows = [r for r in self.rows if r["step"] <= trainer.step]

    def _wants_adam(self, trainer: Any) -> bool:
        if self.preconditioned is False:
            return False
        try:
            adam_preconditioner(trainer.opt_state, self.betas, self.eps, _names(trainer))
        except ParameterError:
            if self.preconditioned is True:
                raise
            return False
        return True

    def measure(self, trainer: Any, lr: float | None = None) -> dict[str, Any]:
        """Measure now and return the row (also appended to :attr:`rows` and the CSV file)."""
        if self._objective is None:
            self.on_train_begin(trainer)
        assert self._objective is not None
        t0 = time.perf_counter()
        point = self._objective.sync(trainer.model)
        row: dict[str, Any] = {"step": int(trainer.step), "epoch": int(trainer.epoch)}
        if not np.all(np.isfinite(point)):
            row.update(sharpness=math.nan, seconds=time.perf_counter() - t0)
            return self._record(row)
        H = HessianOperator(self._objective)
        top = top_eigenvalues(H, 1, tol=self.tol, max_iter=self.iterations, start=self.vector, rng=self.seed)
        self.vector = top.vectors[0]
        lr = lr if lr is not None else _lr(trainer)
        row.update(
            lr=lr,
            sharpness=float(top.values[0]),
            threshold=2.0 / lr if lr else None,
            iterations=int(top.iterations),
            residual=float(top.residuals[0]),
        )
        if self._wants_adam(trainer):
            p = adam_preconditioner(trainer.opt_state, self.betas, self.eps, _names(trainer))
            pre = top_eigenvalues(
                PreconditionedOperator(H, p), 1, tol=self.tol, max_iter=self.iterations, start=self.pvector,
                rng=self.seed,
            )  # fmt: skip
            self.pvector = pre.vectors[0]
            b1 = self.betas[0]
            row.update(
                preconditioned_sharpness=float(pre.values[0]),
                adam_threshold=(2 + 2 * b1) / ((1 - b1) * lr) if lr else None,
            )
        row["seconds"] = time.perf_counter() - t0
        return self._record(row)

    def _record(self, row: dict[str, Any]) -> dict[str, Any]:
        self.rows.append(row)
        if self._csv is not None:
            self._csv.append(row)
        return row

    def on_batch_end(self, trainer: Any, step: int, logs: dict[str, float]) -> None:
        if step % self.every == 0:
            self.measure(trainer, logs.get("lr") or None)

    def state_arrays(self) -> dict[str, np.ndarray]:
        out = {}
        if self.vector is not None:
            out["vector"] = self.vector
        if self.pvector is not None:
            out["pvector"] = self.pvector
        return out

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.vector = np.array(arrays["vector"]) if "vector" in arrays else None
        self.pvector = np.array(arrays["pvector"]) if "pvector" in arrays else None


def _names(trainer: Any) -> list[str]:
    return [p.name for p in trainer.model.layout]


def _lr(trainer: Any) -> float | None:
    from descend.optim import get_lr

    lr = get_lr(trainer.opt_state)
    return float(lr) if lr else None


class NoiseScaleLogger(Callback):
    """B_simple at the end of every epoch, from batches of ``small`` (default: the run's batch size,
    at most half the data) and ``big`` (default 8·small, at most the data set) examples."""

    def __init__(
        self, *, x: Any = None, y: Any = None, small: int | None = None, big: int | None = None, draws: int = 4,
        seed: int = 0,
    ):  # fmt: skip
        owner = "NoiseScaleLogger"
        if small is not None:
            check(owner, "small", small, Interval(1, None, integer=True))
        if big is not None:
            check(owner, "big", big, Interval(2, None, integer=True))
        check(owner, "draws", draws, Interval(1, None, integer=True))
        self.small, self.big, self.draws, self.seed = small, big, int(draws), int(seed)
        self._x, self._y = x, y
        self.rows: list[dict[str, Any]] = []
        self._objective: ModelObjective | None = None
        self._csv: _Csv | None = None

    def on_train_begin(self, trainer: Any) -> None:
        x, y = _training_data("NoiseScaleLogger", trainer, self._x, self._y)
        self._objective = ModelObjective(trainer.model, x, y, trainer.loss, l2=getattr(trainer, "l2", 0.0))
        if getattr(trainer, "run_dir", None) is not None:
            self._csv = _Csv(Path(trainer.run_dir) / NOISE_CSV, NOISE_COLUMNS)
            done = int(trainer.epoch)
            self._csv.start(keep=(lambda r: int(float(r["epoch"])) <= done) if done else None)
        self.rows = [r for r in self.rows if r["epoch"] <= trainer.epoch]

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        assert self._objective is not None
        n = self._objective.num_examples
        if n < 2:
            return
        batch = getattr(getattr(trainer, "loader", None), "batch_size", None) or 32
        small = self.small or max(1, min(int(batch), n // 2))
        big = self.big or min(8 * small, n)
        point = self._objective.sync(trainer.model)
        row: dict[str, Any] = {"epoch": epoch + 1, "step": int(trainer.step), "small": small, "big": big}
        if np.all(np.isfinite(point)) and big > small:
            gen = np.random.default_rng([self.seed, epoch])
            ns = gradient_noise_scale(self._objective, small=small, big=big, draws=self.draws, rng=gen)
            row.update(b_simple=ns.b_simple, trace_sigma=ns.trace_sigma, grad_sq=ns.grad_sq)
        self.rows.append(row)
        if self._csv is not None:
            self._csv.append(row)
