"""Exceptions raised by descend.

Every error that descend raises on purpose derives from :class:`DescendError`, so
the command-line interface can turn it into one clear message and exit code 2.
Each also derives from the matching built-in (``ValueError``, ``TypeError``,
``FloatingPointError``) so ordinary ``except`` clauses keep working.
"""

from __future__ import annotations


class DescendError(Exception):
    """Base class of every error descend raises on purpose."""


class ParameterError(DescendError, ValueError):
    """A hyperparameter or argument is outside its allowed values."""


class StructureError(DescendError, ValueError):
    """Two trees (grads and params, state and template) do not match."""


class NonFiniteError(DescendError, FloatingPointError):
    """A gradient or update contains NaN or inf."""


class DataError(DescendError, ValueError):
    """A data set is missing, corrupt, or not what was asked for (descend.data)."""
