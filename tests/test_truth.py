"""Scoring a run against synthetic truth (uplift.report.truth): per-tactic coverage and bias on
the family's scale and in money, and the plan's true profit against the oracle's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uplift.optimize import AllocationProblem, BudgetAllocator, CellCap, ContactCap, TotalBudget
from uplift.report.truth import TacticDraws, score_against_truth, score_tactic


def _truth(n_cells: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "arm": ["a"] * n_cells,
            "segment": [f"s{i}" for i in range(n_cells)],
            "true_orders_uplift": rng.normal(0.05, 0.03, n_cells),
            "true_value_per_customer": rng.normal(2.0, 1.5, n_cells),
            "cost": 1.0,
        }
    )


def _draws(truth: pd.DataFrame, sd: float, shift: float, seed: int, S: int = 2000) -> TacticDraws:
    """Posteriors of a calibrated model: centre = truth + N(0, sd) noise, spread sd; ``shift``
    moves every centre (a biased model)."""
    rng = np.random.default_rng(seed)
    n = len(truth)
    out = {}
    for col, scale in (("true_orders_uplift", sd), ("true_value_per_customer", 40 * sd)):
        centre = truth[col].to_numpy() + rng.normal(0, scale, n) + shift * scale / sd
        out[col] = centre[None, :] + rng.normal(0, scale, (S, n))
    return TacticDraws(
        family="negative_binomial",
        metric="orders",
        arms=list(truth["arm"]),
        segments=list(truth["segment"]),
        effect=out["true_orders_uplift"],
        money=out["true_value_per_customer"],
    )


def test_calibrated_posteriors_cover_90_percent_and_are_unbiased():
    truth = _truth(400, 1)
    s = score_tactic(_draws(truth, 0.01, 0.0, 2), truth, margin=0.4)
    assert s["family"] == "negative_binomial" and s["cells"] == 400
    # 400 cells: the share is 0.9 within ~3 binomial se (0.015)
    assert s["coverage_90"] == pytest.approx(0.9, abs=0.045)
    assert s["coverage_90_money"] == pytest.approx(0.9, abs=0.045)
    assert abs(s["bias"]) < 3 * 0.01 / np.sqrt(400)
    assert abs(s["bias_money"]) < 3 * 0.4 / np.sqrt(400)


def test_a_biased_posterior_shows_its_bias_and_loses_coverage():
    truth = _truth(400, 3)
    s = score_tactic(_draws(truth, 0.01, 0.03, 4), truth, margin=0.4)
    assert s["bias"] == pytest.approx(0.03, abs=0.003)
    assert s["bias_money"] == pytest.approx(1.2, abs=0.12)
    assert s["coverage_90"] < 0.5


def test_a_metric_without_truth_is_skipped_not_scored():
    truth = _truth(5, 5)
    d = _draws(truth, 0.01, 0.0, 6)
    d = TacticDraws("binomial", "conversion", d.arms, d.segments, d.effect, d.money)
    assert "skipped" in score_tactic(d, truth, margin=0.4)


def test_oracle_ratio_is_one_for_the_oracle_plan_and_less_for_a_worse_one():
    truth = _truth(6, 7).assign(tactic="frequency")
    cells = truth[["segment", "tactic", "arm", "cost"]]
    eligible = pd.Series(100.0, index=truth["segment"])
    true_profit = truth["true_value_per_customer"].to_numpy() - 1.0
    allocator = BudgetAllocator([TotalBudget(250.0), ContactCap(), CellCap()])
    uplift = pd.DataFrame(
        {
            "arm": truth["arm"],
            "segment": truth["segment"],
            "metric": "orders",
            "mean": truth["true_orders_uplift"],
            "hdi_low": truth["true_orders_uplift"] - 0.01,
            "hdi_high": truth["true_orders_uplift"] + 0.01,
        }
    )
    oracle_plan = allocator.solve(AllocationProblem(cells, true_profit[None, :], eligible))
    tactics = {"frequency": _draws(truth, 0.01, 0.0, 8)}
    problem = AllocationProblem(cells, true_profit[None, :], eligible)
    s = score_against_truth(uplift, problem, oracle_plan, allocator, truth, 0.4, tactics)
    assert s["profit_ratio"] == pytest.approx(1.0)
    assert s["interval_coverage"] == 1.0 and s["cells"] == 6
    assert np.isnan(s["uplift_mae"])  # no conversion-metric cells
    assert set(s["by_tactic"]) == {"frequency"}
    wrong = allocator.solve(AllocationProblem(cells, -true_profit[None, :], eligible))
    problem = AllocationProblem(cells, true_profit[None, :], eligible)
    worse = score_against_truth(uplift, problem, wrong, allocator, truth, 0.4)
    assert worse["profit_ratio"] < 1.0
    assert "by_tactic" not in worse


def test_prices_are_scored_against_the_true_demand_curve(arm_map):
    """The generator's price arms know their demand at any price: the best price per segment
    scores 1, today's price for all scores its true profit over the best's (< 1 where the
    discount pays)."""
    from uplift.data.synthetic import generate
    from uplift.report.truth import score_prices

    truth = generate(arm_map, n_customers=1000, seed=7, outcomes="per_tactic").truth
    margin_rows = truth[truth["tactic"] == "margin"]
    segs = list(margin_rows["segment"])
    grid = np.linspace(0.9, 1.0, 5)
    customers = pd.Series(1000.0, index=segs)

    def table(price):
        return pd.DataFrame({"segment": segs, "price": price, "unit_cost": 0.6})

    today = score_prices(table(1.0), truth, grid, 1.0, customers)
    assert today["true_profit_of_prices"] == pytest.approx(today["true_profit_at_today"])
    # the truth's own money for the 0.9 arm says where the discount beats list price
    gains = margin_rows.set_index("segment")["true_value_per_customer"]
    assert (today["profit_ratio"] < 1) == bool((gains > 0).any())
    discount = score_prices(table(0.9), truth, grid, 1.0, customers)
    want = (
        1000 * gains.sum() + today["true_profit_at_today"]
    )  # profit at 0.9 = profit at list + the arm's true gain
    assert discount["true_profit_of_prices"] == pytest.approx(want)
    # choosing each segment's best grid price reaches the best
    logit0 = np.log(margin_rows["p_control"] / (1 - margin_rows["p_control"])).to_numpy()
    b = margin_rows["true_elasticity"].to_numpy()
    p = 1 / (1 + np.exp(-(logit0[:, None] + b[:, None] * np.log(grid)[None, :])))
    best = grid[((grid[None, :] - 0.6) * p).argmax(axis=1)]
    assert score_prices(table(best), truth, grid, 1.0, customers)["profit_ratio"] == pytest.approx(
        1.0
    )
