"""The quickstart notebook runs top to bottom (as a script, with short chains)."""

from __future__ import annotations

from conftest import run_notebook


def test_quickstart_runs(tmp_path):
    r = run_notebook("01_quickstart.py", tmp_path)
    assert "intervals cover the true uplift" in r.stdout
    assert (tmp_path / "allocation.csv").exists() and (tmp_path / "report.md").exists()
