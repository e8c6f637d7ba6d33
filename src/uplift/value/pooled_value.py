"""Observed value per conversion, pooled along the segment columns (empirical Bayes).

A segment's mean revenue per converter is noisy: revenue is heavy-tailed (a coefficient of
variation near 1 is common), so a segment with 100 converters has its mean within about +/-10%,
and the optimizer picks exactly the segments whose value came out high (the optimizer's curse,
on the value side). Segments crossed from several columns (tier x region x channel) share
levels, and a segment's mean is predicted well by its levels; a single column still shares one
overall mean. So each segment's log mean is shrunk towards that prediction by how noisy it is:

    y_g = log(mean revenue per converter in g),  v_g = cv^2 / converters_g   (delta method)
    y_g = x_g' beta + u_g + e_g,  u_g ~ N(0, tau^2),  e_g ~ N(0, v_g)
    value_g = margin x exp( x_g' beta + tau^2 / (tau^2 + v_g) (y_g - x_g' beta) )

``x_g``: an intercept and the main effects of every segment column (treatment coding);
``tau^2``: the spread the columns do not explain, estimated from the data by the method of
moments (DerSimonian & Laird; Raudenbush 2009 for the meta-regression form), so a column that
matters keeps its segments apart and segments the columns do not explain keep their own means
when the data say so (``tau^2`` large -> no shrinkage). ``cv^2`` is pooled over segments (each
segment's own variance is as noisy as its mean). A segment without converters gets the
prediction of its columns.

Why not a library: statsmodels' ``combine_effects`` estimates ``tau^2`` for an intercept only,
not with moderators (and is not a dependency); a PyMC model would sample once more per run for
a closed-form answer. The tests check the intercept-only case against DerSimonian-Laird's
formula.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: fewer segments with converters than this: the raw means are kept (nothing to pool with)
MIN_SEGMENTS = 3


@dataclass(frozen=True)
class PooledMeans:
    """Per-segment pooled log means, what they were pooled towards and how."""

    log_mean: pd.Series  # pooled log mean revenue per converter
    prediction: pd.Series  # x_g' beta: what the segment's columns predict
    shrinkage: pd.Series  # v_g / (tau^2 + v_g): 0 = own mean, 1 = the prediction
    tau2: float
    cv2: float
    columns: tuple[str, ...]


def design(levels: pd.DataFrame) -> np.ndarray:
    """Intercept + treatment-coded main effects of every column of ``levels``."""
    parts = [np.ones((len(levels), 1))]
    for c in levels.columns:
        codes = pd.Categorical(levels[c].astype(str))
        if len(codes.categories) > 1:
            parts.append(np.eye(len(codes.categories))[codes.codes][:, 1:])
    return np.hstack(parts)


def moment_tau2(y: np.ndarray, v: np.ndarray, X: np.ndarray) -> float:
    """Method-of-moments between-segment variance of a random-effects meta-regression.

    ``Q = y' P y`` with ``P = W - W X (X'WX)^-1 X'W``, ``W = diag(1/v)``; ``E[Q] = (k - p) +
    tau^2 tr(P)``. With an intercept only this is the DerSimonian-Laird estimator.
    """
    w = 1.0 / v
    WX = X * w[:, None]
    P = np.diag(w) - WX @ np.linalg.pinv(X.T @ WX) @ WX.T
    k, p = X.shape[0], np.linalg.matrix_rank(X)
    trace = float(np.trace(P))
    if trace <= 0:
        return 0.0
    return max(0.0, (float(y @ P @ y) - (k - p)) / trace)


def pool_log_means(
    revenue_sum: pd.Series,
    revenue_sq_sum: pd.Series,
    converters: pd.Series,
    levels: pd.DataFrame | None = None,
) -> PooledMeans | None:
    """Pool each segment's log mean revenue per converter (see the module docstring).

    All series are indexed by segment; ``levels`` (segments x columns) gives each segment's level
    of every segment column (None or no columns: one overall mean). None when there is too
    little to pool (fewer than :data:`MIN_SEGMENTS` segments with two or more converters, or no
    spread to measure).
    """
    segs = revenue_sum.index
    n = converters.reindex(segs).astype(float).to_numpy()
    s = revenue_sum.reindex(segs).astype(float).to_numpy()
    ss = revenue_sq_sum.reindex(segs).astype(float).to_numpy()
    ok = (n >= 2) & (s > 0)
    if ok.sum() < MIN_SEGMENTS:
        return None
    mean = np.where(ok, s / np.where(ok, n, 1.0), np.nan)
    # pooled squared coefficient of variation of revenue among converters
    within = np.maximum(ss[ok] - s[ok] ** 2 / n[ok], 0.0)  # (n - 1) x sample variance
    cv2 = float(within.sum() / ((n[ok] - 1) * mean[ok] ** 2).sum())
    if not np.isfinite(cv2) or cv2 <= 0:
        return None
    cols = tuple(levels.columns) if levels is not None else ()
    lv = levels.reindex(segs) if levels is not None else pd.DataFrame(index=segs)
    X_all = design(lv)
    X = X_all[ok]
    # a level seen only in segments without converters has no coefficient: keep its column out
    keep = np.abs(X).sum(axis=0) > 0
    X, X_all = X[:, keep], X_all[:, keep]
    if X.shape[0] - np.linalg.matrix_rank(X) < 2:  # too few segments for the columns
        X, X_all = X[:, :1], X_all[:, :1]
    y = np.log(mean[ok])
    v = cv2 / n[ok]
    tau2 = moment_tau2(y, v, X)
    w = 1.0 / (v + tau2)
    beta = np.linalg.lstsq(X * np.sqrt(w)[:, None], y * np.sqrt(w), rcond=None)[0]
    pred = X_all @ beta
    v_all = cv2 / np.where(ok, n, 1.0)
    shrink = np.where(ok, v_all / (v_all + tau2), 1.0) if tau2 > 0 else np.ones(len(segs))
    y_all = np.where(ok, np.log(np.where(ok, mean, 1.0)), pred)
    pooled = pred + (1.0 - shrink) * (y_all - pred)
    return PooledMeans(
        log_mean=pd.Series(pooled, index=segs),
        prediction=pd.Series(pred, index=segs),
        shrinkage=pd.Series(shrink, index=segs),
        tau2=float(tau2),
        cv2=cv2,
        columns=cols,
    )


def segment_levels(cells: pd.DataFrame, dims: Sequence[str]) -> pd.DataFrame | None:
    """Each segment's level of every column in ``dims`` that is in ``cells`` (None: none)."""
    cols = [d for d in dims if d in cells.columns]
    if not cols:
        return None
    return cells.drop_duplicates("segment").set_index("segment")[cols].sort_index()
