"""Cross-fitted value of the plan: what a plan chosen this way earns on customers its fit never saw.

Why: the optimizer keeps the (segment, arm) cells whose *posterior* profit is high, so the plan's
posterior headline is biased upwards (the optimizer's curse: cells that look good partly look
good by noise). The honest number is the plan's value on customers that played no part in
choosing it. Cross-fitting gets it without throwing data away:

1. split the customers into ``K`` folds, stratified by segment x arm (seeded), so every fold is a
   small copy of the randomized experiment;
2. for each fold ``k``: ``fit_and_plan(rows outside k)`` fits the models and solves the plan
   (same optimizer, budget, rules and eligible population as the full run) and says what the
   plan claims it earns (``claimed_k``); the plan is then scored on fold ``k`` only
   (``heldout_k``);
3. the K held-out values are averaged into one estimate, with an interval.

Quantity estimated. A plan gives each segment ``g`` (``E_g`` eligible customers) a share
``pi_g(a) = customers / eligible`` of each arm ``a``, the rest control. Its incremental profit
versus treating nobody is::

    theta(plan) = sum_g E_g V_g,   V_g = sum_{a != c} pi_g(a) [ v_ga (mu^a_ga - mu^a_gc) - (cost_a - cost_c) ]

with ``mu^a_gb`` the mean of arm ``a``'s outcome column (``converted``, ``revenue``, ``orders``...)
among segment ``g`` customers in arm ``b`` and ``v_ga`` its value per unit (value per conversion,
margin per unit of revenue, value per order). The cross-fitted estimate targets
``theta_bar = (1/K) sum_k theta(plan_k)``, the mean true value of the K fold plans, each chosen on
``(K-1)/K`` of the customers (so slightly conservative for the full-data plan, chosen on all).

Estimator (``estimator="dr"``, the default, ``"dm"`` is the same number). On fold ``k``,
``V_g`` is estimated by the stratified difference in means: ``mu`` replaced by the held-out cell
means. This is exactly what :func:`uplift.experiment.offpolicy.evaluate_policy` computes for one
segment with DM, and with DR whenever the propensities are constant within segment x arm (design
shares, or the observed shares of the fold: the DR residual term sums to zero in every cell), and
IPW with the fold's observed shares reduces to it too. It is computed directly here because a
plan may mix tactics measured on different outcome columns: the control customers of segment
``g`` are then the comparison for several outcomes at once, and the variance must carry their
covariance, which one call of ``evaluate_policy`` per outcome cannot. ``estimator="ipw"`` is the
Horvitz-Thompson estimator with ``propensity`` = the design shares ``{arm: share}`` (the observed
shares of the fold's segment when not given, which makes it equal to DM); unbiased, noisier.

Variance. Within a fold the cells are independent samples, so with ``s^2`` the sample variance
(ddof 1) and ``n`` the held-out customers of the cell::

    Var(V_g) = sum_{a != c} pi_g(a)^2 v_ga^2 s^2(y^a | g, a) / n_ga + s^2(z | g, c) / n_gc,
    z_i = sum_{a != c} pi_g(a) v_ga y^a_i          (control customers: all outcomes at once)

    SE_k^2 = sum_g E_g^2 Var(V_g)      (segments are disjoint; E_g is fixed, not estimated)

For IPW: ``SE_k^2 = sum_g E_g^2 s^2(t | g) / n_g`` with ``t_i`` the Horvitz-Thompson term of
customer ``i``. Across folds::

    estimate = (1/K) sum_k heldout_k,
    SE^2 = (1/K^2) [ sum_k SE_k^2 + rho sum_{j != k} SE_j SE_k ],   rho = fold_correlation

Given the plans, each fold's estimate uses only that fold's customers, which played no part in
choosing its plan, so it is unbiased for ``theta(plan_k)``, and its interval covers it (sd of
the fold z-scores 1.02 in the test design below). The K errors are not independent: plan j was
chosen partly on fold k's noise and leans towards the cells where fold k was lucky. Treated as
independent (``rho = 0``) the combined interval covered 0.863 +- 0.011 instead of 0.90 (fold
error correlations +0.07 to +0.15). ``rho`` = :data:`FOLD_CORRELATION` (0.15) allows for it.
Interval: ``estimate +- z_{(1+level)/2} SE``.

Measured (tests/test_crossfit.py design: 6 segments x 3 arms, 300 customers per cell, plug-in
plans by difference in means and a greedy budget fill, level 0.9, 1000 replications,
``python bench/crossfit_coverage.py --folds K``): K = 3: coverage 0.905 +- 0.009 (sd of
the z-scores 0.98); K = 2: 0.892 +- 0.010 (1.04). A plan that does not depend on the data is
covered slightly conservatively. The estimate is unbiased for ``theta_bar`` (mean ratio 1.000
+- 0.009) while the plug-in claims were 1.29 x the truth.

``claimed_k`` is what plan k says it will earn (its posterior expected profit); ``optimism =
mean claimed / estimate`` is the selection-bias factor of the posterior headline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from uplift.experiment.assignment import HOLDOUT
from uplift.experiment.readout import Costs, arm_costs
from uplift.tactics import ArmMap

__all__ = [
    "ESTIMATORS",
    "FOLD_COLUMNS",
    "FOLD_FIT_COLUMNS",
    "SEGMENT_COLUMNS",
    "CrossfitResult",
    "FoldPlan",
    "PlanScore",
    "PlanValue",
    "assign_folds",
    "calibrate_headline",
    "crossfit_plan_value",
    "score_plan",
]

ESTIMATORS = ("dr", "dm", "ipw")
#: correlation allowed between the K fold errors in the interval (measured +0.07 to +0.15 with
#: noise-driven plans, see the module docstring); 0 treats the folds as independent
FOLD_CORRELATION = 0.15
#: ``CrossfitResult.fold_fits``: one row per fold and tactic; ``refits``: times the fit was
#: refit to mend it; ``failures`` is "" for a fit kept that passed the run's convergence gate,
#: else its reasons joined by "; "
FOLD_FIT_COLUMNS = [
    "fold",
    "tactic",
    "refits",
    "method",
    "divergences",
    "r_hat_max",
    "ess_bulk_min",
    "ess_tail_min",
    "failures",
]
FOLD_COLUMNS = [
    "fold",
    "n_train",
    "n_test",
    "claimed",
    "heldout",
    "heldout_se",
    "customers_treated",
]
SEGMENT_COLUMNS = [
    "segment",
    "eligible",
    "treated_share",
    "n_rows",
    "value_per_customer",
    "value_per_customer_se",
    "value",
]

Outcome = str | Mapping[str, str]
type ValueSpec = float | pd.Series | Mapping[str, float | pd.Series] | None
type Design = Mapping[str, float] | None


# --------------------------------------------------------------------------------------------
# plans
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FoldPlan:
    """A plan solved on one fold's training customers, for the FULL eligible population.

    ``allocation``: the optimizer's table (``segment, arm, customers`` and
    ``eligible_customers``, or ``probability``), one row per (segment, arm); customers not
    listed get control. ``claimed``: what the plan says it earns (its posterior expected
    incremental profit); ``None`` = the sum of the table's ``expected_incremental_profit``.
    ``eligible``: customers per segment, when the table has no ``eligible_customers``.
    ``policy``: when the plan's customers are chosen one by one (a covariate model's list)
    rather than at random within a segment, maps held-out rows to the arm each would get: a
    0/1 (or share) weight per row and treated arm (a DataFrame, columns = arms, the rows'
    order); it may read any column of the rows but never their outcomes. The segment's value is
    then that of treating exactly those customers (see :func:`score_plan`).
    """

    allocation: pd.DataFrame
    claimed: float | None = None
    eligible: pd.Series | None = None
    policy: Callable[[pd.DataFrame], pd.DataFrame] | None = None

    @property
    def claimed_profit(self) -> float:
        if self.claimed is not None:
            return float(self.claimed)
        if "expected_incremental_profit" in self.allocation.columns:
            return float(
                pd.to_numeric(self.allocation["expected_incremental_profit"]).fillna(0.0).sum()
            )
        return math.nan


def as_fold_plan(plan: object) -> FoldPlan:
    """A :class:`FoldPlan` from what ``fit_and_plan`` returned.

    Accepted: a ``FoldPlan``; the optimizer's ``Allocation`` (``.table``, ``.expected_profit``);
    or an allocation table alone (claim = sum of ``expected_incremental_profit``).
    """
    if isinstance(plan, FoldPlan):
        return plan
    if isinstance(plan, pd.DataFrame):
        return FoldPlan(plan)
    table = getattr(plan, "table", None)
    if isinstance(table, pd.DataFrame) and hasattr(plan, "expected_profit"):
        return FoldPlan(table, float(plan.expected_profit))
    raise TypeError(
        "fit_and_plan must return a FoldPlan, the optimizer's Allocation or an allocation table; "
        f"got {type(plan).__name__}"
    )


def _plan_policy(
    plan: FoldPlan, control: str
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """``{segment: {treated arm: share}}`` (positive shares only) and eligible per segment."""
    a = plan.allocation
    if "unit" in a.columns:
        amount = a["decision"] if "decision" in a.columns else a.get("spend")
        amount = pd.to_numeric(amount) if amount is not None else pd.Series(1.0, index=a.index)
        spend = (a["unit"].astype(str) == "spend") & (amount > 0)
        if spend.any():
            raise ValueError(
                "plan: spend-type cells (unit 'spend') have no per-customer policy and cannot be "
                f"scored on held-out customers: {a.loc[spend, 'segment'].tolist()[:5]}"
            )
    missing = [c for c in ("segment", "arm") if c not in a.columns]
    if missing:
        raise ValueError(f"plan: the allocation needs column(s) {missing}; has {list(a.columns)}")
    seg = a["segment"].astype(str).to_numpy(dtype=object)
    arm = a["arm"].astype(str).to_numpy(dtype=object)
    elig: dict[str, float] = {}
    if plan.eligible is not None:
        elig = {str(k): float(v) for k, v in plan.eligible.items()}
    elif "eligible_customers" in a.columns:
        counts = pd.to_numeric(a["eligible_customers"], errors="raise").to_numpy(dtype=float)
        for s, e in zip(seg, counts, strict=True):
            if elig.setdefault(s, e) != e:
                raise ValueError(
                    f"plan: eligible_customers differs between rows of segment {s!r}; "
                    "one count per segment"
                )
    else:
        raise ValueError(
            "plan: needs eligible customers per segment: an 'eligible_customers' column or "
            "FoldPlan(eligible=...)"
        )
    if "probability" in a.columns:
        prob = pd.to_numeric(a["probability"], errors="raise").to_numpy(dtype=float)
    elif "customers" in a.columns:
        unknown = sorted({s for s in seg if not elig.get(s, 0.0) > 0})
        if unknown:
            raise ValueError(f"plan: no positive eligible count for segment(s) {unknown[:5]}")
        cust = pd.to_numeric(a["customers"], errors="raise").to_numpy(dtype=float)
        prob = cust / np.array([elig[s] for s in seg], dtype=float)
    else:
        raise ValueError(
            f"plan: needs 'customers' (or 'probability') per row; has {list(a.columns)}"
        )
    if not (np.isfinite(prob) & (prob >= 0)).all():
        raise ValueError("plan: customers / probabilities must be finite and >= 0")
    shares: dict[str, dict[str, float]] = {}
    for s, k, p in zip(seg, arm, prob, strict=True):
        if k != control and p > 0:
            by = shares.setdefault(s, {})
            by[k] = by.get(k, 0.0) + float(p)
    over = {s: round(sum(v.values()), 4) for s, v in shares.items() if sum(v.values()) > 1 + 1e-9}
    if over:
        raise ValueError(
            f"plan: arms share more than all eligible customers in segment(s) {over}; each "
            "customer gets one arm"
        )
    return shares, elig


# --------------------------------------------------------------------------------------------
# folds
# --------------------------------------------------------------------------------------------


def _factor(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer code of every row and the sorted distinct labels (as str) the codes index."""
    codes, uniq = pd.factorize(values)
    names = [str(u) for u in uniq]
    labels = sorted(set(names))
    pos = {x: i for i, x in enumerate(labels)}
    remap = np.array([pos[x] for x in names], dtype=np.int64)
    return (remap[codes] if len(names) else np.zeros(len(codes), dtype=np.int64)), labels


