"""Tail risk of profit scenarios, in NumPy and as cvxpy expressions.

Profit is a reward, so the risk lives in its *lower* tail. ``tail_mean(P, alpha)`` is the mean of
the worst ``alpha`` share of scenarios (lower-tail CVaR of profit; the same number as
``-CVaR_alpha(loss)`` with loss = -profit). The cvxpy form is Rockafellar-Uryasev's
``max_t t - E[(t - P)_+] / alpha``: linear in the scenarios, so an LP/MILP for HiGHS. The NumPy
form sorts, so tests can check the LP against an independent computation.
"""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np


def check_alpha(alpha: float, what: str = "alpha") -> float:
    """Tail levels are shares of scenarios: (0, 1]. ``alpha=1`` is the plain mean."""
    alpha = float(alpha)
    if not 0.0 < alpha <= 1.0:
        raise ValueError(
            f"{what} must be in (0, 1] (share of worst scenarios averaged), got {alpha}; "
            "e.g. 0.1 = mean of the worst 10% of posterior draws"
        )
    return alpha


def tail_mean(scenarios: np.ndarray, alpha: float, axis: int = 0) -> np.ndarray | float:
    """Mean of the worst ``alpha`` share of scenarios, with the fractional scenario weighted in.

    Equals ``max_t t - mean((t - P)_+) / alpha`` exactly (the sample CVaR), also when
    ``alpha x S`` is not an integer.
    """
    alpha = check_alpha(alpha)
    p = np.sort(np.asarray(scenarios, dtype=float), axis=axis)
    n = p.shape[axis]
    mass = alpha * n
    k = min(int(math.floor(mass + 1e-12)), n)
    idx = np.arange(n)
    weights = np.where(idx < k, 1.0, 0.0)
    if k < n:
        weights[k] = mass - k
    shape = [1] * p.ndim
    shape[axis] = n
    out = (p * weights.reshape(shape)).sum(axis=axis) / mass
    return float(out) if np.ndim(out) == 0 else out


def tail_mean_expr(
    scenarios: cp.Expression, alpha: float, name: str = "var"
) -> tuple[cp.Expression, cp.Variable]:
    """Concave cvxpy expression of the sample tail mean (Rockafellar-Uryasev).

    Returns the expression and the threshold variable ``t`` (the value-at-risk at the optimum),
    which reports use. ``cp.pos`` adds one nonnegative variable per scenario: an LP.
    """
    alpha = check_alpha(alpha)
    n = scenarios.shape[0]
    t = cp.Variable(name=name)
    return t - cp.sum(cp.pos(t - scenarios)) / (alpha * n), t
