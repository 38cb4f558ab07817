"""FSDP2 (fully_shard, gloo on the CPU): descend.torch optimizers on DTensor parameters end where the DDP run ends.

AdamW is elementwise and runs on each rank's local shards, its moments stored as shards placed like the parameter.
Adafactor needs whole matrices (factored second moments, the parameter's RMS), and global-norm clipping needs every
whole gradient: descend gathers them, steps them whole on every rank and keeps the local shard, so they equal the
DDP run too; they are not refused.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.distributed.launch import run_ranks

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("distributed")]

STEPS = 20


def load(out, name: str, rank: int) -> dict[str, np.ndarray]:
    assert not (out / f"{name}.rank{rank}.error.txt").exists(), (out / f"{name}.rank{rank}.error.txt").read_text()
    with np.load(out / f"{name}.rank{rank}.npz") as f:
        return dict(f)


def layout(out, name: str, rank: int) -> dict:
    return json.loads((out / f"{name}.rank{rank}.state.json").read_text())


def assert_matches_ddp(out, optimizer: str) -> None:
    ddp = load(out, f"ddp-{optimizer}", 0)
    fsdp = [load(out, f"fsdp-{optimizer}", rank) for rank in (0, 1)]
    assert fsdp[0].keys() == ddp.keys()
    for name in ddp:
        assert fsdp[0][name].tobytes() == fsdp[1][name].tobytes(), f"{optimizer} {name}: the ranks' gathers differ"
        assert fsdp[0][name].shape == ddp[name].shape
        np.testing.assert_allclose(fsdp[0][name], ddp[name], rtol=1e-6, atol=0, err_msg=f"{optimizer} {name}")


def test_fsdp2_adamw_steps_local_shards_and_matches_ddp(tmp_path):
    run_ranks(
        [
            {"name": "ddp-adamw", "mode": "ddp", "optimizer": "adamw", "steps": [0, STEPS]},
            {"name": "fsdp-adamw", "mode": "fsdp", "optimizer": "adamw", "steps": [0, STEPS]},
        ],
        tmp_path,
    )
    assert_matches_ddp(tmp_path, "adamw")
    for rank in (0, 1):
        for name, entry in layout(tmp_path, "fsdp-adamw", rank).items():
            assert set(entry["state"]) == {"step", "exp_avg", "exp_avg_sq"}, name
            for key in ("exp_avg", "exp_avg_sq"):  # sharded like the parameter: this rank holds its shard only
                s = entry["state"][key]
                assert s["type"] == "DTensor" and s["placements"] == ["S(0)"], (name, key, s)
                assert s["local_shape"] == entry["param_local_shape"], (name, key, s)
    # the output layer (3 rows) splits 2 + 1: the shards really differ from the whole parameter
    assert layout(tmp_path, "fsdp-adamw", 1)["4.weight"]["param_local_shape"] == [1, 8]


def test_fsdp2_whole_matrix_optimizers_gather_and_match_ddp(tmp_path):
    """Adafactor, and a custom chain with global-norm clipping, see whole tensors: the DDP run's numbers."""
    job = []
    for optimizer in ("adafactor", "clipped-adamw"):
        job += [
            {"name": f"ddp-{optimizer}", "mode": "ddp", "optimizer": optimizer, "steps": [0, STEPS]},
            {"name": f"fsdp-{optimizer}", "mode": "fsdp", "optimizer": optimizer, "steps": [0, STEPS]},
        ]
    for optimizer in ("adafactor", "clipped-adamw"):  # the controls: what stepping shards as matrices would do
        job.append(
            {"name": f"shards-{optimizer}", "mode": "fsdp", "optimizer": optimizer, "steps": [0, STEPS]}
            | {"shards_as_matrices": True}
        )
    run_ranks(job, tmp_path)
    assert_matches_ddp(tmp_path, "adafactor")
    assert_matches_ddp(tmp_path, "clipped-adamw")
    # clipping each shard by its own norm trains a different network; Adafactor's shard factors are refused
    ddp, shards = load(tmp_path, "ddp-clipped-adamw", 0), load(tmp_path, "shards-clipped-adamw", 0)
    assert max(np.max(np.abs(shards[n] - ddp[n]) / np.abs(ddp[n])) for n in ddp) > 0.1
    error = (tmp_path / "shards-adafactor.rank0.error.txt").read_text()
    assert error.startswith("StructureError: descend.torch.Adafactor: an optimizer stepped on local shards must keep")
    assert "got 'row_var' of shape (4, 1)" in error
    for rank in (0, 1):
        weight = layout(tmp_path, "fsdp-adafactor", rank)["2.weight"]["state"]
        # the factors of the whole 8x8 matrix, the same on every rank; a shard's factors would be 4x1 and 1x8
        assert weight["row_var"]["type"] == "Tensor" and weight["row_var"]["shape"] == [8, 1]
        assert weight["col_var"]["type"] == "Tensor" and weight["col_var"]["shape"] == [1, 8]
        bias = layout(tmp_path, "fsdp-adafactor", rank)["2.bias"]["state"]
        assert bias["variance"]["type"] == "DTensor" and bias["variance"]["local_shape"] == [4]
