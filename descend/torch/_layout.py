"""A descend state over a group's tensors <-> torch's per-parameter ``state[p]`` dicts.

A transformation's state for a parameter group is one tree (NamedTuples, a
``ChainState``, lists over the group's tensors). torch keeps one dict per
parameter instead. :func:`split` cuts a descend state into the values shared
by the group (``count``, ``lr``, ``mu_product``: Python scalars) and one dict
of tensors per parameter, keyed by the state path with the parameter's index
left out (``"1.exp_avg"``); :func:`join` puts them back together on a template
(``tx.init`` of the group, made on the ``meta`` device so that it allocates
nothing) and checks every tensor's presence and shape.

A *layout* turns that split into what is stored in ``optimizer.state[p]``:

* :class:`TorchLayout`, one per optimizer that torch also has (the ``LAYOUTS``
  table), uses torch's own keys (``{"step", "exp_avg", "exp_avg_sq"}``), so a
  ``torch.optim.Adam`` state dict loads into ``descend.torch.Adam`` and back;
* :class:`DescendLayout`, for everything else, stores the paths themselves plus
  ``"descend_layout": 1`` (the version), the shared scalars repeated in every
  parameter's dict as torch repeats ``step``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from descend.errors import StructureError
from descend.optim.base import ChainState

LAYOUT_KEY = "descend_layout"
LAYOUT_VERSION = 1

Shared = dict[str, Any]  # path -> a Python scalar (or None) shared by the group
PerParam = dict[str, torch.Tensor]  # path (without the parameter's index) -> that parameter's tensor


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _join_path(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _param_indexed(node: Any, n: int) -> bool:
    """A container with one entry per parameter: a list of n tensors, or the pruned ``{index: tensor}`` of masked."""
    if isinstance(node, ChainState) or _is_namedtuple(node):
        return False
    if isinstance(node, (list, tuple)):
        return len(node) == n and all(v is None or isinstance(v, torch.Tensor) for v in node)
    if isinstance(node, dict):
        return all(type(k) is int and 0 <= k < n for k in node) and all(
            v is None or isinstance(v, torch.Tensor) for v in node.values()
        )
    return False


def _children(node: Any) -> list[tuple[str, Any]] | None:
    if _is_namedtuple(node):
        return list(zip(node._fields, node, strict=True))
    if isinstance(node, dict):
        return [(str(k), v) for k, v in node.items()]
    if isinstance(node, (list, tuple)):
        return [(str(i), v) for i, v in enumerate(node)]
    return None


def split(state: Any, n: int) -> tuple[Shared, list[PerParam]]:
    """``state`` over n tensors as (shared scalars, one dict of tensors per parameter)."""
    shared: Shared = {}
    per_param: list[PerParam] = [{} for _ in range(n)]

    def walk(node: Any, path: str) -> None:
        if _param_indexed(node, n):
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for i, value in items:
                if value is not None:
                    per_param[i][path] = value
            return
        children = _children(node)
        if children is None:
            shared[path] = node
            return
        for key, child in children:
            walk(child, _join_path(path, key))

    walk(state, "")
    return shared, per_param


def join(template: Any, shared: Shared, per_param: list[PerParam], where: str) -> Any:
    """Inverse of :func:`split` on ``template`` (``tx.init`` of the same tensors); missing scalars keep its values."""
    n = len(per_param)

    def tensor(i: int, path: str, like: Any) -> Any:
        if like is None:
            return None
        value = per_param[i].get(path)
        if value is None:
            raise StructureError(f"{where}: the state of parameter {i} has no {path!r}")
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(like.shape):
            got = f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
            raise StructureError(
                f"{where}: the state {path!r} of parameter {i} must be a tensor of shape {tuple(like.shape)}, got {got}"
            )
        return value

    def build(node: Any, path: str) -> Any:
        if _param_indexed(node, n):
            if isinstance(node, dict):
                return {i: tensor(i, path, like) for i, like in node.items()}
            values = [tensor(i, path, like) for i, like in enumerate(node)]
            return values if isinstance(node, list) else type(node)(values)
        if _is_namedtuple(node):
            return type(node)(*(build(child, _join_path(path, f)) for f, child in zip(node._fields, node, strict=True)))
        if isinstance(node, dict):
            return {k: build(v, _join_path(path, k)) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            values = [build(v, _join_path(path, i)) for i, v in enumerate(node)]
            return values if isinstance(node, list) else type(node)(values)
        return shared.get(path, node)

    return build(template, "")


def scalar_dtype() -> torch.dtype:
    """torch's dtype for ``step`` and the other scalar state (``torch.optim.optimizer._get_scalar_dtype``)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _field(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _count(shared: Shared) -> int | None:
    counts = [v for p, v in shared.items() if _field(p) == "count" and isinstance(v, int)]
    return max(counts) if counts else None


