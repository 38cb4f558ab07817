"""Normalization fitted on the training split: standard and min-max, per feature, saved as JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from descend.data import Normalization, from_arrays
from descend.errors import DataError


def test_standard_and_minmax_per_feature():
    x = np.array([[1.0, 10.0, 5.0], [3.0, 30.0, 5.0], [5.0, 20.0, 5.0]])
    ds = from_arrays(x, [0, 1, 0])
    st = Normalization.fit(ds, "standard")
    np.testing.assert_allclose(st.shift, [3, 20, 5])
    np.testing.assert_allclose(st.scale, [np.std([1, 3, 5]), np.std([10, 30, 20]), 1])  # constant: scale 1
    out = st.apply(ds)
    np.testing.assert_allclose(out.x.mean(axis=0), 0, atol=1e-6)
    assert out.x.dtype == np.float32 and out.normalization is st and out.y is ds.y
    mm = Normalization.fit(ds, "minmax")
    np.testing.assert_allclose(mm.apply(ds).x, [[0, 0, 0], [0.5, 1, 0], [1, 0.5, 0]])
    other = from_arrays(np.array([[7.0, 40.0, 6.0]]), [1])
    np.testing.assert_allclose(mm.apply(other).x, [[1.5, 1.5, 1.0]])  # the training statistics, not refitted


def test_to_json_round_trip_and_subsets_keep_it():
    ds = from_arrays(np.arange(12.0).reshape(4, 3), [0, 1, 0, 1])
    st = Normalization.fit(ds, "standard")
    text = json.dumps(st.to_json())
    back = Normalization.from_json(json.loads(text))
    np.testing.assert_array_equal(back.shift, st.shift)
    np.testing.assert_array_equal(back.scale, st.scale)
    assert back.method == "standard"
    assert st.apply(ds).subset([0, 2]).normalization is st


def test_bad_method():
    ds = from_arrays(np.zeros((2, 2)), [0, 1])
    with pytest.raises(DataError, match=r"Normalization: method must be one of 'standard', 'minmax', got 'zscore'"):
        Normalization.fit(ds, "zscore")
