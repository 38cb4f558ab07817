"""What to do when a gradient contains NaN or inf: ``guard_not_finite``.

One overflowing batch (a loss spike, an fp16 overflow) should not destroy an
optimizer's moments: Adam's ``v`` becomes inf or NaN for good after a single
non-finite gradient. The guard looks at the gradients *before* the wrapped
transformation and either skips the whole step, zeroes the bad entries, or
raises with the step number and the offending parameters::

    tx = guard_not_finite(chain(clip_by_global_norm(1.0), adamw(1e-3)), action="skip", max_consecutive=10)
"""

from __future__ import annotations

from typing import Any, NamedTuple

from descend._validation import Constraint, Interval, OneOf, check
from descend.errors import NonFiniteError, ParameterError
from descend.optim._backend import namespace
from descend.optim.base import GradientTransformation, identity
from descend.optim.masking import IS_TRANSFORMATION
from descend.optim.tree import Tree, leaves_with_paths, tree_map, tree_zeros_like

State = Any

_MAX_REPORTED = 5  # offending leaves named in a message; the rest are counted


class _NoneOr(Constraint):
    def __init__(self, inner: Constraint):
        self.inner = inner
        self.description = f"None or {inner}"

    def accepts(self, value: Any) -> bool:
        return value is None or self.inner.accepts(value)


class GuardNotFiniteState(NamedTuple):
    step: int  # update calls seen so far, finite or not (the last call was step number `step`, 1-based)
    num_skipped: int  # consecutive non-finite steps up to the last call (0 after a finite one)
    total_skipped: int  # non-finite steps since init
    inner_state: State  # the wrapped transformation's state (untouched by skipped steps)


def guard_not_finite(
    inner: GradientTransformation | None = None,
    action: str = "skip",
    max_consecutive: int | None = None,
) -> GradientTransformation:
    """Check the gradients for NaN / ±inf before ``inner`` sees them.

    When every entry is finite, the step is ``inner``'s. Otherwise, by ``action``:

    * ``"skip"``: return zero updates and keep ``inner``'s state as it was, so the
      step is skipped entirely (moments, step counter and schedule do not
      advance); this is why the guard *wraps* the optimizer instead of being a
      link before it. optax's ``apply_if_finite`` does the same.
    * ``"zero"``: replace the non-finite entries by 0 and run ``inner`` on the result.
    * ``"raise"``: raise :class:`~descend.errors.NonFiniteError` naming the step
      number (1-based: the n-th call of ``update``) and every offending leaf, e.g.
      ``guard_not_finite: non-finite gradient at step 12 in params['W']: 3 NaN, 0 inf``
      (``inf`` counts both signs).

    ``num_skipped`` counts the consecutive non-finite steps and ``total_skipped``
    all of them (for ``"zero"`` they are the steps whose gradients were
    repaired). With ``max_consecutive`` = N, the (N+1)-th non-finite step in a
    row raises :class:`~descend.errors.NonFiniteError` instead: training that
    keeps producing NaN has diverged and skipping will not save it.

    ``inner`` may be omitted (the identity) for ``"zero"`` and ``"raise"``, as a
    first link of a chain; ``"skip"`` needs the transformation to skip. Only the
    incoming gradients are checked, not ``inner``'s output.
    """
    owner = "guard_not_finite"
    check(owner, "action", action, OneOf("skip", "zero", "raise"))
    check(owner, "max_consecutive", max_consecutive, _NoneOr(Interval(0, None, integer=True)))
    if inner is None:
        if action == "skip":
            raise ParameterError(
                f"{owner}: action='skip' needs the transformation to skip: "
                f"guard_not_finite(tx, action='skip'), got inner=None"
            )
        inner = identity()
    check(owner, "inner", inner, IS_TRANSFORMATION)
    if action == "raise" and max_consecutive is not None:
        raise ParameterError(
            f"{owner}: max_consecutive applies to action='skip' or 'zero', got max_consecutive={max_consecutive!r} "
            f"with action='raise'"
        )
    limit = None if max_consecutive is None else int(max_consecutive)

    def init(params: Tree) -> GuardNotFiniteState:
        return GuardNotFiniteState(step=0, num_skipped=0, total_skipped=0, inner_state=inner.init(params))

    def update(updates: Tree, state: GuardNotFiniteState, params: Tree | None = None):
        step = state.step + 1
        bad = _non_finite_report(updates)
        if not bad:
            updates, inner_state = inner.update(updates, state.inner_state, params)
            return updates, GuardNotFiniteState(step, 0, state.total_skipped, inner_state)
        where = f"at step {step} in {_format(bad)}"
        if action == "raise":
            raise NonFiniteError(f"{owner}: non-finite gradient {where}")
        num_skipped = state.num_skipped + 1
        if limit is not None and num_skipped > limit:
            raise NonFiniteError(
                f"{owner}: {num_skipped} consecutive non-finite gradients, more than max_consecutive={limit} "
                f"(the last {where})"
            )
        total = state.total_skipped + 1
        if action == "skip":
            return tree_zeros_like(updates), GuardNotFiniteState(step, num_skipped, total, state.inner_state)
        cleaned = tree_map(_zero_non_finite, updates)
        updates, inner_state = inner.update(cleaned, state.inner_state, params)
        return updates, GuardNotFiniteState(step, num_skipped, total, inner_state)

    return GradientTransformation(init, update)


def _zero_non_finite(g: Any) -> Any:
    xp = namespace(g)
    return xp.where(xp.isfinite(g), g, xp.zeros_like(g))


def _non_finite_report(tree: Tree) -> list[tuple[str, int, int]]:
    """``(path, #NaN, #inf)`` for each leaf with a non-finite entry, in tree order."""
    out = []
    for path, g in leaves_with_paths(tree):
        xp = namespace(g)
        if bool(xp.all(xp.isfinite(g))):
            continue
        out.append((path, int(xp.count_nonzero(xp.isnan(g))), int(xp.count_nonzero(xp.isinf(g)))))
    return out


def _format(bad: list[tuple[str, int, int]]) -> str:
    parts = [f"params{path}: {n_nan} NaN, {n_inf} inf" for path, n_nan, n_inf in bad[:_MAX_REPORTED]]
    if len(bad) > _MAX_REPORTED:
        parts.append(f"and {len(bad) - _MAX_REPORTED} more leaves")
    return "; ".join(parts)


__all__ = ["GuardNotFiniteState", "guard_not_finite"]
