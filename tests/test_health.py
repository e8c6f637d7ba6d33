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
from uplift.experiment.health import SRMResult, holm_adjusted


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
    rate = float((res.table["p_value"] < alpha).mean())  # each raw test holds its level
    se = math.sqrt(alpha * (1 - alpha) / n_sims)
    assert abs(rate - alpha) < 3 * se, rate
    assert res.overall.p_value > 0.001  # pooled over all segments the split is fair
    assert res.ok and not res.table["flagged"].any()  # the family of 2,000 raises no alarm


def test_many_fair_segments_raise_a_false_alarm_at_most_alpha_of_the_time() -> None:
    """Family-wise error of the per-segment check: 600 seeded fair experiments of 144 segments
    (5 arms, unequal shares, 150-3,000 customers a segment) at alpha = 0.05.

    Unadjusted, some segment is flagged in 1 - 0.95^144 ~ all of them; Holm keeps the share of
    experiments with any flag at or below alpha: Binomial(600, <= 0.05), so <= 0.05 + 3 SE
    (0.077). Each raw test still rejects about alpha of the time (the adjustment is the fix)."""
    reps, segments, alpha = 600, 144, 0.05
    w = np.array([0.3, 0.2, 0.2, 0.2, 0.1])
    arms = {f"arm{i}": float(x) for i, x in enumerate(w)}
    rng = np.random.default_rng(11)
    any_flag, raw_rate = 0, 0.0
    for _ in range(reps):
        sizes = rng.integers(150, 3_000, size=segments)
        tests = [
            srm_test(
                dict(zip(arms, rng.multinomial(n, w).tolist(), strict=True)),
                arms,
                alpha,
                segment=f"s{g}",
            )
            for g, n in enumerate(sizes)
        ]
        res = SRMResult(
            overall=srm_test({"arm0": 3, "arm1": 2, "arm2": 2, "arm3": 2, "arm4": 1}, arms, alpha),
            segments=tests,
            alpha=alpha,
        )
        any_flag += int(any(t.flagged for t in res.segments))
        raw_rate += float(np.mean([t.p_value < alpha for t in res.segments])) / reps
    se = math.sqrt(alpha * (1 - alpha) / reps)
    assert any_flag / reps <= alpha + 3 * se, any_flag / reps
    assert abs(raw_rate - alpha) < 0.01, raw_rate


def test_one_broken_segment_among_many_is_still_caught() -> None:
    """Power after the adjustment: 143 fair segments and one whose treated arm lost a tenth of
    its customers (3,000 customers a segment): flagged, named, and alone."""
    rng = np.random.default_rng(5)
    w = {"control": 0.5, "treatment": 0.5}
    tests = []
    for g in range(144):
        k = int(rng.binomial(3_000, 0.5 if g else 0.45))
        tests.append(srm_test({"control": 3_000 - k, "treatment": k}, w, segment=f"s{g}"))
    res = SRMResult(
        overall=srm_test({"control": 1, "treatment": 1}, w), segments=tests, alpha=0.001
    )
    assert [t.segment for t in res.segments if t.flagged] == ["s0"]
    assert "Holm-adjusted over the segments" in res.failures[0]
    assert res.table.loc[0, "p_adjusted"] >= res.table.loc[0, "p_value"]


def test_holm_adjustment_matches_its_definition() -> None:
    """Exact values by hand: p = (0.01, 0.04, 0.03, 0.5) -> sorted 0.01 x 4, 0.03 x 3, 0.04 x 2,
    0.5 x 1 = 0.04, 0.09, 0.08 -> running max 0.09, then 0.5."""
    adj = holm_adjusted([0.01, 0.04, 0.03, 0.5])
    np.testing.assert_allclose(adj, [0.04, 0.09, 0.09, 0.5])
    assert holm_adjusted([]).size == 0
    np.testing.assert_allclose(holm_adjusted([0.6, 0.7]), [1.0, 1.0])


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
