"""bench/customer_targets.py: the customer-level truth and solver its README figures rest on."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from bench_modules import load_bench


@pytest.fixture(scope="module")
def bench():
    return load_bench("customer_targets")


def test_customer_truth_averages_to_the_cell_truth(bench) -> None:
    """Each customer's own true uplift, averaged over a segment, is the truth table's cell
    uplift; the customers and cell truth are generate_crossed's, draw for draw."""
    cd = bench.cd
    customers, truth, own = cd.generate_crossed_customers(4, 20_000)
    c2, t2 = cd.generate_crossed(4, 20_000)
    pd.testing.assert_frame_equal(customers, c2)
    pd.testing.assert_frame_equal(truth, t2)
    assert (own["customer_id"].to_numpy() == customers["customer_id"].to_numpy()).all()
    seg = cd.customer_segments(customers).to_numpy()
    arms = [a for a, d in cd.DEFAULT_ARMS.items() if not d.is_control]
    means = own[arms].groupby(seg).mean().stack().rename("own")
    means.index = means.index.set_names(["segment", "arm"])
    merged = truth.set_index(["segment", "arm"])["true_uplift"].to_frame().join(means)
    np.testing.assert_allclose(merged["own"], merged["true_uplift"], rtol=1e-12, atol=1e-15)
    # the value per conversion is the segment's, as in the cell truth
    v = own.groupby(seg)["true_value_per_conversion"].first()
    tv = truth.groupby("segment")["true_value_per_conversion"].first()
    np.testing.assert_allclose(v.reindex(tv.index), tv)


def _brute(profit: np.ndarray, cost: np.ndarray, budget: float) -> float:
    n, k = profit.shape
    best = 0.0
    for choice in itertools.product(range(-1, k), repeat=n):
        arm = np.array(choice)
        on = arm >= 0
        if cost[arm[on]].sum() <= budget + 1e-9:
            best = max(best, float(profit[np.flatnonzero(on), arm[on]].sum()))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_customer_plan_against_brute_force(bench, seed: int) -> None:
    """Equal arm costs: the Lagrangian plan is the integer optimum. Unequal: within the budget,
    and short of the integer optimum by at most one customer's profit (the LP's margin)."""
    rng = np.random.default_rng(seed)
    profit = rng.normal(0.5, 1.0, (7, 2))
    equal = np.array([1.0, 1.0])
    arm = bench.customer_plan(profit, equal, 3.0)
    assert equal[arm[arm >= 0]].sum() <= 3.0
    assert bench.plan_profit(profit, arm) == pytest.approx(_brute(profit, equal, 3.0))
    cost = np.array([1.0, 2.5])
    arm = bench.customer_plan(profit, cost, 4.0)
    assert cost[arm[arm >= 0]].sum() <= 4.0 + 1e-9
    got, best = bench.plan_profit(profit, arm), _brute(profit, cost, 4.0)
    assert best - np.max(profit) - 1e-9 <= got <= best + 1e-9


def test_budget_that_does_not_bind_takes_every_positive_customer(bench) -> None:
    profit = np.array([[1.0, -1.0], [-2.0, -0.5], [0.2, 0.3]])
    arm = bench.customer_plan(profit, np.array([1.0, 1.0]), 100.0)
    assert arm.tolist() == [0, -1, 1]


def test_list_profit_reads_ids_and_arms(bench) -> None:
    true_profit = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    targets = pd.DataFrame({"customer_id": ["3", "1"], "arm": ["b", "a"]})
    assert bench.list_profit(true_profit, targets, ["a", "b"]) == 7.0


def test_bands_match_data_derive(bench) -> None:
    """The benchmark's band index is the band data.derive writes for the same edges."""
    from uplift.data.contract import derive_columns

    tenure = pd.Series(np.random.default_rng(1).integers(1, 200, 5_000))
    edges, labels = bench.tenure_bands(tenure, 4)
    derived = derive_columns(
        pd.DataFrame({"tenure": tenure}),
        {"b": {"column": "tenure", "bins": edges, "labels": labels}},
    )["b"]
    assert (np.asarray(labels)[bench.band_of(tenure, edges)] == derived.to_numpy()).all()


def test_covariate_signal_zero_makes_tenure_uninformative(bench) -> None:
    """The null scenario: with covariate_signal=0 tenure no longer tracks a customer's own
    uplift (the hidden modifier); at 1 it does."""
    cd = bench.cd
    corr = {}
    for c in (0.0, 1.0):
        customers, _, own = cd.generate_crossed_customers(2, 20_000, covariate_signal=c)
        seg = cd.customer_segments(customers).to_numpy()
        dev = own["bundle_mail"] - own.groupby(seg)["bundle_mail"].transform("mean")
        corr[c] = float(np.corrcoef(np.log(customers["tenure"]), dev)[0, 1])
    assert abs(corr[0.0]) < 0.03 and corr[1.0] > 0.3, corr
