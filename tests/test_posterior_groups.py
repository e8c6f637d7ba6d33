"""Posterior files carry what ArviZ's model criticism reads (issue #13, part 6).

Every family's saved posterior holds ``observed_data`` (the cells' sufficient statistics),
``constant_data`` (``n``), ``log_likelihood`` (pointwise per cell and likelihood term) and
``posterior_predictive`` (replicated statistics named like the observed ones): ``az.loo`` and
``az.plot_ppc_dist`` run on the file alone. The pointwise values are checked against PyMC's own
log density of the model's likelihood terms, so they cannot drift from the model.

What is tested is what the package writes around the draws, not the sampling, so the fits use
the fake sampler (tests/fast_tier.py; compiling four graphs for nutpie took most of this file's
time): the same fit and save code runs on designed draws of each model. That a real nutpie fit
carries and reloads these groups bit for bit is test_fit_cache.py's
test_real_nuts_fit_reads_back_identical.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest

import fast_tier
from uplift.data import ColumnMap, aggregate_cells, validate_customers
from uplift.data.synthetic import default_arm_map, generate
from uplift.data.synthetic_price import generate_price_test, price_arm_map, price_mapping
from uplift.models import SamplerSettings, load_model
from uplift.models.observations import GROUPS

TINY = SamplerSettings(draws=100, tune=150, chains=2, seed=4)


@pytest.fixture(scope="module")
def small():
    arm_map = default_arm_map()
    df = generate(arm_map, n_customers=2500, seed=3).customers
    data = validate_customers(df, ColumnMap(segments=("value_tier",)), arm_map)
    return data, aggregate_cells(data)


@pytest.fixture(scope="module")
def price_cells():
    prices = [9.0, 10.0, 11.0]
    customers, _ = generate_price_test(
        ["a", "b"], prices, 10.0, 3000, np.array([-1.5, -2.0]), np.array([-3.0, -4.0]), seed=2
    )
    data = validate_customers(customers, ColumnMap(), price_arm_map(prices, 10.0))
    return aggregate_cells(data), price_mapping(prices)


def _model(family: str, small, price_cells):
    """A small fitted model of ``family``, its cells and tactic."""
    from uplift.models.conversion import ConversionUpliftModel
    from uplift.models.counts import NegBinomialCountModel, count_histograms
    from uplift.models.price import PriceResponseModel
    from uplift.models.revenue import HurdleRevenueModel

    data, cells = small
    if family == "price_logit":
        cells, prices = price_cells
        return PriceResponseModel(prices=prices, sampler=TINY), cells, "margin"
    if family == "negative_binomial":
        hist = count_histograms(data, "orders")
        return NegBinomialCountModel(hist, sampler=TINY), cells, "frequency"
    cls = HurdleRevenueModel if family == "hurdle_lognormal" else ConversionUpliftModel
    return cls(sampler=TINY), cells, "up_sell"


FAMILIES = ["binomial", "hurdle_lognormal", "negative_binomial", "price_logit"]
#: the cells' columns each family's observed_data holds, by variable name
OBSERVED = {
    "binomial": {"conversions": "conversions"},
    "price_logit": {"conversions": "conversions"},
    "hurdle_lognormal": {
        "n_buyers": "n_buyers",
        "log_revenue_sum": "log_revenue_sum",
        "log_revenue_sq_sum": "log_revenue_sq_sum",
    },
    "negative_binomial": {"orders_sum": "orders_sum"},
}
LOG_LIKELIHOOD = {
    "binomial": ["conversions"],
    "price_logit": ["conversions"],
    "hurdle_lognormal": ["n_buyers", "revenue"],
    "negative_binomial": ["orders_histogram"],
}


@pytest.fixture(scope="module", params=FAMILIES)
def saved(request, small, price_cells, tmp_path_factory):
    model, cells, tactic = _model(request.param, small, price_cells)
    with pytest.MonkeyPatch.context() as mp:
        fast_tier.install(mp)
        model.fit(cells, tactic)
    path = model.save(tmp_path_factory.mktemp(request.param) / f"posterior_{tactic}.nc")
    return request.param, model, cells, tactic, path


def test_saved_posterior_supports_loo_and_holds_the_cells(saved):
    family, model, cells, tactic, path = saved
    loaded = load_model(path)
    idata = loaded.idata
    for group in GROUPS:
        assert group in idata.children, group
    assert sorted(idata["log_likelihood"].data_vars) == sorted(LOG_LIKELIHOOD[family])
    for var in LOG_LIKELIHOOD[family]:
        ll = idata["log_likelihood"][var]
        assert ll.dims == ("chain", "draw", "cell")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cells are influential: Pareto k warnings expected
            result = az.loo(idata, var_name=var)
        assert np.isfinite(result.elpd) and np.isfinite(result.se)
        assert result.n_data_points == len(idata["observed_data"]["cell"])
    # observed_data and constant_data are the tactic's cells, control cells first
    obs = idata["observed_data"].to_dataset()
    mine = cells[cells["tactic"].isin(["control", tactic])]
    table = pd.DataFrame(
        {"segment": obs["segment"].values, "arm": obs["arm"].values}
        | {col: obs[var].values for var, col in OBSERVED[family].items()}
        | {"n": idata["constant_data"]["n"].values}
    )
    expect = mine[["segment", "arm", *OBSERVED[family].values(), "n"]].astype(table.dtypes)
    pd.testing.assert_frame_equal(
        table.sort_values(["segment", "arm"]).reset_index(drop=True),
        expect.sort_values(["segment", "arm"]).reset_index(drop=True),
        check_dtype=False,
    )
    # replicates are named like observed statistics, with one value per draw and cell
    pp = idata["posterior_predictive"]
    assert set(pp.data_vars) <= set(obs.data_vars) and len(pp.data_vars) >= 1
    for var in pp.data_vars:
        assert pp[var].dims == ("chain", "draw", "cell")
        assert pp[var].shape == (TINY.chains, TINY.draws, obs.sizes["cell"])


def test_pointwise_log_likelihood_sums_to_pymc_likelihood(saved):
    """At a few posterior draws, the cells' log-likelihood (all terms) equals PyMC's log density
    of the model's observed variables and likelihood potentials."""
    from pymc.model.transform.conditioning import remove_value_transforms

    family, model, cells, tactic, _ = saved
    graph = remove_value_transforms(model.build_model(cells, tactic))
    likelihood = graph.compile_fn(
        graph.logp(vars=[*graph.observed_RVs, *graph.potentials]),
        inputs=graph.value_vars,
        on_unused_input="ignore",
        mode="FAST_COMPILE",
    )
    post = model.idata["posterior"]
    ll = model.idata["log_likelihood"].to_dataset()
    total = sum(ll[v] for v in ll.data_vars).sum("cell")
    for chain, draw in ((0, 0), (1, 37), (0, TINY.draws - 1)):
        point = {v.name: post[v.name].values[chain, draw] for v in graph.value_vars}
        np.testing.assert_allclose(
            float(total.values[chain, draw]), float(likelihood(point)), rtol=1e-9
        )


def test_posterior_predictive_plots_from_the_file(saved):
    family, _, _, _, path = saved
    if family != "binomial":
        pytest.skip("one plot is enough: the groups have the same shape for every family")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    az.plot_ppc_dist(az.from_netcdf(path), backend="matplotlib")
    plt.close("all")


def test_files_without_the_groups_still_load(saved, tmp_path):
    """Posteriors written before these groups existed keep loading (and drawing uplift)."""
    _, model, _, _, _ = saved
    old = model.idata.copy()
    for group in GROUPS:
        del old[group]
    path = tmp_path / "old.nc"
    old.to_netcdf(path)
    loaded = load_model(path)
    assert "log_likelihood" not in loaded.idata.children
    np.testing.assert_array_equal(loaded.uplift_draws().values, model.uplift_draws().values)
