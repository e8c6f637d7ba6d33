"""Benchmark: segment-level vs customer-level plans where covariates carry signal (issue #10, 4).

On ``crossed_decisions``' scenario (same generator and seeds) every customer's effect has a
hidden modifier ``h`` that ``tenure`` reveals in part (corr(log tenure, h) = 0.6) and
``recent_visits`` a little. A plan that picks customers rather than cells can earn more than the
issue's oracle, which knows every cell's true uplift but treats a cell's customers alike. Every
list below is scored with each listed customer's OWN true profit (value x the customer's true
uplift given ``h`` - cost; ``crossed_decisions.generate_crossed_customers``) and printed as a
share of the cell oracle's true profit (the oracle of ``crossed_decisions.py``):

  ceilings (true profits, customer-level solver below):
    - ``banded``: the oracle on cells refined by tenure quartile (what plan B can reach);
    - ``covariate``: the oracle on E[own uplift | segment, tenure, visits] (gradient boosting
      fitted to the noise-free own uplift: what the covariates can reveal at most);
    - ``individual``: the oracle that knows ``h`` (no model can reach it);
  the pipeline's plans (README "Your own data" route, default model and sampler settings,
  cross-fitting off: it does not change the plan), ``data.columns.covariates=[tenure,
  recent_visits]`` declared:
    - ``strata``: the default run (no covariate-model key: the declared covariates turn it
      on) at its default ``optimize.customer_strata`` (4): the covariate model feeds the
      optimizer through customer strata, and this is its own targets.csv (cross-fitting on, as by default:
      ``claim_str`` is its posterior headline / true: the list's, ``plan_value.posterior``;
      ``claim_strplan`` the strata's averages, ``expected_incremental_profit``; ``calib_str``
      its calibrated one);
    - ``seg_hash``: the segment plan (``optimize.customer_strata=1``, allocation.csv) with
      customers in hash order: what ``targets.csv`` lists without the covariate model;
    - ``seg_covsel``: the same counts per (segment, arm), customers chosen by the row-level
      covariate model (targets.csv of that run, ``selection`` ``covariate_model``);
    - ``seg_mean``: the segment model's posterior-mean profit per cell through the
      customer-level solver below (the pipeline's allocator without its rules: a check of it);
    - ``cov_customer``: the same plus each customer's deviation from the segment's average
      customer under the covariate model (what feeding the covariate model to the optimizer,
      customer by customer, would earn);
    - ``banded``: tenure quartiles derived as a fourth segment column (``data.derive``), so the
      crossed model pools along it and the allocator decides per (segment x band); hash order
      within each cell;
  comparators, same solver and budget, raw value per converter per segment:
    - ``dim``: difference in means per segment; ``dim_banded``: per (segment x band);
    - ``t_segment``: T-learner (gradient boosting per arm on segment dummies + covariates)
      averaged per segment; ``t_customer``: the same T-learner's prediction per customer.

The customer-level solver (:func:`customer_plan`): every customer may take one arm (or none),
the spend is capped by the budget; maximising the summed profit is a knapsack LP whose solution
is Lagrangian: each customer takes the arm of highest ``profit - lambda x cost`` when positive,
``lambda`` the budget's shadow price, found by bisection (exact up to the customers at the
margin; checked against brute force in tests/test_customer_targets_bench.py).

    python bench/customer_targets.py [--seeds 3] [--first-seed 1] [--customers 200000] \
        [--bands 4] [--covariate-signal 1.0] [--strata-only] [--quick] [--json out.json]

5-10 minutes a seed on 2 cores (two pipeline runs: the segment run 95-240 s with the covariate
model's Laplace fits, the banded run 185-400 s).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crossed_decisions as cd  # noqa: E402  (the scenario's generator, seeds and route)

from uplift.optimize.targets import customer_targets  # noqa: E402

COVARIATES: tuple[str, ...] = ("tenure", "recent_visits")
BAND_COLUMN = "tenure_band"
PLANS = (
    "strata",
    "seg_hash",
    "seg_covsel",
    "seg_mean",
    "cov_customer",
    "banded",
    "dim",
    "dim_banded",
    "t_segment",
    "t_customer",
)
CEILINGS = ("banded", "covariate", "individual")


def customer_plan(profit: np.ndarray, cost: np.ndarray, budget: float) -> np.ndarray:
    """Arm index per customer (-1: none) maximising summed ``profit`` (customers x arms) with
    at most one arm a customer and the spend (``cost`` per arm) within ``budget``."""
    profit = np.asarray(profit, dtype=float)
    cost = np.asarray(cost, dtype=float)
    rows = np.arange(profit.shape[0])

    def pick(lam: float) -> tuple[np.ndarray, float]:
        adj = profit - lam * cost[None, :]
        arm = adj.argmax(axis=1)
        take = adj[rows, arm] > 0
        return np.where(take, arm, -1), float(cost[arm][take].sum())

    arm, spend = pick(0.0)
    if spend <= budget:
        return arm
    lo, hi = 0.0, float(np.max(profit / np.maximum(cost[None, :], 1e-12))) + 1.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if pick(mid)[1] > budget:
            lo = mid
        else:
            hi = mid
    return pick(hi)[0]


def plan_profit(true_profit: np.ndarray, arm: np.ndarray) -> float:
    """True profit of a customer-level plan (``arm`` per customer, -1 = none)."""
    on = arm >= 0
    return float(true_profit[np.flatnonzero(on), arm[on]].sum())


def list_profit(true_profit: np.ndarray, targets: pd.DataFrame, arm_names: Sequence[str]) -> float:
    """True profit of a target list (``customer_id`` 1.. in generator order, ``arm``)."""
    col = {a: i for i, a in enumerate(arm_names)}
    rows = pd.to_numeric(targets["customer_id"]).to_numpy(dtype=np.int64) - 1
    return float(true_profit[rows, targets["arm"].map(col).to_numpy(dtype=np.int64)].sum())


def tenure_bands(tenure: pd.Series, bands: int) -> tuple[list[float], list[str]]:
    """``data.derive`` bin edges at the tenure quantiles, and their labels."""
    q = np.unique(np.quantile(tenure, np.linspace(0, 1, bands + 1)[1:-1]))
    edges = [0.0, *[float(x) for x in q], float(tenure.max()) + 1.0]
    return edges, [f"t{i + 1}" for i in range(len(edges) - 1)]


def band_of(tenure: pd.Series, edges: Sequence[float]) -> np.ndarray:
    """Band index as ``data.derive`` bins it (right-closed intervals, pd.cut)."""
    cut = pd.cut(tenure, bins=list(edges), labels=False, include_lowest=True)
    return cut.to_numpy(dtype=np.int64)


def cell_means(values: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Each customer's row replaced by the mean over the customers of its ``key``."""
    return pd.DataFrame(values).groupby(key).transform("mean").to_numpy()


