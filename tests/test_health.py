"""Health checks: SRM catches broken splits, passes fair ones at its stated rate; balance by SMD."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from uplift.experiment import (
    HealthCheckError,
    assign,
    covariate_balance,
    require_healthy,
    srm_check,
    srm_test,
)


def _frame(counts: dict[str, int], segment: str = "all") -> pd.DataFrame:
    arms = np.concatenate([[a] * n for a, n in counts.items()])
    return pd.DataFrame({"arm": arms, "segment": segment})


def test_broken_split_is_caught() -> None:
    # 51/49 at n = 100k against 50/50: chi2 = 2 * 1000^2 / 50000 = 40, p = 2.5e-10
    frame = _frame({"treatment": 51_000, "control": 49_000})
    res = srm_check(frame, "arm", {"control": 0.5, "treatment": 0.5})
    assert res.overall.chi2 == pytest.approx(40.0)
    assert res.overall.df == 1
    assert res.overall.p_value == pytest.approx(stats.chi2.sf(40.0, 1))
    assert res.overall.p_value < 1e-9
    assert not res.ok
    with pytest.raises(HealthCheckError) as err:
        require_healthy(res, override=False)
    msg = str(err.value)
    assert "overall" in msg
    assert "'control'" in msg or "'treatment'" in msg
    assert "p=2.54e-10" in msg and "alpha=0.001" in msg
    assert "51.00%" in msg or "49.00%" in msg
    assert "override=True" in msg


def test_override_warns_instead_of_raising() -> None:
    res = srm_check(_frame({"a": 5_200, "b": 4_800}), "arm", {"a": 1, "b": 1})
    with pytest.warns(UserWarning, match="override=True"):
        require_healthy(res, override=True)


def test_per_segment_failure_names_the_segment() -> None:
    frame = pd.concat(
        [
            _frame({"control": 5_000, "treatment": 5_000}, "north"),
            _frame({"control": 4_000, "treatment": 6_000}, "south"),
        ],
        ignore_index=True,
    )
    res = srm_check(frame, "arm", {"control": 1, "treatment": 1}, segment_col="segment")
    table = res.table.set_index("segment")
    assert table.loc["south", "flagged"]
    assert not table.loc["north", "flagged"]
    assert table.loc["south", "share_treatment"] == pytest.approx(0.6)
    fails = res.failures
    assert any("segment 'south'" in f for f in fails)
    assert not any("segment 'north'" in f for f in fails)


def test_unexpected_arm_label_is_a_failure() -> None:
    frame = _frame({"control": 5_000, "treatment": 5_000, "treatmnet": 12})
    res = srm_check(frame, "arm", {"control": 1, "treatment": 1})
    assert not res.ok
    assert "'treatmnet' (12 customers)" in res.failures[0]


def test_fair_splits_false_alarm_rate() -> None:
    """2,000 seeded fair 3-arm splits (one per segment) rejected at alpha = 0.01.

    The rejection count is Binomial(2000, 0.01): SE of the rate = sqrt(0.01 * 0.99 / 2000) =
    0.0022; we accept within 3 SE (0.0033 .. 0.0167).
    """
    n_sims, n, alpha = 2_000, 500, 0.01
    w = {"control": 0.5, "a": 0.25, "b": 0.25}
    rng = np.random.default_rng(2024)
    counts = rng.multinomial(n, list(w.values()), size=n_sims)
    arms = np.array(list(w))
    labels = np.concatenate([np.repeat(arms, c) for c in counts])
    seg = np.repeat(np.arange(n_sims), n)
    res = srm_check(pd.DataFrame({"arm": labels, "seg": seg}), "arm", w, "seg", alpha=alpha)
    rate = float(res.table["flagged"].mean())
    se = math.sqrt(alpha * (1 - alpha) / n_sims)
    assert abs(rate - alpha) < 3 * se, rate
    assert res.overall.p_value > 0.001  # pooled over all segments the split is fair


def test_srm_power_on_small_drift() -> None:
    """A 50/50 design that logs 50.5/49.5 is caught at n=200k but not at n=2k (it is about size)."""
    rng = np.random.default_rng(9)
    k = rng.binomial(200_000, 0.505)
    assert srm_test({"a": k, "b": 200_000 - k}, {"a": 1, "b": 1}).flagged
    k = rng.binomial(2_000, 0.505)
    assert not srm_test({"a": k, "b": 2_000 - k}, {"a": 1, "b": 1}).flagged


def test_assignment_passes_srm_and_balance() -> None:
    rng = np.random.default_rng(5)
    n = 20_000
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "segment": rng.choice(["a", "b"], n),
            "spend_pre": rng.gamma(2.0, 30.0, n),
            "orders_pre": rng.poisson(3.0, n),
        }
    )
    arms = {"control": 1, "cross_sell": 1}
    a = assign(frame.customer_id, arms, "health-test", frame.segment)
    frame["arm"] = a.arm.to_numpy()
    srm = srm_check(frame, "arm", arms, "segment")
    bal = covariate_balance(frame, "arm", ["spend_pre", "orders_pre"], "control", "segment")
    assert srm.ok and bal.ok
    require_healthy([srm, bal], override=False)  # no exception
    assert len(bal.table) == 2 * 3  # 2 covariates x (overall + 2 segments), one treated arm
    assert (bal.table.smd.abs() < 0.1).all()


def test_covariate_imbalance_is_flagged_and_named() -> None:
    rng = np.random.default_rng(6)
    n = 10_000
    spend = rng.gamma(2.0, 30.0, n)
    # broken assignment: big spenders more likely to be treated
    treated = rng.random(n) < np.where(spend > np.median(spend), 0.7, 0.3)
    frame = pd.DataFrame({"arm": np.where(treated, "up_sell", "control"), "spend_pre": spend})
    bal = covariate_balance(frame, "arm", ["spend_pre"], control="control")
    row = bal.table.iloc[0]
    x, c = spend[treated], spend[~treated]
    want = (x.mean() - c.mean()) / math.sqrt((x.var(ddof=1) + c.var(ddof=1)) / 2)
    assert row.smd == pytest.approx(want)
    assert row.flagged
    with pytest.raises(HealthCheckError, match=r"'spend_pre' in arm 'up_sell' has SMD \+0\.\d+"):
        require_healthy(bal, override=False)


def test_input_errors_name_the_problem() -> None:
    frame = _frame({"control": 10, "treatment": 10})
    with pytest.raises(ValueError, match=r"columns \['arms'\] not in frame"):
        srm_check(frame, "arms", {"control": 1, "treatment": 1})
    with pytest.raises(ValueError, match="at least two arms"):
        srm_check(frame, "arm", {"control": 1})
    with pytest.raises(ValueError, match="control arm 'ctl' not found"):
        covariate_balance(frame.assign(x=1.0), "arm", ["x"], control="ctl")
