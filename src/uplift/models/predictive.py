"""Posterior and prior predictive checks for every model family, on cells of sufficient statistics.

A fitted model is only as good as its fit to the data it summarises. For each cell (segment x
arm) of a tactic we replicate family-specific statistics from the model, one replicate per
posterior (or prior) draw, using the *exact* sampling distribution of the cell's statistics given
that draw, and compare the observed statistic with the replicates:

* ``binomial`` / ``price_logit``: conversions ~ Binomial(n, p) per (segment, arm / price).
* ``hurdle_lognormal``: buyers ~ Binomial(n, p); given the observed number of buyers k, the mean
  of log spend ~ N(mu, s / sqrt(k)) and (k - 1) sd^2 / s^2 ~ chi2(k - 1), independent. Spend
  statistics are conditioned on the observed k so they check the spend part alone (and stay
  defined in every replicate); the buyers statistic checks the purchase part.
* ``negative_binomial``: a replicated histogram of the cell's n counts (a multinomial over the
  NB pmf, with the far tail drawn exactly by inversion), giving the mean count, the share of
  zeros and the variance of the same replicated customers.

The posterior predictive p-value is P(T_rep >= T_obs) with mid-p for ties (discrete statistics).
Where the statistic has a closed-form distribution given a draw (all but the NB variance), p is
Rao-Blackwellised: the average over draws of P(T_rep > T_obs | draw) + P(T_rep = T_obs | draw) / 2,
which removes the replication noise from p; intervals always come from the replicates.

Prior checks run the same machinery on prior draws of the model's own PyMC graph (every random
and deterministic variable, the replicated observed ones included, batched over draws in one call;
``pm.sample_prior_predictive`` is the fallback) and translate the priors into quantities on the
scales people reason in (:func:`prior_implied_quantities`), judged by stated
:class:`PlausibleRange` s.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from uplift.models.building import graph_building
from uplift.models.families import FAMILIES as _REGISTRY
from uplift.models.families import Family
from uplift.models.revenue import lognormal_cell_stats

#: the families with predictive checks (all registered ones)
FAMILIES = tuple(_REGISTRY)
KINDS = ("posterior", "prior")
TABLE_COLUMNS = [
    "segment",
    "arm",
    "statistic",
    "n",
    "observed",
    "pred_mean",
    "pred_low",
    "pred_high",
    "p_value",
]
#: statistics per family, in table order (``Family.statistics``)
STATISTICS = {name: f.statistics for name, f in _REGISTRY.items()}

# NB replication: support covered by the multinomial histogram (the rest is drawn by inversion),
# the tail mass that sets it, elements per chunk, and means beyond which nothing is simulated.
_NB_TAIL = 1e-7
_NB_MAX_SUPPORT = 1024
_NB_CHUNK = 2_000_000
_NB_MAX_MEAN = 1e9


# ---- result --------------------------------------------------------------------------------------
@dataclass
class PredictiveCheck:
    """Observed vs replicated statistics per cell for one tactic's model.

    ``table`` has one row per (cell, statistic): ``segment, arm, statistic, n, observed,
    pred_mean, pred_low, pred_high, p_value`` (plus ``price`` for ``price_logit``). ``p_value``
    is one-sided, P(T_rep >= T_obs) (mid-p); a cell is extreme when the two-sided p,
    ``2 min(p, 1 - p)``, is below ``alpha``. Rows whose statistic is undefined (e.g. the spread
    of log spend in a cell with fewer than two buyers) hold NaN and are left out of the summary.
    """

    tactic: str
    family: str
    kind: str
    table: pd.DataFrame
    draws: int
    interval: float
    #: statistic -> replicated values, shape (draws, cells); columns follow that statistic's rows
    replicates: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def two_sided(self) -> pd.Series:
        p = self.table["p_value"]
        return 2.0 * np.minimum(p, 1.0 - p)

    def summary(self, alpha: float = 0.05) -> dict[str, Any]:
        """Per statistic: cells checked, share with two-sided p < ``alpha``, min two-sided p,
        and share of observed values outside the predictive interval. JSON-ready."""
        _check_unit("alpha", alpha)
        two = self.two_sided()
        per: dict[str, dict[str, float | int]] = {}
        for stat in dict.fromkeys(self.table["statistic"]):
            m = (self.table["statistic"] == stat) & two.notna()
            t, p2 = self.table[m], two[m]
            outside = (t["observed"] < t["pred_low"]) | (t["observed"] > t["pred_high"])
            per[str(stat)] = {
                "cells": int(m.sum()),
                "extreme_share": float((p2 < alpha).mean()) if m.any() else float("nan"),
                "min_p": float(p2.min()) if m.any() else float("nan"),
                "outside_interval_share": float(outside.mean()) if m.any() else float("nan"),
            }
        ok = two.notna()
        return {
            "tactic": self.tactic,
            "family": self.family,
            "kind": self.kind,
            "draws": int(self.draws),
            "interval": float(self.interval),
            "alpha": float(alpha),
            "cells": int(self.table[["segment", "arm"]].drop_duplicates().shape[0]),
            "statistics": per,
            "extreme_share": float((two[ok] < alpha).mean()) if ok.any() else float("nan"),
            "min_p": float(two[ok].min()) if ok.any() else float("nan"),
        }

    def passed(self, max_extreme_share: float = 0.1, alpha: float = 0.05) -> bool:
        """True when no statistic has more than ``max_extreme_share`` of its cells extreme.

        Posterior predictive p-values are conservative (the data are used twice), so a
        well-specified model shows fewer than ``alpha`` extreme cells; a larger share is misfit.
        """
        _check_unit("max_extreme_share", max_extreme_share, closed=True)
        per = self.summary(alpha)["statistics"]
        return all(not (v["extreme_share"] > max_extreme_share) for v in per.values())


# ---- public entry points -------------------------------------------------------------------------
def posterior_predictive_check(
    model: Any,
    cells: pd.DataFrame,
    n_draws: int = 500,
    seed: int = 0,
    interval: float = 0.9,
    histograms: pd.DataFrame | None = None,
) -> PredictiveCheck:
    """Replicate each cell's statistics from the fitted posterior and score the observed ones.

    ``cells`` are the tactic's cells (control plus ``model.tactic``), usually those the model was
    fit on; any cells over the same segments and arms can be checked against the fit.
    ``n_draws`` posterior draws are picked at random (with replacement only if the posterior has
    fewer). ``histograms`` (negative binomial only) defaults to ``model.histograms``.
    """
    family = _family(model)
    _check_args(n_draws, interval)
    if getattr(model, "idata", None) is None:
        raise ValueError(
            f"model ({type(model).__name__}) is not fitted: call model.fit(cells, tactic) before "
            "posterior_predictive_check, or use prior_predictive_check"
        )
    tactic = _tactic(model, cells, None)
    rows = _tactic_cells(cells, tactic, family)
    post = _dataset(model.idata, "posterior")
    total = post.sizes["chain"] * post.sizes["draw"]
    rng = np.random.default_rng([seed, 1])
    idx = rng.choice(total, size=n_draws, replace=n_draws > total)
    stats_ = _statistics(family, model, post, None, rows, idx, rng, histograms)
    return _check(tactic, family, "posterior", rows, stats_, n_draws, interval, model)


def prior_predictive_check(
    model: Any,
    cells: pd.DataFrame,
    n_draws: int = 500,
    seed: int = 0,
    interval: float = 0.9,
    tactic: str | None = None,
    histograms: pd.DataFrame | None = None,
) -> PredictiveCheck:
    """The same table with replicates from the priors: are the observed cells plausible a priori?

    Draws come from the model's own graph (``model.build_model(cells, tactic)``, batched over
    draws; ``pm.sample_prior_predictive`` if that fails): its replicated observed variables
    (conversions, buyers) are used directly, the statistics the graph cannot replicate (spend
    behind a Potential, NB counts) are drawn with numpy from the same exact distributions as
    the posterior check. ``tactic`` defaults to ``model.tactic`` or the
    single non-control tactic of ``cells``. The model need not be fitted.
    """
    family = _family(model)
    _check_args(n_draws, interval)
    tactic = _tactic(model, cells, tactic)
    rows = _tactic_cells(cells, tactic, family)
    prior, pp = _prior_draws(model, cells, tactic, family, n_draws, seed, histograms)
    rng = np.random.default_rng([seed, 2])
    idx = np.arange(n_draws)
    stats_ = _statistics(family, model, prior, pp, rows, idx, rng, histograms)
    return _check(tactic, family, "prior", rows, stats_, n_draws, interval, model)


# ---- prior-implied quantities --------------------------------------------------------------------
@dataclass(frozen=True)
class PlausibleRange:
    """What a weakly informative prior must do for one quantity.

    Not absurd: at most ``max_outside`` of the prior mass outside ``[low, high]``. Not too
    tight: the central 95% prior interval must contain ``cover`` (values the data could
    plausibly show, which the prior must not rule out).
    """

    low: float
    high: float
    cover: tuple[float, float]
    max_outside: float = 0.05
    why: str = ""


#: Stated, defensible bounds per quantity (units as in :func:`prior_implied_quantities`).
DEFAULT_RANGES: dict[str, PlausibleRange] = {
    "baseline_rate": PlausibleRange(
        1e-4,
        0.99,
        (0.005, 0.5),
        why="marketing response rates below 0.01% or above 99% are not what tests are run on; "
        "anything from 0.5% to 50% must stay possible",
    ),
    "uplift_pp": PlausibleRange(
        -30.0,
        30.0,
        (-1.0, 1.0),
        why="a campaign moving a rate by more than 30 points is implausible; effects of a point "
        "must stay possible",
    ),
    "spend_mean": PlausibleRange(
        0.1,
        1e5,
        (5.0, 500.0),
        why="mean spend per buyer beyond 100,000 (or below 0.1) currency units is absurd for a "
        "campaign; 5 to 500 must stay possible",
    ),
    "spend_mean_to_median": PlausibleRange(
        1.0,
        100.0,
        (1.1, 3.0),
        why="currency-free: mean spend 100 times the median (log-spend spread s > 3) means a "
        "handful of buyers carry the revenue; spreads from s = 0.45 to 1.5 must stay possible",
    ),
    "spend_change_pct": PlausibleRange(
        -75.0,
        300.0,
        (-5.0, 5.0),
        why="treatment cutting spend per buyer by 3/4 or quadrupling it is implausible",
    ),
    "count_mean": PlausibleRange(
        1e-3,
        50.0,
        (0.05, 2.0),
        why="orders or referrals per customer in a test window: more than 50 or fewer than 1 "
        "per 1,000 customers is absurd",
    ),
    "rate_ratio": PlausibleRange(
        0.2,
        5.0,
        (0.9, 1.1),
        why="treatment multiplying counts by more than 5 (or dividing by 5) is implausible",
    ),
    "elasticity": PlausibleRange(
        -20.0,
        0.0,
        (-3.0, -0.5),
        why="demand falls with price (b < 0); beyond -20 a 5% price change would wipe out demand",
    ),
}


@dataclass
class PriorImplied:
    """Prior draws of interpretable quantities, their quantiles and the verdict of the ranges."""

    tactic: str
    family: str
    draws: dict[str, np.ndarray]
    table: pd.DataFrame
    ranges: dict[str, PlausibleRange] = field(default_factory=lambda: dict(DEFAULT_RANGES))

    def failures(self, ranges: Mapping[str, PlausibleRange] | None = None) -> list[str]:
        """Why the priors are not weakly informative (empty when every judged quantity passes)."""
        out = []
        for name, r in (self.ranges if ranges is None else ranges).items():
            if name not in self.draws:
                continue
            x = self.draws[name]
            outside = float(np.mean((x < r.low) | (x > r.high) | np.isnan(x)))
            if outside > r.max_outside:
                out.append(
                    f"{name}: {outside:.0%} of prior mass outside [{r.low:g}, {r.high:g}] "
                    f"(at most {r.max_outside:.0%} allowed; prior too wide: {r.why})"
                )
            lo, hi = np.nanquantile(x, [0.025, 0.975])
            if lo > r.cover[0] or hi < r.cover[1]:
                out.append(
                    f"{name}: 95% prior interval [{lo:.4g}, {hi:.4g}] does not cover "
                    f"[{r.cover[0]:g}, {r.cover[1]:g}] (prior too tight: {r.why})"
                )
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "tactic": self.tactic,
            "family": self.family,
            "quantities": self.table.set_index("quantity")
            .drop(columns="description")
            .to_dict(orient="index"),
            "failures": self.failures(),
        }


def prior_implied_quantities(
    model: Any,
    cells: pd.DataFrame,
    n_draws: int = 4000,
    seed: int = 0,
    tactic: str | None = None,
    ranges: Mapping[str, PlausibleRange] | None = None,
) -> PriorImplied:
    """What the model's priors imply for one segment (and arm) on interpretable scales.

    Draws pool over segments and arms (the prior of a typical cell). ``table`` holds quantiles
    (2.5, 25, 50, 75, 97.5%) and, for judged quantities, the share of mass outside the
    plausible range; ``failures()`` lists violated :class:`PlausibleRange` s.
    """
    family = _family(model)
    _check_args(n_draws, 0.9)
    tactic = _tactic(model, cells, tactic)
    prior, _ = _prior_draws(model, cells, tactic, family, n_draws, seed, None)
    d = {name: _flat(prior, name) for name in prior.data_vars}
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        q = family.implied(d, lambda name: _arr(prior, name))
    judge = {
        k: r
        for k, r in (DEFAULT_RANGES if ranges is None else ranges).items()
        if k not in family.unjudged
    }
    rows = []
    for name, unit, desc in family.quantities:
        x = np.asarray(q[name], dtype=float)
        qs = np.nanquantile(x, [0.025, 0.25, 0.5, 0.75, 0.975])
        r = judge.get(name)
        rows.append(
            {
                "quantity": name,
                "unit": unit,
                "description": desc,
                "q2.5": qs[0],
                "q25": qs[1],
                "q50": qs[2],
                "q75": qs[3],
                "q97.5": qs[4],
                "plausible_low": r.low if r else np.nan,
                "plausible_high": r.high if r else np.nan,
                "share_outside": float(np.mean((x < r.low) | (x > r.high) | np.isnan(x)))
                if r
                else np.nan,
            }
        )
    return PriorImplied(
        tactic=tactic,
        family=family.name,
        draws={k: np.asarray(v, dtype=float) for k, v in q.items()},
        table=pd.DataFrame(rows),
        ranges=judge,
    )


# ---- plot ----------------------------------------------------------------------------------------
def plot_predictive_check(
    check: PredictiveCheck,
    path: str | Path | None = None,
    alpha: float = 0.05,
    max_cells: int = 60,
) -> Any:
    """One panel per statistic: each cell's predictive interval and the observed value.

    Observed values of extreme cells (two-sided p < ``alpha``) are red. With more than
    ``max_cells`` cells a list is unreadable, so each panel plots observed against predictive
    mean with the interval as an error bar (on the diagonal when the model reproduces the cell).
    Returns the figure (close it with ``plt.close(fig)``); with ``path`` it is also saved as
    PNG. The pipeline should pass no path and save with ``uplift.atomic_io.atomic_savefig``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = check.table.assign(p2=check.two_sided().to_numpy())
    statistics = list(dict.fromkeys(t["statistic"]))
    n_cells = int(t[["segment", "arm"]].drop_duplicates().shape[0])
    if n_cells > max_cells:
        return _plot_predictive_scatter(check, t, statistics, alpha, path)
    fig, axes = plt.subplots(
        1,
        len(statistics),
        figsize=(4.0 * len(statistics), 0.22 * n_cells + 1.6),
        squeeze=False,
    )
    for ax, stat in zip(axes.flat, statistics, strict=True):
        s = t[t["statistic"] == stat].reset_index(drop=True)
        y = np.arange(len(s))
        ax.hlines(
            y,
            s["pred_low"],
            s["pred_high"],
            color="tab:blue",
            lw=2.5,
            alpha=0.6,
            label="predictive",
        )
        ax.plot(s["pred_mean"], y, "|", color="tab:blue", ms=7)
        bad = (s["p2"] < alpha).to_numpy()
        ax.plot(s["observed"][~bad], y[~bad], "o", color="black", ms=3.5, label="observed")
        ax.plot(s["observed"][bad], y[bad], "o", color="tab:red", ms=4.5, label="extreme")
        ax.set_yticks(y, [f"{g} | {a}" for g, a in zip(s["segment"], s["arm"], strict=True)])
        ax.tick_params(axis="y", labelsize=6)
        ax.tick_params(axis="x", labelsize=7)
        share = float(np.mean(bad[s["p2"].notna().to_numpy()])) if s["p2"].notna().any() else 0
        ax.set_title(f"{stat} ({share:.0%} extreme)", fontsize=9)
        ax.invert_yaxis()
    axes.flat[0].legend(fontsize=7, loc="best")
    fig.suptitle(
        f"{check.kind.capitalize()} predictive check: {check.tactic} ({check.family}), "
        f"{check.interval:.0%} intervals",
        fontsize=10,
    )
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight", format="png")
    return fig


