"""Model stage: Bayesian uplift models fit on sufficient statistics, one per tactic."""

from uplift.models.base import FittedTactic, ModelLoadError, UpliftModel
from uplift.models.conversion import ConversionUpliftModel
from uplift.models.covariate import CovariatePriors, CovariateUpliftModel
from uplift.models.diagnostics import Diagnostics, compute_diagnostics
from uplift.models.io import load_model
from uplift.models.sampling import SamplerSettings

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
