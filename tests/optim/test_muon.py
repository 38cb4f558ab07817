"""Muon equals ``torch.optim.Muon`` (torch 2.13) for the matrices and ``torch.optim.AdamW`` for the other
leaves (Keller Jordan's MuonWithAuxAdam) over torch's own test matrix for Muon (``optim_inputs_func_muon``)
and both ``adjust_lr_fn`` options, float64, 200 steps.

torch runs the Newton–Schulz iteration in bfloat16; descend runs it in the parameters' dtype. The
conformance tests therefore run torch's own code with its ``.bfloat16()`` cast made a float64 copy
(``rtol=1e-7``: they agree to ~4e-15), and one test runs the unmodified oracle, which agrees to ~6e-3.
"""

from __future__ import annotations

import numpy as np
import pytest

import descend as dc
from descend.errors import ParameterError
from tests.optim import _oracles as O

torch = pytest.importorskip("torch")

STEPS = 200
RTOL = 1e-7

# torch/testing/_internal/common_optimizers.py: optim_inputs_func_muon (the Tensor lr 0.001 as a float)
TORCH_MATRIX = [
    {},
    {"lr": 0.01},
    {"lr": 0.001},
    {"weight_decay": 0.2},
    {"momentum": 0.8},
    {"ns_steps": 6},
    {"ns_coefficients": (3.4, -4.7, 2.0)},
]
MORE = [
    {"lr": 0.01, "adjust_lr_fn": "original"},
    {"lr": 0.01, "adjust_lr_fn": "match_rms_adamw"},
    {"lr": 0.01, "nesterov": False, "momentum": 0.9},
    {"lr": 0.01, "eps": 1e-3, "weight_decay": 0.0},
]
AUX = {"lr": 3e-4, "betas": (0.9, 0.95), "eps": 1e-10, "weight_decay": 0.0}


def _id(kwargs):
    return ",".join(f"{k}={v}" for k, v in kwargs.items()) or "default"


class _MuonWithAuxAdam:
    """The oracle: torch.optim.Muon on the 2-D tensors, torch.optim.AdamW on the others."""

    def __init__(self, params, muon_kwargs, aux=AUX):
        mats = [p for p in params if p.ndim == 2]
        rest = [p for p in params if p.ndim != 2]
        self.opts = [torch.optim.Muon(mats, **muon_kwargs)]
        if rest:
            self.opts.append(torch.optim.AdamW(rest, foreach=False, **aux))

    def step(self):
        for opt in self.opts:
            opt.step()


@pytest.fixture
def float64_newton_schulz(monkeypatch):
    """torch.optim.Muon's iteration with its bfloat16 cast replaced by a copy (the rest of its code as it is)."""
    monkeypatch.setattr(torch.Tensor, "bfloat16", lambda self, *a, **k: self.clone())


@pytest.mark.parametrize("kwargs", TORCH_MATRIX + MORE, ids=_id)
def test_muon_matches_torch(kwargs, float64_newton_schulz):
    params0, grad_fn = O.mixed()
    ours = O.run_descend(dc.optim.muon(**kwargs), params0, grad_fn, STEPS)
    theirs = O.run_torch(lambda ps: _MuonWithAuxAdam(ps, kwargs), params0, grad_fn, STEPS)
    O.assert_matches(ours, theirs, params0, RTOL, what=_id(kwargs))


@pytest.mark.parametrize("kwargs", [{"lr": 0.01}, {"lr": 0.01, "adjust_lr_fn": "match_rms_adamw"}], ids=_id)
def test_muon_on_torch_tensors_through_descend_torch(kwargs, float64_newton_schulz):
    params0, grad_fn = O.mixed()
    ours = O.run_descend_torch(dc.optim.muon(**kwargs), params0, grad_fn, STEPS)
    theirs = O.run_torch(lambda ps: _MuonWithAuxAdam(ps, kwargs), params0, grad_fn, STEPS)
    O.assert_matches(ours, theirs, params0, RTOL, what="descend.torch")


