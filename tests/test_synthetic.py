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
