"""Off-policy value of a targeting policy from a randomized experiment, in profit per customer.

Why: before rolling out a targeting rule (or the optimizer's allocation) we want to know what it
would have earned on the customers we already experimented on, without a new test. Because the
experiment randomized arms with known probabilities, any policy's value can be estimated from it,
as the Open Bandit Pipeline does (IPW, SNIPW, DM, DR).

Quantity estimated: the policy's **incremental profit per customer versus treating nobody**
(everyone in control), over the experiment's customers::

    V = E[ sum_a (pi(a|x) - 1[a = control]) * mu(x, a) ],   mu(x, a) = E[profit | x, arm a]

with profit per row ``r = outcome * value - cost[arm]`` (``value`` = 1 when the outcome is
already currency). With ``D_i(a) = pi_i(a) - 1[a = control]``, ``p_i`` the probability the row
got its arm ``A_i``, and ``q(s, a)`` the mean profit of segment ``s`` x arm ``a``:

* IPW:   ``mean_i D_i(A_i) r_i / p_i``
* SNIPW: the policy and control values each self-normalised, ``sum w r / sum w`` with
  ``w = pi_i(A_i) / p_i`` and ``w = 1[A_i = control] / p_i``, then differenced (robust to a
  mis-scaled propensity, e.g. a dropped global holdout).
* DM:    ``mean_i sum_a D_i(a) q(s_i, a)`` (the per segment x arm means model).
* DR:    ``DM + mean_i D_i(A_i) (r_i - q(s_i, A_i)) / p_i``.

Standard errors: influence functions (default; delta method for SNIPW, and for DM the term from
estimating the cell means), or a seeded nonparametric bootstrap over rows with percentile
intervals. With propensities that are constant within segment x arm, DR with cell means equals
DM exactly (the residual term sums to zero per cell); both then have far lower variance than IPW.

Policies: a mapping segment -> arm (or -> {arm: probability}), a function row -> arm, the name
of a column of the rows holding each customer's arm (a customer-level policy), or a table:
``segment, arm|tactic, probability`` or the optimizer's allocation ``segment, arm|tactic,
customers[, eligible_customers]`` (probability = customers / eligible, the rest control).
Segments the policy does not mention are treated as control.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from uplift.experiment.assignment import HOLDOUT
from uplift.experiment.readout import Costs, arm_costs
from uplift.tactics import ArmMap

ESTIMATORS = ("ipw", "snipw", "dm", "dr")
VALUE_COLUMNS = ["estimator", "estimate", "se", "ci_low", "ci_high", "level", "n", "method"]
POLICY_COLUMNS = ["segment", "arm", "probability"]

type Policy = (
    Mapping[str, str | Mapping[str, float]] | Callable[[pd.Series], object] | pd.DataFrame | str
)
type Propensity = str | Mapping[str, float] | pd.DataFrame


@dataclass(frozen=True)
class PolicyEvaluation:
    """Estimates of a policy's incremental profit per customer, with diagnostics.

    ``table``: one row per estimator (``VALUE_COLUMNS``). ``policy``: the policy as evaluated,
    mean probability per (segment, arm) over the experiment rows. ``diagnostics``: per arm, rows,
    mean importance weight ``mean(1[A=a]/p)`` (should be ~1; far from 1 means wrong propensities)
    and the policy's share. ``effective_sample_size``: ``(sum w)^2 / sum w^2`` of the policy's
    importance weights - small values mean IPW rests on few customers.
    """

    table: pd.DataFrame
    policy: pd.DataFrame
    diagnostics: pd.DataFrame
    effective_sample_size: float
    n: int

    def estimate(self, estimator: str = "dr") -> float:
        """Point estimate of one estimator (``ipw``, ``snipw``, ``dm``, ``dr``)."""
        return float(self._row(estimator)["estimate"])

    def interval(self, estimator: str = "dr") -> tuple[float, float]:
        row = self._row(estimator)
        return float(row["ci_low"]), float(row["ci_high"])

    def _row(self, estimator: str) -> pd.Series:
        hit = self.table[self.table["estimator"] == estimator]
        if hit.empty:
            raise KeyError(f"estimator {estimator!r}: use one of {list(self.table['estimator'])}")
        return hit.iloc[0]


# --------------------------------------------------------------------------------------------
# policies
# --------------------------------------------------------------------------------------------


def _labels(values: pd.Series) -> np.ndarray:
    """Labels as an object array of str (segments and arms are compared as strings)."""
    return np.asarray(values.to_numpy(dtype=object)).astype(str)


def _codes(values: np.ndarray, labels: list[str]) -> np.ndarray:
    """Position of each value in ``labels`` (-1 if absent)."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    uniq, inv = np.unique(np.asarray(values).astype(str), return_inverse=True)
    pos = {str(x): i for i, x in enumerate(labels)}
    return np.array([pos.get(str(u), -1) for u in uniq], dtype=np.int64)[inv.ravel()]


