"""Wave to wave (``uplift next-wave``, ``uplift evaluate-policy``; :mod:`uplift.waves`).

The source run is fitted once with the fake sampler (tests/fast_tier.py): these tests check the
wiring (shares, hashing, probabilities, cap, files, errors) and the off-policy arithmetic on a
simulated later wave whose outcomes come from the synthetic generator's known truth.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import uplift
from uplift import waves
from uplift.experiment.assignment import HOLDOUT
from uplift.experiment.offpolicy import evaluate_policy


@pytest.fixture(scope="module")
def saved(finished):
    return uplift.load_run(finished)


def new_customers(n: int, seed: int, start: int = 1_000_000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": np.arange(start, start + n),
            "value_tier": rng.choice(["low", "mid", "high"], size=n, p=[0.5, 0.35, 0.15]),
            "needs": rng.choice(["price", "quality", "convenience", "variety"], size=n),
        }
    )


def test_shares_are_the_runs_own(saved, finished):
    mine = waves.wave_shares(saved)
    theirs = pd.read_csv(finished / "next_wave_shares.csv")
    pd.testing.assert_frame_equal(
        mine.reset_index(drop=True), theirs[list(mine.columns)], check_dtype=False
    )


def assign(saved, customers, **kw):
    return waves.assign_wave(
        waves.customer_list(customers, saved.config),
        waves.wave_shares(saved),
        salt="test:wave2",
        wave=2,
        control=saved.prepared.data.arm_map.control.name,
        **kw,
    )


def test_columns_balance_and_probabilities(saved):
    customers = new_customers(40_000, seed=1)
    table = assign(saved, customers, holdout_share=0.05)
    assert list(table.columns[:6]) == waves.ASSIGNMENT_COLUMNS
    assert (table["wave"] == 2).all() and (table["salt"] == "test:wave2").all()
    assert table["segment"].iloc[0] == f"{customers['value_tier'][0]}/{customers['needs'][0]}"
    held = table["arm"] == HOLDOUT
    assert table.loc[held, "probability"].eq(0.05).all()
    assert held.mean() == pytest.approx(0.05, abs=0.006)
    shares = waves.wave_shares(saved).set_index(["segment", "arm"])["share"]
    worst = 0.0
    for seg, g in table[~held].groupby("segment"):
        n = len(g)
        counts = g["arm"].value_counts()
        for arm, share in shares.loc[seg].items():
            # the logged probability is the realised share times (1 - holdout)
            if arm in counts:
                p = g.loc[g["arm"] == arm, "probability"]
                assert p.nunique() == 1
                assert p.iloc[0] == pytest.approx(0.95 * share, abs=0.95 / 10_000 + 1e-12)
            z = (counts.get(arm, 0) - n * share) / np.sqrt(n * share * (1 - share) + 1e-12)
            worst = max(worst, abs(z))
        # labels of a segment (arms and the holdout) have probabilities summing to 1
        labels = table[table["segment"] == seg].drop_duplicates("arm")
        if len(labels) == len(shares.loc[seg]) + 1:
            assert labels["probability"].sum() == pytest.approx(1.0, abs=1e-9)
    assert worst < 4.5  # within binomial error (max |z| over ~84 cells)


def test_appended_customers_keep_their_arms(saved):
    first = new_customers(5_000, seed=2)
    more = pd.concat([first, new_customers(3_000, seed=3, start=2_000_000)], ignore_index=True)
    a = assign(saved, first, holdout_share=0.05)
    b = assign(saved, more, holdout_share=0.05)
    pd.testing.assert_frame_equal(a, b.iloc[: len(a)].reset_index(drop=True))
    # a different salt re-randomises
    c = waves.assign_wave(
        waves.customer_list(first, saved.config),
        waves.wave_shares(saved),
        salt="other",
        wave=2,
        control="control",
    )
    assert (c["arm"] != a["arm"]).mean() > 0.1  # shares are concentrated: most go to one arm


def test_contact_cap(saved):
    customers = new_customers(6_000, seed=4)
    history = pd.DataFrame(
        {"customer_id": np.repeat(customers["customer_id"][:2000], 2), "wave": [1, 2] * 2000}
    )
    counts, last = waves.contact_counts(history)
    assert last == 2
    free = assign(saved, customers, holdout_share=0.05)
    table = assign(saved, customers, holdout_share=0.05, contacts=counts, max_contacts=2)
    capped = table["contact_capped"].to_numpy()
    assert capped[:2000].all() and not capped[2000:].any()
    at_cap = table[capped]
    assert set(at_cap["arm"]) <= {"control", HOLDOUT}
    assert at_cap.loc[at_cap["arm"] == "control", "probability"].eq(0.95).all()
    # the holdout does not depend on the cap; uncapped customers are untouched
    assert ((free["arm"] == HOLDOUT) == (table["arm"] == HOLDOUT)).all()
    pd.testing.assert_frame_equal(
        free[~capped].drop(columns="contact_capped"), table[~capped].drop(columns="contact_capped")
    )
    with pytest.raises(waves.WaveError, match=r"segment\(s\) \['gold/price'\] are not segments"):
        assign(saved, customers.assign(value_tier="gold", needs="price"))
    counts1, _ = waves.contact_counts(pd.DataFrame({"customer_id": [5, 6], "contacts": [3, 0]}))
    assert counts1.to_dict() == {"5": 3.0, "6": 0.0}


def later_wave(saved, n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """A randomized later wave with outcomes drawn from the generator's truth."""
    customers = new_customers(n, seed=seed, start=10_000_000 + seed * n)
    table = waves.assign_wave(
        waves.customer_list(customers, saved.config),
        waves.wave_shares(saved, min_share=0.05),  # every cell gets rows (overlap)
        salt=f"wave-{seed}",
        wave=2,
        control="control",
        holdout_share=0.05,
    )
    truth = saved.prepared.truth.set_index(["arm", "segment"])["p_treated"]
    ctrl = saved.prepared.truth.drop_duplicates("segment").set_index("segment")["p_control"]
    arm = table["arm"].where(table["arm"] != HOLDOUT, "control")
    p = truth.reindex(pd.MultiIndex.from_arrays([arm, table["segment"]])).to_numpy()
    p = np.where(table["arm"] == HOLDOUT, table["segment"].map(ctrl), p)
    table["outcome"] = (np.random.default_rng([seed, 99]).random(len(table)) < p).astype(int)
    return table, truth


