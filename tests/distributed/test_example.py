"""examples/torch_ddp.py runs as the README says: ``torchrun --nproc-per-node 2 examples/torch_ddp.py``."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from tests.distributed.launch import ROOT, child_env, free_port, run_processes

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("distributed")]


def torchrun() -> list[str]:
    beside = Path(sys.executable).with_name("torchrun")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("torchrun")
    return [found] if found else [sys.executable, "-m", "torch.distributed.run"]


def run_example(tmp_path, nprocs: int, *extra: str) -> str:
    port = free_port()
    argv = [
        *torchrun(),
        "--nproc-per-node",
        str(nprocs),
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(port),
        str(ROOT / "examples" / "torch_ddp.py"),
        "--steps",
        "3",
        "--checkpoint",
        str(tmp_path / "ckpt"),
        *extra,
    ]
    (output,) = run_processes([(argv, child_env(port))], timeout=120)
    return output


def test_example_runs_under_torchrun_on_two_cpu_processes(tmp_path):
    output = run_example(tmp_path, 2, "--cpu")
    assert "step    2  loss" in output
    assert f"saved step 3 to {tmp_path / 'ckpt'}" in output
    assert (tmp_path / "ckpt" / "metadata.json").is_file()  # descend.torch.distributed.save: no pickled .metadata


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (nccl)")
def test_example_runs_under_torchrun_on_cuda_with_nccl(tmp_path):
    output = run_example(tmp_path, min(2, torch.cuda.device_count()))  # one process per GPU
    assert "step    2  loss" in output
    assert (tmp_path / "ckpt" / "metadata.json").is_file()
