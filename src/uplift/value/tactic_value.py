"""What one unit of each tactic's own outcome is worth: the single source of truth.

:data:`uplift.tactics.TACTIC_VALUES` (a leaf module, so the configuration can check
``value.tactics`` without pandas) maps every customer-development tactic to the outcome it
moves and the rule that turns one unit of it into money;
:data:`uplift.models.families.NATIVE_FAMILIES` names the family that models that outcome. The
README's tactic table is written from them (``tests/test_tactic_value.py`` checks they agree).

How a tactic is valued in a run (:func:`tactic_value_per_unit`):

1. ``value.tactics.<tactic>.per_unit`` (and ``by_segment``) in config: that, whatever the model;
2. the tactic is fit with its native family (``model.families.<tactic>``): the tactic's rule
   below (cross-sell purchases at the category margin, referrals at a referred customer's CLV net
   of acquisition cost, ...), with its inputs overridable under ``value.tactics.<tactic>``;
3. otherwise (e.g. every tactic as a binary conversion, the default) the metric's rule of
   :func:`uplift.value.per_conversion.value_per_unit`, exactly as before.

Cost to serve (``data.columns.cost_to_serve`` or ``value.cost_to_serve[_by_segment]``) is taken
off the value of a conversion for every tactic that wins or keeps a customer: the firm pays it
for every customer it serves over the value's horizon. The ``cost_to_serve`` tactic (e.g. moving
customers to a cheaper channel) is instead worth the cost it saves per customer who moves.

Also here, as pure functions with the draws in and the summaries out: price dilution and the
win-win price (margin tactic), share of wallet and headroom, and the retention ceiling (the most
worth spending to keep a customer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from uplift.models.families import NATIVE_FAMILIES, get_family
from uplift.stats import hdi
from uplift.tactics import (
    OVERRIDE_KEYS,
    TACTIC_VALUES,
    Tactic,
    TacticValueRule,
    check_overrides,
    rule_for,
)
from uplift.value.per_conversion import SegmentValue, ValueSettings, value_per_unit

__all__ = [  # the table itself lives in the leaf uplift.tactics; re-exported here
    "OVERRIDE_KEYS",
    "TACTIC_VALUES",
    "TacticValueRule",
    "check_overrides",
    "cost_saved_per_customer",
    "customer_weighted_mean",
    "is_native",
    "native_family",
    "price_dilution",
    "referral_value",
    "retention_ceiling",
    "revenue_per_order",
    "rule_for",
    "segment_cost_to_serve",
    "segment_share_of_wallet",
    "share_of_wallet",
    "tactic_table",
    "tactic_value_per_unit",
    "win_win_index",
]


def native_family(tactic: str | Tactic) -> str:
    """Name of the family that models ``tactic``'s own outcome."""
    return NATIVE_FAMILIES[Tactic.parse(str(tactic)).value]


def is_native(tactic: str | Tactic, metric: str) -> bool:
    """Whether a fit measuring ``metric`` is the tactic's own outcome (its native family's
    metric; a count of referrals may be called ``referrals``)."""
    t = Tactic.parse(str(tactic))
    own = get_family(native_family(t)).metric
    return metric == own or (t is Tactic.REFERRAL and metric == "referrals")


def _segments(cells: pd.DataFrame) -> pd.Index:
    return pd.Index(sorted(cells["segment"].astype(str).unique()), name="segment")


def revenue_per_order(cells: pd.DataFrame) -> pd.Series:
    """Mean revenue per order per segment, all arms pooled (overall mean where a segment has no
    orders)."""
    segs = _segments(cells)
    g = cells.groupby("segment")[["revenue_sum", "orders_sum"]].sum().reindex(segs)
    if g["orders_sum"].sum() <= 0 or g["revenue_sum"].sum() <= 0:
        raise ValueError(
            "valuing orders needs revenue and orders in the data: map data.columns.revenue and "
            "data.columns.orders, or give the value per unit in value.tactics.<tactic>"
        )
    overall = g["revenue_sum"].sum() / g["orders_sum"].sum()
    return (g["revenue_sum"] / g["orders_sum"].where(g["orders_sum"] > 0)).fillna(overall)


def customer_weighted_mean(values: pd.Series, cells: pd.DataFrame) -> float:
    """Mean of a per-segment value over customers (segments weighted by their size)."""
    n = cells.groupby("segment")["n"].sum().reindex(values.index).fillna(0.0)
    if n.sum() <= 0:
        return float(values.mean())
    return float((values * n).sum() / n.sum())


