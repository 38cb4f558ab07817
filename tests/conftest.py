"""Fixtures shared by several test folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def readonly_dir(tmp_path) -> Path:
    """A directory nobody can create files in (root ignores permission bits: /proc then)."""
    if os.geteuid() == 0:
        yield Path("/proc")
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    yield ro
    ro.chmod(0o755)