def _arm_of_tactic(arm_map: ArmMap | None, tactic: str) -> str:
    if arm_map is None:
        raise ValueError(
            f"policy table: has 'tactic' but no 'arm' column; pass arm_map= to map tactic "
            f"{tactic!r} to its arm, or add an 'arm' column"
        )
    names = [a.name for a in arm_map.treated if a.tactic.value == str(tactic)]
    if len(names) != 1:
        raise ValueError(
            f"policy table: tactic {tactic!r} maps to {len(names)} arms {names} in the ArmMap; "
            "give an 'arm' column to say which variant"
        )
    return names[0]


def allocation_policy(
    allocation: pd.DataFrame,
    *,
    eligible: pd.Series | None = None,
    arm_map: ArmMap | None = None,
) -> pd.DataFrame:
    """Per-segment stochastic policy from an allocation table (e.g. the optimizer's).

    ``allocation`` has ``segment``, ``arm`` (or ``tactic`` with ``arm_map``) and ``customers``,
    plus ``eligible_customers`` unless ``eligible`` (customers per segment) is given. Each arm
    gets ``customers / eligible`` of the segment; whatever is left is control (added by the
    evaluator). A table with a ``probability`` column is returned as is (validated).
    """
    a = allocation.copy()
    if "arm" not in a.columns:
        if "tactic" not in a.columns:
            raise ValueError(
                f"policy table: needs an 'arm' or 'tactic' column; has {list(a.columns)}"
            )
        a["arm"] = [_arm_of_tactic(arm_map, t) for t in a["tactic"]]
    if "segment" not in a.columns:
        raise ValueError(f"policy table: needs a 'segment' column; has {list(a.columns)}")
    a["segment"] = _labels(a["segment"])
    a["arm"] = _labels(a["arm"])
    if "probability" in a.columns:
        prob = pd.to_numeric(a["probability"], errors="raise").astype(float)
    elif "customers" in a.columns:
        if eligible is not None:
            elig = a["segment"].map({str(k): float(v) for k, v in eligible.items()})
        elif "eligible_customers" in a.columns:
            elig = pd.to_numeric(a["eligible_customers"], errors="raise").astype(float)
        else:
            raise ValueError(
                "policy table: 'customers' needs the eligible customers per segment: an "
                "'eligible_customers' column or eligible= (Series indexed by segment)"
            )
        if elig.isna().any() or (elig <= 0).any():
            bad = sorted(a.loc[elig.isna() | (elig <= 0), "segment"].unique())
            raise ValueError(f"policy table: no positive eligible count for segment(s) {bad}")
        prob = pd.to_numeric(a["customers"], errors="raise").astype(float) / elig
    else:
        raise ValueError(
            "policy table: needs 'probability' or 'customers' (with eligible counts); has "
            f"{list(a.columns)}"
        )
    if not (np.isfinite(prob) & (prob >= 0)).all():
        raise ValueError("policy table: probabilities / customers must be finite and >= 0")
    out = (
        pd.DataFrame({"segment": a["segment"], "arm": a["arm"], "probability": prob})
        .groupby(["segment", "arm"], sort=False, as_index=False)["probability"]
        .sum()
    )
    total = out.groupby("segment")["probability"].sum()
    over = total[total > 1 + 1e-9]
    if len(over):
        raise ValueError(
            "policy table: arms share more than all eligible customers in segment(s) "
            f"{ {str(k): round(float(v), 4) for k, v in over.items()} }; each customer gets one arm"
        )
    return out[POLICY_COLUMNS]


