"""``model.prior_from=<run folder>``: read an earlier run's posteriors as this run's priors, and
refuse before any sampling when the two runs do not model the same thing.

The moment matching itself, and what it approximates, is :mod:`uplift.models.carry`. Here: the
earlier run must be finished and have saved its posteriors; it must have fit the same tactics,
each with the same family, arms, segments and segment structure (``segment_dims``,
``interactions``, ``structure_baselines``) as this run's model of it. Each difference is a
:class:`PriorFromError` naming what differs and the fix. Priors and parameterization may differ
(the carried prior replaces the hierarchical priors; both forms save the same cell logits).
Guardrail fits and the row-level covariate model start from their own priors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from uplift.config import AppConfig
from uplift.data.contract import DataValidationError
from uplift.models.base import UpliftModel
from uplift.models.carry import CarriedPrior, CarriedPriorError

log = logging.getLogger(__name__)

#: the structure keys of a saved model config that must match between the two runs
STRUCTURE_KEYS = ("segment_dims", "interactions", "structure_baselines")
#: loaded priors by (posterior file, its mtime, forget): a run builds each tactic's model several
#: times (the fit, retries, cross-fitting, checks), the file is read once
_LOADED: dict[tuple[str, int, float], tuple[str | None, dict[str, Any], CarriedPrior | str]] = {}


class PriorFromError(DataValidationError):
    """``model.prior_from`` names a run whose posterior cannot be this run's prior."""


def _fix(what: str) -> str:
    return (
        f"{what}; run this wave with the earlier run's settings, or drop model.prior_from "
        "to start from the default priors"
    )


def prior_folder(config: AppConfig) -> Path | None:
    """The earlier run's folder (``model.prior_from``), checked to be a finished run."""
    raw = config.model.prior_from
    if raw in (None, ""):
        return None
    folder = Path(str(raw)).expanduser()
    summary = folder / "summary.json"
    if not summary.is_file():
        raise PriorFromError(
            f"model.prior_from={raw!r} holds no summary.json (resolved to {folder.resolve()}): "
            "pass the folder of a finished `uplift` run"
        )
    status = json.loads(summary.read_text()).get("status")
    if status != "complete":
        raise PriorFromError(
            f"model.prior_from={raw!r}: that run's status is {status!r}, not 'complete'; a "
            "refused or failed fit is no prior. Pass a finished run"
        )
    return folder


def earlier_tactics(folder: Path) -> list[str]:
    return list(json.loads((folder / "summary.json").read_text())["tactics"])


def check_tactics(config: AppConfig, tactics: list[str]) -> None:
    """The earlier run fit exactly ``tactics`` (this run's)."""
    folder = prior_folder(config)
    if folder is None:
        return
    before = earlier_tactics(folder)
    if sorted(before) != sorted(tactics):
        raise PriorFromError(
            _fix(
                f"model.prior_from={config.model.prior_from!r} fit tactics {sorted(before)}, "
                f"this run has {sorted(tactics)} (missing here: "
                f"{sorted(set(before) - set(tactics))}, new here: "
                f"{sorted(set(tactics) - set(before))})"
            )
        )


def _read(path: Path, forget: float) -> tuple[str | None, dict[str, Any], CarriedPrior | str]:
    """Family and model config stamped on a saved posterior, and its carried prior (or why it
    cannot be one), read once per file and forgetting factor."""
    from uplift.models.persist import read_netcdf

    key = (str(path.resolve()), path.stat().st_mtime_ns, forget)
    if key not in _LOADED:
        tree = read_netcdf(path)
        raw = tree.attrs.get("uplift_model_config")
        try:
            prior: CarriedPrior | str = CarriedPrior.from_posterior(
                tree["posterior"], forget, key[0]
            )
        except CarriedPriorError as e:
            prior = str(e)
        _LOADED[key] = (tree.attrs.get("uplift_family"), json.loads(raw) if raw else {}, prior)
    return _LOADED[key]


def carried_prior(
    config: AppConfig, tactic: str, model: UpliftModel, cells: pd.DataFrame
) -> CarriedPrior | None:
    """The prior ``model`` (this run's model of ``tactic``, to be fit on ``cells``) carries
    from ``model.prior_from``, or None when it is unset; a :class:`PriorFromError` when the two
    differ in family, arms, segments or structure."""
    folder = prior_folder(config)
    if folder is None:
        return None
    where = f"model.prior_from={config.model.prior_from!r}"
    check_tactics(config, sorted({str(t) for t in cells["tactic"]} - {"control"}))
    if not model.carries_prior:
        from uplift.models.families import FAMILIES

        able = sorted(n for n, f in FAMILIES.items() if f.load_class().carries_prior)
        raise PriorFromError(
            f"tactic {tactic!r} is modelled with family {model.family!r}, whose posterior "
            f"cannot be carried as a prior yet (families that can: {able}); drop "
            "model.prior_from, or model the tactic with one of those (model.families)"
        )
    path = folder / f"posterior_{tactic}.nc"
    if not path.is_file():
        raise PriorFromError(
            f"{where} has no {path.name}: that run was made with report.save_posteriors=false "
            "(or did not fit the tactic); rerun it with report.save_posteriors=true"
        )
    forget = float(config.model.prior_forget)
    family, saved, prior = _read(path, forget)
    if family != model.family:
        raise PriorFromError(
            _fix(
                f"{where} fit tactic {tactic!r} with family {family!r}, this run with "
                f"{model.family!r} (model.family / model.families.{tactic})"
            )
        )
    mine = model.model_config()
    differ = {
        k: (saved.get(k), mine.get(k))
        for k in STRUCTURE_KEYS
        if _norm(saved.get(k)) != _norm(mine.get(k))
    }
    if differ:
        said = "; ".join(f"{k}: {a!r} there, {b!r} here" for k, (a, b) in differ.items())
        raise PriorFromError(
            _fix(
                f"{where} modelled tactic {tactic!r} with another segment structure ({said}; "
                "keys model.pool_by_dimensions, model.dimension_interactions, "
                "model.structure_baselines and the segment columns)"
            )
        )
    if isinstance(prior, str):
        raise PriorFromError(f"{where}: {prior}")
    control = cells[cells["tactic"] == "control"]
    treated = cells[cells["tactic"] == tactic]
    segments = sorted(control["segment"].astype(str).unique())
    arms = sorted(treated["arm"].astype(str).unique())
    for what, there, here in (
        ("segments", sorted(prior.segments), segments),
        ("arms", sorted(prior.arms), arms),
    ):
        if there != here:
            raise PriorFromError(
                _fix(
                    f"{where} fit tactic {tactic!r} on {what} {there}, this run has {here} "
                    f"(only there: {sorted(set(there) - set(here))}, only here: "
                    f"{sorted(set(here) - set(there))})"
                )
            )
    log.info(
        "%s: prior from %s (%d draws, %d parameters, forget %.3g)",
        tactic,
        path,
        prior.draws,
        prior.size,
        forget,
    )
    return prior


def check_prior_from(
    config: AppConfig, tactics: list[str], build: Callable[[str], UpliftModel]
) -> None:
    """Every check of :func:`carried_prior`, for each of ``tactics`` (``build(tactic)``: this
    run's model of it, built with its prior), before any tactic is sampled."""
    if prior_folder(config) is None:
        return
    check_tactics(config, tactics)
    for tactic in tactics:
        build(tactic)


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value
