"""descend on PyTorch: descend's optimizers as ``torch.optim.Optimizer`` classes.

>>> import torch, descend.torch
>>> model = torch.nn.Linear(4, 2)
>>> opt = descend.torch.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
>>> model(torch.randn(8, 4)).square().mean().backward()
>>> opt.step()

* :class:`Optimizer` ``(params, tx)`` drives any descend transformation (a
  named optimizer or any ``chain``); a parameter group may carry its own ``"tx"``.
* One drop-in class per named optimizer, with torch's names, keyword names and
  defaults: ``SGD``, ``Adam``, ``AdamW``, ``Adagrad``, ``RMSprop``,
  ``Adadelta``, ``Adamax``, ``NAdam``, ``RAdam``, ``ASGD``, ``Rprop``,
  ``Adafactor``, ``Lion`` and ``Momentum`` (the seed documents' heavy-ball
  forms, ``form="seed000"`` / ``"seed001"``). For the optimizers torch has,
  ``state_dict()`` is torch's layout and loads both ways.

This package imports torch; ``import descend`` does not. Install it with
``pip install 'descend[torch]'``. See docs/torch.md.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as error:  # pragma: no cover - torch is installed wherever the tests run
    raise ImportError("descend.torch needs PyTorch: pip install 'descend[torch]'") from error

from descend.torch._layout import LAYOUT_KEY as LAYOUT_KEY
from descend.torch._layout import LAYOUT_VERSION as LAYOUT_VERSION
from descend.torch.optimizer import Optimizer as Optimizer
from descend.torch.optimizers import CLASSES

globals().update(CLASSES)  # SGD, Adam, ..., one class per named optimizer of descend.optim.alias

__all__ = sorted(["LAYOUT_KEY", "LAYOUT_VERSION", "Optimizer", *CLASSES])