def _plot_predictive_scatter(check, t, statistics, alpha, path) -> Any:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(statistics), figsize=(4.2 * len(statistics), 4.2), squeeze=False
    )
    for ax, stat in zip(axes.flat, statistics, strict=True):
        s = t[(t["statistic"] == stat) & t["observed"].notna()]
        bad = (s["p2"] < alpha).to_numpy()
        err = np.vstack([s["pred_mean"] - s["pred_low"], s["pred_high"] - s["pred_mean"]])
        ax.errorbar(
            s["pred_mean"],
            s["observed"],
            xerr=err.clip(0),
            fmt="none",
            ecolor="tab:blue",
            alpha=0.35,
            lw=1,
        )
        ax.plot(s["pred_mean"][~bad], s["observed"][~bad], "o", color="black", ms=2.5, label="cell")
        ax.plot(
            s["pred_mean"][bad], s["observed"][bad], "o", color="tab:red", ms=3.5, label="extreme"
        )
        lo = float(np.nanmin([s["pred_low"].min(), s["observed"].min()]))
        hi = float(np.nanmax([s["pred_high"].max(), s["observed"].max()]))
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
        share = float(np.mean(bad[s["p2"].notna().to_numpy()])) if s["p2"].notna().any() else 0
        ax.set_title(f"{stat}: {len(s)} cells, {share:.0%} extreme", fontsize=9)
        ax.set_xlabel("predictive mean (bar: interval)", fontsize=8)
        ax.set_ylabel("observed", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=7, loc="best")
    fig.suptitle(
        f"{check.kind.capitalize()} predictive check: {check.tactic} ({check.family}), "
        f"{check.interval:.0%} intervals",
        fontsize=10,
    )
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight", format="png")
    return fig


