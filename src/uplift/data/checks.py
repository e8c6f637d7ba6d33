"""Plausibility guards on valid-looking data, run before anything is fitted or written.

The contract (:mod:`uplift.data.contract`) refuses what cannot be right (a conversion of 2, a
negative revenue); these refuse what is almost surely a mistake and would otherwise flow into a
plan silently: one revenue of 1e15 (a value per conversion of 6e12), revenue on customers who did
not convert (the value per conversion is revenue per converter), more segments than the
sampler can hold, or segments cut so fine that a typical cell has a handful of customers. Each
refusal names the ``data.checks`` key that lets it through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from uplift.data.contract import DataValidationError
from uplift.data.settings import DataChecks

#: seconds per (cell x chain x iteration) of NUTS on the binomial model, measured on the crossed
#: benchmark (72 cells, 4 chains x 3,000 iterations, ~13 s on 2 cores): a floor, since trees
#: grow deeper as the model grows
SECONDS_PER_CELL_ITERATION = 3e-5
#: float64 values kept per draw: ~4 per (arm, segment) cell and ~3 per segment
VALUES_PER_CELL, VALUES_PER_SEGMENT = 4, 3


def revenue_outliers(revenue: pd.Series, z_max: float) -> pd.Series:
    """Positive revenues more than ``z_max`` robust sds above the median of log revenue."""
    pos = revenue[revenue > 0]
    if len(pos) < 20:
        return pos.iloc[:0]
    logs = np.log(pos)
    med = float(np.median(logs))
    mad = 1.4826 * float(np.median(np.abs(logs - med)))
    if mad <= 0:
        return pos.iloc[:0]
    return pos[(logs - med) / mad > z_max]


def estimated_cost(
    n_segments: int, n_cells: int, chains: int, draws: int, tune: int, cores: int
) -> tuple[float, float]:
    """(posterior GB, sampling seconds floor) of fitting ``n_cells`` treated+control cells."""
    values = VALUES_PER_CELL * n_cells + VALUES_PER_SEGMENT * n_segments
    gb = chains * draws * values * 8 / 1e9
    seconds = SECONDS_PER_CELL_ITERATION * n_cells * chains * (draws + tune) / max(cores, 1)
    return gb, seconds


def check_plausible(
    frame: pd.DataFrame,
    checks: DataChecks,
    *,
    revenue_column: str | None,
    chains: int,
    draws: int,
    tune: int,
    cores: int = 1,
) -> None:
    """Refuse implausible data (see the module docstring); ``frame`` is the validated customers
    frame (``segment, arm, converted`` and ``revenue`` when mapped)."""
    sizes = frame.groupby(["segment", "arm"], observed=True).size()  # customers per cell
    check_cell_sizes(sizes, len(frame), checks, chains=chains, draws=draws, tune=tune, cores=cores)
    if "revenue" in frame.columns and revenue_column:
        _check_revenue(frame, checks, revenue_column)


def check_cell_sizes(
    sizes: pd.Series,
    n_rows: int,
    checks: DataChecks,
    *,
    chains: int,
    draws: int,
    tune: int,
    cores: int = 1,
) -> None:
    """The segment-count and cell-size guards, from customers per (segment, arm) cell."""
    n_segments = int(sizes.index.get_level_values(0).nunique())
    if checks.max_segments is not None and n_segments > checks.max_segments:
        gb, seconds = estimated_cost(n_segments, len(sizes), chains, draws, tune, cores)
        per = n_rows / n_segments
        raise DataValidationError(
            f"{n_segments:,} segments (about {per:,.0f} customers each) exceed "
            f"data.checks.max_segments={checks.max_segments:,}: fitting them would keep about "
            f"{gb:,.1f} GB of posterior draws per tactic and sample for at least {seconds:,.0f} s "
            f"({chains} chains x {draws + tune:,} iterations), with little data per segment. Use "
            "coarser data.columns.segments (or data.derive bins), or raise "
            "data.checks.max_segments (null: no limit)."
        )
    median = float(sizes.median())
    if checks.min_median_cell_customers is not None and median < checks.min_median_cell_customers:
        raise DataValidationError(
            f"segments are cut too fine: the median segment x arm cell has {median:g} customers "
            f"({n_segments:,} segments from {n_rows:,} customers), below "
            f"data.checks.min_median_cell_customers={checks.min_median_cell_customers}; an uplift "
            "cannot be learnt from so few. Use coarser data.columns.segments (or data.derive "
            "bins), or lower the key (null: off)."
        )


def _check_revenue(frame: pd.DataFrame, checks: DataChecks, revenue_column: str) -> None:
    revenue = frame["revenue"]
    if not checks.allow_revenue_without_conversion:
        odd = frame.index[(revenue > 0) & (frame["converted"] == 0)]
        if len(odd):
            raise DataValidationError(
                f"{len(odd):,} customer(s) have revenue (column {revenue_column!r}) but "
                f"converted=0 (e.g. rows {list(odd[:3])}); the value of a conversion is revenue "
                "per converter, so this inflates it. Set converted=1 for every buyer (e.g. "
                "derive it from revenue > 0), or set "
                "data.checks.allow_revenue_without_conversion=true if that is intended."
            )
    if checks.revenue_outlier_z is not None:
        far = revenue_outliers(revenue, checks.revenue_outlier_z)
        if len(far):
            med = float(revenue[revenue > 0].median())
            top = far.sort_values(ascending=False)
            raise DataValidationError(
                f"column {revenue_column!r} (data.columns.revenue) has {len(far):,} value(s) "
                f"far above the rest: {', '.join(f'{v:.4g}' for v in top[:3])} (rows "
                f"{list(top.index[:3])}) against a median of {med:.4g} among buyers (more "
                f"than data.checks.revenue_outlier_z={checks.revenue_outlier_z:g} robust sds "
                "on the log scale). Fix or drop them, or raise data.checks.revenue_outlier_z "
                "(null turns the check off)."
            )


def check_plausible_engine(
    rows: Any,
    cells: pd.DataFrame,
    n_rows: int,
    checks: DataChecks,
    *,
    revenue_column: str | None,
    reference: Callable[[], pd.DataFrame],
    chains: int,
    draws: int,
    tune: int,
    cores: int = 1,
) -> None:
    """:func:`check_plausible` on rows held by an engine (``rows``: canonical Ibis table):
    cell sizes from the cells, the revenue guards as aggregates. When a revenue guard fires,
    up to ``REFERENCE_ROWS`` rows are pulled (``reference()``) so the refusal names rows and
    values exactly as the pandas check does; beyond that the message gives the counts."""
    from uplift.data.engine import REFERENCE_ROWS, check_revenue_range

    sizes = cells.groupby(["segment", "arm"], sort=True)["n"].sum()
    check_cell_sizes(sizes, n_rows, checks, chains=chains, draws=draws, tune=tune, cores=cores)
    if not revenue_column or rows is None:  # data=cells: no rows to look at
        return
    r = rows.revenue
    pos = rows.filter(r > 0)
    odd = 0
    if not checks.allow_revenue_without_conversion:
        odd = int(rows.filter((r > 0) & (rows.converted == 0)).count().to_pandas())
    far = 0
    n_pos = int(pos.count().to_pandas())
    if checks.revenue_outlier_z is not None and n_pos >= 20:
        logs = pos.select(x=pos.revenue.log())
        med = float(logs.x.median().to_pandas())
        mad = 1.4826 * float((logs.x - med).abs().median().to_pandas())
        if mad > 0:
            z = float(checks.revenue_outlier_z)
            far = int(logs.filter((logs.x - med) / mad > z).count().to_pandas())
    if not (odd or far):
        check_revenue_range(rows, revenue_column)
        return
    if n_rows <= REFERENCE_ROWS:
        _check_revenue(reference(), checks, revenue_column)
    if odd:
        raise DataValidationError(
            f"{odd:,} customer(s) have revenue (column {revenue_column!r}) but converted=0; "
            "the value of a conversion is revenue per converter, so this inflates it. Set "
            "converted=1 for every buyer, or set data.checks.allow_revenue_without_conversion=true"
        )
    raise DataValidationError(
        f"column {revenue_column!r} (data.columns.revenue) has {far:,} value(s) more than "
        f"data.checks.revenue_outlier_z={checks.revenue_outlier_z:g} robust sds above the median "
        "on the log scale. Fix or drop them, or raise data.checks.revenue_outlier_z (null turns "
        "the check off)."
    )
