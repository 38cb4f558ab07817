"""The learning-rate range test (Smith, "Cyclical Learning Rates for Training Neural Networks", arXiv:1506.01186).

:func:`lr_range_test` trains a *copy* of a model for ``steps`` mini-batches with a real
:mod:`descend.optim` optimizer whose learning rate grows exponentially,

    η_t = η_min·(η_max/η_min)^(t/(steps − 1)),   t = 0 … steps − 1

(``descend.schedules.exponential_decay(η_min, η_max/η_min, transition_steps=steps − 1)``),
records the mini-batch loss ℓ_t of each step (computed before update t, at the parameters
that update t then moves), smooths it with the bias-corrected exponential moving average
of fastai's ``lr_find`` (Leslie Smith's recipe),

    m_t = β·m_{t−1} + (1 − β)·ℓ_t,  m_{−1} = 0,   s_t = m_t / (1 − β^(t+1)),

and stops early when the run diverges: ``s_t > diverge_threshold · min_{k≤t} s_k`` (fastai's
rule with threshold 4) or ℓ_t is not finite. The data loader is cycled (a new shuffled epoch)
when ``steps`` exceed one epoch. The caller's model is never modified.

Suggested rates (:class:`LRFindResult`):

* ``suggestion``, the *steepest-descent* rule: the rate at which the smoothed loss falls fastest
  per unit of log-rate, ``argmin_t ds/d(log η)`` (``np.gradient`` of ``s`` over ``log η``),
  searched from step ``skip_start`` (the first smoothed values average only a few batches) up to
  the step of the lowest smoothed loss. ``None`` when the smoothed loss never decreases there.
* ``min_loss_suggestion``, the *minimum ÷ 10* rule: one tenth of ``min_loss_lr``, the rate at the
  lowest smoothed loss (a rate near the minimum is already about to diverge).

The smoothed loss lags the raw loss by about β/(1 − β) steps (49 for β = 0.98), so both rules
err towards larger rates when the sweep is short. Losses must be non-negative (cross-entropy,
MSE) for the divergence rule to make sense.

>>> result = lr_range_test(model, "cross_entropy", "sgd", (x, y), steps=200)   # doctest: +SKIP
>>> plot_lr_find(result, "lr-find.png")                                      # doctest: +SKIP

matplotlib (the ``lab`` extra) is imported only by :func:`plot_lr_find`, with the Agg backend.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from descend._validation import Interval, check
from descend.errors import ParameterError, StructureError
from descend.optim.base import GradientTransformation
from descend.optim.regularization import penalty

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

OWNER = "lr_range_test"
MIN_STEPS, MAX_STEPS = 10, 100_000
_POSITIVE_FINITE = Interval(0, math.inf, closed="neither")


class LRFindResult(NamedTuple):
    """What :func:`lr_range_test` measured, one entry per step run (``len(lrs) == steps_run``)."""

    lrs: np.ndarray  # η_t, the rate given to the optimizer for update t (float64)
    losses: np.ndarray  # ℓ_t, the mini-batch loss before update t
    smoothed: np.ndarray  # s_t, the bias-corrected EMA of the losses
    suggestion: float | None  # steepest-descent rule (None: the smoothed loss never decreased)
    min_loss_lr: float  # the rate at the lowest smoothed loss
    min_loss_suggestion: float  # min_loss_lr / 10
    best_loss: float  # the lowest smoothed loss
    stopped_early: bool  # True when the run diverged before ``steps``
    reason: str  # why the sweep ended, in words
    steps: int  # steps asked for
    min_lr: float
    max_lr: float
    beta: float

    @property
    def steps_run(self) -> int:
        return int(self.lrs.size)


def sweep_schedule(min_lr: float, max_lr: float, steps: int) -> Callable[[int], float]:
    """``η_t = min_lr·(max_lr/min_lr)^(t/(steps − 1))``: ``min_lr`` at t = 0, ``max_lr`` at t = steps − 1."""
    from descend.schedules import exponential_decay

    _check_range(min_lr, max_lr, steps)
    return exponential_decay(float(min_lr), float(max_lr) / float(min_lr), transition_steps=int(steps) - 1)


def smooth(losses: np.ndarray | list[float], beta: float = 0.98) -> np.ndarray:
    """The bias-corrected exponential moving average ``s_t`` of ``losses`` (see the module docstring)."""
    check("smooth", "beta", beta, Interval(0, 1, closed="left"))
    out = np.empty(len(losses))
    avg = 0.0
    for t, value in enumerate(losses):
        avg = beta * avg + (1.0 - beta) * float(value)
        out[t] = avg / (1.0 - beta ** (t + 1))
    return out


def steepest_index(lrs: np.ndarray, smoothed: np.ndarray, skip_start: int = 10) -> int | None:
    """Index of the steepest descent of ``smoothed`` in log-rate, before its minimum (None: no descent)."""
    n = len(smoothed)
    if n < 3:
        return None
    end = int(np.argmin(smoothed))
    start = min(int(skip_start), max(end - 2, 0))
    if end - start < 2:
        return None
    window = slice(start, end + 1)
    slopes = np.gradient(smoothed[window], np.log(lrs[window]))
    i = int(np.argmin(slopes))
    if not slopes[i] < 0:
        return None
    return start + i


def lr_range_test(
    model,
    loss: Any,
    optimizer: str | Callable[..., GradientTransformation],
    data: Any,
    *,
    optimizer_args: Mapping[str, Any] | None = None,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 200,
    batch_size: int | None = 128,
    beta: float = 0.98,
    diverge_threshold: float | None = 4.0,
    skip_start: int = 10,
    seed: int = 0,
    l1: float = 0.0,
    l2: float = 0.0,
) -> LRFindResult:
    """Run the learning-rate range test on a copy of ``model`` (see the module docstring).

    Parameters
    ----------
    model: a ``descend.nn`` module; it is copied, never changed.
    loss: a ``descend.nn`` loss or its name (``"cross_entropy"``, ``"mse"``, ``"binary_cross_entropy"``).
    optimizer: a name of :data:`descend.train.experiment.OPTIMIZERS` (``"sgd"``, ``"momentum"``, ``"adam"``, ...),
        whose factory gets ``optimizer_args`` and the sweep as ``lr``; or a callable ``f(lr) ->
        GradientTransformation`` (``lr`` is the sweep schedule), e.g. ``lambda lr: dc.optim.sgd(lr=lr)``.
    data: a :class:`~descend.data.Dataset`, an ``(x, y)`` pair, or a :class:`~descend.data.Loader`
        (copied: its position is not advanced); cycled epoch after epoch.
    min_lr, max_lr, steps: the sweep, ``steps ≥ 10`` rates from ``min_lr`` to ``max_lr`` inclusive.
    batch_size: samples per step (None: the whole set); ignored when ``data`` is a Loader.
    beta: the smoothing factor β in [0, 1).
    diverge_threshold: stop when the smoothed loss exceeds this multiple (> 1) of its minimum; None: never.
    skip_start: first step the steepest-descent rule considers.
    seed: seeds the batch order.
    l1, l2: penalties on the weights, as in :class:`~descend.train.Trainer` (their gradients are applied;
        the recorded loss is the data loss, as ``descend train`` reports it).
    """
    from descend.data import Loader
    from descend.train.trainer import _resolve_loss

    _check_range(min_lr, max_lr, steps)
    check(OWNER, "beta", beta, Interval(0, 1, closed="left"))
    if diverge_threshold is not None:
        check(OWNER, "diverge_threshold", diverge_threshold, Interval(1, math.inf, closed="neither"))
    check(OWNER, "skip_start", skip_start, Interval(0, None, integer=True))
    check(OWNER, "seed", seed, Interval(0, None, integer=True))
    check(OWNER, "l1", l1, Interval(0, None))
    check(OWNER, "l2", l2, Interval(0, None))
    if batch_size is not None:
        check(OWNER, "batch_size", batch_size, Interval(1, None, integer=True))
    if not hasattr(model, "params") or not hasattr(model, "copy"):
        raise ParameterError(f"{OWNER}: model must be a descend.nn module, got {type(model).__name__}")
    loss_fn = _resolve_loss(loss)
    steps, beta = int(steps), float(beta)
    schedule = sweep_schedule(min_lr, max_lr, steps)
    tx = _make_optimizer(optimizer, optimizer_args, schedule)

    net = model.copy()
    net.train()
    mask = net.decay_mask() if (l1 or l2) else None
    if isinstance(data, Loader):
        loader = copy.copy(data)
        loader._active = None
    else:
        loader = Loader(data, batch_size, shuffle=True, seed=int(seed))
    batches = _cycle(loader)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # diverging is an expected outcome here
        lrs, losses, smoothed, stopped, reason = _sweep(
            net, loss_fn, tx, batches, schedule, steps, beta, diverge_threshold, mask, l1, l2, max_lr
        )
    return _result(lrs, losses, smoothed, skip_start, stopped, reason, steps, min_lr, max_lr, beta)


def _sweep(net, loss_fn, tx, batches, schedule, steps, beta, diverge_threshold, mask, l1, l2, max_lr):
    params, grads = net.params, net.grads
    # The optimizer sees the named parameter tree, as in the Trainer (a by_layout optimizer: the flat buffer).
    tree, grad_tree = net.named_parameters(), net.named_grads()
    try:
        state = tx.init(tree)
    except StructureError:
        tree, grad_tree = params, grads
        state = tx.init(tree)
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best = 0.0, math.inf
    reason = f"completed all {steps} steps (the rate reached max_lr = {float(max_lr):g})"
    stopped = False
    for t in range(steps):
        xb, yb = next(batches)
        logits = net.forward(xb)
        value = float(loss_fn.forward(logits, yb))
        if not math.isfinite(value):
            reason = f"diverged: the loss became {value} at step {t} (lr {schedule(t):.3g})"
            stopped = True
            break
        net.backward(loss_fn.backward(), input_grad=False)
        if mask is not None:
            penalty(params, grads, float(l1), float(l2), mask, value=False)
        updates, state = tx.update(grad_tree, state, tree)
        if tree is params:
            np.add(params, updates, out=params)
        else:
            for name, p in tree.items():
                np.add(p, updates[name], out=p)
        lrs.append(schedule(t))  # the rate given to the optimizer (ASGD decays it further internally)
        losses.append(value)
        avg = beta * avg + (1.0 - beta) * value
        s = avg / (1.0 - beta ** (t + 1))
        smoothed.append(s)
        best = min(best, s)
        if diverge_threshold is not None and t > 0 and best > 0 and s > diverge_threshold * best:
            reason = (
                f"diverged: the smoothed loss {s:.4g} exceeded {float(diverge_threshold):g} × its minimum "
                f"{best:.4g} at step {t} (lr {lrs[-1]:.3g})"
            )
            stopped = True
            break
    return lrs, losses, smoothed, stopped, reason


def _result(lrs, losses, smoothed, skip_start, stopped, reason, steps, min_lr, max_lr, beta) -> LRFindResult:
    lr_arr, loss_arr, smooth_arr = (np.asarray(v, dtype=np.float64) for v in (lrs, losses, smoothed))
    if smooth_arr.size == 0:
        raise ParameterError(f"{OWNER}: {reason}; the loss was not finite at the first step (lower min_lr)")
    i_min = int(np.argmin(smooth_arr))
    steep = steepest_index(lr_arr, smooth_arr, skip_start)
    return LRFindResult(
        lrs=lr_arr,
        losses=loss_arr,
        smoothed=smooth_arr,
        suggestion=None if steep is None else float(lr_arr[steep]),
        min_loss_lr=float(lr_arr[i_min]),
        min_loss_suggestion=float(lr_arr[i_min]) / 10.0,
        best_loss=float(smooth_arr[i_min]),
        stopped_early=stopped,
        reason=reason,
        steps=int(steps),
        min_lr=float(min_lr),
        max_lr=float(max_lr),
        beta=float(beta),
    )


def _check_range(min_lr: float, max_lr: float, steps: int) -> None:
    check(OWNER, "min_lr", min_lr, _POSITIVE_FINITE)
    check(OWNER, "max_lr", max_lr, _POSITIVE_FINITE)
    if not max_lr > min_lr:
        raise ParameterError(f"{OWNER}: max_lr must be greater than min_lr ({min_lr:g}), got {max_lr:g}")
    check(OWNER, "steps", steps, Interval(MIN_STEPS, MAX_STEPS, integer=True))


def _make_optimizer(optimizer: Any, optimizer_args: Mapping[str, Any] | None, schedule) -> GradientTransformation:
    if isinstance(optimizer, str):
        from descend import optim
        from descend.train.experiment import OPTIMIZERS

        if optimizer not in OPTIMIZERS:
            raise ParameterError(f"{OWNER}: unknown optimizer {optimizer!r}; valid optimizers: {', '.join(OPTIMIZERS)}")
        name, fixed = OPTIMIZERS[optimizer]
        args = dict(optimizer_args or {})
        if "lr" in args:
            raise ParameterError(f"{OWNER}: optimizer_args must not set lr (the test sweeps it)")
        try:
            tx = getattr(optim, name)(**{**fixed, **args, "lr": schedule})
        except TypeError as e:
            raise ParameterError(f"{OWNER}: bad optimizer_args for {optimizer!r}: {e}") from None
    elif callable(optimizer):
        if optimizer_args:
            raise ParameterError(f"{OWNER}: optimizer_args go with an optimizer name, not a factory")
        tx = optimizer(schedule)
    else:
        raise ParameterError(
            f"{OWNER}: optimizer must be an optimizer name or a callable lr -> GradientTransformation, "
            f"got {type(optimizer).__name__}"
        )
    if not isinstance(tx, GradientTransformation):
        raise ParameterError(f"{OWNER}: the optimizer factory must return a GradientTransformation, got {tx!r}")
    return tx


def _cycle(loader) -> Iterator[Any]:
    """Batches of ``loader`` forever, one epoch after another (each a new shuffle)."""
    while True:
        yield from loader


# ---------------------------------------------------------------------------------------------------------- plot


def plot_lr_find(
    result: LRFindResult,
    out: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    figsize: tuple[float, float] = (8.0, 5.0),
    dpi: int = 100,
) -> Figure:
    """Smoothed loss against the rate (log axis), the raw loss faint, the suggested rate(s) marked; PNG to ``out``.

    Returns the figure (a ``matplotlib.figure.Figure`` on the Agg backend, not registered with pyplot).
    ``out``'s parent directories are created; an existing directory is refused.
    """
    check("plot_lr_find", "dpi", dpi, Interval(10, 600, integer=True))
    if not isinstance(result, LRFindResult):
        raise ParameterError(f"plot_lr_find: result must be an LRFindResult, got {type(result).__name__}")
    path = None if out is None else _out_path(out)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    lrs, raw, sm = result.lrs, result.losses, result.smoothed
    ax.plot(lrs, raw, color="C0", alpha=0.25, linewidth=0.8, label="mini-batch loss")
    ax.plot(lrs, sm, color="C0", linewidth=2.0, label=f"smoothed (β = {result.beta:g})")
    ax.set_xscale("log")
    if result.suggestion is not None:
        ax.axvline(result.suggestion, color="C3", linestyle="--", linewidth=1.5)
        ax.plot([result.suggestion], [np.interp(np.log(result.suggestion), np.log(lrs), sm)], "o", color="C3",
                label=f"suggested lr {result.suggestion:.2g} (steepest descent)")  # fmt: skip
    ax.axvline(result.min_loss_suggestion, color="C2", linestyle=":", linewidth=1.2,
               label=f"min-loss lr / 10 = {result.min_loss_suggestion:.2g}")  # fmt: skip
    # Keep the divergence spike from flattening the interesting part of the curve.
    i_min = int(np.argmin(sm))
    low = float(min(sm.min(), np.min(raw[: i_min + 1])))
    high = float(max(sm[: i_min + 1].max(), raw[0]))
    pad = 0.08 * max(high - low, 1e-12)
    ax.set_ylim(low - pad, high + 4 * pad)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title(title or f"Learning-rate range test ({result.steps_run} steps; {_short(result.reason)})")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    if path is not None:
        try:
            fig.savefig(path, format="png", dpi=dpi)
        except OSError as e:
            raise ParameterError(f"plot_lr_find: cannot write {str(path)!r} ({e.strerror or e})") from None
    return fig


def _short(reason: str) -> str:
    return "diverged" if reason.startswith("diverged") else "completed"


def _out_path(out: str | os.PathLike[str]) -> Path:
    path = Path(out)
    if path.is_dir():
        raise ParameterError(f"plot_lr_find: output path {str(path)!r} is a directory; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a parent that is a file, a read-only directory
        raise ParameterError(f"plot_lr_find: cannot create the folder of {str(path)!r} ({e.strerror or e})") from None
    return path


__all__ = ["LRFindResult", "lr_range_test", "plot_lr_find", "smooth", "steepest_index", "sweep_schedule"]