def assign_folds(
    rows: pd.DataFrame,
    folds: int,
    seed: int,
    *,
    strata: Sequence[str] = ("segment", "arm"),
) -> np.ndarray:
    """Fold (0..K-1) of every row, stratified: each stratum split as evenly as possible.

    Rows are shuffled (seeded) inside each stratum and dealt to folds in turn, continuing from
    one stratum to the next, so every stratum and every fold differ in size by at most one row.
    Depends only on the seed, the row order and the strata labels.
    """
    _check_folds(folds)
    missing = [c for c in strata if c not in rows.columns]
    if missing:
        raise ValueError(f"rows: strata column(s) {missing} not in rows ({list(rows.columns)})")
    n = len(rows)
    if n < folds:
        raise ValueError(f"rows: {n} customers cannot fill {folds} folds")
    code = np.zeros(n, dtype=np.int64)
    for c in strata:
        part, labels = _factor(rows[c])
        code = code * max(len(labels), 1) + part
    perm = np.random.default_rng(seed).permutation(n)
    order = perm[np.argsort(code[perm], kind="stable")]
    out = np.empty(n, dtype=np.int64)
    out[order] = np.arange(n) % folds
    return out


def _check_folds(folds: int) -> None:
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise ValueError(
            f"folds: cross-fitting needs an integer >= 2 (fit on K-1 folds, score on the "
            f"other), got {folds!r}"
        )


