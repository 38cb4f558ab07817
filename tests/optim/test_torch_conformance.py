"""Every optimizer that torch.optim has, over a grid of its options, equals torch.

One table of cases drives the test. Each case runs ``STEPS`` float64 steps on a
problem whose gradients depend on the trajectory and requires descend's
parameters to match torch's within ``rtol=1e-7``, on both array backends: the
chain on NumPy arrays (``descend.optim``), and the same chain on torch float64
tensors behind a ``torch.optim.Optimizer`` (``descend.torch``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import descend as dc
from tests.optim import problems

torch = pytest.importorskip("torch")
dtorch = pytest.importorskip("descend.torch")

STEPS = 300
RTOL = 1e-7
ATOL = 1e-12  # parameters that converge to 0 are compared absolutely below 1e-12


@dataclass(frozen=True)
class Case:
    name: str  # descend factory in dc.optim and (capitalized) torch.optim class
    kwargs: dict[str, Any] = field(default_factory=dict)
    torch_name: str | None = None  # torch.optim class name if not derivable
    torch_kwargs: dict[str, Any] | None = None  # if they differ from kwargs
    problem: str = "mixed"

    @property
    def id(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in self.kwargs.items())
        return f"{self.name}({args})"


TORCH_NAMES = {
    "sgd": "SGD",
    "adam": "Adam",
    "adamw": "AdamW",
    "adagrad": "Adagrad",
    "rmsprop": "RMSprop",
    "adadelta": "Adadelta",
    "adamax": "Adamax",
    "nadam": "NAdam",
    "radam": "RAdam",
    "asgd": "ASGD",
    "rprop": "Rprop",
    "adafactor": "Adafactor",
}

CASES = [
    # --- sgd ---
    Case("sgd", dict(lr=0.05)),
    Case("sgd", dict(lr=0.02, momentum=0.9)),
    Case("sgd", dict(lr=0.02, momentum=0.9, dampening=0.3)),
    Case("sgd", dict(lr=0.02, momentum=0.9, nesterov=True)),
    Case("sgd", dict(lr=0.02, momentum=0.5, weight_decay=0.1)),
    Case("sgd", dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.05, maximize=True)),
    # --- adam / adamw ---
    Case("adam", dict(lr=0.01)),
    Case("adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    Case("adam", dict(lr=0.01, amsgrad=True)),
    Case("adam", dict(lr=0.01, weight_decay=0.1)),
    Case("adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    Case("adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True)),
    Case("adamw", dict(lr=0.01)),
    Case("adamw", dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
    Case("adamw", dict(lr=0.01, betas=(0.5, 0.9), maximize=True)),
    # --- adaptive family: adagrad, rmsprop, adadelta, rprop, asgd ---
    # Learning rates keep W, b, v away from the minimum for the 300 steps, except Rprop, whose sign steps are
    # reproduced bit for bit (only Δ·η± products, clipping and exact negation), so it may reach and circle it.
    Case("adagrad", dict(lr=0.1)),
    Case("adagrad", dict(lr=0.1, lr_decay=0.01)),
    Case("adagrad", dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-3)),
    Case("adagrad", dict(lr=0.1, weight_decay=0.1)),
    Case("adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.05, initial_accumulator_value=0.1, maximize=True)),
    Case("rmsprop", dict(lr=0.01)),
    Case("rmsprop", dict(lr=0.01, alpha=0.9, eps=1e-4)),
    Case("rmsprop", dict(lr=0.01, centered=True)),
    Case("rmsprop", dict(lr=0.01, alpha=0.3, centered=True)),  # lerp weight 1 − α > 0.5: torch's other branch
    Case("rmsprop", dict(lr=1e-3, momentum=0.9)),
    Case("rmsprop", dict(lr=3e-3, momentum=0.5, centered=True, weight_decay=0.1)),
    Case("rmsprop", dict(lr=0.01, weight_decay=0.05, maximize=True)),
    Case("adadelta", dict(lr=1.0)),
    Case("adadelta", dict(lr=0.5, rho=0.95, eps=1e-4)),
    Case("adadelta", dict(lr=1.0, weight_decay=0.1)),
    Case("adadelta", dict(lr=2.0, rho=0.8, weight_decay=0.05, maximize=True)),
    Case("rprop", dict(lr=0.01)),
    Case("rprop", dict(lr=1e-3, step_sizes=(1e-6, 0.01))),  # Δ_max binds; stays away from the minimum
    Case("rprop", dict(lr=0.05, etas=(0.3, 1.5))),
    Case("rprop", dict(lr=0.01, step_sizes=(1e-3, 0.05))),  # both bounds bind
    Case("rprop", dict(lr=0.1, etas=(0.6, 1.1), step_sizes=(1e-4, 1.0), maximize=True)),
    Case("rprop", dict(lr=1e-3), problem="rosenbrock"),  # frequent sign flips in the curved valley
    # asgd: torch keeps η, μ in float32 (default dtype); descend in double: ~1e-8 relative, inside RTOL.
    # t0 changes only the average ax, which this harness does not see: test_adaptive_family.py compares it.
    Case("asgd", dict(lr=0.01)),
    Case("asgd", dict(lr=0.01, lambd=0.1, alpha=0.5)),  # η_t decays by 12% over the run, θ shrinks by λη
    Case("asgd", dict(lr=0.01, t0=100)),
    Case("asgd", dict(lr=0.01, weight_decay=0.1)),
    Case("asgd", dict(lr=0.02, lambd=0.01, alpha=1.0, t0=50, weight_decay=0.05, maximize=True)),
    # --- adam family: adamax, nadam, radam, adafactor ---
    Case("adamax", dict(lr=0.01)),
    Case("adamax", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-3)),  # ε large enough to win the max
    Case("adamax", dict(lr=0.01, weight_decay=0.1)),
    Case("adamax", dict(lr=0.01, betas=(0.3, 0.9), weight_decay=0.05, maximize=True)),  # lerp weight > 0.5
    Case("nadam", dict(lr=0.01)),
    Case("nadam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    Case("nadam", dict(lr=0.01, momentum_decay=0.1)),  # μ_t reaches β₁ within the run
    Case("nadam", dict(lr=0.01, weight_decay=0.1)),
    Case("nadam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    Case("nadam", dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.05, maximize=True)),
    Case("radam", dict(lr=0.01)),  # ρ_t ≤ 5 for t ≤ 3, rectified afterwards
    Case("radam", dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6)),
    Case("radam", dict(lr=0.01, weight_decay=0.1)),
    Case("radam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    Case("radam", dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.05, maximize=True)),  # ρ_∞ = 19
    # adafactor: W (5×3) takes the factored path, b and v the unfactored one
    Case("adafactor", dict(lr=1e-3)),
    Case("adafactor", dict(lr=0.3, eps=(100.0, 1e-3))),  # ρ_t = 1/√t from t = 12; ε₁ clamps v̂ and mean(R)
    Case("adafactor", dict(lr=1e-3, beta2_decay=-0.5, d=2.0)),
    Case("adafactor", dict(lr=1e-3, eps=(None, 10.0))),  # ε₂ > RMS(θ): the parameter scale is floored
    Case("adafactor", dict(lr=1e-3, weight_decay=0.1, maximize=True)),
    Case("adafactor", dict(lr=0.2), problem="rosenbrock"),  # 1-D only; ρ_t = 1/√t from t = 25
]


def _run_descend(case: Case, params0, grad_fn):
    tx = getattr(dc.optim, case.name)(**case.kwargs)
    params = {k: v.copy() for k, v in params0.items()}
    state = tx.init(params)
    for _ in range(STEPS):
        sign = -1.0 if case.kwargs.get("maximize") else 1.0
        grads = {k: sign * g for k, g in grad_fn(params).items()}
        updates, state = tx.update(grads, state, params)
        params = dc.optim.apply_updates(params, updates)
    return params


def _run_torch(case: Case, params0, grad_fn, descend_backend: bool = False):
    """torch.optim's class (the reference), or with ``descend_backend`` descend.torch's class of the same name."""
    tparams = {k: torch.tensor(v.copy(), dtype=torch.float64, requires_grad=True) for k, v in params0.items()}
    name = case.torch_name or TORCH_NAMES[case.name]
    if descend_backend:
        cls, kwargs = getattr(dtorch, name), dict(case.kwargs)
    else:
        cls = getattr(torch.optim, name)
        kwargs = dict(case.kwargs if case.torch_kwargs is None else case.torch_kwargs)
        kwargs.setdefault("foreach", False)  # the reference single-tensor path
    opt = cls(list(tparams.values()), **kwargs)
    for _ in range(STEPS):
        current = {k: t.detach().numpy().copy() for k, t in tparams.items()}
        sign = -1.0 if case.kwargs.get("maximize") else 1.0
        for k, g in grad_fn(current).items():
            tparams[k].grad = torch.from_numpy(sign * g)
        opt.step()
    return {k: t.detach().numpy() for k, t in tparams.items()}


PROBLEMS = {
    "mixed": (problems.mixed_params, problems.mixed_grad),
    "rosenbrock": (lambda: {"w": problems.rosenbrock_params()}, lambda p: {"w": problems.rosenbrock_grad(p["w"])}),
}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_matches_torch(case: Case, backend: str) -> None:
    make_params, grad_fn = PROBLEMS[case.problem]
    params0 = make_params()
    if backend == "numpy":
        ours = _run_descend(case, params0, grad_fn)
    else:
        ours = _run_torch(case, params0, grad_fn, descend_backend=True)
    theirs = _run_torch(case, params0, grad_fn)
    moved = any(not np.allclose(ours[k], params0[k]) for k in params0)
    assert moved, "the optimizer did not move the parameters: the comparison would be vacuous"
    for k in params0:
        assert ours[k].dtype == np.float64
        np.testing.assert_allclose(ours[k], theirs[k], rtol=RTOL, atol=ATOL, err_msg=f"{case.id}: {k}")


def test_every_torch_optimizer_has_a_case() -> None:
    covered = {c.name for c in CASES}
    assert set(TORCH_NAMES) <= covered, f"no conformance case for {sorted(set(TORCH_NAMES) - covered)}"


def test_the_fused_kernels_run_exactly_when_the_config_says_so() -> None:
    """``make test`` runs this file a second time with ``DESCEND_FUSED=0``: then every case above ran the chains."""
    from descend.config import numba_available
    from descend.optim import fused

    off = os.environ.get("DESCEND_FUSED", "").strip().lower() in ("0", "false", "no", "off")
    assert dc.config.fused is (not off and numba_available())
    make_params, grad_fn = PROBLEMS["mixed"]
    before = sum(fused.calls.values())
    for name in ("adam", "sgd", "rmsprop"):
        _run_descend(Case(name, {"lr": 0.01}), make_params(), grad_fn)
    taken = sum(fused.calls.values()) - before
    if dc.config.fused:
        assert taken == 3 * STEPS, "the fused kernels run every step of the named optimizers that have one"
    else:
        assert taken == 0, "with the fast path off every step runs the reference chain"
