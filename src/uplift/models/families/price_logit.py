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
    """The arms' prices from ``pricing.prices``; the model's own priors; the resolved
    parameterization and segment structure like the other families; and, crossed or not, the
    sampler at ``sampler.target_accept_structured``: with a few prices per segment each
    elasticity is weakly identified, and the pooling scale of the log elasticities makes a funnel
    that 0.9 diverges in (measured on the demo's 10% discount: 2-19 divergences in 7 of 10
    seeds exchangeable at 0.9, some at 0.95, none at 0.99; see bench/price_discount.py)."""
    from dataclasses import replace

    from uplift.models.price import PriceResponseModel

    run = inputs.run_sampler
    sampler = replace(run, target_accept=max(run.target_accept, run.target_accept_structured))
    return PriceResponseModel(
        dict(inputs.prices),
        sampler=sampler,
        parameterization=inputs.parameterization,
        segment_dims=inputs.structure.get("segment_dims", ()),
        interactions=bool(inputs.structure.get("interactions", True)),
    )


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
