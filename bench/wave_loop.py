"""Three waves of the learning loop on synthetic truth (issue #15's acceptance check).

Per seed, on the demo generator's truth (``uplift.data.synthetic``; control + two tactics, 12
crossed segments):

* wave 1: a uniformly randomized experiment, fit with the default priors;
* waves 2 and 3: new customers assigned by ``next-wave``'s function (Thompson shares of the
  previous run, 5% minimum share, 5% global holdout, logged probabilities), outcomes drawn from
  the truth, the previous run's plan valued on them by ``evaluate-policy`` (DR, 90% interval)
  next to its true value, then fit with ``model.prior_from=<previous run>`` (default forget).

Realised regret of wave w: per customer of the wave, the true profit of the best arm for their
segment (control, profit 0, included) minus the true profit of the arm they were given (control
and the global holdout: 0), averaged over the wave, in money (true value per conversion). It is
what exploring cost in that wave: wave 1 is uniform, waves 2 and 3 follow the last posterior.
Wave 1's customers come from the generator (equal tier shares), later waves' lists with the
demo's tier mix (50/35/15): each wave's regret is per customer of its own mix. Also printed, the
plan's regret: the share of the oracle's true profit that the budget plan made
after wave w loses (both solved by the run's optimizer on the same customers and budget, the
oracle with the true uplifts and values).

    python bench/wave_loop.py [--seeds 5] [--customers 20000] [overrides...]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import uplift
from uplift import waves
from uplift.data.synthetic import generate
from uplift.experiment.assignment import HOLDOUT
from uplift.tactics import ArmMap

ARMS = {
    "control": {"tactic": "control", "cost": 0.0},
    "cross_sell_email": {"tactic": "cross_sell", "cost": 1.0},
    "loyalty_points": {"tactic": "frequency", "cost": 2.5},
}
MARGIN = 0.4
RUN = [
    "data=csv",
    "data.columns.segments=[value_tier,needs]",
    "tactics=custom",
    *[f"+tactics.arms.{a}={{tactic: {s['tactic']}, cost: {s['cost']}}}" for a, s in ARMS.items()],
    f"value.margin={MARGIN}",
    "optimize.budget=3000",
    "optimize.frontier.enabled=false",
    "report.plots=false",
    "evaluate.crossfit_folds=0",
    "sampler.cache=false",
    "sampler.draws=1000",
    "sampler.tune=500",
]
LEVEL = 0.9


def truth_table(seed: int) -> pd.DataFrame:
    truth = generate(ArmMap.from_mapping(ARMS), n_customers=100, seed=seed).truth
    return truth.assign(value=MARGIN * truth["revenue_per_conversion"])


def draw_outcomes(table: pd.DataFrame, truth: pd.DataFrame, seed: int) -> np.ndarray:
    """Conversions of a wave's customers from the true rates (holdout: the control's)."""
    arm = table["arm"].where(table["arm"] != HOLDOUT, "control")
    p = truth.set_index(["arm", "segment"])["p_treated"]
    rate = p.reindex(pd.MultiIndex.from_arrays([arm, table["segment"]])).to_numpy()
    return (np.random.default_rng([seed, 7]).random(len(table)) < rate).astype(int)


def new_customers(n: int, seed: int, start: int) -> pd.DataFrame:
    rng = np.random.default_rng([seed, start])
    return pd.DataFrame(
        {
            "customer_id": np.arange(start, start + n),
            "value_tier": rng.choice(["low", "mid", "high"], size=n, p=[0.5, 0.35, 0.15]),
            "needs": rng.choice(["price", "quality", "convenience", "variety"], size=n),
        }
    )


def fit(rows: pd.DataFrame, folder: Path, extra: list[str]) -> Path:
    path = folder.with_suffix(".csv")
    rows.to_csv(path, index=False)
    uplift.run(uplift.compose_config([*RUN, f"data.path={path}", *extra]), folder)
    return folder


def plan_profit(plan_table: pd.DataFrame, truth: pd.DataFrame) -> float:
    """True incremental profit of an allocation table (customers per segment and arm)."""
    t = plan_table[plan_table["customers"] > 0].merge(
        truth[["arm", "segment", "true_uplift", "value", "cost"]], on=["arm", "segment"]
    )
    return float((t["customers"] * (t["true_uplift"] * t["value"] - t["cost"])).sum())


def realised_regret(rows: pd.DataFrame, truth: pd.DataFrame) -> float:
    """Mean over a wave's customers (``segment, arm``) of the best arm's true profit minus that
    of the arm they got (control and holdout: 0)."""
    gain = truth.assign(profit=truth["true_uplift"] * truth["value"] - truth["cost"])
    best = gain.groupby("segment")["profit"].max().clip(lower=0.0)
    got = gain.set_index(["arm", "segment"])["profit"].reindex(
        pd.MultiIndex.from_arrays([rows["arm"], rows["segment"]])
    )
    return float((rows["segment"].map(best).to_numpy() - got.fillna(0.0).to_numpy()).mean())


def plan_regret(folder: Path, truth: pd.DataFrame) -> float:
    """1 - true profit of the run's plan / the oracle's on the same customers and budget."""
    run = uplift.load_run(folder)
    mine = plan_profit(run.plan().table, truth)
    t = truth[truth["arm"] != "control"]
    draws = {}
    for tactic, d in run.draws.items():
        sub = t[t["tactic"] == tactic].pivot(index="arm", columns="segment", values="true_uplift")
        sub = sub.reindex(index=d["arm"].values, columns=d["segment"].values)
        draws[tactic] = xr.DataArray(
            sub.to_numpy()[None], dims=("sample", "arm", "segment"), coords=d.coords
        )
    value = truth.drop_duplicates("segment").set_index("segment")["value"]
    prepared = dataclasses.replace(
        run.prepared, values={k: value.reindex(v.index) for k, v in run.prepared.values.items()}
    )
    oracle = dataclasses.replace(run, draws=draws, prepared=prepared)
    best = plan_profit(oracle.plan().table, truth)
    return 1.0 - mine / best


def true_policy_value(run: Any, rows: pd.DataFrame, truth: pd.DataFrame) -> float:
    """Incremental profit per customer of the run's allocation policy on a wave's randomized
    (non-holdout) customers, from the true rates, in the run's money (its value per unit)."""
    alloc = run.allocation
    rows = rows[rows["arm"] != HOLDOUT]
    p = truth.set_index(["arm", "segment"])["p_treated"]
    costs = {a: s["cost"] for a, s in ARMS.items()}
    share = alloc.assign(prob=alloc["customers"] / alloc["eligible_customers"])
    total = 0.0
    for seg, n in rows["segment"].value_counts().items():
        p0 = p.loc[("control", seg)]
        for r in share[share["segment"] == seg].itertuples():
            value = run.prepared.values[r.tactic][seg]
            total += n * r.prob * (value * (p.loc[(r.arm, seg)] - p0) - costs[r.arm])
    return total / len(rows)


