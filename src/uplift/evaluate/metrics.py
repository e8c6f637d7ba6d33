"""Uplift evaluation metrics: how well does a score rank customers by treatment effect?

Everything here works on one randomised comparison (a treated arm vs control): ``y`` the
observed outcome, ``treatment`` 0/1, ``score`` the predicted uplift (higher = target first).
Sort customers by ``score``, highest first; for the top ``n`` let ``N_T``, ``N_C`` be the
treated/control counts and ``R_T``, ``R_C`` their outcome sums; ``N`` is the sample size.

Two families with *different* conventions are implemented, because published numbers from
the two reference libraries are not comparable and users ask which one they are looking at.

scikit-uplift 0.5.1 conventions (``sklift.metrics``)
    :func:`uplift_curve`, :func:`qini_curve`, :func:`perfect_uplift_curve`,
    :func:`perfect_qini_curve`, :func:`uplift_auc_score`, :func:`qini_auc_score`,
    :func:`uplift_at_k`.

    * Ties are grouped: one curve point per distinct score (so the value of a tied block does
      not depend on row order); the curve starts at ``(0, 0)``.
    * ``uplift_curve(n) = (R_T/N_T - R_C/N_C) * n``; ``qini_curve(n) = R_T - R_C * N_T/N_C``;
      a ratio with a zero denominator counts as 0.
    * ``uplift_auc_score`` / ``qini_auc_score`` are normalised against the *perfect* curve:
      ``(AUC_model - AUC_base) / (AUC_perfect - AUC_base)``, trapezoids on ``x = n``, where the
      base is the straight line from ``(0, 0)`` to ``(N, curve(N))``. 0 ~ random ranking,
      1 = the ranking that produces the perfect curve; can be negative. Not bounded by 1:
      sklift's perfect curves are heuristics, and on small or unbalanced samples some
      rankings beat them (the tests show a 4-row case scoring 2.5).
    * ``uplift_at_k``: difference in mean outcome between treated and control among the top
      ``k`` (``'overall'``: top ``k`` of the pooled ranking; ``'by_group'``: top ``k`` within
      each arm). The ranking is sklift's ``argsort(score, kind="mergesort")[::-1]``, i.e.
      among tied scores the *later* row comes first.

causalml conventions (``causalml.metrics.auuc_score`` / ``qini_score``)
    :func:`causalml_gain_curve`, :func:`causalml_qini_curve`, :func:`causalml_auuc_score`,
    :func:`causalml_qini_score`.

    * Plain sort, no tie grouping: one point per unit, ``n = 0..N`` with ``curve(0) = 0``.
      Ties keep input order. causalml uses pandas' default quicksort, whose order among ties
      is unspecified (numpy's SIMD quicksort reorders ties even on a few rows), so on tied
      scores causalml itself is not reproducible; we match it run with a stable sort.
    * ``gain(n) = n * (R_T/N_T - R_C/N_C)``, ``qini(n) = R_T - R_C * N_T/N_C``; points where
      a denominator is zero are undefined and, as in causalml, linearly interpolated from the
      neighbours (the lift is interpolated for the gain curve, the qini value for Qini).
    * ``normalize=True`` (the default, as in causalml) divides each curve by ``|curve(N)|``.
    * ``causalml_auuc_score = sum_n gain(n) / (N + 1)`` (a random ranking scores about 0.5
      when normalised, not 0); ``causalml_qini_score = [sum_n qini(n) - sum_n line(n)] / (N+1)``
      with ``line`` the straight line from ``qini(0)`` to ``qini(N)``. No perfect-curve
      normalisation: values are not bounded by 1.

Continuous outcomes (e.g. ``y`` = revenue)
    All curves, the causalml scores and :func:`uplift_at_k` accept any finite real ``y``.
    The perfect curves, and hence :func:`uplift_auc_score` / :func:`qini_auc_score`, are only
    defined for a binary ``y`` (they rank by responder/non-responder type); for a non-binary
    ``y`` they raise ``ValueError`` rather than silently returning a number with no meaning.
    Use :func:`causalml_auuc_score` / :func:`causalml_qini_score`, or the raw area
    ``np.trapezoid(values, x)`` of :func:`uplift_curve` / :func:`qini_curve`, instead.

More than two arms
    :func:`per_arm` evaluates any metric for each treated arm against the shared control,
    on the rows of that arm plus control.

All public functions validate their inputs (equal lengths, no NaN/inf, treatment in {0, 1},
at least one treated and one control row) and raise ``ValueError`` with the reason.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any, Literal, overload

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

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

Curve = tuple[np.ndarray, np.ndarray]


# --------------------------------------------------------------------------- validation


def _as_1d(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric (bool, int or float), got dtype {arr.dtype}")
    return arr.astype(np.float64)


@overload
def _validate(
    y: ArrayLike, treatment: ArrayLike, score: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
@overload
def _validate(
    y: ArrayLike, treatment: ArrayLike, score: None = None
) -> tuple[np.ndarray, np.ndarray, None]: ...
def _validate(
    y: ArrayLike, treatment: ArrayLike, score: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Coerce to float arrays and reject inputs for which the metrics are undefined."""
    y_arr = _as_1d(y, "y")
    t_arr = _as_1d(treatment, "treatment")
    s_arr = None if score is None else _as_1d(score, "score")
    lengths = {"y": y_arr.size, "treatment": t_arr.size}
    if s_arr is not None:
        lengths["score"] = s_arr.size
    if len(set(lengths.values())) != 1:
        raise ValueError(f"length mismatch: {lengths}")
    if y_arr.size == 0:
        raise ValueError("inputs are empty")
    for name, arr in (("y", y_arr), ("treatment", t_arr), ("score", s_arr)):
        if arr is not None and not np.isfinite(arr).all():
            n_bad = int((~np.isfinite(arr)).sum())
            raise ValueError(f"{name} contains {n_bad} NaN or infinite value(s)")
    if not np.isin(t_arr, (0.0, 1.0)).all():
        bad = np.unique(t_arr[~np.isin(t_arr, (0.0, 1.0))])[:5]
        raise ValueError(f"treatment must be 0/1, found other values such as {bad.tolist()}")
    n_treated = int(t_arr.sum())
    if n_treated == 0:
        raise ValueError("no treated rows (treatment == 1): the metrics need both groups")
    if n_treated == t_arr.size:
        raise ValueError("no control rows (treatment == 0): the metrics need both groups")
    return y_arr, t_arr, s_arr


