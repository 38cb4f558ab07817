"""When the layers use the numba kernels of :mod:`descend.nn._kernels`.

They are used when ``descend.config.fast_kernels`` is true: by default when numba is installed and neither
``DESCEND_FAST_KERNELS`` nor ``DESCEND_FUSED`` (the switch that also turns off the fused optimizer kernels) is
``"0"`` in the environment; ``dc.config.using(fast_kernels=False)`` runs the NumPy reference code in every layer.
``ENABLED`` (this module's attribute) reads and writes that field. A kernel is used only for float32 / float64
arrays; anything else runs the NumPy code, which gives the same values.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from descend import config

config.module_switches(__name__, {"ENABLED": "fast_kernels"})

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_module: Any = None


def kernels(dtype: Any) -> Any:
    """The kernel module if the fast path is on and ``dtype`` is float32 / float64, else ``None``."""
    global _module
    if not config.state.fast_kernels or np.dtype(dtype) not in _FLOATS:
        return None
    if _module is None:
        try:
            _module = importlib.import_module("descend.nn._kernels")
        except ImportError:  # numba missing or broken: the NumPy code is always correct
            config.state.fast_kernels = False
            return None
    return _module
