"""The Hessian's spectrum from Hessian-vector products: Lanczos, Hutchinson, stochastic Lanczos quadrature.

* :func:`top_eigenvalues` / :func:`bottom_eigenvalues`: the k largest / smallest eigenvalues and
  their eigenvectors by the Lanczos method with full reorthogonalization (every new vector is
  orthogonalized twice against all earlier ones, so no spurious copies of converged eigenvalues
  appear), stopped when every wanted Ritz pair's residual ‖Hu − θu‖ = β_m·|s_m| is below
  ``tol·max(|θ|)``.
* :func:`hutchinson_trace`: tr H ≈ mean of zᵀHz over Rademacher vectors z (Hutchinson 1989), with a
  Student-t confidence interval.
* :func:`spectral_density`: the eigenvalue density by stochastic Lanczos quadrature (Ghorbani, Krishnan
  & Xiao 2019; Lin, Saad & Yang 2016): for each random unit vector v, m Lanczos steps give the
  Gauss quadrature nodes θⱼ and weights τⱼ = (first component of T's eigenvector j)² of the measure
  vᵀδ(H − t)v; their average, smoothed by a Gaussian, estimates (1/n)·Σᵢ δ(t − λᵢ).
* :func:`saddle_report`: the number and size of negative eigenvalues at a point.

Every function takes an operator with ``size`` and ``matvec`` (:class:`~descend.diagnostics.HessianOperator`,
:class:`~descend.diagnostics.PreconditionedOperator`, or a dense symmetric matrix wrapped by
:class:`MatrixOperator`).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np

from descend._validation import Interval, check
from descend.errors import ParameterError

_POS_INT = Interval(1, None, integer=True)


class MatrixOperator:
    """A dense symmetric matrix as an operator (tests, and small Hessians from ``HessianOperator.dense()``)."""

    def __init__(self, matrix: Any):
        a = np.asarray(matrix, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
            raise ParameterError(f"MatrixOperator: expected a square matrix, got shape {a.shape}")
        self.matrix = a
        self.size = a.shape[0]
        self.matvecs = 0

    def matvec(self, v: Any) -> np.ndarray:
        self.matvecs += 1
        return self.matrix @ np.asarray(v, dtype=np.float64)

    __matmul__ = matvec


def _check_operator(owner: str, op: Any) -> int:
    if not (hasattr(op, "size") and callable(getattr(op, "matvec", None))):
        raise ParameterError(f"{owner}: expected an operator with size and matvec (HessianOperator), got {type(op)}")
    return int(op.size)


def _generator(rng: Any) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class Lanczos:
    """The Lanczos process on a symmetric operator, one step at a time, with full reorthogonalization.

    After m steps ``alpha`` (m) and ``beta`` (m − 1) define the tridiagonal T = VᵀHV, and ``basis``
    (m × n) holds the orthonormal Lanczos vectors V. ``breakdown`` is True once the Krylov space is
    invariant (then T's eigenvalues are exact eigenvalues of H).
    """

    def __init__(self, op: Any, start: Any = None, rng: Any = 0, max_steps: int | None = None):
        self.op = op
        n = _check_operator("Lanczos", op)
        self.n = n
        self.max_steps = n if max_steps is None else min(int(max_steps), n)
        q = _generator(rng).standard_normal(n) if start is None else np.array(start, dtype=np.float64).reshape(-1)
        if q.shape != (n,) or not np.all(np.isfinite(q)) or not np.any(q):
            raise ParameterError(f"Lanczos: start must be a finite nonzero vector of length {n}, got shape {q.shape}")
        self._basis = np.empty((min(self.max_steps, 64), n))
        self._q = q / np.linalg.norm(q)
        self.alpha: list[float] = []
        self.beta: list[float] = []
        self._residual_norm = 0.0
        self.breakdown = False

    @property
    def steps(self) -> int:
        return len(self.alpha)

    @property
    def basis(self) -> np.ndarray:
        return self._basis[: self.steps]

    def step(self) -> bool:
        """One more Lanczos step; False when no more can be taken (n steps, or an invariant subspace)."""
        j = self.steps
        if j >= self.max_steps or self.breakdown:
            return False
        if j > 0:
            self.beta.append(self._residual_norm)
        if j == self._basis.shape[0]:
            grown = np.empty((min(2 * j, self.max_steps), self.n))
            grown[:j] = self._basis[:j]
            self._basis = grown
        self._basis[j] = self._q
        w = np.asarray(self.op.matvec(self._q), dtype=np.float64)
        a = float(self._q @ w)
        self.alpha.append(a)
        v = self._basis[: j + 1]
        for _ in range(2):  # full reorthogonalization, twice ("twice is enough", Parlett)
            w = w - v.T @ (v @ w)
        b = float(np.linalg.norm(w))
        scale = max(abs(a), max((abs(x) for x in self.alpha), default=0.0), 1e-300)
        if b <= 1e-12 * scale or not math.isfinite(b):
            self.breakdown = True
            self._residual_norm = 0.0
            return True
        self._residual_norm = b
        self._q = w / b
        return True

    def tridiagonal(self) -> np.ndarray:
        m = self.steps
        t = np.diag(np.array(self.alpha))
        if m > 1:
            off = np.array(self.beta[: m - 1])
            t += np.diag(off, 1) + np.diag(off, -1)
        return t

    def ritz(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ritz values (ascending), T's eigenvectors (columns), and each Ritz pair's residual norm."""
        theta, s = np.linalg.eigh(self.tridiagonal())
        residual = np.abs(self._residual_norm * s[-1, :])
        return theta, s, residual


class Eigenpairs(NamedTuple):
    """Eigenvalues (the largest first for :func:`top_eigenvalues`, the smallest first for
    :func:`bottom_eigenvalues`), unit eigenvectors as rows, residual norms ‖Hu − λu‖, Lanczos steps,
    whether every residual met the tolerance, and the operator products used."""

    values: np.ndarray
    vectors: np.ndarray
    residuals: np.ndarray
    iterations: int
    converged: bool
    matvecs: int


def _extreme(
    owner: str, op: Any, k: int, which: str, tol: float, max_iter: int | None, start: Any, rng: Any
) -> Eigenpairs:
    n = _check_operator(owner, op)
    check(owner, "k", k, Interval(1, n, integer=True))
    check(owner, "tol", tol, Interval(0, 1, closed="neither"))
    if max_iter is not None:
        check(owner, "max_iter", max_iter, Interval(k, None, integer=True))
    limit = n if max_iter is None else min(int(max_iter), n)
    lz = Lanczos(op, start=start, rng=rng, max_steps=limit)
    converged = False
    while lz.step():
        if lz.steps < k:
            continue
        if lz.steps < min(limit, 2 * k + 2) and not lz.breakdown:
            continue  # a few steps before the first test: T is too small to say anything
        theta, s, res = lz.ritz()
        pick = np.arange(len(theta))[::-1][:k] if which == "largest" else np.arange(k)
        scale = max(float(np.max(np.abs(theta))), 1e-300)
        if lz.breakdown or np.all(res[pick] <= tol * scale):
            converged = True
            break
    theta, s, res = lz.ritz()
    pick = np.arange(len(theta))[::-1][:k] if which == "largest" else np.arange(min(k, len(theta)))
    vectors = (lz.basis.T @ s[:, pick]).T
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scale = max(float(np.max(np.abs(theta))), 1e-300)
    converged = converged or bool(np.all(res[pick] <= tol * scale))
    return Eigenpairs(theta[pick], vectors, res[pick], lz.steps, converged, lz.steps)


def top_eigenvalues(
    op: Any, k: int = 1, *, tol: float = 1e-8, max_iter: int | None = None, start: Any = None, rng: Any = 0
) -> Eigenpairs:
    """The ``k`` largest eigenvalues of ``op`` (largest first) and their eigenvectors, by Lanczos.

    ``start``: the first Lanczos vector (e.g. the last eigenvector, to warm-start); default a
    Gaussian vector from ``rng``. ``max_iter`` caps the Lanczos steps (default: until converged, at
    most n). ``tol``: relative residual ‖Hu − θu‖ ≤ tol·max|θ|.
    """
    return _extreme("top_eigenvalues", op, k, "largest", tol, max_iter, start, rng)


def bottom_eigenvalues(
    op: Any, k: int = 1, *, tol: float = 1e-8, max_iter: int | None = None, start: Any = None, rng: Any = 0
) -> Eigenpairs:
    """The ``k`` smallest (most negative) eigenvalues of ``op`` (smallest first), by Lanczos."""
    return _extreme("bottom_eigenvalues", op, k, "smallest", tol, max_iter, start, rng)


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom.

    Cornish-Fisher expansion of the normal quantile (Abramowitz & Stegun 26.7.5), accurate to 1e-4
    for df ≥ 5 and exact in the normal limit; for df < 5 the exact closed forms (df = 1, 2) or a
    bisection on the distribution function are used.
    """
    check("t_quantile", "p", p, Interval(0, 1, closed="neither"))
    check("t_quantile", "df", df, _POS_INT)
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        a = 4 * p * (1 - p)
        return (2 * p - 1) * math.sqrt(2 / a)
    if df < 5:
        return _t_bisect(p, df)
    z = NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def _t_cdf(t: float, df: int) -> float:
    # Closed forms for small integer df (A&S 26.7.3/26.7.4).
    theta = math.atan(t / math.sqrt(df))
    if df % 2 == 1:
        s, term = 0.0, math.cos(theta)
        if df > 1:
            s = term
            for k in range(3, df, 2):
                term *= (k - 1) / k * math.cos(theta) ** 2
                s += term
        a = (2 / math.pi) * (theta + math.sin(theta) * s) if df > 1 else 2 * theta / math.pi
    else:
        s, term = 1.0, 1.0
        for k in range(2, df, 2):
            term *= (k - 1) / k * math.cos(theta) ** 2
            s += term
        a = math.sin(theta) * s
    return 0.5 + 0.5 * a


def _t_bisect(p: float, df: int) -> float:
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


class TraceEstimate(NamedTuple):
    """Hutchinson's estimate of tr H: the mean, its standard error, and the ``confidence`` interval."""

    estimate: float
    stderr: float
    low: float
    high: float
    confidence: float
    samples: int


def hutchinson_trace(op: Any, samples: int = 100, *, confidence: float = 0.95, rng: Any = 0) -> TraceEstimate:
    """tr H ≈ (1/m) Σ zᵢᵀHzᵢ over m Rademacher vectors (entries ±1), with a Student-t interval.

    Each zᵀHz is an unbiased estimate of tr H with variance 2·Σ_{i≠j} H_ij² (Hutchinson 1989); the
    interval is mean ± t_{(1+c)/2, m−1}·s/√m with s the sample standard deviation.
    """
    owner = "hutchinson_trace"
    n = _check_operator(owner, op)
    check(owner, "samples", samples, Interval(2, None, integer=True))
    check(owner, "confidence", confidence, Interval(0, 1, closed="neither"))
    gen = _generator(rng)
    values = np.empty(int(samples))
    for i in range(int(samples)):
        z = gen.choice(np.array([-1.0, 1.0]), size=n)
        values[i] = float(z @ op.matvec(z))
    mean = float(values.mean())
    stderr = float(values.std(ddof=1) / math.sqrt(len(values)))
    half = t_quantile(0.5 + confidence / 2, len(values) - 1) * stderr
    return TraceEstimate(mean, stderr, mean - half, mean + half, float(confidence), int(samples))


class SpectralDensity(NamedTuple):
    """Stochastic Lanczos quadrature: ``density`` on ``grid`` (integrates to 1), and the raw quadrature:
    ``nodes`` and ``weights`` (one row per random vector; each row's weights sum to 1)."""

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float

    def moment(self, k: int) -> float:
        """The quadrature's k-th moment ≈ tr(Hᵏ)/n (exact in expectation for k < 2·steps)."""
        return float(np.mean(np.sum(self.weights * self.nodes**k, axis=1)))


def spectral_density(
    op: Any,
    vectors: int = 10,
    steps: int = 80,
    *,
    grid: Any = None,
    points: int = 1000,
    sigma: float | None = None,
    rng: Any = 0,
) -> SpectralDensity:
    """The eigenvalue density of ``op`` by stochastic Lanczos quadrature (``vectors`` × ``steps`` products).

    ``sigma``: the width of the Gaussian that smooths each node (default 1 % of the spectrum's range,
    at least 1e-8); ``grid``: where to evaluate (default ``points`` values spanning the nodes ± 5σ).
    """
    owner = "spectral_density"
    n = _check_operator(owner, op)
    check(owner, "vectors", vectors, _POS_INT)
    check(owner, "steps", steps, _POS_INT)
    check(owner, "points", points, Interval(2, None, integer=True))
    if sigma is not None:
        check(owner, "sigma", sigma, Interval(0, None, closed="neither"))
    gen = _generator(rng)
    m = min(int(steps), n)
    nodes = np.zeros((int(vectors), m))
    weights = np.zeros((int(vectors), m))
    for r in range(int(vectors)):
        lz = Lanczos(op, start=gen.standard_normal(n), max_steps=m)
        while lz.step():
            pass
        theta, s, _ = lz.ritz()
        k = len(theta)
        nodes[r, :k] = theta
        weights[r, :k] = s[0, :] ** 2
        if k < m:  # an invariant subspace: pad with zero-weight copies of a node
            nodes[r, k:] = theta[-1]
    lo, hi = float(nodes.min()), float(nodes.max())
    if sigma is None:
        sigma = max(0.01 * (hi - lo), 1e-8 * max(abs(lo), abs(hi), 1.0))
    if grid is None:
        grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, int(points))
    grid = np.asarray(grid, dtype=np.float64).reshape(-1)
    density = np.zeros_like(grid)
    norm = 1.0 / (math.sqrt(2 * math.pi) * sigma * vectors)
    for r in range(int(vectors)):
        diff = (grid[:, None] - nodes[r][None, :]) / sigma
        density += norm * np.exp(-0.5 * diff * diff) @ weights[r]
    return SpectralDensity(grid, density, nodes, weights, float(sigma))


