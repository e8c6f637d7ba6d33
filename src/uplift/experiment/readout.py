"""Experiment readout: ship / keep testing / stop per tactic arm and segment, in money.

Why this module exists: the experiment engines (GrowthBook, Eppo, Statsig) decide on lift %, one
segment at a time, and ignore what the offer costs. Here the decision is taken on incremental
*profit per treated customer* net of the offer cost, from the posterior draws the uplift models
already produce (``uplift.models.base``: dims ``(sample, arm, segment)``), so the readout and the
budget optimizer look at the same numbers.

For each (tactic, arm, segment), with ``profit = value_per_unit[segment] * uplift - cost[arm]``:

* posterior uplift mean and HDI, ``P(uplift > 0)``;
* posterior profit mean and HDI, ``P(profit > 0)``;
* expected loss of shipping ``E[max(0, -profit)]`` (what we lose per treated customer if we ship
  and the arm is in fact unprofitable) and of not shipping ``E[max(0, profit)]`` (what we forgo if
  we hold and it is profitable). Both are in currency per treated customer and, when
  ``segment_sizes`` is given, also multiplied by the segment size. For a normal posterior they
  equal GrowthBook's risk formulas (:func:`normal_expected_loss`).

Decision rule (:class:`DecisionRule`, thresholds configurable), checked in this order:

1. **stop** if any guardrail is clearly inferior: ``P(guardrail uplift > -margin) <= 1 - threshold``.
2. **ship** if ``P(profit > 0) >= ship_prob`` and expected loss of shipping ``<= tolerance`` and
   every guardrail passes (``P(guardrail uplift > -margin) >= threshold``).
3. **stop** if ``P(profit > 0) <= stop_prob`` or expected loss of not shipping ``<= tolerance``
   (there is too little upside left to be worth more customers).
4. otherwise **keep testing** (including: profit says ship, but a guardrail is not yet shown to be
   non-inferior).

Shipping is checked before the "too little upside" stop: an arm that is surely profitable but by
less than the tolerance satisfies both, and shipping it loses nothing.

``readout`` adds the health gate: it refuses (``health.require_healthy``) to read out an
experiment whose SRM / balance check failed unless ``override=True``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from uplift.experiment.health import (
    OVERALL,
    BalanceResult,
    SRMResult,
    require_healthy,
)
from uplift.stats import hdi
from uplift.tactics import ArmMap

SHIP = "ship"
KEEP_TESTING = "keep testing"
STOP = "stop"
RECOMMENDATIONS = (SHIP, KEEP_TESTING, STOP)
DIMS = ("sample", "arm", "segment")

READOUT_COLUMNS = [
    "tactic",
    "arm",
    "segment",
    "metric",
    "mean",
    "hdi_low",
    "hdi_high",
    "prob_uplift_positive",
    "prob_profit_positive",
    "expected_loss_ship",
    "expected_loss_hold",
    "recommendation",
    "reason",
    "profit_mean",
    "profit_hdi_low",
    "profit_hdi_high",
    "value_per_unit",
    "cost",
    "segment_size",
    "expected_loss_ship_total",
    "expected_loss_hold_total",
    "guardrails_passed",
    "guardrails_failed",
    "hdi_prob",
    "n_draws",
]

GUARDRAIL_COLUMNS = [
    "guardrail",
    "arm",
    "segment",
    "margin",
    "threshold",
    "higher_is_better",
    "mean",
    "hdi_low",
    "hdi_high",
    "prob_non_inferior",
    "passed",
    "clearly_inferior",
    "hdi_prob",
]

Costs = ArmMap | Mapping[str, float]


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionRule:
    """Thresholds of the ship / keep testing / stop rule (see the module docstring).

    ``tolerance`` is in currency per treated customer: the expected loss we accept when shipping,
    and the expected upside below which further testing is not worth it.
    """

    ship_prob: float = 0.95
    stop_prob: float = 0.05
    tolerance: float = 0.01

    def __post_init__(self) -> None:
        if not (0.0 < self.stop_prob < self.ship_prob < 1.0):
            raise ValueError(
                "DecisionRule: need 0 < stop_prob < ship_prob < 1, got "
                f"stop_prob={self.stop_prob!r}, ship_prob={self.ship_prob!r}"
            )
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ValueError(
                f"DecisionRule.tolerance: currency per treated customer, >= 0; got {self.tolerance!r}"
            )


@dataclass(frozen=True)
class Guardrail:
    """A metric that must not get worse by more than ``margin`` (non-inferiority).

    ``draws`` is the posterior of the guardrail metric's uplift per treated customer, dims
    ``(sample, arm, segment)``, covering every arm and segment of the readout. ``margin`` is in
    the metric's own units (>= 0). With ``higher_is_better=False`` (e.g. unsubscribes) the draws
    are negated first, so the test is always ``P(uplift > -margin) >= threshold``.
    """

    name: str
    draws: xr.DataArray
    margin: float
    threshold: float = 0.95
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(
                f"Guardrail {self.name!r}: margin must be >= 0 in the metric's units, "
                f"got {self.margin!r}"
            )
        if not (0.5 < self.threshold < 1.0):
            raise ValueError(
                f"Guardrail {self.name!r}: threshold must be in (0.5, 1), got {self.threshold!r}"
            )


@dataclass(frozen=True)
class Readout:
    """Result of :func:`readout`: the decision table, the guardrail table and what was overridden."""

    table: pd.DataFrame
    guardrails: pd.DataFrame
    rule: DecisionRule
    overridden_failures: list[str] = field(default_factory=list)

    def decisions(self) -> pd.DataFrame:
        """Just (tactic, arm, segment, recommendation, reason)."""
        return self.table[["tactic", "arm", "segment", "recommendation", "reason"]]


# --------------------------------------------------------------------------------------------
# closed form (for checks)
# --------------------------------------------------------------------------------------------


def normal_expected_loss(mu: float, sigma: float) -> tuple[float, float]:
    """Expected loss of shipping and of holding when profit ~ N(mu, sigma) (GrowthBook's risk).

    ship: ``sigma phi(mu/sigma) - mu Phi(-mu/sigma)`` = E[max(0, -X)];
    hold: ``sigma phi(mu/sigma) + mu Phi(mu/sigma)`` = E[max(0, X)].
    """
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"normal_expected_loss: sigma must be > 0, got {sigma!r}")
    z = mu / sigma
    pdf = float(stats.norm.pdf(z))
    return (
        sigma * pdf - mu * float(stats.norm.cdf(-z)),
        sigma * pdf + mu * float(stats.norm.cdf(z)),
    )


# --------------------------------------------------------------------------------------------
# input normalisation
# --------------------------------------------------------------------------------------------


def as_draws(da: xr.DataArray, what: str = "uplift draws") -> xr.DataArray:
    """Coerce to dims ``(sample, arm, segment)`` with string coords; stacks chain/draw if needed."""
    if not isinstance(da, xr.DataArray):
        raise TypeError(f"{what}: expected an xarray DataArray, got {type(da).__name__}")
    if "sample" not in da.dims and {"chain", "draw"} <= set(da.dims):
        da = da.stack(sample=("chain", "draw"))
    if set(da.dims) != set(DIMS):
        raise ValueError(
            f"{what}: dims must be {DIMS} (posterior draws per arm and segment), got {da.dims}"
        )
    da = da.transpose(*DIMS)
    for dim in ("arm", "segment"):
        if dim not in da.coords:
            raise ValueError(f"{what}: dim {dim!r} needs coordinate labels")
    values = np.asarray(da.values, dtype=float)
    if not np.isfinite(values).all():
        raise ValueError(f"{what}: contains NaN or inf")
    if da.sizes["sample"] < 2:
        raise ValueError(f"{what}: need at least 2 posterior draws, got {da.sizes['sample']}")
    return xr.DataArray(
        values,
        dims=DIMS,
        coords={
            "arm": [str(a) for a in da["arm"].values],
            "segment": [str(s) for s in da["segment"].values],
        },
        name=da.name,
        attrs=dict(da.attrs),
    )


def arm_costs(costs: Costs, arms: Iterable[str]) -> dict[str, float]:
    """Offer cost per treated customer for each of ``arms``, from an ArmMap or a mapping."""
    arms = [str(a) for a in arms]
    if isinstance(costs, ArmMap):
        table = {a.name: float(a.cost) for a in costs.arms}
    else:
        table = {str(k): float(v) for k, v in costs.items()}
    missing = [a for a in arms if a not in table]
    if missing:
        raise ValueError(
            f"costs: no offer cost for arm(s) {missing}; costs are given for {sorted(table)}"
        )
    bad = [a for a in arms if not (math.isfinite(table[a]) and table[a] >= 0)]
    if bad:
        raise ValueError(f"costs: must be finite and >= 0 per treated customer; check {bad}")
    return {a: table[a] for a in arms}


def segment_values(value: pd.Series | float, segments: Sequence[str], what: str) -> np.ndarray:
    """Value per unit for each segment, from a per-segment Series or one scalar."""
    if isinstance(value, pd.Series):
        by = {str(k): float(v) for k, v in value.items()}
        missing = [s for s in segments if s not in by]
        if missing:
            raise ValueError(
                f"{what}: no entry for segment(s) {missing}; the Series is indexed by "
                f"{sorted(by)[:10]}"
            )
        out = np.array([by[s] for s in segments], dtype=float)
    else:
        out = np.full(len(segments), float(value))
    if not np.isfinite(out).all():
        raise ValueError(f"{what}: values must be finite")
    return out


def profit_draws(
    uplift: xr.DataArray, value_per_unit: pd.Series | float, costs: Costs
) -> xr.DataArray:
    """Incremental profit per treated customer: ``value[segment] * uplift - cost[arm]``.

    The input of :func:`uplift.experiment.nextwave.next_wave_shares` and of the readout.
    """
    da = as_draws(uplift)
    segs = [str(s) for s in da["segment"].values]
    arms = [str(a) for a in da["arm"].values]
    v = segment_values(value_per_unit, segs, "value_per_unit")
    c = np.array(list(arm_costs(costs, arms).values()))
    out = da.values * v[None, None, :] - c[None, :, None]
    return xr.DataArray(out, dims=DIMS, coords=da.coords, name="profit")


def _tactics(
    uplift: xr.DataArray | Mapping[str, xr.DataArray], costs: Costs
) -> list[tuple[str, xr.DataArray]]:
    if isinstance(uplift, Mapping):
        return [(str(t), as_draws(d, f"uplift[{t!r}]")) for t, d in uplift.items()]
    da = as_draws(uplift)
    if isinstance(costs, ArmMap):
        missing = [a for a in da["arm"].values.tolist() if a not in costs.names]
        if missing:
            raise ValueError(f"costs: arm(s) {missing} not in the ArmMap ({list(costs.names)})")
        groups: dict[str, list[str]] = {}
        for a in da["arm"].values:
            groups.setdefault(costs[str(a)].tactic.value, []).append(str(a))
        return [(t, da.sel(arm=arms)) for t, arms in groups.items()]
    tactic = str(da.attrs.get("uplift_tactic", da.attrs.get("tactic", "unspecified")))
    return [(tactic, da)]


def _weights(sizes: pd.Series | None, segments: Sequence[str]) -> np.ndarray | None:
    if sizes is None:
        return None
    w = segment_values(sizes, segments, "segment_sizes")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError("segment_sizes: need non-negative customer counts with a positive total")
    return w


# --------------------------------------------------------------------------------------------
# guardrails
# --------------------------------------------------------------------------------------------


def guardrail_table(
    guardrails: Sequence[Guardrail],
    *,
    segment_sizes: pd.Series | None = None,
    hdi_prob: float = 0.94,
) -> pd.DataFrame:
    """Non-inferiority of each guardrail per arm and segment: pass if P(uplift > -margin) >= threshold.

    With ``segment_sizes`` an ``__overall__`` row per arm tests the size-weighted uplift.
    """
    rows = []
    for g in guardrails:
        da = as_draws(g.draws, f"guardrail {g.name!r} draws")
        x = da.values if g.higher_is_better else -da.values
        segs = [str(s) for s in da["segment"].values]
        blocks = [(segs, x)]
        w = _weights(segment_sizes, segs)
        if w is not None:
            blocks.append(([OVERALL], np.einsum("sag,g->sa", x, w / w.sum())[:, :, None]))
        for labels, arr in blocks:
            p = (arr > -g.margin).mean(axis=0)
            bounds = hdi(arr, hdi_prob, axis=0)
            mean = arr.mean(axis=0)
            sign = 1.0 if g.higher_is_better else -1.0
            for i, arm in enumerate(da["arm"].values.tolist()):
                for j, seg in enumerate(labels):
                    lo, hi = sign * bounds[i, j, 0], sign * bounds[i, j, 1]
                    rows.append(
                        {
                            "guardrail": g.name,
                            "arm": str(arm),
                            "segment": seg,
                            "margin": g.margin,
                            "threshold": g.threshold,
                            "higher_is_better": g.higher_is_better,
                            "mean": sign * float(mean[i, j]),
                            "hdi_low": float(min(lo, hi)),
                            "hdi_high": float(max(lo, hi)),
                            "prob_non_inferior": float(p[i, j]),
                            "passed": bool(p[i, j] >= g.threshold),
                            "clearly_inferior": bool(p[i, j] <= 1.0 - g.threshold),
                            "hdi_prob": hdi_prob,
                        }
                    )
    return pd.DataFrame(rows, columns=GUARDRAIL_COLUMNS)


#: guardrails.csv: one row per (tactic, arm, segment incl. ``__overall__``, metric)
GUARDRAIL_HARM_COLUMNS = [
    "tactic",
    "arm",
    "segment",
    "metric",
    "mean",
    "hdi_low",
    "hdi_high",
    "prob_harm",
    "threshold",
    "vetoed",
    "direction",
    "veto_probability",
    "hdi_prob",
]


def guardrail_harm_table(
    tactic: str,
    metric: str,
    draws: xr.DataArray,
    *,
    threshold: float,
    direction: str = "increase",
    veto: bool = True,
    veto_probability: float = 0.2,
    segment_sizes: pd.Series | None = None,
    hdi_prob: float = 0.94,
) -> pd.DataFrame:
    """P(harm > threshold) of each arm per segment (and ``__overall__``, size-weighted), and
    whether the arm is vetoed there.

    ``draws``: the posterior change of the guardrail rate per treated customer, arm vs control,
    dims ``(sample, arm, segment)``. Harm is that change in the ``direction`` that hurts
    (``increase`` for a bad outcome such as unsubscribes). It is the non-inferiority test of
    :func:`guardrail_table` read the other way round: ``prob_harm = 1 - P(non-inferior at
    margin = threshold)``. ``mean``/``hdi_*`` are the change itself (signed, the outcome's rate).
    A segment row is vetoed when ``veto`` and ``prob_harm > veto_probability``; the overall row
    is for reading only (``vetoed`` false): the rule acts where the harm is, segment by segment.
    """
    g = Guardrail(
        metric,
        draws,
        margin=float(threshold),
        threshold=1.0 - float(veto_probability),
        higher_is_better=direction == "decrease",
    )
    t = guardrail_table([g], segment_sizes=segment_sizes, hdi_prob=hdi_prob)
    prob_harm = 1.0 - t["prob_non_inferior"]
    out = pd.DataFrame(
        {
            "tactic": tactic,
            "arm": t["arm"],
            "segment": t["segment"],
            "metric": metric,
            "mean": t["mean"],
            "hdi_low": t["hdi_low"],
            "hdi_high": t["hdi_high"],
            "prob_harm": prob_harm,
            "threshold": float(threshold),
            "vetoed": bool(veto) & (prob_harm > veto_probability) & (t["segment"] != OVERALL),
            "direction": direction,
            "veto_probability": float(veto_probability),
            "hdi_prob": hdi_prob,
        }
    )
    return out[GUARDRAIL_HARM_COLUMNS]


# --------------------------------------------------------------------------------------------
# decision
# --------------------------------------------------------------------------------------------


def recommend(
    prob_profit_positive: float,
    expected_loss_ship: float,
    expected_loss_hold: float,
    rule: DecisionRule,
    failed_guardrails: Sequence[str] = (),
    inferior_guardrails: Sequence[str] = (),
) -> tuple[str, str]:
    """(recommendation, reason) for one cell under ``rule``; see the module docstring."""
    p, ls, lh, tol = prob_profit_positive, expected_loss_ship, expected_loss_hold, rule.tolerance
    if inferior_guardrails:
        return STOP, f"guardrail(s) {', '.join(inferior_guardrails)} clearly worse than margin"
    profit_ok = p >= rule.ship_prob and ls <= tol
    if profit_ok and not failed_guardrails:
        return SHIP, (
            f"P(profit>0)={p:.3f} >= {rule.ship_prob:g} and expected loss if shipped "
            f"{ls:.4g} <= {tol:g}"
        )
    if p <= rule.stop_prob:
        return STOP, f"P(profit>0)={p:.3f} <= {rule.stop_prob:g}"
    if lh <= tol:
        return STOP, f"expected loss if not shipped {lh:.4g} <= {tol:g}: too little upside"
    if profit_ok:
        return KEEP_TESTING, (
            f"profit clears the ship rule but guardrail(s) {', '.join(failed_guardrails)} "
            "not yet shown non-inferior"
        )
    return KEEP_TESTING, (
        f"P(profit>0)={p:.3f}, expected loss if shipped {ls:.4g} / if not {lh:.4g} "
        f"vs tolerance {tol:g}"
    )


def readout_table(
    uplift: xr.DataArray | Mapping[str, xr.DataArray],
    value_per_unit: pd.Series | float,
    costs: Costs,
    *,
    segment_sizes: pd.Series | None = None,
    guardrails: Sequence[Guardrail] = (),
    rule: DecisionRule | None = None,
    hdi_prob: float = 0.94,
    metric: str | None = None,
) -> pd.DataFrame:
    """One row per (tactic, arm, segment) with uplift, profit, expected losses and a decision.

    ``uplift``: posterior draws of the incremental metric per treated customer, dims
    ``(sample, arm, segment)``, or a mapping tactic -> such draws (as the pipeline's fits give).
    With a single DataArray and an :class:`~uplift.tactics.ArmMap` as ``costs`` the tactic of each
    arm comes from the ArmMap. ``value_per_unit``: currency per unit of the metric, per segment
    (1.0 when the metric is already currency). ``costs``: offer cost per treated customer per arm.
    ``segment_sizes`` (customers per segment) adds ``*_total`` losses and an ``__overall__`` row
    per arm for shipping to every segment (size-weighted draws). Columns: ``READOUT_COLUMNS``.
    """
    return _readout(
        uplift, value_per_unit, costs, segment_sizes, guardrails, rule, hdi_prob, metric
    )[0]


def _readout(
    uplift: xr.DataArray | Mapping[str, xr.DataArray],
    value_per_unit: pd.Series | float,
    costs: Costs,
    segment_sizes: pd.Series | None,
    guardrails: Sequence[Guardrail],
    rule: DecisionRule | None,
    hdi_prob: float,
    metric: str | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rule = rule or DecisionRule()
    if not (0 < hdi_prob < 1):
        raise ValueError(f"hdi_prob: must be in (0, 1), got {hdi_prob!r}")
    guard = guardrail_table(guardrails, segment_sizes=segment_sizes, hdi_prob=hdi_prob)
    guard_idx = guard.set_index(["arm", "segment"]) if len(guard) else None
    rows = []
    for tactic, da in _tactics(uplift, costs):
        arms = [str(a) for a in da["arm"].values]
        segs = [str(s) for s in da["segment"].values]
        name = metric or da.attrs.get("uplift_metric") or (da.name if da.name else "uplift")
        v = segment_values(value_per_unit, segs, "value_per_unit")
        c = np.array(list(arm_costs(costs, arms).values()))
        up = da.values  # (S, A, G)
        prof = up * v[None, None, :] - c[None, :, None]
        labels = list(segs)
        sizes = _weights(segment_sizes, segs)
        vals, size_col = list(v), list(sizes) if sizes is not None else [math.nan] * len(segs)
        if sizes is not None:
            w = sizes / sizes.sum()
            up = np.concatenate([up, np.einsum("sag,g->sa", up, w)[:, :, None]], axis=2)
            prof = np.concatenate([prof, np.einsum("sag,g->sa", prof, w)[:, :, None]], axis=2)
            labels.append(OVERALL)
            vals.append(float(v @ w))
            size_col.append(float(sizes.sum()))
        for g in guardrails:
            _check_cover(g, arms, segs)
        up_hdi = hdi(up, hdi_prob, axis=0)
        pr_hdi = hdi(prof, hdi_prob, axis=0)
        p_up = (up > 0).mean(axis=0)
        p_pr = (prof > 0).mean(axis=0)
        loss_ship = np.maximum(0.0, -prof).mean(axis=0)
        loss_hold = np.maximum(0.0, prof).mean(axis=0)
        for i, arm in enumerate(arms):
            for j, seg in enumerate(labels):
                failed, inferior = [], []
                if guard_idx is not None:
                    gr = guard_idx.loc[[(arm, seg)]]
                    failed = gr.loc[~gr["passed"], "guardrail"].tolist()
                    inferior = gr.loc[gr["clearly_inferior"], "guardrail"].tolist()
                rec, why = recommend(
                    float(p_pr[i, j]),
                    float(loss_ship[i, j]),
                    float(loss_hold[i, j]),
                    rule,
                    failed,
                    inferior,
                )
                n_seg = size_col[j]
                rows.append(
                    {
                        "tactic": tactic,
                        "arm": arm,
                        "segment": seg,
                        "metric": str(name),
                        "mean": float(up[:, i, j].mean()),
                        "hdi_low": float(up_hdi[i, j, 0]),
                        "hdi_high": float(up_hdi[i, j, 1]),
                        "prob_uplift_positive": float(p_up[i, j]),
                        "prob_profit_positive": float(p_pr[i, j]),
                        "expected_loss_ship": float(loss_ship[i, j]),
                        "expected_loss_hold": float(loss_hold[i, j]),
                        "recommendation": rec,
                        "reason": why,
                        "profit_mean": float(prof[:, i, j].mean()),
                        "profit_hdi_low": float(pr_hdi[i, j, 0]),
                        "profit_hdi_high": float(pr_hdi[i, j, 1]),
                        "value_per_unit": float(vals[j]),
                        "cost": float(c[i]),
                        "segment_size": n_seg,
                        "expected_loss_ship_total": float(loss_ship[i, j]) * n_seg,
                        "expected_loss_hold_total": float(loss_hold[i, j]) * n_seg,
                        "guardrails_passed": not failed,
                        "guardrails_failed": ", ".join(failed),
                        "hdi_prob": hdi_prob,
                        "n_draws": int(up.shape[0]),
                    }
                )
    return pd.DataFrame(rows, columns=READOUT_COLUMNS), guard


def _check_cover(g: Guardrail, arms: Sequence[str], segs: Sequence[str]) -> None:
    da = g.draws
    have_a = {str(a) for a in da["arm"].values} if "arm" in da.coords else set()
    have_s = {str(s) for s in da["segment"].values} if "segment" in da.coords else set()
    miss_a = [a for a in arms if a not in have_a]
    miss_s = [s for s in segs if s not in have_s]
    if miss_a or miss_s:
        raise ValueError(
            f"guardrail {g.name!r}: no draws for arm(s) {miss_a} / segment(s) {miss_s}; "
            "a guardrail must cover every arm and segment being read out"
        )


def readout(
    uplift: xr.DataArray | Mapping[str, xr.DataArray],
    value_per_unit: pd.Series | float,
    costs: Costs,
    *,
    health: SRMResult | BalanceResult | Sequence[SRMResult | BalanceResult] | None = None,
    override: bool = False,
    segment_sizes: pd.Series | None = None,
    guardrails: Sequence[Guardrail] = (),
    rule: DecisionRule | None = None,
    hdi_prob: float = 0.94,
    metric: str | None = None,
) -> Readout:
    """:func:`readout_table` behind the health gate.

    Why a gate: a sample-ratio mismatch means assignment or logging is broken, and a posterior
    computed from such data should not drive a ship decision. ``health`` failures raise
    :class:`~uplift.experiment.health.HealthCheckError` unless ``override=True`` (then they warn
    and are kept in ``Readout.overridden_failures``). ``health=None`` skips the gate.
    """
    failures: list[str] = []
    if health is not None:
        require_healthy(health, override=override)
        checks = [health] if isinstance(health, SRMResult | BalanceResult) else list(health)
        failures = [f for h in checks for f in h.failures]
    rule = rule or DecisionRule()
    table, guard = _readout(
        uplift, value_per_unit, costs, segment_sizes, guardrails, rule, hdi_prob, metric
    )
    return Readout(table=table, guardrails=guard, rule=rule, overridden_failures=failures)
