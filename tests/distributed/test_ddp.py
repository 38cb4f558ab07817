"""DDP: two gloo ranks on the CPU train with descend.torch.AdamW and end where one process on the full batch ends."""

from __future__ import annotations

import numpy as np
import pytest

from tests.distributed import worker
from tests.distributed.launch import run_ranks

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("distributed")]

STEPS = 20


def load(out, name: str, rank: int) -> dict[str, np.ndarray]:
    with np.load(out / f"{name}.rank{rank}.npz") as f:
        return dict(f)


def test_ddp_adamw_ranks_bitwise_equal_and_match_one_process(tmp_path):
    run_ranks([{"name": "ddp", "mode": "ddp", "optimizer": "adamw", "steps": [0, STEPS]}], tmp_path)
    r0, r1 = load(tmp_path, "ddp", 0), load(tmp_path, "ddp", 1)
    initial = worker.full_params(worker.build_model())
    reference = worker.single_process("adamw", STEPS)
    assert r0.keys() == r1.keys() == reference.keys()
    for name in reference:
        assert r0[name].dtype == np.float64
        assert r0[name].tobytes() == r1[name].tobytes(), f"{name}: ranks differ"
        np.testing.assert_allclose(r0[name], reference[name], rtol=1e-6, atol=0, err_msg=name)
        assert not np.allclose(r0[name], initial[name]), f"{name}: did not train"
