"""load(name): names, aliases, and the message for an unknown name."""

from __future__ import annotations

import pytest

import descend
from descend import data
from descend.errors import DataError, DescendError


def test_available_names():
    assert data.available() == ("fashion_mnist", "mnist", "mnist1d")


@pytest.mark.parametrize("name", ["mnist1d", "MNIST-1D", "mnist_1d", " Mnist1D "])
def test_aliases(name):
    splits = data.load(name, num_samples=50, cache=False)
    assert splits.train.name == "mnist1d" and len(splits.train) == 40


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(DataError) as info:
        data.load("fmnist")
    msg = str(info.value)
    assert "unknown data set 'fmnist'" in msg
    assert "valid names: fashion_mnist, mnist, mnist1d" in msg
    assert "from_arrays or from_csv" in msg
    assert isinstance(info.value, DescendError) and isinstance(info.value, ValueError)


def test_close_name_gets_a_suggestion():
    with pytest.raises(DataError, match=r"unknown data set 'fashion_mnst' \(did you mean 'fashion_mnist'\?\)"):
        data.load("fashion_mnst")


def test_non_string_name():
    with pytest.raises(DataError, match=r"name must be a string, one of fashion_mnist, mnist, mnist1d; got 3"):
        data.load(3)


def test_data_error_is_exported():
    assert descend.errors.DataError is data.DataError
    assert issubclass(data.DataError, DescendError) and issubclass(data.DataError, ValueError)
