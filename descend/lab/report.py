"""The report of a comparison: ``report.html``, one self-contained page, and its figures as PNG files.

:func:`write_report` reads a finished comparison directory (:mod:`descend.lab.compare`) and writes,
beside ``comparison.json``:

* ``report.html``: the ranked table with bootstrap intervals over seeds and the optimizers tied within
  noise (:mod:`descend.lab.stats`), what the protocol could not settle (a selected learning rate at the
  edge of its grid, a curve still rising at the end), every figure (base64 PNG, so the page opens offline
  from a file), the gradient-flow findings in words, the data behind the page (inline JSON, and
  ``report-data.json`` beside it), the exact command line it was started with and the configuration
  with the command that reproduces it;
* ``curves_epoch.png``, ``curves_time.png``: training and validation loss and accuracy against
  epoch and against wall time, one line per optimizer at its selected learning rate, with a band
  (± one standard deviation) over seeds;
* ``learning_rate.png``: the learning rate actually used against the step (schedules and plateau
  reductions show);
* ``lr_sensitivity.png``: the final validation metric against the learning rate, per optimizer
  (the tuneability plot; diverged runs are crosses at the bottom);
* ``gradient_flow.png``: per-layer gradient norms and update-to-weight ratios over training;
* ``overfitting.png``: the train/validation gap over epochs, with the epoch where early stopping
  would have stopped (the y-axis clipped to the values' robust range when an outlier would stretch it).

:func:`table` gives the ranked table's cells, which ``descend compare`` also prints. matplotlib
(the ``lab`` extra) is imported only here, with the Agg backend.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from descend._io import atomic_write_text
from descend.lab import stats
from descend.lab.compare import Comparison, RunResult, format_lr, plan_to_toml
from descend.optim import registry
from descend.train import experiment as ex

REPORT = "report.html"
#: The data behind the page (also embedded in it), beside it.
REPORT_DATA = "report-data.json"

#: One colour per optimizer name, the same in every figure and every comparison: a view of descend.optim.registry.
COLORS: dict[str, str] = registry.colors()

#: Early-stopping patience (epochs) assumed by the overfitting figure when the runs used none.
DEFAULT_PATIENCE = 3

# Gradient-flow thresholds. A layer's gradients "vanish" when their norm ends below VANISH x its
# first-epoch value (or below TINY), and "explode" when they become non-finite or grow above
# EXPLODE x the first-epoch value. The update-to-weight ratio ‖Δw‖/‖w‖ is commonly around 1e-3 per
# step; above RATIO_HIGH a step rewrites a noticeable part of the layer, below RATIO_LOW it barely moves.
VANISH, TINY, EXPLODE = 1e-3, 1e-8, 1e3
RATIO_HIGH, RATIO_LOW = 0.1, 1e-6


def color(name: str) -> str:
    return registry.color(name)


# ------------------------------------------------------------------------------------------------- table


def _pm(mean: float | None, std: float | None, n: int) -> str:
    if mean is None:
        return "—"
    return f"{mean:.4f} ± {std:.4f}" if n > 1 and std is not None else f"{mean:.4f}"


def _ci(iv: stats.Interval | None) -> str:
    if iv is None:
        return "—"
    return "one seed" if iv.n < 2 else str(iv)


@dataclass
class Uncertainty:
    """Bootstrap intervals over seeds (final and best metric) and the ranking's groups of ties (by final)."""

    final: dict[str, stats.Interval | None]
    best: dict[str, stats.Interval | None]
    groups: list[list[str]]
    ranks: dict[str, str]  # "1", "1", "3" ... (standard competition ranking of the groups)

    @property
    def ties(self) -> list[str]:
        """One sentence per group of two or more tied optimizers."""
        return [t for t in (stats.ties_sentence(g) for g in self.groups) if t is not None]


def uncertainty(comparison: Comparison) -> Uncertainty:
    """The seeded bootstrap interval (:func:`descend.lab.stats.bootstrap_ci`) of each optimizer's mean final and
    best metric over its finished, not diverged seeds at the selected learning rate, and the tie groups."""
    metric = comparison.metric
    final: dict[str, stats.Interval | None] = {}
    best: dict[str, stats.Interval | None] = {}
    for name in comparison.plan["optimizers"]:
        runs = [r for r in comparison.seed_results(name) if r.finished]
        finals = [v for v in (r.final(metric) for r in runs) if v is not None]
        bests = [v for v in (r.best(metric) for r in runs) if v is not None]
        final[name] = stats.bootstrap_ci(finals) if finals else None
        best[name] = stats.bootstrap_ci(bests) if bests else None
    groups = stats.tie_groups(final)
    return Uncertainty(final, best, groups, stats.group_ranks(groups))


