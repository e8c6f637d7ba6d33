"""The experiment-loop notebook runs top to bottom (as a script, with short chains)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_experiment_loop.py"


def test_experiment_loop_runs(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "UPLIFT_QUICK": "1",
        "UPLIFT_NOTEBOOK_OUT": str(tmp_path),
        "MPLBACKEND": "Agg",
    }
    r = subprocess.run(
        [sys.executable, str(NOTEBOOK)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    for marker in ("DESIGN:", "SRM: overall", "READOUT", "ALLOCATION", "OFF-POLICY:", "NEXT WAVE:"):
        assert marker in r.stdout, marker
    assert (tmp_path / "fit" / "allocation.csv").exists()
    wave = pd.read_csv(tmp_path / "next_wave_assignment.csv")
    assert len(wave) == 12_000
    assert {"customer_id", "segment", "arm", "assignment_probability"} <= set(wave.columns)
