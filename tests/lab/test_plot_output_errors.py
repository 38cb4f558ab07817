"""The lab's plot writers: an output below a file or in a read-only folder is one ParameterError, no OSError."""

from __future__ import annotations

import pytest

from descend import nn
from descend.errors import ParameterError
from descend.lab import functions, landscape
from descend.lab.lr_find import lr_range_test, plot_lr_find
from tests.lab.test_lr_find import regression

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def paths():
    problem = functions.get("saddle")
    return problem, landscape.trajectories(problem, ["sgd"], 5)


@pytest.fixture(scope="module")
def result():
    x, y, _ = regression()
    return lr_range_test(nn.Linear(5, 1, rng=0), "mse", "sgd", (x, y), steps=20, seed=0)


def test_landscape_below_a_file(tmp_path, paths) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(ParameterError, match=r"landscape: cannot create the folder of .*f/sub/x.png"):
        landscape.plot_landscape(*paths, tmp_path / "f" / "sub" / "x.png")


def test_landscape_in_a_read_only_folder(paths, readonly_dir) -> None:
    with pytest.raises(ParameterError, match=r"landscape: cannot write .*x.png"):
        landscape.plot_landscape(*paths, readonly_dir / "x.png")


def test_lr_find_below_a_file(tmp_path, result) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(ParameterError, match=r"plot_lr_find: cannot create the folder of .*f/sub/x.png"):
        plot_lr_find(result, tmp_path / "f" / "sub" / "x.png")


def test_lr_find_in_a_read_only_folder(result, readonly_dir) -> None:
    with pytest.raises(ParameterError, match=r"plot_lr_find: cannot write .*x.png"):
        plot_lr_find(result, readonly_dir / "x.png")
