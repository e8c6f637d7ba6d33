"""The run reports a cross-fitted plan value beside the posterior headline, by default, and
corrects the headline for selection with it (summary.json ``plan_value``, report.md).

Wiring: fits use the fake sampler (tests/fast_tier.py); the cross-fitted estimator itself is
tested statistically in tests/test_crossfit.py."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

import uplift

#: the three runs fit the same data: their fits are sampled once (conftest.shared_fit_cache)
pytestmark = pytest.mark.usefixtures("shared_fit_cache")

QUICK_RUN = [
    "data.synthetic.outcomes=conversion",  # every tactic a budget line (the demo's discount is a price arm)
    "data.synthetic.n_customers=20000",
    "sampler=fast",
    "optimize.allow_unconverged=true",
    "optimize.budget=4000",
    "report.plots=false",
]


def test_run_reports_crossfitted_plan_value_by_default(tmp_path, fake_sampler):
    config = uplift.compose_config(QUICK_RUN)
    assert config.evaluate.crossfit_folds == 2  # on without asking
    uplift.run(config, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    cf = summary["crossfit"]
    assert cf["folds"] == 2 and cf["level"] == 0.9
    assert math.isfinite(cf["estimate"]) and cf["se"] > 0
    assert cf["ci_low"] < cf["estimate"] < cf["ci_high"]
    folds = pd.read_csv(tmp_path / "crossfit_folds.csv")
    assert len(folds) == 2 and folds["n_test"].sum() == summary["n_customers"]
    assert (folds["claimed"] > 0).all()
    assert "crossfit" in summary["seconds"]
    # every fold fit was checked against the gate (the fake fits pass it)
    assert cf["fold_fits"] == {
        "checked": 2 * len(summary["tactics"]),
        "refits": 0,
        "unconverged": [],
    }
    assert folds["fits_unconverged"].eq(0).all()

    pv = summary["plan_value"]
    assert pv["trust"] == "calibrated"
    assert pv["posterior"] == pytest.approx(summary["expected_incremental_profit"])
    gap = cf["optimism_gap"]
    assert pv["optimism_gap"] == pytest.approx(gap)
    expected = summary["expected_incremental_profit"] - max(0.0, gap * 0.5)
    assert summary["calibrated_incremental_profit"] == pytest.approx(expected)
    lo, hi = pv["calibrated_ci"]
    assert lo < pv["calibrated"] < hi
    report = (tmp_path / "report.md").read_text()
    assert f"Incremental profit to plan on: **{pv['calibrated']:,.0f}**" in report
    assert f"earned {cf['estimate']:,.0f}" in report


def test_crossfit_off_keeps_the_posterior_headline_and_says_so(tmp_path, fake_sampler):
    config = uplift.compose_config([*QUICK_RUN, "evaluate.crossfit_folds=0"])
    uplift.run(config, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "crossfit" not in summary and not (tmp_path / "crossfit_folds.csv").exists()
    assert summary["plan_value"]["trust"] == "posterior"
    assert summary["calibrated_incremental_profit"] == summary["expected_incremental_profit"]
    report = (tmp_path / "report.md").read_text()
    assert "not corrected for selection" in report


def test_crossfit_settings_validated():
    with pytest.raises(ValueError, match="evaluate.crossfit_folds"):
        uplift.compose_config(["evaluate.crossfit_folds=1"])
    with pytest.raises(ValueError, match="evaluate.crossfit_draws"):
        uplift.compose_config(["evaluate.crossfit_draws=0"])


def test_run_goes_on_when_crossfitting_cannot_score(tmp_path, monkeypatch, fake_sampler):
    import uplift.pipeline as pipeline

    def thin(*args, **kwargs):
        raise ValueError("folds: segment 'high/price' has 1 control customer in fold 0")

    monkeypatch.setattr(pipeline, "crossfit_plan", thin)
    config = uplift.compose_config(QUICK_RUN)
    uplift.run(config, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "1 control customer" in summary["crossfit"]["skipped"]
    assert summary["plan_value"]["trust"] == "posterior"
    assert "cross-fitting skipped" in summary["plan_value"]["note"]
    assert (tmp_path / "allocation.csv").exists() and (tmp_path / "targets.csv").exists()
    assert not (tmp_path / "crossfit_folds.csv").exists()


#: draws per chain of the fold fits in the test below (the main fits: sampler=fast's 300)
FOLD_DRAWS = 200


@pytest.mark.parametrize("mended", [True, False], ids=["mended", "still_diverging"])
def test_fold_fits_are_mended_and_what_still_fails_qualifies_the_headline(
    tmp_path, monkeypatch, caplog, mended
):
    """Fold fits go through the main fits' retry ladder but are never refused (the decision
    rests on the main fits). The cross-fitted value and the calibrated headline rest on them,
    so a fold fit still failing after the ladder is named in summary.json, counted in
    crossfit_folds.csv, logged, and the headline's note says it is less certain. Read back from
    the fit cache, the fold draws keep their check and refit count."""
    import xarray as xr

    import fast_tier

    calls: list[str] = []

    def diverging_folds(model, settings, seed, key=None, relabel=()):
        tree = fast_tier.fake_sample(model, settings, seed, key, relabel)
        fold_fit = settings.draws in (FOLD_DRAWS, 2 * FOLD_DRAWS)
        if fold_fit and "retention" in str(model.coords.get("arm")):
            calls.append("retention")
            # mended: each fold's first attempt diverges, its first refit is clean
            if not mended or len(calls) % 2 == 1:
                div = tree["sample_stats"]["diverging"].values.copy()
                div[0, :3] = True
                tree["sample_stats/diverging"] = xr.DataArray(div, dims=("chain", "draw"))
        return tree

    fast_tier.install(monkeypatch, diverging_folds)
    base = [o for o in QUICK_RUN if o != "optimize.allow_unconverged=true"]
    cache = tmp_path / "cache"
    overrides = [*base, f"evaluate.crossfit_draws={FOLD_DRAWS}", f"sampler.cache_dir={cache}"]
    # read back from the cache once: the failing case carries more (names, counts, refits)
    for name in ("first", "again") if not mended else ("first",):
        with caplog.at_level("WARNING", logger="uplift"):
            uplift.run(uplift.compose_config(overrides), tmp_path / name)
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["gate"]["passed"]  # the main fits decide the run
        fold_fits = summary["crossfit"]["fold_fits"]
        assert fold_fits["checked"] == 12 == 2 * len(summary["tactics"])
        folds = pd.read_csv(tmp_path / name / "crossfit_folds.csv")
        note = summary["plan_value"]["note"]
        if name == "first":  # the ladder's warning names the fold fit it refits
            assert "cross-fitting fold 0 retention: divergences=3 > 0; refitting" in caplog.text
        if mended:
            assert fold_fits["unconverged"] == []
            assert folds["fits_unconverged"].tolist() == [0, 0]
            assert "less certain" not in note and "did not pass" not in caplog.text
        else:
            assert fold_fits["unconverged"] == [
                "fold 0 retention: divergences=3 > 0",
                "fold 1 retention: divergences=3 > 0",
            ]
            assert folds["fits_unconverged"].tolist() == [1, 1]
            assert "less certain: 2 of 12 fold fits did not pass the convergence gate" in note
            assert "fold 0 retention: divergences=3 > 0" in note
            assert "2 of 12 fold fits did not pass" in caplog.text
        caplog.clear()
        # every retention fold fit after each fold's first attempt was a refit (first run)
        assert fold_fits["refits"] == len(calls) - 2
        assert fold_fits["refits"] == 2 if mended else fold_fits["refits"] >= 2
    if not mended:  # the second run read every fold fit from the cache, check and refits too
        assert summary["fit_cache"]["counts"]["crossfit_fold_hit"] == 12
