"""Customer strata from a run's fits (WIP, not wired): what :mod:`uplift.optimize.strata` needs.

Every customer of the experiment is placed in one of ``bins`` strata of its segment by their
best expected profit: ``max over arms of value x (segment uplift + own deviation) - cost``,
the own deviation being the covariate model's posterior-mean uplift of the customer minus its
segment's average (0 for arms no covariate model scores). Per stratum and scored arm, the
deviation's draws are the covariate model's average uplift over the stratum's customers minus
over the segment's, draw by draw (:meth:`CovariateUpliftModel.segment_uplift_draws` on both
groupings), tiled to the segment fits' number of draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from uplift.data.contract import CustomerData
from uplift.optimize.strata import assign_strata, segment_of, stratum_labels

STRATUM_COLUMN = "__stratum__"


@dataclass
class CustomerStrata:
    """Stratum label per customer (``data.frame`` order), customers per stratum, and per
    scored arm the deviation draws (draws x stratum labels) for :func:`refine_problem`."""

    labels: np.ndarray
    sizes: pd.Series
    deviation: dict[str, pd.DataFrame]


def customer_strata(
    data: CustomerData,
    uplift: Mapping[str, Any],
    values: Mapping[str, pd.Series],
    costs: Mapping[str, float],
    covariate_models: Mapping[str, Any],
    scores: pd.DataFrame,
    bins: int,
) -> CustomerStrata:
    """``uplift``: tactic -> the segment fit's draws (sample x arm x segment); ``values``:
    tactic -> value per unit per segment; ``costs``: arm -> cost per customer;
    ``covariate_models``: tactic -> fitted model that passed the gate; ``scores``: their
    customer scores (customer_scores.csv)."""
    frame = data.frame
    segment = frame["segment"].astype(str).to_numpy()
    n = len(frame)
    S = next(iter(uplift.values())).sizes["sample"]
    ids = frame["customer_id"].map(str).to_numpy()
    best = np.full(n, -np.inf)
    for tactic, da in uplift.items():
        mean = da.mean("sample")
        v = values[tactic].reindex(segment).to_numpy(dtype=float)
        for arm in da["arm"].values:
            a = str(arm)
            cell = mean.sel(arm=arm).to_series().reindex(segment).to_numpy(dtype=float)
            dev = np.zeros(n)
            mine = scores[scores["arm"].astype(str) == a]
            if len(mine):
                own = (
                    mine.assign(_id=mine["customer_id"].map(str))
                    .set_index("_id")["uplift_mean"]
                    .reindex(ids)
                    .to_numpy(dtype=float)
                )
                own = np.nan_to_num(own, nan=0.0)
                dev = own - pd.Series(own).groupby(segment).transform("mean").to_numpy()
            best = np.maximum(best, v * (cell + dev) - costs[a])
    labels = stratum_labels(segment, assign_strata(segment, best, bins))
    sizes = pd.Series(labels).value_counts().sort_index().astype(float)
    rows = frame.assign(**{STRATUM_COLUMN: labels})
    deviation: dict[str, pd.DataFrame] = {}
    for model in covariate_models.values():
        by_stratum = model.segment_uplift_draws(rows, STRATUM_COLUMN)
        by_segment = model.segment_uplift_draws(rows, "segment")
        strata = [str(s) for s in by_stratum["segment"].values]
        parent = [segment_of(s) for s in strata]
        take = np.resize(np.arange(by_stratum.sizes["sample"]), S)
        for arm in by_stratum["arm"].values:
            d = by_stratum.sel(arm=arm).values - by_segment.sel(arm=arm, segment=parent).values
            deviation[str(arm)] = pd.DataFrame(d[take], columns=strata)
    return CustomerStrata(labels, sizes, deviation)
