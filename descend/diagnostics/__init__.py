"""Why training stalls or explodes: the curvature of a real network, measured.

Instruments (NumPy engine; every one checked against an exact answer in ``tests/diagnostics``):

* :class:`ModelObjective` / :class:`HessianOperator`: Hessian-vector products of a model's training
  loss (central differences of float64 gradients with ReLU / max-pool patterns frozen; 2 gradient
  evaluations per product), and :meth:`HessianOperator.dense` column by column.
* :func:`top_eigenvalues`, :func:`bottom_eigenvalues` (Lanczos, full reorthogonalization),
  :func:`hutchinson_trace`, :func:`spectral_density` (stochastic Lanczos quadrature) and
  :func:`saddle_report` (negative curvature).
* :class:`PreconditionedOperator` with :func:`adam_preconditioner`: the preconditioned sharpness
  λ_max(P⁻¹H) of adaptive optimizers.
* :func:`gradient_noise_scale`: B_simple = tr(Σ)/|G|² from gradient norms at two batch sizes.
* :func:`filter_normalized_direction`, :func:`slice_1d`, :func:`slice_2d`, :func:`trajectory_pca`:
  loss-landscape slices of real networks (figures: :mod:`descend.diagnostics.plots`).
* :class:`SharpnessTracker`, :class:`NoiseScaleLogger`: training callbacks (``descend train
  --track-sharpness K``); :mod:`descend.diagnostics.eos`: the edge-of-stability experiment;
  :mod:`descend.diagnostics.report`: ``descend diagnose RUN_DIR``.

See docs/diagnostics.md.
"""

from descend.diagnostics.callbacks import NoiseScaleLogger, SharpnessTracker
from descend.diagnostics.hessian import DEFAULT_STEP, HessianOperator, PreconditionedOperator, adam_preconditioner
from descend.diagnostics.landscape import (
    TrajectoryPlane,
    filter_normalized_direction,
    plane_losses,
    slice_1d,
    slice_2d,
    trajectory_pca,
)
from descend.diagnostics.noise import NoiseScale, gradient_noise_scale
from descend.diagnostics.objective import FunctionObjective, ModelObjective
from descend.diagnostics.spectrum import (
    Eigenpairs,
    Lanczos,
    MatrixOperator,
    SaddleReport,
    SpectralDensity,
    TraceEstimate,
    bottom_eigenvalues,
    hutchinson_trace,
    saddle_report,
    spectral_density,
    t_quantile,
    top_eigenvalues,
)

__all__ = [
    "DEFAULT_STEP",
    "Eigenpairs",
    "FunctionObjective",
    "HessianOperator",
    "Lanczos",
    "MatrixOperator",
    "ModelObjective",
    "NoiseScale",
    "NoiseScaleLogger",
    "PreconditionedOperator",
    "SaddleReport",
    "SharpnessTracker",
    "SpectralDensity",
    "TraceEstimate",
    "TrajectoryPlane",
    "adam_preconditioner",
    "bottom_eigenvalues",
    "filter_normalized_direction",
    "gradient_noise_scale",
    "hutchinson_trace",
    "plane_losses",
    "saddle_report",
    "slice_1d",
    "slice_2d",
    "spectral_density",
    "t_quantile",
    "top_eigenvalues",
    "trajectory_pca",
]
