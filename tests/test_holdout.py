"""Held-out evaluation: split, segment scores, the T-learner baseline and the metrics table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import uplift
import uplift.data
from uplift.evaluate import qini_auc_score, uplift_at_k
from uplift.evaluate.holdout import TLearner, evaluate_scores, segment_scores, split_holdout


def test_split_is_stratified_disjoint_and_seeded():
    arm = np.repeat(["c", "a", "b"], [1000, 300, 101])
    train, test = split_holdout(arm, 0.3, seed=5)
    assert np.intersect1d(train, test).size == 0
    assert np.union1d(train, test).size == arm.size
    for label, n in (("c", 1000), ("a", 300), ("b", 101)):
        assert (arm[test] == label).sum() == round(0.3 * n)
    again = split_holdout(arm, 0.3, seed=5)[1]
    assert np.array_equal(test, again)
    assert not np.array_equal(test, split_holdout(arm, 0.3, seed=6)[1])


def test_split_refuses_an_arm_it_would_empty():
    with pytest.raises(ValueError, match="arm 'tiny' has 1 customers"):
        split_holdout(["c"] * 50 + ["tiny"], 0.3, seed=0)
    with pytest.raises(ValueError, match="holdout fraction"):
        split_holdout(["c", "a"], 1.0, seed=0)


def test_segment_scores_map_means_and_fall_back_to_the_weighted_arm_mean():
    uplift_means = pd.DataFrame(
        {
            "arm": ["a", "a", "b", "b"],
            "segment": ["s1", "s2", "s1", "s2"],
            "mean": [0.1, 0.3, -0.2, 0.0],
            "n": [100, 300, 100, 300],
        }
    )
    out = segment_scores(uplift_means, ["s2", "s1", "new"], ["a", "b"])
    assert out["a"].tolist() == pytest.approx([0.3, 0.1, 0.25])  # (0.1*100 + 0.3*300) / 400
    assert out["b"].tolist() == pytest.approx([0.0, -0.2, -0.05])
    with pytest.raises(ValueError, match="no posterior uplift for arm 'z'"):
        segment_scores(uplift_means, ["s1"], ["z"])


def _heterogeneous(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Binary outcome whose uplift grows with x and is negative for channel 'web'."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n)
    channel = rng.choice(["web", "phone", "store"], n)
    arm = rng.choice(["control", "email"], n)
    base = 0.15 + 0.05 * x
    tau = 0.10 * (x + 1) / 2 - 0.06 * (channel == "web")
    p = np.clip(base + tau * (arm == "email"), 0, 1)
    y = (rng.random(n) < p).astype(int)
    return pd.DataFrame({"x": x, "channel": channel, "arm": arm, "y": y}), tau


def test_t_learner_recovers_heterogeneous_uplift_and_ranks_well():
    train, _ = _heterogeneous(40_000, seed=1)
    test, tau = _heterogeneous(20_000, seed=2)
    learner = TLearner(["x", "channel"], binary=True, seed=3)
    scores = learner.fit(train, "y", "arm", "control", ["email"]).predict(test)["email"]
    assert np.corrcoef(scores, tau)[0, 1] > 0.6
    t = (test["arm"] == "email").to_numpy().astype(int)
    y = test["y"].to_numpy()
    q_model = qini_auc_score(y, t, scores.to_numpy())
    q_oracle = qini_auc_score(y, t, tau)
    assert q_model > 0.5 * q_oracle > 0
    # same seed, same fit: scores are reproducible
    again = TLearner(["x", "channel"], binary=True, seed=3).fit(
        train, "y", "arm", "control", ["email"]
    )
    assert np.array_equal(again.predict(test)["email"], scores)


def test_t_learner_scores_unseen_levels_and_names_missing_features():
    train, _ = _heterogeneous(4_000, seed=1)
    learner = TLearner(["x", "channel"], seed=0).fit(train, "y", "arm", "control", ["email"])
    new = pd.DataFrame({"x": [0.5, 0.5], "channel": ["web", "kiosk"], "arm": "email", "y": 0})
    assert np.isfinite(learner.predict(new).to_numpy()).all()
    with pytest.raises(ValueError, match=r"feature column\(s\) \['channel'\]"):
        learner.predict(new.drop(columns="channel"))
    with pytest.raises(ValueError, match="too few for the T-learner"):
        TLearner(["x"], min_samples_leaf=5_000).fit(train, "y", "arm", "control", ["email"])


def test_evaluate_scores_prefers_the_oracle_and_matches_the_metric_functions():
    test, tau = _heterogeneous(20_000, seed=4)
    rng = np.random.default_rng(0)
    scores = {
        "oracle": pd.DataFrame({"email": tau}),
        "noise": pd.DataFrame({"email": rng.normal(size=tau.size)}),
    }
    y, arm = test["y"].to_numpy(), test["arm"].to_numpy()
    table = evaluate_scores(y, arm, scores, "control", k=0.3, bootstrap=40, seed=1)
    by = table.set_index("scorer")
    t = (arm == "email").astype(int)
    assert by.loc["oracle", "qini_auc"] == pytest.approx(qini_auc_score(y, t, tau))
    assert by.loc["oracle", "uplift_at_30"] == pytest.approx(uplift_at_k(y, t, tau, k=0.3))
    assert (
        by.loc["oracle", "qini_auc"]
        > by.loc["noise", "qini_auc"] + 3 * by.loc["noise", "qini_auc_se"]
    )
    assert by.loc["oracle", "p_best_qini_auc"] > 0.95
    assert (by["qini_auc_se"] > 0).all()
    assert by["n_treated"].iloc[0] + by["n_control"].iloc[0] == len(y)


def test_evaluate_scores_on_a_continuous_outcome_skips_the_binary_only_metrics():
    test, tau = _heterogeneous(5_000, seed=4)
    spend = test["y"].to_numpy() * np.random.default_rng(1).gamma(2.0, 30.0, len(test))
    table = evaluate_scores(
        spend, test["arm"], {"oracle": pd.DataFrame({"email": tau})}, "control", bootstrap=0
    )
    assert "qini_auc" not in table.columns and "qini_causalml" in table.columns
    assert np.isfinite(table["uplift_at_30"]).all()


def test_run_writes_evaluation_next_to_a_t_learner(tmp_path, fake_sampler):
    """Wiring of the held-out evaluation (files, columns, report): segment fits are faked
    (tests/fast_tier.py); the scorers are tested statistically above."""
    config = uplift.compose_config(
        [
            "data.synthetic.outcomes=conversion",  # every tactic a conversion: scored on held-out rows
            "data.synthetic.n_customers=20000",
            "sampler=fast",
            "optimize.allow_unconverged=true",
            "report.plots=true",
            "optimize.frontier.enabled=false",
            "evaluate.holdout_fraction=0.3",
            "evaluate.bootstrap=10",
            "evaluate.crossfit_folds=0",  # 2 more fits per tactic; cross-fitting: test_crossfit_run
            "data.columns.covariates=[value_tier,needs]",
            "model.covariate_model.enabled=true",
            "model.covariate_model.method=approximate",  # NUTS on patterns: test_covariate_model
        ]
    )
    result = uplift.run(config, tmp_path)
    table = pd.read_csv(tmp_path / "evaluation.csv")
    treated_arms = {a.name for a in config.tactics.arm_map().treated}
    assert set(table["arm"]) == treated_arms
    assert set(table["scorer"]) == {"bayes_segment", "bayes_covariate", "t_learner"}
    assert {"qini_auc", "uplift_at_30", "qini_auc_se", "p_best_qini_auc"} <= set(table.columns)
    n_control = result.data.frame["arm"].eq(config.tactics.arm_map().control.name).sum()
    assert (table["n_control"] == round(0.3 * n_control)).all()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["evaluation"]["holdout_fraction"] == 0.3
    assert len(summary["evaluation"]["results"]) == len(table)
    assert "evaluate" in summary["seconds"]
    report = (tmp_path / "report.md").read_text()
    assert "## Held-out ranking" in report and "evaluation_qini.png" in report
    assert (tmp_path / "evaluation_qini.png").stat().st_size > 0
    scores = pd.read_csv(tmp_path / "customer_scores.csv")
    assert len(scores) == len(result.data) * len(treated_arms)  # every customer x arm of its tactic
    assert scores["uplift_low"].le(scores["uplift_mean"]).all()
    assert scores["uplift_mean"].le(scores["uplift_high"]).all()
    assert set(summary["covariate_model"]) == {t.value for t in config.tactics.arm_map().tactics()}
    # the covariate model decides who within each segment gets the allocated arms
    targets = pd.read_csv(tmp_path / "targets.csv")
    assert targets["selection"].eq("covariate_model").any()
    alloc = pd.read_csv(tmp_path / "allocation.csv")
    assert len(targets) == int(alloc["customers"].sum())


def test_covariate_model_config_fails_before_sampling(tmp_path):
    base = ["data.synthetic.n_customers=3000", "model.covariate_model.enabled=true"]
    with pytest.raises(uplift.data.DataValidationError, match="needs covariates"):
        uplift.run(uplift.compose_config(base), tmp_path / "a")
    with pytest.raises(uplift.data.DataValidationError, match="no tactic uses the binomial"):
        uplift.run(
            uplift.compose_config(
                [*base, "data.columns.covariates=[needs]", "model.family=negative_binomial"]
            ),
            tmp_path / "b",
        )
    # a closed set: the composition refuses it, naming the key and the allowed values
    with pytest.raises(ValueError, match=r"(?s)'vi'.*auto, exact, approximate.*covariate_model"):
        uplift.compose_config(["model.covariate_model.method=vi"])


def test_holdout_fraction_is_validated():
    with pytest.raises(ValueError, match=r"evaluate.holdout_fraction must be in \[0, 1\)"):
        uplift.compose_config(["evaluate.holdout_fraction=1.5"])
