"""Benchmark: start-up time of the console script.

Times ``uplift --help`` and ``uplift --cfg job`` (compose the config and print it, nothing run)
as fresh subprocesses, median of ``--runs`` runs each, against two baselines measured in the same
run: ``python -c "import hydra"`` (the floor any Hydra app pays) and ``python -c "import
uplift.cli"`` (our imports). Also lists which heavy packages ``--cfg job`` loads (none expected:
the verbs import the modelling stack when they run). Figures are printed, never asserted; the
machine may be shared, so compare the ratios to the Hydra baseline within one run.

    python bench/startup.py [--runs 5] [--src OTHER_CHECKOUT/src]

``--src`` times another checkout's package (e.g. the commit before a change) with this script.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
UPLIFT = str(Path(sys.executable).with_name("uplift"))
HEAVY = ("pandas", "pymc", "arviz", "pytensor", "cvxpy", "matplotlib", "scipy", "sklearn")


def _env(src: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def wall(cmd: list[str], runs: int, src: Path) -> float:
    """Median wall seconds of ``cmd`` over ``runs`` fresh processes (after one untimed warm-up
    run, so that every timed run finds the bytecode compiled and the files in the page cache)."""
    subprocess.run(cmd, env=_env(src), capture_output=True, check=True)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=_env(src), capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def heavy_after_compose(src: Path) -> list[str]:
    code = (
        "import sys; from uplift.cli import compose_config; compose_config([]); "
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=_env(src), capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--src", type=Path, default=SRC, help="the src/ folder to time")
    args = parser.parse_args()
    src = args.src.resolve()
    print(f"package: {src}")
    cases = {
        "python -c 'import hydra' (baseline)": [sys.executable, "-c", "import hydra"],
        "python -c 'import uplift.cli'": [sys.executable, "-c", "import uplift.cli"],
        "uplift --help": [UPLIFT, "--help"],
        "uplift --cfg job": [UPLIFT, "--cfg", "job"],
    }
    base = None
    print(f"median wall seconds of {args.runs} runs each")
    for name, cmd in cases.items():
        seconds = wall(cmd, args.runs, src)
        base = base or seconds
        print(f"  {name:40s} {seconds:6.2f} s  ({seconds / base:4.1f}x the Hydra baseline)")
    print(f"heavy packages loaded by composing the config: {heavy_after_compose(src) or 'none'}")


if __name__ == "__main__":
    main()
