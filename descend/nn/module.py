"""The layer protocol and the flat parameter buffer.

Every layer is a :class:`Module` with an explicit ``forward(x)`` and
``backward(dout, input_grad=True)``: ``forward`` keeps what ``backward`` needs
(the "local derivative" is written next to the forward computation, micrograd
style), ``backward`` *sets* the gradient of every parameter (it does not
accumulate; call it once per ``forward``) and returns ``dL/dx``.

The flat buffer
---------------
All parameters of a model live in ONE contiguous 1-D array ``model.params``
(float32 unless ``dtype=`` says otherwise) and all gradients in another,
``model.grads``. Each layer's ``weight`` / ``bias`` (and ``dweight`` /
``dbias``) are reshaped *views* into them, so::

    model.params[:] -= 0.1 * model.grads        # updates every layer
    model.params[...] = apply_updates(model.params, updates)   # descend.optim on one ndarray

A layer's own ``params`` is itself a contiguous slice of its parent's, in the
order of ``named_parameters()`` (torch's ``state_dict`` order and names:
``"0.weight"``, ``"0.bias"``, ``"3.weight"``...). ``model.layout`` lists
``(name, offset, shape, size)``. Never rebind ``layer.weight = ...``; assign
in place (``layer.weight[...] = w``) or use ``load_state_dict``.

The named parameter tree
------------------------
``model.named_parameters()`` is the ordered mapping ``{name: view}`` of shaped
views into ``params`` (``named_grads()``: into ``grads``); this tree is what the
Trainer, ``descend train``, the lab and checkpoints give the optimizer, so that
Adafactor factors each matrix, LAMB / LARS / Muon see each layer and
``partition`` / ``masked`` route by name, shape or role
(:class:`descend.optim.Rules`; ``param_roles()`` says which parameters are a
``bias``, belong to a ``norm`` layer, an ``embedding`` or the output ``head``).
The views are adjacent and in buffer order, so the fused optimizer kernels still
make one pass over the whole buffer.

**The one rule of adoption.** A container (``Sequential``, ``Residual``)
adopts its layers into one new buffer: it copies their values there and
rebinds ``weight`` / ``bias`` / ``dweight`` / ``params`` / ``grads`` of every
layer to views of it. Arrays taken from a layer *before* that no longer alias
the layer; they are left as read-only snapshots of the values at adoption, so
that writing to one raises instead of silently changing nothing. Take
references from the built model: they stay valid for the model's life (until
the model is itself put into another container).

A training step
---------------
::

    tree, grads = model.named_parameters(), model.named_grads()   # once: views, valid for the model's life
    state = tx.init(tree)

    logits = model(x)                                   # model.train() / model.eval() switch modes
    loss, dlogits = dc.nn.cross_entropy(logits, y)
    model.backward(dlogits, input_grad=False)           # sets model.grads; skips dL/dx of the first layer
    reg = dc.nn.l2_penalty(model, 1e-4)                 # optional: adds λ·w into model.grads, reported apart
    state = dc.optim.step(tx, tree, grads, state)       # in place; or tx.update + apply_updates

An optimizer may also take the flat buffer itself (``tx.update(model.grads,
state, model.params)``): the same numbers for an elementwise one, but
Adafactor, LAMB, LARS, Muon and ``partition`` then see one long vector.

``model.decays(no_decay)`` (``{name: bool}``) and ``model.decay_mask()`` (1 for
weights, 0 for biases and norm parameters, per element) come from the routing
rules ``no_decay`` (default ``("bias", "norm")``), the same rules as ``descend
train --no-decay``; ``model.param_values(rules, default)`` gives per-element
arrays for other per-parameter hyperparameters (learning-rate scales).

Initialization and randomness
-----------------------------
A layer draws its initial values once, when it is constructed, and nothing
changes them afterwards but the user (training, ``load_state_dict``,
``reset_parameters``): a container never re-draws its layers. ``init=None``
(the default of ``Linear`` / ``Conv*``) is torch's default
``kaiming_uniform(a=√5)``, whatever follows the layer; the presets
(:mod:`descend.nn.presets`) choose He (``kaiming_uniform``, ReLU gain) for a
layer followed by ReLU / GELU, He with the slope before LeakyReLU and Xavier
(``xavier_uniform``, gain 5/3 resp. 1) before Tanh / Sigmoid explicitly (an
activation's ``init_hint``). Biases start at zero unless ``bias_init`` says
otherwise. The values are drawn from ``rng`` (a ``np.random.Generator``, used
as is, or an int seed); without one from ``np.random.default_rng(0)``, so two
layers of one shape built without ``rng`` start equal: pass one generator to
every layer of a model (``rng=gen``), as the presets do, to draw them from one
stream. The one thing a container hands its layers is a generator for a
``Dropout`` built without one (a child spawned from the container's ``rng``,
default ``default_rng(0)``), so that two dropout layers never draw the same masks.
"""

