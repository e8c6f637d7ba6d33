"""Predictive checks are saved with every run and can gate the optimizer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import uplift
from uplift import pipeline
from uplift.data.cells import tactic_cells
from uplift.models.predictive import PredictiveCheck, prior_implied_quantities
from uplift.pipeline import ConvergenceGateError
from uplift.report.model_checks import ModelChecks, checks_section


def _check(p_values: list[float]) -> PredictiveCheck:
    n = len(p_values)
    table = pd.DataFrame(
        {
            "segment": [f"s{i}" for i in range(n)],
            "arm": "a",
            "statistic": "conversions",
            "n": 100,
            "observed": 10.0,
            "pred_mean": 10.0,
            "pred_low": 5.0,
            "pred_high": 15.0,
            "p_value": p_values,
        }
    )
    return PredictiveCheck("cross_sell", "binomial", "posterior", table, 100, 0.9)


def test_gate_reasons_name_the_statistic_and_the_share():
    checks = ModelChecks({"cross_sell": _check([0.5, 0.001, 0.999, 0.4])}, pd.DataFrame())
    assert checks.failures(None) == {}
    assert checks.failures(0.5) == {}
    reasons = checks.failures(0.2)["cross_sell"]
    assert reasons == [
        "posterior predictive check: 50% of cells extreme on conversions (> 20%; see ppc.csv)"
    ]
    text = checks_section(checks, {})
    assert "## Model checks" in text and "| cross_sell | binomial | conversions | 4 | 0.5" in text


def test_gate_threshold_is_validated():
    with pytest.raises(ValueError, match="optimize.gate.ppc_max_extreme_share must be in"):
        uplift.compose_config(["optimize.gate.ppc_max_extreme_share=1.5"])


def _run_and_check_the_gate(tmp_path, *overrides: str) -> None:
    """A real-NUTS run (short chains) whose ppc gate cannot pass: it must refuse, naming the
    check, after writing every artifact; the default priors pass their own checks and the fits
    reproduce their cells on well-specified synthetic data."""
    config = uplift.compose_config(
        [
            *overrides,
            "sampler=fast",
            "report.plots=true",
            "optimize.frontier.enabled=false",
            "sampler.retry=false",  # short chains miss r-hat: no refits, the ppc gate is the point
            "evaluate.crossfit_folds=0",  # 2 more fits per tactic; cross-fitting: test_crossfit_run
        ]
    )
    # a threshold no check can meet (validation bypassed): the gate must refuse, naming the check,
    # after writing every artifact
    config.optimize.gate.ppc_max_extreme_share = -np.inf
    with pytest.raises(ConvergenceGateError, match="posterior predictive check: 0% of cells"):
        uplift.run(config, tmp_path)
    ppc = pd.read_csv(tmp_path / "ppc.csv")
    tactics = [t.value for t in config.tactics.arm_map().tactics()]
    assert set(ppc["tactic"]) == set(tactics)
    assert {"segment", "arm", "statistic", "observed", "pred_low", "pred_high", "p_value"} <= set(
        ppc.columns
    )
    assert ppc["p_value"].between(0, 1).all()
    priors = pd.read_csv(tmp_path / "prior_checks.csv")
    assert {"baseline_rate", "uplift_pp"} <= set(priors["quantity"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    block = summary["model_checks"]
    assert set(block["posterior"]) == set(tactics)
    assert block["prior_warnings"] == {}  # the default priors pass their own checks
    # cells are reproduced: no extreme cells on well-specified synthetic data
    assert max(v["extreme_share"] for v in block["posterior"].values()) <= 0.05
    assert all(
        any("posterior predictive" in r for r in reasons)
        for reasons in summary["gate"]["failures"].values()
    )
    assert (tmp_path / "ppc_cross_sell.png").stat().st_size > 0
    assert "## Model checks" in (tmp_path / "report.md").read_text()


def test_run_saves_predictive_checks_and_gates_on_them(tmp_path):
    """One family: every tactic a conversion, six binomial fits on one compiled graph. The
    four-family demo's default priors: test_the_demos_default_priors_pass_their_own_checks
    (no sampling); each family's posterior check passing on well-specified data and failing on
    misfit: tests/test_predictive.py (price in the default tier, the others slow); the same run
    on the four-family demo: the slow twin below."""
    _run_and_check_the_gate(
        tmp_path, "data.synthetic.outcomes=conversion", "data.synthetic.n_customers=20000"
    )


@pytest.mark.slow  # real NUTS on the four-family demo (~2-5 min on 2 cores); one family above
def test_run_saves_predictive_checks_and_gates_on_them_for_every_family(tmp_path):
    _run_and_check_the_gate(tmp_path, "data.synthetic.n_customers=20000")


def test_the_demos_default_priors_pass_their_own_checks(tmp_path, no_sampling):
    """What the run's ``model_checks.prior_warnings`` holds, without sampling: the priors of
    each tactic's model of the four-family demo, built as the pipeline builds it, imply nothing
    implausible (run_model_checks judges the same quantities after the fits)."""
    config = uplift.compose_config(["data.synthetic.n_customers=20000", "sampler=fast"])
    prepared = pipeline.prepare(config, tmp_path)
    families = {}
    for tactic in (t.value for t in config.tactics.arm_map().tactics()):
        model = pipeline.build_model(config, tactic, prepared.data, prepared.cells)
        own = tactic_cells(prepared.cells, tactic)
        implied = prior_implied_quantities(model, own, seed=config.sampler.seed, tactic=tactic)
        families[tactic] = implied.family
        assert implied.failures() == [], (tactic, implied.failures())
        assert set(implied.draws) & set(implied.ranges), tactic  # something was judged
    assert set(families.values()) == {
        "binomial",
        "hurdle_lognormal",
        "negative_binomial",
        "price_logit",
    }, families