def table(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of the ranked table (the terminal's and the report's).

    The rank is shared by optimizers tied within noise (1, 1, 3: their 95 % bootstrap intervals of the mean final
    metric over seeds overlap; :func:`uncertainty`)."""
    metric = comparison.metric.replace("_", " ")
    target = comparison.target()
    tgt = f"≥ {target:.3g}" if math.isfinite(target) else "target"
    pct = f"{100 * stats.CONFIDENCE:g} %"
    headers = [
        "#",
        "optimizer",
        "best lr",
        f"final {metric} (mean ± std)",
        f"{pct} CI",
        f"best {metric} (mean ± std)",
        f"{pct} CI",
        f"epochs to {tgt}",
        f"time to {tgt}",
        "lr sensitivity",
        "status",
    ]
    unc = uncertainty(comparison)
    rows = []
    for position, row in enumerate(comparison.ranking(), start=1):
        seeds = f"{row.target_reached}/{row.seeds_total}"
        reached = row.target_epochs is not None
        rows.append(
            [
                unc.ranks.get(row.optimizer, str(position)) if row.final_mean is not None else str(position),
                row.optimizer,
                format_lr(row.best_lr),
                _pm(row.final_mean, row.final_std, row.seeds_ok),
                _ci(unc.final.get(row.optimizer)),
                _pm(row.best_mean, row.best_std, row.seeds_ok),
                _ci(unc.best.get(row.optimizer)),
                f"{row.target_epochs:.1f} ({seeds})" if reached else f"— ({seeds})",
                f"{row.target_time:.2f} s" if reached and row.target_time is not None else "—",
                "—" if row.sensitivity is None else f"{row.sensitivity:.3f}",
                row.status,
            ]
        )
    return headers, rows


# ------------------------------------------------------------------------------------------ protocol warnings


def _and(items: Sequence[str]) -> str:
    items = list(items)
    if not items:
        return "none"
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def extended_grid(grid: Sequence[float], edge: str, more: int = 2) -> list[float]:
    """``grid`` with ``more`` learning rates added past its ``"low"`` or ``"high"`` edge, at the grid's own
    geometric step, rounded to one significant digit (``[1e-3, ..., 0.3]`` -> ``[..., 0.3, 0.9, 3]``)."""
    values = sorted(grid)
    ratio = (values[-1] / values[0]) ** (1 / (len(values) - 1)) if len(values) > 1 else math.sqrt(10)
    ratio = ratio if ratio > 1 else math.sqrt(10)
    if edge == "high":
        new = [float(f"{values[-1] * ratio ** (k + 1):.1g}") for k in range(more)]
        return values + [v for v in new if v > values[-1]]
    new = [float(f"{values[0] / ratio ** (k + 1):.1g}") for k in reversed(range(more))]
    return [v for v in new if v < values[0]] + values


def protocol_warnings(comparison: Comparison) -> list[Finding]:
    """What the protocol could not settle, in words: a selected learning rate at the edge of its grid (the best
    rate may lie outside it) and a metric still rising at the last epoch (the budget was too short)."""
    out: list[Finding] = []
    metric = comparison.metric
    label = metric.replace("_", " ")
    epochs = comparison.plan["base"]["epochs"]
    best_runs = _best_runs(comparison)
    for name in comparison.plan["optimizers"]:
        lr = comparison.selected.get(name)
        if lr is None:
            continue
        grid = comparison.plan["grid"][name]
        span = f"{format_lr(min(grid))} … {format_lr(max(grid))}"
        edge = stats.grid_edge(grid, lr)
        if edge == "only":
            out.append(Finding(name, lr, "warning", f"{name}: its grid has one learning rate ({format_lr(lr)}): "
                               "nothing was tuned; give it a grid (--lrs NAME=LOW:HIGH:N)."))  # fmt: skip
        elif edge is not None:
            side = "smallest" if edge == "low" else "largest"
            where = "below" if edge == "low" else "above"
            out.append(Finding(name, lr, "warning", f"{name}: the selected lr {format_lr(lr)} is the {side} of its "
                               f"grid ({span}): the best rate may lie {where} it; extend the grid, e.g. "
                               f"--lrs {name}={','.join(f'{v:g}' for v in extended_grid(grid, edge))}"))  # fmt: skip
        runs = best_runs.get(name, [])
        if runs and not all(r.diverged for r in runs):
            _, mean, _, _ = band([r for r in runs if not r.diverged], metric)
            trend = stats.still_improving(list(mean))
            if trend.improving:
                out.append(Finding(name, lr, "warning", f"{name}: {label} still rose by {trend.rise:.3f} over the "
                                   f"last {trend.window} epochs (of {epochs}, mean over seeds): the budget was too "
                                   "short to see where it ends; train longer (--epochs)."))  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------ curve helpers


def _series(run: RunResult, key: str) -> tuple[np.ndarray, np.ndarray]:
    rows = run.metrics
    x = np.array([r["epoch"] for r in rows], dtype=float)
    y = np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)
    return x, y


def band(runs: Sequence[RunResult], key: str, x_key: str = "epoch") -> tuple[np.ndarray, ...]:
    """(x, mean, low, high) over runs, epoch by epoch; an epoch counts the runs with a finite value there."""
    curves = []
    for run in runs:
        rows = run.metrics
        xs = [float(r[x_key]) if r.get(x_key) is not None else math.nan for r in rows]
        ys = [float(r[key]) if r.get(key) is not None else math.nan for r in rows]
        curves.append((xs, ys))
    length = max((len(c[0]) for c in curves), default=0)
    out_x, mean, low, high = [], [], [], []
    for i in range(length):
        pts = [(c[0][i], c[1][i]) for c in curves if i < len(c[0]) and math.isfinite(c[1][i])]
        if not pts:
            continue
        xs = [p[0] for p in pts if math.isfinite(p[0])]
        ys = [p[1] for p in pts]
        m = math.fsum(ys) / len(ys)
        s = math.sqrt(math.fsum((v - m) ** 2 for v in ys) / len(ys))
        out_x.append(math.fsum(xs) / len(xs) if xs else float(i + 1))
        mean.append(m)
        low.append(m - s)
        high.append(m + s)
    return tuple(np.array(a, dtype=float) for a in (out_x, mean, low, high))


def early_stopping_epoch(values: Sequence[float], patience: int) -> tuple[int | None, int | None]:
    """(epoch where training would stop, epoch of the best value) for val_loss ``values`` (1-based),
    as :class:`~descend.train.EarlyStopping` decides; (None, best) when it would never stop."""
    best, best_epoch, wait = math.inf, None, 0
    for epoch, value in enumerate(values, start=1):
        if math.isfinite(value) and value < best:
            best, best_epoch, wait = value, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch, best_epoch
    return None, best_epoch


# ---------------------------------------------------------------------------------------- gradient flow


@dataclass
class Finding:
    """One statement of the gradient-flow section."""

    optimizer: str
    lr: float
    level: str  # "warning" or "note"
    text: str


def layer_names(run: RunResult) -> list[str]:
    rows = run.metrics
    if not rows:
        return []
    return [k.split("/", 1)[1] for k in rows[0] if k.startswith("grad_norm/")]


def param_label(name: str) -> str:
    """A layer by its parameters' names, as the ``metrics.csv`` column ``grad_norm/<name>`` gives it: a module
    index of a sequential network (``"4"``) is ``4.*`` (its parameters ``4.weight`` and ``4.bias``); any other
    name (a parameter of a named tree, ``"encoder.fc1"``) is itself."""
    return f"{name}.*" if name.isdigit() else name


def _layer_label(names: Sequence[str], name: str) -> str:
    label = param_label(name)
    if len(names) > 1 and name == names[0]:
        return f"{label} (input side)"
    if len(names) > 1 and name == names[-1]:
        return f"{label} (output)"
    return label


def gradient_findings(comparison: Comparison) -> list[Finding]:
    """Layers whose gradients vanish or explode, and update-to-weight ratios out of the usual range, in words.

    Looks at each optimizer's selected run (first seed) and at every diverged run of the grid.
    """
    found: list[Finding] = []
    first_seed = comparison.plan["seeds"][0]
    for name in comparison.plan["optimizers"]:
        runs = []
        lr = comparison.selected.get(name)
        if lr is not None:
            runs.append(comparison.runs[(name, lr, first_seed)])
        runs += [r for r in comparison.search_results(name) if r.diverged and r.spec.lr != lr]
        for run in runs:
            found += _run_findings(run)
    return found


def _run_findings(run: RunResult) -> list[Finding]:
    spec, rows = run.spec, run.metrics
    names = layer_names(run)
    out: list[Finding] = []
    who = f"{spec.optimizer} at lr {format_lr(spec.lr)}"

    def add(level: str, text: str) -> None:
        out.append(Finding(spec.optimizer, spec.lr, level, text))

    if run.diverged:
        bad = [r["epoch"] for r in rows if r.get("loss") is None or not math.isfinite(r["loss"])]
        epoch = bad[0] if bad else (rows[-1]["epoch"] if rows else 1)
        add("warning", f"{who}: the loss became NaN/inf in epoch {epoch}; training diverged (exploding updates).")
    for layer in names:
        label = _layer_label(names, layer)
        g = [r.get(f"grad_norm/{layer}") for r in rows]
        finite = [v for v in g if v is not None and math.isfinite(v)]
        if len(finite) < len(g):
            add("warning", f"{who}: gradients of {label} exploded (norm became NaN/inf).")
            continue
        if not finite:
            continue
        first, last, peak = finite[0], finite[-1], max(finite)
        if first > 0 and peak > EXPLODE * first:
            add("warning", f"{who}: gradients of {label} exploded: norm grew from {first:.3g} to {peak:.3g}.")
        elif last < TINY or (first > 0 and last < VANISH * first):
            add("warning", f"{who}: gradients of {label} vanish: norm collapsed from {first:.3g} to {last:.3g}.")
        ratios = [r.get(f"update_ratio/{layer}") for r in rows]
        ratios = [v for v in ratios if v is not None and math.isfinite(v)]
        if ratios:
            mean_ratio = math.fsum(ratios) / len(ratios)
            if mean_ratio > RATIO_HIGH:
                add(
                    "warning",
                    f"{who}: updates of {label} are large: ‖Δw‖/‖w‖ averages {mean_ratio:.3g} per step "
                    f"(usually about 1e-3); the learning rate is high for this layer.",
                )
            elif mean_ratio < RATIO_LOW:
                add("note", f"{who}: {label} barely moves: ‖Δw‖/‖w‖ averages {mean_ratio:.2g} per step.")
    exploded = any("exploded" in f.text for f in out)
    if len(names) > 1 and rows and not run.diverged and not exploded:
        g_in, g_out = rows[-1].get(f"grad_norm/{names[0]}"), rows[-1].get(f"grad_norm/{names[-1]}")
        if g_in is not None and g_out and math.isfinite(g_in) and g_in < VANISH * g_out:
            add(
                "warning",
                f"{who}: gradients vanish toward the input: {_layer_label(names, names[0])} gets {g_in:.3g}, "
                f"{_layer_label(names, names[-1])} {g_out:.3g}.",
            )
    return out


# ---------------------------------------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 110,
            "font.size": 9,
            "axes.titlesize": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "legend.frameon": False,
            "legend.fontsize": 8,
        }
    )
    return plt


def _best_runs(comparison: Comparison) -> dict[str, list[RunResult]]:
    """optimizer -> its finished runs at the selected learning rate (one per seed)."""
    return {
        name: [r for r in comparison.seed_results(name) if r.finished]
        for name in comparison.plan["optimizers"]
        if comparison.selected.get(name) is not None
    }


def _legend_label(name: str, runs: Sequence[RunResult]) -> str:
    n_div = sum(r.diverged for r in runs)
    extra = f", {n_div} diverged" if n_div else ""
    return f"{name} (lr {format_lr(runs[0].spec.lr)}{extra})" if runs else name


def _curves_figure(plt, comparison: Comparison, x_key: str):
    best = _best_runs(comparison)
    has_val = comparison.plan["base"]["validation"] > 0
    panels = [("loss", "training loss"), ("accuracy", "training accuracy")]
    if has_val:
        panels = [("loss", "training loss"), ("val_loss", "validation loss"),
                  ("accuracy", "training accuracy"), ("val_accuracy", "validation accuracy")]  # fmt: skip
    cols = 2
    fig, axes = plt.subplots(len(panels) // cols, cols, figsize=(10, 3.1 * len(panels) // cols),
                             constrained_layout=True, squeeze=False)  # fmt: skip
    for ax, (key, title) in zip(axes.flat, panels, strict=True):
        for name, runs in best.items():
            if not runs:
                continue
            x, mean, low, high = band(runs, key, x_key)
            if not len(x):
                continue
            ax.plot(x, mean, color=color(name), lw=1.6, label=_legend_label(name, runs))
            ax.fill_between(x, low, high, color=color(name), alpha=0.18, lw=0)
        ax.set_title(title)
        ax.set_xlabel("epoch" if x_key == "epoch" else "wall time (s)")
        if "loss" in key:
            _log_if_positive(ax)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right center")
    what = "epoch" if x_key == "epoch" else "wall time"
    fig.suptitle(f"Loss and accuracy against {what}: mean over seeds at each optimizer's best lr, band ± 1 std")
    return fig


def _log_if_positive(ax) -> None:
    ys = [y for line in ax.get_lines() for y in np.asarray(line.get_ydata(), dtype=float) if math.isfinite(y)]
    if ys and min(ys) > 0 and max(ys) > 30 * min(ys):  # a narrow range reads better on a linear axis
        ax.set_yscale("log")


#: Line styles that tell apart curves drawn on top of each other: a marker shape and a dash pattern per line.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p")
DASHES = ("-", "--", "-.", ":")


def line_styles(count: int) -> list[dict[str, Any]]:
    """``count`` distinct (marker, dash) styles; the markers of line i sit at different points than those of the
    others (``markevery`` offsets are applied by the caller through :func:`_markevery`)."""
    return [{"marker": MARKERS[i % len(MARKERS)], "ls": DASHES[(i // len(MARKERS) + i) % len(DASHES)]}
            for i in range(count)]  # fmt: skip


def _markevery(index: int, count: int, points: int) -> tuple[int, int]:
    """Markers every ``every`` points, shifted per line so that coinciding lines show each one's markers."""
    every = max(1, math.ceil(points / 6), count if points >= 2 * count else 1)
    return (index * every // max(count, 1)) % every, every


def identical_groups(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[list[str]]:
    """Names whose (x, y) curves coincide (same x, y equal to 1e-9 relative), in groups of two or more."""
    groups: list[list[str]] = []
    keys: list[tuple[np.ndarray, np.ndarray]] = []
    for name, (x, y) in curves.items():
        for group, (gx, gy) in zip(groups, keys, strict=True):
            if len(gx) == len(x) and np.array_equal(gx, x) and np.allclose(gy, y, rtol=1e-9, atol=0.0):
                group.append(name)
                break
        else:
            groups.append([name])
            keys.append((x, y))
    return [g for g in groups if len(g) > 1]


def _lr_figure(plt, comparison: Comparison):
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.3), constrained_layout=True)
    first = comparison.plan["seeds"][0]
    curves: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    for name in comparison.plan["optimizers"]:
        lr = comparison.selected.get(name)
        if lr is None:
            continue
        run = comparison.runs[(name, lr, first)]
        rows = [r for r in run.metrics if r.get("lr") is not None and math.isfinite(r["lr"])]
        if not rows:
            continue
        steps = np.array([0] + [r["step"] for r in rows], dtype=float)
        lrs = np.array([rows[0]["lr"]] + [r["lr"] for r in rows], dtype=float)
        if comparison.plan["base"]["schedule"] not in ("constant", "plateau"):
            steps, lrs = steps[1:], lrs[1:]
        curves[name] = (steps, lrs, lr)
    styles = line_styles(len(curves))
    for i, (name, (steps, lrs, lr)) in enumerate(curves.items()):
        kw = {
            "color": color(name),
            "lw": 1.6,
            "label": f"{name} (lr {format_lr(lr)})",
            "drawstyle": "steps-post",
            "ms": 6,
            "mfc": "none",
            "mew": 1.4,
            "markevery": _markevery(i, len(curves), len(steps)),
            **styles[i],
        }
        ax.plot(steps, lrs, **kw)
        ax2.plot(steps, lrs / lr, **kw)
    # Curves that coincide are named where they end, so that none of them is hidden under another.
    for group in identical_groups({n: (c[0], c[1] / c[2]) for n, c in curves.items()}):
        steps, lrs, lr = curves[group[0]]
        ax2.annotate(" = ".join(group) + " (identical)", (steps[-1], lrs[-1] / lr), xytext=(-4, 6),
                     textcoords="offset points", ha="right", va="bottom", fontsize=7.5, color="0.25")  # fmt: skip
    ax.set_title("learning rate used (last step of each epoch)")
    ax.set_xlabel("step")
    _log_if_positive(ax)
    ax2.set_title("relative to the base learning rate")
    ax2.set_xlabel("step")
    ax2.set_ylim(bottom=0, top=max([1.15] + [float(np.nanmax(c[1] / c[2])) * 1.15 for c in curves.values()]))
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right center")
    schedule = comparison.plan["base"]["schedule"]
    fig.suptitle(f"Learning rate against step (schedule: {schedule}; first seed of each selected lr)")
    return fig


def _sensitivity_figure(plt, comparison: Comparison):
    metric = comparison.metric
    fig, ax = plt.subplots(figsize=(10, 4), constrained_layout=True)
    floor = 0.0
    for name in comparison.plan["optimizers"]:
        runs = comparison.search_results(name)
        ok = [(r.spec.lr, r.final(metric)) for r in runs if r.final(metric) is not None]
        div = [r.spec.lr for r in runs if r.diverged]
        c = color(name)
        if ok:
            ax.plot([p[0] for p in ok], [p[1] for p in ok], "o-", color=c, lw=1.6, ms=5, label=name)
        if div:
            ax.plot(div, [floor] * len(div), "x", color=c, ms=9, mew=2, label=None if ok else f"{name} (diverged)")
        lr = comparison.selected.get(name)
        if lr is not None:
            value = comparison.runs[(name, lr, comparison.plan["seeds"][0])].final(metric)
            ax.plot([lr], [value], "o", ms=12, mfc="none", mec=c, mew=2)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"final {metric.replace('_', ' ')}")
    ax.set_title(
        f"Learning-rate sensitivity (first seed): final {metric.replace('_', ' ')} against lr; "
        "ring = selected, × = diverged"
    )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    return fig


