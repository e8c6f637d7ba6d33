from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.data.synthetic import generate
from uplift.tactics import Tactic


def test_deterministic(arm_map):
    a = generate(arm_map, n_customers=5000, seed=3)
    b = generate(arm_map, n_customers=5000, seed=3)
    pd.testing.assert_frame_equal(a.customers, b.customers)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    c = generate(arm_map, n_customers=5000, seed=4)
    assert not a.customers["converted"].equals(c.customers["converted"])


def test_truth_covers_every_tactic_and_segment(synthetic, arm_map):
    t = synthetic.truth
    # cost_to_serve (a tactic whose benefit is the serving cost saved) is not in the demo
    assert set(t["tactic"]) == {x.value for x in Tactic} - {Tactic.COST_TO_SERVE.value}
    assert t.groupby("arm")["segment"].nunique().eq(12).all()
    treated = t[t["tactic"] != "control"]
    assert (treated["true_uplift"] > 0).mean() > 0.7  # most tactics help somewhere ...
    assert (treated["true_uplift"] <= 0).any()  # ... but not everywhere
    assert np.allclose(t["true_uplift"], t["p_treated"] - t["p_control"])


def test_data_follow_truth(arm_map):
    """Empirical conversion per arm and tier matches the truth within binomial error."""
    exp = generate(arm_map, n_customers=400_000, seed=5)
    obs = exp.customers.assign(segment=exp.customers["value_tier"] + "/" + exp.customers["needs"])
    emp = obs.groupby(["arm", "segment"])["converted"].agg(["mean", "size"])
    truth = exp.truth.set_index(["arm", "segment"]).reindex(emp.index)
    z = (emp["mean"] - truth["p_treated"]) / np.sqrt(
        truth["p_treated"] * (1 - truth["p_treated"]) / emp["size"]
    )
    assert np.abs(z).max() < 4.0
    conv = obs[obs["converted"] == 1]
    mean_rev = conv.groupby("value_tier")["revenue"].mean()
    rpc = exp.truth.groupby("value_tier")["revenue_per_conversion"].first()
    assert np.allclose(mean_rev.reindex(rpc.index), rpc, rtol=0.05)
    assert (obs.loc[obs["converted"] == 0, ["revenue", "orders"]] == 0).all().all()


def test_write_puts_truth_next_to_data(tmp_path, arm_map):
    customers_path, truth_path = generate(arm_map, n_customers=1000, seed=1).write(tmp_path)
    assert customers_path.parent == truth_path.parent == tmp_path
    assert len(pd.read_parquet(customers_path)) == 1000
    assert {"true_uplift", "segment", "arm"} <= set(pd.read_csv(truth_path).columns)


# ---- per_tactic: each tactic moves its own outcome (the demo's generator) --------------------

PRICES = {"control": 1.0, "discount_10pct": 0.9}


def _per_tactic(arm_map, n: int, seed: int):
    return generate(
        arm_map,
        n_customers=n,
        seed=seed,
        tier_shares=[0.5, 0.35, 0.15],
        outcomes="per_tactic",
        margin=0.4,
        prices=PRICES,
    )


def test_per_tactic_is_deterministic_and_leaves_the_conversion_mode_alone(arm_map):
    a, b = _per_tactic(arm_map, 5000, 3), _per_tactic(arm_map, 5000, 3)
    pd.testing.assert_frame_equal(a.customers, b.customers)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    old = generate(arm_map, n_customers=5000, seed=3)
    assert (old.truth["outcome"].isin(["", "conversion"])).all()
    # the default mode's money is the old oracle's: margin x revenue per conversion x uplift
    assert np.allclose(
        old.truth["true_value_per_customer"],
        0.4 * old.truth["revenue_per_conversion"] * old.truth["true_uplift"],
    )


def test_per_tactic_data_follow_the_truth_on_every_scale(arm_map):
    """Empirical conversion, orders and revenue per customer of every (arm, segment) match the
    truth table within a few standard errors (252 z-scores: |z| < 4.5)."""
    exp = _per_tactic(arm_map, 400_000, 5)
    obs = exp.customers.assign(segment=exp.customers["value_tier"] + "/" + exp.customers["needs"])
    truth = exp.truth.set_index(["arm", "segment"])
    for col, true in (
        ("converted", "p_treated"),
        ("orders", "orders_treated"),
        ("revenue", "revenue_treated"),
    ):
        g = obs.groupby(["arm", "segment"])[col].agg(["mean", "std", "size"])
        z = (g["mean"] - truth[true].reindex(g.index)) / (g["std"] / np.sqrt(g["size"]))
        assert np.abs(z).max() < 4.5, (col, z.abs().idxmax(), z.abs().max())
    assert ((obs["orders"] > 0) == (obs["converted"] == 1)).all()
    assert (obs.loc[obs["converted"] == 0, "revenue"] == 0).all()


