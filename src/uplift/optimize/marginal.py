"""What one more step of budget returns per tactic, if that step may only be spent on it.

For each tactic T the plan is re-solved with the budget raised by ``step`` and one extra rule,
:class:`SpendElsewhere`: spend on every tactic but T may not exceed what the chosen plan spends
on them. The new money is therefore earmarked for T (the plan may still reshuffle within the
other tactics' old spend), and the chosen plan stays feasible, so the answer is never below it.

Why re-solve rather than read duals: the default plan is a MILP (whole customers), which has no
duals. The frontier's duals are those of the LP relaxation: the return of an infinitesimal
fraction of a customer, which overstates what a lumpy step buys (an offer costing 3 cannot use
the last 2 of a step) and says nothing about a step larger than the range the dual is valid
over. The re-solve uses the allocator's own method, objective and rules, so it is exact for the
plan the user gets (up to the solver's MIP gap, 1e-7 by default); a brute-force enumeration
agrees on a small problem (tests/test_marginal_return.py).

The extra profit's interval comes from the draws: per posterior draw, the re-solved plan's
profit minus the chosen plan's, so it is the uncertainty of the gain itself, not of either plan.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd

from uplift.optimize.allocator import (
    Allocation,
    AllocationError,
    BudgetAllocator,
    _WithRhs,
)
from uplift.optimize.constraints import LinearConstraint, Rows, _set_default_name
from uplift.optimize.problem import AllocationProblem
from uplift.stats import hdi

__all__ = ["MARGINAL_RETURN_COLUMNS", "SpendElsewhere", "marginal_return_by_tactic"]

#: marginal_return.csv
MARGINAL_RETURN_COLUMNS = [
    "tactic",
    "step",
    "extra_profit",
    "extra_profit_hdi_low",
    "extra_profit_hdi_high",
    "prob_gain",
    "return_per_unit",
    "extra_spend",
    "extra_customers",
    "status",
    "note",
]


@dataclass
class SpendElsewhere(LinearConstraint):
    """Spend on every tactic except ``tactic`` <= ``max_spend``: new budget above the other
    tactics' current spend can only go to ``tactic``."""

    tactic: str
    max_spend: float
    name: str = ""

    def __post_init__(self) -> None:
        _set_default_name(self, f"spend_elsewhere[{self.tactic}]")
        if not np.isfinite(self.max_spend) or self.max_spend < 0:
            raise ValueError(f"{self.name}: max_spend must be finite and >= 0")

    def rows(self, problem: AllocationProblem) -> Rows:
        others = problem.cells["tactic"].astype(str).to_numpy() != self.tactic
        return Rows((problem.cost * others)[None, :], np.array([float(self.max_spend)]), ["all"])


def _budget_rule(allocator: BudgetAllocator, name: str, problem: AllocationProblem):
    rule = next((c for c in allocator.constraints if c.name == name), None)
    if rule is None or not isinstance(rule, LinearConstraint):
        linear = [c.name for c in allocator.constraints if isinstance(c, LinearConstraint)]
        raise ValueError(
            f"marginal return per tactic needs a linear budget rule named {name!r}; linear "
            f"rules here: {linear}"
        )
    b = rule.rows(problem).b
    if b.shape != (1,):
        raise ValueError(f"{name!r} has {b.shape} rows; a budget step needs one")
    return rule, b


def marginal_return_by_tactic(
    allocator: BudgetAllocator,
    problem: AllocationProblem,
    allocation: Allocation,
    step: float,
    *,
    budget_constraint: str = "total_budget",
    hdi_prob: float | None = None,
) -> pd.DataFrame:
    """One row per tactic of ``problem`` (:data:`MARGINAL_RETURN_COLUMNS`): the expected extra
    profit of ``step`` more budget spent only on that tactic, its HDI and P(gain > 0) over the
    draws, the return per unit of budget (``extra_profit / step``), and the extra spend and
    customers the re-solved plan uses. ``allocation`` is the plan ``allocator`` chose on
    ``problem``; a tactic whose re-solve fails gets its status and the error in ``note``."""
    if not np.isfinite(step) or step <= 0:
        raise ValueError(f"budget step must be a finite number > 0, got {step}")
    prob = allocator.hdi_prob if hdi_prob is None else hdi_prob
    rule, b = _budget_rule(allocator, budget_constraint, problem)
    x0 = allocation.table["decision"].to_numpy(dtype=float)
    tactic_of = problem.cells["tactic"].astype(str).to_numpy()
    base_draws = allocation.total_profit_draws
    raised = _WithRhs(rule, b + step)
    rows = []
    for tactic in problem.tactics:
        others = tactic_of != tactic
        cap = float(problem.cost[others] @ x0[others])
        sub = copy.copy(allocator)
        sub.constraints = [raised if c.name == budget_constraint else c for c in sub.constraints]
        sub.constraints.append(SpendElsewhere(tactic, cap))
        sub.diagnose = False
        row: dict = {"tactic": tactic, "step": float(step)}
        try:
            new = sub.solve(problem)
        except AllocationError as e:
            rows.append(row | {"status": "error", "note": str(e)})
            continue
        note = ""
        if new.objective_value < allocation.objective_value:
            # the chosen plan is feasible here: a lower optimum is solver tolerance, not a loss
            new, note = allocation, "re-solve found nothing better than the chosen plan"
        gain = new.total_profit_draws - base_draws
        lo, hi = hdi(gain, prob)
        extra = float(gain.mean())
        rows.append(
            row
            | {
                "extra_profit": extra,
                "extra_profit_hdi_low": float(lo),
                "extra_profit_hdi_high": float(hi),
                "prob_gain": float((gain > 0).mean()),
                "return_per_unit": extra / float(step),
                "extra_spend": new.total_spend - allocation.total_spend,
                "extra_customers": int(new.table["customers"].sum())
                - int(allocation.table["customers"].sum()),
                "status": new.status,
                "note": note,
            }
        )
    out = pd.DataFrame(rows).reindex(columns=MARGINAL_RETURN_COLUMNS)
    num = out.select_dtypes("float").columns
    out[num] = out[num] + 0.0
    out["note"] = out["note"].fillna("")
    return out
