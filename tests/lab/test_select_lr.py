"""descend.lab.results.select_lr: the learning-rate selection of a comparison's search, a pure function of the grid
and its runs' scores (best score wins; ties: the next number of the score, then the smaller learning rate; a
diverged run, None or a non-finite first number, never wins), and best_lr, which feeds it a search's runs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from descend.errors import ParameterError
from descend.lab.plan import RunSpec
from descend.lab.results import RunResult, best_lr, select_lr

NAN, INF = math.nan, math.inf


def test_the_best_score_wins_whatever_the_order() -> None:
    assert select_lr([1e-3, 1e-2, 1e-1], [0.80, 0.93, 0.91]) == 1e-2
    assert select_lr([1e-1, 1e-3, 1e-2], [0.91, 0.80, 0.93]) == 1e-2


def test_a_tie_on_the_metric_goes_to_the_lower_loss() -> None:
    assert select_lr([1e-3, 1e-2, 1e-1], [(0.9, -0.40), (0.9, -0.20), (0.9, -0.30)]) == 1e-2


def test_a_full_tie_goes_to_the_smaller_learning_rate() -> None:
    assert select_lr([1e-1, 1e-2, 1e-3], [(0.9, -0.2), (0.9, -0.2), (0.8, -0.1)]) == 1e-2
    assert select_lr([0.3, 0.1], [0.5, 0.5]) == 0.1


def test_every_run_diverged_selects_nothing() -> None:
    assert select_lr([1e-3, 1e-2], [None, None]) is None
    assert select_lr([1e-3, 1e-2], [(-INF, -INF), (NAN, -0.1)]) is None
    assert select_lr([], []) is None


def test_a_nan_or_infinite_metric_never_wins() -> None:
    assert select_lr([1e-3, 1e-2, 1e-1], [(NAN, 0.0), (0.1, -9.0), (INF, 0.0)]) == 1e-2
    assert select_lr([1e-3, 1e-2], [NAN, 0.0]) == 1e-2
    assert select_lr([1e-3, 1e-2], [-INF, -5.0]) == 1e-2


def test_a_nan_loss_counts_as_the_worst_loss_but_the_run_still_counts() -> None:
    assert select_lr([1e-3, 1e-2], [(0.9, NAN), (0.9, -7.0)]) == 1e-2
    assert select_lr([1e-3, 1e-2], [(0.9, NAN), None]) == 1e-3
    assert select_lr([1e-3, 1e-2], [(0.9, NAN), (0.8, -0.1)]) == 1e-3


def test_it_is_pure() -> None:
    lrs, scores = [1e-1, 1e-3, 1e-2], [(0.9, -0.2), None, (0.9, -0.2)]
    before = (list(lrs), list(scores))
    assert select_lr(lrs, scores) == select_lr(lrs, scores) == 1e-2
    assert (lrs, scores) == before


@pytest.mark.parametrize(
    ("lrs", "scores", "message"),
    [
        ([1e-3, 1e-2], [0.9], r"^select_lr: lrs and scores must have the same length .*got 2 learning rates and 1 "),
        ([1e-3, 0.0], [0.9, 0.8], r"^select_lr: learning rates must be finite numbers > 0, got 0\.0$"),
        ([NAN], [0.9], r"^select_lr: learning rates must be finite numbers > 0, got nan$"),
        ([True], [0.9], r"^select_lr: learning rates must be finite numbers > 0, got True$"),
        ([1e-3], ["0.9"], r"^select_lr: a score must be None, a number or a tuple of numbers, got '0\.9'$"),
        ([1e-3], [()], r"^select_lr: a score must be None, a number or a tuple of numbers, got \(\)$"),
    ],
)
def test_bad_input_is_one_clear_error(lrs, scores, message) -> None:
    with pytest.raises(ParameterError, match=message):
        select_lr(lrs, scores)


_score = st.one_of(
    st.none(),
    st.sampled_from([NAN, INF, -INF, 0.0, 0.5, 1.0]),
    st.tuples(st.sampled_from([NAN, INF, 0.5, 1.0]), st.sampled_from([NAN, -INF, -1.0, -0.5])),
)


@given(st.lists(st.tuples(st.sampled_from([1e-4, 1e-3, 1e-2, 0.1, 1.0]), _score), max_size=5, unique_by=lambda p: p[0]))
def test_it_agrees_with_a_brute_force_search(pairs) -> None:
    def key(score):
        values = score if isinstance(score, tuple) else (score,)
        return tuple(-INF if math.isnan(v) else v for v in values)

    candidates = [(key(s), -lr, lr) for lr, s in pairs if s is not None and math.isfinite(key(s)[0])]
    expected = max(candidates)[2] if candidates else None  # the best key; among equal keys, the smallest lr
    assert select_lr([lr for lr, _ in pairs], [s for _, s in pairs]) == expected


def _result(lr: float, status: str = "ok", accuracy: float = 0.9, loss: float = 0.3) -> RunResult:
    summary = {"status": status, "final": {"val_accuracy": accuracy, "val_loss": loss}}
    return RunResult(RunSpec("adam", lr, 0, "search", {}), Path("unused"), summary)


def test_best_lr_scores_a_search_by_metric_then_loss_and_skips_diverged_and_unfinished_runs() -> None:
    search = [
        _result(1e-3, accuracy=0.90, loss=0.30),
        _result(3e-3, accuracy=0.90, loss=0.25),  # the tie on accuracy goes to the lower loss
        _result(1e-2, status="diverged", accuracy=0.99),  # a diverged run's numbers do not count
        RunResult(RunSpec("adam", 3e-2, 0, "search", {}), Path("unused"), None),  # not finished
    ]
    assert best_lr(search, "val_accuracy") == 3e-3
    assert best_lr(search[2:], "val_accuracy") is None
    assert best_lr([_result(1e-3, loss=NAN), _result(1e-2, accuracy=0.5)], "val_accuracy") == 1e-3
