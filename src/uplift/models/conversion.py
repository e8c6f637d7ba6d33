"""Hierarchical binomial-logit conversion uplift, fit on (segment, arm) cells.

For one tactic with arms (variants) v and segments g:

    logit p_control[g]   = a[g]
    logit p_treated[v,g] = a[g] + b[v,g]

    a[g]   = mu_a + dev_a[g],        dev_a[g]   ~ N(0, sigma_a)
    b[v,g] = mu_b[v] + dev_b[v,g],   dev_b[v,g] ~ N(0, sigma_b[v])

Baselines and effects are partially pooled across segments: baselines centred, effects
non-centred by default (see :class:`Parameterization` for the measured choice).
Conversions in each cell are Binomial(n, p): the row-level Bernoulli likelihood up to a
constant, at a cost independent of the number of customers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Self

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from uplift.models.base import UpliftModel
from uplift.models.carry import CARRIED_DIM, CarriedPrior, CarriedPriorError, carried_labels
from uplift.models.families import binomial
from uplift.models.observations import CellObservations, binomial_observations
from uplift.models.persist import settings_from
from uplift.models.sampling import SamplerSettings
from uplift.models.settings import ConversionPriors, Parameterization
from uplift.models.structure import SegmentStructure, structured


def split_cells(cells: pd.DataFrame, tactic: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Control cells and this tactic's treated cells."""
    control = cells[cells["tactic"] == "control"]
    treated = cells[cells["tactic"] == tactic]
    if control.empty:
        raise ValueError("no control cells: the data needs a control arm")
    if treated.empty:
        raise ValueError(f"no cells for tactic {tactic!r}")
    return control, treated


def binomial_cells(control, treated, p0, p1, c_seg, t_seg, t_arm) -> None:
    """Conversions of control and treated cells as Binomial(n, p), exact from cell sums.

    Counts and indices are ``pm.Data`` so one compiled graph serves every tactic (nutpie reuse).
    """
    c_seg_d = pm.Data("control_segment", c_seg)
    t_seg_d, t_arm_d = pm.Data("treated_segment", t_seg), pm.Data("treated_arm", t_arm)
    pm.Binomial(
        "control_conversions",
        n=pm.Data("control_n", control["n"].to_numpy()),
        p=p0[c_seg_d],
        observed=pm.Data("control_k", control["conversions"].to_numpy()),
    )
    pm.Binomial(
        "treated_conversions",
        n=pm.Data("treated_n", treated["n"].to_numpy()),
        p=p1[t_arm_d, t_seg_d],
        observed=pm.Data("treated_k", treated["conversions"].to_numpy()),
    )