def _native_value(
    tactic: Tactic,
    cells: pd.DataFrame,
    cfg: ValueSettings,
    segment_value: SegmentValue | None,
    spec: Mapping[str, Any],
    cost_to_serve: pd.Series | None,
) -> pd.Series:
    segs = _segments(cells)
    margin = float(cfg.margin)
    if tactic is Tactic.CROSS_SELL:
        if "category_margin" in spec:
            return pd.Series(float(spec["category_margin"]), index=segs)
        return margin * revenue_per_order(cells)
    if tactic is Tactic.FREQUENCY:
        if "margin_per_order" in spec:
            return pd.Series(float(spec["margin_per_order"]), index=segs)
        return margin * revenue_per_order(cells)
    if tactic is Tactic.UP_SELL:
        return pd.Series(float(spec.get("margin", margin)), index=segs)
    if tactic is Tactic.REFERRAL:
        if "referred_clv" in spec:
            referred = float(spec["referred_clv"])
        else:
            per_conv = value_per_unit("conversion", cells, cfg, segment_value)
            referred = customer_weighted_mean(per_conv, cells)
        return pd.Series(
            referral_value(referred, float(spec.get("acquisition_cost", 0.0))), index=segs
        )
    if tactic is Tactic.RETENTION:
        if "clv_if_kept" in spec:
            base = pd.Series(float(spec["clv_if_kept"]), index=segs)
        else:
            base = value_per_unit("conversion", cells, cfg, segment_value).reindex(segs)
        return base - (
            cost_to_serve.reindex(segs).fillna(0.0) if cost_to_serve is not None else 0.0
        )
    if tactic is Tactic.COST_TO_SERVE:
        return cost_saved_per_customer(segs, spec, cost_to_serve)
    # margin: priced by the pricing stage, not valued per unit here
    return value_per_unit("conversion", cells, cfg, segment_value)


def referral_value(referred_clv: float, acquisition_cost: float = 0.0) -> float:
    """What one referred customer is worth: their expected CLV net of what acquiring them costs
    (the referral bonus, onboarding), not the referrer's order value."""
    return float(referred_clv) - float(acquisition_cost)


def cost_saved_per_customer(
    segments: pd.Index, spec: Mapping[str, Any], cost_to_serve: pd.Series | None
) -> pd.Series:
    """Benefit of the cost-to-serve tactic per customer it moves: the serving cost saved."""
    if "saving_per_customer" in spec:
        return pd.Series(float(spec["saving_per_customer"]), index=segments)
    if "saving_share" in spec:
        if cost_to_serve is None:
            raise ValueError(
                "value.tactics.cost_to_serve.saving_share needs a cost to serve: map "
                "data.columns.cost_to_serve or set value.cost_to_serve"
            )
        return float(spec["saving_share"]) * cost_to_serve.reindex(segments).fillna(0.0)
    raise ValueError(
        "the cost_to_serve tactic is worth the cost it saves per customer moved: set "
        "value.tactics.cost_to_serve.saving_per_customer (currency) or saving_share (share of "
        "the customer's cost to serve, with data.columns.cost_to_serve or value.cost_to_serve)"
    )


def tactic_value_per_unit(
    tactic: str,
    metric: str,
    cells: pd.DataFrame,
    cfg: ValueSettings,
    segment_value: SegmentValue | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    cost_to_serve: pd.Series | None = None,
) -> pd.Series:
    """Value of one unit of ``tactic``'s modelled ``metric`` per segment (see module docstring).

    ``cost_to_serve`` (per segment, currency per customer served over the value's horizon) is
    taken off a conversion's value for every tactic but ``cost_to_serve`` itself; None changes
    nothing.
    """
    t = Tactic.parse(tactic, where="tactic")
    spec = dict((overrides or {}).get(t.value, {}))
    segs = _segments(cells)
    if "per_unit" in spec or "by_segment" in spec:
        by_seg = dict(spec.get("by_segment", {}))
        unknown = sorted(set(by_seg) - set(segs))
        if unknown:
            raise ValueError(
                f"value.tactics.{t.value}.by_segment names unknown segment(s) {unknown}; "
                f"segments: {list(segs)[:8]}"
            )
        if "per_unit" not in spec and set(by_seg) != set(segs):
            raise ValueError(
                f"value.tactics.{t.value}: by_segment without per_unit must list every segment; "
                f"missing {sorted(set(segs) - set(by_seg))[:8]} (or set per_unit for the rest)"
            )
        out = pd.Series(
            [by_seg.get(s, spec.get("per_unit")) for s in segs], index=segs, dtype=float
        )
    elif is_native(t, metric):
        out = _native_value(t, cells, cfg, segment_value, spec, cost_to_serve).reindex(segs)
        if t is Tactic.RETENTION:  # cost to serve already netted in the rule
            cost_to_serve = None
    else:
        out = value_per_unit(metric, cells, cfg, segment_value).reindex(segs)
    if cost_to_serve is not None and metric == "conversion" and t is not Tactic.COST_TO_SERVE:
        out = out - cost_to_serve.reindex(segs).fillna(0.0)
    out = out.astype(float)
    out.name = "value_per_unit"
    out.index.name = "segment"
    return out


