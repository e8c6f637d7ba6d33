"""Allocator: exact optimum vs brute-force enumeration, risk behaviour, rounding, spend response.

Brute force here is written independently of the library (own spend, share and tail-mean
arithmetic), so agreement is evidence, not a tautology.
"""

from __future__ import annotations

import itertools

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
    LossProbability,
    MeanCVaR,
    MinTierShare,
    ROIFloor,
    SaturatingResponse,
    TacticCapacity,
    TacticSpend,
    TotalBudget,
)

SEGMENTS = ["high/x", "low/x"]


def small_problem(seed: int, eligible=(3, 2), draws: int = 40) -> AllocationProblem:
    rng = np.random.default_rng(seed)
    cells = pd.DataFrame(
        {
            "segment": ["high/x", "high/x", "low/x", "low/x"],
            "tactic": ["cross_sell", "up_sell", "cross_sell", "up_sell"],
            "arm": ["c", "u", "c", "u"],
            "cost": [1.0, 2.0, 1.0, 2.0],
        }
    )
    loc = rng.uniform(-0.5, 2.0, 4)
    scale = rng.uniform(0.2, 3.0, 4)
    common = rng.normal(size=(draws, 1))
    draws_ = loc + scale * (0.7 * common + 0.7 * rng.normal(size=(draws, 4)))
    return AllocationProblem(cells, draws_, pd.Series(eligible, index=SEGMENTS, dtype=float))


def worst_mean(values: np.ndarray, k: int) -> float:
    """Mean of the k smallest values (alpha x S = k, an integer, in these tests)."""
    return float(np.sort(values)[:k].mean())


def brute_force(problem: AllocationProblem, score, feasible) -> float:
    elig = problem.cell_eligible.astype(int)
    best = -np.inf
    for x in itertools.product(*[range(e + 1) for e in elig]):
        x = np.array(x, dtype=float)
        if feasible(x):
            best = max(best, score(problem.profit_draws @ x))
    return best


def base_feasible(problem: AllocationProblem, budget: float, offers: int = 1):
    seg = problem.cells["segment"].to_numpy()

    def ok(x: np.ndarray) -> bool:
        if problem.cost @ x > budget + 1e-9:
            return False
        return all(x[seg == s].sum() <= offers * problem.eligible[s] + 1e-9 for s in SEGMENTS)

    return ok


OBJECTIVES = {
    "expected": (ExpectedProfit(), lambda p: float(p.mean())),
    "cvar": (CVaR(alpha=0.1), lambda p: worst_mean(p, 4)),
    "mean_cvar": (
        MeanCVaR(alpha=0.25, risk_aversion=0.7),
        lambda p: float(p.mean()) + 0.7 * worst_mean(p, 10),
    ),
}


@pytest.mark.parametrize("objective", list(OBJECTIVES))
@pytest.mark.parametrize("seed, budget", [(0, 5.0), (1, 3.0), (2, 100.0), (3, 7.0)])
def test_objectives_match_brute_force(objective, seed, budget):
    problem = small_problem(seed)
    obj, score = OBJECTIVES[objective]
    alloc = BudgetAllocator([TotalBudget(budget), ContactCap(), CellCap()], objective=obj).solve(
        problem
    )
    expected = brute_force(problem, score, base_feasible(problem, budget))
    assert alloc.objective_value == pytest.approx(expected, abs=1e-6)
    assert alloc.status == "optimal" and alloc.solver == "HIGHS" and alloc.solve_seconds > 0


def rich_rules(problem: AllocationProblem):
    """Every business rule at once, plus an independent feasibility check for brute force."""
    seg = problem.cells["segment"].to_numpy()
    tac = problem.cells["tactic"].to_numpy()
    cost = problem.cost
    rules = [
        TotalBudget(8.0),
        ContactCap(2),
        CellCap(),
        TacticSpend("up_sell", min_spend=2.0, max_spend=4.0),
        TacticCapacity("cross_sell", slots=3),
        MinTierShare(0.5, segments=["high"]),
        ROIFloor(min_roi=0.2),
    ]

    def ok(x: np.ndarray) -> bool:
        spend = cost @ x
        up = cost[tac == "up_sell"] @ x[tac == "up_sell"]
        return (
            spend <= 8.0 + 1e-9
            and all(x[seg == s].sum() <= 2 * problem.eligible[s] for s in SEGMENTS)
            and 2.0 - 1e-9 <= up <= 4.0 + 1e-9
            and x[tac == "cross_sell"].sum() <= 3
            and cost[seg == "high/x"] @ x[seg == "high/x"] >= 0.5 * spend - 1e-9
            and (problem.profit_draws @ x).mean() >= 0.2 * spend - 1e-9
        )

    return rules, ok


