"""uplift.optimize.strata (WIP): customer strata as decision cells."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from uplift.optimize.factory import allocator_from_settings
from uplift.optimize.problem import AllocationProblem
from uplift.optimize.strata import (
    assign_strata,
    collapse,
    refine_problem,
    segment_of,
    stratum_labels,
)


def test_strata_are_equal_runs_of_the_score_within_each_segment() -> None:
    rng = np.random.default_rng(0)
    segment = rng.choice(["a", "b", "c"], 1_001)
    score = rng.normal(size=1_001)
    k = assign_strata(segment, score, 4)
    for s in "abc":
        m = segment == s
        sizes = np.bincount(k[m], minlength=4)
        assert sizes.max() - sizes.min() <= 1
        # every customer of a higher stratum scores at least as high as any of a lower one
        for j in range(3):
            assert score[m][k[m] == j].max() <= score[m][k[m] == j + 1].min()
    labels = stratum_labels(segment, k)
    assert {segment_of(x) for x in labels} == {"a", "b", "c"}
    assert segment_of("high/north/web~q3") == "high/north/web"
    assert segment_of("plain") == "plain"


def _problem(draws: np.ndarray, eligible: dict[str, float]) -> AllocationProblem:
    cells = pd.DataFrame(
        {
            "segment": ["s1", "s1", "s2", "s2"],
            "tactic": ["t", "t", "t", "t"],
            "arm": ["a", "b", "a", "b"],
            "cost": [1.0, 2.0, 1.0, 2.0],
        }
    )
    return AllocationProblem(cells, draws, pd.Series(eligible))


def test_one_stratum_without_deviation_is_the_same_plan() -> None:
    rng = np.random.default_rng(1)
    problem = _problem(rng.normal([1.0, 2.5, 0.5, 1.0], 0.5, (200, 4)), {"s1": 5, "s2": 6})
    sizes = pd.Series({"s1~q1": 5.0, "s2~q1": 6.0})
    refined = refine_problem(problem, sizes, {}, {"t": pd.Series({"s1": 10.0, "s2": 10.0})})
    alloc = allocator_from_settings(7.0)
    a, b = alloc.solve(problem), alloc.solve(refined)
    assert b.table["expected_incremental_profit"].sum() == pytest.approx(
        a.table["expected_incremental_profit"].sum()
    )
    back = collapse(b.table, refined, 0.9)
    pd.testing.assert_frame_equal(
        back[["segment", "arm", "customers", "spend"]],
        a.table[["segment", "arm", "customers", "spend"]].reset_index(drop=True),
        check_dtype=False,
    )


def test_refined_plan_is_the_brute_force_optimum_over_strata() -> None:
    """Two strata a segment with known deviations: the allocator's plan equals the best of all
    integer plans (each stratum's customers shared by its arms, the budget), and collapsing it
    gives per-(segment, arm) sums."""
    rng = np.random.default_rng(2)
    problem = _problem(rng.normal([0.2, 0.6, 0.1, 0.3], 0.1, (100, 4)), {"s1": 4, "s2": 4})
    value = {"t": pd.Series({"s1": 2.0, "s2": 3.0})}
    labels = ["s1~q1", "s1~q2", "s2~q1", "s2~q2"]
    sizes = pd.Series([2.0, 2.0, 2.0, 2.0], index=labels)
    dev = {
        "a": pd.DataFrame(np.tile([-0.3, 0.4, -0.2, 0.5], (100, 1)), columns=labels),
        "b": pd.DataFrame(np.tile([-0.1, 0.1, 0.0, 0.0], (100, 1)), columns=labels),
    }
    refined = refine_problem(problem, sizes, dev, value)
    assert refined.n_cells == 8 and refined.n_draws == 100
    budget = 5.0
    plan = allocator_from_settings(budget).solve(refined)
    mean = refined.profit_draws.mean(axis=0)
    cost = refined.cost
    stratum = refined.cells["segment"].to_numpy()
    best = -np.inf
    for x in itertools.product(range(3), repeat=8):
        xv = np.array(x, dtype=float)
        if xv @ cost > budget + 1e-9:
            continue
        if any(xv[stratum == s].sum() > 2 for s in labels):
            continue
        best = max(best, float(xv @ mean))
    assert plan.table["expected_incremental_profit"].sum() == pytest.approx(best, abs=1e-6)
    back = collapse(plan.table, refined, 0.9)
    for (seg, arm), part in plan.table.assign(
        s=[segment_of(s) for s in plan.table["segment"]]
    ).groupby(["s", "arm"]):
        row = back[(back["segment"] == seg) & (back["arm"] == arm)].iloc[0]
        assert row["customers"] == part["customers"].sum()
        assert row["expected_incremental_profit"] == pytest.approx(
            part["expected_incremental_profit"].sum()
        )
        assert row["profit_hdi_low"] <= row["expected_incremental_profit"] <= row["profit_hdi_high"]
    assert back["eligible_customers"].tolist() == [4, 4, 4, 4]


def test_refine_names_what_does_not_fit() -> None:
    problem = _problem(np.zeros((10, 4)), {"s1": 1, "s2": 1})
    v = {"t": pd.Series({"s1": 1.0, "s2": 1.0})}
    with pytest.raises(ValueError, match="no stratum"):
        refine_problem(problem, pd.Series({"s1~q1": 1.0}), {}, v)
    with pytest.raises(ValueError, match="does not have"):
        refine_problem(problem, pd.Series({"s1~q1": 1.0, "s2~q1": 1.0, "s9~q1": 1.0}), {}, v)
    with pytest.raises(ValueError, match="draws"):
        refine_problem(
            problem,
            pd.Series({"s1~q1": 1.0, "s2~q1": 1.0}),
            {"a": pd.DataFrame(np.zeros((3, 1)), columns=["s1~q1"])},
            v,
        )
