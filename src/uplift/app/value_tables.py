"""The run's value tables: value per unit per tactic, retention ceilings, share of wallet.

Computed from what the run already holds (fits, cells, the value per unit, the validated rows),
so they add files without changing any decision. Columns are documented in the README's
outputs table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.app.run_summary import RunSummary
from uplift.config import AppConfig
from uplift.data import CustomerData
from uplift.models.families import get_family
from uplift.stats import hdi
from uplift.tactics import Tactic
from uplift.value.tactic_value import (
    TACTIC_VALUES,
    check_overrides,
    is_native,
    native_family,
    retention_ceiling,
    segment_cost_to_serve,
    segment_share_of_wallet,
    share_of_wallet,
)

VALUE_PER_UNIT_COLUMNS = [
    "tactic",
    "segment",
    "metric",
    "family",
    "native_family",
    "native_outcome",
    "value_per_unit",
    "cost_to_serve",
    "source",
    "rule",
]


def _family(run: RunSummary, tactic: str) -> str:
    return str(run.config.model.family_of(tactic))


def value_per_unit_table(run: RunSummary) -> pd.DataFrame:
    """``value_per_unit.csv``: one row per tactic and segment, with where the value came from.

    ``source``: ``config`` (value.tactics.<tactic>.per_unit / by_segment), ``native`` (the
    tactic's own rule: it is fit with its native family) or ``metric`` (the metric's generic
    rule, e.g. value per conversion for a tactic fit as a binary conversion).
    """
    config = run.config
    overrides = check_overrides(config.value.tactics)
    serve = _cost_to_serve(run)
    rows = []
    for tactic, values in run.prepared.values.items():
        rule = TACTIC_VALUES[Tactic(tactic)]
        native = native_family(tactic)
        metric = run.fits[tactic].model.metric if tactic in run.fits else get_family(native).metric
        spec = overrides.get(tactic, {})
        if "per_unit" in spec or "by_segment" in spec:
            source = "config"
        elif is_native(tactic, metric):
            source = "native"
        else:
            source = "metric"
        for seg, v in values.items():
            rows.append(
                {
                    "tactic": tactic,
                    "segment": str(seg),
                    "metric": metric,
                    "family": _family(run, tactic),
                    "native_family": native,
                    "native_outcome": rule.outcome,
                    "value_per_unit": float(v),
                    "cost_to_serve": float(serve.get(str(seg), 0.0)) if serve is not None else 0.0,
                    "source": source,
                    "rule": rule.value if source == "native" else "",
                }
            )
    return pd.DataFrame(rows, columns=VALUE_PER_UNIT_COLUMNS)


def _cost_to_serve(run: RunSummary) -> pd.Series | None:
    return cost_to_serve_of(run.config, run.prepared.data)


def cost_to_serve_of(config: AppConfig, data: CustomerData) -> pd.Series | None:
    """Cost to serve one customer per segment as configured (the mapped column's mean over
    control customers, or config), or None; reads only the columns it needs from an engine."""
    vc = config.value
    mapped = bool(config.data.columns.cost_to_serve)
    return segment_cost_to_serve(
        # only the columns it reads (an engine keeps the rest of the rows)
        data.select(["segment", "arm", "cost_to_serve"])
        if mapped
        else pd.DataFrame({"segment": data.segments}),
        column="cost_to_serve" if mapped else None,
        constant=vc.cost_to_serve,
        by_segment=vc.cost_to_serve_by_segment,
        control_arm=data.arm_map.control.name,
    )


RETENTION_CEILING_COLUMNS = [
    "tactic",
    "arm",
    "segment",
    "value_if_kept",
    "effect",
    "effect_hdi_low",
    "effect_hdi_high",
    "ceiling",
    "ceiling_hdi_low",
    "ceiling_hdi_high",
    "cost_per_customer",
    "prob_ceiling_above_cost",
    "hdi_prob",
]


def retention_ceiling_table(run: RunSummary, tactic: str = "retention") -> pd.DataFrame | None:
    """``retention_ceiling.csv``: per retention arm and segment, the most worth spending to
    keep one customer = value if kept (the tactic's value per unit, net of cost to serve) x how
    much the arm lowers P(leave) (its uplift draws), with intervals; None without a retention
    tactic fit on a budget (not a price) model."""
    fit = run.fits.get(tactic)
    if fit is None or tactic not in run.prepared.values or get_family(_family(run, tactic)).prices:
        return None
    draws = fit.draws()
    if not {"sample", "arm", "segment"} <= set(draws.dims):
        return None
    hp = float(run.config.report.hdi_prob)
    values = run.prepared.values[tactic]
    arm_map = run.prepared.data.arm_map
    rows = []
    for arm in draws["arm"].values:
        cost = arm_map[str(arm)].cost
        for seg in draws["segment"].values:
            effect = draws.sel(arm=arm, segment=seg).transpose("sample").values.astype(float)
            v = float(values.loc[seg])
            c = retention_ceiling(np.array([v]), effect, hp).iloc[0]
            e_lo, e_hi = hdi(effect, hp)
            rows.append(
                {
                    "tactic": tactic,
                    "arm": str(arm),
                    "segment": str(seg),
                    "value_if_kept": v,
                    "effect": float(effect.mean()),
                    "effect_hdi_low": float(e_lo),
                    "effect_hdi_high": float(e_hi),
                    "ceiling": float(c["mean"]),
                    "ceiling_hdi_low": float(c["hdi_low"]),
                    "ceiling_hdi_high": float(c["hdi_high"]),
                    "cost_per_customer": float(cost),
                    "prob_ceiling_above_cost": float((v * effect > cost).mean()),
                    "hdi_prob": hp,
                }
            )
    return pd.DataFrame(rows, columns=RETENTION_CEILING_COLUMNS)


def share_of_wallet_tables(run: RunSummary) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """``share_of_wallet.csv`` (per customer) and ``share_of_wallet_by_segment.csv``, when the
    data map ``data.columns.wallet`` or ``data.columns.categories``; None otherwise."""
    vc, cols = run.config.value, run.config.data.columns
    if not (cols.wallet or cols.categories):
        return None
    inputs = ["wallet"] if cols.wallet else ["categories"]
    frame = run.prepared.data.select(["customer_id", "segment", "revenue", *inputs])
    idx = pd.Index(frame["customer_id"], name="customer_id")
    customers = share_of_wallet(
        pd.Series(frame["revenue"].to_numpy(), index=idx),
        wallet=pd.Series(frame["wallet"].to_numpy(), index=idx) if cols.wallet else None,
        categories=pd.Series(frame["categories"].to_numpy(), index=idx)
        if cols.categories and not cols.wallet
        else None,
        n_categories=vc.wallet_categories,
        margin=vc.margin,
        capture=vc.headroom_capture,
    )
    segments = pd.Series(frame["segment"].to_numpy(), index=idx)
    by_segment = segment_share_of_wallet(customers, segments)
    per_customer = customers.reset_index()
    per_customer.insert(1, "segment", segments.to_numpy())
    return per_customer, by_segment