@pytest.mark.parametrize("objective", ["expected", "cvar"])
@pytest.mark.parametrize("seed", [4, 5, 6])
def test_all_rules_match_brute_force(objective, seed):
    problem = small_problem(seed, eligible=(3, 3))
    rules, ok = rich_rules(problem)
    obj, score = OBJECTIVES[objective]
    best = brute_force(problem, score, ok)
    if not np.isfinite(best):
        pytest.skip("instance infeasible by construction")
    alloc = BudgetAllocator(rules, objective=obj).solve(problem)
    assert alloc.objective_value == pytest.approx(best, abs=1e-6)
    x = alloc.table["customers"].to_numpy(dtype=float)
    assert ok(x)


def test_quantile_rules_match_brute_force():
    """ROI at a posterior quantile and the loss-probability limit, against sorted tails."""
    problem = small_problem(7, eligible=(3, 3))
    rules = [
        TotalBudget(9.0),
        ContactCap(),
        CellCap(),
        ROIFloor(min_roi=0.1, prob=0.2),
        LossProbability(max_prob=0.1),
    ]
    spend = problem.cost

    def ok(x: np.ndarray) -> bool:
        p = problem.profit_draws @ x
        return (
            base_feasible(problem, 9.0)(x)
            and worst_mean(p - 0.1 * (spend @ x), 8) >= -1e-9
            and worst_mean(p, 4) >= -1e-9
        )

    best = brute_force(problem, lambda p: float(p.mean()), ok)
    alloc = BudgetAllocator(rules).solve(problem)
    assert alloc.objective_value == pytest.approx(best, abs=1e-6)
    # the CVaR bound implies the probability statement on the draws
    p = alloc.total_profit_draws
    assert (p < 0).mean() <= 0.1
    assert (p < 0.1 * alloc.total_spend).mean() <= 0.2


def risky_vs_safe(draws: int = 400) -> AllocationProblem:
    """Segment 'risky': higher mean, wide posterior. Segment 'safe': lower mean, tight."""
    rng = np.random.default_rng(42)
    cells = pd.DataFrame(
        {
            "segment": ["risky", "safe"],
            "tactic": ["retention", "retention"],
            "arm": ["r", "r"],
            "cost": [1.0, 1.0],
        }
    )
    d = np.column_stack([rng.normal(2.0, 4.0, draws), rng.normal(1.0, 0.2, draws)])
    return AllocationProblem(cells, d, pd.Series({"risky": 100.0, "safe": 100.0}))


def test_cvar_moves_budget_to_safe_segment():
    problem = risky_vs_safe()
    rules = [TotalBudget(100.0), ContactCap(), CellCap()]
    ev = BudgetAllocator(rules).solve(problem).table.set_index("segment")["spend"]
    cv = BudgetAllocator(rules, objective=CVaR(0.1)).solve(problem).table.set_index("segment")
    assert ev["risky"] == 100 and ev["safe"] == 0
    # CVaR keeps a sliver of the risky segment (independent draws diversify) but moves the budget
    assert cv.loc["safe", "spend"] >= 90 and cv.loc["risky", "spend"] <= 10
    # ... and that split is the exact CVaR optimum over every integer split
    d = problem.profit_draws
    best = max(
        worst_mean(d @ np.array([a, b], dtype=float), 40)
        for a in range(101)
        for b in range(101 - a)
    )
    assert cv["expected_incremental_profit"].sum() > 0
    assert worst_mean(d @ cv["customers"].to_numpy(dtype=float), 40) == pytest.approx(best)
    # a moderate mean-CVaR weight sits in between or at the safe end, never at pure risky
    mc = BudgetAllocator(rules, objective=MeanCVaR(0.1, 1.0)).solve(problem)
    assert mc.table.set_index("segment").loc["safe", "spend"] > 0


def test_round_method_is_close_to_milp_and_reports_gap():
    problem = risky_vs_safe(draws=300)
    problem.profit_draws[:, 0] += 0.3
    rules = [TotalBudget(57.5), ContactCap(), CellCap(), LossProbability(0.05)]
    milp = BudgetAllocator(rules, objective=CVaR(0.2)).solve(problem)
    rnd = BudgetAllocator(rules, objective=CVaR(0.2), integer_method="round").solve(problem)
    assert rnd.method in ("lp_round", "milp")
    assert rnd.objective_value <= milp.objective_value + 1e-7
    if rnd.method == "lp_round":
        assert rnd.rounding_gap is not None and rnd.rounding_gap >= -1e-9
        # the LP bound caps the integer optimum: the reported gap bounds our loss
        assert milp.objective_value - rnd.objective_value <= rnd.rounding_gap + 1e-7
    x = rnd.table["customers"].to_numpy()
    assert np.allclose(x, np.round(x)) and rnd.total_spend <= 57.5 + 1e-9


