"""Run a layer-wise optimizer on a model's one flat parameter buffer: ``by_layout``.

A :mod:`descend.nn` model keeps all its parameters in one contiguous vector (``model.params``), which
is what :class:`descend.train.Trainer` hands the optimizer. Optimizers that treat each parameter as
a unit (LAMB's and LARS's trust ratios, Muon's orthogonalised matrices, SOAP's per-axis
preconditioners) would see one long vector there. ``by_layout(tx, model.layout)`` gives them the
model's parameters instead: each update splits the vector into ``{name: view of its shape}``, runs
``tx`` on that dict, and joins the updates back into one vector. The factories of those optimizers
take ``layout=model.layout`` and do this themselves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from descend._validation import check
from descend.errors import ParameterError, StructureError
from descend.optim._backend import describe, is_array, namespace, ndim, size
from descend.optim.base import GradientTransformation
from descend.optim.masking import IS_TRANSFORMATION
from descend.optim.tree import Tree

Layout = Sequence[Any]  # a model's layout (ParamInfo: name, offset, shape, size) or a sequence of shapes


def _entries(layout: Layout, owner: str) -> list[tuple[str, tuple[int, ...]]]:
    if isinstance(layout, (str, bytes)) or not isinstance(layout, Sequence) or not layout:
        raise ParameterError(
            f"{owner}: layout must be a model's layout (model.layout) or a non-empty sequence of shapes, got {layout!r}"
        )
    entries = []
    for i, entry in enumerate(layout):
        shape = getattr(entry, "shape", entry)
        try:
            shape = tuple(int(n) for n in shape)
        except TypeError:
            raise ParameterError(f"{owner}: layout[{i}] must be a shape (a tuple of ints), got {entry!r}") from None
        if any(n < 0 for n in shape):
            raise ParameterError(f"{owner}: layout[{i}] must be a shape of sizes >= 0, got {shape!r}")
        entries.append((str(getattr(entry, "name", i)), shape))
    if len({name for name, _ in entries}) != len(entries):
        raise ParameterError(f"{owner}: layout names must be unique, got {[name for name, _ in entries]}")
    return entries


def by_layout(tx: GradientTransformation, layout: Layout, owner: str = "by_layout") -> GradientTransformation:
    """``tx`` on the parameters a flat vector holds, laid out by ``layout`` (``model.layout`` or a list of shapes).

    ``init`` / ``update`` take the flat vector (one 1-D array of ``sum(sizes)`` entries) and ``tx``
    sees the dict ``{name: array of its shape}`` (names from the layout, else ``"0"``, ``"1"``, ...);
    its state is kept in that structure, the updates come back as one vector.
    """
    check(owner, "tx", tx, IS_TRANSFORMATION)
    entries = _entries(layout, owner)
    total = sum(math.prod(shape) for _, shape in entries)

    def split(flat: Tree, what: str) -> dict[str, Any]:
        if not is_array(flat) or ndim(flat) != 1 or size(flat) != total:
            got = describe(flat) if is_array(flat) else f"a {type(flat).__name__}"
            raise StructureError(
                f"{owner}: {what} must be one flat vector of {total} entries (the layout's total size), got {got}"
            )
        xp = namespace(flat)
        out, offset = {}, 0
        for name, shape in entries:
            n = math.prod(shape)
            out[name] = xp.reshape(flat[offset : offset + n], shape)
            offset += n
        return out

    def join(tree: dict[str, Any], like: Any) -> Any:
        xp = namespace(like)
        pieces = [xp.reshape(tree[name], (-1,)) for name, _ in entries]
        return xp.concat(pieces) if pieces else like

    def init(params: Tree):
        return tx.init(split(params, "params"))

    def update(updates: Tree, state: Any, params: Tree | None = None):
        inner_params = None if params is None else split(params, "params")
        out, state = tx.update(split(updates, "updates"), state, inner_params)
        return join(out, updates), state

    return GradientTransformation(init, update)


def maybe_by_layout(tx: GradientTransformation, layout: Layout | None, owner: str) -> GradientTransformation:
    """``tx`` itself, or :func:`by_layout` of it when a layout is given (the factories' ``layout=`` keyword)."""
    return tx if layout is None else by_layout(tx, layout, owner)


__all__ = ["Layout", "by_layout", "maybe_by_layout"]
