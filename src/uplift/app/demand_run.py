"""``uplift demand``: weekly sales history -> elasticities -> the win-win price per segment.

One straight line: load the weekly table (``demand.path``), fit the hierarchical log-log demand
model (:mod:`uplift.models.demand`), turn its draws into expected units over a price grid inside
each segment's observed price range, and hand them to the same pricing optimizer a price test
uses (:class:`uplift.optimize.pricing.PriceOptimizer`: expected profit (price - cost) x units per
draw). Reported per segment beside today's price and the cost-plus rule, each with an interval.

The *win-win price* is the price that maximises expected profit under the posterior. Its
interval is the HDI of the profit-maximising price draw by draw (how sure the data are about
where the optimum lies); the profit intervals say how much money is at stake.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from uplift.atomic_io import atomic_write_csv, atomic_write_json, atomic_write_text
from uplift.models.demand import NAME, LogLogDemandModel, WeeklySales, weekly_sales
from uplift.optimize.factory import price_optimizer_from_settings
from uplift.optimize.pricing import PricingProblem, PricingResult
from uplift.stats import hdi

if TYPE_CHECKING:
    from uplift.config import AppConfig, DemandConfig

#: columns of demand_prices.csv, in order (README, "Pricing from sales history")
DEMAND_PRICE_COLUMNS = [
    "segment",
    "current_price",
    "unit_cost",
    "price_floor",
    "price_ceiling",
    "elasticity",
    "elasticity_hdi_low",
    "elasticity_hdi_high",
    "win_win_price",
    "win_win_price_hdi_low",
    "win_win_price_hdi_high",
    "lerner_price",
    "win_win_margin",
    "win_win_expected_units",
    "win_win_units_hdi_low",
    "win_win_units_hdi_high",
    "win_win_expected_profit",
    "win_win_profit_hdi_low",
    "win_win_profit_hdi_high",
    "cost_plus_price",
    "cost_plus_in_range",
    "cost_plus_expected_units",
    "cost_plus_expected_profit",
    "cost_plus_profit_hdi_low",
    "cost_plus_profit_hdi_high",
    "today_expected_units",
    "today_expected_profit",
    "today_profit_hdi_low",
    "today_profit_hdi_high",
    "gain_over_cost_plus",
    "gain_over_cost_plus_hdi_low",
    "gain_over_cost_plus_hdi_high",
    "prob_beats_cost_plus",
    "gain_over_today",
    "gain_over_today_hdi_low",
    "gain_over_today_hdi_high",
    "prob_beats_today",
    "binding_constraints",
    "category_price",
    "category_price_hdi_low",
    "category_price_hdi_high",
    "category_expected_units",
    "category_expected_profit",
    "category_profit_hdi_low",
    "category_profit_hdi_high",
]


#: posterior draws the price search uses (evenly thinned): the grid is the union of every
#: segment's own grid (~300 prices for 7 segments), and 8,000 draws x 7 x 300 profit arrays
#: take ~130 MB each; 2,000 draws keep intervals' Monte Carlo error small (ESS-limited anyway)
PRICING_DRAWS = 2000


class DemandGateError(ValueError):
    """The demand fit did not converge well enough to price on."""


def load_weekly(cfg: DemandConfig) -> tuple[WeeklySales, pd.DataFrame]:
    """The validated weekly table, and unit cost per row (NaN where the file has none)."""
    if not cfg.path:
        raise ValueError(
            "no sales history: set demand.path to a csv/parquet file with one row per segment "
            "and period (segment, period, units, price), or use experiment=dominicks_tuna_pricing"
        )
    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise ValueError(
            f"demand.path={str(path)!r} does not exist (relative paths are from the cwd)"
        )
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith((".parquet", ".pq")):
        raw = pd.read_parquet(path)
    elif ".csv" in suffixes:
        raw = pd.read_csv(path)
    else:
        raise ValueError(f"demand.path={str(path)!r}: unknown file type; use .csv[.gz] or .parquet")
    names = {
        "segment": cfg.segment,
        "period": cfg.period,
        "units": cfg.units,
        "price": cfg.price,
        **({"unit_cost": cfg.unit_cost} if cfg.unit_cost else {}),
        **({"traffic": cfg.traffic} if cfg.traffic else {}),
    }
    for c in cfg.controls:
        names[c] = c
    missing = {k: v for k, v in names.items() if v not in raw.columns}
    if missing:
        keys = ", ".join(f"demand.{k}={v!r}" for k, v in missing.items() if k not in cfg.controls)
        ctl = [v for k, v in missing.items() if k in cfg.controls]
        raise ValueError(
            f"{path.name} has no column for {keys or ''}{' demand.controls ' + str(ctl) if ctl else ''}"
            f"; its columns are {list(raw.columns)}. Point each key at a column of the file."
        )
    frame = pd.DataFrame({k: raw[v].to_numpy() for k, v in names.items()})
    if cfg.log_prices:
        for c in ("price", "unit_cost"):
            if c in frame:
                frame[c] = np.exp(pd.to_numeric(frame[c], errors="coerce"))
    sales = weekly_sales(frame, controls=list(cfg.controls), has_traffic=cfg.traffic is not None)
    return sales, sales.frame


def _recent(frame: pd.DataFrame, column: str, periods: int) -> pd.Series:
    """Median of ``column`` per segment over its last ``periods`` periods."""
    last = frame.sort_values("period").groupby("segment").tail(periods)
    return last.groupby("segment")[column].median()


def unit_costs(cfg: DemandConfig, frame: pd.DataFrame, segments: list[str]) -> pd.Series:
    """Unit cost per segment: ``unit_cost_by_segment`` where given, else the recent median of the
    cost column; a named error for a segment with neither."""
    cost = pd.Series(np.nan, index=segments, dtype=float)
    if "unit_cost" in frame:
        cost = cost.fillna(
            _recent(frame.dropna(subset=["unit_cost"]), "unit_cost", cfg.today_periods)
        )
    unknown = sorted(set(cfg.unit_cost_by_segment) - set(segments))
    if unknown:
        raise ValueError(
            f"demand.unit_cost_by_segment names {unknown}, which are not segments; segments: "
            f"{segments}"
        )
    for s, v in cfg.unit_cost_by_segment.items():
        cost[s] = float(v)
    lacking = [s for s in segments if not np.isfinite(cost[s]) or cost[s] < 0]
    if lacking:
        raise ValueError(
            f"no unit cost for segment(s) {lacking}: set demand.unit_cost to a cost column or "
            "demand.unit_cost_by_segment={segment: cost}"
        )
    return cost


def price_grid(bounds: pd.DataFrame, extra: list[pd.Series], num: int) -> np.ndarray:
    """Union of ``num`` points across each segment's [floor, ceiling] and the ``extra`` prices
    (today's, cost-plus), so every segment gets a fine grid of its own on one shared axis."""
    parts = [np.linspace(r.price_floor, r.price_ceiling, num) for r in bounds.itertuples()]
    parts += [s.to_numpy(float) for s in extra]
    return np.unique(np.round(np.concatenate(parts), 6))


def _interval(draws: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray]:
    lo_hi = hdi(draws, prob, axis=0)
    return lo_hi[..., 0], lo_hi[..., 1]


def demand_price_table(
    problem: PricingProblem,
    result: PricingResult,
    allowed: np.ndarray,
    elasticity: np.ndarray,
    bounds: pd.DataFrame,
    prob: float,
) -> pd.DataFrame:
    """Per segment: the win-win price with its interval beside today's and cost-plus."""
    S, G, K = problem.shape
    g = np.arange(G)
    t = result.table.set_index("segment").loc[list(problem.segments)]
    k_win = problem.snap(t["price"].to_numpy(float))
    k_cp = problem.snap(t["cost_plus_price"].to_numpy(float))
    cur = np.asarray(problem.current_price, dtype=float)
    k_today = problem.snap(cur)
    pdraws = problem.profit_draws
    win, cp, today = pdraws[:, g, k_win], pdraws[:, g, k_cp], pdraws[:, g, k_today]
    # the profit-maximising allowed price in each draw: where the optimum lies, with its spread
    masked = np.where(allowed[None, :, :], pdraws, -np.inf)
    best_price = problem.prices[masked.argmax(axis=2)]  # (S, G)
    e_lo, e_hi = _interval(elasticity, prob)
    p_lo, p_hi = _interval(best_price, prob)
    w_lo, w_hi = _interval(win, prob)
    c_lo, c_hi = _interval(cp, prob)
    t_lo, t_hi = _interval(today, prob)
    gain_cp, gain_today = win - cp, win - today
    gc_lo, gc_hi = _interval(gain_cp, prob)
    gt_lo, gt_hi = _interval(gain_today, prob)
    # constant elasticity: the unconstrained optimum is c x e / (1 + e) when e < -1
    e = elasticity
    lerner = np.where(e < -1, problem.unit_cost[None, :] * e / np.minimum(1 + e, -1e-12), np.inf)
    out = pd.DataFrame(
        {
            "segment": list(problem.segments),
            "current_price": cur,
            "unit_cost": problem.unit_cost,
            "price_floor": bounds["price_floor"].to_numpy(float),
            "price_ceiling": bounds["price_ceiling"].to_numpy(float),
            "elasticity": e.mean(axis=0),
            "elasticity_hdi_low": e_lo,
            "elasticity_hdi_high": e_hi,
            "win_win_price": problem.prices[k_win],
            "win_win_price_hdi_low": p_lo,
            "win_win_price_hdi_high": p_hi,
            "lerner_price": np.median(lerner, axis=0),
            "win_win_margin": problem.margin[g, k_win],
            "win_win_expected_units": t["expected_demand"].to_numpy(float),
            "win_win_units_hdi_low": t["demand_hdi_low"].to_numpy(float),
            "win_win_units_hdi_high": t["demand_hdi_high"].to_numpy(float),
            "win_win_expected_profit": win.mean(axis=0),
            "win_win_profit_hdi_low": w_lo,
            "win_win_profit_hdi_high": w_hi,
            "cost_plus_price": problem.prices[k_cp],
            "cost_plus_in_range": allowed[g, k_cp],
            "cost_plus_expected_units": problem.expected_buyers[g, k_cp],
            "cost_plus_expected_profit": cp.mean(axis=0),
            "cost_plus_profit_hdi_low": c_lo,
            "cost_plus_profit_hdi_high": c_hi,
            "today_expected_units": problem.expected_buyers[g, k_today],
            "today_expected_profit": today.mean(axis=0),
            "today_profit_hdi_low": t_lo,
            "today_profit_hdi_high": t_hi,
            "gain_over_cost_plus": gain_cp.mean(axis=0),
            "gain_over_cost_plus_hdi_low": gc_lo,
            "gain_over_cost_plus_hdi_high": gc_hi,
            "prob_beats_cost_plus": (gain_cp > 0).mean(axis=0),
            "gain_over_today": gain_today.mean(axis=0),
            "gain_over_today_hdi_low": gt_lo,
            "gain_over_today_hdi_high": gt_hi,
            "prob_beats_today": (gain_today > 0).mean(axis=0),
            "binding_constraints": t["binding_constraints"].to_numpy(),
        }
    )
    return out


def category_prices(
    model: LogLogDemandModel,
    grids: list[np.ndarray],
    cost: np.ndarray,
    start: np.ndarray,
    step: int,
    sweeps: int = 25,
) -> tuple[np.ndarray, np.ndarray]:
    """Prices that maximise the whole category's profit, each segment's substitution included.

    Coordinate ascent over each segment's own grid (``grids[g]``), from ``start``: move one
    segment to its best grid price given the others, sweep until nothing moves. Returns the
    expected-profit optimum (G,) and the same search run draw by draw (S, G), whose spread is
    the interval. Coupled through the cross-price effects, so not the separable problem
    ``PriceOptimizer`` solves; a local optimum in general (the profit surface of a
    constant-elasticity model with modest cross effects has one peak in the searched box).
    """
    G = len(grids)
    S = model.joint_units(start[None, None, :], step).shape[0]

    def ascend(per_draw: bool) -> np.ndarray:
        cur = np.tile(np.asarray(start, dtype=float), (S if per_draw else 1, 1))  # (R, G)
        for _ in range(sweeps):
            moved = False
            for g in range(G):
                cand = np.repeat(cur[:, None, :], len(grids[g]), axis=1)  # (R, K, G)
                cand[:, :, g] = grids[g][None, :]
                if per_draw:
                    prof = (model.joint_units(cand, step) * (cand - cost)).sum(axis=-1)
                    best = grids[g][prof.argmax(axis=1)]  # (S,)
                else:
                    units = model.joint_units(np.broadcast_to(cand, (S, *cand.shape[1:])), step)
                    prof = (units * (cand - cost)).sum(axis=-1).mean(axis=0)  # (K,)
                    best = np.full(1, grids[g][prof.argmax()])
                if not np.allclose(best, cur[:, g]):
                    moved = True
                cur[:, g] = best
            if not moved:
                break
        return cur

    return ascend(False)[0], ascend(True)


def _total(draws: np.ndarray, prob: float) -> dict[str, float]:
    lo, hi = hdi(draws, prob)
    return {"mean": float(draws.mean()), "hdi_low": float(lo), "hdi_high": float(hi)}


def _markdown(table: pd.DataFrame, summary: dict[str, Any]) -> str:
    """A short report: the per-segment table a pricing manager reads first."""
    pct = int(round(100 * summary["hdi_prob"]))
    lines = [
        f"# {summary['experiment']}: win-win prices from sales history",
        "",
        f"Data: {summary['data']['path']} ({summary['data']['rows']} rows, "
        f"{summary['data']['segments']} segments, periods {summary['data']['first_period']}"
        f"-{summary['data']['last_period']}). Model: {NAME}, fit {summary['fit_seconds']:.1f} s, "
        f"{summary['diagnostics']}.",
        "",
        f"Profit is per period at the latest level of demand, {pct}% HDIs in brackets. "
        "Win-win: each segment's best price with the others at today's; category: all set "
        "together, substitution between segments included.",
        "",
        "| segment | elasticity | today | cost | cost-plus | win-win price | win-win profit "
        "| cost-plus profit | P(beats cost-plus) | category price | category profit |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.segment} | {r.elasticity:.2f} [{r.elasticity_hdi_low:.2f}, "
            f"{r.elasticity_hdi_high:.2f}] | {r.current_price:.3f} | {r.unit_cost:.3f} "
            f"| {r.cost_plus_price:.3f} | {r.win_win_price:.3f} [{r.win_win_price_hdi_low:.3f}, "
            f"{r.win_win_price_hdi_high:.3f}] | {r.win_win_expected_profit:,.0f} "
            f"[{r.win_win_profit_hdi_low:,.0f}, {r.win_win_profit_hdi_high:,.0f}] "
            f"| {r.cost_plus_expected_profit:,.0f} [{r.cost_plus_profit_hdi_low:,.0f}, "
            f"{r.cost_plus_profit_hdi_high:,.0f}] | {r.prob_beats_cost_plus:.2f} "
            f"| {r.category_price:.3f} [{r.category_price_hdi_low:.3f}, "
            f"{r.category_price_hdi_high:.3f}] | {r.category_expected_profit:,.0f} |"
        )
    tot = summary["total_profit"]
    lines += [
        "",
        "Total per period: "
        + ", ".join(
            f"{k} {v['mean']:,.0f} [{v['hdi_low']:,.0f}, {v['hdi_high']:,.0f}]"
            for k, v in tot.items()
        ),
        "",
        *[f"- {n}" for n in summary["notes"]],
        "",
    ]
    return "\n".join(lines)


def run_demand(config: AppConfig, out: Path) -> dict[str, Any]:
    """Fit, price and write ``demand_prices.csv``, ``prices.csv``, ``elasticities.csv``,
    ``report.md`` and ``summary.json`` into ``out``; returns the summary."""
    cfg = config.demand
    sales, frame = load_weekly(cfg)
    segments = sales.segments
    cost = unit_costs(cfg, frame, segments)
    today = _recent(frame, "price", cfg.today_periods).reindex(segments)
    q_lo, q_hi = cfg.price_range
    qs = frame.groupby("segment")["price"].quantile([q_lo, q_hi]).unstack().reindex(segments)
    bounds = pd.DataFrame(
        {"price_floor": qs[q_lo].to_numpy(float), "price_ceiling": qs[q_hi].to_numpy(float)},
        index=segments,
    )
    cost_plus = cost * (1 + cfg.cost_plus_markup)
    grid = price_grid(bounds, [today, cost_plus], cfg.grid_num)

    model = LogLogDemandModel(
        sampler=config.sampler, block_periods=cfg.block_periods, cross_price=cfg.cross_price
    ).fit(sales)
    diag = model.diagnostics()
    failures = config.optimize.gate.failures(diag)
    if failures and not config.optimize.allow_unconverged:
        raise DemandGateError(
            f"the demand model did not converge ({'; '.join(failures)}): prices from it are "
            "not to be trusted. Sample longer (sampler.draws=4000 sampler.tune=2000) or, to "
            "look anyway, optimize.allow_unconverged=true"
        )
    # (sample, segment, price) units per period, the other segments at today's prices
    units = model.demand_curve(grid, others_at=today.to_dict())
    step = -(-units.sizes["sample"] // PRICING_DRAWS)
    units = units.isel(sample=slice(None, None, step))
    scale = units.max(dim=("sample", "price"))  # demand in [0, 1] x scale = units
    problem = PricingProblem.from_xarray(
        units / scale,
        unit_cost=cost,
        customers=scale.to_series(),
        current_price=today,
    )
    # the constant-elasticity curve is trusted only where prices were seen: a named rule, so
    # binding_constraints says when a win-win price sits at the edge of the observed range
    observed_range = {
        "type": "price_bounds",
        "name": "observed_price_range",
        "min_price": bounds["price_floor"].to_dict(),
        "max_price": bounds["price_ceiling"].to_dict(),
    }
    optimizer = price_optimizer_from_settings(
        constraints=[observed_range, *cfg.constraints],
        cost_plus_markup=cfg.cost_plus_markup,
        hdi_prob=cfg.hdi_prob,
    )
    result = optimizer.solve(problem)
    masks = [m for c in optimizer.constraints if (m := c.mask(problem)) is not None]
    allowed = np.logical_and.reduce(masks)  # the price-bounds rule is always among them
    elasticity = model.elasticity_draws().transpose("sample", "segment").values[::step]
    table = demand_price_table(problem, result, allowed, elasticity, bounds, cfg.hdi_prob)

    g = np.arange(len(segments))
    pdraws = problem.profit_draws
    totals = {
        "win_win": _total(result.total_profit_draws, cfg.hdi_prob),
        "cost_plus": _total(result.cost_plus_profit_draws, cfg.hdi_prob),
        "today": _total(
            pdraws[:, g, problem.snap(today.to_numpy(float))].sum(axis=1), cfg.hdi_prob
        ),
    }
    # the category view: every segment's price set together, substitution included
    cost_g = problem.unit_cost
    grids = [problem.prices[allowed[i]] for i in range(len(segments))]
    win_prices = table["win_win_price"].to_numpy(float)
    cat, cat_draws = category_prices(model, grids, cost_g, win_prices, step)
    S = cat_draws.shape[0]

    def joint_profit(prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        units = model.joint_units(np.broadcast_to(prices, (S, 1, len(segments))), step)[:, 0]
        return units, units * (prices - cost_g)

    cat_units, cat_profit = joint_profit(cat)
    c_lo, c_hi = _interval(cat_draws, cfg.hdi_prob)
    cp_lo, cp_hi = _interval(cat_profit, cfg.hdi_prob)
    table["category_price"] = cat
    table["category_price_hdi_low"] = c_lo
    table["category_price_hdi_high"] = c_hi
    table["category_expected_units"] = cat_units.mean(axis=0)
    table["category_expected_profit"] = cat_profit.mean(axis=0)
    table["category_profit_hdi_low"] = cp_lo
    table["category_profit_hdi_high"] = cp_hi
    table = table[DEMAND_PRICE_COLUMNS]
    totals["win_win_together"] = _total(joint_profit(win_prices)[1].sum(axis=1), cfg.hdi_prob)
    totals["category"] = _total(cat_profit.sum(axis=1), cfg.hdi_prob)
    notes = [
        "win-win price: the price maximising expected profit per period, (price - unit cost) x "
        "expected units, within the segment's observed price range (no extrapolation of the "
        "demand curve); its interval is the HDI of the profit-maximising price draw by draw",
        f"cost-plus: unit cost x (1 + {cfg.cost_plus_markup:g}); today: median price of the last "
        f"{cfg.today_periods} periods; unit cost: "
        + ("demand.unit_cost_by_segment / " if cfg.unit_cost_by_segment else "")
        + (f"median of column {cfg.unit_cost!r} over the same periods" if cfg.unit_cost else ""),
        "expected units: an ordinary period of the latest block (controls at 0"
        + (", traffic at its latest mean" if cfg.traffic else "")
        + (", the other segments at today's prices" if cfg.cross_price else "")
        + ")",
    ]
    if cfg.cross_price:
        notes.append(
            "each segment's win-win price holds the others at today's prices; moving several at "
            "once gains less where segments substitute (cross_price_elasticity > 0 in "
            "elasticities.csv); total_profit.win_win_together: every segment at its win-win "
            "price at once; category_price: the prices that maximise the category's profit "
            "with substitution included (total_profit.category)"
        )
    out_of_range = table.loc[~table["cost_plus_in_range"], "segment"].tolist()
    if out_of_range:
        notes.append(
            f"cost-plus price outside the observed price range for {out_of_range}: its demand "
            "is an extrapolation of the constant-elasticity curve"
        )
    summary: dict[str, Any] = {
        "experiment": config.experiment_name,
        "message": (
            f"{len(segments)} segments priced; expected profit per period "
            f"{totals['win_win']['mean']:,.0f} at win-win prices vs "
            f"{totals['cost_plus']['mean']:,.0f} cost-plus and {totals['today']['mean']:,.0f} today"
        ),
        "model": model.config(),
        "data": {
            "path": str(cfg.path),
            "rows": len(frame),
            "segments": len(segments),
            "first_period": float(frame["period"].min()),
            "last_period": float(frame["period"].max()),
            "controls": list(cfg.controls),
            "traffic": cfg.traffic,
        },
        "fit_seconds": model.fit_seconds,
        "diagnostics": str(diag),
        "converged": not failures,
        "gate_failures": failures,
        "hdi_prob": cfg.hdi_prob,
        "pricing": result.summary(cfg.hdi_prob),
        "total_profit": totals,
        "notes": notes + list(result.notes),
    }
    atomic_write_csv(table, out / "demand_prices.csv")
    atomic_write_csv(result.table, out / "prices.csv")
    atomic_write_csv(model.coefficient_table(cfg.hdi_prob), out / "elasticities.csv")
    atomic_write_text(_markdown(table, summary), out / "report.md")
    atomic_write_json(summary, out / "summary.json")
    return summary