def true_value(saved, rows: pd.DataFrame, policy: pd.DataFrame, truth: pd.Series) -> float:
    """Incremental profit per customer of an allocation policy on the wave's (non-holdout)
    customers, from the true conversion rates, in the run's money."""
    value = saved.prepared.values["cross_sell"]
    costs = {a.name: a.cost for a in saved.prepared.data.arm_map.arms}
    rows = rows[rows["arm"] != HOLDOUT]
    share = policy.assign(prob=policy["customers"] / policy["eligible_customers"])
    total = 0.0
    for seg, n in rows["segment"].value_counts().items():
        p0 = truth.loc[("control", seg)]
        for r in share[share["segment"] == seg].itertuples():
            gain = value[seg] * (truth.loc[(r.arm, seg)] - p0) - costs[r.arm]
            total += n * r.prob * gain
    return total / len(rows)


def test_evaluate_policy_covers_the_true_value(saved, finished, tmp_path):
    rows, truth = later_wave(saved, 30_000, seed=11)
    path = tmp_path / "wave2.csv"
    rows.to_csv(path, index=False)
    config = uplift.compose_config(
        [
            "data.synthetic.outcomes=conversion",
            f"wave.run={finished}",
            f"wave.outcomes={path}",
            "wave.level=0.9",
        ]
    )
    summary = waves.evaluate_wave_policy(config, tmp_path / "out", run=saved)
    table = pd.read_csv(tmp_path / "out" / "policy_value.csv")
    assert list(table.columns) == waves.POLICY_VALUE_COLUMNS
    assert list(table["estimator"]) == ["ipw", "snipw", "dm", "dr"]
    allocation = pd.read_csv(finished / "allocation.csv")
    v = true_value(saved, rows, allocation, truth)
    dr = table.set_index("estimator").loc["dr"]
    assert dr["ci_low"] <= v <= dr["ci_high"], (v, dr.to_dict())
    assert dr["planned_total"] == pytest.approx(
        allocation["expected_incremental_profit"].sum(), rel=1e-5
    )
    assert dr["total"] == pytest.approx(dr["estimate"] * dr["customers"], rel=1e-5)
    report = (tmp_path / "out" / "policy_report.md").read_text()
    assert "planned" in report and "realised" in report and "90% interval" in report
    assert summary["status"] == "complete"
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["status"] == "complete"


def test_dr_interval_coverage_over_replications(saved):
    """90% DR intervals cover the true value in about 90% of simulated waves (library direct)."""
    allocation = pd.read_csv(saved.folder / "allocation.csv")
    value = saved.prepared.values["cross_sell"]
    hits = []
    for seed in range(40):
        rows, truth = later_wave(saved, 8_000, seed=100 + seed)
        ev = evaluate_policy(
            rows,
            allocation,
            saved.prepared.data.arm_map,
            value=value,
            outcome_col="outcome",
            propensity="probability",
            level=0.9,
        )
        lo, hi = ev.interval("dr")
        hits.append(lo <= true_value(saved, rows, allocation, truth) <= hi)
    assert 0.75 <= np.mean(hits) <= 1.0  # 40 reps at 0.9: P(<= 0.75) ~ 0.6%


