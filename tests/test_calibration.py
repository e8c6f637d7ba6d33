"""Calibration study: generators whose truth is the expected effect, exact summary arithmetic,
and (slow) 90% intervals of every family covering the truth in 85-95% of cells over 20 seeded
replications, with posterior means much closer to the truth than unpooled differences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uplift.evaluate.calibration import (
    FAMILIES,
    coverage_breakdown,
    coverage_study,
    naive_effects,
    simulate,
    summarize_coverage,
)
from uplift.models import SamplerSettings
from uplift.models.conversion import ConversionUpliftModel
from uplift.models.counts import NegBinomialCountModel
from uplift.models.price import PriceResponseModel
from uplift.models.revenue import HurdleRevenueModel


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("family", FAMILIES)
def test_sample_differences_converge_to_truth(family):
    """~750k customers in 6 segments: per-cell differences in sample means sit within sampling
    error of the truth, and the precision-weighted slope of sample difference on truth is 1
    (tight enough to catch a 25-40% scale error, e.g. a lognormal mean without s^2/2)."""
    exp = simulate(family, 6, n_segments=6, size_range=(100_000, 150_000))
    nv = naive_effects(exp)
    assert len(nv) == len(exp.truth) and nv["truth"].notna().all()
    z = (nv["estimate"] - nv["truth"]) / nv["se"]
    assert np.abs(z).max() < 4.5
    assert np.mean(z**2) < 3.0  # ~1 if the truth is the expectation (controls shared: correlated)
    w = 1.0 / nv["se"] ** 2
    slope = np.sum(w * nv["truth"] * nv["estimate"]) / np.sum(w * nv["truth"] ** 2)
    slope_se = 1.0 / np.sqrt(np.sum(w * nv["truth"] ** 2))
    assert slope_se < 0.15  # the check has power
    assert abs(slope - 1.0) < 4 * slope_se


def test_truth_is_the_effect_of_the_parameters():
    """Truth = expected metric per treated customer given the segment's parameters."""
    t = simulate("binomial", 1).truth
    np.testing.assert_allclose(t["truth"], t["p_treated"] - t["p_control"], atol=1e-15)
    t = simulate("hurdle_lognormal", 1).truth
    np.testing.assert_allclose(
        t["truth"], t["p_treated"] * t["spend_treated"] - t["p_control"] * t["spend_control"]
    )
    t = simulate("negative_binomial", 1).truth
    np.testing.assert_allclose(t["truth"], t["mu_treated"] - t["mu_control"], atol=1e-15)
    exp = simulate("price_logit", 1)
    t = exp.truth
    price = t["arm"].map(exp.prices).to_numpy()
    p_arm = _expit(t["a"] + t["b"] * np.log(price / 10.0))
    np.testing.assert_allclose(t["truth"], p_arm - _expit(t["a"]), rtol=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_generators_have_plausible_marketing_numbers(family):
    exp = simulate(family, 2)
    t, cells = exp.truth, exp.cells
    n_seg = t["segment"].nunique()
    assert 12 <= n_seg <= 24
    assert cells.groupby("segment")["n"].sum().agg(lambda s: s.max() / s.min()) > 5
    assert cells["n"].min() < 250  # some small cells
    if family in ("binomial", "hurdle_lognormal", "price_logit"):
        assert t["p_control"].between(0.02, 0.15).all()
    if family in ("binomial", "hurdle_lognormal"):
        up = t["p_treated"] - t["p_control"]
        assert up.between(0.0, 0.03 + 1e-12).all() and (up == 0).any() and up.max() > 0.01
        assert t["arm"].nunique() == 2
    if family == "price_logit":
        assert (t["b"] < 0).all() and t["arm"].nunique() == 4
    again = simulate(family, 2)
    pd.testing.assert_frame_equal(again.truth, t)
    pd.testing.assert_frame_equal(again.cells, cells)
    assert not simulate(family, 3).truth["truth"].equals(t["truth"])


def test_experiment_builds_the_family_model():
    kinds = {
        "binomial": ConversionUpliftModel,
        "hurdle_lognormal": HurdleRevenueModel,
        "negative_binomial": NegBinomialCountModel,
        "price_logit": PriceResponseModel,
    }
    for family, cls in kinds.items():
        exp = simulate(family, 0, n_segments=4, size_range=(200, 400))
        model = exp.model()
        assert isinstance(model, cls)
        built = model.build_model(exp.cells, exp.tactic)
        assert list(built.coords["segment"]) == sorted(exp.truth["segment"].unique())
        assert set(built.coords["arm"]) == set(exp.truth["arm"])


def test_additive_lift_is_independent_of_the_baseline():
    rel = simulate("binomial", 4, n_segments=24, lift="relative").truth
    add = simulate("binomial", 4, n_segments=24, lift="additive").truth
    ratio = lambda t: (t["truth"] / t["p_control"])[t["truth"] > 0]  # noqa: E731
    # relative lifts stay modest; additive pp lifts give small baselines lifts of 50%+
    assert ratio(rel).median() < 0.4 and ratio(add).max() > ratio(rel).max()


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="family must be one of"):
        simulate("poisson", 0)
    with pytest.raises(ValueError, match="n_arms"):
        simulate("binomial", 0, n_arms=3)
    with pytest.raises(ValueError, match="n_segments"):
        simulate("binomial", 0, n_segments=1)
    with pytest.raises(ValueError, match="size_range"):
        simulate("negative_binomial", 0, size_range=(10, 5))
    with pytest.raises(ValueError, match="lift must be one of"):
        simulate("hurdle_lognormal", 0, lift="multiplicative")
    with pytest.raises(ValueError, match="replications"):
        coverage_study("binomial", replications=0)
    with pytest.raises(ValueError, match="interval"):
        coverage_study("binomial", interval=90)
    with pytest.raises(ValueError, match="family must be one of"):
        coverage_study("logit")


