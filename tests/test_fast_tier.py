"""The fake sampler of the fast tier (tests/fast_tier.py) stands in for NUTS in wiring tests:
for every family and the covariate model it must give draws of the configured shape, near the
data, that pass the convergence gate, the same ones for the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from fast_tier import weyl_normal
from uplift.data import ColumnMap, aggregate_cells, validate_customers
from uplift.data.synthetic_price import generate_price_test, price_arm_map, price_mapping
from uplift.models import ConversionUpliftModel, SamplerSettings
from uplift.models.counts import NegBinomialCountModel, count_histograms
from uplift.models.covariate import CovariateUpliftModel, simulate_covariate_experiment
from uplift.models.price import PriceResponseModel
from uplift.models.revenue import HurdleRevenueModel

S = SamplerSettings(draws=300, tune=300, chains=2, seed=3)
#: the default gate (conf/optimize/budget.yaml): r-hat <= 1.01, bulk and tail ESS >= 400
GATE = {"r_hat_max": 1.01, "ess_bulk_min": 400, "divergences_max": 0}


def test_weyl_draws_are_balanced_per_half_chain():
    s = weyl_normal(2, 300)
    halves = s.reshape(4, 150)
    assert np.abs(halves.mean(axis=1)).max() < 0.05
    assert np.allclose(halves.std(axis=1), 1.0, atol=0.1)


def _families(customers, cells):
    hist = count_histograms(customers, "orders")
    return {
        "binomial": (ConversionUpliftModel(sampler=S), "up_sell"),
        "hurdle_lognormal": (HurdleRevenueModel(sampler=S), "margin"),
        "negative_binomial": (NegBinomialCountModel(histograms=hist, sampler=S), "frequency"),
    }


@pytest.mark.parametrize("family", ["binomial", "hurdle_lognormal", "negative_binomial"])
def test_fake_fits_pass_the_gate_near_the_data(family, customers, cells, fake_sampler):
    model, tactic = _families(customers, cells)[family]
    model.fit(cells, tactic)
    d = model.diagnostics()
    assert not d.failures(**GATE), d
    assert (d.chains, d.draws) == (2, 300)
    up = model.uplift_draws()
    assert up.sizes["sample"] == 600 and up.sizes["segment"] == 12
    # near the data: the pooled arm effect is within a few standard errors of the raw one
    t = cells[cells["tactic"] == tactic]
    c = cells[cells["tactic"] == "control"]
    col = {"binomial": "conversions", "hurdle_lognormal": "revenue_sum"}.get(family, "orders_sum")
    raw = t[col].sum() / t["n"].sum() - c[col].sum() / c["n"].sum()
    weights = t.set_index("segment")["n"].reindex(up["segment"].values).to_numpy()
    pooled = float((up.mean("sample").values[0] * weights).sum() / weights.sum())
    assert abs(pooled - raw) < 0.5 * abs(raw) + 1e-3, (pooled, raw)
    if family == "binomial":  # same seed, same draws (also from the cached compiled graph)
        again, _ = _families(customers, cells)[family]
        np.testing.assert_array_equal(again.fit(cells, tactic).uplift_draws().values, up.values)


def test_fake_fits_price_and_covariate_models(fake_sampler):
    prices = [8.0, 10.0, 12.0]
    customers, _ = generate_price_test(
        ["s1", "s2"], prices, 10.0, 6000, np.array([-1.5, -2.0]), np.array([-3.0, -4.0]), seed=0
    )
    data = validate_customers(customers, ColumnMap(), price_arm_map(prices, 10.0))
    price = PriceResponseModel(prices=price_mapping(prices), sampler=S)
    assert not price.fit(aggregate_cells(data), "margin").diagnostics().failures(**GATE)

    exp = simulate_covariate_experiment(3000, seed=21, coarse=True)
    cov = CovariateUpliftModel(["age", "tenure", "region"], sampler=S, method="exact")
    cov.fit(exp.rows, control_arms=["control"])
    assert cov.fit_info["method"] == "exact"
    assert not cov.diagnostics().failures(**GATE)
