"""Every schedule equals its torch.optim.lr_scheduler counterpart, over a grid of options.

One table drives the test. Each case builds a descend schedule and the torch
scheduler it claims to be, steps a torch optimizer on a dummy parameter
``steps`` times (1,000 unless the torch scheduler cannot go that far), records
``optimizer.param_groups[0]["lr"]`` before each ``scheduler.step()`` and
requires ``schedule(t)`` to match within ``rtol=1e-10``. torch updates most
schedules recursively (``lr ← lr·γ``), so the two agree to accumulated
rounding, about 1e-13 after 1,000 steps; values that are exactly 0 in one are
exactly 0 in the other (``atol=0``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import descend as dc
from descend import schedules as S

torch = pytest.importorskip("torch")
lrs = torch.optim.lr_scheduler

STEPS = 1000
RTOL = 1e-10


@dataclass(frozen=True)
class Case:
    id: str
    schedule: Callable[[int], float]  # the descend schedule
    make_torch: Callable[[Any], Any]  # optimizer -> torch scheduler
    lr: float  # the torch optimizer's lr (the schedulers' base lr)
    steps: int = STEPS
    flat: bool = False  # a constant learning rate is the point of the case


def _sequential(*makers: Callable[[Any], Any], milestones: list[int]) -> Callable[[Any], Any]:
    return lambda opt: lrs.SequentialLR(opt, [m(opt) for m in makers], milestones=milestones)


CASES = [
    # --- constant: an optimizer with a neutral scheduler ---
    Case("constant(0.1)", S.constant(0.1), lambda o: lrs.LambdaLR(o, lambda t: 1.0), 0.1, flat=True),
    Case("constant(0)", S.constant(0.0), lambda o: lrs.LambdaLR(o, lambda t: 1.0), 0.0, flat=True),
    # --- constant_factor <-> ConstantLR ---
    Case("constant_factor(defaults)", S.constant_factor(0.1), lambda o: lrs.ConstantLR(o), 0.1),
    Case("constant_factor(0.5,40)", S.constant_factor(0.05, 0.5, 40), lambda o: lrs.ConstantLR(o, 0.5, 40), 0.05),
    Case("constant_factor(1.0,3)", S.constant_factor(1.0, 1.0, 3), lambda o: lrs.ConstantLR(o, 1.0, 3), 1.0, flat=True),
    Case(
        "constant_factor(0.1,2000)",
        S.constant_factor(0.3, 0.1, 2000),
        lambda o: lrs.ConstantLR(o, 0.1, 2000),
        0.3,
        flat=True,  # never restored within the window
    ),
    # --- step_decay <-> StepLR ---
    Case("step_decay(30,0.1)", S.step_decay(0.1, 30), lambda o: lrs.StepLR(o, 30), 0.1),
    Case("step_decay(7,0.5)", S.step_decay(0.05, 7, 0.5), lambda o: lrs.StepLR(o, 7, 0.5), 0.05),
    Case("step_decay(1,0.99)", S.step_decay(1.0, 1, 0.99), lambda o: lrs.StepLR(o, 1, 0.99), 1.0),
    Case("step_decay(999,0.1)", S.step_decay(0.1, 999, 0.1), lambda o: lrs.StepLR(o, 999, 0.1), 0.1),
    Case("step_decay(100,1.1)", S.step_decay(0.01, 100, 1.1), lambda o: lrs.StepLR(o, 100, 1.1), 0.01),
    # --- multi_step_decay <-> MultiStepLR ---
    Case(
        "multi_step_decay([30,80])",
        S.multi_step_decay(0.05, [30, 80]),
        lambda o: lrs.MultiStepLR(o, [30, 80]),
        0.05,
    ),
    Case(
        "multi_step_decay([0,5,5,500],0.5)",
        S.multi_step_decay(0.1, [0, 5, 5, 500], 0.5),
        lambda o: lrs.MultiStepLR(o, [0, 5, 5, 500], 0.5),
        0.1,
    ),
    Case("multi_step_decay([999])", S.multi_step_decay(1.0, (999,)), lambda o: lrs.MultiStepLR(o, [999]), 1.0),
    Case("multi_step_decay([])", S.multi_step_decay(0.1, []), lambda o: lrs.MultiStepLR(o, []), 0.1, flat=True),
    # --- exponential_decay <-> ExponentialLR (k = 1), StepLR (staircase), ExponentialLR(γ^(1/k)) ---
    Case("exponential_decay(0.95) seed", S.exponential_decay(0.1, 0.95), lambda o: lrs.ExponentialLR(o, 0.95), 0.1),
    Case("exponential_decay(0.999)", S.exponential_decay(1.0, 0.999), lambda o: lrs.ExponentialLR(o, 0.999), 1.0),
    Case("exponential_decay(1.001)", S.exponential_decay(0.01, 1.001), lambda o: lrs.ExponentialLR(o, 1.001), 0.01),
    Case(
        "exponential_decay(0.5,k=10,staircase)",
        S.exponential_decay(0.1, 0.5, 10, staircase=True),
        lambda o: lrs.StepLR(o, 10, 0.5),
        0.1,
    ),
    Case(
        "exponential_decay(0.5,k=10)",
        S.exponential_decay(0.1, 0.5, 10),
        lambda o: lrs.ExponentialLR(o, 0.5 ** (1 / 10)),
        0.1,
    ),
    # --- polynomial_decay <-> PolynomialLR ---
    Case("polynomial_decay(T=5)", S.polynomial_decay(0.1, total_steps=5), lambda o: lrs.PolynomialLR(o), 0.1),
    Case(
        "polynomial_decay(p=0.9,T=50)",
        S.polynomial_decay(0.05, power=0.9, total_steps=50),
        lambda o: lrs.PolynomialLR(o, 50, 0.9),
        0.05,
    ),
    Case(
        "polynomial_decay(p=2,T=1000)",
        S.polynomial_decay(1.0, 0.0, 2.0, total_steps=1000),
        lambda o: lrs.PolynomialLR(o, 1000, 2.0),
        1.0,
    ),
    Case(
        "polynomial_decay(p=0.5,T=999)",
        S.polynomial_decay(0.3, power=0.5, total_steps=999),
        lambda o: lrs.PolynomialLR(o, 999, 0.5),
        0.3,
    ),
    # --- linear_schedule / linear_warmup <-> LinearLR (ends = lr·start_factor, lr·end_factor) ---
    Case(
        "linear_schedule(defaults of LinearLR)",
        S.linear_schedule(0.1 * (1.0 / 3), 0.1, 5),
        lambda o: lrs.LinearLR(o),
        0.1,
    ),
    Case(
        "linear_schedule(0.05->1,40)",
        S.linear_schedule(0.05 * 0.05, 0.05, 40),
        lambda o: lrs.LinearLR(o, 0.05, 1.0, 40),
        0.05,
    ),
    Case(
        "linear_schedule(1->0.1,500)",
        S.linear_schedule(0.2, 0.2 * 0.1, 500),
        lambda o: lrs.LinearLR(o, 1.0, 0.1, 500),
        0.2,
    ),
    Case(
        "linear_schedule(1->0,1000)",
        S.linear_schedule(0.1, 0.0, 1000),
        lambda o: lrs.LinearLR(o, 1.0, 0.0, 1000),
        0.1,
    ),
    Case(
        "linear_warmup(100,from 0.01·peak)",
        S.linear_warmup(0.1, 100, init_value=0.1 * 0.01),
        lambda o: lrs.LinearLR(o, 0.01, 1.0, 100),
        0.1,
    ),
    # --- cosine_decay <-> CosineAnnealingLR (t <= T_max; periodic=True beyond) ---
    Case("cosine_decay(T=1000)", S.cosine_decay(0.1, 1000), lambda o: lrs.CosineAnnealingLR(o, 1000), 0.1),
    Case(
        "cosine_decay(T=300) up to T",
        S.cosine_decay(0.1, 300),
        lambda o: lrs.CosineAnnealingLR(o, 300),
        0.1,
        steps=301,
    ),
    Case(
        "cosine_decay(T=999,alpha=0.01)",
        S.cosine_decay(0.5, 999, 0.01),
        lambda o: lrs.CosineAnnealingLR(o, 999, eta_min=0.5 * 0.01),
        0.5,
    ),
    Case(
        "cosine_decay(T=200,eta_min,periodic)",
        S.cosine_decay(0.1, 200, eta_min=0.001, periodic=True),
        lambda o: lrs.CosineAnnealingLR(o, 200, eta_min=0.001),
        0.1,
    ),
    Case(
        "cosine_decay(T=10,periodic)",
        S.cosine_decay(0.05, 10, periodic=True),
        lambda o: lrs.CosineAnnealingLR(o, 10),
        0.05,
    ),
    # --- cosine_warm_restarts <-> CosineAnnealingWarmRestarts ---
    Case(
        "cosine_warm_restarts(10)",
        S.cosine_warm_restarts(0.1, 10),
        lambda o: lrs.CosineAnnealingWarmRestarts(o, 10),
        0.1,
    ),
    Case(
        "cosine_warm_restarts(10,2)",
        S.cosine_warm_restarts(0.1, 10, 2),
        lambda o: lrs.CosineAnnealingWarmRestarts(o, 10, 2),
        0.1,
    ),
    Case(
        "cosine_warm_restarts(7,3,eta_min)",
        S.cosine_warm_restarts(0.05, 7, 3, 0.001),
        lambda o: lrs.CosineAnnealingWarmRestarts(o, 7, 3, 0.001),
        0.05,
    ),
    Case(
        "cosine_warm_restarts(1,1)",
        S.cosine_warm_restarts(1.0, 1),
        lambda o: lrs.CosineAnnealingWarmRestarts(o, 1),
        1.0,
        flat=True,  # a restart every step: always at the top
    ),
    # --- one_cycle <-> OneCycleLR (t < total_steps; momentum cycling off) ---
    Case(
        "one_cycle(defaults,1000)",
        S.one_cycle(0.1, 1000),
        lambda o: lrs.OneCycleLR(o, 0.1, 1000, cycle_momentum=False),
        0.1,
    ),
    Case(
        "one_cycle(linear,pct=0.25,500)",
        S.one_cycle(0.01, 500, pct_start=0.25, anneal_strategy="linear"),
        lambda o: lrs.OneCycleLR(o, 0.01, 500, pct_start=0.25, anneal_strategy="linear", cycle_momentum=False),
        0.01,
        steps=500,
    ),
    Case(
        "one_cycle(three_phase,1000)",
        S.one_cycle(0.1, 1000, three_phase=True),
        lambda o: lrs.OneCycleLR(o, 0.1, 1000, three_phase=True, cycle_momentum=False),
        0.1,
    ),
    Case(
        "one_cycle(div=10,final=100,pct=0.5,three_phase,100)",
        S.one_cycle(1.0, 100, 0.5, "cos", 10.0, 100.0, True),
        lambda o: lrs.OneCycleLR(
            o, 1.0, 100, pct_start=0.5, div_factor=10.0, final_div_factor=100.0, three_phase=True, cycle_momentum=False
        ),
        1.0,
        steps=100,
    ),
    Case(
        "one_cycle(pct=0,50)",
        S.one_cycle(0.1, 50, pct_start=0.0),
        lambda o: lrs.OneCycleLR(o, 0.1, 50, pct_start=0.0, cycle_momentum=False),
        0.1,
        steps=50,
    ),
    Case(
        "one_cycle(pct=0.3,7)",
        S.one_cycle(0.1, 7),
        lambda o: lrs.OneCycleLR(o, 0.1, 7, cycle_momentum=False),
        0.1,
        steps=7,
    ),
    # --- cyclic <-> CyclicLR ---
    Case(
        "cyclic(defaults)",
        S.cyclic(0.001, 0.006),
        lambda o: lrs.CyclicLR(o, 0.001, 0.006, cycle_momentum=False),
        0.001,
    ),
    Case(
        "cyclic(up=10)",
        S.cyclic(0.01, 0.1, 10),
        lambda o: lrs.CyclicLR(o, 0.01, 0.1, 10, cycle_momentum=False),
        0.01,
    ),
    Case(
        "cyclic(20,5,triangular2)",
        S.cyclic(0.01, 0.1, 20, 5, "triangular2"),
        lambda o: lrs.CyclicLR(o, 0.01, 0.1, 20, 5, "triangular2", cycle_momentum=False),
        0.01,
    ),
    Case(
        "cyclic(25,exp_range,0.999)",
        S.cyclic(0.01, 0.1, 25, mode="exp_range", gamma=0.999),
        lambda o: lrs.CyclicLR(o, 0.01, 0.1, 25, mode="exp_range", gamma=0.999, cycle_momentum=False),
        0.01,
    ),
    Case(
        "cyclic(10,0,saw-tooth)",
        S.cyclic(0.0, 0.1, 10, 0),
        lambda o: lrs.CyclicLR(o, 0.0, 0.1, 10, 0, cycle_momentum=False),
        0.0,
    ),
    Case(
        "cyclic(scale_fn,cycle)",
        S.cyclic(0.02, 0.2, 15, 30, scale_fn=lambda c: 1.0 / c),
        lambda o: lrs.CyclicLR(o, 0.02, 0.2, 15, 30, scale_fn=lambda c: 1.0 / c, cycle_momentum=False),
        0.02,
    ),
    Case(
        "cyclic(scale_fn,iterations)",
        S.cyclic(0.02, 0.2, 15, scale_fn=lambda x: 0.995**x, scale_mode="iterations"),
        lambda o: lrs.CyclicLR(
            o, 0.02, 0.2, 15, scale_fn=lambda x: 0.995**x, scale_mode="iterations", cycle_momentum=False
        ),
        0.02,
    ),
    # --- join_schedules <-> SequentialLR ---
    Case(
        "join(constant_factor,exponential)",
        S.join_schedules([S.constant_factor(0.05, 0.1, 20), S.exponential_decay(0.05, 0.9)], [20]),
        _sequential(lambda o: lrs.ConstantLR(o, 0.1, 20), lambda o: lrs.ExponentialLR(o, 0.9), milestones=[20]),
        0.05,
    ),
    Case(
        "join(linear,cosine)",
        S.join_schedules([S.linear_schedule(0.1 * 0.01, 0.1, 100), S.cosine_decay(0.1, 900)], [100]),
        _sequential(
            lambda o: lrs.LinearLR(o, 0.01, 1.0, 100), lambda o: lrs.CosineAnnealingLR(o, 900), milestones=[100]
        ),
        0.1,
    ),
    Case(
        "join(linear,step,cosine)",
        S.join_schedules(
            [
                S.linear_schedule(0.2 * 0.5, 0.2, 50),
                S.step_decay(0.2, 100, 0.5),
                S.cosine_decay(0.2, 600, eta_min=0.01),
            ],
            [50, 400],
        ),
        _sequential(
            lambda o: lrs.LinearLR(o, 0.5, 1.0, 50),
            lambda o: lrs.StepLR(o, 100, 0.5),
            lambda o: lrs.CosineAnnealingLR(o, 600, eta_min=0.01),
            milestones=[50, 400],
        ),
        0.2,
    ),
    Case(
        "join(constant,warm_restarts)",
        S.join_schedules([S.constant(0.1), S.cosine_warm_restarts(0.1, 30, 2)], [10]),
        _sequential(
            lambda o: lrs.LambdaLR(o, lambda t: 1.0),
            lambda o: lrs.CosineAnnealingWarmRestarts(o, 30, 2),
            milestones=[10],
        ),
        0.1,
    ),
    # --- warmup_cosine_decay <-> SequentialLR(LinearLR, CosineAnnealingLR) ---
    Case(
        "warmup_cosine_decay(100,1000)",
        S.warmup_cosine_decay(0.1 * 0.01, 0.1, 100, 1000, 0.001),
        _sequential(
            lambda o: lrs.LinearLR(o, 0.01, 1.0, 100),
            lambda o: lrs.CosineAnnealingLR(o, 900, eta_min=0.001),
            milestones=[100],
        ),
        0.1,
    ),
]


def torch_lrs(make_torch: Callable[[Any], Any], lr: float, steps: int) -> np.ndarray:
    """``param_groups[0]["lr"]`` before each of ``steps`` scheduler steps (optimizer step first, as torch asks)."""
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=lr)
    sched = make_torch(opt)
    out = []
    for _ in range(steps):
        out.append(float(opt.param_groups[0]["lr"]))
        opt.step()  # no gradient: the parameter is untouched, the schedule is what is tested
        sched.step()
    return np.array(out)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_schedule_equals_its_torch_counterpart(case: Case) -> None:
    expected = torch_lrs(case.make_torch, case.lr, case.steps)
    got = np.array([case.schedule(t) for t in range(case.steps)])
    assert all(type(case.schedule(t)) is float for t in (0, 1, case.steps - 1))
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=0)
    assert (np.ptp(expected) == 0) == case.flat, "a case whose learning rate never changes tests little"


def test_every_schedule_has_a_case() -> None:
    covered = {c.id.split("(")[0] for c in CASES} | {"join", "warmup_cosine_decay"}
    public = {n for n in S.__all__ if n[0].islower() and n != "reduce_on_plateau"}
    assert public - covered == {"join_schedules"}, public - covered


# --- seed 001's worked example -------------------------------------------------------------------

# 0.1·0.95^e computed by hand (0.95² = 0.9025, 0.95³ = 0.857375, ...), e = 0 … 9
SEED_001_LRS = [
    0.1,
    0.095,
    0.09025,
    0.0857375,
    0.081450625,
    0.07737809375,
    0.0735091890625,
    0.069833729609375,
    0.06634204312890625,
    0.0630249409724609375,
]
SEED_001_PRINTED = [
    "0.10000",
    "0.09500",
    "0.09025",
    "0.08574",
    "0.08145",
    "0.07738",
    "0.07351",
    "0.06983",
    "0.06634",
    "0.06302",
]


def test_seed_001_exponential_decay_worked_example() -> None:
    schedule = dc.schedules.exponential_decay(0.1, 0.95)
    got = [schedule(epoch) for epoch in range(10)]
    np.testing.assert_allclose(got, SEED_001_LRS, rtol=1e-14, atol=0)
    assert [f"{lr:.5f}" for lr in got] == SEED_001_PRINTED


# --- behaviour torch cannot show: beyond the end, end values, positional public form ---------------


def test_cosine_decay_holds_eta_min_after_decay_steps_unless_periodic() -> None:
    held = S.cosine_decay(0.1, 300, alpha=0.1)
    assert [held(t) for t in (300, 301, 450, 600, 10_000)] == [0.1 * 0.1] * 5
    periodic = S.cosine_decay(0.1, 300, alpha=0.1, periodic=True)
    assert periodic(600) == pytest.approx(0.1, rel=1e-15)  # back to the top after 2T, as torch
    assert periodic(450) == pytest.approx(0.01 + 0.09 * 0.5, rel=1e-12)


def test_cosine_decay_positional_public_form() -> None:
    s = dc.schedules.cosine_decay(1e-3, 10_000)
    assert s(0) == 1e-3
    assert s(5_000) == pytest.approx(0.5e-3, rel=1e-15)
    assert s(10_000) == 0.0
    assert s(20_000) == 0.0


def test_one_cycle_holds_its_final_value_after_total_steps() -> None:
    s = S.one_cycle(0.1, 100)
    final = 0.1 / 25 / 1e4
    assert s(99) == pytest.approx(final, rel=1e-15)
    assert s(100) == s(99) == s(5000)
    assert s(0) == pytest.approx(0.1 / 25, rel=1e-15)
    assert s(29) == pytest.approx(0.1, rel=1e-15)  # the peak ends phase 1 at pct_start·T − 1


def test_exponential_decay_end_value_floor_and_ceiling() -> None:
    down = S.exponential_decay(1.0, 0.5, end_value=0.2)
    assert [down(t) for t in range(5)] == [1.0, 0.5, 0.25, 0.2, 0.2]
    up = S.exponential_decay(0.1, 2.0, end_value=0.5)
    assert [up(t) for t in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    stairs = S.exponential_decay(1.0, 0.5, transition_steps=3, staircase=True)
    assert [stairs(t) for t in range(7)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    smooth = S.exponential_decay(1.0, 0.5, transition_steps=2)
    assert smooth(1) == pytest.approx(math.sqrt(0.5), rel=1e-15)


def test_polynomial_decay_to_an_end_value() -> None:
    s = S.polynomial_decay(1.0, 0.1, 2.0, total_steps=10)
    assert s(0) == 1.0
    assert s(5) == pytest.approx(0.9 * 0.25 + 0.1, rel=1e-15)
    assert s(10) == s(11) == pytest.approx(0.1, rel=1e-15)


def test_linear_warmup_from_zero_then_holds() -> None:
    s = S.linear_warmup(0.1, 4)
    assert [s(t) for t in range(6)] == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1, 0.1], rel=1e-15)


def test_join_schedules_restarts_the_clock_of_later_schedules() -> None:
    s = S.join_schedules([S.constant(1.0), S.linear_schedule(0.0, 1.0, 10), S.constant(0.5)], [3, 8])
    got = [s(t) for t in range(10)]
    assert got == pytest.approx([1.0, 1.0, 1.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.5], rel=1e-15)
    plain = S.join_schedules([lambda t: 0.1 * t], [])  # any function of t is a schedule
    assert plain(7) == pytest.approx(0.7) and type(plain(7)) is float


def test_warmup_cosine_decay_without_warmup_is_cosine() -> None:
    a, b = S.warmup_cosine_decay(0.0, 0.1, 0, 100, 0.01), S.cosine_decay(0.1, 100, eta_min=0.01)
    assert [a(t) for t in range(0, 150, 7)] == [b(t) for t in range(0, 150, 7)]


def test_cosine_warm_restarts_restart_points() -> None:
    s = S.cosine_warm_restarts(1.0, 3, 2, 0.0)  # restarts at 3, 3 + 6 = 9, 9 + 12 = 21
    assert [t for t in range(1, 60) if s(t) == 1.0] == [3, 9, 21, 45]


def test_schedules_accept_numpy_integers_and_reject_bad_steps() -> None:
    s = S.step_decay(0.1, 10, 0.5)
    assert s(np.int64(10)) == 0.05 and type(s(np.int64(10))) is float
    for bad in (-1, 1.5, 2.0, "3", True, None):
        with pytest.raises(dc.errors.ParameterError, match=r"step_decay: step must be an integer in \[0, inf\)"):
            s(bad)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_far_beyond_the_table_every_schedule_still_returns_a_number(case: Case) -> None:
    for t in (10**6, 10**9 + 7):
        v = case.schedule(t)
        assert type(v) is float and not math.isnan(v) and v >= 0


def test_long_runs_do_not_overflow_where_python_powers_would() -> None:
    # torch's 1/2.0**(cycle−1) raises OverflowError after 1,024 cycles; the amplitude is simply 0 by then
    tri2 = S.cyclic(0.01, 0.1, 5, mode="triangular2")
    assert tri2(10 * 2000 + 5) == 0.01
    assert tri2(5) == 0.1 and tri2(15) == pytest.approx(0.01 + 0.09 / 2, rel=1e-15)
    # 1.001**1e9 overflows a Python float; the ceiling still applies and without one the rate is inf
    assert S.exponential_decay(0.01, 1.001, end_value=1.0)(10**9) == 1.0
    assert S.exponential_decay(0.01, 1.001)(10**9) == math.inf
    assert S.exponential_decay(0.0, 1.001)(10**9) == 0.0
    assert S.step_decay(0.1, 1, 2.0)(5000) == math.inf
