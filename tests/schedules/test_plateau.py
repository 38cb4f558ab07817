"""reduce_on_plateau: torch's decisions in torch semantics, sign-aware thresholds in descend semantics.

The torch reference is ``torch.optim.lr_scheduler.ReduceLROnPlateau`` on an SGD
optimizer whose lr is the schedule's (constant) rate ``BASE_LR``; after each
``scheduler.step(metric)`` we record the optimizer's lr and the scheduler's
``best``, ``num_bad_epochs`` and ``cooldown_counter``. descend's controller must
give the same numbers, its effective rate being ``BASE_LR·state.scale``.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pytest

import descend as dc
from descend.errors import ParameterError
from descend.schedules import PlateauState, reduce_on_plateau

torch = pytest.importorskip("torch")

BASE_LR = 0.1


def _noisy_descent(n: int = 60, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    trend = 1.0 / (1.0 + 0.2 * np.arange(n)) + 0.3
    return [float(v) for v in trend * (1.0 + 0.03 * rng.standard_normal(n))]


PLATEAU = [1.0, 0.9, 0.8] + [0.8] * 30
NOISY = _noisy_descent()
NEGATIVE = [-1.0, -1.5, -2.0, -2.0, -1.9999, -2.0, -2.1, -2.1, -2.1, -2.1, -2.1, -2.1, -2.1, -2.1, -2.1]
ACCURACY = [0.5, 0.6, 0.7, 0.75, 0.76, 0.76, 0.7600001, 0.759, 0.76, 0.761, 0.77, 0.77, 0.77, 0.77, 0.77, 0.77]
WITH_NAN = [1.0, 0.9, math.nan, 0.85, math.nan, math.nan, math.nan, 0.8, math.nan, math.nan, math.nan, 0.7] + [0.7] * 5

# (id, controller kwargs, metric sequence)
TORCH_CASES: list[tuple[str, dict[str, Any], list[float]]] = [
    ("plateau", dict(patience=3), PLATEAU),
    ("plateau,factor=0.5,patience=0", dict(factor=0.5, patience=0), PLATEAU),
    ("plateau,defaults", dict(), PLATEAU),
    ("noisy", dict(patience=2), NOISY),
    ("noisy,rel 0.05", dict(patience=1, threshold=0.05), NOISY),
    ("noisy,abs 0.02", dict(patience=2, threshold=0.02, threshold_mode="abs"), NOISY),
    ("negative,rel", dict(patience=2, threshold=1e-3), NEGATIVE),
    ("negative,abs", dict(patience=2, threshold=1e-3, threshold_mode="abs"), NEGATIVE),
    ("max,rel", dict(mode="max", patience=2, threshold=1e-3), ACCURACY),
    ("max,abs", dict(mode="max", patience=1, threshold=0.005, threshold_mode="abs"), ACCURACY),
    ("max,negative", dict(mode="max", patience=1, threshold=1e-3), [-v for v in NEGATIVE]),
    ("cooldown", dict(patience=1, cooldown=3), PLATEAU),
    ("cooldown,noisy", dict(patience=0, cooldown=2, factor=0.7), NOISY),
    ("min_lr", dict(factor=0.5, patience=1, min_lr=0.01), PLATEAU),
    ("min_lr above lr·factor", dict(factor=0.1, patience=2, min_lr=0.05), PLATEAU),
    ("eps blocks", dict(factor=0.5, patience=1, eps=0.05), PLATEAU),
    ("factor=0", dict(factor=0.0, patience=2), PLATEAU),
    ("nan", dict(patience=2), WITH_NAN),
]


def torch_run(kwargs: dict[str, Any], metrics: list[float]) -> dict[str, list[float]]:
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=BASE_LR)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    out: dict[str, list[float]] = {"lr": [], "best": [], "bad": [], "cooldown": []}
    for m in metrics:
        sched.step(m)
        out["lr"].append(float(opt.param_groups[0]["lr"]))
        out["best"].append(float(sched.best))
        out["bad"].append(sched.num_bad_epochs)
        out["cooldown"].append(sched.cooldown_counter)
    return out


def descend_run(kwargs: dict[str, Any], metrics: list[float], semantics: str) -> tuple[dict[str, list], PlateauState]:
    ctl = reduce_on_plateau(**kwargs, semantics=semantics)
    state = ctl.init()
    out: dict[str, list[float]] = {"lr": [], "best": [], "bad": [], "cooldown": []}
    for m in metrics:
        state = ctl.update(state, m, lr=BASE_LR)
        out["lr"].append(BASE_LR * state.scale)
        out["best"].append(state.best)
        out["bad"].append(state.num_bad_epochs)
        out["cooldown"].append(state.cooldown_counter)
    return out, state


def _reductions(lrs: list[float]) -> list[int]:
    return [i for i in range(1, len(lrs)) if lrs[i] < lrs[i - 1]]


@pytest.mark.parametrize(("kwargs", "metrics"), [c[1:] for c in TORCH_CASES], ids=[c[0] for c in TORCH_CASES])
def test_torch_semantics_makes_torchs_decisions(kwargs, metrics) -> None:
    expected = torch_run(kwargs, metrics)
    got, state = descend_run(kwargs, metrics, "torch")
    assert _reductions(got["lr"]) == _reductions(expected["lr"])
    np.testing.assert_allclose(got["lr"], expected["lr"], rtol=1e-12, atol=0)
    assert got["bad"] == expected["bad"]
    assert got["cooldown"] == expected["cooldown"]
    assert got["best"] == expected["best"]
    assert state.last_epoch == len(metrics)
    assert state.num_reductions == len(_reductions(expected["lr"]))


def test_the_torch_cases_exercise_what_they_claim() -> None:
    # Each behaviour the table names happens in torch's own run (otherwise the case proves nothing).
    def lrs(name: str) -> list[float]:
        (case,) = [c for c in TORCH_CASES if c[0] == name]
        return torch_run(case[1], case[2])["lr"]

    assert len(_reductions(lrs("plateau"))) >= 5
    assert len(_reductions(lrs("noisy"))) >= 1
    assert min(lrs("min_lr")) == pytest.approx(0.01) and len(_reductions(lrs("min_lr"))) == 4
    assert lrs("min_lr above lr·factor")[-1] == 0.05
    assert lrs("eps blocks") == [BASE_LR] * len(PLATEAU)
    assert lrs("factor=0")[-1] == 0.0
    assert len(_reductions(lrs("nan"))) >= 2
    assert _reductions(lrs("negative,rel")) == []  # torch never reduces on this negative plateau


@pytest.mark.parametrize(("kwargs", "metrics"), [c[1:] for c in TORCH_CASES], ids=[c[0] for c in TORCH_CASES])
def test_descend_semantics_differs_from_torch_only_on_negative_relative_thresholds(kwargs, metrics) -> None:
    torch_like, _ = descend_run(kwargs, metrics, "torch")
    ours, _ = descend_run(kwargs, metrics, "descend")
    negative_rel = kwargs.get("threshold_mode", "rel") == "rel" and any(m < 0 for m in metrics)
    assert (ours != torch_like) == negative_rel


def test_descend_semantics_reduces_on_a_negative_plateau() -> None:
    # A log-likelihood loss stuck at −2.0: torch's best·(1 − θ) = −1.998 counts each repeat,
    # and even the worse −1.999, as an improvement, so it never reduces.
    metrics = [-1.0, -2.0, -2.0, -1.999, -2.0, -2.0, -2.0, -2.0]
    kwargs = dict(patience=2, threshold=1e-3)
    ours, state = descend_run(kwargs, metrics, "descend")
    torch_like, tstate = descend_run(kwargs, metrics, "torch")
    assert torch_run(kwargs, metrics)["lr"] == torch_like["lr"] == [BASE_LR] * len(metrics)
    assert tstate.best == -2.0 and tstate.num_bad_epochs == 0  # torch: the −1.999 was "best" for a while
    assert torch_like["best"][3] == -1.999
    # descend: −1.999 is worse, the repeats are no better than −2.0 − 0.002 → bad epochs 1, 2, 3 → reduce
    assert ours["bad"][:5] == [0, 0, 1, 2, 0]
    assert ours["lr"] == pytest.approx([0.1] * 4 + [0.01] * 3 + [0.001], rel=1e-12)
    assert state.best == -2.0 and state.num_reductions == 2
    # and a real improvement (more than 0.1% of |best|) still resets the count
    more, _ = descend_run(kwargs, [-2.0, -2.0, -2.0021, -2.0021, -2.0042], "descend")
    assert more["bad"] == [0, 1, 0, 1, 0]


@pytest.mark.parametrize(
    "metrics", [NEGATIVE, NOISY, [-v for v in NOISY], ACCURACY], ids=["neg", "pos", "negnoisy", "acc"]
)
def test_descend_semantics_is_symmetric_between_min_and_max(metrics) -> None:
    # min mode on a and max mode on −a must decide alike; torch's rel threshold breaks this for a < 0.
    kwargs = dict(patience=1, threshold=1e-3)
    lo, _ = descend_run(dict(kwargs, mode="min"), metrics, "descend")
    hi, _ = descend_run(dict(kwargs, mode="max"), [-m for m in metrics], "descend")
    assert lo["lr"] == hi["lr"] and lo["bad"] == hi["bad"]
    assert lo["best"] == [-b for b in hi["best"]]


def test_nan_is_a_bad_epoch_and_never_the_best() -> None:
    ctl = reduce_on_plateau(patience=1)
    state = ctl.init()
    for m in [1.0, math.nan, math.nan]:
        state = ctl.update(state, m, lr=1.0)
    assert state.best == 1.0 and state.scale == pytest.approx(0.1) and state.num_reductions == 1


@pytest.mark.parametrize("semantics", ["descend", "torch"])
def test_state_round_trips_mid_sequence_with_identical_decisions(semantics) -> None:
    kwargs = dict(patience=2, cooldown=1, factor=0.5, min_lr=0.003, threshold=1e-3)
    ctl = reduce_on_plateau(**kwargs, semantics=semantics)
    metrics = NOISY + [v - 2.0 for v in NOISY]  # positive, then negative values
    state = ctl.init()
    saved: dict[str, np.ndarray] | None = None
    straight: list[PlateauState] = []
    for i, m in enumerate(metrics):
        if i == 25:
            saved = dc.optim.state_to_dict(state)
        state = ctl.update(state, m, lr=BASE_LR)
        straight.append(state)
    assert saved is not None and straight[-1].num_reductions >= 3

    buf = io.BytesIO()  # through an .npz file, as a checkpoint would go
    np.savez(buf, **saved)
    buf.seek(0)
    with np.load(buf) as npz:
        restored = dc.optim.state_from_dict(ctl.init(), {k: npz[k] for k in npz.files})
    assert restored == straight[24]
    assert all(type(v) in (int, float) for v in restored)
    resumed = []
    for m in metrics[25:]:
        restored = ctl.update(restored, m, lr=BASE_LR)
        resumed.append(restored)
    assert resumed == straight[25:]


def test_initial_state_round_trips_with_infinite_best() -> None:
    for mode, best in (("min", math.inf), ("max", -math.inf)):
        ctl = reduce_on_plateau(mode=mode)
        init = ctl.init()
        assert init == PlateauState(best, 0, 0, 0, 1.0, 0)
        assert dc.optim.state_from_dict(init, dc.optim.state_to_dict(init)) == init


def test_without_lr_the_scale_is_multiplied_and_min_lr_needs_lr() -> None:
    ctl = reduce_on_plateau(patience=0, factor=0.5)
    state = ctl.init()
    for m in [1.0, 1.0, 1.0]:
        state = ctl.update(state, m)
    assert state.scale == 0.25 and state.num_reductions == 2
    ctl = reduce_on_plateau(patience=0, min_lr=1e-4)
    state = ctl.update(ctl.init(), 1.0)  # no reduction yet: fine
    with pytest.raises(ParameterError, match=r"reduce_on_plateau: min_lr=0.0001 needs the current learning rate"):
        ctl.update(state, 1.0)


def test_min_lr_is_relative_to_the_schedule_lr_passed_in() -> None:
    ctl = reduce_on_plateau(patience=0, factor=0.1, min_lr=0.02)
    state = ctl.update(ctl.init(), 1.0, lr=0.5)
    state = ctl.update(state, 1.0, lr=0.4)  # effective 0.4 → max(0.04, 0.02) = 0.04
    assert 0.4 * state.scale == pytest.approx(0.04)
    state = ctl.update(state, 1.0, lr=0.4)  # 0.04 → max(0.004, 0.02) = 0.02, clamped
    assert 0.4 * state.scale == pytest.approx(0.02)
    before = state
    state = ctl.update(state, 1.0, lr=0.4)  # at min_lr: nothing to reduce
    assert state.scale == before.scale and state.num_reductions == 2


def test_metrics_may_be_numpy_or_torch_scalars_and_state_stays_python() -> None:
    ctl = reduce_on_plateau(patience=0)
    state = ctl.update(ctl.init(), np.float32(0.5), lr=np.float64(0.1))
    state = ctl.update(state, torch.tensor(0.7), lr=0.1)
    assert state.best == 0.5 and type(state.best) is float and type(state.scale) is float
    assert state.num_reductions == 1


@pytest.mark.parametrize(
    ("metric", "lr", "message"),
    [
        ("0.5", None, r"reduce_on_plateau: metric must be a real number, got '0.5'"),
        (np.array([0.5, 0.4]), None, r"reduce_on_plateau: metric must be a real number, got array"),
        (None, None, r"reduce_on_plateau: metric must be a real number, got None"),
        (0.5, -0.1, r"reduce_on_plateau: lr must be in \[0, inf\), got -0.1"),
        (0.5, math.inf, r"reduce_on_plateau: lr must be in \[0, inf\), got inf"),
    ],
)
def test_update_checks_its_arguments(metric, lr, message) -> None:
    ctl = reduce_on_plateau()
    with pytest.raises(ParameterError, match=message):
        ctl.update(ctl.init(), metric, lr=lr)
