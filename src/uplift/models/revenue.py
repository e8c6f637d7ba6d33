"""Hierarchical hurdle (zero-inflated) lognormal revenue uplift, fit exactly on cell sums.

Revenue per customer is zero unless the customer buys; a buyer's spend is lognormal. For one
tactic with arms v and segments g:

    logit p_control[g]    = a[g]             logit p_treated[v,g]  = a[g] + b[v,g]
    spend_control[g]      ~ LogNormal(m[g], s[g])
    spend_treated[v,g]    ~ LogNormal(m[g] + c[v,g], s[g])

    a, m: per-segment baselines around a pooled mean;  b, c: per-(arm, segment) effects around a
    per-arm mean;  log s[g]: per-segment around a pooled mean.

Both parts are partially pooled exactly like :mod:`uplift.models.conversion`. The spread ``s`` is
per segment (pooled), shared by control and treated: expected spend is ``exp(m + s^2/2)``, so a
single spread for segments that differ in dispersion would bias their revenue means; buyers per
segment are many, so the per-segment spread is well identified, and pooling keeps small segments
stable (with identical spreads the pool's scale just shrinks to zero, which is why the spread's
pool is always non-centred, whatever :class:`Parameterization` says). Treatment may move the
log-mean but not the spread: that would double the weakly identified parameters for little gain.

The likelihood uses only the cell sums: buyers ``k ~ Binomial(n, p)`` (the row-level Bernoulli
likelihood up to the constant ``log C(n, k)``), and the k positive spends enter through
``k, sum log y, sum (log y)^2`` (exactly the row-level lognormal log-density, Jacobian included).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Self

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from uplift.models.base import UpliftModel
from uplift.models.conversion import (
    ConversionPriors,
    Parameterization,
    cell_index,
    split_cells,
)
from uplift.models.families import hurdle_lognormal
from uplift.models.observations import (
    CellObservations,
    arm_segment_cell_draws,
    binomial_loglik,
    binomial_replicates,
    cell_labels,
    control_and_treated,
    segment_cell_draws,
)
from uplift.models.persist import settings_from
from uplift.models.sampling import SamplerSettings
from uplift.models.settings import SpendPriors
from uplift.models.structure import SegmentStructure, pooled, structured

HURDLE_COLUMNS = ("n", "n_buyers", "log_revenue_sum", "log_revenue_sq_sum")
_LOG_2PI = float(np.log(2.0 * np.pi))
TensorLike = pt.TensorVariable | np.ndarray | float


def lognormal_cell_stats(
    k: np.ndarray, sum_log: np.ndarray, sum_log_sq: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell mean of log spend and centred sum of squares (0 for cells without buyers).

    Centring in float64 here, rather than expanding ``(log y - mu)^2`` inside the graph, avoids
    cancellation when a cell holds many buyers.
    """
    k = np.asarray(k, dtype=np.float64)
    s1 = np.asarray(sum_log, dtype=np.float64)
    s2 = np.asarray(sum_log_sq, dtype=np.float64)
    pos = k > 0
    mean = np.where(pos, s1 / np.where(pos, k, 1.0), 0.0)
    ss = np.where(pos, np.maximum(s2 - mean * s1, 0.0), 0.0)
    return mean, ss


def lognormal_cell_logp(
    k: np.ndarray,
    sum_log: np.ndarray,
    sum_log_sq: np.ndarray,
    mu: TensorLike,
    sigma: TensorLike,
    jacobian: bool = True,
) -> pt.TensorVariable:
    """Log-density of each cell's k positive spends under LogNormal(mu, sigma), from its sums.

    Equals ``sum_i lognormal.logpdf(y_i)`` over the cell's buyers exactly. With
    ``jacobian=False`` the ``-sum log y`` term (a data constant) is left out.
    """
    return _cell_logp(k, sum_log, sum_log_sq, mu, sigma, pt.log(sigma), jacobian)


def lognormal_cell_loglik(
    k: np.ndarray,
    sum_log: np.ndarray,
    sum_log_sq: np.ndarray,
    mu: np.ndarray,
    sigma: np.ndarray,
    jacobian: bool = True,
) -> np.ndarray:
    """:func:`lognormal_cell_logp` in numpy, for posterior draws (``mu`` and ``sigma`` shaped
    ``(chain, draw, cell)``): the pointwise log-likelihood a saved posterior carries."""
    return _cell_logp(k, sum_log, sum_log_sq, mu, sigma, np.log(sigma), jacobian)


