"""descend.torch optimizers step the parameters of a torch.compile'd model (compiling takes ~15 s: slow)."""

from __future__ import annotations

import pytest
import torch

import descend.torch as dtorch


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script:DeprecationWarning")  # torch.compile's own imports
def test_adamw_trains_a_compiled_model_as_torch_does() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(32, 6), torch.randn(32, 2)
    base = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    results = []
    for make in (dtorch.AdamW, lambda ps, **kw: torch.optim.AdamW(ps, foreach=False, **kw)):
        model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
        model.load_state_dict(base.state_dict())
        compiled = torch.compile(model)
        opt = make(compiled.parameters(), lr=0.01)
        for _ in range(5):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.mse_loss(compiled(x), y).backward()
            opt.step()
        results.append([p.detach() for p in model.parameters()])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not all(torch.equal(a, b) for a, b in zip(results[0], base.parameters(), strict=True))