def _probs_from_table(
    table: pd.DataFrame, seg: np.ndarray, arms: list[str], control: str
) -> np.ndarray:
    idx = {a: k for k, a in enumerate(arms)}
    unknown = sorted({str(a) for a in table["arm"]} - set(arms))
    if unknown:
        raise ValueError(
            f"policy: arm(s) {unknown} never appear in the experiment rows (arms: {arms}); "
            "their value cannot be estimated from this experiment"
        )
    seg_names, inv = np.unique(seg.astype(str), return_inverse=True)
    by_seg = np.zeros((len(seg_names), len(arms)))
    spos = {str(s): i for i, s in enumerate(seg_names)}
    extra = sorted({str(s) for s in table["segment"]} - set(spos))
    if extra:
        warnings.warn(
            f"policy: segment(s) {extra[:10]} are not in the experiment rows and are ignored; "
            "the value is per customer of the experiment's segments",
            UserWarning,
            stacklevel=3,
        )
    for r in table.itertuples(index=False):
        if r.segment in spos:
            by_seg[spos[r.segment], idx[r.arm]] += float(r.probability)
    c = idx[control]
    rest = 1.0 - (by_seg.sum(axis=1) - by_seg[:, c])
    by_seg[:, c] = np.clip(rest, 0.0, None)
    return by_seg[inv]


def _as_prob_row(choice: object, arms: list[str], where: str) -> np.ndarray:
    idx = {a: k for k, a in enumerate(arms)}
    out = np.zeros(len(arms))
    if isinstance(choice, Mapping):
        for a, p in choice.items():
            if str(a) not in idx:
                raise ValueError(f"policy{where}: arm {a!r} not in the experiment arms {arms}")
            out[idx[str(a)]] += float(p)
        if not (np.isfinite(out).all() and (out >= 0).all() and abs(out.sum() - 1) < 1e-6):
            raise ValueError(
                f"policy{where}: probabilities {dict(choice)} must be >= 0 and sum to 1"
            )
        return out
    if str(choice) not in idx:
        raise ValueError(f"policy{where}: arm {choice!r} not in the experiment arms {arms}")
    out[idx[str(choice)]] = 1.0
    return out


def policy_probabilities(
    policy: Policy,
    rows: pd.DataFrame,
    arms: list[str],
    *,
    control: str,
    segment_col: str = "segment",
    eligible: pd.Series | None = None,
    arm_map: ArmMap | None = None,
) -> np.ndarray:
    """``(n_rows, n_arms)`` probability the policy gives each arm for each row (rows sum to 1)."""
    seg = _labels(rows[segment_col])
    if isinstance(policy, str):  # a column of rows: the arm the policy gives each customer
        if policy not in rows.columns:
            raise ValueError(f"policy: column {policy!r} not in rows ({list(rows.columns)})")
        chosen = _labels(rows[policy])
        idx = _codes(chosen, arms)
        if (idx < 0).any():
            unknown = sorted(set(chosen[idx < 0].tolist()))
            raise ValueError(
                f"policy: arm(s) {unknown[:10]} in column {policy!r} never appear in the "
                f"experiment rows (arms: {arms}); their value cannot be estimated from them"
            )
        out = np.zeros((len(rows), len(arms)))
        out[np.arange(len(rows)), idx] = 1.0
        return out
    if isinstance(policy, pd.DataFrame):
        table = allocation_policy(policy, eligible=eligible, arm_map=arm_map)
        return _probs_from_table(table, seg, arms, control)
    if isinstance(policy, Mapping):
        seg_set = set(np.unique(seg).tolist())
        extra = sorted(str(s) for s in policy if str(s) not in seg_set)
        if extra:
            warnings.warn(
                f"policy: segment(s) {extra[:10]} are not in the experiment rows and are ignored",
                UserWarning,
                stacklevel=3,
            )
        per = {str(s): _as_prob_row(c, arms, f"[{s!r}]") for s, c in policy.items()}
        default = _as_prob_row(control, arms, "")
        names, inv = np.unique(seg.astype(str), return_inverse=True)
        by_seg = np.array([per.get(str(s), default) for s in names]).reshape(len(names), len(arms))
        return by_seg[inv]
    if callable(policy):
        out = np.empty((len(rows), len(arms)))
        for i, (_, row) in enumerate(rows.iterrows()):
            out[i] = _as_prob_row(policy(row), arms, f"(row {i})")
        return out
    raise TypeError(
        "policy: give a mapping segment -> arm, a function row -> arm, or a table with "
        f"segment, arm/tactic and probability/customers; got {type(policy).__name__}"
    )


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------


