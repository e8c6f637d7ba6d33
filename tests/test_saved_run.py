"""A finished run loads back and re-plans without refitting (``uplift.load_run``).

At the run's own settings the re-plan must give the run's allocation.csv and targets.csv back
exactly (else a planner comparing budgets compares unlike things); other budgets move the plan
the way the frontier does; a folder that is not a finished run is named, not half-loaded.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

import uplift
from uplift.runs import RunLoadError


def test_replan_at_the_runs_settings_gives_its_allocation_and_targets_back(finished, tmp_path):
    run = uplift.load_run(finished)
    assert run.config.optimize.budget == 3000
    plan = run.plan()
    saved = pd.read_csv(finished / "allocation.csv")
    table = plan.table.reset_index(drop=True)
    assert list(table["customers"]) == list(saved["customers"])
    assert np.allclose(table["expected_incremental_profit"], saved["expected_incremental_profit"])
    summary = json.loads((finished / "summary.json").read_text())
    assert plan.expected_profit == pytest.approx(summary["expected_incremental_profit"])
    out = run.export_targets(plan, tmp_path / "t.csv")
    mine = pd.read_csv(out)
    theirs = pd.read_csv(finished / "targets.csv").drop(columns="gate_passed")
    pd.testing.assert_frame_equal(mine[theirs.columns], theirs)


def test_other_budgets_are_solves_not_fits(finished, monkeypatch):
    import uplift.models.sampling as sampling

    def no_fit(*a, **k):
        raise AssertionError("re-planning must not sample")

    for name in dir(sampling):
        if name == "sample" or name.startswith("sample_"):
            monkeypatch.setattr(sampling, name, no_fit)
    run = uplift.load_run(finished)
    table = run.compare([1000, 3000, 6000])
    assert list(table["budget"]) == [1000, 3000, 6000]
    assert (table["spend"] <= table["budget"] + 1e-6).all()
    # more budget never earns less in expectation (each plan is feasible at the next budget)
    assert table["expected_incremental_profit"].is_monotonic_increasing
    assert (table["profit_hdi_low"] <= table["expected_incremental_profit"]).all()
    assert table["prob_loss"].between(0, 1).all()
    assert table.loc[1, "expected_incremental_profit"] == pytest.approx(
        run.summary["expected_incremental_profit"]
    )
    with pytest.raises(RunLoadError, match="unknown optimize key"):
        run.plan(budgt=5)


def test_what_is_not_a_finished_run_is_named(finished, tmp_path):
    with pytest.raises(RunLoadError, match="no summary.json"):
        uplift.load_run(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(finished, broken)
    (broken / "posterior_retention.nc").unlink()
    with pytest.raises(RunLoadError, match="posterior_retention.nc is missing"):
        uplift.load_run(broken)
    summary = json.loads((broken / "summary.json").read_text())
    (broken / "summary.json").write_text(json.dumps({**summary, "status": "refused"}))
    with pytest.raises(RunLoadError, match="'refused'"):
        uplift.load_run(broken)
    for name in ("config.yaml",):
        (broken / name).unlink()
    (broken / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(RunLoadError, match="pass the run's configuration"):
        uplift.load_run(broken)


def test_a_run_loads_again_and_again_in_one_process(finished):
    """Posterior files are read whole and closed: HDF5 failed ("NetCDF: HDF error") on the
    third load of the same run when xarray kept them open."""
    runs = [uplift.load_run(finished) for _ in range(4)]
    assert all(r.plan().expected_profit == runs[0].plan().expected_profit for r in runs)
