"""One training epoch, descend against PyTorch eager on the CPU, same network, recipe, threads and batch order.

Fashion-MNIST MLP 784-256-128-10 (batch 128, Adam lr 1e-3) and the CNN preset (conv 32 → conv 64 → 128 → 10).
Each repeat times one descend epoch and one torch epoch back to back (alternating which goes first), and the
reported ratio is the median of the per-repeat ratios: absolute times drift on a shared machine, ratios taken
side by side do not.

    .venv/bin/python -m benchmarks.train_epoch [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np

MLP = {"name": "Fashion-MNIST MLP epoch (784-256-128-10, batch 128, Adam)", "model": "mlp"}
CNN = {"name": "Fashion-MNIST CNN epoch (conv32-conv64-128, batch 128, Adam)", "model": "cnn"}


def _data(n: int | None):
    import descend as dc

    splits = dc.data.load("fashion-mnist", flatten=True, normalize=True, download=False)
    x, y = splits.train.x, splits.train.y
    if n is not None:
        x, y = x[:n], y[:n]
    return np.ascontiguousarray(x), y


def _descend_trainer(kind: str, seed: int = 0):
    import descend as dc

    model = dc.nn.mlp(784, (256, 128), 10, seed=seed) if kind == "mlp" else dc.nn.cnn2d(seed=seed)
    return dc.Trainer(model, "cross_entropy", dc.optim.adam(lr=1e-3), seed=seed)


def _torch_model(kind: str, seed: int = 0):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    if kind == "mlp":
        return nn.Sequential(
            nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
        )
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3136, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def _torch_epoch(model, opt, x, y, order: np.ndarray, batch: int) -> float:
    import torch

    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    idx = torch.from_numpy(order)
    t0 = time.perf_counter()
    for i in range(0, len(order), batch):
        b = idx[i : i + batch]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xt[b]), yt[b])
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def measure(kind: str, *, repeats: int = 5, n: int | None = None, batch: int = 128) -> dict[str, Any]:
    """Median seconds per epoch for descend and torch and the median of the per-repeat ratios."""
    import torch

    from descend.data import Loader

    threads = torch.get_num_threads()
    x, y = _data(n)
    trainer = _descend_trainer(kind)
    tmodel = _torch_model(kind)
    topt = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
    ours, theirs, ratios = [], [], []
    for r in range(repeats):
        # Same batch order in both: the order descend's seeded loader draws for this epoch.
        loader = Loader((x, y), batch, shuffle=True, seed=r)
        order = loader.order(0)
        pair = []
        for who in ("descend", "torch") if r % 2 == 0 else ("torch", "descend"):
            if who == "descend":
                trainer.loader = loader
                trainer.batches_per_epoch = len(trainer.loader)
                trainer.epochs = trainer.epoch + 1
                t0 = time.perf_counter()
                trainer._train_epoch()
                trainer.epoch += 1
                pair.append(("descend", time.perf_counter() - t0))
            else:
                pair.append(("torch", _torch_epoch(tmodel, topt, x, y, order.astype(np.int64), batch)))
        d = dict(pair)
        ours.append(d["descend"])
        theirs.append(d["torch"])
        ratios.append(d["descend"] / d["torch"])
    return {
        "benchmark": (MLP if kind == "mlp" else CNN)["name"],
        "size": f"{len(x)} samples",
        "descend_s": statistics.median(ours),
        "torch_s": statistics.median(theirs),
        "ratio": statistics.median(ratios),
        "torch_path": f"eager, Adam (foreach), {threads} threads",
        "repeats": repeats,
    }


def rows(quick: bool = False) -> list[dict[str, Any]]:
    """Rows for the benchmark table (benchmarks/run.py collects them)."""
    if quick:
        return [measure("mlp", repeats=3), measure("cnn", repeats=3, n=6000)]
    return [measure("mlp", repeats=7), measure("cnn", repeats=3)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for row in rows(args.quick):
        print(
            f"{row['benchmark']}: descend {row['descend_s']:.3f} s, torch {row['torch_s']:.3f} s, "
            f"ratio {row['ratio']:.2f} ({row['torch_path']}, median of {row['repeats']})"
        )


if __name__ == "__main__":
    main()
