"""Cross-fitted plan value: reconciles exactly with the stratified difference in means (and with
evaluate_policy), covers the true value of the fold plans at its level while the in-sample claims
are optimistic, and names bad inputs. No MCMC: plans come from cell means and a greedy budget fill
(or the project's MILP allocator)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from uplift.evaluate.crossfit import (
    FOLD_COLUMNS,
    CrossfitResult,
    FoldPlan,
    assign_folds,
    calibrate_headline,
    crossfit_plan_value,
    score_plan,
)
from uplift.experiment import evaluate_policy

SEGS = [f"s{i}" for i in range(6)]
ARMS = ["control", "email", "call"]
COSTS = {"control": 0.0, "email": 0.5, "call": 1.5}
VALUE = pd.Series([10.0, 12.0, 14.0, 16.0, 18.0, 20.0], index=SEGS)
BASE = np.array([0.10, 0.15, 0.20, 0.25, 0.30, 0.35])
# true uplift per segment x treated arm (email, call); profit per treated customer
# email -0.4 0.58 0.2 1.42 0.22 1.1, call -1.0 -0.3 2.0 0.42 1.74 -0.5: clear winners, clear
# losers and several cells close enough to each other that noise decides between them
UPLIFT = np.array(
    [
        [0.01, 0.05],
        [0.09, 0.10],
        [0.05, 0.25],
        [0.12, 0.12],
        [0.04, 0.18],
        [0.08, 0.05],
    ]
)
RATE = np.column_stack([BASE, BASE[:, None] + UPLIFT])  # (segment, arm)
ELIGIBLE = pd.Series(5_000.0, index=SEGS)
BUDGET = 12_000.0
PER_CELL = 300  # customers per segment x arm (complete randomization within segment)


def true_profit_per_customer() -> np.ndarray:
    """(segment, arm) incremental profit per treated customer; control column 0."""
    return (RATE - RATE[:, :1]) * VALUE.to_numpy()[:, None] - np.array(list(COSTS.values()))


def simulate(seed: int, per_cell: int = PER_CELL) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    s = np.repeat(np.arange(len(SEGS)), len(ARMS) * per_cell)
    a = np.tile(np.repeat(np.arange(len(ARMS)), per_cell), len(SEGS))
    y = (rng.random(len(s)) < RATE[s, a]).astype(float)
    return pd.DataFrame(
        {
            "segment": pd.Categorical.from_codes(s, categories=SEGS),
            "arm": pd.Categorical.from_codes(a, categories=ARMS),
            "converted": y,
        }
    )


def cell_means(rows: pd.DataFrame) -> np.ndarray:
    s, a = rows["segment"].cat.codes.to_numpy(), rows["arm"].cat.codes.to_numpy()
    cell = s * len(ARMS) + a
    k = len(SEGS) * len(ARMS)
    tot = np.bincount(cell, weights=rows["converted"].to_numpy(float), minlength=k)
    return (tot / np.bincount(cell, minlength=k)).reshape(len(SEGS), len(ARMS))


def greedy_plan(profit: np.ndarray) -> pd.DataFrame:
    """Best arm per segment if profitable, segments filled by profit per unit cost to the budget."""
    rows, left = [], BUDGET
    best = 1 + profit[:, 1:].argmax(axis=1)
    gain = profit[np.arange(len(SEGS)), best]
    cost = np.array([COSTS[ARMS[b]] for b in best])
    for g in np.argsort(-gain / cost, kind="stable"):
        n = 0.0
        if gain[g] > 0 and left > 0:
            n = float(min(ELIGIBLE.iloc[g], math.floor(left / cost[g])))
            left -= n * cost[g]
        rows.append(
            {
                "segment": SEGS[g],
                "arm": ARMS[best[g]],
                "customers": n,
                "eligible_customers": ELIGIBLE.iloc[g],
                "expected_incremental_profit": n * gain[g],
            }
        )
    return pd.DataFrame(rows)


def plug_in(train: pd.DataFrame) -> FoldPlan:
    """The in-sample fit: difference in means per cell, claim = the plan's plug-in profit."""
    q = cell_means(train)
    profit = (q - q[:, :1]) * VALUE.to_numpy()[:, None] - np.array(list(COSTS.values()))
    plan = greedy_plan(profit)
    return FoldPlan(plan, claimed=float(plan["expected_incremental_profit"].sum()))


