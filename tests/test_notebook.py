"""The notebooks execute top to bottom in a Jupyter kernel (short chains), and show their
tables and figures inline."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import run_notebook


@pytest.mark.slow  # real NUTS for six tactics in a kernel (~30 s); the planner notebook is default
def test_quickstart_runs(tmp_path, monkeypatch):
    nb = run_notebook("01_quickstart.py", tmp_path, monkeypatch)
    assert "intervals cover the true uplift" in nb.stdout
    assert (tmp_path / "allocation.csv").exists() and (tmp_path / "report.md").exists()
    assert len(nb.shown("image/png")) >= 3  # the budget figure, the forest and allocation plots
    assert len(nb.shown("text/html")) >= 3  # tables as tables
    assert any("Budget" in md for md in nb.shown("text/markdown"))  # the report's decision


def test_planner_compares_two_budgets_and_exports_targets(tmp_path: Path, monkeypatch):
    """On a finished run (made here with the fake sampler: the notebook only loads and
    re-solves, which is what is under test)."""
    import fast_tier
    import uplift

    with monkeypatch.context() as mp:
        fast_tier.install(mp)
        overrides = [
            "data.synthetic.n_customers=12000",
            "sampler=fast",
            "optimize.allow_unconverged=true",
            "evaluate.crossfit_folds=0",
            "report.plots=false",
        ]
        uplift.run(uplift.compose_config(overrides), tmp_path / "run")
    nb = run_notebook("03_planner.py", tmp_path, monkeypatch, UPLIFT_RUN=str(tmp_path / "run"))
    assert "the extra" in nb.stdout and "TARGETS:" in nb.stdout
    assert nb.shown("image/png") and nb.shown("text/html")
    (path,) = tmp_path.glob("targets_budget_*.csv")
    targets = pd.read_csv(path)
    assert {"customer_id", "segment", "arm", "tactic", "rank"} <= set(targets.columns)
    assert targets["customer_id"].is_unique
