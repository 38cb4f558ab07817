"""Optimizer step time: descend vs torch.optim's fastest CPU path, and vs the memory-bandwidth bound.

For each optimizer torch also has, at 1M, 10M and 50M float32 parameters held as
one flat buffer and as 100 separate arrays, it times

* ``descend``: ``dc.optim.step(tx, params, grads, state)``, the in-place step
  (the fused kernel for one buffer, and leaf by leaf for 100 arrays), which
  does what ``torch.optim.Optimizer.step()`` does;
* ``pure``: ``updates, state = tx.update(...)`` then ``params =
  apply_updates(params, updates)``, the pure functional API (new updates, new
  state arrays and new parameters every step, from recycled buffers: Adam
  float32 moves 36 + 12 bytes per parameter);
* ``donated``: the same with ``dc.optim.donating_update(tx, grads, state,
  params)``, which writes the new state into the state passed in (28 + 12 bytes);
* ``torch``: ``opt.step()`` with ``fused=True`` where torch has a fused CPU
  kernel (Adam, AdamW, SGD, Adagrad), else ``foreach=True`` (RMSprop).

descend and torch run in alternating blocks (one warm-up call, then ``k`` timed
calls, median), several rounds; the ratio is the median over rounds of
descend/torch (lower is better). torch uses as many threads as numba. The
bandwidth bound is bytes moved per parameter (Adam float32: read θ, g, m, v and
write θ, m, v = 28 bytes) times n over the copy bandwidth (the faster of
``np.copyto`` and a parallel numba copy, counting bytes read plus written).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import descend as dc

BYTES_PER_PARAM = {  # float32, in-place step: reads + writes of 4 bytes each
    "adam": 28,  # r θ g m v, w θ m v
    "adamw": 28,
    "sgd": 12,  # r θ g, w θ
    "sgd-momentum": 20,  # r θ g b, w θ b
    "adagrad": 20,  # r θ g G, w θ G
    "rmsprop": 20,  # r θ g E[g²], w θ E[g²]
}

CASES: dict[str, tuple[Callable[[], Any], str, dict[str, Any], str]] = {
    # name: (descend factory, torch class, torch kwargs, torch path)
    "adam": (lambda: dc.optim.adam(lr=1e-3), "Adam", {"lr": 1e-3, "fused": True}, "fused"),
    "adamw": (lambda: dc.optim.adamw(lr=1e-3), "AdamW", {"lr": 1e-3, "fused": True}, "fused"),
    "sgd": (lambda: dc.optim.sgd(lr=1e-3), "SGD", {"lr": 1e-3, "fused": True}, "fused"),
    "sgd-momentum": (
        lambda: dc.optim.sgd(lr=1e-3, momentum=0.9),
        "SGD",
        {"lr": 1e-3, "momentum": 0.9, "fused": True},
        "fused",
    ),
    "adagrad": (lambda: dc.optim.adagrad(lr=1e-2), "Adagrad", {"lr": 1e-2, "fused": True}, "fused"),
    "rmsprop": (lambda: dc.optim.rmsprop(lr=1e-2), "RMSprop", {"lr": 1e-2, "foreach": True}, "foreach"),
}


def _threads() -> int:
    try:
        import numba

        return int(numba.get_num_threads())
    except ImportError:
        return 1


def copy_bandwidth(n: int = 50_000_000, repeats: int = 7) -> dict[str, float]:
    """Bytes read + written per second by a large float32 copy: np.copyto and a parallel numba copy."""
    src = np.ones(n, np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    out = {"copyto_gbs": 2 * src.nbytes / _median_time(lambda: np.copyto(dst, src), repeats) / 1e9}
    try:
        from numba import njit, prange

        @njit(parallel=True, cache=True)
        def pcopy(a, b):  # pragma: no cover - timed only
            for i in prange(a.size):
                b[i] = a[i]

        pcopy(src, dst)
        out["numba_copy_gbs"] = 2 * src.nbytes / _median_time(lambda: pcopy(src, dst), repeats) / 1e9
    except ImportError:
        pass
    out["gbs"] = max(out.values())
    return out


def _median_time(fn: Callable[[], Any], k: int) -> float:
    times = []
    for _ in range(k):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _block(fn: Callable[[], Any], k: int) -> float:
    fn()  # warm-up: the other library's threads may still be spinning
    return _median_time(fn, k)


def _split(x: np.ndarray, parts: int) -> list[np.ndarray]:
    return [a.copy() for a in np.array_split(x, parts)]


def measure(name: str, n: int, parts: int, rounds: int, k: int) -> dict[str, Any]:
    import torch

    factory, torch_class, torch_kwargs, torch_path = CASES[name]
    rng = np.random.default_rng(0)
    p0 = (0.1 * rng.standard_normal(n)).astype(np.float32)
    g0 = (1e-3 * rng.standard_normal(n)).astype(np.float32)
    if parts == 1:
        params, grads = p0.copy(), g0
    else:
        params, grads = _split(p0, parts), _split(g0, parts)
    tx = factory()
    box = {"state": tx.init(params)}

    def descend_step() -> None:
        box["state"] = dc.optim.step(tx, params, grads, box["state"])

    pure_box = {"state": tx.init(params), "params": p0.copy() if parts == 1 else _split(p0, parts)}

    def descend_pure() -> None:
        updates, pure_box["state"] = tx.update(grads, pure_box["state"], pure_box["params"])
        pure_box["params"] = dc.optim.apply_updates(pure_box["params"], updates)

    donated_box = {"state": tx.init(params), "params": p0.copy() if parts == 1 else _split(p0, parts)}

    def descend_donated() -> None:
        updates, donated_box["state"] = dc.optim.donating_update(tx, grads, donated_box["state"], donated_box["params"])
        donated_box["params"] = dc.optim.apply_updates(donated_box["params"], updates)

    tparams = [torch.from_numpy(a.copy()).requires_grad_() for a in ([p0] if parts == 1 else _split(p0, parts))]
    for tp, g in zip(tparams, [g0] if parts == 1 else grads, strict=True):
        tp.grad = torch.from_numpy(np.array(g))
    opt = getattr(torch.optim, torch_class)(tparams, **torch_kwargs)
    before = sum(dc.optim.fused.calls.values())
    d_times, p_times, n_times, t_times = [], [], [], []
    for _ in range(rounds):  # alternate: descend, torch, descend (pure), torch, descend (donated), torch, ...
        d_times.append(_block(descend_step, k))
        t1 = _block(opt.step, k)
        p_times.append(_block(descend_pure, k))
        t2 = _block(opt.step, k)
        n_times.append(_block(descend_donated, k))
        t3 = _block(opt.step, k)
        t_times.append((t1 + t2 + t3) / 3)
    fused_taken = sum(dc.optim.fused.calls.values()) > before
    d, pu, do, t = np.array(d_times), np.array(p_times), np.array(n_times), np.array(t_times)
    return {
        "benchmark": "optim_step",
        "case": name,
        "layout": "flat" if parts == 1 else f"{parts} arrays",
        "n": n,
        "dtype": "float32",
        "descend_path": "fused kernel" if fused_taken else "reference chain",
        "torch_path": torch_path,
        "descend_ms": float(np.median(d) * 1e3),
        "pure_ms": float(np.median(pu) * 1e3),
        "donated_ms": float(np.median(do) * 1e3),
        "torch_ms": float(np.median(t) * 1e3),
        "ratio": float(np.median(d / t)),
        "pure_ratio": float(np.median(pu / t)),
        "donated_ratio": float(np.median(do / t)),
        "bytes_per_param": BYTES_PER_PARAM[name],
    }


def rows(quick: bool = False) -> list[dict[str, Any]]:
    """All rows of this benchmark (``quick``: 1M and 10M only, fewer rounds)."""
    import torch

    threads = _threads()
    torch.set_num_threads(threads)
    bw = copy_bandwidth(10_000_000 if quick else 50_000_000)
    sizes = [1_000_000, 10_000_000] if quick else [1_000_000, 10_000_000, 50_000_000]
    out = []
    for n in sizes:
        for parts in (1, 100):
            for name in CASES:
                if parts == 1:
                    rounds, k = (5, 5) if n <= 10_000_000 else (5, 3)
                else:
                    rounds, k = (3, 3) if n <= 1_000_000 else (3, 1)
                if quick:
                    rounds = max(3, rounds - 2)
                row = measure(name, n, parts, rounds, k)
                bound_ms = row["bytes_per_param"] * n / (bw["gbs"] * 1e9) * 1e3
                row["bound_ms"] = bound_ms
                row["vs_bound"] = row["descend_ms"] / bound_ms
                row["threads"] = threads
                row["copy_gbs"] = bw["gbs"]
                out.append(row)
                print(_line(row), flush=True)
    return out


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['case']:<13} {row['layout']:<10} {row['n'] / 1e6:>5.0f}M  descend {row['descend_ms']:8.2f} ms"
        f"  pure {row['pure_ms']:8.2f} ms  donated {row['donated_ms']:8.2f} ms  torch {row['torch_ms']:8.2f} ms"
        f"  ratio {row['ratio']:5.2f} pure {row['pure_ratio']:5.2f} donated {row['donated_ratio']:5.2f}"
        f"  bound {row['bound_ms']:7.2f} ms ({row['vs_bound']:.2f}x)"
    )


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import torch

    info = {
        "cpu": model or platform.processor(),
        "nproc": os.cpu_count(),
        "threads": _threads(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    try:
        import numba

        info["numba"] = numba.__version__
        info["numba_threading_layer"] = _threading_layer()
    except ImportError:
        info["numba"] = None
    return info


def _threading_layer() -> str:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel function has run yet
        return "not started"


def first_call_ms() -> float:
    """Wall time of the first fused Adam step in this process (loading, or compiling, the kernel)."""
    p = np.zeros(1000, np.float32)
    tx = dc.optim.adam()
    t0 = time.perf_counter()
    dc.optim.step(tx, p, np.ones_like(p), tx.init(p))
    return (time.perf_counter() - t0) * 1e3


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from benchmarks.run import main

    main(["--quick"] if args.quick else [], modules=["optim_step"])