def cell_index(
    control: pd.DataFrame,
    treated: pd.DataFrame,
    tactic: str,
    control_rows: pd.DataFrame | None = None,
    treated_rows: pd.DataFrame | None = None,
) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Segments and arms of a tactic's cells, and the position of each row in them.

    Returns ``(segments, arms, control_segment, treated_segment, treated_arm)``; the rows default
    to the cells themselves (count models index histogram rows instead).
    """
    control_rows = control if control_rows is None else control_rows
    treated_rows = treated if treated_rows is None else treated_rows
    segments = sorted(control["segment"].unique())
    arms = sorted(treated["arm"].unique())
    seg_pos = {s: i for i, s in enumerate(segments)}
    arm_pos = {a: i for i, a in enumerate(arms)}
    unknown = sorted(set(treated["segment"]) - set(seg_pos))
    if unknown:
        raise ValueError(f"segments {unknown} of tactic {tactic!r} have no control cell")
    return (
        segments,
        arms,
        control_rows["segment"].map(seg_pos).to_numpy(),
        treated_rows["segment"].map(seg_pos).to_numpy(),
        treated_rows["arm"].map(arm_pos).to_numpy(),
    )


class ConversionUpliftModel(UpliftModel):
    family = binomial.NAME
    metric = binomial.FAMILY.metric
    carries_prior = True

    def __init__(
        self,
        priors: ConversionPriors | None = None,
        sampler: SamplerSettings | None = None,
        parameterization: Parameterization | None = None,
        segment_dims: tuple[str, ...] | list[str] = (),
        interactions: bool = True,
        structure_baselines: bool = False,
        carried: CarriedPrior | None = None,
    ):
        super().__init__(sampler)
        #: an earlier wave's posterior as the prior (:mod:`uplift.models.carry`); a model loaded
        #: from a file knows it by ``carried_from`` and reads it again when its graph is rebuilt
        self.carried = carried
        self.carried_from: dict[str, Any] | None = carried.describe() if carried else None
        self.priors = priors or ConversionPriors()
        self.parameterization = parameterization or Parameterization()
        self.segment_dims = tuple(segment_dims)
        self.interactions = bool(interactions)
        self.structure_baselines = bool(structure_baselines)

    def model_config(self) -> dict:
        carried = {"prior_from": self.carried_from} if self.carried_from else {}
        return (
            asdict(self.priors)
            | asdict(self.parameterization)
            | {
                "segment_dims": list(self.segment_dims),
                "interactions": self.interactions,
                "structure_baselines": self.structure_baselines,
            }
            | carried
        )

    def compile_config(self) -> dict:
        """The carried prior and the main effects' forms reach the graph as data: tactics share
        one compiled graph."""
        config = super().compile_config()
        if "prior_from" in config:
            config["prior_from"] = {"parameters": config["prior_from"]["parameters"]}
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        obj = cls(
            priors=settings_from(ConversionPriors, config),
            parameterization=settings_from(Parameterization, config),
            segment_dims=config.get("segment_dims", ()),
            interactions=config.get("interactions", True),
            structure_baselines=config.get("structure_baselines", False),
        )
        obj.carried_from = config.get("prior_from")
        return obj

    def carry(self, prior: CarriedPrior) -> Self:
        self.carried, self.carried_from = prior, prior.describe()
        return self

    def with_posterior(self, idata: Any) -> Self:
        obj = super().with_posterior(idata)
        if self.carried is not None and obj.carried_from == self.carried_from:
            obj.carried = self.carried
        return obj

    def _carried(self) -> CarriedPrior | None:
        """The carried prior, read again from its file for a model loaded from a posterior."""
        if self.carried is None and self.carried_from:
            meta = self.carried_from
            prior = CarriedPrior.from_file(meta["source"], float(meta["forget"]))
            if prior.digest != meta["digest"]:
                raise CarriedPriorError(
                    f"{meta['source']} changed since this model was fit with it as its prior "
                    "(model.prior_from): the model cannot be rebuilt as it was fit"
                )
            self.carried = prior
        return self.carried

    def build_model(self, cells: pd.DataFrame, tactic: str) -> pm.Model:
        control, treated = split_cells(cells, tactic)
        segments, arms, c_seg, t_seg, t_arm = cell_index(control, treated, tactic)
        carried = self._carried()
        if carried is not None:
            return self._carried_model(
                carried, control, treated, segments, arms, c_seg, t_seg, t_arm
            )
        pr = self.priors

        par = self.parameterization
        structure = SegmentStructure.from_cells(
            control, segments, self.segment_dims, self.interactions
        )
        with pm.Model(coords={"segment": segments, "arm": arms}) as model:
            mu_a = pm.Normal("baseline_mu", pr.baseline_mu, pr.baseline_mu_sd)
            a = structured(
                "baseline",
                structure,
                mu_a,
                pr.baseline_sigma,
                ("segment",),
                par.baseline == "centered",
                fixed_main=not self.structure_baselines,
            )
            a = pm.Deterministic("baseline_logit", a, dims="segment")
            mu_b = pm.Normal("effect_mu", 0.0, pr.effect_mu_sd, dims="arm")
            b = structured(
                "effect",
                structure,
                mu_b[:, None],
                pr.effect_sigma,
                ("arm", "segment"),
                par.effect == "centered",
                centered_main=par.main_centered(structure.dims),
            )
            b = pm.Deterministic("effect_logit", b, dims=("arm", "segment"))
            p0 = pm.Deterministic("p_control", pm.math.invlogit(a), dims="segment")
            p1 = pm.Deterministic(
                "p_treated", pm.math.invlogit(a[None, :] + b), dims=("arm", "segment")
            )
            pm.Deterministic("uplift", p1 - p0[None, :], dims=("arm", "segment"))
            binomial_cells(control, treated, p0, p1, c_seg, t_seg, t_arm)
        return model

    def _carried_model(
        self, carried: CarriedPrior, control, treated, segments, arms, c_seg, t_seg, t_arm
    ) -> pm.Model:
        """The cell logits with the earlier wave's posterior as their prior (non-centred:
        ``theta = mean + sqrt(f) L z``, ``z ~ N(0, I)``); the rest of the graph as above."""
        if (sorted(carried.segments), sorted(carried.arms)) != (sorted(segments), sorted(arms)):
            raise CarriedPriorError(
                f"the carried prior ({carried.source}) is for segments {list(carried.segments)} "
                f"and arms {list(carried.arms)}, these cells have {segments} and {arms}"
            )
        mean, chol = carried.aligned(segments, arms)
        g = len(segments)
        with pm.Model(
            coords={
                "segment": segments,
                "arm": arms,
                CARRIED_DIM: carried_labels(segments, len(arms)),
            }
        ) as model:
            m = pm.Data("carried_mean", mean, dims=CARRIED_DIM)
            L = pm.Data("carried_chol", chol)
            z = pm.Normal("carried_z", 0.0, 1.0, dims=CARRIED_DIM)
            theta = m + pm.math.dot(L, z)
            a = pm.Deterministic("baseline_logit", theta[:g], dims="segment")
            b = pm.Deterministic(
                "effect_logit", theta[g:].reshape((len(arms), g)), dims=("arm", "segment")
            )
            p0 = pm.Deterministic("p_control", pm.math.invlogit(a), dims="segment")
            p1 = pm.Deterministic(
                "p_treated", pm.math.invlogit(a[None, :] + b), dims=("arm", "segment")
            )
            pm.Deterministic("uplift", p1 - p0[None, :], dims=("arm", "segment"))
            binomial_cells(control, treated, p0, p1, c_seg, t_seg, t_arm)
        return model

    def cell_observations(self, cells: pd.DataFrame, rng: np.random.Generator) -> CellObservations:
        """``conversions`` per cell (observed, log-likelihood, replicates), ``n`` constant."""
        self._require_fit()
        control, treated = split_cells(cells, str(self.tactic))
        return binomial_observations(self.idata["posterior"], control, treated, rng)

    def uplift_draws(self) -> xr.DataArray:
        self._require_fit()
        up = self.idata["posterior"]["uplift"]
        up = up.stack(sample=("chain", "draw")).transpose("sample", "arm", "segment")
        return xr.DataArray(
            np.asarray(up.values),
            dims=("sample", "arm", "segment"),
            coords={"arm": up["arm"].values, "segment": up["segment"].values},
            name="uplift",
        )
