"""Build optimizers from plain settings (what a config section holds), in one place.

The pipeline passes config values here instead of assembling rule objects itself, so a new rule
type needs no pipeline change: it is listed under ``optimize.constraints`` (or
``pricing.constraints``) as ``{type: ..., name: ..., <fields>}``. Both optimizers read their
rules with the same parser and run their solver from the same :class:`SolverSettings`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from uplift.optimize.allocator import BudgetAllocator
from uplift.optimize.constraints import (
    CellCap,
    ContactCap,
    TotalBudget,
    check_unique_names,
    constraints_from_config,
)
from uplift.optimize.objectives import objective_from_config
from uplift.optimize.pricing import PriceOptimizer, pricing_constraints_from_config
from uplift.optimize.settings import SolverSettings


def allocator_from_settings(
    budget: float,
    *,
    max_offers_per_customer: int = 1,
    objective: str | Mapping[str, Any] = "expected",
    alpha: float | None = 0.1,
    risk_aversion: float | None = 1.0,
    constraints: Iterable[Mapping[str, Any]] = (),
    integer: bool = True,
    integer_method: str = "milp",
    solver: str | SolverSettings = "HIGHS",
    time_limit: float | None = None,
    hdi_prob: float = 0.94,
) -> BudgetAllocator:
    """Budget, contact cap and cell cap always apply; ``constraints`` add or override by name."""
    extra = constraints_from_config(constraints)
    base = [TotalBudget(budget), ContactCap(max_offers_per_customer), CellCap()]
    names = {c.name for c in extra}
    rules = [c for c in base if c.name not in names] + extra
    check_unique_names(rules)
    return BudgetAllocator(
        rules,
        objective=objective_from_config(objective, alpha=alpha, risk_aversion=risk_aversion),
        integer=integer,
        solver=SolverSettings.of(solver, time_limit=time_limit),
        hdi_prob=hdi_prob,
        integer_method=integer_method,
    )


def budget_grid(
    budgets: Iterable[float] | None = None,
    *,
    start: float | None = None,
    stop: float | None = None,
    num: int = 20,
) -> np.ndarray:
    """An explicit list, or ``num`` evenly spaced budgets from ``start`` to ``stop``."""
    if budgets is not None:
        out = np.asarray(list(budgets), dtype=float)
    else:
        if start is None or stop is None or num < 2:
            raise ValueError(
                "frontier needs either budgets: [..] or start, stop and num >= 2 "
                "(e.g. optimize.frontier.start=0 optimize.frontier.stop=40000)"
            )
        out = np.linspace(float(start), float(stop), int(num))
    if not len(out) or (out < 0).any():
        raise ValueError(f"frontier budgets must be >= 0, got {out.tolist()}")
    return out


def marginal_step(budget: float) -> float:
    """A round budget increment about a tenth of ``budget`` or less (1,000 for budgets from
    10,000 to 99,999; at least 1): the "one more ... of budget" a report quotes, and the level
    above the chosen budget that a frontier always solves."""
    if not budget > 10:
        return 1.0
    return float(10 ** math.floor(math.log10(budget / 10)))


def price_optimizer_from_settings(
    *,
    objective: str | Mapping[str, Any] = "expected",
    alpha: float | None = 0.1,
    risk_aversion: float | None = 1.0,
    constraints: Iterable[Mapping[str, Any]] = (),
    method: str = "auto",
    solver: str | SolverSettings = "HIGHS",
    cost_plus_markup: float = 0.3,
    time_limit: float | None = None,
    hdi_prob: float = 0.94,
) -> PriceOptimizer:
    return PriceOptimizer(
        pricing_constraints_from_config(constraints),
        objective=objective_from_config(objective, alpha=alpha, risk_aversion=risk_aversion),
        method=method,
        solver=SolverSettings.of(solver, time_limit=time_limit),
        hdi_prob=hdi_prob,
        cost_plus_markup=cost_plus_markup,
    )
