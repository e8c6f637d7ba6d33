"""Price-response model: recovers elasticities, exact cell likelihood, sane demand curves, and
prices chosen from its demand curves land next to the true optimum and beat cost-plus."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special

from uplift.data import ColumnMap, aggregate_cells, validate_customers
from uplift.data.synthetic_price import (
    generate_price_test,
    price_arm_map,
    price_label,
    price_mapping,
    true_purchase_probability,
)
from uplift.models import SamplerSettings
from uplift.models.price import PriceResponseModel
from uplift.optimize import PriceOptimizer, PricingProblem

SEGMENTS = ["s1", "s2", "s3", "s4", "s5", "s6"]
PRICES = [8.0, 9.0, 10.0, 11.0, 12.0]
CURRENT = 10.0
TRUE_A = np.array([-1.5, -2.0, -1.2, -2.2, -1.8, -1.6])
TRUE_B = np.array([-3.0, -3.5, -4.0, -4.5, -5.0, -3.2])
# costs put the true optima at 9, 11, 10, 9.5, 10.5, 11.5: inside the tested range (identified)
UNIT_COST = {"s1": 5.08, "s2": 7.55, "s3": 6.75, "s4": 7.09, "s5": 8.13, "s6": 7.44}
GRID = np.round(np.arange(6.0, 14.0 + 1e-9, 0.5), 2)
N_CUSTOMERS = 150_000  # 5,000 per (segment, price) cell: elasticity sd ~0.12


def _cells(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, object]:
    customers, truth = generate_price_test(SEGMENTS, PRICES, CURRENT, n, TRUE_A, TRUE_B, seed=seed)
    data = validate_customers(customers, ColumnMap(), price_arm_map(PRICES, CURRENT))
    return aggregate_cells(data), truth, data


@pytest.fixture(scope="module")
def fitted() -> tuple[PriceResponseModel, pd.DataFrame]:
    cells, truth, _ = _cells(N_CUSTOMERS, seed=0)
    model = PriceResponseModel(
        prices=price_mapping(PRICES),
        sampler=SamplerSettings(draws=500, tune=500, chains=2, seed=3),
    )
    return model.fit(cells, "margin"), cells


def test_generator_truth_and_contract():
    customers, truth = generate_price_test(SEGMENTS, PRICES, CURRENT, 5000, TRUE_A, TRUE_B, 1)
    assert list(customers.columns[:5]) == ["customer_id", "segment", "arm", "converted", "revenue"]
    paid = customers["revenue"].to_numpy()
    price = customers["arm"].map({price_label(q): q for q in PRICES}).to_numpy(dtype=float)
    np.testing.assert_array_equal(paid, np.where(customers["converted"] == 1, price, 0.0))
    p = truth[[price_label(q) for q in PRICES]].to_numpy()
    assert (np.diff(p, axis=1) < 0).all()  # true demand falls with price
    np.testing.assert_allclose(truth["p10_00"], 1 / (1 + np.exp(-TRUE_A)))
    again, _ = generate_price_test(SEGMENTS, PRICES, CURRENT, 5000, TRUE_A, TRUE_B, 1)
    pd.testing.assert_frame_equal(customers, again)


def test_recovers_elasticities(fitted):
    model, _ = fitted
    d = model.diagnostics()
    assert d.r_hat_max < 1.05 and d.divergences == 0
    b = model.elasticity_draws()
    assert list(b["segment"].values) == SEGMENTS
    assert (b.values < 0).all()  # the sign holds in every draw
    lo, hi = np.quantile(b.values, [0.03, 0.97], axis=0)
    inside = (lo <= TRUE_B) & (hi >= TRUE_B)
    assert inside.sum() >= len(SEGMENTS) - 1, (lo, hi, TRUE_B)


def test_uplift_draws_are_demand_differences(fitted):
    model, _ = fitted
    up = model.uplift_draws()
    assert up.dims == ("sample", "arm", "segment")
    arms = [str(a) for a in up["arm"].values]
    assert model.control_arm == "p10_00" and model.control_arm not in arms
    grid = sorted({model.prices[a] for a in arms} | {CURRENT})
    dc = model.demand_curve(grid)
    for a in arms:
        want = dc.sel(price=model.prices[a]) - dc.sel(price=CURRENT)
        np.testing.assert_allclose(up.sel(arm=a).values, want.values, atol=1e-9)
    # raising the price lowers purchase probability in every draw
    assert (up.sel(arm="p12_00").values < 0).all() and (up.sel(arm="p8_00").values > 0).all()


def test_demand_curve_shape_and_monotone(fitted):
    model, _ = fitted
    dc = model.demand_curve(GRID)
    assert dc.dims == ("sample", "segment", "price") and dc.shape == (1000, 6, len(GRID))
    assert ((dc.values > 0) & (dc.values < 1)).all()
    assert (np.diff(dc.values, axis=-1) < 0).all()  # strictly decreasing for every draw
    with pytest.raises(ValueError, match="positive"):
        model.demand_curve([0.0, 5.0])


def test_save_load_roundtrip(fitted, tmp_path):
    model, _ = fitted
    path = model.save(tmp_path / "price.nc")
    back = PriceResponseModel.load(path)
    assert back.prices == model.prices and back.reference == CURRENT
    assert back.control_arm == model.control_arm and back.tactic == "margin"
    np.testing.assert_allclose(back.demand_curve(GRID).values, model.demand_curve(GRID).values)
    np.testing.assert_allclose(back.uplift_draws().values, model.uplift_draws().values)


def test_arm_without_price_is_rejected():
    cells, _, _ = _cells(3000, seed=2)
    prices = price_mapping(PRICES)
    prices.pop("p10_00")
    with pytest.raises(ValueError, match="no price"):
        PriceResponseModel(prices=prices).build_model(cells, "margin")


def test_cell_likelihood_equals_row_likelihood():
    """Binomial cells = row-level Bernoulli log-likelihood, apart from sum log C(n, k); rows get
    their probability from (a, b) and their own arm's price, independently of the graph."""
    cells, _, data = _cells(3000, seed=4)
    model = PriceResponseModel(prices=price_mapping(PRICES)).build_model(cells, "margin")
    loglik = model.compile_fn(
        model.logp(vars=model.observed_RVs),
        inputs=model.value_vars,
        on_unused_input="ignore",
        mode="FAST_COMPILE",
    )
    params = model.compile_fn(
        model.replace_rvs_by_values([model["baseline_logit"], model["elasticity"]]),
        inputs=model.value_vars,
        on_unused_input="ignore",
        mode="FAST_COMPILE",
    )
    rows = data.frame
    seg = rows["segment"].map({s: i for i, s in enumerate(model.coords["segment"])}).to_numpy()
    price = rows["arm"].map(price_mapping(PRICES)).to_numpy()
    y = rows["converted"].to_numpy()
    n, k = cells["n"].to_numpy(), cells["conversions"].to_numpy()
    log_binom = float(
        np.sum(special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1))
    )
    rng = np.random.default_rng(0)
    ip = model.initial_point()
    diffs = []
    for _ in range(5):
        point = {name: v + rng.normal(0.0, 0.5, np.shape(v)) for name, v in ip.items()}
        a, b = params(point)
        p = true_purchase_probability(a[seg], b[seg], price, CURRENT)
        row_ll = np.sum(np.where(y == 1, np.log(p), np.log1p(-p)))
        diffs.append(float(loglik(point)) - row_ll)
    np.testing.assert_allclose(diffs, log_binom, rtol=1e-9)


