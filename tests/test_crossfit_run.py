"""The run reports a cross-fitted plan value beside the posterior headline (evaluate.crossfit_folds)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

import uplift


def test_run_reports_crossfitted_plan_value(tmp_path):
    config = uplift.compose_config(
        [
            "data.synthetic.n_customers=20000",
            "sampler=fast",
            "optimize.allow_unconverged=true",
            "optimize.budget=4000",
            "report.plots=false",
            "evaluate.crossfit_folds=2",
        ]
    )
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


def test_crossfit_folds_validated():
    with pytest.raises(ValueError, match="evaluate.crossfit_folds"):
        uplift.compose_config(["evaluate.crossfit_folds=1"])
