"""The configuration's ``backend`` and ``device`` keys, checked before a run writes anything.

``backend = "numpy"`` (the default) trains with :mod:`descend.nn` and :mod:`descend.optim` on the CPU;
``"torch"`` trains the same presets with ``torch.nn`` and :mod:`descend.torch`
(:mod:`descend.torch.training`) on ``device``: ``"cpu"`` (the default), ``"cuda"`` or ``"cuda:N"``.
This module imports torch only to check a torch configuration, so ``import descend`` stays torch-free.
"""

from __future__ import annotations

import re
from typing import Any

from descend.errors import ParameterError

BACKENDS = ("numpy", "torch")
#: The install command that brings PyTorch (the ``torch`` extra pins the tested version).
INSTALL_TORCH = "pip install 'descend[torch]'"
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def validate(cfg: dict[str, Any]) -> None:
    """Raise :class:`ParameterError` for a bad ``backend`` / ``device``, a torch backend without torch
    installed, or a CUDA device this machine does not have."""
    backend, device = cfg["backend"], cfg["device"]
    if backend not in BACKENDS:
        raise ParameterError(f"config: unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ParameterError(f"config: device must be cpu, cuda or cuda:N (N a GPU index), got {device!r}")
    if backend == "numpy":
        if device != "cpu":
            raise ParameterError(
                f"config: device {device!r} needs backend 'torch' (the numpy backend runs on the CPU); "
                f"give --backend torch, or device 'cpu'"
            )
        return
    try:
        import torch
    except ImportError:
        raise ParameterError(
            f"config: backend 'torch' needs PyTorch, which is not installed; install it with {INSTALL_TORCH}"
        ) from None
    _check_torch_optimizer(cfg["optimizer"])
    if device == "cpu":
        return
    if not torch.cuda.is_available():
        raise ParameterError(
            f"config: device {device!r} needs a CUDA GPU, but torch {torch.__version__} finds none on this machine "
            "(no GPU, no driver, or a CPU-only torch build); use device 'cpu'"
        )
    index = int(device.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise ParameterError(
            f"config: device {device!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
        )


def _check_torch_optimizer(name: str) -> None:
    """The configuration's optimizer must have a :mod:`descend.torch` class (closure optimizers have none)."""
    from descend.optim import registry
    from descend.torch.optimizers import CLASSES, class_name

    if name not in registry.names():
        return  # experiment.validate names the valid optimizers
    if class_name(registry.get(name).factory) not in CLASSES:
        usable = sorted(n for n in registry.names() if class_name(registry.get(n).factory) in CLASSES)
        raise ParameterError(
            f"config: optimizer {name!r} needs a closure (a line search or a second gradient per step), which "
            f"only the numpy backend's Trainer drives; use backend 'numpy', or with backend 'torch' one of "
            f"{', '.join(usable)}"
        )


__all__ = ["BACKENDS", "INSTALL_TORCH", "validate"]
