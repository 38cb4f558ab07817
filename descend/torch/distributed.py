"""descend's torch optimizers across processes: FSDP2's sharded parameters, and checkpoints without pickle.

**DDP** needs nothing here: every rank holds whole parameters and the same averaged gradients, so every rank
takes the same step.

**FSDP2** (``torch.distributed.fsdp.fully_shard``) turns each parameter into a ``DTensor`` whose rank holds
one shard. :class:`descend.torch.Optimizer` hands a group with ``DTensor`` parameters to :func:`step_group`,
which steps it one of two ways:

* **elementwise** optimizers (:data:`ELEMENTWISE`: SGD, Adam, AdamW, ..., Lion; each element of the update
  depends only on the same element of the gradient, the parameter and the state) run on the local shards
  themselves, with no communication; their per-parameter state is stored as ``DTensor`` shards placed like
  the parameter (as ``torch.optim`` stores it), so ``torch.distributed.checkpoint`` saves it sharded;
* every other transformation, one that needs a whole matrix (Adafactor's factored second moments and its
  relative step size, a chain with ``clip_by_global_norm``, any ``descend.torch.Optimizer(params, tx)``
  whose ``tx`` descend can not vouch for), is never shown a shard as if it were the matrix: the group's
  parameters, gradients and state are all-gathered into whole tensors, every rank runs the transformation
  on them (the same inputs, the same result, bit for bit), and each rank keeps its own shard of the new
  parameters. State the size of the parameter is stored sharded again; state of another shape (Adafactor's
  row and column factors) is kept whole on every rank. This departs from the owner-rank pattern of Megatron
  and HeavyBall (gather on one rank, compute, scatter): it computes on every rank and holds each whole
  matrix for the length of the step, in exchange for state that is the same on every rank and that loads
  at any world size.

**Checkpoints.** ``torch.distributed.checkpoint``'s file format reads its index with ``pickle.load`` and
its non-tensor values with ``torch.load(weights_only=False)``, and descend loads no pickle. :func:`save`
and :func:`load` run ``dcp.save`` / ``dcp.load`` (every rank writes and reads its own shards, and a
checkpoint written at one world size loads at another) through :class:`SafeWriter`, :class:`SafeReader`
and the planners :class:`SafeSavePlanner` / :class:`SafeLoadPlanner`: tensors are raw bytes, the index
(``metadata.json``) and the non-tensor values (learning rates, betas, step counts) are JSON. A save
writes new data files and replaces ``metadata.json`` last, so the checkpoint already in the directory
stays whole until the new one is::

    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict
    import descend.torch.distributed as ddist

    ddist.save({"optim": get_optimizer_state_dict(model, optimizer)}, "ckpt/")
    state = {"optim": get_optimizer_state_dict(model, optimizer)}   # a template: shapes and shards
    ddist.load(state, "ckpt/")
    set_optimizer_state_dict(model, optimizer, state["optim"])
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import re
import sys
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import DefaultLoadPlanner, DefaultSavePlanner, StorageReader, StorageWriter
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.metadata import (
    BytesStorageMetadata,
    ChunkStorageMetadata,
    Metadata,
    MetadataIndex,
    StorageMeta,
    TensorProperties,
    TensorStorageMetadata,
)
from torch.distributed.checkpoint.planner import LoadItemType, LoadPlan, ReadItem, SavePlan, WriteItem, WriteItemType
from torch.distributed.checkpoint.stateful import Stateful
from torch.distributed.checkpoint.storage import WriteResult
from torch.distributed.tensor import DTensor, Replicate
from torch.futures import Future

from descend.errors import DescendError, ParameterError, StructureError

if TYPE_CHECKING:  # pragma: no cover
    from descend.torch.optimizer import Optimizer

# descend's named optimizers whose update is elementwise: each element of the update, and of the state,
# depends only on the same element of the gradient, the parameter and the state, plus scalars (the step
# count). They run on FSDP2's local shards. An optimizer added to descend.optim.alias is gathered until it
# is listed here.
ELEMENTWISE = frozenset(
    {
        "adadelta",
        "adagrad",
        "adam",
        "adamax",
        "adamw",
        "asgd",
        "lion",
        "momentum",
        "nadam",
        "radam",
        "rmsprop",
        "rprop",
        "sgd",
    }
)


# ---------------------------------------------------------------------------------------------------- FSDP2


def is_sharded(group: dict[str, Any]) -> bool:
    """Whether a parameter group holds a ``DTensor`` (FSDP2, tensor parallelism): :func:`step_group` steps it."""
    return any(isinstance(p, DTensor) for p in group["params"])


def is_elementwise(optimizer: Optimizer, group: dict[str, Any]) -> bool:
    """A drop-in class of an elementwise optimizer (:data:`ELEMENTWISE`) whose group has no ``"tx"`` of its own."""
    return (
        group.get("tx") is None
        and getattr(optimizer, "factory", None) is not None
        and getattr(optimizer, "factory_name", "") in ELEMENTWISE
    )


def _shard_of(whole: torch.Tensor, like: DTensor) -> torch.Tensor:
    """This rank's shard of ``whole``, placed as the DTensor ``like`` (no communication: a slice)."""
    mesh = like.device_mesh
    replicated = DTensor.from_local(whole, mesh, [Replicate()] * mesh.ndim, run_check=False)
    return replicated.redistribute(mesh, like.placements).to_local()


