"""The fast path: one fused kernel per optimizer step for a single contiguous buffer.

The named optimizers in :mod:`descend.optim.alias` are *defined* by their chains
of small transformations (``scale_by_adam``, ``trace``, ...). That definition is
what the conformance tests prove equal to ``torch.optim``, and it stays the only
path for parameter trees, for unusual dtypes and layouts, and when numba is not
installed. But a chain makes one full pass over memory per elementwise NumPy
operation (Adam: about fifteen), while a step only needs one: read θ, g and the
state, write the new state and the update. When the parameters are a single
C-contiguous float32 or float64 ndarray (the NumPy engine keeps all parameters
in one flat buffer), :func:`accelerate` makes ``adam``, ``adamw``, ``sgd``,
``adagrad`` and ``rmsprop`` run a numba kernel (:mod:`descend.optim._kernels`)
that does exactly the chain's arithmetic in one parallel pass.

Nothing about the transformation changes from the outside:

* ``tx.init`` is the chain's, and the fused ``update`` returns the chain's state
  structure (the same ``ChainState`` of NamedTuples, with the same counts, ``lr``
  and ``lr_scale``), so ``get_lr``, ``set_lr_scale``, ``state_to_dict`` and
  checkpoints work unchanged and a state can move between the two paths at any
  step (the tests run 500 fused steps, then continue on the reference chain).
* ``tx.update`` stays pure: it never writes into grads, params or the incoming
  state, and what it returns never aliases an array the caller still holds.
  Its outputs come from a per-optimizer :class:`~descend.optim._buffers.BufferPool`
  (allocating fresh 40 MB arrays costs more in page faults than the step
  itself), whose one rule is that a buffer is reused only after the array
  handed out from it, and every view of it, has been deallocated.
* The fused path is taken only when every array (grads, params, state, a
  per-element weight decay) is a C-contiguous ndarray of the same float32 or
  float64 dtype and the same shape, and the optimizer state has the chain's
  layout; anything else (views, mixed dtypes, ``amsgrad``, a state built by
  another optimizer) runs the reference chain, which also raises the usual
  errors.
* A *tree* (list / tuple / dict of arrays) whose leaves tile one buffer (a
  model's ``named_parameters()`` and ``named_grads()``: C-contiguous views of
  its one flat buffer, adjacent and in order) runs ONE kernel pass over that
  buffer, exactly as if the flat buffer had been passed: the kernels are
  elementwise, so the tree and the buffer give the same bits. The state of such
  a tree is laid out the same way: ``tx.init`` allocates one flat buffer per
  moment and returns views shaped like the parameters, each pure step returns
  views of one new buffer per moment, and a state whose leaves are scattered
  (``state_from_dict`` after a resume) is packed into one buffer on its first
  step. Any other tree runs the kernel leaf by leaf, with each leaf held to the
  rules above (its gradient, parameter and state leaves alike; in place, also
  writeable). Every leaf is checked before the first kernel writes anything, so
  a tree with one ineligible leaf runs the reference chain for the whole step,
  and a fallback can never apply part of a step twice.

:func:`step` is the opt-in in-place API: ``state = step(tx, params, grads, state)``
adds the update to ``params`` in place and reuses the state's arrays, so a step
moves the minimum number of bytes (Adam float32: 28 per parameter, the same as
``torch.optim.Adam(fused=True)``).

:func:`donating_update` is the opt-in middle way: ``tx.update`` for a caller
that gives up the state it passes in (``updates, state = donating_update(tx,
grads, state, params)``): the kernel writes the new state into the donated
arrays instead of new ones, which saves a third of the pure step's memory
traffic; the updates are still a new array and ``params`` is not touched.

``descend.config.fused`` (``dc.config.using(fused=False)``; ``DESCEND_FUSED=0``
in the environment at import) switches the fast path off for the whole
process; this module's ``ENABLED`` reads and writes it. ``calls`` counts fused
steps per optimizer name (the tests use it to check that the fast path is
really taken).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from descend import config
from descend.errors import ParameterError, StructureError
from descend.optim._buffers import BufferPool, pack, remember_span, span, split
from descend.optim.adagrad import ScaleByAdagradState, adagrad_learning_rate
from descend.optim.adam import ScaleByAdamState
from descend.optim.base import ChainState, EmptyState, GradientTransformation
from descend.optim.learning_rate import ScaleByLearningRateState, resolve_lr
from descend.optim.momentum import TraceState
from descend.optim.rms import ScaleByRmsState
from descend.optim.tree import Tree, check_same_structure, is_container, leaves, tree_map

config.module_switches(__name__, {"ENABLED": "fused"})  # ENABLED reads and writes descend.config.fused
calls: Counter[str] = Counter()
_config = config.state  # the hot path reads _config.fused

# Where a kernel step writes (``mode``): PURE: u and the new state into pool buffers (``tx.update``);
# DONATE: u into a pool buffer, the new state into the state's own arrays (``donating_update``);
# INPLACE: θ + u into the parameters, the new state into the state's arrays (``step``).
PURE, DONATE, INPLACE = 0, 1, 2

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_EMPTY = {dt: np.empty(0, dt) for dt in _FLOATS}  # placeholder for an array a kernel does not use
_kernels_module: Any = None


def _kernels() -> Any:
    """The numba kernels, imported on first use (importing numba takes a few hundred ms)."""
    global _kernels_module
    if _kernels_module is None:
        try:
            module = importlib.import_module("descend.optim._kernels")
        except ImportError:  # numba missing or broken: the reference path is always correct
            _config.fused = False
            return None
        _kernels_module = module
    return _kernels_module


# ------------------------------------------------------------------- dispatch

KernelStep = Callable[..., Any]


def fast_path(reference: GradientTransformation, kernel_step: KernelStep, name: str) -> GradientTransformation:
    """``reference`` with an ``update`` that runs ``kernel_step`` when the inputs allow it.

    ``kernel_step(grads, state, params, pool, mode)`` returns ``(updates,
    new_state)`` with outputs as ``mode`` says (:data:`PURE`: from ``pool``;
    :data:`DONATE`: u from ``pool``, the state into its own arrays), or, for
    :data:`INPLACE`, writes θ + u into ``params`` and the new state into the
    state's arrays and returns the new state; it returns ``None`` to decline,
    and the reference chain runs instead.
    """
    pool = BufferPool()

    def run(grads: Tree, state: Any, params: Tree | None, mode: int) -> Any:
        if not _config.fused:
            return None
        if type(grads) is np.ndarray:
            out = kernel_step(grads, state, params, pool, mode)
        else:
            out = _tree_step(kernel_step, grads, state, params, pool, mode)
        if out is not None:
            calls[name] += 1
        return out

    def update(updates: Tree, state: Any, params: Tree | None = None):
        out = run(updates, state, params, PURE)
        return reference.update(updates, state, params) if out is None else out

    def step_inplace(params: Tree, grads: Tree, state: Any) -> Any:
        return run(grads, state, params, INPLACE)

    def update_donated(grads: Tree, state: Any, params: Tree | None = None) -> Any:
        return run(grads, state, params, DONATE)

    update.__doc__ = f"{name}'s update: a fused kernel for one contiguous buffer, else the reference chain."
    update.reference = reference.update  # type: ignore[attr-defined]
    update.step_inplace = step_inplace  # type: ignore[attr-defined]
    update.donated = update_donated  # type: ignore[attr-defined]
    update.pool = pool  # type: ignore[attr-defined]
    return GradientTransformation(_packing_init(reference.init), update)


def _packing_init(init: Callable[[Tree], Any]) -> Callable[[Tree], Any]:
    """``init`` whose state, for parameters that tile one buffer, tiles one buffer per moment too."""

    def packed_init(params: Tree) -> Any:
        state = init(params)
        if not is_container(params) or span(leaves(params)) is None:
            return state
        packed = _pack_state(state, params)
        return state if packed is None else packed

    packed_init.__doc__ = init.__doc__
    return packed_init


def _pack_state(state: Any, grads: Tree) -> ChainState | None:
    """``state`` with every per-parameter field (a tree like ``grads``) copied into views of one new buffer.

    None when the state is not a ChainState of NamedTuples or a field cannot be packed (mixed dtypes).
    """
    if not isinstance(state, ChainState):
        return None
    links = []
    for link in state:
        if getattr(link, "_fields", None) is None:
            return None
        values = []
        for value in link:
            if is_container(value) and _same_structure(value, grads):
                views = pack(leaves(value))
                if views is None:
                    return None
                it = iter(views)
                value = tree_map(lambda _, it=it: next(it), grads)
            values.append(value)
        links.append(type(link)(*values))
    return ChainState(links)


def _split_state(state: Any, grads: Tree, n: int) -> list[ChainState] | None:
    """The state of a tree step as ``n`` per-leaf states (None if it does not have that form).

    Every field of every link that is an array or a container must be a tree of
    ``grads``' structure (a link's moments); it is cut into its leaves. Scalars
    (``count``, ``lr``, ``lr_scale``) and ``None`` fields are shared by every leaf.
    """
    if not isinstance(state, ChainState):
        return None
    per_leaf: list[list[Any]] = [[] for _ in range(n)]
    for link in state:
        fields = getattr(link, "_fields", None)
        if fields is None:
            return None
        columns = []
        for value in link:
            if isinstance(value, np.ndarray) or is_container(value):
                if not _same_structure(value, grads):
                    return None
                columns.append(leaves(value))
            else:
                columns.append(None)
        for i in range(n):
            per_leaf[i].append(
                type(link)(*(value if col is None else col[i] for value, col in zip(link, columns, strict=True)))
            )
    return [ChainState(links) for links in per_leaf]


def _same_structure(a: Tree, b: Tree) -> bool:
    try:
        check_same_structure(a, b, "a", "b", "fused")
    except StructureError:
        return False
    return True


def _join_state(template: ChainState, states: list[ChainState], grads: Tree) -> ChainState:
    """Inverse of :func:`_split_state`: per-leaf fields back into trees of ``grads``' structure."""
    links = []
    for j, link in enumerate(template):
        values = []
        for k, value in enumerate(link):
            if isinstance(value, np.ndarray) or is_container(value):
                it = iter([s[j][k] for s in states])
                values.append(tree_map(lambda _, it=it: next(it), grads))
            else:
                values.append(states[0][j][k])  # scalars: every leaf computed the same
        links.append(type(link)(*values))
    return ChainState(links)


