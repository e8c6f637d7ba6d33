"""Thompson-sampling allocation of the next wave's customers to arms, per segment.

Why: after a wave, some arms are clearly worse in some segments. Sending the next wave's customers
to each arm in proportion to the posterior probability that it is the most profitable one (the
expected Thompson allocation) spends fewer customers on losers while still learning, and doing it
per segment lets the answer differ by segment.

* ``P(best)`` per segment is the share of posterior draws in which the arm has the highest
  incremental profit per treated customer; control's profit is 0 by definition (it is the
  reference). Exact ties split the draw evenly among the tied arms.
* A minimum share ``f`` per arm keeps every arm learning and every propensity away from zero
  (needed for off-policy evaluation later), as GrowthBook does: ``p_i = f + (1 - K f) w_i`` with
  ``w_i = P(best)`` and K arms, so shares sum to 1 and each is >= f.
* :func:`assign_next_wave` reuses :func:`uplift.experiment.assignment.assign` per segment with
  those weights, so the arm is reproducible from (salt, customer id, weights) and the logged
  ``assignment_probability`` is the realised share. Use a fresh salt per wave.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

from uplift.experiment.assignment import BUCKETS, assign, expected_weights
from uplift.experiment.health import OVERALL, SRMResult, SRMTest, srm_test
from uplift.experiment.readout import as_draws

SHARE_COLUMNS = ["segment", "arm", "prob_best", "share"]
WAVE_COLUMNS = ["customer_id", "segment", "arm", "assignment_probability", "bucket"]


def _with_control(da: xr.DataArray, control: str) -> tuple[list[str], np.ndarray]:
    """Arms (control first) and draws (S, K, G) with control's profit 0 unless given."""
    arms = [str(a) for a in da["arm"].values]
    x = da.values
    if control in arms:
        order = [control] + [a for a in arms if a != control]
        return order, da.sel(arm=order).values
    zero = np.zeros((x.shape[0], 1, x.shape[2]))
    return [control, *arms], np.concatenate([zero, x], axis=1)


def prob_best(
    profit_draws: xr.DataArray,
    *,
    control: str = "control",
    n_draws: int | None = None,
    seed: int | None = 0,
) -> pd.DataFrame:
    """P(arm has the highest profit) per segment, control included at profit 0.

    ``profit_draws`` has dims ``(sample, arm, segment)`` (see
    :func:`uplift.experiment.readout.profit_draws`). ``n_draws`` subsamples that many draws
    (seeded) when the posterior is large; ``None`` uses all of them.
    """
    da = as_draws(profit_draws, "profit_draws")
    if n_draws is not None:
        if int(n_draws) < 1:
            raise ValueError(f"n_draws: must be a positive integer or None, got {n_draws!r}")
        s = da.sizes["sample"]
        if n_draws < s:
            idx = np.sort(np.random.default_rng(seed).choice(s, size=int(n_draws), replace=False))
            da = da.isel(sample=idx)
    arms, x = _with_control(da, str(control))
    best = x.max(axis=1, keepdims=True)
    tied = x == best  # (S, K, G)
    p = (tied / tied.sum(axis=1, keepdims=True)).mean(axis=0)  # (K, G)
    segs = [str(s) for s in da["segment"].values]
    return pd.DataFrame(
        {
            "segment": np.repeat(segs, len(arms)),
            "arm": np.tile(arms, len(segs)),
            "prob_best": p.T.ravel(),
        }
    )


def next_wave_shares(
    profit_draws: xr.DataArray,
    min_share: float = 0.01,
    *,
    control: str = "control",
    n_draws: int | None = None,
    seed: int | None = 0,
) -> pd.DataFrame:
    """Share of the next wave's customers per (segment, arm): ``f + (1 - K f) P(best)``.

    Returns columns ``segment, arm, prob_best, share``; shares sum to 1 within each segment and
    are >= ``min_share``. ``min_share`` must be in ``[0, 1/K]`` for K arms (control included).
    """
    table = prob_best(profit_draws, control=control, n_draws=n_draws, seed=seed)
    k = int(table.groupby("segment", sort=False)["arm"].size().iloc[0])
    f = float(min_share)
    if not (math.isfinite(f) and 0.0 <= f <= 1.0 / k):
        raise ValueError(
            f"min_share: must be in [0, 1/K] = [0, {1.0 / k:.4g}] for K={k} arms "
            f"(control included), got {min_share!r}"
        )
    table["share"] = f + (1.0 - k * f) * table["prob_best"]
    return table[SHARE_COLUMNS]


def _segment_weights(shares: pd.DataFrame) -> dict[str, dict[str, float]]:
    need = {"segment", "arm", "share"}
    if not need <= set(shares.columns):
        raise ValueError(
            f"shares: needs columns {sorted(need)} (from next_wave_shares); has {list(shares.columns)}"
        )
    out: dict[str, dict[str, float]] = {}
    for seg, g in shares.groupby(shares["segment"].map(str), sort=False):
        w = {str(a): float(s) for a, s in zip(g["arm"], g["share"], strict=True)}
        bad = [a for a, s in w.items() if not (math.isfinite(s) and s >= 0)]
        if bad or len(w) != len(g):
            raise ValueError(
                f"shares: segment {seg!r} needs one finite share >= 0 per arm; check {bad or list(g['arm'])}"
            )
        # arms below one hash bucket cannot be realised by assign(); they get no customers
        w = {a: s for a, s in w.items() if s >= 1.0 / BUCKETS}
        if not w:
            raise ValueError(f"shares: segment {seg!r} has no arm with a positive share")
        out[str(seg)] = w
    return out


