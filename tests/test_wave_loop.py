"""Issue #15's acceptance check: a simulated 3-wave loop on synthetic truth, 5 seeds
(``bench/wave_loop.py``, which prints the same figures: ``python bench/wave_loop.py --seeds 5``).

Per seed: wave 1 uniformly randomized and fit with the default priors; waves 2 and 3 assigned
from the last run's Thompson shares (``next-wave``'s function, logged probabilities, 5% holdout),
the last run's plan valued on them (``evaluate-policy``'s DR estimate, 90% interval) and fit
with ``model.prior_from=<last run>`` (default forget 1.25). Real NUTS (4 x 1,000 draws).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from bench_modules import load_bench

SEEDS = range(1, 6)


def wave_loop():
    return load_bench("wave_loop")


@pytest.mark.slow  # 15 real-NUTS runs (~1 min per seed on 2 idle cores, ~3 min when busy)
def test_three_wave_loop_learns_and_its_policy_values_cover_the_truth():
    loop = wave_loop()
    results = []
    for seed in SEEDS:
        with tempfile.TemporaryDirectory(prefix="wave-loop-") as tmp:
            results.append(loop.loop(seed, 20_000, Path(tmp), []))
    summary = loop.report(results)  # prints the figures (pytest -s shows them)
    regret = summary["mean_regret"]
    # realised regret falls from wave to wave on average over the seeds
    assert regret[0] > regret[1] > regret[2], regret
    # 90% DR intervals of each later wave's policy value: 10 intervals (5 seeds x waves 2, 3).
    # If they hold their level, P(fewer than 7 of 10 cover) = 1.3%: the test asks for >= 7 and
    # the figure printed is the observed rate (not a precise coverage estimate: its binomial
    # standard error at 10 intervals is ~0.09)
    covered = sum(o["covered"] for r in results for o in r["ope"])
    assert summary["intervals"] == 10 and covered >= 7, [r["ope"] for r in results]
    assert np.isfinite(summary["mean_plan_regret"]).all()
