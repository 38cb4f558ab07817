"""``metrics.csv``: one row per epoch, appended and flushed as training goes.

A crash loses nothing already written. On resume the file is cut back to the
rows up to the checkpoint's epoch, so a resumed run's file equals an
uninterrupted run's.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

from descend._io import atomic_write_text


class MetricsWriter:
    """Append rows with a fixed header; columns appear in first-seen order."""

    def __init__(self, path: str | os.PathLike, fieldnames: list[str]):
        self.path = Path(path)
        self.fieldnames = list(fieldnames)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists() or self.path.stat().st_size == 0:
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(self.fieldnames)

    def append(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(k, "")) for k in self.fieldnames])
            f.flush()
            os.fsync(f.fileno())

    def truncate_after(self, epoch: int) -> None:
        """Keep the header and the rows of epochs 1, 2, ..., ``epoch`` (for resuming), atomically: a kill
        while cutting leaves the old file, and a row torn by a crash mid-write (``1`` of ``12,...``) is
        dropped, since it does not continue the sequence."""
        out = io.StringIO(newline="")
        w = csv.writer(out)
        w.writerow(self.fieldnames)
        kept = 0
        with self.path.open(newline="") as f:
            for r in csv.DictReader(f):  # the cells as written (a torn number is never parsed)
                if kept < epoch and (r.get("epoch") or "").strip() == str(kept + 1):
                    w.writerow([r.get(k) or "" for k in self.fieldnames])
                    kept += 1
        atomic_write_text(self.path, out.getvalue())


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else str(v)
    return str(v)


#: Columns that hold counts; every other column is a float.
INTEGER_COLUMNS = ("epoch", "step")


def read_metrics(path: str | os.PathLike) -> list[dict[str, float | int | None]]:
    """The rows of ``metrics.csv`` as numbers: ``epoch``/``step`` int, the rest float, an empty cell None.

    Floats are written with ``repr``, so values read back are bit-identical to those logged.
    """
    with Path(path).open(newline="") as f:
        return [{k: _parse(k, v) for k, v in row.items()} for row in csv.DictReader(f)]


def _parse(key: str, text: str | None) -> float | int | None:
    if text is None or text == "":
        return None
    if key in INTEGER_COLUMNS:
        return int(text)
    return float(text)
