"""Benchmark: a sweep of 10 budgets against a single run, with and without the fit cache.

Times the console script end to end, as fresh processes in a scratch folder (its own fit cache,
nothing shared with ``outputs/``), at the default settings of the synthetic demo unless
``--set`` adds overrides:

1. **single run**: ``uplift optimize.budget=B`` with an empty cache (samples every fit);
2. **sweep after one fit**: ``uplift -m optimize.budget=b1,...,b10`` on the cache the single
   run filled: every job reads its fits back (acceptance: total wall < 1.5x the single run);
3. **sweep, cold cache**: the same sweep on an empty cache: its first job samples, the others
   read the fits back;
4. **sweep without the cache** (``sampler.cache=false``): every job samples.
   ``--uncached-jobs N`` runs only the first N budgets of it (each job costs a single run) and
   scales their wall to 10 jobs, marked as an estimate.

Prints each sweep's ``comparison.csv`` (one row per job: budget, spend, profit, fits read from
the cache), the mean per-stage seconds of a cached job (summary.json ``seconds``), and a
Markdown table for the README. ``--launcher joblib`` runs the sweeps with Hydra's joblib
launcher (``hydra.launcher.n_jobs=--jobs``) instead of one job after another. Figures are
printed, never asserted; on a shared machine compare ratios within one run.

    python bench/sweep.py [--uncached-jobs 10] [--launcher basic|joblib] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

SRC = Path(__file__).resolve().parents[1] / "src"
#: the budgets of the sweep (the demo's default budget is 20,000)
BUDGETS = [5000, 10000, 15000, 20000, 25000, 30000, 35000, 40000, 45000, 50000]


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("UPLIFT_FIT_CACHE", None)  # the runs name their cache folder
    return env


def uplift(args: list[str], cwd: Path) -> float:
    """Wall seconds of ``uplift ARGS`` (a fresh process); fails loudly on a non-zero exit."""
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "uplift.cli", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"uplift {' '.join(args)} exited {r.returncode}:\n{r.stderr[-4000:]}")
    return wall


def sweep(
    name: str,
    budgets: list[float],
    cache: list[str],
    extra: list[str],
    work: Path,
    launcher: list[str],
) -> tuple[float, pd.DataFrame]:
    folder = work / name
    wall = uplift(
        [
            "-m",
            *launcher,
            *extra,
            *cache,
            f"optimize.budget={','.join(str(b) for b in budgets)}",
            f"hydra.sweep.dir={folder}",
        ],
        work,
    )
    table = pd.read_csv(folder / "comparison.csv")
    table.attrs["folder"] = folder
    return wall, table


def stage_seconds(table: pd.DataFrame) -> pd.Series:
    """Mean summary.json ``seconds`` per stage over the sweep's jobs."""
    folder = table.attrs["folder"]
    rows = [
        json.loads((folder / f / "summary.json").read_text())["seconds"]
        for f in table["run_folder"]
    ]
    return pd.DataFrame(rows).mean().round(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uncached-jobs", type=int, default=len(BUDGETS))
    parser.add_argument("--launcher", choices=["basic", "joblib"], default="basic")
    parser.add_argument("--jobs", type=int, default=2, help="joblib workers")
    parser.add_argument("--set", action="append", default=[], help="extra override")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    launcher = (
        ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.jobs}"]
        if args.launcher == "joblib"
        else []
    )
    work = Path(tempfile.mkdtemp(prefix="uplift-sweep-bench-"))
    warm, cold = f"sampler.cache_dir={work / 'cache'}", f"sampler.cache_dir={work / 'cold'}"
    print(f"scratch folder: {work}; launcher: {args.launcher}; overrides: {args.set or 'none'}")
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")

    single = uplift(
        [*args.set, warm, f"optimize.budget={BUDGETS[3]}", f"hydra.run.dir={work / 'single'}"],
        work,
    )
    print(f"single run (samples every fit): {single:.1f} s")
    after, t_after = sweep("after_one_fit", BUDGETS, [warm], args.set, work, launcher)
    print(f"sweep of {len(BUDGETS)} after one fit: {after:.1f} s ({after / single:.2f}x)")
    coldw, t_cold = sweep("cold_cache", BUDGETS, [cold], args.set, work, launcher)
    print(f"sweep of {len(BUDGETS)}, cold cache: {coldw:.1f} s ({coldw / single:.2f}x)")
    n = max(1, min(args.uncached_jobs, len(BUDGETS)))
    nocache, t_nocache = sweep(
        "no_cache", BUDGETS[:n], ["sampler.cache=false"], args.set, work, launcher
    )
    scaled = nocache * len(BUDGETS) / n
    label = "" if n == len(BUDGETS) else f" (estimate: {n} jobs took {nocache:.1f} s)"
    print(
        f"sweep of {len(BUDGETS)} without the cache: {scaled:.1f} s{label} ({scaled / single:.2f}x)"
    )

    cols = [
        "job",
        "budget",
        "total_spend",
        "expected_incremental_profit",
        "fits_from_cache",
        "fits",
    ]
    for title, table in (
        ("after one fit", t_after),
        ("cold cache", t_cold),
        ("no cache", t_nocache),
    ):
        print(f"\ncomparison.csv, sweep {title}:")
        print(table[cols].to_string(index=False))
    print("\nmean seconds per stage of a job, sweep after one fit (summary.json seconds):")
    print(stage_seconds(t_after).to_string())

    est = "" if n == len(BUDGETS) else f" (est. from {n} jobs)"
    print("\n| run | wall | x single run |\n| --- | --- | --- |")
    print(f"| single run, empty cache | {single:.1f} s | 1.00 |")
    print(f"| sweep of 10 budgets after one fit | {after:.1f} s | {after / single:.2f} |")
    print(f"| sweep of 10 budgets, cold cache | {coldw:.1f} s | {coldw / single:.2f} |")
    print(f"| sweep of 10 budgets, no cache | {scaled:.1f} s{est} | {scaled / single:.2f} |")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