# ---- internals: validation and plumbing ----------------------------------------------------------
def _check_unit(name: str, value: float, closed: bool = False) -> None:
    ok = 0 <= value <= 1 if closed else 0 < value < 1
    if not (isinstance(value, int | float) and ok):
        rng = "[0, 1]" if closed else "(0, 1)"
        raise ValueError(f"{name} must be in {rng}, got {value!r}")


def _check_args(n_draws: int, interval: float) -> None:
    if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 1:
        raise ValueError(f"n_draws must be an integer >= 1, got {n_draws!r}")
    _check_unit("interval", interval)


def _family(model: Any) -> Family:
    fam = getattr(model, "family", None)
    if fam not in FAMILIES:
        raise ValueError(
            f"model.family={fam!r} ({type(model).__name__}) has no predictive check; "
            f"supported families: {list(FAMILIES)}"
        )
    return _REGISTRY[fam]


def _tactic(model: Any, cells: pd.DataFrame, tactic: str | None) -> str:
    if tactic is None:
        tactic = getattr(model, "tactic", None)
    if tactic is None and getattr(model, "idata", None) is not None:
        tactic = model.idata.attrs.get("uplift_tactic")
    if tactic is None:
        if "tactic" not in cells.columns:
            raise ValueError("cells lack the 'tactic' column: build them with aggregate_cells")
        found = sorted(set(cells["tactic"].astype(str)) - {"control"})
        if len(found) != 1:
            raise ValueError(f"pass tactic=...: the model has none and cells hold tactics {found}")
        tactic = found[0]
    return str(tactic)


