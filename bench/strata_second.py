"""Benchmark: customer strata on a second, independent scenario (issue #10, 4).

``customer_targets.py`` measures the stratum plan on ``crossed_decisions``' generator (a hidden
modifier that ``tenure`` partly reveals, crossed segments). This one shares none of it: the
covariate model's own test generator (:func:`uplift.models.covariate.
simulate_covariate_experiment`): one tactic with two e-mail arms, logistic effects that grow
with ``age`` (arm a) and fall with ``tenure`` (arm b), segments = ``region`` (3), covariates
``age`` and ``tenure`` declared, value 30 per conversion (``value=constant``), cost 1 a
customer, budget for a fifth of the base. Every list is scored with each listed customer's own
true profit (``30 x true uplift - 1``) and printed as a share of the cell oracle (the best plan
knowing each region's true mean profit per arm, customer-level solver of
``customer_targets.py``):

  - ``strata``: the default run (declared covariates turn the covariate model on: auto) at the
    default ``optimize.customer_strata`` (4), cross-fitting on (its default): its targets.csv;
    ``claim`` / ``calib`` its posterior and calibrated headlines over the list's true profit
    (the posterior headline is the list's: ``plan_value.posterior``; ``claim_plan`` the
    strata's averages, ``expected_incremental_profit``), ``cf_true`` the cross-fitted value
    over it;
  - ``seg_hash``: ``optimize.customer_strata=1``, the segment plan in hash order;
  - ``seg_covsel``: the same counts, customers chosen by the covariate model (its targets.csv);
  - ``ceil_cov``: the oracle on every customer's true profit (what no model reaches).

    python bench/strata_second.py [--seeds 3] [--customers 120000] [--effect-scale 1.0] \
        [--strata-only]

``--effect-scale 0`` is the null: everyone has the same effect, the covariates say nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crossed_decisions as cd  # noqa: E402
import customer_targets as ct  # noqa: E402

from uplift.models.covariate import simulate_covariate_experiment  # noqa: E402
from uplift.optimize.targets import customer_targets  # noqa: E402

ARMS = ("email_a", "email_b")
VALUE, COST = 30.0, 1.0
COLUMNS = (
    "strata",
    "seg_hash",
    "seg_covsel",
    "ceil_cov",
    "claim",
    "claim_plan",
    "calib",
    "cf_true",
)


def overrides(path: Path, budget: float, seed: int) -> list[str]:
    return [
        "data=csv",
        f"data.path='{path}'",
        "data.columns.segments=[region]",
        "data.columns.covariates=[age,tenure]",
        "data.columns.revenue=null",
        "data.columns.orders=null",
        "tactics=custom",
        "+tactics.arms.control={tactic: control}",
        *[f"+tactics.arms.{a}={{tactic: cross_sell, cost: {COST}}}" for a in ARMS],
        "value=constant",
        f"value.per_conversion={VALUE}",
        f"optimize.budget={budget}",
        "report.plots=false",
        "report.save_posteriors=false",
        f"seed={seed}",
    ]


def score_seed(seed: int, n: int, effect_scale: float, strata_only: bool = False) -> dict[str, Any]:
    exp = simulate_covariate_experiment(n, seed=seed, effect_scale=effect_scale)
    rows = exp.rows
    true_profit = VALUE * exp.true_uplift[list(ARMS)].to_numpy() - COST
    cost = np.full(len(ARMS), COST)
    budget = 0.2 * n * COST
    region = rows["region"].to_numpy()

    def solved(score: np.ndarray) -> float:
        return ct.plan_profit(true_profit, ct.customer_plan(ct._jitter(score), cost, budget))

    oracle = solved(ct.cell_means(true_profit, region))
    row: dict[str, Any] = {"seed": seed, "ceil_cov": solved(true_profit) / oracle}
    with tempfile.TemporaryDirectory(prefix=f"strata_second_{seed}_") as tmp:
        work = Path(tmp)
        path = work / "rows.csv"
        rows.to_csv(path, index=False)
        base = overrides(path, budget, seed)
        row["refused"], row["seconds"] = {}, {}
        t0 = time.perf_counter()
        run = cd.run_pipeline(base, work / "strata")
        row["seconds"]["strata"] = time.perf_counter() - t0
        row["refused"]["strata"] = run.refused
        listed = pd.read_csv(run.result.output_dir / "targets.csv")
        true = ct.list_profit(true_profit, listed, ARMS)
        s = run.result.summary
        row["strata"] = true / oracle
        row["claim"] = ct.headline(s) / true
        row["claim_plan"] = s["expected_incremental_profit"] / true
        row["calib"] = s["calibrated_incremental_profit"] / true
        cf = s.get("crossfit", {})
        if cf.get("estimate") is not None:
            row["cf_true"] = cf["estimate"] / true
        row["strata_count"] = s.get("customer_strata", {}).get("strata")
        if strata_only:
            return row
        t0 = time.perf_counter()
        seg = cd.run_pipeline(
            [*base, "optimize.customer_strata=1", "evaluate.crossfit_folds=0"], work / "seg"
        )
        row["seconds"]["segments"] = time.perf_counter() - t0
        row["refused"]["segments"] = seg.refused
        res = seg.result
        assert res.allocation is not None
        hashed = customer_targets(res.allocation.table, res.data.frame, seed=seed).table
        row["seg_hash"] = ct.list_profit(true_profit, hashed, ARMS) / oracle
        chosen = pd.read_csv(res.output_dir / "targets.csv")
        row["seg_covsel"] = ct.list_profit(true_profit, chosen, ARMS) / oracle
    return row


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--customers", type=int, default=120_000)
    ap.add_argument("--effect-scale", type=float, default=1.0)
    ap.add_argument("--strata-only", action="store_true", help="skip the segment run")
    args = ap.parse_args(argv)
    print("true profit of each list / the cell oracle's; claims / the strata list's true profit")
    print(f"{'seed':>5} " + " ".join(f"{c:>10}" for c in COLUMNS))
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        row = score_seed(seed, args.customers, args.effect_scale, args.strata_only)
        rows.append(row)
        cells = " ".join(f"{row.get(c, float('nan')):>10.3f}" for c in COLUMNS)
        print(f"{seed:>5} {cells}  {row['seconds']} refused {row['refused']}", flush=True)
    mean = " ".join(
        f"{np.mean(got) if (got := [r[c] for r in rows if c in r]) else np.nan:>10.3f}"
        for c in COLUMNS
    )
    print(f"{'mean':>5} {mean}")
    return rows


if __name__ == "__main__":
    main()
