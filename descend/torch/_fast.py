"""The fast path of ``descend.torch``: a group's step in one pass per tensor, with the state updated in place.

The drop-in classes ``Adam``, ``AdamW`` and ``SGD`` are *defined* by their descend chains
(``descend.optim.adam`` ...), which :meth:`descend.torch.Optimizer._step_group` runs on the
group's tensors: about fifteen tensor operations per parameter, each making a new tensor,
with the state decoded from and encoded into ``optimizer.state[p]`` on every step. This
module takes the same step with the state updated in place where torch keeps it
(``optimizer.state[p]["exp_avg"]`` ..., torch's layout), by one of three backends, chosen
per device and dtype within the group:

* ``"numba"`` (CPU, float32 / float64, contiguous): descend's fused numba kernels
  (``descend.optim._kernels``, the ones ``dc.optim.step`` runs: one pass over θ, g and the
  state) on NumPy views of the tensors' memory, one call per tensor. They repeat the
  chain's operations in its order, without FMA contraction: **bitwise** the chain on NumPy
  arrays, and the chain on torch tensors for SGD and in float64. float32 Adam differs from
  the chain on torch tensors by torch's CPU ``sqrt``, which (vectorized, AVX-512) is not
  correctly rounded: one ulp off for about 1 element in 6, where NumPy's and the kernels'
  ``sqrt`` are exact (3.8e-7 relative after 12 steps in the tests).
* ``"foreach"`` (every other dtype and device, strided tensors, ``adam(bias_correction=
  False)`` on CUDA): the chain's operations one by one, in its order, as ``torch._foreach_*``
  calls that write into the state (on CPU in chunks of tensors that fit in L2). On CPU a
  ``_foreach_*`` op is a loop over the per-tensor kernel the chain calls: **bitwise** the
  chain (bfloat16 included). On CUDA the multi-tensor kernels divide by a scalar where
  ``tensor / scalar`` multiplies by its reciprocal: equal to rounding.
* ``"fused"`` (CUDA, contiguous tensors): torch's multi-tensor fused kernels
  (``torch._fused_adam_``, ``_fused_adamw_``, ``_fused_sgd_``, what ``fused=True`` runs), one
  launch per step for the whole group, with descend's hyperparameters, learning rate and
  step. The same formulas in torch's order of operations (``lr/bc₁·m`` for ``−η·(m/bc₁)``,
  AdamW's decay as ``θ·(1−ηλ)``, FMA on the GPU): equal to rounding, not bitwise (1.3e-6
  relative in float32 after 12 steps on CPU, where the same kernels exist).

What is not covered runs the reference chain unchanged: other optimizers, a group with its
own ``"tx"``, ``amsgrad=True``, a non-numeric weight decay, a state that is not torch's layout
for these hyperparameters (a missing or extra key, a wrong shape, dtype or device),
parameters at different steps (one that started late) or some with a state and some without,
a gradient whose dtype, device or shape is not its parameter's. Every check is made before
anything is written, so a fallback never follows a partial step.
``descend.config.fused = False`` (``DESCEND_FUSED=0``) switches this path off with the numba
kernels; ``FORCE`` picks one backend for every group (tests, benchmarks); ``calls`` counts
the groups each backend stepped.

The state is torch's: the moments in the parameter's dtype and device and ``step`` a float32
scalar tensor per parameter (views of one vector per group), all updated in place from the
first fast step on, as torch updates its own, so a ``state_dict()`` that was not copied
follows the optimizer (the reference path makes new tensors each step). The group's read of
the state is cached between steps and taken again whenever a parameter, a state dict, a
tensor in it or a step value has been replaced or changed (``load_state_dict``, ZeRO, by hand).
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

from descend import config
from descend.optim import fused
from descend.optim.learning_rate import resolve_lr
from descend.torch._layout import scalar_dtype

config.module_switches(__name__, {"ENABLED": "fused"})  # ENABLED reads and writes descend.config.fused
_config = config.state

BACKENDS = ("numba", "foreach", "fused")
FORCE: str | None = None  # one of BACKENDS for every group (tests, benchmarks); None: chosen per device and dtype
calls: Counter[str] = Counter()

SUPPORTED = ("adam", "adamw", "sgd")
_NUMPY_DTYPES = (torch.float32, torch.float64)
_CHUNK = 1 << 17  # CPU foreach: elements per chunk of tensors (θ, g and the state of a chunk stay in L2)


class _Spec(NamedTuple):
    """A group's hyperparameters as the reference chain reads them (Python floats, as the factory converts)."""

    name: str  # "adam" (adamw: decoupled) or "sgd"
    keys: tuple[str, ...]  # the torch state keys besides "step"
    lr: Any  # group["lr"]: a number or a descend schedule
    maximize: bool
    weight_decay: float
    decoupled: bool = False
    b1: float = 0.0
    b2: float = 0.0
    eps: float = 0.0
    bias_correction: bool = True
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _spec(name: str, group: dict[str, Any]) -> _Spec | None:
    """The group's hyperparameters, or None where this path does not cover them (the reference runs)."""
    wd = group.get("weight_decay", 0.0)
    if not _number(wd):  # a per-element array, a tensor: the reference chain
        return None
    if name in ("adam", "adamw"):
        if group.get("amsgrad"):
            return None
        betas = group["betas"]
        if not all(_number(b) for b in betas) or not _number(group["eps"]):
            return None
        return _Spec(
            "adam",
            ("exp_avg", "exp_avg_sq"),
            group["lr"],
            bool(group.get("maximize", False)),
            float(wd),
            decoupled=name == "adamw" or bool(group.get("decoupled_weight_decay", False)),
            b1=float(betas[0]),
            b2=float(betas[1]),
            eps=float(group["eps"]),
            bias_correction=bool(group.get("bias_correction", True)),
        )
    momentum, dampening = group.get("momentum", 0.0), group.get("dampening", 0.0)
    if not (_number(momentum) and _number(dampening)):
        return None
    return _Spec(
        "sgd",
        ("momentum_buffer",) if momentum != 0 else (),
        group["lr"],
        bool(group.get("maximize", False)),
        float(wd),
        momentum=float(momentum),
        dampening=float(dampening),
        nesterov=bool(group.get("nesterov", False)),
    )


