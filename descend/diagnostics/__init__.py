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

See docs/diagnostics.md.
"""

from descend.diagnostics.hessian import DEFAULT_STEP, HessianOperator, PreconditionedOperator, adam_preconditioner
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
    "PreconditionedOperator",
    "SaddleReport",
    "SpectralDensity",
    "TraceEstimate",
    "adam_preconditioner",
    "bottom_eigenvalues",
    "hutchinson_trace",
    "saddle_report",
    "spectral_density",
    "t_quantile",
    "top_eigenvalues",
]