def _tactic_cells(cells: pd.DataFrame, tactic: str, family: Family) -> pd.DataFrame:
    """Control then treated cells, in the order the model's graph sees them."""
    if not isinstance(cells, pd.DataFrame):
        raise ValueError(f"cells must be a pandas DataFrame, got {type(cells).__name__}")
    need = ("tactic", "segment", "arm", *family.cell_columns)
    missing = [c for c in need if c not in cells.columns]
    if missing:
        raise ValueError(
            f"cells lack columns {missing} needed by the {family.name} check: "
            "build them with uplift.data.aggregate_cells"
        )
    control = cells[cells["tactic"] == "control"]
    treated = cells[cells["tactic"] == tactic]
    if control.empty:
        raise ValueError("cells have no control cells (tactic == 'control')")
    if treated.empty:
        raise ValueError(f"cells have no rows for tactic {tactic!r}")
    rows = pd.concat([control, treated], ignore_index=True)
    rows["is_control"] = np.r_[np.ones(len(control), bool), np.zeros(len(treated), bool)]
    n = rows["n"].to_numpy()
    if (n < 1).any() or (n != np.floor(n)).any():
        raise ValueError(f"cells column 'n' must hold integers >= 1, got {sorted(set(n))[:5]}")
    return rows


def _dataset(idata: Any, group: str):
    try:
        node = idata[group]
    except KeyError:
        raise ValueError(f"the model's inference data has no {group!r} group") from None
    return node.to_dataset() if hasattr(node, "to_dataset") else node


