"""Weight initializers: ``fn(shape, rng, dtype=np.float32, **opts) -> ndarray``.

>>> import numpy as np, descend as dc
>>> w = dc.init.kaiming_uniform((256, 784), np.random.default_rng(0), nonlinearity="relu")
>>> f = dc.init.get("xavier_normal", gain=5 / 3)   # by name, options bound

Fans and gains are exactly torch's (``calculate_fan_in_and_fan_out``,
``calculate_gain``); see :mod:`descend.init.initializers` for the formulas.
"""

from descend.init.initializers import (
    MODES,
    NONLINEARITIES,
    REGISTRY,
    Initializer,
    as_generator,
    calculate_fan_in_and_fan_out,
    calculate_gain,
    constant,
    get,
    kaiming_normal,
    kaiming_uniform,
    lecun_normal,
    lecun_uniform,
    names,
    normal,
    ones,
    orthogonal,
    torch_default,
    uniform,
    xavier_normal,
    xavier_uniform,
    zeros,
)

# Aliases with the other common names.
glorot_uniform = xavier_uniform
glorot_normal = xavier_normal
he_uniform = kaiming_uniform
he_normal = kaiming_normal

__all__ = [
    "MODES",
    "NONLINEARITIES",
    "REGISTRY",
    "Initializer",
    "as_generator",
    "calculate_fan_in_and_fan_out",
    "calculate_gain",
    "constant",
    "get",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "lecun_uniform",
    "names",
    "normal",
    "ones",
    "orthogonal",
    "torch_default",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]