def _jitter(x: np.ndarray) -> np.ndarray:
    """Tie-break equal scores reproducibly (a cell's customers are otherwise all alike)."""
    return x + np.random.default_rng(0).normal(0.0, 1e-9, x.shape)


def comparator_scores(
    customers: pd.DataFrame, key: np.ndarray, arms: Sequence[str], control: str
) -> np.ndarray:
    """Per customer x arm difference in means of ``key``'s cell (treated - control rate)."""
    df = pd.DataFrame({"key": key, "arm": customers["arm"], "y": customers["converted"]})
    rate = df.groupby(["key", "arm"])["y"].mean().unstack()
    up = rate.reindex(columns=[*arms, control]).fillna(0.0)
    return up[list(arms)].sub(up[control], axis=0).reindex(key).to_numpy()


def covariate_ceiling_scores(
    customers: pd.DataFrame, own_uplift: np.ndarray, seed: int
) -> np.ndarray:
    """E[own uplift | segment, covariates], learnt from the noise-free truth."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    X = cd.segment_and_covariate_features(customers, COVARIATES)
    return np.column_stack(
        [
            HistGradientBoostingRegressor(random_state=seed).fit(X, own_uplift[:, k]).predict(X)
            for k in range(own_uplift.shape[1])
        ]
    )


def posterior_customer_profit(
    run_dir: Path, segment: np.ndarray, arms: Sequence[str], cost: np.ndarray
) -> dict[str, np.ndarray]:
    """Posterior-mean profit per customer x arm from a run's files: ``segment``, the segment
    model's (value x cell uplift - cost: every customer of a cell alike); ``customer``, the same
    plus the covariate model's deviation of the customer from the segment's average customer
    (``uplift_mean`` of customer_scores.csv minus its mean over the segment; 0 for arms it does
    not score): the covariate model feeding a customer-level optimizer."""
    up = pd.read_csv(run_dir / "uplift_by_segment.csv")
    up = up[up["metric"] == "conversion"].set_index(["segment", "arm"])["mean"]
    vpu = pd.read_csv(run_dir / "value_per_unit.csv")
    value = vpu.set_index(["tactic", "segment"])["value_per_unit"]
    scores_path = run_dir / "customer_scores.csv"
    scores = pd.read_csv(scores_path) if scores_path.exists() else None
    seg_profit = np.empty((len(segment), len(arms)))
    cust_profit = np.empty_like(seg_profit)
    for k, a in enumerate(arms):
        tactic = cd.DEFAULT_ARMS[a].tactic
        v = value.xs(tactic, level="tactic").reindex(segment).to_numpy()
        cell = up.xs(a, level="arm").reindex(segment).to_numpy()
        seg_profit[:, k] = v * cell - cost[k]
        dev = np.zeros(len(segment))
        if scores is not None and (scores["arm"] == a).any():
            s = scores[scores["arm"] == a].set_index("customer_id")["uplift_mean"]
            mine = s.reindex(np.arange(1, len(segment) + 1)).to_numpy()
            dev = mine - pd.Series(mine).groupby(segment).transform("mean").to_numpy()
        cust_profit[:, k] = seg_profit[:, k] + v * dev
    return {"segment": seg_profit, "customer": cust_profit}


def score_seed(
    seed: int,
    n_customers: int,
    *,
    bands: int = 4,
    margin: float = 0.4,
    quick: bool = False,
    covariate_signal: float = 1.0,
    strata_only: bool = False,
) -> dict[str, Any]:
    customers, _, own = cd.generate_crossed_customers(
        seed, n_customers, margin=margin, covariate_signal=covariate_signal
    )
    control = next(a for a, d in cd.DEFAULT_ARMS.items() if d.is_control)
    arms = [a for a, d in cd.DEFAULT_ARMS.items() if not d.is_control]
    cost = np.array([cd.DEFAULT_ARMS[a].cost for a in arms])
    own_uplift = own[arms].to_numpy()
    value = own["true_value_per_conversion"].to_numpy()
    true_profit = value[:, None] * own_uplift - cost[None, :]
    segment = cd.customer_segments(customers).to_numpy().astype(str)
    budget = cd.default_budget(len(customers))
    edges, labels = tenure_bands(customers["tenure"], bands)
    band = band_of(customers["tenure"], edges)
    seg_band = np.char.add(np.char.add(segment, "/"), band.astype(str))

    def solved(score: np.ndarray) -> float:
        return plan_profit(true_profit, customer_plan(_jitter(score), cost, budget))

    oracle = solved(cell_means(true_profit, segment))
    row: dict[str, Any] = {"seed": seed, "oracle": oracle}
    ceilings = {
        "banded": solved(cell_means(true_profit, seg_band)),
        "covariate": solved(
            value[:, None] * covariate_ceiling_scores(customers, own_uplift, seed) - cost[None, :]
        ),
        "individual": solved(true_profit),
    }
    g = customers.assign(segment=segment).groupby("segment")
    raw_value = (margin * g["revenue"].sum() / g["converted"].sum()).reindex(segment).to_numpy()
    t_up = cd.t_learner_uplift(customers, arms, control, covariates=COVARIATES, seed=seed)
    plans: dict[str, float] = {
        "dim": solved(
            raw_value[:, None] * comparator_scores(customers, segment, arms, control) - cost
        ),
        "dim_banded": solved(
            raw_value[:, None] * comparator_scores(customers, seg_band, arms, control) - cost
        ),
        "t_segment": solved(raw_value[:, None] * cell_means(t_up, segment) - cost),
        "t_customer": solved(raw_value[:, None] * t_up - cost),
    }
    claims: dict[str, float] = {}
    seconds: dict[str, float] = {}
    refused: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix=f"customer_targets_{seed}_") as tmp:
        work = Path(tmp)
        path = work / "customers.csv"
        customers.to_csv(path, index=False)
        base = cd.user_overrides(
            path,
            budget,
            quick=quick,
            extra=[
                f"data.columns.covariates=[{','.join(COVARIATES)}]",
                "evaluate.crossfit_folds=0",
                f"seed={seed}",
            ],
        )
        covariate_model = "model.covariate_model.enabled=true"

        # the pipeline's own stratum plan (optimize.customer_strata default), cross-fitted as
        # a user's default run is
        def listed_run(name: str, overrides: list[str]) -> cd.PipelineRun:
            """Run as the user would; its targets.csv's true profit and its headline."""
            t0 = time.perf_counter()
            run = cd.run_pipeline(overrides, work / name)
            seconds[name] = time.perf_counter() - t0
            refused[name] = run.refused
            listed = pd.read_csv(run.result.output_dir / "targets.csv")
            plans[name] = list_profit(true_profit, listed, arms)
            claims[name] = headline(run.result.summary)
            return run

        # no covariate-model key: declared covariates turn it on by default (auto)
        strata = [o for o in base if o != "evaluate.crossfit_folds=0"]
        run = listed_run("strata", strata)
        s = run.result.summary
        if s.get("calibrated_incremental_profit") is not None:
            claims["strata_calibrated"] = float(s["calibrated_incremental_profit"])
        claims["strata_plan"] = float(s["expected_incremental_profit"])
        cf = s.get("crossfit", {})
        if "ci_low" in cf and cf["estimate"] is not None:
            row["crossfit_true_strata"] = float(cf["estimate"]) / plans["strata"]
            row["strata_crossfit_covers"] = bool(cf["ci_low"] <= plans["strata"] <= cf["ci_high"])
        if strata_only:
            return finish(row, oracle, ceilings, plans, claims, refused, seconds)

        t0 = time.perf_counter()
        run = cd.run_pipeline([*base, covariate_model, "optimize.customer_strata=1"], work / "seg")
        seconds["segments"] = time.perf_counter() - t0
        res = run.result
        refused["segments"] = run.refused
        assert res.allocation is not None
        hashed = customer_targets(res.allocation.table, res.data.frame, seed=seed).table
        plans["seg_hash"] = list_profit(true_profit, hashed, arms)
        chosen = pd.read_csv(res.output_dir / "targets.csv")
        plans["seg_covsel"] = list_profit(true_profit, chosen, arms)
        claims["segments"] = float(res.summary["expected_incremental_profit"])
        estimate = posterior_customer_profit(res.output_dir, segment, arms, cost)
        plans["seg_mean"] = solved(estimate["segment"])
        arm = customer_plan(_jitter(estimate["customer"]), cost, budget)
        plans["cov_customer"] = plan_profit(true_profit, arm)
        claims["cov_customer"] = plan_profit(estimate["customer"], arm)

        derive = (
            f"+data.derive.{BAND_COLUMN}={{column: tenure, bins: [{','.join(map(str, edges))}], "
            f"labels: [{','.join(labels)}]}}"
        )
        columns = f"data.columns.segments=[{','.join([*cd.SEGMENT_COLUMNS, BAND_COLUMN])}]"
        banded = [o for o in base if not o.startswith("data.columns.segments=")] + [derive, columns]
        listed_run("banded", banded)
    return finish(row, oracle, ceilings, plans, claims, refused, seconds)


