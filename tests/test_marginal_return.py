"""One currency across tactics. Per-tactic marginal return: the MILP re-solve equals brute force; the step is
earmarked for the tactic; the LP dual is not the answer for lumpy integer steps."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from uplift.optimize import AllocationProblem, BudgetAllocator, CellCap, ContactCap, TotalBudget
from uplift.optimize.marginal import (
    MARGINAL_RETURN_COLUMNS,
    SpendElsewhere,
    marginal_return_by_tactic,
)


def lumpy_problem(seed: int) -> AllocationProblem:
    """2 segments x 2 tactics, offers costing 2 and 3 (a budget step is not used whole)."""
    rng = np.random.default_rng(seed)
    cells = pd.DataFrame(
        {
            "segment": ["a", "a", "b", "b"],
            "tactic": ["cross_sell", "up_sell", "cross_sell", "up_sell"],
            "arm": ["x", "u", "x", "u"],
            "cost": [2.0, 3.0, 2.0, 3.0],
        }
    )
    draws = rng.normal(loc=rng.uniform(-0.5, 4.0, 4), scale=2.0, size=(300, 4))
    return AllocationProblem(cells, draws, pd.Series([3.0, 3.0], index=["a", "b"]))


def brute_best(problem: AllocationProblem, budget: float, mask=None, cap=np.inf) -> float:
    """Best expected profit over every integer plan: spend <= budget, one offer per customer,
    and spend on the cells outside ``mask`` <= ``cap``."""
    mean = problem.profit_draws.mean(axis=0)
    elig = problem.cell_eligible.astype(int)
    outside = np.ones(problem.n_cells, bool) if mask is None else ~mask
    best = -np.inf
    for x in itertools.product(*[range(e + 1) for e in elig]):
        x = np.array(x, dtype=float)
        if problem.cost @ x > budget + 1e-9:
            continue
        if np.any(problem.segment_matrix @ x > problem.eligible_vector + 1e-9):
            continue
        if (problem.cost * outside) @ x > cap + 1e-9:
            continue
        best = max(best, float(mean @ x))
    return best


@pytest.mark.parametrize("seed, budget, step", [(0, 5.0, 3.0), (1, 7.0, 2.0), (2, 4.0, 5.0)])
def test_matches_brute_force(seed, budget, step):
    problem = lumpy_problem(seed)
    allocator = BudgetAllocator([TotalBudget(budget), ContactCap(1), CellCap()])
    base = allocator.solve(problem)
    assert base.objective_value == pytest.approx(brute_best(problem, budget), abs=1e-6)
    out = marginal_return_by_tactic(allocator, problem, base, step)
    assert list(out.columns) == MARGINAL_RETURN_COLUMNS
    assert list(out["tactic"]) == ["cross_sell", "up_sell"]
    x0 = base.table["decision"].to_numpy()
    tactic = problem.cells["tactic"].to_numpy()
    for r in out.itertuples():
        mine = tactic == r.tactic
        cap = float((problem.cost * ~mine) @ x0)
        want = brute_best(problem, budget + step, mine, cap) - base.objective_value
        assert r.extra_profit == pytest.approx(want, abs=1e-6)
        assert r.return_per_unit == pytest.approx(want / step, abs=1e-9)
        assert r.extra_profit_hdi_low <= r.extra_profit + 1e-9 <= r.extra_profit_hdi_high + 2e-9
        assert r.extra_spend <= budget + step - base.total_spend + 1e-9


def test_step_goes_only_to_its_tactic():
    """Both tactics pay, up_sell more; the step earmarked for cross_sell must not buy up_sell."""
    cells = pd.DataFrame(
        {"segment": ["a", "a"], "tactic": ["cross_sell", "up_sell"], "arm": ["x", "u"]}
    ).assign(cost=[1.0, 1.0])
    draws = np.tile([1.0, 5.0], (50, 1))
    problem = AllocationProblem(cells, draws, pd.Series([100.0], index=["a"]))
    allocator = BudgetAllocator([TotalBudget(10.0), ContactCap(1), CellCap()])
    base = allocator.solve(problem)
    out = marginal_return_by_tactic(allocator, problem, base, 4.0).set_index("tactic")
    assert out.loc["up_sell", "extra_profit"] == pytest.approx(20.0)
    assert out.loc["cross_sell", "extra_profit"] == pytest.approx(4.0)
    assert out.loc["cross_sell", "extra_customers"] == 4
    assert out.loc["up_sell", "prob_gain"] == 1.0


def test_lumpy_step_is_not_the_lp_dual():
    """Offers cost 3 and return 5 each: the LP dual says 5/3 per unit of budget, but a step of
    2 above a budget of 6 cannot buy a third offer, so it returns exactly nothing."""
    cells = pd.DataFrame({"segment": ["a"], "tactic": ["retention"], "arm": ["r"], "cost": [3.0]})
    problem = AllocationProblem(cells, np.full((20, 1), 5.0), pd.Series([10.0], index=["a"]))
    allocator = BudgetAllocator([TotalBudget(6.0), ContactCap(1), CellCap()])
    base = allocator.solve(problem)
    out = marginal_return_by_tactic(allocator, problem, base, 2.0)
    assert out.loc[0, "extra_profit"] == 0.0
    lp = allocator.frontier(problem, [6.0, 8.0]).table
    assert lp.loc[0, "marginal_return"] == pytest.approx(5.0 / 3.0, rel=1e-6)
    assert base.total_spend == 6.0
    three = marginal_return_by_tactic(allocator, problem, base, 3.0)
    assert three.loc[0, "extra_profit"] == pytest.approx(5.0)


def test_bad_inputs_named():
    problem = lumpy_problem(0)
    allocator = BudgetAllocator([ContactCap(1), CellCap(), TotalBudget(5.0)])
    base = allocator.solve(problem)
    with pytest.raises(ValueError, match="step"):
        marginal_return_by_tactic(allocator, problem, base, 0.0)
    with pytest.raises(ValueError, match="'budget'"):
        marginal_return_by_tactic(allocator, problem, base, 1.0, budget_constraint="budget")
    with pytest.raises(ValueError, match="max_spend"):
        SpendElsewhere("up_sell", -1.0)


def test_report_lines_one_per_tactic_best_first():
    from uplift.report.returns import tactic_return_lines

    row = {
        "step": 1000.0,
        "extra_profit_hdi_low": 100.0,
        "extra_profit_hdi_high": 900.0,
        "return_per_unit": 0.5,
    }
    summary = {
        "hdi_prob": 0.94,
        "marginal_return_by_tactic": {
            "retention": row | {"extra_profit": 0.0},
            "referral": row | {"extra_profit": 500.0},
        },
    }
    lines = tactic_return_lines(summary, "$")
    assert lines[0] == (
        "referral: one more $1,000 spent only on it would return about $500.00 of expected "
        "profit (94% interval $100.00 to $900.00; $0.50 per extra $1.00)."
    )
    assert lines[1].startswith("retention: one more $1,000 spent only on it would return nothing")
    skipped = {"marginal_return_by_tactic": {"skipped": "no total_budget"}}
    assert "no total_budget" in tactic_return_lines(skipped)[0]
    assert tactic_return_lines({}) == []


def test_value_draws_enter_profit_draws_draw_by_draw():
    """2 segments, one arm costing 2: profit draw = uplift draw x value draw - cost, by hand."""
    import xarray as xr

    from uplift.tactics import ArmMap

    arms = ArmMap.from_mapping(
        {"c": {"tactic": "control"}, "r": {"tactic": "retention", "cost": 2.0}}
    )
    up = xr.DataArray(
        np.array([[[0.10, 0.20]], [[0.30, 0.05]], [[0.00, 0.40]]]),  # (3 draws, 1 arm, 2 segs)
        dims=("sample", "arm", "segment"),
        coords={"arm": ["r"], "segment": ["s1", "s2"]},
    )
    point = pd.Series({"s1": 50.0, "s2": 20.0})
    vd = xr.DataArray(
        np.array([[40.0, 10.0], [60.0, 30.0], [50.0, 20.0]]),
        dims=("sample", "segment"),
        coords={"segment": ["s1", "s2"]},
    )
    elig = pd.Series({"s1": 5.0, "s2": 5.0})
    p = AllocationProblem.from_uplift({"retention": up}, point, arms, elig, value_draws=vd)
    want = np.array(
        [
            [0.10 * 40 - 2, 0.20 * 10 - 2],
            [0.30 * 60 - 2, 0.05 * 30 - 2],
            [0.00 * 50 - 2, 0.40 * 20 - 2],
        ]
    )
    assert np.allclose(p.profit_draws, want)
    # a mapping without the tactic, or no draws at all: the point value in every draw
    same = AllocationProblem.from_uplift({"retention": up}, point, arms, elig)
    other = AllocationProblem.from_uplift(
        {"retention": up}, point, arms, elig, value_draws={"referral": vd}
    )
    assert np.array_equal(same.profit_draws, other.profit_draws)
    assert np.allclose(same.profit_draws[:, 0], 50 * up.values[:, 0, 0] - 2)
    with pytest.raises(ValueError, match="samples"):
        AllocationProblem.from_uplift({"retention": up}, point, arms, elig, value_draws=vd[:2])
    with pytest.raises(ValueError, match="segment"):
        AllocationProblem.from_uplift(
            {"retention": up}, point, arms, elig, value_draws=vd.sel(segment=["s1"])
        )


def test_clv_draws_go_through_each_tactics_value_rule(monkeypatch):
    """unit_value_draws: each tactic's (affine) value rule applied to every CLV draw; a tactic
    whose value does not rest on the CLV is left out (it keeps its point value)."""
    from types import SimpleNamespace

    import xarray as xr

    from uplift import pipeline

    segs = ["a", "b"]
    weights = np.array([0.25, 0.75])  # customers per segment, for the referral's mean

    def rules(config, data, cells, segment_value):
        v = segment_value.per_conversion(cells).reindex(segs)
        return {
            "retention": v - 5.0,
            "referral": pd.Series(float(weights @ v.to_numpy()) - 10.0, index=segs),
            "cross_sell": pd.Series(7.0, index=segs),
        }

    clv = np.array([[100.0, 40.0], [120.0, 20.0], [80.0, 60.0]])

    class Clv:
        def per_conversion(self, cells):
            return pd.Series([100.0, 40.0], index=segs)

        def per_conversion_draws(self, cells, n_draws, seed):
            assert n_draws == 3
            return xr.DataArray(clv, dims=("sample", "segment"), coords={"segment": segs})

    monkeypatch.setattr(pipeline, "unit_values", rules)
    sv = Clv()
    prepared = SimpleNamespace(
        segment_value=sv, cells=None, data=None, values=rules(None, None, None, sv)
    )
    config = SimpleNamespace(sampler=SimpleNamespace(seed=0))
    out = pipeline.unit_value_draws(config, prepared, 3)
    assert set(out) == {"retention", "referral"}
    assert np.allclose(out["retention"].values, clv - 5.0)
    assert np.allclose(out["referral"].values, (clv @ weights - 10.0)[:, None].repeat(2, 1))
    prepared.segment_value = None
    assert pipeline.unit_value_draws(config, prepared, 3) is None
