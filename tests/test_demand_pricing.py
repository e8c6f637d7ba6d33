"""``uplift demand``: pricing from weekly sales history (the Dominick's tuna preset).

Why: the win-win price is only as good as the elasticities behind it. The fast tier checks the
preset's wiring end to end (files, documented columns, today's price and cost read from the
data, cost-plus arithmetic, bad input named before sampling); the slow tier checks real NUTS
recovers known elasticities and the profit-maximising price on a synthetic log-log market.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from uplift.app.demand_run import DEMAND_PRICE_COLUMNS, category_prices
from uplift.data.datasets import shipped_path
from uplift.models.demand import LogLogDemandModel, weekly_sales
from uplift.models.settings import SamplerSettings

TUNA = "dominicks_tuna/tuna_weekly.csv.gz"


@pytest.fixture(scope="module")
def tuna() -> pd.DataFrame:
    return pd.read_csv(shipped_path(TUNA))


def test_shipped_tuna_matches_its_source_note(tuna: pd.DataFrame) -> None:
    """SOURCE.md: 338 weeks x 7 products, medians of units and prices as listed there."""
    assert tuna.shape == (2366, 7)
    assert tuna.groupby("product")["week"].nunique().eq(338).all()
    star = tuna[tuna["product"] == "Star Kist 6oz"]
    assert star["units"].median() == 10801
    assert np.exp(star["log_price"]).median() == pytest.approx(0.818, abs=5e-4)
    assert np.exp(star["log_wholesale_price"]).median() == pytest.approx(0.573, abs=5e-4)


def test_tuna_preset_runs_end_to_end(uplift_cli, fake_sampler, tmp_path: Path, tuna) -> None:
    out = tmp_path / "run"
    r = uplift_cli(
        "demand",
        "experiment=dominicks_tuna_pricing",
        "sampler.draws=200",
        "sampler.chains=2",
        f"hydra.run.dir={out}",
    )
    assert r.returncode == 0, r.stderr
    assert "uplift demand: 7 segments priced" in r.stdout
    t = pd.read_csv(out / "demand_prices.csv")
    assert list(t.columns) == DEMAND_PRICE_COLUMNS
    assert len(t) == 7 and set(t["segment"]) == set(tuna["product"])
    t = t.set_index("segment")
    # today's price and cost: medians of the product's last 52 weeks of data (hand-computed)
    last = (
        tuna.sort_values("week")
        .groupby("product")
        .tail(52)
        .assign(
            price=lambda d: np.exp(d["log_price"]), cost=lambda d: np.exp(d["log_wholesale_price"])
        )
    )
    today = last.groupby("product")["price"].median()
    cost = last.groupby("product")["cost"].median()
    np.testing.assert_allclose(t["current_price"], today.reindex(t.index), rtol=1e-5)
    np.testing.assert_allclose(t["unit_cost"], cost.reindex(t.index), rtol=1e-5)
    np.testing.assert_allclose(t["cost_plus_price"], 1.3 * t["unit_cost"], rtol=1e-5)
    # the win-win price and its interval lie in the observed price range; it never earns less
    # in expectation than cost-plus or today's price (both are candidates on the grid, or
    # cost-plus lies outside the range the optimizer searches)
    tol = 1e-6
    assert (t["win_win_price"] >= t["price_floor"] - tol).all()
    assert (t["win_win_price"] <= t["price_ceiling"] + tol).all()
    assert (t["win_win_price_hdi_low"] <= t["win_win_price_hdi_high"]).all()
    assert (t["win_win_profit_hdi_low"] <= t["win_win_expected_profit"]).all()
    assert (t["win_win_expected_profit"] <= t["win_win_profit_hdi_high"]).all()
    assert (t["win_win_expected_profit"] >= t["today_expected_profit"] - 1e-6).all()
    inside = t["cost_plus_in_range"].astype(bool)
    assert (
        t.loc[inside, "win_win_expected_profit"]
        >= t.loc[inside, "cost_plus_expected_profit"] - 1e-6
    ).all()
    np.testing.assert_allclose(
        t["win_win_margin"], 1 - t["unit_cost"] / t["win_win_price"], rtol=1e-4
    )  # the csv holds 6 significant digits
    assert (t["elasticity"] < 0).all()
    coef = pd.read_csv(out / "elasticities.csv")
    assert {"elasticity", "cross_price_elasticity", "traffic_elasticity"} <= set(
        coef["coefficient"]
    )
    assert "control_effect[display]" in set(coef["coefficient"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["converged"] and summary["model"]["cross_price"]
    totals = summary["total_profit"]
    assert set(totals) == {"win_win", "cost_plus", "today", "win_win_together", "category"}
    # the category search starts from the win-win prices and only takes improving moves
    assert totals["category"]["mean"] >= totals["win_win_together"]["mean"] - 1e-6
    assert (t["category_price"] >= t["price_floor"] - tol).all()
    assert (t["category_price"] <= t["price_ceiling"] + tol).all()
    assert (t["category_price_hdi_low"] <= t["category_price_hdi_high"]).all()
    assert t["category_expected_profit"].sum() == pytest.approx(totals["category"]["mean"])
    assert "| Star Kist 6oz |" in (out / "report.md").read_text()
    prices = pd.read_csv(out / "prices.csv")
    np.testing.assert_allclose(
        prices.set_index("segment")["price"].reindex(t.index), t["win_win_price"]
    )


def test_joint_prices_agree_with_the_curves_where_they_should(fake_sampler) -> None:
    """All segments at today's prices: the joint scenario is each curve read at today's price.
    One segment moved: only its own units follow its curve; the others move by their cross
    effect, exp(kappa[h] x log(p_new / p_today) / (G - 1)) (hand-computed)."""
    frame, _ = synthetic_market(weeks=104)
    sales = weekly_sales(frame.rename(columns={"week": "period"}), controls=["display"])
    model = LogLogDemandModel(
        sampler=SamplerSettings(draws=50, chains=2, seed=1), cross_price=True
    ).fit(sales)
    today = {"p1": 1.4, "p2": 2.1, "p3": 2.9, "p4": 1.2}
    segs = model.segments
    joint = model.expected_units(today)
    for i, s in enumerate(segs):
        curve = model.demand_curve([today[s]], others_at=today).sel(segment=s).values[:, 0]
        np.testing.assert_allclose(joint[:, i], curve, rtol=1e-10)
    moved = model.expected_units({**today, "p1": 1.2})
    kappa = np.asarray(
        model.idata["posterior"]["cross_price_elasticity"]
        .stack(sample=("chain", "draw"))
        .transpose("sample", ...)
        .values
    )
    factor = np.exp(kappa[:, 1:] * np.log(1.2 / 1.4) / 3)
    np.testing.assert_allclose(moved[:, 1:], joint[:, 1:] * factor, rtol=1e-10)
    own = model.demand_curve([1.2], others_at=today).sel(segment="p1").values[:, 0]
    np.testing.assert_allclose(moved[:, 0], own, rtol=1e-10)


def test_category_search_without_substitution_is_each_segments_own_optimum(fake_sampler):
    """No cross effects: the joint search must land on each segment's own grid optimum, the
    brute-force argmax of (price - cost) x units, from any start; draw by draw too."""
    frame, _ = synthetic_market(weeks=104)
    sales = weekly_sales(frame.rename(columns={"week": "period"}), controls=["display"])
    model = LogLogDemandModel(sampler=SamplerSettings(draws=40, chains=2, seed=2)).fit(sales)
    cost = np.array([TRUE_COST[s] for s in model.segments])
    grids = [np.linspace(c * 1.05, c * 3.0, 60) for c in cost]
    cat, per_draw = category_prices(model, grids, cost, cost * 2.9, step=1)
    for g, s in enumerate(model.segments):
        units = model.demand_curve(grids[g]).sel(segment=s).values  # (sample, price)
        profit = (grids[g] - cost[g]) * units
        assert cat[g] == grids[g][profit.mean(axis=0).argmax()]
        np.testing.assert_array_equal(per_draw[:, g], grids[g][profit.argmax(axis=1)])


def _weekly(rows: dict) -> pd.DataFrame:
    base = {"segment": ["a", "a", "b", "b"], "period": [1, 2, 1, 2]}
    base.update({"units": [10, 12, 5, 6], "price": [1.0, 0.9, 2.0, 1.8]})
    base.update(rows)
    return pd.DataFrame(base)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"units": [10, 0, 5, 6]}, "units <= 0"),
        ({"price": [1.0, 1.0, 2.0, 1.8]}, r"\['a'\] never change price"),
        ({"period": [1, 1, 1, 2]}, "duplicated"),
        ({"units": [10, None, 5, 6]}, "missing or non-numeric"),
    ],
)
def test_bad_weekly_sales_are_named(rows: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        weekly_sales(_weekly(rows))


def test_bad_preset_settings_stop_before_sampling(uplift_cli, no_sampling, tmp_path: Path):
    r = uplift_cli(
        "demand",
        "experiment=dominicks_tuna_pricing",
        "demand.units=sales",
        f"hydra.run.dir={tmp_path / 'a'}",
    )
    assert r.returncode == 2 and "demand.units='sales'" in r.stderr
    r = uplift_cli(
        "demand",
        "experiment=dominicks_tuna_pricing",
        "demand.unit_cost=null",
        f"hydra.run.dir={tmp_path / 'b'}",
    )
    assert r.returncode == 2 and "no unit cost for segment(s)" in r.stderr
    r = uplift_cli("demand", "demand.price_range=[0.9,0.1]", f"hydra.run.dir={tmp_path / 'c'}")
    assert r.returncode == 2 and "demand.price_range" in r.stderr


# ---- slow: real NUTS recovers a known log-log market ----------------------------------------
TRUE_ELASTICITY = {"p1": -2.2, "p2": -2.8, "p3": -3.4, "p4": -4.2}
TRUE_COST = {"p1": 1.0, "p2": 1.5, "p3": 2.0, "p4": 0.8}


def synthetic_market(seed: int = 7, weeks: int = 312) -> tuple[pd.DataFrame, dict]:
    """Weekly log-log demand with promotions that cut price and add display, traffic and a
    yearly level shift: the confounding the model's controls are there for."""
    rng = np.random.default_rng(seed)
    traffic = np.exp(rng.normal(np.log(1e5), 0.08, weeks))
    year = np.arange(weeks) // 52
    rows, truth = [], {}
    for j, (seg, e) in enumerate(TRUE_ELASTICITY.items()):
        regular = TRUE_COST[seg] * 1.45
        promo = rng.random(weeks) < 0.2
        price = regular * np.exp(rng.normal(0, 0.04, weeks) - promo * rng.uniform(0.1, 0.3, weeks))
        display = promo * rng.uniform(0.5, 1.0, weeks)
        shift = 0.1 * (year - year.mean()) * (1 if j % 2 else -1)
        log_units = (
            np.log(2000 + 500 * j)
            + e * np.log(price / regular)
            + 0.4 * display
            + 0.8 * np.log(traffic / 1e5)
            + shift
            + rng.normal(0, 0.2, weeks)
        )
        rows.append(
            pd.DataFrame(
                {
                    "segment": seg,
                    "week": np.arange(1, weeks + 1),
                    "units": np.round(np.exp(log_units)).astype(int),
                    "price": price,
                    "unit_cost": TRUE_COST[seg],
                    "display": display,
                    "traffic": traffic,
                }
            )
        )
        truth[seg] = {"elasticity": e, "price": TRUE_COST[seg] * e / (1 + e)}
    return pd.concat(rows, ignore_index=True), truth