def _require_binary_outcome(y: np.ndarray, what: str) -> None:
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(
            f"{what} is defined only for a binary outcome y in {{0, 1}} (it ranks by "
            "responder type). For a continuous outcome use causalml_auuc_score / "
            "causalml_qini_score, or the raw area np.trapezoid(values, x) of the curve."
        )


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den with 0 where den == 0 (scikit-uplift's convention)."""
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den != 0)


# --------------------------------------------------------------- scikit-uplift family


def _grouped_cumulative(
    y: np.ndarray, t: np.ndarray, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (n, N_T, N_C, R_T, R_C) at the end of each block of tied scores."""
    order = np.argsort(score, kind="mergesort")[::-1]
    y_s, t_s, s_s = y[order], t[order], score[order]
    ends = np.r_[np.flatnonzero(np.diff(s_s)), s_s.size - 1]
    n = (ends + 1).astype(np.float64)
    n_t = np.cumsum(t_s)[ends]
    r_t = np.cumsum(y_s * t_s)[ends]
    r_c = np.cumsum(y_s * (1.0 - t_s))[ends]
    return n, n_t, n - n_t, r_t, r_c


def _uplift_curve(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> Curve:
    n, n_t, n_c, r_t, r_c = _grouped_cumulative(y, t, score)
    values = (_safe_div(r_t, n_t) - _safe_div(r_c, n_c)) * n
    return np.r_[0.0, n], np.r_[0.0, values]


def _qini_curve(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> Curve:
    n, n_t, n_c, r_t, r_c = _grouped_cumulative(y, t, score)
    values = r_t - r_c * _safe_div(n_t, n_c)
    return np.r_[0.0, n], np.r_[0.0, values]


def uplift_curve(y: ArrayLike, treatment: ArrayLike, score: ArrayLike) -> Curve:
    """Uplift (cumulative gain) curve, scikit-uplift convention; ties grouped.

    Returns ``(x, values)`` as float arrays: ``x`` = number targeted (starting at 0, one point
    per distinct score), ``values = (R_T/N_T - R_C/N_C) * n`` — the incremental outcome if the
    top ``n`` were all treated, estimated from the rates among them.
    """
    y_arr, t_arr, s_arr = _validate(y, treatment, score)
    return _uplift_curve(y_arr, t_arr, s_arr)


def qini_curve(y: ArrayLike, treatment: ArrayLike, score: ArrayLike) -> Curve:
    """Qini curve, scikit-uplift convention; ties grouped.

    Returns ``(x, values)``: ``values = R_T - R_C * N_T/N_C`` — incremental outcome among the
    treated in the top ``n``, with control scaled to the treated count.
    """
    y_arr, t_arr, s_arr = _validate(y, treatment, score)
    return _qini_curve(y_arr, t_arr, s_arr)


def _perfect_uplift_curve(y: np.ndarray, t: np.ndarray) -> Curve:
    control_responders = np.sum((y == 1) & (t == 0))
    treated_non_responders = np.sum((y == 0) & (t == 1))
    summand = y if control_responders > treated_non_responders else t
    return _uplift_curve(y, t, 2.0 * (y == t) + summand)


def perfect_uplift_curve(y: ArrayLike, treatment: ArrayLike) -> Curve:
    """Best achievable uplift curve on this sample (scikit-uplift 0.5.1 definition).

    Ranks by ``2*1[y == t] + (y if #control responders > #treated non-responders else t)``:
    treated responders and control non-responders first. Binary ``y`` only.
    """
    y_arr, t_arr, _ = _validate(y, treatment)
    _require_binary_outcome(y_arr, "perfect_uplift_curve")
    return _perfect_uplift_curve(y_arr, t_arr)


def _perfect_qini_curve(y: np.ndarray, t: np.ndarray, negative_effect: bool) -> Curve:
    if negative_effect:
        return _qini_curve(y, t, y * t - y * (1.0 - t))
    n_t = t.sum()
    overall = y[t == 1].sum() - n_t * y[t == 0].sum() / (t.size - n_t)
    if overall < 0:
        raise ValueError(
            f"perfect_qini_curve(negative_effect=False) needs a non-negative overall Qini "
            f"R_T - N_T*R_C/N_C, got {overall:.6g}; use negative_effect=True"
        )
    return np.array([0.0, overall, float(t.size)]), np.array([0.0, overall, overall])


def perfect_qini_curve(y: ArrayLike, treatment: ArrayLike, negative_effect: bool = True) -> Curve:
    """Best achievable Qini curve (scikit-uplift 0.5.1 definition). Binary ``y`` only.

    ``negative_effect=True`` ranks by ``y*t - y*(1-t)`` (treated responders first, control
    responders last, so the curve can fall). ``False`` assumes nobody is hurt by treatment:
    the path ``(0,0) -> (Q,Q) -> (N,Q)`` with ``Q = R_T - N_T*R_C/N_C`` (requires ``Q >= 0``).
    """
    if not isinstance(negative_effect, bool):
        raise TypeError(f"negative_effect must be bool, got {type(negative_effect).__name__}")
    y_arr, t_arr, _ = _validate(y, treatment)
    _require_binary_outcome(y_arr, "perfect_qini_curve")
    return _perfect_qini_curve(y_arr, t_arr, negative_effect)


def _normalised_area(model: Curve, perfect: Curve, what: str) -> float:
    x_p, v_p = perfect
    base = 0.5 * x_p[-1] * v_p[-1]
    perfect_area = float(np.trapezoid(v_p, x_p))
    denom = perfect_area - base
    scale = max(float(np.trapezoid(np.abs(v_p), x_p)), abs(base), 1.0)
    if abs(denom) <= 1e-12 * scale:
        raise ValueError(
            f"{what} is undefined: the perfect curve coincides with the random baseline "
            "(e.g. all outcomes equal), so there is nothing to normalise by"
        )
    return (float(np.trapezoid(model[1], model[0])) - base) / denom


def uplift_auc_score(y: ArrayLike, treatment: ArrayLike, score: ArrayLike) -> float:
    """Normalised area under the uplift curve (scikit-uplift ``uplift_auc_score``).

    ``(AUC_model - AUC_base) / (AUC_perfect - AUC_base)``: 0 ~ random, 1 = perfect ranking.
    Binary ``y`` only (the perfect curve is undefined otherwise).
    """
    y_arr, t_arr, s_arr = _validate(y, treatment, score)
    _require_binary_outcome(y_arr, "uplift_auc_score")
    return _normalised_area(
        _uplift_curve(y_arr, t_arr, s_arr),
        _perfect_uplift_curve(y_arr, t_arr),
        "uplift_auc_score",
    )


def qini_auc_score(
    y: ArrayLike, treatment: ArrayLike, score: ArrayLike, negative_effect: bool = True
) -> float:
    """Normalised area under the Qini curve (scikit-uplift ``qini_auc_score``).

    Same normalisation as :func:`uplift_auc_score`, against :func:`perfect_qini_curve` with the
    given ``negative_effect``. Binary ``y`` only.
    """
    if not isinstance(negative_effect, bool):
        raise TypeError(f"negative_effect must be bool, got {type(negative_effect).__name__}")
    y_arr, t_arr, s_arr = _validate(y, treatment, score)
    _require_binary_outcome(y_arr, "qini_auc_score")
    return _normalised_area(
        _qini_curve(y_arr, t_arr, s_arr),
        _perfect_qini_curve(y_arr, t_arr, negative_effect),
        "qini_auc_score",
    )


def _top_count(k: float | int, total: int, what: str) -> int:
    """Translate k (fraction in (0, 1] or positive count) into a row count, sklift-style."""
    if isinstance(k, bool | np.bool_):
        raise TypeError("k must be a float fraction in (0, 1] or an int count, got bool")
    if isinstance(k, numbers.Integral):
        if not 1 <= k <= total:
            raise ValueError(f"int k={k} must be between 1 and the number of {what} ({total})")
        return int(k)
    if isinstance(k, numbers.Real):
        if not 0 < k <= 1:
            raise ValueError(f"float k={k} must be a fraction in (0, 1]")
        count = int(total * k)  # floor, as scikit-uplift 0.5.1 does
        if count == 0:
            raise ValueError(f"k={k} of {total} {what} selects no rows")
        return count
    raise TypeError(f"k must be a float fraction or an int count, got {type(k).__name__}")


def uplift_at_k(
    y: ArrayLike,
    treatment: ArrayLike,
    score: ArrayLike,
    k: float | int = 0.3,
    strategy: Literal["overall", "by_group"] = "overall",
) -> float:
    """Treated minus control mean outcome among the top-``k`` scored (scikit-uplift 0.5.1).

    Answers "if we target the top k, how much better do treated customers there do?".
    ``k``: float fraction in (0, 1] (rows = ``floor(k * size)``, as sklift) or int count.
    ``strategy='overall'``: top ``k`` of the pooled ranking, then split by group;
    ``'by_group'``: top ``k`` (fraction of each group's size, or count) within each group.
    Ties: sklift's order (among equal scores the later row is ranked first). Raises if the
    selection contains no treated or no control row (sklift would return NaN). Any real
    ``y`` works (difference in means); sklift's docs assume binary ``y``.
    """
    if strategy not in ("overall", "by_group"):
        raise ValueError(f"strategy must be 'overall' or 'by_group', got {strategy!r}")
    y_arr, t_arr, s_arr = _validate(y, treatment, score)
    order = np.argsort(s_arr, kind="mergesort")[::-1]
    y_s, t_s = y_arr[order], t_arr[order]
    if strategy == "overall":
        n_top = _top_count(k, y_s.size, "rows")
        y_top, t_top = y_s[:n_top], t_s[:n_top]
        if t_top.min() == t_top.max():
            missing = "control" if t_top[0] == 1 else "treated"
            raise ValueError(f"top {n_top} rows contain no {missing} rows; increase k")
        return float(y_top[t_top == 1].mean() - y_top[t_top == 0].mean())
    y_t, y_c = y_s[t_s == 1], y_s[t_s == 0]
    n_t = _top_count(k, y_t.size, "treated rows")
    n_c = _top_count(k, y_c.size, "control rows")
    return float(y_t[:n_t].mean() - y_c[:n_c].mean())


# -------------------------------------------------------------------- causalml family


def _causalml_cumulative(
    y: np.ndarray, t: np.ndarray, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-unit cumulative (n, N_T, N_C, R_T, R_C) for n = 1..N, stable descending sort."""
    order = np.argsort(-score, kind="stable")
    y_s, t_s = y[order], t[order]
    n = np.arange(1, y.size + 1, dtype=np.float64)
    n_t = np.cumsum(t_s)
    r_t = np.cumsum(y_s * t_s)
    r_c = np.cumsum(y_s * (1.0 - t_s))
    return n, n_t, n - n_t, r_t, r_c


def _fill_undefined(values: np.ndarray) -> np.ndarray:
    """Prepend curve(0) = 0 and linearly interpolate undefined points (causalml behaviour)."""
    full = np.r_[0.0, values]
    ok = np.isfinite(full)
    if not ok.all():
        idx = np.arange(full.size)
        full = np.interp(idx, idx[ok], full[ok])
    return full


def _normalise_by_end(values: np.ndarray, what: str) -> np.ndarray:
    end = values[-1]
    if end == 0:
        raise ValueError(f"{what}: curve(N) == 0, cannot normalise by |curve(N)|")
    return values / abs(end)


def _causalml_gain(y: np.ndarray, t: np.ndarray, score: np.ndarray, normalize: bool) -> Curve:
    n, n_t, n_c, r_t, r_c = _causalml_cumulative(y, t, score)
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = np.where((n_t > 0) & (n_c > 0), r_t / n_t - r_c / n_c, np.nan)
    x = np.arange(y.size + 1, dtype=np.float64)
    gain = _fill_undefined(lift) * x
    if normalize:
        gain = _normalise_by_end(gain, "causalml gain")
    return x, gain


def _causalml_qini(y: np.ndarray, t: np.ndarray, score: np.ndarray, normalize: bool) -> Curve:
    n, n_t, n_c, r_t, r_c = _causalml_cumulative(y, t, score)
    with np.errstate(divide="ignore", invalid="ignore"):
        qini = np.where(n_c > 0, r_t - r_c * n_t / n_c, np.nan)
    x = np.arange(y.size + 1, dtype=np.float64)
    values = _fill_undefined(qini)
    if normalize:
        values = _normalise_by_end(values, "causalml qini")
    return x, values


def causalml_gain_curve(
    y: ArrayLike, treatment: ArrayLike, score: ArrayLike, normalize: bool = False
) -> Curve:
    """Cumulative gain curve as causalml's ``get_cumgain``: one point per unit, n = 0..N.

    ``gain(n) = n * (R_T/N_T - R_C/N_C)``; points where a group is still empty are linearly
    interpolated (on the lift) from ``gain(0) = 0``. ``normalize`` divides by ``|gain(N)|``.
    """
    y_arr, t_arr, s_arr = _validate(y, treatment, score)
    return _causalml_gain(y_arr, t_arr, s_arr, normalize)


def causalml_qini_curve(
    y: ArrayLike, treatment: ArrayLike, score: ArrayLike, normalize: bool = False
) -> Curve:
    """Qini curve as causalml's ``get_qini``: one point per unit, n = 0..N.

    ``qini(n) = R_T - R_C * N_T/N_C``; points with no control yet are linearly interpolated
    from ``qini(0) = 0``. ``normalize`` divides by ``|qini(N)|``.
    """
    y_arr, t_arr, s_arr = _validate(y, treatment, score)
    return _causalml_qini(y_arr, t_arr, s_arr, normalize)


def causalml_auuc_score(
    y: ArrayLike, treatment: ArrayLike, score: ArrayLike, normalize: bool = True
) -> float:
    """causalml ``auuc_score``: mean of the (normalised) gain curve over n = 0..N.

    Not baseline-corrected: with ``normalize=True`` a random ranking scores about 0.5 when the
    overall effect is positive (about -0.5 when negative), and good models can exceed 1.
    """
    y_arr, t_arr, s_arr = _validate(y, treatment, score)
    _, gain = _causalml_gain(y_arr, t_arr, s_arr, normalize)
    return float(gain.sum() / gain.size)


def causalml_qini_score(
    y: ArrayLike, treatment: ArrayLike, score: ArrayLike, normalize: bool = True
) -> float:
    """causalml ``qini_score``: mean gap between the (normalised) Qini curve and the line
    from ``qini(0)`` to ``qini(N)``, over n = 0..N. About 0 for a random ranking."""
    y_arr, t_arr, s_arr = _validate(y, treatment, score)
    _, qini = _causalml_qini(y_arr, t_arr, s_arr, normalize)
    line = np.linspace(qini[0], qini[-1], qini.size)
    return float((qini.sum() - line.sum()) / qini.size)


# ------------------------------------------------------------------------ multiple arms


def per_arm(
    metric_fn: Callable[..., Any],
    y: ArrayLike,
    arm: ArrayLike,
    scores_by_arm: Mapping[Any, ArrayLike],
    control_label: Any,
    **metric_kwargs: Any,
) -> pd.DataFrame:
    """Evaluate ``metric_fn`` for each treated arm against the shared control.

    Each arm is compared on its own rows plus the control rows only (rows of other arms are
    not a valid comparison group for it). ``scores_by_arm`` maps arm label -> scores for *all*
    rows (same length as ``y``), e.g. each arm's predicted uplift over control; only the arms
    in it are evaluated. ``metric_fn`` is called as
    ``metric_fn(y_sub, treatment_sub, score_sub, **metric_kwargs)``.

    Returns a DataFrame indexed by arm with columns ``value`` (whatever ``metric_fn`` returned),
    ``n_treated`` and ``n_control``.
    """
    y_arr = np.asarray(y)
    arm_s = pd.Series(np.asarray(arm, dtype=object))
    if y_arr.ndim != 1 or arm_s.size != y_arr.size:
        raise ValueError(f"length mismatch: y has shape {y_arr.shape}, arm has {arm_s.size} rows")
    if arm_s.isna().any():
        raise ValueError(f"arm contains {int(arm_s.isna().sum())} missing label(s)")
    if not scores_by_arm:
        raise ValueError("scores_by_arm is empty: nothing to evaluate")
    is_control = (arm_s == control_label).to_numpy()
    if not is_control.any():
        raise ValueError(f"control_label {control_label!r} does not occur in arm")
    rows = []
    for label, scores in scores_by_arm.items():
        if label == control_label:
            raise ValueError(f"scores_by_arm contains the control label {control_label!r}")
        is_arm = (arm_s == label).to_numpy()
        if not is_arm.any():
            raise ValueError(f"arm {label!r} from scores_by_arm does not occur in arm")
        s_arr = np.asarray(scores)
        if s_arr.shape != y_arr.shape:
            raise ValueError(
                f"scores for arm {label!r} have shape {s_arr.shape}, expected {y_arr.shape} "
                "(one score per row of y, all arms)"
            )
        keep = is_arm | is_control
        value = metric_fn(y_arr[keep], is_arm[keep].astype(np.int8), s_arr[keep], **metric_kwargs)
        rows.append(
            {
                "arm": label,
                "value": value,
                "n_treated": int(is_arm.sum()),
                "n_control": int(is_control.sum()),
            }
        )
    return pd.DataFrame(rows).set_index("arm")
