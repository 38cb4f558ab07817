"""Apply transformations to some leaves only: ``masked`` and ``partition``.

The typical use is weight decay on weights but not on biases (torch does this
with two parameter groups)::

    decay_mask = lambda p: {k: v.ndim > 1 for k, v in p.items()}
    tx = chain(scale_by_adam(), masked(add_decayed_weights(1e-2), decay_mask), scale_by_learning_rate(1e-3))

and different optimizers for different parts of a model (torch: two optimizers)::

    tx = partition({"adam": adam(lr=1e-3), "sgd": sgd(lr=0.1)}, {"W": "adam", "b": "sgd"})

**Selected sub-trees.** The inner transformation sees a *pruned* copy of the
updates and params that holds only the selected leaves: a dict keeps its
selected keys (in order), a list or tuple becomes a dict ``{index: leaf}`` of
its selected items (so paths keep their original indices), a container with no
selected leaf disappears, and nothing selected at all is the empty dict ``{}``.
The inner state is therefore built on the selected leaves only (no moments are
kept for leaves it never touches) and is an ordinary tree of dicts, so it
round-trips through :func:`descend.optim.state_to_dict` /
:func:`~descend.optim.state_from_dict`.

**Masks and labels** are a tree with the structure of the params, or a *prefix*
of it (a ``bool`` or label at an inner node applies to every leaf below it, as
in optax: ``{"encoder": False, "head": True}``), or a callable ``params ->
such a tree``. A callable is evaluated on the params (on the updates when
``update`` is called without params); it must select the same leaves at every
step. Masks select whole leaves, never single entries.

**Routing rules** (:class:`Rules`) are such a callable, written as data: an
ordered list of ``(selector, value)`` pairs, the first match wins, else
``default``. A selector picks parameters

* by name: a glob (``"0.*"``, ``"*.bias"``; a glob without a dot also matches
  the last part of the name, so ``"weight"`` is every weight), ``"re:REGEX"`` or
  a compiled ``re.Pattern`` (``fullmatch`` on the full name);
* by shape: ``"ndim<2"``, ``"ndim=1"``, ``"ndim>=2"`` (also ``<=``, ``>``, ``!=``);
* by role: ``"bias"`` (a parameter named ``bias``), ``"norm"`` (the scale and
  shift of a normalization layer), ``"embedding"`` (an embedding table),
  ``"head"`` (the output layer's parameters). Roles other than ``bias`` come
  from the model: ``roles=model`` (its ``param_roles()``).

Names are the tree's keys joined by dots: a model's ``named_parameters()``
gives torch's names (``"1.weight"``). ``descend train --no-decay bias,norm``,
the ``no_decay`` key of a configuration and :meth:`descend.nn.Module.decay_mask`
use these same rules::

    no_decay = Rules([("bias", "plain"), ("norm", "plain")], default="decay", roles=model)
    tx = partition({"decay": adamw(weight_decay=0.1), "plain": adamw(weight_decay=0.0)}, no_decay)
    tx = partition({"muon": muon(), "adam": adamw()}, Rules([("ndim>=2", "muon")], default="adam"))
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from descend._validation import Constraint, check
from descend.errors import ParameterError, StructureError
from descend.optim._backend import describe, is_array, ndim
from descend.optim.base import GradientTransformation
from descend.optim.tree import Tree, _describe, is_container

State = Any


class _IsTransformation(Constraint):
    description = "a GradientTransformation"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, GradientTransformation)


IS_TRANSFORMATION = _IsTransformation()

_ABSENT = object()  # a pruned sub-tree with no selected leaf


def _is_bool(x: Any) -> bool:
    return isinstance(x, (bool, np.bool_))


def _children(x: Any) -> list[tuple[Any, Any]]:
    return list(x.items()) if isinstance(x, dict) else list(enumerate(x))


def _key_path(key: Any) -> str:
    return f"[{key!r}]"


def _broadcast(
    spec: Any, tree: Tree, owner: str, name: str, is_leaf: Callable[[Any], bool], kind: str, path: str = ""
) -> Tree:
    """Expand ``spec`` (a tree or prefix tree of ``kind`` values) to the full structure of ``tree``."""
    if is_leaf(spec):
        if is_container(tree):
            return _rebuild_like(tree, [_broadcast(spec, c, owner, name, is_leaf, kind) for _, c in _children(tree)])
        return spec
    if not is_container(spec):
        raise ParameterError(f"{owner}: {name}{path} must be {kind}, got {_describe_value(spec)}")
    where = path or "the top level"
    if not is_container(tree):
        raise StructureError(
            f"{owner}: {name} and params differ at {where}: {name} is {_describe(spec)}, params is {_describe(tree)}"
        )
    same_kind = isinstance(spec, dict) == isinstance(tree, dict)
    if not same_kind or (isinstance(spec, dict) and spec.keys() != tree.keys()) or len(spec) != len(tree):
        raise StructureError(
            f"{owner}: {name} and params differ at {where}: {name} is {_describe(spec)}, params is {_describe(tree)}"
        )
    children = [
        _broadcast(spec[k], child, owner, name, is_leaf, kind, path + _key_path(k)) for k, child in _children(tree)
    ]
    return _rebuild_like(tree, children)


def _describe_value(x: Any) -> str:
    if is_array(x):
        return f"{describe(x)} (masks and labels select whole leaves, not entries)"
    return repr(x)


def _rebuild_like(tree: Tree, children: list[Any]) -> Tree:
    if isinstance(tree, dict):
        return dict(zip(tree.keys(), children, strict=True))
    return type(tree)(children) if isinstance(tree, tuple) else children


def _check_spec_leaves(
    spec: Any, owner: str, name: str, is_leaf: Callable[[Any], bool], leaf_kind: str, top_kind: str, path: str = ""
) -> None:
    """Construction-time check of a mask / label tree's leaves (its structure is checked against params later)."""
    if is_leaf(spec):
        return
    if not is_container(spec):
        kind = leaf_kind if path else top_kind
        raise ParameterError(f"{owner}: {name}{path} must be {kind}, got {_describe_value(spec)}")
    for k, child in _children(spec):
        _check_spec_leaves(child, owner, name, is_leaf, leaf_kind, top_kind, path + _key_path(k))


