"""Budget frontier: one compiled problem, duals equal finite differences, infeasible levels named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uplift.optimize import (
    FRONTIER_COLUMNS,
    AllocationProblem,
    BudgetAllocator,
    CellCap,
    ContactCap,
    CVaR,
    TacticSpend,
    TotalBudget,
)


def problem(seed: int = 0) -> AllocationProblem:
    rng = np.random.default_rng(seed)
    cells = pd.DataFrame(
        {
            "segment": ["a", "a", "b", "b"],
            "tactic": ["t1", "t2", "t1", "t2"],
            "arm": ["x", "y", "x", "y"],
            "cost": [1.0, 2.0, 1.0, 2.0],
        }
    )
    d = rng.normal([1.0, 3.0, 0.5, 2.5], 1.0, size=(300, 4))
    return AllocationProblem(cells, d, pd.Series({"a": 100.0, "b": 100.0}))


RULES = [TotalBudget(150.0), ContactCap(), CellCap()]


def test_frontier_duals_match_finite_differences_and_separate_solves():
    p = problem()
    alloc = BudgetAllocator(RULES, integer=False)
    budgets = [50.0, 100.0, 150.0, 250.0, 300.0, 350.0, 450.0, 600.0]
    f = alloc.frontier(p, budgets)
    t = f.table
    assert list(t.columns) == FRONTIER_COLUMNS
    assert (t["status"] == "optimal").all()
    assert np.all(np.diff(t["expected_profit"]) >= -1e-6)  # more budget never hurts
    assert (t["profit_hdi_low"] <= t["expected_profit"]).all()
    assert (t["expected_profit"] <= t["profit_hdi_high"]).all()
    # within a linear piece the dual equals the finite-difference slope
    for i in range(1, len(t)):
        if abs(t["marginal_return"].iloc[i] - t["marginal_return"].iloc[i - 1]) < 1e-9:
            assert t["marginal_return_fd"].iloc[i] == pytest.approx(
                t["marginal_return"].iloc[i], rel=1e-6
            )
    # saturated: budget is slack, the contact cap carries the shadow price
    last = t.iloc[-1]
    assert last["marginal_return"] == pytest.approx(0.0, abs=1e-9)
    assert "contact_cap" in last["binding_constraints"]
    # binding is judged at each level's budget, not the one the rule was built with
    assert "total_budget" in t["binding_constraints"].iloc[0]
    assert "total_budget" not in last["binding_constraints"]
    assert t["spend"].iloc[0] == pytest.approx(50.0)
    caps = f.shadow_prices.query("budget == 600 and constraint == 'contact_cap'")
    assert set(caps["row"]) == {"a", "b"} and (caps["shadow_price"] > 0).all()
    # the re-parameterised problem gives the same answers as fresh solves
    for b in (100.0, 350.0):
        fresh = BudgetAllocator([TotalBudget(b), ContactCap(), CellCap()], integer=False).solve(p)
        row = t.set_index("budget").loc[b]
        assert row["expected_profit"] == pytest.approx(fresh.expected_profit, rel=1e-7)


def test_frontier_budget_dual_is_marginal_return_of_last_unit():
    p = problem(1)
    f = BudgetAllocator(RULES, integer=False).frontier(p, [120.0, 121.0])
    t = f.table
    assert t["marginal_return"].iloc[0] == pytest.approx(
        t["objective"].iloc[1] - t["objective"].iloc[0], rel=1e-6
    )


def test_frontier_with_cvar_objective_and_infeasible_levels():
    p = problem(2)
    rules = [*RULES, TacticSpend("t1", min_spend=40.0)]
    f = BudgetAllocator(rules, objective=CVaR(0.1), integer=False).frontier(p, [20.0, 60.0, 120.0])
    t = f.table.set_index("budget")
    assert t.loc[20.0, "status"] == "infeasible"
    assert "total_budget" in t.loc[20.0, "note"] and "tactic_spend[t1]" in t.loc[20.0, "note"]
    assert (t.loc[[60.0, 120.0], "status"] == "optimal").all()
    assert t.loc[120.0, "objective"] >= t.loc[60.0, "objective"]


def test_frontier_needs_a_budget_rule():
    with pytest.raises(ValueError, match="TotalBudget"):
        BudgetAllocator([ContactCap(), CellCap()]).frontier(problem(), [1.0, 2.0])
