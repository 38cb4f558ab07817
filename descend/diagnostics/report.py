"""``descend diagnose RUN_DIR``: the curvature of a trained run, measured and explained.

:func:`diagnose_run` loads a run directory written by ``descend train`` (its ``config.json`` and
final ``checkpoint``), rebuilds the training set and the model, and at the final weights computes,
on a fixed subset of ``samples`` training examples (the Hessian is that of the training loss the
run minimized, cross-entropy plus its L2 penalty):

* the top-k eigenvalues (Lanczos) and the most negative ones, the trace (Hutchinson, with its
  confidence interval) and the eigenvalue density (stochastic Lanczos quadrature);
* the gradient noise scale B_simple over the whole training set;
* 1-D and 2-D loss slices along filter-normalized random directions;
* when the run tracked it (``--track-sharpness``), the sharpness against the step with 2/η.

It writes, into the run directory, ``diagnostics.json`` (every number), ``diagnostics.html`` (the
figures, each explained in one sentence) and the figures ``diagnostics_*.png``. Nothing else in the
run directory is changed, and the run's lock is held while writing (a run still training is refused).
"""

from __future__ import annotations

import html
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from descend._io import atomic_write_json, atomic_write_text
from descend._validation import Interval, check
from descend.diagnostics import plots
from descend.diagnostics.callbacks import NOISE_CSV, SHARPNESS_CSV, read_rows
from descend.diagnostics.hessian import HessianOperator
from descend.diagnostics.landscape import filter_normalized_direction, slice_1d, slice_2d
from descend.diagnostics.noise import gradient_noise_scale
from descend.diagnostics.objective import ModelObjective
from descend.diagnostics.spectrum import bottom_eigenvalues, hutchinson_trace, spectral_density, top_eigenvalues
from descend.errors import ParameterError

JSON_NAME, HTML_NAME = "diagnostics.json", "diagnostics.html"
FIGURES = {
    "density": "diagnostics_density.png",
    "slice_1d": "diagnostics_slice_1d.png",
    "slice_2d": "diagnostics_slice_2d.png",
    "sharpness": "diagnostics_sharpness.png",
}