def _learning_rate(spec: _Spec, count: int) -> float:
    """η at ``count`` exactly as the chain's ``scale_by_learning_rate`` resolves ``param_groups[i]["lr"]``."""

    def lr(step: int) -> float:
        value = spec.lr
        return float(value(step)) if callable(value) else float(value)

    return resolve_lr(lr, count) * 1.0  # the chain multiplies by its lr_scale, 1.0 in a drop-in class


class _Read:
    """A group's state as this path keeps it, cached per group between steps (``opt._descend_fast``)."""

    __slots__ = ("count", "group", "keys", "on_device", "params", "parts", "states", "steps", "tensors", "views")

    def __init__(self, group: dict[str, Any], params: list[torch.Tensor], keys: tuple[str, ...], count: int,
                 states: list[dict[str, Any]], tensors: dict[str, list[torch.Tensor]]) -> None:  # fmt: skip
        self.group, self.params, self.keys = group, params, keys  # the parameters stepped: those with a gradient
        self.count = count  # steps taken so far (every parameter's)
        self.states = states  # optimizer.state[p] of each parameter
        self.tensors = tensors  # torch key -> one tensor per parameter
        self.steps = torch.full((len(params),), float(count), dtype=scalar_dtype())  # torch's "step": float32
        self.views = list(self.steps.unbind())  # states[i]["step"] is views[i], a view of element i of steps
        self.on_device: dict[tuple, list[torch.Tensor]] = {}  # torch's fused Adam: the step t on the device
        self.parts: dict[tuple, list[int]] = {}  # (device, dtype) -> indices into params
        for i, p in enumerate(params):
            self.parts.setdefault((p.device, p.dtype), []).append(i)

    def device_steps(self, device: torch.device, n: int) -> list[torch.Tensor]:
        found = self.on_device.get((device, n))
        if found is None:
            found = self.on_device[(device, n)] = list(torch.empty(n, dtype=torch.float32, device=device).unbind())
        return found