def _tree_step(
    kernel_step: KernelStep, grads: Tree, state: Any, params: Tree | None, pool: BufferPool, mode: int
) -> Any:
    """A kernel step over a tree; ``None`` (and nothing written) unless every leaf qualifies.

    A named tree whose leaves tile one buffer runs one kernel pass over it
    (:func:`_spanning_step`). Otherwise the kernel runs leaf by leaf: every leaf
    (gradient, parameter, each state leaf; and what ``mode`` writes: writeable)
    is checked in a dry run (``check=True``) before the first kernel runs, so
    that a fallback to the reference chain can never follow a partly applied
    in-place or donated step. The per-leaf kernels do the single-buffer
    arithmetic, so the result equals the reference chain's leaf for leaf.
    """
    if not is_container(grads):
        return None
    if type(grads) is dict:
        if getattr(kernel_step, "elementwise", False):
            out = _spanning_step(kernel_step, grads, state, params, pool, mode)
            if out is not None:
                return out
        out = _named_step(kernel_step, grads, state, params, pool, mode)
        if out is not _UNHANDLED:
            return out
    g_leaves = leaves(grads)
    if not g_leaves or type(g_leaves[0]) is not np.ndarray:  # torch tensors: no leaf would qualify, skip the split
        return None
    if params is not None and not _same_structure(params, grads):
        return None  # the reference raises the usual StructureError
    p_leaves = leaves(params) if params is not None else [None] * len(g_leaves)
    states = _split_state(state, grads, len(g_leaves))
    if states is None:
        return None
    for g, s, p in zip(g_leaves, states, p_leaves, strict=True):
        if kernel_step(g, s, p, pool, mode, True) is None:
            return None
    results = [kernel_step(g, s, p, pool, mode) for g, s, p in zip(g_leaves, states, p_leaves, strict=True)]
    if mode == INPLACE:
        return _join_state(state, results, grads)
    it = iter([u for u, _ in results])
    updates = tree_map(lambda _: next(it), grads)
    return updates, _join_state(state, [s for _, s in results], grads)