def select(tree: Tree, mask: Tree) -> Tree:
    """The pruned sub-tree of ``tree`` where the full bool tree ``mask`` is True (see the module docstring)."""
    out = _select(tree, mask)
    return {} if out is _ABSENT else out


def _select(tree: Tree, mask: Tree) -> Any:
    if is_container(tree):
        out = {}
        for k, child in _children(tree):
            sub = _select(child, mask[k])
            if sub is not _ABSENT:
                out[k] = sub
        return out if out else _ABSENT
    return tree if mask else _ABSENT


def merge(tree: Tree, selected: Tree, mask: Tree) -> Tree:
    """``tree`` with the leaves where ``mask`` is True taken from the pruned ``selected`` instead."""
    if is_container(tree):
        children = [merge(child, selected[k], mask[k]) if k in selected else child for k, child in _children(tree)]
        return _rebuild_like(tree, children)
    return selected if mask else tree


def _resolve(spec: Any, updates: Tree, params: Tree | None) -> Any:
    if callable(spec):
        return spec(params if params is not None else updates)
    return spec


class MaskedState(NamedTuple):
    inner_state: State  # the inner transformation's state, built on the selected leaves only


def masked(inner: GradientTransformation, mask: Tree | Callable[[Tree], Tree]) -> GradientTransformation:
    """Apply ``inner`` to the leaves where ``mask`` is True; pass the others through unchanged.

    ``mask`` is a tree of bools with the structure of the params (or a prefix
    of it), or a callable ``params -> tree of bools``. The inner transformation
    sees, and keeps state for, only the selected leaves (see the module
    docstring for the pruned structure it receives). Same as optax's
    ``masked``; in torch it corresponds to a parameter group with its own
    setting, e.g. ``weight_decay=0`` for biases.
    """
    owner = "masked"
    check(owner, "inner", inner, IS_TRANSFORMATION)
    if isinstance(mask, Rules):
        for value in mask.values():
            if not _is_bool(value):
                raise ParameterError(f"{owner}: the rules of a mask must give bools, got {value!r}")
    elif not callable(mask):
        top = "a tree of bools (True where inner applies) or a callable params -> tree of bools"
        _check_spec_leaves(mask, owner, "mask", _is_bool, "a bool", top)

    def full_mask(updates: Tree, params: Tree | None) -> Tree:
        reference = params if params is not None else updates
        return _broadcast(_resolve(mask, updates, params), reference, owner, "mask", _is_bool, "a bool")

    def init(params: Tree) -> MaskedState:
        m = full_mask(params, params)
        return MaskedState(inner.init(select(params, m)))

    def update(updates: Tree, state: MaskedState, params: Tree | None = None):
        m = full_mask(updates, params)
        sel_params = select(params, m) if params is not None else None
        sel_updates, inner_state = inner.update(select(updates, m), state.inner_state, sel_params)
        return merge(updates, sel_updates, m), MaskedState(inner_state)

    return GradientTransformation(init, update)


