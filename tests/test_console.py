"""What a user sees on the console (issue #13): an input error is one line naming the fix, not
the same message twice among library INFO lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

UPLIFT = str(Path(sys.executable).with_name("uplift"))


def test_an_input_error_is_one_line_and_the_log_file_keeps_it(tmp_path):
    missing = tmp_path / "nowhere" / "spring_wave.csv"
    done = subprocess.run(
        [UPLIFT, "data=csv", f"data.path={missing}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 2
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("uplift: error: data.path=") and "does not exist" in lines[0]
    # the run is named after the file, and its log file records the error
    (run,) = (tmp_path / "outputs" / "spring_wave").iterdir()
    log = (run / "cli.log").read_text()
    assert "DataValidationError" in log and "[arviz][INFO]" not in log


def test_the_highs_banner_does_not_open_the_console():
    """HiGHS greets from C++ on its first solver object; a plan's solve must not show it."""
    code = (
        "import cvxpy as cp\n"
        "from uplift.optimize.settings import SolverSettings\n"
        "x = cp.Variable(integer=True)\n"
        "SolverSettings.of('HIGHS').solve(cp.Problem(cp.Maximize(x), [x <= 3.5]), RuntimeError)\n"
        "print('solved', x.value)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "solved 3.0", done.stdout
    assert "HiGHS" not in done.stdout + done.stderr
