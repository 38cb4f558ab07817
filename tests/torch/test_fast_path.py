"""descend.torch's fast path (descend/torch/_fast.py) against the reference chain it stands in for.

Every run here steps two parameter groups with their own hyperparameters through 12 steps whose learning rate
changes every step (as a torch scheduler changes ``param_groups[i]["lr"]``), on fixed gradients, so the same
run can be repeated by the reference chain on torch tensors (``descend.config.fused = False``) and by the chain
on NumPy arrays. What each backend promises:

* ``foreach``: bitwise the reference chain on CPU (its ``_foreach_*`` ops are the chain's ops, in its order);
* ``numba``: bitwise the chain on NumPy arrays (descend's fused kernels); against the chain on torch tensors
  bitwise for SGD and in float64, and for float32 Adam to rounding only, because torch's vectorized float32 CPU
  ``sqrt`` is not correctly rounded (one ulp off for about 1 element in 6 on AVX-512) where NumPy's and the
  kernels' are;
* ``fused``: torch's fused kernels with descend's hyperparameters: the same formulas in torch's order of
  operations, equal to rounding.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

import descend as dc
import descend.torch as dtorch
from descend.torch import _fast

STEPS = 12
SHAPES = [(5, 3), (3,), (4,), (2, 1, 3)]
LRS = [0.05 * 0.8**t for t in range(STEPS)]

# (class, keyword arguments, group 1's own hyperparameters)
CONFIGS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "adam": ("Adam", {}, {"betas": (0.8, 0.99)}),
    "adam-l2-maximize": ("Adam", {"weight_decay": 0.1, "maximize": True}, {"weight_decay": 0.0, "eps": 1e-6}),
    "adam-decoupled": ("Adam", {"weight_decay": 0.1, "decoupled_weight_decay": True}, {"weight_decay": 0.3}),
    "adam-no-bias-correction": ("Adam", {"bias_correction": False}, {}),
    "adamw": ("AdamW", {}, {"weight_decay": 0.0}),
    "sgd": ("SGD", {}, {"weight_decay": 0.05}),
    "sgd-momentum": ("SGD", {"momentum": 0.9, "weight_decay": 0.01}, {"momentum": 0.5, "dampening": 0.3}),
    "sgd-nesterov-maximize": ("SGD", {"momentum": 0.9, "nesterov": True, "maximize": True}, {"weight_decay": 0.1}),
}
FACTORIES = {"Adam": "adam", "AdamW": "adamw", "SGD": "sgd"}


def _params(dtype: torch.dtype, device: str = "cpu") -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device) for s in SHAPES]


def _grads(t: int, dtype: torch.dtype, device: str = "cpu") -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + t)
    out = [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device) for s in SHAPES]
    out[1][0] = 0.0  # a zero gradient: √v = 0 in Adam's denominator at first
    return out


def _optimizer(name: str, dtype: torch.dtype, device: str = "cpu") -> tuple[torch.optim.Optimizer, list]:
    cls, kwargs, overrides = CONFIGS[name]
    params = [p.requires_grad_() for p in _params(dtype, device)]
    groups = [{"params": params[:2]}, {"params": params[2:], **overrides}]
    return getattr(dtorch, cls)(groups, **kwargs), params


def _step(opt: torch.optim.Optimizer, params: list[torch.Tensor], t: int) -> None:
    for i, group in enumerate(opt.param_groups):
        group["lr"] = LRS[t] * (1 + i)  # what an lr_scheduler does
    for p, g in zip(params, _grads(t, params[0].dtype, params[0].device.type), strict=True):
        p.grad = g
    opt.step()


def _run(name: str, dtype: torch.dtype, backend: str | None, device: str = "cpu", steps: int = STEPS):
    """``backend``: one of _fast.BACKENDS (forced), "auto" (the default choice) or None (the reference chain)."""
    opt, params = _optimizer(name, dtype, device)
    before = _fast.calls.total()
    saved = _fast.FORCE
    _fast.FORCE = backend if backend in _fast.BACKENDS else None
    try:
        with dc.config.using(fused=backend is not None):
            for t in range(steps):
                _step(opt, params, t)
    finally:
        _fast.FORCE = saved
    taken = _fast.calls.total() - before
    assert taken == (0 if backend is None else 2 * steps), taken  # both groups, every step
    return opt, params


def _numpy_chain(name: str, dtype: np.dtype) -> tuple[list[np.ndarray], list[Any]]:
    """The same run by the descend chains on NumPy arrays (the reference ``update``, not the numba kernels)."""
    cls, kwargs, overrides = CONFIGS[name]
    params = [p.numpy().astype(dtype) for p in _params(torch.float64)]
    groups = [params[:2], params[2:]]
    states = []
    for i, group in enumerate(groups):
        tx = getattr(dc.optim, FACTORIES[cls])(
            lr=lambda count, i=i: LRS[count] * (1 + i), **{**kwargs, **(overrides if i else {})}
        )
        update = getattr(tx.update, "reference", tx.update)
        state = tx.init(group)
        for t in range(STEPS):
            grads = [g.numpy().astype(dtype) for g in _grads(t, torch.float64)]
            grads = grads[:2] if i == 0 else grads[2:]
            updates, state = update(grads, state, group)
            group = [p + u for p, u in zip(group, updates, strict=True)]
        groups[i] = group
        states.append(state)
    return groups[0] + groups[1], states


def _same_state(a: torch.optim.Optimizer, pa: list, b: torch.optim.Optimizer, pb: list) -> None:
    """Both optimizers hold the same keys, dtypes and values (bit for bit) for every parameter."""
    for x, y in zip(pa, pb, strict=True):
        sa, sb = a.state[x], b.state[y]
        assert list(sa) == list(sb)
        for key in sb:
            assert sa[key].dtype == sb[key].dtype and sa[key].device == sb[key].device, key
            assert torch.equal(sa[key], sb[key]), key


def _equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype
        assert torch.equal(x, y), (x - y).abs().max()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_foreach_is_bitwise_the_reference_chain(name: str, dtype: torch.dtype) -> None:
    fast, fp = _run(name, dtype, "foreach")
    ref, rp = _run(name, dtype, None)
    _equal(fp, rp)
    _same_state(fast, fp, ref, rp)
    assert float(fast.state[fp[0]]["step"]) == STEPS and fast.state[fp[0]]["step"].dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_numba_is_bitwise_the_numpy_chain_and_close_to_the_torch_chain(name: str, dtype: torch.dtype) -> None:
    fast, fp = _run(name, dtype, "numba")
    np_params, np_states = _numpy_chain(name, np.dtype("float32" if dtype == torch.float32 else "float64"))
    for p, q in zip(fp, np_params, strict=True):
        np.testing.assert_array_equal(p.detach().numpy(), q)
    moments = {"exp_avg", "exp_avg_sq", "momentum_buffer"}
    for i, p in enumerate(fp):
        links = np_states[0 if i < 2 else 1]
        j = i if i < 2 else i - 2
        for key in moments & set(fast.state[p]):
            (ours,) = [getattr(s, key)[j] for s in links if key in getattr(s, "_fields", ())]
            np.testing.assert_array_equal(fast.state[p][key].numpy(), ours)
    ref, rp = _run(name, dtype, None)
    if CONFIGS[name][0] == "SGD" or dtype == torch.float64:
        _equal(fp, rp)
        _same_state(fast, fp, ref, rp)
    else:  # torch's float32 CPU sqrt is off by an ulp here and there (see the module docstring): 3.8e-7 seen
        for x, y in zip(fp, rp, strict=True):
            torch.testing.assert_close(x, y, rtol=2e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_torchs_fused_kernels_match_the_reference_chain_to_rounding(name: str, dtype: torch.dtype) -> None:
    fast, fp = _run(name, dtype, "fused")
    ref, rp = _run(name, dtype, None)
    # the same formulas in torch's order of operations: a few rounding errors per step, carried on (float32:
    # 1.3e-6 relative at most over these runs, float64: 1.4e-15)
    rtol = 1e-5 if dtype == torch.float32 else 1e-13
    for x, y in zip(fp, rp, strict=True):
        torch.testing.assert_close(x, y, rtol=rtol, atol=rtol * 1e-2)
    for x, y in zip(fp, rp, strict=True):
        assert list(fast.state[x]) == list(ref.state[y])
        for key, value in ref.state[y].items():
            torch.testing.assert_close(fast.state[x][key], value, rtol=rtol * 10, atol=rtol * 1e-2)


def test_a_tensor_too_big_for_the_group_kernels_takes_the_per_tensor_kernels() -> None:
    """2^21 elements (descend.optim._kernels.PARALLEL_MIN): each tensor through dc.optim.step's own kernels."""
    gen = torch.Generator().manual_seed(5)
    shapes = [(1 << 21,), (3, 4)]
    start = [torch.randn(s, generator=gen) for s in shapes]
    grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(3)]
    for name, cls, kwargs in (("adamw", dtorch.AdamW, {}), ("sgd", dtorch.SGD, {"momentum": 0.9})):
        params = [p.clone().requires_grad_() for p in start]
        opt = cls(params, lr=0.01, **kwargs)
        tx = getattr(dc.optim, name)(lr=0.01, **kwargs)
        ours = [p.numpy().copy() for p in start]
        state = tx.init(ours)
        _fast.calls.clear()
        for g in grads:
            for p, gi in zip(params, g, strict=True):
                p.grad = gi
            with dc.config.using(fused=True):
                opt.step()
            updates, state = tx.update.reference([gi.numpy() for gi in g], state, ours)
            ours = [a + u for a, u in zip(ours, updates, strict=True)]
        assert dict(_fast.calls) == {"numba": 3}
        for p, q in zip(params, ours, strict=True):
            np.testing.assert_array_equal(p.detach().numpy(), q)


