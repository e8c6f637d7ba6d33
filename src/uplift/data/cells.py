"""Sufficient statistics per (tactic, segment, arm) cell.

Every likelihood we fit is a function of these sums, so model cost depends on the number of
cells, not on the number of customers. Revenue sums cover the hurdle model (count of buyers,
sum and sum of squares of log spend); order sums cover count models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.data.contract import SEGMENT, CustomerData

CELL_COLUMNS = [
    "tactic",
    "segment",
    "arm",
    "cost",
    "n",
    "conversions",
    "revenue_sum",
    "revenue_sq_sum",
    "n_buyers",
    "log_revenue_sum",
    "log_revenue_sq_sum",
    "orders_sum",
    "orders_sq_sum",
]


def guardrail_cell_column(column: str) -> str:
    """The cells' column holding the sum of guardrail ``column`` (customers with the outcome)."""
    return f"guardrail__{column}"


def aggregate_cells(data: CustomerData) -> pd.DataFrame:
    """Collapse customer rows to one row per (segment, arm) with the sums every model needs.

    With several segment columns, each is kept as a column too (e.g. to read results by tier).
    """
    f = data.frame
    pos = f["revenue"] > 0
    logy = np.where(pos, np.log(np.where(pos, f["revenue"], 1.0)), 0.0)
    work = pd.DataFrame(
        {
            SEGMENT: f[SEGMENT],
            "arm": f["arm"],
            "n": 1,
            "conversions": f["converted"],
            "revenue_sum": f["revenue"],
            "revenue_sq_sum": f["revenue"] ** 2,
            "n_buyers": pos.astype(np.int64),
            "log_revenue_sum": logy,
            "log_revenue_sq_sum": logy**2,
            "orders_sum": f["orders"],
            "orders_sq_sum": f["orders"] ** 2,
        }
    )
    guards = [guardrail_cell_column(g) for g in data.guardrails]
    for g, c in zip(data.guardrails, guards, strict=True):
        work[c] = f[g]
    dims = segment_dimensions(data)
    for c in dims:
        work[c] = f[c]
    cells = work.groupby([SEGMENT, *dims, "arm"], sort=True, observed=True).sum().reset_index()
    arm_map = data.arm_map
    cells["tactic"] = cells["arm"].map({a.name: a.tactic.value for a in arm_map.arms})
    cells["cost"] = cells["arm"].map({a.name: a.cost for a in arm_map.arms}).astype(float)
    for c in ("n", "conversions", "n_buyers", "orders_sum", "orders_sq_sum", *guards):
        cells[c] = cells[c].astype(np.int64)
    return cells[[*CELL_COLUMNS, *dims, *guards]]


def segment_dimensions(data: CustomerData) -> list[str]:
    """The segment columns that make up ``segment`` when there are several (e.g. tier, needs).

    With a single segment column there is nothing to add.
    """
    cols = [c for c in data.segment_columns if c != SEGMENT and c not in CELL_COLUMNS]
    return cols if len(data.segment_columns) > 1 else []


def segment_sizes(cells: pd.DataFrame) -> pd.Series:
    """Customers per segment across all arms (the eligible base the optimizer allocates over)."""
    return cells.groupby(SEGMENT)["n"].sum().sort_index()