def _arr(ds, name: str) -> np.ndarray:
    """Variable ``name`` as numpy with the (chain, draw) dims stacked into one leading axis."""
    if name not in ds.data_vars:
        raise ValueError(
            f"variable {name!r} is not in the draws (have {sorted(ds.data_vars)}); was the "
            "model fit with this version of uplift?"
        )
    v = ds[name]
    v = v.stack(sample=("chain", "draw")).transpose("sample", ...)
    return np.asarray(v.values, dtype=float)


def _flat(ds, name: str) -> np.ndarray:
    return _arr(ds, name).ravel()


def _positions(ds, dim: str, labels: pd.Series, what: str) -> np.ndarray:
    known = {str(v): i for i, v in enumerate(ds[dim].values)}
    lab = labels.astype(str)
    unknown = sorted(set(lab) - set(known))
    if unknown:
        raise ValueError(
            f"{what} {unknown} of the cells are not in the model's {dim}s {sorted(known)}: "
            "check cells from the same tactic and segments the model was fit on"
        )
    return lab.map(known).to_numpy()


def _segment_param(ds, name: str, rows: pd.DataFrame, idx: np.ndarray) -> np.ndarray:
    """(draws, cells) of a per-segment variable, for every cell."""
    seg = _positions(ds, "segment", rows["segment"], "segments")
    return _arr(ds, name)[idx][:, seg]


def _cell_param(ds, control: str, treated: str, rows: pd.DataFrame, idx: np.ndarray) -> np.ndarray:
    """(draws, cells): ``control[segment]`` for control cells, ``treated[arm, segment]`` else."""
    c = rows["is_control"].to_numpy()
    out = np.empty((len(idx), len(rows)))
    out[:, c] = _segment_param(ds, control, rows[c], idx)
    t = rows[~c]
    seg = _positions(ds, "segment", t["segment"], "segments")
    arm = _positions(ds, "arm", t["arm"], "arms")
    out[:, ~c] = _arr(ds, treated)[idx][:, arm, seg]
    return out


def _predictive(pp, names: tuple[str, str], idx: np.ndarray) -> np.ndarray | None:
    """Replicated observed variables drawn by the model's graph (control, treated cells)."""
    if pp is None or any(n not in pp.data_vars for n in names):
        return None
    return np.concatenate([_arr(pp, n)[idx] for n in names], axis=1)


def _prior_draws(model, cells, tactic, family, n_draws, seed, histograms):
    """Prior draws of every random and deterministic variable of the model's own graph.

    Returns ``(prior, prior)``: one dataset holding the parameters and the replicated observed
    variables (e.g. ``control_conversions``), dims ``(chain=1, draw, ...)``.
    """
    builder = copy.copy(model)  # building sets attributes (e.g. price reference): not on ours
    if family.histograms and histograms is not None:
        builder.histograms = histograms
    with graph_building():
        graph = builder.build_model(cells, tactic)
    try:
        values = _vectorized_prior(graph, n_draws, seed, _prior_key(model, graph, n_draws))
    except Exception as err:  # a graph pytensor cannot batch: PyMC's per-draw loop
        import warnings

        warnings.warn(
            f"prior draws could not be vectorised ({err!r}); falling back to the slower "
            "pm.sample_prior_predictive loop",
            RuntimeWarning,
            stacklevel=3,
        )
        values = _looped_prior(graph, n_draws, seed)
    data = {}
    for name, v in values.items():
        dims = tuple(graph.named_vars_to_dims.get(name, ()))
        if len(dims) != v.ndim - 1:
            dims = tuple(f"{name}_dim_{i}" for i in range(v.ndim - 1))
        data[name] = (("chain", "draw", *dims), v[None])
    coords = {k: list(v) for k, v in graph.coords.items() if v is not None}
    ds = xr.Dataset(data, coords={"draw": np.arange(n_draws), **coords})
    return ds, ds


def _prior_names(graph) -> list[str]:
    return sorted({v.name for v in graph.basic_RVs + graph.deterministics})


#: compiled batched prior draws per model structure (:func:`_prior_key`): the graph they
#: were compiled from (its ``pm.Data`` take each call's numbers), the function, its RNGs
_PRIOR_FNS: dict[tuple, tuple[Any, Any, list[Any], list[str]]] = {}


def _prior_key(model: Any, graph: Any, n_draws: int) -> tuple | None:
    """What a compiled prior-draw function depends on: what identifies the fits' compiled
    graphs (:meth:`uplift.models.base.UpliftModel.compiled_key`: the class and what its config
    bakes into the graph), every dimension's size and data shape, and the number of draws.
    None (compile afresh) when the model gives no such key."""
    from uplift.models.sampling import _structure_key

    compiled_key = getattr(model, "compiled_key", None)
    key = compiled_key(graph) if compiled_key is not None else None
    if key is None:
        return None
    labels = tuple(graph.coords)  # the draws do not depend on coordinate labels, only sizes
    return (*_structure_key(graph, key, labels), n_draws)