_UNHANDLED: Any = object()  # _named_step: not a named tree of arrays, the generic per-leaf path decides


def _named_step(
    kernel_step: KernelStep, grads: dict, state: Any, params: Tree | None, pool: BufferPool, mode: int
) -> Any:
    """The per-leaf kernel step for a named tree (a dict of arrays whose leaves do not tile one buffer).

    What the generic per-leaf path does (a dry run of every leaf first, then
    the kernels), without its walks over nested trees: the parameters and every
    per-parameter state field must be dicts with the names of ``grads`` in the
    same order and the same shapes. Anything else is :data:`_UNHANDLED`.
    """
    keys = list(grads)
    g_leaves = list(grads.values())
    n = len(g_leaves)
    if not n or any(type(g) is not np.ndarray for g in g_leaves):
        return _UNHANDLED
    shapes = [g.shape for g in g_leaves]
    p_leaves: list[Any] | None = [None] * n if params is None else _matching_leaves(params, keys, shapes)
    if p_leaves is None or not isinstance(state, ChainState):
        return _UNHANDLED
    columns: dict[int, list[tuple[int, list[Any]]]] = {}  # link -> [(field, its leaves)]
    for j, link in enumerate(state):
        if getattr(link, "_fields", None) is None:
            return _UNHANDLED
        for k, value in enumerate(link):
            if type(value) is np.ndarray:
                return _UNHANDLED
            if is_container(value):
                field_leaves = _matching_leaves(value, keys, shapes)
                if field_leaves is None or any(type(x) is not np.ndarray for x in field_leaves):
                    return _UNHANDLED
                columns.setdefault(j, []).append((k, field_leaves))

    def leaf_state(i: int) -> ChainState:
        links = list(state)
        for j, cols in columns.items():
            values = list(state[j])
            for k, field_leaves in cols:
                values[k] = field_leaves[i]
            links[j] = type(state[j])(*values)
        return ChainState(links)

    states = [leaf_state(i) for i in range(n)]
    if mode != PURE:  # a dry run first: nothing may be written unless every leaf runs (pure outputs are new)
        for g, st, p in zip(g_leaves, states, p_leaves, strict=True):
            if kernel_step(g, st, p, pool, mode, True) is None:
                return None
    results = [kernel_step(g, st, p, pool, mode) for g, st, p in zip(g_leaves, states, p_leaves, strict=True)]
    if any(r is None for r in results):  # a pure step declined by a leaf: its outputs are dropped, nothing written
        return None
    new_states = results if mode == INPLACE else [r[1] for r in results]
    links = list(new_states[0])
    for j, cols in columns.items():
        values = list(links[j])
        for k, _ in cols:
            values[k] = dict(zip(keys, (ns[j][k] for ns in new_states), strict=True))
        links[j] = type(links[j])(*values)
    new_state = ChainState(links)
    if mode == INPLACE:
        return new_state
    return dict(zip(keys, (r[0] for r in results), strict=True)), new_state


