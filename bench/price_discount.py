"""Benchmark (not a test): the price model on a 10% discount, before and after issue #12's fix.

    PYTHONPATH=src .venv/bin/python bench/price_discount.py [--seeds 7] [--scenario demo|second|both]

``demo``: the margin tactic of ``experiment=synthetic_tactics`` (120k customers, 12 segments =
value tier x needs, the discount at 0.9 x list vs list), fit alone as the pipeline builds it, its
FIRST fit only (no retry ladder). ``second``: an independent price test written here, not the
demo's generator: 10 segments = region (5) x channel (2), three prices (0.85, 1.0 = list, 1.12
x a list price of 25), elasticities drawn uniformly in [-4.2, -0.7] with a region x channel
interaction (not additive, not lognormal), 60k customers (``--customers``), unequal segments,
unit cost 15.

Each model is fit ``before`` (the price model as the pipeline built it before the fix:
exchangeable log elasticities, both forms centred, ``sampler.target_accept`` 0.9) and ``after``
(``uplift.models.families.price_logit.build``: the pipeline's resolved parameterization, log
elasticities pooled along the segment columns, target_accept_structured). Printed per fit:
divergences, max r-hat, min bulk ESS, the mean z of each arm's lift (purchase probability at the
arm's price minus at list) against the truth, the coverage of its 90% intervals, how many cells
the posterior mean overstates, the pricing profit ratio (true profit of the chosen per-segment
prices over the grid's best) and fit seconds (compiling included the first time).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from uplift import compose_config
from uplift import pipeline as P
from uplift.config import ModelConfig
from uplift.data import ColumnMap, aggregate_cells, validate_customers
from uplift.data.cells import tactic_cells
from uplift.data.synthetic_price import (
    generate_price_test,
    price_arm_map,
    price_label,
    true_purchase_probability,
)
from uplift.models import SamplerSettings
from uplift.models.families.base import ModelInputs
from uplift.models.families.price_logit import NAME, build
from uplift.models.price import PriceResponseModel
from uplift.models.settings import Parameterization
from uplift.report.truth import score_prices


def lift_scores(model: PriceResponseModel, truth: pd.DataFrame) -> dict[str, float]:
    """``truth``: (arm, segment)-indexed true lift in purchase probability."""
    up = model.uplift_draws()
    arms = [str(a) for a in up["arm"].values]
    segs = [str(s) for s in up["segment"].values]
    v = np.asarray(up.values)  # (S, A, G)
    t = np.array([[truth.loc[(a, g)] for g in segs] for a in arms])
    z = (v.mean(0) - t) / v.std(0)
    lo, hi = np.quantile(v, [0.05, 0.95], axis=0)
    d = model.diagnostics()
    return {
        "div": d.divergences,
        "rhat": round(float(d.r_hat_max), 4),
        "ess": round(float(d.ess_bulk_min)),
        "mean_z": round(float(z.mean()), 2),
        "over": f"{int((z > 0).sum())}/{z.size}",
        "cov90": round(float(((lo <= t) & (t <= hi)).mean()), 2),
    }


def demo(seed: int) -> list[dict]:
    config = compose_config(
        ["experiment=synthetic_tactics", "sampler.cache=false", f"data.synthetic.seed={seed}"]
    )
    prep = P.prepare(config, Path(tempfile.mkdtemp()))
    cells = tactic_cells(prep.cells, "margin")
    truth = prep.truth.set_index(["arm", "segment"])["true_uplift"]
    grid = P.price_grid(config, config.tactics.arm_map())
    rows = []
    for label in ("before", "after"):
        if label == "before":
            model = PriceResponseModel(dict(config.pricing.prices), sampler=config.sampler)
        else:
            model = P.build_model(config, "margin", prep.data, cells)
        t0 = time.perf_counter()
        model.fit(cells, "margin")
        secs = time.perf_counter() - t0
        fit = P.FittedTactic("margin", model, model.diagnostics(), secs)
        table, _, _ = P.optimize_prices(config, {"margin": fit}, prep.cells, prep.data.arm_map)
        priced = score_prices(
            table, prep.truth, grid, 1.0, P.eligible_customers(config, prep.cells)
        )
        rows.append(
            {
                "scenario": "demo",
                "seed": seed,
                "model": label,
                **lift_scores(model, truth),
                "profit_ratio": round(float(priced["profit_ratio"]), 4),
                "below_list": int((table["price"] < 1.0).sum()),
                "secs": round(secs, 1),
            }
        )
        print(rows[-1], flush=True)
    return rows


REGIONS = ["north", "south", "east", "west", "centre"]
CHANNELS = ["web", "store"]
LIST_PRICE, UNIT_COST = 25.0, 15.0
PRICES = [0.85 * LIST_PRICE, LIST_PRICE, 1.12 * LIST_PRICE]


def second(seed: int, n_customers: int = 60_000) -> list[dict]:
    rng = np.random.default_rng([seed, 12])
    segs = [f"{r}/{c}" for r in REGIONS for c in CHANNELS]
    b_region = rng.uniform(-4.2, -0.7, len(REGIONS))
    flip = np.array([0.0, 0.0, 1.0, -1.0, 0.5])  # channel x region interaction on b
    b = np.array(
        [
            np.clip(b_region[i] + (0.6 if c == "web" else -0.6) * flip[i], -4.2, -0.7)
            for i in range(len(REGIONS))
            for c in CHANNELS
        ]
    )
    a = rng.normal(-2.2, 0.5, len(segs))
    shares = rng.uniform(0.5, 1.5, len(segs))
    customers, _ = generate_price_test(
        segs, PRICES, LIST_PRICE, n_customers, a, b, seed=seed, segment_shares=shares
    )
    parts = customers["segment"].str.split("/", expand=True)
    customers = customers.assign(region=parts[0], channel=parts[1]).drop(columns="segment")
    arm_map = price_arm_map(PRICES, LIST_PRICE)
    data = validate_customers(customers, ColumnMap(segments=("region", "channel")), arm_map)
    cells = aggregate_cells(data)
    prices = {price_label(q): q for q in PRICES}
    p_list = true_purchase_probability(a, b, LIST_PRICE, LIST_PRICE)
    truth = pd.Series(
        {
            (price_label(q), g): float(true_purchase_probability(a[i], b[i], q, LIST_PRICE))
            - float(p_list[i])
            for q in PRICES
            if q != LIST_PRICE
            for i, g in enumerate(segs)
        }
    )
    grid = np.linspace(PRICES[0], PRICES[-1], 28)
    n = cells.groupby("segment")["n"].sum().reindex(segs).to_numpy()
    true_profit = (
        n[:, None]
        * (grid[None, :] - UNIT_COST)
        * true_purchase_probability(a[:, None], b[:, None], grid[None, :], LIST_PRICE)
    )
    run = SamplerSettings()
    rows = []
    for label in ("before", "after"):
        if label == "before":
            model = PriceResponseModel(prices, sampler=run)
        else:
            control, treated = [arm_map.control.name], [a.name for a in arm_map.treated]
            par = Parameterization("auto", "auto").resolve(
                P.cell_events(cells, NAME, control),
                len(segs),
                P.cell_events(cells, NAME, treated),
            )
            built = build(
                ModelInputs(
                    priors=ModelConfig(),  # the price family reads none of them
                    data=data,
                    parameterization=par,
                    structure={"segment_dims": ("region", "channel"), "interactions": True},
                    sampler=replace(run, target_accept=run.target_accept_structured),
                    run_sampler=run,
                    prices=prices,
                )
            )
            assert isinstance(built, PriceResponseModel)
            model = built
        t0 = time.perf_counter()
        model.fit(cells, "margin")
        secs = time.perf_counter() - t0
        demand = model.demand_curve(grid)  # (S, G, P)
        segs_m = [str(s) for s in demand["segment"].values]
        order = [segs.index(g) for g in segs_m]
        expected = (grid[None, :] - UNIT_COST) * np.asarray(demand.values).mean(0)
        pick = expected.argmax(1)
        tp = true_profit[order]
        ratio = tp[np.arange(len(order)), pick].sum() / tp.max(1).sum()
        rows.append(
            {
                "scenario": f"second_{n_customers // 1000}k",
                "seed": seed,
                "model": label,
                **lift_scores(model, truth),
                "profit_ratio": round(float(ratio), 4),
                "below_list": int((grid[pick] < LIST_PRICE).sum()),
                "secs": round(secs, 1),
            }
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="7")
    parser.add_argument("--scenario", choices=["demo", "second", "both"], default="both")
    parser.add_argument("--customers", type=int, default=60_000, help="of the second scenario")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        if args.scenario in ("demo", "both"):
            rows += demo(seed)
        if args.scenario in ("second", "both"):
            rows += second(seed, args.customers)
    df = pd.DataFrame(rows)
    print(df.to_string(index=False))
    if df["seed"].nunique() > 1:
        num = ["div", "mean_z", "cov90", "profit_ratio", "secs"]
        print(df.groupby(["scenario", "model"])[num].mean().round(3).to_string())


if __name__ == "__main__":
    main()
