"""Sufficient statistics reproduce row-level sums and the row-level likelihood exactly."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from scipy import stats

from uplift.data.cells import CELL_COLUMNS, segment_sizes


def test_cells_match_rows(customers, cells):
    f = customers.frame
    assert list(cells.columns) == [*CELL_COLUMNS, "value_tier", "needs"]
    assert cells["n"].sum() == len(f)
    assert cells["conversions"].sum() == f["converted"].sum()
    assert cells["revenue_sum"].sum() == pytest.approx(f["revenue"].sum())
    pos = f["revenue"] > 0
    assert cells["n_buyers"].sum() == pos.sum()
    assert cells["log_revenue_sum"].sum() == pytest.approx(np.log(f.loc[pos, "revenue"]).sum())
    one = cells[(cells["segment"] == "high/price") & (cells["arm"] == "upgrade_offer")].iloc[0]
    rows = f[(f["segment"] == "high/price") & (f["arm"] == "upgrade_offer")]
    assert one["n"] == len(rows) and one["orders_sq_sum"] == (rows["orders"] ** 2).sum()
    assert one["tactic"] == "up_sell" and one["cost"] == 1.5


def test_segment_sizes(customers, cells):
    sizes = segment_sizes(cells)
    assert sizes.sum() == len(customers)
    assert sizes.loc["low/price"] == (customers.frame["segment"] == "low/price").sum()


def test_binomial_cells_give_row_likelihood_up_to_constant(customers, cells):
    """log L(cells) - log L(rows) must not depend on p: it is the log binomial coefficient."""
    f = customers.frame
    diffs = []
    for p in (0.02, 0.08, 0.3):
        rows = stats.bernoulli.logpmf(f["converted"], p).sum()
        cell = stats.binom.logpmf(cells["conversions"], cells["n"], p).sum()
        diffs.append(cell - rows)
    assert np.ptp(diffs) < 1e-6
    # and PyMC's Binomial agrees with scipy on the same cells
    logp = (
        pm.logp(pm.Binomial.dist(n=cells["n"].to_numpy(), p=0.08), cells["conversions"].to_numpy())
        .sum()
        .eval()
    )
    assert logp == pytest.approx(stats.binom.logpmf(cells["conversions"], cells["n"], 0.08).sum())