def _matching_leaves(tree: Any, keys: list[Any], shapes: list[tuple[int, ...]]) -> list[Any] | None:
    """The values of ``tree`` if it is a dict with ``keys`` in this order whose values have ``shapes``."""
    if type(tree) is not dict or list(tree) != keys:
        return None
    values = list(tree.values())
    if [getattr(v, "shape", None) for v in values] != shapes:
        return None
    return values  # span() checks that they are ndarrays


def _spanning_step(
    kernel_step: KernelStep, grads: dict, state: Any, params: Tree | None, pool: BufferPool, mode: int
) -> Any:
    """One kernel pass over the buffer a named tree's leaves tile (see the module docstring), or None.

    ``grads`` is a dict ``{name: array}`` (a model's ``named_grads()``); the
    parameters and every per-parameter state field must be dicts with the same
    names in the same order and the same shapes. Gradients and parameters must
    each tile one buffer; a state field that does not (a restored checkpoint)
    is first packed into a new one (a copy: the kernel then writes the new
    state there, which the in-place and donating modes allow). The result is
    split back into views shaped like the leaves; a state field the kernel
    wrote in place keeps its original dict.
    """
    g_leaves = list(grads.values())
    g = span(g_leaves)
    if g is None:
        return None
    keys = list(grads)
    shapes = [leaf.shape for leaf in g_leaves]
    p = None
    if params is not None:
        p_leaves = _matching_leaves(params, keys, shapes)
        p = None if p_leaves is None else span(p_leaves)
        if p is None:
            return None
    if not isinstance(state, ChainState):
        return None
    flat_links = list(state)
    fields: list[tuple[int, int, Any]] = []  # (link, field, the dict the kernel reads in place or None)
    for j, link in enumerate(state):
        if getattr(link, "_fields", None) is None:
            return None
        values = None
        for k, value in enumerate(link):
            if type(value) is np.ndarray:
                return None
            if not is_container(value):
                continue
            field_leaves = _matching_leaves(value, keys, shapes)
            if field_leaves is None:
                return None
            flat = span(field_leaves)
            original = value
            if flat is None:
                packed = pack(field_leaves)
                flat = None if packed is None else span(packed)
                if flat is None:
                    return None
                original = None
            if values is None:
                values = list(link)
            values[k] = flat
            fields.append((j, k, original))
        if values is not None:
            flat_links[j] = type(link)(*values)
    flat_state = ChainState(flat_links)
    out = kernel_step(g, flat_state, p, pool, mode)
    if out is None:
        return None
    new_flat = out if mode == INPLACE else out[1]

    def unflatten(x: np.ndarray) -> dict:
        views = split(x, shapes)
        remember_span(views, x)
        return dict(zip(keys, views, strict=True))

    links = list(new_flat)
    rebuilt: dict[int, list[Any]] = {}
    for j, k, original in fields:
        value = new_flat[j][k]
        values = rebuilt.setdefault(j, list(new_flat[j]))
        values[k] = original if original is not None and value is flat_state[j][k] else unflatten(value)
    for j, values in rebuilt.items():
        links[j] = type(new_flat[j])(*values)
    new_state = ChainState(links)
    if mode == INPLACE:
        return new_state
    return unflatten(out[0]), new_state


