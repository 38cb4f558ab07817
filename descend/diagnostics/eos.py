"""The edge of stability (Cohen, Kaur, Li, Kolter & Talwalkar 2021; Cohen et al. 2022 for Adam), reproduced.

Gradient descent with step η is stable on a quadratic only while its curvature is below 2/η. On a
neural network trained by *full-batch* gradient descent, Cohen et al. observed that the sharpness
λ_max (the Hessian's largest eigenvalue) first rises ("progressive sharpening") until it reaches
2/η, and then hovers there ("edge of stability") while the loss keeps falling, non-monotonically.
For Adam the same holds for the preconditioned sharpness λ_max(P⁻¹H), whose threshold is
(2 + 2β₁)/((1 − β₁)η) = 38/η for β₁ = 0.9.

The setup (:class:`EoSSetup`, defaults chosen to finish in minutes on two cores): the first 500
training examples of MNIST-1D (generated locally, standardized per feature), a tanh MLP
40 → 200 → 200 → 10 with torch's default initialization (small weights: progressive sharpening is
strong from a small start; with Xavier-tanh weights it is much weaker), the square loss
½·mean‖f(x) − onehot(y)‖² of Cohen et al., full-batch steps in float32, and λ_max measured every
``every`` steps by Lanczos on the float64 Hessian of the same loss, warm-started from the last
eigenvector. A run stops ``hover`` steps after the sharpness first reaches 0.9·2/η.

:func:`band` summarizes a run after the rise: the smallest, largest and median λ_max·η/2 and the
fraction of measurements within [0.9, 1.2]·2/η. ``descend diagnose eos`` runs three step sizes and
Adam and draws :func:`descend.diagnostics.plots.plot_eos`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from descend._validation import Interval, check
from descend.diagnostics.hessian import HessianOperator, PreconditionedOperator, adam_preconditioner
from descend.diagnostics.objective import ModelObjective
from descend.diagnostics.spectrum import top_eigenvalues
from descend.errors import ParameterError

#: The three step sizes of ``descend diagnose eos`` (2/η = 20, 30, 40).
DEFAULT_LRS = (2 / 20, 2 / 30, 2 / 40)
#: Adam's step size in ``descend diagnose eos`` (its threshold 38/η = 76,000).
DEFAULT_ADAM_LR = 5e-4
#: After the rise, λ_max·η/2 is expected in this band.
BAND = (0.9, 1.2)


@dataclass(frozen=True)
class EoSSetup:
    """The network and data of the edge-of-stability experiment (see the module docstring)."""

    examples: int = 500
    hidden: tuple[int, ...] = (200, 200)
    activation: str = "tanh"
    init: str = "torch_default"
    seed: int = 0

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x, onehot(y))`` in float32: the first ``examples`` MNIST-1D training signals, standardized."""
        from descend.data import load_mnist1d

        check("EoSSetup", "examples", self.examples, Interval(10, 4000, integer=True))
        split = load_mnist1d().train
        x = np.asarray(split.x[: self.examples], dtype=np.float64)
        x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-8)
        y = np.asarray(split.y[: self.examples])
        return x.astype(np.float32), np.eye(10, dtype=np.float32)[y]

    def model(self) -> Any:
        from descend.nn import mlp

        return mlp(40, self.hidden, 10, activation=self.activation, init=self.init, seed=self.seed)