from __future__ import annotations

import copy
import fnmatch
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from descend import init as _init
from descend.errors import DescendError, ParameterError


class ShapeError(DescendError, ValueError):
    """An input's shape does not fit the layer; the message names the layer, expected and got."""


class ParamInfo(NamedTuple):
    """Where one parameter lives in the flat buffer."""

    name: str
    offset: int
    shape: tuple[int, ...]
    size: int


def check_dtype(owner: str, dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ParameterError(f"{owner}: dtype must be a floating dtype, got {dtype!r}") from None
    if dt.kind != "f":
        raise ParameterError(f"{owner}: dtype must be a floating dtype, got {dt}")
    return dt


def fmt_shape(shape: Sequence[Any]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


class Module:
    """Base class: parameter declaration, flat buffer, naming, modes and state.

    Subclasses declare parameters with :meth:`_add_param` (and buffers such as
    BatchNorm's running statistics with :meth:`_add_buffer`) in ``__init__``,
    then call :meth:`_build`. Containers call :meth:`_adopt` on their children.
    """

    #: Set on activations: the ``(initializer, options)`` the presets choose for the weights of a layer before it.
    init_hint: tuple[str, dict[str, Any]] | None = None
    #: The role of every parameter of this layer in routing rules (``"norm"``, ``"embedding"``; None: none).
    role: str | None = None

    def __init__(self, dtype: Any = np.float32) -> None:
        self.dtype = check_dtype(type(self).__name__, dtype)
        self.training = True
        self._param_specs: dict[str, tuple[tuple[int, ...], Any]] = {}  # local name -> (shape, init)
        self._buffers: list[str] = []
        self._children: list[tuple[str, Module]] = []
        self._path = ""
        self._owned = False
        self._rng_given = True
        self._rng: np.random.Generator | None = None
        self._cache: Any = None  # whatever forward keeps for backward
        self._params = np.zeros(0, self.dtype)
        self._grads = np.zeros(0, self.dtype)

    # ------------------------------------------------------------------ protocol

    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:  # pragma: no cover
        """Set the parameter gradients from ``dout = dL/dy`` and return ``dL/dx``.

        With ``input_grad=False`` a layer may skip computing ``dL/dx`` and
        return ``None`` (a trainer passes it for the first layer: torch does not
        compute the gradient of an input that does not require it either).
        """
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        if not self._children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in self._children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)

    def label(self) -> str:
        """``"Linear(784, 256) at '1'"``: how error messages name this layer."""
        where = f" at {self._path!r}" if self._path else ""
        return f"{type(self).__name__}({self.extra_repr()}){where}"

    # ------------------------------------------------------------------ declaration (subclasses)

    def _add_param(self, name: str, shape: tuple[int, ...], init: Any) -> None:
        self._param_specs[name] = (tuple(int(s) for s in shape), init)

    def _add_buffer(self, name: str, value: np.ndarray) -> None:
        self._buffers.append(name)
        setattr(self, name, value)

    def _build(self, rng: Any) -> None:
        """Allocate this module's own flat buffer and draw the initial values."""
        self._rng_given = rng is not None
        self._rng = _init.as_generator(type(self).__name__, 0 if rng is None else rng)
        self._materialize(self.dtype)
        self._initialize(self._rng)

    def _resolve_init(self, name: str) -> Any:
        """The initializer of parameter ``name``: its spec (a name, a callable or ``(name, options)``).

        ``None`` is torch's default for a weight and zeros for anything else.
        """
        _, init = self._param_specs[name]
        if isinstance(init, tuple) and len(init) == 2 and isinstance(init[1], Mapping):
            return _init.get(init[0], **init[1])
        if init is not None:
            return _init.get(init)
        return _init.torch_default if name == "weight" else _init.zeros

    def _initialize(self, rng: np.random.Generator) -> None:
        for name, (shape, _) in self._param_specs.items():
            value = np.asarray(self._resolve_init(name)(shape, rng, self.dtype))
            if value.shape != shape:
                raise ShapeError(
                    f"{self.label()}: the initializer of {name!r} returned shape {fmt_shape(value.shape)}, "
                    f"expected {fmt_shape(shape)}"
                )
            getattr(self, name)[...] = value

    def reset_parameters(self, rng: Any = None) -> Module:
        """Re-draw every parameter (recursively, in order) from ``rng`` (default: each layer's own generator)."""
        gen = None if rng is None else _init.as_generator(type(self).__name__, rng)
        for _, module in self._modules():
            if module._param_specs:
                module._initialize(gen if gen is not None else module._rng)
        return self

    def _seed_generators(self, rng: np.random.Generator) -> None:
        """Called by a container on adoption: ``Dropout`` built without ``rng`` takes a child of ``rng``."""

    # ------------------------------------------------------------------ tree

    def _modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._children:
            yield from child._modules(f"{prefix}{name}.")

    def modules(self) -> list[Module]:
        """This module and every submodule, depth first."""
        return [m for _, m in self._modules()]

    def _param_entries(self) -> Iterator[tuple[str, Module, str, tuple[int, ...]]]:
        for prefix, module in self._modules():
            for local, (shape, _) in module._param_specs.items():
                yield prefix + local, module, local, shape

    def _has_state(self) -> bool:
        return any(m._param_specs or m._buffers for m in self.modules())

    @property
    def num_params(self) -> int:
        """Number of scalar parameters (the length of ``params``)."""
        return sum(math.prod(shape) for *_, shape in self._param_entries())

    def _bind(self, params: np.ndarray, grads: np.ndarray, offset: int, path: str) -> int:
        """Point every parameter (recursively) at its slice of ``params`` / ``grads``; return the end offset."""
        start = offset
        self._path = path
        for local, (shape, _) in self._param_specs.items():
            n = math.prod(shape)
            setattr(self, local, params[offset : offset + n].reshape(shape))
            setattr(self, "d" + local, grads[offset : offset + n].reshape(shape))
            offset += n
        for name, child in self._children:
            offset = child._bind(params, grads, offset, f"{path}.{name}" if path else name)
        self._params = params[start:offset]
        self._grads = grads[start:offset]
        return offset

    def _materialize(self, dtype: np.dtype) -> None:
        """Allocate fresh flat buffers of ``dtype`` for this tree, keeping current values where there are any.

        The arrays the layers held before (parameter and gradient views, each
        layer's ``params`` / ``grads``) become read-only snapshots: a reference
        taken before no longer aliases the layer, and writing to it raises
        (see "the one rule of adoption" in the module docstring).
        """
        entries = list(self._param_entries())
        old = [getattr(m, local, None) for _, m, local, _ in entries]
        stale = [a for _, m, local, _ in entries for a in (getattr(m, local, None), getattr(m, "d" + local, None))]
        for _, module in self._modules():
            stale += [module._params, module._grads]
        total = sum(math.prod(shape) for *_, shape in entries)
        params = np.zeros(total, dtype)
        grads = np.zeros(total, dtype)
        for _, module in self._modules():
            module.dtype = dtype
            for b in module._buffers:
                value = getattr(module, b)
                if value.dtype.kind == "f" and value.dtype != dtype:  # same dtype: the same array stays valid
                    setattr(module, b, value.astype(dtype))
        self._bind(params, grads, 0, self._path)
        for (_, module, local, shape), value in zip(entries, old, strict=True):
            if value is not None and np.shape(value) == shape:
                getattr(module, local)[...] = value
        for a in stale:
            if isinstance(a, np.ndarray):
                a.flags.writeable = False

    def _adopt(self, children: Sequence[tuple[str, Module]], rng: Any) -> None:
        """Containers: take ownership of ``children``, seed the unseeded ones, build one buffer."""
        owner = type(self).__name__
        seen: set[int] = set()
        for name, child in children:
            if not isinstance(child, Module):
                raise ParameterError(f"{owner}: layer {name} must be a descend.nn.Module, got {type(child).__name__}")
            if id(child) in seen or child._owned:
                raise ParameterError(
                    f"{owner}: layer {name} ({type(child).__name__}) is already part of a model; "
                    "parameters cannot be shared, create a new layer"
                )
            seen.add(id(child))
        self._children = list(children)
        for _, child in children:
            child._owned = True
        self._rng_given = rng is not None
        self._rng = _init.as_generator(owner, 0 if rng is None else rng)
        for _, child in self._children:
            child._seed_generators(self._rng)
        self._materialize(self.dtype)

    def _container_seed_generators(self, rng: np.random.Generator) -> None:
        # A container built with its own rng is sealed: an outer container leaves its dropout generators alone.
        if not self._rng_given:
            for _, child in self._children:
                child._seed_generators(rng)

    # ------------------------------------------------------------------ flat buffer API

    @property
    def params(self) -> np.ndarray:
        """All parameters, one contiguous 1-D array; every layer's weights are views into it."""
        return self._params

    @property
    def grads(self) -> np.ndarray:
        """All gradients, laid out like :attr:`params`; ``backward`` writes into it."""
        return self._grads

    @property
    def layout(self) -> list[ParamInfo]:
        """``(name, offset, shape, size)`` of every parameter, in buffer order."""
        out, offset = [], 0
        for name, _, _, shape in self._param_entries():
            n = math.prod(shape)
            out.append(ParamInfo(name, offset, shape, n))
            offset += n
        return out

    def named_parameters(self) -> dict[str, np.ndarray]:
        """``{name: view}`` (torch ``state_dict`` names), views into :attr:`params`."""
        return {name: getattr(m, local) for name, m, local, _ in self._param_entries()}

    def named_grads(self) -> dict[str, np.ndarray]:
        """``{name: view}`` into :attr:`grads`."""
        return {name: getattr(m, "d" + local) for name, m, local, _ in self._param_entries()}

    def zero_grad(self) -> None:
        self._grads[...] = 0

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    # ------------------------------------------------------------------ grouping rules

    def _owners(self) -> list[tuple[ParamInfo, Module, str]]:
        return [(info, m, local) for info, (_, m, local, _) in zip(self.layout, self._param_entries(), strict=True)]

    @staticmethod
    def _matches(key: Any, name: str, local: str, module: Module) -> bool:
        if isinstance(key, str):
            # A pattern without a dot also matches the parameter's own name: "bias" = every bias.
            return fnmatch.fnmatchcase(name, key) or ("." not in key and fnmatch.fnmatchcase(local, key))
        if isinstance(key, re.Pattern):
            return key.fullmatch(name) is not None
        if isinstance(key, type) or (isinstance(key, tuple) and key and all(isinstance(k, type) for k in key)):
            return isinstance(module, key)
        raise ParameterError(
            "param_values: a rule key must be a glob string, a compiled re.Pattern, or a layer class "
            f"(or tuple of classes), got {key!r}"
        )

    def param_table(
        self, rules: Mapping[Any, Any] | Sequence[tuple[Any, Any]], default: Any = 0.0, strict: bool = False
    ) -> dict[str, Any]:
        """``{name: value}``: the value of the first rule whose key matches each parameter, else ``default``.

        Keys: a glob matched against the full name (``"0.*"``, ``"*.bias"``; a glob
        without a dot also matches the local name, so ``"bias"`` is every bias), a
        compiled ``re.Pattern`` (``fullmatch`` on the full name), or a layer class /
        tuple of classes (every parameter of such layers, e.g. ``dc.nn.BatchNorm2d``).
        ``strict=True`` rejects a rule that matches no parameter (a typo).
        """
        items = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
        used = [False] * len(items)
        table = {}
        for info, module, local in self._owners():
            value = default
            for i, (key, v) in enumerate(items):
                if self._matches(key, info.name, local, module):
                    value, used[i] = v, True
                    break
            table[info.name] = value
        if strict and not all(used):
            unused = [repr(k) for (k, _), u in zip(items, used, strict=True) if not u]
            raise ParameterError(
                f"param_values: rule(s) {', '.join(unused)} match no parameter; names are "
                f"{', '.join(table) or '(none)'}"
            )
        return table

    def param_values(
        self,
        rules: Mapping[Any, Any] | Sequence[tuple[Any, Any]],
        default: Any = 0.0,
        dtype: Any = None,
        strict: bool = False,
    ) -> np.ndarray:
        """A per-element array over :attr:`params` holding each parameter's rule value (see :meth:`param_table`).

        >>> wd = model.param_values({"bias": 0.0, dc.nn.BatchNorm2d: 0.0}, default=5e-4)
        """
        table = self.param_table(rules, default, strict)
        out = np.empty(self._params.size, self.dtype if dtype is None else dtype)
        for info in self.layout:
            out[info.offset : info.offset + info.size] = table[info.name]
        return out

    def param_roles(self) -> dict[str, frozenset[str]]:
        """``{name: roles}`` for routing rules (:class:`descend.optim.Rules`).

        ``"bias"``: a parameter named ``bias``; a layer's :attr:`role` (``"norm"``
        for BatchNorm / LayerNorm, ``"embedding"``) for each of its parameters;
        ``"head"``: the parameters of the last layer that has any (the output layer).
        """
        entries = list(self._param_entries())
        head = entries[-1][1] if entries else None
        out = {}
        for name, module, local, _ in entries:
            roles = {r for r in (module.role, "bias" if local == "bias" else None) if r is not None}
            if module is head:
                roles.add("head")
            out[name] = frozenset(roles)
        return out

    def decays(self, no_decay: Sequence[Any] | None = None) -> dict[str, bool]:
        """``{name: True}`` for the parameters weight decay (and the L1/L2 penalties) apply to.

        ``no_decay``: the selectors of the parameters spared (:class:`descend.optim.Rules`:
        roles, ``ndim`` comparisons, globs, ``re:`` patterns); default :data:`NO_DECAY`
        (biases and the parameters of norm layers), ``[]`` decays everything. A name
        pattern that matches no parameter is an error (a typo).
        """
        from descend.optim.masking import Rules

        rules = NO_DECAY if no_decay is None else no_decay
        if isinstance(rules, str):
            raise ParameterError(f"decays: no_decay must be a list of selectors, got the string {rules!r}")
        table = Rules([(r, False) for r in rules], default=True, roles=self, strict=True, owner="no_decay")
        return table.table(self.named_parameters())

    def decay_mask(self, dtype: Any = None, no_decay: Sequence[Any] | None = None) -> np.ndarray:
        """Per element of :attr:`params`: 1 where :meth:`decays` is True (weights), else 0 (biases, norm layers)."""
        table = self.decays(no_decay)
        out = np.empty(self._params.size, self.dtype if dtype is None else dtype)
        for info in self.layout:
            out[info.offset : info.offset + info.size] = 1 if table[info.name] else 0
        return out

    # ------------------------------------------------------------------ state

    def _buffer_entries(self) -> Iterator[tuple[str, Module, str]]:
        for prefix, module in self._modules():
            for b in module._buffers:
                yield prefix + b, module, b

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer (BatchNorm running stats), with torch's names."""
        out = {name: view.copy() for name, view in self.named_parameters().items()}
        for name, module, b in self._buffer_entries():
            out[name] = np.array(getattr(module, b), copy=True)
        return out

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> Module:
        """Copy values from ``state`` (e.g. :meth:`state_dict`, or a torch ``state_dict`` as NumPy arrays)."""
        params = self.named_parameters()
        buffers = {name: (m, b) for name, m, b in self._buffer_entries()}
        expected = list(params) + list(buffers)
        if strict:
            missing = [k for k in expected if k not in state]
            unexpected = [k for k in state if k not in params and k not in buffers]
            if missing or unexpected:
                raise ParameterError(
                    f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}; expected {expected}"
                )
        for name, view in params.items():
            if name in state:
                value = np.asarray(state[name])
                if value.shape != view.shape:
                    raise ShapeError(
                        f"load_state_dict: {name!r} has shape {fmt_shape(value.shape)}, "
                        f"expected {fmt_shape(view.shape)}"
                    )
                view[...] = value
        for name, (module, b) in buffers.items():
            if name in state:
                current = getattr(module, b)
                value = np.asarray(state[name])
                if value.shape != current.shape:
                    raise ShapeError(
                        f"load_state_dict: {name!r} has shape {fmt_shape(value.shape)}, "
                        f"expected {fmt_shape(current.shape)}"
                    )
                current[...] = value
        return self

    # ------------------------------------------------------------------ copies

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = None  # forward caches are not part of a copy
        return state

    def astype(self, dtype: Any) -> Module:
        """A deep copy with parameters, gradients and float buffers in ``dtype`` (e.g. float64 for gradcheck)."""
        dt = check_dtype(f"{type(self).__name__}.astype", dtype)
        clone = copy.deepcopy(self)
        clone._owned, clone._path = False, ""
        clone._materialize(dt)
        return clone

    def copy(self) -> Module:
        """A deep copy with its own buffers."""
        return self.astype(self.dtype)


