"""Sharpness curves per optimizer for ``descend compare --diagnostics``.

With ``--diagnostics K`` every run of the comparison tracks its sharpness every K steps
(configuration key ``track_sharpness``; :class:`~descend.diagnostics.callbacks.SharpnessTracker`).
:func:`write_sharpness_figure` then draws, into the comparison directory, ``sharpness.png``: for each
optimizer the λ_max curve of its run at the selected learning rate (its first seed), on a log scale,
so one sees which optimizers drive training into sharp regions and which stay in flat ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from descend.diagnostics.callbacks import SHARPNESS_CSV, read_rows

FIGURE = "sharpness.png"


def sharpness_curves(comparison: Any) -> dict[str, tuple[list[float], list[float]]]:
    """``{optimizer (lr): (steps, λ_max)}`` from each optimizer's run at its selected rate (lowest seed)."""
    curves: dict[str, tuple[list[float], list[float]]] = {}
    for name, lr in comparison.selected.items():
        if lr is None:
            continue
        runs = sorted((key[2], run) for key, run in comparison.runs.items() if key[0] == name and key[1] == lr)
        for _, run in runs:
            path = Path(run.path) / SHARPNESS_CSV
            if not path.is_file():
                continue
            rows = [r for r in read_rows(path) if r.get("sharpness") is not None]
            if rows:
                curves[f"{name} (lr {lr:g})"] = ([r["step"] for r in rows], [r["sharpness"] for r in rows])
                break
    return curves


def write_sharpness_figure(comparison: Any) -> tuple[Path | None, dict[str, float]]:
    """Draw ``DIR/sharpness.png``; return its path (None when no run tracked sharpness) and each curve's last value."""
    from descend.diagnostics.plots import plot_sharpness_curves

    curves = sharpness_curves(comparison)
    if not curves:
        return None, {}
    out = Path(comparison.root) / FIGURE
    plot_sharpness_curves(curves, out)
    return out, {name: values[-1] for name, (_, values) in curves.items()}