def square_loss(output: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Cohen et al.'s square loss ½·(1/N)·Σₙ‖fₙ − tₙ‖² and its gradient (f − t)/N."""
    d = np.asarray(output) - np.asarray(target, dtype=np.asarray(output).dtype)
    n = max(len(d), 1)
    return 0.5 * float(np.sum(d.astype(np.float64) ** 2)) / n, d / n


@dataclass
class EoSRun:
    """One training run: sharpness (``steps``, ``sharpness``; for Adam the preconditioned one) against
    its ``threshold`` (2/η or 38/η), the loss at every step, where it first reached 0.9·threshold
    (``reached``, a step, or None) and parameter snapshots (every ``snapshot_every`` steps) for the
    trajectory plot."""

    label: str
    optimizer: str
    lr: float
    threshold: float
    steps: list[int] = field(default_factory=list)
    sharpness: list[float] = field(default_factory=list)
    loss_steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    reached: int | None = None
    seconds: float = 0.0
    snapshots: list[np.ndarray] = field(default_factory=list, repr=False)
    snapshot_every: int = 0

    def summary(self) -> dict[str, Any]:
        out = {
            "label": self.label,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "threshold": self.threshold,
            "steps_run": self.loss_steps[-1] + 1 if self.loss_steps else 0,
            "reached_at_step": self.reached,
            "final_loss": self.loss[-1] if self.loss else None,
            "seconds": round(self.seconds, 1),
        }
        out.update(band(self))
        return out

    def series(self, loss_every: int = 10) -> dict[str, list[Any]]:
        """The curves behind the figure (the loss every ``loss_every`` steps), for ``eos.json``."""
        return {
            "steps": list(self.steps),
            "sharpness": [float(v) for v in self.sharpness],
            "loss_steps": list(self.loss_steps[::loss_every]),
            "loss": [float(v) for v in self.loss[::loss_every]],
        }


def band(run: EoSRun, low: float = BAND[0], high: float = BAND[1]) -> dict[str, Any]:
    """λ·(1/threshold) after the rise (from ``run.reached`` on): min, max, median, and the fraction in [low, high]."""
    if run.reached is None:
        return {"after_rise": 0, "ratio_min": None, "ratio_max": None, "ratio_median": None, "in_band": None}
    after = np.array([v for s, v in zip(run.steps, run.sharpness, strict=True) if s >= run.reached]) / run.threshold
    return {
        "after_rise": int(after.size),
        "ratio_min": float(after.min()),
        "ratio_max": float(after.max()),
        "ratio_median": float(np.median(after)),
        "in_band": float(np.mean((after >= low) & (after <= high))),
    }


def train(
    optimizer: str,
    lr: float,
    setup: EoSSetup | None = None,
    *,
    max_steps: int = 20_000,
    every: int = 50,
    hover: int = 1500,
    iterations: int = 20,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    snapshots: int = 0,
    progress: Callable[[EoSRun], None] | None = None,
) -> EoSRun:
    """Full-batch ``"gd"`` or ``"adam"`` at step ``lr`` on the setup, tracking (preconditioned) sharpness.

    Stops ``hover`` steps after the sharpness first reaches 0.9·threshold, or after ``max_steps``.
    ``snapshots``: keep between this many and twice as many parameter vectors, evenly spaced along the
    way (for :func:`trajectory_pca`).
    ``progress(run)`` is called after each measurement.
    """
    from descend import optim

    owner = "edge_of_stability"
    if optimizer not in ("gd", "adam"):
        raise ParameterError(f"{owner}: optimizer must be 'gd' or 'adam', got {optimizer!r}")
    check(owner, "lr", lr, Interval(0, None, closed="neither"))
    for name, value, lowest in (("max_steps", max_steps, 1), ("every", every, 1), ("hover", hover, 0)):
        check(owner, name, value, Interval(lowest, None, integer=True))
    check(owner, "iterations", iterations, Interval(2, None, integer=True))
    setup = setup or EoSSetup()
    x, t = setup.data()
    model = setup.model()
    b1 = float(betas[0])
    adam = optimizer == "adam"
    threshold = (2 + 2 * b1) / ((1 - b1) * lr) if adam else 2.0 / lr
    label = f"Adam η = {lr:g} (38/η = {threshold:,.0f})" if adam else f"GD η = 2/{2 / lr:.0f}"
    run = EoSRun(label, optimizer, float(lr), float(threshold))
    tx = optim.adam(lr=lr, betas=betas, eps=eps) if adam else None
    state = tx.init(model.params) if tx is not None else None
    objective = ModelObjective(model, x, t, square_loss)
    vector = None
    run.snapshot_every = every if snapshots else 0
    t0 = time.perf_counter()
    stop_at = max_steps
    for step in range(max_steps + 1):
        out = model.forward(x)
        loss, dout = square_loss(out, t)
        run.loss_steps.append(step)
        run.loss.append(loss)
        if not math.isfinite(loss):
            break
        if step % every == 0 or step == stop_at:
            point = objective.sync(model)
            H = HessianOperator(objective, point)
            op = PreconditionedOperator(H, adam_preconditioner(state, betas, eps)) if adam and step else H
            if adam and step == 0:
                value = math.nan  # no preconditioner before the first step
            else:
                top = top_eigenvalues(op, 1, tol=1e-4, max_iter=iterations, start=vector, rng=setup.seed)
                vector, value = top.vectors[0], float(top.values[0])
            run.steps.append(step)
            run.sharpness.append(value)
            if run.reached is None and value >= 0.9 * threshold:
                run.reached = step
                stop_at = min(max_steps, step + hover)
            run.seconds = time.perf_counter() - t0
            if progress is not None:
                progress(run)
        if run.snapshot_every and step % run.snapshot_every == 0:
            run.snapshots.append(model.params.copy())
            if len(run.snapshots) > 2 * snapshots:  # keep between `snapshots` and twice as many, evenly spaced
                run.snapshots = run.snapshots[::2]
                run.snapshot_every *= 2
        if step >= stop_at:
            break
        model.backward(dout, input_grad=False)
        if tx is None:
            model.params[...] -= np.float32(lr) * model.grads
        else:
            state = optim.step(tx, model.params, model.grads, state)
    if run.snapshot_every and (not run.snapshots or run.loss_steps[-1] % run.snapshot_every):
        run.snapshots.append(model.params.copy())
    run.seconds = time.perf_counter() - t0
    return run


def edge_of_stability(
    lrs: Sequence[float] = DEFAULT_LRS,
    adam_lr: float | None = DEFAULT_ADAM_LR,
    setup: EoSSetup | None = None,
    progress: Callable[[EoSRun], None] | None = None,
    *,
    every: int = 50,
    adam_every: int = 25,
    **kwargs: Any,
) -> list[EoSRun]:
    """Gradient descent at each of ``lrs`` and (unless ``adam_lr`` is None) Adam, whose rise is faster, so
    measured every ``adam_every`` steps; other keyword arguments go to :func:`train`."""
    if not lrs and adam_lr is None:
        raise ParameterError("edge_of_stability: give at least one step size (lrs or adam_lr)")
    runs = [train("gd", lr, setup, progress=progress, every=every, **kwargs) for lr in lrs]
    if adam_lr is not None:
        runs.append(train("adam", adam_lr, setup, progress=progress, every=adam_every, **kwargs))
    return runs
