"""Figures of the diagnostics (matplotlib, Agg backend, imported only when drawing).

Each function draws one figure, writes it to ``out`` (a PNG; parent folders are created) when given,
and returns the ``matplotlib.figure.Figure`` (not registered with pyplot).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from descend._io import atomic_write_bytes
from descend.errors import ParameterError

COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


def _figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (7.0, 4.0), **kw: Any) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, **kw)
    return fig, axes


def _save(fig: Any, out: str | os.PathLike | None) -> Any:
    if out is not None:
        path = Path(out)
        if path.is_dir():
            raise ParameterError(f"diagnostics: output path {str(path)!r} is a directory; give a file name")
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        atomic_write_bytes(path, buffer.getvalue())  # a crash never leaves half a PNG
    return fig


def plot_eos(runs: Sequence[Any], out: str | os.PathLike | None = None, title: str | None = None) -> Any:
    """Sharpness (and its threshold, dashed) against the step for each run, the loss below: the edge of stability.

    ``runs``: objects with ``label``, ``optimizer`` (``"gd"`` or ``"adam"``), ``threshold`` (2/η, or
    38/η for Adam), ``steps``, ``sharpness``, ``loss_steps`` and ``loss``
    (:class:`descend.diagnostics.eos.EoSRun`). Gradient descent's λ_max and Adam's preconditioned
    λ_max(P⁻¹H), whose scales differ by orders of magnitude, get a panel each.
    """
    if not runs:
        raise ParameterError("plot_eos: no runs to draw")
    groups = [(kind, [r for r in runs if (r.optimizer == "adam") == (kind == "adam")]) for kind in ("gd", "adam")]
    groups = [(kind, rs) for kind, rs in groups if rs]
    heights = (*[2] * len(groups), 1)
    fig, axes = _figure(len(groups) + 1, 1, size=(7.5, 3.0 + 2.5 * len(groups)), sharex=True, height_ratios=heights)
    bottom = axes[-1, 0]
    color = {id(r): COLORS[i % len(COLORS)] for i, r in enumerate(runs)}
    for row, (kind, group) in enumerate(groups):
        ax = axes[row, 0]
        for run in group:
            ax.plot(run.steps, run.sharpness, color=color[id(run)], lw=1.4, label=run.label)
            ax.axhline(run.threshold, color=color[id(run)], ls="--", lw=1.0)
        if kind == "gd":
            ax.set_ylabel("sharpness λ_max")
            ax.legend(title="dashed: 2/η, the stability threshold", fontsize=8, title_fontsize=8)
        else:
            ax.set_ylabel("preconditioned λ_max(P⁻¹H)")
            ax.legend(title="dashed: (2 + 2β₁)/((1 − β₁)η) = 38/η", fontsize=8, title_fontsize=8)
        ax.grid(alpha=0.3)
    for run in runs:
        bottom.plot(run.loss_steps, run.loss, color=color[id(run)], lw=1.2)
    axes[0, 0].set_title(title or "Edge of stability: full-batch training of a tanh MLP on MNIST-1D")
    bottom.set_yscale("log")
    bottom.set_ylabel("training loss")
    bottom.set_xlabel("step")
    bottom.grid(alpha=0.3)
    return _save(fig, out)


def plot_sharpness(
    steps: Any,
    values: Any,
    out: str | os.PathLike | None = None,
    threshold: Any = None,
    label: str = "λ_max",
    preconditioned: tuple[Any, Any] | None = None,
) -> Any:
    """A sharpness curve against the step with its threshold 2/η (a number or one per step, dashed).

    ``preconditioned``: ``(values, thresholds)`` of Adam's λ_max(P⁻¹H) and 38/η, drawn in a second panel.
    """
    panels = 2 if preconditioned is not None else 1
    fig, axes = _figure(panels, 1, size=(7.0, 3.2 * panels + 0.8), sharex=True)
    series = [(values, threshold, label, "2/η")]
    if preconditioned is not None:
        series.append((preconditioned[0], preconditioned[1], "λ_max(P⁻¹H), Adam", "(2 + 2β₁)/((1 − β₁)η)"))
    for ax, (vals, thr, name, thr_name) in zip(axes[:, 0], series, strict=True):
        ax.plot(steps, vals, color=COLORS[0], lw=1.4, label=name)
        if thr is not None:
            t = np.broadcast_to(np.asarray(thr, dtype=np.float64), np.shape(steps))
            ax.plot(steps, t, color="black", ls="--", lw=1.0, label=thr_name)
            v = np.asarray(vals, dtype=np.float64)
            if np.nanmax(t) > 10 * np.nanmax(np.abs(v)) and np.nanmin(v) > 0:
                ax.set_yscale("log")  # far below the threshold: a log scale shows both
        ax.set_ylabel("sharpness")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel("step")
    return _save(fig, out)


def plot_sharpness_curves(curves: dict[str, tuple[Any, Any]], out: str | os.PathLike | None = None) -> Any:
    """One sharpness curve per name (``{name: (steps, values)}``), for ``descend compare --diagnostics``."""
    if not curves:
        raise ParameterError("plot_sharpness_curves: no curves to draw")
    fig, axes = _figure()
    ax = axes[0, 0]
    for i, (name, (steps, values)) in enumerate(curves.items()):
        ax.plot(steps, values, color=COLORS[i % len(COLORS)], lw=1.4, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("sharpness λ_max")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out)


def plot_density(density: Any, out: str | os.PathLike | None = None, top: Sequence[float] = ()) -> Any:
    """The eigenvalue density (stochastic Lanczos quadrature) on a log scale, top eigenvalues marked."""
    fig, axes = _figure()
    ax = axes[0, 0]
    ax.plot(density.grid, np.maximum(density.density, 1e-12), color=COLORS[0], lw=1.2)
    for i, lam in enumerate(top):
        ax.axvline(lam, color=COLORS[3], ls=":", lw=1.0, label="top eigenvalues (Lanczos)" if i == 0 else None)
    ax.axvline(0.0, color="black", lw=0.6)
    ax.set_yscale("log")
    ax.set_ylim(bottom=max(1e-8, float(np.max(density.density)) * 1e-7))
    ax.set_xlabel("eigenvalue of the Hessian")
    ax.set_ylabel("density")
    if len(top):
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def plot_slice_1d(alphas: Any, losses: Any, out: str | os.PathLike | None = None, label: str = "") -> Any:
    """A 1-D loss slice along a filter-normalized direction (α = 0 is the trained point)."""
    fig, axes = _figure(size=(6.0, 4.0))
    ax = axes[0, 0]
    ax.plot(alphas, losses, color=COLORS[0], lw=1.5)
    ax.axvline(0.0, color="black", lw=0.6)
    ax.set_xlabel("α (step along a filter-normalized random direction)")
    ax.set_ylabel("training loss")
    ax.set_title(label or "1-D loss slice")
    ax.grid(alpha=0.3)
    return _save(fig, out)


def plot_slice_2d(
    alphas: Any,
    betas: Any,
    losses: Any,
    out: str | os.PathLike | None = None,
    path: Any = None,
    title: str = "",
    labels: tuple[str, str] = ("α (direction 1)", "β (direction 2)"),
) -> Any:
    """Contours of a 2-D loss slice; ``path`` (T × 2 coordinates) drawn on it: the training trajectory."""
    fig, axes = _figure(size=(6.0, 5.0))
    ax = axes[0, 0]
    z = np.asarray(losses, dtype=np.float64)
    finite = z[np.isfinite(z)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    levels = np.geomspace(max(lo, 1e-12), max(hi, lo * 1.001 + 1e-12), 30) if lo > 0 else 30
    cs = ax.contourf(alphas, betas, np.where(np.isfinite(z), z, hi), levels=levels, cmap="viridis")
    ax.contour(alphas, betas, np.where(np.isfinite(z), z, hi), levels=levels, colors="white", linewidths=0.3)
    fig.colorbar(cs, ax=ax, label="training loss")
    if path is not None:
        p = np.asarray(path)
        ax.plot(p[:, 0], p[:, 1], color="#ff5a36", lw=1.5, marker=".", ms=3, label="training path")
        ax.plot(p[0, 0], p[0, 1], "o", color="white", mec="black", label="start")
        ax.plot(p[-1, 0], p[-1, 1], "*", color="white", mec="black", ms=12, label="end")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title or "2-D loss slice")
    return _save(fig, out)
