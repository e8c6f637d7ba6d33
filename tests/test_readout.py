"""Readout: expected losses match GrowthBook's closed form, P(uplift>0) the normal approximation,
the ship / keep testing / stop rule does what its docstring says, guardrails and the SRM gate bite."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from uplift.experiment import (
    KEEP_TESTING,
    READOUT_COLUMNS,
    SHIP,
    STOP,
    DecisionRule,
    Guardrail,
    HealthCheckError,
    normal_expected_loss,
    profit_draws,
    readout,
    readout_table,
    srm_check,
)
from uplift.experiment.health import OVERALL
from uplift.tactics import ArmMap


def _draws(x: np.ndarray, arms: list[str], segments: list[str]) -> xr.DataArray:
    return xr.DataArray(
        x, dims=("sample", "arm", "segment"), coords={"arm": arms, "segment": segments}
    )


def _normal_cells(
    cells: list[tuple[float, float]], n: int = 200_000, seed: int = 0
) -> xr.DataArray:
    """One arm per (mu, sigma), one segment, exactly normal draws."""
    rng = np.random.default_rng(seed)
    x = np.stack([rng.normal(mu, sd, size=n) for mu, sd in cells], axis=1)[:, :, None]
    return _draws(x, [f"arm{i}" for i in range(len(cells))], ["all"])


NORMAL_CELLS = [(0.5, 1.0), (-0.3, 0.8), (0.05, 0.02), (0.0, 1.0), (-2.0, 0.5), (1.2, 3.0)]


def test_expected_losses_match_growthbook_closed_form() -> None:
    """MC estimates of E[max(0, -X)] and E[max(0, X)] within 4 MC standard errors of the formula.

    Measured: the largest |MC - closed form| / MC SE over the 6 cells x 2 losses is < 2.5.
    """
    da = _normal_cells(NORMAL_CELLS)
    costs = {a: 0.0 for a in da["arm"].values}
    t = readout_table(da, 1.0, costs).set_index("arm")
    worst = 0.0
    for i, (mu, sd) in enumerate(NORMAL_CELLS):
        x = da.values[:, i, 0]
        ship, hold = normal_expected_loss(mu, sd)
        row = t.loc[f"arm{i}"]
        for mc, exact, samples in (
            (row.expected_loss_ship, ship, np.maximum(0, -x)),
            (row.expected_loss_hold, hold, np.maximum(0, x)),
        ):
            se = samples.std(ddof=1) / math.sqrt(len(x))
            z = abs(mc - exact) / max(se, 1e-12)
            worst = max(worst, z)
            assert z < 4, (mu, sd, mc, exact, se)
        # hold - ship = E[X] = mu, exactly in closed form
        assert hold - ship == pytest.approx(mu, abs=1e-12)
        p = stats.norm.cdf(mu / sd)
        assert row.prob_profit_positive == pytest.approx(
            p, abs=4 * math.sqrt(p * (1 - p) / len(x)) + 1e-9
        )
    assert worst < 4


def test_value_and_cost_turn_uplift_into_profit() -> None:
    """profit = value * uplift - cost is N(v mu - c, v sigma): losses follow the closed form of that."""
    mu, sd, v, c = 0.03, 0.01, 40.0, 1.0
    da = _normal_cells([(mu, sd)], seed=1)
    t = readout_table(da, pd.Series({"all": v}), {"arm0": c}).iloc[0]
    ship, hold = normal_expected_loss(v * mu - c, v * sd)
    assert t.profit_mean == pytest.approx(v * mu - c, abs=4 * v * sd / math.sqrt(200_000))
    assert t.expected_loss_ship == pytest.approx(ship, rel=0.02)
    assert t.expected_loss_hold == pytest.approx(hold, rel=0.02)
    assert t.prob_uplift_positive == pytest.approx(stats.norm.cdf(mu / sd), abs=0.003)
    pd_ = profit_draws(da, v, {"arm0": c})
    np.testing.assert_allclose(pd_.values, v * da.values - c)


def test_binomial_prob_positive_matches_normal_approximation() -> None:
    """Beta posteriors of large cells: P(p_t - p_c > 0) = Phi(diff / se) within 0.01."""
    rng = np.random.default_rng(7)
    n = 50_000
    pc = np.array([0.040, 0.100, 0.200])
    pt = np.array([0.0415, 0.1030, 0.1985])
    segs = ["a", "b", "c"]
    kc = rng.binomial(n, pc)
    kt = rng.binomial(n, pt)
    S = 100_000
    draws = rng.beta(1 + kt, 1 + n - kt, size=(S, 3)) - rng.beta(1 + kc, 1 + n - kc, size=(S, 3))
    t = readout_table(_draws(draws[:, None, :], ["offer"], segs), 1.0, {"offer": 0.0})
    ht, hc = kt / n, kc / n
    se = np.sqrt(ht * (1 - ht) / n + hc * (1 - hc) / n)
    want = stats.norm.cdf((ht - hc) / se)
    got = t.set_index("segment").loc[segs, "prob_uplift_positive"].to_numpy()
    np.testing.assert_allclose(got, want, atol=0.01)
    assert (want > 0.05).any() and (want < 0.95).any()  # the check is not trivially 0 or 1


def test_decision_rule() -> None:
    """ship / keep testing / stop, each triggered by the condition the docstring names."""
    cells = [
        (2.0, 0.5),  # clearly profitable -> ship
        (-2.0, 0.5),  # clearly unprofitable -> stop (P <= 0.05)
        (0.1, 1.0),  # uncertain -> keep testing
        (-0.02, 0.02),  # little upside left: E[max(0, X)] ~ 0.0017 <= 0.01 -> stop
    ]
    da = _normal_cells(cells, n=40_000, seed=3)
    t = readout_table(da, 1.0, {a: 0.0 for a in da["arm"].values}).set_index("arm")
    assert t.recommendation.tolist() == [SHIP, STOP, KEEP_TESTING, STOP]
    assert "P(profit>0)" in t.loc["arm1", "reason"] and "<= 0.05" in t.loc["arm1", "reason"]
    assert "too little upside" in t.loc["arm3", "reason"]
    # a looser tolerance ships the uncertain-but-positive cell only once loss <= tolerance holds
    loose = readout_table(
        da, 1.0, {a: 0.0 for a in da["arm"].values}, rule=DecisionRule(ship_prob=0.5, tolerance=1.0)
    ).set_index("arm")
    assert loose.loc["arm2", "recommendation"] == SHIP
    with pytest.raises(ValueError, match="stop_prob < ship_prob"):
        DecisionRule(ship_prob=0.05, stop_prob=0.95)


def test_guardrails_non_inferiority() -> None:
    da = _normal_cells([(2.0, 0.5)] * 3, n=20_000, seed=4)  # all would ship on profit alone
    arms = list(da["arm"].values)
    rng = np.random.default_rng(5)
    g = np.stack(
        [
            rng.normal(0.0, 0.001, 20_000),  # well inside the margin -> pass
            rng.normal(-0.01, 0.01, 20_000),  # P(> -0.01) = 0.5 -> inconclusive
            rng.normal(-0.05, 0.005, 20_000),  # clearly worse than -0.01 -> stop
        ],
        axis=1,
    )[:, :, None]
    guard = Guardrail("orders", _draws(g, arms, ["all"]), margin=0.01)
    res = readout(da, 1.0, {a: 0.0 for a in arms}, guardrails=[guard])
    t = res.table.set_index("arm")
    assert t.recommendation.tolist() == [SHIP, KEEP_TESTING, STOP]
    assert "orders" in t.loc["arm1", "reason"] and not t.loc["arm1", "guardrails_passed"]
    gt = res.guardrails.set_index("arm")
    assert gt.passed.tolist() == [True, False, False]
    assert gt.loc["arm1", "prob_non_inferior"] == pytest.approx(0.5, abs=0.02)
    # a lower-is-better guardrail (unsubscribes): a rise beyond the margin is what fails
    up = Guardrail("unsubscribes", _draws(-g, arms, ["all"]), margin=0.01, higher_is_better=False)
    t2 = readout_table(da, 1.0, {a: 0.0 for a in arms}, guardrails=[up]).set_index("arm")
    assert t2.recommendation.tolist() == [SHIP, KEEP_TESTING, STOP]
    partial = Guardrail("orders", _draws(g[:, :1], arms[:1], ["all"]), margin=0.01)
    with pytest.raises(ValueError, match=r"no draws for arm\(s\) \['arm1', 'arm2'\]"):
        readout_table(da, 1.0, {a: 0.0 for a in arms}, guardrails=[partial])


def test_health_gate() -> None:
    da = _normal_cells([(1.0, 0.5)], n=2_000)
    bad = srm_check(
        pd.DataFrame({"arm": ["control"] * 5_300 + ["arm0"] * 4_700}),
        "arm",
        {"control": 1, "arm0": 1},
    )
    assert not bad.ok
    with pytest.raises(HealthCheckError, match="override=True"):
        readout(da, 1.0, {"arm0": 0.0}, health=bad)
    with pytest.warns(UserWarning, match="override=True"):
        res = readout(da, 1.0, {"arm0": 0.0}, health=bad, override=True)
    assert res.overridden_failures and "SRM overall" in res.overridden_failures[0]
    good = srm_check(
        pd.DataFrame({"arm": ["control"] * 5_000 + ["arm0"] * 5_000}),
        "arm",
        {"control": 1, "arm0": 1},
    )
    assert readout(da, 1.0, {"arm0": 0.0}, health=good).overridden_failures == []


def test_table_shape_tactics_sizes_and_overall() -> None:
    arm_map = ArmMap.from_mapping(
        {
            "control": {"tactic": "control"},
            "email": {"tactic": "cross_sell", "cost": 0.5},
            "call": {"tactic": "retention", "cost": 3.0},
        }
    )
    rng = np.random.default_rng(9)
    x = rng.normal([[0.02, 0.01], [0.05, 0.08]], 0.01, size=(4_000, 2, 2))
    da = _draws(x, ["email", "call"], ["new", "loyal"])
    sizes = pd.Series({"new": 1_000, "loyal": 3_000})
    value = pd.Series({"new": 40.0, "loyal": 60.0})
    t = readout_table(da, value, arm_map, segment_sizes=sizes, metric="conversion")
    assert list(t.columns) == READOUT_COLUMNS
    assert set(t.recommendation) <= {SHIP, KEEP_TESTING, STOP}
    assert dict(zip(t.arm, t.tactic, strict=True)) == {"email": "cross_sell", "call": "retention"}
    assert (t.metric == "conversion").all()
    r = t.set_index(["arm", "segment"])
    assert r.loc[("call", "loyal"), "expected_loss_ship_total"] == pytest.approx(
        3_000 * r.loc[("call", "loyal"), "expected_loss_ship"]
    )
    # the __overall__ row is the size-weighted per-customer uplift and profit
    w = np.array([0.25, 0.75])
    assert r.loc[("email", OVERALL), "mean"] == pytest.approx(float(x[:, 0, :].mean(0) @ w))
    prof = x[:, 0, :] * value.to_numpy() - 0.5
    assert r.loc[("email", OVERALL), "profit_mean"] == pytest.approx(float(prof.mean(0) @ w))
    assert r.loc[("email", OVERALL), "segment_size"] == 4_000
    # a mapping tactic -> draws gives the same numbers
    t2 = readout_table({"cross_sell": da.sel(arm=["email"])}, value, arm_map, metric="conversion")
    pd.testing.assert_series_equal(
        t2.set_index(["arm", "segment"])["profit_mean"],
        r.drop(index=OVERALL, level="segment").loc[["email"], "profit_mean"],
    )


def test_errors_name_what_is_missing() -> None:
    da = _normal_cells([(1.0, 0.5)], n=100)
    with pytest.raises(ValueError, match=r"no offer cost for arm\(s\) \['arm0'\]"):
        readout_table(da, 1.0, {"other": 1.0})
    with pytest.raises(ValueError, match=r"no entry for segment\(s\) \['all'\]"):
        readout_table(da, pd.Series({"north": 1.0}), {"arm0": 0.0})
    with pytest.raises(ValueError, match="dims must be"):
        readout_table(da.isel(segment=0), 1.0, {"arm0": 0.0})
    # chain/draw posteriors are stacked for you
    cd = xr.DataArray(
        np.zeros((2, 50, 1, 1)) + 1.0,
        dims=("chain", "draw", "arm", "segment"),
        coords={"arm": ["arm0"], "segment": ["all"]},
    )
    assert readout_table(cd, 1.0, {"arm0": 0.0}).n_draws.iloc[0] == 100
