"""``hurdle_lognormal``: revenue per customer, a purchase (Binomial) then LogNormal spend."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from uplift.models.families.base import Family, ModelInputs
from uplift.models.settings import ConversionPriors, SpendPriors

if TYPE_CHECKING:
    import pandas as pd

    from uplift.data.contract import CustomerData
    from uplift.models.base import UpliftModel
    from uplift.models.sampling import SamplerSettings

NAME = "hurdle_lognormal"


def events(rows: pd.DataFrame) -> pd.Series:
    """Buyers per cell."""
    return rows["n_buyers"]


def buyer_logit(rows: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The empirical logit of the share of buyers per cell (the hurdle)."""
    from uplift.models.information import logit_link

    return logit_link(rows, "n_buyers")


def build(inputs: ModelInputs) -> UpliftModel:
    from uplift.models.revenue import HurdleRevenueModel

    mc = inputs.priors
    return HurdleRevenueModel(
        mc.priors, mc.spend_priors, inputs.sampler, inputs.parameterization, **inputs.structure
    )


def default_model(
    data: CustomerData, prices: Mapping[str, float] | None, sampler: SamplerSettings | None
) -> UpliftModel:
    from uplift.models.revenue import HurdleRevenueModel

    return HurdleRevenueModel(sampler=sampler)


def replicate(ds, pp, rows, idx, rng, histograms) -> list:
    from uplift.models.predictive import hurdle_statistics

    return hurdle_statistics(ds, pp, rows, idx, rng)


def implied(
    flat: Mapping[str, np.ndarray], arr: Callable[[str], np.ndarray]
) -> dict[str, np.ndarray]:
    m, s = arr("spend_log_mean"), arr("spend_sd")
    ratio = arr("spend_mean_treated") / arr("spend_mean_control")[:, None]
    return {
        "baseline_rate": flat["p_control"],
        "uplift_pp": 100 * flat["purchase_uplift"],
        "spend_mean": flat["spend_mean_control"],
        "spend_median": np.exp(m).ravel(),
        "spend_mean_to_median": np.exp(s**2 / 2).ravel(),
        "spend_sd_log": s.ravel(),
        "spend_change_pct": 100 * (ratio.ravel() - 1),
        "revenue_uplift": flat["uplift"],
    }


FAMILY = Family(
    name=NAME,
    metric="revenue",
    requires="revenue",
    outcome="revenue",
    model_class="uplift.models.revenue:HurdleRevenueModel",
    priors=(ConversionPriors, SpendPriors),
    events=events,
    link=buyer_logit,
    build=build,
    default_model=default_model,
    statistics=("buyers", "mean_log_spend", "sd_log_spend"),
    cell_columns=("n", "n_buyers", "log_revenue_sum", "log_revenue_sq_sum"),
    replicate=replicate,
    quantities=(
        ("baseline_rate", "probability", "control purchase probability of a segment"),
        ("uplift_pp", "percentage points", "treated minus control purchase probability"),
        ("spend_mean", "currency", "mean spend per buyer, exp(m + s^2/2)"),
        ("spend_median", "currency", "median spend per buyer, exp(m)"),
        ("spend_mean_to_median", "ratio", "mean / median spend per buyer, exp(s^2/2)"),
        ("spend_sd_log", "log currency", "spread s of log spend"),
        ("spend_change_pct", "percent", "treated vs control mean spend per buyer"),
        ("revenue_uplift", "currency", "incremental revenue per treated customer"),
    ),
    implied=implied,
    calibration_tactic="up_sell",
    simulator="simulate_revenue",
    design={"n_segments": 16, "n_arms": 2},
    naive_columns=("revenue_sum", "revenue_sq_sum"),
)
