"""Hierarchical negative-binomial count uplift (orders, referrals), fit exactly on histograms.

For one tactic with arms v and segments g, counts per customer are NegBinomial(mu, alpha):

    log mu_control[g]   = a[g]
    log mu_treated[v,g] = a[g] + b[v,g]
    log alpha[g]        = log_alpha_mu + dev[g]

Baselines, effects and dispersion are partially pooled across segments like
:mod:`uplift.models.conversion`. Dispersion is per segment (pooled) and shared by control and
treated: it describes the segment's customers (heavy vs occasional buyers), while the treatment
is modelled as moving the mean. Its pool is always non-centred: alpha is weakly identified from
sparse counts, where a centred form funnels.

The negative binomial is not summarised by a cell's sum and sum of squares, so the model takes
each cell's histogram of counts (:func:`count_histograms`): the log-likelihood is
``sum over (cell, count) of customers x logpmf(count)``, identical to the row-level one at a cost
of (cells x distinct counts). For NB2 the maximum-likelihood mean of a cell is its sample mean
whatever ``alpha``, so the uplift ``mu1 - mu0`` stays consistent even where the NB shape is only
approximate (e.g. many zeros from non-buyers).
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

from uplift.data.contract import SEGMENT, CustomerData
from uplift.models.base import UpliftModel
from uplift.models.conversion import Parameterization, cell_index, split_cells
from uplift.models.families import negative_binomial
from uplift.models.observations import (
    CellObservations,
    cell_labels,
    control_and_treated,
    segment_cell_draws,
)
from uplift.models.persist import settings_from
from uplift.models.revenue import TensorLike, arm_segment_draws
from uplift.models.sampling import SamplerSettings
from uplift.models.settings import CountPriors
from uplift.models.structure import SegmentStructure, pooled, structured

HISTOGRAM_COLUMNS = [SEGMENT, "arm", "count", "customers"]


def count_histograms(data: CustomerData, column: str = "orders") -> pd.DataFrame:
    """Customers per (segment, arm, count value) of ``column``: the NB model's exact data.

    Columns ``segment, arm, count, customers``; only observed counts appear (zero-customer rows
    add nothing to the likelihood).
    """
    e = data.engine
    if data.rows is None and e is not None and e.table is not None and column in e.table.columns:
        t = e.table  # the histogram is an aggregate: computed where the rows live
        hist = (
            t.group_by([SEGMENT, "arm", t[column].cast("int64").name("count")])
            .aggregate(customers=t.count())
            .to_pandas()
            .sort_values([SEGMENT, "arm", "count"], kind="stable")
            .reset_index(drop=True)
        )
        hist[SEGMENT], hist["arm"] = hist[SEGMENT].astype(str), hist["arm"].astype(str)
        hist["count"] = hist["count"].astype(np.int64)
        hist["customers"] = hist["customers"].astype(np.int64)
        hist.attrs["column"] = column
        return hist[HISTOGRAM_COLUMNS]
    f = data.frame
    if column not in f.columns:
        raise ValueError(f"column {column!r} is not in the customer data ({list(f.columns)})")
    counts = f[column]
    if not pd.api.types.is_numeric_dtype(counts) or (counts < 0).any():
        raise ValueError(f"column {column!r} must hold integer counts >= 0")
    if (counts != np.floor(counts)).any():
        raise ValueError(f"column {column!r} must hold integer counts >= 0")
    hist = (
        pd.DataFrame({SEGMENT: f[SEGMENT], "arm": f["arm"], "count": counts.astype(np.int64)})
        .groupby([SEGMENT, "arm", "count"], sort=True, observed=True)
        .size()
        .rename("customers")
        .reset_index()
    )
    hist["customers"] = hist["customers"].astype(np.int64)
    hist.attrs["column"] = column
    return hist[HISTOGRAM_COLUMNS]


def negbinomial_histogram_logp(
    counts: TensorLike, customers: TensorLike, mu: TensorLike, alpha: TensorLike
) -> pt.TensorVariable:
    """``customers x NegBinomial(mu, alpha).logpmf(count)`` per histogram row (sum it for a
    cell); ``counts`` integer and ``customers`` float64, as arrays or graph data."""
    dist = pm.NegativeBinomial.dist(mu=mu, alpha=alpha)
    return customers * pm.logp(dist, counts)


#: histogram rows are padded to a multiple of this (see ``NegBinomialCountModel.build_model``)
HISTOGRAM_PAD = 64


class NegBinomialCountModel(UpliftModel):
    """Incremental count per treated customer (``mu_treated - mu_control``).

    ``histograms`` (from :func:`count_histograms`) must describe the same customers as the cells
    passed to :meth:`fit`; the cells fix which segments and arms belong to the tactic and the
    model checks that each cell's histogram adds up to its ``n``. ``metric`` renames what is
    counted (e.g. ``"referrals"``) for reports; it is saved with the posterior.
    """

    family = negative_binomial.NAME
    metric = negative_binomial.FAMILY.metric

    def __init__(
        self,
        histograms: pd.DataFrame | None = None,
        priors: CountPriors | None = None,
        sampler: SamplerSettings | None = None,
        parameterization: Parameterization | None = None,
        metric: str | None = None,
        segment_dims: tuple[str, ...] | list[str] = (),
        interactions: bool = True,
        structure_baselines: bool = False,
    ):
        super().__init__(sampler)
        self.histograms = histograms
        self.priors = priors or CountPriors()
        self.parameterization = parameterization or Parameterization()
        self.segment_dims = tuple(segment_dims)
        self.interactions = bool(interactions)
        self.structure_baselines = bool(structure_baselines)
        if metric is not None:
            self.metric = metric

    def model_config(self) -> dict:
        return (
            asdict(self.priors)
            | asdict(self.parameterization)
            | {
                "metric": self.metric,
                "segment_dims": list(self.segment_dims),
                "interactions": self.interactions,
                "structure_baselines": self.structure_baselines,
            }
        )

    def _cell_histograms(
        self, control: pd.DataFrame, treated: pd.DataFrame
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        h = self.histograms
        if h is None:
            raise RuntimeError(
                "NegBinomialCountModel needs histograms: pass "
                "NegBinomialCountModel(histograms=count_histograms(data, column)) before fit"
            )
        missing = [c for c in HISTOGRAM_COLUMNS if c not in h.columns]
        if missing:
            raise ValueError(f"histograms lack columns {missing}; build them with count_histograms")
        out = []
        for cells in (control, treated):
            keys = pd.MultiIndex.from_frame(cells[[SEGMENT, "arm"]])
            rows = h[pd.MultiIndex.from_frame(h[[SEGMENT, "arm"]]).isin(keys)]
            total = rows.groupby([SEGMENT, "arm"])["customers"].sum()
            n = cells.set_index([SEGMENT, "arm"])["n"]
            mismatch = n[total.reindex(n.index, fill_value=0).to_numpy() != n.to_numpy()]
            if len(mismatch):
                raise ValueError(
                    f"histograms do not match the cells for (segment, arm) "
                    f"{list(mismatch.index)[:5]}: build both from the same customer data"
                )
            out.append(rows)
        return out[0], out[1]

    def build_model(self, cells: pd.DataFrame, tactic: str) -> pm.Model:
        control, treated = split_cells(cells, tactic)
        h_control, h_treated = self._cell_histograms(control, treated)
        segments, arms, c_seg, t_seg, t_arm = cell_index(
            control, treated, tactic, h_control, h_treated
        )
        pr, par = self.priors, self.parameterization
        st = SegmentStructure.from_cells(control, segments, self.segment_dims, self.interactions)
        # baselines: the columns' main effects at a fixed scale + a pooled residual
        # (uplift.models.structure.structured's fixed_main); all terms pooled on request
        fixed = not self.structure_baselines

        with pm.Model(coords={"segment": segments, "arm": arms}) as model:
            a = pm.Deterministic(
                "baseline_log",
                structured(
                    "baseline",
                    st,
                    pm.Normal("baseline_mu", pr.baseline_mu, pr.baseline_mu_sd),
                    pr.baseline_sigma,
                    ("segment",),
                    par.baseline == "centered",
                    fixed_main=fixed,
                ),
                dims="segment",
            )
            mu_b = pm.Normal("effect_mu", 0.0, pr.effect_mu_sd, dims="arm")
            b = pm.Deterministic(
                "effect_log",
                structured(
                    "effect",
                    st,
                    mu_b[:, None],
                    pr.effect_sigma,
                    ("arm", "segment"),
                    par.effect == "centered",
                    centered_main=par.main_centered(st.dims),
                ),
                dims=("arm", "segment"),
            )
            alpha = pm.Deterministic(
                "alpha",
                pt.exp(
                    pooled(
                        "log_alpha",
                        pm.Normal("log_alpha_mu", pr.log_alpha_mu, pr.log_alpha_mu_sd),
                        pr.log_alpha_sigma,
                        ("segment",),
                        False,
                    )
                ),
                dims="segment",
            )
            mu0 = pm.Deterministic("mu_control", pt.exp(a), dims="segment")
            mu1 = pm.Deterministic("mu_treated", pt.exp(a[None, :] + b), dims=("arm", "segment"))
            pm.Deterministic("uplift", mu1 - mu0[None, :], dims=("arm", "segment"))
            # histogram rows as pm.Data, padded with empty rows (0 customers: no likelihood) to
            # a multiple of HISTOGRAM_PAD, so that fits whose histograms differ by a few rows
            # (another count tactic, cross-fitting folds) share one compiled graph (nutpie reuse)
            for name, h, idx, mu in (
                ("control", h_control, (c_seg,), lambda i: mu0[i[0]]),
                ("treated", h_treated, (t_arm, t_seg), lambda i: mu1[i[0], i[1]]),
            ):
                n_pad = -len(h) % HISTOGRAM_PAD
                pad = np.zeros(n_pad, dtype=np.int64)
                count = pm.Data(f"{name}_count", np.r_[h["count"].to_numpy(np.int64), pad])
                customers = pm.Data(
                    f"{name}_customers", np.r_[h["customers"].to_numpy(np.float64), pad]
                )
                index = tuple(
                    pm.Data(f"{name}_index_{j}", np.r_[i, pad]) for j, i in enumerate(idx)
                )
                seg = index[-1]
                pm.Potential(
                    f"{name}_counts",
                    negbinomial_histogram_logp(count, customers, mu(index), alpha[seg]).sum(),
                )
        return model

    def cell_observations(self, cells: pd.DataFrame, rng: np.random.Generator) -> CellObservations:
        """The histogram likelihood per cell. Observed: ``<column>_histogram`` (customers per
        observed count value, dims ``cell, count``) and ``<column>_sum`` (``n`` constant).
        Log-likelihood: ``<column>_histogram`` (the sum over the cell's customers of
        ``NegBinomial(mu, alpha).logpmf(count)``). Replicates: ``<column>_sum``, the total of the
        cell's ``n`` customers, ``NegBinomial(n alpha, alpha / (alpha + mu))`` exactly."""
        from scipy import stats

        self._require_fit()
        control, treated = split_cells(cells, str(self.tactic))
        h_control, h_treated = self._cell_histograms(control, treated)
        column = str((self.histograms.attrs if self.histograms is not None else {}).get("column"))
        column = column if column != "None" else "orders"
        post = self.idata["posterior"]
        segment, arm = cell_labels(control, treated)
        where = {(s, a): i for i, (s, a) in enumerate(zip(segment, arm, strict=True))}
        rows = pd.concat([h_control, h_treated])
        row_cell = np.array(
            [where[(str(s), str(a))] for s, a in zip(rows[SEGMENT], rows["arm"], strict=True)]
        )
        counts = rows["count"].to_numpy(dtype=np.int64)
        customers = rows["customers"].to_numpy(dtype=np.int64)
        support = np.unique(counts)
        histogram = np.zeros((len(segment), len(support)), dtype=np.int64)
        np.add.at(histogram, (row_cell, np.searchsorted(support, counts)), customers)
        mu = control_and_treated(post, "mu_control", "mu_treated", control, treated)
        alpha = segment_cell_draws(post, "alpha", segment)
        p = alpha / (alpha + mu)
        row_ll = customers * stats.nbinom.logpmf(counts, alpha[..., row_cell], p[..., row_cell])
        one_hot = np.zeros((len(rows), len(segment)))
        one_hot[np.arange(len(rows)), row_cell] = 1.0
        n = histogram.sum(axis=1)
        return CellObservations(
            segment,
            arm,
            observed={f"{column}_histogram": histogram, f"{column}_sum": histogram @ support},
            constant={"n": n},
            log_likelihood={f"{column}_histogram": row_ll @ one_hot},
            predictive={f"{column}_sum": rng.negative_binomial(n * alpha, p).astype(np.int64)},
            extra_coords={"count": support},
        )

    def uplift_draws(self) -> xr.DataArray:
        """Incremental count (e.g. orders) per treated customer."""
        self._require_fit()
        return arm_segment_draws(self.idata, "uplift")

    def fit_data(self, cells: pd.DataFrame, tactic: str) -> list[pd.DataFrame]:
        """The cells and the count histograms of the tactic's cells (the likelihood's data)."""
        control, treated = split_cells(cells, str(tactic))
        return [*super().fit_data(cells, tactic), *self._cell_histograms(control, treated)]

    def with_posterior(self, idata: Any) -> Self:
        """As :meth:`UpliftModel.with_posterior`, keeping this model's histograms (they are
        not saved with the posterior; the predictive checks read them)."""
        obj = super().with_posterior(idata)
        obj.histograms = self.histograms
        return obj

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        return cls(
            priors=settings_from(CountPriors, config),
            parameterization=settings_from(Parameterization, config),
            metric=config.get("metric"),
            segment_dims=config.get("segment_dims", ()),
            interactions=config.get("interactions", True),
            structure_baselines=config.get("structure_baselines", False),
        )

    @classmethod
    def _from_saved(cls, idata) -> Self:
        """The posterior with the counted metric's name restored (e.g. ``referrals``)."""
        obj = super()._from_saved(idata)
        metric = obj.idata.attrs.get("uplift_metric")
        if metric:
            obj.metric = str(metric)
        return obj