def test_table_reports_binding_rules_and_probabilities():
    problem = small_problem(8, eligible=(10, 10))
    problem.profit_draws[:] = np.abs(problem.profit_draws) + 0.1
    alloc = BudgetAllocator([TotalBudget(1e6), ContactCap(), CellCap()]).solve(problem)
    t = alloc.table
    assert {"prob_profit_positive", "binding_constraints", "unit", "decision"} <= set(t.columns)
    assert (t["prob_profit_positive"] == 1.0).all()
    treated = t[t["customers"] > 0]
    assert treated["binding_constraints"].str.contains("contact_cap").all()
    assert "total_budget" not in alloc.binding_constraints
    rep = alloc.constraint_report.set_index("constraint")
    assert rep.loc["total_budget", "slack"] > 0 and not rep.loc["total_budget", "binding"]
    s = alloc.summary()
    assert s["status"] == "optimal" and s["solver"] == "HIGHS" and s["solve_seconds"] >= 0


# ---- spend-type tactics with a saturating response -------------------------------------------
def spend_problem(form: str) -> AllocationProblem:
    rng = np.random.default_rng(3)
    S = 150
    cells = pd.DataFrame(
        {
            "segment": ["a", "a", "b"],
            "tactic": ["cross_sell", "frequency", "frequency"],
            "arm": ["e", "ads_a", "ads_b"],
            "cost": [1.0, 1.0, 1.0],
            "unit": ["customers", "spend", "spend"],
        }
    )
    d = np.column_stack([rng.normal(0.8, 0.5, S), -np.ones(S), -np.ones(S)])
    ceiling = np.column_stack([rng.gamma(20, 10, S), rng.gamma(10, 10, S)])
    scale = np.column_stack([rng.gamma(20, 2, S), rng.gamma(20, 1, S)])
    resp = SaturatingResponse(ceiling, scale, max_spend=[300, 300], form=form)
    return AllocationProblem(cells, d, pd.Series({"a": 50.0, "b": 10.0}), response=resp)


def grid_best(problem: AllocationProblem, tail_k: int | None, budget: float) -> float:
    """Best objective over a 0.5-step spend grid x every customer count (vectorised)."""
    resp = problem.response
    step = 0.5
    grid = np.arange(0.0, budget + step / 2, step)
    g1 = np.column_stack([resp.value(np.array([v, 0.0]))[:, 0] for v in grid])  # (S, n)
    g2 = np.column_stack([resp.value(np.array([0.0, v]))[:, 1] for v in grid])
    d0 = problem.profit_draws[:, 0]
    best = -np.inf
    for xe in range(0, 51):
        room = budget - xe
        for i, s1 in enumerate(grid[grid <= room + 1e-9]):
            j = int(np.floor((room - s1) / step + 1e-9)) + 1
            p = (d0 * xe - s1 + g1[:, i])[:, None] + g2[:, :j] - grid[None, :j]
            score = p.mean(axis=0) if tail_k is None else np.sort(p, axis=0)[:tail_k].mean(axis=0)
            best = max(best, float(score.max()))
    return best


@pytest.mark.parametrize("form", ["exponential", "hill"])
@pytest.mark.parametrize("objective", [ExpectedProfit(), CVaR(0.2)])
def test_saturating_response_exact_and_piecewise(form, objective):
    problem = spend_problem(form)
    rules = [TotalBudget(120.0), ContactCap(), CellCap()]
    exact = BudgetAllocator(
        rules, objective=objective, integer=False, solver="CLARABEL", response_method="exact"
    ).solve(problem)
    pwl = BudgetAllocator(rules, objective=objective, integer=False).solve(problem)
    grid = grid_best(problem, None if isinstance(objective, ExpectedProfit) else 30, 120.0)
    # the conic optimum is at least as good as any grid point, and not better by much
    assert exact.objective_value >= grid - 1e-3 * abs(grid)
    assert exact.objective_value <= grid + 0.01 * abs(grid)
    # piecewise-linear: an LP for HiGHS, within 0.5% of the exact optimum, and its model value
    # (the solver bound) never overstates the exact profit of the plan it picks
    assert pwl.objective_value >= exact.objective_value * (1 - 5e-3)
    assert pwl.bound <= pwl.objective_value + 1e-6
    assert (pwl.table["unit"] == ["customers", "spend", "spend"]).all()


