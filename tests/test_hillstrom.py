"""The shipped Hillstrom preset runs the full pipeline and agrees with the RCT's own numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import uplift


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    config = uplift.compose_config(
        [
            "experiment=hillstrom_email",
            "sampler=fast",
            "optimize.allow_unconverged=true",
            "report.plots=false",
            "evaluate.bootstrap=20",
            "evaluate.crossfit_folds=0",  # cross-fitting has its own tests (test_crossfit_run)
        ]
    )
    return uplift.run(config, tmp_path_factory.mktemp("hillstrom"))


@pytest.fixture(scope="module", params=["visit", "conversion"])
def binary_result(request, tmp_path_factory):
    config = uplift.compose_config(
        [
            f"experiment=hillstrom_email_{request.param}",
            "sampler=fast",
            "optimize.allow_unconverged=true",
            "report.plots=false",
            "evaluate.holdout_fraction=0",
            "optimize.frontier.enabled=false",
            "evaluate.crossfit_folds=0",
        ]
    )
    return request.param, uplift.run(config, tmp_path_factory.mktemp(request.param))


def test_data_match_published_rates(result):
    """Mean spend per arm as published (MineThatData): 1.4226 / 1.0772 / 0.6528."""
    by_arm = result.by_arm.set_index("arm")
    assert result.summary["n_customers"] == 64_000
    assert (by_arm["metric"] == "revenue").all()  # spend, with its zero-inflated likelihood
    assert by_arm.loc["Mens E-Mail", "difference_in_means"] == pytest.approx(
        1.4226 - 0.6528, abs=1e-3
    )
    assert by_arm.loc["Womens E-Mail", "difference_in_means"] == pytest.approx(
        1.0772 - 0.6528, abs=1e-3
    )


def test_arm_posterior_agrees_with_difference_in_means(result):
    """Pooling across 144 segments must not move the population effect beyond sampling error."""
    for _, row in result.by_arm.iterrows():
        assert abs(row["mean"] - row["difference_in_means"]) < 2.0 * row["difference_se"], (
            row.to_dict()
        )
        assert row["hdi_low"] < row["difference_in_means"] < row["hdi_high"]
        assert row["prob_positive"] > 0.97  # both e-mails raise spend (a clear RCT result)


def test_allocation_respects_budget(result):
    s = result.summary
    assert s["total_spend"] <= s["budget"] + 1e-9
    assert (result.output_dir / "uplift_by_arm.csv").exists()


#: published MineThatData rates (Mens / Womens / no e-mail)
PUBLISHED = {"visit": (0.1828, 0.1514, 0.1062), "conversion": (0.0125, 0.0088, 0.0057)}


def test_binary_outcomes_agree_with_the_rct(binary_result):
    """Visit and conversion, binomial likelihood: posterior arm uplift ~ difference in means."""
    outcome, result = binary_result
    by_arm = result.by_arm.set_index("arm")
    mens, womens, control = PUBLISHED[outcome]
    assert (by_arm["metric"] == "conversion").all()
    for arm, rate in (("Mens E-Mail", mens), ("Womens E-Mail", womens)):
        row = by_arm.loc[arm]
        assert row["difference_in_means"] == pytest.approx(rate - control, abs=6e-4)
        assert abs(row["mean"] - row["difference_in_means"]) < 2.0 * row["difference_se"], outcome
        assert row["hdi_low"] < row["difference_in_means"] < row["hdi_high"]
    # shrinkage: segment posteriors vary less than the raw per-segment differences
    seg = result.uplift[(result.uplift["metric"] == "conversion")]
    assert seg.groupby("arm")["mean"].std().max() < raw_segment_spread(result)


def test_covariate_model_scores_every_customer(binary_result):
    """Row-level model (covariate x e-mail interactions): its average customer uplift is the
    RCT's difference in means within sampling error, and it is fit by the Laplace method on
    Hillstrom's ~7,000 (pattern, arm) cells."""
    outcome, result = binary_result
    scores = pd.read_csv(result.output_dir / "customer_scores.csv")
    assert len(scores) == 2 * 64_000
    by_arm = result.by_arm.set_index("arm")
    for arm, mean in scores.groupby("arm")["uplift_mean"].mean().items():
        row = by_arm.loc[arm]
        assert abs(mean - row["difference_in_means"]) < 2.0 * row["difference_se"], (outcome, arm)
    info = result.summary["covariate_model"]["cross_sell"]
    assert info["method"] == "approximate"  # nested Laplace
    assert info["diagnostics"]["pareto_k"] < 0.7


def raw_segment_spread(result) -> float:
    cells = result.cells
    rate = cells.assign(rate=cells["conversions"] / cells["n"]).pivot_table(
        index="segment", columns="arm", values="rate"
    )
    raw = rate[["Mens E-Mail", "Womens E-Mail"]].sub(rate["No E-Mail"], axis=0)
    return float(raw.std().min())


def test_holdout_ranking_is_reported_next_to_a_t_learner(result):
    table = pd.read_csv(result.output_dir / "evaluation.csv")
    assert set(table["scorer"]) == {"bayes_segment", "t_learner"}
    assert set(table["arm"]) == {"Mens E-Mail", "Womens E-Mail"}
    assert (table["outcome"] == "revenue").all()  # spend ranks customers in the spend preset
    for col in ("qini_causalml", "uplift_at_30", "qini_causalml_se", "uplift_at_30_se"):
        assert np.isfinite(table[col]).all(), col
    # 30% of each arm held out (64,000 customers in three near-equal arms)
    assert table["n_control"].iloc[0] == round(0.3 * 21_306)
