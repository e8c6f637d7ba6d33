"""What the library needs to know about one likelihood family: :class:`Family`.

Kept free of PyMC (model classes are imported inside the builders) so that the configuration
schema can validate family names without importing a sampler.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from uplift.data.contract import CustomerData
    from uplift.models.base import UpliftModel
    from uplift.models.sampling import SamplerSettings
    from uplift.models.settings import (
        ConversionPriors,
        CountPriors,
        Parameterization,
        SpendPriors,
    )


class PriorSettings(Protocol):
    """The configured priors of every family (``model.*priors``; the run's ``ModelConfig``)."""

    priors: ConversionPriors
    spend_priors: SpendPriors
    count_priors: CountPriors


@dataclass(frozen=True)
class ModelInputs:
    """What a family's builder gets from the pipeline for one tactic's model.

    ``priors``: the configured priors; ``structure``: the keyword arguments of crossed-segment
    pooling (``segment_dims``, ``interactions``, ``structure_baselines``); ``sampler``: the
    run's sampler settings, with ``target_accept`` raised for crossed structures
    (:func:`uplift.pipeline.sampler_for`); ``run_sampler``: as configured; ``prices``: price
    per arm of a price test (``pricing.prices``); ``outcome``: the row column a family reading
    rows (count histograms) takes the tactic's outcome from.
    """

    priors: PriorSettings
    data: CustomerData
    parameterization: Parameterization
    structure: Mapping[str, Any]
    sampler: SamplerSettings
    run_sampler: SamplerSettings
    prices: Mapping[str, float]
    #: the customer column the tactic's outcome is read from when it has its own
    #: (``data.columns.outcomes``: ``outcome__<tactic>``); None: the family's shared column
    outcome: str | None = None


@dataclass(frozen=True, eq=False)
class Family:
    """One likelihood family, as every stage sees it.

    Data: ``metric`` its uplift is measured in (valued by :mod:`uplift.value.per_conversion`),
    ``requires`` the customer column it needs beyond arm, segment and ``converted`` (None: none),
    ``outcome`` the customer column held-out evaluation scores it on (None: not scored).
    ``prices``: its arms are prices (a price test: priced by ``pricing``, not a budget line).
    ``covariate_model``: the row-level covariate model can be fit for its tactics.

    Model: ``model_class`` ("module:Class", imported by :meth:`load_class` only),
    ``priors`` the :mod:`uplift.models.settings` dataclasses its builder reads from
    ``model.*priors``, ``events(cells)`` the events per cell that choose the parameterization
    (:func:`uplift.pipeline.cell_events`) with ``link(cells)``, ``build(inputs)`` the configured model and
    ``default_model(data, prices, sampler)`` the model with default priors (calibration studies).

    Checks (:mod:`uplift.models.predictive`): ``statistics`` replicated per cell, in table order,
    from the ``cell_columns`` of the cells by ``replicate(ds, pp, rows, idx, rng, histograms)``;
    ``histograms`` whether that needs count histograms; ``quantities`` (name, unit, description)
    the priors imply, computed by ``implied(flat, arr)`` from the prior draws.

    Calibration (:mod:`uplift.evaluate.calibration`): the ``calibration_tactic`` its synthetic
    experiment tests, the ``simulator`` (a function name of that module), its default
    ``design`` and the ``naive_columns`` (sum, sum of squares) of the unpooled estimate.
    """

    name: str
    metric: str
    requires: str | None
    outcome: str | None
    model_class: str
    priors: tuple[type, ...]
    events: Callable[[pd.DataFrame], pd.Series]
    build: Callable[[ModelInputs], UpliftModel]
    default_model: Callable[
        [CustomerData, Mapping[str, float] | None, SamplerSettings | None], UpliftModel
    ]
    statistics: tuple[str, ...]
    cell_columns: tuple[str, ...]
    replicate: Callable[..., list]
    quantities: tuple[tuple[str, str, str], ...]
    implied: Callable[
        [Mapping[str, np.ndarray], Callable[[str], np.ndarray]], dict[str, np.ndarray]
    ]
    calibration_tactic: str
    simulator: str
    design: Mapping[str, int]
    naive_columns: tuple[str, str]
    prices: bool = False
    #: prior-implied quantities reported but not judged against the campaign ranges of
    #: ``uplift.models.predictive.DEFAULT_RANGES`` (a price arm's lift is one-signed by
    #: construction and follows from the elasticity, which is judged)
    unjudged: tuple[str, ...] = ()
    covariate_model: bool = False
    histograms: bool = False
    #: each cell's parameter estimated on the model's link scale (e.g. the empirical logit)
    #: and its sampling variance: chooses ``effect=auto``'s form
    #: (:func:`uplift.models.information.effect_information_ratio`); None: events alone
    link: Callable[[pd.DataFrame], tuple[pd.Series, pd.Series]] | None = None

    def load_class(self) -> type[UpliftModel]:
        """The model class (imports PyMC)."""
        module, name = self.model_class.split(":")
        return getattr(importlib.import_module(module), name)

    def __repr__(self) -> str:
        return f"Family({self.name!r})"
