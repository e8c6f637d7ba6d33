"""One save/load for every model that keeps a posterior: uplift models, the row-level covariate
model and the CLV (BTYD) models.

A saved posterior (netCDF, no pickle) carries in its attributes the model class, family, model
config and package versions; :meth:`SavedModel.load` checks that the class asked to load it is
the one that wrote it, rebuilds the model from the saved config (:meth:`SavedModel.from_config`)
and restores any fitted state (:meth:`SavedModel._restore`). A mismatch is a named
:class:`ModelLoadError`, never a silent relabel.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar, Self

from uplift.atomic_io import atomic_write_netcdf


class ModelLoadError(ValueError):
    """A saved posterior does not belong to the class asked to load it, or does not rebuild."""


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


def settings_from[T](cls: type[T], config: Mapping[str, Any]) -> T:
    """Dataclass ``cls`` from the keys of ``config`` that are its fields (the rest ignored).

    Reads both a nested section and the flat ``priors | parameterization`` dicts that
    conversion and count models store."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in config.items() if k in names})


def saved_family(attrs: Mapping[str, Any]) -> str | None:
    """The family a saved posterior names (CLV files before the common stamp: ``clv_family``)."""
    family = attrs.get("uplift_family", attrs.get("clv_family"))
    return None if family is None else str(family)


def check_saved(idata: Any, cls: type, path: str | Path) -> None:
    """Refuse to load a posterior that ``cls`` did not write (by the stored model class, or
    by the family for files written before the class was stored)."""
    attrs = idata.attrs
    stored, family = attrs.get("uplift_model_class"), saved_family(attrs)
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


def read_netcdf(path: str | Path) -> Any:
    """The saved posterior at ``path``, read into memory with its file closed.

    ``arviz.from_netcdf`` opens lazily and leaves the file open in xarray's file cache; HDF5 then
    fails ("NetCDF: HDF error") when the same files are opened again and again in one process
    (the third ``uplift.load_run`` of a run folder did). A posterior is read whole anyway.
    """
    import arviz as az

    tree = az.from_netcdf(path)
    try:
        tree.load()
    finally:
        tree.close()
    return tree


class SavedModel:
    """Save/load shared by every model class; subclasses say what their config is and how to
    rebuild from it."""

    family: ClassVar[str]
    idata: Any

    def model_config(self) -> dict:
        """JSON-able settings that :meth:`from_config` rebuilds the model from."""
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """The model that :meth:`model_config` describes (sampler settings are not part of it)."""
        return cls()

    def _saved_attrs(self) -> dict[str, Any]:
        """Attributes stamped next to class, family, config and versions (e.g. the metric)."""
        return {}

    def _restore(self, idata: Any) -> None:
        """Fitted state beyond the config, read back from a saved posterior's attributes."""

    def _require_fit(self) -> None:
        if getattr(self, "idata", None) is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(...) first")

    def _stamp(self) -> None:
        """Write what a saved posterior needs to be loaded back safely into its attributes."""
        self.idata.attrs.update(
            {
                "uplift_model_class": type(self).__name__,
                "uplift_family": self.family,
                "uplift_model_config": json.dumps(self.model_config()),
                "uplift_versions": json.dumps(package_versions(("uplift", "pymc", "arviz"))),
                **self._saved_attrs(),
            }
        )

    def save(self, path: str | Path) -> Path:
        """The posterior and its stamp as netCDF, written atomically."""
        self._require_fit()
        return atomic_write_netcdf(self.idata, path)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """The model saved at ``path``; a file another class wrote is a :class:`ModelLoadError`
        naming it (load any uplift model with :func:`uplift.models.load_model`)."""
        idata = read_netcdf(path)
        check_saved(idata, cls, path)
        return cls._from_saved(idata)

    @classmethod
    def _from_saved(cls, idata: Any) -> Self:
        """The model around a checked saved posterior, rebuilt from its stored config."""
        raw = idata.attrs.get("uplift_model_config")
        try:
            obj = cls.from_config(json.loads(raw) if raw else {})
            obj.idata = idata
            obj._restore(idata)
        except (TypeError, ValueError, KeyError) as e:
            raise ModelLoadError(
                f"the saved config of this {cls.__name__} posterior does not rebuild the model "
                f"({type(e).__name__}: {e}); it may come from another uplift version "
                f"({idata.attrs.get('uplift_versions', 'versions not recorded')}). Read the "
                "draws with arviz.from_netcdf"
            ) from None
        return obj