def accelerate(factory: Callable[..., GradientTransformation], build: Callable[..., KernelStep | None]):
    """Wrap a named optimizer's factory so that what it builds also has a fused fast path.

    The factory still validates its arguments and builds the reference chain;
    ``build(**all_arguments)`` returns the kernel step for those hyperparameters,
    or ``None`` where there is no kernel (e.g. ``amsgrad``).
    """
    signature = inspect.signature(factory)

    @functools.wraps(factory)
    def wrapper(*args: Any, **kwargs: Any) -> GradientTransformation:
        tx = factory(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        kernel_step = build(**bound.arguments)
        return tx if kernel_step is None else fast_path(tx, kernel_step, factory.__name__)

    return wrapper


def step(tx: GradientTransformation, params: Tree, grads: Tree, state: Any) -> Any:
    """One optimizer step in place: ``params += update``; returns the new state.

    The opt-in, allocation-free form of::

        updates, state = tx.update(grads, state, params)
        params = apply_updates(params, updates)

    ``params`` (an ndarray or a tree of writeable ndarrays) is modified in place
    and the returned state may share, and will have overwritten, the arrays of
    the ``state`` passed in: use only the returned state afterwards (a
    checkpoint taken with :func:`state_to_dict` is a copy and stays valid).
    ``grads`` is never modified. With a fused optimizer (``adam``, ``adamw``,
    ``sgd``, ``adagrad``, ``rmsprop``) and one contiguous buffer the step is a
    single pass over memory; otherwise it is ``tx.update`` followed by an
    in-place addition, with the same result.
    """
    inplace = getattr(tx.update, "step_inplace", None)
    if inplace is not None:
        new_state = inplace(params, grads, state)
        if new_state is not None:
            return new_state
    updates, new_state = tx.update(grads, state, params)
    check_same_structure(updates, params, "updates", "params", "step")
    for p in leaves(params):
        if not isinstance(p, np.ndarray) or not p.flags.writeable:
            raise ParameterError(f"step: params must be writeable ndarrays to update in place, got {type(p).__name__}")
    tree_map(_add_inplace, params, updates)
    return new_state


def donating_update(tx: GradientTransformation, grads: Tree, state: Any, params: Tree | None = None) -> Any:
    """``tx.update(grads, state, params)`` for a caller that gives up ``state``: returns ``(updates, new_state)``.

    The arrays of ``state`` are *donated*: the returned state may be those same
    arrays, overwritten with the new values, so use only the returned state
    afterwards (as with :func:`step`; a checkpoint taken with ``state_to_dict``
    is a copy and stays valid). The updates are a new array that aliases
    nothing the caller holds; ``grads`` and ``params`` are never modified. With
    a fused optimizer and C-contiguous, writeable state arrays the kernel
    writes the new state in place (Adam float32: 28 bytes per parameter moved
    instead of 36, no new state arrays); otherwise this is ``tx.update``, with
    the same values either way.
    """
    donated = getattr(tx.update, "donated", None)
    if donated is not None:
        out = donated(grads, state, params)
        if out is not None:
            return out
    return tx.update(grads, state, params)


def _add_inplace(p: np.ndarray, u: np.ndarray) -> None:
    np.add(p, u, out=p, casting="unsafe")  # apply_updates casts p + u back to p's dtype the same way


# ------------------------------------------------------------------ eligibility


def _dtype_of(grads: Any, params: Any, *arrays: Any) -> np.dtype | None:
    """The common float dtype when every array is a C-contiguous ndarray of grads' shape, else None."""
    if type(grads) is not np.ndarray or grads.dtype not in _FLOATS or not grads.flags.c_contiguous:
        return None
    dt, shape = grads.dtype, grads.shape
    for a in (params, *arrays):
        if type(a) is not np.ndarray or a.dtype != dt or a.shape != shape or not a.flags.c_contiguous:
            return None
    return dt


class _Ready(NamedTuple):
    """What a kernel step needs once its inputs have passed the checks of :func:`_ready`."""

    p: np.ndarray  # the parameters (grads as a never-read stand-in when the pure path does not read them)
    dt: np.dtype
    shape: tuple[int, ...]
    wd_flat: np.ndarray
    kernels: Any


def _ready(grads: Any, params: Any, mode: int, wd: Any, arrays: tuple[Any, ...]) -> _Ready | None:
    """The checks every kernel step makes before touching memory; None sends the step to the reference chain.

    ``arrays`` are the state arrays the kernel reads (and, with ``mode``
    DONATE or INPLACE, overwrites: they must be writeable, and θ too in place).
    """
    p = params if (params is not None or mode == INPLACE or wd.mode) else grads  # p is not read then
    dt = _dtype_of(grads, p, *arrays)
    if dt is None:
        return None
    if mode != PURE:
        if any(not a.flags.writeable for a in arrays) or (mode == INPLACE and not p.flags.writeable):
            return None
    wd_flat = wd.flat(grads.shape, dt, _flat(grads))
    kernels = _kernels()
    if wd_flat is None or kernels is None:
        return None
    return _Ready(p, dt, grads.shape, wd_flat, kernels)


def _layout(state: Any, kinds: tuple[type, ...]) -> list[int] | None:
    """Indices of the states of type ``kinds`` in a ChainState whose other links are stateless."""
    if not isinstance(state, ChainState):
        return None
    found: list[int | None] = [None] * len(kinds)
    for i, s in enumerate(state):
        for k, kind in enumerate(kinds):
            if type(s) is kind and found[k] is None:
                found[k] = i
                break
        else:
            if type(s) is not EmptyState:
                return None
    if any(i is None for i in found):
        return None
    return found  # type: ignore[return-value]


class _WeightDecay:
    """A weight decay as the kernels take it: mode 0 (none), 1 (scalar) or 2 (per-element array)."""

    def __init__(self, weight_decay: Any):
        self.array: np.ndarray | None = None
        self.scalar = 0.0
        self._cast: dict[np.dtype, np.ndarray] = {}
        if isinstance(weight_decay, np.ndarray):
            if weight_decay.any():  # add_decayed_weights is the identity otherwise
                self.array = weight_decay
            self.mode = 2 if self.array is not None else 0
        else:
            self.scalar = float(weight_decay)
            self.mode = 1 if self.scalar != 0.0 else 0

    def flat(self, shape: tuple[int, ...], dtype: np.dtype, unused: np.ndarray) -> np.ndarray | None:
        """The per-element decay as a flat contiguous array of ``dtype`` (None: needs broadcasting).

        Without one the kernel never reads the array, and ``unused`` (the flat
        gradient, which the kernel only reads) stands in for it. Not an empty
        placeholder: LLVM's vectorized loop is guarded by a runtime check that no
        written array overlaps ``[a, a + n)`` of any array read, and an empty
        array that happens to lie within n elements of θ or the state sends
        every step down the scalar loop (8-20x slower, depending on the heap).
        """
        if self.mode != 2:
            return unused
        assert self.array is not None
        if self.array.shape != shape:
            return None
        cast = self._cast.get(dtype)
        if cast is None:  # like add_decayed_weights: cast once per dtype, so float32 stays float32
            cast = self._cast[dtype] = np.ascontiguousarray(self.array, dtype=dtype).reshape(-1)
        return cast


def _outputs(mode: int, pool: BufferPool, params: Any, state_arrays: tuple[np.ndarray, ...], shape, dt):
    """Where the kernel writes (θ or u, then the state): new pool buffers or the inputs themselves."""
    if mode == INPLACE:
        return params, state_arrays
    out = pool.empty(shape, dt)
    if mode == DONATE:
        return out, state_arrays
    return out, tuple(pool.empty(shape, dt) for _ in state_arrays)


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1)  # a view: every array here is C-contiguous