def _as_dtensor(local: torch.Tensor, like: DTensor) -> DTensor:
    return DTensor.from_local(
        local, like.device_mesh, like.placements, shape=like.shape, stride=like.stride(), run_check=False
    )


class _Proxy:
    """The persistent stand-in group of one real group (so the optimizer's per-group cache keeps working)."""

    __slots__ = ("group", "real")

    def __init__(self, real: dict[str, Any]):
        self.real = real
        self.group: dict[str, Any] = {}


def step_group(optimizer: Optimizer, index: int, group: dict[str, Any]) -> None:
    """Step a group with ``DTensor`` parameters: on the local shards, or gathered whole (see the module doc).

    The group is stepped through ``optimizer._step_group`` on plain tensors standing in for the DTensors (the
    local shards, or the gathered whole tensors), so layouts, learning rates and per-parameter step counts
    behave exactly as without sharding; the state is then stored back under the real parameters.
    """
    local = is_elementwise(optimizer, group)
    proxies: dict[str, _Proxy] = optimizer.__dict__.setdefault("_descend_sharded_groups", {})
    proxy = proxies.get(str(index))
    if proxy is None or proxy.real is not group:
        proxy = proxies[str(index)] = _Proxy(group)
    pairs: list[tuple[Any, torch.Tensor]] = []  # (DTensor parameter, the plain tensor standing in for it)
    params: list[torch.Tensor] = []
    for p in group["params"]:
        if not isinstance(p, DTensor):
            params.append(p)
            continue
        if p.grad is not None and not isinstance(p.grad, DTensor):
            raise StructureError(
                f"descend.torch.{type(optimizer).__name__}: a DTensor parameter needs a DTensor gradient, got a "
                f"{type(p.grad).__name__} of shape {tuple(p.grad.shape)} for a parameter of shape {tuple(p.shape)}"
            )
        if local or p.grad is None:
            stand_in = p.to_local().detach()  # shares the shard's storage: the step writes the shard in place
            if p.grad is not None:
                stand_in.grad = p.grad.to_local().detach()
        else:
            stand_in = p.full_tensor().detach()
            stand_in.grad = p.grad.full_tensor().detach()
        stored = optimizer.state.get(p)
        if stored:
            optimizer.state[stand_in] = {
                k: ((v.to_local() if local else v.full_tensor()) if isinstance(v, DTensor) else v)
                for k, v in stored.items()
            }
        pairs.append((p, stand_in))
        params.append(stand_in)
    proxy.group.clear()
    proxy.group.update(group)
    proxy.group["params"] = params
    try:
        optimizer._step_group(index, proxy.group)
        updated = {}
        for p, stand_in in pairs:
            if stand_in in optimizer.state:
                updated[p] = _store_sharded(optimizer, p, stand_in, optimizer.state[stand_in], local)
            if not local and p.grad is not None:
                p.to_local().copy_(_shard_of(stand_in, p))
    finally:
        for _, stand_in in pairs:
            optimizer.state.pop(stand_in, None)
            stand_in.grad = None
        proxy.group["params"] = []
    for p, state in updated.items():
        optimizer.state[p] = state


