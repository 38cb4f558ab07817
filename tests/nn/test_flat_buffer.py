"""The flat parameter buffer: views, names/layout, optimizer steps, grouping rules, state dicts, copies."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import descend as dc
from descend import nn
from descend.errors import ParameterError
from descend.nn import ShapeError


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 3),
    )  # fmt: skip


def torch_small_cnn():
    t = torch.nn
    return t.Sequential(
        t.Conv2d(1, 4, 3, padding=1), t.BatchNorm2d(4), t.ReLU(), t.MaxPool2d(2),
        t.Flatten(), t.Linear(4 * 4 * 4, 8), t.LayerNorm(8), t.Tanh(), t.Linear(8, 3),
    )  # fmt: skip


def step(model, x, y):
    loss, d = nn.cross_entropy(model(x), y)
    model.backward(d, input_grad=False)
    return loss


X = np.random.default_rng(0).standard_normal((6, 1, 8, 8)).astype(np.float32)
Y = np.array([0, 1, 2, 0, 1, 2])


def test_every_parameter_and_gradient_is_a_view_of_the_buffers():
    model = small_cnn()
    assert model.params.ndim == 1 and model.params.flags.c_contiguous and model.params.dtype == np.float32
    assert model.params.size == model.num_params == sum(i.size for i in model.layout)
    for name, view in model.named_parameters().items():
        assert np.shares_memory(view, model.params), name
    for name, view in model.named_grads().items():
        assert np.shares_memory(view, model.grads), name
        assert not np.shares_memory(view, model.params), name
    # a layer's own params are a contiguous slice of the model's
    assert np.shares_memory(model[5].params, model.params)
    assert model[5].params.size == 64 * 8 + 8
    model.params[:] = 0.25
    assert np.all(model[0].weight == 0.25) and np.all(model[8].bias == 0.25)


def test_names_and_layout_match_torch_state_dict():
    model = small_cnn()
    torch_names = [k for k, _ in torch_small_cnn().named_parameters()]
    assert list(model.named_parameters()) == torch_names
    assert [i.name for i in model.layout] == torch_names
    offset = 0
    for info in model.layout:
        assert info.offset == offset and info.size == int(np.prod(info.shape))
        np.testing.assert_array_equal(
            model.params[offset : offset + info.size], model.named_parameters()[info.name].ravel()
        )
        offset += info.size
    assert set(model.state_dict()) == set(torch_small_cnn().state_dict())


def test_backward_writes_into_the_grad_buffer_and_sets_not_accumulates():
    model = small_cnn()
    grads = model.grads
    step(model, X, Y)
    first = grads.copy()
    assert model.grads is grads and np.abs(first).sum() > 0
    for name, g in model.named_grads().items():
        assert np.abs(g).sum() > 0, name  # every parameter receives a gradient
    step(model, X, Y)
    np.testing.assert_allclose(model.grads, first, rtol=1e-6)  # set, not accumulated
    model.zero_grad()
    assert not model.grads.any()


def test_one_optimizer_step_on_params_moves_every_layer():
    model = small_cnn()
    before = {k: v.copy() for k, v in model.named_parameters().items()}
    step(model, X, Y)
    tx = dc.optim.sgd(lr=0.1)
    state = tx.init(model.params)
    updates, state = tx.update(model.grads, state, model.params)
    model.params[...] = dc.optim.apply_updates(model.params, updates)
    for name, view in model.named_parameters().items():
        np.testing.assert_allclose(view, before[name] - 0.1 * model.named_grads()[name], rtol=1e-6, atol=1e-7)
        assert not np.array_equal(view, before[name]), name
    assert model.params.dtype == np.float32


def test_adam_training_on_the_flat_buffer_lowers_the_loss():
    model = small_cnn()
    tx = dc.optim.adam(lr=1e-2)
    state = tx.init(model.params)
    first = step(model, X, Y)
    for _ in range(30):
        step(model, X, Y)
        updates, state = tx.update(model.grads, state, model.params)
        model.params[...] = dc.optim.apply_updates(model.params, updates)
    assert step(model, X, Y) < 0.2 * first


def test_decay_mask_zeros_biases_and_norm_parameters():
    model = small_cnn()
    mask = model.decay_mask()
    assert mask.shape == model.params.shape and mask.dtype == np.float32
    for info in model.layout:
        seg = mask[info.offset : info.offset + info.size]
        expected = 1.0 if info.name in ("0.weight", "5.weight", "8.weight") else 0.0
        assert np.all(seg == expected), info.name


def test_param_values_rules():
    model = small_cnn()
    table = model.param_table(
        {"0.*": 1.0, re.compile(r"\d+\.bias"): 2.0, nn.LayerNorm: 3.0, "weight": 4.0}, default=9.0
    )
    assert table == {
        "0.weight": 1.0, "0.bias": 1.0, "1.weight": 4.0, "1.bias": 2.0, "5.weight": 4.0, "5.bias": 2.0,
        "6.weight": 3.0, "6.bias": 2.0, "8.weight": 4.0, "8.bias": 2.0,
    }  # fmt: skip
    wd = model.param_values([("bias", 0.0), ((nn.BatchNorm2d, nn.LayerNorm), 0.0)], default=5e-4)
    np.testing.assert_allclose(wd, 5e-4 * model.decay_mask(), rtol=1e-7)
    lr_scale = model.param_values({"8.*": 10.0}, default=1.0, dtype=np.float64)
    assert lr_scale.dtype == np.float64 and lr_scale[model.layout[-1].offset] == 10.0 and lr_scale[0] == 1.0


def test_param_values_errors():
    model = small_cnn()
    with pytest.raises(ParameterError, match=r"rule\(s\) '9\.\*' match no parameter; names are 0\.weight, 0\.bias"):
        model.param_values({"9.*": 0.0, "bias": 0.0}, strict=True)
    with pytest.raises(
        ParameterError, match=r"a rule key must be a glob string, a compiled re\.Pattern, or a layer class"
    ):
        model.param_values({3: 0.0})


def test_per_element_weight_decay_array_in_an_optimizer_step():
    model = small_cnn()
    step(model, X, Y)
    wd = 0.1 * model.decay_mask()
    before = model.params.copy()
    model.params[...] -= 0.5 * (model.grads + wd * model.params)
    bias = model.layout[1]
    sl = slice(bias.offset, bias.offset + bias.size)
    np.testing.assert_allclose(model.params[sl], before[sl] - 0.5 * model.grads[sl], rtol=1e-6)


def test_state_dict_roundtrip_includes_running_stats():
    model = small_cnn()
    step(model, X, Y)  # updates BatchNorm running stats
    sd = model.state_dict()
    assert sd["1.num_batches_tracked"] == 1 and sd["1.running_mean"].any()
    assert not np.shares_memory(sd["0.weight"], model.params)
    other = small_cnn()
    other.load_state_dict(sd)
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v, sd[k])
    model.eval(), other.eval()
    np.testing.assert_array_equal(model(X), other(X))


def test_load_torch_state_dict_then_outputs_match_torch():
    theirs = torch_small_cnn().eval()
    ours = small_cnn().eval()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    with torch.no_grad():
        np.testing.assert_allclose(ours(X), theirs(torch.from_numpy(X)).numpy(), rtol=1e-5, atol=1e-6)


def test_load_state_dict_errors():
    model = small_cnn()
    sd = model.state_dict()
    with pytest.raises(ParameterError, match=r"missing keys \['0\.bias'\], unexpected keys \['extra'\]"):
        model.load_state_dict({**{k: v for k, v in sd.items() if k != "0.bias"}, "extra": np.zeros(1)})
    with pytest.raises(ShapeError, match=r"'5\.weight' has shape \(8, 3\), expected \(8, 64\)"):
        model.load_state_dict({**sd, "5.weight": np.zeros((8, 3))})
    model.load_state_dict({"0.bias": np.ones(4)}, strict=False)
    assert np.all(model[0].bias == 1)


def test_astype_float64_is_an_independent_copy():
    model = small_cnn()
    m64 = model.astype(np.float64)
    assert m64.params.dtype == np.float64 and m64[1].running_var.dtype == np.float64
    assert m64[1].num_batches_tracked.dtype == np.int64
    np.testing.assert_allclose(m64.params, model.params)
    assert not np.shares_memory(m64.params, model.params)
    for name, view in m64.named_parameters().items():
        assert np.shares_memory(view, m64.params), name
    m64.params[:] = 0
    assert model.params.any()
    copy = model.copy()
    assert copy.params.dtype == np.float32 and not np.shares_memory(copy.params, model.params)


def test_sequential_dtype_float64():
    model = nn.mlp(6, (5,), 2, dtype=np.float64)
    assert model.params.dtype == model.grads.dtype == np.float64
    out = model(np.ones((3, 6)))
    assert out.dtype == np.float64


def test_mixed_dtypes_need_an_explicit_dtype():
    with pytest.raises(ParameterError, match="layers have different dtypes \\['float32', 'float64'\\]; pass dtype="):
        nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2, dtype=np.float64))
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2, dtype=np.float64), dtype=np.float32)
    assert model[1].weight.dtype == np.float32


def test_train_eval_propagate():
    model = small_cnn()
    assert model.eval() is model
    assert all(not m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_layers_cannot_be_shared_between_models():
    layer = nn.Linear(3, 3)
    nn.Sequential(layer)
    with pytest.raises(ParameterError, match="layer 0 \\(Linear\\) is already part of a model"):
        nn.Sequential(layer)
    relu = nn.ReLU()
    with pytest.raises(ParameterError, match="layer 2 \\(ReLU\\) is already part of a model"):
        nn.Sequential(nn.Linear(2, 2), relu, relu)


def test_residual_names_and_gradient():
    block = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    model = nn.Sequential(nn.Linear(3, 4), nn.Residual(block), nn.Linear(4, 2))
    assert list(model.named_parameters()) == [
        "0.weight", "0.bias", "1.block.0.weight", "1.block.0.bias", "1.block.2.weight", "1.block.2.bias",
        "2.weight", "2.bias",
    ]  # fmt: skip
    assert np.shares_memory(block[0].weight, model.params)


def test_backward_without_input_grad_skips_leading_layers():
    model = nn.mlp(5, (4,), 3)
    out = model(np.ones((2, 5), np.float32))
    assert model.backward(np.ones_like(out), input_grad=False) is None
    with_dx = model.backward(np.ones_like(out))
    assert with_dx.shape == (2, 5) and with_dx.dtype == np.float32
