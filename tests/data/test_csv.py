"""from_csv: numeric and named labels, header detection, and errors that name the line."""

from __future__ import annotations

import numpy as np
import pytest

from descend.data import from_csv
from descend.errors import DataError


def write(tmp_path, text, name="d.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_numeric_csv_label_last(tmp_path):
    ds = from_csv(write(tmp_path, "1.5,2,0\n3,4e-1,2\n-5,6,1\n"))
    np.testing.assert_array_equal(ds.x, np.array([[1.5, 2], [3, 0.4], [-5, 6]], np.float32))
    assert ds.y.tolist() == [0, 2, 1] and ds.num_classes == 3 and ds.name == "d" and ds.x.dtype == np.float32


def test_header_guess_label_by_name_and_string_classes(tmp_path):
    text = "sepal,petal,species\n5.1,1.4,setosa\n\n7.0,4.7,versicolor\n6.3,6.0,virginica\n4.9,1.4,setosa\n"
    ds = from_csv(write(tmp_path, text), label_column="species")
    assert ds.classes == ("setosa", "versicolor", "virginica")
    assert ds.y.tolist() == [0, 1, 2, 0] and ds.x.shape == (4, 2)
    ordered = from_csv(write(tmp_path, text), label_column="species", classes=["virginica", "setosa", "versicolor"])
    assert ordered.y.tolist() == [1, 2, 0, 1] and ordered.num_classes == 3


def test_label_first_column_and_other_delimiter(tmp_path):
    ds = from_csv(write(tmp_path, "y;a;b\n1;0.5;0.25\n0;1;2\n"), label_column=0, delimiter=";", num_classes=4)
    assert ds.y.tolist() == [1, 0] and ds.num_classes == 4
    np.testing.assert_array_equal(ds.x, [[0.5, 0.25], [1, 2]])


def test_explicit_header_false_keeps_first_row(tmp_path):
    ds = from_csv(write(tmp_path, "1,2,1\n3,4,0\n"), header=False)
    assert len(ds) == 2


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("a,b,y\n1,2,0\n3,4\n", {}, r"line 3: 2 fields, expected 3 \(as in line 1\)"),
        ("a,b,y\n1,2,0\n\n3,x,1\n", {}, r"line 4, column 2 \('b'\): 'x' is not a number"),
        ("1,2,0\n3,nan,1\n", {}, r"line 2, column 2 \('column 2'\): 'nan' is not a finite number"),
        ("1,2,0\n3,inf,1\n", {}, r"line 2, column 2 .*'inf' is not a finite number"),
        ("1,2,0\n3,4,1.5\n", {}, r"line 2, column 3 .*label '1.5' is not an integer"),
        ("1,2,0\n3,4,-1\n", {}, r"line 2, column 3 .*label '-1' must be >= 0"),
        ("1,2,0\n3,4,3\n", {"num_classes": 3}, r"line 2, column 3 .*label '3' must be in \[0, 3\)"),
        ("1,2,cat\n3,4,emu\n", {"classes": ["cat", "dog"]}, r"line 2, .*label 'emu' is not one of the classes"),
        ("a,b,y\n", {}, r"no data rows after the header line 1"),
        ("\n\n", {}, r"the file has no rows"),
        ("1\n2\n", {}, r"line 1: found 1 column, need at least 2"),
        ("a,b,y\n1,2,0\n", {"label_column": "label"}, r"no column named 'label'; the header has \['a', 'b', 'y'\]"),
        ("1,2,0\n", {"label_column": 3}, r"label_column must be in \[-3, 3\) for 3 columns, got 3"),
        ("1,2,0\n", {"label_column": "y", "header": False}, r"is a column name, but header=False"),
        ('1,"2,0\n', {}, r"line 1: malformed CSV|line 1: 2 fields"),
    ],
)
def test_errors_name_the_line(tmp_path, text, kwargs, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=message) as info:
        from_csv(path, **kwargs)
    assert "from_csv" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"from_csv: file .*nothere.csv does not exist"):
        from_csv(tmp_path / "nothere.csv")


def test_not_utf8(tmp_path):
    path = tmp_path / "b.csv"
    path.write_bytes(b"1,2,0\n\xff\xfe,1,1\n")
    with pytest.raises(DataError, match=r"not a UTF-8 text file"):
        from_csv(path)


def test_bad_arguments(tmp_path):
    path = write(tmp_path, "1,2,0\n")
    with pytest.raises(DataError, match=r"delimiter must be a single character, got ';;'"):
        from_csv(path, delimiter=";;")
    with pytest.raises(DataError, match=r"label_column must be a column index or a column name, got 1.5"):
        from_csv(path, label_column=1.5)


@pytest.mark.parametrize("label", ["1e9", "10000", "123456789012"])
def test_a_huge_label_is_refused_before_allocating(tmp_path, label):
    path = write(tmp_path, f"a,b,y\n1,2,0\n3,4,1\n5,6,{label}\n")
    with pytest.raises(DataError, match=rf"line 4, column 3 \('y'\): label '{label}' .*at most 10000 classes"):
        from_csv(path)
    assert from_csv(write(tmp_path, "1,2,0\n3,4,9999\n")).num_classes == 10000  # the largest allowed


def test_an_explicit_num_classes_may_exceed_the_inferred_limit(tmp_path):
    ds = from_csv(write(tmp_path, "1,2,0\n3,4,12000\n"), num_classes=12001)
    assert ds.num_classes == 12001


def test_huge_labels_from_arrays_are_refused():
    from descend.data import from_arrays

    with pytest.raises(DataError, match=r"label 1000000000 at y\[2\] would make 1000000001 classes; at most 10000"):
        from_arrays(np.zeros((3, 2)), np.array([0, 1, 10**9]))


@pytest.mark.parametrize(
    ("labels", "line", "given"),
    [
        (["0", "1", "0", "cat", "1"], 5, "cat"),  # one name among integers: the name is the odd one out
        (["cat", "dog", "1", "dog", "cat"], 4, "1"),  # one integer among names
        (["cat", "1"], 2, "cat"),  # a tie: the first name
    ],
)
def test_a_mix_of_integer_and_named_labels_is_refused_naming_the_line(tmp_path, labels, line, given):
    path = write(tmp_path, "a,b,y\n" + "".join(f"{i},{i},{s}\n" for i, s in enumerate(labels)))
    with pytest.raises(DataError, match=rf"line {line}, column 3 \('y'\): label '{given}' .*integers.*names"):
        from_csv(path)


def test_named_labels_are_sorted_classes(tmp_path):
    ds = from_csv(write(tmp_path, "1,2,dog\n3,4,cat\n5,6,emu\n7,8,cat\n"))
    assert ds.classes == ("cat", "dog", "emu") and ds.y.tolist() == [1, 0, 2, 0]
