"""Hierarchical constant-elasticity (log-log) demand from weekly sales history (scanner data).

Observational weekly unit sales at prices the retailer chose are not a randomized price test of
customers, so the (segment, price arm) cell families of :mod:`uplift.models.families` do not
apply: there are no customers, no arms and no control. This model reads one row per segment
(a product, a store cluster) and period:

    log units[i]  = alpha[g] + beta[g] * (log price[i] - log ref[g])
                    + gamma[g] . controls[i] + tau[g] * (log traffic[i] - mean log traffic)
                    + kappa[g] * other[i] + delta[g, block(i)] + eps[i],
                                                               eps ~ Normal(0, sigma[g])
    beta[g]       = -exp(l[g]),  l[g] ~ Normal(mu_e, sigma_e)          (pooled across segments)

``beta[g]`` is the own-price elasticity of demand. It is partially pooled on the log scale, as in
:class:`uplift.models.price.PriceResponseModel` (negative in every draw, shrunk
multiplicatively). Centred: each segment has hundreds of periods, so the data pin every l[g]
down and the centred form mixes better (measured on the tuna data, 2 x 1000 draws, with the
block effects below: min bulk ESS of the whole posterior 720; the hyper-mean's was 318 with a
non-centred elasticity). Why the controls:

* ``controls`` (e.g. display / feature / deal): price cuts and promotions come together (the
  tuna data: correlation -0.55 to -0.71 between log price and display), so leaving them out
  credits the promotion's lift to the price cut and overstates the elasticity;
* ``traffic`` (store customer count): more shoppers, more units at any price;
* ``cross_price`` (optional): ``kappa[g] x`` the mean log price of the other segments relative
  to their reference prices; competitors' promotions take units away, and with it the
  elasticity is the response to one segment's price with the others' held fixed, which is what
  a per-segment price change does (the others are held at today's prices for pricing);
* ``delta`` (one level per block of ``block_periods`` periods, per segment, summing to zero
  over blocks): slow shifts in distribution and tastes over years, which would otherwise be read
  as price response whenever prices drift.

Demand for pricing is the expected weekly units in an ordinary week of the latest block: controls
at 0 (no promotion), traffic at its mean over that block, lognormal mean ``exp(mu + sigma^2/2)``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import xarray as xr

from uplift.models.building import graph_building
from uplift.models.diagnostics import Diagnostics, compute_diagnostics
from uplift.models.settings import SamplerSettings, require_positive

#: the model's name in outputs (not a customer-cell family: see the module docstring)
NAME = "loglog_demand"


@dataclass
class DemandPriors:
    """Priors of the log-log demand model.

    Elasticity: median |beta| = exp(log_elasticity_mu) = 2.5, the middle of the -2 to -4 range
    reported for packaged goods (Bijmolt, van Heerde & Pieters 2005, mean -2.62); the sds let
    the pooled mean lie anywhere in about [0.6, 11] and segments differ from it by a factor
    of ~2.7. Everything else is weakly informative on the log-units scale.
    """

    log_elasticity_mu: float = float(np.log(2.5))
    log_elasticity_mu_sd: float = 0.75
    log_elasticity_sigma: float = 0.5
    intercept_sd: float = 3.0
    control_sd: float = 1.0
    traffic_sd: float = 1.0
    block_sd: float = 1.0
    noise_sd: float = 1.0

    def __post_init__(self) -> None:
        require_positive(
            self,
            "demand.priors",
            (
                "log_elasticity_mu_sd",
                "log_elasticity_sigma",
                "intercept_sd",
                "control_sd",
                "traffic_sd",
                "block_sd",
                "noise_sd",
            ),
        )


@dataclass(frozen=True)
class WeeklySales:
    """Validated weekly sales, one row per (segment, period); see :func:`weekly_sales`."""

    frame: pd.DataFrame  # segment, period, units, price, unit_cost (may be NaN), controls, traffic
    controls: tuple[str, ...]
    has_traffic: bool

    @property
    def segments(self) -> list[str]:
        return sorted(self.frame["segment"].unique())


def weekly_sales(
    frame: pd.DataFrame,
    *,
    controls: Sequence[str] = (),
    has_traffic: bool = False,
) -> WeeklySales:
    """Check a long table (``segment``, ``period``, ``units``, ``price``, optional
    ``unit_cost``, ``traffic`` and control columns) and return it sorted.

    Named errors for what a log-log fit cannot use: non-positive units or prices (log of 0),
    missing values, duplicated (segment, period) rows, a segment whose price never moves (its
    elasticity cannot be learnt).
    """
    need = ["segment", "period", "units", "price", *controls] + (["traffic"] if has_traffic else [])
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ValueError(f"weekly sales table lacks column(s) {missing}; it has {list(frame)}")
    df = frame.copy()
    df["segment"] = df["segment"].astype(str)
    for c in need[1:]:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    bad = df[need].isna().any(axis=1)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} row(s) have a missing or non-numeric value in {need}, e.g. row "
            f"{df.index[bad][0]}; drop or fill them before fitting"
        )
    for c in ["units", "price", *(["traffic"] if has_traffic else [])]:
        if (df[c] <= 0).any():
            n = int((df[c] <= 0).sum())
            raise ValueError(
                f"{n} row(s) have {c} <= 0: a log-log demand model takes logs; drop weeks with "
                f"no sales or no price (e.g. out of stock) before fitting"
            )
    dup = df.duplicated(["segment", "period"])
    if dup.any():
        raise ValueError(
            f"{int(dup.sum())} duplicated (segment, period) row(s), e.g. "
            f"{df.loc[dup, ['segment', 'period']].iloc[0].tolist()}: give one row per segment "
            "and period (sum units, average prices over stores first)"
        )
    flat = [s for s, p in df.groupby("segment")["price"] if np.ptp(np.log(p)) < 1e-6]
    if flat:
        raise ValueError(
            f"segment(s) {flat} never change price: their elasticity cannot be learnt from "
            "sales history; drop them or price them another way"
        )
    if df["segment"].nunique() < 2:
        raise ValueError("need at least 2 segments to pool elasticities across")
    df = df.sort_values(["segment", "period"]).reset_index(drop=True)
    return WeeklySales(df, tuple(controls), has_traffic)


def _blocks(period: np.ndarray, block_periods: int | None) -> tuple[np.ndarray, int]:
    """Block index of each row (0 = latest block), and the number of blocks.

    Equal-length blocks of about ``block_periods`` periods over the observed span (so the last
    block is never a short remainder); None or a span shorter than two blocks: one block.
    """
    lo, hi = float(period.min()), float(period.max())
    span = hi - lo + 1
    n = 1 if block_periods is None else max(1, int(round(span / block_periods)))
    idx = np.minimum(((period - lo) * n / span).astype(int), n - 1)
    return (n - 1 - idx).astype(int), n


class LogLogDemandModel:
    """Fit :func:`weekly_sales` data; per-draw elasticities and demand curves for pricing."""

    name = NAME

    def __init__(
        self,
        priors: DemandPriors | None = None,
        sampler: SamplerSettings | None = None,
        block_periods: int | None = 52,
        cross_price: bool = False,
    ) -> None:
        self.priors = priors or DemandPriors()
        self.sampler = sampler or SamplerSettings()
        if block_periods is not None and block_periods < 2:
            raise ValueError(f"block_periods must be >= 2 or null, got {block_periods}")
        self.block_periods = block_periods
        self.cross_price = cross_price
        self._today_x = np.zeros(0)
        self.idata = None
        self.segments: list[str] = []
        self.reference: dict[str, float] = {}
        self.fit_seconds = float("nan")
        self._latest_log_traffic = 0.0

    def config(self) -> dict:
        return {
            "model": NAME,
            "priors": asdict(self.priors),
            "block_periods": self.block_periods,
            "cross_price": self.cross_price,
            "reference_price": self.reference,
        }

    def build_model(self, sales: WeeklySales):
        """The PyMC model (imports PyMC)."""
        import pymc as pm
        import pytensor.tensor as pt

        df, pr = sales.frame, self.priors
        self.segments = sales.segments
        seg = pd.Categorical(df["segment"], categories=self.segments).codes
        log_p = np.log(df["price"].to_numpy(float))
        # reference price: the segment's median price, so alpha[g] is log units there
        ref = df.groupby("segment")["price"].median().reindex(self.segments)
        self.reference = {s: float(v) for s, v in ref.items()}
        x = log_p - np.log(ref.to_numpy(float))[seg]
        y = np.log(df["units"].to_numpy(float))
        block, n_blocks = _blocks(df["period"].to_numpy(float), self.block_periods)
        self.n_blocks = n_blocks
        coords = {"segment": self.segments, "control": list(sales.controls)}
        if sales.has_traffic:
            lt = np.log(df["traffic"].to_numpy(float))
            self._mean_log_traffic = float(lt.mean())
            self._latest_log_traffic = float(lt[block == 0].mean()) - self._mean_log_traffic
            lt = lt - self._mean_log_traffic
        with pm.Model(coords=coords) as model:
            mu_e = pm.Normal("log_neg_elasticity_mu", pr.log_elasticity_mu, pr.log_elasticity_mu_sd)
            sd_e = pm.HalfNormal("log_neg_elasticity_sigma", pr.log_elasticity_sigma)
            log_neg = pm.Normal("log_neg_elasticity", mu_e, sd_e, dims="segment")
            beta = pm.Deterministic("elasticity", -pt.exp(log_neg), dims="segment")
            ybar = float(y.mean())
            alpha = pm.Normal("intercept", ybar, pr.intercept_sd, dims="segment")
            sigma = pm.HalfNormal("sigma", pr.noise_sd, dims="segment")
            mu = alpha[seg] + beta[seg] * x
            if sales.controls:
                ctl = df[list(sales.controls)].to_numpy(float)
                gamma = pm.Normal("control_effect", 0.0, pr.control_sd, dims=("segment", "control"))
                mu = mu + (gamma[seg] * ctl).sum(axis=1)
            if sales.has_traffic:
                tau = pm.Normal("traffic_elasticity", 0.0, pr.traffic_sd, dims="segment")
                mu = mu + tau[seg] * lt
            if self.cross_price:
                other = self._other_price_index(df, x, seg)
                kappa = pm.Normal("cross_price_elasticity", 0.0, pr.control_sd, dims="segment")
                mu = mu + kappa[seg] * other
            if n_blocks > 1:
                # sum-to-zero over blocks, so alpha is the segment's average level and not
                # tied to one block (a reference block made alpha and every block effect
                # trade off: min bulk ESS 158 of 2,000 draws on the tuna data)
                model.add_coord("block", list(range(n_blocks)))
                d = pm.ZeroSumNormal("block_effect", pr.block_sd, dims=("segment", "block"))
                mu = mu + d[seg, block]
            pm.Normal("log_units", mu, sigma[seg], observed=y)
        return model

    def _other_price_index(self, df: pd.DataFrame, x: np.ndarray, seg: np.ndarray) -> np.ndarray:
        """Mean over the other segments of log(price / reference) in the same period (periods
        where a segment has no row leave it out of the mean). Also sets the index at today's
        prices (median over the latest block) used by :meth:`demand_curve`."""
        G = len(self.segments)
        wide = pd.DataFrame({"period": df["period"].to_numpy(), "seg": seg, "x": x}).pivot(
            index="period", columns="seg", values="x"
        )
        total, count = wide.sum(axis=1, min_count=1), wide.notna().sum(axis=1)
        per = df["period"].to_numpy()
        own = x
        n_other = count.reindex(per).to_numpy() - 1
        if (n_other < 1).any():
            raise ValueError(
                "cross_price needs at least one other segment priced in every period; some "
                "periods have a single segment"
            )
        other = (total.reindex(per).to_numpy() - own) / n_other
        block, _ = _blocks(df["period"].to_numpy(float), self.block_periods)
        today = pd.Series(x[block == 0]).groupby(seg[block == 0]).median()
        today = today.reindex(range(G)).fillna(0.0).to_numpy()
        self._today_x = today
        return other

    def fit(self, sales: WeeklySales) -> LogLogDemandModel:
        from uplift.models import sampling

        t0 = time.perf_counter()
        with graph_building():
            model = self.build_model(sales)
        self.idata = sampling.sample(model, self.sampler, self.sampler.seed_for(NAME))
        self.fit_seconds = time.perf_counter() - t0
        return self

    # ---- outputs ------------------------------------------------------------------------------
    def _draws(self, name: str) -> np.ndarray:
        if self.idata is None:
            raise RuntimeError("fit the demand model first")
        da = self.idata["posterior"][name].stack(sample=("chain", "draw"))
        return np.asarray(da.transpose("sample", ...).values)

    def diagnostics(self) -> Diagnostics:
        if self.idata is None:
            raise RuntimeError("fit the demand model first")
        return compute_diagnostics(self.idata)

    def elasticity_draws(self) -> xr.DataArray:
        """Own-price elasticity per draw, dims (sample, segment); negative in every draw."""
        return xr.DataArray(
            self._draws("elasticity"),
            dims=("sample", "segment"),
            coords={"segment": self.segments},
            name="elasticity",
        )

    def _level(self) -> np.ndarray:
        """(sample, segment) log expected units at the reference price in an ordinary period
        of the latest block, before the other segments' prices (lognormal mean included)."""
        alpha, sigma = self._draws("intercept"), self._draws("sigma")
        level = alpha + sigma**2 / 2
        post = self.idata["posterior"]  # type: ignore[index]
        if "block_effect" in post:
            level = level + self._draws("block_effect")[:, :, 0]  # block 0: the latest
        if "traffic_elasticity" in post:
            level = level + self._draws("traffic_elasticity") * self._latest_log_traffic
        return level

    def _log_relative(self, prices: Mapping[str, float] | None) -> np.ndarray:
        """(segment,) log(price / reference); None: the medians of the latest block."""
        if prices is None:
            return np.asarray(self._today_x if self.cross_price else np.zeros(len(self.segments)))
        missing = sorted(set(self.segments) - {str(k) for k in prices})
        if missing:
            raise ValueError(f"no price given for segment(s) {missing}")
        p = np.array([float(prices[s]) for s in self.segments])
        if not np.isfinite(p).all() or (p <= 0).any():
            raise ValueError(f"prices must be positive and finite, got {dict(prices)}")
        return np.log(p) - np.log([self.reference[s] for s in self.segments])

    def _cross(self, x: np.ndarray) -> np.ndarray:
        """(sample, segment) cross-price term with the segments at log relative prices x."""
        G = len(self.segments)
        other = (x.sum() - x) / max(G - 1, 1)
        return self._draws("cross_price_elasticity") * other[None, :]

    def demand_curve(
        self,
        price_grid: Sequence[float] | np.ndarray,
        others_at: Mapping[str, float] | None = None,
    ) -> xr.DataArray:
        """Expected units per period in an ordinary period of the latest block (controls 0,
        traffic at that block's mean) at each grid price, one segment's price moving while,
        with ``cross_price``, the others stay at ``others_at`` (default: the latest block's
        median prices); dims (sample, segment, price)."""
        grid = np.asarray(price_grid, dtype=float)
        if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all() or (grid <= 0).any():
            raise ValueError("price_grid must be a non-empty 1-D array of positive prices")
        level = self._level()
        if self.cross_price:
            level = level + self._cross(self._log_relative(others_at))
        beta = self._draws("elasticity")
        ref = np.log([self.reference[s] for s in self.segments])
        x = np.log(grid)[None, None, :] - ref[None, :, None]
        return xr.DataArray(
            np.exp(level[:, :, None] + beta[:, :, None] * x),
            dims=("sample", "segment", "price"),
            coords={"segment": self.segments, "price": grid},
            name="expected_units",
        )

    def expected_units(self, prices: Mapping[str, float]) -> np.ndarray:
        """(sample, segment) expected units per period with every segment at ``prices`` at
        once (own and, with ``cross_price``, cross effects): the joint scenario that
        per-segment curves, each holding the others fixed, do not show."""
        x = self._log_relative(prices)
        log_units = self._level() + self._draws("elasticity") * x[None, :]
        if self.cross_price:
            log_units = log_units + self._cross(x)
        return np.exp(log_units)

    def joint_units(self, prices: np.ndarray, step: int = 1) -> np.ndarray:
        """Expected units with every segment's price set together, draw by draw.

        ``prices``: (S, C, G) prices per draw (every ``step``-th draw, S of them), candidate
        scenario C and segment (order :attr:`segments`); returns units of the same shape.
        Vectorised for the joint price search, where each candidate moves one segment.
        """
        ref = np.log([self.reference[s] for s in self.segments])
        x = np.log(np.asarray(prices, dtype=float)) - ref
        level = self._level()[::step, None, :]
        log_units = level + self._draws("elasticity")[::step, None, :] * x
        if self.cross_price:
            G = len(self.segments)
            other = (x.sum(axis=-1, keepdims=True) - x) / max(G - 1, 1)
            log_units = log_units + self._draws("cross_price_elasticity")[::step, None, :] * other
        return np.exp(log_units)

    def coefficient_table(self, hdi_prob: float) -> pd.DataFrame:
        """One row per (segment, coefficient): mean, sd and HDI of every per-segment term."""
        from uplift.stats import hdi

        rows = []
        post = self.idata["posterior"]  # type: ignore[index]
        names = ("elasticity", "cross_price_elasticity", "traffic_elasticity", "control_effect")
        for name in (*names, "intercept", "sigma"):
            if name not in post:
                continue
            v = self._draws(name)
            labels = [""]
            if v.ndim == 3:  # (sample, segment, control)
                labels = [str(c) for c in post[name]["control"].values]
            v = v.reshape(v.shape[0], len(self.segments), -1)
            for g, s in enumerate(self.segments):
                for k, lab in enumerate(labels):
                    d = v[:, g, k]
                    lo, hi = hdi(d, hdi_prob)
                    rows.append(
                        {
                            "segment": s,
                            "coefficient": f"{name}[{lab}]" if lab else name,
                            "mean": float(d.mean()),
                            "sd": float(d.std()),
                            "hdi_low": float(lo),
                            "hdi_high": float(hi),
                        }
                    )
        return pd.DataFrame(rows)
