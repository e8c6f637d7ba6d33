"""The contract every uplift model follows, so the pipeline and optimizer need not know the family.

A model owns its PyMC graph, is fit on cells (sufficient statistics) for one tactic, exposes the
posterior of its incremental metric per treated customer as draws with dims
``(sample, arm, segment)``, and saves/loads itself as netCDF (no pickle).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import pandas as pd
import xarray as xr

from uplift.models.building import graph_building
from uplift.models.diagnostics import Diagnostics, compute_diagnostics
from uplift.models.observations import CellObservations
from uplift.models.persist import ModelLoadError, SavedModel

__all__ = ["FittedTactic", "ModelLoadError", "SavedModel", "UpliftModel"]
from uplift.models.sampling import SamplerSettings

if TYPE_CHECKING:
    from uplift.models.carry import CarriedPrior


#: the parameterization keys that reach the graph as data (the main effects' forms,
#: :func:`uplift.models.structure.form_flag`), not baked into a compiled graph
FORM_KEYS: frozenset[str] = frozenset({"main", "centered_columns"})


def without_forms(config: dict) -> dict:
    """``config`` less :data:`FORM_KEYS`, at its top level and in a nested
    ``parameterization`` (:attr:`UpliftModel.forms_as_data`)."""
    out = {k: v for k, v in config.items() if k not in FORM_KEYS}
    if isinstance(out.get("parameterization"), dict):
        out["parameterization"] = without_forms(out["parameterization"])
    return out


class UpliftModel(SavedModel, ABC):
    family: ClassVar[str]
    metric: str  # set by each class; a count model may rename it per instance (``metric=``)
    #: with nutpie/numpyro, reuse one compiled graph across fits whose data (``pm.Data``) differ
    reuse_compiled: ClassVar[bool] = True
    #: dims whose labels may differ between fits sharing a compiled graph
    relabel_dims: ClassVar[tuple[str, ...]] = ("arm",)
    #: the graph reads the main effects' forms (which columns are centred) as data
    #: (:func:`uplift.models.structure.form_flag`), so they are not part of the compiled key:
    #: one compiled graph serves every choice of columns. A family that bakes them in sets False.
    forms_as_data: ClassVar[bool] = True
    #: the model can take an earlier wave's posterior as its prior (``model.prior_from``,
    #: :mod:`uplift.models.carry`)
    carries_prior: ClassVar[bool] = False

    def __init__(self, sampler: SamplerSettings | None = None) -> None:
        self.sampler = sampler or SamplerSettings()
        self.idata = None
        self.tactic: str | None = None

    @abstractmethod
    def build_model(self, cells: pd.DataFrame, tactic: str):
        """Return the PyMC model for ``tactic`` given all cells (control cells are shared)."""

    @abstractmethod
    def uplift_draws(self) -> xr.DataArray:
        """Incremental ``metric`` per treated customer, dims ``(sample, arm, segment)``."""

    def fit(self, cells: pd.DataFrame, tactic: str) -> Self:
        """Fit on ``cells`` for ``tactic`` with the configured backend.

        nutpie and numpyro reuse one compiled graph per model structure across tactics
        (compiling dominates their cost); pymc NUTS and ADVI go through :func:`sample`.
        """
        self.tactic = str(tactic)
        with graph_building():
            model = self.build_model(cells, self.tactic)
        seed = self.sampler.seed_for(self.tactic)
        key = self.compiled_key(model)
        draw = self.sampling_function()
        if self.sampler.backend in ("nutpie", "numpyro"):
            self.idata = draw(model, self.sampler, seed, key, self.relabel_dims)
        else:
            self.idata = draw(model, self.sampler, seed=seed)
        self.observe(cells)
        self._stamp()
        return self

    def carry(self, prior: CarriedPrior) -> Self:
        """This model with an earlier wave's posterior as its prior (:mod:`uplift.models.carry`);
        only classes with ``carries_prior`` can."""
        raise TypeError(f"{type(self).__name__} cannot carry an earlier posterior as its prior")

    def compiled_key(self, graph: Any) -> tuple[str, str] | None:
        """What, beyond its structure, identifies a graph this model built: the class and
        :meth:`compile_config`. nutpie/numpyro reuse a compiled graph by it, the prior checks
        their batched prior draws; None (compile afresh) when the class does not reuse graphs
        or the graph holds no ``pm.Data`` to swap."""
        if not self.reuse_compiled or not graph.data_vars:
            return None
        return (type(self).__name__, json.dumps(self.compile_config(), sort_keys=True))

    def compile_config(self) -> dict:
        """What is baked into the compiled graph (the key nutpie/numpyro reuse it by): the model
        config, less anything that reaches the graph as ``pm.Data`` (the main effects' forms,
        with ``forms_as_data``)."""
        config = self.model_config()
        return without_forms(config) if self.forms_as_data else config

    def sampling_function(self) -> Callable[..., Any]:
        """The function of :mod:`uplift.models.sampling` that :meth:`fit` draws with for the
        configured backend (looked up at call time, so a replaced sampler is the one used)."""
        from uplift.models import sampling

        name = {"nutpie": "sample_nutpie", "numpyro": "sample_numpyro"}
        return getattr(sampling, name.get(str(self.sampler.backend), "sample"))

    def fit_data(self, cells: pd.DataFrame, tactic: str) -> list[pd.DataFrame]:
        """Every table the fit of ``tactic`` reads (the fit cache hashes them): its control and
        treated cells; models that read more (count histograms) add it."""
        return [cells[cells["tactic"].isin(["control", str(tactic)])]]

    def with_posterior(self, idata: Any) -> Self:
        """This model's class, data and sampler around a saved posterior of the same model (a
        fit cache hit): the saved config wins, as a refit after divergences may have changed the
        parameterization."""
        obj = type(self)._from_saved(idata)
        obj.sampler = self.sampler
        return obj

    def cell_observations(
        self, cells: pd.DataFrame, rng: np.random.Generator
    ) -> CellObservations | None:
        """The fitted tactic's cells as its likelihood sees them: observed statistics, their
        pointwise log-likelihood under each draw and replicates drawn from each draw
        (:mod:`uplift.models.observations`); None: the model keeps none."""
        return None

    def observe(self, cells: pd.DataFrame) -> Self:
        """Put ``observed_data``, ``constant_data``, ``log_likelihood`` and
        ``posterior_predictive`` of the fitted cells into the posterior, so that a saved file
        supports ``az.loo`` and ``az.plot_ppc_dist`` on its own. Seeded from the sampler seed
        and the tactic: the same fit gives the same replicates."""
        self._require_fit()
        rng = np.random.default_rng(self.sampler.seed_for(str(self.tactic), "predictive"))
        obs = self.cell_observations(cells, rng)
        if obs is not None:
            self.idata = obs.attach(self.idata)
        return self

    def _saved_attrs(self) -> dict[str, Any]:
        return {"uplift_metric": self.metric, "uplift_tactic": self.tactic}

    def _restore(self, idata: Any) -> None:
        self.tactic = idata.attrs.get("uplift_tactic")

    def diagnostics(self) -> Diagnostics:
        self._require_fit()
        return compute_diagnostics(self.idata)

    def thin(self, every: int) -> Self:
        """Keep every ``every``-th draw of each chain (all groups with draws). A fit sampled
        longer to mix is thinned back to the configured number of draws: downstream, the draws of
        all tactics are paired scenario by scenario, so every fit must hold as many."""
        self._require_fit()
        if every > 1:
            self.idata = self.idata.isel(draw=slice(None, None, every), missing_dims="ignore")
        return self


@dataclass
class FittedTactic:
    """One tactic's fitted model with its diagnostics and how long it took."""

    tactic: str
    model: UpliftModel
    diagnostics: Diagnostics
    seconds: float
    #: every fit tried when the first one diverged or did not mix (empty: the first one served)
    attempts: list[dict] = field(default_factory=list)
    #: the posterior was read from the fit cache (``sampler.cache``) instead of sampled
    from_cache: bool = False

    def draws(self) -> xr.DataArray:
        return self.model.uplift_draws()
