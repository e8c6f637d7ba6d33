"""Customer targets: reconcile exactly with the allocation, reproducible, pick the best customers."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr

from uplift.data import ColumnMap, validate_customers
from uplift.data.synthetic import default_arm_map, generate
from uplift.experiment.assignment import hash_values
from uplift.optimize import ALLOCATION_COLUMNS, AllocationProblem, allocator_from_settings
from uplift.optimize.targets import (
    COVARIATE,
    HASH,
    TARGET_COLUMNS,
    TargetsError,
    customer_targets,
)

REQUIRED = [
    "customer_id",
    "segment",
    "arm",
    "tactic",
    "expected_incremental_profit",
    "prob_profit_positive",
    "rank",
]


def make_customers(sizes: dict[str, int], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    segs = np.concatenate([[s] * n for s, n in sizes.items()])
    return pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + len(segs)),
            "segment": segs,
            "arm": rng.choice(["control", "mail", "call"], size=len(segs)),
        }
    )


def make_allocation(rows: list[tuple]) -> pd.DataFrame:
    """rows: (segment, tactic, arm, customers, cost, profit_per_customer, prob)."""
    t = pd.DataFrame(
        rows,
        columns=[
            "segment",
            "tactic",
            "arm",
            "customers",
            "cost_per_customer",
            "profit_per_customer",
            "prob_profit_positive",
        ],
    )
    t["spend"] = t["customers"] * t["cost_per_customer"]
    t["expected_incremental_profit"] = t["customers"] * t["profit_per_customer"]
    t["profit_hdi_low"] = t["profit_hdi_high"] = t["expected_incremental_profit"]
    t["eligible_customers"] = 0
    t["unit"] = "customers"
    t["decision"] = t["customers"].astype(float)
    t["binding_constraints"] = ""
    return t[ALLOCATION_COLUMNS]


def check_reconciles(targets, allocation: pd.DataFrame) -> None:
    t = targets.table
    assert list(t.columns[:7]) == REQUIRED
    cust = allocation[(allocation["unit"] == "customers") & (allocation["customers"] > 0)]
    got = t.groupby(["segment", "arm"]).size()
    want = cust.set_index(["segment", "arm"])["customers"]
    pd.testing.assert_series_equal(
        got.sort_index(), want.sort_index().astype(got.dtype), check_names=False
    )
    assert t["cost_per_customer"].sum() == pytest.approx(cust["spend"].sum(), rel=1e-12, abs=1e-9)
    assert targets.shortfall == 0
    assert (targets.reconciliation["allocated"] == targets.reconciliation["targeted"]).all()
    np.testing.assert_allclose(
        targets.reconciliation["spend_targeted"], targets.reconciliation["spend_allocated"]
    )
    assert not t["customer_id"].duplicated().any()  # one arm per customer
    assert t["rank"].tolist() == list(range(1, len(t) + 1))


# ---- hash order -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def solved():
    """A real allocation table (MILP) over the validated synthetic customers."""
    arm_map = default_arm_map()
    data = validate_customers(
        generate(arm_map, n_customers=4_000, seed=5).customers,
        ColumnMap(segments=("value_tier", "needs")),
        arm_map,
    )
    segs = data.segments
    arms = [a for a in arm_map.treated]
    cells = pd.DataFrame(
        [
            {"segment": s, "tactic": a.tactic.value, "arm": a.name, "cost": a.cost}
            for s in segs
            for a in arms
        ]
    )
    rng = np.random.default_rng(1)
    draws = rng.normal(rng.uniform(-1.0, 4.0, len(cells)), 1.0, size=(300, len(cells)))
    eligible = data.frame.groupby("segment").size().astype(float)
    problem = AllocationProblem(cells, draws, eligible)
    alloc = allocator_from_settings(2_000.0).solve(problem)
    return data, alloc.table


def test_reconciles_with_a_solved_allocation(solved):
    data, table = solved
    assert table["customers"].sum() > 0
    targets = customer_targets(table, data.frame, seed=3)
    check_reconciles(targets, table)
    assert set(targets.table["selection"]) == {HASH}
    assert list(targets.table.columns) == TARGET_COLUMNS
    # rows carry their cell's numbers in hash mode
    cell = table.set_index(["segment", "arm"])
    key = pd.MultiIndex.from_frame(targets.table[["segment", "arm"]])
    np.testing.assert_allclose(
        targets.table["expected_incremental_profit"], cell.loc[key, "profit_per_customer"]
    )
    assert targets.table["customer_id"].isin(data.frame["customer_id"]).all()


def test_reproducible_and_seed_dependent(solved):
    data, table = solved
    a = customer_targets(table, data.frame, seed=3).table
    b = customer_targets(table, data.frame, seed=3).table
    pd.testing.assert_frame_equal(a, b)
    c = customer_targets(table, data.frame, seed=4).table
    assert set(a["customer_id"]) != set(c["customer_id"])
    # input order does not matter
    shuffled = data.frame.sample(frac=1.0, random_state=0)
    d = customer_targets(table.iloc[::-1], shuffled, seed=3).table
    pd.testing.assert_frame_equal(a, d)


def test_hash_rule_by_hand():
    customers = make_customers({"s": 10})
    alloc = make_allocation(
        [("s", "up_sell", "call", 3, 2.0, 1.0, 0.7), ("s", "cross_sell", "mail", 4, 1.0, 2.0, 0.9)]
    )
    t = customer_targets(alloc, customers, seed=42).table
    ids = customers["customer_id"].to_numpy()
    order = ids[np.argsort(hash_values(ids, "42"), kind="stable")]
    # arms in (tactic, arm) order: cross_sell/mail first, then up_sell/call
    assert set(t.loc[t["arm"] == "mail", "customer_id"]) == set(order[:4])
    assert set(t.loc[t["arm"] == "call", "customer_id"]) == set(order[4:7])
    assert t.loc[t["arm"] == "mail", "prob_profit_positive"].eq(0.9).all()


def test_spend_rows_and_empty_cells_are_ignored():
    customers = make_customers({"s": 5, "t": 5})
    alloc = make_allocation(
        [
            ("s", "cross_sell", "mail", 2, 1.0, 2.0, 0.9),
            ("t", "cross_sell", "mail", 0, 1.0, -1, 0.1),
        ]
    )
    spend = alloc.iloc[[0]].assign(unit="spend", segment="nowhere", customers=0, spend=500.0)
    alloc = pd.concat([alloc, spend], ignore_index=True)
    targets = customer_targets(alloc, customers, seed=1)
    assert len(targets.table) == 2 and set(targets.table["segment"]) == {"s"}


def test_rank_orders_by_profit_then_hash():
    customers = make_customers({"s": 8, "t": 8})
    alloc = make_allocation(
        [
            ("s", "cross_sell", "mail", 3, 1.0, 0.5, 0.6),
            ("t", "cross_sell", "mail", 4, 1.0, 2.5, 0.9),
        ]
    )
    t = customer_targets(alloc, customers, seed=9).table
    assert t["rank"].tolist() == list(range(1, 8))
    assert (np.diff(t["expected_incremental_profit"]) <= 0).all()
    assert t["segment"].tolist() == ["t"] * 4 + ["s"] * 3
    for _, g in t.groupby("segment"):  # equal profit: hash order decides
        h = hash_values(g["customer_id"].to_numpy(), "9")
        assert (np.diff(h.astype(float)) > 0).all()


# ---- covariate scores -----------------------------------------------------------------------
def scores_frame(means: dict[str, list[float]], ids, sd: float = 0.05, pos=None) -> pd.DataFrame:
    rows = []
    tactic = {"mail": "cross_sell", "call": "up_sell"}
    for arm, m in means.items():
        for i, (cid, mu) in enumerate(zip(ids, m, strict=True)):
            rows.append(
                {
                    "customer_id": cid,
                    "tactic": tactic[arm],
                    "arm": arm,
                    "uplift_mean": mu,
                    "uplift_sd": sd,
                    "uplift_low": mu - 2 * sd,
                    "uplift_high": mu + 2 * sd,
                    "prob_positive": 0.5 if pos is None else pos[i],
                    "p_control_mean": 0.1,
                }
            )
    return pd.DataFrame(rows)


def test_scores_pick_the_best_assignment_by_hand():
    """Profits (value 10, cost 1): mail [3.0, 2.9, 0.5], call [2.9, 0.0, 0.5], one of each.
    Greedy would give mail to customer 0 (3.0) and call to customer 1 (0.0): 3.0 in all; the
    best plan is call -> 0, mail -> 1: 5.8."""
    customers = make_customers({"s": 3})
    ids = customers["customer_id"].tolist()
    scores = scores_frame({"mail": [0.40, 0.39, 0.15], "call": [0.39, 0.10, 0.15]}, ids)
    values = {"cross_sell": pd.Series({"s": 10.0}), "up_sell": pd.Series({"s": 10.0})}
    alloc = make_allocation(
        [("s", "cross_sell", "mail", 1, 1.0, 1.0, 0.6), ("s", "up_sell", "call", 1, 1.0, 1.0, 0.6)]
    )
    targets = customer_targets(alloc, customers, seed=0, scores=scores, values=values)
    t = targets.table.set_index("arm")
    assert t.loc["call", "customer_id"] == ids[0] and t.loc["mail", "customer_id"] == ids[1]
    assert t.loc["call", "expected_incremental_profit"] == pytest.approx(2.9)
    assert t.loc["mail", "expected_incremental_profit"] == pytest.approx(2.9)
    assert t.loc["mail", "prob_profit_positive"] == pytest.approx(ndtr((0.39 - 0.1) / 0.05))
    assert set(targets.table["selection"]) == {COVARIATE}
    # brute force over every one-arm-per-customer plan agrees
    profit = {"mail": [3.0, 2.9, 0.5], "call": [2.9, 0.0, 0.5]}
    best = max(
        profit["mail"][i] + profit["call"][j] for i, j in itertools.permutations(range(3), 2)
    )
    assert targets.table["expected_incremental_profit"].sum() == pytest.approx(best)


def test_scores_with_zero_cost_use_exact_prob_positive():
    customers = make_customers({"s": 4})
    ids = customers["customer_id"].tolist()
    scores = scores_frame({"mail": [0.1, 0.3, 0.2, -0.1]}, ids, pos=[0.8, 0.99, 0.9, 0.2])
    alloc = make_allocation([("s", "cross_sell", "mail", 2, 0.0, 1.0, 0.6)])
    t = customer_targets(
        alloc, customers, seed=0, scores=scores, values={"cross_sell": pd.Series({"s": 5.0})}
    ).table
    assert t["customer_id"].tolist() == [ids[1], ids[2]]
    assert t["prob_profit_positive"].tolist() == [0.99, 0.9]
    assert t["expected_incremental_profit"].tolist() == pytest.approx([1.5, 1.0])


def test_unscored_arms_take_the_rest_in_hash_order():
    customers = make_customers({"s": 10})
    ids = customers["customer_id"].to_numpy()
    rng = np.random.default_rng(0)
    scores = scores_frame({"mail": rng.uniform(0, 0.5, 10).tolist()}, ids)
    alloc = make_allocation(
        [
            ("s", "cross_sell", "mail", 4, 1.0, 1.0, 0.6),
            ("s", "frequency", "push", 3, 0.5, 0.2, 0.5),
        ]
    )
    targets = customer_targets(
        alloc, customers, seed=2, scores=scores, values={"cross_sell": pd.Series({"s": 10.0})}
    )
    check_reconciles(targets, alloc)
    t = targets.table
    best4 = scores.nlargest(4, "uplift_mean")["customer_id"]
    assert set(t.loc[t["arm"] == "mail", "customer_id"]) == set(best4)
    assert set(t.loc[t["arm"] == "mail", "selection"]) == {COVARIATE}
    assert set(t.loc[t["arm"] == "push", "selection"]) == {HASH}
    rest = ids[~np.isin(ids, best4)]
    rest = rest[np.argsort(hash_values(rest, "2"))]
    assert set(t.loc[t["arm"] == "push", "customer_id"]) == set(rest[:3])


def test_tied_scores_are_broken_by_the_seed():
    customers = make_customers({"s": 40})
    ids = customers["customer_id"].tolist()
    scores = scores_frame({"mail": [0.2] * 20 + [0.1] * 20}, ids)
    alloc = make_allocation([("s", "cross_sell", "mail", 10, 1.0, 1.0, 0.6)])
    values = {"cross_sell": pd.Series({"s": 10.0})}
    a = customer_targets(alloc, customers, seed=1, scores=scores, values=values).table
    b = customer_targets(alloc, customers, seed=2, scores=scores, values=values).table
    assert set(a["customer_id"]) <= set(ids[:20]) and set(b["customer_id"]) <= set(ids[:20])
    assert set(a["customer_id"]) != set(b["customer_id"])


@pytest.mark.parametrize("noise", [0.0, 0.03])
def test_scores_beat_hash_on_heterogeneous_uplift(noise):
    """Uplift rises with a covariate; choosing by (noisy) scores earns more true profit than
    hash order with the same counts, in every replicate: all of the oracle's gain with the true
    uplift as scores, at least half of it with noise as large as the uplift's spread."""
    value, cost, wins, share = 10.0, 0.3, 0, []
    for rep in range(20):
        rng = np.random.default_rng(100 + rep)
        n = 600
        customers = make_customers({"s": n}, seed=rep)
        x = rng.normal(size=n)
        tau = np.clip(0.04 + 0.03 * x, -0.05, None)
        est = tau + rng.normal(0, noise, n) if noise else tau
        scores = scores_frame({"mail": est.tolist()}, customers["customer_id"], sd=0.03)
        alloc = make_allocation([("s", "cross_sell", "mail", 150, cost, 0.1, 0.6)])
        true = pd.Series(value * tau - cost, index=customers["customer_id"])
        by_score = customer_targets(
            alloc,
            customers,
            seed=rep,
            scores=scores,
            values={"cross_sell": pd.Series({"s": value})},
        ).table
        by_hash = customer_targets(alloc, customers, seed=rep).table
        hashed = true[by_hash["customer_id"]].sum()
        gain = true[by_score["customer_id"]].sum() - hashed
        oracle = true.nlargest(150).sum() - hashed
        wins += gain > 0
        share.append(gain / oracle)
    assert wins == 20
    if noise == 0:
        np.testing.assert_allclose(share, 1.0)
    else:
        assert np.mean(share) > 0.5


