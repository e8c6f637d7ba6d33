"""The allocator's MILP optimum equals brute-force enumeration; constraints do what they say."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from uplift.optimize import AllocationProblem, BudgetAllocator, CellCap, ContactCap, TotalBudget
from uplift.tactics import ArmMap


def small_problem(seed: int, eligible=(3, 2)) -> AllocationProblem:
    rng = np.random.default_rng(seed)
    cells = pd.DataFrame(
        {
            "segment": ["a", "a", "b", "b"],
            "tactic": ["cross_sell", "up_sell", "cross_sell", "up_sell"],
            "arm": ["x", "u", "x", "u"],
            "cost": [1.0, 2.0, 1.0, 2.0],
        }
    )
    draws = rng.normal(loc=rng.uniform(-0.5, 2.0, 4), scale=1.0, size=(200, 4))
    return AllocationProblem(cells, draws, pd.Series(eligible, index=["a", "b"], dtype=float))


def brute_force(problem: AllocationProblem, budget: float, max_offers: int = 1) -> float:
    mean = problem.profit_draws.mean(axis=0)
    elig = problem.cell_eligible.astype(int)
    best = -np.inf
    for x in itertools.product(*[range(e + 1) for e in elig]):
        x = np.array(x, dtype=float)
        if problem.cost @ x > budget + 1e-9:
            continue
        if np.any(problem.segment_matrix @ x > max_offers * problem.eligible_vector + 1e-9):
            continue
        best = max(best, float(mean @ x))
    return best


@pytest.mark.parametrize(
    "seed, budget, offers", [(0, 5.0, 1), (1, 3.0, 1), (2, 100.0, 1), (3, 4.0, 2), (4, 0.0, 1)]
)
def test_matches_brute_force(seed, budget, offers):
    problem = small_problem(seed)
    alloc = BudgetAllocator([TotalBudget(budget), ContactCap(offers), CellCap()]).solve(problem)
    assert alloc.objective_value == pytest.approx(brute_force(problem, budget, offers), abs=1e-6)
    assert alloc.total_spend <= budget + 1e-9
    t = alloc.table
    assert (t["customers"] >= 0).all() and np.allclose(t["customers"], np.round(t["customers"]))
    assert np.allclose(t["spend"], t["customers"] * t["cost_per_customer"])


def test_unprofitable_cells_are_not_treated():
    problem = small_problem(0)
    problem.profit_draws[:, 1] = -1.0  # segment a, up_sell always loses money
    alloc = BudgetAllocator([TotalBudget(1e6), ContactCap(), CellCap()]).solve(problem)
    assert alloc.table.loc[1, "customers"] == 0


def test_contact_cap_one_offer_per_customer():
    problem = small_problem(5, eligible=(10, 10))
    problem.profit_draws[:] = 5.0  # everything profitable: only the cap limits
    alloc = BudgetAllocator([TotalBudget(1e6), ContactCap(1), CellCap()]).solve(problem)
    per_seg = alloc.table.groupby("segment")["customers"].sum()
    assert (per_seg == 10).all()
    assert set(alloc.binding_constraints) >= {"contact_cap"}
    two = BudgetAllocator([TotalBudget(1e6), ContactCap(2), CellCap()]).solve(problem)
    assert (two.table.groupby("segment")["customers"].sum() == 20).all()


def test_budget_binds_and_intervals_come_from_draws():
    problem = small_problem(6, eligible=(100, 100))
    alloc = BudgetAllocator([TotalBudget(50.0), ContactCap(), CellCap()]).solve(problem)
    assert alloc.total_spend == pytest.approx(50.0, abs=2.0)
    assert "total_budget" in alloc.binding_constraints
    t = alloc.table
    used = t[t["customers"] > 0]
    assert (used["profit_hdi_low"] <= used["expected_incremental_profit"]).all()
    assert (used["expected_incremental_profit"] <= used["profit_hdi_high"]).all()
    assert alloc.expected_profit == pytest.approx(t["expected_incremental_profit"].sum())


def test_from_uplift_builds_profit_draws():
    arms = ArmMap.from_mapping(
        {"c": {"tactic": "control"}, "x": {"tactic": "cross_sell", "cost": 2.0}}
    )
    up = xr.DataArray(
        np.full((4, 1, 2), 0.1),
        dims=("sample", "arm", "segment"),
        coords={"arm": ["x"], "segment": ["s1", "s2"]},
    )
    values = pd.Series({"s1": 30.0, "s2": 10.0})
    p = AllocationProblem.from_uplift(
        {"cross_sell": up}, values, arms, pd.Series({"s1": 5.0, "s2": 5.0})
    )
    assert np.allclose(p.profit_draws[0], [0.1 * 30 - 2, 0.1 * 10 - 2])


def test_bad_draws_rejected():
    problem = small_problem(0)
    with pytest.raises(ValueError, match="NaN"):
        AllocationProblem(problem.cells, np.full((3, 4), np.nan), problem.eligible)
