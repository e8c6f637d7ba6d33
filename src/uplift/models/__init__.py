"""Model stage: Bayesian uplift models fit on sufficient statistics, one per tactic.

Names are imported on first use (PEP 562), so that ``uplift.models.settings`` (priors and sampler
settings, read by the configuration schema) can be imported without importing PyMC.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uplift.models.base import FittedTactic, UpliftModel
    from uplift.models.conversion import ConversionUpliftModel
    from uplift.models.covariate import CovariateUpliftModel
    from uplift.models.diagnostics import Diagnostics, compute_diagnostics
    from uplift.models.io import load_model
    from uplift.models.persist import ModelLoadError
    from uplift.models.settings import CovariatePriors, SamplerSettings

_WHERE = {
    "ConversionUpliftModel": "conversion",
    "CovariatePriors": "settings",
    "CovariateUpliftModel": "covariate",
    "Diagnostics": "diagnostics",
    "FittedTactic": "base",
    "ModelLoadError": "persist",
    "SamplerSettings": "settings",
    "UpliftModel": "base",
    "compute_diagnostics": "diagnostics",
    "load_model": "io",
}

__all__ = [
    "ConversionUpliftModel",
    "CovariatePriors",
    "CovariateUpliftModel",
    "Diagnostics",
    "FittedTactic",
    "ModelLoadError",
    "SamplerSettings",
    "UpliftModel",
    "compute_diagnostics",
    "load_model",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"uplift.models.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'uplift.models' has no attribute {name!r}")
