"""``negative_binomial``: a count per customer (orders, referrals), NegBinomial(mu, alpha)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from uplift.models.families.base import Family, ModelInputs
from uplift.models.settings import CountPriors

if TYPE_CHECKING:
    import pandas as pd

    from uplift.data.contract import CustomerData
    from uplift.models.base import UpliftModel
    from uplift.models.sampling import SamplerSettings

NAME = "negative_binomial"


def events(rows: pd.DataFrame) -> pd.Series:
    """Orders per cell."""
    return rows["orders_sum"]


def log_rate(rows: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The log of mean orders per customer per cell."""
    from uplift.models.information import log_rate_link

    return log_rate_link(rows, "orders_sum")


def build(inputs: ModelInputs) -> UpliftModel:
    from uplift.models.counts import NegBinomialCountModel, count_histograms

    mc = inputs.priors
    hist = count_histograms(inputs.data, inputs.outcome or "orders")
    return NegBinomialCountModel(
        hist, mc.count_priors, inputs.sampler, inputs.parameterization, **inputs.structure
    )


def default_model(
    data: CustomerData, prices: Mapping[str, float] | None, sampler: SamplerSettings | None
) -> UpliftModel:
    from uplift.models.counts import NegBinomialCountModel, count_histograms

    return NegBinomialCountModel(count_histograms(data, "orders"), sampler=sampler)


def replicate(ds, pp, rows, idx, rng, histograms) -> list:
    from uplift.models.predictive import count_statistics

    return count_statistics(ds, rows, idx, rng, histograms)


def implied(
    flat: Mapping[str, np.ndarray], arr: Callable[[str], np.ndarray]
) -> dict[str, np.ndarray]:
    mu0, alpha = arr("mu_control"), arr("alpha")
    ratio = arr("mu_treated") / mu0[:, None]
    return {
        "count_mean": mu0.ravel(),
        "count_uplift": flat["uplift"],
        "rate_ratio": ratio.ravel(),
        "alpha": alpha.ravel(),
        "zero_share": ((alpha / (alpha + mu0)) ** alpha).ravel(),
    }


FAMILY = Family(
    name=NAME,
    metric="orders",
    requires="orders",
    outcome="orders",
    model_class="uplift.models.counts:NegBinomialCountModel",
    priors=(CountPriors,),
    events=events,
    link=log_rate,
    build=build,
    default_model=default_model,
    statistics=("mean_count", "zero_share", "variance"),
    cell_columns=("n",),
    replicate=replicate,
    quantities=(
        ("count_mean", "per customer", "control mean count of a segment"),
        ("count_uplift", "per customer", "treated minus control mean count"),
        ("rate_ratio", "ratio", "treated / control mean count"),
        ("alpha", "shape", "NB dispersion (small = overdispersed)"),
        ("zero_share", "share", "control share of customers with a zero count"),
    ),
    implied=implied,
    calibration_tactic="frequency",
    simulator="simulate_counts",
    design={"n_segments": 20, "n_arms": 2},
    naive_columns=("orders_sum", "orders_sq_sum"),
    histograms=True,
)