def _cached(opt: Any, group: dict[str, Any], params: list[torch.Tensor], spec: _Spec) -> _Read | None:
    """Last step's read of this group when nothing has replaced a parameter, a state dict or a tensor in it since."""
    c = getattr(opt, "_descend_fast", {}).get(id(group))
    if c is None or c.group is not group or c.keys != spec.keys or len(c.params) != len(params):
        return None
    get, want, keys = opt.state.get, len(c.keys) + 1, c.keys
    tensors = c.tensors
    for i, (a, b, s) in enumerate(zip(c.params, params, c.states, strict=True)):
        if a is not b or get(a) is not s or len(s) != want:
            return None
        for k in keys:
            if s.get(k) is not tensors[k][i]:
                return None
        if s.get("step") is not c.views[i]:
            return None
    if any(v != c.count for v in c.steps.tolist()):
        return None  # a step changed by hand (or by another optimizer that loaded this state)
    return c


def _read(opt: Any, group: dict[str, Any], params: list[torch.Tensor], spec: _Spec) -> _Read | None:
    """The group's state in torch's layout, every parameter at the same step; None sends the group to the reference.

    A first step creates the state (zeros, as ``tx.init``).
    """
    keys = spec.keys
    stored = [opt.state.get(p) or None for p in params]
    fresh = all(s is None for s in stored)
    count: float | None = 0.0 if fresh else None
    tensors: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    if fresh:
        for k in keys:
            tensors[k] = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
    else:
        for p, s in zip(params, stored, strict=True):
            if type(s) is not dict or len(s) != len(keys) + 1:
                return None
            step = s.get("step")
            if isinstance(step, torch.Tensor) and step.numel() == 1:
                step = float(step)
            if not _number(step) or step != int(step) or (count is not None and step != count):
                return None
            count = step
            for k in keys:
                t = s.get(k)
                if not isinstance(t, torch.Tensor) or t.shape != p.shape or t.dtype != p.dtype or t.device != p.device:
                    return None
                tensors[k].append(t)
    assert count is not None
    return _Read(group, list(params), keys, int(count), [{} if fresh else s for s in stored], tensors)


def step_group(opt: Any, group: dict[str, Any], params: list[torch.Tensor]) -> bool:
    """Step ``params`` (the group's parameters that have a gradient) on the fast path; False: nothing was done.

    ``opt`` is the :class:`descend.torch.Optimizer` (a drop-in class), ``group`` its parameter group.
    """
    if not _config.fused or opt.factory is None or group.get("tx") is not None:
        return False
    if opt.factory_name not in SUPPORTED or FORCE not in (None, *BACKENDS):
        return False
    spec = _spec(opt.factory_name, group)
    if spec is None:
        return False
    for p in params:  # torch checks an assigned .grad, but p.data = ... may have changed the parameter since
        g = p.grad
        if g.dtype is not p.dtype or g.get_device() != p.get_device() or g.shape != p.shape:
            return False
        if not p.dtype.is_floating_point:
            return False
    read = _cached(opt, group, params, spec)
    hit = read is not None
    if read is None:
        read = _read(opt, group, params, spec)
        if read is None:
            return False
    eta = _learning_rate(spec, read.count)  # raises (a schedule's NaN) before anything is written
    for (device, dtype), idx in read.parts.items():
        if len(idx) == len(params):
            P, G, S = params, [p.grad for p in params], read.tensors
        else:
            P = [params[i] for i in idx]
            G = [p.grad for p in P]
            S = {k: [v[i] for i in idx] for k, v in read.tensors.items()}
        backend = FORCE or _choose(device, dtype, spec)
        if backend == "fused" and not _fused_ok(P, G, S, spec):
            backend = "foreach"
        if backend == "numba" and not _numba(P, G, S, spec, read.count, eta):
            backend = "foreach"  # declined before writing anything (a strided view, a dtype NumPy lacks)
        if backend == "foreach":
            _foreach(P, G, S, spec, read.count, eta, device)
        elif backend == "fused":
            _fused(P, G, S, spec, read.count, eta, device, read.device_steps)
        calls[backend] += 1
    read.steps.add_(1.0)  # every parameter's step, in place (as torch increments its own)
    if not hit:
        for i, s in enumerate(read.states):
            s["step"] = read.views[i]
            for k, v in read.tensors.items():
                s[k] = v[i]
            opt.state[params[i]] = s
    read.count += 1
    opt.__dict__.setdefault("_descend_fast", {})[id(group)] = read
    return True


