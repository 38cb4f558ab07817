"""descend: optimizing neural networks, from the seed formulas to real training.

>>> import descend as dc
>>> tx = dc.optim.adam(lr=1e-3)
"""

from descend import config, data, diagnostics, errors, init, nn, optim, schedules, train
from descend.errors import DescendError
from descend.train import Trainer

__version__ = "0.2.0"

__all__ = [
    "DescendError",
    "Trainer",
    "__version__",
    "config",
    "data",
    "diagnostics",
    "errors",
    "init",
    "nn",
    "optim",
    "schedules",
    "train",
]
