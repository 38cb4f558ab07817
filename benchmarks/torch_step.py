"""``descend.torch`` step time: ``opt.step()`` of the drop-in classes against ``torch.optim`` on the same tensors.

For Adam, AdamW, SGD and SGD with momentum 0.9, on 100 float32 tensors totalling 10M
parameters (and on a 784-168-10 MLP, 133,570 parameters in 4 tensors: the per-step overhead),
it times one ``opt.step()`` of

* ``descend``: ``descend.torch.Adam`` ... with the fast path (``descend.torch._fast``; the row
  names the backend that ran);
* ``torch`` (the target's comparison): on CPU torch's default, which for CPU tensors is the
  single-tensor for-loop (torch picks foreach only on CUDA); on CUDA ``fused=True``;
* ``torch foreach`` (``foreach=True``) and ``torch fused`` (``fused=True``), for the record;
* ``reference`` (quick runs leave it out): descend's reference chain (``DESCEND_FUSED=0``).

Each library steps its own copy of the parameters with the same gradients. They run in
alternating blocks (one warm-up call, then ``k`` timed calls, median per block; CUDA timings
are taken between ``torch.cuda.synchronize()`` calls), several rounds (7; 3 with --quick); a ratio is the median
over rounds of descend/torch (lower is better). Every row runs with ``torch.set_num_threads(t)``
and numba at ``t`` threads, for t = 1 and 2. The bound is the bytes an in-place step moves
(Adam: read θ g m v, write θ m v = 28 bytes per float32 parameter; SGD 12; SGD-momentum 20)
over the measured copy bandwidth of the device (``dst.copy_(src)`` of 40 MB on CPU, 1 GB on
CUDA, bytes read + written).

    .venv/bin/python benchmarks/run.py --only torch_step [--quick]
    .venv/bin/python -m benchmarks.torch_step [--quick] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

N = 10_000_000
PARTS = 100
MLP = ((168, 784), (168,), (10, 168), (10,))  # 784-168-10: 133,570 parameters

BYTES_PER_PARAM = {"adam": 28, "adamw": 28, "sgd": 12, "sgd-momentum": 20}  # float32, in place

CASES: dict[str, tuple[str, dict[str, Any]]] = {  # name: (class in descend.torch and torch.optim, arguments)
    "adam": ("Adam", {"lr": 1e-3}),
    "adamw": ("AdamW", {"lr": 1e-3}),
    "sgd": ("SGD", {"lr": 1e-3}),
    "sgd-momentum": ("SGD", {"lr": 1e-3, "momentum": 0.9}),
}


def _sync(device: str) -> Callable[[], None]:
    import torch

    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def _median_time(fn: Callable[[], Any], k: int, sync: Callable[[], None]) -> float:
    times = []
    for _ in range(k):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _block(fn: Callable[[], Any], k: int, sync: Callable[[], None]) -> float:
    fn()  # warm-up: the other library's threads may still be spinning
    return _median_time(fn, k, sync)


def copy_bandwidth(device: str) -> float:
    """Bytes read + written per second by ``dst.copy_(src)`` of a large float32 tensor on ``device``."""
    import torch

    n = 250_000_000 if device == "cuda" else N
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    sync = _sync(device)
    dst.copy_(src)
    seconds = _median_time(lambda: dst.copy_(src), 7, sync)
    return 2 * src.numel() * 4 / seconds


def _shapes(layout: str) -> list[tuple[int, ...]]:
    return [(N // PARTS,)] * PARTS if layout == "100 tensors" else list(MLP)


def _tensors(layout: str, device: str) -> tuple[list[Any], list[Any]]:
    import torch

    gen = torch.Generator().manual_seed(0)
    shapes = _shapes(layout)
    params = [(0.1 * torch.randn(s, generator=gen)).to(device) for s in shapes]
    grads = [(1e-3 * torch.randn(s, generator=gen)).to(device) for s in shapes]
    return params, grads


def _optimizer(cls: Any, params: list[Any], grads: list[Any], kwargs: dict[str, Any]) -> Any:
    own = [p.clone().requires_grad_() for p in params]
    for p, g in zip(own, grads, strict=True):
        p.grad = g
    return cls(own, **kwargs)


def measure(name: str, layout: str, device: str, threads: int, rounds: int, k: int, reference: bool) -> dict[str, Any]:
    import torch

    import descend as dc
    import descend.torch as dtorch
    from descend.torch import _fast

    class_name, kwargs = CASES[name]
    params, grads = _tensors(layout, device)
    sync = _sync(device)
    descend_opt = _optimizer(getattr(dtorch, class_name), params, grads, kwargs)
    torch_cls = getattr(torch.optim, class_name)
    variants = {
        "default": _optimizer(torch_cls, params, grads, kwargs),
        "foreach": _optimizer(torch_cls, params, grads, {**kwargs, "foreach": True}),
        "fused": _optimizer(torch_cls, params, grads, {**kwargs, "fused": True}),
    }
    ref_opt = _optimizer(getattr(dtorch, class_name), params, grads, kwargs) if reference else None

    def ref_step() -> None:
        with dc.config.using(fused=False):
            ref_opt.step()

    before = dict(_fast.calls)
    times: dict[str, list[float]] = {key: [] for key in ("descend", *variants, "reference")}
    for _ in range(rounds):  # alternate: descend, torch default, descend, torch foreach, ...
        for key, opt in variants.items():
            times["descend"].append(_block(descend_opt.step, k, sync))
            times[key].append(_block(opt.step, k, sync))
        if ref_opt is not None:
            times["reference"].append(_block(ref_step, max(1, k // 2), sync))
    ran = [b for b in _fast.BACKENDS if _fast.calls[b] > before.get(b, 0)]
    # descend ran 3 blocks per round: pair each torch block with the descend block just before it
    d = np.array(times["descend"]).reshape(rounds, len(variants))
    target = "fused" if device == "cuda" else "default"
    n = sum(int(np.prod(s)) for s in _shapes(layout))
    row: dict[str, Any] = {
        "benchmark": "torch_step",
        "case": name,
        "layout": layout,
        "n": n,
        "device": device,
        "threads": threads,
        "dtype": "float32",
        "descend_path": "+".join(ran) or "reference chain",
        "torch_path": "fused=True" if device == "cuda" else "default (for-loop on CPU)",
        "descend_ms": float(np.median(d) * 1e3),
        "bytes_per_param": BYTES_PER_PARAM[name],
    }
    for j, key in enumerate(variants):
        t = np.array(times[key])
        ratio = float(np.median(d[:, j] / t))
        row[f"torch_{key}_ms"] = float(np.median(t) * 1e3)
        row[f"ratio_{key}"] = ratio
        if key == target:
            row["torch_ms"], row["ratio"] = row[f"torch_{key}_ms"], ratio
    if ref_opt is not None:
        row["reference_ms"] = float(np.median(times["reference"]) * 1e3)
    return row


def _set_threads(torch_threads: int, numba_threads: int | None = None) -> int | None:
    """Set torch's and numba's thread counts (numba's to ``torch_threads`` unless given); returns numba's before."""
    import torch

    torch.set_num_threads(torch_threads)
    try:
        import numba
    except ImportError:
        return None
    before = numba.get_num_threads()
    numba.set_num_threads(min(numba_threads or torch_threads, numba.config.NUMBA_NUM_THREADS))
    return before


def rows(quick: bool = False, devices: list[str] | None = None) -> list[dict[str, Any]]:
    """All rows: CPU at 1 and 2 threads, and CUDA when there is a GPU (``quick``: fewer rounds, no reference)."""
    import torch

    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    before = torch.get_num_threads()
    numba_before = _set_threads(before)
    out = []
    try:
        for device in devices:
            thread_counts = [t for t in (1, 2) if t <= (os.cpu_count() or 1)] if device == "cpu" else [before]
            for threads in thread_counts:
                _set_threads(threads)
                bw = copy_bandwidth(device)
                for layout in ("100 tensors", "mlp 784-168-10"):
                    for name in CASES:
                        big = layout == "100 tensors"
                        rounds, k = ((3, 3) if quick else (7, 5)) if big else ((3, 20) if quick else (7, 50))
                        row = measure(name, layout, device, threads, rounds, k, reference=not quick)
                        bound_ms = row["bytes_per_param"] * row["n"] / bw * 1e3
                        row.update(copy_gbs=bw / 1e9, bound_ms=bound_ms, vs_bound=row["descend_ms"] / bound_ms)
                        if device == "cuda":
                            row["device_name"] = torch.cuda.get_device_name()
                        out.append(row)
                        print(_line(row), flush=True)
    finally:
        _set_threads(before, numba_before)
    return out


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['device']:<4} t={row['threads']} {row['case']:<13} {row['layout']:<15} [{row['descend_path']}]"
        f"  descend {row['descend_ms']:7.2f} ms  torch {row['torch_ms']:7.2f} ms ({row['torch_path']})"
        f"  ratio {row['ratio']:5.2f}  vs foreach {row['ratio_foreach']:5.2f}  vs fused {row['ratio_fused']:5.2f}"
        f"  bound {row['bound_ms']:6.2f} ms ({row['vs_bound']:.2f}x)"
        + (f"  reference {row['reference_ms']:7.2f} ms" if "reference_ms" in row else "")
    )


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cpu, and cuda if present")
    args = parser.parse_args()
    if args.device is None:
        from benchmarks.run import main

        main(["--quick"] if args.quick else [], modules=["torch_step"])
    else:
        rows(args.quick, [args.device])