class PartitionState(NamedTuple):
    inner_states: dict[str, State]  # label -> that transformation's state on its leaves


def partition(
    transforms: Mapping[str, GradientTransformation], labels: Tree | Callable[[Tree], Tree]
) -> GradientTransformation:
    """Apply ``transforms[label]`` to the leaves labelled ``label``; every leaf has exactly one label.

    ``labels`` is a tree of label strings with the structure of the params (or
    a prefix of it), or a callable ``params -> tree of labels``; every label
    must be a key of ``transforms``. Each transformation sees, and keeps state
    for, only its own leaves (see the module docstring); a transformation whose
    label no leaf carries gets an empty tree. Same as optax's
    ``multi_transform`` (``partition`` in newer optax); in torch, one optimizer
    per group of parameters stepped together.
    """
    owner = "partition"
    if not isinstance(transforms, Mapping) or not transforms:
        raise ParameterError(
            f"{owner}: transforms must be a non-empty dict {{label: GradientTransformation}}, got {transforms!r}"
        )
    transforms = dict(transforms)
    for label, tx in transforms.items():
        if not isinstance(label, str):
            raise ParameterError(f"{owner}: transforms keys must be labels (str), got {label!r}")
        check(owner, f"transforms[{label!r}]", tx, IS_TRANSFORMATION)
    kind = f"a label (one of {sorted(transforms)})"
    known = lambda x: isinstance(x, str) and x in transforms  # noqa: E731
    if isinstance(labels, Rules):
        for value in labels.values():
            if not known(value):
                raise ParameterError(
                    f"{owner}: the rules give label {value!r}, which is not one of {sorted(transforms)}"
                )
    elif not callable(labels):
        top = f"a tree of labels (each one of {sorted(transforms)}) or a callable params -> tree of labels"
        _check_spec_leaves(labels, owner, "labels", known, kind, top)

    def masks(updates: Tree, params: Tree | None) -> dict[str, Tree]:
        reference = params if params is not None else updates
        full = _broadcast(_resolve(labels, updates, params), reference, owner, "labels", known, kind)
        return {label: _map_labels(full, label) for label in transforms}

    def init(params: Tree) -> PartitionState:
        ms = masks(params, params)
        return PartitionState({label: tx.init(select(params, ms[label])) for label, tx in transforms.items()})

    def update(updates: Tree, state: PartitionState, params: Tree | None = None):
        ms = masks(updates, params)
        out = updates
        new_states = {}
        for label, tx in transforms.items():
            m = ms[label]
            sel_params = select(params, m) if params is not None else None
            sel_updates, new_states[label] = tx.update(select(updates, m), state.inner_states[label], sel_params)
            out = merge(out, sel_updates, m)
        return out, PartitionState(new_states)

    def step_inplace(params: Tree, grads: Tree, state: PartitionState) -> PartitionState:
        # dc.optim.step on a partition: each transformation steps its own leaves in place (views of the caller's
        # arrays), so a fused one runs its kernel in place; the same numbers as update + add.
        from descend.optim.fused import step

        ms = masks(grads, params)
        return PartitionState(
            {
                label: step(tx, select(params, ms[label]), select(grads, ms[label]), state.inner_states[label])
                for label, tx in transforms.items()
            }
        )

    update.step_inplace = step_inplace  # type: ignore[attr-defined]
    return GradientTransformation(init, update)


def _map_labels(full: Tree, label: str) -> Tree:
    if is_container(full):
        return _rebuild_like(full, [_map_labels(c, label) for _, c in _children(full)])
    return full == label


# ------------------------------------------------------------------------------------------- routing rules

