"""ZeroRedundancyOptimizer shards descend.torch.AdamW like torch.optim.AdamW (a one-process gloo group)."""

from __future__ import annotations

import copy
import os
import socket
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

with warnings.catch_warnings():  # torch.distributed.optim's functional optimizers use the deprecated torch.jit.script
    warnings.simplefilter("ignore", DeprecationWarning)
    from torch.distributed.optim import ZeroRedundancyOptimizer

import descend.torch as dtorch
from tests.torch.helpers import clone, make_params, run

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def process_group(monkeypatch: pytest.MonkeyPatch):
    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    if Path("/sys/class/net/lo").exists():
        monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_zero_redundancy_optimizer_with_descend_adamw(process_group: None) -> None:
    params = make_params()
    ours_p, theirs_p = clone(params), clone(params)
    ours = ZeroRedundancyOptimizer(ours_p, optimizer_class=dtorch.AdamW, lr=0.01, weight_decay=0.1)
    theirs = torch.optim.AdamW(theirs_p, lr=0.01, weight_decay=0.1, foreach=False)
    run(ours, ours_p, 10)
    run(theirs, theirs_p, 10)
    for x, y in zip(ours_p, theirs_p, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-7, atol=1e-12)
    ours.consolidate_state_dict(to=0)
    sd = copy.deepcopy(ours.state_dict())
    expected = theirs.state_dict()["state"]
    for i, state in expected.items():  # torch's layout, through ZeRO's consolidation
        assert set(sd["state"][i]) == set(state)
        for key, value in state.items():
            assert sd["state"][i][key].dtype == value.dtype
            torch.testing.assert_close(sd["state"][i][key], value, rtol=1e-7, atol=1e-12)

    # ZeRO's load_state_dict writes the local optimizer's `state` directly; descend reads it from there
    again_p = clone(ours_p)
    again = ZeroRedundancyOptimizer(again_p, optimizer_class=dtorch.AdamW, lr=0.01, weight_decay=0.1)
    again.load_state_dict(sd)
    run(again, again_p, 5)
    run(ours, ours_p, 5)
    for x, y in zip(again_p, ours_p, strict=True):
        assert torch.equal(x, y)
    assert os.environ.get("MASTER_ADDR") in (None, "127.0.0.1")