class Context(NamedTuple):
    """What a layout may need besides the state: the group's hyperparameters and the parameter."""

    group: dict[str, Any]
    param: torch.Tensor
    where: str  # "descend.torch.Adam" for error messages


class TorchLayout(NamedTuple):
    """torch's per-parameter keys for one optimizer, mapped onto descend's state fields.

    ``tensors``: torch key -> descend field holding that tensor. ``scalars``:
    torch key -> descend scalar field kept by torch as a 0-d tensor. ``step``:
    torch's ``"step"`` is every ``count`` field. ``derived``: entries torch
    keeps that descend recomputes (ASGD's ``eta`` and ``mu``): written, not
    read. ``eager``: torch creates the state when the optimizer is built
    (Adagrad), not at the first step.
    """

    tensors: dict[str, str]
    scalars: dict[str, str] = {}  # noqa: RUF012 (a NamedTuple default, never mutated)
    derived: Callable[[Context, int], dict[str, torch.Tensor]] | None = None
    eager: bool = False

    def encode(self, shared: Shared, mine: PerParam, ctx: Context) -> dict[str, Any]:
        out: dict[str, Any] = {}
        count = _count(shared)
        if count is not None:
            out["step"] = torch.tensor(float(count), dtype=scalar_dtype())
        by_field = {_field(p): v for p, v in mine.items()}
        for key, field in self.tensors.items():
            if field in by_field:
                out[key] = by_field[field]
        shared_by_field = {_field(p): v for p, v in shared.items()}
        for key, field in self.scalars.items():
            out[key] = torch.tensor(float(shared_by_field[field]), dtype=torch.float64)
        if self.derived is not None and count is not None:
            out.update(self.derived(ctx, count))
        return out

    def decode(self, stored: dict[str, Any], template_shared: Shared, template_mine: PerParam, ctx: Context, i: int):
        if not isinstance(stored, dict):
            raise StructureError(f"{ctx.where}: the state of parameter {i} must be a dict, got {type(stored).__name__}")
        by_field = {_field(p): p for p in template_mine}
        shared_paths = {_field(p): p for p in template_shared}
        needed = [key for key, field in self.tensors.items() if field in by_field]
        needed += [key for key, field in self.scalars.items() if field in shared_paths]
        missing = [key for key in needed if key not in stored]
        if missing:
            raise StructureError(
                f"{ctx.where}: the state of parameter {i} needs the keys {needed} (torch's layout), "
                f"missing {missing}, got {sorted(map(str, stored))}"
            )
        mine = {by_field[field]: stored[key] for key, field in self.tensors.items() if field in by_field}
        shared: Shared = {}
        step = stored.get("step")
        # torch's SGD keeps no step: a momentum buffer means at least one step was taken
        count = int(_as_float(step, "step", ctx, i)) if step is not None else int(bool(mine))
        for path in template_shared:
            if _field(path) == "count":
                shared[path] = count
        for key, field in self.scalars.items():
            if field in shared_paths:
                shared[shared_paths[field]] = _as_float(stored[key], key, ctx, i)
        return shared, mine