@pytest.mark.slow
def test_nuts_recovers_known_elasticities_and_price(tmp_path: Path) -> None:
    frame, truth = synthetic_market()
    sales = weekly_sales(
        frame.rename(columns={"week": "period"}), controls=["display"], has_traffic=True
    )
    model = LogLogDemandModel(sampler=SamplerSettings(draws=1000, tune=1000, chains=2, seed=5))
    model.fit(sales)
    diag = model.diagnostics()
    assert diag.r_hat_max < 1.02 and diag.divergences == 0, diag
    e = model.elasticity_draws()
    for seg, t in truth.items():
        d = np.asarray(e.sel(segment=seg).values)
        lo, hi = np.quantile(d, [0.02, 0.98])
        assert lo <= t["elasticity"] <= hi, (seg, lo, hi, t)
        assert abs(d.mean() - t["elasticity"]) < 2.5 * d.std(), (seg, d.mean(), d.std(), t)
        assert d.std() < 0.3  # the check has power: true elasticities are 0.6 apart
    # the true profit-maximising price c e / (1 + e) lies within the spread of the per-draw
    # optimum, and the expected-profit optimum is close to it
    grid = np.linspace(0.8, 6.0, 1041)
    units = model.demand_curve(grid)
    for seg, t in truth.items():
        cost = TRUE_COST[seg]
        profit = (grid - cost) * np.asarray(units.sel(segment=seg).values)  # (sample, price)
        lo, hi = np.quantile(grid[profit.argmax(axis=1)], [0.02, 0.98])
        assert lo <= t["price"] <= hi, (seg, lo, hi, t)
        best = grid[profit.mean(axis=0).argmax()]
        assert best == pytest.approx(t["price"], rel=0.1), (seg, best, t)
