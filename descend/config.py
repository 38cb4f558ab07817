"""descend's process-wide switches, in one object: ``dc.config``.

======================  ================================  =====================================================
field                   environment variable (at import)  what it switches
======================  ================================  =====================================================
``fused``               ``DESCEND_FUSED``                 the fused numba optimizer kernels
                                                          (:mod:`descend.optim.fused`); off: the reference chains
``fast_kernels``        ``DESCEND_FAST_KERNELS``          the numba layer kernels (max pooling, ReLU backward:
                        (default: ``DESCEND_FUSED``)      :mod:`descend.nn._fast`); off: the NumPy code
``conv_same_width``     ``DESCEND_CONV_SAME_WIDTH``       the exact-position path of "same"-width stride-1
                                                          convolutions (:mod:`descend.nn.conv`)
``batch_parallel``      ``DESCEND_BATCH_PARALLEL``        batch-parallel layer passes (:mod:`descend.nn._blas`)
``blas_threads``        ``DESCEND_BLAS_THREADS``          threads of numpy's OpenBLAS (``None``: OpenBLAS's
                                                          own setting, left alone)
======================  ================================  =====================================================

A boolean variable is off when it is ``0``, ``false``, ``no`` or ``off`` (any case) and on otherwise;
``DESCEND_FUSED=0`` turns both the optimizer and the layer kernels off, as it always did. Every path a switch
selects computes the same values (the tests compare them); the switches exist to measure and to debug.

Set a field for the whole process, or for a block::

    >>> import descend as dc
    >>> with dc.config.using(fused=False):   # the reference chains, restored on exit
    ...     pass
    >>> dc.config.fused = True

The switches are process-wide, not per thread. ``fused`` and ``fast_kernels`` need numba (a dependency of
descend): where it is missing they start ``False``, and one set ``True`` goes back to ``False`` when the first
kernel finds that numba cannot be imported (the NumPy code runs: same values, slower). The old module attributes
(``descend.optim.fused.ENABLED``, ``descend.nn._fast.ENABLED``, ``descend.nn._blas.ENABLED``,
``descend.nn.conv.SAME_WIDTH_PATH``) still read and write these fields.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from typing import Any

from descend.errors import ParameterError

_OFF = ("0", "false", "no", "off")
_BOOLS = ("fused", "fast_kernels", "conv_same_width", "batch_parallel")
FIELDS = (*_BOOLS, "blas_threads")


def _env_bool(name: str, default: bool = True) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() not in _OFF


def _env_threads(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ParameterError(f"config: {name} must be a positive integer (OpenBLAS threads), got {value!r}")
    return n


def numba_available() -> bool:
    """Whether numba can be imported (without importing it: that takes a few hundred ms)."""
    return importlib.util.find_spec("numba") is not None


#: The exact command that installs each of descend's compiled / drawing dependencies (see pyproject.toml).
INSTALL = {"numba": "pip install 'numba>=0.60'", "matplotlib": "pip install 'matplotlib>=3.8'"}
_WHY = {"numba": "the fused optimizer kernels", "matplotlib": "the report's figures and pictures"}


def require(command: str, *modules: str) -> None:
    """Raise one :class:`~descend.errors.DescendError` naming the install command of the first of ``modules``
    (keys of :data:`INSTALL`) that cannot be imported.

    numba is not required where the environment turned the kernels off (``DESCEND_FUSED=0``): that is the
    slower reference path on purpose. The command line turns the error into exit status 2.
    """
    from descend.errors import DescendError

    for name in modules:
        if name == "numba" and not _env_bool("DESCEND_FUSED"):
            continue
        if importlib.util.find_spec(name) is None:
            hint = " (or set DESCEND_FUSED=0 to run the slower NumPy reference path)" if name == "numba" else ""
            raise DescendError(
                f"{command} needs {name} ({_WHY[name]}), a dependency of descend that is not installed here: "
                f"{INSTALL[name]}{hint}"
            )


class _State:
    """The current values; the hot paths read these slots directly (``config.state.fused``)."""

    __slots__ = ("batch_parallel", "blas_before", "blas_threads", "conv_same_width", "fast_kernels", "fused")

    def __init__(self) -> None:
        have_numba = numba_available()
        fused = _env_bool("DESCEND_FUSED")
        self.fused = fused and have_numba
        self.fast_kernels = _env_bool("DESCEND_FAST_KERNELS", fused) and have_numba
        self.conv_same_width = _env_bool("DESCEND_CONV_SAME_WIDTH")
        self.batch_parallel = _env_bool("DESCEND_BATCH_PARALLEL")
        self.blas_threads: int | None = None
        self.blas_before: int | None = None  # OpenBLAS's own count, restored when blas_threads goes back to None


state = _State()


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(f"config: {name} must be True or False, got {value!r}")
    return value


def _validate(name: str, value: Any) -> Any:
    """``value`` if it is allowed for field ``name``, else one ParameterError."""
    if name not in FIELDS:
        raise ParameterError(f"config: unknown field {name!r}; the fields are {', '.join(FIELDS)}")
    if name in _BOOLS:
        return _bool(name, value)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ParameterError(f"config: blas_threads must be a positive int or None, got {value!r}")
    return value


def _set(name: str, value: Any) -> None:
    value = _validate(name, value)
    if name == "blas_threads":
        _set_blas_threads(value)
    else:
        setattr(state, name, value)


def _set_blas_threads(value: int | None) -> None:
    from descend.nn import _blas

    if value is None:
        if state.blas_threads is not None and state.blas_before is not None:
            _blas.set_threads(state.blas_before)
        state.blas_threads = None
        return
    before = _blas.get_threads()
    if before is None:
        raise ParameterError("config: blas_threads needs numpy's bundled OpenBLAS, which was not found")
    if state.blas_threads is None:
        state.blas_before = before
    _blas.set_threads(value)
    state.blas_threads = value


def as_dict() -> dict[str, Any]:
    """Every field and its current value."""
    return {name: getattr(state, name) for name in FIELDS}


def update(**fields: Any) -> None:
    """Set several fields; all are checked before any is set."""
    for name, value in fields.items():
        _validate(name, value)
    for name, value in fields.items():
        _set(name, value)


@contextlib.contextmanager
def using(**fields: Any) -> Iterator[dict[str, Any]]:
    """Set ``fields`` for the ``with`` block, then restore the previous values (also on an exception)."""
    for name, value in fields.items():
        _validate(name, value)
    before = {name: getattr(state, name) for name in fields}
    update(**fields)
    try:
        yield as_dict()
    finally:
        for name, value in before.items():
            _set(name, value)


def module_switches(module_name: str, switches: dict[str, str]) -> None:
    """Make ``module.<attribute>`` read and write the field ``switches[attribute]`` of this configuration.

    The module's class becomes a subclass of ``ModuleType`` with one property per
    switch, so ``descend.optim.fused.ENABLED = False`` (and pytest's ``monkeypatch``)
    still switch the fast path, through the one configuration.
    """
    module = sys.modules[module_name]
    namespace: dict[str, Any] = {attr: _field_property(field) for attr, field in switches.items()}
    module.__class__ = type("SwitchModule", (types.ModuleType,), namespace)


def _field_property(field: str) -> property:
    return property(lambda _module: getattr(state, field), lambda _module, value: _set(field, value))


class _ConfigModule(types.ModuleType):
    """This module: its fields are properties over :data:`state` that validate what is set."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in FIELDS or name.startswith("_") or name in self.__dict__:
            super().__setattr__(name, value)
        else:
            _validate(name, value)  # an unknown field: one clear error, not a silent new attribute

    def __repr__(self) -> str:
        return "descend.config(" + ", ".join(f"{k}={v!r}" for k, v in as_dict().items()) + ")"


for _field in FIELDS:
    setattr(_ConfigModule, _field, _field_property(_field))
sys.modules[__name__].__class__ = _ConfigModule
_threads = _env_threads("DESCEND_BLAS_THREADS")
if _threads is not None:
    _set_blas_threads(_threads)

__all__ = ["FIELDS", "INSTALL", "as_dict", "module_switches", "numba_available", "require", "state", "update", "using"]