def test_the_default_backend_is_chosen_per_device_and_dtype() -> None:
    for dtype, backend in ((torch.float32, "numba"), (torch.float64, "numba"), (torch.bfloat16, "foreach")):
        _fast.calls.clear()
        _run("adamw", dtype, "auto")
        assert dict(_fast.calls) == {backend: 2 * STEPS}, dtype
    # a strided parameter: numba declines (before writing anything), foreach steps it, bitwise the reference
    runs = []
    for backend in ("auto", None):
        w = torch.randn(4, 6, generator=torch.Generator().manual_seed(0)).t().clone().requires_grad_()
        assert not w.is_contiguous()  # a leaf with transposed strides
        opt = dtorch.SGD([w], lr=0.1, momentum=0.9)
        _fast.calls.clear()
        with dc.config.using(fused=backend is not None):
            for t in range(4):
                w.grad = torch.randn(6, 4, generator=torch.Generator().manual_seed(t))
                opt.step()
        assert dict(_fast.calls) == ({"foreach": 4} if backend else {})
        runs.append(w)
    _equal(runs[0:1], runs[1:2])


def test_a_group_of_several_dtypes_is_stepped_per_dtype() -> None:
    dtypes = [torch.float32, torch.bfloat16, torch.float64, torch.float32]
    runs = []
    for fused in (True, False):
        params = [p.to(d).requires_grad_() for p, d in zip(_params(torch.float64), dtypes, strict=True)]
        opt = dtorch.SGD(params, lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True)
        _fast.calls.clear()
        with dc.config.using(fused=fused):
            for t in range(4):
                for p, g in zip(params, _grads(t, torch.float64), strict=True):
                    p.grad = g.to(p.dtype)
                opt.step()
        runs.append((opt, params, dict(_fast.calls)))
    (fast, fp, calls), (ref, rp, _) = runs
    assert calls == {"numba": 8, "foreach": 4}  # float32 and float64 by the kernels, bfloat16 by foreach
    _equal(fp, rp)
    _same_state(fast, fp, ref, rp)