def _store_sharded(optimizer: Optimizer, p: Any, stand_in: torch.Tensor, state: dict, local: bool) -> dict:
    """The state of a stand-in as the real parameter keeps it: parameter-sized tensors as shards placed like it."""
    out = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.ndim > 0 and tuple(value.shape) == tuple(stand_in.shape):
            out[key] = _as_dtensor(value if local else _shard_of(value, p), p)
        elif local and isinstance(value, torch.Tensor) and value.ndim > 0:
            # a check on descend's own list: an optimizer that keeps such state is not elementwise
            raise StructureError(
                f"descend.torch.{type(optimizer).__name__}: an optimizer stepped on local shards must keep state "
                f"the shape of the shard {tuple(stand_in.shape)} or scalars, got {key!r} of shape "
                f"{tuple(value.shape)}; it does not belong in descend.torch.distributed.ELEMENTWISE"
            )
        else:
            out[key] = value
    return out


# ------------------------------------------------------------------------------------ checkpoints, no pickle

FORMAT = "descend-dcp"
FORMAT_VERSION = 1
METADATA = "metadata.json"
_DATA_FILE = re.compile(r"^[0-9a-f]{32}-[0-9]+\.bin$")
_TUPLE, _PAIRS = "__tuple__", "__pairs__"
_OWNER = "descend.torch.distributed"


