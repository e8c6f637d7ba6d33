"""Plausibility guards on valid-looking data, run before anything is fitted or written.

The contract (:mod:`uplift.data.contract`) refuses what cannot be right (a conversion of 2, a
negative revenue); these refuse what is almost surely a mistake and would otherwise flow into a
plan silently: one revenue of 1e15 (a value per conversion of 6e12), revenue on customers who did
not convert (the value per conversion is revenue per converter), more segments than the
sampler can hold, or segments cut so fine that a typical cell has a handful of customers. Each
refusal names the ``data.checks`` key that lets it through.
"""

from __future__ import annotations

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
    n_segments = int(frame["segment"].nunique())
    sizes = frame.groupby(["segment", "arm"], observed=True).size()  # customers per cell
    if checks.max_segments is not None and n_segments > checks.max_segments:
        gb, seconds = estimated_cost(n_segments, len(sizes), chains, draws, tune, cores)
        per = len(frame) / n_segments
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
            f"({n_segments:,} segments from {len(frame):,} customers), below "
            f"data.checks.min_median_cell_customers={checks.min_median_cell_customers}; an uplift "
            "cannot be learnt from so few. Use coarser data.columns.segments (or data.derive "
            "bins), or lower the key (null: off)."
        )
    if "revenue" in frame.columns and revenue_column:
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
