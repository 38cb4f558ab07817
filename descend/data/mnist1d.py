"""MNIST-1D (Greydanus & Kobak, "Scaling down deep learning with MNIST-1D", arXiv:2011.14439), generated locally.

This is a NumPy port of ``mnist1d.data.make_dataset`` from the ``mnist1d`` PyPI
package, version 0.0.2.post1 (https://github.com/greydanus/mnist1d,
Copyright Sam Greydanus, Peter Steinbach et al., Apache License 2.0). With the
same arguments it returns bit-for-bit the same arrays (``tests/data`` checks
this against the package when it is installed), but it

- draws from a private ``np.random.RandomState(seed)`` instead of seeding the
  global NumPy and ``random`` generators (the package calls ``np.random.seed``);
  ``RandomState(seed)`` produces the same stream, so the data are identical;
- needs neither SciPy nor matplotlib (the package imports ``matplotlib.pyplot``
  on import and uses SciPy for two one-line operations): ``interp1d(kind="linear")``
  on 1-D float64 data is ``np.interp`` (SciPy delegates to it), and
  ``gaussian_filter(noise, 2)`` is re-implemented with SciPy's kernel, its
  ``"reflect"`` boundary and its summation order;
- never downloads anything (the package's ``get_dataset`` fetches a pickle).

Default arguments are those of the paper (``get_dataset_args()``): 5,000 samples
split 4,000 train / 1,000 test, signals of length 40, seed 42. The generated
arrays are cached as ``.npz`` (no pickle) in ``$DESCEND_CACHE/mnist1d`` keyed by
a hash of the arguments.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from descend.data.dataset import Dataset, Splits, standardize
from descend.data.download import cache_dir as _cache_dir
from descend.data.download import publish
from descend.errors import DataError

#: Bump when the generated arrays would change; part of the cache key.
GENERATOR_VERSION = "mnist1d-0.0.2.post1/descend-1"

#: ``mnist1d.data.get_dataset_args()`` without its download ``url``.
DEFAULT_ARGS: dict[str, Any] = {
    "num_samples": 5000,
    "train_split": 0.8,
    "template_len": 12,
    "padding": (36, 60),
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
    "seed": 42,
}

CLASSES = tuple(str(d) for d in range(10))


def templates() -> np.ndarray:
    """The ten 12-point digit templates of ``mnist1d.data.get_templates()`` (whitened, starting at 0, / 6)."""
    d = np.asarray(
        [
            [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
            [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
            [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
            [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
            [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
            [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
            [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
            [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
            [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
            [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
        ]
    )
    d -= d.mean(1, keepdims=True)
    d /= d.std(1, keepdims=True)
    d -= d[:, :1]
    return d / 6.0


def _interpolate(x: np.ndarray, n: int) -> np.ndarray:
    # mnist1d: interp1d(linspace(0, 1, len(x)), x, kind="linear")(linspace(0, 1, n)); SciPy calls np.interp here.
    return np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(x)), x)


def _gaussian_kernel(sigma: float = 2.0, truncate: float = 4.0) -> np.ndarray:
    # scipy.ndimage._gaussian_kernel1d(sigma, 0, radius) with radius = int(truncate * sigma + 0.5)
    radius = int(truncate * sigma + 0.5)
    t = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * t**2)
    return phi / phi.sum()


_KERNEL = _gaussian_kernel()


def _gaussian_filter(a: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(a, 2)`` for 1-D ``a``, with SciPy's rounding.

    SciPy's ``correlate1d`` for a symmetric kernel computes
    ``out[i] = a[i] w[0] + sum_{j = r..1} (a[i - j] + a[i + j]) w[j]``
    (``j`` descending) on the ``"reflect"``-extended line (``d c b a | a b c d | d c b a``,
    which is ``np.pad(mode="symmetric")``); the same order here gives the same bits.
    """
    r = (len(_KERNEL) - 1) // 2
    ext = np.pad(a, r, mode="symmetric")
    n = a.shape[0]
    out = ext[r : r + n] * _KERNEL[r]
    for j in range(r, 0, -1):
        out = out + (ext[r - j : r - j + n] + ext[r + j : r + j + n]) * _KERNEL[r + j]
    return out


