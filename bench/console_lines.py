"""Benchmark: what a run prints off a terminal, and how soon.

Runs ``uplift ARGS`` (default: the demo, as ``make demo`` does) in a fresh process in a
temporary folder with stdout and stderr as pipes (not a terminal: no progress display, as in CI
or a log), and prints every console line with the seconds since the start, then the number of
lines and the time to the first one. Figures are printed, never asserted; the machine may be
shared, so times are upper bounds.

    python bench/console_lines.py [-- uplift overrides ...]
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    with tempfile.TemporaryDirectory() as here:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "uplift.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=here,
            env=env,
        )
        assert proc.stdout is not None and proc.stderr is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
        sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
        times: list[float] = []
        while sel.get_map():
            for key, _ in sel.select():
                line = key.fileobj.readline()  # type: ignore[union-attr]
                if not line:
                    sel.unregister(key.fileobj)
                    continue
                times.append(time.perf_counter() - t0)
                print(f"{times[-1]:7.2f} s {key.data}: {line.decode().rstrip()}")
        code = proc.wait()
    total = time.perf_counter() - t0
    first = f"{times[0]:.2f} s" if times else "none"
    print(f"lines: {len(times)}; first line after {first}; exit {code}; total {total:.1f} s")


if __name__ == "__main__":
    main()
