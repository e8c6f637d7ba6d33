"""The benchmark model shared by bench/fit_scaling.py and bench/backends.py.

Six tactics (one arm each) plus control on 48 segments (4 value tiers x 12 needs), from the
synthetic generator, aggregated to cells.
"""

from __future__ import annotations

import time

from uplift.data import ColumnMap, aggregate_cells, validate_customers
from uplift.data.synthetic import default_arm_map, generate

TIERS = ["low", "mid", "high", "top"]
NEEDS = ["price", "quality", "convenience", "variety", *[f"need{i}" for i in range(5, 13)]]


def make_cells(n_customers: int, seed: int = 1):
    """Cells, arm map, seconds to generate the customers and seconds to validate + aggregate."""
    arms = default_arm_map()
    t0 = time.perf_counter()
    exp = generate(
        arms,
        n_customers=n_customers,
        seed=seed,
        value_tiers=TIERS,
        tier_shares=[0.4, 0.3, 0.2, 0.1],
        needs=NEEDS,
    )
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = validate_customers(exp.customers, ColumnMap(segments=("value_tier", "needs")), arms)
    cells = aggregate_cells(data)
    return cells, arms, t_gen, time.perf_counter() - t0
