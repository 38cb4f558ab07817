"""``descend diagnose``: the curvature of a trained run, or the edge-of-stability experiment.

::

    descend diagnose runs/fmnist-mlp          # spectrum, trace, density, noise scale, loss slices of a run
    descend diagnose eos --out eos            # full-batch GD at three step sizes and Adam: λ_max against 2/η

``descend diagnose RUN_DIR`` writes ``diagnostics.json``, ``diagnostics.html`` and
``diagnostics_*.png`` into the run directory (:mod:`descend.diagnostics.report`). ``descend diagnose
eos`` writes ``eos.png`` (sharpness and 2/η against the step, the loss below), ``eos_trajectory.png``
(the path of the middle step size on the plane of its top two PCA directions, over the loss) and
``eos.json`` into ``--out`` (:mod:`descend.diagnostics.eos`). A run directory that happens to be
called ``eos`` is given as ``./eos``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from descend._io import atomic_write_json
from descend.cli._common import UsageError, check_output, format_table, integer
from descend.cli.train import hidden_sizes

EOS = "eos"
_DEFAULT: Any = object()  # --adam-lr not given (argparse would parse a string default)


def step_sizes(text: str) -> list[float]:
    """``2/20,2/30,0.05``: step sizes as numbers or fractions A/B, each > 0."""
    out = []
    for part in text.split(","):
        num, sep, den = part.strip().partition("/")
        try:
            value = float(num) / float(den) if sep else float(num)
        except (ValueError, ZeroDivisionError):
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(
                f"must be step sizes > 0 separated by commas, as numbers or fractions (2/20,2/30,0.05), got {text!r}"
            )
        out.append(value)
    return out


def adam_rate(text: str) -> float | None:
    if text.lower() in ("none", "off"):
        return None
    return step_sizes(text)[0]


def _finite(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


def run_eos(args: argparse.Namespace) -> int:
    from descend.diagnostics import eos, plots
    from descend.diagnostics.landscape import plane_losses, trajectory_pca
    from descend.diagnostics.objective import ModelObjective

    out = check_output(args.out, directory=True)
    quick = args.quick
    setup = eos.EoSSetup(
        examples=args.examples or (200 if quick else 500),
        hidden=tuple(args.hidden) if args.hidden else ((100, 100) if quick else (200, 200)),
        seed=args.seed,
    )
    lrs = args.lrs or ([2 / 20, 2 / 30] if quick else list(eos.DEFAULT_LRS))
    adam_lr = args.adam_lr if args.adam_lr is not _DEFAULT else (None if quick else eos.DEFAULT_ADAM_LR)
    hover = args.hover if args.hover is not None else (500 if quick else 1500)
    every = args.every or (25 if quick else 50)

    def progress(run: eos.EoSRun) -> None:
        if not args.quiet and len(run.steps) % 10 == 1:
            ratio = run.sharpness[-1] / run.threshold if run.sharpness else math.nan
            print(
                f"\r{run.label}: step {run.steps[-1]:>6}  λ/threshold {ratio:6.3f}  loss {run.loss[-1]:.4g}  "
                f"{run.seconds:5.0f} s",
                end="",
                file=sys.stderr,
                flush=True,
            )

    runs = eos.edge_of_stability(
        lrs, adam_lr, setup, progress, every=every, max_steps=args.max_steps, hover=hover,
        snapshots=60,
    )  # fmt: skip
    if not args.quiet:
        print(file=sys.stderr)
    plots.plot_eos(runs, out / "eos.png")
    gd = [r for r in runs if r.optimizer == "gd"]
    figures = ["eos.png"]
    if gd:
        middle = gd[len(gd) // 2]
        plane = trajectory_pca(middle.snapshots)
        x, t = setup.data()
        model = setup.model()
        objective = ModelObjective(model, x, t, eos.square_loss)
        a, b, z = plane_losses(objective, plane, points=25 if not quick else 11)
        pct = 100 * plane.explained
        plots.plot_slice_2d(
            a, b, z, out / "eos_trajectory.png", path=plane.coords,
            title=f"{middle.label}: the training path on its top-2 PCA plane",
            labels=(f"PC 1 ({pct[0]:.0f} % of the path's variance)", f"PC 2 ({pct[1]:.0f} %)"),
        )  # fmt: skip
        figures.append("eos_trajectory.png")
    summary = {
        "setup": {
            "dataset": "mnist1d",
            "examples": setup.examples,
            "hidden": list(setup.hidden),
            "activation": setup.activation,
            "init": setup.init,
            "loss": "½·mean‖f(x) − onehot(y)‖²",
            "seed": setup.seed,
        },
        "band": list(eos.BAND),
        "runs": [{**r.summary(), "series": r.series()} for r in runs],
        "figures": figures,
    }
    atomic_write_json(out / "eos.json", _finite(summary), indent=1)
    rows = []
    for r in runs:
        s = r.summary()
        rows.append(
            [
                r.label,
                _fmt(r.threshold, ",.1f"),
                "—" if r.reached is None else str(r.reached),
                _fmt(s["ratio_min"]),
                _fmt(s["ratio_median"]),
                _fmt(s["ratio_max"]),
                _fmt(s["in_band"], ".0%"),
                f"{s['final_loss']:.3g}",
                f"{r.seconds:.0f}",
            ]
        )
    print(f"edge of stability: tanh MLP {setup.hidden} on {setup.examples} MNIST-1D examples, full batch, square loss")
    print(
        format_table(
            ["run", "threshold", "reached at", "λ/thr min", "median", "max", "in [0.9,1.2]", "final loss", "s"],
            rows,
            right=[False] + [True] * 8,
        )
    )
    print("threshold: 2/η for gradient descent, (2 + 2β₁)/((1 − β₁)η) = 38/η for Adam (preconditioned sharpness)")
    print(f"figures: {', '.join(str(out / f) for f in figures)}; numbers: {out / 'eos.json'}")
    return 0


def run_dir(args: argparse.Namespace) -> int:
    from descend.diagnostics.report import HTML_NAME, JSON_NAME, diagnose_run

    path = Path(args.target)
    if not path.is_dir():
        raise UsageError(
            f"argument TARGET: {args.target!r} is neither 'eos' nor a run directory (give a directory written by "
            "descend train)"
        )

    def say(text: str) -> None:
        if not args.quiet:
            print(f"  {text}", file=sys.stderr, flush=True)

    result = diagnose_run(
        path,
        samples=args.samples,
        top_k=args.top_k,
        trace_samples=args.trace_samples,
        density_vectors=args.density_vectors,
        density_steps=args.density_steps,
        slice_points=args.slice_points,
        seed=args.seed,
        progress=say,
    )
    h = result["hessian"]
    tr = h["trace"]
    ns = result.get("noise_scale") or {}
    rows = [
        ("top eigenvalues", ", ".join(f"{v:.4g}" for v in h["top_eigenvalues"])),
        ("most negative eigenvalues", ", ".join(f"{v:.4g}" for v in h["bottom_eigenvalues"])),
        ("trace", f"{tr['estimate']:.4g} (95 % interval {tr['low']:.4g} … {tr['high']:.4g})"),
        ("2/η of the run", f"{result['stability_threshold']:.4g}"),
        ("gradient noise scale B_simple", "—" if ns.get("b_simple") is None else f"{ns['b_simple']:.4g}"),
    ]
    print(f"diagnostics of {path}: {result['parameters']:,} parameters, {result['examples']:,} examples")
    print(format_table(["quantity", "value"], rows))
    for text in result["explanations"].values():
        print(f"- {text}")
    print(f"report: {path / HTML_NAME}; numbers: {path / JSON_NAME} ({result['seconds']:.1f} s)")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.target == EOS:
        return run_eos(args)
    return run_dir(args)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "diagnose",
        help="Hessian spectrum, noise scale and loss slices of a run, or the edge-of-stability experiment",
        description="descend diagnose RUN_DIR: at the run's final checkpoint, the top and most negative Hessian "
        "eigenvalues (Lanczos), the trace (Hutchinson), the eigenvalue density (stochastic Lanczos quadrature), "
        "the gradient noise scale and filter-normalized loss slices, written to RUN_DIR/diagnostics.{html,json} "
        "and PNGs. descend diagnose eos: full-batch gradient descent on a tanh MLP (MNIST-1D) at three step "
        "sizes, and Adam: the sharpness rises to 2/η and hovers there (Cohen et al. 2021).",
    )
    parser.add_argument("target", metavar="TARGET", help="a run directory of descend train, or 'eos'")
    parser.add_argument("--seed", type=integer(0, None), default=0, help="seed of every random vector (0)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    run_group = parser.add_argument_group("RUN_DIR options")
    run_group.add_argument(
        "--samples", type=integer(2, None), default=1000, help="training examples in the Hessian (1000)"
    )
    run_group.add_argument("--top-k", type=integer(1, 50), default=5, help="top eigenvalues to compute (5)")
    run_group.add_argument("--trace-samples", type=integer(2, None), default=30, help="Hutchinson vectors (30)")
    run_group.add_argument("--density-vectors", type=integer(1, None), default=3, help="SLQ random vectors (3)")
    run_group.add_argument("--density-steps", type=integer(2, None), default=40, help="Lanczos steps per vector (40)")
    run_group.add_argument("--slice-points", type=integer(3, 201), default=21, help="points per slice axis (21)")
    eos_group = parser.add_argument_group("eos options")
    eos_group.add_argument("--out", default="eos-output", metavar="DIR", help="where the figures go (eos-output)")
    eos_group.add_argument(
        "--lrs", type=step_sizes, default=None, metavar="η,η,...",
        help="gradient-descent step sizes, e.g. 2/20,2/30,2/40 (default; --quick: 2/20,2/30)",
    )  # fmt: skip
    eos_group.add_argument(
        "--adam-lr", type=adam_rate, default=_DEFAULT, metavar="η|none",
        help="Adam's step size (default 5e-4; none: no Adam run; --quick: none)",
    )  # fmt: skip
    eos_group.add_argument("--examples", type=integer(10, 4000), default=None, help="MNIST-1D examples (500)")
    eos_group.add_argument("--hidden", type=hidden_sizes, default=None, help="tanh MLP widths (200,200)")
    eos_group.add_argument("--max-steps", type=integer(1, None), default=20_000, help="step cap per run (20000)")
    eos_group.add_argument(
        "--hover", type=integer(0, None), default=None, help="steps kept after λ_max reaches 0.9·2/η (1500)"
    )
    eos_group.add_argument("--every", type=integer(1, None), default=None, help="steps between measurements (50)")
    eos_group.add_argument(
        "--quick", action="store_true", help="a smaller version: 200 examples, widths 100,100, two step sizes"
    )
    parser.set_defaults(run=run)
