"""Hessian-vector products and the top eigenvalue (descend.diagnostics) against torch's double backward.

The Fashion-MNIST MLP of ``descend train`` (784 → 256 → 128 → 10, ReLU, 235,146 parameters) on
1,000 training examples (random inputs of the same shape when the data set is not on this machine),
float64, at its initial weights:

* ``gradient``: one gradient of the mean cross-entropy (``ModelObjective.gradient``);
* ``hvp``: one Hessian-vector product (``HessianOperator.matvec``: two gradients with the ReLU masks
  frozen) against torch's forward-over-reverse product ``torch.func.jvp(torch.func.grad(loss))``
  (faster than ``torch.autograd.functional.hvp``'s double backward) of the same network; ``grads per HVP`` = its
  time / the gradient's (the target is ≤ 3);
* ``top eigenvalue``: ``top_eigenvalues(H, 1, tol=1e-6)`` (Lanczos, cold start), in seconds, against
  the same Lanczos driven by torch's products (the target is < 10 s).

Medians of alternating rounds. ``.venv/bin/python benchmarks/run.py --only hvp``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np


def _data(n: int) -> tuple[np.ndarray, np.ndarray, str]:
    from descend.data import load_fashion_mnist
    from descend.errors import DataError

    try:
        split = load_fashion_mnist(flatten=True, normalize=True, download=False).train
        return split.x[:n], split.y[:n].astype(np.int64), "Fashion-MNIST"
    except (DataError, OSError):
        rng = np.random.default_rng(0)
        return rng.standard_normal((n, 784)).astype(np.float32), rng.integers(0, 10, n), "random (no Fashion-MNIST)"


def _torch_hvp(model: Any, x: np.ndarray, y: np.ndarray):
    import torch
    import torch.nn.functional as F

    layout = model.layout
    xt = torch.from_numpy(x.astype(np.float64))
    yt = torch.from_numpy(y)

    def loss(theta: torch.Tensor) -> torch.Tensor:
        p = {i.name: theta[i.offset : i.offset + i.size].reshape(i.shape) for i in layout}
        h = F.relu(xt @ p["1.weight"].T + p["1.bias"])
        h = F.relu(h @ p["3.weight"].T + p["3.bias"])
        return F.cross_entropy(h @ p["5.weight"].T + p["5.bias"], yt)

    grad = torch.func.grad(loss)

    def hvp(theta: np.ndarray, v: np.ndarray) -> np.ndarray:  # forward-over-reverse: torch's fastest HVP
        return torch.func.jvp(grad, (torch.from_numpy(theta),), (torch.from_numpy(v),))[1].numpy()

    return hvp


class _TorchOperator:
    def __init__(self, hvp, theta: np.ndarray):
        self.hvp, self.theta, self.size = hvp, theta, theta.size

    def matvec(self, v: np.ndarray) -> np.ndarray:
        return self.hvp(self.theta, np.asarray(v, dtype=np.float64))


def rows(quick: bool = False) -> list[dict[str, Any]]:
    import torch

    import descend as dc
    from descend.diagnostics import HessianOperator, ModelObjective, top_eigenvalues

    torch.set_num_threads(max(1, torch.get_num_threads()))
    x, y, source = _data(1000)
    model = dc.nn.mlp(784, (256, 128), 10)
    obj = ModelObjective(model, x, y)
    H = HessianOperator(obj)
    theta = H.point
    v = np.random.default_rng(1).standard_normal(theta.size)
    thvp = _torch_hvp(model, x, y)
    rel = float(np.linalg.norm(H @ v - thvp(theta, v)) / np.linalg.norm(thvp(theta, v)))
    rounds = 3 if quick else 7
    g_t, h_t, t_t = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        obj.gradient(theta)
        g_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        H.matvec(v)
        h_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        thvp(theta, v)
        t_t.append(time.perf_counter() - t0)
    g, h, t = (1e3 * statistics.median(s) for s in (g_t, h_t, t_t))
    case = f"MLP 784-256-128-10, 1000 x {source}"
    out = [
        {"benchmark": "hvp", "case": f"gradient, {case}", "n": theta.size, "descend_ms": g, "torch_ms": None},
        {
            "benchmark": "hvp",
            "case": f"Hessian-vector product (rel. error vs torch {rel:.1e})",
            "n": theta.size,
            "descend_ms": h,
            "torch_ms": t,
            "ratio": h / t,
            "grads_per_hvp": h / g,
        },
    ]
    d_s, t_s, iters = [], [], 0
    for _ in range(1 if quick else 2):
        t0 = time.perf_counter()
        res = top_eigenvalues(HessianOperator(obj), 1, tol=1e-6, rng=0)
        d_s.append(time.perf_counter() - t0)
        iters = res.iterations
        t0 = time.perf_counter()
        ref = top_eigenvalues(_TorchOperator(thvp, theta), 1, tol=1e-6, rng=0)
        t_s.append(time.perf_counter() - t0)
    out.append(
        {
            "benchmark": "hvp",
            "case": f"top eigenvalue {res.values[0]:.4f} (torch {ref.values[0]:.4f}), Lanczos {iters} steps",
            "n": theta.size,
            "descend_s": min(d_s),
            "torch_s": min(t_s),
            "ratio": min(d_s) / min(t_s),
        }
    )
    return out


if __name__ == "__main__":  # pragma: no cover
    for row in rows(quick=True):
        print(row)