def _lr_state(sl: ScaleByLearningRateState, lr: Any) -> tuple[float, ScaleByLearningRateState]:
    eta = resolve_lr(lr, sl.count) * sl.lr_scale
    return eta, ScaleByLearningRateState(sl.count + 1, eta, sl.lr_scale)


def _finish(state: ChainState, replaced: dict[int, Any], mode: int, out: np.ndarray):
    new = list(state)
    for i, s in replaced.items():
        new[i] = s
    new_state = ChainState(new)
    if mode == INPLACE:
        return new_state
    return out, new_state


# ----------------------------------------------------------- the kernel steps


def build_adam(
    lr: Any = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: Any = 0.0,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
    bias_correction: bool = True,
) -> KernelStep | None:
    """Kernel step for ``adam`` / ``adamw`` (no kernel for amsgrad: the reference runs)."""
    if amsgrad:
        return None
    b1, b2, eps = float(betas[0]), float(betas[1]), float(eps)
    wd = _WeightDecay(weight_decay)
    decoupled = bool(decoupled_weight_decay)
    kinds = (ScaleByAdamState, ScaleByLearningRateState)

    def kernel_step(grads: Any, state: Any, params: Any, pool: BufferPool, mode: int, check: bool = False):
        where = _layout(state, kinds)
        if where is None:
            return None
        ia, il = where
        sa, sl = state[ia], state[il]
        if sa.max_exp_avg_sq is not None:
            return None
        ready = _ready(grads, params, mode, wd, (sa.exp_avg, sa.exp_avg_sq))
        if ready is None:
            return None
        if check:
            return True
        p, dt, shape, wd_flat, kernels = ready
        t = sa.count + 1
        step_size, bc2 = 1.0, 1.0
        if bias_correction:
            step_size = 1.0 / (1.0 - b1**t)
            bc2 = (1.0 - b2**t) ** 0.5
        eta, new_sl = _lr_state(sl, lr)
        out, (out_m, out_v) = _outputs(mode, pool, p, (sa.exp_avg, sa.exp_avg_sq), shape, dt)
        f = dt.type
        args = (
            _flat(p), _flat(grads), _flat(sa.exp_avg), _flat(sa.exp_avg_sq), wd_flat,
            _flat(out), _flat(out_m), _flat(out_v),
            bool(maximize), wd.mode, decoupled, f(wd.scalar), f(1.0 - b1), f(b2), f(1.0 - b2),
            f(step_size), f(bc2), f(eps), f(-eta),
        )  # fmt: skip
        if mode == INPLACE:
            kernels.run(kernels.adam_kernel, grads.size, *args, True)
        else:
            kernels.run(kernels.adam_update_kernel, grads.size, *args)
        new_sa = ScaleByAdamState(t, out_m, out_v, None)
        return _finish(state, {ia: new_sa, il: new_sl}, mode, out)

    # Elementwise (not with a per-element decay array): a tree whose leaves tile one buffer runs as that buffer.
    kernel_step.elementwise = wd.mode != 2  # type: ignore[attr-defined]
    return kernel_step


