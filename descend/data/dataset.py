"""Labelled data sets as plain NumPy arrays.

A :class:`Dataset` holds ``x`` (float32, one sample per row of the first axis),
``y`` (int64 class labels in ``[0, num_classes)``), ``num_classes``, a ``name``,
optional class names and the :class:`Normalization` its inputs went through.
Every constructor validates its input once, with one clear message per problem,
so the training loop never sees NaN pixels or a label 10 in a 10-class problem.
A class count inferred from the labels is at most :data:`MAX_CLASSES` (a stray
label ``1e9`` would otherwise ask for a billion output units).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from descend.errors import DataError

#: The most classes inferred from the labels (``max(y) + 1``); pass ``num_classes`` for more.
MAX_CLASSES = 10_000


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A labelled classification data set.

    ``x`` is float32 of shape ``(n, ...)`` (images ``(n, 1, 28, 28)`` or flat ``(n, d)``);
    ``y`` is int64 of shape ``(n,)`` with every label in ``[0, num_classes)``.
    ``normalization``: how ``x`` was derived from the raw inputs (None: it was not).
    Construction validates and converts (see :func:`from_arrays`); the arrays are
    not copied when they already have the right dtype and layout.
    """

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    name: str = "data"
    classes: tuple[str, ...] | None = None
    normalization: Normalization | None = None

    def __post_init__(self) -> None:
        x, y, k, classes = _validate(self.x, self.y, self.num_classes, self.classes, owner=str(self.name))
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "num_classes", k)
        object.__setattr__(self, "classes", classes)

    @classmethod
    def _trusted(
        cls,
        x: np.ndarray,
        y: np.ndarray,
        num_classes: int,
        name: str,
        classes: tuple[str, ...] | None,
        normalization: Normalization | None = None,
    ) -> Dataset:
        """Build from arrays that are already validated (subsets, rescaled copies): no checks."""
        obj = object.__new__(cls)
        fields = {"x": x, "y": y, "num_classes": num_classes, "name": name, "classes": classes}
        for field, value in {**fields, "normalization": normalization}.items():
            object.__setattr__(obj, field, value)
        return obj

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. ``(1, 28, 28)`` or ``(40,)``."""
        return tuple(self.x.shape[1:])

    @property
    def num_features(self) -> int:
        """Number of input values per sample (``prod(sample_shape)``)."""
        return math.prod(self.sample_shape)

    def subset(self, indices: Any) -> Dataset:
        """The samples at ``indices`` (an integer array or a boolean mask), in that order."""
        idx = np.asarray(indices)
        if idx.dtype == np.bool_:
            if idx.shape != (len(self),):
                raise DataError(f"{self.name}: a boolean mask must have shape ({len(self)},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise DataError(f"{self.name}: subset indices must be a 1-D integer array, got {idx.dtype} {idx.shape}")
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise DataError(f"{self.name}: subset indices must be in [0, {len(self)}), got {idx.min()}..{idx.max()}")
        return Dataset._trusted(
            np.take(self.x, idx, axis=0),
            np.take(self.y, idx),
            self.num_classes,
            self.name,
            self.classes,
            self.normalization,
        )

    def with_x(self, x: np.ndarray) -> Dataset:
        """A copy with new inputs (same labels), validated."""
        return Dataset(x, self.y, self.num_classes, self.name, self.classes)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, n={len(self)}, sample_shape={self.sample_shape}, "
            f"num_classes={self.num_classes})"
        )


class Splits(NamedTuple):
    """A train/test pair as returned by :func:`descend.data.load`."""

    train: Dataset
    test: Dataset


class Standardization(NamedTuple):
    """Mean/std computed on one data set (the training split) and applied to others."""

    mean: np.ndarray  # float32, shape () or the sample shape
    std: np.ndarray  # float32, same shape, > 0

    @classmethod
    def fit(cls, ds: Dataset, *, per_feature: bool = False) -> Standardization:
        """Mean and standard deviation of ``ds.x``: one scalar each (default) or one per feature.

        A zero standard deviation (a constant feature, e.g. an always-black border
        pixel) is replaced by 1 so that feature is only centred.
        """
        x = ds.x
        axis = 0 if per_feature else None
        mean = x.mean(axis=axis, dtype=np.float64)
        std = x.std(axis=axis, dtype=np.float64)
        std = np.where(std > 0, std, 1.0)
        return cls(np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32))

    def apply(self, ds: Dataset) -> Dataset:
        """``(x - mean) / std`` in float32; labels and metadata unchanged."""
        x = (ds.x - self.mean) / self.std
        return Dataset._trusted(x.astype(np.float32, copy=False), ds.y, ds.num_classes, ds.name, ds.classes)


class Normalization(NamedTuple):
    """Per-feature ``x ↦ (x − shift) / scale``, fitted on one data set (the training split), applied to others.

    ``method``: ``"standard"`` (shift the mean, scale the standard deviation) or
    ``"minmax"`` (shift the minimum, scale the range, so the fitted set spans
    [0, 1]). A constant feature gets scale 1 (it is only shifted).
    """

    method: str
    shift: np.ndarray  # float32, the sample shape
    scale: np.ndarray  # float32, the sample shape, > 0

    METHODS = ("standard", "minmax")

    @classmethod
    def fit(cls, ds: Dataset, method: str = "standard") -> Normalization:
        if method not in cls.METHODS:
            allowed = ", ".join(repr(m) for m in cls.METHODS)
            raise DataError(f"Normalization: method must be one of {allowed}, got {method!r}")
        x = ds.x
        if method == "standard":
            shift, scale = x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64)
        else:
            low = x.min(axis=0).astype(np.float64)
            shift, scale = low, x.max(axis=0).astype(np.float64) - low
        scale = np.where(scale > 0, scale, 1.0)
        return cls(method, shift.astype(np.float32), scale.astype(np.float32))

    def apply(self, ds: Dataset) -> Dataset:
        """``(x − shift) / scale`` in float32; labels and metadata unchanged; remembers ``self``."""
        if ds.sample_shape != self.shift.shape:
            raise DataError(
                f"Normalization: fitted on samples of shape {self.shift.shape}, got {ds.name} with {ds.sample_shape}"
            )
        with np.errstate(over="ignore"):
            x = ((ds.x - self.shift) / self.scale).astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise DataError(f"Normalization: {ds.name} has values beyond the float32 range after {self.method} scaling")
        return Dataset._trusted(x, ds.y, ds.num_classes, ds.name, ds.classes, self)

    def to_json(self) -> dict[str, Any]:
        """``{"method": ..., "shift": [...], "scale": [...]}`` (nested lists for image samples)."""
        return {"method": self.method, "shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Normalization:
        try:
            method, shift, scale = obj["method"], obj["shift"], obj["scale"]
        except (KeyError, TypeError):
            raise DataError(f"Normalization: expected {{'method', 'shift', 'scale'}}, got {obj!r}") from None
        if method not in cls.METHODS:
            raise DataError(f"Normalization: method must be one of {', '.join(cls.METHODS)}, got {method!r}")
        return cls(method, np.asarray(shift, dtype=np.float32), np.asarray(scale, dtype=np.float32))


def standardize(splits: Splits, *, per_feature: bool = False) -> Splits:
    """Standardize both splits with the mean/std of the *training* split (no test leakage)."""
    st = Standardization.fit(splits.train, per_feature=per_feature)
    return Splits(st.apply(splits.train), st.apply(splits.test))


def from_arrays(
    x: Any,
    y: Any,
    *,
    num_classes: int | None = None,
    name: str = "arrays",
    classes: Sequence[str] | None = None,
) -> Dataset:
    """A :class:`Dataset` from your own arrays.

    ``x``: real numbers of shape ``(n, ...)`` (converted to float32; NaN/inf rejected).
    ``y``: ``n`` integer labels ``0..num_classes-1`` (integer-valued floats are accepted).
    ``num_classes`` defaults to ``max(y) + 1`` (or ``len(classes)`` when given).
    """
    if num_classes is None and classes is not None:
        num_classes = len(tuple(classes))
    return Dataset(x, y, num_classes, name, None if classes is None else tuple(classes))  # type: ignore[arg-type]


def train_validation_split(ds: Dataset, fraction: float, rng: np.random.Generator | int) -> tuple[Dataset, Dataset]:
    """Split ``ds`` at random into ``(train, validation)``; ``validation`` gets ``round(fraction * n)`` samples.

    ``rng`` is a ``np.random.Generator`` or an int seed. Each part keeps the
    original sample order (the batch loader shuffles).
    """
    owner = "train_validation_split"
    if not isinstance(ds, Dataset):
        raise DataError(f"{owner}: ds must be a descend.data.Dataset, got {type(ds).__name__}")
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < float(fraction) < 1:
        raise DataError(f"{owner}: fraction must be a number in (0, 1), got {fraction!r}")
    gen = _as_generator(rng, owner)
    n = len(ds)
    n_val = round(float(fraction) * n)
    if not 1 <= n_val <= n - 1:
        raise DataError(
            f"{owner}: fraction={fraction} of {n} samples gives {n_val} validation and {n - n_val} training "
            "samples; both parts need at least one sample"
        )
    perm = gen.permutation(n)
    return ds.subset(np.sort(perm[n_val:])), ds.subset(np.sort(perm[:n_val]))


def _as_generator(rng: Any, owner: str) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and int(rng) >= 0:
        return np.random.default_rng(int(rng))
    raise DataError(f"{owner}: rng must be a np.random.Generator or a non-negative int seed, got {rng!r}")


# --------------------------------------------------------------------------------------------------------------------
# Validation


def _validate(
    x: Any, y: Any, num_classes: Any, classes: Any, *, owner: str
) -> tuple[np.ndarray, np.ndarray, int, tuple[str, ...] | None]:
    x = _check_x(x, owner)
    y = _check_y(y, owner)
    if y.shape[0] != x.shape[0]:
        raise DataError(
            f"{owner}: x and y must have the same number of samples, got {x.shape[0]} in x (shape {x.shape}) "
            f"and {y.shape[0]} in y"
        )
    if classes is not None:
        if isinstance(classes, str) or not all(isinstance(c, str) for c in classes):
            raise DataError(f"{owner}: classes must be a sequence of class-name strings, got {classes!r}")
        classes = tuple(classes)
    lo, hi = int(y.min()), int(y.max())
    if lo < 0:
        raise DataError(f"{owner}: labels must be >= 0, got {lo} at y[{int(np.argmin(y))}]")
    if num_classes is None:
        if classes is None and hi >= MAX_CLASSES:
            raise DataError(
                f"{owner}: label {hi} at y[{int(np.argmax(y))}] would make {hi + 1} classes; at most "
                f"{MAX_CLASSES} classes are inferred from the labels (labels are 0..K-1); "
                "pass num_classes to allow more"
            )
        num_classes = len(classes) if classes is not None else hi + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or int(num_classes) < 1:
        raise DataError(f"{owner}: num_classes must be an integer >= 1, got {num_classes!r}")
    num_classes = int(num_classes)
    if hi >= num_classes:
        raise DataError(
            f"{owner}: labels must be in [0, {num_classes}) (num_classes={num_classes}), "
            f"got {hi} at y[{int(np.argmax(y))}]"
        )
    if classes is not None and len(classes) != num_classes:
        raise DataError(f"{owner}: classes has {len(classes)} names but num_classes is {num_classes}")
    return x, y, num_classes, classes


def _check_x(x: Any, owner: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{owner}: x must hold real numbers (float or int), got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise DataError(
            f"{owner}: x must have shape (n_samples, features...), got shape {arr.shape}; "
            "for one feature per sample use x.reshape(-1, 1)"
        )
    if arr.shape[0] == 0:
        raise DataError(f"{owner}: x has no samples (shape {arr.shape})")
    with np.errstate(over="ignore"):  # overflow to inf is reported below, with the sample
        out = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(out)
    if not finite.all():
        bad = np.logical_not(finite)
        count = int(bad.sum())
        first = int(np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0])
        overflow = arr.dtype.kind != "f" or bool(np.isfinite(arr[first]).all())
        why = "values beyond the float32 range (about ±3.4e38)" if overflow else "NaN or inf values"
        raise DataError(f"{owner}: x must be finite; it has {count} {why}, the first in sample {first}")
    return out


def _check_y(y: Any, owner: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        hint = "; it looks one-hot: pass y.argmax(axis=1)" if arr.ndim == 2 and arr.shape[1] > 1 else ""
        if arr.ndim == 2 and arr.shape[1] == 1:
            hint = "; pass y.ravel()"
        raise DataError(f"{owner}: y must be a 1-D array of integer class labels, got shape {arr.shape}{hint}")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            i = int(np.flatnonzero(~finite)[0])
            raise DataError(f"{owner}: labels must be integers, got {arr[i]} at y[{i}]")
        frac = arr != np.round(arr)
        if frac.any():
            i = int(np.flatnonzero(frac)[0])
            raise DataError(f"{owner}: labels must be integers, got {arr[i]} at y[{i}]")
        return arr.astype(np.int64)
    raise DataError(
        f"{owner}: labels must be integers 0..num_classes-1, got dtype {arr.dtype}; "
        "map class names to integers first (np.unique(names, return_inverse=True)) or use from_csv"
    )
