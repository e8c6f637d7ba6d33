"""Benchmark: decision quality when the segment columns explain little (second scenario, #10).

The crossed benchmark (bench/crossed_decisions.py) builds baselines, effects and values from
the segment columns on the logit scale, the same form the models assume. This scenario shares
none of that: two columns (size x region, 24 segments of random sizes) whose levels explain
nothing by construction. Every segment draws its own control rate (Beta(2, 18)), its own lift
per arm on the *probability* scale (arm B's lift half correlated with arm A's), and its own mean
revenue per converter (gamma spend, shape 2, log-mean spread 0.6); customers vary around their
segment's rates (a gamma frailty). So the model's crossed structure has nothing to find: it
must learn that (small main effects, large residual) and not pool segments that differ.

Run the way a user would (CSV, ``data=csv``, ``tactics=custom``, default model and sampler),
scored with the truth like crossed_decisions.py: true profit of the posterior plan, a
difference-in-means plug-in (raw values) and the oracle, 90% coverage, claimed / true.

    python bench/decisions_unstructured.py [--seeds 5] [--first-seed 1] [--customers 150000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crossed_decisions as cd  # noqa: E402  (the user route and scoring, not the generator)

import uplift  # noqa: E402
from uplift.experiment.health import HealthCheckError  # noqa: E402
from uplift.pipeline import build_allocator  # noqa: E402

SIZES = ("S", "M", "L", "XL")
REGIONS = ("r1", "r2", "r3", "r4", "r5", "r6")
ARMS = {"control": (0.0, 0.4), "offer_a": (1.0, 0.3), "offer_b": (3.0, 0.3)}  # cost, share
TACTICS = {"offer_a": "cross_sell", "offer_b": "retention"}


def generate(seed: int, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Customers (``customer_id, size, region, arm, converted, revenue``) and the truth per
    (segment, treated arm) in crossed_decisions.py's columns."""
    rng = np.random.default_rng(seed)
    segs = [(s, r) for s in SIZES for r in REGIONS]
    share = rng.dirichlet(np.full(len(segs), 3.0))
    p0 = rng.beta(2.0, 18.0, len(segs))
    lift_a = rng.normal(0.015, 0.02, len(segs))
    lift_b = 0.5 * lift_a + rng.normal(0.03, 0.025, len(segs))
    lift = {"offer_a": lift_a, "offer_b": lift_b}
    mean_rev = np.exp(rng.normal(np.log(100.0), 0.6, len(segs)))
    seg = rng.choice(len(segs), n, p=share)
    names = list(ARMS)
    arm = rng.choice(len(names), n, p=[ARMS[a][1] for a in names])
    frailty = rng.gamma(5.0, 1 / 5.0, n)  # customers around their segment's rates, mean 1
    p_c = {a: np.clip(p0[seg] + (lift[a][seg] if a in lift else 0.0), 0.001, 0.95) for a in names}
    p = np.choose(arm, [p_c[a] for a in names]) * frailty
    converted = rng.random(n) < np.clip(p, 0.0, 1.0)
    revenue = np.where(converted, rng.gamma(2.0, mean_rev[seg] / 2.0), 0.0)
    customers = pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1),
            "size": np.asarray([s for s, _ in segs], dtype=object)[seg],
            "region": np.asarray([r for _, r in segs], dtype=object)[seg],
            "arm": np.asarray(names, dtype=object)[arm],
            "converted": converted.astype(int),
            "revenue": np.round(revenue, 2),
        }
    )
    # true uplift per segment: the mean over its customers of p(arm) - p(control), clip included
    p_cust = {a: np.clip(p_c[a] * frailty, 0.0, 1.0) for a in names}
    rows = []
    counts = np.bincount(seg, minlength=len(segs))
    for a in lift:
        up = np.bincount(seg, p_cust[a] - p_cust["control"], minlength=len(segs))
        for k, (s, r) in enumerate(segs):
            rows.append(
                {
                    "segment": f"{s}/{r}",
                    "arm": a,
                    "tactic": TACTICS[a],
                    "cost": ARMS[a][0],
                    "tier": s,
                    "n_customers": int(counts[k]),
                    "p_control": p0[k],
                    "true_uplift": up[k] / max(counts[k], 1),
                    "true_value_per_conversion": 0.4 * mean_rev[k],
                }
            )
    truth = pd.DataFrame(rows)
    truth["true_profit_per_customer"] = (
        truth["true_value_per_conversion"] * truth["true_uplift"] - truth["cost"]
    )
    return customers, truth