def true_plan_value(plan: pd.DataFrame) -> float:
    truth = true_profit_per_customer()
    s = plan["segment"].map({g: i for i, g in enumerate(SEGS)}).to_numpy()
    a = plan["arm"].map({x: i for i, x in enumerate(ARMS)}).to_numpy()
    return float((plan["customers"].to_numpy() * truth[s, a]).sum())


FIXED = pd.DataFrame(
    {
        "segment": ["s0", "s1", "s2", "s2", "s4"],
        "arm": ["email", "call", "call", "email", "email"],
        "customers": [2_000, 5_000, 1_000, 500, 3_000],
        "eligible_customers": [5_000] * 5,
        "expected_incremental_profit": [100.0, 200.0, 50.0, 10.0, 80.0],
    }
)


def by_hand(rows: pd.DataFrame, plan: pd.DataFrame) -> tuple[float, float]:
    """Stratified difference in means of a single-outcome plan, with the per-cell variance."""
    g = rows.groupby(["segment", "arm"])["converted"]
    m, v, n = g.mean(), g.var(ddof=1), g.size()
    total, var = 0.0, 0.0
    for seg, part in plan.groupby("segment"):
        pi = (part.set_index("arm")["customers"] / part["eligible_customers"].iloc[0]).to_dict()
        e, val = float(part["eligible_customers"].iloc[0]), VALUE[seg]
        total += e * sum(
            p * (val * (m[seg, a] - m[seg, "control"]) - COSTS[a]) for a, p in pi.items()
        )
        var += e**2 * (
            sum(p**2 * val**2 * v[seg, a] / n[seg, a] for a, p in pi.items())
            + sum(pi.values()) ** 2 * val**2 * v[seg, "control"] / n[seg, "control"]
        )
    return total, math.sqrt(var)


# --------------------------------------------------------------------------------------------
# 1. exact reconciliation
# --------------------------------------------------------------------------------------------


