"""torch.distributed.checkpoint: a run saved at step 10 and restored in fresh processes ends bitwise where an
uninterrupted 20-step run ends, under DDP and FSDP2 (sharded optimizer state), for AdamW (local shards) and
Adafactor (whole matrices gathered). The checkpoint goes through descend.torch.distributed's storage (no pickle),
and the sharded checkpoints also load whole in one process."""

from __future__ import annotations

import numpy as np
import pytest

from tests.distributed import worker
from tests.distributed.launch import run_ranks

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("distributed")]

CASES = [(mode, optimizer) for mode in ("ddp", "fsdp") for optimizer in ("adamw", "adafactor")]


def load(out, name: str, rank: int) -> dict[str, np.ndarray]:
    assert not (out / f"{name}.rank{rank}.error.txt").exists(), (out / f"{name}.rank{rank}.error.txt").read_text()
    with np.load(out / f"{name}.rank{rank}.npz") as f:
        return dict(f)


def test_restored_at_step_10_ends_bitwise_equal_to_uninterrupted(tmp_path):
    first, second = [], []
    for mode, optimizer in CASES:
        run, ckpt = f"{mode}-{optimizer}", str(tmp_path / f"{mode}-{optimizer}-step10")
        first += [
            {"name": f"{run}-full", "mode": mode, "optimizer": optimizer, "steps": [0, 20]},
            {"name": f"{run}-half", "mode": mode, "optimizer": optimizer, "steps": [0, 10], "save": ckpt},
        ]
        second.append({"name": f"{run}-resumed", "mode": mode, "optimizer": optimizer, "steps": [10, 20], "load": ckpt})
    # the control: the weights restored, the optimizer state not (it starts again at step 0)
    second.append(
        {"name": "control", "mode": "fsdp", "optimizer": "adamw", "steps": [10, 20], "load": second[2]["load"]}
        | {"model_only": True}
    )
    run_ranks(first, tmp_path)
    run_ranks(second, tmp_path)  # fresh processes: nothing survives but the checkpoints
    for mode, optimizer in CASES:
        run = f"{mode}-{optimizer}"
        files = {f.name for f in (tmp_path / f"{run}-step10").iterdir()}
        assert "metadata.json" in files and ".metadata" not in files, files  # torch's .metadata is a pickle
        assert {f.rsplit(".", 1)[-1] for f in files} == {"json", "bin"}, files
        for rank in (0, 1):
            full, half = load(tmp_path, f"{run}-full", rank), load(tmp_path, f"{run}-half", rank)
            resumed = load(tmp_path, f"{run}-resumed", rank)
            assert resumed.keys() == full.keys()
            for name in full:
                assert resumed[name].tobytes() == full[name].tobytes(), f"{run} rank {rank} {name}: not bitwise"
                assert not np.array_equal(half[name], full[name]), f"{run} {name}: steps 10-20 changed nothing"
    control, full = load(tmp_path, "control", 0), load(tmp_path, "fsdp-adamw-full", 0)
    assert any(not np.allclose(control[n], full[n], rtol=1e-6, atol=0) for n in full), "optimizer state unused"
    for optimizer in ("adamw", "adafactor"):  # the sharded checkpoints load whole, in one process
        resumed = resume_in_one_process(tmp_path / f"fsdp-{optimizer}-step10", optimizer)
        full = load(tmp_path, f"fsdp-{optimizer}-full", 0)
        for name in full:
            np.testing.assert_allclose(resumed[name], full[name], rtol=1e-6, atol=0, err_msg=f"{optimizer} {name}")


def resume_in_one_process(checkpoint, optimizer: str) -> dict[str, np.ndarray]:
    """Steps 10-20 in this process (no process group, the full batch) from a checkpoint two FSDP2 ranks saved."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    import descend.torch.distributed as ddist

    model = worker.build_model()
    opt = worker.make_optimizer(optimizer, model.parameters())
    state = {"model": model.state_dict(), "optim": get_optimizer_state_dict(model, opt)}
    ddist.load(state, checkpoint)
    model.load_state_dict(state["model"])
    set_optimizer_state_dict(model, opt, state["optim"])
    worker.train(model, opt, 10, 20)
    return worker.full_params(model)
