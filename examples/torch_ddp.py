"""Data-parallel training with a descend optimizer in PyTorch (DDP), on a laptop's CPU or on GPUs.

    torchrun --nproc-per-node 2 examples/torch_ddp.py            # 2 processes, CPU + gloo (cuda + nccl if GPUs)
    torchrun --nproc-per-node 2 examples/torch_ddp.py --steps 50 --checkpoint ckpt/
    python examples/torch_ddp.py                                 # also runs as one plain process

Every process builds the same model, wraps it in DistributedDataParallel and trains on its own slice of each
batch; DDP averages the gradients, so every rank takes the same step with ``descend.torch.AdamW`` (a drop-in for
``torch.optim.AdamW``: same keywords, same defaults, same ``state_dict`` layout). With ``--checkpoint DIR`` the
model and optimizer are saved with ``torch.distributed.checkpoint`` at the end (``descend.torch.distributed.save``:
dcp with a storage that writes and reads no pickle), and restored from DIR at the start when it holds a
checkpoint, so a second run continues the first where it stopped.
"""

from __future__ import annotations

import argparse
import gc
import os

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.nn.parallel import DistributedDataParallel

import descend.torch.distributed as ddist
from descend.torch import AdamW


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200, help="optimizer steps (default 200)")
    p.add_argument("--batch-size", type=int, default=64, help="global batch size, split over the ranks (default 64)")
    p.add_argument("--lr", type=float, default=3e-3, help="learning rate (default 3e-3)")
    p.add_argument("--checkpoint", default=None, help="directory to restore from (if it exists) and save to")
    p.add_argument("--cpu", action="store_true", help="use the CPU and gloo even when CUDA is available")
    return p.parse_args()


def setup(force_cpu: bool) -> torch.device:
    """Join the process group torchrun describes in the environment (or a group of one without torchrun)."""
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29500")
    if torch.cuda.is_available() and not force_cpu:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
        return torch.device("cuda", local_rank)
    dist.init_process_group("gloo")
    return torch.device("cpu")


def make_batch(step: int, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's rows of step ``step``'s batch: y = sin(x·w) + noise, the same data on every run."""
    g = torch.Generator().manual_seed(step)
    w = torch.linspace(-1.0, 1.0, 16)
    x = torch.randn(batch_size, 16, generator=g)
    y = torch.sin(x @ w).unsqueeze(1) + 0.05 * torch.randn(batch_size, 1, generator=g)
    rank, world = dist.get_rank(), dist.get_world_size()
    rows = slice(rank * batch_size // world, (rank + 1) * batch_size // world)
    return x[rows].to(device), y[rows].to(device)


def train(args: argparse.Namespace, device: torch.device) -> None:
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.batch_size % world:
        raise SystemExit(f"torch_ddp: --batch-size must be a multiple of the {world} processes, got {args.batch_size}")

    torch.manual_seed(0)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.GELU(), torch.nn.Linear(64, 1)).to(device)
    model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)

    start = 0
    if args.checkpoint and os.path.exists(os.path.join(args.checkpoint, "metadata.json")):
        state = {
            "model": get_model_state_dict(model),
            "optim": get_optimizer_state_dict(model, optimizer),
            "step": torch.tensor(0),
        }
        ddist.load(state, args.checkpoint)  # torch.distributed.checkpoint, with a storage that loads no pickle
        set_model_state_dict(model, state["model"])
        set_optimizer_state_dict(model, optimizer, state["optim"])
        start = int(state["step"])
        if rank == 0:
            print(f"restored step {start} from {args.checkpoint}")

    for step in range(start, start + args.steps):
        x, y = make_batch(step, args.batch_size, device)
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()  # DDP averages the gradients over the ranks here
        optimizer.step()
        if step % max(1, args.steps // 10) == 0 or step == start + args.steps - 1:
            mean = loss.detach().clone()
            dist.all_reduce(mean)
            if rank == 0:
                print(f"step {step:4d}  loss {mean.item() / world:.5f}")

    if args.checkpoint:
        state = {
            "model": get_model_state_dict(model),
            "optim": get_optimizer_state_dict(model, optimizer),
            "step": torch.tensor(start + args.steps),
        }
        ddist.save(state, args.checkpoint)
        if rank == 0:
            print(f"saved step {start + args.steps} to {args.checkpoint}")


def main() -> None:
    args = parse_args()
    device = setup(args.cpu)
    try:
        train(args, device)
    finally:
        # Free every tensor a collective may still hold (some sit in reference cycles) while the process group
        # lives: gloo can hang at exit if they are destroyed after it.
        gc.collect()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
