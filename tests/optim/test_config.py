"""``dc.config``: the process-wide switches in one object (fused, fast_kernels, conv_same_width,
batch_parallel, blas_threads), read from the environment at import, set for a block with ``using``."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import descend as dc
from descend import config
from descend.errors import ParameterError
from descend.nn import _blas, _fast, conv
from descend.optim import fused


def _in_subprocess(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("DESCEND_")} | env
    return subprocess.run(
        [sys.executable, "-c", "import descend as dc\n" + code], env=full, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, dict(fused=True, fast_kernels=True, conv_same_width=True, batch_parallel=True, blas_threads=None)),
        ({"DESCEND_FUSED": "0"}, dict(fused=False, fast_kernels=False)),
        ({"DESCEND_FUSED": "off", "DESCEND_FAST_KERNELS": "1"}, dict(fused=False, fast_kernels=True)),
        ({"DESCEND_FAST_KERNELS": "false"}, dict(fused=True, fast_kernels=False)),
        ({"DESCEND_CONV_SAME_WIDTH": "No", "DESCEND_BATCH_PARALLEL": "0"}, dict(conv_same_width=False)),
        ({"DESCEND_BLAS_THREADS": "1"}, dict(blas_threads=1)),
    ],
)
def test_fields_come_from_the_environment_at_import(env, expected) -> None:
    if not config.numba_available():
        pytest.skip("numba is not installed: fused and fast_kernels start False")
    if "DESCEND_BLAS_THREADS" in env and _blas.get_threads() is None:
        pytest.skip("numpy's OpenBLAS not found")
    code = (
        "from descend.nn import _blas\n"
        "print(dc.config.as_dict())\n"
        "print(dc.config.blas_threads is None or _blas.get_threads() == dc.config.blas_threads)\n"
    )
    done = _in_subprocess(env, code)
    assert done.returncode == 0, done.stderr
    values, blas_applied = done.stdout.splitlines()
    for key, value in expected.items():
        assert f"'{key}': {value!r}" in values, values
    assert blas_applied == "True"


def test_a_bad_thread_count_in_the_environment_is_one_clear_error() -> None:
    done = _in_subprocess({"DESCEND_BLAS_THREADS": "many"}, "")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        "descend.errors.ParameterError: config: DESCEND_BLAS_THREADS must be a positive integer (OpenBLAS threads), "
        "got 'many'"
    )


def test_using_sets_for_a_block_and_restores_even_on_error() -> None:
    before = config.as_dict()
    with config.using(fused=False, conv_same_width=False, batch_parallel=False, fast_kernels=False) as now:
        assert now["fused"] is False and dc.config.fused is False
        assert fused.ENABLED is False and _fast.ENABLED is False
        assert conv.SAME_WIDTH_PATH is False and _blas.ENABLED is False
        assert _fast.kernels(np.float32) is None
        assert _blas.ranges(128, 1 << 30) is None
    assert config.as_dict() == before
    with pytest.raises(RuntimeError), config.using(conv_same_width=False):
        raise RuntimeError("boom")
    assert config.as_dict() == before


def test_module_attributes_read_and_write_the_configuration(monkeypatch) -> None:
    for module, attr, field in [
        (fused, "ENABLED", "fused"),
        (_fast, "ENABLED", "fast_kernels"),
        (_blas, "ENABLED", "batch_parallel"),
        (conv, "SAME_WIDTH_PATH", "conv_same_width"),
    ]:
        monkeypatch.setattr(module, attr, False)
        assert getattr(config, field) is False, field
        assert getattr(module, attr) is False
        monkeypatch.undo()
        assert getattr(module, attr) is getattr(config, field), field


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"fuse": True}, "config: unknown field 'fuse'; the fields are fused, fast_kernels, conv_same_width"),
        ({"fused": 1}, "config: fused must be True or False, got 1"),
        ({"conv_same_width": "no"}, "config: conv_same_width must be True or False, got 'no'"),
        ({"blas_threads": 0}, r"config: blas_threads must be a positive int or None, got 0"),
        ({"batch_parallel": False, "blas_threads": 2.5}, r"blas_threads must be a positive int or None, got 2.5"),
    ],
)
def test_bad_values_are_refused_before_anything_changes(fields, message) -> None:
    before = config.as_dict()
    with pytest.raises(ParameterError, match=message):
        config.update(**fields)
    with pytest.raises(ParameterError, match=message), config.using(**fields):
        pass
    assert config.as_dict() == before
    name, value = list(fields.items())[-1]  # the bad one
    with pytest.raises(ParameterError, match=message.split(";")[0]):
        setattr(dc.config, name, value)
    assert config.as_dict() == before


@pytest.mark.skipif(_blas.get_threads() is None, reason="numpy's OpenBLAS not found")
def test_blas_threads_sets_openblas_and_none_restores_its_own_count() -> None:
    own = _blas.get_threads()
    with config.using(blas_threads=1):
        assert _blas.get_threads() == 1 and dc.config.blas_threads == 1
        assert _blas.parts() == 1  # one thread: layers run their batches serially
    assert _blas.get_threads() == own and dc.config.blas_threads is None


def test_config_is_exported_and_repr_shows_every_field() -> None:
    assert dc.config is config and "config" in dc.__all__
    assert repr(dc.config).startswith("descend.config(fused=")
    assert set(config.as_dict()) == set(config.FIELDS)
