"""Parallel sweeps (issue #16, part 4): the fit cache shared by jobs in other processes (two
writers of one key and a reader never see a half-written entry), and a budget multirun through
Hydra's joblib launcher writing one comparison.csv and logging each job to one MLflow store."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from uplift.models.fit_cache import KEY_ATTR, FitCache

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
KEY = "k" * 64


#: one cache entry of ~3 MB (long enough to write that a reader can catch it half-way), and a
#: process that stores it ``times`` times the way the cache does (uplift.atomic_io)
ENTRY = """
import numpy as np, xarray as xr
rng = np.random.default_rng({seed})
draws = xr.DataArray(rng.normal(size=(4, 1000, 100)), dims=("chain", "draw", "cell"))
ds = draws.to_dataset(name="uplift")
ds.attrs["{attr}"] = "{key}"
"""
WRITER = """
from uplift.atomic_io import atomic_write_netcdf
for _ in range({times}):
    atomic_write_netcdf(ds, {path!r})
"""


def _entry(seed: int) -> xr.Dataset:
    scope: dict = {}
    exec(ENTRY.format(seed=seed, attr=KEY_ATTR, key=KEY), scope)
    return scope["ds"]


def test_two_processes_writing_one_key_never_show_a_reader_half_a_file(tmp_path, caplog):
    """Jobs of a parallel sweep that miss the same key both fit and both store it: each write
    goes to a temporary file renamed over the entry, so a reader (a third job) finds either no
    entry or a whole one, never a truncated file (which the cache would refit with a warning)."""
    cache = FitCache(tmp_path)
    path = cache.path("fold", KEY)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                ENTRY.format(seed=s, attr=KEY_ATTR, key=KEY)
                + WRITER.format(times=15, path=str(path)),
            ],
            env=env,
        )
        for s in (1, 2)
    ]
    expected = [_entry(s)["uplift"].values for s in (1, 2)]
    whole = absent = 0
    with caplog.at_level(logging.WARNING, logger="uplift.models.fit_cache"):
        while any(w.poll() is None for w in writers):
            tree = cache._read(path, KEY, None)
            if tree is None:
                absent += 1
                time.sleep(0.005)
            else:
                whole += 1
                values = tree.to_dataset()["uplift"].values
                assert any(np.array_equal(values, e) for e in expected)  # one writer's, whole
    assert [w.wait() for w in writers] == [0, 0]
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    assert whole > 0, f"the reader never overlapped the writers ({absent} reads before any entry)"
    assert not list(tmp_path.glob(".*.tmp"))  # every temporary file was renamed or removed
    draws, hit = cache.draws("fold", KEY, lambda: pytest.fail("a whole entry is a hit"))
    assert hit and draws.shape == (4, 1000, 100)


CLAIMER = """
import time
from pathlib import Path
from uplift.atomic_io import atomic_write_netcdf
from uplift.models.fit_cache import FitCache
cache = FitCache(Path({folder!r}))
with cache.claim("fold", "{key}"):
    Path({flag!r}).touch()  # holding the key: the test's own lookup starts now
    time.sleep(1.5)  # sampling
    atomic_write_netcdf(ds, cache.path("fold", "{key}"))
"""


def test_a_job_needing_a_key_another_is_fitting_waits_and_reads_it(tmp_path):
    """Two jobs of a parallel sweep on an empty cache: the second to ask for a key waits for
    the first one's fit (the key's lock) and reads it, instead of sampling it again."""
    flag = tmp_path / "claimed"
    code = ENTRY.format(seed=3, attr=KEY_ATTR, key=KEY) + CLAIMER.format(
        folder=str(tmp_path / "cache"), key=KEY, flag=str(flag)
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    job = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert job.poll() is None and time.monotonic() < deadline, "the first job never claimed"
        time.sleep(0.02)
    cache = FitCache(tmp_path / "cache")
    draws, hit = cache.draws("fold", KEY, lambda: pytest.fail("sampled a key being fitted"))
    assert hit and np.array_equal(draws.values, _entry(3)["uplift"].values)
    assert job.wait() == 0
    with FitCache(tmp_path / "cache", enabled=False).claim("fold", KEY):  # off: no lock file
        pass
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with FitCache(blocker / "cache").claim("fold", KEY):  # unwritable: no lock, no error
        pass


def _cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """``uplift ARGS`` in a fresh interpreter whose every process (the launcher's workers too)
    runs the fake sampler (tests/fake_site/sitecustomize.py)."""
    path = os.pathsep.join([str(TESTS / "fake_site"), str(TESTS), str(SRC)])
    full = {**os.environ, "PYTHONPATH": path, "UPLIFT_TEST_FAKE_SAMPLER": "1", **env}
    full.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "uplift.cli", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_joblib_launcher_runs_a_budget_sweep_in_parallel(tmp_path):
    """``uplift -m hydra/launcher=joblib ...``: two jobs at once in worker processes, one
    comparison.csv across them, each job logged to the one local MLflow store."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    mlflow = pytest.importorskip("mlflow")
    sweep = tmp_path / "sweep"
    t0 = time.perf_counter()
    r = _cli(
        [
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "data.synthetic.n_customers=8000",
            "sampler=fast",
            "optimize.allow_unconverged=true",
            "report.plots=false",
            "evaluate.crossfit_folds=0",
            "optimize.frontier.enabled=false",
            "tracking=mlflow",
            "optimize.budget=3000,6000",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        UPLIFT_FIT_CACHE=str(tmp_path / "cache"),
    )
    assert r.returncode == 0, r.stderr[-4000:]
    assert "Joblib.Parallel" in r.stderr + r.stdout  # the joblib launcher ran the jobs
    table = pd.read_csv(sweep / "comparison.csv")
    assert table["job"].tolist() == [0, 1] and table["budget"].tolist() == [3000, 6000]
    assert (table["status"] == "complete").all() and (table["fits"] == 6).all()
    # each fit sampled once across the two concurrent jobs (FitCache.claim): the other read it
    assert table["fits_from_cache"].sum() == 6, table["fits_from_cache"].tolist()
    assert (table["total_spend"] <= table["budget"] + 1e-6).all()
    for folder in table["run_folder"]:
        summary = json.loads((sweep / folder / "summary.json").read_text())
        assert set(summary["fit_cache"]["fits"]) == set(summary["tactics"])
    a, b = (sweep / f / "uplift_by_segment.csv" for f in table["run_folder"])
    assert a.read_bytes() == b.read_bytes()  # both jobs hold the same posterior

    client = mlflow.tracking.MlflowClient(
        tracking_uri=f"sqlite:///{tmp_path / 'outputs' / 'mlflow' / 'mlflow.db'}"
    )
    experiment = client.get_experiment_by_name("synthetic_demo")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.data.tags["uplift.job"] for run in runs) == ["0", "1"]
    assert {run.data.tags["uplift.sweep_dir"] for run in runs} == {str(sweep)}
    assert {run.data.params["optimize.budget"] for run in runs} == {"3000.0", "6000.0"}
    print(f"joblib sweep of 2 jobs: {time.perf_counter() - t0:.1f} s")
