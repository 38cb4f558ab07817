"""L-BFGS (Liu & Nocedal 1989) with an optional strong-Wolfe line search, driven by a closure.

The reference is ``torch.optim.LBFGS`` (torch 2.13; itself after minFunc), whose keyword names,
defaults and every stopping rule these follow. All leaves are flattened into one vector (as torch
does), so the curvature pairs couple the whole parameter tree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from descend._validation import LEARNING_RATE, NONNEGATIVE, AnyOf, Interval, OneOf, check
from descend.errors import ParameterError
from descend.optim._backend import namespace, size
from descend.optim.closure import ClosureOptimizer, FunAndGrad, evaluate
from descend.optim.learning_rate import resolve_lr
from descend.optim.tree import Tree, leaves, tree_map

_Vec = Any  # a 1-D array of the parameters' namespace


class LbfgsState(NamedTuple):
    """L-BFGS's state, of a fixed shape from ``init`` (so that it checkpoints with ``state_to_dict`` /
    ``state_from_dict``): the curvature history is two ``(history_size, n)`` arrays whose first ``fill``
    rows are the pairs, oldest first (the rest are zeros); before the first iteration (``n_iter == 0``)
    ``d``, ``t``, ``prev_flat_grad`` and ``prev_loss`` are zeros, unused."""

    count: int  # steps (calls of step) done
    lr: float  # η of the last step
    lr_scale: float  # plateau multiplier s
    func_evals: int  # objective evaluations so far (torch's state["func_evals"])
    n_iter: int  # iterations so far, over all steps (torch's state["n_iter"])
    d: _Vec  # the last search direction (n,)
    t: float  # the last step length
    old_dirs: _Vec  # (history_size, n): y_i = ∇f_{i+1} − ∇f_i, the last fill curvature pairs …
    old_stps: _Vec  # … s_i = t_i·d_i
    ro: np.ndarray  # (history_size,) float64: 1 / ⟨y_i, s_i⟩
    fill: int  # how many rows of old_dirs / old_stps / ro hold pairs
    H_diag: float  # γ = ⟨y, s⟩/⟨y, y⟩ of the newest pair: the initial inverse Hessian γ·I
    prev_flat_grad: _Vec  # the gradient of the last iteration (n,)
    prev_loss: float  # the loss of the last iteration


def _flatten(tree: Tree) -> _Vec:
    xs = leaves(tree)
    xp = namespace(xs[0])
    return xp.concat([xp.reshape(x, (-1,)) for x in xs])


def _pack(rows: list[_Vec], template: _Vec) -> _Vec:
    """``rows`` stacked over the zero rows of ``template`` that follow them: a new ``(history_size, n)`` array."""
    if not rows:
        return template
    xp = namespace(template)
    stacked = xp.stack(rows)
    return (
        stacked
        if len(rows) == template.shape[0]
        else xp.concat([stacked, xp.zeros_like(template[len(rows) :])], axis=0)
    )


def _add_flat(tree: Tree, t: float, d: _Vec) -> Tree:
    """``tree + t·d`` leaf by leaf (torch's ``_add_grad``: ``p.add_(d[offset:offset+n].view_as(p), alpha=t)``)."""
    offset = [0]

    def add(p: Any) -> Any:
        n = size(p)
        piece = namespace(p).reshape(d[offset[0] : offset[0] + n], tuple(p.shape))
        offset[0] += n
        return p + t * piece

    return tree_map(add, tree)


def _dot(a: _Vec, b: _Vec) -> float:
    """``⟨a, b⟩`` through BLAS (``np.dot``; ``torch.dot`` for tensors), as torch computes it."""
    if isinstance(a, np.ndarray):
        return float(np.dot(a, b))
    dot = getattr(a, "dot", None)
    return float(dot(b)) if dot is not None else float(namespace(a).sum(a * b))


def _abs_max(a: _Vec) -> float:
    xp = namespace(a)
    return float(xp.max(xp.abs(a)))


def cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None) -> float:
    """The minimiser of the cubic through (x1, f1, g1), (x2, f2, g2) in ``bounds`` (torch's ``_cubic_interpolate``)."""
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square >= 0:
        d2 = math.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def strong_wolfe(
    obj_func: Callable[[float], tuple[float, _Vec]],
    t: float,
    d: _Vec,
    f: float,
    g: _Vec,
    gtd: float,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
    max_ls: int = 25,
) -> tuple[float, _Vec, float, int]:
    """A step length t along d that satisfies the strong Wolfe conditions (torch's ``_strong_wolfe``, a port of
    minFunc's bracketing + cubic-interpolation zoom). ``obj_func(t)`` is ``(f, ∇f)`` at ``x + t·d``.
    Returns (f, ∇f, t, evaluations)."""
    d_norm = _abs_max(d)
    f_new, g_new = obj_func(t)
    ls_func_evals = 1
    gtd_new = _dot(g_new, d)
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    ls_iter = 0
    bracket: list[float] = []
    bracket_f: list[float] = []
    bracket_g: list[_Vec] = []
    bracket_gtd: list[float] = []
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new, gtd_new
        f_new, g_new = obj_func(t)
        ls_func_evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
    if ls_iter == max_ls:  # reached the maximum number of evaluations
        bracket, bracket_f, bracket_g = [0.0, t], [f, f_new], [g, g_new]

    # zoom until the bracket is small enough
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        # keep away from the bracket's ends (minFunc's safeguard)
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) else min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(t)
        ls_func_evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos], bracket_g[high_pos] = t, f_new, g_new
            bracket_gtd[high_pos] = gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos], bracket_gtd[high_pos] = bracket_g[low_pos], bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos], bracket_g[low_pos] = t, f_new, g_new
            bracket_gtd[low_pos] = gtd_new
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