class SaddleReport(NamedTuple):
    """Negative curvature at a point.

    ``negative``: the number of eigenvalues below ``-threshold`` (exact when ``exact``, from the dense
    Hessian; otherwise n × the spectral density's mass below −threshold, an estimate);
    ``bottom``: the most negative eigenvalues found (smallest first); ``top``: λ_max;
    ``ratio``: |λ_min|/λ_max (how strong the negative curvature is next to the positive);
    ``negative_fraction``: negative / n.
    """

    size: int
    negative: float
    negative_fraction: float
    bottom: np.ndarray
    top: float
    ratio: float
    threshold: float
    exact: bool

    @property
    def is_saddle(self) -> bool:
        """A point with curvature of both signs (strictly: at least one eigenvalue below −threshold and λ_max > 0)."""
        return self.negative > 0 and self.top > self.threshold


def saddle_report(
    op: Any,
    k: int = 5,
    *,
    exact_limit: int = 2000,
    threshold: float | None = None,
    rng: Any = 0,
    density: SpectralDensity | None = None,
) -> SaddleReport:
    """How many negative eigenvalues ``op`` has and how large they are.

    Up to ``exact_limit`` parameters the Hessian is formed (``op.dense()``, n products, or the matrix of
    a :class:`MatrixOperator`) and counted exactly with ``numpy.linalg.eigh``; above it the count is
    estimated from the spectral density (``density`` or a fresh one) and the ``k`` most negative
    eigenvalues come from Lanczos. ``threshold`` (default 1e-6·λ_max): eigenvalues in
    [−threshold, threshold] count as zero (flat directions, rounding).
    """
    owner = "saddle_report"
    n = _check_operator(owner, op)
    check(owner, "k", k, Interval(1, None, integer=True))
    check(owner, "exact_limit", exact_limit, Interval(0, None, integer=True))
    k = min(int(k), n)
    if n <= exact_limit and (hasattr(op, "dense") or isinstance(op, MatrixOperator)):
        h = op.matrix if isinstance(op, MatrixOperator) else op.dense()
        eig = np.linalg.eigvalsh(0.5 * (h + h.T))
        top = float(eig[-1])
        thr = float(threshold) if threshold is not None else 1e-6 * max(abs(top), abs(float(eig[0])), 1e-300)
        negative = float(np.sum(eig < -thr))
        bottom = eig[:k]
        exact = True
    else:
        top = float(top_eigenvalues(op, 1, tol=1e-6, max_iter=100, rng=rng).values[0])
        bottom = bottom_eigenvalues(op, k, tol=1e-6, max_iter=150, rng=rng).values
        thr = float(threshold) if threshold is not None else 1e-6 * max(abs(top), abs(float(bottom[0])), 1e-300)
        sd = density if density is not None else spectral_density(op, rng=rng)
        mass = _mass_below(sd, -thr)
        negative = float(n * mass)
        exact = False
    ratio = abs(float(bottom[0])) / top if top > 0 and bottom[0] < 0 else 0.0
    return SaddleReport(n, negative, negative / n, np.asarray(bottom), top, ratio, thr, exact)


def _mass_below(sd: SpectralDensity, level: float) -> float:
    """The quadrature's weight on nodes below ``level`` (each vector's measure, averaged)."""
    return float(np.mean(np.sum(np.where(sd.nodes < level, sd.weights, 0.0), axis=1)))
