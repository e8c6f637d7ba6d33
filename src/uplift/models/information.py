"""How well the data pin each cell's treatment effect down, relative to how much effects vary.

The choice between the centred and the non-centred form of partially pooled effects
(:class:`uplift.models.settings.Parameterization`) turns on one quantity: the spread of the true
cell effects (``tau``) against the standard error of one cell's effect (``se``). When
``tau^2 / se^2`` is large each cell's data dominate its prior and the centred form samples
best; when it is small the pooled scale can shrink towards zero under the data, a funnel the
centred form cannot enter. Events per cell alone miss the second case: a very large test whose
effects barely vary (``social_pressure_mailing``: ~325 events per treated cell, ratio 0.8)
diverges centred.

:func:`effect_information_ratio` estimates the ratio by the method of moments (DerSimonian and
Laird's idea, on the residual the structured model pools): the empirical effect of each treated
cell on the family's link scale (``link`` of the treated cell minus ``link`` of its segment's
control cell, plus the sampling variances ``link`` gives for each), less its arm's mean and, for crossed
segments, the mean of each segment column's level; the excess of their variance over the mean
sampling variance is ``tau^2``. It reads cells only, so its cost does not grow with customers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

#: added to each count before a log or logit, so empty cells have a finite link (Haldane)
CONTINUITY = 0.5


def logit_link(cells: pd.DataFrame, events: str = "conversions") -> tuple[pd.Series, pd.Series]:
    """Empirical logit of ``events`` out of ``n`` per cell, and its sampling variance."""
    k = cells[events].astype(float) + CONTINUITY
    rest = cells["n"].astype(float) - cells[events].astype(float) + CONTINUITY
    return np.log(k / rest), 1.0 / k + 1.0 / rest


def log_rate_link(
    cells: pd.DataFrame, total: str = "orders_sum", squares: str = "orders_sq_sum"
) -> tuple[pd.Series, pd.Series]:
    """Log of the mean of ``total`` per customer in each cell, and its sampling variance
    (delta method, from the cell's own variance: overdispersion included)."""
    n = cells["n"].astype(float)
    s = cells[total].astype(float)
    mean = (s + CONTINUITY) / n
    var = ((cells[squares].astype(float) - s**2 / n) / np.maximum(n - 1.0, 1.0)).clip(lower=mean)
    return np.log(mean), var / (n * mean**2)


def effect_information_ratio(
    control: pd.DataFrame,
    treated: pd.DataFrame,
    link: Callable[[pd.DataFrame], tuple[pd.Series, pd.Series]],
    dims: Sequence[str] = (),
) -> float | None:
    """``tau^2 / se^2`` of the treated cells' effects (see the module docstring).

    ``control``: one cell per segment; ``treated``: cells with ``arm`` and ``segment`` (and the
    ``dims`` columns of crossed segments, whose level means are removed first). ``se^2`` is the
    mean sampling variance of a cell's effect. None when it cannot be estimated: fewer than three
    treated cells with a control cell, or no residual degrees of freedom left.
    """
    effects = _arm_centred_effects(control, treated, link)
    if effects is None:
        return None
    t, resid, var = effects
    resid, dof = _column_residual(t, resid, dims)
    return _excess_ratio(resid.to_numpy(), var, dof)


def _arm_centred_effects(
    control: pd.DataFrame,
    treated: pd.DataFrame,
    link: Callable[[pd.DataFrame], tuple[pd.Series, pd.Series]],
) -> tuple[pd.DataFrame, pd.Series, np.ndarray] | None:
    """The treated cells that have a control cell, each one's empirical effect on ``link``'s
    scale less its arm's mean, and the effect's sampling variance; None with fewer than three."""
    ctrl = control.drop_duplicates("segment").set_index("segment")
    t = treated[treated["segment"].isin(ctrl.index)]
    if len(t) < 3:
        return None
    c = ctrl.loc[t["segment"]]
    (lt, vt), (lc, vc) = link(t), link(c)
    effect = pd.Series(lt.to_numpy() - lc.to_numpy(), index=t.index)
    return t, effect - effect.groupby(t["arm"]).transform("mean"), vt.to_numpy() + vc.to_numpy()


def _column_residual(
    t: pd.DataFrame, resid: pd.Series, dims: Sequence[str]
) -> tuple[pd.Series, int]:
    """``resid`` less the mean of each ``dims`` column's level (per arm), one column after the
    other, and its residual degrees of freedom (cells less the arm and level means removed)."""
    arm = t["arm"]
    used = arm.nunique()
    for d in dims:
        if d in t.columns:
            resid = resid - resid.groupby([arm, t[d]]).transform("mean")
            used += arm.nunique() * (t[d].nunique() - 1)
    return resid, len(t) - used


def _excess_ratio(resid: np.ndarray, var: np.ndarray, dof: int) -> float | None:
    """Method of moments: ``tau^2 = max(sum(resid^2) / dof - se^2, 0)`` over ``se^2`` (the mean
    sampling variance ``var``); None with fewer than two residual degrees of freedom."""
    if dof < 2:
        return None
    se2 = float(np.mean(var))
    tau2 = max(float(np.sum(resid**2)) / dof - se2, 0.0)
    return tau2 / se2


def baseline_information_ratio(
    control: pd.DataFrame,
    link: Callable[[pd.DataFrame], tuple[pd.Series, pd.Series]],
    dims: Sequence[str],
) -> float | None:
    """``tau^2 / se^2`` of the control cells' baselines around what their segment columns
    predict (the residual a crossed model pools; its main effects are fixed-scale terms).

    The same estimator as :func:`effect_information_ratio`, on the control cells' link less
    the mean of each column's level. None without at least two columns in ``control`` or two
    residual degrees of freedom.
    """
    ctrl = control.drop_duplicates("segment")
    cols = [d for d in dims if d in ctrl.columns]
    if len(cols) < 2:
        return None
    lc, vc = link(ctrl)
    resid = pd.Series(lc.to_numpy() - float(lc.mean()), index=ctrl.index)
    used = 1
    for d in cols:
        resid = resid - resid.groupby(ctrl[d]).transform("mean")
        used += ctrl[d].nunique() - 1
    return _excess_ratio(resid.to_numpy(), vc.to_numpy(), len(ctrl) - used)


def main_effect_information_ratios(
    control: pd.DataFrame,
    treated: pd.DataFrame,
    link: Callable[[pd.DataFrame], tuple[pd.Series, pd.Series]],
    dims: Sequence[str],
) -> dict[str, float | None]:
    """``tau_d^2 / se_d^2`` of each segment column's main effect on the treated cells' effects.

    Per arm, each cell's empirical effect less the arm's mean; per level of column ``d``, the
    mean of its cells; ``se_d^2`` the variance of such a mean that is not the column's effect:
    each cell's sampling error *and* the residual around the columns (the within mean square
    after every column's level means are removed, floored at the mean sampling variance) over
    the level's cells; ``tau_d^2`` the excess of the level means' variance over it
    (:func:`_excess_ratio`, one degree of freedom per level less one per arm), so ratio + 1 is
    the column's F statistic. A level pools many cells, so a column whose levels differ is
    pinned down far more sharply than any one cell: its main effects sample best centred while
    the residual around them stays non-centred (:class:`uplift.models.settings.Parameterization`).
    A column whose levels barely differ gets a small ratio, and so does one whose level means
    differ only by the residual they average (bench/decisions_unstructured.py: segments whose
    columns explain nothing; counting only sampling error there centred a column of 4 levels
    that has no effect, and its scale's funnel gave 5-21 divergences in every form). None for
    a column absent from the cells, or without the degrees of freedom.
    """
    effects = _arm_centred_effects(control, treated, link)
    if effects is None:
        return {d: None for d in dims}
    t, resid, var = effects
    # what a level's mean averages besides its column's effect: each cell's sampling error and
    # the residual the columns leave (the within mean square of a crossed analysis of variance,
    # floored at the sampling variance), so a column is not credited with the residual's spread
    full, dof_within = _column_residual(t, resid, dims)
    if dof_within < 2:
        return {d: None for d in dims}
    within = max(float(np.sum(full.to_numpy() ** 2)) / dof_within, float(np.mean(var)))
    arm = t["arm"]
    out: dict[str, float | None] = {}
    for d in dims:
        if d not in t.columns:
            out[d] = None
            continue
        g = [arm, t[d]]
        level_mean = resid.groupby(g).mean()
        level_var = within / resid.groupby(g).size()
        dof = len(level_mean) - arm.nunique()
        out[d] = _excess_ratio(level_mean.to_numpy(), level_var.to_numpy(), dof)
    return out
