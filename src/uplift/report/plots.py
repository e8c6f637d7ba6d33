"""Figures for planners: uplift by segment (forest plot) and where the budget goes."""

from __future__ import annotations

import math
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _segment_order(d: pd.DataFrame, uplift: pd.DataFrame) -> tuple[list[str], str]:
    """Segments best first: by the expected profit per treated customer of their best arm
    (``profit_per_treated`` rows), else by the best posterior mean of the plotted metric."""
    profit = uplift[uplift["metric"] == "profit_per_treated"]
    if not profit.empty and set(d["segment"]) <= set(profit["segment"]):
        score = profit.groupby("segment")["mean"].max()
        by = "expected profit per treated customer of the segment's best arm"
    else:
        score = d.groupby("segment")["mean"].max()
        by = "posterior mean of the segment's best arm"
    order = score.reindex(d["segment"].unique()).sort_values(ascending=False, kind="stable")
    return [str(s) for s in order.index], by


def forest_plot(
    uplift: pd.DataFrame,
    metric: str | None = None,
    truth: pd.DataFrame | None = None,
    max_segments: int = 40,
):
    """One panel per tactic arm: posterior mean and HDI for each segment, best segment on top.

    ``metric=None`` plots each tactic in its own metric (conversion, revenue, orders).
    Segments are ordered by value: the expected profit per treated customer of their best arm.
    With more than ``max_segments`` segments, the best and the worst half of that many are
    shown, with a marked gap between them (all are in ``uplift_by_segment.csv``).
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
    ranked, by = _segment_order(d, uplift)
    n_all = len(ranked)
    if n_all > max_segments:
        half = max(max_segments // 2, 1)
        top, bottom = ranked[:half], ranked[-half:]
        segs = top + bottom
        # top segments from the top down, a one-row gap, then the bottom ones
        y = np.r_[np.arange(len(segs), len(bottom), -1), np.arange(len(bottom), 0, -1) - 1.0]
        shown = f"the best {len(top)} and the worst {len(bottom)} of {n_all} segments"
    else:
        segs = ranked
        y = np.arange(len(segs), 0, -1, dtype=float)
        shown = f"{n_all} segments"
    hdi_prob = float(d["hdi_prob"].iloc[0]) if "hdi_prob" in d.columns else None
    interval = f"{hdi_prob:.0%} HDI" if hdi_prob else "HDI"
    width = max(4.4 * ncol, 7.0)
    fig, axes = plt.subplots(
        nrow,
        ncol,
        figsize=(width, 0.26 * len(segs) * nrow + 1.2 * nrow + 1.4),
        squeeze=False,
        sharey=True,
        layout="constrained",
    )
    for ax, (tactic, arm) in zip(axes.flat, panels, strict=False):
        p = d[(d["tactic"] == tactic) & (d["arm"] == arm)].set_index("segment").reindex(segs)
        ax.hlines(y, p["hdi_low"], p["hdi_high"], color="tab:blue", lw=2)
        ax.plot(p["mean"], y, "o", color="tab:blue", ms=4, label=f"posterior mean, {interval}")
        if truth is not None and set(p["metric"].dropna()) == {"conversion"}:
            t = truth[truth["arm"] == arm].set_index("segment").reindex(segs)
            ax.plot(t["true_uplift"], y, "x", color="tab:red", ms=5, label="true uplift")
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        if n_all > len(segs):
            ax.axhline(len(bottom), color="grey", lw=0.6, ls=":")
        unit = ", ".join(sorted(set(p["metric"].dropna())))
        name = f"{tactic} ({arm})" if arm != tactic else tactic
        ax.set_title(f"{name}: {unit}" if metric is None else name, fontsize=9)
        ax.set_yticks(y, segs, fontsize=7)
        ax.set_ylim(float(y.min()) - 0.7, float(y.max()) + 0.7)
        ax.tick_params(axis="x", labelsize=7)
    if n_all > len(segs):
        axes.flat[0].annotate(
            f"{n_all - len(segs)} segments in between not shown",
            xy=(0.0, len(bottom)),
            xycoords=("axes fraction", "data"),
            xytext=(2, 2),
            textcoords="offset points",
            fontsize=6,
            color="grey",
        )
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(
        textwrap.fill(
            f"Uplift per treated customer by segment ({label}): {shown}, best on top, "
            f"ordered by {by}",
            width=int(width * 11),
        ),
        fontsize=10,
    )
    return fig


def allocation_plot(allocation: pd.DataFrame, currency: str = "", max_segments: int = 40):
    """Where the budget goes: spend (left) and customers (right) per treated segment, stacked by
    arm, each bar labelled with its own total. Segments by spend, largest on top; at most
    ``max_segments`` (the rest are in ``allocation.csv``). The legend sits below the panels."""
    used = allocation[(allocation["customers"] > 0) | (allocation["spend"] > 0)]
    n_all = allocation["segment"].nunique()
    if used.empty:
        fig, ax = plt.subplots(figsize=(8, 2), layout="constrained")
        ax.axis("off")
        ax.text(0.5, 0.5, "No segment is worth treating at this budget.", ha="center")
        return fig
    label = used["arm"].astype(str) + " (" + used["tactic"].astype(str) + ")"
    used = used.assign(label=label.where(used["arm"] != used["tactic"], used["tactic"]))
    spend = used.pivot_table(index="segment", columns="label", values="spend", aggfunc="sum")
    customers = used.pivot_table(
        index="segment", columns="label", values="customers", aggfunc="sum"
    )
    order = spend.sum(axis=1).sort_values(ascending=False, kind="stable").index
    n_used = len(order)
    order = order[:max_segments]
    spend, customers = spend.reindex(order).fillna(0), customers.reindex(order).fillna(0)
    arms = list(spend.sum().sort_values(ascending=False).index)
    colors = {
        a: plt.get_cmap("tab10" if len(arms) <= 10 else "tab20")(i) for i, a in enumerate(arms)
    }
    y = np.arange(len(order), 0, -1, dtype=float)
    fig, (ax_s, ax_c) = plt.subplots(
        1,
        2,
        figsize=(11, 0.3 * len(order) + 2.2),
        sharey=True,
        layout="constrained",
    )
    panels = [
        (ax_s, spend, f"spend ({currency.strip()})" if currency.strip() else "spend"),
        (ax_c, customers, "customers treated"),
    ]
    for ax, table, xlabel in panels:
        left = np.zeros(len(order))
        for arm in arms:
            vals = table[arm].to_numpy(dtype=float) if arm in table else np.zeros(len(order))
            ax.barh(y, vals, left=left, color=colors[arm], label=arm, height=0.75)
            left += vals
        money = table is spend
        for yi, v in zip(y, left, strict=True):
            text = f"{currency}{v:,.0f}" if money else f"{v:,.0f}"
            ax.text(v, yi, f" {text}", va="center", fontsize=7)
        ax.set_xlim(0, max(float(left.max()), 1.0) * 1.22)  # room for the labels
        ax.set_xlabel(xlabel + " (bar label: its total)", fontsize=8)
        ax.tick_params(labelsize=7)
    ax_s.set_yticks(y, [str(s) for s in order])
    ax_s.set_ylim(0.3, len(order) + 0.7)
    ax_s.set_title("Spend per segment", fontsize=9)
    ax_c.set_title("Customers treated per segment", fontsize=9)
    handles, labels = ax_s.get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncol=min(len(arms), 3),
        fontsize=8,
        frameon=False,
        title="arm (tactic)",
        title_fontsize=8,
    )
    shown = f"{n_used} of {n_all} segments treated"
    if n_used > len(order):
        shown += f"; the {len(order)} with the largest spend shown"
    fig.suptitle(f"Allocation: who gets which arm ({shown})", fontsize=10)
    return fig


def _thousands(ax, axis: str = "x", currency: str = "") -> None:
    """Tick labels as 12,000 (no offset or scientific notation) and few enough not to touch."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(MaxNLocator(nbins=6))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{currency}{v:,.0f}"))


def frontier_plot(frontier: pd.DataFrame, budget: float | None = None, currency: str = ""):
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
    for a in (ax, ax2):
        _thousands(a, "x", currency)
    _thousands(ax, "y", currency)
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
