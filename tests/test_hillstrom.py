"""The shipped Hillstrom preset runs the full pipeline and agrees with the RCT's own numbers."""

from __future__ import annotations

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
        ]
    )
    return uplift.run(config, tmp_path_factory.mktemp("hillstrom"))


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
