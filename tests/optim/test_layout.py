"""``by_layout`` / the ``layout=`` keyword: a layer-wise optimizer on a model's one flat buffer equals the
same optimizer on the dict of the model's parameters."""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc
from descend import nn
from descend.errors import ParameterError, StructureError

FACTORIES = {
    "lamb": lambda layout=None: dc.optim.lamb(lr=0.01, weight_decay=0.01, layout=layout),
    "lars": lambda layout=None: dc.optim.lars(lr=0.1, trust_coefficient=0.02, weight_decay=0.01, layout=layout),
    "muon": lambda layout=None: dc.optim.muon(lr=0.02, adamw_lr=1e-3, layout=layout),
    "soap": lambda layout=None: dc.optim.soap(lr=0.01, precondition_frequency=2, layout=layout),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_flat_buffer_with_layout_equals_the_parameter_dict(name):
    model = nn.mlp(5, hidden=(4,), out=3, seed=0, dtype=np.float64)
    rng = np.random.default_rng(1)
    flat = model.params.copy()
    tree = {k: v.copy() for k, v in model.named_parameters().items()}
    flat_tx, tree_tx = FACTORIES[name](model.layout), FACTORIES[name]()
    flat_state, tree_state = flat_tx.init(flat), tree_tx.init(tree)
    for _ in range(5):
        g = rng.normal(size=flat.shape)
        offsets = {info.name: (info.offset, info.size, info.shape) for info in model.layout}
        g_tree = {k: g[o : o + n].reshape(s) for k, (o, n, s) in offsets.items()}
        u_flat, flat_state = flat_tx.update(g, flat_state, flat)
        u_tree, tree_state = tree_tx.update(g_tree, tree_state, tree)
        flat = dc.optim.apply_updates(flat, u_flat)
        tree = dc.optim.apply_updates(tree, u_tree)
    for info in model.layout:
        np.testing.assert_allclose(
            flat[info.offset : info.offset + info.size].reshape(info.shape), tree[info.name], rtol=1e-12, atol=1e-15
        )
    whole = FACTORIES[name]() if name != "muon" else None
    if whole is not None:  # without the layout the flat buffer is one leaf: a different optimizer
        f = model.params.copy()
        u, _ = whole.update(np.ones_like(f), whole.init(f), f)
        u2, _ = FACTORIES[name](model.layout).update(np.ones_like(f), FACTORIES[name](model.layout).init(f), f)
        assert name == "soap" or not np.allclose(u, u2)


def test_muon_refuses_a_lone_flat_vector_without_layout():
    tx = dc.optim.muon()
    with pytest.raises(StructureError, match=r"muon: params is one flat vector .* pass layout=model\.layout"):
        tx.init(np.zeros(10))


def test_layout_errors_are_clear():
    with pytest.raises(ParameterError, match="lamb: layout must be a model's layout"):
        dc.optim.lamb(layout="abc")
    tx = dc.optim.lamb(layout=[(2, 2), (3,)])
    with pytest.raises(
        StructureError, match=r"lamb: params must be one flat vector of 7 entries .*got an array of shape \(6,\)"
    ):
        tx.init(np.zeros(6))