def loop(seed: int, customers: int, work: Path, overrides: list[str]) -> dict[str, Any]:
    """One seed's three waves: regret per wave and the DR check on waves 2 and 3."""
    truth = truth_table(seed)
    rows = generate(ArmMap.from_mapping(ARMS), n_customers=customers, seed=seed).customers
    # the generator's arms are known to be randomized: a chance flag of the per-segment SRM test
    # (12 segments at alpha 0.001) must not stop the loop (seed 2 drew p = 0.0003)
    folder = fit(
        rows.drop(columns=["orders"]), work / "wave1", ["health.override=true", *overrides]
    )
    wave1 = rows.assign(segment=rows["value_tier"] + "/" + rows["needs"])
    out: dict[str, Any] = {
        "seed": seed,
        "regret": [realised_regret(wave1, truth)],
        "plan_regret": [plan_regret(folder, truth)],
        "ope": [],
    }
    for w in (2, 3):
        run = uplift.load_run(folder)
        table = waves.assign_wave(
            waves.customer_list(new_customers(customers, seed, w * 10_000_000), run.config),
            waves.wave_shares(run, 0.05),
            salt=f"loop-{seed}-wave{w}",
            wave=w,
            control="control",
            holdout_share=0.05,
        )
        table["outcome"] = draw_outcomes(table, truth, seed * 10 + w)
        out["regret"].append(realised_regret(table, truth))
        outcomes = work / f"wave{w}_outcomes.csv"
        table.to_csv(outcomes, index=False)
        cfg = uplift.compose_config(
            [f"wave.run={folder}", f"wave.outcomes={outcomes}", f"wave.level={LEVEL}"]
        )
        waves.evaluate_wave_policy(cfg, work / f"policy{w}", run=run)
        dr = pd.read_csv(work / f"policy{w}" / "policy_value.csv").set_index("estimator").loc["dr"]
        true = true_policy_value(run, table, truth)
        out["ope"].append(
            {
                "wave": w,
                "true": true,
                "dr": float(dr["estimate"]),
                "low": float(dr["ci_low"]),
                "high": float(dr["ci_high"]),
                "covered": bool(dr["ci_low"] <= true <= dr["ci_high"]),
            }
        )
        # the wave's data: holdout customers were left alone, as the control
        data = table.merge(new_customers(customers, seed, w * 10_000_000), on="customer_id")
        data = data.assign(
            arm=data["arm"].where(data["arm"] != HOLDOUT, "control"),
            converted=data["outcome"],
            revenue=0.0,
        )[["customer_id", "value_tier", "needs", "arm", "converted", "revenue"]]
        data.loc[data["converted"] == 1, "revenue"] = (
            truth.drop_duplicates("segment")
            .set_index("segment")["revenue_per_conversion"]
            .reindex(
                data.loc[data["converted"] == 1, "value_tier"]
                + "/"
                + data.loc[data["converted"] == 1, "needs"]
            )
            .to_numpy()
        )
        folder = fit(
            data,
            work / f"wave{w}",
            ["health.override=true", f"model.prior_from={folder}", *overrides],
        )
        out["plan_regret"].append(plan_regret(folder, truth))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    results = []
    for seed in range(a.first_seed, a.first_seed + a.seeds):
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="wave-loop-") as tmp:
            r = loop(seed, a.customers, Path(tmp), a.overrides)
        results.append(r)
        ope = " ".join(
            f"w{o['wave']}: true {o['true']:.3f} DR {o['dr']:.3f} [{o['low']:.3f}, "
            f"{o['high']:.3f}] {'ok' if o['covered'] else 'MISS'}"
            for o in r["ope"]
        )
        print(
            f"seed {seed}: realised regret {' -> '.join(f'{x:.3f}' for x in r['regret'])}; "
            f"plan regret {' -> '.join(f'{x:.3f}' for x in r['plan_regret'])}; {ope} "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    report(results)


def report(results: list[dict[str, Any]]) -> dict[str, Any]:
    reg = np.array([r["regret"] for r in results])
    plan = np.array([r["plan_regret"] for r in results])
    cov = [o["covered"] for r in results for o in r["ope"]]
    summary = {
        "mean_regret": reg.mean(axis=0).tolist(),
        "mean_plan_regret": plan.mean(axis=0).tolist(),
        "coverage": float(np.mean(cov)),
        "intervals": len(cov),
    }
    print(
        f"mean realised regret per customer by wave "
        f"{' -> '.join(f'{x:.3f}' for x in summary['mean_regret'])}; plan regret "
        f"{' -> '.join(f'{x:.3f}' for x in summary['mean_plan_regret'])}; "
        f"{LEVEL:.0%} DR intervals covered the true policy value {sum(cov)} of {len(cov)} "
        f"({summary['coverage']:.2f})"
    )
    return summary


if __name__ == "__main__":
    main()