def _hand_table() -> pd.DataFrame:
    """Two replications of four cells; every number below is worked out by hand."""
    return pd.DataFrame(
        {
            "family": "binomial",
            "replication": [0] * 4 + [1] * 4,
            "truth": [1.0, 2.0, 3.0, 4.0] * 2,
            "mean": [1.5, 2.0, 2.0, 4.0, 1.0, 3.0, 3.0, 2.0],
            "low": [0.0, 1.0, 2.5, 3.0, 1.5, 0.0, 2.0, 4.5],
            "high": [2.0, 3.0, 3.5, 5.0, 2.5, 1.5, 4.0, 6.0],
            "naive": [2.0, 2.0, 3.0, 6.0, 1.0, 2.0, 3.0, 4.0],
            "r_hat_max": [1.005] * 4 + [1.02] * 4,
            "ess_bulk_min": [500.0] * 4 + [1000.0] * 4,
            "ess_tail_min": [450.0] * 4 + [1000.0] * 4,
            "divergences": [0] * 4 + [3] * 4,
            "seconds": [2.0] * 4 + [3.0] * 4,
        }
    ).assign(covered=lambda d: (d["low"] <= d["truth"]) & (d["truth"] <= d["high"]))


def test_summary_arithmetic_on_a_hand_made_table():
    table = _hand_table()
    # rep 0 covers 4/4; rep 1 covers only truth 3: truth 1 and 4 fall below, truth 2 above
    assert table["covered"].tolist() == [True] * 4 + [False, False, True, False]
    s = summarize_coverage(table)
    assert (s.family, s.replications, s.cells) == ("binomial", 2, 8)
    assert s.coverage == pytest.approx(5 / 8)
    assert s.se_binomial == pytest.approx(np.sqrt(5 / 8 * 3 / 8 / 8))
    assert s.se_between == pytest.approx(np.std([1.0, 0.25], ddof=1) / np.sqrt(2))  # 0.375
    assert (s.rep_min, s.rep_max) == (0.25, 1.0)
    assert s.mae == pytest.approx((0.5 + 0 + 1 + 0 + 0 + 1 + 0 + 2) / 8)
    assert s.mae_naive == pytest.approx((1 + 0 + 0 + 2 + 0 + 0 + 0 + 0) / 8)
    assert s.bias == pytest.approx(-1.5 / 8)
    assert s.bias_se == pytest.approx(np.std([-0.5 / 4, -1.0 / 4], ddof=1) / np.sqrt(2))
    assert s.effect_scale == pytest.approx(2.5)
    assert s.width == pytest.approx((2 + 2 + 1 + 2 + 1 + 1.5 + 2 + 1.5) / 8)
    assert (s.r_hat_max, s.ess_bulk_min, s.divergences) == (1.02, 500.0, 3)
    assert s.diag_fail_share == 0.5  # rep 1 fails r-hat and divergences
    assert s.seconds == 5.0
    assert not s.within() and s.within(0.6, 0.7)
    lenient = summarize_coverage(table, gate={"r_hat_max": 1.05, "divergences_max": 5})
    assert lenient.diag_fail_share == 0.0
    strict = summarize_coverage(table, gate={"ess_bulk_min": 800})
    assert strict.diag_fail_share == 1.0
    tail = table.assign(ess_tail_min=[300.0] * 4 + [1000.0] * 4)  # tail ESS is gated too
    assert (
        summarize_coverage(tail, gate={"r_hat_max": 1.05, "divergences_max": 5}).diag_fail_share
        == 0.5
    )
    bare = summarize_coverage(table[["replication", "truth", "mean", "low", "high", "covered"]])
    assert bare.coverage == s.coverage and np.isnan(bare.r_hat_max) and np.isnan(bare.mae_naive)