def overrides(csv: Path, budget: float, extra: list[str]) -> list[str]:
    out = [
        "data=csv",
        f"data.path='{csv}'",
        "data.columns.segments=[size,region]",
        "data.columns.orders=null",
        "tactics=custom",
        "+tactics.arms.control={tactic: control}",
    ]
    out += [f"+tactics.arms.{a}={{tactic: {t}, cost: {ARMS[a][0]}}}" for a, t in TACTICS.items()]
    out += [f"+health.expected_split.{a}={ARMS[a][1]}" for a in ARMS]
    out += [f"optimize.budget={budget}", "report.plots=false", "report.save_posteriors=false"]
    return [*out, *extra]


def score(seed: int, n: int, extra: list[str]) -> dict:
    t0 = time.perf_counter()
    budget = round(0.5 * n, 2)
    with tempfile.TemporaryDirectory(prefix=f"unstructured-{seed}-") as tmp:
        csv = Path(tmp) / "customers.csv"
        customers, truth = generate(seed, n)
        customers.to_csv(csv, index=False)
        ov = overrides(csv, budget, extra)
        try:
            run = cd.run_pipeline(ov, Path(tmp))
            srm = False
        except HealthCheckError:
            # customers are randomised one by one, so a segment's split can fail the per-segment
            # sample-ratio check by chance (seed 3 did, p = 0.0006 in one of 24 segments, before
            # the check was Holm-adjusted: 0.015 now); score it anyway, flagged
            run = cd.run_pipeline([*ov, "health.override=true"], Path(tmp) / "override")
            srm = True
    res, config = run.result, run.config
    problem, _, raw = cd.decision_problem(res, config)
    true_pc = cd.true_profit_per_customer(problem, truth)
    alloc = build_allocator(config)
    plans = {
        "oracle": cd.plan_of(alloc, problem, true_pc),
        "posterior": cd.posterior_plan(res, problem),
        "dim_plugin": cd.plan_of(
            alloc,
            problem,
            cd.dim_plugin_profit(problem, res.cells, raw, res.data.arm_map.control.name),
        ),
    }
    profit = {k: float(true_pc @ x) for k, x in plans.items()}
    cov, _ = cd.interval_coverage(res, truth)
    return {
        "seed": seed,
        "profit": profit,
        "ratio": {k: v / profit["oracle"] for k, v in profit.items()},
        "coverage90": cov,
        "claimed_over_true": float(res.summary["expected_incremental_profit"])
        / profit["posterior"],
        "refused": run.refused,
        "srm_false_alarm": srm,
        "seconds": time.perf_counter() - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--customers", type=int, default=150_000)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    uplift.compose_config([])  # fail early on a broken install
    print(f"{'seed':>4} {'posterior':>9} {'dim_plug':>9} {'cov90':>6} {'claim/tr':>8} gate   sec")
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        r = score(seed, args.customers, ["evaluate.crossfit_folds=0", *args.overrides])
        rows.append(r)
        print(
            f"{seed:>4} {r['ratio']['posterior']:9.3f} {r['ratio']['dim_plugin']:9.3f} "
            f"{r['coverage90']:6.3f} {r['claimed_over_true']:8.3f} "
            f"{'REFUSED' if r['refused'] else 'pass':>7} {r['seconds']:5.0f}"
            + (
                "  (per-segment SRM false alarm: rerun with health.override=true)"
                if r["srm_false_alarm"]
                else ""
            ),
            flush=True,
        )
    m = {k: np.mean([r["ratio"][k] for r in rows]) for k in ("posterior", "dim_plugin")}
    print(
        f"mean {m['posterior']:9.3f} {m['dim_plugin']:9.3f} "
        f"{np.mean([r['coverage90'] for r in rows]):6.3f} "
        f"{np.mean([r['claimed_over_true'] for r in rows]):8.3f} "
        f"{sum(r['refused'] for r in rows)}/{len(rows)} refused"
    )
    # a seed whose oracle earns almost nothing makes its ratios noise (seed 7: 0.013 vs -0.032);
    # the pooled ratio weighs each seed by what there was to earn
    pooled = {
        k: sum(r["profit"][k] for r in rows) / sum(r["profit"]["oracle"] for r in rows)
        for k in ("posterior", "dim_plugin")
    }
    print(
        f"pooled {pooled['posterior']:7.3f} {pooled['dim_plugin']:9.3f}  (sum of true profit / sum of the oracle's)"
    )


if __name__ == "__main__":
    main()
