"""Batches for the three flavours of gradient descent.

``batch_size=None`` is (full-)batch gradient descent: one batch, the whole data
set, per epoch. ``batch_size=1`` is stochastic gradient descent: one sample per
step. ``batch_size=k`` is mini-batch gradient descent. With ``shuffle=True``
every epoch visits every sample exactly once in a fresh random order.

:class:`Loader` is the resumable form: epoch ``e`` is ordered by
``np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(e,))).permutation(n)``
(the ``e``-th child of ``SeedSequence(seed)``), so its whole state is three
integers (``seed``, ``epoch``, ``position``): :meth:`Loader.state` returns them
and :meth:`Loader.set_state` resumes mid-epoch with the same order.

Speed: the samples of an epoch are gathered with one ``np.take`` per chunk of
at most :data:`CHUNK_BYTES` (whole batches), and each batch is a read-only,
C-contiguous slice of that chunk, so per-step overhead is a slice, not a copy.
Without shuffling, batches are read-only views of the data themselves.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from typing import Any

import numpy as np

from descend.data.dataset import Dataset
from descend.errors import DataError

#: Upper bound on the bytes gathered at once when shuffling (whole batches; at least one batch).
CHUNK_BYTES = 64 * 2**20

_STATE_KEYS = ("seed", "epoch", "position", "num_samples", "batch_size", "shuffle", "drop_last")


def batches(
    data: Any,
    batch_size: int | None = None,
    *,
    shuffle: bool = True,
    rng: np.random.Generator | int | None = None,
    drop_last: bool = False,
) -> Iterator[Any]:
    """One epoch of batches of ``data`` (a :class:`Dataset`, an ``(x, y, ...)`` tuple of arrays, or one array).

    Yields ``(x_batch, y_batch)`` for a Dataset, a tuple of the same length for a
    tuple, an array for an array. ``shuffle=True`` needs ``rng`` (a
    ``np.random.Generator`` or an int seed): pass the *same* Generator every
    epoch to get a new order each epoch, or use :class:`Loader`.
    """
    arrays, single = _as_arrays(data, "batches")
    n = arrays[0].shape[0]
    size = _check_batch_size(batch_size, n, drop_last, "batches")
    _check_bool("batches", "shuffle", shuffle)
    order = None
    if shuffle and batch_size is not None:
        if rng is None:
            raise DataError(
                "batches: shuffle=True needs rng (a np.random.Generator or an int seed); pass the same Generator "
                "every epoch for a new order each epoch, or use descend.data.Loader"
            )
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(_check_seed(rng, "batches"))
        order = gen.permutation(n)
    count = _num_batches(n, size, drop_last)
    for batch in _iterate(arrays, order, size, 0, count):
        yield batch[0] if single else batch


class Loader:
    """Re-iterable, seeded, resumable batch loader; each ``for`` loop over it is one epoch.

    >>> loader = Loader(train, batch_size=32, seed=0)   # doctest: +SKIP
    >>> for epoch in range(10):                         # doctest: +SKIP
    ...     for x, y in loader: ...

    ``len(loader)`` is the number of batches per epoch. Breaking out of a loop
    and iterating again continues the same epoch where it stopped (the batches
    already taken are not repeated). :meth:`state` after any batch, saved with
    the model, lets a new Loader over the same data continue with the very next
    batch via :meth:`set_state`.
    """

    def __init__(
        self,
        data: Any,
        batch_size: int | None = None,
        *,
        shuffle: bool = True,
        seed: int | np.random.Generator = 0,
        drop_last: bool = False,
    ):
        self._arrays, self._single = _as_arrays(data, "Loader")
        self._n = int(self._arrays[0].shape[0])
        self._full = batch_size is None
        self._size = _check_batch_size(batch_size, self._n, drop_last, "Loader")
        _check_bool("Loader", "shuffle", shuffle)
        self._shuffle = shuffle
        self._drop_last = drop_last
        if isinstance(seed, np.random.Generator):
            seed = int(seed.integers(0, 2**63))
        self._seed = _check_seed(seed, "Loader")
        self._count = _num_batches(self._n, self._size, drop_last)
        self._epoch = 0
        self._position = 0
        self._active: object | None = None

    @property
    def num_samples(self) -> int:
        return self._n

    @property
    def batch_size(self) -> int:
        """Samples per batch (the data set size for full-batch gradient descent)."""
        return self._size

    @property
    def epoch(self) -> int:
        """The epoch the next batch belongs to (0-based)."""
        return self._epoch

    @property
    def position(self) -> int:
        """Batches of the current epoch already yielded."""
        return self._position

    def __len__(self) -> int:
        return self._count

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of ``epoch`` (identity without shuffling and for full batches)."""
        if not self._shuffle or self._full:
            # A full batch is the whole data set: its order changes only the rounding of the gradient sum.
            return np.arange(self._n)
        seq = np.random.SeedSequence(self._seed, spawn_key=(int(epoch),))
        return np.random.default_rng(seq).permutation(self._n)

    def __iter__(self) -> Iterator[Any]:
        token = object()
        self._active = token
        epoch, start = self._epoch, self._position
        order = self.order(epoch) if self._shuffle and not self._full else None
        for i, batch in enumerate(_iterate(self._arrays, order, self._size, start, self._count), start=start):
            if self._active is not token:
                raise RuntimeError("Loader: another iteration over this loader started; use one at a time")
            # Advance before yielding: a checkpoint taken after this batch resumes with the next one.
            if i + 1 == self._count:
                self._epoch, self._position = epoch + 1, 0
            else:
                self._position = i + 1
            yield batch[0] if self._single else batch
        if self._active is token:
            self._active = None

    def state(self) -> dict[str, int]:
        """JSON- and npz-safe state: ``seed``, ``epoch``, ``position`` and the settings it is valid for."""
        return {
            "seed": self._seed,
            "epoch": self._epoch,
            "position": self._position,
            "num_samples": self._n,
            "batch_size": 0 if self._full else self._size,  # 0: full batch
            "shuffle": int(self._shuffle),
            "drop_last": int(self._drop_last),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state` (values may be ints or 0-d integer arrays, e.g. loaded from ``.npz``)."""
        if not isinstance(state, dict):
            raise DataError(f"Loader.set_state: state must be a dict from Loader.state(), got {type(state).__name__}")
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise DataError(f"Loader.set_state: state lacks {', '.join(missing)}; it needs {', '.join(_STATE_KEYS)}")
        values = {}
        for key in _STATE_KEYS:
            v = state[key]
            if isinstance(v, np.ndarray) and v.shape == ():
                v = v.item()
            if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Integral) or int(v) < 0:
                raise DataError(f"Loader.set_state: {key} must be a non-negative integer, got {state[key]!r}")
            values[key] = int(v)
        mine = self.state()
        for key in ("num_samples", "batch_size", "shuffle", "drop_last"):
            if values[key] != mine[key]:
                raise DataError(
                    f"Loader.set_state: the state is for {key}={values[key]}, this loader has {key}={mine[key]}"
                )
        if values["position"] >= self._count:
            raise DataError(
                f"Loader.set_state: position must be in [0, {self._count}) (batches per epoch), "
                f"got {values['position']}"
            )
        self._seed = _check_seed(values["seed"], "Loader.set_state")
        self._epoch, self._position = values["epoch"], values["position"]
        self._active = None


# --------------------------------------------------------------------------------------------------------------------


def _iterate(arrays: tuple[np.ndarray, ...], order: np.ndarray | None, size: int, start: int, count: int):
    """Batches ``start .. count-1`` of one epoch as tuples of read-only C-contiguous arrays."""
    n = arrays[0].shape[0]
    if order is None:
        for b in range(start, count):
            yield tuple(_readonly(np.ascontiguousarray(a[b * size : min((b + 1) * size, n)])) for a in arrays)
        return
    row_bytes = max(1, sum(a[:1].nbytes for a in arrays))
    per_chunk = max(1, CHUNK_BYTES // (row_bytes * size))  # batches per gather
    for c in range(start, count, per_chunk):
        lo, hi = c * size, min(min(c + per_chunk, count) * size, n)
        idx = order[lo:hi]
        chunk = tuple(_readonly(np.take(a, idx, axis=0)) for a in arrays)
        for b in range(c, min(c + per_chunk, count)):
            s = slice(b * size - lo, min((b + 1) * size, n) - lo)
            yield tuple(part[s] for part in chunk)


def _readonly(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


def _as_arrays(data: Any, owner: str) -> tuple[tuple[np.ndarray, ...], bool]:
    if isinstance(data, Dataset):
        return (data.x, data.y), False
    if isinstance(data, np.ndarray):
        arrays, single = (data,), True
    elif isinstance(data, tuple | list) and data:
        arrays, single = tuple(np.asarray(a) for a in data), False
    else:
        raise DataError(
            f"{owner}: data must be a descend.data.Dataset, a tuple of arrays (x, y, ...) or an array, "
            f"got {type(data).__name__}"
        )
    if any(a.ndim == 0 for a in arrays):
        raise DataError(f"{owner}: every array needs a leading sample axis, got a 0-d array")
    lengths = [a.shape[0] for a in arrays]
    if len(set(lengths)) != 1:
        raise DataError(f"{owner}: all arrays must have the same number of samples, got lengths {lengths}")
    if lengths[0] == 0:
        raise DataError(f"{owner}: the data have no samples")
    return arrays, single


def _check_bool(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise DataError(f"{owner}: {name} must be a bool, got {value!r}")


def _check_batch_size(batch_size: Any, n: int, drop_last: Any, owner: str) -> int:
    _check_bool(owner, "drop_last", drop_last)
    if batch_size is None:
        return n
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise DataError(
            f"{owner}: batch_size must be None (full batch), 1 (stochastic) or an integer k >= 1 (mini-batch), "
            f"got {batch_size!r}"
        )
    if drop_last and batch_size > n:
        raise DataError(
            f"{owner}: batch_size={batch_size} with drop_last=True leaves no batch for {n} samples; "
            "lower batch_size or set drop_last=False"
        )
    return int(batch_size)


def _num_batches(n: int, size: int, drop_last: bool) -> int:
    return n // size if drop_last else -(-n // size)


def _check_seed(seed: Any, owner: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise DataError(f"{owner}: seed must be an integer in [0, 2**63) or a np.random.Generator, got {seed!r}")
    return int(seed)
