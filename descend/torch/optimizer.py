"""``descend.torch.Optimizer``: a ``torch.optim.Optimizer`` that steps with a descend transformation.

Each parameter group is stepped by one transformation (the optimizer's ``tx``,
a group's own ``"tx"``, or, for the drop-in classes of
:mod:`descend.torch.optimizers`, the named optimizer built from the group's
hyperparameters). The transformation runs on the group's tensors themselves,
through the Array API (see :mod:`descend.optim._backend`), so its state lives
on each parameter's device and in its dtype.

The state is kept where torch keeps it, in ``optimizer.state[p]`` (torch's own
keys for the optimizers torch has, descend's versioned layout for the rest; see
:mod:`descend.torch._layout`). Every step reads it into one descend state per
group, runs ``tx.update`` and writes the new state back, so ``state_dict()``,
``load_state_dict()``, ``ZeroRedundancyOptimizer`` (which writes
``optimizer.state`` directly) and code that reads ``optimizer.state[p]["exp_avg"]``
all see the same thing. :meth:`Optimizer._step_group` is the one place where
a group is updated; for ``Adam``, ``AdamW`` and ``SGD`` it first tries the fast
path of :mod:`descend.torch._fast`, which updates the same state in place.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import torch

from descend._validation import LEARNING_RATE, check
from descend.errors import ParameterError, StructureError
from descend.optim.base import GradientTransformation
from descend.optim.masking import IS_TRANSFORMATION
from descend.optim.state import find_fields, get_lr, set_lr_scale
from descend.torch import _fast
from descend.torch._layout import DESCEND_LAYOUT, LAYOUT_KEY, Context, DescendLayout, TorchLayout, join, split

Layout = TorchLayout | DescendLayout

# torch's implementation switches. foreach and fused are accepted and change nothing (descend picks its fast path,
# descend.torch._fast, by itself: the chain's numbers, to rounding on CUDA); capturable and differentiable are
# refused.
ACCEPTED_FLAGS = ("foreach", "fused")
REFUSED_FLAGS = ("capturable", "differentiable")


def _freeze(value: Any) -> Any:
    """A comparable stand-in for a hyperparameter value (tuples for lists, numbers for 1-element tensors)."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, torch.Tensor):
        return ("tensor", value.item()) if value.numel() == 1 else ("tensor", id(value))
    return value


def _bucket_key(shared: dict[str, Any]) -> tuple:
    return tuple(sorted((k, ("tensor", id(v)) if isinstance(v, torch.Tensor) else v) for k, v in shared.items()))