def _encode(value: Any, where: str) -> Any:
    """A JSON value for a non-tensor entry of a state dict (tuples and non-string keys are tagged)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, np.generic) and value.shape == ():
        return _encode(value.item(), where)
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not ({_TUPLE, _PAIRS} & value.keys()):
            return {k: _encode(v, f"{where}.{k}") for k, v in value.items()}
        return {_PAIRS: [[_encode(k, f"{where} key"), _encode(v, f"{where}[{k!r}]")] for k, v in value.items()]}
    raise ParameterError(
        f"{_OWNER}.save: {where} must be a tensor, a number, a string, a bool, None, or a list, tuple or dict of "
        f"them, got {type(value).__name__}"
    )


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {_TUPLE}:
            return tuple(_decode(v) for v in value[_TUPLE])
        if set(value) == {_PAIRS}:
            return {_hashable(_decode(k)): _decode(v) for k, v in value[_PAIRS]}
        return {k: _decode(v) for k, v in value.items()}
    return value


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key


def _check_saveable(tree: Any, where: str) -> None:
    """Every leaf of a state dict is a tensor or JSON-encodable: checked before anything is written."""
    if isinstance(tree, torch.Tensor):
        return
    if isinstance(tree, dict):
        for k, v in tree.items():
            _check_saveable(v, f"{where}.{k}" if where else str(k))
        return
    if isinstance(tree, (list, tuple)) and any(isinstance(v, (torch.Tensor, dict, list, tuple)) for v in tree):
        for i, v in enumerate(tree):
            _check_saveable(v, f"{where}[{i}]")
        return
    if isinstance(tree, Stateful):  # dcp saves its state_dict()
        _check_saveable(tree.state_dict(), where)
        return
    _encode(tree, where or "the state dict")


def _set_path(root: Any, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        root = root[key]
    root[path[-1]] = value


class SafeSavePlanner(DefaultSavePlanner):
    """``DefaultSavePlanner`` whose non-tensor values are JSON, not ``torch.save`` pickles (for :class:`SafeWriter`)."""

    def transform_object(self, write_item: WriteItem, object: Any) -> Any:
        if write_item.type == WriteItemType.BYTE_IO:
            return io.BytesIO(json.dumps(_encode(object, write_item.index.fqn), allow_nan=True).encode())
        return object


class SafeLoadPlanner(DefaultLoadPlanner):
    """``DefaultLoadPlanner`` that reads the JSON values :class:`SafeSavePlanner` wrote (for :class:`SafeReader`)."""

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        # DefaultLoadPlanner.load_bytes would torch.load (unpickle) the bytes; this decodes JSON and puts the
        # value where that method puts it.
        obj = _decode(json.loads(value.getvalue().decode()))
        if self.flatten_state_dict:
            _set_path(self.original_state_dict, self.mappings[read_item.dest_index.fqn], obj)
        else:
            self.state_dict[read_item.dest_index.fqn] = obj


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _dtype(name: Any, path: Path) -> torch.dtype:
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise StructureError(f"{_OWNER}.load: {path} names an unknown dtype {name!r}")
    return dtype


def _raw_bytes(tensor: torch.Tensor) -> bytes:
    t = tensor.detach().to("cpu").contiguous().reshape(-1)
    if t.numel() == 0:
        return b""
    return t.view(torch.uint8).numpy().tobytes()


class SafeWriter(StorageWriter):
    """A ``torch.distributed.checkpoint`` storage writer: raw tensor bytes and a JSON index, no pickle.

    Each rank writes one new file per save (named by the save's id); the coordinator then replaces
    ``metadata.json`` atomically and removes the data files of the checkpoint it replaced.
    """

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self.path = Path(path)
        self.save_id = uuid.uuid4().hex

    def reset(self, checkpoint_id: str | os.PathLike | None = None) -> None:
        if checkpoint_id:
            self.path = Path(checkpoint_id)
        self.save_id = uuid.uuid4().hex

    def set_up_storage_writer(self, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        self.is_coordinator = is_coordinator

    def storage_meta(self) -> StorageMeta:
        return StorageMeta(checkpoint_id=str(self.path), save_id=self.save_id)

    def prepare_local_plan(self, plan: SavePlan) -> SavePlan:
        self.path.mkdir(parents=True, exist_ok=True)
        return plan

    def prepare_global_plan(self, plans: list[SavePlan]) -> list[SavePlan]:
        # new names for this save's files (the coordinator's id): the checkpoint in the directory is not touched
        return [dataclasses.replace(plan, storage_data=f"{self.save_id}-{i}.bin") for i, plan in enumerate(plans)]

    def write_data(self, plan: SavePlan, planner: Any) -> Future:
        if not isinstance(planner, SafeSavePlanner):
            raise ParameterError(
                f"{_OWNER}.SafeWriter: the planner must be a {_OWNER}.SafeSavePlanner (others write pickles), "
                f"got {type(planner).__name__}"
            )
        name = plan.storage_data
        results, offset = [], 0
        with open(self.path / name, "wb") as f:
            for item in plan.items:
                data = planner.resolve_data(item)
                if item.type == WriteItemType.BYTE_IO:
                    raw, info = data.getvalue(), {"kind": "json"}
                else:
                    raw = _raw_bytes(data)
                    info = {"kind": "tensor", "dtype": _dtype_name(data.dtype), "sizes": list(data.shape)}
                f.write(raw)
                info.update(file=name, start=offset, length=len(raw))
                results.append(WriteResult(index=item.index, size_in_bytes=len(raw), storage_data=info))
                offset += len(raw)
            f.flush()
            os.fsync(f.fileno())
        future: Future = Future()
        future.set_result(results)
        return future

    def finish(self, metadata: Metadata, results: list[list[WriteResult]]) -> None:
        storage = []
        for result in (r for rank in results for r in rank):
            index = result.index
            offset = None if index.offset is None else list(index.offset)
            storage.append({"fqn": index.fqn, "offset": offset, "index": index.index, **result.storage_data})
        entries: dict[str, Any] = {}
        for fqn, md in metadata.state_dict_metadata.items():
            if isinstance(md, TensorStorageMetadata):
                entries[fqn] = {
                    "type": "tensor",
                    "dtype": _dtype_name(md.properties.dtype),
                    "requires_grad": bool(md.properties.requires_grad),
                    "size": list(md.size),
                    "chunks": [{"offsets": list(c.offsets), "sizes": list(c.sizes)} for c in md.chunks],
                }
            else:
                entries[fqn] = {"type": "bytes"}
        planner_data = metadata.planner_data
        document = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "byteorder": sys.byteorder,
            "torch": torch.__version__,
            "save_id": self.save_id,
            "state_dict_metadata": entries,
            "planner_data": None if planner_data is None else {k: list(v) for k, v in planner_data.items()},
            "storage": storage,
        }
        tmp = self.path / f".{METADATA}.{self.save_id}.tmp"
        with open(tmp, "w") as f:
            json.dump(document, f, allow_nan=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / METADATA)  # the new checkpoint is whole: only now is the old one replaced
        keep = {entry["file"] for entry in storage}
        for old in self.path.iterdir():
            if _DATA_FILE.match(old.name) and old.name not in keep:
                old.unlink(missing_ok=True)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike) -> bool:
        return isinstance(checkpoint_id, (str, os.PathLike))


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON index of a checkpoint :func:`save` wrote in ``path``, checked (one clear error if it is not one)."""
    path = Path(path)
    where = path / METADATA
    if not where.is_file():
        if not path.is_dir():
            raise StructureError(
                f"{_OWNER}.load: {path} must be a checkpoint directory written by {_OWNER}.save; it does not exist"
            )
        pickled = (
            " (it holds a torch.distributed.checkpoint .metadata, a pickle, which descend does not load)"
            if (path / ".metadata").exists()
            else ""
        )
        raise StructureError(
            f"{_OWNER}.load: {path} must be a checkpoint written by {_OWNER}.save, with a {METADATA}; "
            f"got a directory without one{pickled}"
        )
    try:
        document = json.loads(where.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StructureError(f"{_OWNER}.load: {where} must be JSON written by {_OWNER}.save, got: {error}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        got = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise StructureError(f"{_OWNER}.load: {where} must have format {FORMAT!r}, got {got!r}")
    if document.get("version") != FORMAT_VERSION:
        raise StructureError(
            f"{_OWNER}.load: {where} must be format version {FORMAT_VERSION}, got {document.get('version')!r}"
        )
    if document.get("byteorder") != sys.byteorder:
        raise StructureError(
            f"{_OWNER}.load: {where} must come from a {sys.byteorder}-endian machine like this one, got "
            f"{document.get('byteorder')!r}"
        )
    return document


class SafeReader(StorageReader):
    """A ``torch.distributed.checkpoint`` storage reader for what :class:`SafeWriter` wrote; it loads no pickle."""

    def __init__(self, path: str | os.PathLike):
        super().__init__()
        self.path = Path(path)
        self.storage: dict[Any, dict] = {}

    def reset(self, checkpoint_id: str | os.PathLike | None = None) -> None:
        if checkpoint_id:
            self.path = Path(checkpoint_id)
        self.storage = {}

    def read_metadata(self) -> Metadata:
        document = read_metadata(self.path)
        where = self.path / METADATA
        entries: dict[str, Any] = {}
        for fqn, md in document["state_dict_metadata"].items():
            if md["type"] == "bytes":
                entries[fqn] = BytesStorageMetadata()
                continue
            properties = TensorProperties(dtype=_dtype(md["dtype"], where), requires_grad=md["requires_grad"])
            chunks = [ChunkStorageMetadata(torch.Size(c["offsets"]), torch.Size(c["sizes"])) for c in md["chunks"]]
            entries[fqn] = TensorStorageMetadata(properties, torch.Size(md["size"]), chunks)
        storage = {MetadataIndex(e["fqn"], e["offset"], e["index"]): e for e in document["storage"]}
        planner_data = document["planner_data"]
        if planner_data is not None:
            planner_data = {k: tuple(v) for k, v in planner_data.items()}
        return Metadata(
            state_dict_metadata=entries,
            planner_data=planner_data,
            storage_data=storage,
            storage_meta=StorageMeta(checkpoint_id=str(self.path), save_id=document.get("save_id")),
        )

    def set_up_storage_reader(self, metadata: Metadata, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        self.storage = metadata.storage_data

    def prepare_local_plan(self, plan: LoadPlan) -> LoadPlan:
        return plan

    def prepare_global_plan(self, plans: list[LoadPlan]) -> list[LoadPlan]:
        return plans

    def read_data(self, plan: LoadPlan, planner: Any) -> Future:
        if not isinstance(planner, SafeLoadPlanner):
            raise ParameterError(
                f"{_OWNER}.SafeReader: the planner must be a {_OWNER}.SafeLoadPlanner (others load pickles), "
                f"got {type(planner).__name__}"
            )
        by_file: dict[str, list] = {}
        for item in plan.items:
            by_file.setdefault(self.storage[item.storage_index]["file"], []).append(item)
        for name, items in by_file.items():
            with open(self.path / name, "rb") as f:
                for item in items:
                    self._read_item(f, self.path / name, item, planner)
        future: Future = Future()
        future.set_result(None)
        return future

    def _read_item(self, f: Any, path: Path, item: ReadItem, planner: Any) -> None:
        info = self.storage[item.storage_index]
        f.seek(info["start"])
        raw = f.read(info["length"])
        if len(raw) != info["length"]:
            raise StructureError(
                f"{_OWNER}.load: {path} must hold {info['length']} bytes of {item.storage_index.fqn} at "
                f"{info['start']}, got {len(raw)} (truncated)"
            )
        if item.type == LoadItemType.BYTE_IO:
            planner.load_bytes(item, io.BytesIO(raw))
            return
        dtype, sizes = _dtype(info["dtype"], self.path / METADATA), info["sizes"]
        expected = math.prod(sizes) * torch.empty((), dtype=dtype).element_size()
        if len(raw) != expected:
            raise StructureError(
                f"{_OWNER}.load: {item.storage_index.fqn} in {path} must be {expected} bytes ({sizes} "
                f"{info['dtype']}), got {len(raw)}"
            )
        tensor = (
            torch.frombuffer(bytearray(raw), dtype=dtype).reshape(sizes) if raw else torch.empty(sizes, dtype=dtype)
        )
        for dim, (start, length) in enumerate(zip(item.storage_offsets, item.lengths, strict=True)):
            tensor = tensor.narrow(dim, start, length)
        target = planner.resolve_tensor(item).detach()
        if target.shape != tensor.shape:
            raise StructureError(
                f"{_OWNER}.load: {item.dest_index.fqn} must have shape {tuple(target.shape)} as here, the "
                f"checkpoint holds {tuple(tensor.shape)}"
            )
        target.copy_(tensor)
        planner.commit_tensor(item, target)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike) -> bool:
        return isinstance(checkpoint_id, (str, os.PathLike))


def _dcp_call(fn: Any, state_dict: dict[str, Any], path: str | os.PathLike, **kwargs: Any) -> None:
    """Run ``dcp.save`` / ``dcp.load``; a descend error raised inside (on any rank) comes out as itself."""
    with warnings.catch_warnings():
        # without a process group dcp works in this one process, as asked, and says so with a warning
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        try:
            fn(state_dict, checkpoint_id=path, **kwargs)
        except CheckpointException as error:
            for failure in error.failures.values():
                cause = failure[0] if isinstance(failure, tuple) else failure
                if isinstance(cause, DescendError):
                    raise cause from None
            raise


def _check_files(document: dict[str, Any], path: Path) -> None:
    """Every data file the index names is there and long enough (so a damaged checkpoint fails before dcp runs)."""
    needed: dict[str, int] = {}
    for entry in document["storage"]:
        needed[entry["file"]] = max(needed.get(entry["file"], 0), entry["start"] + entry["length"])
    for name, size in needed.items():
        file = path / name
        have = file.stat().st_size if file.is_file() else None
        if have is None or have < size:
            got = "no such file" if have is None else f"{have} bytes"
            raise StructureError(f"{_OWNER}.load: {file} must hold {size} bytes as {path / METADATA} says, got {got}")


def save(state_dict: dict[str, Any], path: str | os.PathLike, *, process_group: Any = None) -> None:
    """``torch.distributed.checkpoint.save`` to directory ``path`` without pickle (collective: every rank calls it).

    Values must be tensors (``DTensor`` shards included) or JSON-like (numbers, strings, bools, ``None``, and
    lists, tuples and dicts of them); anything else is refused before a byte is written. Without an
    initialized process group it saves from this one process.
    """
    if not isinstance(state_dict, dict):
        raise ParameterError(f"{_OWNER}.save: state_dict must be a dict, got {type(state_dict).__name__}")
    _check_saveable(state_dict, "")
    writer = SafeWriter(path)
    _dcp_call(dcp.save, state_dict, path, storage_writer=writer, planner=SafeSavePlanner(), process_group=process_group)


def load(state_dict: dict[str, Any], path: str | os.PathLike, *, process_group: Any = None) -> None:
    """``torch.distributed.checkpoint.load`` from a directory :func:`save` wrote, in place into ``state_dict``.

    ``state_dict`` is the template (``get_model_state_dict`` / ``get_optimizer_state_dict`` of the model and
    optimizer to restore): its tensors are filled in place, at this run's sharding, and its other values
    replaced by the saved ones.
    """
    if not isinstance(state_dict, dict):
        raise ParameterError(f"{_OWNER}.load: state_dict must be a dict, got {type(state_dict).__name__}")
    _check_files(read_metadata(path), Path(path))  # one clear error, the same on every rank, before dcp starts
    reader = SafeReader(path)
    _dcp_call(dcp.load, state_dict, path, storage_reader=reader, planner=SafeLoadPlanner(), process_group=process_group)


__all__ = [
    "ELEMENTWISE",
    "SafeLoadPlanner",
    "SafeReader",
    "SafeSavePlanner",
    "SafeWriter",
    "is_elementwise",
    "is_sharded",
    "load",
    "read_metadata",
    "save",
    "step_group",
]
