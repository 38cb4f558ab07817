"""One registry of the named optimizers: what every part of descend reads to know an optimizer by name.

Each entry says which factory of :mod:`descend.optim` builds the optimizer and with which fixed keyword
arguments, its default learning-rate grid for ``descend compare``, its colour in every figure, whether it
runs on the 2-D test functions of ``descend landscape``, what it is proven against (the *oracle*) and what it
is, in one line. The older tables are views built from it, so adding an optimizer touches this file only::

    descend.train.experiment.OPTIMIZERS     name -> (factory, fixed kwargs)   (descend train, compare, lr-find)
    descend.lab.compare.DEFAULT_GRIDS       name -> default lr grid
    descend.lab.report.COLORS               name -> colour
    descend.lab.landscape.RECIPES           name -> (factory, fixed kwargs), 2-D-capable ones only
    descend.lab.benchmarks.SUITE            rows built with OptimizerSpec.of(name, ...)

**"momentum" means one thing.** The configuration name ``"momentum"`` is torch's ``SGD(momentum=0.9)``
(b ← μb + g, θ ← θ − ηb) everywhere: in ``descend train``, ``compare``, ``landscape`` and ``demo``. The seed
documents' heavy-ball forms, with η inside the velocity (:func:`descend.optim.momentum`), have their own
names: ``"heavy-ball-seed000"`` (v ← βv − αg, θ ← θ + v; Keras) and ``"heavy-ball-seed001"`` (v ← γv + ηg,
θ ← θ − v; Sutskever et al. 2013). At a constant learning rate all three follow the same trajectory; under a
schedule they differ (torch applies the current η to the whole buffer, heavy ball keeps each gradient's η).

>>> from descend.optim import registry
>>> registry.get("nesterov").make(0.01)          # sgd(lr=0.01, momentum=0.9, nesterov=True)
>>> [info.name for info in registry.REGISTRY.values() if info.landscape][:3]
['sgd', 'momentum', 'nesterov']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from descend.errors import ParameterError

#: Log-spaced grids (half decades) centred on each family's usual good value for a small MLP.
SGD_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
MOMENTUM_GRID = (1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3)
ADAPTIVE_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03)


@dataclass(frozen=True)
class OptimizerInfo:
    """One named optimizer."""

    name: str  # the configuration name: "nesterov"
    factory: str  # the function of descend.optim that builds it: "sgd"
    fixed: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments the name fixes
    grid: tuple[float, ...] = ADAPTIVE_GRID  # descend compare's default learning rates
    color: str = "#333333"  # the same in every figure
    landscape: bool = True  # a plain GradientTransformation over one vector: runs on the 2-D test functions
    oracle: str = ""  # what its updates are checked against
    description: str = ""  # one line

    def __post_init__(self) -> None:
        object.__setattr__(self, "fixed", MappingProxyType(dict(self.fixed)))

    def kwargs(self) -> dict[str, Any]:
        """The fixed keyword arguments, as a new dict."""
        return dict(self.fixed)

    def make(self, lr: Any, **kwargs: Any):
        """The optimizer at learning rate ``lr`` (a float or a schedule); ``kwargs`` override the fixed ones."""
        from descend import optim

        return getattr(optim, self.factory)(lr=lr, **{**self.fixed, **kwargs})


def _entries(*infos: OptimizerInfo) -> dict[str, OptimizerInfo]:
    out: dict[str, OptimizerInfo] = {}
    for info in infos:
        if info.name in out:
            raise AssertionError(f"registry: {info.name} twice")  # pragma: no cover - a typo here
        out[info.name] = info
    return out


_PO = "pytorch_optimizer 4.1.0"

#: Every named optimizer, in the order the command-line help lists them.
REGISTRY: Mapping[str, OptimizerInfo] = MappingProxyType(
    _entries(
        OptimizerInfo("sgd", "sgd", {}, SGD_GRID, "#4c72b0", True, "torch.optim.SGD",
                      "plain stochastic gradient descent"),
        OptimizerInfo("momentum", "sgd", {"momentum": 0.9}, MOMENTUM_GRID, "#dd8452", True,
                      "torch.optim.SGD(momentum=0.9)", "SGD with momentum 0.9, torch's (b ← 0.9b + g, θ ← θ − ηb)"),
        OptimizerInfo("nesterov", "sgd", {"momentum": 0.9, "nesterov": True}, MOMENTUM_GRID, "#55a868", True,
                      "torch.optim.SGD(momentum=0.9, nesterov=True)", "SGD with Nesterov momentum 0.9"),
        OptimizerInfo("adagrad", "adagrad", {}, (3e-3, 0.01, 0.03, 0.1, 0.3, 1.0), "#c44e52", True,
                      "torch.optim.Adagrad", "per-coordinate steps scaled by the root of the summed squared gradients"),
        OptimizerInfo("rmsprop", "rmsprop", {}, ADAPTIVE_GRID, "#8172b3", True, "torch.optim.RMSprop",
                      "steps scaled by a moving root mean square of the gradients"),
        OptimizerInfo("adadelta", "adadelta", {}, (0.1, 0.3, 1.0, 3.0, 10.0), "#8c8c8c", True, "torch.optim.Adadelta",
                      "RMSprop with the step's own moving RMS in the numerator"),
        OptimizerInfo("adam", "adam", {}, ADAPTIVE_GRID, "#937860", True, "torch.optim.Adam",
                      "bias-corrected moving first and second moments"),
        OptimizerInfo("adamw", "adamw", {}, ADAPTIVE_GRID, "#da8bc3", True, "torch.optim.AdamW",
                      "Adam with decoupled weight decay (0.01)"),
        OptimizerInfo("adamax", "adamax", {}, (3e-4, 1e-3, 3e-3, 0.01, 0.03), "#ccb974", True, "torch.optim.Adamax",
                      "Adam with an infinity-norm second moment"),
        OptimizerInfo("nadam", "nadam", {}, ADAPTIVE_GRID, "#64b5cd", True, "torch.optim.NAdam",
                      "Adam with Nesterov momentum"),
        OptimizerInfo("radam", "radam", {}, ADAPTIVE_GRID, "#2f4b7c", True, "torch.optim.RAdam",
                      "Adam with a rectified (warm-up-free) adaptive step"),
        OptimizerInfo("asgd", "asgd", {}, SGD_GRID, "#a05195", True, "torch.optim.ASGD",
                      "averaged SGD (the average is read separately)"),
        OptimizerInfo("rprop", "rprop", {}, (3e-5, 1e-4, 3e-4, 1e-3, 3e-3), "#f95d6a", True, "torch.optim.Rprop",
                      "sign-based steps whose sizes grow and shrink per coordinate"),
        OptimizerInfo("adafactor", "adafactor", {}, (1e-3, 3e-3, 0.01, 0.03, 0.1), "#3d9970", True,
                      "torch.optim.Adafactor", "factored second moments (row and column averages of matrices)"),
        OptimizerInfo("lion", "lion", {}, (1e-5, 3e-5, 1e-4, 3e-4, 1e-3), "#ff7c43", True,
                      "hand-computed oracle (Chen et al. 2023)", "sign of an interpolated momentum"),
        OptimizerInfo("lamb", "lamb", {}, (1e-3, 3e-3, 0.01, 0.03, 0.1), "#7f3c8d", True, f"{_PO} Lamb",
                      "Adam with a trust ratio per layer"),
        OptimizerInfo("lars", "lars", {}, MOMENTUM_GRID, "#11a579", True, f"{_PO} LARS",
                      "SGD with momentum and a trust ratio per matrix"),
        OptimizerInfo("adopt", "adopt", {}, ADAPTIVE_GRID, "#3969ac", True, f"{_PO} ADOPT",
                      "Adam normalizing by the previous second moment (converges for any β₂)"),
        OptimizerInfo("ademamix", "ademamix", {}, ADAPTIVE_GRID, "#e68310", True, f"{_PO} AdEMAMix",
                      "Adam plus a slow gradient average"),
        OptimizerInfo("schedule-free-sgd", "schedule_free_sgd", {}, SGD_GRID, "#80ba5a", True,
                      "schedulefree 1.4.1 SGDScheduleFreeReference", "schedule-free SGD (evaluated at its average)"),
        OptimizerInfo("schedule-free-adamw", "schedule_free_adamw", {}, ADAPTIVE_GRID, "#008695", True,
                      "schedulefree 1.4.1 AdamWScheduleFreeReference", "schedule-free AdamW (evaluated at its mean)"),
        OptimizerInfo("muon", "muon", {}, (3e-3, 0.01, 0.02, 0.05, 0.1), "#cf1c90", False,
                      "torch.optim.Muon (+ AdamW for non-matrices)",
                      "Newton–Schulz-orthogonalized momentum for matrices, AdamW for the rest"),
        OptimizerInfo("prodigy", "prodigy", {}, (0.1, 0.3, 1.0, 3.0), "#f2b701", True, f"{_PO} Prodigy",
                      "learning-rate-free Adam (estimates the step size; lr 1 is its default)"),
        OptimizerInfo("soap", "soap", {}, ADAPTIVE_GRID, "#4b4b8f", True, f"{_PO} SOAP",
                      "Adam in Shampoo's eigenbasis"),
        OptimizerInfo("sam", "sam_sgd", {}, MOMENTUM_GRID, "#a5aa99", False, f"{_PO} SAM",
                      "sharpness-aware minimization around SGD (two gradients per step)"),
        OptimizerInfo("asam", "sam_sgd", {"adaptive": True, "rho": 0.5}, MOMENTUM_GRID, "#6f4e7c", False,
                      f"{_PO} SAM(adaptive=True)", "adaptive SAM (scale-invariant perturbation, rho 0.5)"),
        OptimizerInfo("lookahead-adam", "lookahead_adam", {}, ADAPTIVE_GRID, "#5e3c99", True,
                      f"{_PO} Lookahead(torch.optim.Adam)", "Adam's fast weights pulled every 5 steps to slow ones"),
        OptimizerInfo("lookahead-sgd", "lookahead_sgd", {}, MOMENTUM_GRID, "#b15928", True,
                      f"{_PO} Lookahead(torch.optim.SGD)", "momentum SGD's fast weights pulled to slow ones"),
        OptimizerInfo("heavy-ball-seed000", "momentum", {"form": "seed000"}, MOMENTUM_GRID, "#b35806", True,
                      "torch.optim.SGD(momentum=0.9) at a constant lr; descend.torch.Momentum",
                      "seed 000's heavy ball, η inside the velocity: v ← βv − αg, θ ← θ + v (Keras)"),
        OptimizerInfo("heavy-ball-seed001", "momentum", {"form": "seed001"}, MOMENTUM_GRID, "#542788", True,
                      "torch.optim.SGD(momentum=0.9) at a constant lr; descend.torch.Momentum",
                      "seed 001's heavy ball: v ← γv + ηg, θ ← θ − v (Sutskever et al. 2013)"),
        OptimizerInfo("lbfgs", "lbfgs", {"line_search_fn": "strong_wolfe"}, (0.1, 0.3, 1.0, 3.0), "#1b9e77", False,
                      "torch.optim.LBFGS(line_search_fn='strong_wolfe')",
                      "L-BFGS with a strong-Wolfe line search (full batch only: --batch-size full)"),
    )
)  # fmt: skip


def names() -> tuple[str, ...]:
    """Every registered name, in order."""
    return tuple(REGISTRY)


def get(name: str) -> OptimizerInfo:
    """The entry of ``name``; an unknown name lists the valid ones."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ParameterError(f"unknown optimizer {name!r}; valid optimizers: {', '.join(REGISTRY)}") from None