def headline(summary: Mapping[str, Any]) -> float:
    """A run's posterior headline: the list's with customer strata (``plan_value.posterior``:
    the plan's plus its selection within strata), else the plan's."""
    pv = summary.get("plan_value") or {}
    return float(pv.get("posterior", summary["expected_incremental_profit"]))


def finish(row, oracle, ceilings, plans, claims, refused, seconds) -> dict[str, Any]:
    """The seed's row: profits as shares of the oracle's, claims over their lists' truth."""
    row |= {f"ceiling_{k}": v / oracle for k, v in ceilings.items()}
    row |= {k: v / oracle for k, v in plans.items()}
    for claim, plan, key in (
        ("segments", "seg_hash", "claim_true_segments"),
        ("banded", "banded", "claim_true_banded"),
        ("cov_customer", "cov_customer", "claim_true_cov_customer"),
        ("strata", "strata", "claim_true_strata"),
        ("strata_plan", "strata", "plan_claim_true_strata"),
        ("strata_calibrated", "strata", "calibrated_true_strata"),
    ):
        if claim in claims:
            row[key] = claims[claim] / plans[plan]
    row["refused"] = refused
    row["seconds"] = seconds
    return row


COLUMNS = (
    [("seed", "seed")]
    + [(f"ceiling_{k}", f"ceil_{k}") for k in CEILINGS]
    + [(k, k) for k in PLANS]
    + [
        ("claim_true_segments", "claim_seg"),
        ("claim_true_banded", "claim_band"),
        ("claim_true_cov_customer", "claim_cov"),
        ("claim_true_strata", "claim_str"),
        ("plan_claim_true_strata", "claim_strplan"),
        ("calibrated_true_strata", "calib_str"),
    ]
)


