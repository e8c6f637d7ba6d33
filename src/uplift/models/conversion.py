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

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from uplift.models.base import UpliftModel
from uplift.models.sampling import SamplerSettings
from uplift.models.structure import SegmentStructure, structured


@dataclass
class ConversionPriors:
    """Weakly informative priors on the logit scale (``model.priors`` in config).

    Defaults put 95% of a segment's baseline conversion between ~0.4% and ~80% (prior predictive,
    spread between segments included) and treatment effects within about +/-1 on the logit scale
    (uplift within +/-20 pp): wide for marketing, yet proper enough to keep sampling stable.
    """

    baseline_mu: float = -2.0
    baseline_mu_sd: float = 1.5
    baseline_sigma: float = 1.0
    effect_mu_sd: float = 0.5
    effect_sigma: float = 0.5

    def __post_init__(self) -> None:
        for k in ("baseline_mu_sd", "baseline_sigma", "effect_mu_sd", "effect_sigma"):
            if getattr(self, k) <= 0:
                raise ValueError(f"model.priors.{k} must be > 0, got {getattr(self, k)}")


def split_cells(cells: pd.DataFrame, tactic: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Control cells and this tactic's treated cells."""
    control = cells[cells["tactic"] == "control"]
    treated = cells[cells["tactic"] == tactic]
    if control.empty:
        raise ValueError("no control cells: the data needs a control arm")
    if treated.empty:
        raise ValueError(f"no cells for tactic {tactic!r}")
    return control, treated


@dataclass
class Parameterization:
    """Centred, non-centred or data-chosen (``auto``) random effects (``model.parameterization``).

    Measured (nutpie, 4 chains x 1000 draws, min bulk ESS centred vs non-centred baselines):
    demo, ~130 conversions per control cell: 597 vs 456 (and r-hat 1.004 vs 1.020);
    Hillstrom visits, ~12 per cell: 527 vs 307; Hillstrom purchases, ~1 per cell: 248 vs 591;
    Hillstrom spend, ~2 buyers per cell: r-hat 1.13 and 18 divergences centred, clean
    non-centred; one segment (Cookie Cats): the pooled scale is prior-only, a funnel, centred
    diverges. Data that pin each segment down favour centring; sparse data the non-centred form.
    ``auto`` therefore centres baselines when the median control cell holds at least
    ``auto_min_events`` events (the rarer outcome: conversions or non-conversions, buyers,
    orders) and there are at least ``auto_min_segments`` segments.

    Effects are differences, identified far less sharply than baselines: on the 48-segment
    benchmark (bench/fit_scaling.py, 4 x 1000 draws) centred effects gave 116 divergences and
    r-hat 1.12 at ~26 events per treated cell, but min ESS 3056 vs 457 non-centred at ~260
    events, 3780 vs 258 at ~770 and 3211 vs 125 at ~2600. ``auto`` centres effects from
    ``auto_min_effect_events`` events in the median treated cell. That rule is not the default:
    on social_pressure_mailing (~325 events per treated cell, effects that barely vary across
    18 segments) centred effects gave 127 divergences vs 0 non-centred, because the spread of
    effects, not only the data per cell, decides. The pipeline resolves ``auto`` from the data
    (:meth:`resolve`) before a model is built; models take the resolved values.
    """

    baseline: str = "centered"
    effect: str = "non_centered"
    auto_min_events: float = 4.0
    auto_min_segments: int = 3
    auto_min_effect_events: float = 250.0

    def __post_init__(self) -> None:
        for k in ("baseline", "effect"):
            if getattr(self, k) not in ("centered", "non_centered", "auto"):
                raise ValueError(
                    f"model.parameterization.{k} must be 'centered', 'non_centered' or 'auto', "
                    f"got {getattr(self, k)!r}"
                )
        if self.auto_min_events < 0:
            raise ValueError(
                f"model.parameterization.auto_min_events must be >= 0, got {self.auto_min_events}"
            )

    def resolve(
        self, events_per_cell: float, segments: int, treated_events: float | None = None
    ) -> Parameterization:
        """Replace ``auto`` by the form the data favour (see the class docstring).

        ``events_per_cell``: median events of the control cells; ``treated_events``: of the
        treated cells (default: the control figure).
        """
        treated = events_per_cell if treated_events is None else treated_events
        pooled_ok = segments >= self.auto_min_segments
        dense = {
            "baseline": pooled_ok and events_per_cell >= self.auto_min_events,
            "effect": pooled_ok and treated >= self.auto_min_effect_events,
        }
        picks = {
            k: ("centered" if dense[k] else "non_centered") if v == "auto" else v
            for k, v in (("baseline", self.baseline), ("effect", self.effect))
        }
        return Parameterization(
            picks["baseline"],
            picks["effect"],
            auto_min_events=self.auto_min_events,
            auto_min_segments=self.auto_min_segments,
            auto_min_effect_events=self.auto_min_effect_events,
        )


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
    family = "binomial"
    metric = "conversion"

    def __init__(
        self,
        priors: ConversionPriors | None = None,
        sampler: SamplerSettings | None = None,
        parameterization: Parameterization | None = None,
        segment_dims: tuple[str, ...] | list[str] = (),
        interactions: bool = True,
        structure_baselines: bool = False,
    ):
        super().__init__(sampler)
        self.priors = priors or ConversionPriors()
        self.parameterization = parameterization or Parameterization()
        self.segment_dims = tuple(segment_dims)
        self.interactions = bool(interactions)
        self.structure_baselines = bool(structure_baselines)

    def model_config(self) -> dict:
        return (
            asdict(self.priors)
            | asdict(self.parameterization)
            | {
                "segment_dims": list(self.segment_dims),
                "interactions": self.interactions,
                "structure_baselines": self.structure_baselines,
            }
        )

    def build_model(self, cells: pd.DataFrame, tactic: str) -> pm.Model:
        control, treated = split_cells(cells, tactic)
        segments, arms, c_seg, t_seg, t_arm = cell_index(control, treated, tactic)
        pr = self.priors

        par = self.parameterization
        structure = SegmentStructure.from_cells(
            control, segments, self.segment_dims, self.interactions
        )
        with pm.Model(coords={"segment": segments, "arm": arms}) as model:
            mu_a = pm.Normal("baseline_mu", pr.baseline_mu, pr.baseline_mu_sd)
            a = structured(
                "baseline",
                structure if self.structure_baselines else SegmentStructure(tuple(segments)),
                mu_a,
                pr.baseline_sigma,
                ("segment",),
                par.baseline == "centered",
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
            )
            b = pm.Deterministic("effect_logit", b, dims=("arm", "segment"))
            p0 = pm.Deterministic("p_control", pm.math.invlogit(a), dims="segment")
            p1 = pm.Deterministic(
                "p_treated", pm.math.invlogit(a[None, :] + b), dims=("arm", "segment")
            )
            pm.Deterministic("uplift", p1 - p0[None, :], dims=("arm", "segment"))
            binomial_cells(control, treated, p0, p1, c_seg, t_seg, t_arm)
        return model

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
