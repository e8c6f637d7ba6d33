"""Benchmark (not a test): CVaR budget allocation and a budget frontier at realistic size.

    .venv/bin/python bench/allocation_bench.py [--segments 50] [--tactics 6] [--draws 2000]

Prints wall time (model build + solve), solver time, status and objective for:
  1. CVaR(10%) allocation solved as LP then rounded ("round") vs the exact MILP,
  2. the same with a scenario subsample (how far the plan drifts when fewer draws are used),
  3. a 20-point budget frontier (one compiled problem, budget a cvxpy Parameter),
  4. optionally (--spend) spend-type cells with a saturating response (piecewise-linear LP).
Synthetic draws, seeded.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from uplift.optimize import (
    AllocationProblem,
    BudgetAllocator,
    CellCap,
    ContactCap,
    CVaR,
    ExpectedProfit,
    LossProbability,
    MinTierShare,
    SaturatingResponse,
    TacticCapacity,
    TotalBudget,
)

TACTICS = ["cross_sell", "up_sell", "frequency", "margin", "retention", "referral"]
TIERS = ["low", "mid", "high"]


def synthetic(n_seg: int, n_tac: int, draws: int, seed: int = 0) -> AllocationProblem:
    """Profit per treated customer = value x uplift - cost, with shared posterior factors."""
    rng = np.random.default_rng(seed)
    segs = [f"{TIERS[i % 3]}/n{i:02d}" for i in range(n_seg)]
    value = np.array([{"low": 20.0, "mid": 45.0, "high": 110.0}[s.split("/")[0]] for s in segs])
    cost = rng.uniform(0.5, 6.0, n_tac)
    mu = rng.normal(0.03, 0.03, (n_seg, n_tac))
    sd = rng.uniform(0.005, 0.05, (n_seg, n_tac))
    tac_factor = rng.normal(size=(draws, 1, n_tac))  # each tactic's effect shared by segments
    noise = rng.normal(size=(draws, n_seg, n_tac))
    uplift = mu + sd * (0.6 * tac_factor + 0.8 * noise)
    profit = value[None, :, None] * uplift - cost[None, None, :]
    cells = pd.DataFrame(
        [
            {"segment": s, "tactic": t, "arm": t, "cost": cost[j]}
            for s in segs
            for j, t in enumerate(TACTICS[:n_tac])
        ]
    )
    eligible = pd.Series(rng.integers(500, 5000, n_seg).astype(float), index=segs)
    return AllocationProblem(cells, profit.reshape(draws, n_seg * n_tac), eligible)


def rules(problem: AllocationProblem, budget: float) -> list:
    out = [
        TotalBudget(budget),
        ContactCap(1),
        CellCap(),
        MinTierShare(0.4, segments=["high"]),
        LossProbability(0.05),
    ]
    if "retention" in problem.tactics:
        out.append(TacticCapacity("retention", slots=3000))  # call-centre slots
    return out


def run(label: str, allocator: BudgetAllocator, problem: AllocationProblem):
    t0 = time.perf_counter()
    a = allocator.solve(problem)
    wall = time.perf_counter() - t0
    lo, hi = a.profit_interval(0.94)
    print(
        f"{label:<34} wall {wall:7.2f}s solver {a.solver_seconds or 0:7.2f}s  {a.status:<10} "
        f"{a.method:<8} objective {a.objective_value:12,.1f}  E[profit] {a.expected_profit:12,.1f} "
        f"[{lo:,.0f}, {hi:,.0f}]  spend {a.total_spend:10,.0f}  gap {a.rounding_gap}"
    )
    return a


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--segments", type=int, default=50)
    ap.add_argument("--tactics", type=int, default=6)
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--frontier", type=int, default=20)
    ap.add_argument("--milp-time-limit", type=float, default=300.0)
    ap.add_argument("--spend", action="store_true", help="also benchmark spend-type cells")
    args = ap.parse_args()

    t0 = time.perf_counter()
    p = synthetic(args.segments, args.tactics, args.draws)
    print(
        f"problem: {args.segments} segments x {args.tactics} tactics = {p.n_cells} cells, "
        f"{p.n_draws} draws (built in {time.perf_counter() - t0:.2f}s)"
    )
    budget = 0.04 * float(p.cost @ p.cell_eligible)
    cons = rules(p, budget)
    print(f"budget {budget:,.0f}; constraints: {', '.join(c.name for c in cons)}")

    ev = run("expected, MILP", BudgetAllocator(cons, ExpectedProfit()), p)
    rnd = run("CVaR(10%), LP + round", BudgetAllocator(cons, CVaR(0.1), integer_method="round"), p)
    milp = run(
        "CVaR(10%), MILP",
        BudgetAllocator(cons, CVaR(0.1), time_limit=args.milp_time_limit),
        p,
    )
    print(
        f"  round vs MILP objective: {rnd.objective_value - milp.objective_value:+,.3f} "
        f"({(rnd.objective_value - milp.objective_value) / abs(milp.objective_value):+.2e} rel); "
        f"MILP gap reported {milp.mip_gap}; LP bound {rnd.bound:,.3f}"
    )
    moved = np.abs(rnd.table["customers"] - milp.table["customers"]).sum()
    print(
        f"  customers moved between the two plans: {moved:,.0f} of {milp.table['customers'].sum():,.0f}"
    )
    print(
        f"  CVaR plan vs expected plan: E[profit] {milp.expected_profit:,.0f} vs {ev.expected_profit:,.0f}, "
        f"P(loss) {(milp.total_profit_draws < 0).mean():.3f} vs {(ev.total_profit_draws < 0).mean():.3f}"
    )

    # scenario reduction: optimise on a subsample, evaluate on all draws
    rng = np.random.default_rng(1)
    for n in (250, 500, 1000):
        if n >= p.n_draws:
            continue
        keep = rng.choice(p.n_draws, n, replace=False)
        sub = AllocationProblem(p.cells, p.profit_draws[keep], p.eligible)
        t0 = time.perf_counter()
        a = BudgetAllocator(cons, CVaR(0.1), integer_method="round").solve(sub)
        wall = time.perf_counter() - t0
        full = CVaR(0.1).evaluate(p.scenario_profit(a.table["customers"].to_numpy(float)))
        print(
            f"CVaR(10%), round, {n:>4} draws        wall {wall:7.2f}s  out-of-sample CVaR "
            f"{full:12,.1f} ({(full - milp.objective_value) / abs(milp.objective_value):+.2%} vs all draws)"
        )

    budgets = np.linspace(0.005, 0.1, args.frontier) * float(p.cost @ p.cell_eligible)
    for obj in (ExpectedProfit(), CVaR(0.1)):
        t0 = time.perf_counter()
        f = BudgetAllocator(cons, obj, integer=False).frontier(p, budgets)
        wall = time.perf_counter() - t0
        print(
            f"frontier {len(budgets)} points, {obj.name:<16} wall {wall:7.2f}s "
            f"({wall / len(budgets):.2f}s/point, first {f.table['solve_seconds'].iloc[0]:.2f}s)"
        )
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(
                f.table[
                    [
                        "budget",
                        "status",
                        "expected_profit",
                        "profit_hdi_low",
                        "profit_hdi_high",
                        "marginal_return",
                        "marginal_return_fd",
                        "binding_constraints",
                    ]
                ]
                .iloc[:: max(1, len(budgets) // 5)]
                .to_string(index=False, float_format=lambda v: f"{v:,.3f}")
            )

    if args.spend:
        spend_bench(args)


def spend_bench(args: argparse.Namespace) -> None:
    """One spend-type tactic per segment with a saturating response (exponential)."""
    rng = np.random.default_rng(2)
    n, S = args.segments, min(args.draws, 1000)
    segs = [f"{TIERS[i % 3]}/n{i:02d}" for i in range(n)]
    cells = pd.DataFrame(
        {"segment": segs, "tactic": "frequency", "arm": "ads", "cost": 1.0, "unit": "spend"}
    )
    ceiling = rng.gamma(10, 1, (S, n)) * rng.uniform(500, 5000, n)
    scale = rng.gamma(20, 1, (S, n)) * rng.uniform(20, 200, n) / 20
    resp = SaturatingResponse(ceiling, scale, max_spend=np.full(n, 2000.0))
    p = AllocationProblem(cells, -np.ones((S, n)), pd.Series(1000.0, index=segs), response=resp)
    cons = [TotalBudget(0.3 * 2000 * n)]
    for label, obj in (("expected", ExpectedProfit()), ("CVaR(10%)", CVaR(0.1))):
        for bp in (12, 24):
            t0 = time.perf_counter()
            a = BudgetAllocator(cons, obj, integer=False, n_breakpoints=bp).solve(p)
            print(
                f"spend cells {n} x {S} draws, {label}, {bp} breakpoints (pwl/HiGHS): "
                f"wall {time.perf_counter() - t0:.2f}s objective {a.objective_value:,.1f} "
                f"(model value {a.bound:,.1f})"
            )


if __name__ == "__main__":
    main()