def test_targets_policy(saved, finished, tmp_path):
    """A customer-level policy: wave customers listed in targets.csv get their arm."""
    rows, _ = later_wave(saved, 12_000, seed=5)
    targets = pd.read_csv(finished / "targets.csv")
    # the later wave reaches some of the run's targeted customers
    rows.loc[: len(targets) - 1, "customer_id"] = targets["customer_id"].to_numpy()[: len(rows)]
    path = tmp_path / "wave.csv"
    rows.to_csv(path, index=False)
    config = uplift.compose_config(
        [
            "data.synthetic.outcomes=conversion",
            f"wave.run={finished}",
            f"wave.outcomes={path}",
            "wave.policy=targets",
        ]
    )
    waves.evaluate_wave_policy(config, tmp_path / "out", run=saved)
    table = pd.read_csv(tmp_path / "out" / "policy_value.csv")
    assert (table["policy"] == "targets.csv").all()
    assert table["se"].gt(0).all()


def test_next_wave_cli(finished, tmp_path, no_sampling, uplift_cli):
    customers = new_customers(3_000, seed=6)
    path = tmp_path / "list.csv"
    customers.to_csv(path, index=False)
    history = tmp_path / "contacts.csv"
    pd.DataFrame({"customer_id": customers["customer_id"][:100], "wave": 1}).to_csv(
        history, index=False
    )
    out = tmp_path / "nw"
    r = uplift_cli(
        "next-wave",
        f"wave.run={finished}",
        f"wave.customers={path}",
        f"wave.contacts={history}",
        "wave.max_contacts=1",
        f"hydra.run.dir={out}",
    )
    assert r.returncode == 0, r.stderr
    assert "uplift next-wave:" in r.stdout
    table = pd.read_csv(out / "next_wave_assignment.csv")
    assert list(table.columns[:6]) == waves.ASSIGNMENT_COLUMNS
    assert len(table) == 3_000 and table["wave"].eq(2).all()
    assert table["salt"].eq("synthetic_demo:wave2").all()
    assert table["contact_capped"].sum() == 100
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["wave"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["wave.run=/nonexistent/run"], "wave.run='/nonexistent/run' is not a folder"),
        (["wave.customers=LIST"], "wave.run is not set"),
        (["wave.run=RUN", "wave.customers=NOSEG"], "segment column(s) ['value_tier', 'needs']"),
        (["wave.run=RUN", "wave.customers=NOID"], "column(s) ['customer_id'] missing"),
        (
            ["wave.run=RUN", "wave.customers=/no/such.csv"],
            "wave.customers='/no/such.csv' does not exist",
        ),
        (["wave.run=RUN", "wave.customers=LIST", "wave.max_contacts=2"], "wave.contacts is not"),
        (["wave.bogus=1"], "unknown key 'wave.bogus'"),
    ],
)
def test_next_wave_errors_exit_2(finished, tmp_path, no_sampling, uplift_cli, args, message):
    ok = new_customers(50, seed=7)
    files = {
        "LIST": ok,
        "NOSEG": ok.drop(columns=["needs", "value_tier"]),
        "NOID": ok.drop(columns="customer_id"),
        "BADSEG": ok.assign(value_tier="gold"),
    }
    for name, frame in files.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)

    def filled(arg: str) -> str:
        arg = arg.replace("RUN", str(finished))
        for name in files:
            arg = arg.replace(f"={name}", f"={tmp_path / name}.csv")
        return arg

    args = [filled(a) for a in args]
    r = uplift_cli("next-wave", *args, f"hydra.run.dir={tmp_path / 'o'}")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr, r.stderr


def test_evaluate_policy_errors_exit_2(finished, tmp_path, no_sampling, uplift_cli):
    rows = pd.DataFrame(
        {"customer_id": [1, 2], "segment": ["low/price"] * 2, "arm": ["control"] * 2}
    )
    path = tmp_path / "w.csv"
    rows.to_csv(path, index=False)
    r = uplift_cli(
        "evaluate-policy",
        f"wave.run={finished}",
        f"wave.outcomes={path}",
        f"hydra.run.dir={tmp_path / 'o'}",
    )
    assert r.returncode == 2
    assert "column(s) ['outcome'] missing" in r.stderr
    r = uplift_cli(
        "evaluate-policy",
        f"wave.run={tmp_path / 'nope'}",
        f"wave.outcomes={path}",
        f"hydra.run.dir={tmp_path / 'o2'}",
    )
    assert r.returncode == 2 and "is not a folder" in r.stderr
