"""descend._io: the one atomic writer behind every run-directory file (old file or new one, never a mix)."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pytest

from descend import _io
from descend.lab import store
from descend.train import checkpoint, experiment, trainer


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_writes_give_the_content_and_the_usual_mode(tmp_path) -> None:
    _io.atomic_write_json(tmp_path / "a.json", {"b": 1, "a": [1.5]}, sort_keys=True)
    assert (tmp_path / "a.json").read_text() == '{\n  "a": [\n    1.5\n  ],\n  "b": 1\n}\n'
    _io.atomic_write_text(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_bytes() == "héllo".encode()
    _io.atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o666 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin", "t.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path) -> None:
    target = tmp_path / "f.json"
    target.write_text("old")

    def broken(f) -> None:
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        _io.atomic_write(target, broken)
    with pytest.raises(ValueError, match="Out of range float"):
        _io.atomic_write_json(target, {"x": math.nan}, allow_nan=False)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


WRITERS = {
    "trainer config.json": lambda p: trainer._write_json(p, {"a": 1}),
    "experiment summary.json": lambda p: experiment._write_json_atomic(p, {"a": 1}),
    "comparison manifest": lambda p: store._write_atomic(p, "{}\n"),
    "checkpoint": lambda p: checkpoint.save_checkpoint(p, {"w": np.zeros(3)}, {"epoch": 1}),
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_every_run_directory_writer_is_atomic_and_cleans_up(tmp_path, monkeypatch, name) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"before")

    def refuse(src, dst) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        WRITERS[name](target)
    monkeypatch.undo()
    assert target.read_bytes() == b"before"
    assert [p.name for p in tmp_path.iterdir()] == ["file"], "a temporary file was left behind"
    WRITERS[name](target)
    assert target.read_bytes() != b"before"
    if name != "checkpoint":
        json.loads(target.read_text())
