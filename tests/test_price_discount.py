"""The demo's 10% discount (issue #12): the price model the pipeline builds for the margin tactic
of ``experiment=synthetic_tactics`` fits cleanly at the default sampler settings and its lift
intervals cover the generator's truth.

Real NUTS on the demo's own data (120k customers, 12 segments = value tier x needs, the
discount at 0.9 x list vs list): the demo's seed (7) in the default tier, with two more seeds in
the slow tier. Before the fix the first fit of seed 7 diverged 113 times (r-hat 1.02) and its 90%
intervals covered 10 of 12.
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
def fit_of():
    """``fit_of(seed)``: (fitted model, true lift per segment in the model's segment order), each
    seed fit once per module (the default-tier test and the slow one share seed 7's fit)."""
    # the default sampler settings but half the draws (4 x 1,000 after 1,000 tuning): < 60 s
    config = uplift.compose_config(
        ["experiment=synthetic_tactics", "sampler.cache=false", "sampler.draws=1000"]
    )
    syn = config.data.synthetic
    done: dict[int, tuple[PriceResponseModel, np.ndarray]] = {}

    def fit(seed: int) -> tuple[PriceResponseModel, np.ndarray]:
        if seed not in done:
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
            done[seed] = (model, truth.loc[segs].to_numpy())
        return done[seed]

    return fit


def _clean_coverage_and_z(fits) -> tuple[float, list[float]]:
    """Every fit clean (no divergence, r-hat < 1.01); the share of cells whose 90% interval
    covers the true lift, and each cell's z score of the posterior mean against the truth."""
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
    return coverage, z


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


def test_the_demos_discount_fits_cleanly_and_covers_the_truth(fit_of):
    """The demo's own seed (7), the one that diverged 113 times before the fix: a clean fit and
    intervals that cover the truth. Across seeds: the slow test below."""
    coverage, z = _clean_coverage_and_z([fit_of(7)])
    # 12 cells at 90%: 9 or more covered (a binomial(12, 0.9) falls below 9 with p ~0.07;
    # correlated segments widen that); measured 12 of 12
    assert coverage >= 0.75, (coverage, np.round(z, 2))
    # no systematic over- or under-statement of the discount's lift (measured +0.70)
    assert abs(float(np.mean(z))) < 1.0, np.round(z, 2)


@pytest.mark.slow  # three real-NUTS fits on 120k customers (~50 s busy); seed 7 alone above
def test_discount_fits_cleanly_and_covers_the_truth(fit_of):
    coverage, z = _clean_coverage_and_z([fit_of(seed) for seed in SEEDS])
    # 36 cells at 90%: 27 or more covered (a binomial(36, 0.9) falls below 27 with p < 0.01;
    # correlated segments widen that, hence no upper bound); measured 34 of 36
    assert coverage >= 0.75, (coverage, np.round(z, 2))
    # no systematic over- or under-statement of the discount's lift across seeds (measured +0.38)
    assert abs(float(np.mean(z))) < 1.0, np.round(z, 2)
