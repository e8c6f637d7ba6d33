"""Figures cope with any family's metric and with many segments."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from uplift.report.plots import forest_plot


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


def test_forest_plot_uses_each_tactics_metric_and_caps_segments():
    fig = forest_plot(_uplift("revenue", 144), max_segments=40)
    ax = fig.axes[0]
    assert len(ax.get_yticks()) == 40  # the 20 highest and 20 lowest of 144
    assert "revenue" in ax.get_title()
    assert "40 of 144 segments" in fig._suptitle.get_text()
    plt.close(fig)
    with pytest.raises(ValueError, match="no uplift rows with metric 'orders'"):
        forest_plot(_uplift("revenue", 3), metric="orders")