def _vectorized_prior(
    graph, n_draws: int, seed: int, key: tuple | None = None
) -> dict[str, np.ndarray]:
    """All prior draws in one call of the model's graph, batched over draws.

    ``pm.sample_prior_predictive`` calls the graph once per draw (measured 1.5-3.5 ms a draw
    on a loaded 2-core machine, 8-16 s for 4,000 hurdle draws) and C-compiles it afresh for
    every new prior setting (~13 s). Here parameter-free RVs get a leading draws dimension,
    pytensor's ``vectorize_graph`` carries it through the rest, and the graph runs once in
    ``FAST_COMPILE`` mode (numpy ops, no C compilation): 0.2-0.7 s for 4,000 draws.
    Distributions agree with ``pm.sample_prior_predictive`` (tested).

    With a ``key`` (:func:`_prior_key`) the batched function is built once per structure and
    process, like the fits' compiled graphs: a later call gives it its graph's data and
    reseeds its RNGs, and draws what a fresh build would (tested).
    """
    from pymc.pytensorf import reseed_rngs

    from uplift.models.sampling import feed_data

    cached = _PRIOR_FNS.get(key) if key is not None else None
    if cached is None:
        fn, rngs, names = _batched_prior_fn(graph, n_draws)
        if key is not None:
            _PRIOR_FNS[key] = (graph, fn, rngs, names)
    else:
        own, fn, rngs, names = cached
        feed_data(own, graph)
    reseed_rngs(rngs, _seed(seed))
    values = dict(zip(names, fn(), strict=True))
    for name, v in values.items():
        if np.ndim(v) < 1 or np.shape(v)[0] != n_draws:
            raise ValueError(f"{name} came out with shape {np.shape(v)}, not batched by draws")
    return values


def _batched_prior_fn(graph, n_draws: int):
    """The function drawing every prior variable ``n_draws`` times in one call, its RNG
    variables (seeded by the caller) and the names of its outputs."""
    import pytensor.tensor as pt
    from pymc.distributions.shape_utils import change_dist_size
    from pymc.pytensorf import compile as pm_compile
    from pytensor.graph import vectorize_graph
    from pytensor.graph.traversal import ancestors
    from pytensor.tensor.random.op import RandomVariable
    from pytensor.tensor.type_other import NoneTypeT

    names = _prior_names(graph)
    rvs = set(graph.basic_RVs)
    replace = {}
    for rv in graph.basic_RVs:
        if not set(ancestors(rv.owner.inputs)) & rvs:
            replace[rv] = change_dist_size(rv, new_size=(n_draws,), expand=True)
        elif isinstance(rv.owner.op, RandomVariable):
            # an explicit size must grow by the batch dimension its parents now carry
            size = rv.owner.op.size_param(rv.owner)
            if not isinstance(size.type, NoneTypeT):
                # a size that is not None is a tensor: its type carries the dtype
                dtype = size.type.dtype
                replace[size] = pt.concatenate([pt.as_tensor([n_draws], dtype=dtype), size])
    outputs = vectorize_graph([graph[n] for n in names], replace=replace)
    fn, updates = pm_compile(
        [], outputs, random_seed=False, mode="FAST_COMPILE", return_updates=True
    )
    return fn, list(updates), names


def _looped_prior(graph, n_draws: int, seed: int) -> dict[str, np.ndarray]:
    import warnings

    import pymc as pm

    with warnings.catch_warnings():
        # the models' Potentials are likelihood terms: a prior draw must ignore them
        warnings.filterwarnings("ignore", "The effect of Potentials", UserWarning)
        return pm.sample_prior_predictive(
            draws=n_draws,
            model=graph,
            var_names=_prior_names(graph),
            random_seed=_seed(seed),
            return_inferencedata=False,
            compile_kwargs={"mode": "FAST_COMPILE"},
        )


def _seed(seed: int) -> int:
    return int(np.random.SeedSequence([seed, 3]).generate_state(1)[0])


# ---- internals: statistics per family ------------------------------------------------------------
@dataclass
class _Stat:
    name: str
    observed: np.ndarray  # (cells,)
    replicates: np.ndarray  # (draws, cells)
    p_value: np.ndarray | None = None  # (cells,), closed form; None -> Monte Carlo mid-p


def _statistics(family: Family, model, ds, pp, rows, idx, rng, histograms) -> list[_Stat]:
    """The family's replicated statistics (``Family.replicate``: one of the functions below)."""
    if family.histograms and histograms is None:
        histograms = getattr(model, "histograms", None)
    return family.replicate(ds, pp, rows, idx, rng, histograms)


def binomial_statistic(ds, pp, rows, idx, rng, name, column, pp_var) -> _Stat:
    """A Binomial(n, p) count per cell: observed ``column``, replicated by the graph's
    ``control_/treated_<pp_var>`` when given, else drawn from ``p_control`` / ``p_treated``."""
    n = rows["n"].to_numpy(dtype=np.int64)
    k = rows[column].to_numpy(dtype=float)
    bad = (k < 0) | (k > n) | (k != np.floor(k))
    if bad.any():
        raise ValueError(
            f"cells column {column!r} must hold integers in [0, n]; bad rows: "
            f"{rows.loc[bad, ['segment', 'arm']].values.tolist()[:5]}"
        )
    p = _cell_param(ds, "p_control", "p_treated", rows, idx)
    reps = _predictive(pp, (f"control_{pp_var}", f"treated_{pp_var}"), idx)
    if reps is None:
        reps = rng.binomial(n[None, :], p)
    pval = _nanmean0(_mid_p_binom(k, n, p))
    return _Stat(name, k, reps.astype(float), pval)


