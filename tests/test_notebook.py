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


def test_planner_compares_two_budgets_and_exports_targets(
    tmp_path: Path, monkeypatch, finished: Path
):
    """On a finished run (conftest ``finished``, made with the fake sampler: the notebook only
    loads and re-solves, which is what is under test)."""
    nb = run_notebook("03_planner.py", tmp_path, monkeypatch, UPLIFT_RUN=str(finished))
    assert "the extra" in nb.stdout and "TARGETS:" in nb.stdout
    assert nb.shown("image/png") and nb.shown("text/html")
    (path,) = tmp_path.glob("targets_budget_*.csv")
    targets = pd.read_csv(path)
    assert {"customer_id", "segment", "arm", "tactic", "rank"} <= set(targets.columns)
    assert targets["customer_id"].is_unique
