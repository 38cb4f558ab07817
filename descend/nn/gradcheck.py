"""Finite-difference gradient checking of layers, models and losses, in float64.

For a module the scalar checked is ``L = Σ forward(x) ⊙ R`` with a fixed random
``R`` (so every output element matters), for a loss function ``L = Σ loss``.
Each analytic derivative (from ``backward``) is compared with the central
difference ``(L(θ + h) − L(θ − h)) / 2h`` on a float64 copy of the module;
the module passed in is not modified. An element passes when
``|analytic − numeric| <= atol + rtol·|numeric|`` (torch.autograd.gradcheck's
defaults); the report also gives the max relative error
``|a − n| / max(|a|, |n|)`` over the elements larger than ``atol``.
Dropout masks are replayed (every generator is rewound before each forward).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from descend.errors import DescendError
from descend.nn.losses import _Loss
from descend.nn.module import Module


class GradcheckError(DescendError, AssertionError):
    """An analytic gradient disagrees with finite differences."""


@dataclass
class GradcheckEntry:
    name: str
    checked: int
    max_abs_error: float
    max_rel_error: float
    ok: bool


@dataclass
class GradcheckReport:
    entries: list[GradcheckEntry] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.entries)

    @property
    def max_rel_error(self) -> float:
        return max((e.max_rel_error for e in self.entries), default=0.0)

    @property
    def max_abs_error(self) -> float:
        return max((e.max_abs_error for e in self.entries), default=0.0)

    def __str__(self) -> str:
        lines = [f"gradcheck {'passed' if self.ok else 'FAILED'}: max relative error {self.max_rel_error:.3g}"]
        for e in self.entries:
            lines.append(
                f"  {'ok ' if e.ok else 'BAD'} {e.name}: {e.checked} checked, max abs err {e.max_abs_error:.3g}, "
                f"max rel err {e.max_rel_error:.3g}"
            )
        return "\n".join(lines)


def _compare(name: str, analytic: np.ndarray, numeric: np.ndarray, atol: float, rtol: float) -> GradcheckEntry:
    err = np.abs(analytic - numeric)
    scale = np.maximum(np.abs(analytic), np.abs(numeric))
    big = scale > atol
    rel = float(np.max(err[big] / scale[big])) if big.any() else 0.0
    ok = bool(np.all(err <= atol + rtol * np.abs(numeric)))
    return GradcheckEntry(name, int(err.size), float(err.max(initial=0.0)), rel, ok)


def _pick(size: int, max_checks: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_checks is None or size <= max_checks:
        return np.arange(size)
    return np.sort(rng.choice(size, max_checks, replace=False))


def _central(flat: np.ndarray, idx: np.ndarray, objective: Callable[[], float], eps: float) -> np.ndarray:
    out = np.empty(len(idx))
    for k, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + eps
        plus = objective()
        flat[i] = old - eps
        minus = objective()
        flat[i] = old
        out[k] = (plus - minus) / (2 * eps)
    return out


def gradcheck(
    target: Module | _Loss | Callable[..., tuple[Any, np.ndarray]],
    x: Any,
    *args: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    max_checks: int | None = 200,
    check_input: bool = True,
    seed: int = 0,
    raise_on_fail: bool = True,
) -> GradcheckReport:
    """Check ``target``'s analytic gradients (parameters and input) against central differences in float64.

    ``target``: a layer or model (``forward`` / ``backward``), a loss object, or a
    loss function ``f(x, *args) -> (loss, dloss/dx)`` such as :func:`cross_entropy`
    (``args`` are e.g. the targets). ``max_checks`` elements per tensor are
    checked (a seeded random subset; ``None``: all). Returns a
    :class:`GradcheckReport`; raises :class:`GradcheckError` with it when a
    check fails and ``raise_on_fail``.
    """
    pick_rng = np.random.default_rng(seed)
    x64 = np.array(x, dtype=np.float64, copy=True)
    report = GradcheckReport()

    if isinstance(target, Module):
        model = target.astype(np.float64)
        gens = [m.rng for m in model.modules() if isinstance(getattr(m, "rng", None), np.random.Generator)]
        states = [g.bit_generator.state for g in gens]

        def run(inp: np.ndarray) -> np.ndarray:
            for g, s in zip(gens, states, strict=True):
                g.bit_generator.state = s
            return model.forward(inp)

        out = run(x64)
        proj = np.random.default_rng(seed + 1).standard_normal(np.shape(out))

        def objective() -> float:
            return float(np.sum(run(x64) * proj))

        run(x64)
        dx = model.backward(proj.copy(), input_grad=True)
        grads = model.grads.copy()
        for info in model.layout:
            idx = _pick(info.size, max_checks, pick_rng)
            numeric = _central(model.params, info.offset + idx, objective, eps)
            report.entries.append(_compare(info.name, grads[info.offset + idx], numeric, atol, rtol))
    else:
        fn = target._fn if isinstance(target, _Loss) else target

        def objective() -> float:
            return float(np.sum(fn(x64, *args)[0]))

        dx = fn(x64.copy(), *args)[1]

    if check_input:
        flat = x64.reshape(-1)
        idx = _pick(flat.size, max_checks, pick_rng)
        numeric = _central(flat, idx, objective, eps)
        report.entries.append(_compare("input", np.asarray(dx).reshape(-1)[idx], numeric, atol, rtol))

    if raise_on_fail and not report.ok:
        raise GradcheckError(str(report))
    return report
