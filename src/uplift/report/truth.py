"""Score a run against synthetic ground truth: interval coverage, bias and allocation regret.

The truth table (:func:`uplift.data.synthetic.true_effects`) has, per (arm, segment), the true
effect on every family's scale (conversion probability, orders per customer, revenue per
customer) and ``true_value_per_customer``: what treating one customer is worth in money by the
value rule the pipeline applies to the tactic. Each tactic is scored on the scale of the family
it was fit with (:data:`TRUTH_COLUMNS`) and in money; the plan and the oracle's are compared in
that same money.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from uplift.optimize.allocator import Allocation, AllocationProblem, BudgetAllocator
from uplift.stats import hdi

#: the truth column of each uplift metric (a family's ``metric``)
TRUTH_COLUMNS: dict[str, str] = {
    "conversion": "true_uplift",
    "orders": "true_orders_uplift",
    "referrals": "true_orders_uplift",
    "revenue": "true_revenue_uplift",
}
#: interval probability of the per-tactic coverage (``truth_check.by_tactic.*.coverage_90``)
TRUTH_INTERVAL = 0.9


@dataclass(frozen=True)
class TacticDraws:
    """One tactic's posterior as the truth check reads it.

    ``effect``: (S, C) uplift draws on the family's scale (``metric``) for the cells ``arms`` x
    ``segments`` (same order); ``money``: (S, C) incremental value per treated customer in
    money (before the arm's cost), as the run values it.
    """

    family: str
    metric: str
    arms: list[str]
    segments: list[str]
    effect: np.ndarray
    money: np.ndarray


def _truth_value(truth: pd.DataFrame, margin: float) -> pd.Series:
    """True value per treated customer in money, (arm, segment)-indexed (older truth tables:
    margin x revenue per conversion x conversion uplift)."""
    t = truth.set_index(["arm", "segment"])
    if "true_value_per_customer" in t.columns:
        return t["true_value_per_customer"].astype(float)
    return margin * t["revenue_per_conversion"] * t["true_uplift"]


def true_profit_per_customer(
    problem: AllocationProblem, truth: pd.DataFrame, margin: float
) -> np.ndarray:
    """True profit of treating one customer of each cell of ``problem``: true value - cost."""
    key = pd.MultiIndex.from_frame(problem.cells[["arm", "segment"]])
    value = _truth_value(truth, margin).reindex(key).to_numpy()
    if np.isnan(value).any():
        missing = [k for k, v in zip(key, value, strict=True) if np.isnan(v)][:5]
        raise ValueError(f"the truth table has no value for cells {missing}")
    return value - problem.cost


def score_tactic(d: TacticDraws, truth: pd.DataFrame, margin: float) -> dict[str, object]:
    """Coverage of the 90% intervals and mean bias of one tactic, on its family's scale and in
    money (posterior mean - truth, averaged over its cells)."""
    column = TRUTH_COLUMNS.get(d.metric)
    if column is None or column not in truth.columns:
        return {"family": d.family, "metric": d.metric, "skipped": f"no truth for {d.metric}"}
    t = truth.set_index(["arm", "segment"])
    key = pd.MultiIndex.from_arrays([d.arms, d.segments])
    out: dict[str, object] = {"family": d.family, "metric": d.metric, "cells": len(d.arms)}
    for name, draws, true in (
        ("", d.effect, t[column].reindex(key).to_numpy(dtype=float)),
        ("_money", d.money, _truth_value(truth, margin).reindex(key).to_numpy(dtype=float)),
    ):
        lo_hi = hdi(draws, TRUTH_INTERVAL, axis=0)
        mean = draws.mean(axis=0)
        out[f"coverage_90{name}"] = float(((lo_hi[:, 0] <= true) & (true <= lo_hi[:, 1])).mean())
        out[f"bias{name}"] = float((mean - true).mean())
        out[f"mae{name}"] = float(np.abs(mean - true).mean())
        out[f"true_mean{name}"] = float(true.mean())
    return out


def score_against_truth(
    uplift: pd.DataFrame,
    problem: AllocationProblem,
    allocation: Allocation,
    allocator: BudgetAllocator,
    truth: pd.DataFrame,
    margin: float,
    tactics: Mapping[str, TacticDraws] | None = None,
) -> dict[str, object]:
    """Coverage of the uplift intervals, per-tactic scores, and the true profit of our
    allocation vs the oracle's.

    ``interval_coverage``: share of the uplift table's intervals (``report.hdi_prob``), each on
    its tactic's own metric, that hold the truth; ``uplift_mae``: mean absolute error of the
    conversion-metric cells (NaN without any). ``by_tactic`` (with ``tactics``):
    :func:`score_tactic` per tactic. The oracle solves the same problem (same constraints)
    knowing the true profit per customer; ``profit_ratio`` = our allocation's true profit / the
    oracle's.
    """
    rows = uplift[uplift["metric"].isin(list(TRUTH_COLUMNS))]
    keyed = truth.set_index(["arm", "segment"])
    key = pd.MultiIndex.from_frame(rows[["arm", "segment"]])
    true = np.array(
        [
            keyed[TRUTH_COLUMNS[m]].get(k, np.nan) if TRUTH_COLUMNS[m] in keyed else np.nan
            for m, k in zip(rows["metric"], key, strict=True)
        ],
        dtype=float,
    )
    known = ~np.isnan(true)
    lo, hi = rows["hdi_low"].to_numpy(), rows["hdi_high"].to_numpy()
    covered = (lo <= true) & (true <= hi)
    conv = (rows["metric"] == "conversion").to_numpy() & known
    err = rows["mean"].to_numpy() - true

    true_pc = true_profit_per_customer(problem, truth, margin)
    oracle_problem = AllocationProblem(problem.cells, true_pc[None, :], problem.eligible)
    oracle = allocator.solve(oracle_problem)
    x_ours = allocation.table["customers"].to_numpy(dtype=float)
    x_oracle = oracle.table["customers"].to_numpy(dtype=float)
    ours, best = float(true_pc @ x_ours), float(true_pc @ x_oracle)
    out: dict[str, object] = {
        "cells": int(known.sum()),
        "interval_coverage": float(covered[known].mean()) if known.any() else float("nan"),
        "uplift_mae": float(np.abs(err[conv]).mean()) if conv.any() else float("nan"),
        "true_profit_of_allocation": ours,
        "true_profit_of_oracle": best,
        "profit_ratio": ours / best if best > 0 else float("nan"),
    }
    if tactics:
        out["by_tactic"] = {t: score_tactic(d, truth, margin) for t, d in tactics.items()}
    return out


def score_prices(
    prices: pd.DataFrame,
    truth: pd.DataFrame,
    grid: np.ndarray,
    today: float,
    customers: pd.Series,
) -> dict[str, object]:
    """True profit of the chosen price per segment vs the best price of the same ``grid``.

    ``prices``: ``prices.csv`` (segment, price, unit_cost, tactic); ``truth``: the generator's
    price arms (``true_elasticity``, ``p_control``, ``revenue_per_conversion``); ``today``: the
    control's price; ``customers``: per segment. True demand at price q:
    ``expit(logit p_control + b log(q / today))``; profit per customer ``(q - unit cost) / today
    x P(buy) x a buyer's revenue at today's price``. ``profit_ratio`` = chosen / best, summed
    over segments.
    """
    arms = truth[truth["true_elasticity"].notna()].drop_duplicates("segment").set_index("segment")
    segs = [s for s in prices["segment"].astype(str) if s in arms.index]
    if not segs:
        return {"skipped": "the truth has no price response for these segments"}
    t = arms.loc[segs]
    chosen = prices.set_index(prices["segment"].astype(str)).loc[segs]
    logit0 = np.log(t["p_control"] / (1 - t["p_control"])).to_numpy()[:, None]
    b = t["true_elasticity"].to_numpy()[:, None]
    q = np.asarray(grid, dtype=float)[None, :]
    cost = chosen["unit_cost"].to_numpy(dtype=float)[:, None]
    n = customers.reindex(segs).fillna(0.0).to_numpy(dtype=float)[:, None]
    revenue = t["revenue_per_conversion"].to_numpy()[:, None]
    profit = n * revenue * (q - cost) / today / (1 + np.exp(-(logit0 + b * np.log(q / today))))
    pick = np.abs(q - chosen["price"].to_numpy(dtype=float)[:, None]).argmin(axis=1)
    ours = float(profit[np.arange(len(segs)), pick].sum())
    best = float(profit.max(axis=1).sum())
    at_today = float(profit[np.arange(len(segs)), np.abs(q - today).argmin(axis=1)].sum())
    return {
        "segments": len(segs),
        "true_profit_of_prices": ours,
        "true_profit_of_best_prices": best,
        "true_profit_at_today": at_today,
        "profit_ratio": ours / best if best > 0 else float("nan"),
    }