def test_what_the_fast_path_does_not_cover_runs_the_reference_chain() -> None:
    params = _params(torch.float32)
    cases = [
        dtorch.Adam([p.clone().requires_grad_() for p in params], lr=0.01, amsgrad=True),
        dtorch.Lion([p.clone().requires_grad_() for p in params], lr=0.01),
        dtorch.Optimizer([p.clone().requires_grad_() for p in params], dc.optim.adam(0.01)),
        dtorch.SGD([{"params": [p.clone().requires_grad_() for p in params], "tx": dc.optim.sgd(0.1)}], lr=0.1),
    ]
    _fast.calls.clear()
    for opt in cases:
        ps = opt.param_groups[0]["params"]
        for t in range(3):
            for p, g in zip(ps, _grads(t, torch.float32), strict=True):
                p.grad = g
            opt.step()
        assert opt.state[ps[0]], type(opt).__name__
    assert _fast.calls.total() == 0
    _run("adam", torch.float32, None)  # descend.config.fused = False: asserts that the fast path took no step


def test_parameters_at_different_steps_run_the_reference_chain() -> None:
    runs = []
    for fused in (True, False):
        params = [p.requires_grad_() for p in _params(torch.float32)]
        opt = dtorch.Adam(params, lr=0.01)
        _fast.calls.clear()
        with dc.config.using(fused=fused):
            for t in range(6):
                used = params if t >= 2 else params[:3]  # the last parameter starts late: its own step count
                for p, g in zip(used, _grads(t, torch.float32), strict=False):
                    p.grad = g
                opt.step()
        runs.append((params, opt, dict(_fast.calls)))
    (fast, fast_opt, calls), (ref, ref_opt, _) = runs
    assert [float(fast_opt.state[p]["step"]) for p in fast] == [6.0, 6.0, 6.0, 4.0]
    assert calls == {"numba": 2}  # the first two steps; then the steps differ and the chain runs
    _equal(fast, ref)
    _same_state(fast_opt, fast, ref_opt, ref)


