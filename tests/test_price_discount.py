"""The demo's 10% discount (issue #12): the price model the pipeline builds for the margin tactic
of ``experiment=synthetic_tactics`` fits cleanly at the default sampler settings and its lift
intervals cover the generator's truth.

Real NUTS on the demo's own data (120k customers, 12 segments = value tier x needs, the
discount at 0.9 x list vs list), three seeds: the demo's (7) and two more. Before the fix the
first fit of seed 7 diverged 113 times (r-hat 1.02) and its 90% intervals covered 10 of 12.
"""

from __future__ import annotations

import numpy as np
import pytest

import uplift
from uplift import pipeline
from uplift.data import ColumnMap, aggregate_cells, validate_customers
from uplift.data.cells import tactic_cells
from uplift.data.synthetic import default_arm_map, generate
from uplift.models.price import PriceResponseModel

SEEDS = (7, 1, 2)
DISCOUNT = "discount_10pct"


@pytest.fixture(scope="module")
def fits() -> list[tuple[PriceResponseModel, np.ndarray]]:
    """(fitted model, true lift per segment in the model's segment order) per seed."""
    # the default sampler settings but half the draws (4 x 1,000 after 1,000 tuning): < 60 s
    config = uplift.compose_config(
        ["experiment=synthetic_tactics", "sampler.cache=false", "sampler.draws=1000"]
    )
    syn = config.data.synthetic
    out = []
    for seed in SEEDS:
        exp = generate(
            default_arm_map(),
            n_customers=syn.n_customers,
            seed=seed,
            tier_shares=list(syn.tier_shares),
            outcomes="per_tactic",
        )
        data = validate_customers(
            exp.customers, ColumnMap(segments=("value_tier", "needs")), default_arm_map()
        )
        cells = tactic_cells(aggregate_cells(data), "margin")
        model = pipeline.build_model(config, "margin", data, cells)
        assert isinstance(model, PriceResponseModel)
        model.fit(cells, "margin")
        segs = [str(s) for s in model.uplift_draws()["segment"].values]
        truth = exp.truth.set_index(["arm", "segment"]).loc[DISCOUNT, "true_uplift"]
        out.append((model, truth.loc[segs].to_numpy()))
    return out


def test_pipeline_builds_the_structured_non_centred_model():
    """What the fix consists of, so a regression names itself before the statistics do."""
    config = uplift.compose_config(["experiment=synthetic_tactics"])
    exp = generate(default_arm_map(), n_customers=20_000, seed=7, outcomes="per_tactic")
    data = validate_customers(
        exp.customers, ColumnMap(segments=("value_tier", "needs")), default_arm_map()
    )
    cells = tactic_cells(aggregate_cells(data), "margin")
    model = pipeline.build_model(config, "margin", data, cells)
    assert isinstance(model, PriceResponseModel)
    assert model.segment_dims == ("value_tier", "needs")
    assert model.parameterization.effect == "non_centered"
    assert model.sampler.target_accept == config.sampler.target_accept_structured
    graph = model.build_model(cells, "margin")
    assert {"log_neg_elasticity_value_tier_z", "log_neg_elasticity_needs_z"} <= set(
        graph.named_vars
    )


def test_discount_fits_cleanly_and_covers_the_truth(fits):
    z, covered = [], []
    for model, truth in fits:
        d = model.diagnostics()
        assert d.divergences == 0, d
        assert d.r_hat_max < 1.01, d
        up = np.asarray(model.uplift_draws().sel(arm=DISCOUNT).values)  # (S, G)
        lo, hi = np.quantile(up, [0.05, 0.95], axis=0)
        covered.extend((lo <= truth) & (truth <= hi))
        z.extend((up.mean(0) - truth) / up.std(0))
    coverage = float(np.mean(covered))
    print(f"coverage {coverage:.3f}, mean z {np.mean(z):+.2f}")
    # 36 cells at 90%: 27 or more covered (a binomial(36, 0.9) falls below 27 with p < 0.01;
    # correlated segments widen that, hence no upper bound); measured 34 of 36
    assert coverage >= 0.75, (coverage, np.round(z, 2))
    # no systematic over- or under-statement of the discount's lift across seeds (measured +0.38)
    assert abs(float(np.mean(z))) < 1.0, np.round(z, 2)