def segment_cost_to_serve(
    frame: pd.DataFrame,
    *,
    column: str | None = "cost_to_serve",
    constant: float | None = None,
    by_segment: Mapping[str, float] | None = None,
    control_arm: str | None = None,
) -> pd.Series | None:
    """Cost to serve one customer per segment, or None when nothing says what it is.

    Order: ``by_segment`` (config) > the mean of the per-customer column over the segment's
    control customers (what serving costs without any tactic; all customers when there is no
    control arm given) > ``constant``.
    """
    segs = pd.Index(sorted(frame["segment"].astype(str).unique()), name="segment")
    by_segment = dict(by_segment or {})
    has_col = column is not None and column in frame.columns
    if not by_segment and not has_col and constant is None:
        return None
    unknown = sorted(set(by_segment) - set(segs))
    if unknown:
        raise ValueError(
            f"value.cost_to_serve_by_segment names unknown segment(s) {unknown}; segments: "
            f"{list(segs)[:8]}"
        )
    out = pd.Series(float(constant or 0.0), index=segs)
    if has_col:
        rows = frame if control_arm is None else frame[frame["arm"] == control_arm]
        means = rows.groupby("segment")[column].mean()
        out = means.reindex(segs).fillna(float(frame[column].mean()))
    for s, v in by_segment.items():
        out[s] = float(v)
    out.name = "cost_to_serve"
    return out.astype(float)


# ---- margin tactic: price dilution and the win-win price ------------------------------------


def price_dilution(
    demand_today: np.ndarray, price: np.ndarray, today: np.ndarray, customers: np.ndarray
) -> np.ndarray:
    """(S, G) discount paid to customers who would have bought anyway, per draw and segment.

    ``demand_today`` (S, G): P(buy) at today's price; ``price``, ``today``, ``customers`` (G,).
    Demand falls with price, so everyone who buys at today's price buys at a lower one too and
    pays ``today - price`` less: ``customers x P(buy at today) x max(today - price, 0)``. A
    price at or above today's dilutes nothing.
    """
    cut = np.maximum(np.asarray(today, dtype=float) - np.asarray(price, dtype=float), 0.0)
    return np.asarray(customers, dtype=float)[None, :] * np.asarray(demand_today) * cut[None, :]


def win_win_index(
    profit_draws: np.ndarray, prices: np.ndarray, today_index: np.ndarray
) -> np.ndarray:
    """(G,) grid index of the win-win price of each segment.

    The lowest price at or below today's whose expected profit is at least today's: customers
    pay less and the firm earns no less (today's price itself when no lower price keeps profit).
    ``profit_draws`` (S, G, K) on the increasing grid ``prices`` (K,); ``today_index`` (G,).
    """
    ep = profit_draws.mean(axis=0)
    G = ep.shape[0]
    out = np.asarray(today_index, dtype=int).copy()
    for g in range(G):
        t = int(today_index[g])
        ok = np.flatnonzero(
            (prices <= prices[t] + 1e-12) & (ep[g] >= ep[g, t] - 1e-9 * max(1.0, abs(ep[g, t])))
        )
        if len(ok):
            out[g] = int(ok.min())
    return out


# ---- share of customer ---------------------------------------------------------------------


