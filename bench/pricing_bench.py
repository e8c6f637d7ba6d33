"""Benchmark (not a test): per-segment pricing on a grid from posterior demand draws.

    .venv/bin/python bench/pricing_bench.py [--segments 50] [--prices 25] [--draws 1000]

Prints wall time, status and objective for:
  1. expected profit + fairness band: band-start enumeration vs the MILP (same optimum?),
  2. expected profit + every rule (fairness, monotone tiers, volume and margin floors): MILP,
  3. CVaR(10%) + fairness: MILP over all draws (time-limited; reports the MIP gap),
and the chosen prices next to cost-plus for a few segments. Synthetic draws, seeded.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from uplift.optimize import (
    CVaR,
    FairnessBand,
    MarginFloor,
    MonotoneTiers,
    PriceBounds,
    PriceOptimizer,
    PricingProblem,
    VolumeFloor,
)

TIERS = ["low", "mid", "high"]


def synthetic(n_seg: int, n_price: int, draws: int, seed: int = 0) -> PricingProblem:
    """Logit purchase probability in price; willingness to pay rises with the value tier."""
    rng = np.random.default_rng(seed)
    groups = max(1, n_seg // 3)
    segs = [f"{TIERS[i % 3]}/g{i // 3:02d}" for i in range(n_seg)]
    tier = np.array([i % 3 for i in range(n_seg)])
    prices = np.linspace(5.0, 30.0, n_price)
    base_wtp = (
        10.0
        + 4.0 * tier
        + rng.normal(0, 1.5, n_seg)
        + rng.normal(0, 1.0, groups)[np.arange(n_seg) // 3 % groups]
    )
    wtp = base_wtp[None, :] + rng.normal(0, 1.0, (draws, 1)) + rng.normal(0, 1.5, (draws, n_seg))
    slope = rng.uniform(2.0, 4.0, n_seg)
    demand = 0.6 / (1.0 + np.exp((prices[None, None, :] - wtp[:, :, None]) / slope[None, :, None]))
    cost = rng.uniform(4.0, 8.0, n_seg)
    return PricingProblem(
        demand=demand,
        prices=prices,
        segments=tuple(segs),
        unit_cost=cost,
        customers=rng.integers(1_000, 20_000, n_seg).astype(float),
        current_price=np.clip(cost * 1.6, prices[0], prices[-1]),
    )


def run(label: str, opt: PriceOptimizer, p: PricingProblem):
    t0 = time.perf_counter()
    r = opt.solve(p)
    wall = time.perf_counter() - t0
    lo, hi = r.profit_interval(0.94)
    s = r.summary()
    print(
        f"{label:<44} wall {wall:8.3f}s (solve {r.solve_seconds:7.3f}s)  {r.status:<10} "
        f"{r.method:<9} objective "
        f"{r.objective_value:14,.1f}  E[profit] {r.expected_profit:14,.1f} [{lo:,.0f}, {hi:,.0f}]  "
        f"vs cost-plus {s['gain_over_cost_plus']:+,.0f}  mip_gap {r.mip_gap}"
    )
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--segments", type=int, default=50)
    ap.add_argument("--prices", type=int, default=25)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--time-limit", type=float, default=300.0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    p = synthetic(args.segments, args.prices, args.draws)
    _ = p.profit_draws
    print(
        f"problem: {args.segments} segments x {args.prices} prices x {args.draws} draws "
        f"(built in {time.perf_counter() - t0:.2f}s)"
    )
    fair = [FairnessBand(1.6), PriceBounds(min_price=6.0), MarginFloor(0.2)]
    enum = run("expected + fairness: enumerate band start", PriceOptimizer(fair), p)
    milp = run(
        "expected + fairness: MILP",
        PriceOptimizer(fair, method="milp", time_limit=args.time_limit),
        p,
    )
    print(
        f"  same optimum: {np.isclose(enum.objective_value, milp.objective_value, rtol=1e-7)} "
        f"(difference {milp.objective_value - enum.objective_value:+.6g})"
    )
    everything = [
        *fair,
        MonotoneTiers(tiers=TIERS),
        VolumeFloor(0.9),
        MarginFloor(0.45, scope="total", name="book_margin"),
    ]
    allr = run(
        "expected + all rules: MILP",
        PriceOptimizer(everything, time_limit=args.time_limit),
        p,
    )
    print(f"  binding: {allr.binding_constraints}")
    cvar = run(
        "CVaR(10%) + fairness: MILP",
        PriceOptimizer(fair, objective=CVaR(0.1), time_limit=args.time_limit),
        p,
    )
    print(
        f"  CVaR plan: E[profit] {cvar.expected_profit:,.0f} vs {enum.expected_profit:,.0f} "
        f"(expected plan); CVaR {cvar.objective_value:,.0f} vs "
        f"{CVaR(0.1).evaluate(enum.total_profit_draws):,.0f}"
    )
    cols = [
        "segment",
        "price",
        "cost_plus_price",
        "expected_demand",
        "expected_profit",
        "profit_hdi_low",
        "profit_hdi_high",
        "cost_plus_expected_profit",
        "binding_constraints",
    ]
    print(allr.table[cols].head(6).to_string(index=False, float_format=lambda v: f"{v:,.1f}"))


if __name__ == "__main__":
    main()