def _propensities(
    rows: pd.DataFrame,
    arm: np.ndarray,
    seg: np.ndarray,
    propensity: Propensity,
    holdout_share: float,
) -> np.ndarray:
    if isinstance(propensity, str):
        if propensity not in rows.columns:
            raise ValueError(
                f"propensity: column {propensity!r} not in rows ({list(rows.columns)}); log "
                "assign()'s assignment_probability or pass the design weights {arm: p}"
            )
        p = pd.to_numeric(rows[propensity], errors="raise").to_numpy(dtype=float)
        p = p / (1.0 - holdout_share)
    elif isinstance(propensity, pd.DataFrame):
        need = {"segment", "arm", "probability"}
        if not need <= set(propensity.columns):
            raise ValueError(
                f"propensity table: needs columns {sorted(need)}; has {list(propensity.columns)}"
            )
        t = propensity.assign(
            segment=_labels(propensity["segment"]), arm=_labels(propensity["arm"])
        )
        t = t[t["arm"] != HOLDOUT]
        t = t.assign(
            probability=t["probability"] / t.groupby("segment")["probability"].transform("sum")
        )
        t = t.drop_duplicates(["segment", "arm"]).set_index(["segment", "arm"])["probability"]
        pos = t.index.get_indexer(pd.MultiIndex.from_arrays([seg, arm]))
        if (pos < 0).any():
            missing = sorted(set(zip(seg[pos < 0].tolist(), arm[pos < 0].tolist(), strict=True)))
            raise ValueError(f"propensity table: no probability for (segment, arm) {missing[:5]}")
        p = t.to_numpy(dtype=float)[pos]
    elif isinstance(propensity, Mapping):
        w = {str(k): float(v) for k, v in propensity.items() if str(k) != HOLDOUT}
        missing = sorted(set(np.unique(arm).tolist()) - set(w))
        if missing:
            raise ValueError(f"propensity: no design probability for arm(s) {missing}; given {w}")
        names = list(w)
        p = np.array([w[a] for a in names])[_codes(arm, names)] / sum(w.values())
    else:
        raise TypeError(
            "propensity: a column name, a mapping arm -> design probability, or a table "
            f"segment, arm, probability; got {type(propensity).__name__}"
        )
    bad = ~(np.isfinite(p) & (p > 0) & (p <= 1 + 1e-9))
    if bad.any():
        raise ValueError(
            f"propensity: {int(bad.sum())} rows have a probability outside (0, 1] "
            f"(e.g. {p[bad][:3].tolist()})"
        )
    return p


def _rewards(
    rows: pd.DataFrame,
    arm: np.ndarray,
    seg: np.ndarray,
    outcome_col: str,
    value: float | pd.Series | str | None,
    costs: Costs,
) -> np.ndarray:
    if outcome_col not in rows.columns:
        raise ValueError(f"outcome: column {outcome_col!r} not in rows ({list(rows.columns)})")
    y = pd.to_numeric(rows[outcome_col], errors="raise").to_numpy(dtype=float)
    if value is None:
        v = np.ones(len(y))
    elif isinstance(value, str):
        if value not in rows.columns:
            raise ValueError(f"value: column {value!r} not in rows ({list(rows.columns)})")
        v = pd.to_numeric(rows[value], errors="raise").to_numpy(dtype=float)
    elif isinstance(value, pd.Series):
        by = {str(k): float(x) for k, x in value.items()}
        missing = sorted(set(np.unique(seg).tolist()) - set(by))
        if missing:
            raise ValueError(f"value: no value per unit for segment(s) {missing[:10]}")
        names = list(by)
        v = np.array([by[s] for s in names])[_codes(seg, names)]
    else:
        v = np.full(len(y), float(value))
    c = arm_costs(costs, np.unique(arm).tolist())
    names = list(c)
    r = y * v - np.array([c[a] for a in names])[_codes(arm, names)]
    if not np.isfinite(r).all():
        raise ValueError(
            f"outcome/value: {int((~np.isfinite(r)).sum())} rows give a non-finite profit"
        )
    return r