def _cell_logp(k, sum_log, sum_log_sq, mu, sigma, log_sigma, jacobian: bool):
    mean, ss = lognormal_cell_stats(k, sum_log, sum_log_sq)
    kf = np.asarray(k, dtype=np.float64)
    jac = np.asarray(sum_log, dtype=np.float64) if jacobian else None
    return _stats_logp(kf, mean, ss, jac, mu, sigma, log_sigma)


def _stats_logp(k, mean, ss, sum_log, mu, sigma, log_sigma):
    """The cells' lognormal log-density from :func:`lognormal_cell_stats` (arrays or graph
    data); ``sum_log``: the Jacobian term, None to leave it out."""
    out = -k * log_sigma - 0.5 * k * _LOG_2PI - (ss + k * (mean - mu) ** 2) / (2 * sigma**2)
    return out if sum_log is None else out - sum_log


def arm_segment_draws(idata: Any, name: str) -> xr.DataArray:
    """Posterior variable ``name`` (dims arm, segment) as draws with dims (sample, arm, segment)."""
    v = idata["posterior"][name]
    v = v.stack(sample=("chain", "draw")).transpose("sample", "arm", "segment")
    return xr.DataArray(
        np.asarray(v.values),
        dims=("sample", "arm", "segment"),
        coords={"arm": v["arm"].values, "segment": v["segment"].values},
        name=name,
    )


def _check_hurdle_cells(cells: pd.DataFrame) -> None:
    missing = [c for c in HURDLE_COLUMNS if c not in cells.columns]
    if missing:
        raise ValueError(
            f"cells lack {missing}: aggregate them with uplift.data.aggregate_cells from data "
            "with a revenue column (data.columns.revenue)"
        )
    bad = cells[(cells["n_buyers"] < 0) | (cells["n_buyers"] > cells["n"])]
    if len(bad):
        raise ValueError(f"cells with n_buyers outside [0, n]: {bad[['segment', 'arm']].values}")
    if int(cells["n_buyers"].sum()) == 0:
        raise ValueError(
            "no cell has a buyer (revenue > 0): map data.columns.revenue to a revenue column "
            "or use the conversion model"
        )