# ---- shortfall, offers, rounding ------------------------------------------------------------
def test_segment_with_fewer_rows_than_allocated():
    customers = make_customers({"s": 6, "t": 20})
    alloc = make_allocation(
        [
            ("s", "cross_sell", "mail", 10, 1.0, 2.0, 0.9),
            ("s", "up_sell", "call", 5, 2.0, 1.0, 0.8),
            ("t", "cross_sell", "mail", 5, 1.0, 2.0, 0.9),
        ]
    )
    targets = customer_targets(alloc, customers, seed=0)
    t = targets.table
    s_rows = t[t["segment"] == "s"]
    assert sorted(s_rows["customer_id"]) == sorted(customers.loc[:5, "customer_id"])  # all of s
    assert s_rows.groupby("arm").size().to_dict() == {"mail": 4, "call": 2}  # 10:5 scaled to 6
    assert (t["segment"] == "t").sum() == 5
    assert targets.shortfall == 9
    assert (
        len(targets.notes) == 1 and "'s'" in targets.notes[0] and "data hold 6" in targets.notes[0]
    )
    assert targets.summary()["shortfall"] == 9
    assert t["customer_id"].isin(customers["customer_id"]).all()


def test_several_offers_per_customer_never_repeat_an_arm():
    customers = make_customers({"s": 10})
    alloc = make_allocation(
        [
            ("s", "cross_sell", "mail", 7, 1.0, 2.0, 0.9),
            ("s", "up_sell", "call", 8, 2.0, 1.0, 0.8),
            ("s", "frequency", "push", 5, 0.1, 0.5, 0.8),
        ]
    )
    targets = customer_targets(alloc, customers, seed=0, max_offers_per_customer=2)
    t = targets.table
    assert targets.shortfall == 0
    assert not t.duplicated(["customer_id", "arm"]).any()
    assert t.groupby("customer_id").size().max() <= 2
    assert t.groupby("arm").size().to_dict() == {"mail": 7, "call": 8, "push": 5}
    with pytest.raises(TargetsError):
        customer_targets(alloc, customers, seed=0, max_offers_per_customer=0)