# --------------------------------------------------------------------------------------------
# estimators
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Data:
    """Row arrays shared by the estimators."""

    r: np.ndarray  # profit per row
    p: np.ndarray  # probability of the logged arm
    a: np.ndarray  # arm index
    s: np.ndarray  # segment index
    D: np.ndarray  # (n, K) policy minus all-control
    pi_a: np.ndarray  # policy probability of the logged arm
    ctrl: np.ndarray  # 1[A = control]
    n_seg: int
    n_arm: int

    @property
    def cell(self) -> np.ndarray:
        return self.s * self.n_arm + self.a

    def onehot(self) -> np.ndarray:
        m = np.zeros((len(self.r), self.n_seg * self.n_arm))
        m[np.arange(len(self.r)), self.cell] = 1.0
        return m

    def policy_mass(self) -> np.ndarray:
        """``M (n, S*K)``: row i holds D_i(a) in column (s_i, a)."""
        m = np.zeros((len(self.r), self.n_seg * self.n_arm))
        cols = self.s[:, None] * self.n_arm + np.arange(self.n_arm)[None, :]
        m[np.arange(len(self.r))[:, None], cols] = self.D
        return m


def _estimates(d: _Data, W: np.ndarray) -> dict[str, np.ndarray]:
    """All four estimators for each row-weight vector in ``W`` (B, n); ones give the point values."""
    u = d.D[np.arange(len(d.r)), d.a] / d.p  # D_i(A_i) / p_i
    wpi = d.pi_a / d.p
    w0 = d.ctrl / d.p
    N = W.sum(axis=1)
    ipw = W @ (u * d.r) / N
    with np.errstate(invalid="ignore", divide="ignore"):
        snipw = W @ (wpi * d.r) / (W @ wpi) - W @ (w0 * d.r) / (W @ w0)
    H = d.onehot()
    cnt = W @ H
    tot = W @ (H * d.r[:, None])
    q = np.divide(tot, cnt, out=np.zeros_like(tot), where=cnt > 0)  # (B, S*K)
    dm = (q * (W @ d.policy_mass())).sum(axis=1) / N
    resid = W @ (u * d.r) - (q * (W @ (H * u[:, None]))).sum(axis=1)
    dr = dm + resid / N
    return {"ipw": ipw, "snipw": snipw, "dm": dm, "dr": dr}


def _influence(d: _Data, est: dict[str, float]) -> dict[str, np.ndarray]:
    """Per-row influence functions (mean zero) of each estimator."""
    n = len(d.r)
    u = d.D[np.arange(n), d.a] / d.p
    wpi = d.pi_a / d.p
    w0 = d.ctrl / d.p
    cell = d.cell
    size = np.bincount(cell, minlength=d.n_seg * d.n_arm).astype(float)
    q = np.bincount(cell, weights=d.r, minlength=len(size)) / np.maximum(size, 1)
    qi = q[cell]
    m = (d.D * q.reshape(d.n_seg, d.n_arm)[d.s]).sum(axis=1)
    mass = d.policy_mass().sum(axis=0)  # C[s, a] = sum_{j in s} D_j(a)
    v_pi = float((wpi * d.r).sum() / wpi.sum())
    v_0 = float((w0 * d.r).sum() / w0.sum())
    return {
        "ipw": u * d.r - est["ipw"],
        "snipw": wpi * (d.r - v_pi) / wpi.mean() - w0 * (d.r - v_0) / w0.mean(),
        "dm": m - est["dm"] + mass[cell] / np.maximum(size[cell], 1) * (d.r - qi),
        "dr": m + u * (d.r - qi) - est["dr"],
    }


