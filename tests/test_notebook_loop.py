"""The experiment-loop notebook executes top to bottom in a Jupyter kernel (short chains)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import run_notebook


@pytest.mark.slow  # a design, a real-NUTS fit and off-policy scoring in a kernel (~30 s)
def test_experiment_loop_runs(tmp_path: Path, monkeypatch) -> None:
    r = run_notebook("02_experiment_loop.py", tmp_path, monkeypatch)
    for marker in ("DESIGN:", "SRM: overall", "READOUT", "ALLOCATION", "OFF-POLICY:", "NEXT WAVE:"):
        assert marker in r.stdout, marker
    assert (tmp_path / "fit" / "allocation.csv").exists()
    wave = pd.read_csv(tmp_path / "next_wave_assignment.csv")
    assert len(wave) == 12_000
    assert {"customer_id", "segment", "arm", "assignment_probability"} <= set(wave.columns)
    assert len(r.shown("text/html")) >= 5  # its tables show as tables


@pytest.mark.slow  # three short real-NUTS runs, two with the prior from the last (~1-2 min)
def test_wave_loop_runs(tmp_path: Path, monkeypatch) -> None:
    r = run_notebook("04_wave_loop.py", tmp_path, monkeypatch)
    for marker in ("DESIGN:", "WAVE 1:", "NEXT WAVE:", "WAVE 2:", "POLICY:", "REGRET:"):
        assert marker in r.stdout, marker
    for w in (1, 2, 3):
        assert (tmp_path / f"run{w}" / "allocation.csv").exists()
    config = (tmp_path / "run3" / "config.yaml").read_text()
    assert "prior_from" in config and "run2" in config
    assert {"estimator", "estimate", "ci_low", "ci_high"} <= set(
        pd.read_csv(tmp_path / "policy2" / "policy_value.csv").columns
    )
    assert r.shown("image/png")  # the regret figure
    assert len(r.shown("text/html")) >= 4