def lbfgs(
    lr: float = 1.0,
    max_iter: int = 20,
    max_eval: int | None = None,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
    history_size: int = 100,
    line_search_fn: str | None = None,
) -> ClosureOptimizer:
    """L-BFGS (``torch.optim.LBFGS``, torch 2.13), a quasi-Newton method over the flattened parameters::

        d = −H·∇f(θ)        (H: the inverse Hessian from the last history_size pairs (s, y), two-loop recursion,
                            started from γ·I with γ = ⟨y, s⟩/⟨y, y⟩; pairs with ⟨y, s⟩ ≤ 1e-10 are skipped)
        θ ← θ + t·d         (t = lr, or min(1, 1/‖∇f‖₁)·lr at the very first iteration;
                            line_search_fn="strong_wolfe": t from a strong-Wolfe line search starting there)

    Each :meth:`~descend.optim.closure.ClosureOptimizer.step` runs up to ``max_iter`` iterations and
    ``max_eval`` evaluations (default ``max_iter·5//4``), and stops early when max|∇f| ≤
    ``tolerance_grad``, when a step or the loss change is below ``tolerance_change``, or when d is not
    a descent direction; the history carries over to the next step. Where seed 001's gradient descent
    scales ∇f by one η, L-BFGS rescales it by curvature, which on smooth full-batch problems converges
    in far fewer steps. Meant for deterministic (full-batch) objectives: noisy gradients spoil the
    curvature pairs and the line search. ``lr`` may be a schedule of the step count.
    """
    owner = "lbfgs"
    check(owner, "lr", lr, LEARNING_RATE)
    check(owner, "max_iter", max_iter, Interval(1, None, integer=True))
    if max_eval is None:
        max_eval = max_iter * 5 // 4
    check(owner, "max_eval", max_eval, Interval(1, None, integer=True))
    check(owner, "tolerance_grad", tolerance_grad, NONNEGATIVE)
    check(owner, "tolerance_change", tolerance_change, NONNEGATIVE)
    check(owner, "history_size", history_size, Interval(1, None, integer=True))
    check(owner, "line_search_fn", line_search_fn, AnyOf(OneOf(None), OneOf("strong_wolfe")))
    max_iter, max_eval, history_size = int(max_iter), int(max_eval), int(history_size)
    tol_grad, tol_change = float(tolerance_grad), float(tolerance_change)

    def init(params: Tree) -> LbfgsState:
        flat = _flatten(params)
        xp = namespace(flat)
        zeros = xp.zeros_like(flat)
        history = xp.stack([zeros] * history_size)
        ro0 = np.zeros(history_size, dtype=np.float64)
        return LbfgsState(0, resolve_lr(lr, 0), 1.0, 0, 0, zeros, 0.0, history, history, ro0, 0, 1.0, zeros, 0.0)

    def step(fun_and_grad: FunAndGrad, params: Tree, state: LbfgsState):
        if not isinstance(state, LbfgsState):
            raise ParameterError(
                f"{owner}: state must be an LbfgsState (from lbfgs(...).init), got {type(state).__name__}"
            )
        eta = resolve_lr(lr, state.count) * state.lr_scale
        func_evals, n_total = state.func_evals, state.n_iter
        d, t = state.d, state.t
        fill = int(state.fill)  # the history as lists of rows (views: nothing of state is modified)
        old_dirs = [state.old_dirs[i] for i in range(fill)]
        old_stps = [state.old_stps[i] for i in range(fill)]
        ro = [float(state.ro[i]) for i in range(fill)]
        h_diag, prev_flat_grad, prev_loss = state.H_diag, state.prev_flat_grad, state.prev_loss

        orig_loss, grads = evaluate(fun_and_grad, params, owner)
        loss = orig_loss
        current_evals = 1
        func_evals += 1
        flat_grad = _flatten(grads)

        def finish(params_out: Tree):
            ro_out = np.zeros(history_size, dtype=np.float64)
            ro_out[: len(ro)] = ro
            new = LbfgsState(
                state.count + 1, eta, state.lr_scale, func_evals, n_total, d, float(t),
                _pack(old_dirs, state.old_dirs), _pack(old_stps, state.old_stps), ro_out, len(old_dirs),
                float(h_diag), prev_flat_grad, float(prev_loss),
            )  # fmt: skip
            return params_out, new, orig_loss

        if _abs_max(flat_grad) <= tol_grad:  # optimal already
            return finish(params)
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            n_total += 1
            if n_total == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                h_diag = 1.0
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = _dot(y, s)
                if ys > 1e-10:  # update the memory
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    h_diag = ys / _dot(y, y)
                # the two-loop recursion for d = −H·g
                al = [0.0] * len(old_dirs)
                q = -flat_grad
                for i in range(len(old_dirs) - 1, -1, -1):
                    al[i] = _dot(old_stps[i], q) * ro[i]
                    q = q + (-al[i]) * old_dirs[i]
                d = r = q * h_diag
                for i in range(len(old_dirs)):
                    be_i = _dot(old_dirs[i], r) * ro[i]
                    r = r + (al[i] - be_i) * old_stps[i]
                d = r
            prev_flat_grad = flat_grad
            prev_loss = loss
            if n_total == 1:
                t = min(1.0, 1.0 / float(namespace(flat_grad).sum(namespace(flat_grad).abs(flat_grad)))) * eta
            else:
                t = eta
            gtd = _dot(flat_grad, d)
            if gtd > -tol_change:  # not a descent direction
                break
            ls_func_evals = 0
            if line_search_fn is not None:

                def obj_func(step_length: float, x_init: Tree = params, direction: _Vec = d) -> tuple[float, _Vec]:
                    f_, g_ = evaluate(fun_and_grad, _add_flat(x_init, step_length, direction), owner)
                    return f_, _flatten(g_)

                loss, flat_grad, t, ls_func_evals = strong_wolfe(
                    obj_func, t, d, loss, flat_grad, gtd, tolerance_change=1e-9, max_ls=max_eval - current_evals
                )
                params = _add_flat(params, t, d)
                opt_cond = _abs_max(flat_grad) <= tol_grad
            else:
                params = _add_flat(params, t, d)
                opt_cond = False
                if n_iter != max_iter:
                    loss, grads = evaluate(fun_and_grad, params, owner)
                    flat_grad = _flatten(grads)
                    opt_cond = _abs_max(flat_grad) <= tol_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            func_evals += ls_func_evals
            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if _abs_max(d * t) <= tol_change:  # the step is too small
                break
            if abs(loss - prev_loss) < tol_change:
                break
        return finish(params)

    return ClosureOptimizer(init, step)


__all__ = ["LbfgsState", "cubic_interpolate", "lbfgs", "strong_wolfe"]