def evaluate_policy(
    rows: pd.DataFrame,
    policy: Policy,
    costs: Costs,
    *,
    arm_col: str = "arm",
    segment_col: str = "segment",
    outcome_col: str = "outcome",
    value: float | pd.Series | str | None = None,
    propensity: Propensity = "assignment_probability",
    control: str | None = None,
    eligible: pd.Series | None = None,
    arm_map: ArmMap | None = None,
    level: float = 0.95,
    method: Literal["influence", "bootstrap"] = "influence",
    n_boot: int = 1000,
    seed: int = 0,
) -> PolicyEvaluation:
    """Incremental profit per customer of ``policy`` vs all-control, by IPW, SNIPW, DM and DR.

    ``rows``: one row per experiment customer with ``arm_col``, ``segment_col``, ``outcome_col``
    (currency, or 0/1 with ``value`` = per-segment Series, column name or scalar) and, by default,
    the logged ``assignment_probability``; or pass ``propensity`` = design weights ``{arm: p}`` or a
    table ``segment, arm, probability``. Rows with arm ``"holdout"`` (global holdout) are dropped
    and logged probabilities rescaled by ``1 / (1 - holdout share)``. ``costs``: offer cost per
    treated customer per arm (ArmMap or mapping). ``control`` defaults to the ArmMap's control arm
    or ``"control"``. ``method="bootstrap"`` resamples rows ``n_boot`` times (seeded) and gives
    percentile intervals; the default uses influence functions and normal intervals.
    """
    if not (0 < level < 1):
        raise ValueError(f"level: must be in (0, 1), got {level!r}")
    missing = [c for c in (arm_col, segment_col) if c not in rows.columns]
    if missing:
        raise ValueError(f"rows: columns {missing} not in rows ({list(rows.columns)})")
    for col in (arm_col, segment_col):
        if rows[col].isna().any():
            raise ValueError(f"rows: {int(rows[col].isna().sum())} rows have no {col!r}")
    if arm_map is None and isinstance(costs, ArmMap):
        arm_map = costs
    if control is None:
        control = arm_map.control.name if arm_map is not None else "control"
    control = str(control)

    arm_all = _labels(rows[arm_col])
    hold = arm_all == HOLDOUT
    holdout_share = 0.0
    if hold.any():
        if isinstance(propensity, str) and propensity in rows.columns:
            h = pd.unique(rows.loc[hold, propensity].to_numpy(dtype=float))
            if len(h) != 1 or not (0 < h[0] < 1):
                raise ValueError(
                    f"rows: holdout rows carry {len(h)} distinct {propensity!r} values {h[:5]}; "
                    "expected one global holdout share"
                )
            holdout_share = float(h[0])
        rows = rows.loc[~hold]
    rows = rows.reset_index(drop=True)
    n = len(rows)
    if n < 2:
        raise ValueError("rows: need at least 2 experiment rows (excluding the holdout)")
    arm_s = arm_all[~hold]
    seg_s = _labels(rows[segment_col])
    arms = np.unique(arm_s).tolist()
    if control not in arms:
        raise ValueError(
            f"control: arm {control!r} has no rows; arms in the data are {arms} "
            "(pass control= to name the untreated arm)"
        )
    arms = [control] + [a for a in arms if a != control]
    segs = np.unique(seg_s).tolist()
    a_idx = _codes(arm_s, arms)
    s_idx = _codes(seg_s, segs)

    r = _rewards(rows, arm_s, seg_s, outcome_col, value, costs)
    p = _propensities(rows, arm_s, seg_s, propensity, holdout_share)
    P = policy_probabilities(
        policy,
        rows,
        arms,
        control=control,
        segment_col=segment_col,
        eligible=eligible,
        arm_map=arm_map,
    )
    D = P.copy()
    D[:, 0] -= 1.0
    # overlap: every (segment, arm) the policy moves mass to or from needs experiment rows
    mass = np.zeros((len(segs), len(arms)))
    np.add.at(mass, s_idx, np.abs(D))
    size = np.zeros((len(segs), len(arms)))
    np.add.at(size, (s_idx, a_idx), 1.0)
    holes = [
        (segs[i], arms[k]) for i, k in zip(*np.nonzero((mass > 1e-12) & (size == 0)), strict=True)
    ]
    if holes:
        raise ValueError(
            f"policy: needs (segment, arm) cells with no experiment rows: {holes[:5]}; their value "
            "cannot be estimated off-policy (no overlap) - drop those options or test them first"
        )

    d = _Data(
        r=r,
        p=p,
        a=a_idx,
        s=s_idx,
        D=D,
        pi_a=P[np.arange(n), a_idx],
        ctrl=(a_idx == 0).astype(float),
        n_seg=len(segs),
        n_arm=len(arms),
    )
    point = {k: float(v[0]) for k, v in _estimates(d, np.ones((1, n))).items()}
    z = float(stats.norm.ppf(0.5 + level / 2))
    out_rows = []
    if method == "influence":
        psi = _influence(d, point)
        for k in ESTIMATORS:
            se = float(np.sqrt((psi[k] ** 2).sum() / (n * (n - 1))))
            out_rows.append([k, point[k], se, point[k] - z * se, point[k] + z * se])
    elif method == "bootstrap":
        if int(n_boot) < 50:
            raise ValueError(f"n_boot: use at least 50 resamples, got {n_boot!r}")
        rng = np.random.default_rng(seed)
        boots: dict[str, list[np.ndarray]] = {k: [] for k in ESTIMATORS}
        chunk = max(1, min(int(n_boot), 2_000_000 // max(n, 1)))
        done = 0
        while done < n_boot:
            b = min(chunk, int(n_boot) - done)
            W = rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(float)
            for k, v in _estimates(d, W).items():
                boots[k].append(v)
            done += b
        lo_q, hi_q = (1 - level) / 2, (1 + level) / 2
        for k in ESTIMATORS:
            x = np.concatenate(boots[k])
            x = x[np.isfinite(x)]
            out_rows.append(
                [
                    k,
                    point[k],
                    float(x.std(ddof=1)),
                    float(np.quantile(x, lo_q)),
                    float(np.quantile(x, hi_q)),
                ]
            )
    else:
        raise ValueError(f"method: use 'influence' or 'bootstrap', got {method!r}")
    table = pd.DataFrame(out_rows, columns=["estimator", "estimate", "se", "ci_low", "ci_high"])
    table["level"] = level
    table["n"] = n
    table["method"] = method

    wpi = d.pi_a / d.p
    diag = []
    for j, a in enumerate(arms):
        ind = (a_idx == j) / p
        diag.append(
            {
                "arm": a,
                "rows": int((a_idx == j).sum()),
                "mean_weight": float(ind.mean()),
                "mean_weight_se": float(ind.std(ddof=1) / math.sqrt(n)),
                "policy_share": float(P[:, j].mean()),
                "logged_share": float((a_idx == j).mean()),
            }
        )
    diagnostics = pd.DataFrame(diag)
    off = diagnostics[
        (diagnostics["mean_weight"] - 1).abs() > np.maximum(0.05, 5 * diagnostics["mean_weight_se"])
    ]
    if len(off):
        warnings.warn(
            "propensities look mis-scaled: mean importance weight mean(1[A=a]/p) should be ~1 "
            f"but is {dict(zip(off['arm'], off['mean_weight'].round(3), strict=True))}; check "
            "that probabilities are per experiment row (a dropped global holdout scales them by "
            "1 - holdout share). SNIPW is robust to this; IPW/DR are not.",
            UserWarning,
            stacklevel=2,
        )
    pol = pd.DataFrame({"segment": np.repeat(segs, len(arms)), "arm": np.tile(arms, len(segs))})
    sums = np.zeros((len(segs), len(arms)))
    np.add.at(sums, s_idx, P)
    counts = np.bincount(s_idx, minlength=len(segs))[:, None]
    pol["probability"] = (sums / np.maximum(counts, 1)).ravel()
    ess = float(wpi.sum() ** 2 / (wpi**2).sum()) if (wpi > 0).any() else 0.0
    return PolicyEvaluation(
        table=table[VALUE_COLUMNS],
        policy=pol[POLICY_COLUMNS],
        diagnostics=diagnostics,
        effective_sample_size=ess,
        n=n,
    )
