"""Value tiers and keep / grow / shed decisions from CLV posteriors.

- **actual value** = CLV (what the customer is worth if we do nothing new);
- **strategic value** = CLV + the best incremental value any tactic adds for them (0 if no tactic
  pays), i.e. what they are worth if we act well;
- **tiers** cut actual value at configurable quantiles;
- **keep / grow / shed** follow configurable, ordered rules on those values and their uncertainty;
- **retention worth** = P(churn) x value, with an interval from the posterior draws: the value at
  stake if the customer has already drifted away, an upper bound on what winning them back is
  worth;
- **retention ceiling** (with the retention tactic's effect per segment) = value if kept x how
  much the action lowers P(leave): the most worth spending to keep them;
- with a **cost to serve**, actual value is net of it; with **share-of-wallet headroom**,
  strategic value adds what the headroom is worth and the grow rule counts it as upside.

Every number is computed per posterior draw and summarised at the end, so intervals are honest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from uplift.stats import hdi

NO_TACTIC = "none"


@dataclass(frozen=True)
class TierSpec:
    """Tiers by quantile of actual value (CLV): ``cut_points`` in (0, 1), increasing, and one more
    label than cut points, lowest tier first. Default: bottom half, next 30%, next 15%, top 5%."""

    cut_points: tuple[float, ...] = (0.5, 0.8, 0.95)
    labels: tuple[str, ...] = ("low", "mid", "high", "top")

    def __post_init__(self) -> None:
        cuts = [float(c) for c in self.cut_points]
        if any(not 0 < c < 1 for c in cuts) or any(
            b <= a for a, b in zip(cuts, cuts[1:], strict=False)
        ):
            raise ValueError(
                f"tiers.cut_points must be strictly increasing quantiles in (0, 1), got {list(cuts)}"
            )
        if len(self.labels) != len(cuts) + 1:
            raise ValueError(
                f"tiers.labels needs one more label than cut points ({len(cuts) + 1}), got "
                f"{list(self.labels)} for cut_points {cuts}"
            )
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"tiers.labels must be distinct, got {list(self.labels)}")


def assign_tiers(values: pd.Series, spec: TierSpec | None = None) -> pd.Series:
    """Ordered categorical tier per customer; thresholds in ``result.attrs["thresholds"]``.

    A customer is in the highest tier whose lower threshold (the CLV quantile) they reach, so ties
    at a threshold go up and many equal values can leave a tier empty rather than split at random.
    """
    spec = spec or TierSpec()
    v = pd.to_numeric(values, errors="coerce")
    if v.isna().any():
        raise ValueError(
            f"assign_tiers needs numeric values; {int(v.isna().sum())} are missing/non-numeric "
            f"(e.g. customers {list(v.index[v.isna()][:5])})"
        )
    thresholds = np.quantile(v.to_numpy(dtype=float), spec.cut_points)
    codes = np.searchsorted(thresholds, v.to_numpy(dtype=float), side="right")
    out = pd.Series(
        pd.Categorical.from_codes(codes, categories=list(spec.labels), ordered=True),
        index=values.index,
        name="tier",
    )
    out.attrs["thresholds"] = {
        lab: float(t) for lab, t in zip(spec.labels[1:], thresholds, strict=True)
    }
    return out


@dataclass(frozen=True)
class ClassificationRules:
    """Keep / grow / shed, first matching rule wins:

    1. **shed** if P(strategic value < ``shed_below``) >= ``shed_probability``: even with the
       best tactic the customer is worth less than ``shed_below`` (value is net of cost to
       serve when one is given, so 0 sheds customers who cost more than they bring).
    2. **grow** if the best tactic's incremental value is >= ``grow_min_upside`` (currency) and
       >= ``grow_min_upside_share`` x actual value: acting adds materially.
    3. **shed** if the customer's tier is in ``shed_tiers`` (low tier and nothing to grow).
    4. **keep** otherwise.
    """

    shed_below: float = 0.0
    shed_probability: float = 0.8
    grow_min_upside: float = 0.0
    grow_min_upside_share: float = 0.1
    shed_tiers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.shed_probability <= 1:
            raise ValueError(
                f"rules.shed_probability must be in (0, 1], got {self.shed_probability}"
            )
        if self.grow_min_upside_share < 0:
            raise ValueError(
                f"rules.grow_min_upside_share must be >= 0, got {self.grow_min_upside_share}"
            )


def incremental_from_uplift_table(
    uplift: pd.DataFrame, metric: str = "profit_per_treated", column: str = "mean"
) -> pd.DataFrame:
    """``segment, tactic, value`` from ``uplift_by_segment.csv``: the best arm of each tactic.

    ``profit_per_treated`` (value x uplift - cost per treated customer) is the incremental value
    a tactic adds to one customer of the segment.
    """
    need = {"tactic", "segment", "metric", column}
    if not need <= set(uplift.columns):
        raise ValueError(
            f"uplift table lacks columns {sorted(need - set(uplift.columns))}; pass the "
            "uplift_by_segment.csv of a run"
        )
    rows = uplift[uplift["metric"] == metric]
    if rows.empty:
        raise ValueError(
            f"uplift table has no rows with metric={metric!r}; metrics present: "
            f"{sorted(uplift['metric'].unique())}"
        )
    out = rows.groupby(["segment", "tactic"], as_index=False)[column].max()
    return out.rename(columns={column: "value"})


def best_incremental(
    incremental: pd.DataFrame, customers: pd.Index, segments: pd.Series | None = None
) -> pd.DataFrame:
    """Best tactic and its incremental value per customer (``none`` and 0 when no tactic pays).

    ``incremental`` has columns ``tactic, value`` and either ``customer_id`` (per customer) or
    ``segment`` (per segment; then ``segments`` maps customer id -> segment).
    """
    if not {"tactic", "value"} <= set(incremental.columns):
        raise ValueError(
            f"incremental needs columns tactic, value (+ customer_id or segment); got "
            f"{list(incremental.columns)}"
        )
    if "customer_id" in incremental.columns:
        key, keys = "customer_id", pd.Series(customers, index=customers)
    elif "segment" in incremental.columns:
        if segments is None:
            raise ValueError(
                "incremental values are per segment: pass segments (customer id -> segment label)"
            )
        key, keys = "segment", segments.reindex(customers).astype(object)
        unknown = sorted(set(keys.dropna().astype(str)) - set(incremental["segment"].astype(str)))
        if keys.isna().all():
            raise ValueError(
                "no CLV customer is in the segment map; index segments by the same customer ids "
                f"(e.g. {list(customers[:3])})"
            )
        if unknown:
            raise ValueError(
                f"segment(s) {unknown[:5]} have customers but no incremental values; add rows for "
                "them (value 0 if no tactic was tested there)"
            )
        keys = keys.astype(str)
        incremental = incremental.assign(segment=incremental["segment"].astype(str))
    else:
        raise ValueError("incremental needs a customer_id or a segment column")
    top = incremental.sort_values("value", ascending=False).drop_duplicates(key).set_index(key)
    best_value = keys.map(top["value"]).astype(float).fillna(0.0)
    best_tactic = keys.map(top["tactic"]).astype(object)
    pays = best_value > 0
    return pd.DataFrame(
        {
            "best_tactic": np.where(pays, best_tactic, NO_TACTIC),
            "incremental_value": np.where(pays, best_value, 0.0),
        },
        index=customers,
    )


def retention_worth(
    p_churn: np.ndarray | xr.DataArray,
    value: np.ndarray | xr.DataArray,
    hdi_prob: float = 0.94,
) -> pd.DataFrame:
    """P(churn) x value per draw, summarised per customer: ``mean, hdi_low, hdi_high``.

    Both inputs are ``(sample, customer)`` draws (any churn model's P(churn) will do). With
    BG/NBD, ``p_churn = 1 - p_alive`` and ``value = clv_if_alive``: the expected value lost because
    the customer may already have left.
    """
    pc = _as_draws(p_churn)
    v = _as_draws(value)
    if pc.shape != v.shape:
        raise ValueError(f"p_churn {pc.shape} and value {v.shape} draws must have the same shape")
    if ((pc < 0) | (pc > 1)).any():
        raise ValueError("p_churn must be probabilities in [0, 1]")
    w = pc * v
    lo_hi = hdi(w, hdi_prob, axis=0)
    return pd.DataFrame({"mean": w.mean(axis=0), "hdi_low": lo_hi[:, 0], "hdi_high": lo_hi[:, 1]})


def _as_draws(a: np.ndarray | xr.DataArray) -> np.ndarray:
    if isinstance(a, xr.DataArray):
        a = a.transpose("sample", ...).values
    a = np.asarray(a, dtype=float)
    return a[:, None] if a.ndim == 1 else a


def value_table(
    clv: xr.Dataset,
    *,
    incremental: pd.DataFrame | None = None,
    segments: pd.Series | None = None,
    tiers: TierSpec | None = None,
    rules: ClassificationRules | None = None,
    hdi_prob: float = 0.94,
    retention_value: Literal["if_alive", "clv"] = "if_alive",
    cost_to_serve: pd.Series | float | None = None,
    headroom_worth: pd.Series | None = None,
    retention_effect: pd.DataFrame | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per customer: actual and strategic value, tier, retention worth, keep/grow/shed.

    ``clv`` is :func:`uplift.value.clv.customer_value` output (variables ``clv``, ``p_alive``,
    ``clv_if_alive``). ``incremental``: see :func:`best_incremental` (e.g. from
    :func:`incremental_from_uplift_table`); without it strategic value = actual value.
    ``retention_value`` picks the value at stake in retention worth: ``if_alive`` (CLV of the
    customer if still active; default) or ``clv`` (the literal P(churn) x CLV).

    Optional, each None by default (then nothing changes):

    - ``cost_to_serve`` (per customer id, or one figure): what serving an active customer costs
      over the horizon. Actual value becomes ``CLV - cost x P(alive)`` per draw (a customer who
      has left costs nothing to serve) and the value if kept ``CLV if alive - cost``; tiers and
      keep / grow / shed use the net figures.
    - ``headroom_worth`` (per customer id): what the customer's share-of-wallet headroom is worth
      (:func:`uplift.value.tactic_value.share_of_wallet`); strategic value adds it and the grow
      rule counts it as upside (``upside = incremental_value + headroom_worth``).
    - ``retention_effect`` (per segment: ``mean``, ``sd`` of how much the retention action lowers
      P(leave), e.g. the retention rows of ``uplift_by_segment.csv``): adds the retention
      ceiling per customer, value if kept x effect, with its interval (effect draws normal,
      shared by the segment's customers, seeded by ``seed``).
    """
    rules = rules or ClassificationRules()
    tiers = tiers or TierSpec()
    for var in ("clv", "p_alive", "clv_if_alive"):
        if var not in clv:
            raise ValueError(f"clv dataset lacks {var!r}; pass the output of customer_value(...)")
    ids = pd.Index(clv["customer"].values, name="customer_id")
    draws = np.asarray(clv["clv"].transpose("sample", "customer").values, dtype=float)
    p_alive_draws = np.asarray(clv["p_alive"].transpose("sample", "customer").values, dtype=float)
    serve = _per_customer(cost_to_serve, ids, "cost_to_serve")
    draws = draws - serve[None, :] * p_alive_draws
    actual = draws.mean(axis=0)
    a_hdi = hdi(draws, hdi_prob, axis=0)

    if incremental is not None:
        best = best_incremental(incremental, ids, segments)
    else:
        best = pd.DataFrame({"best_tactic": NO_TACTIC, "incremental_value": 0.0}, index=ids)
    upside = best["incremental_value"].to_numpy(dtype=float)
    headroom = _per_customer(headroom_worth, ids, "headroom_worth")
    strategic_draws = draws + (upside + headroom)[None, :]
    s_hdi = hdi(strategic_draws, hdi_prob, axis=0)
    prob_below = (strategic_draws < rules.shed_below).mean(axis=0)

    if retention_value not in ("if_alive", "clv"):
        raise ValueError(f"retention_value={retention_value!r}; use 'if_alive' or 'clv'")
    p_churn = 1.0 - clv["p_alive"]
    if_alive = _as_draws(clv["clv_if_alive"]) - serve[None, :]
    base = if_alive if retention_value == "if_alive" else draws
    ret = retention_worth(_as_draws(p_churn), base, hdi_prob)

    out = pd.DataFrame(
        {
            "actual_value": actual,
            "actual_value_hdi_low": a_hdi[:, 0],
            "actual_value_hdi_high": a_hdi[:, 1],
            "best_tactic": best["best_tactic"].to_numpy(),
            "incremental_value": upside,
            "strategic_value": strategic_draws.mean(axis=0),
            "strategic_value_hdi_low": s_hdi[:, 0],
            "strategic_value_hdi_high": s_hdi[:, 1],
            "p_churn": np.asarray(p_churn.mean("sample").values, dtype=float),
            "retention_worth": ret["mean"].to_numpy(),
            "retention_worth_hdi_low": ret["hdi_low"].to_numpy(),
            "retention_worth_hdi_high": ret["hdi_high"].to_numpy(),
            "prob_strategic_below_shed": prob_below,
        },
        index=ids,
    )
    if cost_to_serve is not None:
        out.insert(3, "cost_to_serve", serve)
    if headroom_worth is not None:
        out.insert(out.columns.get_loc("strategic_value"), "headroom_worth", headroom)
        out["upside"] = upside + headroom
    if retention_effect is not None:
        ceiling = _retention_ceiling(if_alive, retention_effect, segments, ids, hdi_prob, seed)
        out = pd.concat([out, ceiling.set_index(ids)], axis=1)
    if segments is not None:
        out.insert(0, "segment", segments.reindex(ids).to_numpy())
    out.insert(3, "tier", assign_tiers(out["actual_value"], tiers))
    action, reason = classify(out, rules)
    out["action"] = action
    out["reason"] = reason
    out.attrs["tier_thresholds"] = out["tier"].attrs.get("thresholds", {})
    return out


def _per_customer(values: pd.Series | float | None, ids: pd.Index, what: str) -> np.ndarray:
    """(N,) figure per customer id: 0 for None, a constant, or a Series joined on the ids
    (a customer the Series lacks is a named error: a silent 0 would flatter them)."""
    if values is None:
        return np.zeros(len(ids))
    if not isinstance(values, pd.Series):
        return np.full(len(ids), float(values))
    keyed = pd.Series(values.to_numpy(dtype=float), index=values.index.astype(str))
    joined = keyed.reindex(ids.astype(str))
    if joined.isna().any():
        missing = list(ids[joined.isna().to_numpy()][:5])
        raise ValueError(
            f"{what}: {int(joined.isna().sum())} customer(s) have no value, e.g. {missing}; give "
            "every customer one (0 if it truly is none)"
        )
    return joined.to_numpy(dtype=float)


def _retention_ceiling(
    if_alive: np.ndarray,
    effect: pd.DataFrame,
    segments: pd.Series | None,
    ids: pd.Index,
    hdi_prob: float,
    seed: int,
) -> pd.DataFrame:
    """Retention ceiling per customer: value if kept x the segment's retention effect."""
    from uplift.value.tactic_value import retention_ceiling

    if segments is None:
        raise ValueError("retention_effect is per segment: pass segments (customer id -> segment)")
    need = {"mean", "sd"} - set(effect.columns)
    if need:
        raise ValueError(f"retention_effect needs columns mean and sd per segment; lacks {need}")
    seg = segments.reindex(ids).astype(str).to_numpy()
    known = effect.index.astype(str)
    absent = sorted(set(seg) - set(known))
    if absent:
        raise ValueError(
            f"segment(s) {absent[:5]} have customers but no retention effect; add rows for them"
        )
    S = if_alive.shape[0]
    z = np.random.default_rng(seed).standard_normal((S, len(known)))
    eff = effect["mean"].to_numpy(dtype=float)[None, :] + effect["sd"].to_numpy(dtype=float) * z
    col = pd.Index(known).get_indexer(seg)
    c = retention_ceiling(if_alive, eff[:, col], hdi_prob)
    return pd.DataFrame(
        {
            "retention_ceiling": c["mean"].to_numpy(),
            "retention_ceiling_hdi_low": c["hdi_low"].to_numpy(),
            "retention_ceiling_hdi_high": c["hdi_high"].to_numpy(),
        }
    )


def classify(table: pd.DataFrame, rules: ClassificationRules) -> tuple[np.ndarray, np.ndarray]:
    """``action`` (keep/grow/shed) and the ``reason`` (which rule fired) for each row of
    ``table`` (columns actual_value, incremental_value, tier, prob_strategic_below_shed; the
    grow rule reads ``upside`` instead of incremental_value when present: tactic upside plus
    share-of-wallet headroom worth)."""
    actual = table["actual_value"].to_numpy(dtype=float)
    upside = table["upside" if "upside" in table.columns else "incremental_value"].to_numpy(
        dtype=float
    )
    p_below = table["prob_strategic_below_shed"].to_numpy(dtype=float)
    tier = table["tier"].astype(str).to_numpy()
    unknown = sorted(set(rules.shed_tiers) - set(table["tier"].cat.categories))
    if unknown:
        raise ValueError(
            f"rules.shed_tiers names unknown tier(s) {unknown}; tiers: {list(table['tier'].cat.categories)}"
        )
    shed_value = p_below >= rules.shed_probability
    grow = (upside >= rules.grow_min_upside) & (upside >= rules.grow_min_upside_share * actual)
    grow &= upside > 0
    shed_tier = np.isin(tier, list(rules.shed_tiers))
    action = np.select([shed_value, grow, shed_tier], ["shed", "grow", "shed"], default="keep")
    reason = np.select(
        [shed_value, grow, shed_tier],
        [
            f"P(strategic value < {rules.shed_below:g}) >= {rules.shed_probability:g}",
            "best tactic adds >= "
            f"max({rules.grow_min_upside:g}, {rules.grow_min_upside_share:g} x actual value)",
            "tier in shed_tiers and no tactic to grow",
        ],
        default="no rule fired",
    )
    return action.astype(object), reason.astype(object)
