"""Benchmark: where the posterior plan loses to the oracle on the crossed scenario, uplift or value.

On ``bench/crossed_decisions.py``'s scenario (same generator, same "Your own data" route,
cross-fitting off), each seed's plans from the same allocator are scored with the true profit:

  - posterior: the pipeline's plan;
  - post_uplift x true_value: posterior mean uplift per cell x the true value per conversion;
  - true_uplift x post_value: the true uplift x the pipeline's (pooled) value per conversion;
  - true_uplift x raw_value: the true uplift x margin x the segment's raw mean revenue per buyer;
  - dim_plugin: the difference-in-means plug-in of crossed_decisions.py.

A plan that keeps the oracle's profit with the true uplift and the estimated value loses
nothing on the value side: the loss is the uplift estimates'. Also printed: the uplift RMSE per
cell and the relative error of the values.

    python bench/crossed_loss_split.py [--seeds 2] [--first-seed 1] [--customers 200000] \
        [--deviation-scale 1.0] [overrides...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import uplift
from uplift.pipeline import build_allocator

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crossed_decisions as cd  # noqa: E402  (the scenario, route and scoring)


def split_seed(
    seed: int, n: int, extra: list[str], deviation_scale: float = 1.0
) -> dict[str, float]:
    budget = cd.default_budget(n)
    with tempfile.TemporaryDirectory(prefix=f"loss-split-{seed}-") as tmp:
        work = Path(tmp)
        csv = work / "customers.csv"
        ov = cd.user_overrides(csv, budget, extra=["evaluate.crossfit_folds=0", *extra])
        margin = float(uplift.compose_config(ov).value.margin)
        customers, truth = cd.generate_crossed(
            seed, n, margin=margin, deviation_scale=deviation_scale
        )
        customers.to_csv(csv, index=False)
        run = cd.run_pipeline(ov, work, single_pass=True)
    res, config = run.result, run.config
    problem, post_value, raw_value = cd.decision_problem(res, config)
    control = res.data.arm_map.control.name
    true_pc = cd.true_profit_per_customer(problem, truth)
    key = pd.MultiIndex.from_frame(problem.cells[["segment", "arm"]])
    t = truth.set_index(["segment", "arm"]).reindex(key)
    tv, tu = t["true_value_per_conversion"].to_numpy(), t["true_uplift"].to_numpy()
    segs = problem.cells["segment"]
    pv, rv = post_value.reindex(segs).to_numpy(), raw_value.reindex(segs).to_numpy()
    draws = {tactic: fit.draws() for tactic, fit in res.fits.items()}
    pu = np.array(
        [
            float(draws[res.data.arm_map[a].tactic.value].sel(arm=a, segment=s).mean())
            for s, a in zip(problem.cells["segment"], problem.cells["arm"], strict=True)
        ]
    )
    cost, alloc = problem.cost, build_allocator(config)
    plans = {
        "oracle": cd.plan_of(alloc, problem, true_pc),
        "posterior": cd.posterior_plan(res, problem),
        "post_uplift x true_value": cd.plan_of(alloc, problem, pu * tv - cost),
        "true_uplift x post_value": cd.plan_of(alloc, problem, tu * pv - cost),
        "true_uplift x raw_value": cd.plan_of(alloc, problem, tu * rv - cost),
        "dim_plugin": cd.plan_of(
            alloc, problem, cd.dim_plugin_profit(problem, res.cells, raw_value, control)
        ),
    }
    oracle = float(true_pc @ plans["oracle"])
    out = {k: float(true_pc @ x) / oracle for k, x in plans.items() if k != "oracle"}
    out["uplift RMSE"] = float(np.sqrt(np.mean((pu - tu) ** 2)))
    out["value rel. error (pooled)"] = float(np.sqrt(np.mean((pv / tv - 1) ** 2)))
    out["value rel. error (raw)"] = float(np.sqrt(np.mean((rv / tv - 1) ** 2)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--customers", type=float, default=200_000)
    ap.add_argument(
        "--deviation-scale",
        type=float,
        default=1.0,
        help="multiply the SDs of the arms' seeded deviations (crossed_decisions' second scenario)",
    )
    args, extra = ap.parse_known_args()
    rows = {}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        rows[seed] = split_seed(seed, int(args.customers), extra, args.deviation_scale)
        print(
            f"seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in rows[seed].items()), flush=True
        )
    table = pd.DataFrame(rows).T
    print("\nshare of the oracle's true profit (and errors), mean over seeds:")
    print(table.mean().round(4).to_string())


if __name__ == "__main__":
    main()
