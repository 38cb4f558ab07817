"""Every schedule factory validates its arguments at construction, with one clear message.

The message names the owner, the argument, what is allowed and the value given:
"cosine_decay: decay_steps must be an integer in [1, inf), got 0".
"""

from __future__ import annotations

import math

import pytest

from descend import schedules as S
from descend.errors import DescendError, ParameterError

CASES = [
    (S.constant, (-0.1,), {}, r"constant: value must be in \[0, inf\), got -0.1"),
    (S.constant, (math.inf,), {}, r"constant: value must be in \[0, inf\), got inf"),
    (S.constant, ("0.1",), {}, r"constant: value must be in \[0, inf\), got '0.1'"),
    (S.constant_factor, (0.1, -0.5), {}, r"constant_factor: factor must be in \[0, inf\), got -0.5"),
    (S.constant_factor, (0.1, 0.5, 0), {}, r"constant_factor: total_steps must be an integer in \[1, inf\), got 0"),
    (S.step_decay, (0.1, 0), {}, r"step_decay: step_size must be an integer in \[1, inf\), got 0"),
    (S.step_decay, (0.1, 10.0), {}, r"step_decay: step_size must be an integer in \[1, inf\), got 10.0"),
    (S.step_decay, (0.1, True), {}, r"step_decay: step_size must be an integer in \[1, inf\), got True"),
    (S.step_decay, (0.1, 10, math.nan), {}, r"step_decay: gamma must be in \[0, inf\), got nan"),
    (S.step_decay, (None, 10), {}, r"step_decay: init_value must be in \[0, inf\), got None"),
    (S.multi_step_decay, (0.1, 30), {}, r"multi_step_decay: milestones must be a sequence of integers, got 30"),
    (
        S.multi_step_decay,
        (0.1, [30, -1]),
        {},
        r"multi_step_decay: milestones\[1\] must be an integer in \[0, inf\), got -1",
    ),
    (S.multi_step_decay, (0.1, [80, 30]), {}, r"multi_step_decay: milestones must be non-decreasing, got \[80, 30\]"),
    (S.multi_step_decay, (0.1, [30], -1.0), {}, r"multi_step_decay: gamma must be in \[0, inf\), got -1.0"),
    (S.exponential_decay, (0.1, 0.0), {}, r"exponential_decay: decay_rate must be in \(0, inf\), got 0.0"),
    (
        S.exponential_decay,
        (0.1, 0.9, 0),
        {},
        r"exponential_decay: transition_steps must be an integer in \[1, inf\), got 0",
    ),
    (S.exponential_decay, (0.1, 0.9), dict(staircase=1), r"exponential_decay: staircase must be a bool, got 1"),
    (
        S.exponential_decay,
        (0.1, 0.9),
        dict(end_value=0.5),
        r"exponential_decay: end_value must be in \[0, 0.1\], got 0.5",
    ),
    (
        S.exponential_decay,
        (0.1, 1.1),
        dict(end_value=0.05),
        r"exponential_decay: end_value must be in \[0.1, inf\), got 0.05",
    ),
    (
        S.polynomial_decay,
        (0.1,),
        dict(total_steps=0),
        r"polynomial_decay: total_steps must be an integer in \[1, inf\), got 0",
    ),
    (
        S.polynomial_decay,
        (0.1, -0.01),
        dict(total_steps=5),
        r"polynomial_decay: end_value must be in \[0, inf\), got -0.01",
    ),
    (
        S.polynomial_decay,
        (0.1, 0.0, -1.0),
        dict(total_steps=5),
        r"polynomial_decay: power must be in \[0, inf\), got -1.0",
    ),
    (
        S.linear_schedule,
        (0.1, 0.0, 0),
        {},
        r"linear_schedule: transition_steps must be an integer in \[1, inf\), got 0",
    ),
    (S.linear_schedule, (0.1, -1.0, 10), {}, r"linear_schedule: end_value must be in \[0, inf\), got -1.0"),
    (S.linear_warmup, (0.1, -5), {}, r"linear_warmup: warmup_steps must be an integer in \[1, inf\), got -5"),
    (S.linear_warmup, (0.1, 5, -0.1), {}, r"linear_warmup: init_value must be in \[0, inf\), got -0.1"),
    (S.cosine_decay, (1e-3, 0), {}, r"cosine_decay: decay_steps must be an integer in \[1, inf\), got 0"),
    (S.cosine_decay, (-1e-3, 10), {}, r"cosine_decay: init_value must be in \[0, inf\), got -0.001"),
    (S.cosine_decay, (1e-3, 10, -0.1), {}, r"cosine_decay: alpha must be in \[0, inf\), got -0.1"),
    (S.cosine_decay, (1e-3, 10, 0.1), dict(eta_min=1e-5), r"cosine_decay: give alpha or eta_min, not both"),
    (S.cosine_decay, (1e-3, 10), dict(eta_min=-1.0), r"cosine_decay: eta_min must be in \[0, inf\), got -1.0"),
    (S.cosine_decay, (1e-3, 10), dict(periodic="yes"), r"cosine_decay: periodic must be a bool, got 'yes'"),
    (S.cosine_warm_restarts, (0.1, 0), {}, r"cosine_warm_restarts: t_0 must be an integer in \[1, inf\), got 0"),
    (
        S.cosine_warm_restarts,
        (0.1, 10, 1.5),
        {},
        r"cosine_warm_restarts: t_mult must be an integer in \[1, inf\), got 1.5",
    ),
    (
        S.cosine_warm_restarts,
        (0.1, 10, 1, -1e-3),
        {},
        r"cosine_warm_restarts: eta_min must be in \[0, inf\), got -0.001",
    ),
    (S.one_cycle, (0.1, 0), {}, r"one_cycle: total_steps must be an integer in \[1, inf\), got 0"),
    (S.one_cycle, (0.1, 100, 1.5), {}, r"one_cycle: pct_start must be in \[0, 1\], got 1.5"),
    (
        S.one_cycle,
        (0.1, 100),
        dict(anneal_strategy="exp"),
        r"one_cycle: anneal_strategy must be one of 'cos', 'linear', got 'exp'",
    ),
    (S.one_cycle, (0.1, 100), dict(div_factor=0), r"one_cycle: div_factor must be in \(0, inf\), got 0"),
    (
        S.one_cycle,
        (0.1, 100),
        dict(final_div_factor=-1.0),
        r"one_cycle: final_div_factor must be in \(0, inf\), got -1.0",
    ),
    (S.one_cycle, (0.1, 100), dict(three_phase=None), r"one_cycle: three_phase must be a bool, got None"),
    (
        S.one_cycle,
        (0.1, 10, 0.1),
        {},
        r"one_cycle: pct_start \* total_steps must not be 1 .* got pct_start=0.1, total_steps=10",
    ),
    (S.cyclic, (0.01, 0.1, 0), {}, r"cyclic: step_size_up must be an integer in \[1, inf\), got 0"),
    (S.cyclic, (0.01, 0.1, 10, -1), {}, r"cyclic: step_size_down must be an integer in \[0, inf\), got -1"),
    (
        S.cyclic,
        (0.01, 0.1),
        dict(mode="sine"),
        r"cyclic: mode must be one of 'triangular', 'triangular2', 'exp_range', got 'sine'",
    ),
    (S.cyclic, (0.01, 0.1), dict(gamma=0.0), r"cyclic: gamma must be in \(0, 1\], got 0.0"),
    (S.cyclic, (0.01, 0.1), dict(scale_fn=0.5), r"cyclic: scale_fn must be a callable, got 0.5"),
    (
        S.cyclic,
        (0.01, 0.1),
        dict(scale_mode="epochs"),
        r"cyclic: scale_mode must be one of 'cycle', 'iterations', got 'epochs'",
    ),
    (S.cyclic, (0.01, -0.1), {}, r"cyclic: max_lr must be in \[0, inf\), got -0.1"),
    (S.join_schedules, ([], []), {}, r"join_schedules: schedules must contain at least one schedule, got \[\]"),
    (
        S.join_schedules,
        ([0.1, S.constant(0.1)], [5]),
        {},
        r"join_schedules: schedules\[0\] must be a callable, got 0.1",
    ),
    (
        S.join_schedules,
        ([S.constant(0.1)] * 2, []),
        {},
        r"join_schedules: boundaries must have one entry fewer than schedules \(1\), got 0: \[\]",
    ),
    (
        S.join_schedules,
        ([S.constant(0.1)] * 3, [5, 5]),
        {},
        r"join_schedules: boundaries must be strictly increasing, got \[5, 5\]",
    ),
    (
        S.join_schedules,
        ([S.constant(0.1)] * 2, [-1]),
        {},
        r"join_schedules: boundaries\[0\] must be an integer in \[0, inf\), got -1",
    ),
    (S.join_schedules, (S.constant(0.1), []), {}, r"join_schedules: schedules must be a sequence of schedules"),
    (
        S.warmup_cosine_decay,
        (0.0, 0.1, 100, 100),
        {},
        r"warmup_cosine_decay: decay_steps must be an integer in \[101, inf\), got 100",
    ),
    (
        S.warmup_cosine_decay,
        (0.0, 0.1, -1, 100),
        {},
        r"warmup_cosine_decay: warmup_steps must be an integer in \[0, inf\), got -1",
    ),
    (
        S.warmup_cosine_decay,
        (0.0, -0.1, 10, 100),
        {},
        r"warmup_cosine_decay: peak_value must be in \[0, inf\), got -0.1",
    ),
    (S.reduce_on_plateau, (), dict(factor=1.0), r"reduce_on_plateau: factor must be in \[0, 1\), got 1.0"),
    (
        S.reduce_on_plateau,
        (),
        dict(patience=-1),
        r"reduce_on_plateau: patience must be an integer in \[0, inf\), got -1",
    ),
    (
        S.reduce_on_plateau,
        (),
        dict(patience=2.5),
        r"reduce_on_plateau: patience must be an integer in \[0, inf\), got 2.5",
    ),
    (
        S.reduce_on_plateau,
        (),
        dict(threshold=-1e-4),
        r"reduce_on_plateau: threshold must be in \[0, inf\), got -0.0001",
    ),
    (
        S.reduce_on_plateau,
        (),
        dict(threshold_mode="pct"),
        r"reduce_on_plateau: threshold_mode must be one of 'rel', 'abs', got 'pct'",
    ),
    (S.reduce_on_plateau, (), dict(mode="auto"), r"reduce_on_plateau: mode must be one of 'min', 'max', got 'auto'"),
    (
        S.reduce_on_plateau,
        (),
        dict(cooldown=-2),
        r"reduce_on_plateau: cooldown must be an integer in \[0, inf\), got -2",
    ),
    (S.reduce_on_plateau, (), dict(min_lr=-1e-6), r"reduce_on_plateau: min_lr must be in \[0, inf\), got -1e-06"),
    (S.reduce_on_plateau, (), dict(eps=math.nan), r"reduce_on_plateau: eps must be in \[0, inf\), got nan"),
    (
        S.reduce_on_plateau,
        (),
        dict(semantics="optax"),
        r"reduce_on_plateau: semantics must be one of 'descend', 'torch', got 'optax'",
    ),
]


@pytest.mark.parametrize(
    ("factory", "args", "kwargs", "message"),
    CASES,
    ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)],
)
def test_bad_arguments_raise_a_parameter_error_at_construction(factory, args, kwargs, message) -> None:
    with pytest.raises(ParameterError, match=message) as info:
        factory(*args, **kwargs)
    assert isinstance(info.value, (DescendError, ValueError))


def test_every_factory_has_a_validation_case() -> None:
    factories = {n for n in S.__all__ if n[0].islower()}
    assert factories == {c[0].__name__ for c in CASES}