def share_of_wallet(
    revenue: pd.Series,
    *,
    wallet: pd.Series | None = None,
    categories: pd.Series | None = None,
    n_categories: int | None = None,
    margin: float = 0.4,
    capture: float = 1.0,
) -> pd.DataFrame:
    """Per customer: share of wallet, headroom (currency) and what the headroom is worth.

    With ``wallet`` (estimated spend in the category, e.g. from a survey or a wallet model):
    ``share = min(revenue / wallet, 1)``, ``headroom = max(wallet - revenue, 0)``. Without it,
    the category-breadth proxy: ``share = categories bought / n_categories`` and the implied
    wallet is ``revenue / share`` (a customer buying 2 of 8 categories for 100 would spend 400
    if they bought everything from us). ``headroom_worth = margin x capture x headroom``:
    ``capture`` 1 values all of it (an upper bound); set the share you expect to win.
    """
    rev = pd.to_numeric(revenue, errors="coerce").astype(float)
    if wallet is not None:
        w = pd.to_numeric(wallet, errors="coerce").astype(float).reindex(rev.index)
        share = (rev / w.where(w > 0)).clip(upper=1.0).fillna(1.0)
        headroom = (w - rev).clip(lower=0.0).fillna(0.0)
    elif categories is not None:
        if not n_categories or n_categories < 1:
            raise ValueError(
                "the category-breadth proxy needs the number of categories on offer "
                "(value.wallet.n_categories >= 1)"
            )
        c = pd.to_numeric(categories, errors="coerce").astype(float).reindex(rev.index)
        share = (c / float(n_categories)).clip(0.0, 1.0).fillna(0.0)
        implied = rev / share.where(share > 0)
        headroom = (implied - rev).clip(lower=0.0).fillna(0.0)
        w = rev + headroom
    else:
        raise ValueError("share of wallet needs a wallet column or a category-breadth column")
    if not 0 <= capture <= 1:
        raise ValueError(f"value.wallet.capture must be in [0, 1], got {capture}")
    return pd.DataFrame(
        {
            "revenue": rev,
            "wallet": w,
            "share_of_wallet": share,
            "headroom": headroom,
            "headroom_worth": float(margin) * float(capture) * headroom,
        },
        index=rev.index,
    )


def segment_share_of_wallet(customers: pd.DataFrame, segments: pd.Series) -> pd.DataFrame:
    """Per segment from :func:`share_of_wallet`'s rows: customers, revenue, wallet, the share
    (total revenue / total wallet: a share of the segment's money, not a mean of ratios),
    headroom and its worth (totals and per customer)."""
    df = customers.assign(segment=segments.reindex(customers.index).astype(str).to_numpy())
    g = df.groupby("segment")
    out = pd.DataFrame(
        {
            "customers": g.size(),
            "revenue": g["revenue"].sum(),
            "wallet": g["wallet"].sum(),
            "headroom": g["headroom"].sum(),
            "headroom_worth": g["headroom_worth"].sum(),
        }
    )
    out.insert(3, "share_of_wallet", out["revenue"] / out["wallet"].where(out["wallet"] > 0))
    out["headroom_worth_per_customer"] = out["headroom_worth"] / out["customers"]
    out.index.name = "segment"
    return out.reset_index()


# ---- retention: the most worth spending to keep a customer ---------------------------------


def retention_ceiling(
    value_if_kept: np.ndarray, effect: np.ndarray, hdi_prob: float = 0.94
) -> pd.DataFrame:
    """Most worth spending to keep a customer, per column: ``mean, hdi_low, hdi_high``.

    ``value_if_kept`` (S, N) or (N,): the value lost if the customer leaves (CLV if still
    active, net of cost to serve); ``effect`` (S, N): how much the retention action lowers
    P(leave) (its uplift on staying), per posterior draw. Ceiling = value x effect per draw:
    spending more than that to keep them loses money in expectation, whatever P(leave) is.
    Unlike P(churn) x CLV it does not shrink for the most valuable, most loyal customers because
    they are loyal; it shrinks when the action does not move them.
    """
    e = np.asarray(effect, dtype=float)
    e = e[:, None] if e.ndim == 1 else e
    v = np.asarray(value_if_kept, dtype=float)
    v = np.broadcast_to(v[None, :] if v.ndim == 1 else v, e.shape)
    w = v * e
    lo_hi = hdi(w, hdi_prob, axis=0)
    return pd.DataFrame(
        {
            "mean": w.mean(axis=0),
            "hdi_low": lo_hi[:, 0],
            "hdi_high": lo_hi[:, 1],
            "prob_positive": (w > 0).mean(axis=0),
        }
    )


def tactic_table() -> pd.DataFrame:
    """The tactic table (README) as a frame: tactic, outcome, family, metric, unit, value, keys."""
    return pd.DataFrame(
        [
            {
                "tactic": r.tactic.value,
                "outcome": r.outcome,
                "family": native_family(r.tactic),
                "metric": get_family(native_family(r.tactic)).metric,
                "unit": r.unit,
                "value_per_unit": r.value,
                "config_keys": ", ".join((*OVERRIDE_KEYS, *r.keys)),
            }
            for r in TACTIC_VALUES.values()
        ]
    )
