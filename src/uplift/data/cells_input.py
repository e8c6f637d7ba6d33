"""``data=cells``: pre-aggregated cells as the input, validated like customer rows.

A warehouse can compute the sufficient statistics itself (one ``GROUP BY`` over the customer
table) and hand over only the cells: one row per (segment, arm) with the columns below. Every
model fits on exactly these sums (:mod:`uplift.data.cells`), so the run is the same as from the
rows, except the stages that need rows: customer targets (``targets.csv``), cross-fitting, the
hold-out refit and the covariate model are skipped or refused with a named error.

Columns (``CELLS_REQUIRED`` must be present; the others default to what a conversion-only
experiment implies):

=====================  ==================================================================
``segment``            segment label (several segment columns: join them with ``/``)
``arm``                arm name as in ``tactics.arms``
``n``                  customers in the cell (integer >= 1)
``conversions``        customers who converted (0 <= conversions <= n)
``revenue_sum``        sum of revenue (>= 0); default 0
``revenue_sq_sum``     sum of squared revenue (>= 0); default 0
``n_buyers``           customers with revenue > 0 (0 <= n_buyers <= n); default 0
``log_revenue_sum``    sum of log revenue over buyers; default 0
``log_revenue_sq_sum`` sum of squared log revenue over buyers (>= 0); default 0
``orders_sum``         sum of orders (integer >= 0); default ``conversions``
``orders_sq_sum``      sum of squared orders (integer >= 0); default ``conversions``
``guardrail__<col>``   customers with guardrail outcome ``<col>`` (one per guardrail)
=====================  ==================================================================

``tactic`` and ``cost`` come from ``tactics.arms`` (a ``tactic``/``cost`` column in the file is
ignored). The file is read by the configured engine (DuckDB by default), so the table may also
be ``data.connection`` + ``data.table`` / ``data.query``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from uplift.data.cells import CELL_COLUMNS, guardrail_cell_column
from uplift.data.contract import SEGMENT, CustomerData, DataValidationError, no_control_message
from uplift.tactics import ArmMap

if TYPE_CHECKING:
    pass

CELLS_REQUIRED = ("segment", "arm", "n", "conversions")
INTEGER = ("n", "conversions", "n_buyers", "orders_sum", "orders_sq_sum")
FLOAT = ("revenue_sum", "revenue_sq_sum", "log_revenue_sum", "log_revenue_sq_sum")


def _fail(msg: str) -> None:
    raise DataValidationError(msg)


def _show(values: list[Any], k: int = 5) -> str:
    vals = list(dict.fromkeys(values))
    return ", ".join(repr(v) for v in vals[:k]) + (f", ... ({len(vals)})" if len(vals) > k else "")


def validate_cells(
    raw: pd.DataFrame, arm_map: ArmMap, guardrails: tuple[str, ...] = ()
) -> pd.DataFrame:
    """The cells table in :data:`~uplift.data.cells.CELL_COLUMNS` order, or a named error."""
    where = "the cells table (data=cells)"
    if len(raw) == 0:
        _fail(f"{where} has no rows")
    need = [*CELLS_REQUIRED, *(guardrail_cell_column(g) for g in guardrails)]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        _fail(
            f"{where} lacks column(s) {missing}; available: {list(map(str, raw.columns))}. "
            f"It needs {list(CELLS_REQUIRED)} (README: data=cells), plus revenue and order sums "
            "for the revenue and count families."
        )
    f = raw.copy()
    f["segment"], f["arm"] = f["segment"].astype(str), f["arm"].astype(str)
    if f["segment"].isna().any() or f["arm"].isna().any():
        _fail(f"{where}: segment and arm must not be missing")
    has_revenue = "revenue_sum" in f.columns
    has_orders = "orders_sum" in f.columns
    defaults = {c: 0.0 for c in FLOAT} | {"n_buyers": 0}
    defaults |= {"orders_sum": f["conversions"], "orders_sq_sum": f["conversions"]}
    for c, v in defaults.items():
        if c not in f.columns:
            f[c] = v
    guards = [guardrail_cell_column(g) for g in guardrails]
    for c in (*INTEGER, *FLOAT, *guards):
        x = pd.to_numeric(f[c], errors="coerce")
        bad = f.loc[x.isna() | ~np.isfinite(x.astype(float)), c]
        if len(bad):
            _fail(f"{where}: column {c!r} must be finite numbers; found {_show(bad.tolist())}")
        f[c] = x
    for c in (*INTEGER, *guards):
        bad = f.loc[(f[c] < 0) | (f[c] != np.floor(f[c])), c]
        if len(bad):
            _fail(
                f"{where}: column {c!r} must hold integers >= 0 (counts); found {_show(bad.tolist())}"
            )
        f[c] = f[c].astype(np.int64)
    for c in ("revenue_sum", "revenue_sq_sum", "log_revenue_sq_sum"):
        bad = f.loc[f[c] < 0, c]
        if len(bad):
            _fail(
                f"{where}: column {c!r} must be >= 0 (a sum of non-negative values); found {_show(bad.tolist())}"
            )
    empty = f.loc[f["n"] < 1, ["segment", "arm"]]
    if len(empty):
        _fail(
            f"{where}: cells with n < 1 customers: {_show(list(map(tuple, empty.to_numpy())))}; drop them"
        )
    for c in ("conversions", "n_buyers", *guards):
        over = f.loc[f[c] > f["n"], ["segment", "arm", c, "n"]]
        if len(over):
            _fail(
                f"{where}: column {c!r} exceeds n (customers) in cell(s) "
                f"{_show([(r.segment, r.arm) for r in over.itertuples()])}: it counts customers, "
                "so it must be <= n"
            )
    dup = f[f.duplicated(["segment", "arm"], keep=False)]
    if len(dup):
        _fail(
            f"{where}: several rows for (segment, arm) {_show(list(map(tuple, dup[['segment', 'arm']].to_numpy())))}; "
            "give one row per cell (sum them)"
        )
    known = set(arm_map.names)
    unknown = sorted(set(f["arm"]) - known)
    if unknown:
        _fail(
            f"{where}: arm value(s) {_show(unknown)} are not in tactics.arms (configured: "
            f"{sorted(known)}); add each to tactics.arms with its tactic and cost, or drop them"
        )
    absent = [a for a in arm_map.names if a not in set(f["arm"])]
    if absent:
        _fail(f"{where}: arm(s) {absent} are configured in tactics.arms but have no cells")
    if f["conversions"].sum() == 0 and f["revenue_sum"].sum() <= 0 and f["orders_sum"].sum() == 0:
        _fail(f"{where}: no conversion, revenue or order in any cell: there is no outcome to model")
    f = f.sort_values([SEGMENT, "arm"], kind="stable").reset_index(drop=True)
    f[SEGMENT], f["arm"] = f[SEGMENT].astype(str), f["arm"].astype(str)
    f["tactic"] = f["arm"].map({a.name: a.tactic.value for a in arm_map.arms})
    f["cost"] = f["arm"].map({a.name: a.cost for a in arm_map.arms}).astype(float)
    out = f[[*CELL_COLUMNS, *guards]]
    out.attrs["has_revenue"], out.attrs["has_orders"] = has_revenue, has_orders
    return out


def cells_data(
    cells: pd.DataFrame,
    arm_map: ArmMap,
    segment_columns: tuple[str, ...],
    guardrails: tuple[str, ...] = (),
    engine: str = "cells",
) -> CustomerData:
    """Validated cells as :class:`CustomerData` without rows (``frame`` is refused by name)."""
    from uplift.data.engine import EngineRows

    missing = sorted(
        set(cells[SEGMENT]) - set(cells.loc[cells["arm"] == arm_map.control.name, SEGMENT])
    )
    if missing:
        from uplift.data.contract import ColumnMap

        _fail(
            no_control_message(missing, ColumnMap(segments=segment_columns), arm_map.control.name)
        )
    return CustomerData(
        rows=None,
        segment_columns=("segment",),
        arm_map=arm_map,
        has_revenue=bool(cells.attrs.get("has_revenue", True)),
        has_orders=bool(cells.attrs.get("has_orders", True)),
        guardrails=guardrails,
        engine=EngineRows(None, engine, int(cells["n"].sum()), cells),
    )
