"""Sample size, power and minimum detectable effect per segment x tactic.

Why this module exists: an uplift experiment is only useful if every (segment, arm) cell is large
enough to tell the uplift we care about from zero. These functions size the cells before launch so
the Bayesian models downstream get data that can move their posteriors.

Statistics (all normal approximations, fine at the cell sizes marketing tests run at):

* Binary outcomes: two-proportion z-test with the pooled variance under H0 and the unpooled
  variance under H1 (Fleiss, *Statistical Methods for Rates and Proportions*, eq. 4.14, without the
  continuity correction). With ``n_t = r * n_c``::

      n_c = [z_a sqrt(pbar qbar (1 + 1/r)) + z_b sqrt(p0 q0 + p1 q1 / r)]^2 / delta^2,
      pbar = (p0 + r p1) / (1 + r)

* Continuous outcomes (revenue, orders): z-test with a common standard deviation ``sd``::

      n_c = (z_a + z_b)^2 sd^2 (1 + 1/r) / delta^2

* CUPED (regression on a pre-period covariate with correlation ``rho``) multiplies every variance
  by ``1 - rho^2``, hence the required size too.
* Several treatment arms sharing one control: by default the control is sized with the
  square-root rule ``n_c = sqrt(k) n_t`` (Dunnett), which minimises the total for k comparisons
  with equal variances; a fixed ratio can be given instead. ``correction="bonferroni"`` splits
  alpha over the k comparisons.

``assurance`` is the Bayesian counterpart of power: the probability that the test ends with a
decisive posterior, averaged over a prior on the true effect instead of fixing it at the MDE.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

from uplift.tactics import ArmMap, Tactic

Metric = Literal["binary", "continuous"]
#: "none" or "bonferroni" (checked); str so that the configuration's StrEnum passes as it is
Correction = str
Allocation = float | Literal["optimal"]

_EPS = 1e-9


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleSize:
    """A sized design: customers per arm and what they buy.

    ``n_treatment`` is per treatment arm; ``total = n_control + n_treatments * n_treatment``.
    ``power`` is the power achieved at the rounded sizes (>= ``target_power``); ``half_width`` is
    the expected half-width of the two-sided ``1 - alpha`` interval for the absolute uplift.
    """

    n_control: int
    n_treatment: int
    n_treatments: int
    total: int
    allocation: float
    effect: float
    alpha: float
    power: float
    target_power: float
    half_width: float
    exact_n_control: float


@dataclass(frozen=True)
class OutcomeMoments:
    """Mean, sd and CUPED correlation of an outcome, estimated from pre-period data."""

    mean: float
    sd: float
    rho: float
    n: int


@dataclass(frozen=True)
class AssuranceResult:
    """Monte Carlo assurance: P(decisive posterior), split by direction, with its MC error.

    ``p_wrong`` is the probability of a decisive posterior whose sign disagrees with the true
    effect (a type S error). ``float(result)`` gives ``assurance``.
    """

    assurance: float
    p_positive: float
    p_negative: float
    p_wrong: float
    mc_se: float
    n_sims: int

    def __float__(self) -> float:
        return self.assurance


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _check_prob(name: str, value: float) -> float:
    value = float(value)
    if not (0.0 < value < 1.0) or not math.isfinite(value):
        raise ValueError(f"{name}: must be strictly between 0 and 1, got {value!r}")
    return value


def _check_rho(rho: float) -> float:
    rho = float(rho)
    if not math.isfinite(rho) or abs(rho) >= 1.0:
        raise ValueError(
            f"rho: the CUPED correlation must satisfy |rho| < 1, got {rho!r} "
            "(rho = 1 would mean the pre-period predicts the outcome perfectly)"
        )
    return rho


def _alpha_per_comparison(alpha: float, n_treatments: int, correction: Correction) -> float:
    alpha = _check_prob("alpha", alpha)
    if int(n_treatments) != n_treatments or n_treatments < 1:
        raise ValueError(f"n_treatments: must be a positive integer, got {n_treatments!r}")
    if correction == "none":
        return alpha
    if correction == "bonferroni":
        return alpha / n_treatments
    raise ValueError(f"correction: use 'none' or 'bonferroni', got {correction!r}")


def _resolve_allocation(allocation: Allocation, n_treatments: int) -> float:
    """Treatment-to-control ratio per arm; 'optimal' is the square-root rule n_c = sqrt(k) n_t."""
    if isinstance(allocation, str):
        if allocation != "optimal":
            raise ValueError(
                f"allocation: use 'optimal' or a positive ratio n_treatment/n_control, got {allocation!r}"
            )
        return 1.0 / math.sqrt(n_treatments)
    ratio = float(allocation)
    if not math.isfinite(ratio) or ratio <= 0:
        raise ValueError(
            f"allocation: the ratio n_treatment/n_control must be > 0, got {allocation!r}"
        )
    return ratio


@dataclass(frozen=True)
class _Outcome:
    """Resolved outcome: control/treatment unit variances and the absolute effect."""

    metric: Metric
    p0: float  # control mean (rate for binary)
    p1: float  # treatment mean
    var0: float  # unit variance, control
    var1: float  # unit variance, treatment
    shrink: float  # CUPED factor 1 - rho^2

    @property
    def effect(self) -> float:
        return self.p1 - self.p0

    def null_var(self, n_c: float, n_t: float) -> float:
        """Variance of the difference under H0 (pooled rate for binary)."""
        if self.metric == "binary":
            pbar = (n_c * self.p0 + n_t * self.p1) / (n_c + n_t)
            return pbar * (1 - pbar) * (1 / n_c + 1 / n_t) * self.shrink
        return self.var0 * (1 / n_c + 1 / n_t) * self.shrink

    def alt_var(self, n_c: float, n_t: float) -> float:
        """Variance of the difference under H1."""
        return (self.var0 / n_c + self.var1 / n_t) * self.shrink


def _outcome(
    baseline: float,
    effect: float,
    *,
    metric: Metric,
    sd: float | None,
    relative: bool,
    rho: float,
) -> _Outcome:
    shrink = 1.0 - _check_rho(rho) ** 2
    baseline = float(baseline)
    effect = float(effect)
    if not math.isfinite(effect):
        raise ValueError(f"mde: must be finite, got {effect!r}")
    if metric == "binary":
        p0 = _check_prob("baseline (control conversion rate)", baseline)
        delta = effect * p0 if relative else effect
        p1 = p0 + delta
        if not (0.0 < p1 < 1.0):
            raise ValueError(
                f"mde: baseline {p0:g} + effect {delta:g} = {p1:g} is not a rate in (0, 1); "
                "for a binary outcome give the absolute difference in conversion rate "
                "(or relative=True for a fraction of the baseline)"
            )
        return _Outcome("binary", p0, p1, p0 * (1 - p0), p1 * (1 - p1), shrink)
    if metric == "continuous":
        if sd is None or not math.isfinite(float(sd)) or float(sd) <= 0:
            raise ValueError(
                f"sd: a continuous outcome needs its standard deviation > 0, got {sd!r} "
                "(estimate it from pre-period data with estimate_outcome)"
            )
        if relative and baseline == 0:
            raise ValueError("mde: relative=True needs a non-zero baseline mean")
        delta = effect * baseline if relative else effect
        var = float(sd) ** 2
        return _Outcome("continuous", baseline, baseline + delta, var, var, shrink)
    raise ValueError(f"metric: use 'binary' or 'continuous', got {metric!r}")


def _z(alpha: float, two_sided: bool) -> float:
    return float(stats.norm.ppf(1 - alpha / 2 if two_sided else 1 - alpha))


def _power_at(out: _Outcome, n_c: float, n_t: float, alpha: float, two_sided: bool) -> float:
    """Power of the z-test; one-sided tests look in the direction of the effect."""
    d = abs(out.effect)
    if d == 0:
        return alpha
    s0 = math.sqrt(out.null_var(n_c, n_t))
    s1 = math.sqrt(out.alt_var(n_c, n_t))
    z = _z(alpha, two_sided)
    p = stats.norm.cdf((d - z * s0) / s1)
    if two_sided:
        p += stats.norm.cdf((-d - z * s0) / s1)
    return float(p)


def _ceil(x: float) -> int:
    return int(math.ceil(x - _EPS))


# --------------------------------------------------------------------------------------------
# public: size, power, MDE
# --------------------------------------------------------------------------------------------


def required_sample_size(
    baseline: float,
    mde: float,
    *,
    metric: Metric = "binary",
    sd: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    allocation: Allocation = "optimal",
    n_treatments: int = 1,
    rho: float = 0.0,
    two_sided: bool = True,
    correction: Correction = "none",
) -> SampleSize:
    """Customers per arm needed to detect ``mde`` with the given power.

    ``baseline`` is the control rate (binary) or mean (continuous). ``mde`` is the absolute
    difference in rate/mean, or a fraction of the baseline with ``relative=True``. ``allocation``
    is the treatment-to-control ratio per treatment arm, or ``"optimal"`` (square-root rule). ``rho``
    is the correlation with a pre-period covariate used for CUPED (size scales by ``1 - rho^2``).
    Sizes are rounded up per arm so the achieved power is at least the target.
    """
    a = _alpha_per_comparison(alpha, n_treatments, correction)
    target = _check_prob("power", power)
    out = _outcome(baseline, mde, metric=metric, sd=sd, relative=relative, rho=rho)
    if out.effect == 0:
        raise ValueError("mde: the effect to detect must be non-zero")
    r = _resolve_allocation(allocation, n_treatments)
    z_a = _z(a, two_sided)
    z_b = float(stats.norm.ppf(target))
    if z_a + z_b <= 0:
        raise ValueError(f"power: {target} must exceed the false-positive rate of the test")
    if out.metric == "binary":
        pbar = (out.p0 + r * out.p1) / (1 + r)
        root = z_a * math.sqrt(pbar * (1 - pbar) * (1 + 1 / r)) + z_b * math.sqrt(
            out.var0 + out.var1 / r
        )
        exact = root**2 / out.effect**2 * out.shrink
    else:
        exact = (z_a + z_b) ** 2 * out.var0 * (1 + 1 / r) / out.effect**2 * out.shrink
    n_c = max(_ceil(exact), 2)
    n_t = max(_ceil(exact * r), 2)
    k = int(n_treatments)
    return SampleSize(
        n_control=n_c,
        n_treatment=n_t,
        n_treatments=k,
        total=n_c + k * n_t,
        allocation=r,
        effect=out.effect,
        alpha=a,
        power=_power_at(out, n_c, n_t, a, two_sided),
        target_power=target,
        half_width=float(stats.norm.ppf(1 - a / 2)) * math.sqrt(out.alt_var(n_c, n_t)),
        exact_n_control=exact,
    )


def power(
    n_control: float,
    n_treatment: float,
    baseline: float,
    mde: float,
    *,
    metric: Metric = "binary",
    sd: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    rho: float = 0.0,
    two_sided: bool = True,
    n_treatments: int = 1,
    correction: Correction = "none",
) -> float:
    """Probability that a test with these arm sizes rejects H0 when the true effect is ``mde``.

    Use it to check what an experiment that is already limited by customers available can do.
    """
    a = _alpha_per_comparison(alpha, n_treatments, correction)
    _check_sizes(n_control, n_treatment)
    out = _outcome(baseline, mde, metric=metric, sd=sd, relative=relative, rho=rho)
    return _power_at(out, float(n_control), float(n_treatment), a, two_sided)


def _check_sizes(n_control: float, n_treatment: float) -> None:
    for name, n in (("n_control", n_control), ("n_treatment", n_treatment)):
        if not math.isfinite(float(n)) or float(n) < 2:
            raise ValueError(f"{name}: need at least 2 customers per arm, got {n!r}")


def minimum_detectable_effect(
    n_control: float,
    n_treatment: float,
    baseline: float,
    *,
    metric: Metric = "binary",
    sd: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    rho: float = 0.0,
    two_sided: bool = True,
    n_treatments: int = 1,
    correction: Correction = "none",
) -> float:
    """Smallest uplift (an increase) detectable with the given power at these arm sizes.

    The exact inverse of :func:`power` (solved numerically). Returned as an absolute difference,
    or as a fraction of the baseline with ``relative=True``.
    """
    a = _alpha_per_comparison(alpha, n_treatments, correction)
    target = _check_prob("power", power)
    _check_sizes(n_control, n_treatment)
    n_c, n_t = float(n_control), float(n_treatment)

    # abs effect -> power; uses the same outcome resolution as power()
    def gap(d: float) -> float:
        out = _outcome(baseline, d, metric=metric, sd=sd, relative=False, rho=rho)
        return _power_at(out, n_c, n_t, a, two_sided) - target

    if metric == "binary":
        p0 = _check_prob("baseline (control conversion rate)", baseline)
        hi = (1 - p0) * (1 - 1e-9)
        if gap(hi) < 0:
            raise ValueError(
                f"minimum_detectable_effect: even a rise from {p0:g} to 1 is not detectable with "
                f"power {target} at n_control={n_control}, n_treatment={n_treatment}"
            )
    else:
        _outcome(baseline, 0.0, metric=metric, sd=sd, relative=False, rho=rho)  # validates sd
        assert sd is not None  # _outcome raised for a continuous outcome without sd
        z_sum = _z(a, two_sided) + abs(float(stats.norm.ppf(target))) + 10
        hi = z_sum * float(sd) * math.sqrt(1 / n_c + 1 / n_t)
    lo = hi * 1e-9
    if gap(lo) >= 0:
        return 0.0
    d = float(optimize.brentq(gap, lo, hi, xtol=1e-12, rtol=1e-10))
    if relative:
        if float(baseline) == 0:
            raise ValueError("minimum_detectable_effect: relative=True needs a non-zero baseline")
        return d / float(baseline)
    return d


# --------------------------------------------------------------------------------------------
# pre-period estimation
# --------------------------------------------------------------------------------------------


def estimate_outcome(
    values: Sequence[float] | np.ndarray | pd.Series,
    covariate: Sequence[float] | np.ndarray | pd.Series | None = None,
) -> OutcomeMoments:
    """Mean, sd and CUPED rho of an outcome from pre-period data.

    ``values`` is the metric measured over a window as long as the planned test; ``covariate`` the
    same metric over an earlier window (what CUPED will regress on). ``rho`` is their correlation.
    """
    y = np.asarray(values, dtype=float)
    if y.ndim != 1 or y.size < 2:
        raise ValueError("estimate_outcome: need a 1-d array of at least 2 pre-period values")
    if not np.all(np.isfinite(y)):
        raise ValueError("estimate_outcome: values contain NaN or inf; drop or impute them first")
    rho = 0.0
    if covariate is not None:
        x = np.asarray(covariate, dtype=float)
        if x.shape != y.shape:
            raise ValueError(
                f"estimate_outcome: covariate has shape {x.shape}, values have {y.shape}"
            )
        if not np.all(np.isfinite(x)):
            raise ValueError("estimate_outcome: covariate contains NaN or inf")
        if np.std(x) > 0 and np.std(y) > 0:
            rho = float(np.corrcoef(x, y)[0, 1])
    return OutcomeMoments(mean=float(y.mean()), sd=float(y.std(ddof=1)), rho=rho, n=int(y.size))


def segment_moments(
    frame: pd.DataFrame,
    value_col: str,
    *,
    segment_col: str = "segment",
    covariate_col: str | None = None,
) -> pd.DataFrame:
    """Per-segment ``baseline, sd, rho, customers`` from pre-period customer rows.

    The result feeds :func:`design_table` directly (``customers`` = rows seen in the pre-period;
    overwrite it if the eligible population differs).
    """
    missing = [c for c in (value_col, segment_col, covariate_col) if c and c not in frame.columns]
    if missing:
        raise ValueError(f"segment_moments: columns {missing} not in frame ({list(frame.columns)})")
    rows = []
    for seg, g in frame.groupby(segment_col, sort=True, observed=True):
        m = estimate_outcome(g[value_col], None if covariate_col is None else g[covariate_col])
        rows.append(
            {segment_col: seg, "baseline": m.mean, "sd": m.sd, "rho": m.rho, "customers": m.n}
        )
    return pd.DataFrame(rows, columns=[segment_col, "baseline", "sd", "rho", "customers"])


# --------------------------------------------------------------------------------------------
# assurance
# --------------------------------------------------------------------------------------------


def assurance(
    n_control: float,
    n_treatment: float,
    baseline: float,
    *,
    prior_mean: float,
    prior_sd: float,
    metric: Metric = "binary",
    sd: float | None = None,
    relative: bool = False,
    rho: float = 0.0,
    threshold: float = 0.95,
    analysis_prior_sd: float | None = None,
    n_sims: int = 20_000,
    seed: int = 0,
) -> AssuranceResult:
    """Probability the test ends decisive: P(uplift > 0 | data) > threshold or < 1 - threshold.

    Why: power fixes the true effect at the MDE; assurance averages over what we believe about it
    (``N(prior_mean, prior_sd^2)``, absolute or relative to the baseline), so a design is judged by
    how often it will actually settle the question. Seeded Monte Carlo: draw the true effect, draw
    the estimate from its normal sampling distribution, form the normal posterior (flat analysis
    prior by default, GrowthBook-style; or ``N(0, analysis_prior_sd^2)``, Eppo-style) and count
    decisive outcomes. For a binary outcome the treated rate is clipped into (0, 1).
    """
    _check_sizes(n_control, n_treatment)
    threshold = _check_prob("threshold", threshold)
    if threshold <= 0.5:
        raise ValueError(f"threshold: a decisive posterior needs threshold > 0.5, got {threshold}")
    if not math.isfinite(float(prior_sd)) or float(prior_sd) < 0:
        raise ValueError(f"prior_sd: must be >= 0, got {prior_sd!r}")
    if int(n_sims) < 100:
        raise ValueError(f"n_sims: use at least 100 simulations, got {n_sims!r}")
    out = _outcome(baseline, 0.0, metric=metric, sd=sd, relative=False, rho=rho)
    scale = float(baseline) if relative else 1.0
    n_c, n_t = float(n_control), float(n_treatment)
    rng = np.random.default_rng(seed)
    n = int(n_sims)
    delta = (float(prior_mean) + float(prior_sd) * rng.standard_normal(n)) * scale
    if out.metric == "binary":
        p1 = np.clip(out.p0 + delta, 1e-6, 1 - 1e-6)
        delta = p1 - out.p0
        var1 = p1 * (1 - p1)
    else:
        var1 = np.full(n, out.var1)
    se2 = (out.var0 / n_c + var1 / n_t) * out.shrink
    est = delta + np.sqrt(se2) * rng.standard_normal(n)
    if analysis_prior_sd is None:
        post_mean, post_var = est, se2
    else:
        tau2 = (float(analysis_prior_sd) * scale) ** 2
        if not tau2 > 0:
            raise ValueError(f"analysis_prior_sd: must be > 0, got {analysis_prior_sd!r}")
        post_var = 1.0 / (1.0 / tau2 + 1.0 / se2)
        post_mean = post_var * est / se2
    p_up = stats.norm.cdf(post_mean / np.sqrt(post_var))
    pos = p_up > threshold
    neg = p_up < 1 - threshold
    decisive = pos | neg
    wrong = (pos & (delta <= 0)) | (neg & (delta >= 0))
    a = float(decisive.mean())
    return AssuranceResult(
        assurance=a,
        p_positive=float(pos.mean()),
        p_negative=float(neg.mean()),
        p_wrong=float(wrong.mean()),
        mc_se=math.sqrt(a * (1 - a) / n),
        n_sims=n,
    )


# --------------------------------------------------------------------------------------------
# design table
# --------------------------------------------------------------------------------------------


def _arms(arms: ArmMap | Sequence[Tactic | str]) -> tuple[str, list[tuple[str, Tactic]]]:
    """(control name, [(treated arm name, tactic)]) from an ArmMap or a list of tactics."""
    if isinstance(arms, ArmMap):
        return arms.control.name, [(a.name, a.tactic) for a in arms.treated]
    if isinstance(arms, str):
        arms = [arms]
    tactics = [Tactic.parse(str(t), where="design_table.arms") for t in arms]
    treated: list[tuple[str, Tactic]] = [
        (t.value, t) for t in dict.fromkeys(tactics) if t is not Tactic.CONTROL
    ]
    if not treated:
        raise ValueError("design_table.arms: need at least one treated tactic besides control")
    return Tactic.CONTROL.value, treated


def _mde_for(mde: float | Mapping[str, float], name: str, tactic: Tactic) -> float:
    if isinstance(mde, Mapping):
        for key in (name, tactic.value, tactic):
            if key in mde:
                return float(mde[key])
        raise ValueError(
            f"design_table.mde: no effect given for arm {name!r} (tactic {tactic.value!r}); "
            f"keys given: {list(mde)}"
        )
    return float(mde)


def design_table(
    segments: pd.DataFrame,
    arms: ArmMap | Sequence[Tactic | str],
    mde: float | Mapping[str, float],
    *,
    metric: Metric = "binary",
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    allocation: Allocation = "optimal",
    correction: Correction = "none",
    two_sided: bool = True,
    rho: float | None = None,
    segment_col: str = "segment",
    baseline_col: str = "baseline",
    sd_col: str = "sd",
    customers_col: str = "customers",
    rho_col: str = "rho",
    assurance_prior: tuple[float, float] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Required customers per (segment, arm), control included, and whether each segment has them.

    ``segments`` has one row per segment with the baseline rate/mean, ``sd`` (continuous only),
    the number of customers available and optionally a CUPED ``rho`` (or pass one ``rho`` for
    all). ``mde`` is one effect or a mapping by arm name or tactic value. Each treated arm is sized
    against the shared control; the control takes the largest size any comparison needs.

    Columns: segment, arm, tactic, role, baseline, mde (absolute), required, share (of the
    segment's required total, usable as assignment weights), half_width (expected interval
    half-width for that arm's uplift), power (at the required sizes), segment_required, customers,
    enough (False when ``customers`` is missing), mde_at_available (MDE if the available customers are split in the same shares), and
    ``assurance`` when ``assurance_prior=(mean, sd)`` is given.
    """
    needed = [segment_col, baseline_col] + ([sd_col] if metric == "continuous" else [])
    missing = [c for c in needed if c not in segments.columns]
    if missing:
        raise ValueError(
            f"design_table.segments: missing columns {missing}; have {list(segments.columns)}"
        )
    if segments[segment_col].duplicated().any():
        dups = segments.loc[segments[segment_col].duplicated(), segment_col].tolist()
        raise ValueError(f"design_table.segments: segments listed twice: {dups}")
    control, treated = _arms(arms)
    k = len(treated)
    a = _alpha_per_comparison(alpha, k, correction)
    z_hw = float(stats.norm.ppf(1 - a / 2))
    rows: list[dict[str, object]] = []
    for _, seg in segments.iterrows():
        name = seg[segment_col]
        base = float(seg[baseline_col])
        sd = float(seg[sd_col]) if metric == "continuous" else None
        r_seg = float(rho) if rho is not None else float(seg.get(rho_col, 0.0) or 0.0)
        if math.isnan(r_seg):
            r_seg = 0.0
        avail = seg.get(customers_col, np.nan)
        avail = float(avail) if avail is not None and pd.notna(avail) else math.nan
        try:
            sizes = [
                required_sample_size(
                    base,
                    _mde_for(mde, arm, tac),
                    relative=relative,
                    alpha=alpha,
                    power=power,
                    allocation=allocation,
                    n_treatments=k,
                    two_sided=two_sided,
                    correction=correction,
                    metric=metric,
                    sd=sd,
                    rho=r_seg,
                )
                for arm, tac in treated
            ]
        except ValueError as err:
            raise ValueError(f"design_table: segment {name!r}: {err}") from None
        n_c = max(s.n_control for s in sizes)
        total = n_c + sum(s.n_treatment for s in sizes)
        enough = bool(total <= avail) if math.isfinite(avail) else False
        seg_rows: list[dict[str, Any]] = [
            {
                segment_col: name,
                "arm": control,
                "tactic": Tactic.CONTROL.value,
                "role": "control",
                "baseline": base,
                "mde": math.nan,
                "required": n_c,
                "half_width": math.nan,
                "power": math.nan,
            }
        ]
        for (arm, tac), s in zip(treated, sizes, strict=True):
            out = _outcome(base, s.effect, metric=metric, sd=sd, relative=False, rho=r_seg)
            row: dict[str, Any] = {
                segment_col: name,
                "arm": arm,
                "tactic": tac.value,
                "role": "treatment",
                "baseline": base,
                "mde": s.effect,
                "required": s.n_treatment,
                "half_width": z_hw * math.sqrt(out.alt_var(n_c, s.n_treatment)),
                "power": _power_at(out, n_c, s.n_treatment, a, two_sided),
            }
            if math.isfinite(avail) and avail > 0:
                nc_av, nt_av = avail * n_c / total, avail * s.n_treatment / total
                try:
                    row["mde_at_available"] = minimum_detectable_effect(
                        nc_av,
                        nt_av,
                        base,
                        alpha=a,
                        power=power,
                        two_sided=two_sided,
                        metric=metric,
                        sd=sd,
                        rho=r_seg,
                    )
                except ValueError:
                    row["mde_at_available"] = math.nan
            if assurance_prior is not None:
                row["assurance"] = assurance(
                    n_c,
                    s.n_treatment,
                    base,
                    prior_mean=assurance_prior[0],
                    prior_sd=assurance_prior[1],
                    relative=relative,
                    seed=seed,
                    metric=metric,
                    sd=sd,
                    rho=r_seg,
                ).assurance
            seg_rows.append(row)
        for row in seg_rows:
            row["share"] = int(row["required"]) / total
            row["segment_required"] = total
            row["customers"] = avail
            row["enough"] = enough
            row.setdefault("mde_at_available", math.nan)
        rows.extend(seg_rows)
    cols = [
        segment_col,
        "arm",
        "tactic",
        "role",
        "baseline",
        "mde",
        "required",
        "share",
        "half_width",
        "power",
        "segment_required",
        "customers",
        "enough",
        "mde_at_available",
    ]
    if assurance_prior is not None:
        cols.append("assurance")
    table = pd.DataFrame(rows)
    for c in cols:
        if c not in table.columns:
            table[c] = math.nan
    table = table[cols]
    table["required"] = table["required"].astype(np.int64)
    table["segment_required"] = table["segment_required"].astype(np.int64)
    table["enough"] = table["enough"].astype(bool)
    return table
