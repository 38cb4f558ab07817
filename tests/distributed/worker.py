"""The program each rank runs in the multi-process tests (started by :func:`tests.distributed.launch.run_ranks`).

``python tests/distributed/worker.py OUT_DIR JOB_JSON`` reads the rendezvous from the environment (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), joins a gloo process group on the CPU and does the runs that
``JOB_JSON`` lists, in order, all in one process group (starting processes is the slow part). Each run is a dict:

* ``name``: the result is written to ``OUT_DIR/<name>.rank<r>.npz`` (the full parameters, gathered from the shards
  under FSDP2, float64) and ``<name>.rank<r>.state.json`` (how the optimizer keeps its state: :func:`state_layout`)
  or, when the run raises a :class:`descend.DescendError`, ``<name>.rank<r>.error.txt`` (``ClassName: message``;
  the other runs still happen);
* ``mode``: ``"ddp"`` (``DistributedDataParallel``) or ``"fsdp"`` (``fully_shard`` on each layer, then the model);
* ``optimizer``: a name :func:`make_optimizer` knows;
* ``steps``: ``[start, stop]``, the batches of steps ``start .. stop-1`` (a restored run continues the data);
* ``load`` / ``save``: a directory to restore the model and optimizer from before training, or to save them to
  after, with ``torch.distributed.checkpoint`` (``get_/set_model_state_dict``, ``get_/set_optimizer_state_dict``)
  through :mod:`descend.torch.distributed`'s pickle-free storage (``model_only``: restore the weights only);
* ``shards_as_matrices``: a control that steps the optimizer on FSDP2's local shards even when it needs whole
  tensors (what descend must never do).

The model, the data and the single-process reference are plain functions so the tests import the same code.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

import numpy as np
import torch

IN, HIDDEN, OUT = 6, 8, 3
GLOBAL_BATCH = 16  # rows per step over all ranks; each rank takes GLOBAL_BATCH // world consecutive rows
DTYPE = torch.float64


def make_optimizer(name: str, params):
    """The descend.torch optimizer ``name`` over ``params``, with the same hyperparameters in every test."""
    import descend.torch as dt

    if name == "adamw":
        return dt.AdamW(params, lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)
    if name == "adafactor":
        return dt.Adafactor(params, lr=1e-2, weight_decay=0.1)
    if name == "clipped-adamw":  # a chain descend can not vouch for: global-norm clipping needs every whole gradient
        from descend import optim

        tx = optim.chain(optim.clip_by_global_norm(0.05), optim.adamw(lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1))
        return dt.Optimizer(params, tx)
    raise ValueError(f"worker: unknown optimizer {name!r}")


def build_model() -> torch.nn.Module:
    """A float64 MLP 6 -> 8 -> 8 -> 3 with the same initial weights in every process."""
    with torch.random.fork_rng():  # seeded here without touching the caller's global generator
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(IN, HIDDEN),
            torch.nn.Tanh(),
            torch.nn.Linear(HIDDEN, HIDDEN),
            torch.nn.Tanh(),
            torch.nn.Linear(HIDDEN, OUT),
        ).to(DTYPE)


def batch(step: int, rank: int = 0, world: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``rank`` of step ``step``'s global batch split ``world`` ways (the whole batch for ``world=1``)."""
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(GLOBAL_BATCH, IN, generator=g, dtype=DTYPE)
    y = torch.randn(GLOBAL_BATCH, OUT, generator=g, dtype=DTYPE)
    per = GLOBAL_BATCH // world
    return x[rank * per : (rank + 1) * per], y[rank * per : (rank + 1) * per]


def train(model, optimizer, start: int, stop: int, rank: int = 0, world: int = 1) -> None:
    """Steps ``start .. stop-1`` of mean-squared-error training on this rank's rows."""
    for step in range(start, stop):
        x, y = batch(step, rank, world)
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()


def full_params(model) -> dict[str, np.ndarray]:
    """Every parameter as a full float64 array (gathered from the shards of DTensor parameters)."""
    out = {}
    for name, p in model.named_parameters():
        t = p.full_tensor() if hasattr(p, "full_tensor") else p
        out[name.removeprefix("module.")] = t.detach().cpu().numpy().copy()
    return out


def single_process(optimizer: str, steps: int) -> dict[str, np.ndarray]:
    """The reference: one process, the full batch, ``steps`` steps."""
    model = build_model()
    train(model, make_optimizer(optimizer, model.parameters()), 0, steps)
    return full_params(model)


def _wrap(model, mode: str):
    if mode == "ddp":
        return torch.nn.parallel.DistributedDataParallel(model)
    if mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in model:
            if isinstance(layer, torch.nn.Linear):
                fully_shard(layer)
        return fully_shard(model)
    raise ValueError(f"worker: unknown mode {mode!r}")


def _on_local_shards(step):
    import descend.torch.distributed as ddist

    def patched(*args, **kwargs):
        original, ddist.is_elementwise = ddist.is_elementwise, lambda optimizer, group: True
        try:
            return step(*args, **kwargs)
        finally:
            ddist.is_elementwise = original

    return patched


def _run(spec: dict, rank: int, world: int):
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    import descend.torch.distributed as ddist

    model = _wrap(build_model(), spec["mode"])
    optimizer = make_optimizer(spec["optimizer"], model.parameters())
    if spec.get("shards_as_matrices"):  # a control: step every optimizer on the local shards, as if elementwise
        optimizer.step = _on_local_shards(optimizer.step)
    if spec.get("load"):
        state = {"model": get_model_state_dict(model)}
        if not spec.get("model_only"):  # model_only: a control that restores the weights and not the optimizer
            state["optim"] = get_optimizer_state_dict(model, optimizer)
        ddist.load(state, spec["load"])
        set_model_state_dict(model, state["model"])
        if "optim" in state:
            set_optimizer_state_dict(model, optimizer, state["optim"])
    start, stop = spec["steps"]
    train(model, optimizer, start, stop, rank, world)
    if spec.get("save"):
        state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, optimizer)}
        ddist.save(state, spec["save"])
    return model, optimizer


def state_layout(model, optimizer) -> dict[str, dict[str, dict]]:
    """How the optimizer keeps each parameter's state: per key, the tensor's type, placements and shapes."""
    out = {}
    for name, p in model.named_parameters():
        entry = {}
        for key, value in optimizer.state.get(p, {}).items():
            if isinstance(value, torch.Tensor):
                local = value.to_local() if hasattr(value, "to_local") else value
                entry[key] = {
                    "type": type(value).__name__,
                    "placements": [str(pl) for pl in getattr(value, "placements", ())],
                    "shape": list(value.shape),
                    "local_shape": list(local.shape),
                }
        out[name.removeprefix("module.")] = {
            "param_local_shape": list((p.to_local() if hasattr(p, "to_local") else p).shape),
            "state": entry,
        }
    return out


def main(argv: list[str]) -> int:
    import torch.distributed as dist

    from descend.errors import DescendError

    out, job = Path(argv[0]), json.loads(argv[1])
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        for spec in job:
            try:
                model, optimizer = _run(spec, rank, world)
            except DescendError as e:
                (out / f"{spec['name']}.rank{rank}.error.txt").write_text(f"{type(e).__name__}: {e}")
                continue
            np.savez(out / f"{spec['name']}.rank{rank}.npz", **full_params(model))
            layout = json.dumps(state_layout(model, optimizer))
            (out / f"{spec['name']}.rank{rank}.state.json").write_text(layout)
            dist.barrier()
    finally:
        gc.collect()  # tensors a collective still holds (in reference cycles) go while the group lives: see the example
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