def test_breakdown_splits_misses_by_side():
    out = coverage_breakdown(_hand_table(), "truth", bins=2)
    assert out["cells"].tolist() == [4, 4]
    assert out[["truth_low", "truth_high"]].to_numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]
    np.testing.assert_allclose(out["coverage"], [0.5, 0.75])
    np.testing.assert_allclose(out["below"], [0.25, 0.25])  # truth 1 < 1.5; truth 4 < 4.5
    np.testing.assert_allclose(out["above"], [0.25, 0.0])  # truth 2 > 1.5


def test_summary_rejects_bad_tables():
    with pytest.raises(ValueError, match="lacks columns"):
        summarize_coverage(_hand_table().drop(columns="covered"))
    with pytest.raises(ValueError, match="empty"):
        summarize_coverage(_hand_table().iloc[:0])
    with pytest.raises(ValueError, match="gate keys"):
        summarize_coverage(_hand_table(), gate={"rhat": 1.1})
    with pytest.raises(ValueError, match="not in the coverage table"):
        coverage_breakdown(_hand_table(), "segment_size")


def test_tiny_study_runs_end_to_end():
    """2 replications with short chains: the code path, seeds and bookkeeping, not calibration."""
    sampler = SamplerSettings(draws=150, tune=150, chains=2, seed=3)
    table = coverage_study("binomial", replications=2, seed=3, sampler=sampler, n_segments=6)
    assert len(table) == 2 * 2 * 6
    assert table.groupby("replication").size().tolist() == [12, 12]
    assert (table["low"] <= table["mean"]).all() and (table["mean"] <= table["high"]).all()
    inside = (table["low"] <= table["truth"]) & (table["truth"] <= table["high"])
    assert table["covered"].equals(inside)
    # the truth scored is the generator's for data seed [seed, family index, replication]
    exp = simulate("binomial", [3, 0, 1], n_segments=6, n_arms=2)
    scored = table[table["replication"] == 1].set_index(["arm", "segment"])["truth"]
    expected = exp.truth.set_index(["arm", "segment"])["truth"].reindex(scored.index)
    np.testing.assert_array_equal(scored.to_numpy(), expected.to_numpy())
    s = summarize_coverage(table)
    assert s.cells == 24 and 0.0 <= s.coverage <= 1.0 and s.seconds > 0
    assert s.mae < s.mae_naive  # pooling beats the unpooled differences even on short chains


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_coverage_of_90pct_intervals(family):
    """The acceptance check (same seeds and settings as ``bench/calibration_coverage.py``): 20 replications,
    4 chains x 1000 draws. Coverage of the 90% intervals in [0.85, 0.95]; posterior means well
    inside the effect sizes, clearly better than unpooled differences, and not biased."""
    table = coverage_study(family, replications=20, seed=1)
    s = summarize_coverage(table)
    assert s.replications == 20 and s.cells >= 20 * 32
    assert 0.85 <= s.coverage <= 0.95, s
    assert s.mae < 0.7 * s.effect_scale, s
    assert s.mae < 0.6 * s.mae_naive, s
    assert abs(s.bias) < 4 * s.bias_se, s