def test_per_tactic_outcomes_are_the_families_own(arm_map):
    """Control and the count arms: NB orders (zero share (a / (a + mu))^a); the price arm:
    purchase logit a + b log(0.9) with b < 0 and buyers paying 0.9 x list; up-sell: spend per
    order shifted by the truth's log-mean shift."""
    from uplift.data.synthetic import ORDERS_ALPHA

    exp = _per_tactic(arm_map, 400_000, 6)
    t = exp.truth
    c = exp.customers.assign(segment=exp.customers["value_tier"] + "/" + exp.customers["needs"])
    assert set(t.loc[t["tactic"] == "frequency", "outcome"]) == {"orders"}
    assert set(t.loc[t["tactic"] == "referral", "outcome"]) == {"orders"}
    assert set(t.loc[t["tactic"] == "up_sell", "outcome"]) == {"revenue"}
    assert set(t.loc[t["tactic"] == "margin", "outcome"]) == {"price"}
    for arm in ("control", "loyalty_points", "referral_bonus"):
        rows = c[c["arm"] == arm]
        g = rows.groupby("segment")["orders"].agg(zero=lambda x: (x == 0).mean(), n="size")
        mu = t[t["arm"] == arm].set_index("segment")["orders_treated"].reindex(g.index)
        p0 = (ORDERS_ALPHA / (ORDERS_ALPHA + mu)) ** ORDERS_ALPHA
        z = (g["zero"] - p0) / np.sqrt(p0 * (1 - p0) / g["n"])
        assert np.abs(z).max() < 4.0, arm
        assert (
            rows.groupby("segment")["orders"].var() > rows.groupby("segment")["orders"].mean()
        ).all()
    m = t[t["tactic"] == "margin"]
    assert (m["true_elasticity"] < 0).all() and np.allclose(m["price"], 0.9)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    assert np.allclose(
        logit(m["p_treated"]) - logit(m["p_control"]), m["true_elasticity"] * np.log(0.9)
    )
    # buyers of the discount pay 0.9 x what a control buyer pays for the same orders
    buyers = c[c["converted"] == 1]
    per_order = (buyers["revenue"] / buyers["orders"]).groupby([buyers["arm"], buyers["segment"]])
    ratio = np.log(per_order.mean().loc["discount_10pct"] / per_order.mean().loc["control"])
    assert abs(ratio.mean() - np.log(0.9)) < 0.03
    up = t[t["tactic"] == "up_sell"].set_index("segment")["true_log_spend_shift"]
    log_spend = np.log(buyers["revenue"] / buyers["orders"]).groupby(
        [buyers["arm"], buyers["segment"]]
    )
    shift = log_spend.mean().loc["upgrade_offer"] - log_spend.mean().loc["control"]
    se = np.sqrt(
        (log_spend.var() / log_spend.size()).loc["upgrade_offer"]
        + (log_spend.var() / log_spend.size()).loc["control"]
    )
    assert np.abs((shift - up.reindex(shift.index)) / se).max() < 4.0


def test_per_tactic_money_follows_each_tactics_value_rule(arm_map):
    t = _per_tactic(arm_map, 1000, 7).truth
    v, m = t["true_value_per_customer"], 0.4
    plain = t["tactic"].isin(["cross_sell", "up_sell", "frequency", "retention"])
    assert np.allclose(v[plain], m * t.loc[plain, "true_revenue_uplift"])
    ctl = t[t["arm"] == "control"]
    referred = (ctl["segment_share"] * m * ctl["revenue_per_conversion"]).sum()
    assert np.isclose(ctl["segment_share"].sum(), 1.0)
    ref = t["tactic"] == "referral"
    assert np.allclose(v[ref], t.loc[ref, "true_orders_uplift"] * referred)
    pr = t[t["tactic"] == "margin"]
    # profit at 0.9 of list with goods at 0.6 of list, minus profit at list
    want = pr["revenue_per_conversion"] * (0.3 * pr["p_treated"] - 0.4 * pr["p_control"])
    assert np.allclose(v[pr.index], want)
    assert np.allclose(t["true_profit_per_customer"], v - t["cost"])
    # most tactics pay somewhere and none everywhere: the plan has choices to make
    treated = t[t["tactic"] != "control"]
    assert (treated.groupby("tactic")["true_profit_per_customer"].max() > 0).sum() >= 4
    assert (treated["true_profit_per_customer"] < 0).any()
