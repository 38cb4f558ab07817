"""When the layers use the numba kernels of :mod:`descend.nn._kernels`.

``ENABLED`` is true when numba is installed and ``DESCEND_FUSED`` is not ``"0"`` in the
environment (the switch that also turns off the fused optimizer kernels); set it to
``False`` to run the NumPy reference code in every layer. A kernel is used only for
float32 / float64 arrays; anything else runs the NumPy code, which gives the same values.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Any

import numpy as np

ENABLED: bool = os.environ.get("DESCEND_FUSED", "1") != "0" and importlib.util.find_spec("numba") is not None

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_module: Any = None


def kernels(dtype: Any) -> Any:
    """The kernel module if the fast path is on and ``dtype`` is float32 / float64, else ``None``."""
    global _module, ENABLED
    if not ENABLED or np.dtype(dtype) not in _FLOATS:
        return None
    if _module is None:
        try:
            _module = importlib.import_module("descend.nn._kernels")
        except ImportError:  # numba missing or broken: the NumPy code is always correct
            ENABLED = False
            return None
    return _module