def test_spend_cells_need_a_response_and_exact_needs_a_conic_solver():
    problem = spend_problem("exponential")
    with pytest.raises(ValueError, match="no response was given"):
        AllocationProblem(problem.cells, problem.profit_draws, problem.eligible)
    with pytest.raises(Exception, match="CLARABEL"):
        BudgetAllocator([TotalBudget(10.0)], integer=False, response_method="exact").solve(problem)
    with pytest.raises(Exception, match="integer_method='round'"):
        BudgetAllocator([TotalBudget(10.0)], solver="CLARABEL", response_method="exact").solve(
            problem
        )


def test_excluded_segment_gets_nothing_even_when_best():
    problem = small_problem(9, eligible=(5, 5))
    problem.profit_draws[:, :2] += 5.0  # 'high' is by far the best
    alloc = BudgetAllocator(
        [TotalBudget(6.0), ContactCap(), CellCap(), ExcludeSegments(["high"])]
    ).solve(problem)
    t = alloc.table.set_index(["segment", "tactic"])
    assert t.loc["high/x", "customers"].sum() == 0
    assert "excluded_segments" in alloc.binding_constraints


def test_round_falls_back_to_milp_when_rounding_breaks_a_rule():
    problem = small_problem(10, eligible=(5, 5))
    problem.profit_draws[:, [0, 2]] = -1.0  # cross_sell loses money, but a minimum is committed
    rules = [TotalBudget(100.0), ContactCap(), CellCap(), TacticSpend("cross_sell", min_spend=2.5)]
    rnd = BudgetAllocator(rules, integer_method="round").solve(problem)
    milp = BudgetAllocator(rules).solve(problem)
    assert rnd.method == "milp" and any("rounding down broke" in n for n in rnd.notes)
    assert rnd.objective_value == pytest.approx(milp.objective_value)
    assert rnd.table.groupby("tactic")["spend"].sum()["cross_sell"] >= 2.5


def test_plan_by_arm_sums_each_arms_draws_not_its_cells_intervals():
    """Per-arm totals: customers, spend and the posterior of the arm's profit summed draw by
    draw over its cells. Cells here are anti-correlated within an arm, so adding up cell HDIs
    (the wrong way) gives a far wider interval than the arm's own."""
    from uplift.stats import hdi

    rng = np.random.default_rng(5)
    cells = pd.DataFrame(
        {
            "segment": ["a", "b", "d", "e"],
            "tactic": ["cross_sell", "cross_sell", "up_sell", "up_sell"],
            "arm": ["c", "c", "u", "u"],
            "cost": [1.0, 1.0, 1.0, 1.0],
        }
    )
    z = rng.normal(size=(4000, 1))
    draws = np.column_stack([2 + z[:, 0], 2 - z[:, 0], 1.5 + rng.normal(size=4000), -3.0 - z[:, 0]])
    problem = AllocationProblem(cells, draws, pd.Series(10.0, index=["a", "b", "d", "e"]))
    alloc = BudgetAllocator([TotalBudget(25.0), ContactCap()]).solve(problem)
    by_arm = alloc.by_arm(problem, hdi_prob=0.9).set_index("arm")
    x = alloc.table["decision"].to_numpy()
    assert x.tolist() == [10.0, 10.0, 5.0, 0.0]  # c in a and b, u with what is left in d
    total_c = draws[:, [0, 1]] @ x[[0, 1]]
    lo, hi = hdi(total_c, 0.9)
    c = by_arm.loc["c"]
    assert (c["customers"], c["segments"], c["spend"]) == (20, 2, 20.0)
    assert c["expected_profit"] == pytest.approx(total_c.mean())
    assert (c["profit_hdi_low"], c["profit_hdi_high"]) == pytest.approx((lo, hi))
    assert hi - lo < 1.0  # the common shock cancels within the arm
    cell_rows = alloc.table[alloc.table["arm"] == "c"]
    summed = (cell_rows["profit_hdi_high"] - cell_rows["profit_hdi_low"]).sum()
    assert summed > 20 * (hi - lo)  # adding up cell intervals would be wrong by far
    u = by_arm.loc["u"]
    assert (u["customers"], u["segments"]) == (5, 1)
    assert u["prob_loss"] == pytest.approx(float((draws[:, 2] * 5 < 0).mean()))
    assert u["prob_profit_positive"] + u["prob_loss"] == pytest.approx(1.0)
    # the arms' draws add up to the plan's
    assert by_arm["expected_profit"].sum() == pytest.approx(alloc.expected_profit)
    with pytest.raises(ValueError, match="problem this allocation was solved on"):
        alloc.by_arm(small_problem(0))
