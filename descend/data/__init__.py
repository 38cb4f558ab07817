"""Data for training: built-in data sets, your own arrays or CSV, and batch loaders.

>>> from descend import data
>>> splits = data.load("mnist1d")                 # doctest: +SKIP
>>> train, val = data.train_validation_split(splits.train, 0.1, rng=0)  # doctest: +SKIP
>>> for x, y in data.Loader(train, batch_size=32, seed=0): ...         # doctest: +SKIP

``batch_size=None`` gives full-batch gradient descent, ``1`` stochastic gradient
descent and ``k`` mini-batch gradient descent.
"""

from descend.data.dataset import (
    MAX_CLASSES,
    Dataset,
    Normalization,
    Splits,
    Standardization,
    from_arrays,
    standardize,
    train_validation_split,
)
from descend.data.download import cache_dir
from descend.data.idx import parse_idx, read_idx, write_idx
from descend.data.loader import Loader, batches
from descend.data.mnist1d import load_mnist1d, make_mnist1d
from descend.data.registry import DATASETS, available, load
from descend.data.tabular import from_csv
from descend.data.vision import load_fashion_mnist, load_mnist
from descend.errors import DataError

__all__ = [
    "DATASETS",
    "MAX_CLASSES",
    "DataError",
    "Dataset",
    "Loader",
    "Normalization",
    "Splits",
    "Standardization",
    "available",
    "batches",
    "cache_dir",
    "from_arrays",
    "from_csv",
    "load",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist1d",
    "make_mnist1d",
    "parse_idx",
    "read_idx",
    "standardize",
    "train_validation_split",
    "write_idx",
]
