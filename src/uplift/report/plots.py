"""Figures for planners: uplift by segment (forest plot) and where the budget goes."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def forest_plot(
    uplift: pd.DataFrame,
    metric: str | None = None,
    truth: pd.DataFrame | None = None,
    max_segments: int = 60,
):
    """One panel per tactic arm: posterior mean and HDI for each segment.

    ``metric=None`` plots each tactic in its own metric (conversion, revenue, orders). With more
    than ``max_segments`` segments, the half with the highest and the half with the lowest
    posterior mean in the first panel are shown (all are in ``uplift_by_segment.csv``).
    """
    if metric is None:
        d = uplift[uplift["metric"] != "profit_per_treated"]
        label = "each tactic's own metric"
    else:
        d = uplift[uplift["metric"] == metric]
        label = metric
    if d.empty:
        raise ValueError(f"no uplift rows with metric {metric!r} to plot")
    panels = list(dict.fromkeys(zip(d["tactic"], d["arm"], strict=True)))
    ncol = min(3, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    segs = sorted(d["segment"].unique())
    if len(segs) > max_segments:
        first = d[(d["tactic"] == panels[0][0]) & (d["arm"] == panels[0][1])]
        ranked = first.sort_values("mean")["segment"].tolist()
        half = max_segments // 2
        segs = sorted(set(ranked[:half]) | set(ranked[-half:]))
        label += f"; {len(segs)} of {d['segment'].nunique()} segments, the extremes"
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(4.2 * ncol, 0.32 * len(segs) * nrow + 1.5), squeeze=False, sharey=True
    )
    y = np.arange(len(segs))
    for ax, (tactic, arm) in zip(axes.flat, panels, strict=False):
        p = d[(d["tactic"] == tactic) & (d["arm"] == arm)].set_index("segment").reindex(segs)
        ax.hlines(y, p["hdi_low"], p["hdi_high"], color="tab:blue", lw=2)
        ax.plot(p["mean"], y, "o", color="tab:blue", ms=4, label="posterior mean, HDI")
        if truth is not None and set(p["metric"].dropna()) == {"conversion"}:
            t = truth[truth["arm"] == arm].set_index("segment").reindex(segs)
            ax.plot(t["true_uplift"], y, "x", color="tab:red", ms=5, label="truth")
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        unit = ", ".join(sorted(set(p["metric"].dropna())))
        name = f"{tactic} ({arm})" if arm != tactic else tactic
        ax.set_title(f"{name}: {unit}" if metric is None else name, fontsize=9)
        ax.set_yticks(y, segs, fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Posterior uplift by segment ({label}, per treated customer)", fontsize=11)
    fig.tight_layout()
    return fig


def allocation_plot(allocation: pd.DataFrame):
    """Customers treated per segment, stacked by tactic, with spend annotated."""
    pivot = allocation.pivot_table(
        index="segment", columns="tactic", values="customers", aggfunc="sum"
    ).fillna(0)
    spend = allocation.groupby("segment")["spend"].sum().reindex(pivot.index)
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(pivot) + 1.5))
    left = np.zeros(len(pivot))
    for tactic in pivot.columns:
        vals = pivot[tactic].to_numpy()
        if vals.sum() > 0:
            ax.barh(pivot.index, vals, left=left, label=tactic)
        left += vals
    for i, (v, s) in enumerate(zip(left, spend, strict=True)):
        if v > 0:
            ax.text(v, i, f"  {s:,.0f}", va="center", fontsize=7)
    ax.set_xlim(0, max(float(left.max()), 1.0) * 1.15)  # room for the spend labels
    ax.set_xlabel("customers treated (label: spend)")
    ax.set_title("Allocation: who gets which tactic")
    ax.legend(fontsize=8, loc="lower right")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def frontier_plot(frontier: pd.DataFrame, budget: float | None = None):
    """Expected incremental profit (with interval) against budget, and the marginal return."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax.fill_between(
        frontier["budget"],
        frontier["profit_hdi_low"],
        frontier["profit_hdi_high"],
        alpha=0.25,
        label="HDI",
    )
    ax.plot(frontier["budget"], frontier["expected_profit"], "o-", ms=3, label="expected profit")
    if budget is not None:
        ax.axvline(budget, color="grey", ls="--", lw=0.8, label="chosen budget")
    ax.set_xlabel("budget")
    ax.set_ylabel("incremental profit")
    ax.set_title("Efficient frontier")
    ax.legend(fontsize=8)
    ax2.step(frontier["budget"], frontier["marginal_return"], where="post")
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set_xlabel("budget")
    ax2.set_ylabel("profit per extra unit of budget")
    ax2.set_title("Marginal return (budget dual)")
    fig.tight_layout()
    return fig


def price_plot(demand, prices: pd.DataFrame, pricing_cfg):
    """Posterior expected profit per customer over the price grid, per segment, with the chosen
    and the cost-plus prices marked."""
    segs = [str(s) for s in demand["segment"].values]
    grid = np.asarray(demand["price"].values, dtype=float)
    fig, axes = plt.subplots(
        1, len(segs), figsize=(4 * len(segs), 3.4), squeeze=False, sharey=False
    )
    chosen = prices.drop_duplicates("segment").set_index("segment")
    for ax, seg in zip(axes.flat, segs, strict=True):
        cost = float(pricing_cfg.unit_cost_by_segment.get(seg, pricing_cfg.unit_cost))
        profit = (grid - cost)[None, :] * demand.sel(segment=seg).transpose(
            "sample", "price"
        ).values
        lo, hi = np.quantile(profit, [0.03, 0.97], axis=0)
        ax.fill_between(grid, lo, hi, alpha=0.25)
        ax.plot(grid, profit.mean(axis=0), lw=1.5)
        if seg in chosen.index:
            ax.axvline(chosen.loc[seg, "price"], color="tab:green", ls="-", lw=1.2, label="chosen")
            if "cost_plus_price" in chosen.columns:
                ax.axvline(
                    chosen.loc[seg, "cost_plus_price"],
                    color="tab:red",
                    ls="--",
                    lw=1,
                    label="cost-plus",
                )
        ax.set_title(seg, fontsize=9)
        ax.set_xlabel("price")
    axes.flat[0].set_ylabel("expected profit per customer")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Posterior profit curves (94% band) and chosen prices", fontsize=10)
    fig.tight_layout()
    return fig


def qini_plot(curves: dict):
    """Held-out Qini curves: one panel per tactic and arm, one line per scorer, random as a line."""
    panels = [(t, a, by) for t, arms in curves.items() for a, by in arms.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (tactic, arm, by_scorer) in zip(axes[0], panels, strict=True):
        end = None
        for name, (x, q) in by_scorer.items():
            ax.plot(x, q, label=name)
            end = (x[-1], q[-1])
        if end is not None:
            ax.plot([0, end[0]], [0, end[1]], color="grey", ls="--", lw=1, label="random")
        ax.set_title(f"{tactic}: {arm}", fontsize=9)
        ax.set_xlabel("share of customers targeted")
        ax.set_ylabel("incremental outcome (Qini)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
