"""``binomial``: a binary outcome per customer (converted or not), Binomial per cell."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from uplift.models.families.base import Family, ModelInputs
from uplift.models.settings import ConversionPriors

if TYPE_CHECKING:
    import pandas as pd

    from uplift.data.contract import CustomerData
    from uplift.models.base import UpliftModel
    from uplift.models.sampling import SamplerSettings

NAME = "binomial"


def binary_events(rows: pd.DataFrame) -> pd.Series:
    """The rarer of conversions and non-conversions per cell (also used by price tests)."""
    return np.minimum(rows["conversions"], rows["n"] - rows["conversions"])


def logit(rows: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The empirical conversion logit per cell (its precision: :func:`binary_events`)."""
    from uplift.models.information import logit_link

    return logit_link(rows, "conversions")


def build(inputs: ModelInputs) -> UpliftModel:
    from uplift.models.conversion import ConversionUpliftModel

    mc = inputs.priors
    return ConversionUpliftModel(
        mc.priors, inputs.sampler, inputs.parameterization, **inputs.structure
    )


def default_model(
    data: CustomerData, prices: Mapping[str, float] | None, sampler: SamplerSettings | None
) -> UpliftModel:
    from uplift.models.conversion import ConversionUpliftModel

    return ConversionUpliftModel(sampler=sampler)


def replicate_conversions(ds, pp, rows, idx, rng, histograms) -> list:
    """Conversions ~ Binomial(n, p) per cell (also used by price tests)."""
    from uplift.models.predictive import binomial_statistic

    return [binomial_statistic(ds, pp, rows, idx, rng, "conversions", "conversions", "conversions")]


def implied(
    flat: Mapping[str, np.ndarray], arr: Callable[[str], np.ndarray]
) -> dict[str, np.ndarray]:
    return {"baseline_rate": flat["p_control"], "uplift_pp": 100 * flat["uplift"]}


FAMILY = Family(
    name=NAME,
    metric="conversion",
    requires=None,
    outcome="converted",
    model_class="uplift.models.conversion:ConversionUpliftModel",
    priors=(ConversionPriors,),
    events=binary_events,
    link=logit,
    build=build,
    default_model=default_model,
    statistics=("conversions",),
    cell_columns=("n", "conversions"),
    replicate=replicate_conversions,
    quantities=(
        ("baseline_rate", "probability", "control conversion rate of a segment"),
        ("uplift_pp", "percentage points", "treated minus control conversion rate"),
    ),
    implied=implied,
    calibration_tactic="cross_sell",
    simulator="simulate_conversion",
    design={"n_segments": 24, "n_arms": 2},
    naive_columns=("conversions", "conversions"),
    covariate_model=True,
)