class HurdleRevenueModel(UpliftModel):
    """Revenue uplift per treated customer = change in P(buy) x spend-per-buyer mean."""

    family = hurdle_lognormal.NAME
    metric = hurdle_lognormal.FAMILY.metric

    def __init__(
        self,
        purchase_priors: ConversionPriors | None = None,
        spend_priors: SpendPriors | None = None,
        sampler: SamplerSettings | None = None,
        parameterization: Parameterization | None = None,
        segment_dims: tuple[str, ...] | list[str] = (),
        interactions: bool = True,
        structure_baselines: bool = False,
    ):
        super().__init__(sampler)
        self.purchase_priors = purchase_priors or ConversionPriors()
        self.spend_priors = spend_priors or SpendPriors()
        self.parameterization = parameterization or Parameterization()
        self.segment_dims = tuple(segment_dims)
        self.interactions = bool(interactions)
        self.structure_baselines = bool(structure_baselines)

    def model_config(self) -> dict:
        return {
            "purchase_priors": asdict(self.purchase_priors),
            "spend_priors": asdict(self.spend_priors),
            "parameterization": asdict(self.parameterization),
            "segment_dims": list(self.segment_dims),
            "interactions": self.interactions,
            "structure_baselines": self.structure_baselines,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        return cls(
            purchase_priors=settings_from(ConversionPriors, config.get("purchase_priors", {})),
            spend_priors=settings_from(SpendPriors, config.get("spend_priors", {})),
            parameterization=settings_from(Parameterization, config.get("parameterization", {})),
            segment_dims=config.get("segment_dims", ()),
            interactions=config.get("interactions", True),
            structure_baselines=config.get("structure_baselines", False),
        )

    def build_model(self, cells: pd.DataFrame, tactic: str) -> pm.Model:
        _check_hurdle_cells(cells)
        control, treated = split_cells(cells, tactic)
        segments, arms, c_seg, t_seg, t_arm = cell_index(control, treated, tactic)
        pp, sp, par = self.purchase_priors, self.spend_priors, self.parameterization
        base_c, eff_c = par.baseline == "centered", par.effect == "centered"
        st = SegmentStructure.from_cells(control, segments, self.segment_dims, self.interactions)
        # baselines: the columns' main effects at a fixed scale + a pooled residual
        # (uplift.models.structure.structured's fixed_main); all terms pooled on request
        fixed = not self.structure_baselines

        with pm.Model(coords={"segment": segments, "arm": arms}) as model:
            # purchase: P(revenue > 0), same structure as the conversion model
            a = pm.Deterministic(
                "purchase_baseline_logit",
                structured(
                    "purchase_baseline",
                    st,
                    pm.Normal("purchase_baseline_mu", pp.baseline_mu, pp.baseline_mu_sd),
                    pp.baseline_sigma,
                    ("segment",),
                    base_c,
                    fixed_main=fixed,
                ),
                dims="segment",
            )
            mu_b = pm.Normal("purchase_effect_mu", 0.0, pp.effect_mu_sd, dims="arm")
            b = pm.Deterministic(
                "purchase_effect_logit",
                structured(
                    "purchase_effect",
                    st,
                    mu_b[:, None],
                    pp.effect_sigma,
                    ("arm", "segment"),
                    eff_c,
                    centered_main=par.main_centered(st.dims),
                ),
                dims=("arm", "segment"),
            )
            p0 = pm.Deterministic("p_control", pm.math.invlogit(a), dims="segment")
            p1 = pm.Deterministic(
                "p_treated", pm.math.invlogit(a[None, :] + b), dims=("arm", "segment")
            )

            # spend per buyer: lognormal log-mean and spread
            m = pm.Deterministic(
                "spend_log_mean",
                structured(
                    "spend_baseline",
                    st,
                    pm.Normal("spend_baseline_mu", sp.log_mean_mu, sp.log_mean_mu_sd),
                    sp.log_mean_sigma,
                    ("segment",),
                    base_c,
                    fixed_main=fixed,
                ),
                dims="segment",
            )
            mu_c = pm.Normal("spend_effect_mu", 0.0, sp.effect_mu_sd, dims="arm")
            c = pm.Deterministic(
                "spend_effect",
                # its main effects stay non-centred: ``main`` is chosen from the purchase link's
                # ratios (the family's link), which say nothing about spend per buyer
                structured(
                    "spend_effect", st, mu_c[:, None], sp.effect_sigma, ("arm", "segment"), eff_c
                ),
                dims=("arm", "segment"),
            )
            log_s_mu = pm.Normal("spend_sd_log_mu", sp.log_sd_mu, sp.log_sd_mu_sd)
            pm.Deterministic("spend_sd_typical", pt.exp(log_s_mu))
            s = pm.Deterministic(
                "spend_sd",
                pt.exp(pooled("spend_sd_log", log_s_mu, sp.log_sd_sigma, ("segment",), False)),
                dims="segment",
            )
            m1 = m[None, :] + c
            spend0 = pm.Deterministic("spend_mean_control", pt.exp(m + s**2 / 2), dims="segment")
            spend1 = pm.Deterministic(
                "spend_mean_treated", pt.exp(m1 + (s**2 / 2)[None, :]), dims=("arm", "segment")
            )
            pm.Deterministic("purchase_uplift", p1 - p0[None, :], dims=("arm", "segment"))
            pm.Deterministic("spend_uplift", spend1 - spend0[None, :], dims=("arm", "segment"))
            pm.Deterministic(
                "uplift", p1 * spend1 - (p0 * spend0)[None, :], dims=("arm", "segment")
            )

            # cell sums and indices as pm.Data: one compiled graph serves every fit of this
            # structure (cross-fitting folds, other up-sell tactics; nutpie reuse)
            c_seg_d = pm.Data("control_segment", c_seg)
            t_seg_d, t_arm_d = pm.Data("treated_segment", t_seg), pm.Data("treated_arm", t_arm)
            pm.Binomial(
                "control_buyers",
                n=pm.Data("control_n", control["n"].to_numpy()),
                p=p0[c_seg_d],
                observed=pm.Data("control_k", control["n_buyers"].to_numpy()),
            )
            pm.Binomial(
                "treated_buyers",
                n=pm.Data("treated_n", treated["n"].to_numpy()),
                p=p1[t_arm_d, t_seg_d],
                observed=pm.Data("treated_k", treated["n_buyers"].to_numpy()),
            )
            for name, df, mu, sd in (
                ("control_spend", control, m[c_seg_d], s[c_seg_d]),
                ("treated_spend", treated, m1[t_arm_d, t_seg_d], s[t_seg_d]),
            ):
                k = df["n_buyers"].to_numpy()
                mean, ss = lognormal_cell_stats(
                    k, df["log_revenue_sum"].to_numpy(), df["log_revenue_sq_sum"].to_numpy()
                )
                kf = pm.Data(f"{name}_k", np.asarray(k, dtype=np.float64))
                mean_d = pm.Data(f"{name}_mean", np.asarray(mean, dtype=np.float64))
                ss_d = pm.Data(f"{name}_ss", np.asarray(ss, dtype=np.float64))
                jac = pm.Data(f"{name}_sum_log", df["log_revenue_sum"].to_numpy(dtype=np.float64))
                pm.Potential(name, _stats_logp(kf, mean_d, ss_d, jac, mu, sd, pt.log(sd)).sum())
        return model

    def cell_observations(self, cells: pd.DataFrame, rng: np.random.Generator) -> CellObservations:
        """Both parts of the hurdle per cell. Observed: ``n_buyers``, ``log_revenue_sum``,
        ``log_revenue_sq_sum`` (``n`` constant). Log-likelihood: ``n_buyers`` (the purchase
        part, Binomial) and ``revenue`` (the spend part: the lognormal density of the cell's
        buyers' revenue, Jacobian included; 0 for a cell without buyers). Replicates:
        ``n_buyers`` and, given those buyers, ``log_revenue_sum``."""
        self._require_fit()
        control, treated = split_cells(cells, str(self.tactic))
        post = self.idata["posterior"]
        segment, arm = cell_labels(control, treated)
        both = pd.concat([control, treated])
        n = both["n"].to_numpy(dtype=np.int64)
        k = both["n_buyers"].to_numpy(dtype=np.int64)
        s1 = both["log_revenue_sum"].to_numpy(dtype=np.float64)
        s2 = both["log_revenue_sq_sum"].to_numpy(dtype=np.float64)
        p = control_and_treated(post, "p_control", "p_treated", control, treated)
        treated_effect = arm_segment_cell_draws(
            post, "spend_effect", arm[len(control) :], segment[len(control) :]
        )
        no_effect = np.zeros((*treated_effect.shape[:-1], len(control)))
        mu = segment_cell_draws(post, "spend_log_mean", segment) + np.concatenate(
            [no_effect, treated_effect], axis=-1
        )
        sd = segment_cell_draws(post, "spend_sd", segment)
        k_rep = binomial_replicates(rng, n, p)
        return CellObservations(
            segment,
            arm,
            observed={"n_buyers": k, "log_revenue_sum": s1, "log_revenue_sq_sum": s2},
            constant={"n": n},
            log_likelihood={
                "n_buyers": binomial_loglik(k, n, p),
                "revenue": lognormal_cell_loglik(k, s1, s2, mu, sd),
            },
            predictive={
                "n_buyers": k_rep,
                "log_revenue_sum": rng.normal(k_rep * mu, np.sqrt(k_rep) * sd),
            },
        )

    def uplift_draws(self) -> xr.DataArray:
        """Incremental revenue per treated customer (P(buy) x mean spend, treated - control)."""
        self._require_fit()
        return arm_segment_draws(self.idata, "uplift")

    def purchase_uplift_draws(self) -> xr.DataArray:
        """Change in the probability of any purchase (revenue > 0)."""
        self._require_fit()
        return arm_segment_draws(self.idata, "purchase_uplift")

    def spend_uplift_draws(self) -> xr.DataArray:
        """Change in mean spend per buying customer (zero unless treatment moves the log-mean)."""
        self._require_fit()
        return arm_segment_draws(self.idata, "spend_uplift")
