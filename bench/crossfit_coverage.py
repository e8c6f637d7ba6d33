"""Coverage of the cross-fitted plan value's interval over many replications (issue #10).

The design of tests/test_crossfit.py (6 segments x 3 arms, 300 customers per cell, plug-in plans
by difference in means and a greedy budget fill): each replication draws new customers, runs
``crossfit_plan_value`` and checks whether its interval holds the mean TRUE value of the fold
plans. Prints coverage +- its binomial se and the sd of the z-scores (1 when the SE is right).

    python bench/crossfit_coverage.py [--folds 3] [--reps 1000] [--rho 0.15] [--level 0.9]

``--optimism``: instead, the mean optimism of the plan chosen on ALL customers (claim - true
value) over the mean gap of the fold plans (claimed - held-out), the factor
``uplift.evaluate.crossfit.calibrate_headline`` needs (it uses (K-1)/K).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_crossfit import COSTS, VALUE, plug_in, simulate, true_plan_value  # noqa: E402
from uplift.evaluate.crossfit import FOLD_CORRELATION, crossfit_plan_value  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--rho", type=float, default=FOLD_CORRELATION, help="fold_correlation")
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--optimism", action="store_true", help="full-plan optimism / fold gap")
    a = ap.parse_args()
    if a.optimism:
        gap, full_opt = [], []
        for rep in range(a.reps):
            rows = simulate(5_000 + rep)
            full = plug_in(rows)
            res = crossfit_plan_value(rows, plug_in, COSTS, folds=a.folds, seed=rep, value=VALUE)
            gap.append(res.optimism_gap)
            full_opt.append(full.claimed_profit - true_plan_value(full.allocation))
        g, f = float(np.mean(gap)), float(np.mean(full_opt))
        print(
            f"folds={a.folds} reps={a.reps}: fold plans' gap {g:,.0f}, full plan's optimism "
            f"{f:,.0f}, ratio {f / g:.3f} (sqrt((K-1)/K) {((a.folds - 1) / a.folds) ** 0.5:.3f}, "
            f"(K-1)/K {(a.folds - 1) / a.folds:.3f})"
        )
        return
    hit, z = [], []
    for rep in range(a.reps):
        rows = simulate(1_000 + rep)
        res = crossfit_plan_value(
            rows,
            plug_in,
            COSTS,
            folds=a.folds,
            seed=rep,
            value=VALUE,
            level=a.level,
            fold_correlation=a.rho,
        )
        true = float(np.mean([true_plan_value(p) for p in res.plans]))
        hit.append(res.ci_low <= true <= res.ci_high)
        z.append((res.estimate - true) / res.se)
    c = float(np.mean(hit))
    print(
        f"folds={a.folds} rho={a.rho} level={a.level} reps={a.reps}: coverage {c:.3f} +- "
        f"{np.sqrt(c * (1 - c) / a.reps):.3f}, sd(z) {np.std(z):.3f}"
    )


if __name__ == "__main__":
    main()
