"""descend.optim.registry: one table of named optimizers that every part of descend reads, and one meaning of
"momentum" (torch's SGD(momentum=0.9)); the seed documents' heavy-ball forms have their own names."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import torch

from descend import optim, schedules
from descend.errors import ParameterError
from descend.lab import benchmarks, compare, functions, landscape, report
from descend.nn import mlp
from descend.optim import registry
from descend.train import experiment as ex


def test_every_old_table_is_a_view_of_the_registry() -> None:
    assert ex.OPTIMIZERS == registry.factories()
    assert compare.DEFAULT_GRIDS == registry.grids()
    assert report.COLORS == registry.colors()
    assert landscape.RECIPES == registry.landscape_recipes()
    assert list(ex.OPTIMIZERS) == list(registry.REGISTRY)
    # the names issue 10 added, and the two heavy-ball forms
    for name in ("lamb", "lars", "adopt", "ademamix", "schedule-free-sgd", "schedule-free-adamw", "muon", "prodigy",
                 "soap", "sam", "asam", "heavy-ball-seed000", "heavy-ball-seed001"):  # fmt: skip
        assert name in registry.REGISTRY
    # the demo suite's rows take their factory and fixed arguments from the registry
    rows = {s.label: s for s in benchmarks.SUITE}
    assert (rows["momentum"].factory, dict(rows["momentum"].kwargs)) == ("sgd", {"momentum": 0.9})
    assert dict(rows["sgd nesterov"].kwargs) == {"momentum": 0.9, "nesterov": True}
    assert dict(rows["adamw"].kwargs) == {"weight_decay": 1e-4}  # the suite's own override


@pytest.mark.parametrize("name", list(registry.REGISTRY))
def test_each_entry_is_complete_and_builds(name: str) -> None:
    info = registry.get(name)
    factory = getattr(optim, info.factory)
    assert info.factory in optim.__all__
    params = inspect.signature(factory).parameters
    assert set(info.fixed) <= set(params), f"{name}: fixed arguments the factory does not take"
    assert re.fullmatch(r"#[0-9a-f]{6}", info.color)
    assert info.oracle and info.description and "\n" not in info.description
    grid = list(info.grid)
    assert grid == sorted(grid) and all(v > 0 for v in grid) and len(grid) >= 4
    assert len({compare.lr_name(v) for v in grid}) == len(grid)  # distinct run directories
    ratios = np.array(grid[1:]) / np.array(grid[:-1])
    assert np.all((ratios > 1.5) & (ratios < 4.0)), f"{name}: the grid is not log-spaced by about half decades"
    tx = info.make(grid[0])
    assert isinstance(tx, optim.GradientTransformation | optim.SharpnessAware | optim.ClosureOptimizer)
    # a configuration with the name validates and builds on a model, as descend train does it
    cfg = ex.make_config({"optimizer": name, "lr": grid[0]})
    assert ex.build_optimizer(cfg, mlp(4, (3,), 2, seed=0), 1) is not None


def test_colours_are_distinct() -> None:
    colours = [i.color for i in registry.REGISTRY.values()]
    assert len(set(colours)) == len(colours)


@pytest.mark.parametrize("name", list(registry.REGISTRY))
def test_the_landscape_flag_says_whether_it_runs_on_a_vector(name: str) -> None:
    problem = functions.rosenbrock()
    if registry.get(name).landscape:
        paths = landscape.trajectories(problem, [name], 5, lrs={name: 1e-4})
        assert paths[name].steps_run == 5 and paths[name].stop is None
    else:
        with pytest.raises(Exception, match=r"matrix|GradientTransformation|unknown optimizer"):
            landscape.trajectories(problem, {name: registry.get(name).make(1e-3)}, 5)


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ParameterError, match=r"unknown optimizer 'frob'; valid optimizers: sgd, momentum, nesterov"):
        registry.get("frob")


def _path(tx, steps: int = 30) -> np.ndarray:
    """Iterates of ``tx`` on f(w) = ½ wᵀ diag(1, 10) w from (1, 1)."""
    w = np.array([1.0, 1.0])
    state = tx.init(w)
    out = []
    for _ in range(steps):
        updates, state = tx.update(np.array([1.0, 10.0]) * w, state, w)
        w = optim.apply_updates(w, updates)
        out.append(w)
    return np.array(out)


def test_momentum_means_torch_sgd_with_momentum_and_heavy_ball_has_its_own_names() -> None:
    lr = 0.05
    w = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=lr, momentum=0.9)
    expected = []
    for _ in range(30):
        opt.zero_grad()
        (0.5 * (w[0] ** 2 + 10 * w[1] ** 2)).backward()
        opt.step()
        expected.append(w.detach().numpy().copy())
    momentum = _path(registry.get("momentum").make(lr))
    np.testing.assert_allclose(momentum, np.array(expected), rtol=1e-12, atol=1e-14)
    # At a constant rate the seed documents' heavy ball (both forms) follows the same trajectory...
    for name in ("heavy-ball-seed000", "heavy-ball-seed001"):
        assert registry.get(name).factory == "momentum"
        np.testing.assert_allclose(_path(registry.get(name).make(lr)), momentum, rtol=1e-10, atol=1e-12)
    # ... and under a schedule it does not (each past gradient keeps the rate it was taken with)
    decay = schedules.exponential_decay(lr, 0.5, transition_steps=5)
    scheduled = _path(registry.get("momentum").make(decay))
    heavy = _path(registry.get("heavy-ball-seed000").make(decay))
    assert np.max(np.abs(scheduled - heavy)) > 1e-3
