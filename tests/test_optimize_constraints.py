"""Each allocation rule means what it says: checked on hand-made plans (no solver), then solved.

Also: infeasible setups name exactly the conflicting rules, and config mappings build rules.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uplift.optimize import (
    AllocationProblem,
    BudgetAllocator,
    CellCap,
    ContactCap,
    CVaR,
    ExcludeSegments,
    ExpectedProfit,
    InfeasibleAllocationError,
    LossProbability,
    MeanCVaR,
    MinTierShare,
    ROIFloor,
    TacticCapacity,
    TacticSpend,
    TotalBudget,
    constraints_from_config,
    objective_from_config,
)
from uplift.optimize.risk import tail_mean


def problem(draws: np.ndarray | None = None) -> AllocationProblem:
    """Cells: high/a x {call, email}, low/b x {call, email}; costs call 5, email 1."""
    cells = pd.DataFrame(
        {
            "segment": ["high/a", "high/a", "low/b", "low/b"],
            "tactic": ["retention", "cross_sell", "retention", "cross_sell"],
            "arm": ["call", "email", "call", "email"],
            "cost": [5.0, 1.0, 5.0, 1.0],
        }
    )
    if draws is None:
        draws = np.tile([4.0, 1.0, 3.0, 0.5], (10, 1))
    return AllocationProblem(cells, draws, pd.Series({"high/a": 100.0, "low/b": 200.0}))


X = np.array([10.0, 50.0, 20.0, 100.0])  # spend 50 + 50 + 100 + 100 = 300


# ---- meaning on hand-made plans, no solver -------------------------------------------------
def test_budget_contact_and_cell_caps_without_solver():
    p = problem()
    assert TotalBudget(300.0).slack(X, p) == 0.0
    assert TotalBudget(250.0).violation(X, p) == 50.0
    # contact cap: high/a has 60 of 100 offers used, low/b 120 of 200
    assert ContactCap(1).slack(X, p) == 40.0
    assert ContactCap(1).violation(np.array([80.0, 30.0, 0.0, 0.0]), p) == 10.0
    assert ContactCap(2).violation(np.array([80.0, 30.0, 0.0, 0.0]), p) == 0.0
    assert CellCap().slack(X, p) == 50.0
    assert CellCap().violation(np.array([0.0, 0.0, 0.0, 201.0]), p) == 1.0


def test_tactic_spend_and_capacity_without_solver():
    p = problem()
    # retention spend = 5 x (10 + 20) = 150; cross_sell customers = 150
    assert TacticSpend("retention", max_spend=100.0).violation(X, p) == 50.0
    assert TacticSpend("retention", min_spend=200.0).violation(X, p) == 50.0
    assert TacticSpend("retention", min_spend=100.0, max_spend=150.0).violation(X, p) == 0.0
    assert TacticCapacity("cross_sell", slots=120).violation(X, p) == 30.0
    assert TacticCapacity("retention", slots=30).slack(X, p) == 0.0
    with pytest.raises(ValueError, match="tactics are"):
        TacticSpend("referral", max_spend=1.0).slack(X, p)
    with pytest.raises(ValueError, match="max_spend"):
        TacticSpend("retention", min_spend=5.0, max_spend=1.0)


def test_tier_share_and_exclusion_without_solver():
    p = problem()
    # high/a spend = 50 + 50 = 100 of 300
    rule = MinTierShare(0.5, segments=["high"])
    assert rule.violation(X, p) == pytest.approx(50.0)  # 0.5 x 300 - 100
    assert MinTierShare(1 / 3, segments=["high"]).violation(X, p) == pytest.approx(0.0)
    assert ExcludeSegments(["low"]).violation(X, p) == 100.0
    assert ExcludeSegments(["low/b"]).violation(np.array([1.0, 1.0, 0.0, 0.0]), p) == 0.0
    with pytest.raises(ValueError, match="match no segment"):
        ExcludeSegments(["shed"]).slack(X, p)
    assert ExcludeSegments(["shed"], strict=False).slack(X, p) == np.inf


def test_roi_and_loss_rules_without_solver():
    rng = np.random.default_rng(0)
    draws = rng.normal([1.0, 0.2, -0.5, 0.3], 1.0, size=(200, 4))
    p = problem(draws)
    profit = draws @ X
    spend = p.spend(X)
    assert ROIFloor(0.1).slack(X, p) == pytest.approx(profit.mean() - 0.1 * spend)
    q = ROIFloor(0.0, prob=0.2).slack(X, p)
    assert q == pytest.approx(np.sort(profit)[:40].mean())
    assert LossProbability(0.1, max_tail_loss=5.0).slack(X, p) == pytest.approx(
        np.sort(profit)[:20].mean() + 5.0
    )
    # meaning: a satisfied CVaR bound implies the probability statement on the draws
    for x in rng.uniform(0, 50, size=(50, 4)):
        prof = draws @ x
        if LossProbability(0.1).slack(x, p) >= 0:
            assert (prof < 0).mean() <= 0.1
        if ROIFloor(0.05, prob=0.2).slack(x, p) >= 0:
            assert (prof < 0.05 * p.spend(x)).mean() <= 0.2


def test_tail_mean_fractional_alpha():
    v = np.array([5.0, 1.0, 3.0, 2.0])
    assert tail_mean(v, 0.25) == 1.0
    assert tail_mean(v, 0.375) == pytest.approx((1.0 + 0.5 * 2.0) / 1.5)
    assert tail_mean(v, 1.0) == pytest.approx(v.mean())


# ---- effect with a solver ------------------------------------------------------------------
BASE = [TotalBudget(1e6), ContactCap(), CellCap()]


def solve(rules, p=None, objective=None):
    return BudgetAllocator(rules, objective=objective).solve(p or problem())


def spend_by(alloc, col):
    return alloc.table.groupby(col)["spend"].sum()


def test_each_rule_changes_the_plan_as_stated():
    free = solve(BASE)
    # unconstrained: everyone gets the call (best profit per customer in both segments)
    assert spend_by(free, "tactic")["cross_sell"] == 0

    capped = solve([*BASE, TacticCapacity("retention", slots=50)])
    t = capped.table.groupby("tactic")["customers"].sum()
    assert t["retention"] == 50 and "capacity[retention]" in capped.binding_constraints

    band = solve([*BASE, TacticSpend("retention", max_spend=100.0, min_spend=0.0)])
    assert spend_by(band, "tactic")["retention"] == pytest.approx(100.0)

    forced = solve([*BASE, TacticSpend("cross_sell", min_spend=150.0)])
    assert spend_by(forced, "tactic")["cross_sell"] >= 150.0

    tier = solve([TotalBudget(600.0), ContactCap(), CellCap(), MinTierShare(0.9, ["high"])])
    s = spend_by(tier, "segment")
    assert s["high/a"] >= 0.9 * s.sum() - 1e-9
    assert "min_tier_share" in tier.binding_constraints

    excl = solve([*BASE, ExcludeSegments(["low"])])
    assert spend_by(excl, "segment")["low/b"] == 0


def test_roi_floor_and_loss_limit_with_solver():
    rng = np.random.default_rng(1)
    draws = rng.normal([2.0, 0.3, 6.0, 0.2], [1.0, 0.1, 12.0, 0.1], size=(200, 4))
    p = problem(draws)
    free = solve(BASE, p)
    roi = solve([*BASE, ROIFloor(0.5)], p)
    assert roi.expected_profit >= 0.5 * roi.total_spend - 1e-6
    loss = solve([*BASE, LossProbability(0.05)], p)
    assert (loss.total_profit_draws < 0).mean() <= 0.05
    assert (free.total_profit_draws < 0).mean() > 0.05  # the rule mattered
    assert "loss_probability" in loss.binding_constraints


# ---- infeasibility -------------------------------------------------------------------------
def test_infeasible_names_exactly_the_conflicting_rules():
    rules = [
        TotalBudget(1e4),
        ContactCap(),
        CellCap(),
        TacticSpend("cross_sell", min_spend=10.0),
        MinTierShare(0.5, segments=["high"]),
        ExcludeSegments(["high"]),
        TacticCapacity("retention", slots=10),
    ]
    with pytest.raises(InfeasibleAllocationError) as err:
        solve(rules)
    e = err.value
    assert set(e.conflict.constraints) == {
        "tactic_spend[cross_sell]",
        "min_tier_share",
        "excluded_segments",
    }
    msg = str(e)
    for name in e.conflict.constraints:
        assert name in msg
    assert "total_budget" not in msg.split("smallest relaxation")[0]
    assert e.status == "infeasible" and e.solver == "HIGHS" and e.solve_seconds >= 0


def test_infeasible_budget_vs_minimum_spend_reports_relaxation():
    rules = [TotalBudget(100.0), ContactCap(), CellCap(), TacticSpend("retention", min_spend=150.0)]
    with pytest.raises(InfeasibleAllocationError, match="total_budget") as err:
        solve(rules)
    assert set(err.value.conflict.constraints) == {"total_budget", "tactic_spend[retention]"}
    assert sum(err.value.conflict.relaxation.values()) == pytest.approx(50.0)


# ---- config --------------------------------------------------------------------------------
def test_constraints_and_objective_from_config():
    rules = constraints_from_config(
        [
            {"type": "total_budget", "budget": 500},
            {"type": "contact_cap", "max_offers": 2},
            {"type": "tactic_spend", "tactic": "retention", "max_spend": 100},
            {"type": "tactic_capacity", "tactic": "retention", "slots": 40, "name": "call_centre"},
            {"type": "min_tier_share", "share": 0.3, "segments": "high"},
            {"type": "exclude_segments", "segments": ["shed"], "strict": False},
            {"type": "roi_floor", "min_roi": 0.1, "prob": 0.1},
            {"type": "loss_probability", "max_prob": 0.05},
        ]
    )
    names = [r.name for r in rules]
    assert names[:4] == ["total_budget", "contact_cap", "tactic_spend[retention]", "call_centre"]
    assert rules[4].segments == ("high",)
    with pytest.raises(ValueError, match="use one of"):
        constraints_from_config([{"type": "budget_cap"}])
    with pytest.raises(ValueError, match="does not take"):
        constraints_from_config([{"type": "total_budget", "budget": 1, "limit": 2}])
    with pytest.raises(ValueError, match="unique"):
        constraints_from_config([{"type": "cell_cap"}, {"type": "cell_cap"}])
    assert isinstance(objective_from_config("expected", alpha=0.1), ExpectedProfit)
    assert objective_from_config({"type": "cvar", "alpha": 0.05}) == CVaR(0.05)
    assert objective_from_config("mean_cvar", alpha=0.2, risk_aversion=2.0) == MeanCVaR(0.2, 2.0)
    with pytest.raises(ValueError, match="alpha"):
        CVaR(alpha=0.0)
    with pytest.raises(ValueError, match="does not take"):
        objective_from_config({"type": "expected", "alpha": 0.1})


def test_allocator_and_price_optimizer_from_settings():
    from uplift.optimize import allocator_from_settings, budget_grid, price_optimizer_from_settings

    a = allocator_from_settings(
        500.0,
        objective="cvar",
        alpha=0.2,
        risk_aversion=1.0,
        constraints=[{"type": "contact_cap", "max_offers": 2}, {"type": "cell_cap", "name": "x"}],
    )
    names = [c.name for c in a.constraints]
    assert names == ["total_budget", "cell_cap", "contact_cap", "x"]  # config overrides by name
    assert a.objective == CVaR(0.2)
    assert np.allclose(budget_grid(start=0, stop=100, num=5), [0, 25, 50, 75, 100])
    with pytest.raises(ValueError, match="start, stop"):
        budget_grid(start=0)
    po = price_optimizer_from_settings(constraints=[{"type": "fairness_band", "max_ratio": 1.2}])
    assert po.constraints[0].max_ratio == 1.2 and po.method == "auto"
