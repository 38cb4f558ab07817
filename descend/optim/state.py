"""Reading, editing and saving optimizer state.

State is a tree of NamedTuples, tuples, dicts, lists, arrays and Python
scalars. :func:`state_to_dict` flattens it into ``{path: ndarray}`` (ready for
``np.savez`` or safetensors, no pickle); :func:`state_from_dict` rebuilds it from
that dict and a template (``tx.init(params)``), checking every key, shape and
dtype. The state of a transformation run on torch tensors flattens to copies of
its tensors (same device and dtype) next to 0-d ndarrays for its scalars.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from descend.errors import StructureError
from descend.optim._backend import copy, is_array, namespace

State = Any


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _items(x: Any) -> list[tuple[str, Any]] | None:
    if _is_namedtuple(x):
        return list(zip(x._fields, x, strict=True))
    if isinstance(x, dict):
        return [(str(k), v) for k, v in x.items()]
    if isinstance(x, (list, tuple)):
        return [(str(i), v) for i, v in enumerate(x)]
    return None


def state_to_dict(state: State, prefix: str = "") -> dict[str, np.ndarray]:
    """Flatten ``state`` into ``{"0.mu.weight": array, ...}``; scalars become 0-d arrays."""
    out: dict[str, np.ndarray] = {}
    items = _items(state)
    if items is None:
        if state is None:
            return out
        # a copy, so later in-place steps cannot alter a checkpoint; a tensor stays a tensor (device, dtype)
        out[prefix] = np.array(state) if not is_array(state) or isinstance(state, np.ndarray) else copy(state)
        return out
    for key, child in items:
        out.update(state_to_dict(child, f"{prefix}.{key}" if prefix else key))
    return out


def state_from_dict(template: State, flat: dict[str, np.ndarray]) -> State:
    """Rebuild a state shaped like ``template`` from :func:`state_to_dict` output."""
    expected = state_to_dict(template)
    missing = sorted(set(expected) - set(flat))
    extra = sorted(set(flat) - set(expected))
    if missing or extra:
        raise StructureError(
            f"state_from_dict: the saved state does not match this optimizer: "
            f"missing keys {missing[:5]}, unexpected keys {extra[:5]}"
        )
    for key, ref in expected.items():
        got = _as_array(flat[key])
        if tuple(got.shape) != tuple(ref.shape):
            raise StructureError(f"state_from_dict: {key} has shape {tuple(got.shape)}, expected {tuple(ref.shape)}")
        if got.dtype != ref.dtype:
            raise StructureError(f"state_from_dict: {key} has dtype {got.dtype}, expected {ref.dtype}")
    return _rebuild(template, flat, "")


def _rebuild(template: Any, flat: dict[str, np.ndarray], prefix: str) -> Any:
    items = _items(template)
    if items is None:
        if template is None:
            return None
        value = _as_array(flat[prefix])
        if isinstance(template, np.ndarray):
            return value.copy()
        if is_array(template):  # a tensor: a copy on the template's device
            return namespace(template).asarray(value, device=template.device, copy=True)
        if isinstance(template, bool):
            return bool(value)
        if isinstance(template, int):
            return int(value)
        if isinstance(template, float):
            return float(value)
        return type(template)(value)
    children = [_rebuild(child, flat, f"{prefix}.{key}" if prefix else key) for key, child in items]
    if _is_namedtuple(template):
        return type(template)(*children)
    if isinstance(template, dict):
        return dict(zip(template.keys(), children, strict=True))
    if isinstance(template, tuple):
        return type(template)(children)
    return children


def _as_array(value: Any) -> Any:
    """An ndarray or tensor as it is, anything else through ``np.asarray``."""
    return value if is_array(value) else np.asarray(value)


def find_fields(state: State, field: str) -> list[Any]:
    """All values of NamedTuple fields called ``field``, depth first."""
    found: list[Any] = []
    if _is_namedtuple(state) and field in state._fields:
        found.append(getattr(state, field))
    items = _items(state)
    if items is not None:
        for _, child in items:
            found.extend(find_fields(child, field))
    return found


def replace_fields(state: State, field: str, value: Any) -> State:
    """Return ``state`` with every NamedTuple field called ``field`` set to ``value``."""
    if _is_namedtuple(state):
        children = {k: replace_fields(v, field, value) for k, v in zip(state._fields, state, strict=True)}
        if field in children:
            children[field] = value
        return type(state)(**children)
    if isinstance(state, dict):
        return {k: replace_fields(v, field, value) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        out = [replace_fields(v, field, value) for v in state]
        return type(state)(out) if isinstance(state, tuple) else out
    return state


def get_lr(state: State) -> float | None:
    """The learning rate used by the last update (the first ``lr`` field found)."""
    found = find_fields(state, "lr")
    return float(found[0]) if found else None


def get_step(state: State) -> int | None:
    """The number of updates done (the largest ``count`` field found)."""
    found = find_fields(state, "count")
    return int(max(found)) if found else None


def set_lr_scale(state: State, scale: float) -> State:
    """Multiply every learning rate in ``state`` by ``scale`` from the next update on."""
    if not find_fields(state, "lr_scale"):
        raise StructureError("set_lr_scale: this optimizer state has no learning rate to scale")
    return replace_fields(state, "lr_scale", float(scale))