def assign_next_wave(
    customers: pd.DataFrame,
    shares: pd.DataFrame,
    salt: str,
    *,
    id_col: str = "customer_id",
    segment_col: str = "segment",
    holdout_share: float = 0.0,
    balanced: bool = False,
) -> pd.DataFrame:
    """Assign the next wave's customers with per-segment weights from :func:`next_wave_shares`.

    Calls :func:`~uplift.experiment.assignment.assign` once per segment (same ``salt``, that
    segment's weights), so arms are reproducible and ``assignment_probability`` is logged per
    customer (it differs by segment). Returns ``customer_id, segment, arm,
    assignment_probability, bucket`` in input order; nothing is written. Arms with a share below
    1/10,000 (one hash bucket) get no customers.
    """
    missing = [c for c in (id_col, segment_col) if c not in customers.columns]
    if missing:
        raise ValueError(
            f"assign_next_wave: columns {missing} not in customers ({list(customers.columns)})"
        )
    weights = _segment_weights(shares)
    seg = customers[segment_col].map(str).to_numpy()
    unknown = sorted(set(seg) - set(weights))
    if unknown:
        raise ValueError(
            f"assign_next_wave: no shares for segment(s) {unknown[:10]}; shares cover "
            f"{sorted(weights)[:10]}"
        )
    parts = []
    for s in pd.unique(seg):
        idx = np.flatnonzero(seg == s)
        out = assign(
            customers[id_col].to_numpy()[idx],
            weights[s],
            salt,
            strata=np.full(len(idx), s, dtype=object),
            holdout_share=holdout_share,
            balanced=balanced,
        )
        out.index = idx
        parts.append(out)
    if not parts:
        return pd.DataFrame(columns=WAVE_COLUMNS)
    wave = pd.concat(parts).sort_index().rename(columns={"stratum": "segment"})
    return wave[WAVE_COLUMNS].reset_index(drop=True)


def next_wave_srm(
    wave: pd.DataFrame,
    shares: pd.DataFrame,
    *,
    holdout_share: float = 0.0,
    alpha: float = 0.001,
    arm_col: str = "arm",
    segment_col: str = "segment",
) -> SRMResult:
    """SRM check of a wave assigned with per-segment weights (``health.srm_check`` takes one split).

    Per segment: chi-square against that segment's realised split (``expected_weights``). Overall:
    against the mixture of the segment splits weighted by the segment counts. Feed the result to
    ``readout(..., health=...)``.
    """
    weights = _segment_weights(shares)
    missing = [c for c in (arm_col, segment_col) if c not in wave.columns]
    if missing:
        raise ValueError(f"next_wave_srm: columns {missing} not in wave ({list(wave.columns)})")
    seg = wave[segment_col].map(str)
    arm = wave[arm_col].map(str)
    tests = []
    mix: dict[str, float] = {}
    counts_all: dict[str, int] = {}
    for s in sorted(set(seg)):
        if s not in weights:
            raise ValueError(f"next_wave_srm: no shares for segment {s!r}")
        exp = expected_weights(weights[s], holdout_share)
        counts = arm[seg == s].value_counts().to_dict()
        n = int((seg == s).sum())
        tests.append(_srm_segment(counts, exp, alpha, s))
        for a, w in exp.items():
            mix[a] = mix.get(a, 0.0) + n * w
        for a, c in counts.items():
            counts_all[a] = counts_all.get(a, 0) + int(c)
    if len(mix) < 2:
        raise ValueError("next_wave_srm: need at least two labels (arms or holdout) to test")
    overall = srm_test(counts_all, mix, alpha, segment=OVERALL)
    return SRMResult(overall=overall, segments=tests, alpha=float(alpha))


def _srm_segment(counts: dict, exp: dict[str, float], alpha: float, segment: str) -> SRMTest:
    """srm_test, or (one label only, nothing to compare) a test that flags only stray labels."""
    if len(exp) >= 2:
        return srm_test(counts, exp, alpha, segment=segment)
    (only,) = exp
    unexpected = {str(a): int(c) for a, c in counts.items() if str(a) != only and c > 0}
    n_in = int(counts.get(only, 0))
    return SRMTest(
        segment=segment,
        n=n_in + sum(unexpected.values()),
        chi2=0.0,
        df=0,
        p_value=1.0,
        alpha=float(alpha),
        observed={only: n_in},
        expected_share={only: 1.0},
        unexpected=unexpected,
    )


__all__ = [
    "SHARE_COLUMNS",
    "WAVE_COLUMNS",
    "assign_next_wave",
    "next_wave_shares",
    "next_wave_srm",
    "prob_best",
]
