"""The covariate model is held to the gate: a failing fit is refit, and one that still fails
scores no customer (its arms' customers are listed in hash order)."""

from __future__ import annotations

import pytest

import uplift
from uplift import pipeline
from uplift.models.covariate import CovariateUpliftModel, simulate_covariate_experiment


@pytest.fixture(scope="module")
def rows():
    return simulate_covariate_experiment(3000, seed=21, coarse=True).rows


def _config(*extra: str):
    return uplift.compose_config(
        [
            "model.covariate_model.enabled=true",
            "data.columns.covariates=[age,tenure,region]",
            *extra,
        ]
    )


def _fit(config, rows):
    return pipeline._gated_covariate_fit(
        config, rows, "converted", "control", ["email_a", "email_b"], "cross_sell"
    )


def test_passing_fit_is_kept_as_is(fake_sampler, rows) -> None:
    model = _fit(_config("model.covariate_model.method=exact"), rows)
    assert model.method_used == "exact"
    assert model.fit_info["attempts"] == []
    assert model.fit_info["gate_failures"] == []


def test_failing_nuts_fit_is_refit_by_laplace(fake_sampler, rows, monkeypatch) -> None:
    """NUTS that diverges (as the interactions' scale funnels at 200k rows) -> nested Laplace,
    whose own check (k-hat) passes: the attempt is recorded, the model scores customers."""
    real = pipeline.covariate_failures
    diverged = ["divergences=12 > 0"]
    monkeypatch.setattr(
        pipeline,
        "covariate_failures",
        lambda c, m: diverged if m.method_used == "exact" else real(c, m),
    )
    model = _fit(_config("model.covariate_model.method=exact"), rows)
    assert model.method_used == "approximate"
    assert model.fit_info["attempts"] == ["exact: divergences=12 > 0"]
    assert model.fit_info["gate_failures"] == []


def test_laplace_that_fails_goes_to_nuts_at_0_99(fake_sampler, rows, monkeypatch) -> None:
    seen = []

    def failures(config, model):
        seen.append((model.method_used, model.sampler.target_accept))
        return ["pareto_k=0.91 > 0.7"] if model.method_used == "approximate" else []

    monkeypatch.setattr(pipeline, "covariate_failures", failures)
    model = _fit(_config("model.covariate_model.method=approximate"), rows)
    assert seen[-1] == ("exact", 0.99)
    assert model.method_used == "exact"
    assert model.fit_info["attempts"] == ["approximate: pareto_k=0.91 > 0.7"]


def test_a_model_failing_every_attempt_scores_no_one(fake_sampler, rows, monkeypatch) -> None:
    """Every rung fails: the failures are kept, and score_customers leaves the tactic out (no
    scores at all here, so targets.csv falls back to hash order)."""
    monkeypatch.setattr(pipeline, "covariate_failures", lambda c, m: [f"{m.method_used} bad"])
    config = _config("model.covariate_model.method=exact")
    model = _fit(config, rows)
    assert model.fit_info["attempts"] == ["exact: exact bad", "approximate: approximate bad"]
    assert model.fit_info["gate_failures"] == ["exact bad"]

    monkeypatch.setattr(pipeline, "fit_covariate_models", lambda c, d: {"cross_sell": model})
    models, scores = pipeline.score_customers(config, None)  # type: ignore[arg-type]
    assert models == {"cross_sell": model} and scores is None
    assert isinstance(model, CovariateUpliftModel)


def test_auto_fits_by_laplace_from_many_rows(fake_sampler, rows, monkeypatch) -> None:
    """``auto``: NUTS on few patterns and rows, the nested Laplace approximation from
    LAPLACE_ROWS rows even when the patterns are few (NUTS funnels there)."""
    from uplift.models import covariate

    assert _fit(_config(), rows).method_used == "exact"  # 3,000 rows, coarse patterns
    monkeypatch.setattr(covariate, "LAPLACE_ROWS", len(rows))
    assert _fit(_config(), rows).method_used == "approximate"


def test_held_out_ranking_leaves_out_a_model_that_failed_the_gate(
    fake_sampler, tmp_path, monkeypatch
) -> None:
    """A covariate model that failed every attempt ranks no held-out customer either
    (``bayes_covariate`` absent from evaluation's scorers), as it chooses no target."""
    from types import SimpleNamespace

    from uplift.app.heldout_run import run_holdout

    config = uplift.compose_config(
        [
            "data.synthetic.outcomes=conversion",
            "data.synthetic.n_customers=6000",
            "sampler=fast",
            "evaluate.holdout_fraction=0.3",
            "evaluate.bootstrap=0",
            "evaluate.t_learner=false",
            "data.columns.covariates=[value_tier,needs]",
        ]
    )
    data = pipeline.prepare(config, tmp_path).data
    failed = SimpleNamespace(passed_gate=False)
    tactics = [t.value for t in data.arm_map.tactics()]
    result = run_holdout(
        config, data, pipeline.fit_tactics, lambda c, d: dict.fromkeys(tactics, failed)
    )
    assert set(result.table["scorer"]) == {"bayes_segment"}
