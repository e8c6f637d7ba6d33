"""Experiment health checks run before any analysis: sample-ratio mismatch and covariate balance.

Why: if the arms do not hold the share of customers the design said they would (SRM), or differ
on pre-treatment covariates, the assignment or the logging is broken and every uplift estimate is
suspect. These checks fail loudly, naming the segment, arm and p-value, and only an explicit
override lets an analysis proceed.

* SRM: Pearson chi-square of observed arm counts against the expected weights, K - 1 degrees of
  freedom, flagged at p < alpha (default 0.001, as GrowthBook and Statsig do), overall and per
  segment. The segments are a family of S tests: their p-values are Holm-adjusted (step-down
  Bonferroni) so that a fair experiment raises a false alarm in some segment with probability at
  most ``alpha``, not about S * alpha (144 segments at 0.001: 13% of fair runs refused
  unadjusted). Holm is a few lines, so it is written here rather than importing statsmodels
  (not a dependency) for ``multipletests``. Labels outside the expected split are failures too.
* Balance: standardized mean difference ``(mean_arm - mean_control) / sqrt((s_arm^2 + s_c^2)/2)``
  per covariate and arm, flagged at |SMD| > 0.1 (the usual rule of thumb).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

OVERALL = "__overall__"
MISSING = "<missing>"


class HealthCheckError(RuntimeError):
    """The experiment failed a health check; the message names segment, arm and p-value."""

    def __init__(self, failures: Sequence[str]) -> None:
        self.failures = list(failures)
        body = "\n".join(f"  - {f}" for f in self.failures)
        super().__init__(
            "experiment health check failed; fix the assignment/logging or pass override=True "
            f"to analyse anyway:\n{body}"
        )


@dataclass(frozen=True)
class SRMTest:
    """One chi-square SRM test (overall or one segment)."""

    segment: str
    n: int
    chi2: float
    df: int
    p_value: float
    alpha: float
    observed: dict[str, int]
    expected_share: dict[str, float]
    unexpected: dict[str, int] = field(default_factory=dict)
    #: Holm-adjusted p-value over the segments of the check (None: a single test, e.g. overall)
    p_adjusted: float | None = None

    @property
    def p_decision(self) -> float:
        """The p-value the flag compares with ``alpha``: adjusted when the test is one of many."""
        return self.p_value if self.p_adjusted is None else self.p_adjusted

    @property
    def flagged(self) -> bool:
        return bool(self.p_decision < self.alpha or self.unexpected)

    @property
    def small_sample(self) -> bool:
        """Some expected count is below 5, where the chi-square approximation is rough."""
        return any(self.n * s < 5 for s in self.expected_share.values())

    @property
    def worst_arm(self) -> str:
        """Arm with the largest standardized deviation from its expected count."""
        dev = {
            a: abs(self.observed.get(a, 0) - self.n * s) / math.sqrt(self.n * s)
            for a, s in self.expected_share.items()
            if self.n * s > 0
        }
        return max(dev, key=dev.__getitem__) if dev else ""

    def describe(self) -> str:
        where = "overall" if self.segment == OVERALL else f"in segment {self.segment!r}"
        parts = []
        if self.unexpected:
            labels = ", ".join(f"{a!r} ({c:,} customers)" for a, c in self.unexpected.items())
            parts.append(f"SRM {where}: arm labels not in the expected split: {labels}")
        if self.p_decision < self.alpha:
            a = self.worst_arm
            n_in = sum(self.observed.values())
            obs = self.observed.get(a, 0) / n_in if n_in else math.nan
            p = (
                f"p={self.p_value:.3g}"
                if self.p_adjusted is None
                else f"p={self.p_value:.3g}, Holm-adjusted over the segments {self.p_adjusted:.3g}"
            )
            parts.append(
                f"SRM {where}: arm {a!r} has {obs:.2%} of {n_in:,} customers vs "
                f"{self.expected_share[a]:.2%} expected (chi2={self.chi2:.2f}, df={self.df}, "
                f"{p} < alpha={self.alpha:g})"
            )
        return "; ".join(parts)


def holm_adjusted(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values: sorted ascending, p_(i) x (m - i + 1), made
    monotone by a running maximum and capped at 1. Flagging adjusted p < alpha controls the
    family-wise error rate at alpha for any dependence between the tests."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


@dataclass(frozen=True)
class SRMResult:
    """Overall SRM test plus a per-segment table (empty without a segment column).

    The per-segment tests are adjusted for their number here (Holm), whoever built them."""

    overall: SRMTest
    segments: list[SRMTest]
    alpha: float

    def __post_init__(self) -> None:
        tests = list(self.segments)
        if len(tests) > 1:
            adj = holm_adjusted([t.p_value for t in tests])
            tests = [replace(t, p_adjusted=float(a)) for t, a in zip(tests, adj, strict=True)]
        object.__setattr__(self, "segments", tests)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[str]:
        return [t.describe() for t in [self.overall, *self.segments] if t.flagged]

    @property
    def table(self) -> pd.DataFrame:
        """One row per segment: n, chi2, df, p_value, p_adjusted (Holm, over the segments),
        flagged, worst_arm and observed shares."""
        return _srm_table(self.segments)


def _srm_table(tests: Sequence[SRMTest]) -> pd.DataFrame:
    rows = []
    for t in tests:
        n_in = sum(t.observed.values())
        row: dict[str, object] = {
            "segment": t.segment,
            "n": t.n,
            "chi2": t.chi2,
            "df": t.df,
            "p_value": t.p_value,
            "p_adjusted": t.p_decision,
            "flagged": t.flagged,
            "worst_arm": t.worst_arm,
            "unexpected": sum(t.unexpected.values()),
            "small_sample": t.small_sample,
        }
        for a in t.expected_share:
            row[f"share_{a}"] = t.observed.get(a, 0) / n_in if n_in else math.nan
        rows.append(row)
    cols = [
        "segment",
        "n",
        "chi2",
        "df",
        "p_value",
        "p_adjusted",
        "flagged",
        "worst_arm",
        "unexpected",
    ]
    return pd.DataFrame(rows, columns=None if rows else cols)


def _expected(expected: Mapping[str, float]) -> dict[str, float]:
    if len(expected) < 2:
        raise ValueError(f"srm_check.expected: need at least two arms, got {dict(expected)}")
    w = {str(k): float(v) for k, v in expected.items()}
    bad = [k for k, v in w.items() if not (math.isfinite(v) and v > 0)]
    if bad:
        raise ValueError(f"srm_check.expected: weights must be finite and > 0; check {bad}")
    total = sum(w.values())
    return {k: v / total for k, v in w.items()}


def srm_test(
    counts: Mapping[str, int],
    expected: Mapping[str, float],
    alpha: float = 0.001,
    segment: str = OVERALL,
) -> SRMTest:
    """Pearson chi-square test of arm counts against expected weights (K - 1 df).

    ``counts`` may include labels outside ``expected``; they are reported as unexpected (a failure)
    and left out of the chi-square.
    """
    if not (0 < alpha < 1):
        raise ValueError(f"srm_check.alpha: must be in (0, 1), got {alpha!r}")
    share = _expected(expected)
    obs = {a: int(counts.get(a, 0)) for a in share}
    unexpected = {str(a): int(c) for a, c in counts.items() if str(a) not in share and c > 0}
    n = sum(obs.values())
    if n == 0:
        chi2, p = 0.0, 1.0
    else:
        o = np.array([obs[a] for a in share], dtype=float)
        e = n * np.array(list(share.values()))
        chi2 = float(((o - e) ** 2 / e).sum())
        p = float(stats.chi2.sf(chi2, len(share) - 1))
    return SRMTest(
        segment=str(segment),
        n=n + sum(unexpected.values()),
        chi2=chi2,
        df=len(share) - 1,
        p_value=p,
        alpha=float(alpha),
        observed=obs,
        expected_share=share,
        unexpected=unexpected,
    )


def srm_check(
    frame: pd.DataFrame,
    arm_col: str,
    expected: Mapping[str, float],
    segment_col: str | None = None,
    alpha: float = 0.001,
) -> SRMResult:
    """Sample-ratio mismatch check on customer rows, overall and per segment.

    ``expected`` maps arm label -> weight (normalised here). Include ``"holdout"`` if the frame
    still contains held-out customers (``assignment.expected_weights`` gives the full split).
    """
    cols = [arm_col] + ([segment_col] if segment_col else [])
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"srm_check: columns {missing} not in frame ({list(frame.columns)})")
    labels = frame[arm_col].astype(object).where(frame[arm_col].notna(), MISSING).map(str)
    overall = srm_test(labels.value_counts().to_dict(), expected, alpha)
    tests: list[SRMTest] = []
    if segment_col:
        seg = frame[segment_col].astype(object).where(frame[segment_col].notna(), MISSING)
        grouped = pd.DataFrame({"s": seg.map(str), "a": labels}).value_counts()
        for s in sorted(grouped.index.get_level_values(0).unique()):
            tests.append(srm_test(grouped.loc[s].to_dict(), expected, alpha, segment=s))
    return SRMResult(overall=overall, segments=tests, alpha=float(alpha))


# --------------------------------------------------------------------------------------------
# covariate balance
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BalanceResult:
    """SMD per (segment, covariate, arm) against control; flagged where |SMD| > threshold."""

    table: pd.DataFrame
    threshold: float

    @property
    def ok(self) -> bool:
        return not bool(self.table["flagged"].any()) if len(self.table) else True

    @property
    def failures(self) -> list[str]:
        out = []
        for r in self.table[self.table["flagged"]].itertuples(index=False):
            where = "" if r.segment == OVERALL else f" in segment {r.segment!r}"
            out.append(
                f"covariate imbalance{where}: {r.covariate!r} in arm {r.arm!r} has SMD "
                f"{r.smd:+.3f} vs control (|SMD| > {self.threshold:g}; mean {r.mean_arm:.4g} vs "
                f"{r.mean_control:.4g})"
            )
        return out


def _smd(x: np.ndarray, c: np.ndarray) -> float:
    if len(x) < 2 or len(c) < 2:
        return math.nan
    diff = x.mean() - c.mean()
    pooled = math.sqrt((x.var(ddof=1) + c.var(ddof=1)) / 2)
    if pooled == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return float(diff / pooled)


def covariate_balance(
    frame: pd.DataFrame,
    arm_col: str,
    covariates: Sequence[str],
    control: str,
    segment_col: str | None = None,
    threshold: float = 0.1,
) -> BalanceResult:
    """Standardized mean difference of each pre-treatment covariate, each arm vs control.

    Why SMD and not a t-test: it does not grow with sample size, so it measures imbalance that
    matters for estimation rather than detectability. Computed overall and, with ``segment_col``,
    per segment. Rows with a missing covariate are dropped for that covariate.
    """
    cols = [arm_col, *covariates] + ([segment_col] if segment_col else [])
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(
            f"covariate_balance: columns {missing} not in frame ({list(frame.columns)})"
        )
    frame = frame.reset_index(drop=True)
    arms = frame[arm_col].map(str)
    if str(control) not in set(arms):
        raise ValueError(
            f"covariate_balance: control arm {control!r} not found in column {arm_col!r}; "
            f"arms seen: {sorted(set(arms))}"
        )
    groups: list[tuple[str, pd.Index]] = [(OVERALL, frame.index)]
    if segment_col:
        for s, g in frame.groupby(segment_col, sort=True, observed=True):
            groups.append((str(s), g.index))
    rows = []
    for seg, idx in groups:
        sub_arm = arms.loc[idx]
        for cov in covariates:
            vals = pd.to_numeric(frame.loc[idx, cov], errors="raise").astype(float)
            c = vals[(sub_arm == str(control)) & vals.notna()].to_numpy()
            for a in sorted(set(sub_arm) - {str(control)}):
                x = vals[(sub_arm == a) & vals.notna()].to_numpy()
                smd = _smd(x, c)
                rows.append(
                    {
                        "segment": seg,
                        "covariate": cov,
                        "arm": a,
                        "n_arm": len(x),
                        "n_control": len(c),
                        "mean_arm": float(x.mean()) if len(x) else math.nan,
                        "mean_control": float(c.mean()) if len(c) else math.nan,
                        "smd": smd,
                        "flagged": bool(abs(smd) > threshold) if not math.isnan(smd) else False,
                    }
                )
    cols = [
        "segment",
        "covariate",
        "arm",
        "n_arm",
        "n_control",
        "mean_arm",
        "mean_control",
        "smd",
        "flagged",
    ]
    return BalanceResult(table=pd.DataFrame(rows, columns=cols), threshold=float(threshold))


def covariate_balance_moments(
    moments: pd.DataFrame,
    covariates: Sequence[str],
    control: str,
    threshold: float = 0.1,
) -> BalanceResult:
    """:func:`covariate_balance` from per-(segment, arm) moments instead of rows: columns
    ``segment, arm`` and ``<cov>__n, <cov>__s, <cov>__ss`` (non-missing count, sum, sum of
    squares), as an engine computes them; the SMD needs only each arm's mean and variance."""

    def stats_of(n: float, s_: float, ss: float) -> tuple[float, float]:
        mean = s_ / n if n else math.nan
        var = max((ss - s_ * s_ / n) / (n - 1), 0.0) if n > 1 else math.nan
        return mean, var

    m = moments.assign(segment=moments["segment"].astype(str), arm=moments["arm"].astype(str))
    by_seg = m.groupby(["segment", "arm"], sort=True).sum(numeric_only=True)
    overall = m.groupby("arm", sort=True).sum(numeric_only=True)
    groups = [(OVERALL, overall)] + [
        (str(seg), by_seg.loc[seg]) for seg in by_seg.index.get_level_values(0).unique()
    ]
    rows = []
    for seg, g in groups:
        for cov in covariates:

            def cell(a: str, cov: str = cov, g: pd.DataFrame = g) -> tuple[int, float, float]:
                if a not in g.index:
                    return 0, math.nan, math.nan
                n = int(g.loc[a, f"{cov}__n"])
                mean, var = stats_of(n, float(g.loc[a, f"{cov}__s"]), float(g.loc[a, f"{cov}__ss"]))
                return n, mean, var

            n_c, mean_c, var_c = cell(str(control))
            for a in sorted(set(g.index) - {str(control)}):
                n_a, mean_a, var_a = cell(a)
                if n_a < 2 or n_c < 2:
                    smd = math.nan
                else:
                    diff = mean_a - mean_c
                    pooled = math.sqrt((var_a + var_c) / 2)
                    smd = (
                        (0.0 if diff == 0 else math.copysign(math.inf, diff))
                        if pooled == 0
                        else float(diff / pooled)
                    )
                rows.append(
                    {
                        "segment": seg,
                        "covariate": cov,
                        "arm": a,
                        "n_arm": n_a,
                        "n_control": n_c,
                        "mean_arm": mean_a,
                        "mean_control": mean_c,
                        "smd": smd,
                        "flagged": bool(abs(smd) > threshold) if not math.isnan(smd) else False,
                    }
                )
    cols = ["segment", "covariate", "arm", "n_arm", "n_control", "mean_arm", "mean_control"]
    cols += ["smd", "flagged"]
    return BalanceResult(table=pd.DataFrame(rows, columns=cols), threshold=float(threshold))


def require_healthy(
    result: SRMResult | BalanceResult | Iterable[SRMResult | BalanceResult],
    override: bool = False,
) -> None:
    """Raise :class:`HealthCheckError` if any check failed, unless ``override`` is set.

    Why an explicit override: analysing a broken experiment should be a visible decision. With
    ``override=True`` the failures are emitted as a warning instead.
    """
    results = [result] if isinstance(result, SRMResult | BalanceResult) else list(result)
    failures = [f for r in results for f in r.failures]
    if not failures:
        return
    if override:
        warnings.warn(
            "experiment health check failed but override=True; analysing anyway:\n"
            + "\n".join(f"  - {f}" for f in failures),
            UserWarning,
            stacklevel=2,
        )
        return
    raise HealthCheckError(failures)