def format_row(row: Mapping[str, Any], label: str | None = None) -> str:
    cells = []
    for key, head in COLUMNS:
        w = max(len(head), 6)
        if key == "seed":
            cells.append(f"{label or row['seed']:>{w}}")
        else:
            v = row.get(key)
            cells.append(f"{v:>{w}.3f}" if isinstance(v, float) else f"{'-':>{w}}")
    return " ".join(cells)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--bands", type=int, default=4, help="tenure quantile bands (plan B)")
    ap.add_argument(
        "--covariate-signal",
        type=float,
        default=1.0,
        help="weight of the hidden modifier in the covariates (0: a null scenario)",
    )
    ap.add_argument("--quick", action="store_true", help="2 chains x 500 draws (wiring only)")
    ap.add_argument(
        "--strata-only",
        action="store_true",
        help="only the stratum run (and the comparators): its list and headlines",
    )
    ap.add_argument("--json", type=Path, default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    print("true profit / the cell oracle's (crossed_decisions' oracle), customer-level scoring")
    print(" ".join(f"{h:>{max(len(h), 6)}}" for _, h in COLUMNS))
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        row = score_seed(
            seed,
            args.customers,
            bands=args.bands,
            quick=args.quick,
            covariate_signal=args.covariate_signal,
            strata_only=args.strata_only,
        )
        rows.append(row)
        extra = {k: row.get(k) for k in ("crossfit_true_strata", "strata_crossfit_covers")}
        print(format_row(row), f"  seconds {row['seconds']}  refused {row['refused']}", extra)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    mean = {
        k: float(np.mean(got))
        for k, _ in COLUMNS[1:]
        if (got := [r[k] for r in rows if isinstance(r.get(k), float)])
    }
    print(format_row(mean, label="mean"))
    return rows


if __name__ == "__main__":
    main()
