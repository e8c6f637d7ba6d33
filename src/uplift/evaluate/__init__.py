"""Evaluate stage: rank-based uplift metrics (scikit-uplift and causalml conventions).

See :mod:`uplift.evaluate.metrics` for which normalisation each function follows.
"""

from uplift.evaluate.metrics import (
    causalml_auuc_score,
    causalml_gain_curve,
    causalml_qini_curve,
    causalml_qini_score,
    per_arm,
    perfect_qini_curve,
    perfect_uplift_curve,
    qini_auc_score,
    qini_curve,
    uplift_at_k,
    uplift_auc_score,
    uplift_curve,
)

__all__ = [
    "causalml_auuc_score",
    "causalml_gain_curve",
    "causalml_qini_curve",
    "causalml_qini_score",
    "per_arm",
    "perfect_qini_curve",
    "perfect_uplift_curve",
    "qini_auc_score",
    "qini_curve",
    "uplift_at_k",
    "uplift_auc_score",
    "uplift_curve",
]
