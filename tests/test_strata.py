"""uplift.optimize.strata: customer strata as decision cells; the labeller that places
customers (uplift.app.strata_run); the rules that name segments select their strata."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from uplift.app.strata_run import StrataLabeller
from uplift.optimize.constraints import ExcludeSegments, GuardrailVeto, MinTierShare
from uplift.optimize.factory import allocator_from_settings
from uplift.optimize.problem import AllocationProblem
from uplift.optimize.strata import (
    collapse,
    collapse_targets,
    refine_problem,
    segment_of,
    stratum_labels,
    with_strata,
)
from uplift.optimize.targets import customer_targets


class _Scores:
    """A covariate model stand-in: each row's own uplift for arm ``a`` is its ``x``."""

    def score(self, rows: pd.DataFrame, id_col=None) -> pd.DataFrame:
        return pd.DataFrame({"a": rows["x"].to_numpy(dtype=float)}, index=rows.index)


def _labeller(bins: int) -> StrataLabeller:
    return StrataLabeller(
        bins,
        cell_uplift={"a": pd.Series({"a": 0.1, "b": 0.2, "c": 0.0})},
        arm_info={"a": ("t", 1.0)},
        values={"t": pd.Series({"a": 10.0, "b": 20.0, "c": 5.0})},
        models={"t": _Scores()},
    )


def test_strata_are_runs_of_expected_profit_within_each_segment() -> None:
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(
        {"segment": rng.choice(["a", "b", "c"], 1_001), "x": rng.normal(size=1_001)}
    )
    lab = _labeller(4)
    labels = lab.fit(rows)
    score = lab.score(rows)
    seg = rows["segment"].to_numpy()
    k = np.array([int(x.rpartition("~q")[2]) for x in labels])
    for s in "abc":
        m = seg == s
        sizes = np.bincount(k[m], minlength=5)[1:]
        assert sizes.max() - sizes.min() <= 1  # continuous scores: equal runs
        # every customer of a higher stratum scores at least as high as any of a lower one
        for j in range(1, 4):
            assert score[m][k[m] == j].max() <= score[m][k[m] == j + 1].min()
    # the deviation is from the segment's average customer: a segment's mean score is its
    # cell's expected profit
    for s, v, u in (("a", 10.0, 0.1), ("b", 20.0, 0.2)):
        assert score[seg == s].mean() == pytest.approx(v * u - 1.0)
    # rows of the population are labelled as in it; ties stay in one stratum
    np.testing.assert_array_equal(lab(rows.iloc[::7]), labels[::7])
    tied = pd.DataFrame({"segment": ["a"] * 8, "x": [0.0] * 4 + [1.0] * 4})
    assert len(set(_labeller(4).fit(tied))) == 2
    assert {segment_of(x) for x in labels} == {"a", "b", "c"}
    assert segment_of("high/north/web~q3") == "high/north/web"
    assert segment_of("plain") == "plain"
    assert list(stratum_labels(np.array(["s"]), np.array([0]))) == ["s~q1"]


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


def _strata_problem() -> AllocationProblem:
    rng = np.random.default_rng(3)
    labels = ["high/web~q1", "high/web~q2", "low/web~q1", "low/web~q2"]
    cells = pd.DataFrame(
        {
            "segment": np.repeat(labels, 2),
            "tactic": "t",
            "arm": ["a", "b"] * 4,
            "cost": [1.0, 2.0] * 4,
        }
    )
    draws = rng.normal(5.0, 0.1, (50, 8))
    return AllocationProblem(cells, draws, pd.Series(5.0, index=labels))


def test_rules_that_name_segments_select_their_strata() -> None:
    """exclude_segments, min_tier_share and a guardrail veto name segments (or their parts)
    and cells ``segment|arm``: over strata they hold for every stratum of the segment."""
    problem = _strata_problem()
    seg = problem.cells["segment"].to_numpy()
    arm = problem.cells["arm"].to_numpy()
    high = np.array([s.startswith("high") for s in seg])
    np.testing.assert_array_equal(ExcludeSegments(segments=("high",)).cell_mask(problem), high)
    np.testing.assert_array_equal(ExcludeSegments(segments=("low/web",)).cell_mask(problem), ~high)
    veto = GuardrailVeto(cells=("high/web|b",)).cell_mask(problem)
    np.testing.assert_array_equal(veto, high & (arm == "b"))
    rows = MinTierShare(share=0.5, segments=("high",)).rows(problem)
    np.testing.assert_allclose(rows.A[0], problem.cost * (0.5 - high))
    with pytest.raises(ValueError, match="match no segment"):
        ExcludeSegments(segments=("web~q1",)).cell_mask(problem)


def test_stratum_targets_collapse_to_segment_rows() -> None:
    """A list chosen stratum by stratum is reported per segment, and its reconciliation sums
    the strata, as allocation.csv does."""
    problem = _strata_problem()
    plan = allocator_from_settings(12.0).solve(problem)
    labels = np.repeat(problem.segments, 5)
    customers = pd.DataFrame({"customer_id": np.arange(20), "segment": labels})
    values = with_strata({"t": pd.Series({"high/web": 1.0, "low/web": 2.0})}, labels)
    assert values["t"]["high/web~q2"] == 1.0 and values["t"]["low/web~q1"] == 2.0
    t = collapse_targets(customer_targets(plan.table, customers, seed=1))
    assert set(t.table["segment"]) <= {"high/web", "low/web"}
    back = collapse(plan.table, problem, 0.9).set_index(["segment", "arm"])
    recon = t.reconciliation.set_index(["segment", "arm"])
    assert recon["allocated"].to_dict() == back.loc[recon.index, "customers"].astype(int).to_dict()
    assert t.table.groupby(["segment", "arm"]).size().to_dict() == {
        k: v for k, v in recon["targeted"].to_dict().items() if v > 0
    }