def _transform(x: np.ndarray, args: dict[str, Any], rs: np.random.RandomState, eps: float = 1e-8) -> np.ndarray:
    # mnist1d.transform.transform, in the same order of random draws.
    low, high = args["padding"]
    p = low + int(rs.rand() * (high - low + 1))  # pad
    new_x = np.concatenate([x + eps, np.zeros(p)])
    new_x = _interpolate(new_x, args["template_len"] + high)  # dilate
    new_x = new_x * (1 + args["scale_coeff"] * (rs.rand() - 0.5))  # scale
    k = rs.choice(args["max_translation"])  # translate
    new_x = np.concatenate([new_x[-k:], new_x[:-k]])
    mask = new_x != 0  # correlated noise where the signal is exactly zero, then iid noise
    new_x = mask * new_x + (1 - mask) * _gaussian_filter(args["corr_noise_scale"] * rs.randn(*new_x.shape))
    new_x = new_x + args["iid_noise_scale"] * rs.randn(*new_x.shape)
    coeff = args["shear_scale"] * (rs.rand() - 0.5)  # shear
    new_x = new_x - coeff * np.linspace(-0.5, 0.5, len(new_x))
    return _interpolate(new_x, args["final_seq_length"])  # subsample


def make_mnist1d(**kwargs: Any) -> dict[str, np.ndarray]:
    """Generate MNIST-1D like ``mnist1d.data.make_dataset``: float64 ``x``, ``x_test``; int64 ``y``, ``y_test``.

    Keyword arguments override :data:`DEFAULT_ARGS` (the paper's settings).
    ``x`` is standardized over the whole data set, as the package does.
    """
    args = _check_args(kwargs)
    rs = np.random.RandomState(args["seed"])
    tmpl = templates()
    per_class = args["num_samples"] // len(tmpl)
    xs = [_transform(tmpl[label], args, rs) for label in range(len(tmpl)) for _ in range(per_class)]
    ys = np.repeat(np.arange(len(tmpl), dtype=np.int64), per_class)
    perm = rs.permutation(len(ys))
    x, y = np.stack(xs)[perm], ys[perm]
    if args["shuffle_seq"]:
        x = x[..., rs.permutation(args["final_seq_length"])]
    x = (x - x.mean()) / x.std()
    split = int(len(y) * args["train_split"])
    return {"x": x[:split], "y": y[:split], "x_test": x[split:], "y_test": y[split:]}


def load_mnist1d(
    *,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    flatten: bool = True,
    normalize: bool = False,
    **generator_args: Any,
) -> Splits:
    """MNIST-1D as float32 ``(n, 40)`` signals (``flatten=False``: ``(n, 1, 40)``) and labels 0..9.

    ``generator_args`` override :data:`DEFAULT_ARGS` (e.g. ``seed=0``, ``num_samples=10000``).
    The arrays are cached as ``.npz`` under ``cache_dir`` (default ``$DESCEND_CACHE``
    or ``~/.cache/descend``) in ``mnist1d/``; ``cache=False`` always regenerates.
    ``normalize=True`` re-standardizes with the training split's statistics.
    """
    for flag, value in (("cache", cache), ("flatten", flatten), ("normalize", normalize)):
        if not isinstance(value, bool):
            raise DataError(f"mnist1d: {flag} must be a bool, got {value!r}")
    args = _check_args(generator_args)
    arrays = None
    path = _cache_path(args, cache_dir)
    if cache:
        arrays = _read_cache(path, args)
    if arrays is None:
        raw = make_mnist1d(**args)
        arrays = {k: (v.astype(np.float32) if k.startswith("x") else v) for k, v in raw.items()}
        if cache:
            _write_cache(path, arrays, args)

    def make(x: np.ndarray, y: np.ndarray) -> Dataset:
        return Dataset(x if flatten else x[:, None, :], y, len(CLASSES), "mnist1d", CLASSES)

    splits = Splits(make(arrays["x"], arrays["y"]), make(arrays["x_test"], arrays["y_test"]))
    return standardize(splits) if normalize else splits