def hurdle_statistics(ds, pp, rows, idx, rng) -> list[_Stat]:
    """Buyers, and the mean and spread of log spend given the observed buyers."""
    buyers = binomial_statistic(ds, pp, rows, idx, rng, "buyers", "n_buyers", "buyers")
    k = rows["n_buyers"].to_numpy(dtype=float)
    mean, ss = lognormal_cell_stats(
        k, rows["log_revenue_sum"].to_numpy(), rows["log_revenue_sq_sum"].to_numpy()
    )
    m = _segment_param(ds, "spend_log_mean", rows, idx)
    c = rows["is_control"].to_numpy()
    if (~c).any():
        t = rows[~c]
        seg = _positions(ds, "segment", t["segment"], "segments")
        arm = _positions(ds, "arm", t["arm"], "arms")
        m[:, ~c] += _arr(ds, "spend_effect")[idx][:, arm, seg]
    s = _segment_param(ds, "spend_sd", rows, idx)
    has1, has2 = k >= 1, k >= 2
    k1, k2 = np.where(has1, k, 1.0), np.where(has2, k - 1, 1.0)
    se = s / np.sqrt(k1)
    obs_mean = np.where(has1, mean, np.nan)
    rep_mean = np.where(has1, m + se * rng.standard_normal(m.shape), np.nan)
    p_mean = np.where(has1, np.mean(stats.norm.sf(obs_mean, m, se), axis=0), np.nan)
    obs_sd = np.where(has2, np.sqrt(ss / k2), np.nan)
    rep_sd = np.where(has2, s * np.sqrt(rng.chisquare(k2, size=s.shape) / k2), np.nan)
    p_sd = np.where(has2, np.mean(stats.chi2.sf(k2 * obs_sd**2 / s**2, k2), axis=0), np.nan)
    return [
        buyers,
        _Stat("mean_log_spend", obs_mean, rep_mean, p_mean),
        _Stat("sd_log_spend", obs_sd, rep_sd, p_sd),
    ]


def _observed_counts(rows: pd.DataFrame, histograms: pd.DataFrame | None) -> np.ndarray:
    """Per cell: customers, sum, centred sum of squares and zeros of the observed counts."""
    if histograms is None:
        raise ValueError(
            "the negative_binomial check needs count histograms: pass histograms="
            "count_histograms(data, column) or set model.histograms"
        )
    missing = [c for c in ("segment", "arm", "count", "customers") if c not in histograms]
    if missing:
        raise ValueError(f"histograms lack columns {missing}; build them with count_histograms")
    h = histograms.assign(
        segment=histograms["segment"].astype(str), arm=histograms["arm"].astype(str)
    )
    if (h["count"] < 0).any() or (h["customers"] < 0).any():
        raise ValueError("histograms must hold counts >= 0 and customers >= 0")
    g = (
        h.assign(s1=h["count"] * h["customers"], z=np.where(h["count"] == 0, h["customers"], 0))
        .groupby(["segment", "arm"])[["customers", "s1", "z"]]
        .sum()
    )
    key = pd.MultiIndex.from_arrays([rows["segment"].astype(str), rows["arm"].astype(str)])
    agg = g.reindex(key, fill_value=0)
    n = rows["n"].to_numpy()
    off = agg["customers"].to_numpy() != n
    if off.any():
        raise ValueError(
            f"histograms do not add up to the cells' n for (segment, arm) "
            f"{list(key[off])[:5]}: build both from the same customer data"
        )
    mean = agg["s1"].to_numpy() / n
    cell_mean = pd.Series(mean, index=key)
    dev = (
        h["count"].to_numpy()
        - cell_mean.reindex(
            pd.MultiIndex.from_frame(h[["segment", "arm"]]), fill_value=np.nan
        ).to_numpy()
    )
    css = (
        h.assign(css=h["customers"] * dev**2)
        .groupby(["segment", "arm"])["css"]
        .sum()
        .reindex(key, fill_value=0.0)
        .to_numpy()
    )
    return np.c_[n, agg["s1"].to_numpy(), css, agg["z"].to_numpy()].astype(float)


def count_statistics(ds, rows, idx, rng, histograms) -> list[_Stat]:
    """Mean count, share of zeros and variance of each cell's replicated customers."""
    n_f, s1, css, zeros = _observed_counts(rows, histograms).T
    n = n_f.astype(np.int64)
    mu = _cell_param(ds, "mu_control", "mu_treated", rows, idx)
    alpha = _segment_param(ds, "alpha", rows, idx)
    total, sumsq, z_rep = nb_replicate_cells(n, mu, alpha, rng)
    var_obs = np.where(n >= 2, css / np.maximum(n - 1, 1), np.nan)
    with np.errstate(invalid="ignore"):
        var_rep = np.where(n >= 2, (sumsq - total**2 / n) / np.maximum(n - 1, 1), np.nan)
        q = alpha / (alpha + mu)
        p_mean = _nanmean0(
            stats.nbinom.sf(s1, n * alpha, q) + 0.5 * np.exp(stats.nbinom.logpmf(s1, n * alpha, q))
        )
        p_zero = _nanmean0(_mid_p_binom(zeros, n, q**alpha))
    return [
        _Stat("mean_count", s1 / n, total / n, p_mean),
        _Stat("zero_share", zeros / n, z_rep / n, p_zero),
        _Stat("variance", var_obs, var_rep, None),
    ]


