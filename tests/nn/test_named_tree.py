"""The named parameter tree: torch-named views into the flat buffer, roles, and the no-decay routing rules."""

from __future__ import annotations

import numpy as np
import pytest

from descend import nn
from descend.errors import ParameterError
from descend.optim._buffers import span


def _model():
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(32, 5),
        nn.LayerNorm(5), nn.Linear(5, 3),
    )  # fmt: skip


def test_the_tree_is_adjacent_views_in_buffer_order_and_grads_likewise():
    model = _model()
    tree, grads = model.named_parameters(), model.named_grads()
    assert list(tree) == [i.name for i in model.layout] == list(grads)
    assert span(list(tree.values())) is not None and span(list(tree.values())).base is model.params.base
    assert span(list(grads.values())).size == model.grads.size
    assert model.named_parameters()["4.weight"] is tree["4.weight"]  # the same view objects every call


def test_param_roles():
    roles = _model().param_roles()
    assert roles == {
        "0.weight": frozenset(),
        "0.bias": {"bias"},
        "1.weight": {"norm"},
        "1.bias": {"norm", "bias"},
        "4.weight": frozenset(),
        "4.bias": {"bias"},
        "5.weight": {"norm"},
        "5.bias": {"norm", "bias"},
        "6.weight": {"head"},
        "6.bias": {"head", "bias"},
    }


def test_decays_default_spares_biases_and_norm_layers_and_takes_rules():
    model = _model()
    assert [n for n, on in model.decays().items() if on] == ["0.weight", "4.weight", "6.weight"]
    assert all(model.decays([]).values())
    assert [n for n, on in model.decays(["ndim<2"]).items() if on] == ["0.weight", "4.weight", "6.weight"]
    assert [n for n, on in model.decays(["head", "re:0\\..*"]).items() if not on] == [
        "0.weight", "0.bias", "6.weight", "6.bias",
    ]  # fmt: skip
    mask = model.decay_mask(no_decay=["bias"])
    for info in model.layout:
        assert np.all(mask[info.offset : info.offset + info.size] == (0 if info.name.endswith("bias") else 1))


def test_decays_errors_name_what_was_wrong():
    model = _model()
    with pytest.raises(ParameterError, match=r"no_decay: rule\(s\) '9\.\*' match no parameter; names are 0\.weight"):
        model.decays(["9.*"])
    with pytest.raises(ParameterError, match="no_decay must be a list of selectors, got the string 'bias'"):
        model.decays("bias")
    with pytest.raises(ParameterError, match=r"a rule.s selector must be a role .* got 3"):
        model.decays([3])


class _Table(nn.Module):
    """A minimal embedding table: its parameters carry the role ``embedding``."""

    role = "embedding"

    def __init__(self, rng=0):
        super().__init__()
        self._add_param("weight", (6, 3), "normal")
        self._build(rng)


def test_a_layer_role_reaches_the_rules():
    model = nn.Sequential(_Table(), nn.Linear(3, 2))
    assert model.param_roles()["0.weight"] == {"embedding"}
    assert model.decays(["embedding", "bias"]) == {"0.weight": False, "1.weight": True, "1.bias": False}
