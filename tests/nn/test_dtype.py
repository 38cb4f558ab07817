"""float32 end to end: every layer's output, input gradient and parameter gradients stay float32."""

from __future__ import annotations

import numpy as np
import pytest

from descend import nn
from tests.nn.cases import CASES, IDS


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_in_float32_out(case):
    layer = case["ours"]()
    layer.train(case["train"])
    assert layer.params.dtype == np.float32 and layer.grads.dtype == np.float32
    x = np.random.default_rng(0).standard_normal(case["shape"]).astype(np.float32)
    y = layer.forward(x)
    assert y.dtype == np.float32
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32
    for name, g in layer.named_grads().items():
        assert g.dtype == np.float32, name
    for name, v in layer.state_dict().items():
        assert v.dtype in (np.float32, np.int64), name


@pytest.mark.parametrize(
    "preset",
    [
        lambda: nn.mlp(20, (16, 8), 4, dropout=0.2, batchnorm=True),
        lambda: nn.cnn1d(length=12, channels=(4, 8), batchnorm=True, dropout=0.1),
        lambda: nn.cnn2d(image_size=8, channels=(2, 4), activation="gelu"),
    ],
    ids=["mlp", "cnn1d", "cnn2d"],
)
def test_presets_train_step_in_float32(preset):
    model = preset()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 20) if model[0].__class__ is nn.Flatten else (4, *model[0].shape)).astype(np.float32)
    logits = model(x)
    loss, d = nn.cross_entropy(logits, rng.integers(0, logits.shape[1], 4))
    assert logits.dtype == d.dtype == np.float32 and isinstance(loss, float)
    assert model.backward(d).dtype == np.float32
    assert nn.l2_penalty(model, 1e-3) > 0 and model.grads.dtype == np.float32


def test_float64_inputs_are_cast_to_the_layer_dtype():
    layer = nn.Linear(3, 2)
    assert layer(np.ones((1, 3), np.float64)).dtype == np.float32
    assert nn.Conv1d(1, 2, 3)(np.ones((1, 1, 5))).dtype == np.float32
    assert nn.Linear(3, 2)(np.ones((1, 3), np.uint8)).dtype == np.float32