@pytest.mark.slow  # torch's bfloat16 matmul on CPU: ~10 s
def test_muon_agrees_with_torchs_bfloat16_iteration_to_its_precision():
    params0, grad_fn = O.mixed()
    ours = O.run_descend(dc.optim.muon(lr=0.01), params0, grad_fn, STEPS)
    theirs = O.run_torch(lambda ps: _MuonWithAuxAdam(ps, {"lr": 0.01}), params0, grad_fn, STEPS)
    O.assert_matches(ours, theirs, params0, rtol=2e-2, atol=0.0, what="bfloat16 oracle")
    assert np.max(np.abs(ours["W"] - theirs["W"])) > 1e-9  # it is the bfloat16 oracle, not the float64 one


def _conv_problem():
    rng = np.random.default_rng(3)
    params0 = {"K": rng.normal(size=(3, 2, 2, 2)) + 2.0, "b": rng.normal(size=3)}

    def grad(p):
        return {"K": 0.5 * (p["K"] - 1.0) + 0.3 * np.sin(2.0 * p["K"]), "b": p["b"] - 0.5}

    return params0, grad


def test_muon_orthogonalises_a_convolution_kernel_as_a_flattened_matrix(float64_newton_schulz):
    """descend flattens (out, in, kh, kw) to (out, in·kh·kw); torch.optim.Muon, which takes 2-D tensors
    only, is run on that matrix."""
    params0, grad_fn = _conv_problem()
    kwargs = {"lr": 0.02, "weight_decay": 0.05}
    ours = O.run_descend(dc.optim.muon(**kwargs), params0, grad_fn, STEPS)
    flat0 = {"K": params0["K"].reshape(3, -1), "b": params0["b"]}

    def flat_grad(p):
        g = grad_fn({"K": p["K"].reshape(3, 2, 2, 2), "b": p["b"]})
        return {"K": g["K"].reshape(3, -1), "b": g["b"]}

    theirs = O.run_torch(lambda ps: _MuonWithAuxAdam(ps, kwargs), flat0, flat_grad, STEPS)
    theirs["K"] = theirs["K"].reshape(3, 2, 2, 2)
    O.assert_matches(ours, theirs, params0, RTOL, what="conv kernel")


def test_newton_schulz_approximately_orthogonalises():
    g = np.random.default_rng(0).normal(size=(6, 4))
    o = dc.optim.newton_schulz(g)
    s = np.linalg.svd(o, compute_uv=False)
    assert np.all((s > 0.6) & (s < 1.3)), s
    u, _, vt = np.linalg.svd(g, full_matrices=False)
    assert np.sum(o * (u @ vt)) / (np.linalg.norm(o) * np.linalg.norm(u @ vt)) > 0.97


def test_muon_routes_vectors_to_adamw_with_its_own_hyperparameters():
    p = {"W": np.ones((2, 2)), "b": np.ones(2)}
    tx = dc.optim.muon(lr=0.5, adamw_lr=0.1, weight_decay=0.0)
    u, _ = tx.update({"W": np.array([[1.0, 0.0], [0.0, 2.0]]), "b": np.array([3.0, -4.0])}, tx.init(p), p)
    np.testing.assert_allclose(u["b"], [-0.1, 0.1], rtol=1e-6)  # Adam's first step: −η·sign(g)
    assert not np.allclose(np.abs(u["W"]), 0.1)


def test_muon_rejects_bad_arguments_with_one_message():
    with pytest.raises(ParameterError, match="muon: adjust_lr_fn must be one of None, 'original', 'match_rms_adamw'"):
        dc.optim.muon(adjust_lr_fn="arbitrary")
    with pytest.raises(ParameterError, match=r"muon: ns_steps must be an integer in \[0, 99\], got 100"):
        dc.optim.muon(ns_steps=100)
    with pytest.raises(ParameterError, match=r"muon: ns_coefficients must be three real numbers \(a, b, c\)"):
        dc.optim.muon(ns_coefficients=(1.0, 2.0))
    tx = dc.optim.scale_by_muon()
    with pytest.raises(ParameterError, match=r"scale_by_muon: .* 2 or more axes, got an array of shape \(3,\)"):
        tx.update(np.ones(3), tx.init(np.ones(3)))
