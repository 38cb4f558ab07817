"""Drop-in ``torch.optim`` classes for every named optimizer of :mod:`descend.optim.registry`.

``descend.torch.Adam(model.parameters(), lr=1e-3)`` takes exactly
``descend.optim.adam``'s arguments, which are ``torch.optim.Adam``'s keyword
names and defaults (plus descend's own, such as ``bias_correction``), and each
parameter group's hyperparameters build that group's ``descend.optim.adam``
chain. torch's implementation switches are keyword-only here: ``foreach`` and
``fused`` are accepted and change nothing, ``capturable=True`` and
``differentiable=True`` are refused.

The classes are made by :func:`_make_class` for every factory of the optimizer
registry that builds a transformation (so an optimizer registered there gets its class), named by
``CLASS_NAMES`` (torch's spelling) or by capitalising the factory's name, with
torch's state layout from ``descend.torch._layout.LAYOUTS`` where torch has the
optimizer and descend's versioned layout otherwise.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch.optim.optimizer import required

from descend.optim import alias
from descend.torch._layout import DESCEND_LAYOUT, LAYOUTS
from descend.torch.optimizer import ACCEPTED_FLAGS, REFUSED_FLAGS, Optimizer

# descend factory -> class name, where torch's spelling is not the capitalised factory name.
CLASS_NAMES = {
    "sgd": "SGD",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
    "nadam": "NAdam",
    "radam": "RAdam",
    "asgd": "ASGD",
    "lamb": "LAMB",
    "lars": "LARS",
    "adopt": "ADOPT",
    "ademamix": "AdEMAMix",
    "soap": "SOAP",
    "schedule_free_sgd": "SGDScheduleFree",  # schedulefree's names
    "schedule_free_adamw": "AdamWScheduleFree",
    "lookahead_adam": "LookaheadAdam",
    "lookahead_sgd": "LookaheadSGD",
}


def factories() -> dict[str, Any]:
    """The factories of the optimizer registry (:mod:`descend.optim.registry`) that build a transformation.

    Closure optimizers (``lbfgs``, ``sam_sgd``) build none: ``Optimizer(params, tx)`` cannot drive them.
    """
    from descend import optim
    from descend.optim import registry

    out = {}
    for info in registry.REGISTRY.values():
        factory = getattr(optim, info.factory)
        if inspect.signature(factory).return_annotation in ("GradientTransformation", alias.GradientTransformation):
            out[info.factory] = factory
    return out


def class_name(factory_name: str) -> str:
    return CLASS_NAMES.get(factory_name, factory_name.capitalize())


def _torch_flags(name: str, own: inspect.Signature) -> dict[str, Any]:
    """torch's implementation switches of ``torch.optim.<name>`` (foreach, fused, ...) with torch's defaults."""
    torch_cls = getattr(torch.optim, name, None)
    if torch_cls is None:
        return {}
    flags = {}
    for key, p in inspect.signature(torch_cls).parameters.items():
        if key not in own.parameters and key in (*ACCEPTED_FLAGS, *REFUSED_FLAGS):
            flags[key] = p.default
    return flags


def _make_class(factory_name: str, factory: Any) -> type[Optimizer]:
    name = class_name(factory_name)
    own = inspect.signature(factory)
    flags = _torch_flags(name, own)
    P = inspect.Parameter
    parameters = [P("self", P.POSITIONAL_OR_KEYWORD), P("params", P.POSITIONAL_OR_KEYWORD)]
    for p in own.parameters.values():
        parameters.append(p.replace(default=required if p.default is P.empty else p.default, annotation=P.empty))
    parameters += [P(key, P.KEYWORD_ONLY, default=default) for key, default in flags.items()]
    signature = inspect.Signature(parameters)
    hyperparameters = tuple(own.parameters)

    def __init__(self: Optimizer, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        defaults = {k: v for k, v in bound.arguments.items() if k not in ("self", "params")}
        self._init(bound.arguments["params"], None, defaults)

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    torch_has = getattr(torch.optim, name, None) is not None
    doc = (
        f"``descend.optim.{factory_name}`` as a ``torch.optim.Optimizer``"
        + (f", a drop-in for ``torch.optim.{name}`` (same arguments, same state_dict layout)" if torch_has else "")
        + f".\n\n{inspect.getdoc(factory) or ''}"
    )
    return type(
        name,
        (Optimizer,),
        {
            "__init__": __init__,
            "__doc__": doc,
            "__module__": "descend.torch",
            "__qualname__": name,
            "factory": staticmethod(factory),
            "factory_name": factory_name,
            "hyperparameters": hyperparameters,
            "layout": LAYOUTS.get(factory_name, DESCEND_LAYOUT),
        },
    )


CLASSES: dict[str, type[Optimizer]] = {class_name(n): _make_class(n, f) for n, f in factories().items()}

__all__ = ["CLASSES", "CLASS_NAMES", "class_name", "factories"]
