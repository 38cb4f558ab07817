"""Every layer against torch.nn: forward, input and parameter gradients, buffers (float64 tight, float32 loose)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.nn.cases import CASES, IDS
from tests.nn.helpers import compare_with_torch


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_layer_matches_torch(case, dtype):
    compare_with_torch(
        case["ours"], case["theirs"], case["shape"], dtype=dtype, train=case["train"], x_scale=case.get("x_scale", 1.0)
    )