# --------------------------------------------------------------------------------------------
# scoring one plan on held-out customers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanScore:
    """Estimated incremental profit of a plan on held-out customers, scaled to the eligible
    population: ``value = sum_g eligible_g x value_per_customer_g`` (``SEGMENT_COLUMNS``)."""

    value: float
    se: float
    n: int
    by_segment: pd.DataFrame


def _per_arm(spec: Any, arm: str, what: str) -> Any:
    if isinstance(spec, Mapping) and not isinstance(spec, pd.Series):
        if arm not in spec:
            raise ValueError(
                f"{what}: no entry for arm {arm!r} (given for {sorted(map(str, spec))}); "
                "a per-arm mapping must name every arm the plan treats"
            )
        return spec[arm]
    return spec


def _unit_value(spec: Any, arm: str, segment: str) -> float:
    v = _per_arm(spec, arm, "value")
    if v is None:
        return 1.0
    if isinstance(v, pd.Series):
        by = {str(k): x for k, x in v.items()}
        if segment not in by:
            raise ValueError(f"value: no value per unit for segment {segment!r} (arm {arm!r})")
        v = by[segment]
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"value: non-finite value per unit for arm {arm!r}, segment {segment!r}")
    return v


def _var(x: np.ndarray) -> float:
    return float(x.var(ddof=1)) if len(x) > 1 else 0.0


class _Rows:
    """Column arrays of the scored rows, grouped by segment once."""

    def __init__(self, rows: pd.DataFrame, arm_col: str, segment_col: str, columns: list[str]):
        missing = [c for c in (arm_col, segment_col, *columns) if c not in rows.columns]
        if missing:
            raise ValueError(f"rows: column(s) {missing} not in rows ({list(rows.columns)})")
        for col in (arm_col, segment_col):
            if rows[col].isna().any():
                raise ValueError(f"rows: {int(rows[col].isna().sum())} rows have no {col!r}")
        self.arm, arm_names = _factor(rows[arm_col])
        self.arm_pos = {a: i for i, a in enumerate(arm_names)}
        self.y: dict[str, np.ndarray] = {}
        for col in columns:
            y = pd.to_numeric(rows[col], errors="raise").to_numpy(dtype=float)
            if not np.isfinite(y).all():
                raise ValueError(
                    f"outcome: column {col!r} has {int((~np.isfinite(y)).sum())} missing or "
                    "non-finite values"
                )
            self.y[col] = y
        code, names = _factor(rows[segment_col])
        order = np.argsort(code, kind="stable")
        parts = np.split(order, np.cumsum(np.bincount(code, minlength=len(names)))[:-1])
        self.by_segment = dict(zip(names, parts, strict=True))

    def code(self, arm: str) -> int:
        return self.arm_pos.get(arm, -1)


