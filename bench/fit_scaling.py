"""Benchmark: fit time vs number of customers (sufficient statistics keep it flat).

Customers from 1e4 to 1e7 (``--max-customers``) for the 6-tactic conversion model on 48 segments
(4 value tiers x 12 needs). Rows are aggregated to cells first, so fit time should stay flat
while generation and aggregation grow linearly. The graph is compiled once in a warm-up fit
(nutpie reuses it, see ``uplift.models.sampling``), so each row times sampling alone; the ratio
column is against the 1e4 row measured in the same run. Backends are compared in
``bench/backends.py``.

    python bench/fit_scaling.py [--max-customers 10000000] [--draws 1000] [--chains 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from benchmark_model import make_cells  # bench/ is on sys.path when run as a script

from uplift.models import ConversionUpliftModel, SamplerSettings


def fit_all(cells, arms, settings: SamplerSettings) -> tuple[float, float, float]:
    """Seconds for all tactics, min bulk ESS, max r-hat."""
    t0 = time.perf_counter()
    ess, rhat = np.inf, 0.0
    for tactic in arms.tactics():
        d = ConversionUpliftModel(sampler=settings).fit(cells, tactic.value).diagnostics()
        ess, rhat = min(ess, d.ess_bulk_min), max(rhat, d.r_hat_max)
    return time.perf_counter() - t0, ess, rhat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-customers", type=float, default=1e7)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    args = ap.parse_args()

    s = SamplerSettings(
        backend="nutpie", draws=args.draws, tune=args.draws, chains=args.chains, seed=5
    )
    cells, arms, _, _ = make_cells(10_000)
    t0 = time.perf_counter()
    fit_all(cells, arms, s)
    print(
        f"model: 6 tactics x {cells['segment'].nunique()} segments, {len(cells)} cells; "
        f"{args.chains} chains x {args.draws} draws (nutpie); warm-up incl. compile "
        f"{time.perf_counter() - t0:.1f} s"
    )
    print(
        f"{'customers':>10} {'cells':>6} {'generate s':>10} {'aggregate s':>11} {'fit s':>7} "
        f"{'min ESS':>8} {'max r-hat':>9} {'fit vs 1e4':>10}"
    )
    base = None
    n = 10_000
    while n <= args.max_customers:
        cells, arms, t_gen, t_agg = make_cells(n)
        sec, ess, rhat = fit_all(cells, arms, s)
        base = base or sec
        print(
            f"{n:>10,} {len(cells):>6} {t_gen:10.2f} {t_agg:11.2f} {sec:7.1f} {ess:8.0f} "
            f"{rhat:9.4f} {sec / base:9.2f}x",
            flush=True,
        )
        n *= 10


if __name__ == "__main__":
    main()
