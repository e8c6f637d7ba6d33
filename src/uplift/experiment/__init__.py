"""Experiment design: size the cells, assign customers reproducibly, check the experiment is healthy.

* :mod:`~uplift.experiment.design` - sample size, power, MDE, assurance and a per segment x arm table.
* :mod:`~uplift.experiment.assignment` - salted sha256 assignment, stratified, with a global holdout.
* :mod:`~uplift.experiment.health` - sample-ratio mismatch and covariate balance, fail-loud.
* :mod:`~uplift.experiment.readout` - ship / keep testing / stop per arm and segment, in profit,
  with expected losses, guardrails (non-inferiority) and the SRM gate.
* :mod:`~uplift.experiment.nextwave` - Thompson-sampling shares for the next wave, per segment.
* :mod:`~uplift.experiment.offpolicy` - IPW / SNIPW / DM / DR value of a targeting policy.
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
from uplift.experiment.nextwave import (
    assign_next_wave,
    next_wave_shares,
    next_wave_srm,
    prob_best,
)
from uplift.experiment.offpolicy import (
    PolicyEvaluation,
    allocation_policy,
    evaluate_policy,
    policy_probabilities,
)
from uplift.experiment.readout import (
    KEEP_TESTING,
    READOUT_COLUMNS,
    SHIP,
    STOP,
    DecisionRule,
    Guardrail,
    Readout,
    guardrail_table,
    normal_expected_loss,
    profit_draws,
    readout,
    readout_table,
    recommend,
)
from uplift.experiment.run_checks import srm_for_run  # noqa: E402

__all__ = [
    "srm_for_run",
    "BUCKETS",
    "HOLDOUT",
    "KEEP_TESTING",
    "READOUT_COLUMNS",
    "SHIP",
    "STOP",
    "DecisionRule",
    "Guardrail",
    "PolicyEvaluation",
    "Readout",
    "allocation_policy",
    "assign_next_wave",
    "evaluate_policy",
    "guardrail_table",
    "next_wave_shares",
    "next_wave_srm",
    "normal_expected_loss",
    "policy_probabilities",
    "prob_best",
    "profit_draws",
    "readout",
    "readout_table",
    "recommend",
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
