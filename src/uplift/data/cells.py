"""Sufficient statistics per (tactic, segment, arm) cell.

Every likelihood we fit is a function of these sums, so model cost depends on the number of
cells, not on the number of customers. Revenue sums cover the hurdle model (count of buyers,
sum and sum of squares of log spend); order sums cover count models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from uplift.data.contract import SEGMENT, CustomerData, OutcomeColumn, outcome_column
from uplift.tactics import ArmMap

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


#: bits of the fixed-point grid each float statistic's per-row value is rounded to
FIXED_POINT_BITS: dict[str, int] = {
    "revenue_sum": 20,
    "revenue_sq_sum": 10,
    "log_revenue_sum": 32,
    "log_revenue_sq_sum": 32,
}


def guardrail_cell_column(column: str) -> str:
    """The cells' column holding the sum of guardrail ``column`` (customers with the outcome)."""
    return f"guardrail__{column}"


#: the cell statistics each kind of outcome feeds (``data.columns.outcomes``)
OUTCOME_STATISTICS: dict[str, tuple[str, ...]] = {
    "converted": ("conversions",),
    "orders": ("orders_sum", "orders_sq_sum"),
    "revenue": (
        "revenue_sum",
        "revenue_sq_sum",
        "n_buyers",
        "log_revenue_sum",
        "log_revenue_sq_sum",
    ),
}
#: cell statistics held as integers
INTEGER_STATISTICS = ("n", "conversions", "n_buyers", "orders_sum", "orders_sq_sum")
OUTCOME_PREFIX = "outcome__"


def outcome_cell_columns(outcome: OutcomeColumn) -> dict[str, str]:
    """cells' column -> the statistic it stands in for, of a tactic's own outcome:
    ``outcome__<tactic>__<statistic>``."""
    return {f"{outcome.canonical}__{s}": s for s in OUTCOME_STATISTICS[outcome.kind]}


def outcome_fixed_bits(outcomes: Sequence[OutcomeColumn]) -> dict[str, int]:
    """The fixed-point bits of the mapped outcomes' float statistics (as their statistic's)."""
    return {
        c: FIXED_POINT_BITS[s]
        for o in outcomes
        for c, s in outcome_cell_columns(o).items()
        if s in FIXED_POINT_BITS
    }


def outcome_row_statistics(y: np.ndarray | pd.Series, kind: str) -> dict[str, Any]:
    """Each customer's contribution to the statistics a ``kind`` outcome feeds: the shared
    ``converted`` / ``orders`` / ``revenue`` columns' and each ``data.columns.outcomes``
    column's in :func:`aggregate_cells`."""
    if kind == "converted":
        return {"conversions": y}
    if kind == "orders":
        return {"orders_sum": y, "orders_sq_sum": y**2}
    pos = y > 0
    logy = np.where(pos, np.log(np.where(pos, y, 1.0)), 0.0)
    return {
        "revenue_sum": y,
        "revenue_sq_sum": y**2,
        "n_buyers": pos.astype(np.int64),
        "log_revenue_sum": logy,
        "log_revenue_sq_sum": logy**2,
    }


def tactic_cells(cells: pd.DataFrame, tactic: str) -> pd.DataFrame:
    """The cells ``tactic`` is fit and checked on: with its own outcome's sums
    (``data.columns.outcomes``, cells' ``outcome__<tactic>__<statistic>``) standing in for the
    shared statistics, and no ``outcome__*`` column left. The same rows (every arm, so segment
    sizes are unchanged); ``cells`` itself when no tactic is mapped."""
    extra = [c for c in cells.columns if str(c).startswith(OUTCOME_PREFIX)]
    if not extra:
        return cells
    own = f"{outcome_column(str(tactic))}__"
    subst = {c[len(own) :]: cells[c] for c in extra if c.startswith(own)}
    return cells.drop(columns=extra).assign(**subst)


def aggregate_cells(data: CustomerData, *, fixed_point: bool = False) -> pd.DataFrame:
    """Collapse customer rows to one row per (segment, arm) with the sums every model needs.

    With several segment columns, each is kept as a column too (e.g. to read results by tier).
    ``fixed_point``: the float sums as the engines compute them (each row's value rounded to
    :data:`FIXED_POINT_BITS`, summed exactly): the pandas reference of
    :func:`uplift.data.engine.cells_expr`, equal to DuckDB's and Spark's to the last digit.
    """
    if data.engine is not None:
        return data.engine.cells
    f = data.frame
    work = pd.DataFrame(
        {
            SEGMENT: f[SEGMENT],
            "arm": f["arm"],
            "n": 1,
            **{
                k: v
                for kind in OUTCOME_STATISTICS  # the shared columns, by the kind they are
                for k, v in outcome_row_statistics(f[kind], kind).items()
            },
        }
    )
    guards = [guardrail_cell_column(g) for g in data.guardrails]
    for g, c in zip(data.guardrails, guards, strict=True):
        work[c] = f[g]
    own: list[str] = []
    for o in data.outcomes:
        stats = outcome_row_statistics(f[o.canonical].to_numpy(), o.kind)
        for c, stat in outcome_cell_columns(o).items():
            work[c] = stats[stat]
            own.append(c)
    dims = segment_dimensions(data)
    for c in dims:
        work[c] = f[c]
    if fixed_point:
        return _fixed_point_cells(work, data, dims, guards)
    cells = work.groupby([SEGMENT, *dims, "arm"], sort=True, observed=True).sum().reset_index()
    arm_map = data.arm_map
    cells["tactic"] = cells["arm"].map({a.name: a.tactic.value for a in arm_map.arms})
    cells["cost"] = cells["arm"].map({a.name: a.cost for a in arm_map.arms}).astype(float)
    for c in (*INTEGER_STATISTICS, *guards, *_integer_outcome_columns(data.outcomes)):
        cells[c] = cells[c].astype(np.int64)
    return cells[[*CELL_COLUMNS, *dims, *guards, *own]]


