"""Your own data from a CSV file: numeric feature columns and one label column."""

from __future__ import annotations

import csv
import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from descend.data.dataset import MAX_CLASSES, Dataset
from descend.errors import DataError


def from_csv(
    path: str | os.PathLike,
    *,
    label_column: int | str = -1,
    header: bool | None = None,
    delimiter: str = ",",
    num_classes: int | None = None,
    classes: Sequence[str] | None = None,
    name: str | None = None,
) -> Dataset:
    """Read a CSV file into a :class:`Dataset`: one sample per row, ``x`` from every column but the label.

    ``label_column``: the label's column index (negative counts from the end;
    default the last column) or its name in the header row.
    ``header``: whether the first row holds column names; ``None`` guesses (a first
    row whose feature fields are not all numbers is a header).
    Labels are integers ``0..k-1`` (``k`` is at most :data:`~descend.data.dataset.MAX_CLASSES`
    unless ``num_classes`` is given), or names: then ``classes`` fixes their order,
    and by default the sorted distinct names become the classes. Without ``classes``,
    the labels are all integers or all names (not numbers): a mix is an error.
    Blank lines are skipped; every other problem names its line and column.
    """
    path = Path(path)
    owner = f"from_csv: {path}"
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise DataError(f"from_csv: delimiter must be a single character, got {delimiter!r}")
    if header is not None and not isinstance(header, bool):
        raise DataError(f"from_csv: header must be True, False or None (guess), got {header!r}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter, strict=True)
            try:
                rows = [(reader.line_num, row) for row in reader if any(field.strip() for field in row)]
            except csv.Error as exc:
                raise DataError(f"{owner} line {reader.line_num}: malformed CSV ({exc})") from None
    except FileNotFoundError:
        raise DataError(f"from_csv: file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{owner}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except IsADirectoryError:
        raise DataError(f"from_csv: {path} is a directory, expected a CSV file") from None
    if not rows:
        raise DataError(f"{owner}: the file has no rows")

    first_line, first = rows[0]
    ncols = len(first)
    if ncols < 2:
        raise DataError(
            f"{owner} line {first_line}: found {ncols} column, need at least 2 (features and a label); "
            f"is the delimiter {delimiter!r} right?"
        )
    if isinstance(label_column, str):
        if header is False:
            raise DataError(f"{owner}: label_column={label_column!r} is a column name, but header=False")
        header = True
        names = [field.strip() for field in first]
        if label_column not in names:
            raise DataError(f"{owner}: no column named {label_column!r}; the header has {names}")
        label = names.index(label_column)
    elif isinstance(label_column, numbers.Integral) and not isinstance(label_column, bool):
        if not -ncols <= label_column < ncols:
            raise DataError(
                f"{owner}: label_column must be in [{-ncols}, {ncols}) for {ncols} columns, got {label_column}"
            )
        label = int(label_column) % ncols
    else:
        raise DataError(f"from_csv: label_column must be a column index or a column name, got {label_column!r}")
    features = [j for j in range(ncols) if j != label]
    if header is None:
        header = not all(_is_number(first[j]) for j in features)
    colnames = [field.strip() for field in first] if header else [f"column {j + 1}" for j in range(ncols)]
    data = rows[1:] if header else rows
    if not data:
        raise DataError(f"{owner}: no data rows after the header line {first_line}")

    x = np.empty((len(data), len(features)), dtype=np.float64)
    raw_labels: list[str] = []
    for i, (line, row) in enumerate(data):
        if len(row) != ncols:
            raise DataError(f"{owner} line {line}: {len(row)} fields, expected {ncols} (as in line {first_line})")
        for k, j in enumerate(features):
            field = row[j].strip()
            try:
                value = float(field)
            except ValueError:
                raise DataError(
                    f"{owner} line {line}, column {j + 1} ({colnames[j]!r}): {field!r} is not a number"
                ) from None
            if not math.isfinite(value):
                raise DataError(
                    f"{owner} line {line}, column {j + 1} ({colnames[j]!r}): {field!r} is not a finite number"
                )
            x[i, k] = value
        raw_labels.append(row[label].strip())

    y, classes = _labels(raw_labels, data, classes, num_classes, owner, colnames[label], label)
    if num_classes is None and classes is not None:
        num_classes = len(classes)
    return Dataset(x, y, num_classes, name if name is not None else path.stem, classes)  # type: ignore[arg-type]


def _is_number(field: str) -> bool:
    try:
        float(field.strip())
    except ValueError:
        return False
    return True


def _labels(
    raw: list[str],
    data: list[tuple[int, list[str]]],
    classes: Sequence[str] | None,
    num_classes: int | None,
    owner: str,
    colname: str,
    col: int,
) -> tuple[np.ndarray, tuple[str, ...] | None]:
    def where(i: int) -> str:
        return f"{owner} line {data[i][0]}, column {col + 1} ({colname!r}): label {raw[i]!r}"

    ints = [_as_int(s) for s in raw]
    if all(v is not None for v in ints):
        limit = num_classes if num_classes is not None else (len(classes) if classes is not None else None)
        for i, v in enumerate(ints):
            if v < 0 or (limit is not None and isinstance(limit, int) and v >= limit):
                allowed = "must be >= 0" if limit is None else f"must be in [0, {limit})"
                raise DataError(f"{where(i)} {allowed}")
            if limit is None and v >= MAX_CLASSES:
                raise DataError(
                    f"{where(i)} would make {v + 1} classes; labels are 0..K-1 with at most {MAX_CLASSES} classes "
                    "(pass num_classes to allow more)"
                )
        return np.asarray(ints, dtype=np.int64), None if classes is None else tuple(classes)
    if classes is None:
        numeric = [s for s, v in zip(raw, ints, strict=True) if v is None and _is_number(s)]
        if numeric:
            raise DataError(f"{where(raw.index(numeric[0]))} is not an integer")
        named = [i for i, v in enumerate(ints) if v is None]
        integral = [i for i, v in enumerate(ints) if v is not None]
        if integral:  # a mix: name the odd one out (the first of the rarer kind)
            i = named[0] if len(named) <= len(integral) else integral[0]
            kind, others = ("a name", "integers") if ints[i] is None else ("an integer", "names")
            other = (integral if ints[i] is None else named)[0]
            raise DataError(
                f"{where(i)} is {kind}, but other labels are {others} (line {data[other][0]}: {raw[other]!r}); "
                "labels are either all integers 0..K-1 or all class names"
            )
        classes = sorted(set(raw))
    classes = tuple(classes)
    if not all(isinstance(c, str) for c in classes):
        raise DataError(f"from_csv: classes must be a sequence of strings, got {classes!r}")
    index = {c: k for k, c in enumerate(classes)}
    y = np.empty(len(raw), dtype=np.int64)
    for i, s in enumerate(raw):
        if s not in index:
            raise DataError(
                f"{owner} line {data[i][0]}, column {col + 1} ({colname!r}): label {s!r} is not one of "
                f"the classes {list(classes)}"
            )
        y[i] = index[s]
    return y, classes


def _as_int(s: str) -> int | None:
    try:
        return int(s)
    except ValueError:
        pass
    try:
        v = float(s)
    except ValueError:
        return None
    return int(v) if math.isfinite(v) and v.is_integer() else None
