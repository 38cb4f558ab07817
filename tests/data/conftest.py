"""Keep every data test off the user's cache and data directories and off the network."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_data_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DESCEND_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DESCEND_DATA", raising=False)
    # The loopback server must not be reached through a proxy.
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