class NormLayer(Module):
    """Base of norm layers (BatchNorm, LayerNorm): role ``"norm"``, which weight decay spares by default."""

    role = "norm"


#: The parameters weight decay spares by default (``descend train --no-decay``): biases and norm layers.
NO_DECAY: tuple[str, ...] = ("bias", "norm")


class Sequential(Module):
    """Layers applied in order; parameters named ``"{index}.{name}"`` like ``torch.nn.Sequential``.

    The layers keep the values they were built with (see "the one rule of
    adoption" in :mod:`descend.nn.module`). ``rng`` (Generator or int seed,
    default 0) hands a child generator to each ``Dropout`` built without one;
    ``dtype`` (default: the layers' common dtype) is the buffer's dtype, layers
    are converted to it.
    """

    def __init__(self, *layers: Module, rng: Any = None, dtype: Any = None) -> None:
        if len(layers) == 1 and isinstance(layers[0], list | tuple):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise ParameterError(f"Sequential: layer {i} must be a descend.nn.Module, got {type(layer).__name__}")
        if dtype is None:
            dtypes = {layer.dtype for layer in layers if layer._has_state()}
            if len(dtypes) > 1:
                raise ParameterError(
                    f"Sequential: layers have different dtypes {sorted(str(d) for d in dtypes)}; pass dtype="
                )
            dtype = dtypes.pop() if dtypes else np.float32
        super().__init__(dtype)
        self.layers = list(layers)
        self._adopt([(str(i), layer) for i, layer in enumerate(layers)], rng)
        self._first_param = next((i for i, layer in enumerate(self.layers) if layer.num_params), len(self.layers))

    _seed_generators = Module._container_seed_generators

    def extra_repr(self) -> str:
        return ", ".join(type(layer).__name__ for layer in self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        # Without input_grad the loop stops at the first layer with parameters:
        # nothing before it needs a gradient.
        stop = 0 if input_grad else self._first_param
        for i in range(len(self.layers) - 1, stop - 1, -1):
            dout = self.layers[i].backward(dout, input_grad=input_grad or i > stop)
        return dout if input_grad else None


class Residual(Module):
    """``y = x + block(x)``; the gradient flows through both: ``dx = dout + block.backward(dout)``.

    Parameters are named ``"block.{name}"``.
    """

    def __init__(self, block: Module, rng: Any = None) -> None:
        if not isinstance(block, Module):
            raise ParameterError(f"Residual: block must be a descend.nn.Module, got {type(block).__name__}")
        super().__init__(block.dtype)
        self.block = block
        self._adopt([("block", block)], rng)

    _seed_generators = Module._container_seed_generators

    def extra_repr(self) -> str:
        return type(self.block).__name__

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = self.block.forward(x)
        if y.shape != np.shape(x):
            raise ShapeError(
                f"{self.label()}: the block maps shape {fmt_shape(np.shape(x))} to {fmt_shape(y.shape)}; "
                "a residual block must preserve the shape"
            )
        return x + y

    def backward(self, dout: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        dblock = self.block.backward(dout, input_grad=input_grad)
        return dout + dblock if input_grad else None
