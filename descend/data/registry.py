"""``load(name)``: the built-in data sets by name."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from descend.data.dataset import Splits
from descend.data.mnist1d import load_mnist1d
from descend.data.vision import load_fashion_mnist, load_mnist
from descend.errors import DataError

#: name -> loader; each loader's keyword arguments are documented on it.
DATASETS: dict[str, Callable[..., Splits]] = {
    "mnist1d": load_mnist1d,
    "fashion_mnist": load_fashion_mnist,
    "mnist": load_mnist,
}


def available() -> tuple[str, ...]:
    """Names accepted by :func:`load`."""
    return tuple(sorted(DATASETS))


def load(name: str, **kwargs: Any) -> Splits:
    """Load a built-in data set as ``Splits(train, test)``.

    ``"mnist1d"`` (generated locally, 4,000/1,000 signals of length 40),
    ``"fashion_mnist"`` and ``"mnist"`` (60,000/10,000 images, 28x28). Case, ``-``
    and ``_`` do not matter (``"Fashion-MNIST"`` works). Keyword arguments go to
    the data set's loader: e.g. ``flatten=True``, ``normalize=True``,
    ``data_dir=...``, ``download=False`` for the image sets, ``seed=...`` for MNIST-1D.
    """
    if not isinstance(name, str):
        raise DataError(f"load: name must be a string, one of {', '.join(available())}; got {name!r}")
    key = name.strip().lower().replace("-", "_")
    if key not in DATASETS:
        squashed = {k.replace("_", ""): k for k in DATASETS}
        key = squashed.get(key.replace("_", ""), key)
    if key not in DATASETS:
        close = difflib.get_close_matches(key, DATASETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(
            f"load: unknown data set {name!r}{hint}; valid names: {', '.join(available())} "
            "(for your own data use descend.data.from_arrays or from_csv)"
        )
    return DATASETS[key](**kwargs)