def build_adamw(
    lr: Any = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: Any = 1e-2,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
) -> KernelStep | None:
    """Kernel step for ``adamw``: Adam's with decoupled weight decay."""
    return build_adam(
        lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True, bias_correction=True
    )


def build_sgd(
    lr: Any = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: Any = 0.0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
) -> KernelStep | None:
    """Kernel step for ``sgd`` (plain, momentum, dampening, nesterov)."""
    mu, damp = float(momentum), float(dampening)
    use_momentum = mu != 0.0
    wd = _WeightDecay(weight_decay)
    kinds = (TraceState, ScaleByLearningRateState) if use_momentum else (ScaleByLearningRateState,)

    def kernel_step(grads: Any, state: Any, params: Any, pool: BufferPool, mode: int, check: bool = False):
        where = _layout(state, kinds)
        if where is None:
            return None
        st = state[where[0]] if use_momentum else None
        buffers = (st.momentum_buffer,) if use_momentum else ()
        ready = _ready(grads, params, mode, wd, buffers)
        if ready is None:
            return None
        if check:
            return True
        p, dt, shape, wd_flat, kernels = ready
        il = where[-1]
        eta, new_sl = _lr_state(state[il], lr)
        out, outs = _outputs(mode, pool, p, buffers, shape, dt)
        f = dt.type
        common = (bool(maximize), wd.mode, f(wd.scalar))
        if use_momentum:
            moments = (st.count == 0, f(mu), f(1.0 - damp), bool(nesterov), f(-eta))
            if mode == INPLACE:
                kernels.run(
                    kernels.sgd_momentum_kernel, grads.size,
                    _flat(p), _flat(grads), _flat(buffers[0]), wd_flat, *common, *moments,
                )  # fmt: skip
            else:
                kernels.run(
                    kernels.sgd_momentum_update_kernel, grads.size,
                    _flat(p), _flat(grads), _flat(buffers[0]), wd_flat, _flat(out), _flat(outs[0]), *common, *moments,
                )  # fmt: skip
        elif mode == INPLACE:
            kernels.run(kernels.sgd_kernel, grads.size, _flat(p), _flat(grads), wd_flat, *common, f(-eta))
        else:
            kernels.run(
                kernels.sgd_update_kernel, grads.size, _flat(p), _flat(grads), wd_flat, _flat(out), *common, f(-eta)
            )
        replaced: dict[int, Any] = {il: new_sl}
        if use_momentum:
            replaced[where[0]] = TraceState(st.count + 1, outs[0])
        return _finish(state, replaced, mode, out)

    # Elementwise (not with a per-element decay array): a tree whose leaves tile one buffer runs as that buffer.
    kernel_step.elementwise = wd.mode != 2  # type: ignore[attr-defined]
    return kernel_step


