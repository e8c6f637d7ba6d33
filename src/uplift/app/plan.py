"""``uplift design``: size the next experiment from the data you already have.

Baselines per segment are the control conversion rates of ``data`` (a previous test, or a
pre-period table with everyone in control); customers available per segment are the segment
sizes times ``optimize.population_scale``. The sizing itself is :func:`design_table`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd

from uplift.atomic_io import atomic_write_csv
from uplift.config import AppConfig
from uplift.data.cells import aggregate_cells, segment_sizes
from uplift.experiment.design import design_table
from uplift.inputs import load_data


def plan_experiment(config: AppConfig, output_dir: str | Path) -> pd.DataFrame:
    """Write ``design.csv`` (required customers per segment x arm) and return it."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    data, _ = load_data(config, out)
    cells = aggregate_cells(data)
    ctl = cells[cells["arm"] == data.arm_map.control.name].set_index("segment")
    d = config.design
    if d.metric == "revenue" and not data.has_revenue:
        raise ValueError("design.metric=revenue needs a revenue column: map data.columns.revenue")
    total = ctl["conversions"] if d.metric == "conversion" else ctl["revenue_sum"]
    mean = total / ctl["n"]
    sd = (ctl["revenue_sq_sum"] / ctl["n"] - mean**2).clip(lower=0) ** 0.5
    segments = pd.DataFrame(
        {
            "segment": ctl.index,
            "baseline": mean.to_numpy(),
            "sd": sd.to_numpy(),
            "customers": (
                segment_sizes(cells).reindex(ctl.index) * config.optimize.population_scale
            ).to_numpy(),
        }
    )
    prior = None
    if d.assurance_prior_mean is not None and d.assurance_prior_sd is not None:
        prior = (d.assurance_prior_mean, d.assurance_prior_sd)
    allocation: float | Literal["optimal"] = (
        "optimal" if d.allocation == "optimal" else float(d.allocation)
    )
    table = design_table(
        segments,
        data.arm_map,
        d.mde,
        metric="binary" if d.metric == "conversion" else "continuous",
        alpha=d.alpha,
        power=d.power,
        allocation=allocation,
        correction=d.correction,
        rho=d.rho,
        assurance_prior=prior,
        seed=config.sampler.seed,
    )
    atomic_write_csv(table, out / "design.csv")
    return table
