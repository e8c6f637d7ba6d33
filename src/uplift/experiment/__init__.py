"""Experiment design: size the cells, assign customers reproducibly, check the experiment is healthy.

* :mod:`~uplift.experiment.design` - sample size, power, MDE, assurance and a per segment x arm table.
* :mod:`~uplift.experiment.assignment` - salted sha256 assignment, stratified, with a global holdout.
* :mod:`~uplift.experiment.health` - sample-ratio mismatch and covariate balance, fail-loud.
"""

from uplift.experiment.assignment import (
    BUCKETS,
    HOLDOUT,
    assign,
    expected_weights,
    hash_buckets,
)
from uplift.experiment.design import (
    AssuranceResult,
    OutcomeMoments,
    SampleSize,
    assurance,
    design_table,
    estimate_outcome,
    minimum_detectable_effect,
    power,
    required_sample_size,
    segment_moments,
)
from uplift.experiment.health import (
    BalanceResult,
    HealthCheckError,
    SRMResult,
    SRMTest,
    covariate_balance,
    require_healthy,
    srm_check,
    srm_test,
)

__all__ = [
    "BUCKETS",
    "HOLDOUT",
    "AssuranceResult",
    "BalanceResult",
    "HealthCheckError",
    "OutcomeMoments",
    "SRMResult",
    "SRMTest",
    "SampleSize",
    "assign",
    "assurance",
    "covariate_balance",
    "design_table",
    "estimate_outcome",
    "expected_weights",
    "hash_buckets",
    "minimum_detectable_effect",
    "power",
    "require_healthy",
    "required_sample_size",
    "segment_moments",
    "srm_check",
    "srm_test",
]