def test_a_state_replaced_between_steps_is_read_again() -> None:
    runs = []
    for fused in (True, False):
        opt, params = _optimizer("sgd-momentum", torch.float32)
        with dc.config.using(fused=fused):
            for t in range(3):
                _step(opt, params, t)
            early = copy.deepcopy(opt.state_dict())
            _step(opt, params, 3)
            opt.state[params[0]]["momentum_buffer"] = torch.ones_like(params[0])  # by hand
            _step(opt, params, 4)
            opt.state[params[1]]["step"] = torch.tensor(1.0)  # a step changed by hand: the chain runs for group 0
            _step(opt, params, 5)
            opt.load_state_dict(early)  # back to step 3 for every parameter
            for t in range(3, 6):
                _step(opt, params, t)
        runs.append((opt, params))
    (fast, fp), (ref, rp) = runs
    _equal(fp, rp)
    _same_state(fast, fp, ref, rp)


def test_state_dicts_go_both_ways_with_torch() -> None:
    # descend (fast) -> torch: torch continues from exactly what the reference chain would have saved
    continued = []
    for fused in (True, False):
        opt, params = _optimizer("sgd-momentum", torch.float32)
        with dc.config.using(fused=fused):
            for t in range(4):
                _step(opt, params, t)
        saved = copy.deepcopy(opt.state_dict())
        theirs = [p.detach().clone().requires_grad_() for p in params]
        topt = torch.optim.SGD([{"params": theirs[:2]}, {"params": theirs[2:]}], lr=0.1, momentum=0.9)
        topt.load_state_dict(saved)
        for t in range(4, 8):
            _step(topt, theirs, t)
        continued.append(theirs)
    _equal(*continued)
    # torch -> descend (fast): continues as the reference chain does from the same torch state
    theirs = [p.requires_grad_() for p in _params(torch.float32)]
    topt = torch.optim.Adam([{"params": theirs[:2]}, {"params": theirs[2:]}], lr=0.01, foreach=False)
    for t in range(3):
        _step(topt, theirs, t)
    saved = copy.deepcopy(topt.state_dict())
    runs = []
    for backend in ("foreach", None):
        opt, params = _optimizer("adam", torch.float32)
        with torch.no_grad():
            for p, q in zip(params, theirs, strict=True):
                p.copy_(q)
        opt.load_state_dict(copy.deepcopy(saved))
        saved_fast = _fast.FORCE
        _fast.FORCE = backend
        try:
            with dc.config.using(fused=backend is not None):
                for t in range(3, 7):
                    _step(opt, params, t)
        finally:
            _fast.FORCE = saved_fast
        runs.append((opt, params))
    (fast, fp), (ref, rp) = runs
    _equal(fp, rp)
    _same_state(fast, fp, ref, rp)
    assert set(fast.state[fp[0]]) == {"step", "exp_avg", "exp_avg_sq"} and float(fast.state[fp[0]]["step"]) == 7


