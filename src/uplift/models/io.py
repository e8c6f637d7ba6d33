"""Load any saved posterior back into the model class that wrote it."""

from __future__ import annotations

from pathlib import Path

from uplift.models.base import UpliftModel
from uplift.models.persist import ModelLoadError, SavedModel, read_netcdf, saved_family


def model_classes() -> dict[str, type[UpliftModel]]:
    """Every segment-level uplift model class whose posteriors ``uplift`` saves, by name: one per
    registered family."""
    from uplift.models.families import FAMILIES

    classes = [f.load_class() for f in FAMILIES.values()]
    return {c.__name__: c for c in classes}


def loadable_classes() -> dict[str, type[SavedModel]]:
    """What :func:`load_model` can rebuild: the uplift models and the row-level covariate model
    (the CLV models live in the value layer and load through their own class)."""
    from uplift.models.covariate import CovariateUpliftModel

    return {**model_classes(), CovariateUpliftModel.__name__: CovariateUpliftModel}


def load_model(path: str | Path) -> SavedModel:
    """The model saved at ``path`` (a run's ``posterior_<tactic>.nc``), loaded by the class that
    wrote it: the stored model class, else (older files) the stored family."""
    idata = read_netcdf(path)  # read once: checked and wrapped by the class that wrote it
    attrs = idata.attrs
    classes = loadable_classes()
    name = attrs.get("uplift_model_class")
    if name is None:
        by_family = {c.family: c for c in classes.values()}
        family = saved_family(attrs)
        if family not in by_family:
            raise ModelLoadError(
                f"{str(path)!r} names no model uplift knows (family {family!r}); read it with "
                "arviz.from_netcdf"
            )
        cls = by_family[family]
    elif name in classes:
        cls = classes[name]
    else:
        raise ModelLoadError(
            f"{str(path)!r} was written by {name!r}, which this version of uplift cannot load "
            f"(it loads {sorted(classes)}); read it with arviz.from_netcdf"
        )
    return cls._from_saved(idata)
