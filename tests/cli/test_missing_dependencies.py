"""numba and matplotlib are dependencies of descend; where one is missing anyway, ``descend compare`` and
``descend landscape`` exit 2 with the exact install command, before writing anything."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from descend import config
from descend.cli.main import main
from descend.errors import DescendError


def _hide(monkeypatch, *names: str) -> None:
    """Make ``names`` (and their submodules) look not installed: find_spec gives None and imports fail."""
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name.split(".")[0] in names:
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for module in [m for m in sys.modules if m.split(".")[0] in names] or list(names):
        monkeypatch.setitem(sys.modules, module, None)
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize(
    ("missing", "command"),
    [("matplotlib", "pip install 'matplotlib>=3.8'"), ("numba", "pip install 'numba>=0.60'")],
)
def test_compare_without_a_dependency_exits_2_with_the_install_command(
    missing, command, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("DESCEND_FUSED", raising=False)
    _hide(monkeypatch, missing)
    out = tmp_path / "cmp"
    code = main(["compare", "--epochs", "1", "--optimizers", "sgd,adam", "--seeds", "1", "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.startswith(f"descend: error: descend compare needs {missing} ("), err
    assert command in err and err.count("\n") == 1, err
    assert not out.exists(), "nothing is trained or written first"


def test_numba_is_not_required_where_the_kernels_are_switched_off(monkeypatch) -> None:
    _hide(monkeypatch, "numba", "matplotlib")
    monkeypatch.setenv("DESCEND_FUSED", "0")
    config.require("descend compare", "numba")  # the slower reference path on purpose: no error
    monkeypatch.setenv("DESCEND_FUSED", "1")
    with pytest.raises(DescendError, match=r"needs numba .*pip install 'numba>=0.60' \(or set DESCEND_FUSED=0"):
        config.require("descend compare", "numba")
    with pytest.raises(DescendError, match=r"needs matplotlib .*pip install 'matplotlib>=3.8'$"):
        config.require("descend compare", "matplotlib")


def test_landscape_without_matplotlib_exits_2_with_the_install_command(tmp_path, capsys, monkeypatch) -> None:
    _hide(monkeypatch, "matplotlib", "PIL")
    out = tmp_path / "pic.png"
    code = main(["landscape", "--steps", "5", "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2
    assert "descend landscape draws with matplotlib" in err and "pip install 'matplotlib>=3.8'" in err, err
    assert not out.exists()