def _integer_outcome_columns(outcomes: Sequence[OutcomeColumn]) -> list[str]:
    return [
        c for o in outcomes for c, s in outcome_cell_columns(o).items() if s in INTEGER_STATISTICS
    ]


def _fixed_point_cells(
    work: pd.DataFrame, data: CustomerData, dims: list[str], guards: list[str]
) -> pd.DataFrame:
    """The engines' statistic in pandas: each float sum over ``floor(x * 2**bits + 0.5)``,
    accumulated exactly (three 26-bit limbs in int64, joined as Python integers)."""
    keys = [SEGMENT, *dims, "arm"]
    fixed = FIXED_POINT_BITS | outcome_fixed_bits(data.outcomes)
    ints = work.drop(columns=list(fixed))
    out = ints.groupby(keys, sort=True, observed=True).sum()
    step = float(2**26)
    for col, bits in fixed.items():
        q = np.floor(work[col].to_numpy(dtype=np.float64) * float(2**bits) + 0.5)
        q = q.astype(np.int64).astype(np.float64)  # as the engines' cast to BIGINT
        hi = np.floor(q / (step * step))
        rest = q - hi * step * step
        mid = np.floor(rest / step)
        limbs = pd.DataFrame(
            {
                "hi": hi.astype(np.int64),
                "mid": mid.astype(np.int64),
                "lo": (rest - mid * step).astype(np.int64),
            }
        )
        for k in keys:
            limbs[k] = work[k].to_numpy()
        s = limbs.groupby(keys, sort=True, observed=True)[["hi", "mid", "lo"]].sum()
        out[col] = [
            (int(h) << 52) + (int(m) << 26) + int(lo)
            for h, m, lo in zip(s["hi"], s["mid"], s["lo"], strict=True)
        ]
    raw = out.reset_index()
    return finish_cells(raw, data.arm_map, dims, list(data.guardrails), data.outcomes)


def from_fixed(sums: pd.Series, bits: int) -> np.ndarray:
    """Exact integer sums (Decimal, int or float holding an integer) back to floats."""
    scale = float(2**bits)
    return np.array([float(int(v)) / scale for v in sums], dtype=np.float64)


def finish_cells(
    raw: pd.DataFrame,
    arm_map: ArmMap,
    dims: Sequence[str],
    guardrails: Sequence[str],
    outcomes: Sequence[OutcomeColumn] = (),
) -> pd.DataFrame:
    """The engine's grouped sums as ``aggregate_cells``' table: same rows, order, columns, dtypes."""
    keys = [SEGMENT, *dims, "arm"]
    cells = raw.sort_values(keys, kind="stable").reset_index(drop=True)
    for k in keys:
        cells[k] = cells[k].astype(str)
    for col, bits in (FIXED_POINT_BITS | outcome_fixed_bits(outcomes)).items():
        cells[col] = from_fixed(cells[col], bits)
    guards = [guardrail_cell_column(g) for g in guardrails]
    for col in (*INTEGER_STATISTICS, *guards, *_integer_outcome_columns(outcomes)):
        cells[col] = cells[col].fillna(0).astype(np.int64)
    cells["tactic"] = cells["arm"].map({a.name: a.tactic.value for a in arm_map.arms})
    cells["cost"] = cells["arm"].map({a.name: a.cost for a in arm_map.arms}).astype(float)
    own = [c for o in outcomes for c in outcome_cell_columns(o)]
    return cells[[*CELL_COLUMNS, *dims, *guards, *own]]


def segment_dimensions(data: CustomerData) -> list[str]:
    """The segment columns that make up ``segment`` when there are several (e.g. tier, needs).

    With a single segment column there is nothing to add.
    """
    cols = [c for c in data.segment_columns if c != SEGMENT and c not in CELL_COLUMNS]
    return cols if len(data.segment_columns) > 1 else []


def segment_sizes(cells: pd.DataFrame) -> pd.Series:
    """Customers per segment across all arms (the eligible base the optimizer allocates over)."""
    return cells.groupby(SEGMENT)["n"].sum().sort_index()