def test_fractional_allocation_is_rounded_down_with_a_note():
    customers = make_customers({"s": 10})
    alloc = make_allocation([("s", "cross_sell", "mail", 3.6, 1.0, 2.0, 0.9)])
    targets = customer_targets(alloc, customers, seed=0)
    assert len(targets.table) == 3 and "fractional" in targets.notes[0]


# ---- errors ---------------------------------------------------------------------------------
def test_errors_name_the_problem():
    customers = make_customers({"s": 5})
    alloc = make_allocation([("nowhere", "cross_sell", "mail", 2, 1.0, 2.0, 0.9)])
    with pytest.raises(TargetsError, match=r"segment\(s\) 'nowhere'.*no rows") as e:
        customer_targets(alloc, customers, seed=0)
    assert isinstance(e.value, ValueError)
    ok = make_allocation([("s", "cross_sell", "mail", 2, 1.0, 2.0, 0.9)])
    with pytest.raises(TargetsError, match=r"lacks column\(s\) \['cost_per_customer'\]"):
        customer_targets(ok.drop(columns="cost_per_customer"), customers, seed=0)
    with pytest.raises(TargetsError, match="duplicated"):
        customer_targets(ok, pd.concat([customers, customers.iloc[:1]]), seed=0)
    scores = scores_frame({"mail": [0.1] * 5}, customers["customer_id"])
    with pytest.raises(TargetsError, match="no value per unit for tactic 'cross_sell'"):
        customer_targets(ok, customers, seed=0, scores=scores)
    with pytest.raises(TargetsError, match="not 2 of the 5 customers"):
        customer_targets(
            ok,
            customers,
            seed=0,
            scores=scores.iloc[:3],
            values={"cross_sell": pd.Series({"s": 1.0})},
        )