def _segment_value(
    data: _Rows,
    idx: np.ndarray,
    shares: dict[str, float],
    segment: str,
    *,
    control: str,
    outcome: Outcome,
    value: ValueSpec,
    cost: dict[str, float],
    design: Design,
    estimator: str,
    min_cell_rows: int,
    where: str,
    weights: Mapping[str, np.ndarray] | None = None,
) -> tuple[float, float]:
    """Incremental profit per eligible customer of ``segment`` under ``shares``, and its SE.
    ``weights`` (arm -> one weight per row of ``idx``): which customers the plan gives the arm
    (1) and which not (0); the arm's cost is its share of the segment either way. Without
    them every customer gets the arm with its share's chance (a weight of ``shares[a]``)."""
    arm = data.arm[idx]
    ctrl = arm == data.code(control)
    n_c = int(ctrl.sum())
    if n_c < min_cell_rows:
        raise ValueError(
            f"{where}: segment {segment!r} has {n_c} held-out control customer(s), the plan "
            f"treats it and at least {min_cell_rows} are needed to score it; use fewer folds or "
            "merge small segments"
        )
    z = np.zeros(n_c)  # sum_a pi_a v_a y^a of the control customers
    treated_terms: dict[str, np.ndarray] = {}
    point, var = 0.0, 0.0
    for a, pi in shares.items():
        col = _per_arm(outcome, a, "outcome")
        v = _unit_value(value, a, segment)
        in_a = arm == data.code(a)
        n_a = int(in_a.sum())
        if n_a < min_cell_rows:
            raise ValueError(
                f"{where}: segment {segment!r} x arm {a!r} has {n_a} held-out customer(s), the "
                f"plan treats {pi:.1%} of the segment with it and at least {min_cell_rows} are "
                "needed to score it; use fewer folds or merge small segments"
            )
        y = data.y[col][idx]
        wa = np.full(len(idx), pi) if weights is None else np.asarray(weights[a], dtype=float)
        gain = wa[in_a] * v * y[in_a]  # what the arm's chosen customers convert to
        z += wa[ctrl] * v * y[ctrl]
        net = cost[a] - cost[control]
        treated_terms[a] = gain - pi * cost[a]
        point += gain.mean() - pi * net
        var += _var(gain) / n_a
    if estimator in ("dr", "dm"):
        point -= z.mean()
        var += _var(z) / n_c
        return point, var
    # ipw: Horvitz-Thompson over every customer of the segment (global holdout excluded)
    keep = arm != data.code(HOLDOUT)
    n_g = int(keep.sum())
    names = list(data.arm_pos)
    if design is None:
        counts = np.bincount(arm[keep], minlength=len(names))
        p = {a: counts[i] / n_g for i, a in enumerate(names)}
    else:
        w = {str(k): float(x) for k, x in design.items() if str(k) != HOLDOUT}
        present = {names[i] for i in np.unique(arm[keep]).tolist()}
        absent = sorted(present - set(w))
        if absent:
            raise ValueError(f"propensity: no design share for arm(s) {absent}; given {w}")
        total = sum(w.values())
        p = {k: x / total for k, x in w.items()}
    t = np.zeros(len(arm))
    t[ctrl] = -(z - sum(shares.values()) * cost[control]) / p[control]
    for a, terms in treated_terms.items():
        t[arm == data.code(a)] = terms / p[a]
    t = t[keep]
    return float(t.mean()), _var(t) / n_g