def _gradient_figure(plt, comparison: Comparison):
    first = comparison.plan["seeds"][0]
    names = [n for n in comparison.plan["optimizers"] if comparison.selected.get(n) is not None]
    cols = max(1, min(4, len(names)))
    blocks = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(2 * blocks, cols, figsize=(10, 2.3 * 2 * blocks + 0.6), constrained_layout=True,
                             squeeze=False)  # fmt: skip
    cmap = plt.get_cmap("viridis")
    for j in range(len(names), blocks * cols):  # empty cells of the last block
        axes[2 * (j // cols), j % cols].set_visible(False)
        axes[2 * (j // cols) + 1, j % cols].set_visible(False)
    for j, name in enumerate(names):
        top, bottom = axes[2 * (j // cols), j % cols], axes[2 * (j // cols) + 1, j % cols]
        run = comparison.runs[(name, comparison.selected[name], first)]
        layers = layer_names(run)
        for k, layer in enumerate(layers):
            c = cmap(k / max(len(layers) - 1, 1) * 0.85)
            for ax, prefix in ((top, "grad_norm"), (bottom, "update_ratio")):
                x, y = _series(run, f"{prefix}/{layer}")
                keep = np.isfinite(y) & (y > 0)
                ax.plot(x[keep], y[keep], color=c, lw=1.4, label=_layer_label(layers, layer))
        top.set_title(f"{name} (lr {format_lr(comparison.selected[name])})", color=color(name), fontweight="bold")
        bottom.set_xlabel("epoch")
        _log_if_positive(top)
        _log_if_positive(bottom)
        if j % cols == 0:
            top.set_ylabel("gradient norm")
            bottom.set_ylabel("‖Δw‖ / ‖w‖")
    if names:
        handles, labels = axes[0, 0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6))
    fig.suptitle("Gradient flow (first seed, selected lr): per-layer gradient norm (upper) and update/weight (lower)")
    return fig


def clip_axis(ax, lines: Sequence[Any]) -> stats.Limits | None:
    """Clip ``ax``'s y-axis to the robust range of the ``lines``' values (:func:`descend.lab.stats.robust_limits`,
    so that one outlier does not flatten every curve) and draw each value outside it as ▲ / ▼ on the edge, in its
    line's colour. Returns the limits (None: nothing was clipped)."""
    values = [float(v) for line in lines for v in np.asarray(line.get_ydata(), dtype=float)]
    limits = stats.robust_limits(values)
    if limits is None:
        return None
    ax.set_ylim(limits.low, limits.high)
    for line in lines:
        x = np.asarray(line.get_xdata(), dtype=float)
        y = np.asarray(line.get_ydata(), dtype=float)
        for mask, edge, marker in ((y > limits.high, limits.high, "^"), (y < limits.low, limits.low, "v")):
            if mask.any():
                ax.plot(x[mask], np.full(int(mask.sum()), edge), marker, color=line.get_color(), ms=7,
                        clip_on=False, zorder=5, label="_clipped")  # fmt: skip
    return limits


def _overfitting_figure(plt, comparison: Comparison):
    """The train/validation gaps, and the early-stopping epochs; ``clipped``: panel title -> the limits of a
    y-axis clipped to its robust range."""
    best = _best_runs(comparison)
    patience = comparison.plan["base"]["early_stopping"] or DEFAULT_PATIENCE
    has_val = comparison.plan["base"]["validation"] > 0
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.5), constrained_layout=True)
    stops: dict[str, tuple[int | None, int | None]] = {}
    drawn: dict[Any, list[Any]] = {ax: [], ax2: []}
    if has_val:
        for name, runs in best.items():
            if not runs:
                continue
            x, train, _, _ = band(runs, "loss")
            _, val, _, _ = band(runs, "val_loss")
            xa, acc, _, _ = band(runs, "accuracy")
            _, vacc, _, _ = band(runs, "val_accuracy")
            n = min(len(train), len(val))
            c = color(name)
            if n:
                gap = val[:n] - train[:n]
                drawn[ax] += ax.plot(x[:n], gap, color=c, lw=1.6, label=name)
                stop, best_epoch = early_stopping_epoch(list(val[:n]), patience)
                stops[name] = (stop, best_epoch)
                if stop is not None:
                    ax.axvline(stop, color=c, ls=":", lw=1.2)
                    ax.plot([stop], [gap[stop - 1]], "v", color=c, ms=8)
            m = min(len(acc), len(vacc))
            if m:
                drawn[ax2] += ax2.plot(xa[:m], acc[:m] - vacc[:m], color=c, lw=1.6, label=name)
                if stops.get(name, (None, None))[0] is not None:
                    ax2.axvline(stops[name][0], color=c, ls=":", lw=1.2)
    ax.axhline(0, color="#999", lw=0.8)
    ax2.axhline(0, color="#999", lw=0.8)
    clipped: dict[str, stats.Limits] = {}
    for a, title in ((ax, "validation loss − training loss"), (ax2, "training accuracy − validation accuracy")):
        limits = clip_axis(a, drawn[a])
        if limits is not None:
            clipped[title] = limits
            title += f"\n(y clipped to the robust range: {limits.clipped} of {limits.total} points ▲▼ at the edge)"
        a.set_title(title)
        a.set_xlabel("epoch")
    if ax.get_legend_handles_labels()[0]:
        fig.legend(*ax.get_legend_handles_labels(), loc="outside right center")
    fig.suptitle(
        f"Overfitting: train/validation gap (mean over seeds)\n▼ and dotted line: early stopping "
        f"(patience {patience}, validation loss) would stop there"
    )
    return fig, stops, clipped


# ------------------------------------------------------------------------------------------------- report


def _png(fig, path: Path) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = buf.getvalue()
    path.write_bytes(data)
    return base64.b64encode(data).decode("ascii")


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


@dataclass
class _Extras:
    """What the page shows besides the figures: intervals and ties, protocol warnings, clipped axes."""

    uncertainty: Uncertainty
    warnings: list[Finding]
    clipped: dict[str, stats.Limits]


def _interval_json(iv: stats.Interval | None) -> dict[str, Any] | None:
    return None if iv is None else iv._asdict()


def _data(comparison: Comparison, findings: list[Finding], stops: dict[str, Any], extras: _Extras) -> dict[str, Any]:
    runs = []
    for r in comparison.runs.values():
        s = r.summary or {}
        runs.append(
            {
                "optimizer": r.spec.optimizer,
                "lr": r.spec.lr,
                "seed": r.spec.seed,
                "phase": r.spec.phase,
                "dir": r.spec.relpath,
                "status": s.get("status", "unfinished"),
                "epochs": s.get("epochs"),
                "wall_time": s.get("wall_time"),
                "final": s.get("final"),
                "best": s.get("best"),
                "test_accuracy": s.get("test_accuracy"),
            }
        )
    return {
        "format": comparison.manifest["format"],
        "metric": comparison.metric,
        "target": comparison.target() if math.isfinite(comparison.target()) else None,
        "selected": comparison.selected,
        "ranking": [asdict(row) | {"grid": {str(k): v for k, v in row.grid.items()}} for row in comparison.ranking()],
        "early_stopping": {k: {"stop_epoch": v[0], "best_epoch": v[1]} for k, v in stops.items()},
        "gradient_flow": [asdict(f) for f in findings],
        "intervals": {
            name: {"final": _interval_json(extras.uncertainty.final[name]), "best": _interval_json(b)}
            for name, b in extras.uncertainty.best.items()
        },
        "tie_groups": extras.uncertainty.groups,
        "warnings": [asdict(f) for f in extras.warnings],
        "plan": comparison.plan,
        "runs": runs,
    }


def _json_script(obj: Any) -> str:
    text = json.dumps(_finite(obj), indent=1, allow_nan=False)
    return text.replace("</", "<\\/")


def _finite(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_report(comparison: Comparison, out: str | os.PathLike | None = None) -> Path:
    """Write ``report.html`` and the PNG figures into ``out`` (default: the comparison directory)."""
    plt = _pyplot()
    out = Path(out) if out is not None else comparison.root
    out.mkdir(parents=True, exist_ok=True)
    images: dict[str, str] = {}

    def save(name: str, fig) -> None:
        try:
            images[name] = _png(fig, out / f"{name}.png")
        finally:
            plt.close(fig)

    save("curves_epoch", _curves_figure(plt, comparison, "epoch"))
    save("curves_time", _curves_figure(plt, comparison, "time"))
    save("learning_rate", _lr_figure(plt, comparison))
    save("lr_sensitivity", _sensitivity_figure(plt, comparison))
    save("gradient_flow", _gradient_figure(plt, comparison))
    fig, stops, clipped = _overfitting_figure(plt, comparison)
    save("overfitting", fig)
    if comparison.plan["base"].get("track_sharpness"):  # descend compare --diagnostics K
        from descend.diagnostics.compare import write_sharpness_figure

        figure, _ = write_sharpness_figure(comparison)
        if figure is not None:
            images["sharpness"] = base64.b64encode(figure.read_bytes()).decode("ascii")
    findings = gradient_findings(comparison)
    extras = _Extras(uncertainty(comparison), protocol_warnings(comparison), clipped)
    atomic_write_text(out / REPORT_DATA, _json_script(_data(comparison, findings, stops, extras)) + "\n")
    page = _html(comparison, images, findings, stops, extras)
    path = out / REPORT
    atomic_write_text(path, page)
    return path


_CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#ffffff; --soft:#f6f8fa; --accent:#0969da;
        --warn:#9a6700; --warnbg:#fff8c5; --bad:#cf222e; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
       color:var(--fg); background:var(--soft); }
main { max-width:1180px; margin:0 auto; padding:28px 28px 60px; }
header h1 { font-size:26px; margin:0 0 4px; letter-spacing:-0.01em; }
header p { margin:2px 0; color:var(--muted); }
section { background:var(--bg); border:1px solid var(--line); border-radius:10px; padding:18px 22px; margin:18px 0; }
h2 { font-size:18px; margin:0 0 10px; }
p.caption { color:var(--muted); margin:6px 0 10px; font-size:14px; }
table { border-collapse:collapse; width:100%; font-size:13.5px; font-variant-numeric:tabular-nums; }
.scroll { overflow-x:auto; }
th, td { padding:6px 8px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th { background:var(--soft); font-weight:600; white-space:normal; vertical-align:bottom; }
th:nth-child(2), td:nth-child(2) { text-align:left; }
tbody tr:hover { background:#f0f6ff; }
.swatch { display:inline-block; width:11px; height:11px; border-radius:3px; margin-right:7px; vertical-align:-1px; }
.status-ok { color:#1a7f37; }
.status-bad { color:var(--bad); font-weight:600; }
.status-incomplete { color:var(--warn); }
img { max-width:100%; height:auto; display:block; margin:6px auto; }
ul.findings { padding-left:20px; margin:8px 0; }
ul.findings li { margin:3px 0; }
li.warning { color:var(--fg); } li.warning::marker { content:"⚠  "; color:var(--warn); }
li.note::marker { content:"•  "; color:var(--muted); }
.ok { background:#dafbe1; border-radius:6px; padding:8px 12px; }
pre { background:var(--soft); border:1px solid var(--line); border-radius:8px; padding:12px 14px; overflow:auto;
      font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; }
code { font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; background:var(--soft); padding:1px 4px;
       border-radius:4px; }
td.sel { font-weight:700; }
td.div { color:var(--bad); }
footer { color:var(--muted); font-size:13px; text-align:center; margin-top:24px; }
code, p, li { overflow-wrap:anywhere; }
@media (max-width: 760px) { main { padding:14px 8px 40px; } section { padding:12px 10px; } }
"""


def _status_class(status: str) -> str:
    if status == "ok":
        return "status-ok"
    if "diverged" in status:
        return "status-bad"
    return "status-incomplete"


def _ranked_table_html(comparison: Comparison) -> str:
    headers, rows = table(comparison)
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = []
    for cells in rows:
        name, status = cells[1], cells[-1]
        tds = []
        for i, cell in enumerate(cells):
            if i == 1:
                tds.append(f'<td><span class="swatch" style="background:{color(name)}"></span>{_esc(cell)}</td>')
            elif i == len(cells) - 1:
                tds.append(f'<td class="{_status_class(status)}">{_esc(cell)}</td>')
            else:
                tds.append(f"<td>{_esc(cell)}</td>")
        body.append(f"<tr>{''.join(tds)}</tr>")
    table_html = f'<table id="ranking"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    return f'<div class="scroll">{table_html}</div>'


def _grid_table_html(comparison: Comparison) -> str:
    metric = comparison.metric
    rows = []
    width = max(len(comparison.plan["grid"][n]) for n in comparison.plan["optimizers"])
    for name in comparison.plan["optimizers"]:
        cells = [f'<td><span class="swatch" style="background:{color(name)}"></span>{_esc(name)}</td>']
        for r in comparison.search_results(name):
            label = format_lr(r.spec.lr)
            if not r.finished:
                cells.append(f"<td>{label}: …</td>")
            elif r.diverged:
                cells.append(f'<td class="div">{label}: diverged</td>')
            else:
                sel = ' class="sel"' if comparison.selected.get(name) == r.spec.lr else ""
                cells.append(f"<td{sel}>{label}: {r.final(metric):.4f}</td>")
        cells += ["<td></td>"] * (width - len(comparison.plan["grid"][name]))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "<th>optimizer</th>" + "".join(f"<th>lr {i + 1}</th>" for i in range(width))
    grid = f'<table id="grid"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    return f'<div class="scroll">{grid}</div>'


def _findings_html(findings: list[Finding]) -> str:
    if not findings:
        return (
            '<p class="ok">No layer\'s gradients vanished or exploded, and every update-to-weight ratio stayed '
            "in the usual range, in the runs at the selected learning rates.</p>"
        )
    items = "".join(f'<li class="{f.level}">{_esc(f.text)}</li>' for f in findings)
    return f'<ul class="findings">{items}</ul>'


def _stops_html(stops: dict[str, tuple[int | None, int | None]], epochs: int, patience: int) -> str:
    if not stops:
        return ""
    parts = []
    for name, (stop, best) in stops.items():
        if stop is None:
            parts.append(f"{_esc(name)}: would not stop (best epoch {best})")
        else:
            parts.append(f"{_esc(name)}: stops after epoch {stop} of {epochs} (best epoch {best})")
    return f"<p class='caption'>Early stopping (patience {patience}): " + "; ".join(parts) + ".</p>"


def _clipped_html(clipped: dict[str, stats.Limits]) -> str:
    if not clipped:
        return ""
    parts = [f"{_esc(title)}: {lim.clipped} of {lim.total} points" for title, lim in clipped.items()]
    return (
        " The y-axis is clipped to the robust range of the values (Tukey's fences, 3 × the interquartile range) so "
        f"that an outlier does not flatten the other curves; outside it, drawn as ▲/▼ on the edge: {'; '.join(parts)}."
    )


def _dataset_title(base: dict[str, Any]) -> str:
    names = {"mnist1d": "MNIST-1D", "fashion-mnist": "Fashion-MNIST", "mnist": "MNIST"}
    dataset = base["dataset"]
    return names.get(str(dataset).lower(), Path(str(dataset)).name)


def seeds_phrase(seeds: Sequence[int]) -> str:
    """``"seed 1"``, ``"seeds 1 and 2"``, ``"seeds 1, 2 and 3"``; ``"no other seeds"`` for none."""
    if not seeds:
        return "no other seeds"
    return ("seed " if len(seeds) == 1 else "seeds ") + _and([str(s) for s in seeds])


def started_as(manifest: dict[str, Any]) -> tuple[str, str]:
    """(caption, command) of the "Started as" line: the exact command line recorded in the manifest, or, for a
    directory started by a version of descend that did not record it, the equivalent command it wrote down."""
    import shlex

    argv = manifest.get("argv")
    if isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv):
        return "Started as (the exact command line):", shlex.join(argv)
    return (
        "Started as: not recorded (an older descend started this directory); the equivalent command:",
        str(manifest.get("command", "descend compare")),
    )


def _warnings_html(warnings: list[Finding]) -> str:
    if not warnings:
        return (
            '<p class="ok">Every selected learning rate lies inside its grid, and no curve was still rising at the '
            "last epoch.</p>"
        )
    items = "".join(f'<li class="{f.level}">{_esc(f.text)}</li>' for f in warnings)
    return f'<ul class="findings" id="protocol-warnings">{items}</ul>'


def _ties_html(unc: Uncertainty, n_seeds: int) -> str:
    pct = f"{100 * stats.CONFIDENCE:g} %"
    if n_seeds < 2:
        return (
            f'<p class="caption" id="ties">One seed per optimizer: there is no estimate of the noise, so no '
            f"{pct} interval and no ties; rerun with --seeds 3 or more to rank with uncertainty.</p>"
        )
    ties = unc.ties
    text = " ".join(_esc(t) for t in ties) if ties else f"No two optimizers are tied: no {pct} intervals overlap."
    return f'<p class="caption" id="ties"><b>Ties within noise.</b> {text}</p>'


def _workload_html(manifest: dict[str, Any]) -> str:
    w = manifest.get("workload")
    if not isinstance(w, dict):
        return ""
    changed = w.get("changed") or {}
    note = ""
    if isinstance(changed, dict) and changed:
        note = " Set for this comparison: " + ", ".join(f"{k} {v}" for k, v in changed.items()) + "."
        if "epochs" in changed and w.get("budget") == "full":
            note += f" The budget is not the workload's ({w.get('epochs')} epochs): its target may be out of reach."
    return (
        f'<p id="workload">Workload <b>{_esc(w.get("name"))}</b> ({_esc(w.get("title", ""))}), budget '
        f"{_esc(w.get('budget'))}: target validation accuracy {_esc(w.get('target'))}, set from "
        f"{_esc(w.get('target_source', ''))}.{_esc(note)}</p>"
    )


def _html(
    comparison: Comparison,
    images: dict[str, str],
    findings: list[Finding],
    stops: dict[str, Any],
    extras: _Extras,
) -> str:
    plan, base = comparison.plan, comparison.plan["base"]
    metric = comparison.metric.replace("_", " ")
    n_runs = sum(r.finished for r in comparison.runs.values())
    n_div = sum(r.diverged for r in comparison.runs.values())
    seeds = plan["seeds"]
    model = base["model"].upper() if base["model"] != "logistic" else "logistic regression"
    if base["model"] == "mlp":
        model += " " + "-".join(map(str, base["hidden"]))
    title = f"{model} on {_dataset_title(base)}: {len(plan['optimizers'])} optimizers compared"
    workload = comparison.manifest.get("workload")
    if isinstance(workload, dict) and workload.get("name"):
        title = f"Workload {workload['name']}: {len(plan['optimizers'])} optimizers compared"
    root = comparison.root.resolve()
    reproduce = f"descend compare --config {root / 'experiment.toml'} --out NEW_DIR"
    patience = base["early_stopping"] or DEFAULT_PATIENCE

    def img(name: str, alt: str) -> str:
        return f'<img src="data:image/png;base64,{images[name]}" alt="{_esc(alt)}" id="fig-{name}">'

    target = comparison.target()
    target_text = f"{comparison.metric.replace('_', ' ')} ≥ {target:.3g}" if math.isfinite(target) else "none"
    target_how = "" if plan["target"] is not None else " (90 % of the best mean final value)"
    pct = f"{100 * stats.CONFIDENCE:g} %"
    started = started_as(comparison.manifest)
    sections = [
        f"""<header><h1>{_esc(title)}</h1>
<p>{n_runs} training runs ({n_div} diverged) · {base["epochs"]} epochs each · batch size {base["batch_size"] or "full"}
· schedule {_esc(base["schedule"])} · seeds {", ".join(map(str, seeds))}</p>
<p>Protocol (DeepOBS style): each optimizer trains once per learning rate of its log-spaced grid at seed {seeds[0]};
the learning rate with the best final {metric} is selected (a diverged run never wins) and rerun with
{seeds_phrase(seeds[1:])}.</p>{_workload_html(comparison.manifest)}</header>""",
        f"""<section id="ranking-section"><h2>Ranking</h2>
<p class="caption">Ranked by mean final {metric} at the selected learning rate (± standard deviation over seeds).
The {pct} CI columns are percentile-bootstrap intervals of that mean over the seeds (10,000 resamples, seeded);
optimizers whose intervals of the final {metric} overlap share a rank (1, 1, 3): the data do not order them.
With few seeds the interval is about the range the seeds showed, not a guarantee.
Target for the time columns: {_esc(target_text)}{target_how}; the count is the number of seeds that reached it.
Wall times are measured inside each run (parallel workers share the machine).
LR sensitivity: best final {metric} minus its mean over the grid (diverged runs count 0); lower is easier to tune.</p>
{_ranked_table_html(comparison)}
{_ties_html(extras.uncertainty, len(seeds))}
<h3>What the protocol could not settle</h3>
{_warnings_html(extras.warnings)}</section>""",
        f"""<section id="curves"><h2>Training and validation curves</h2>
<p class="caption">One line per optimizer at its selected learning rate: the mean over seeds, with a band of ± one
standard deviation.</p>
{img("curves_epoch", "loss and accuracy against epoch")}
{img("curves_time", "loss and accuracy against wall time")}</section>""",
        f"""<section id="learning-rate"><h2>Learning rate used</h2>
<p class="caption">The learning rate the optimizer actually applied, read back from its state at the end of each
epoch: schedules and plateau reductions show here.</p>
{img("learning_rate", "learning rate against step")}</section>""",
        f"""<section id="sensitivity"><h2>Learning-rate sensitivity (tuneability)</h2>
<p class="caption">Final {metric} of every grid run against its learning rate. A flat, wide curve is an optimizer
that is easy to tune; crosses at the bottom are runs that diverged.</p>
{img("lr_sensitivity", "final metric against learning rate")}
{_grid_table_html(comparison)}</section>""",
        f"""<section id="gradient-flow"><h2>Gradient flow</h2>
<p class="caption">Per-layer gradient norm (mean over the epoch's sampled steps) and update-to-weight ratio
‖Δw‖/‖w‖ per step, from <code>metrics.csv</code> (<code>grad_norm/&lt;layer&gt;</code>,
<code>update_ratio/&lt;layer&gt;</code>). Each layer is named by its parameters, input side first: <code>4.*</code>
stands for <code>4.weight</code> and <code>4.bias</code>, the parameters of module 4 of the network (the numbers skip
the modules without parameters: activations, dropout, pooling).</p>
{_findings_html(findings)}
{img("gradient_flow", "per-layer gradient norms and update ratios")}</section>""",
        f"""<section id="overfitting"><h2>Overfitting</h2>
<p class="caption">The gap between validation and training loss (left) and between training and validation
accuracy (right). A growing gap is overfitting.{_clipped_html(extras.clipped)}</p>
{_stops_html(stops, base["epochs"], patience)}
{img("overfitting", "train/validation gap against epoch")}</section>""",
        *(
            [
                f"""<section id="sharpness"><h2>Sharpness</h2>
<p class="caption">The largest eigenvalue λ_max of the loss's Hessian (the curvature in its steepest direction),
measured every {base["track_sharpness"]} steps along each optimizer's run at its selected learning rate. Gradient
descent is stable only while λ_max stays below 2/η: a curve that climbs to that line and stays there is limited by
its step size, not by the data (docs/diagnostics.md).</p>
{img("sharpness", "largest Hessian eigenvalue against step, per optimizer")}</section>"""
            ]
            if "sharpness" in images
            else []
        ),
        f"""<section id="configuration"><h2>Configuration and reproduction</h2>
<p class="caption">Reproduce this comparison (the same plan, run directories and report):</p>
<pre id="reproduce">{_esc(reproduce)}</pre>
<p class="caption">{_esc(started[0])}</p>
<pre id="started-as">{_esc(started[1])}</pre>
<p class="caption"><code>experiment.toml</code> (every key of the plan):</p>
<pre id="experiment-toml">{_esc(plan_to_toml(plan))}</pre>
<p class="caption">Each run directory (<code>runs/&lt;optimizer&gt;/lr=&lt;lr&gt;/seed=&lt;seed&gt;/</code>) holds
its <code>config.json</code>, <code>metrics.csv</code>, <code>checkpoint</code> and <code>summary.json</code>; retrain
one alone with <code>descend train</code> and the values of its <code>config.json</code>, for example the best:
<code>{_esc(_train_command(comparison))}</code>.</p></section>""",
    ]
    data = _json_script(_data(comparison, findings, stops, extras))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(title)}</title>
<style>{_CSS}</style></head>
<body><main>
{"".join(sections)}
<footer>descend {_esc(comparison.manifest.get("descend_version", ""))} · format {_esc(comparison.manifest["format"])}
· the data behind this page: <a href="{REPORT_DATA}">{REPORT_DATA}</a> (also embedded in the page)</footer>
</main>
<script type="application/json" id="comparison-data">
{data}
</script>
</body></html>
"""


def _train_command(comparison: Comparison) -> str:
    ranking = comparison.ranking()
    if not ranking or ranking[0].best_lr is None:
        return "descend train --help"
    row = ranking[0]
    seed = comparison.plan["seeds"][0]
    run = comparison.runs[(row.optimizer, row.best_lr, seed)]
    return command_for(run.spec.config, f"{comparison.root}/{run.spec.relpath}-again")


def command_for(config: dict[str, Any], out: str) -> str:
    """A ``descend train`` command line for a configuration (options at their default are left out)."""
    parts = ["descend", "train"]
    for key, value in config.items():
        if key in ("optimizer_args", "schedule_args"):
            flag = "--opt" if key == "optimizer_args" else "--schedule-arg"
            for k, v in value.items():
                text = ",".join(map(str, v)) if isinstance(v, list | tuple) else json.dumps(v)
                parts += [flag, f"{k}={text}"]
            continue
        if value == ex.DEFAULTS[key] and key not in ("optimizer", "lr"):
            continue
        if value is None:
            continue
        text = ",".join(map(str, value)) if isinstance(value, list) else (f"{value:g}" if key == "lr" else str(value))
        parts += ["--" + key.replace("_", "-"), text]
    parts += ["--out", out]
    return " ".join(parts)


__all__ = ["COLORS", "REPORT", "REPORT_DATA", "Finding", "Uncertainty", "band", "clip_axis", "early_stopping_epoch",
           "extended_grid", "gradient_findings", "identical_groups", "line_styles", "param_label", "protocol_warnings",
           "seeds_phrase", "started_as", "table", "uncertainty", "write_report"]  # fmt: skip