def _choose(device: torch.device, dtype: torch.dtype, spec: _Spec) -> str:
    if device.type == "cpu":
        return "numba" if dtype in _NUMPY_DTYPES else "foreach"
    if device.type == "cuda" and (spec.name == "sgd" or spec.bias_correction):
        return "fused"
    return "foreach"


# ---------------------------------------------------------------------------------------------- numba


def _flat(ts: list[torch.Tensor]) -> list[np.ndarray]:
    """1-D NumPy views of contiguous CPU tensors' memory (no copy)."""
    out = [(t.detach() if t.requires_grad else t).numpy() for t in ts]
    return [a if a.ndim == 1 else a.reshape(-1) for a in out]


_group_kernels: Any = None
_LIKE = {torch.float32: np.empty(0, np.float32), torch.float64: np.empty(0, np.float64)}


def _numba(P: list, G: list, S: dict[str, list], spec: _Spec, count: int, eta: float) -> bool:
    """descend's in-place fused kernels on the tensors' memory (False: declined, nothing written).

    A group of small tensors (all under ``PARALLEL_MIN`` elements) is stepped by one call of
    :mod:`descend.torch._kernels` over their addresses; otherwise each tensor by the kernel of
    :mod:`descend.optim._kernels` that ``dc.optim.step`` runs (``build_adam`` / ``build_sgd``'s
    arguments), on numba's threads for a big one. Both compute the chain's operations in its order.
    """
    global _group_kernels
    dtype = P[0].dtype
    if P[0].device.type != "cpu" or dtype not in _NUMPY_DTYPES:
        return False
    rows = list(zip(P, G, *(S[k] for k in spec.keys), strict=True))  # θ, g, then the state in spec.keys' order
    sizes = [p.numel() for p in P]
    for row, n in zip(rows, sizes, strict=True):
        for t in row:
            if not t.is_contiguous() or t.numel() != n:
                return False
    kernels = fused._kernels()  # None without numba (descend.config.fused is then switched off)
    if kernels is None:
        return False
    f = np.float32 if dtype == torch.float32 else np.float64
    maximize, wd_on, wd = spec.maximize, spec.weight_decay != 0.0, f(spec.weight_decay)
    factor = f(-eta)
    if spec.name == "adam":
        t = count + 1
        step_size, bc2 = 1.0, 1.0
        if spec.bias_correction:
            step_size = 1.0 / (1.0 - spec.b1**t)
            bc2 = (1.0 - spec.b2**t) ** 0.5
        scalars: tuple = (
            spec.decoupled, wd, f(1.0 - spec.b1), f(spec.b2), f(1.0 - spec.b2), f(step_size), f(bc2), f(spec.eps),
            factor,
        )  # fmt: skip
    elif "momentum_buffer" in S:
        scalars = (wd, count == 0, f(spec.momentum), f(1.0 - spec.dampening), spec.nesterov, factor)
    else:
        scalars = (wd, factor)
    if max(sizes) < kernels.PARALLEL_MIN:  # one call for the group, on this thread
        if _group_kernels is None:
            _group_kernels = importlib.import_module("descend.torch._kernels")
        kernel = {"adam": _group_kernels.adam_group, "sgd": _group_kernels.sgd_group}[spec.name]
        if spec.name == "sgd" and "momentum_buffer" in S:
            kernel = _group_kernels.sgd_momentum_group
        ptrs = np.array([[t.data_ptr() for t in row] for row in rows], dtype=np.int64)
        kernel(ptrs, np.array(sizes, dtype=np.int64), _LIKE[dtype], maximize, wd_on, *scalars)
        return True
    # per tensor: descend.optim._kernels' in-place kernels (g stands in for the unused per-element decay array)
    wd_mode = int(wd_on)
    views = [_flat(list(column)) for column in zip(*rows, strict=True)]
    for arrays in zip(*views, strict=True):
        p, g = arrays[0], arrays[1]
        if spec.name == "adam":
            m, v = arrays[2], arrays[3]
            kernels.run(kernels.adam_kernel, g.size, p, g, m, v, g, p, m, v, maximize, wd_mode, *scalars, True)
        elif "momentum_buffer" in S:
            kernels.run(kernels.sgd_momentum_kernel, g.size, p, g, arrays[2], g, maximize, wd_mode, *scalars)
        else:
            kernels.run(kernels.sgd_kernel, g.size, p, g, g, maximize, wd_mode, *scalars)
    return True