def score_plan(
    rows: pd.DataFrame,
    plan: FoldPlan | pd.DataFrame,
    costs: Costs,
    *,
    outcome: Outcome = "converted",
    value: ValueSpec = None,
    control: str | None = None,
    arm_col: str = "arm",
    segment_col: str = "segment",
    propensity: Design = None,
    estimator: str = "dr",
    min_cell_rows: int = 2,
    where: str = "rows",
    weights: pd.DataFrame | None = None,
) -> PlanScore:
    """Incremental profit of ``plan`` (vs treating nobody) estimated on ``rows``, in money.

    ``weights`` (rows x treated arms, the rows' order; :attr:`FoldPlan.policy`): the plan
    treats these customers, not a random share of each segment. Per segment and arm the
    estimate is then the mean of ``weight x value x outcome`` over the arm's customers minus
    over the control customers, less the share's cost: unbiased under randomization because the
    weights depend on the customers' covariates only.

    ``rows``: randomized experiment customers the plan's fit never saw (one per row) with
    ``arm_col``, ``segment_col`` and the outcome column(s). ``outcome``: one column for every
    arm, or ``{arm: column}`` when tactics are measured on different outcomes. ``value``: value
    per unit of the outcome (scalar, Series by segment, or ``{arm: scalar | Series}``; ``None``
    = 1, outcome already in currency). ``costs``: offer cost per treated customer per arm
    (mapping or ArmMap). See the module docstring for the estimator and its variance.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: use one of {ESTIMATORS}, got {estimator!r}")
    if int(min_cell_rows) < 2:
        raise ValueError(f"min_cell_rows: at least 2 (a sample variance), got {min_cell_rows!r}")
    if control is None:
        control = costs.control.name if isinstance(costs, ArmMap) else "control"
    plan = as_fold_plan(plan)
    shares, eligible = _plan_policy(plan, control)
    arms = sorted({a for s in shares.values() for a in s})
    cols = sorted({_per_arm(outcome, a, "outcome") for a in arms}) if arms else []
    data = _Rows(rows, arm_col, segment_col, cols)
    cost = arm_costs(costs, [control, *arms])
    if weights is not None:
        if len(weights) != len(rows):
            raise ValueError(f"weights: {len(weights)} rows for {len(rows)} customers")
        absent = sorted(set(arms) - set(map(str, weights.columns)))
        if absent:
            raise ValueError(f"weights: no column for treated arm(s) {absent}")
    out = []
    total, total_var = 0.0, 0.0
    for segment in sorted(shares):
        if segment not in eligible or not eligible[segment] > 0:
            raise ValueError(f"plan: no positive eligible count for segment {segment!r}")
        idx = data.by_segment.get(segment)
        if idx is None:
            raise ValueError(
                f"{where}: the plan treats segment {segment!r} but it has no held-out customers"
            )
        v, var = _segment_value(
            data,
            idx,
            shares[segment],
            segment,
            control=control,
            outcome=outcome,
            value=value,
            cost=cost,
            design=propensity,
            estimator=estimator,
            min_cell_rows=int(min_cell_rows),
            where=where,
            weights=None
            if weights is None
            else {a: weights[a].to_numpy(dtype=float)[idx] for a in shares[segment]},
        )
        e = eligible[segment]
        total += e * v
        total_var += e**2 * var
        out.append([segment, e, sum(shares[segment].values()), len(idx), v, math.sqrt(var), e * v])
    return PlanScore(
        value=float(total),
        se=float(math.sqrt(total_var)),
        n=len(rows),
        by_segment=pd.DataFrame(out, columns=SEGMENT_COLUMNS),
    )


# --------------------------------------------------------------------------------------------
# cross-fitting
# --------------------------------------------------------------------------------------------


def _number(x: Any) -> Any:
    if isinstance(x, np.integer | int) and not isinstance(x, bool):
        return int(x)
    if isinstance(x, np.floating | float):
        return float(x) if math.isfinite(float(x)) else None
    return x


@dataclass(frozen=True)
class CrossfitResult:
    """Cross-fitted value of a plan chosen this way, on customers its fit never saw.

    ``estimate`` +- ``se`` (interval ``ci_low, ci_high`` at ``level``) is the mean held-out
    incremental profit of the K fold plans, in money, for the full eligible population.
    ``per_fold``: ``FOLD_COLUMNS`` (``claimed`` = the fold plan's own posterior claim).
    ``per_segment``: ``fold`` + ``SEGMENT_COLUMNS``. ``plans``: each fold's allocation table.
    ``optimism`` = ``claimed_mean / estimate`` (NaN unless the estimate is positive);
    ``optimism_gap`` = ``claimed_mean - estimate``. ``fold_fits``: the convergence check of
    every fold's fit (``FOLD_FIT_COLUMNS``; None when the caller did not check them): fold
    plans rest on those fits as the headline rests on the main ones.
    """

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    level: float
    folds: int
    estimator: str
    seed: int
    n: int
    per_fold: pd.DataFrame
    per_segment: pd.DataFrame = field(repr=False)
    plans: list[pd.DataFrame] = field(repr=False)
    fold_fits: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def unconverged(self) -> list[str]:
        """``"fold k <tactic>: <reasons>"`` for every fold fit that failed the convergence
        check (empty when all passed or none was checked)."""
        if self.fold_fits is None:
            return []
        bad = self.fold_fits[self.fold_fits["failures"].astype(str) != ""]
        return [f"fold {r.fold} {r.tactic}: {r.failures}" for r in bad.itertuples()]

    @property
    def claimed_mean(self) -> float:
        return float(self.per_fold["claimed"].mean())

    @property
    def optimism(self) -> float:
        return self.claimed_mean / self.estimate if self.estimate > 0 else math.nan

    @property
    def optimism_gap(self) -> float:
        return self.claimed_mean - self.estimate

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (non-finite numbers as ``None``) for ``summary.json``."""
        head = {
            "estimate": self.estimate,
            "se": self.se,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "level": self.level,
            "folds": self.folds,
            "estimator": self.estimator,
            "seed": self.seed,
            "n_customers": self.n,
            "claimed_mean": self.claimed_mean,
            "optimism": self.optimism,
            "optimism_gap": self.optimism_gap,
        }
        out = {k: _number(v) for k, v in head.items()}
        out["per_fold"] = [
            {k: _number(v) for k, v in r.items()} for r in self.per_fold.to_dict("records")
        ]
        if self.fold_fits is not None:
            out["fold_fits"] = {
                "checked": len(self.fold_fits),
                "refits": int(self.fold_fits["refits"].sum()),
                "unconverged": self.unconverged,
            }
        return out


def crossfit_plan_value(
    rows: pd.DataFrame,
    fit_and_plan: Callable[[pd.DataFrame], FoldPlan | pd.DataFrame | Any],
    costs: Costs,
    *,
    seed: int,
    folds: int = 3,
    outcome: Outcome = "converted",
    value: ValueSpec = None,
    control: str | None = None,
    arm_col: str = "arm",
    segment_col: str = "segment",
    propensity: Design = None,
    estimator: str = "dr",
    level: float = 0.9,
    min_cell_rows: int = 2,
    fold_correlation: float = FOLD_CORRELATION,
) -> CrossfitResult:
    """Cross-fitted incremental profit of the plan ``fit_and_plan`` chooses, on unseen customers.

    ``rows``: the experiment's customers, one per row (``arm_col``, ``segment_col``, outcome
    columns and whatever ``fit_and_plan`` needs). Folds: :func:`assign_folds` by segment x arm.
    ``fit_and_plan(train_rows)`` fits on the training rows (index reset) and returns the plan
    for the FULL eligible population: a :class:`FoldPlan`, the optimizer's ``Allocation`` or
    its table. Each plan is scored on its held-out fold by :func:`score_plan` (``outcome``,
    ``value``, ``costs``, ``propensity``, ``estimator`` as there). Raises ``ValueError`` for
    ``folds < 2``, a segment with fewer than ``min_cell_rows`` control customers in some fold
    (checked before any fit), or a treated cell with too few held-out customers.
    """
    _check_folds(folds)
    if not (0 < level < 1):
        raise ValueError(f"level: must be in (0, 1), got {level!r}")
    if not (0 <= fold_correlation <= 1):
        raise ValueError(f"fold_correlation: must be in [0, 1], got {fold_correlation!r}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: use one of {ESTIMATORS}, got {estimator!r}")
    if control is None:
        control = costs.control.name if isinstance(costs, ArmMap) else "control"
    for col in (arm_col, segment_col):
        if col not in rows.columns:
            raise ValueError(f"rows: column {col!r} not in rows ({list(rows.columns)})")
    if len(rows) < 2 * folds:
        raise ValueError(f"rows: {len(rows)} customers are too few for {folds} folds")
    rows = rows.reset_index(drop=True)
    fold = assign_folds(rows, folds, seed, strata=(segment_col, arm_col))

    # every segment needs control customers in every fold: check before any (costly) fit
    arm, arm_names = _factor(rows[arm_col])
    seg_code, seg_names = _factor(rows[segment_col])
    if control not in arm_names:
        raise ValueError(f"control: arm {control!r} has no customers in rows")
    is_c = arm == arm_names.index(control)
    ctrl = pd.DataFrame(
        np.bincount(seg_code[is_c] * folds + fold[is_c], minlength=len(seg_names) * folds).reshape(
            len(seg_names), folds
        ),
        index=seg_names,
    )
    _check_fold_controls(ctrl, folds, min_cell_rows)

    fold_rows, seg_tables, plans = [], [], []
    for k in range(folds):
        train = rows.loc[fold != k].reset_index(drop=True)
        test = rows.loc[fold == k].reset_index(drop=True)
        plan = as_fold_plan(fit_and_plan(train))
        score = score_plan(
            test,
            plan,
            costs,
            outcome=outcome,
            value=value,
            control=control,
            arm_col=arm_col,
            segment_col=segment_col,
            propensity=propensity,
            estimator=estimator,
            min_cell_rows=min_cell_rows,
            where=f"fold {k}",
            weights=None if plan.policy is None else plan.policy(test),
        )
        alloc = plan.allocation
        treated = _treated(alloc, control)
        fold_rows.append(
            [k, len(train), len(test), plan.claimed_profit, score.value, score.se, treated]
        )
        seg_tables.append(score.by_segment.assign(fold=k))
        plans.append(alloc)
    return _combine(
        fold_rows, seg_tables, plans, level, folds, estimator, seed, len(rows), fold_correlation
    )


def _check_fold_controls(per_fold: pd.DataFrame, folds: int, min_cell_rows: int) -> None:
    """Every segment (row of ``per_fold``: control customers per fold) needs ``min_cell_rows``
    control customers in every fold, or a fold's plan cannot be scored there: checked before
    any (costly) fit, naming the thinnest segments."""
    thin = per_fold[per_fold.min(axis=1) < min_cell_rows]
    if len(thin):
        worst = {str(s): int(r.min()) for s, r in thin.iterrows()}
        raise ValueError(
            f"folds: with {folds} folds some fold has fewer than {min_cell_rows} control "
            f"customers in segment(s) (fewest per fold) {dict(list(worst.items())[:5])}; a "
            "fold's plan could not be scored there: use fewer folds or merge small segments"
        )


def _treated(alloc: pd.DataFrame, control: str) -> float:
    """Customers a fold's plan treats (any arm but control); NaN when it has no counts."""
    if "customers" not in alloc.columns:
        return math.nan
    return float(alloc.loc[alloc["arm"].astype(str) != control, "customers"].sum())


def _combine(
    fold_rows: list,
    seg_tables: list[pd.DataFrame],
    plans: list[pd.DataFrame],
    level: float,
    folds: int,
    estimator: str,
    seed: int,
    n: int,
    fold_correlation: float,
) -> CrossfitResult:
    """The K fold scores as one estimate with its interval (see the module docstring)."""
    per_fold = pd.DataFrame(fold_rows, columns=FOLD_COLUMNS)
    estimate = float(per_fold["heldout"].mean())
    se_k = per_fold["heldout_se"].to_numpy(dtype=float)
    cross = float(se_k.sum() ** 2 - (se_k**2).sum())  # sum over j != k of SE_j SE_k
    se = float(math.sqrt((se_k**2).sum() + fold_correlation * cross) / folds)
    z = float(stats.norm.ppf(0.5 + level / 2))
    per_segment = pd.concat(seg_tables, ignore_index=True)
    return CrossfitResult(
        estimate=estimate,
        se=se,
        ci_low=estimate - z * se,
        ci_high=estimate + z * se,
        level=float(level),
        folds=int(folds),
        estimator=estimator,
        seed=int(seed),
        n=n,
        per_fold=per_fold,
        per_segment=per_segment[["fold", *SEGMENT_COLUMNS]],
        plans=plans,
    )


# --------------------------------------------------------------------------------------------
# cross-fitting from per-(fold, segment, arm) cells
# --------------------------------------------------------------------------------------------
#: outcome columns whose per-cell moments the fold cells carry (sum ``s__c``, sum of squares
#: ``ss__c`` and cross sums ``x__c1__c2``): all the DR / DM estimator reads of the rows
MOMENT_OUTCOMES = ("converted", "revenue", "orders")


def _moment(cells: pd.DataFrame, a: str, b: str) -> np.ndarray:
    if a == b:
        return cells[f"ss__{a}"].to_numpy(dtype=float)
    x, y = sorted((a, b), key=MOMENT_OUTCOMES.index)
    return cells[f"x__{x}__{y}"].to_numpy(dtype=float)


def _var_from(n: float, s: float, ss: float) -> float:
    """Sample variance (ddof 1) from count, sum and sum of squares."""
    return max((ss - s * s / n) / (n - 1), 0.0) if n > 1 else 0.0


def score_plan_moments(
    moments: pd.DataFrame,
    plan: FoldPlan | pd.DataFrame,
    costs: Costs,
    *,
    outcome: Outcome = "converted",
    value: ValueSpec = None,
    control: str | None = None,
    estimator: str = "dr",
    min_cell_rows: int = 2,
    where: str = "cells",
) -> PlanScore:
    """:func:`score_plan` (DR / DM) from per-(segment, arm) moments instead of rows.

    ``moments``: ``segment, arm, n`` and ``s__<col>``, ``ss__<col>``, ``x__<c1>__<c2>`` of the
    outcome columns (:data:`MOMENT_OUTCOMES`). The DR / DM estimate of a segment-level plan is a
    function of each cell's mean, of the treated cells' variances and of the variance of the
    control customers' value-weighted outcome, which needs only these sums: the same numbers
    as :func:`score_plan` on the rows, up to rounding. (IPW needs the rows.)
    """
    if estimator not in ("dr", "dm"):
        raise ValueError(f"estimator: from cells only dr or dm, got {estimator!r}")
    if control is None:
        control = costs.control.name if isinstance(costs, ArmMap) else "control"
    plan = as_fold_plan(plan)
    shares, eligible = _plan_policy(plan, control)
    arms = sorted({a for sh in shares.values() for a in sh})
    cost = arm_costs(costs, [control, *arms])
    m = moments.assign(segment=moments["segment"].astype(str), arm=moments["arm"].astype(str))
    m = m.groupby(["segment", "arm"], sort=True).sum(numeric_only=True)
    seg_n = m["n"].groupby(level=0).sum()
    out, total, total_var = [], 0.0, 0.0
    for segment in sorted(shares):
        if segment not in eligible or not eligible[segment] > 0:
            raise ValueError(f"plan: no positive eligible count for segment {segment!r}")
        if segment not in seg_n.index:
            raise ValueError(
                f"{where}: the plan treats segment {segment!r} but it has no held-out customers"
            )
        cell = m.loc[segment]
        n_c = int(cell["n"].get(control, 0))
        if n_c < min_cell_rows:
            raise ValueError(
                f"{where}: segment {segment!r} has {n_c} held-out control customer(s), the plan "
                f"treats it and at least {min_cell_rows} are needed to score it; use fewer folds "
                "or merge small segments"
            )
        ctrl = cell.loc[[control]]
        weight: dict[str, float] = {}
        point, var = 0.0, 0.0
        for a, pi in shares[segment].items():
            col = _per_arm(outcome, a, "outcome")
            v = _unit_value(value, a, segment)
            n_a = int(cell["n"].get(a, 0))
            if n_a < min_cell_rows:
                raise ValueError(
                    f"{where}: segment {segment!r} x arm {a!r} has {n_a} held-out customer(s), "
                    f"the plan treats {pi:.1%} of the segment with it and at least "
                    f"{min_cell_rows} are needed to score it; use fewer folds or merge small "
                    "segments"
                )
            s_a, ss_a = float(cell.loc[a, f"s__{col}"]), float(cell.loc[a, f"ss__{col}"])
            weight[col] = weight.get(col, 0.0) + pi * v
            net = cost[a] - cost[control]
            point += pi * (v * s_a / n_a - net)
            var += pi**2 * v**2 * _var_from(n_a, s_a, ss_a) / n_a
        s_z = sum(w * float(ctrl[f"s__{c}"].iloc[0]) for c, w in weight.items())
        ss_z = sum(
            w1 * w2 * float(_moment(ctrl, c1, c2)[0])
            for c1, w1 in weight.items()
            for c2, w2 in weight.items()
        )
        point -= s_z / n_c
        var += _var_from(n_c, s_z, ss_z) / n_c
        e = eligible[segment]
        total += e * point
        total_var += e**2 * var
        out.append(
            [
                segment,
                e,
                sum(shares[segment].values()),
                int(seg_n[segment]),
                point,
                math.sqrt(var),
                e * point,
            ]
        )
    return PlanScore(
        value=float(total),
        se=float(math.sqrt(total_var)),
        n=int(m["n"].sum()),
        by_segment=pd.DataFrame(out, columns=SEGMENT_COLUMNS),
    )


def crossfit_plan_value_cells(
    fold_cells: pd.DataFrame,
    train_cells: Callable[[int], pd.DataFrame],
    fit_and_plan: Callable[[pd.DataFrame], FoldPlan | pd.DataFrame | Any],
    costs: Costs,
    *,
    seed: int,
    folds: int,
    outcome: Outcome = "converted",
    value: ValueSpec = None,
    control: str | None = None,
    estimator: str = "dr",
    level: float = 0.9,
    min_cell_rows: int = 2,
    fold_correlation: float = FOLD_CORRELATION,
) -> CrossfitResult:
    """:func:`crossfit_plan_value` when the rows stay in an engine: ``fold_cells`` holds the
    per-(fold, segment, arm) moments (folds from a salted hash of the customer id, computed
    where the rows live), ``train_cells(k)`` the cells of every fold but ``k``, and
    ``fit_and_plan(cells)`` fits on those cells and plans for the full eligible base. Each
    plan is scored on fold ``k``'s moments by :func:`score_plan_moments`."""
    _check_folds(folds)
    if not (0 < level < 1):
        raise ValueError(f"level: must be in (0, 1), got {level!r}")
    if control is None:
        control = costs.control.name if isinstance(costs, ArmMap) else "control"
    ctrl = fold_cells[fold_cells["arm"].astype(str) == control]
    per = ctrl.pivot_table(index="segment", columns="fold", values="n", aggfunc="sum")
    per = per.reindex(columns=range(folds)).fillna(0)
    all_segments = sorted(set(fold_cells["segment"].astype(str)))
    per = per.reindex(all_segments).fillna(0)
    _check_fold_controls(per, folds, min_cell_rows)
    fold_rows, seg_tables, plans = [], [], []
    n_all = int(fold_cells["n"].sum())
    for k in range(folds):
        test = fold_cells[fold_cells["fold"] == k]
        plan = as_fold_plan(fit_and_plan(train_cells(k)))
        score = score_plan_moments(
            test,
            plan,
            costs,
            outcome=outcome,
            value=value,
            control=control,
            estimator=estimator,
            min_cell_rows=min_cell_rows,
            where=f"fold {k}",
        )
        alloc = plan.allocation
        treated = _treated(alloc, control)
        n_test = int(test["n"].sum())
        fold_rows.append(
            [k, n_all - n_test, n_test, plan.claimed_profit, score.value, score.se, treated]
        )
        seg_tables.append(score.by_segment.assign(fold=k))
        plans.append(alloc)
    return _combine(
        fold_rows, seg_tables, plans, level, folds, estimator, seed, n_all, fold_correlation
    )


@dataclass(frozen=True)
class PlanValue:
    """The plan's headline numbers and which one to trust (``summary.json: plan_value``).

    ``posterior``: the plan's posterior expected incremental profit (the optimizer's own number,
    inflated by selection). ``calibrated``: the posterior headline minus the selection optimism
    that cross-fitting measured, scaled from the fold plans to the full-data plan (see
    :func:`calibrate_headline`); equal to ``posterior`` when cross-fitting did not run.
    ``crossfit``: the cross-fitted value of plans chosen this way, with its interval.
    ``list_credit``: with customer strata, what the customer list adds to the stratum plan's
    posterior value by taking the best customers of partly treated strata (included in
    ``posterior``; :meth:`uplift.app.strata_run.CustomerStrata.selection_credit`), else None.
    """

    posterior: float
    calibrated: float
    calibrated_ci: tuple[float, float] | None
    crossfit: float | None
    crossfit_ci: tuple[float, float] | None
    optimism_gap: float | None
    scale: float | None
    trust: str
    note: str
    list_credit: float | None = None

    def to_dict(self) -> dict[str, Any]:
        def pair(x: tuple[float, float] | None) -> list[float | None] | None:
            return None if x is None else [_number(x[0]), _number(x[1])]

        return {
            "posterior": _number(self.posterior),
            "calibrated": _number(self.calibrated),
            "calibrated_ci": pair(self.calibrated_ci),
            "crossfit": None if self.crossfit is None else _number(self.crossfit),
            "crossfit_ci": pair(self.crossfit_ci),
            "optimism_gap": None if self.optimism_gap is None else _number(self.optimism_gap),
            "scale": self.scale,
            "trust": self.trust,
            "note": self.note,
            "list_credit": None if self.list_credit is None else _number(self.list_credit),
        }


def calibrate_headline(
    posterior: float,
    result: CrossfitResult | None,
    why: str = "",
    *,
    posterior_sd: float = 0.0,
    list_credit: float | None = None,
) -> PlanValue:
    """Correct the plan's posterior headline for selection with the cross-fitted optimism.

    The K fold plans claimed ``claimed_k`` and earned ``heldout_k`` on customers their fits never
    saw; their mean gap ``G = mean_k (claimed_k - heldout_k)`` is the optimism of a plan chosen
    on ``(K-1)/K`` of the customers. A plan chosen on all customers is less optimistic. How much
    less was measured: the full-data plan's optimism over the fold plans' gap was 0.57 (K = 2)
    and 0.75 (K = 3) for difference-in-means plans (tests/test_crossfit.py design,
    ``python bench/crossfit_coverage.py --optimism --folds K``) and about 0.4 (K = 2) for the
    pipeline's posterior plans on bench/crossed_decisions.py (5 seeds). Noise alone would shrink like ``sqrt((K-1)/K)``
    (0.71, 0.82); a posterior's selection bias comes from its prior's pull, which shrinks like
    the posterior variance, ``(K-1)/K`` (0.5, 0.67), the nearer rule in both. Neither rule fits
    every generator (stop 26): at 100k customers on bench/crossed_decisions.py a ratio near 0.8
    would have fitted, while on the demo's generator (bench/demo_calibration.py, 5 seeds) the
    full-data plans were not optimistic (claim / true 0.994) although their fold plans were, so
    any positive scale lowers an honest headline (0.909 with this one, 0.873 with the square
    root). The gap's standard error was 0.10-0.40 of the truth on every seed measured. So::

        calibrated = posterior - max(0, G (K-1)/K)

    (a negative gap, plans earning more than they claimed, leaves the posterior unchanged: the
    headline is corrected down for selection, never up for noise). Interval for the plan's true
    value: ``calibrated +- z sqrt(posterior_sd^2 + ((K-1)/K SE)^2)``: the posterior's own
    uncertainty about the plan (``posterior_sd``, sd of its profit draws) plus the noise of the
    correction (``SE``: the cross-fitted standard error; the claims are fixed given the plans,
    the held-out values carry the noise). Without cross-fitting the posterior is returned with
    ``trust = "posterior"`` and ``why`` as the note.

    ``list_credit`` (customer strata): added to ``posterior`` first, so the headline is the
    customer list's posterior value; the fold plans' claims are their lists' too
    (:func:`uplift.pipeline.crossfit_plan`), so the gap compares like with like.
    """
    credit_note = ""
    if list_credit is not None:
        posterior = float(posterior) + float(list_credit)
        credit_note = (
            f"; the posterior value includes {list_credit:,.0f} for the customers the list "
            "chooses within partly treated strata (each listed customer's own deviation under "
            "the covariate model, beyond the stratum's average)"
        )
    if result is None:
        return PlanValue(
            posterior=float(posterior),
            calibrated=float(posterior),
            calibrated_ci=None,
            crossfit=None,
            crossfit_ci=None,
            optimism_gap=None,
            scale=None,
            trust="posterior",
            note=(
                "not corrected for selection: the posterior headline of a chosen plan is "
                f"optimistic{'; ' + why if why else ''}{credit_note}"
            ),
            list_credit=list_credit,
        )
    k = result.folds
    scale = (k - 1) / k
    gap = result.optimism_gap
    correction = max(0.0, gap * scale) if math.isfinite(gap) else 0.0
    calibrated = float(posterior) - correction
    z = float(stats.norm.ppf(0.5 + result.level / 2))
    half = z * math.hypot(float(posterior_sd), scale * result.se)
    note = (
        f"the fold plans claimed {gap:,.0f} more than they earned on held-out customers, so "
        f"the headline is lowered by {correction:,.0f} (the gap x {k - 1}/{k} for a plan "
        "chosen on all customers)"
        if gap > 0
        else f"the fold plans earned {abs(gap):,.0f} more than they claimed on held-out "
        "customers: no sign of selection optimism, the headline is the posterior value"
        if gap < 0
        else "the fold plans earned what they claimed on held-out customers: the headline "
        "is the posterior value"
    )
    if bad := result.unconverged:
        assert result.fold_fits is not None
        note += (
            f"; less certain: {len(bad)} of {len(result.fold_fits)} fold fits did not pass the "
            f"convergence gate ({'; '.join(bad[:2])}{'; ...' if len(bad) > 2 else ''})"
        )
    return PlanValue(
        posterior=float(posterior),
        calibrated=calibrated,
        calibrated_ci=(calibrated - half, calibrated + half),
        crossfit=result.estimate,
        crossfit_ci=(result.ci_low, result.ci_high),
        optimism_gap=float(gap),
        scale=scale,
        trust="calibrated",
        note=note + credit_note,
        list_credit=list_credit,
    )
