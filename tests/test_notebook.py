"""The quickstart notebook runs top to bottom (as a script, with short chains)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_quickstart.py"


def test_quickstart_runs(tmp_path):
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
        timeout=900,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "intervals cover the true uplift" in r.stdout
    assert (tmp_path / "allocation.csv").exists() and (tmp_path / "report.md").exists()