#: The roles a selector can name (see the module docstring).
ROLES = ("bias", "norm", "embedding", "head")
_NDIM = re.compile(r"ndim\s*(==|=|!=|<=|>=|<|>)\s*(\d+)")
_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "==": lambda a, b: a == b,
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
}
SELECTOR_FORMS = (
    f"a role ({', '.join(ROLES)}), ndim<N / ndim=N / ndim>=N (also <=, >, !=), re:REGEX, "
    "a compiled re.Pattern, or a glob on the parameter name (e.g. '*.bias', '0.*')"
)


class Selector(NamedTuple):
    """One parsed selector of a routing rule (see :func:`selector`)."""

    kind: str  # "role", "ndim", "regex" or "glob"
    value: Any  # the role, (operator, n), the compiled pattern, or the glob
    text: str  # as written, for messages

    def matches(self, name: str, local: str, leaf_ndim: int, roles: frozenset[str]) -> bool:
        if self.kind == "role":
            return self.value in roles
        if self.kind == "ndim":
            op, n = self.value
            return _COMPARE[op](leaf_ndim, n)
        if self.kind == "regex":
            return self.value.fullmatch(name) is not None
        return fnmatch.fnmatchcase(name, self.value) or (
            "." not in self.value and fnmatch.fnmatchcase(local, self.value)
        )


def selector(spec: Any, owner: str = "Rules") -> Selector:
    """Parse one selector: a role, ``ndim`` comparison, ``re:REGEX``, compiled pattern or glob (module docstring)."""
    if isinstance(spec, Selector):
        return spec
    if isinstance(spec, re.Pattern):
        return Selector("regex", spec, f"re:{spec.pattern}")
    if not isinstance(spec, str) or not spec.strip():
        raise ParameterError(f"{owner}: a rule's selector must be {SELECTOR_FORMS}; got {spec!r}")
    text = spec.strip()
    if text in ROLES:
        return Selector("role", text, text)
    found = _NDIM.fullmatch(text)
    if found:
        return Selector("ndim", (found.group(1), int(found.group(2))), text)
    if text.startswith("ndim"):
        raise ParameterError(f"{owner}: selector {spec!r} is not an ndim comparison like ndim<2, ndim=1 or ndim>=2")
    if text.startswith("re:"):
        try:
            return Selector("regex", re.compile(text[3:]), text)
        except re.error as exc:
            raise ParameterError(f"{owner}: selector {spec!r} is not a valid regular expression ({exc})") from None
    return Selector("glob", text, text)


def parse_selectors(text: str, owner: str = "no_decay") -> list[str]:
    """``"bias,norm"`` -> ``["bias", "norm"]``, each checked by :func:`selector`; ``""`` or ``"none"``: ``[]``."""
    if text.strip().lower() in ("", "none"):
        return []
    items = [t.strip() for t in text.split(",")]
    for item in items:
        selector(item, owner)
    return items


_NO_DEFAULT: Any = object()