def _as_float(value: Any, key: str, ctx: Context, i: int) -> float:
    if (isinstance(value, torch.Tensor) and value.numel() == 1) or isinstance(value, (int, float)):
        return float(value)
    raise StructureError(f"{ctx.where}: the state {key!r} of parameter {i} must be a number, got {value!r}")


class DescendLayout(NamedTuple):
    """descend's own per-parameter layout (version ``LAYOUT_VERSION``): state paths as keys, dtypes kept."""

    eager: bool = False

    def encode(self, shared: Shared, mine: PerParam, ctx: Context) -> dict[str, Any]:
        return {LAYOUT_KEY: LAYOUT_VERSION, **shared, **mine}

    def decode(self, stored: dict[str, Any], template_shared: Shared, template_mine: PerParam, ctx: Context, i: int):
        version = stored.get(LAYOUT_KEY) if isinstance(stored, dict) else None
        if version != LAYOUT_VERSION:
            keys = sorted(map(str, stored)) if isinstance(stored, dict) else type(stored).__name__
            raise StructureError(
                f"{ctx.where}: the state of parameter {i} is not in descend's layout version {LAYOUT_VERSION} "
                f"(a dict with {LAYOUT_KEY!r}: {LAYOUT_VERSION}), got {LAYOUT_KEY!r}: {version!r} and keys {keys}"
            )
        shared = {p: stored[p] for p in template_shared if p in stored}
        mine = {p: stored[p] for p in template_mine if p in stored}
        return shared, mine


def _asgd_derived(ctx: Context, count: int) -> dict[str, torch.Tensor]:
    """torch's ASGD ``eta`` and ``mu`` after ``count`` steps, as torch computes them (Python floats, default dtype)."""
    g = ctx.group
    lr = g["lr"](count) if callable(g["lr"]) else float(g["lr"])
    lambd, alpha, t0 = float(g["lambd"]), float(g["alpha"]), float(g["t0"])
    eta = torch.as_tensor(lr / ((1 + lambd * lr * count) ** alpha)).to(dtype=scalar_dtype(), device=ctx.param.device)
    mu = torch.as_tensor(1 / max(1, count - t0)).to(dtype=scalar_dtype(), device=ctx.param.device)
    return {"eta": eta, "mu": mu}


_ADAM = {"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq", "max_exp_avg_sq": "max_exp_avg_sq"}

# descend factory -> torch's per-parameter state, for every optimizer torch also has.
LAYOUTS: dict[str, TorchLayout] = {
    "sgd": TorchLayout({"momentum_buffer": "momentum_buffer"}),
    "adam": TorchLayout(_ADAM),
    "adamw": TorchLayout(_ADAM),
    "adagrad": TorchLayout({"sum": "sum_of_squares"}, eager=True),
    "rmsprop": TorchLayout({"square_avg": "square_avg", "momentum_buffer": "momentum_buffer", "grad_avg": "grad_avg"}),
    "adadelta": TorchLayout({"square_avg": "square_avg", "acc_delta": "acc_delta"}),
    "adamax": TorchLayout({"exp_avg": "exp_avg", "exp_inf": "exp_inf"}),
    "nadam": TorchLayout({"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"}, scalars={"mu_product": "mu_product"}),
    "radam": TorchLayout({"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"}),
    "asgd": TorchLayout({"ax": "ax"}, derived=_asgd_derived),
    "rprop": TorchLayout({"prev": "prev", "step_size": "step_size"}),
    "adafactor": TorchLayout({"row_var": "row_var", "col_var": "col_var", "variance": "variance"}),
}

DESCEND_LAYOUT = DescendLayout()

__all__ = ["DESCEND_LAYOUT", "LAYOUTS", "LAYOUT_KEY", "LAYOUT_VERSION", "DescendLayout", "TorchLayout", "join", "split"]
