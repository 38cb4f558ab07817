"""Routing rules as data (``dc.optim.Rules``): by name (glob, regex), by ``ndim``, by role; with partition / masked."""

from __future__ import annotations

import re

import numpy as np
import pytest

import descend as dc
from descend import nn
from descend.errors import ParameterError
from descend.optim import fused
from descend.optim.masking import named_leaves, parse_selectors


def _tree():
    rng = np.random.default_rng(0)
    return {
        "encoder": {"weight": rng.normal(size=(3, 4)), "bias": rng.normal(size=3)},
        "head": [rng.normal(size=(2, 3)), rng.normal(size=2)],
    }


def test_names_join_the_path_and_each_kind_of_selector_matches():
    tree = _tree()
    assert [n for n, _ in named_leaves(tree)] == ["encoder.weight", "encoder.bias", "head.0", "head.1"]
    table = dc.optim.Rules(
        [("bias", "b"), ("re:head\\.1", "r"), ("ndim>=2", "m"), ("head.*", "never")], default="d"
    ).table(tree)
    assert table == {"encoder.weight": "m", "encoder.bias": "b", "head.0": "m", "head.1": "r"}
    assert dc.optim.Rules([(re.compile("enc.*"), True)], default=False)(tree) == {
        "encoder": {"weight": True, "bias": True},
        "head": [False, False],
    }
    assert dc.optim.Rules([("weight", 1)], default=0).table(tree)["encoder.weight"] == 1  # no dot: the last part


def test_partition_by_ndim_equals_partition_by_an_explicit_label_tree():
    params = _tree()
    grads = dc.optim.tree.tree_map(lambda p: np.ones_like(p), params)
    txs = {"adam": dc.optim.adam(lr=0.1), "sgd": dc.optim.sgd(lr=0.01)}
    by_rules = dc.optim.partition(txs, dc.optim.Rules([("ndim>=2", "adam")], default="sgd"))
    explicit = dc.optim.partition(txs, {"encoder": {"weight": "adam", "bias": "sgd"}, "head": ["adam", "sgd"]})
    u1, _ = by_rules.update(grads, by_rules.init(params), params)
    u2, _ = explicit.update(grads, explicit.init(params), params)
    for a, b in zip(dc.optim.tree.leaves(u1), dc.optim.tree.leaves(u2), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(u1["encoder"]["bias"], -0.01)  # sgd
    np.testing.assert_allclose(u1["head"][0], -0.1)  # adam's first step: -lr·sign(g)


def test_masked_with_rules_decays_only_what_the_rules_select():
    model = nn.mlp(4, (3,), 2, batchnorm=True, seed=0)
    model.params[...] = 1.0
    tree = model.named_parameters()
    zero = {k: np.zeros_like(v) for k, v in tree.items()}
    mask = dc.optim.Rules([("bias", False), ("norm", False)], default=True, roles=model)
    tx = dc.optim.masked(dc.optim.add_decayed_weights(0.5), mask)
    updates, _ = tx.update(zero, tx.init(tree), tree)
    assert {k for k, u in updates.items() if u.any()} == {"1.weight", "4.weight"}


def test_partition_steps_each_group_in_place_with_the_bits_of_update_and_add():
    model = nn.mlp(6, (5,), 3, seed=0)
    twin = model.copy()
    rules = dc.optim.Rules([("bias", "plain")], default="decay")
    make = lambda: dc.optim.partition(  # noqa: E731
        {"decay": dc.optim.adamw(lr=0.01, weight_decay=0.1), "plain": dc.optim.adam(lr=0.01)}, rules
    )
    tx_a, tx_b = make(), make()
    ta, tb = model.named_parameters(), twin.named_parameters()
    sa, sb = tx_a.init(ta), tx_b.init(tb)
    rng = np.random.default_rng(0)
    before = fused.calls["adamw"]
    for _ in range(10):
        g = rng.normal(size=model.params.shape).astype(np.float32)
        model.grads[...] = g
        twin.grads[...] = g
        sa = fused.step(tx_a, ta, model.named_grads(), sa)
        updates, sb = tx_b.update(twin.named_grads(), sb, tb)
        for k, p in tb.items():
            np.add(p, updates[k], out=p)
    np.testing.assert_array_equal(model.params, twin.params)
    if fused.ENABLED:
        assert fused.calls["adamw"] - before == 20  # the in-place steps too ran the kernel


def test_rule_errors_name_what_was_wrong():
    tree = _tree()
    with pytest.raises(ParameterError, match="the role 'norm' comes from the model; pass roles=model"):
        dc.optim.Rules([("norm", 1)], default=0).table(tree)
    with pytest.raises(ParameterError, match=r"parameter 'encoder\.weight' matches no rule \(bias\)"):
        dc.optim.Rules([("bias", 1)]).table(tree)
    with pytest.raises(ParameterError, match=r"selector 're:\(' is not a valid regular expression"):
        dc.optim.Rules([("re:(", 1)])
    with pytest.raises(ParameterError, match="selector 'ndim~2' is not an ndim comparison like ndim<2"):
        dc.optim.Rules([("ndim~2", 1)])
    with pytest.raises(ParameterError, match="rules\\[0\\] must be a \\(selector, value\\) pair, got 'bias'"):
        dc.optim.Rules(["bias"])
    with pytest.raises(ParameterError, match=r"rule\(s\) 'decoder\.\*' match no parameter; names are encoder"):
        dc.optim.Rules([("decoder.*", 1)], default=0, strict=True).table(tree)
    with pytest.raises(ParameterError, match=r"partition: the rules give label 'lion', which is not one of \['adam'\]"):
        dc.optim.partition({"adam": dc.optim.adam()}, dc.optim.Rules([("bias", "lion")], default="adam"))
    with pytest.raises(ParameterError, match="masked: the rules of a mask must give bools, got 'yes'"):
        dc.optim.masked(dc.optim.add_decayed_weights(0.1), dc.optim.Rules([("bias", "yes")], default=False))


def test_parse_selectors():
    assert parse_selectors("bias, norm,ndim<2") == ["bias", "norm", "ndim<2"]
    assert parse_selectors("none") == parse_selectors("") == []
    with pytest.raises(ParameterError, match="--no-decay: selector 'ndim<<2'"):
        parse_selectors("bias,ndim<<2", "--no-decay")