def _meta(params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Shape- and dtype-only stand-ins: ``tx.init`` on them gives the state's structure without allocating."""
    return [torch.empty_like(p, device="meta") for p in params]


def _group_lr(group: dict[str, Any]):
    """The learning rate as a descend schedule that reads ``group["lr"]`` when the step is taken.

    torch's LR schedulers write the group's ``lr``; a descend schedule given as
    ``lr`` is evaluated at the transformation's own step count.
    """

    def lr(count: int) -> float:
        value = group["lr"]
        return float(value(count)) if callable(value) else float(value)

    return lr


class _Built:
    """A group's transformation, rebuilt only when its hyperparameters change."""

    __slots__ = ("group", "key", "layout", "lr0", "templates", "tx")

    def __init__(self, group: dict[str, Any], key: tuple, tx: GradientTransformation, layout: Layout, lr0: Any):
        self.group, self.key, self.tx, self.layout, self.lr0 = group, key, tx, layout, lr0
        self.templates: dict[tuple, tuple[Any, dict, list]] = {}

    def template(self, params: list[torch.Tensor]) -> tuple[Any, dict, list]:
        """``tx.init`` of ``params`` made on the meta device, and its split (cached by the shapes and dtypes)."""
        key = tuple((tuple(p.shape), p.dtype) for p in params)
        found = self.templates.get(key)
        if found is None:
            if len(self.templates) >= 8:
                self.templates.clear()
            state = self.tx.init(_meta(params))
            found = self.templates[key] = (state, *split(state, len(params)))
        return found


class Optimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` driven by any descend transformation.

    ``params`` is what torch takes: an iterable of tensors, of ``(name,
    tensor)`` pairs, or of parameter-group dicts; a group may carry its own
    ``"tx"``. ``tx`` (a named optimizer such as ``descend.optim.adamw(1e-3)`` or
    any ``chain``) steps every group that has none.

    The learning rate follows ``param_groups[i]["lr"]``: a group starts with
    the transformation's own learning rate η₀ (``descend.optim.get_lr`` of its
    fresh state) and a changed ``lr`` (by a ``torch.optim.lr_scheduler``, by
    hand) multiplies the transformation's learning rate, schedule included,
    by ``lr / η₀`` through its ``lr_scale``. The state is stored in descend's
    versioned per-parameter layout; the drop-in classes (``descend.torch.Adam``
    ...) use torch's layout where torch has the optimizer.
    """

    factory: Any = None  # drop-in classes: the descend factory built from each group's hyperparameters
    factory_name: str = ""
    layout: Layout = DESCEND_LAYOUT

    def __init__(self, params: Iterable[Any], tx: GradientTransformation | None = None) -> None:
        if tx is not None:
            check(f"descend.torch.{type(self).__name__}", "tx", tx, IS_TRANSFORMATION)
        self._init(params, tx, {})

    def _init(self, params: Iterable[Any], tx: GradientTransformation | None, defaults: dict[str, Any]) -> None:
        self._tx = tx
        self._built: dict[int, _Built] = {}
        super().__init__(params, defaults)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_tx"] = self._tx
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_tx", None)
        self._built = {}  # built chains read their group's lr: never carried over to other group dicts

    @property
    def _owner(self) -> str:
        return f"descend.torch.{type(self).__name__}"

    # ------------------------------------------------------------------ groups

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's ``add_param_group``, then the group's transformation is built (its hyperparameters checked)."""
        user_lr = isinstance(param_group, dict) and "lr" in param_group
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            built = self._build(len(self.param_groups) - 1, group)
            if built.lr0 is not None and not user_lr:
                group["lr"] = built.lr0  # a group with its own transformation starts at its learning rate
        except BaseException:
            self.param_groups.pop()  # nothing half-added stays behind
            raise
        if built.layout.eager:  # torch creates this optimizer's state with the optimizer (Adagrad)
            params = group["params"]
            self._store(len(self.param_groups) - 1, group, built.layout, params, built.tx.init(params))

    def _uses_own_tx(self, group: dict[str, Any]) -> bool:
        return group.get("tx") is not None or self.factory is None

    def _build(self, index: int, group: dict[str, Any]) -> _Built:
        """The transformation of ``group`` (cached while its hyperparameters stay the same)."""
        own = self._uses_own_tx(group)
        if own:
            tx = group.get("tx", self._tx)
            if tx is None:
                raise ParameterError(
                    f"{self._owner}: parameter group {index} has no 'tx' and the optimizer has no default tx"
                )
            key: tuple = ("tx", tx)
        else:
            names = self._hyperparameters()
            # the chain reads the group's lr at each step (_group_lr): only the other hyperparameters rebuild it
            key = ("factory", *(_freeze(group.get(k)) for k in (*names, *REFUSED_FLAGS) if k != "lr"))
        cached = self._built.get(id(group))
        if cached is not None and cached.group is group and cached.key == key:
            return cached
        if own:
            check(self._owner, f"param_groups[{index}]['tx']", tx, IS_TRANSFORMATION)
            lr0 = get_lr(tx.init(_meta(group["params"])))
            built = _Built(group, key, tx, DESCEND_LAYOUT, lr0)
        else:
            for flag in REFUSED_FLAGS:
                if group.get(flag):
                    raise ParameterError(
                        f"{self._owner}: {flag}=True is not supported (descend steps each group in Python with "
                        f"its transformation), got {flag}={group[flag]!r}"
                    )
            check(self.factory_name, "lr", group["lr"], LEARNING_RATE)
            kwargs = {k: group[k] for k in names}
            kwargs["lr"] = _group_lr(group)
            built = _Built(group, key, self.factory(**kwargs), self.layout, None)
        self._built[id(group)] = built
        return built

    def _hyperparameters(self) -> list[str]:
        return list(type(self).hyperparameters)  # type: ignore[attr-defined]

    # -------------------------------------------------------------------- step

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """One step of every group's transformation on the parameters that have a gradient (as torch)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for index, group in enumerate(self.param_groups):
            if "torch.distributed.tensor" in sys.modules:  # DTensor parameters (FSDP2): descend.torch.distributed
                from descend.torch import distributed

                if distributed.is_sharded(group):
                    distributed.step_group(self, index, group)
                    continue
            self._step_group(index, group)
        return loss

    def _step_group(self, index: int, group: dict[str, Any]) -> None:
        """Read the group's state, run its transformation, add the updates to the parameters, write the state."""
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        for p in params:
            if p.grad.is_sparse:
                raise ParameterError(f"{self._owner}: descend's transformations need dense gradients, got a sparse one")
        built = self._build(index, group)
        if _fast.step_group(self, group, params):  # Adam, AdamW, SGD: in place, one pass per tensor
            return
        stored = [self.state.get(p) or None for p in params]
        for members, state in self._states(index, group, built, params, stored):
            bucket = [params[i] for i in members]
            if state is None:
                state = built.tx.init(bucket)
            state = self._apply_group_lr(group, built, state)
            updates, state = built.tx.update([p.grad for p in bucket], state, bucket)
            for p, u in zip(bucket, updates, strict=True):
                p.add_(u)
            self._store(index, group, built.layout, bucket, state)

    def _apply_group_lr(self, group: dict[str, Any], built: _Built, state: Any) -> Any:
        """A group with its own transformation: ``lr_scale = group lr / η₀`` (the drop-ins read the lr directly)."""
        if built.lr0 is None or "lr" not in group:
            return state
        lr = group["lr"]
        if lr == built.lr0:
            scale = 1.0
        elif built.lr0 == 0:
            raise ParameterError(
                f"{self._owner}: this group's transformation has learning rate 0, which param_groups' lr can not "
                f"scale; got lr={lr!r}"
            )
        else:
            scale = float(lr) / built.lr0
        if not find_fields(state, "lr_scale"):
            if scale == 1.0:
                return state
            raise ParameterError(
                f"{self._owner}: the group's lr changed to {lr!r} but its transformation has no lr_scale to follow it"
            )
        return set_lr_scale(state, scale)

    def _states(
        self, index: int, group: dict[str, Any], built: _Built, params: list[torch.Tensor], stored: list[Any]
    ) -> list[tuple[list[int], Any]]:
        """The group's descend states: one per set of parameters at the same step (``None``: not started yet).

        torch counts steps per parameter; a parameter that first gets a gradient
        late starts its own count. Parameters whose shared scalars (``count``,
        ...) agree are stepped together, normally all of them.
        """
        where = f"{self._owner}, param_groups[{index}]"
        positions = {id(p): i for i, p in enumerate(group["params"])}
        template, t_shared, t_per = built.template(params)
        fresh: list[int] = []
        buckets: dict[tuple, list[tuple[int, dict, dict]]] = {}
        for i, (p, s) in enumerate(zip(params, stored, strict=True)):
            if s is None:
                fresh.append(i)
                continue
            ctx = Context(group, p, where)
            shared, mine = built.layout.decode(s, t_shared, t_per[i], ctx, positions[id(p)])
            buckets.setdefault(_bucket_key(shared), []).append((i, shared, mine))
        out: list[tuple[list[int], Any]] = []
        for members in buckets.values():
            idx = [i for i, _, _ in members]
            tmpl = template if len(idx) == len(params) else built.template([params[i] for i in idx])[0]
            out.append((idx, join(tmpl, members[0][1], [mine for _, _, mine in members], where)))
        if fresh:
            out.append((fresh, None))
        return out

    def _store(self, index: int, group: dict[str, Any], layout: Layout, params: list[torch.Tensor], state: Any) -> None:
        where = f"{self._owner}, param_groups[{index}]"
        shared, per = split(state, len(params))
        for p, mine in zip(params, per, strict=True):
            self.state[p] = layout.encode(shared, mine, Context(group, p, where))

    # ------------------------------------------------------------- state dict

    def state_dict(self) -> dict[str, Any]:
        """torch's ``state_dict()`` (a group's own ``"tx"`` is left out: it is code, not state)."""
        out = super().state_dict()
        for group in out["param_groups"]:
            group.pop("tx", None)
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's ``load_state_dict()``, checked against this optimizer first (nothing is written if it does not fit).

        As in torch, tensors move to their parameter's device, and torch's layout
        casts them to the parameter's dtype; descend's own layout keeps the
        saved dtypes, and so do the scalars descend keeps in double precision
        (NAdam's ``mu_product``). Groups keep their own ``"tx"``; hyperparameters the saved
        groups lack (torch's dicts have no ``bias_correction``) take the defaults.
        """
        pairs = self._check_state_dict(state_dict)
        old_groups = self.param_groups
        super().load_state_dict(state_dict)
        for old, new in zip(old_groups, self.param_groups, strict=True):
            if "tx" in old:
                new["tx"] = old["tx"]
            for key, value in self.defaults.items():
                new.setdefault(key, value)
        for saved, param, layout in pairs:  # the saved dtypes where descend's layout or a scalar needs them
            if not isinstance(saved, dict):
                continue
            keep = saved.keys() if LAYOUT_KEY in saved else getattr(layout, "scalars", {}).keys() & saved.keys()
            for key in keep:
                value = saved[key]
                self.state[param][key] = value.to(device=param.device) if isinstance(value, torch.Tensor) else value
        self._built.clear()

    def _check_state_dict(self, state_dict: Any) -> list[tuple[Any, torch.Tensor, Layout]]:
        """Every check ``load_state_dict`` needs, before it writes; returns (saved state, parameter, layout)."""
        owner = f"{self._owner}.load_state_dict"
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            got = sorted(map(str, state_dict)) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise StructureError(f"{owner}: expected a dict with 'state' and 'param_groups', got {got}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise StructureError(
                f"{owner}: the saved state has {len(saved_groups)} parameter groups, this optimizer has "
                f"{len(self.param_groups)}"
            )
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups, strict=True)):
            if len(saved["params"]) != len(group["params"]):
                raise StructureError(
                    f"{owner}: parameter group {i} has {len(saved['params'])} parameters in the saved state and "
                    f"{len(group['params'])} here"
                )
        saved_state = state_dict["state"]
        pairs = []
        for index, (saved, group) in enumerate(zip(saved_groups, self.param_groups, strict=True)):
            merged = {**self.defaults, **saved, "params": group["params"]}
            if "tx" in group:
                merged["tx"] = group["tx"]
            built = self._build(index, merged)
            self._built.pop(id(merged), None)
            params, stored = [], []
            for saved_id, p in zip(saved["params"], group["params"], strict=True):
                s = saved_state.get(saved_id)
                if s:
                    params.append(p)
                    stored.append(s)
                pairs.append((s, p, built.layout))
            if params:
                self._states(index, merged, built, params, stored)  # decodes and joins: raises on any mismatch
        return pairs


__all__ = ["Optimizer"]
