"""descend.lab.landscape and the test functions it draws: gradients, paths, pictures, and the seed story."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import descend as dc
from descend.errors import ParameterError
from descend.lab import functions, landscape

NAMES = list(functions.LANDSCAPES)


@pytest.fixture(params=NAMES)
def problem(request) -> functions.Problem:
    return functions.get(request.param)


def numeric_grad(problem: functions.Problem, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    return np.array([(problem.loss(x + h * e) - problem.loss(x - h * e)) / (2 * h) for e in np.eye(problem.dim)])


def test_gradients_match_central_finite_differences(problem) -> None:
    rng = np.random.default_rng(7)
    low, high = np.array(problem.plot_box()).T
    points = [problem.x0, *rng.uniform(low, high, size=(20, problem.dim))]
    for x in points:
        x = np.asarray(x, dtype=np.float64)
        g = problem.grad(x)
        assert g.dtype == np.float64 and g.shape == x.shape
        np.testing.assert_allclose(g, numeric_grad(problem, x), rtol=1e-6, atol=1e-5 * (1 + np.abs(g).max()))


def test_surface_is_the_loss_vectorized(problem) -> None:
    rng = np.random.default_rng(8)
    low, high = np.array(problem.plot_box()).T
    points = rng.uniform(low, high, size=(30, problem.dim))
    grid = problem.values(points.T)
    np.testing.assert_allclose(grid, [problem.loss(p) for p in points], rtol=1e-12, atol=1e-12)


def test_minima_start_and_box(problem) -> None:
    assert problem.in_box(problem.x0)
    if problem.bounded:
        assert problem.minima, problem.name
        for m in problem.minima:
            assert problem.in_box(m)
            assert problem.loss(m) == pytest.approx(problem.min_value, abs=1e-20)
            assert np.linalg.norm(problem.grad(m)) < 1e-12
            assert problem.distance_to_minimum(m) == 0.0
        assert problem.loss(problem.x0) > problem.min_value + 1.0
    else:
        assert problem.name == "saddle" and problem.minimizer is None and problem.min_value == -np.inf
        assert np.isnan(problem.distance_to_minimum(problem.x0))
        for s in problem.saddles:
            np.testing.assert_array_equal(problem.grad(s), 0.0)


def test_the_seed_quadratic_is_seed_001s() -> None:
    p = functions.seed_quadratic()
    for w in (-1.0, 0.0, 2.5, 7.0):
        assert p.loss(np.array([w])) == (w - 3) ** 2
        assert p.grad(np.array([w]))[0] == 2 * (w - 3)
    assert p.x0.tolist() == [0.0] and p.minimizer.tolist() == [3.0]


def test_himmelblau_has_four_distinct_minima() -> None:
    p = functions.himmelblau()
    pts = np.array(p.minima)
    assert len(pts) == 4
    assert min(np.linalg.norm(a - b) for i, a in enumerate(pts) for b in pts[i + 1 :]) > 1.0


def test_unknown_function_lists_the_choices() -> None:
    with pytest.raises(ParameterError, match=r"unknown function 'booth' \(choose from 'seed', 'quadratic', 'saddle'"):
        functions.get("booth")


def by_hand(problem, tx, steps, x0=None):
    x = problem.start() if x0 is None else np.array(x0, dtype=np.float64)
    state = tx.init(x)
    path = [x]
    for _ in range(steps):
        updates, state = tx.update(problem.grad(x), state, x)
        x = dc.optim.apply_updates(x, updates)
        path.append(x)
    return np.array(path)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_named_paths_equal_running_the_optimizer_by_hand(name) -> None:
    problem = functions.rosenbrock()
    lr = landscape.LEARNING_RATES["rosenbrock"][name]
    factory, kwargs = landscape.RECIPES[name]
    expected = by_hand(problem, getattr(dc.optim, factory)(lr=lr, **kwargs), 60)
    traj = landscape.trajectories(problem, [name], steps=60)[name]
    assert traj.lr == lr and traj.stop is None and traj.steps_run == 60
    np.testing.assert_array_equal(traj.path, expected)
    np.testing.assert_array_equal(traj.loss, [problem.loss(x) for x in expected])


def test_transformations_given_as_a_dict_run_as_given() -> None:
    problem = functions.beale()
    txs = {"my adam": dc.optim.adam(lr=0.02, betas=(0.8, 0.99)), "heavy ball": dc.optim.momentum(lr=1e-3)}
    paths = landscape.trajectories(problem, txs, steps=25, start=(1.0, 1.0))
    assert list(paths) == ["my adam", "heavy ball"]
    np.testing.assert_array_equal(
        paths["my adam"].path, by_hand(problem, dc.optim.adam(lr=0.02, betas=(0.8, 0.99)), 25, [1.0, 1.0])
    )
    assert paths["heavy ball"].lr is None


def test_lrs_override_the_tuned_rate() -> None:
    paths = landscape.trajectories(functions.saddle(), ["sgd", "adam"], steps=5, lrs={"adam": 0.3})
    assert paths["adam"].lr == 0.3 and paths["sgd"].lr == landscape.LEARNING_RATES["saddle"]["sgd"]
    with pytest.raises(ParameterError, match="learning rate given for 'rmsprop'"):
        landscape.trajectories(functions.saddle(), ["sgd"], steps=5, lrs={"rmsprop": 0.3})
    with pytest.raises(ParameterError, match=r"unknown optimizer 'lbfgs' \(choose from 'sgd', 'momentum'"):
        landscape.trajectories(functions.saddle(), ["lbfgs"], steps=5)


@pytest.mark.parametrize(
    ("start", "message"),
    [
        ((5.0, 0.0), r"outside the plot box x ∈ \[-1.5, 1.5\]"),
        ((1.0,), "start must be 2 finite"),
        ((0, np.nan), "finite"),
    ],
)
def test_bad_starts_are_refused(start, message) -> None:
    with pytest.raises(ParameterError, match=message):
        landscape.trajectories(functions.saddle(), ["sgd"], steps=5, start=start)


def test_a_diverging_run_stops_and_says_so() -> None:
    traj = landscape.trajectories(functions.rosenbrock(), ["sgd"], steps=200, lrs={"sgd": 0.05})["sgd"]
    assert traj.stop == "diverged" and traj.steps_run < 200
    assert np.all(np.isfinite(traj.path)) and np.all(np.isfinite(traj.loss))


# --- the story the pictures tell (the seed documents' claims, checked on the default rates) ---


def test_saddle_adam_escapes_while_sgd_stays_at_the_saddle() -> None:
    problem = functions.saddle()
    paths = landscape.trajectories(problem)  # (-1, 1e-3), 100 steps
    sgd, adam = paths["sgd"], paths["adam"]
    assert sgd.stop is None and sgd.steps_run == 100
    assert np.abs(sgd.path[:, 1]).max() < 0.1  # y stayed near the ridge for all 100 steps...
    assert abs(sgd.final[0]) < 0.05  # ...while x slid into the saddle point
    assert adam.stop == "left the box" and adam.steps_run < 40
    assert abs(adam.final[1]) > 1.5 and not problem.in_box(adam.final)
    assert all(problem.in_box(x) for x in adam.path[:-1])  # the path stops at the first point outside
    for name in ("adagrad", "rmsprop"):  # every per-coordinate method escapes the same way
        assert paths[name].stop == "left the box" and paths[name].steps_run < 40
    # Adam's y moves away from 0 at once; after 20 steps sgd's y has grown by 1.02⁴⁰ ≈ 2.2, Adam's by > 100.
    assert abs(adam.path[20, 1]) > 100 * 1e-3 * 2 and abs(sgd.path[20, 1]) < 3e-3


def test_seed_momentum_overshoots_where_sgd_does_not() -> None:
    paths = landscape.trajectories(functions.seed_quadratic())
    w_sgd = paths["sgd"].path[:, 0]
    w_mom = paths["momentum"].path[:, 0]
    assert np.all(np.diff(w_sgd) > 0) and w_sgd.max() < 3.0  # monotone, from one side
    assert w_mom.max() > 4.5  # past w = 3 by more than half the way it came
    assert np.any(w_mom[np.argmax(w_mom) :] < 3.0)  # and swings back below


def test_adagrad_steps_shrink() -> None:
    problem = functions.ill_conditioned_quadratic()
    paths = landscape.trajectories(functions.seed_quadratic(), ["adagrad", "rmsprop"])
    steps = np.abs(np.diff(paths["adagrad"].path[:, 0]))
    assert np.all(np.diff(steps) < 0)  # every step shorter than the one before
    assert steps[0] == pytest.approx(landscape.LEARNING_RATES["seed"]["adagrad"])  # the first is η·g/|g| = η
    assert paths["adagrad"].loss[-1] > 100 * paths["rmsprop"].loss[-1]  # RMSprop's window forgets; it does not slow
    # The effective rate η/√G along each axis only falls, also in 2-D.
    path = landscape.trajectories(problem, ["adagrad"], steps=50)["adagrad"].path
    g = np.array([problem.grad(x) for x in path[:-1]])
    rate = landscape.LEARNING_RATES["quadratic"]["adagrad"] / np.sqrt(np.cumsum(g * g, axis=0))
    assert np.all(np.diff(rate, axis=0) <= 0)
    np.testing.assert_allclose(np.diff(path, axis=0), -rate * g, rtol=1e-8, atol=1e-14)


# --- the pictures ---

mpl_image = pytest.importorskip("matplotlib.image")


def test_png_has_the_size_and_is_not_blank(tmp_path) -> None:
    problem = functions.rosenbrock()
    out = tmp_path / "new" / "dir" / "rosenbrock.png"
    fig = landscape.plot_landscape(problem, landscape.trajectories(problem, steps=50), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = mpl_image.imread(out)
    assert image.shape[:2] == (480, 1200)
    assert (image[..., :3] < 0.9).any(axis=-1).mean() > 0.02  # contours, paths and text, not a blank canvas
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels[0] == "sgd (lr 0.002)" and len(labels) == 6


def test_one_dimensional_picture(tmp_path) -> None:
    problem = functions.seed_quadratic()
    out = tmp_path / "seed.png"
    landscape.plot_landscape(problem, landscape.trajectories(problem, ["sgd", "momentum"]), out, dpi=50)
    image = mpl_image.imread(out)
    assert image.shape[:2] == (240, 600) and (image[..., :3] < 0.9).any(axis=-1).mean() > 0.02


def test_gif_has_several_frames(tmp_path) -> None:
    from PIL import Image

    problem = functions.saddle()
    out = tmp_path / "saddle.gif"
    landscape.plot_landscape(
        problem, landscape.trajectories(problem, ["sgd", "adam"], steps=30), out, animate=True, frames=5
    )
    with Image.open(out) as gif:
        assert gif.format == "GIF" and gif.size == (840, 336)
        assert gif.n_frames > 1


def test_output_path_rules(tmp_path) -> None:
    problem = functions.saddle()
    paths = landscape.trajectories(problem, ["sgd"], steps=3)
    with pytest.raises(ParameterError, match="is a directory"):
        landscape.plot_landscape(problem, paths, tmp_path)
    with pytest.raises(ParameterError, match="animate=True needs an output path"):
        landscape.plot_landscape(problem, paths, animate=True)
    with pytest.raises(ParameterError, match="expected \\(steps \\+ 1, 1\\)"):
        landscape.plot_landscape(functions.seed_quadratic(), paths)


def test_import_descend_does_not_import_matplotlib() -> None:
    code = (
        "import sys, descend, descend.lab.landscape\n"
        "from descend.cli.main import build_parser\n"
        "build_parser()\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
