"""MNIST-1D: the paper's defaults, determinism, the .npz cache, and bit-for-bit agreement with the mnist1d package."""

from __future__ import annotations

import random

import numpy as np
import pytest

from descend.data import load, load_mnist1d, make_mnist1d
from descend.data import mnist1d as m1d
from descend.errors import DataError


def test_default_shapes_labels_and_dtypes():
    splits = load("mnist1d")
    train, test = splits
    assert train.x.shape == (4000, 40) and test.x.shape == (1000, 40)
    assert train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert train.num_classes == 10 and train.classes == tuple("0123456789") and train.name == "mnist1d"
    assert set(np.unique(train.y)) == set(range(10)) and set(np.unique(test.y)) == set(range(10))
    counts = np.bincount(np.concatenate([train.y, test.y]), minlength=10)
    assert counts.tolist() == [500] * 10  # num_samples // 10 per class, before the split
    both = np.concatenate([train.x, test.x]).astype(np.float64)
    assert abs(both.mean()) < 1e-6 and abs(both.std() - 1) < 1e-6  # standardized over the whole set


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    a = load_mnist1d(cache=False)
    b = load_mnist1d(cache=False)
    c = load_mnist1d(cache=False, seed=7)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    np.testing.assert_array_equal(a.test.y, b.test.y)
    assert not np.array_equal(a.train.x, c.train.x)


def test_cache_is_written_keyed_by_arguments_and_equals_fresh(tmp_path):
    cache = tmp_path / "c"
    first = load_mnist1d(cache_dir=cache)
    files = sorted((cache / "mnist1d").glob("*.npz"))
    assert len(files) == 1
    with np.load(files[0], allow_pickle=False) as f:  # a plain npz, no pickled objects
        assert set(f.files) == {"x", "y", "x_test", "y_test", "args"}
    cached = load_mnist1d(cache_dir=cache)
    fresh = load_mnist1d(cache=False)
    for got in (first, cached):
        for part in ("train", "test"):
            np.testing.assert_array_equal(getattr(got, part).x, getattr(fresh, part).x)
            np.testing.assert_array_equal(getattr(got, part).y, getattr(fresh, part).y)
    load_mnist1d(cache_dir=cache, seed=1, num_samples=200)
    assert len(list((cache / "mnist1d").glob("*.npz"))) == 2


def test_default_cache_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DESCEND_CACHE", str(tmp_path / "env-cache"))
    load_mnist1d(num_samples=100)
    assert len(list((tmp_path / "env-cache" / "mnist1d").glob("mnist1d-*.npz"))) == 1


def test_corrupt_cache_is_regenerated(tmp_path):
    cache = tmp_path / "c"
    good = load_mnist1d(cache_dir=cache, num_samples=100)
    (path,) = (cache / "mnist1d").glob("*.npz")
    path.write_bytes(b"not a zip file")
    again = load_mnist1d(cache_dir=cache, num_samples=100)
    np.testing.assert_array_equal(again.train.x, good.train.x)
    with np.load(path, allow_pickle=False) as f:
        assert f["x"].shape == (80, 40)


def test_small_custom_arguments_and_layout():
    s = load_mnist1d(num_samples=105, train_split=0.6, final_seq_length=20, flatten=False, cache=False)
    assert s.train.x.shape == (60, 1, 20) and s.test.x.shape == (40, 1, 20)
    shuffled = load_mnist1d(num_samples=100, shuffle_seq=True, cache=False)
    plain = load_mnist1d(num_samples=100, cache=False)
    assert not np.array_equal(shuffled.train.x, plain.train.x)
    assert np.array_equal(np.sort(shuffled.train.y), np.sort(plain.train.y))


def test_normalize_uses_train_statistics():
    s = load_mnist1d(num_samples=200, normalize=True, cache=False)
    assert abs(float(s.train.x.mean())) < 1e-5 and abs(float(s.train.x.std()) - 1) < 1e-5


def test_generation_leaves_global_random_state_alone():
    # The package calls np.random.seed and random.seed; the port must not touch either global generator.
    np_before, py_before = np.random.get_state(), random.getstate()  # noqa: NPY002
    make_mnist1d(num_samples=20)
    np_after = np.random.get_state()  # noqa: NPY002
    assert random.getstate() == py_before
    assert np_after[0] == np_before[0] and np.array_equal(np_after[1], np_before[1]) and np_after[2:] == np_before[2:]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_sample": 10}, r"unknown argument\(s\) num_sample; allowed: num_samples, train_split"),
        ({"num_samples": 5}, r"num_samples must be an integer >= 10, got 5"),
        ({"train_split": 1.0}, r"train_split must be a number in \(0.0, 1.0\), got 1.0"),
        ({"train_split": 0.01, "num_samples": 50}, r"leaves an empty train or test split"),
        ({"padding": (60, 36)}, r"padding must be a pair of integers \(low, high\) with 0 <= low <= high"),
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
        ({"seed": 2**40}, r"seed must be an integer in \[0, 2\*\*32\)"),
        ({"iid_noise_scale": float("nan")}, r"iid_noise_scale must be a number in \[0.0, inf\), got nan"),
        ({"shuffle_seq": 1}, r"shuffle_seq must be a bool, got 1"),
    ],
)
def test_argument_errors(kwargs, message):
    with pytest.raises(DataError, match=message):
        load_mnist1d(cache=False, **kwargs)


def test_gaussian_filter_matches_scipy_bitwise():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    for n in (72, 40, 17):
        a = 0.25 * rng.standard_normal(n)
        np.testing.assert_array_equal(m1d._gaussian_filter(a), ndimage.gaussian_filter(a, 2))


def test_matches_the_mnist1d_package_bit_for_bit():
    """The reference: mnist1d.data.make_dataset with get_dataset_args() (installed by the `test` extra)."""
    pytest.importorskip("scipy")
    pytest.importorskip("matplotlib")
    data = pytest.importorskip("mnist1d.data")
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:  # the package seeds the global generators
        ref = data.make_dataset(data.get_dataset_args())
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    ours = make_mnist1d()
    assert ref["x"].shape == (4000, 40) and ref["x_test"].shape == (1000, 40)
    for key in ("x", "x_test", "y", "y_test"):
        assert ours[key].dtype == ref[key].dtype
        np.testing.assert_array_equal(ours[key], ref[key])
    args = dict(vars(data.get_dataset_args()))
    args.pop("url")
    args["padding"] = tuple(args["padding"])
    assert args == m1d.DEFAULT_ARGS
    tmpl = data.get_templates()
    np.testing.assert_array_equal(m1d.templates(), tmpl["x"])
