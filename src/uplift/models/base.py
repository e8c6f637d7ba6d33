"""The contract every uplift model follows, so the pipeline and optimizer need not know the family.

A model owns its PyMC graph, is fit on cells (sufficient statistics) for one tactic, exposes the
posterior of its incremental metric per treated customer as draws with dims
``(sample, arm, segment)``, and saves/loads itself as netCDF (no pickle).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

import arviz as az
import pandas as pd
import xarray as xr

from uplift.atomic_io import atomic_write_netcdf
from uplift.models.diagnostics import Diagnostics, compute_diagnostics
from uplift.models.sampling import SamplerSettings


class UpliftModel(ABC):
    family: ClassVar[str]
    metric: ClassVar[str]
    #: with nutpie/numpyro, reuse one compiled graph across fits whose data (``pm.Data``) differ
    reuse_compiled: ClassVar[bool] = True
    #: dims whose labels may differ between fits sharing a compiled graph
    relabel_dims: ClassVar[tuple[str, ...]] = ("arm",)

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

    def model_config(self) -> dict:
        return {}

    def fit(self, cells: pd.DataFrame, tactic: str) -> Self:
        """Fit on ``cells`` for ``tactic`` with the configured backend.

        nutpie and numpyro reuse one compiled graph per model structure across tactics
        (compiling dominates their cost); pymc NUTS and ADVI go through :func:`sample`.
        """
        from uplift.models.sampling import sample, sample_numpyro, sample_nutpie

        self.tactic = str(tactic)
        model = self.build_model(cells, self.tactic)
        seed = self.sampler.seed_for(self.tactic)
        key = (type(self).__name__, json.dumps(self.model_config(), sort_keys=True))
        key = key if self.reuse_compiled and model.data_vars else None
        if self.sampler.backend == "nutpie":
            self.idata = sample_nutpie(model, self.sampler, seed, key, self.relabel_dims)
        elif self.sampler.backend == "numpyro":
            self.idata = sample_numpyro(model, self.sampler, seed, key, self.relabel_dims)
        else:
            self.idata = sample(model, self.sampler, seed=seed)
        self._stamp()
        return self

    def _stamp(self) -> None:
        """Write what a saved posterior needs to be loaded back safely into its attributes:
        model class, family, metric, tactic, model config and the package versions."""
        self.idata.attrs.update(
            {
                "uplift_model_class": type(self).__name__,
                "uplift_family": self.family,
                "uplift_metric": self.metric,
                "uplift_tactic": self.tactic,
                "uplift_model_config": json.dumps(self.model_config()),
                "uplift_versions": json.dumps(package_versions(("uplift", "pymc", "arviz"))),
            }
        )

    def _require_fit(self) -> None:
        if self.idata is None:
            raise RuntimeError(
                f"{type(self).__name__} is not fitted: call fit(cells, tactic) first"
            )

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

    def save(self, path: str | Path) -> Path:
        self._require_fit()
        return atomic_write_netcdf(self.idata, path)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """The posterior saved at ``path``; a file another model class wrote is a
        :class:`ModelLoadError` naming it (load any with :func:`uplift.models.load_model`)."""
        idata = az.from_netcdf(path)
        check_saved(idata, cls, path)
        return cls._from_saved(idata)

    @classmethod
    def _from_saved(cls, idata) -> Self:
        """The model around a checked saved posterior (subclasses rebuild their config here)."""
        obj = cls()
        obj.idata = idata
        obj.tactic = idata.attrs.get("uplift_tactic")
        return obj


class ModelLoadError(ValueError):
    """A saved posterior does not belong to the class asked to load it."""


def package_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """Installed version of each package ("not installed" when absent)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def check_saved(idata, cls: type, path: str | Path) -> None:
    """Refuse to load a posterior that ``cls`` did not write (by the stored model class, or
    by the family for files written before the class was stored)."""
    attrs = idata.attrs
    stored, family = attrs.get("uplift_model_class"), attrs.get("uplift_family")
    if stored is None and family is None:
        raise ModelLoadError(
            f"{str(path)!r} is not a posterior saved by uplift (no uplift_model_class or "
            "uplift_family attribute): read it with arviz.from_netcdf instead"
        )
    if (stored is not None and stored != cls.__name__) or (
        stored is None and family != getattr(cls, "family", None)
    ):
        what = stored or f"a model of family {family!r}"
        raise ModelLoadError(
            f"{str(path)!r} holds {what} (family {family!r}, metric "
            f"{attrs.get('uplift_metric')!r}), not a {cls.__name__}: load it with "
            f"uplift.models.load_model({str(path)!r})" + (f" or {stored}.load" if stored else "")
        )


@dataclass
class FittedTactic:
    """One tactic's fitted model with its diagnostics and how long it took."""

    tactic: str
    model: UpliftModel
    diagnostics: Diagnostics
    seconds: float
    #: every fit tried when the first one diverged or did not mix (empty: the first one served)
    attempts: list[dict] = field(default_factory=list)

    def draws(self) -> xr.DataArray:
        return self.model.uplift_draws()