# -------------------------------------------------------------------------------------------- foreach


def _chunks(P: list[torch.Tensor], device: torch.device) -> list[slice]:
    """CPU: runs of tensors of about ``_CHUNK`` elements (all ops of a run while it is in cache); else one run."""
    if device.type != "cpu":
        return [slice(0, len(P))]
    out, start, size = [], 0, 0
    for i, p in enumerate(P):
        size += p.numel()
        if size >= _CHUNK:
            out.append(slice(start, i + 1))
            start, size = i + 1, 0
    if start < len(P):
        out.append(slice(start, len(P)))
    return out


def _foreach(P: list, G: list, S: dict[str, list], spec: _Spec, count: int, eta: float, device: torch.device) -> None:
    for c in _chunks(P, device):
        states = {k: v[c] for k, v in S.items()}
        if spec.name == "adam":
            _adam_foreach(P[c], G[c], states["exp_avg"], states["exp_avg_sq"], spec, count, eta)
        else:
            _sgd_foreach(P[c], G[c], states.get("momentum_buffer"), spec, count, eta)


def _mul_(xs: list[torch.Tensor], scalar: float) -> None:
    """``x ← scalar·x`` for each x, rounded as the chain's ``scalar * x`` (torch 2.13's in-place
    ``_foreach_mul_`` rounds bfloat16 and float16 differently from ``mul_``)."""
    if xs and xs[0].dtype in (torch.bfloat16, torch.float16):
        for x in xs:
            x.mul_(scalar)
    else:
        torch._foreach_mul_(xs, scalar)


def _gradient(P: list, G: list, spec: _Spec, coupled: bool) -> list:
    """``scale(-1)`` (maximize) then coupled ``add_decayed_weights``: new tensors, the gradients are never written."""
    g = torch._foreach_mul(G, -1.0) if spec.maximize else G
    if coupled and spec.weight_decay != 0.0:
        decay = torch._foreach_mul(P, spec.weight_decay)  # λ·θ, then u + λ·θ (IEEE addition commutes)
        torch._foreach_add_(decay, g)
        g = decay
    return g


