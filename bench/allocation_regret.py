"""Benchmark: true profit of allocations chosen four ways, on synthetic data with known truth.

For each seed: fit the posterior (the real pipeline), then allocate the same budget by
  - posterior: the pipeline's allocation (expected profit over posterior draws);
  - oracle: the same MILP given the true profit per customer;
  - t_learner: the same MILP given point estimates (per-segment difference in means, no pooling);
  - uniform: the budget spread evenly over every (segment, arm) cell.
and score each with the TRUE profit per customer. Prints per-seed figures and the ratio to the
oracle (measured in the same run).

    python bench/allocation_regret.py [--seeds 5] [--customers 120000] [--budget 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

import uplift
from uplift.optimize import AllocationProblem
from uplift.pipeline import build_allocator
from uplift.report.truth import true_profit_per_customer


def t_learner_profit(problem: AllocationProblem, cells, values) -> np.ndarray:
    """Point estimate per decision cell: value x (p_treated - p_control) - cost, from raw means."""
    rate = (cells["conversions"] / cells["n"]).to_numpy()
    by = dict(zip(zip(cells["arm"], cells["segment"], strict=True), rate, strict=True))
    control = cells.loc[cells["tactic"] == "control", ["segment", "conversions", "n"]].set_index(
        "segment"
    )
    p0 = control["conversions"] / control["n"]
    out = []
    for _, c in problem.cells.iterrows():
        v = float(values[c["tactic"]].loc[c["segment"]])
        out.append(v * (by[(c["arm"], c["segment"])] - p0.loc[c["segment"]]) - c["cost"])
    return np.array(out)


def true_profit_of_plan(
    allocator, problem: AllocationProblem, truth: np.ndarray, draws: np.ndarray
) -> float:
    """Plan with ``draws`` as the single scenario, score the plan with the true profit."""
    plan = allocator.solve(AllocationProblem(problem.cells, draws[None, :], problem.eligible))
    return float(truth @ plan.table["customers"].to_numpy(dtype=float))


def uniform_allocation(problem: AllocationProblem, budget: float) -> np.ndarray:
    per_cell = budget / len(problem.cells)
    arms_per_segment = problem.cells.groupby("segment")["arm"].transform("count").to_numpy()
    cap = np.floor(problem.cell_eligible / arms_per_segment)
    return np.minimum(np.floor(per_cell / problem.cost), cap)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--customers", type=int, default=120_000)
    ap.add_argument("--budget", type=float, default=20_000)
    ap.add_argument(
        "overrides", nargs="*", help="extra config overrides, e.g. model.pool_by_dimensions=true"
    )
    args = ap.parse_args()
    rows = []
    print(
        f"{'seed':>4} {'oracle':>9} {'posterior':>9} {'t_learner':>9} {'uniform':>9}  (true profit; ratio to oracle)"
    )
    for seed in range(1, args.seeds + 1):
        t0 = time.perf_counter()
        config = uplift.compose_config(
            [
                f"data.synthetic.seed={seed}",
                f"data.synthetic.n_customers={args.customers}",
                f"optimize.budget={args.budget}",
                "report.plots=false",
                "report.save_posteriors=false",
                "optimize.allow_unconverged=true",
                *args.overrides,
            ]
        )
        res = uplift.run(config, tempfile.mkdtemp(prefix="regret-"))
        from uplift.value.per_conversion import value_per_unit

        values = {t: value_per_unit("conversion", res.cells, config.value) for t in res.fits}
        problem = AllocationProblem.from_uplift(
            {t: f.draws() for t, f in res.fits.items()},
            values,
            res.data.arm_map,
            res.allocation.table.groupby("segment")["eligible_customers"].first(),
        )
        truth = true_profit_per_customer(problem, res.truth, config.value.margin)
        allocator = build_allocator(config)

        oracle = true_profit_of_plan(allocator, problem, truth, truth)
        posterior = float(truth @ res.allocation.table["customers"].to_numpy(dtype=float))
        t_learner = true_profit_of_plan(
            allocator, problem, truth, t_learner_profit(problem, res.cells, values)
        )
        uniform = float(truth @ uniform_allocation(problem, args.budget))
        rows.append((oracle, posterior, t_learner, uniform))
        print(
            f"{seed:>4} {oracle:9,.0f} {posterior:9,.0f} {t_learner:9,.0f} {uniform:9,.0f}  "
            f"({posterior / oracle:.3f} / {t_learner / oracle:.3f} / {uniform / oracle:.3f})  "
            f"gate passed: {res.summary['gate']['passed']}, {time.perf_counter() - t0:.0f}s"
        )
    r = np.array(rows)
    ratio = r[:, 1:] / r[:, [0]]
    print(
        f"mean ratio to oracle: posterior {ratio[:, 0].mean():.3f}, t_learner {ratio[:, 1].mean():.3f}, uniform {ratio[:, 2].mean():.3f}"
    )
    print(
        f"posterior beats t_learner in {(r[:, 1] > r[:, 2]).sum()}/{len(r)} seeds, uniform in {(r[:, 1] > r[:, 3]).sum()}/{len(r)}"
    )


if __name__ == "__main__":
    main()