# --------------------------------------------------------------------------------------------------------------------


def _check_args(overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(DEFAULT_ARGS))
    if unknown:
        raise DataError(f"mnist1d: unknown argument(s) {', '.join(unknown)}; allowed: {', '.join(DEFAULT_ARGS)}")
    args = {**DEFAULT_ARGS, **overrides}

    def integer(name: str, low: int) -> None:
        v = args[name]
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
            raise DataError(f"mnist1d: {name} must be an integer >= {low}, got {v!r}")
        args[name] = int(v)

    def real(name: str, low: float, high: float | None = None, *, open_low: bool = False) -> None:
        v = args[name]
        ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and np.isfinite(v)
        ok = ok and (v > low if open_low else v >= low) and (high is None or v < high)
        if not ok:
            bounds = f"{'(' if open_low else '['}{low}, {'inf' if high is None else high})"
            raise DataError(f"mnist1d: {name} must be a number in {bounds}, got {v!r}")
        args[name] = float(v)

    integer("num_samples", 10)
    integer("template_len", 1)
    integer("max_translation", 1)
    integer("final_seq_length", 2)
    integer("seed", 0)
    if args["seed"] >= 2**32:
        raise DataError(f"mnist1d: seed must be an integer in [0, 2**32), got {args['seed']}")
    real("train_split", 0.0, 1.0, open_low=True)
    for name in ("scale_coeff", "corr_noise_scale", "iid_noise_scale", "shear_scale"):
        real(name, 0.0)
    pad = args["padding"]
    if (
        not isinstance(pad, list | tuple)
        or len(pad) != 2
        or not all(isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in pad)
        or not 0 <= pad[0] <= pad[1]
    ):
        raise DataError(f"mnist1d: padding must be a pair of integers (low, high) with 0 <= low <= high, got {pad!r}")
    args["padding"] = (int(pad[0]), int(pad[1]))
    if not isinstance(args["shuffle_seq"], bool):
        raise DataError(f"mnist1d: shuffle_seq must be a bool, got {args['shuffle_seq']!r}")
    n = args["num_samples"] // 10 * 10
    split = int(n * args["train_split"])
    if not 0 < split < n:
        raise DataError(
            f"mnist1d: train_split={args['train_split']} of {n} samples leaves an empty train or test split"
        )
    return args


def _args_json(args: dict[str, Any]) -> str:
    return json.dumps({"generator": GENERATOR_VERSION, **args}, sort_keys=True)


def _cache_path(args: dict[str, Any], cache_dir: str | os.PathLike | None) -> Path:
    key = hashlib.sha256(_args_json(args).encode()).hexdigest()[:16]
    return _cache_dir(cache_dir) / "mnist1d" / f"mnist1d-{key}.npz"


_KEYS = ("x", "y", "x_test", "y_test")


def _read_cache(path: Path, args: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when absent, unreadable or made with other arguments (then regenerated)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in (*_KEYS, "args")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if arrays.pop("args").tobytes().decode("utf-8", "replace") != _args_json(args):
        return None
    return arrays


def _write_cache(path: Path, arrays: dict[str, np.ndarray], args: dict[str, Any]) -> None:
    """Write atomically; a read-only or full cache directory is not an error (the data are in memory)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, args=np.frombuffer(_args_json(args).encode(), dtype=np.uint8), **arrays)
        publish(tmp, path)
    except OSError:
        pass
    finally:
        Path(tmp).unlink(missing_ok=True)
