"""Figures cope with any family's metric and with many segments."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from uplift.report.plots import allocation_plot, forest_plot


def _uplift(metric: str, segments: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for arm in ("mens", "womens"):
        for s in range(segments):
            m = rng.normal()
            for met in (metric, "profit_per_treated"):
                rows.append(
                    dict(
                        tactic="cross_sell",
                        arm=arm,
                        segment=f"s{s:03d}",
                        metric=met,
                        mean=m,
                        hdi_low=m - 1,
                        hdi_high=m + 1,
                    )
                )
    return pd.DataFrame(rows)


def _inside(fig, artist) -> bool:
    """Whether ``artist`` is drawn wholly inside the figure (nothing clipped)."""
    fig.canvas.draw()
    box = artist.get_window_extent(fig.canvas.get_renderer())
    return box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1


def test_forest_plot_uses_each_tactics_metric_and_caps_segments():
    uplift = _uplift("revenue", 144)
    fig = forest_plot(uplift, max_segments=40)
    ax = fig.axes[0]
    assert len(ax.get_yticks()) == 40  # the 20 best and 20 worst of 144
    assert "revenue" in ax.get_title()
    title = fig._suptitle.get_text()
    assert "the best 20 and the worst 20 of 144 segments" in title.replace("\n", " ")
    assert _inside(fig, fig._suptitle)  # wrapped, not clipped
    # ordered by value (best arm's profit per treated customer), best on top; not alphabetical
    best = (
        uplift[uplift["metric"] == "profit_per_treated"]
        .groupby("segment")["mean"]
        .max()
        .sort_values(ascending=False)
    )
    labels = [t.get_text() for t in ax.get_yticklabels()]
    ticks = sorted(zip(ax.get_yticks(), labels, strict=True))[::-1]
    shown = [label for _, label in ticks]
    assert shown == [*best.index[:20], *best.index[-20:]]
    assert shown != sorted(shown)
    plt.close(fig)
    with pytest.raises(ValueError, match="no uplift rows with metric 'orders'"):
        forest_plot(_uplift("revenue", 3), metric="orders")


def test_allocation_plot_labels_say_what_the_bars_show_and_the_legend_hides_nothing():
    rng = np.random.default_rng(1)
    n = 144
    alloc = pd.DataFrame(
        {
            "segment": [f"s{i:03d}" for i in range(n)] * 2,
            "tactic": "cross_sell",
            "arm": ["mens"] * n + ["womens"] * n,
            "customers": rng.integers(0, 300, 2 * n) * (rng.random(2 * n) < 0.4),
        }
    )
    alloc["spend"] = alloc["customers"] * np.where(alloc["arm"] == "mens", 0.5, 0.8)
    fig = allocation_plot(alloc, currency="€", max_segments=30)
    ax_s, ax_c = fig.axes[:2]
    assert "spend" in ax_s.get_xlabel() and "customers" in ax_c.get_xlabel()
    for ax, fmt in ((ax_s, "€{:,.0f}"), (ax_c, "{:,.0f}")):
        totals: dict[float, float] = {}
        for bar in ax.patches:
            y = round(bar.get_y() + bar.get_height() / 2, 6)
            totals[y] = totals.get(y, 0.0) + bar.get_width()
        labels = {round(t.get_position()[1], 6): t.get_text().strip() for t in ax.texts}
        assert len(labels) == 30
        assert labels == {y: fmt.format(v) for y, v in totals.items()}  # label = bar length
    # the segments with the largest spend, largest on top
    spend = alloc.groupby("segment")["spend"].sum().sort_values(ascending=False)
    labels_s = [t.get_text() for t in ax_s.get_yticklabels()]
    ticks = sorted(zip(ax_s.get_yticks(), labels_s, strict=True))
    assert [label for _, label in ticks][::-1] == list(spend.index[:30])
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [
        "womens (cross_sell)",
        "mens (cross_sell)",
    ]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in (ax_s, ax_c))
    assert _inside(fig, legend) and _inside(fig, fig._suptitle)
    plt.close(fig)
    empty = allocation_plot(alloc.assign(customers=0, spend=0.0))
    assert "No segment is worth treating" in empty.axes[0].texts[0].get_text()
    plt.close(empty)