def test_optimal_prices_match_truth_and_beat_cost_plus(fitted):
    """Demand curves -> PricingProblem -> PriceOptimizer: chosen price per segment within one
    grid step of the true optimum, and more true expected profit than cost-plus."""
    model, cells = fitted
    customers = {s: 10_000.0 for s in SEGMENTS}
    problem = PricingProblem.from_xarray(
        model.demand_curve(GRID),
        unit_cost=UNIT_COST,
        customers=customers,
        current_price={s: CURRENT for s in SEGMENTS},
    )
    result = PriceOptimizer().solve(problem)
    table = result.table.set_index("segment").reindex(SEGMENTS)

    cost = np.array([UNIT_COST[s] for s in SEGMENTS])
    true_p = true_purchase_probability(TRUE_A[:, None], TRUE_B[:, None], GRID[None, :], CURRENT)
    true_profit = 10_000.0 * true_p * (GRID[None, :] - cost[:, None])  # (G, K)
    best = GRID[true_profit.argmax(axis=1)]
    chosen = table["price"].to_numpy()
    step = GRID[1] - GRID[0]
    assert (np.abs(chosen - best) <= step + 1e-9).all(), (chosen, best)

    def true_total(prices: np.ndarray) -> float:
        k = np.searchsorted(GRID, prices)
        return float(true_profit[np.arange(len(SEGMENTS)), k].sum())

    regret = true_total(best) - true_total(chosen)
    gain = true_total(chosen) - true_total(table["cost_plus_price"].to_numpy())
    assert gain > 0 and regret < 0.01 * true_total(best), (gain, regret)
