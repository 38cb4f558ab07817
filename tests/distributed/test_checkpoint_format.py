"""descend.torch.distributed.save / load in one process: torch.distributed.checkpoint through a storage that writes raw
tensor bytes and a JSON index, and that never unpickles (torch's own format reads a pickled index)."""

from __future__ import annotations

import math
import pickle
import re
import warnings

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

import descend.torch
import descend.torch.distributed as ddist
from descend.errors import ParameterError, StructureError

OWNER = "descend.torch.distributed"


def sample(v: float) -> dict:
    """A state dict with every kind of leaf a checkpoint holds; ``v`` changes every value."""
    return {
        "w": torch.arange(6, dtype=torch.float64).reshape(2, 3) * v + 0.1,
        "half": torch.full((3,), 1.5 * v, dtype=torch.bfloat16),
        "count": torch.tensor(7 * int(v), dtype=torch.int64),
        "flag": torch.tensor(bool(v)),
        "empty": torch.empty(0, 3),
        "step": torch.tensor(3.0 * v),
        "group": {"lr": 0.1 * v, "betas": (0.9 * v, 0.999), "eps": None if v else 1.0, "name": f"g{v}", "on": v > 0},
        "inf": math.inf if v else 0.0,
    }


def no_unpickling(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("something unpickled")

    for name in ("load", "loads"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)


def test_round_trip_is_bitwise_and_unpickles_nothing(tmp_path, monkeypatch):
    ddist.save(sample(1.0), tmp_path / "ckpt")
    assert sorted(p.suffix for p in (tmp_path / "ckpt").iterdir()) == [".bin", ".json"]
    no_unpickling(monkeypatch)
    target = sample(0.0)
    ddist.load(target, tmp_path / "ckpt")
    expected = sample(1.0)
    for key in ("w", "half", "count", "flag", "empty", "step"):
        assert target[key].dtype == expected[key].dtype
        assert torch.equal(target[key], expected[key]), key
    assert target["group"] == expected["group"]
    assert isinstance(target["group"]["betas"], tuple)  # JSON has no tuples: they are tagged
    assert target["inf"] == math.inf


def test_save_refuses_a_value_json_can_not_hold_and_writes_nothing(tmp_path):
    ddist.save(sample(1.0), tmp_path / "ckpt")
    before = {p.name: p.read_bytes() for p in (tmp_path / "ckpt").iterdir()}
    bad = sample(2.0)
    bad["group"]["schedule"] = {1, 2}
    with pytest.raises(ParameterError) as error:
        ddist.save(bad, tmp_path / "ckpt")
    assert str(error.value) == (
        "descend.torch.distributed.save: group.schedule must be a tensor, a number, a string, a bool, None, or a "
        "list, tuple or dict of them, got set"
    )
    assert {p.name: p.read_bytes() for p in (tmp_path / "ckpt").iterdir()} == before
    target = sample(0.0)
    ddist.load(target, tmp_path / "ckpt")
    assert torch.equal(target["w"], sample(1.0)["w"])


def test_a_second_save_replaces_the_first_whole(tmp_path):
    ddist.save(sample(1.0), tmp_path / "ckpt")
    first = {p.name for p in (tmp_path / "ckpt").glob("*.bin")}
    ddist.save(sample(2.0), tmp_path / "ckpt")
    second = {p.name for p in (tmp_path / "ckpt").glob("*.bin")}
    assert len(first) == len(second) == 1 and first != second  # new data files; the old ones removed after
    target = sample(0.0)
    ddist.load(target, tmp_path / "ckpt")
    assert torch.equal(target["w"], sample(2.0)["w"]) and target["group"]["lr"] == 0.2


def test_load_refuses_torch_s_own_format_without_unpickling(tmp_path, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # dcp: "no process group, saving in a single process"
        dcp.save(sample(1.0), checkpoint_id=tmp_path / "torch-ckpt")
    no_unpickling(monkeypatch)
    with pytest.raises(StructureError) as error:
        ddist.load(sample(0.0), tmp_path / "torch-ckpt")
    message = str(error.value)
    assert message.startswith(f"descend.torch.distributed.load: {tmp_path / 'torch-ckpt'} must be a checkpoint")
    assert "metadata.json" in message and "pickle" in message


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("missing", "it does not exist"),
        ("no-index", "got a directory without one"),
        ("not-json", "must be JSON written by descend.torch.distributed.save"),
        ("other-format", "must have format 'descend-dcp', got 'other'"),
        ("truncated", "bytes as"),
    ],
)
def test_load_names_what_is_wrong_with_a_damaged_checkpoint(tmp_path, damage, expected):
    path = tmp_path / "ckpt"
    ddist.save(sample(1.0), path)
    index = path / "metadata.json"
    if damage == "missing":
        path = tmp_path / "nowhere"
    elif damage == "no-index":
        index.unlink()
    elif damage == "not-json":
        index.write_text("{")
    elif damage == "other-format":
        index.write_text('{"format": "other"}')
    else:
        data = next(path.glob("*.bin"))
        data.write_bytes(data.read_bytes()[:-5])
    target = sample(0.0)
    with pytest.raises(StructureError, match="^" + re.escape("descend.torch.distributed.load: ")) as error:
        ddist.load(target, path)
    assert expected in str(error.value)
    assert torch.equal(target["w"], sample(0.0)["w"])  # nothing was loaded


def test_safe_storage_refuses_torch_s_pickling_planners(tmp_path):
    with pytest.raises(CheckpointException, match=re.escape(f"must be a {OWNER}.SafeSavePlanner")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            dcp.save(sample(1.0), storage_writer=ddist.SafeWriter(tmp_path / "a"))
    ddist.save(sample(1.0), tmp_path / "b")
    with pytest.raises(CheckpointException, match=re.escape(f"must be a {OWNER}.SafeLoadPlanner")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            dcp.load(sample(0.0), storage_reader=ddist.SafeReader(tmp_path / "b"))


def test_optimizer_state_resumes_bitwise_in_one_process(tmp_path):
    def make():
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
        return model, descend.torch.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)

    def steps(model, optimizer, start, stop):
        for step in range(start, stop):
            g = torch.Generator().manual_seed(step)
            x, y = torch.randn(8, 4, generator=g, dtype=torch.float64), torch.randn(8, 2, generator=g).double()
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()

    model, optimizer = make()
    steps(model, optimizer, 0, 10)
    ddist.save({"model": model.state_dict(), "optim": get_optimizer_state_dict(model, optimizer)}, tmp_path / "c")
    steps(model, optimizer, 10, 20)

    restored, optimizer2 = make()
    state = {"model": restored.state_dict(), "optim": get_optimizer_state_dict(restored, optimizer2)}
    ddist.load(state, tmp_path / "c")
    restored.load_state_dict(state["model"])
    set_optimizer_state_dict(restored, optimizer2, state["optim"])
    assert optimizer2.state_dict()["state"][0]["step"].item() == 10
    steps(restored, optimizer2, 10, 20)
    for a, b in zip(model.parameters(), restored.parameters(), strict=True):
        assert torch.equal(a, b)
