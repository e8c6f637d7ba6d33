"""``price_logit``: a price test, purchase ~ logit(a + b log(price / reference)) per segment."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from uplift.models.families.base import Family, ModelInputs
from uplift.models.families.binomial import binary_events, replicate_conversions

if TYPE_CHECKING:
    from uplift.data.contract import CustomerData
    from uplift.models.base import UpliftModel
    from uplift.models.sampling import SamplerSettings

NAME = "price_logit"


def build(inputs: ModelInputs) -> UpliftModel:
    """The arms' prices from ``pricing.prices``; the model's own priors and parameterization."""
    from uplift.models.price import PriceResponseModel

    return PriceResponseModel(dict(inputs.prices), sampler=inputs.run_sampler)


def default_model(
    data: CustomerData, prices: Mapping[str, float] | None, sampler: SamplerSettings | None
) -> UpliftModel:
    from uplift.models.price import PriceResponseModel

    return PriceResponseModel(prices=prices, sampler=sampler)


def implied(
    flat: Mapping[str, np.ndarray], arr: Callable[[str], np.ndarray]
) -> dict[str, np.ndarray]:
    return {
        "baseline_rate": 1.0 / (1.0 + np.exp(-flat["baseline_logit"])),
        "elasticity": flat["elasticity"],
        "uplift_pp": 100 * flat["uplift"],
    }


FAMILY = Family(
    name=NAME,
    metric="conversion",
    requires=None,
    outcome=None,  # arms are prices, not treatments to target: not scored on held-out rows
    model_class="uplift.models.price:PriceResponseModel",
    priors=(),  # PricePriors are the model's own defaults, not configured
    events=binary_events,
    build=build,
    default_model=default_model,
    statistics=("conversions",),
    cell_columns=("n", "conversions"),
    replicate=replicate_conversions,
    quantities=(
        ("baseline_rate", "probability", "purchase probability at today's price"),
        ("elasticity", "log-odds per log price", "price elasticity b of purchase odds"),
        ("uplift_pp", "percentage points", "purchase rate at a test price minus today's"),
    ),
    implied=implied,
    unjudged=("uplift_pp",),
    calibration_tactic="margin",
    simulator="simulate_price",
    design={"n_segments": 24},
    naive_columns=("conversions", "conversions"),
    prices=True,
)
