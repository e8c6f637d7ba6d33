"""Screenshots of a run's report.html, as in docs/: the first screen at 1366x768 and, with
--full, the whole page. Same headless Chromium setup as the browser test
(uplift.report.browser: the system chromium via Playwright, no network).

    python docs/screenshot.py RUN_FOLDER NAME [--full] [--out docs/img]

writes ``NAME_first_screen.png`` (and ``NAME_full.png``) into ``--out``. The docs' pictures
come from these runs (see README, "The HTML report"):

    uplift hydra.run.dir=/tmp/h1                                               # demo
    uplift experiment=hillstrom_email_visit evaluate.crossfit_folds=0 hydra.run.dir=/tmp/h2
    uplift experiment=synthetic_pricing hydra.run.dir=/tmp/h3
    python docs/screenshot.py /tmp/h1 demo --full
    python docs/screenshot.py /tmp/h2 hillstrom
    python docs/screenshot.py /tmp/h3 pricing
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from uplift.report.browser import screenshots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder holding report.html")
    parser.add_argument("name", help="file name stem of the screenshots")
    parser.add_argument("--full", action="store_true", help="also the whole page")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "img")
    args = parser.parse_args(argv)
    report = args.run / "report.html"
    if not report.exists():
        parser.error(f"{report} does not exist: run uplift first (hydra.run.dir={args.run})")
    for path in screenshots(report, args.out, args.name, full_page=args.full):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