def named_leaves(tree: Tree, prefix: str = "") -> list[tuple[str, Any]]:
    """``(name, leaf)`` for every leaf in order; a name is the keys on the path joined by dots (``"1.weight"``)."""
    if is_container(tree):
        out = []
        for k, child in _children(tree):
            out.extend(named_leaves(child, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return [(prefix, tree)]


def _roles_of(roles: Any, owner: str) -> dict[str, frozenset[str]] | None:
    if roles is None:
        return None
    source = roles.param_roles() if hasattr(roles, "param_roles") else roles
    if not isinstance(source, Mapping):
        raise ParameterError(
            f"{owner}: roles must be a model (with param_roles()) or a mapping name -> roles, got {roles!r}"
        )
    out = {}
    for name, value in source.items():
        items = (value,) if isinstance(value, str) else value
        if not isinstance(items, Iterable) or not all(isinstance(r, str) for r in items):
            raise ParameterError(f"{owner}: roles[{name!r}] must be role names (strings), got {value!r}")
        out[str(name)] = frozenset(items)
    return out


class Rules:
    """Routing rules as data: ``Rules([(selector, value), ...], default=..., roles=model)``.

    Called on a parameter tree it returns the tree of values (the first rule
    whose selector matches each parameter, else ``default``), so it is a
    ``labels`` of :func:`partition` or a ``mask`` of :func:`masked`. Selectors
    and roles: see the module docstring. ``strict=True`` rejects a name pattern
    (glob or regex) that matches no parameter (a typo); roles and ``ndim``
    rules may match nothing. Without ``default`` every parameter must match a
    rule.
    """

    def __init__(
        self,
        rules: Sequence[tuple[Any, Any]] | Mapping[Any, Any],
        default: Any = _NO_DEFAULT,
        roles: Any = None,
        strict: bool = False,
        owner: str = "Rules",
    ) -> None:
        items = list(rules.items()) if isinstance(rules, Mapping) else rules
        if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
            raise ParameterError(f"{owner}: rules must be a list of (selector, value) pairs, got {rules!r}")
        parsed = []
        for i, item in enumerate(items):
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise ParameterError(f"{owner}: rules[{i}] must be a (selector, value) pair, got {item!r}")
            parsed.append((selector(item[0], owner), item[1]))
        self.rules = parsed
        self.default = default
        self.roles = _roles_of(roles, owner)
        self.strict = bool(strict)
        self.owner = owner
        self._cache: dict[tuple, list[Any]] = {}

    def __repr__(self) -> str:
        body = ", ".join(f"({sel.text!r}, {value!r})" for sel, value in self.rules)
        default = "" if self.default is _NO_DEFAULT else f", default={self.default!r}"
        return f"Rules([{body}]{default})"

    def values(self) -> list[Any]:
        """Every value the rules can give (the default included)."""
        out = [value for _, value in self.rules]
        return out if self.default is _NO_DEFAULT else [*out, self.default]

    def _roles(self, name: str, local: str) -> frozenset[str]:
        roles = frozenset(("bias",)) if local == "bias" else frozenset()
        if self.roles is not None:
            if name not in self.roles:
                known = ", ".join(self.roles) or "(none)"
                raise ParameterError(f"{self.owner}: parameter {name!r} is not one of the model's ({known})")
            roles = roles | self.roles[name]
        return roles

    def table(self, params: Tree) -> dict[str, Any]:
        """``{name: value}`` over the leaves of ``params`` (names as in :func:`named_leaves`)."""
        named = named_leaves(params)
        key = tuple((name, ndim(leaf)) for name, leaf in named)
        values = self._cache.get(key)
        if values is None:
            values = self._cache[key] = self._resolve(key)
        return dict(zip((name for name, _ in named), values, strict=True))

    def _resolve(self, key: tuple) -> list[Any]:
        used = [False] * len(self.rules)
        out = []
        for name, leaf_ndim in key:
            local = name.rsplit(".", 1)[-1]
            roles = self._roles(name, local)
            value = self.default
            for i, (sel, v) in enumerate(self.rules):
                if sel.kind == "role" and sel.value != "bias" and self.roles is None:
                    raise ParameterError(
                        f"{self.owner}: the role {sel.value!r} comes from the model; pass roles=model "
                        "(or a mapping name -> roles, e.g. model.param_roles())"
                    )
                if sel.matches(name, local, leaf_ndim, roles):
                    value, used[i] = v, True
                    break
            if value is _NO_DEFAULT:
                rules = ", ".join(sel.text for sel, _ in self.rules) or "(none)"
                raise ParameterError(
                    f"{self.owner}: parameter {name!r} matches no rule ({rules}) and there is no default"
                )
            out.append(value)
        if self.strict:
            unused = [
                sel.text
                for (sel, _), u in zip(self.rules, used, strict=True)
                if not u and sel.kind in ("glob", "regex")
            ]
            if unused:
                names = ", ".join(name for name, _ in key) or "(none)"
                raise ParameterError(
                    f"{self.owner}: rule(s) {', '.join(map(repr, unused))} match no parameter; names are {names}"
                )
        return out

    def __call__(self, params: Tree) -> Tree:
        values = iter(self.table(params).values())
        if not is_container(params):
            return next(values)
        return _rebuild_values(params, values)


def _rebuild_values(tree: Tree, values: Any) -> Tree:
    if is_container(tree):
        return _rebuild_like(tree, [_rebuild_values(c, values) for _, c in _children(tree)])
    return next(values)


__all__ = [
    "ROLES",
    "MaskedState",
    "PartitionState",
    "Rules",
    "Selector",
    "masked",
    "named_leaves",
    "parse_selectors",
    "partition",
    "selector",
]
