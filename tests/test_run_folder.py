"""A run folder belongs to one run (issue #14, part 3): staged writes published with the status
last, refusal of a folder that holds a run, failures that leave only a summary, and SIGKILL at
any point leaving either nothing or a complete run, with no temp files. Runs use the fake sampler
(tests/fast_tier.py): what is tested is how the run folder is written, not the draws."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import uplift
from uplift.report import run_folder
from uplift.report.run_folder import RunFolderError

OVERRIDES = [
    "data=csv",
    "data.columns.segments=[tier]",
    "tactics=custom",
    "+tactics.arms.control={tactic: control}",
    "+tactics.arms.email={tactic: cross_sell, cost: 0.5}",
    "sampler=fast",
    "sampler.draws=150",
    "sampler.tune=150",
    "optimize.allow_unconverged=true",
    "evaluate.crossfit_folds=0",
    "report.save_posteriors=false",
    "optimize.budget=300",
]


def small_csv(path: Path, n: int = 4000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    arm = rng.choice(["control", "email"], n)
    tier = rng.choice(["high", "mid", "low"], n)
    p = 0.08 + 0.04 * (arm == "email") * (tier == "high")
    conv = (rng.random(n) < p).astype(int)
    pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "tier": tier,
            "arm": arm,
            "converted": conv,
            "revenue": np.where(conv == 1, rng.lognormal(3.5, 0.5, n).round(2), 0.0),
        }
    ).to_csv(path, index=False)
    return path


def leftovers(folder: Path) -> list[str]:
    """Temp files of interrupted writes, or staging folders, in or beside ``folder``."""
    inside = (
        [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")] if folder.exists() else []
    )
    beside = [p.name for p in folder.parent.glob(f".{folder.name}.staging-*")]
    return inside + beside


def test_prepare_refuses_a_folder_holding_a_run_and_overwrite_cleans_it(tmp_path):
    final = tmp_path / "run"
    (final / ".hydra").mkdir(parents=True)
    (final / "cli.log").write_text("hydra's own log\n")
    stage = run_folder.prepare(final, "refuse")  # Hydra's entries are not a run
    assert stage.is_dir() and stage.parent == final.parent
    (stage / "allocation.csv").write_text("a\n1\n")
    (stage / "summary.json").write_text('{"status": "complete"}')
    run_folder.publish(stage, final)
    assert not stage.exists()
    assert sorted(p.name for p in final.iterdir()) == [
        ".hydra",
        "allocation.csv",
        "cli.log",
        "summary.json",
    ]
    with pytest.raises(RunFolderError, match="already holds a run.*report.existing=overwrite"):
        run_folder.prepare(final, "refuse")
    stage = run_folder.prepare(final, "overwrite")
    assert sorted(p.name for p in final.iterdir()) == [".hydra", "cli.log"]
    stage.rmdir()


def test_stale_staging_of_a_dead_process_is_removed(tmp_path):
    final = tmp_path / "run"
    final.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / f".run.staging-{int(dead.stdout)}"
    (stale / "synthetic").mkdir(parents=True)
    (stale / "report.md").write_text("half")
    stage = run_folder.prepare(final, "refuse")
    assert not stale.exists() and stage.exists()


def test_run_publishes_status_last_and_refuses_to_mix(tmp_path, fake_sampler):
    csv = small_csv(tmp_path / "c.csv")
    config = uplift.compose_config([*OVERRIDES, f"data.path={csv}"])
    out = tmp_path / "out"
    res = uplift.run(config, out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete"
    assert res.output_dir == out and all(
        p.parent == out or out in p.parents for p in res.files.values()
    )
    assert all(p.exists() for p in res.files.values())
    assert not leftovers(out)
    # the gate was overridden: every plan row says so, and the report opens with a warning
    alloc = pd.read_csv(out / "allocation.csv")
    assert "gate_passed" in alloc.columns
    if summary["gate"]["overridden"]:
        assert not alloc["gate_passed"].all()
        assert "Warning: unconverged fits used" in (out / "report.md").read_text()
    assert "gate_passed" in pd.read_csv(out / "readout.csv").columns
    assert "gate_passed" in pd.read_csv(out / "targets.csv").columns
    with pytest.raises(RunFolderError):
        uplift.run(config, out)
    assert json.loads((out / "summary.json").read_text())["status"] == "complete"  # untouched


RUNNER = """
import sys
sys.path.insert(0, sys.argv[1])
import fast_tier, pytest, uplift
fast_tier.install(pytest.MonkeyPatch())
config = uplift.compose_config(sys.argv[3:])
uplift.run(config, sys.argv[2])
"""


TESTS = str(Path(__file__).parent)


def _start(out: Path, csv: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, TESTS, str(out), *OVERRIDES, f"data.path={csv}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


def _complete_or_nothing(out: Path) -> str:
    assert not leftovers(out) or all(".staging-" in x for x in leftovers(out)), leftovers(out)
    inside = [p.name for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert not [x for x in inside if x.endswith(".tmp")], inside
    if "summary.json" not in inside:
        assert not inside, f"outputs without a completion marker: {inside}"
        return "nothing"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete", summary.get("status")
    for name in ("allocation.csv", "targets.csv", "uplift_by_segment.csv", "report.md"):
        assert (out / name).exists(), name
    return "complete"


@pytest.mark.parametrize(
    "fractions",
    [
        pytest.param((0.8,), id="late", marks=pytest.mark.slow),
        pytest.param((0.5, 0.97), id="early-and-at-publication", marks=pytest.mark.slow),
    ],
)
def test_sigkill_at_any_point_leaves_nothing_or_a_complete_run(tmp_path, fractions):
    """Kill a run at ``fractions`` of a measured full run's time (slow tier: each run is a
    subprocess of 10-20 s; the default tier checks staging, publication and stale-staging
    cleanup in process above)."""
    csv = small_csv(tmp_path / "c.csv")
    t0 = time.perf_counter()
    full = _start(tmp_path / "full", csv)
    assert full.wait(timeout=600) == 0, full.stderr.read().decode()[-2000:] if full.stderr else ""
    took = time.perf_counter() - t0
    assert _complete_or_nothing(tmp_path / "full") == "complete"
    seen = []
    for i, frac in enumerate(fractions):
        out = tmp_path / f"killed{i}"
        proc = _start(out, csv)
        time.sleep(frac * took)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        seen.append(_complete_or_nothing(out))
    # a new run into a killed folder removes the dead run's staging and proceeds (or, if the
    # killed run had finished, is refused: the folder holds a run)
    out = tmp_path / "killed0"
    proc = _start(out, csv)
    code = proc.wait(timeout=600)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if seen[0] == "nothing":
        assert code == 0, err[-2000:]
        assert _complete_or_nothing(out) == "complete"
    else:
        assert code != 0 and "already holds a run" in err
    assert not [p for p in tmp_path.glob(".killed0.staging-*")]