def test_fixed_plan_equals_stratified_difference_in_means() -> None:
    rows = simulate(1)
    res = crossfit_plan_value(
        rows, lambda train: FoldPlan(FIXED), COSTS, folds=3, seed=7, value=VALUE
    )
    assert isinstance(res, CrossfitResult)
    assert list(res.per_fold.columns) == FOLD_COLUMNS
    # cells of 300 split 100/100/100: the mean of the fold values is the full-data value
    full, _ = by_hand(rows, FIXED)
    assert res.estimate == pytest.approx(full, rel=1e-12, abs=1e-8)
    fold = assign_folds(rows, 3, seed=7)
    for k in range(3):
        test = rows[fold == k]
        assert (test.groupby(["segment", "arm"]).size() == PER_CELL // 3).all()
        value, se = by_hand(test, FIXED)
        row = res.per_fold.iloc[k]
        assert row["heldout"] == pytest.approx(value, rel=1e-12, abs=1e-8)
        assert row["heldout_se"] == pytest.approx(se, rel=1e-12)
        assert row["n_test"] == len(test) and row["n_train"] == len(rows) - len(test)
    se_k = res.per_fold["heldout_se"].to_numpy()
    cross = se_k.sum() ** 2 - (se_k**2).sum()  # allowance for correlated fold errors
    assert res.se == pytest.approx(math.sqrt((se_k**2).sum() + 0.15 * cross) / 3)
    assert res.claimed_mean == pytest.approx(440.0)
    assert res.optimism == pytest.approx(440.0 / res.estimate)
    json.dumps(res.to_dict())  # summary.json-ready


def test_matches_evaluate_policy_per_segment() -> None:
    """DM and DR of evaluate_policy, one segment at a time and scaled by eligible customers, are
    the stratified estimator; IPW with the design shares is the Horvitz-Thompson option."""
    rows = simulate(2, per_cell=600)
    design = {"control": 1 / 3, "email": 1 / 3, "call": 1 / 3}
    got = {e: score_plan(rows, FIXED, COSTS, value=VALUE, estimator=e) for e in ("dr", "dm")}
    ipw = score_plan(rows, FIXED, COSTS, value=VALUE, estimator="ipw", propensity=design)
    for seg, part in FIXED.groupby("segment"):
        sub = rows[rows["segment"] == seg]
        ev = evaluate_policy(
            sub,
            part,
            COSTS,
            outcome_col="converted",
            value=VALUE,
            propensity=design,
        )
        seg_row = got["dr"].by_segment.set_index("segment").loc[seg]
        for e in ("dm", "dr"):
            assert ev.estimate(e) == pytest.approx(seg_row["value_per_customer"], abs=1e-12)
        ipw_row = ipw.by_segment.set_index("segment").loc[seg]
        assert ev.estimate("ipw") == pytest.approx(ipw_row["value_per_customer"], abs=1e-12)
        se = ev.table.set_index("estimator")["se"]
        assert se["ipw"] == pytest.approx(ipw_row["value_per_customer_se"], rel=1e-9)
        # influence-function SE vs per-cell sample variances: equal up to ddof corrections
        assert se["dr"] == pytest.approx(seg_row["value_per_customer_se"], rel=0.01)
    assert got["dm"].value == got["dr"].value
    # IPW with the observed shares of the fold is the stratified estimator again
    obs = score_plan(rows, FIXED, COSTS, value=VALUE, estimator="ipw")
    assert obs.value == pytest.approx(got["dr"].value, rel=1e-12)


def test_per_arm_outcomes_share_the_control_customers() -> None:
    """email is judged on conversions x value, call on revenue x margin; the control customers
    serve both comparisons and their covariance is in the variance."""
    rng = np.random.default_rng(3)
    rows = simulate(3, per_cell=400)
    rows["revenue"] = rows["converted"] * rng.gamma(2.0, 30.0, len(rows))
    plan = pd.DataFrame(
        {
            "segment": ["s1", "s1", "s3"],
            "arm": ["email", "call", "call"],
            "customers": [1_000, 3_000, 2_500],
            "eligible_customers": [5_000, 5_000, 5_000],
        }
    )
    outcome = {"email": "converted", "call": "revenue"}
    value = {"email": VALUE, "call": 0.4}
    got = score_plan(rows, plan, COSTS, outcome=outcome, value=value)
    total, var = 0.0, 0.0
    for seg, part in plan.groupby("segment"):
        sub = rows[rows["segment"] == seg]
        ctrl = sub[sub["arm"] == "control"]
        z = np.zeros(len(ctrl))
        for r in part.itertuples():
            pi, v = r.customers / r.eligible_customers, (VALUE[seg] if r.arm == "email" else 0.4)
            y = sub.loc[sub["arm"] == r.arm, outcome[r.arm]]
            total += 5_000 * pi * (v * y.mean() - COSTS[r.arm])
            var += 5_000**2 * pi**2 * v**2 * y.var(ddof=1) / len(y)
            z = z + pi * v * ctrl[outcome[r.arm]].to_numpy()
        total -= 5_000 * z.mean()
        var += 5_000**2 * z.var(ddof=1) / len(z)
    assert got.value == pytest.approx(total, rel=1e-12)
    assert got.se == pytest.approx(math.sqrt(var), rel=1e-12)


def test_accepts_the_optimizers_allocation_and_is_seeded() -> None:
    """fit_and_plan may return the project's Allocation; same seed, same result."""
    from uplift.optimize import AllocationProblem
    from uplift.optimize.factory import allocator_from_settings

    allocator = allocator_from_settings(BUDGET)
    rng = np.random.default_rng(0)

    def fit_and_plan(train: pd.DataFrame):
        q = cell_means(train)
        rows, draws = [], []
        for i, seg in enumerate(SEGS):
            for j, arm in enumerate(ARMS[1:], start=1):
                rows.append(
                    {"segment": seg, "tactic": "cross_sell", "arm": arm, "cost": COSTS[arm]}
                )
                mean = VALUE[seg] * (q[i, j] - q[i, 0]) - COSTS[arm]
                draws.append(mean + 0.3 * rng.standard_normal(50))
        problem = AllocationProblem(pd.DataFrame(rows), np.column_stack(draws), ELIGIBLE)
        return allocator.solve(problem)

    rows = simulate(4)
    a = crossfit_plan_value(rows, fit_and_plan, COSTS, folds=2, seed=11, value=VALUE)
    rng = np.random.default_rng(0)
    b = crossfit_plan_value(rows, fit_and_plan, COSTS, folds=2, seed=11, value=VALUE)
    assert a.to_dict() == b.to_dict()
    assert (a.per_fold["customers_treated"] > 0).all()
    assert np.isfinite(a.per_fold[["claimed", "heldout", "heldout_se"]].to_numpy()).all()
    assert not np.array_equal(assign_folds(rows, 2, seed=11), assign_folds(rows, 2, seed=12))


# --------------------------------------------------------------------------------------------
# 2. coverage and bias
# --------------------------------------------------------------------------------------------


def test_interval_covers_true_value_and_claims_are_optimistic() -> None:
    reps, covered = 200, 0
    truth, est, claimed = [], [], []
    for rep in range(reps):
        rows = simulate(1_000 + rep)
        res = crossfit_plan_value(rows, plug_in, COSTS, folds=3, seed=rep, value=VALUE, level=0.9)
        true = float(np.mean([true_plan_value(p) for p in res.plans]))
        covered += res.ci_low <= true <= res.ci_high
        truth.append(true)
        est.append(res.estimate)
        claimed.append(res.claimed_mean)
    coverage = covered / reps
    truth_mean = float(np.mean(truth))
    print(
        f"coverage {coverage:.3f}; mean true {truth_mean:.0f}, cross-fitted "
        f"{np.mean(est):.0f}, claimed {np.mean(claimed):.0f}"
    )
    assert 0.85 <= coverage <= 0.95
    assert np.mean(claimed) / truth_mean > 1.1  # the plug-in claims are optimistic
    assert np.mean(est) / truth_mean == pytest.approx(1.0, abs=0.04)  # cross-fitting is not


# --------------------------------------------------------------------------------------------
# 3. errors
# --------------------------------------------------------------------------------------------


def test_errors_are_named() -> None:
    rows = simulate(5, per_cell=30)
    fixed = lambda train: FoldPlan(FIXED)  # noqa: E731
    for bad in (1, 0, 2.5, True):
        with pytest.raises(ValueError, match="folds"):
            crossfit_plan_value(rows, fixed, COSTS, folds=bad, seed=0, value=VALUE)
    with pytest.raises(ValueError, match="level"):
        crossfit_plan_value(rows, fixed, COSTS, seed=0, value=VALUE, level=1.5)
    with pytest.raises(ValueError, match="estimator"):
        crossfit_plan_value(rows, fixed, COSTS, seed=0, value=VALUE, estimator="snipw")
    # segment s2 keeps 2 control customers: with 3 folds one fold has none -> before any fit
    thin = rows.drop(rows[(rows["segment"] == "s2") & (rows["arm"] == "control")].index[2:])
    calls = []

    def counting(train):
        calls.append(len(train))
        return FoldPlan(FIXED)

    with pytest.raises(ValueError, match=r"fewer than 2 control customers.*s2"):
        crossfit_plan_value(thin, counting, COSTS, folds=3, seed=0, value=VALUE)
    assert calls == []
    # scoring a plan on a fold with an empty control cell
    with pytest.raises(ValueError, match=r"segment 's2' has 0 held-out control"):
        score_plan(
            rows[(rows["arm"] != "control") | (rows["segment"] != "s2")], FIXED, COSTS, value=VALUE
        )
    # a treated cell the plan needs has too few held-out customers
    few = rows.drop(rows[(rows["segment"] == "s1") & (rows["arm"] == "call")].index[1:])
    with pytest.raises(ValueError, match=r"'s1' x arm 'call' has 1 held-out"):
        score_plan(few, FIXED, COSTS, value=VALUE)
    # more folds than customers, missing columns, unknown cost, per-arm maps missing an arm
    with pytest.raises(ValueError, match="too few"):
        crossfit_plan_value(rows.head(5), fixed, COSTS, folds=3, seed=0, value=VALUE)
    with pytest.raises(ValueError, match="converted"):
        score_plan(rows.drop(columns="converted"), FIXED, COSTS, value=VALUE)
    with pytest.raises(ValueError, match="cost"):
        score_plan(rows, FIXED, {"control": 0.0, "email": 0.5}, value=VALUE)
    with pytest.raises(ValueError, match="arm 'call'"):
        score_plan(rows, FIXED, COSTS, outcome={"email": "converted"}, value=VALUE)
    with pytest.raises(TypeError, match="fit_and_plan"):
        crossfit_plan_value(rows, lambda train: 3.0, COSTS, folds=2, seed=0, value=VALUE)


# --------------------------------------------------------------------------------------------
# 4. the headline corrected for selection
# --------------------------------------------------------------------------------------------


def _result(claimed: list[float], heldout: list[float], se: float = 10.0) -> CrossfitResult:
    k = len(claimed)
    per_fold = pd.DataFrame(
        {
            "fold": range(k),
            "n_train": 1,
            "n_test": 1,
            "claimed": claimed,
            "heldout": heldout,
            "heldout_se": se,
            "customers_treated": 1.0,
        }
    )[FOLD_COLUMNS]
    est = float(np.mean(heldout))
    return CrossfitResult(
        est, se, est - 1, est + 1, 0.9, k, "dr", 0, 10, per_fold, pd.DataFrame(), []
    )


def test_calibrated_headline_arithmetic() -> None:
    # fold plans claimed 1,200 on average and earned 1,000: gap 200, x 1/2 for the full plan
    pv = calibrate_headline(1_500.0, _result([1_100.0, 1_300.0], [900.0, 1_100.0]))
    assert pv.trust == "calibrated"
    assert pv.optimism_gap == pytest.approx(200.0)
    assert pv.calibrated == pytest.approx(1_500.0 - 200.0 * 0.5)
    z = 1.6448536269514722
    lo, hi = pv.calibrated_ci
    assert hi - pv.calibrated == pytest.approx(z * 0.5 * 10.0)
    with_sd = calibrate_headline(
        1_500.0, _result([1_100.0, 1_300.0], [900.0, 1_100.0]), posterior_sd=30.0
    )
    assert with_sd.calibrated_ci[1] - with_sd.calibrated == pytest.approx(
        z * math.hypot(30.0, 0.5 * 10.0)
    )
    # K = 3: x 2/3; plans that earned more than they claimed leave the headline alone
    three = calibrate_headline(900.0, _result([500.0, 600.0, 700.0], [450.0, 500.0, 550.0]))
    assert three.calibrated == pytest.approx(900.0 - 100.0 * 2 / 3)
    up = calibrate_headline(900.0, _result([500.0, 500.0], [600.0, 700.0]))
    assert up.calibrated == 900.0 and "no sign of selection optimism" in up.note
    off = calibrate_headline(900.0, None, "evaluate.crossfit_folds=0")
    assert off.trust == "posterior" and off.calibrated == 900.0
    assert "not corrected for selection" in off.note and off.crossfit is None
    assert json.loads(json.dumps(pv.to_dict()))["trust"] == "calibrated"


def test_calibrated_headline_is_not_optimistic_and_its_interval_covers() -> None:
    """The plug-in plan chosen on all customers claims ~1.2 x its true value; the headline
    corrected with 2-fold cross-fitting is within 7% of the truth on average and its interval covers the full plan's true
    value at about its level."""
    reps = 150
    post, cal, hit = [], [], []
    for rep in range(reps):
        rows = simulate(5_000 + rep)
        full = plug_in(rows)
        true = true_plan_value(full.allocation)
        res = crossfit_plan_value(rows, plug_in, COSTS, folds=2, seed=rep, value=VALUE)
        sd = score_plan(rows, full, COSTS, value=VALUE).se  # the plug-in's own uncertainty
        pv = calibrate_headline(full.claimed_profit, res, posterior_sd=sd)
        post.append(full.claimed_profit / true)
        cal.append(pv.calibrated / true)
        hit.append(pv.calibrated_ci[0] <= true <= pv.calibrated_ci[1])
    print(
        f"claimed/true {np.mean(post):.3f}, calibrated/true {np.mean(cal):.3f}, cover {np.mean(hit):.3f}"
    )
    assert np.mean(post) > 1.1
    assert abs(np.mean(cal) - 1.0) < 0.07
    assert 0.85 <= np.mean(hit) <= 0.95


def _covariate_rows(seed: int, n: int = 40_000) -> tuple[pd.DataFrame, float]:
    """One segment, arms control / email at 50:50; email lifts conversion by 0.12 when the
    covariate ``x`` is positive and lowers it by 0.04 otherwise. Returns the rows and the true
    value, per customer of the segment, of emailing exactly the customers with ``x > 0``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    arm = rng.choice(["control", "email"], n)
    lift = np.where(x > 0, 0.12, -0.04)
    p = 0.2 + 0.05 * np.tanh(x) + (arm == "email") * lift
    y = (rng.random(n) < p).astype(float)
    rows = pd.DataFrame({"segment": "s", "arm": arm, "converted": y, "x": x})
    value, cost = 10.0, 0.5
    true = 0.5 * (value * 0.12 - cost)  # half the customers have x > 0
    return rows, true


def test_weights_score_the_listed_customers_not_a_random_share() -> None:
    """With per-customer weights (FoldPlan.policy) the held-out value is that of treating
    exactly the listed customers: unbiased over seeds (|mean z| small, spread ~1), while the
    same share at random earns far less; weights equal to the share give the plain score."""
    plan = FoldPlan(
        pd.DataFrame(
            {"segment": ["s"], "arm": ["email"], "customers": [50.0], "eligible_customers": [100.0]}
        )
    )
    costs = {"control": 0.0, "email": 0.5}
    z, random_share = [], []
    for seed in range(40):
        rows, true = _covariate_rows(seed)
        w = pd.DataFrame({"email": (rows["x"] > 0).astype(float)})
        score = score_plan(rows, plan, costs, value=10.0, weights=w)
        z.append((score.value / 100 - true) / (score.se / 100))
        random_share.append(score_plan(rows, plan, costs, value=10.0).value / 100)
    assert abs(np.mean(z)) < 0.5 and 0.6 < np.std(z) < 1.4
    assert np.mean(random_share) < 0.5 * true
    rows, _ = _covariate_rows(0)
    plain = score_plan(rows, plan, costs, value=10.0)
    same = score_plan(
        rows, plan, costs, value=10.0, weights=pd.DataFrame({"email": np.full(len(rows), 0.5)})
    )
    assert same.value == pytest.approx(plain.value, rel=1e-12)
    assert same.se == pytest.approx(plain.se, rel=1e-12)
    with pytest.raises(ValueError, match="weights"):
        score_plan(
            rows, plan, costs, value=10.0, weights=pd.DataFrame({"other": np.ones(len(rows))})
        )