def test_grad_scaler_skips_a_step_and_the_fast_path_leaves_everything_alone() -> None:
    runs = []
    for backend in ("foreach", None):
        opt, params = _optimizer("adam-l2-maximize", torch.float32)
        scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
        saved_fast = _fast.FORCE
        _fast.FORCE = backend
        _fast.calls.clear()
        try:
            with dc.config.using(fused=backend is not None):
                for t in range(5):
                    opt.zero_grad()
                    loss = sum((p * g).sum() for p, g in zip(params, _grads(t, torch.float32), strict=True))
                    scaler.scale(loss).backward()  # gradients g times the scale (a power of 2: exact)
                    if t == 2:
                        params[3].grad[0, 0, 1] = float("inf")
                        before = [p.detach().clone() for p in params]
                        state = copy.deepcopy(opt.state_dict()["state"])
                    scaler.step(opt)
                    scaler.update()
                    if t == 2:
                        _equal([p.detach() for p in params], before)
                        now = opt.state_dict()["state"]
                        for i in state:
                            assert list(now[i]) == list(state[i])
                            assert all(torch.equal(now[i][k], v) for k, v in state[i].items())
        finally:
            _fast.FORCE = saved_fast
        assert _fast.calls.total() == (8 if backend else 0)  # 4 steps taken, 2 groups
        runs.append((opt, params))
    (fast, fp), (ref, rp) = runs
    _equal(fp, rp)
    _same_state(fast, fp, ref, rp)


def test_the_step_benchmark_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import torch_step

    monkeypatch.setattr(torch_step, "N", 20_000)
    with dc.config.using(fused=True):
        row = torch_step.measure("adam", "100 tensors", "cpu", threads=1, rounds=2, k=2, reference=True)
    assert row["n"] == 20_000 and row["descend_path"] == "numba"
    assert row["torch_ms"] == row["torch_default_ms"] > 0 and row["ratio"] > 0 and row["reference_ms"] > 0


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("name", ["adam", "adamw", "adam-no-bias-correction", "sgd", "sgd-momentum"])
def test_cuda_fast_path_matches_the_reference_chain(name: str) -> None:
    _fast.calls.clear()
    fast, fp = _run(name, torch.float32, "auto", device="cuda")
    expected = "foreach" if name == "adam-no-bias-correction" else "fused"
    assert dict(_fast.calls) == {expected: 2 * STEPS}
    ref, rp = _run(name, torch.float32, None, device="cuda")
    _, qp = _run(name, torch.float32, "foreach", device="cuda")
    for x, y, z in zip(fp, rp, qp, strict=True):
        assert x.device.type == "cuda" and list(fast.state[x]) == list(ref.state[y])
        assert all(v.device == ref.state[y][k].device for k, v in fast.state[x].items())
        torch.testing.assert_close(x, y, rtol=2e-5, atol=2e-7)  # torch's kernels, FMA on the GPU
        torch.testing.assert_close(z, y, rtol=2e-5, atol=2e-7)  # the chain's ops; x/scalar is x·(1/scalar) there


def test_the_numpy_kernels_wrapper_gives_up_on_tensors_before_splitting_the_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A chain stepped on tensors (a group with its own tx) does not pay for descend.optim.fused's tree checks."""
    from descend.optim import fused

    def refuse(*args: Any) -> None:
        raise AssertionError("fused split a state of tensors")

    monkeypatch.setattr(fused, "_split_state", refuse)
    params = _params(torch.float32)
    tx = dc.optim.adam(0.01)
    updates, state = tx.update(_grads(0, torch.float32), tx.init(params), params)
    assert dc.optim.get_step(state) == 1 and all(isinstance(u, torch.Tensor) for u in updates)