@pytest.mark.parametrize("seed", range(6))
def test_scored_assignment_matches_brute_force(seed):
    """Random scores for 3 arms on 6 customers: the list's total profit is the best possible
    with one arm per customer and the allocated counts."""
    rng = np.random.default_rng(seed)
    customers = make_customers({"s": 6})
    ids = customers["customer_id"].tolist()
    means = {arm: rng.uniform(-0.1, 0.5, 6).round(2).tolist() for arm in ("mail", "call")}
    scores = scores_frame(means, ids)
    counts = rng.multinomial(int(rng.integers(2, 7)), [0.4, 0.3, 0.3])
    values = {"cross_sell": pd.Series({"s": 10.0}), "up_sell": pd.Series({"s": 20.0})}
    alloc = make_allocation(
        [
            ("s", "cross_sell", "mail", counts[0], 1.0, 1.0, 0.6),
            ("s", "up_sell", "call", counts[1], 2.0, 1.0, 0.6),
            ("s", "frequency", "push", counts[2], 0.5, 0.7, 0.6),
        ]
    )
    targets = customer_targets(alloc, customers, seed=seed, scores=scores, values=values)
    check_reconciles(targets, alloc[alloc["customers"] > 0])
    profit = np.column_stack(
        [
            10 * np.array(means["mail"]) - 1.0,
            20 * np.array(means["call"]) - 2.0,
            np.full(6, 0.7),
        ]
    )
    labels = [0] * counts[0] + [1] * counts[1] + [2] * counts[2]
    best = max(
        sum(profit[c, a] for c, a in zip(perm, labels, strict=False))
        for perm in itertools.permutations(range(6), len(labels))
    )
    assert targets.table["expected_incremental_profit"].sum() == pytest.approx(best)


def test_allocation_csv_round_trip(solved, tmp_path):
    data, table = solved
    table.to_csv(tmp_path / "allocation.csv", index=False)
    from_csv = pd.read_csv(tmp_path / "allocation.csv")
    pd.testing.assert_frame_equal(
        customer_targets(from_csv, data.frame, seed=3).table,
        customer_targets(table, data.frame, seed=3).table,
    )
