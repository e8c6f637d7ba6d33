"""The ``uplift_by_segment.csv`` table: posterior summaries per (tactic, arm, segment, metric)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from uplift.data.cells import tactic_cells
from uplift.models.base import FittedTactic
from uplift.stats import hdi
from uplift.tactics import ArmMap
from uplift.value.per_conversion import value_for_tactic

UPLIFT_COLUMNS = [
    "tactic",
    "segment",
    "metric",
    "n_treated",
    "n_control",
    "mean",
    "hdi_low",
    "hdi_high",
    "prob_positive",
    "arm",
    "sd",
    "hdi_prob",
]


def uplift_table(
    fits: Mapping[str, FittedTactic],
    cells: pd.DataFrame,
    value_per_conversion: pd.Series | Mapping[str, pd.Series],
    arm_map: ArmMap,
    hdi_prob: float,
) -> pd.DataFrame:
    """Rows for metric ``conversion`` (incremental conversion probability per treated customer)
    and ``profit_per_treated`` (value x uplift - offer cost, in currency)."""
    n = cells.set_index(["arm", "segment"])["n"]
    control = arm_map.control.name
    rows = []
    for tactic, fit in fits.items():
        da = fit.draws()
        values = value_for_tactic(value_per_conversion, tactic)
        for arm in da["arm"].values:
            cost = arm_map[str(arm)].cost
            for seg in da["segment"].values:
                d = da.sel(arm=arm, segment=seg).values
                metrics = {
                    fit.model.metric: d,
                    "profit_per_treated": float(values.loc[seg]) * d - cost,
                }
                for metric, x in metrics.items():
                    lo, hi = hdi(x, hdi_prob)
                    rows.append(
                        {
                            "tactic": tactic,
                            "segment": str(seg),
                            "metric": metric,
                            "n_treated": int(n.get((str(arm), str(seg)), 0)),
                            "n_control": int(n.get((control, str(seg)), 0)),
                            "mean": float(np.mean(x)),
                            "hdi_low": float(lo),
                            "hdi_high": float(hi),
                            "prob_positive": float(np.mean(x > 0)),
                            "arm": str(arm),
                            "sd": float(np.std(x, ddof=1)),
                            "hdi_prob": hdi_prob,
                        }
                    )
    return pd.DataFrame(rows, columns=UPLIFT_COLUMNS)


ARM_COLUMNS = [
    "tactic",
    "arm",
    "metric",
    "n_treated",
    "n_control",
    "mean",
    "hdi_low",
    "hdi_high",
    "prob_positive",
    "difference_in_means",
    "difference_se",
    "hdi_prob",
]


def arm_table(
    fits: Mapping[str, FittedTactic], cells: pd.DataFrame, arm_map: ArmMap, hdi_prob: float
) -> pd.DataFrame:
    """Population-level uplift per arm: segment posteriors weighted by segment size, next to the
    experiment's plain difference in means (and its standard error) as a sanity check."""
    control = arm_map.control.name
    sizes = cells.groupby("segment")["n"].sum()
    rows = []
    for tactic, fit in fits.items():
        # a tactic of data.columns.outcomes: the difference in means of its own outcome
        by_arm = tactic_cells(cells, tactic).groupby("arm").sum(numeric_only=True)
        da = fit.draws()
        w = sizes.reindex(da["segment"].values).to_numpy(dtype=float)
        w = w / w.sum()
        for arm in da["arm"].values:
            d = da.sel(arm=arm).values @ w
            lo, hi = hdi(d, hdi_prob)
            (mt, vt, nt), (mc, vc, nc) = (
                _mean_var(by_arm.loc[a], fit.model.metric) for a in (str(arm), control)
            )
            rows.append(
                {
                    "tactic": tactic,
                    "arm": str(arm),
                    "metric": fit.model.metric,
                    "n_treated": int(nt),
                    "n_control": int(nc),
                    "mean": float(d.mean()),
                    "hdi_low": float(lo),
                    "hdi_high": float(hi),
                    "prob_positive": float(np.mean(d > 0)),
                    "difference_in_means": float(mt - mc),
                    "difference_se": float(np.sqrt(vt / nt + vc / nc)),
                    "hdi_prob": hdi_prob,
                }
            )
    return pd.DataFrame(rows, columns=ARM_COLUMNS)


_SUMS = {
    "conversion": ("conversions", None),
    "revenue": ("revenue_sum", "revenue_sq_sum"),
    "orders": ("orders_sum", "orders_sq_sum"),
}


def _mean_var(row: pd.Series, metric: str) -> tuple[float, float, int]:
    """Per-customer mean and variance of ``metric`` in an arm, from the cell sums."""
    total, sq = _SUMS.get(metric, _SUMS["conversion"])
    n = int(row["n"])
    mean = float(row[total]) / n
    var = mean * (1 - mean) if sq is None else max(float(row[sq]) / n - mean**2, 0.0)
    return mean, var, n