def build_adagrad(
    lr: Any = 1e-2,
    lr_decay: float = 0,
    weight_decay: Any = 0,
    initial_accumulator_value: float = 0,
    eps: float = 1e-10,
    *,
    maximize: bool = False,
    eps_inside_sqrt: bool = False,
) -> KernelStep | None:
    """Kernel step for ``adagrad`` (``lr_decay`` is the same schedule the chain uses)."""
    schedule = adagrad_learning_rate(lr, lr_decay)
    eps = float(eps)
    wd = _WeightDecay(weight_decay)
    kinds = (ScaleByAdagradState, ScaleByLearningRateState)

    def kernel_step(grads: Any, state: Any, params: Any, pool: BufferPool, mode: int, check: bool = False):
        where = _layout(state, kinds)
        if where is None:
            return None
        ig, il = where
        sg = state[ig]
        ready = _ready(grads, params, mode, wd, (sg.sum_of_squares,))
        if ready is None:
            return None
        if check:
            return True
        p, dt, shape, wd_flat, kernels = ready
        eta, new_sl = _lr_state(state[il], schedule)
        out, (out_acc,) = _outputs(mode, pool, p, (sg.sum_of_squares,), shape, dt)
        f = dt.type
        flags = (bool(maximize), wd.mode, f(wd.scalar), f(eps), bool(eps_inside_sqrt), f(-eta))
        if mode == INPLACE:
            kernels.run(
                kernels.adagrad_kernel, grads.size, _flat(p), _flat(grads), _flat(sg.sum_of_squares), wd_flat, *flags
            )
        else:
            kernels.run(
                kernels.adagrad_update_kernel, grads.size,
                _flat(p), _flat(grads), _flat(sg.sum_of_squares), wd_flat, _flat(out), _flat(out_acc), *flags,
            )  # fmt: skip
        new_sg = ScaleByAdagradState(sg.count + 1, out_acc)
        return _finish(state, {ig: new_sg, il: new_sl}, mode, out)

    # Elementwise (not with a per-element decay array): a tree whose leaves tile one buffer runs as that buffer.
    kernel_step.elementwise = wd.mode != 2  # type: ignore[attr-defined]
    return kernel_step


def build_rmsprop(
    lr: Any = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: Any = 0,
    momentum: float = 0,
    centered: bool = False,
    *,
    maximize: bool = False,
    eps_inside_sqrt: bool = False,
) -> KernelStep | None:
    """Kernel step for ``rmsprop`` (centered, momentum, ε inside the root)."""
    a, eps, mu = float(alpha), float(eps), float(momentum)
    w = 1.0 - a  # torch's lerp weight for E[g], and its branch
    use_momentum = mu > 0.0
    wd = _WeightDecay(weight_decay)
    kinds = (ScaleByRmsState, ScaleByLearningRateState)

    def kernel_step(grads: Any, state: Any, params: Any, pool: BufferPool, mode: int, check: bool = False):
        where = _layout(state, kinds)
        if where is None:
            return None
        ir, il = where
        sr = state[ir]
        if (sr.grad_avg is not None) != centered or (sr.momentum_buffer is not None) != use_momentum:
            return None
        arrays = tuple(x for x in (sr.square_avg, sr.grad_avg, sr.momentum_buffer) if x is not None)
        ready = _ready(grads, params, mode, wd, arrays)
        if ready is None:
            return None
        if check:
            return True
        p, dt, shape, wd_flat, kernels = ready
        eta, new_sl = _lr_state(state[il], lr)
        out, outs = _outputs(mode, pool, p, arrays, shape, dt)
        ins = [_flat(x) for x in arrays]
        outs_flat = [_flat(x) for x in outs]
        empty = _EMPTY[dt]
        sq, sq_out = ins[0], outs_flat[0]
        ga, ga_out = (ins[1], outs_flat[1]) if centered else (empty, empty)
        buf, buf_out = (ins[-1], outs_flat[-1]) if use_momentum else (empty, empty)
        f = dt.type
        if not centered and not use_momentum:
            flags = (bool(maximize), wd.mode, f(wd.scalar), f(a), f(1.0 - a), f(eps), bool(eps_inside_sqrt), f(-eta))
            if mode == INPLACE:
                kernels.run(kernels.rmsprop_kernel, grads.size, _flat(p), _flat(grads), sq, wd_flat, *flags)
            else:
                kernels.run(
                    kernels.rmsprop_update_kernel, grads.size,
                    _flat(p), _flat(grads), sq, wd_flat, _flat(out), sq_out, *flags,
                )  # fmt: skip
            return _finish(state, {ir: ScaleByRmsState(sr.count + 1, outs[0], None, None), il: new_sl}, mode, out)
        kernels.run(
            kernels.rmsprop_full_kernel, grads.size,
            _flat(p), _flat(grads), sq, ga, buf, wd_flat, _flat(out), sq_out, ga_out, buf_out,
            bool(maximize), wd.mode, f(wd.scalar), f(a), f(1.0 - a), bool(centered), f(w), f(1.0 - w), abs(w) < 0.5,
            f(eps), bool(eps_inside_sqrt), use_momentum, f(mu), f(-eta), mode == INPLACE,
        )  # fmt: skip
        it = iter(outs)
        new_sq = next(it)
        new_ga = next(it) if centered else None
        new_buf = next(it) if use_momentum else None
        new_sr = ScaleByRmsState(sr.count + 1, new_sq, new_ga, new_buf)
        return _finish(state, {ir: new_sr, il: new_sl}, mode, out)

    # Elementwise (not with a per-element decay array): a tree whose leaves tile one buffer runs as that buffer.
    kernel_step.elementwise = wd.mode != 2  # type: ignore[attr-defined]
    return kernel_step


__all__ = ["DONATE", "INPLACE", "PURE", "accelerate", "calls", "donating_update", "fast_path", "step"]
