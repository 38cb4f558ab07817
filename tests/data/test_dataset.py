"""Dataset construction, validation messages, splits and standardization."""

from __future__ import annotations

import numpy as np
import pytest

from descend.data import Dataset, Splits, Standardization, from_arrays, standardize, train_validation_split
from descend.errors import DataError, DescendError


def make(n=10, d=3, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return from_arrays(rng.standard_normal((n, d)), np.arange(n) % k, name="toy")


def test_from_arrays_converts_dtypes_and_infers_classes():
    ds = from_arrays([[1, 2], [3, 4], [5, 6]], [0, 2, 1])
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    assert ds.x.flags.c_contiguous
    assert ds.num_classes == 3 and len(ds) == 3 and ds.sample_shape == (2,) and ds.num_features == 2
    assert ds.classes is None and ds.name == "arrays"


def test_no_copy_when_already_right():
    x = np.zeros((4, 2), np.float32)
    y = np.array([0, 1, 0, 1], np.int64)
    ds = from_arrays(x, y)
    assert ds.x is x and ds.y is y


def test_integer_valued_float_labels_are_accepted():
    ds = from_arrays(np.zeros((3, 1)), np.array([0.0, 1.0, 2.0]))
    assert ds.y.dtype == np.int64 and ds.y.tolist() == [0, 1, 2]


def test_classes_set_num_classes():
    ds = from_arrays(np.zeros((2, 1)), [0, 1], classes=["cat", "dog", "emu"])
    assert ds.num_classes == 3 and ds.classes == ("cat", "dog", "emu")


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "message"),
    [
        (np.zeros((3, 2)), [0, 1], {}, r"same number of samples, got 3 in x \(shape \(3, 2\)\) and 2 in y"),
        (np.zeros(3), [0, 1, 2], {}, r"shape \(n_samples, features...\), got shape \(3,\); .*reshape\(-1, 1\)"),
        (np.zeros((0, 2)), np.zeros(0, int), {}, r"x has no samples"),
        (np.array([["a"], ["b"]]), [0, 1], {}, r"x must hold real numbers .* got dtype <U1"),
        (np.zeros((3, 2)), [0, -1, 1], {}, r"labels must be >= 0, got -1 at y\[1\]"),
        (
            np.zeros((3, 2)),
            [0, 1, 5],
            {"num_classes": 3},
            r"labels must be in \[0, 3\) \(num_classes=3\), got 5 at y\[2\]",
        ),
        (np.zeros((3, 2)), [0, 1.5, 1], {}, r"labels must be integers, got 1.5 at y\[1\]"),
        (np.zeros((3, 2)), [0, np.nan, 1], {}, r"labels must be integers, got nan at y\[1\]"),
        (np.zeros((2, 2)), ["a", "b"], {}, r"labels must be integers 0..num_classes-1, got dtype <U1"),
        (np.zeros((2, 2)), [True, False], {}, r"labels must be integers 0..num_classes-1, got dtype bool"),
        (np.zeros((2, 2)), [[0, 1], [1, 0]], {}, r"got shape \(2, 2\); it looks one-hot: pass y.argmax\(axis=1\)"),
        (np.zeros((2, 2)), [[0], [1]], {}, r"got shape \(2, 1\); pass y.ravel\(\)"),
        (np.zeros((2, 2)), [0, 1], {"num_classes": 0}, r"num_classes must be an integer >= 1, got 0"),
        (np.zeros((2, 2)), [0, 1], {"num_classes": 2, "classes": ["a"]}, r"classes has 1 names but num_classes is 2"),
    ],
)
def test_validation_messages(x, y, kwargs, message):
    with pytest.raises(DataError, match=message) as info:
        from_arrays(x, y, **kwargs)
    assert isinstance(info.value, DescendError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_x_is_rejected_with_the_sample(bad):
    x = np.zeros((4, 3))
    x[2, 1] = bad
    with pytest.raises(DataError, match=r"x must be finite; it has 1 NaN or inf values, the first in sample 2"):
        from_arrays(x, [0, 1, 0, 1])


def test_float32_overflow_is_named():
    x = np.zeros((2, 1))
    x[1, 0] = 1e300
    with pytest.raises(DataError, match=r"beyond the float32 range"):
        from_arrays(x, [0, 1])


def test_direct_construction_is_validated_too():
    with pytest.raises(DataError, match=r"^mine: labels must be in \[0, 2\)"):
        Dataset(np.zeros((2, 1)), np.array([0, 2]), 2, "mine")


def test_subset_and_mask():
    ds = make(n=6)
    sub = ds.subset([4, 0])
    np.testing.assert_array_equal(sub.x, ds.x[[4, 0]])
    np.testing.assert_array_equal(sub.y, ds.y[[4, 0]])
    assert sub.num_classes == ds.num_classes and sub.name == ds.name
    masked = ds.subset(ds.y == 1)
    assert (masked.y == 1).all() and len(masked) == 2
    with pytest.raises(DataError, match=r"subset indices must be in \[0, 6\), got 0..6"):
        ds.subset([0, 6])


def test_train_validation_split_partitions_and_is_seeded():
    ds = from_arrays(np.arange(100, dtype=float)[:, None], np.arange(100) % 4)
    train, val = train_validation_split(ds, 0.2, np.random.default_rng(3))
    assert len(train) == 80 and len(val) == 20
    ids = np.concatenate([train.x[:, 0], val.x[:, 0]]).astype(int)
    assert sorted(ids.tolist()) == list(range(100))  # a partition
    assert np.all(np.diff(val.x[:, 0]) > 0)  # original order kept
    assert train.num_classes == val.num_classes == 4
    again = train_validation_split(ds, 0.2, 3)[1]
    np.testing.assert_array_equal(again.x, val.x)
    other = train_validation_split(ds, 0.2, 4)[1]
    assert not np.array_equal(other.x, val.x)


@pytest.mark.parametrize(
    ("fraction", "message"),
    [
        (0.0, r"fraction must be a number in \(0, 1\), got 0.0"),
        (1, r"fraction must be a number in \(0, 1\), got 1"),
        ("0.1", r"fraction must be a number in \(0, 1\), got '0.1'"),
        (0.01, r"fraction=0.01 of 10 samples gives 0 validation and 10 training samples"),
    ],
)
def test_train_validation_split_errors(fraction, message):
    with pytest.raises(DataError, match=message):
        train_validation_split(make(n=10), fraction, 0)


def test_train_validation_split_rng_must_be_seeded():
    with pytest.raises(DataError, match=r"rng must be a np.random.Generator or a non-negative int seed, got None"):
        train_validation_split(make(), 0.5, None)


def test_standardize_uses_train_statistics_only():
    rng = np.random.default_rng(0)
    train = from_arrays(rng.normal(3.0, 2.0, (500, 4)), np.arange(500) % 2)
    test = from_arrays(rng.normal(10.0, 5.0, (100, 4)), np.arange(100) % 2)
    out = standardize(Splits(train, test))
    assert out.train.x.dtype == np.float32 and out.test.x.dtype == np.float32
    assert abs(float(out.train.x.mean())) < 1e-5 and abs(float(out.train.x.std()) - 1) < 1e-5
    mean, std = train.x.astype(np.float64).mean(), train.x.astype(np.float64).std()
    np.testing.assert_allclose(out.test.x, (test.x - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out.test.y, test.y)


def test_per_feature_standardization_leaves_constant_features_centred():
    x = np.stack([np.arange(10.0), np.full(10, 7.0)], axis=1)
    ds = from_arrays(x, np.zeros(10, int))
    st = Standardization.fit(ds, per_feature=True)
    assert st.mean.shape == (2,) and st.std[1] == 1.0
    out = st.apply(ds)
    np.testing.assert_allclose(out.x[:, 1], 0.0)
    np.testing.assert_allclose(out.x[:, 0].std(), 1.0, rtol=1e-6)
