"""Is the plan's headline honest on the demo's own generator? (issue #10, second scenario)

Runs the default experiment (``uplift.data.synthetic``, a generator independent of
bench/crossed_decisions.py) for several data seeds and prints, per seed, the plan's true profit
(``truth_check``), its posterior claim and the headline corrected for selection
(``calibrated_incremental_profit``) as ratios to the truth, whether the calibrated interval
holds the truth, the cross-fitted value, and the plan's share of the oracle's true profit.

    python bench/demo_calibration.py [--seeds 5] [overrides...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import uplift


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    print(
        f"{'seed':>4} {'true':>9} {'claim/tr':>8} {'calib/tr':>8} {'covers':>6} {'xfit/tr':>7} {'oracle':>6} {'sec':>4}"
    )
    rows = []
    for seed in range(1, a.seeds + 1):
        t0 = time.perf_counter()
        config = uplift.compose_config(
            [f"data.synthetic.seed={seed}", "report.plots=false", *a.overrides]
        )
        with tempfile.TemporaryDirectory() as tmp:
            res = uplift.run(config, Path(tmp))
        s = res.summary
        true = s["truth_check"]["true_profit_of_allocation"]
        pv = s["plan_value"]
        lo, hi = pv["calibrated_ci"] or (np.nan, np.nan)
        row = (
            true,
            s["expected_incremental_profit"] / true,
            s["calibrated_incremental_profit"] / true,
            lo <= true <= hi,
            (pv["crossfit"] or np.nan) / true,
            s["truth_check"]["profit_ratio"],
        )
        rows.append(row)
        print(
            f"{seed:>4} {row[0]:>9,.0f} {row[1]:>8.3f} {row[2]:>8.3f} {str(row[3]):>6} "
            f"{row[4]:>7.3f} {row[5]:>6.3f} {time.perf_counter() - t0:>4.0f}",
            flush=True,
        )
    m = np.array(rows, dtype=float).mean(axis=0)
    print(f"mean {m[0]:>9,.0f} {m[1]:>8.3f} {m[2]:>8.3f} {m[3]:>6.2f} {m[4]:>7.3f} {m[5]:>6.3f}")


if __name__ == "__main__":
    main()