def _load_run(run_dir: Path) -> tuple[dict[str, Any], Any, Any]:
    """``(config, model with the checkpoint's weights, training set)``; one clear error if it is not a run."""
    from descend.train import experiment as ex
    from descend.train.checkpoint import load_checkpoint

    if not run_dir.is_dir():
        raise ParameterError(f"diagnose: {run_dir} is not a directory (give a run directory from descend train)")
    if not (run_dir / ex.CONFIG).is_file() or not (run_dir / ex.CHECKPOINT).is_file():
        raise ParameterError(
            f"diagnose: {run_dir} is not a run directory: it needs {ex.CONFIG} and {ex.CHECKPOINT} "
            "(written by descend train)"
        )
    try:
        doc = json.loads((run_dir / ex.CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ParameterError(f"diagnose: {run_dir / ex.CONFIG} is not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ParameterError(f"diagnose: {run_dir / ex.CONFIG} must hold a JSON object")
    for key in ex.RECORD_KEYS:
        doc.pop(key, None)
    config = ex.make_config(doc)
    train, _, _ = ex.load_data(config)
    model = ex.build_model(config, train)
    arrays, _ = load_checkpoint(run_dir / ex.CHECKPOINT)
    state = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
    try:
        model.load_state_dict(state)
    except Exception as exc:  # a DescendError from load_state_dict: a checkpoint of another model
        raise ParameterError(f"diagnose: the checkpoint of {run_dir} does not fit its configuration: {exc}") from None
    if not np.all(np.isfinite(model.params)):
        raise ParameterError(f"diagnose: the weights in {run_dir}/checkpoint are not finite (the run diverged)")
    return config, model, train


def diagnose_run(
    run_dir: str | os.PathLike,
    *,
    samples: int = 1000,
    top_k: int = 5,
    trace_samples: int = 30,
    density_vectors: int = 3,
    density_steps: int = 40,
    slice_points: int = 21,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Compute the diagnostics of the run in ``run_dir`` and write them there; return the numbers."""
    owner = "diagnose"
    check(owner, "samples", samples, Interval(2, None, integer=True))
    check(owner, "top_k", top_k, Interval(1, 50, integer=True))
    check(owner, "trace_samples", trace_samples, Interval(2, None, integer=True))
    check(owner, "density_vectors", density_vectors, Interval(1, None, integer=True))
    check(owner, "density_steps", density_steps, Interval(2, None, integer=True))
    check(owner, "slice_points", slice_points, Interval(3, 201, integer=True))
    from descend.train import lock

    say = progress or (lambda _: None)
    run = Path(run_dir)
    config, model, train = _load_run(run)  # everything is checked before anything is written
    with lock.hold(run, "descend diagnose"):
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        n_train = len(train)
        index = np.sort(rng.choice(n_train, min(int(samples), n_train), replace=False))
        objective = ModelObjective(model, train.x[index], train.y[index], "cross_entropy", l2=config["l2"])
        H = HessianOperator(objective)
        n = H.size
        k = min(int(top_k), n)
        say(f"top {k} eigenvalues (Lanczos) of the Hessian of {n:,} parameters on {len(index):,} examples")
        top = top_eigenvalues(H, k, tol=1e-6, max_iter=max(4 * k + 20, 40), rng=seed)
        say("most negative eigenvalues")
        bottom = bottom_eigenvalues(H, min(3, n), tol=1e-4, max_iter=60, rng=seed)
        say(f"trace (Hutchinson, {trace_samples} vectors)")
        trace = hutchinson_trace(H, int(trace_samples), rng=seed)
        say(f"eigenvalue density (stochastic Lanczos quadrature, {density_vectors} x {density_steps})")
        density = spectral_density(H, int(density_vectors), int(density_steps), rng=seed)
        lam_max = float(top.values[0])
        thr = 1e-3 * lam_max
        neg_mass = float(np.mean(np.sum(np.where(density.nodes < -thr, density.weights, 0.0), axis=1)))
        say("gradient noise scale B_simple")
        full = ModelObjective(model, train.x, train.y, "cross_entropy", l2=config["l2"])
        batch = config["batch_size"] or min(32, n_train // 2)
        small = max(1, min(int(batch), n_train // 2))
        big = min(8 * small, n_train)
        noise = (
            gradient_noise_scale(full, small=small, big=big, draws=4, rng=seed) if big > small and n_train > 1 else None
        )
        del full
        say(f"loss slices ({slice_points} points, {slice_points}x{slice_points} grid)")
        d1 = filter_normalized_direction(objective.model, rng=rng)
        d2 = filter_normalized_direction(objective.model, rng=rng)
        alphas = np.linspace(-1.0, 1.0, int(slice_points))
        line = slice_1d(objective, d1, alphas)
        grid = slice_2d(objective, d1, d2, alphas, alphas)
        base = float(objective.value(objective.point))

        lr = float(config["lr"])
        history = _history(run)
        result: dict[str, Any] = {
            "run": str(run),
            "parameters": n,
            "examples": len(index),
            "loss": base,
            "gradient_norm": float(np.linalg.norm(H.gradient())),
            "lr": lr,
            "stability_threshold": 2.0 / lr,
            "hessian": {
                "method": "central differences of float64 gradients (ReLU/max-pool patterns frozen), 2 per product",
                "top_eigenvalues": [float(v) for v in top.values],
                "top_residuals": [float(v) for v in top.residuals],
                "lanczos_steps": int(top.iterations),
                "bottom_eigenvalues": [float(v) for v in bottom.values],
                "negative_fraction_estimate": neg_mass,
                "negative_count_estimate": neg_mass * n,
                "trace": trace._asdict(),
                "condition_top_over_mean": lam_max / (trace.estimate / n) if trace.estimate > 0 else None,
            },
            "density": {
                "grid": density.grid[:: max(1, len(density.grid) // 200)].tolist(),
                "density": density.density[:: max(1, len(density.grid) // 200)].tolist(),
                "sigma": density.sigma,
                "vectors": int(density_vectors),
                "steps": int(density_steps),
            },
            "noise_scale": None if noise is None else noise._asdict(),
            "slices": {
                "alphas": alphas.tolist(),
                "slice_1d": line.tolist(),
                "slice_2d": grid.tolist(),
                "direction": "filter-normalized Gaussian (Li et al. 2018); biases and norm parameters 0",
            },
            "history": history,
            "seconds": None,
        }
        figures = _figures(run, result, density, top.values, alphas, line, grid, history)
        result["figures"] = figures
        result["explanations"] = explain(result, config)
        result["seconds"] = round(time.perf_counter() - t0, 2)
        atomic_write_json(run / JSON_NAME, _finite(result), indent=1)
        atomic_write_text(run / HTML_NAME, _html(result, config))
    return result


def _history(run: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, name in (("sharpness", SHARPNESS_CSV), ("noise_scale", NOISE_CSV)):
        path = run / name
        if path.is_file():
            try:
                out[key] = read_rows(path)
            except (OSError, ValueError):
                out[key] = []
    return out


def _figures(run: Path, result, density, top, alphas, line, grid, history) -> dict[str, str]:
    figs = {}
    plots.plot_density(density, run / FIGURES["density"], top=top)
    figs["density"] = FIGURES["density"]
    plots.plot_slice_1d(alphas, line, run / FIGURES["slice_1d"], label="Loss along a filter-normalized direction")
    figs["slice_1d"] = FIGURES["slice_1d"]
    plots.plot_slice_2d(
        alphas, alphas, grid, run / FIGURES["slice_2d"], title="Loss on a random filter-normalized plane"
    )
    figs["slice_2d"] = FIGURES["slice_2d"]
    rows = [r for r in history.get("sharpness", []) if r.get("sharpness") is not None]
    if rows:
        steps = [r["step"] for r in rows]
        thr = [r.get("threshold") or math.nan for r in rows]
        pre = None
        if all(r.get("preconditioned_sharpness") is not None for r in rows):
            pre = ([r["preconditioned_sharpness"] for r in rows], [r.get("adam_threshold") or math.nan for r in rows])
        plots.plot_sharpness(
            steps, [r["sharpness"] for r in rows], run / FIGURES["sharpness"], threshold=thr, preconditioned=pre
        )
        figs["sharpness"] = FIGURES["sharpness"]
    return figs


def explain(result: dict[str, Any], config: dict[str, Any]) -> dict[str, str]:
    """One sentence per figure and number, for a student of the seed documents."""
    h = result["hessian"]
    lam = h["top_eigenvalues"][0]
    lr = result["lr"]
    out: dict[str, str] = {}
    stable = 2.0 / lam if lam > 0 else math.inf
    opt = config["optimizer"]
    out["density"] = (
        f"Most of the Hessian's eigenvalues sit near zero (flat directions), while a few large outliers (the "
        f"largest λ_max = {lam:.4g}) set the steepest curvature: plain gradient descent is stable only for step "
        f"sizes below 2/λ_max = {stable:.3g}"
        + (f" (this run used {opt} with η = {lr:g})." if opt in ("sgd", "momentum", "nesterov") else ".")
    )
    neg = h["bottom_eigenvalues"][0] if h["bottom_eigenvalues"] else 0.0
    if neg < -1e-3 * abs(lam):
        out["negative"] = (
            f"The smallest eigenvalue is {neg:.3g} < 0: some directions still curve downward (about "
            f"{100 * h['negative_fraction_estimate']:.2g} % of them), so this point is a saddle-like region rather "
            f"than a strict minimum; the negative curvature is {abs(neg) / lam:.2g} of the positive."
        )
    else:
        out["negative"] = (
            f"No eigenvalue is clearly negative (the smallest is {neg:.3g}): the trained weights sit in a basin "
            f"(a minimum up to flat directions), not on a saddle."
        )
    ns = result.get("noise_scale")
    if ns and math.isfinite(ns["b_simple"]) and ns["b_simple"] > 0:
        b = ns["b_simple"]
        batch = config["batch_size"] or "the full data set"
        side = (
            "smaller than B_simple: each step is dominated by gradient noise, and a larger batch would buy nearly "
            "proportionally faster progress"
            if isinstance(batch, int) and batch < b
            else "at or above B_simple: the noise is small next to the gradient, so larger batches would mostly "
            "waste computation"
        )
        out["noise_scale"] = f"The gradient noise scale B_simple ≈ {b:.3g}; the run's batch size ({batch}) is {side}."
    else:
        out["noise_scale"] = (
            "The gradient noise scale could not be resolved: the full-batch gradient is too small next to "
            "the noise (typical at a minimum), so B_simple is effectively infinite."
        )
    line = result["slices"]["slice_1d"]
    rise = max(line[0], line[-1]) - result["loss"]
    out["slice_1d"] = (
        f"Moving the weights along a random direction scaled like each filter (α = ±1 doubles or cancels every "
        f"filter) raises the loss by up to {rise:.3g} from {result['loss']:.3g}: a narrow valley rises steeply, a "
        f"wide flat basin hardly at all."
    )
    out["slice_2d"] = (
        "The same on a random plane: round contours mean similar curvature in every direction, stretched ones "
        "mean ill-conditioning (one direction far steeper than another), which makes gradient descent zig-zag."
    )
    rows = [r for r in result["history"].get("sharpness", []) if r.get("sharpness") is not None]
    if rows and rows[-1].get("preconditioned_sharpness") is not None and rows[-1].get("adam_threshold"):
        last = rows[-1]
        pre, thr = last["preconditioned_sharpness"], last["adam_threshold"]
        where = (
            "reached it: the step size, not the data, now limits progress (Adam at the edge of stability)"
            if pre >= 0.9 * thr
            else "stayed below it: the step size was stable for the curvature training met"
        )
        out["sharpness"] = (
            f"For Adam the curvature that matters is the preconditioned sharpness λ_max(P⁻¹H) (last {pre:.3g}), "
            f"whose threshold is (2 + 2β₁)/((1 − β₁)η) = {thr:.3g}; it {where}. The plain λ_max (last "
            f"{last['sharpness']:.3g}) is shown above it."
        )
    elif rows:
        last = rows[-1]
        thr = last.get("threshold")
        if thr and last["sharpness"] >= 0.9 * thr:
            out["sharpness"] = (
                f"The largest curvature rose to 2/η = {thr:.3g} (last λ_max = {last['sharpness']:.3g}): the step size, "
                "not the data, now limits progress (the edge of stability)."
            )
        elif thr:
            out["sharpness"] = (
                f"The largest curvature stayed below 2/η = {thr:.3g} (last λ_max = {last['sharpness']:.3g}): the step "
                "size was stable for the curvature training met (mini-batch noise and adaptive preconditioning "
                "move the exact threshold)."
            )
    return out


def _finite(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if math.isfinite(v) else str(v)
    return html.escape(str(v))


def _html(result: dict[str, Any], config: dict[str, Any]) -> str:
    h = result["hessian"]
    ex = result["explanations"]
    ns = result.get("noise_scale") or {}
    tr = h["trace"]
    rows = [
        ("parameters / examples used", f"{result['parameters']:,} / {result['examples']:,}"),
        ("training loss at the checkpoint", _fmt(result["loss"])),
        ("gradient norm", _fmt(result["gradient_norm"])),
        ("top eigenvalues (Lanczos)", ", ".join(_fmt(v) for v in h["top_eigenvalues"])),
        ("most negative eigenvalues", ", ".join(_fmt(v) for v in h["bottom_eigenvalues"])),
        (
            "trace (Hutchinson)",
            f"{_fmt(tr['estimate'])} ({100 * tr['confidence']:.0f} % interval {_fmt(tr['low'])} … {_fmt(tr['high'])})",
        ),
        ("negative eigenvalues (estimate)", f"{_fmt(h['negative_count_estimate'], 3)} of {result['parameters']:,}"),
        ("2/η of the run (η = learning rate)", _fmt(result["stability_threshold"])),
        ("gradient noise scale B_simple", _fmt(ns.get("b_simple"))),
    ]
    table = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    figs = result["figures"]
    sections = []
    order = [
        ("sharpness", "Sharpness during training"),
        ("density", "Eigenvalue density"),
        ("slice_1d", "1-D loss slice"),
        ("slice_2d", "2-D loss slice"),
    ]
    for key, title in order:
        if key in figs:
            sections.append(
                f"<h2>{html.escape(title)}</h2>\n<p>{html.escape(ex.get(key, ''))}</p>\n"
                f'<img src="{html.escape(figs[key])}" alt="{html.escape(title)}">'
            )
    notes = "".join(f"<li>{html.escape(ex[k])}</li>" for k in ("negative", "noise_scale") if k in ex)
    title = f"Diagnostics: {config['model']} on {config['dataset']} with {config['optimizer']} (lr {config['lr']:g})"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse}}th,td{{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}}
img{{max-width:100%}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>The curvature of the training loss at the run's final checkpoint ({html.escape(h["method"])}).</p>
<table>{table}</table>
<ul>{notes}</ul>
{"".join(sections)}
<p>Numbers: <code>{JSON_NAME}</code>. Computed in {_fmt(result["seconds"], 3)} s.</p>
</body></html>
"""