def factories() -> dict[str, tuple[str, dict[str, Any]]]:
    """name -> (factory name in descend.optim, fixed keyword arguments): ``experiment.OPTIMIZERS``."""
    return {n: (i.factory, i.kwargs()) for n, i in REGISTRY.items()}


def grids() -> dict[str, tuple[float, ...]]:
    """name -> default learning-rate grid: ``compare.DEFAULT_GRIDS``."""
    return {n: i.grid for n, i in REGISTRY.items()}


def colors() -> dict[str, str]:
    """name -> colour: ``report.COLORS``."""
    return {n: i.color for n, i in REGISTRY.items()}


def landscape_recipes() -> dict[str, tuple[str, dict[str, Any]]]:
    """The optimizers that run on the 2-D test functions: ``landscape.RECIPES``."""
    return {n: (i.factory, i.kwargs()) for n, i in REGISTRY.items() if i.landscape}


def color(name: str) -> str:
    """The colour of ``name`` (dark grey for a name the registry does not know)."""
    info = REGISTRY.get(name)
    return "#333333" if info is None else info.color


__all__ = [
    "ADAPTIVE_GRID",
    "MOMENTUM_GRID",
    "REGISTRY",
    "SGD_GRID",
    "OptimizerInfo",
    "color",
    "colors",
    "factories",
    "get",
    "grids",
    "landscape_recipes",
    "names",
]