def _mid_p_binom(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """P(K > k) + P(K = k) / 2 for K ~ Binomial(n, p); the pmf on the log scale because
    scipy's ``binom.pmf`` raises OverflowError at extreme p (e.g. 1e-10 from wide priors)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return stats.binom.sf(k, n, p) + 0.5 * np.exp(stats.binom.logpmf(k, n, p))


def _nanmean0(x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x)
    cnt = ok.sum(axis=0)
    return np.where(cnt > 0, np.where(ok, x, 0.0).sum(axis=0) / np.maximum(cnt, 1), np.nan)


def nb_replicate_cells(
    n: np.ndarray, mu: np.ndarray, alpha: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum, sum of squares and zeros of n[c] iid NegBinomial(mu, alpha) counts per (draw, cell).

    Exact at a cost independent of n: the histogram over 0..K-1 is one multinomial draw (K covers
    all but 1e-7 of the mass, at most 1024 values), the few counts beyond K are drawn from the
    NB conditioned on >= K by inverting its cdf, and draws whose support is wider than that
    (absurd priors) are simulated customer by customer. Draws with a mean above 1e9 or
    non-finite parameters give NaN.
    """
    n = np.asarray(n, dtype=np.int64)
    mu = np.asarray(mu, dtype=float)
    alpha = np.asarray(alpha, dtype=float)
    shape = mu.shape
    total = np.zeros(shape)
    sumsq = np.zeros(shape)
    zeros = np.zeros(shape)
    valid = np.isfinite(mu) & np.isfinite(alpha) & (alpha > 0) & (mu >= 0) & (mu <= _NB_MAX_MEAN)
    r = np.where(valid, alpha, 1.0)
    q = np.where(valid, r / (r + np.where(valid, mu, 0.0)), 1.0)
    need = np.where(valid, stats.nbinom.ppf(1 - _NB_TAIL, r, q), 0.0)
    wide = valid & (need + 1 > _NB_MAX_SUPPORT)
    simple = valid & ~wide
    K = int(min(np.max(need, where=simple, initial=0.0) + 1, _NB_MAX_SUPPORT))
    values = np.arange(K, dtype=np.int64)
    step = max(1, _NB_CHUNK // max(1, shape[1] * (K + 1)))
    for start in range(0, shape[0], step):
        sl = slice(start, start + step)
        pmf = stats.nbinom.pmf(values, r[sl, :, None], q[sl, :, None])
        pmf /= np.maximum(pmf.sum(axis=-1, keepdims=True), 1.0)
        tail = np.clip(1.0 - pmf.sum(axis=-1, keepdims=True), 0.0, 1.0)
        n_eff = np.where(simple[sl], n[None, :], 0)
        h = rng.multinomial(n_eff, np.concatenate([pmf, tail], axis=-1))
        total[sl] = h[..., :K] @ values
        sumsq[sl] = h[..., :K] @ values**2
        zeros[sl] = h[..., 0]
        m = h[..., K]
        if m.any():
            where = np.nonzero(m)
            reps = m[where]
            rr = np.repeat(r[sl][where], reps)
            qq = np.repeat(q[sl][where], reps)
            f = stats.nbinom.cdf(K - 1, rr, qq)
            y = stats.nbinom.ppf(f + rng.random(len(rr)) * (1.0 - f), rr, qq)
            y = np.maximum(np.nan_to_num(y, nan=K, posinf=K), K)
            cell = np.repeat(np.arange(len(reps)), reps)
            add1 = np.bincount(cell, weights=y, minlength=len(reps))
            add2 = np.bincount(cell, weights=y**2, minlength=len(reps))
            rows_, cols_ = where[0] + start, where[1]
            total[rows_, cols_] += add1
            sumsq[rows_, cols_] += add2
    for d, c in zip(*np.nonzero(wide), strict=True):
        lam = rng.gamma(r[d, c], mu[d, c] / r[d, c], size=int(n[c]))
        y = rng.poisson(np.minimum(lam, 1e15)).astype(float)
        total[d, c], sumsq[d, c], zeros[d, c] = y.sum(), (y**2).sum(), (y == 0).sum()
    bad = ~valid
    total[bad] = sumsq[bad] = zeros[bad] = np.nan
    return total, sumsq, zeros


# ---- internals: assembling the table -------------------------------------------------------------
def _mid_p(observed: np.ndarray, reps: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(reps)
    cnt = ok.sum(axis=0)
    gt = ((reps > observed) & ok).sum(axis=0)
    eq = ((reps == observed) & ok).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = (gt + 0.5 * eq) / cnt
    return np.where((cnt > 0) & ~np.isnan(observed), p, np.nan)


def _check(tactic, family, kind, rows, stats_, n_draws, interval, model) -> PredictiveCheck:
    lo_q, hi_q = (1 - interval) / 2, 1 - (1 - interval) / 2
    frames = []
    for st in stats_:
        reps = st.replicates
        with np.errstate(invalid="ignore"):
            all_nan = np.isnan(reps).all(axis=0)
            safe = np.where(all_nan[None, :], 0.0, reps)
            lo, hi = np.nanquantile(safe, [lo_q, hi_q], axis=0, method="inverted_cdf")
            mean = np.nanmean(safe, axis=0)
        p = st.p_value if st.p_value is not None else _mid_p(st.observed, reps)
        p = np.where(np.isnan(st.observed), np.nan, np.clip(p, 0.0, 1.0))
        frame = pd.DataFrame(
            {
                "segment": rows["segment"].astype(str).to_numpy(),
                "arm": rows["arm"].astype(str).to_numpy(),
                "statistic": st.name,
                "n": rows["n"].to_numpy(dtype=np.int64),
                "observed": st.observed,
                "pred_mean": np.where(all_nan, np.nan, mean),
                "pred_low": np.where(all_nan, np.nan, lo),
                "pred_high": np.where(all_nan, np.nan, hi),
                "p_value": p,
            }
        )
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    if family.prices:
        prices = getattr(model, "prices", {}) or {}
        table.insert(2, "price", table["arm"].map(prices).astype(float))
    reps = {st.name: st.replicates for st in stats_}
    return PredictiveCheck(tactic, family.name, kind, table, int(n_draws), float(interval), reps)


__all__ = [
    "DEFAULT_RANGES",
    "FAMILIES",
    "PlausibleRange",
    "PredictiveCheck",
    "PriorImplied",
    "nb_replicate_cells",
    "plot_predictive_check",
    "posterior_predictive_check",
    "prior_implied_quantities",
    "prior_predictive_check",
]