def _adam_foreach(P: list, G: list, M: list, V: list, spec: _Spec, count: int, eta: float) -> None:
    """``scale_by_adam`` (+ weight decay, + ``scale_by_learning_rate``), operation by operation in the chain's order."""
    b1, b2 = spec.b1, spec.b2
    g = _gradient(P, G, spec, coupled=not spec.decoupled)
    d = torch._foreach_sub(g, M)  # m + (1-β₁)(g - m)
    _mul_(d, 1.0 - b1)
    torch._foreach_add_(M, d)
    gg = torch._foreach_mul(g, g)  # β₂v + (1-β₂)(g·g)
    _mul_(gg, 1.0 - b2)
    _mul_(V, b2)
    torch._foreach_add_(V, gg)
    den = torch._foreach_sqrt(V)
    if spec.bias_correction:  # (1/bc₁)·m / (√v/√bc₂ + ε)
        t = count + 1
        torch._foreach_div_(den, (1.0 - b2**t) ** 0.5)
        torch._foreach_add_(den, spec.eps)
        u = torch._foreach_mul(M, 1.0 / (1.0 - b1**t))
        torch._foreach_div_(u, den)
    else:  # m / (√v + ε)
        torch._foreach_add_(den, spec.eps)
        u = torch._foreach_div(M, den)
    if spec.decoupled and spec.weight_decay != 0.0:
        decay = torch._foreach_mul(P, spec.weight_decay)
        torch._foreach_add_(u, decay)
    _mul_(u, -eta)
    torch._foreach_add_(P, u)


def _sgd_foreach(P: list, G: list, B: list | None, spec: _Spec, count: int, eta: float) -> None:
    """``sgd``: decay, ``trace`` (momentum, dampening, nesterov), ``scale_by_learning_rate``, in the chain's order."""
    g = _gradient(P, G, spec, coupled=True)
    out = g
    if B is not None:
        mu = spec.momentum
        if count == 0:
            torch._foreach_copy_(B, g)  # b₁ = g₁
        else:
            _mul_(B, mu)  # μ·b + (1-τ)·g
            damped = g if spec.dampening == 0.0 else torch._foreach_mul(g, 1.0 - spec.dampening)  # 1.0·g is g
            torch._foreach_add_(B, damped)
        if spec.nesterov:  # g + μ·b
            out = torch._foreach_mul(B, mu)
            torch._foreach_add_(out, g)
        else:
            out = B
    u = torch._foreach_mul(out, -eta)
    torch._foreach_add_(P, u)


# ---------------------------------------------------------------------------------------------- fused


def _fused_ok(P: list, G: list, S: dict[str, list], spec: _Spec) -> bool:
    if spec.name == "adam" and not spec.bias_correction:
        return False
    return all(all(map(torch.Tensor.is_contiguous, ts)) for ts in (P, G, *S.values()))


def _fused(
    P: list, G: list, S: dict[str, list], spec: _Spec, count: int, eta: float, device: torch.device,
    steps_on_device: Callable[[torch.device, int], list[torch.Tensor]],
) -> None:  # fmt: skip
    """torch's multi-tensor fused kernel with descend's hyperparameters (equal to the chain to rounding).

    Adam's kernel reads the step t from one float32 tensor per parameter on the parameters' device, as
    ``torch.optim.Adam(fused=True)`` keeps it: views of one vector per group and device, filled with t.
    """
    if spec.name == "adam":
        steps = steps_on_device(device, len(P))
        steps[0]._base.fill_(float(count + 1))  # one fill on the device (a new tensor would be a host copy)
        kernel = torch._fused_adamw_ if spec.decoupled else torch._fused_adam_
        kernel(
            P, G, S["exp_avg"], S["exp_avg_sq"], [], steps,
            lr=eta, beta1=spec.b1, beta2=spec.b2, weight_decay=spec.weight_decay, eps=spec.eps,
            amsgrad=False, maximize=spec.maximize, grad_scale=None, found_inf=None,
        )  # fmt: skip
    else:
        torch._fused_sgd_(
            P, G, S.get("momentum_buffer", []),
            weight_decay=spec.weight_decay, momentum=spec.momentum, lr=eta, dampening=spec.dampening,
            nesterov=spec.nesterov, maximize=spec.maximize, is_first_step=count == 0 and spec.momentum != 0.0,
            grad_scale=None, found_inf=None,
        )  # fmt: skip


__all__ = ["BACKENDS", "FORCE", "SUPPORTED", "calls", "step_group"]
