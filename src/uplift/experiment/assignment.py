"""Deterministic, salted-hash assignment of customers to arms, stratified by segment.

Why hashing: the arm must be reproducible from (salt, customer id) alone, with no stored random
state, so any system can recompute it and re-running never reshuffles customers.

Hash mode (default, ``balanced=False``), as in Statsig/GrowthBook:

* ``bucket = int(sha256(f"{salt}:{id}")[:8 bytes]) mod 10_000`` gives each customer a uniform
  number ``u = bucket / 10_000`` in [0, 1).
* Arms own contiguous intervals of [0, 1) proportional to their weights (realised at 1/10,000
  granularity; ``assignment_probability`` reports the realised share).
* The arm depends only on the salt, the id and the weights, so the same salt always gives the same
  arm, a different salt re-randomises, and adding customers never moves existing ones.
* Strata do not enter the hash, so balance within each stratum holds in expectation: counts are
  multinomial with the arm weights (a within-stratum chi-square test rejects at its nominal rate).

Balanced mode (``balanced=True``): within each stratum customers are sorted by their hash value
(a salt-determined random order) and dealt arms by a smooth weighted round-robin, i.e. a repeating
weighted block in which each next customer goes to the arm furthest below its weighted target
(Webster divisor order). Counts per stratum are then exact up to rounding (|n_arm - w n| < 1 per
arm), and because a fixed pattern is laid over a uniformly random order this is complete
randomisation with fixed counts: each customer's probability is ``n_arm / n_stratum``.
Trade-off, stated plainly: an arm now depends on the customer's *rank* in its stratum, so
re-running with extra customers can move existing customers. Stability is kept only by appending
new customers as a new wave: pass the earlier assignment as ``previous``; its customers keep their
rows verbatim and only the new customers are dealt (in hash order, filling each arm's shortfall
against its weight over the stratum's new total). Balance then holds for the combined stratum,
while the logged probability of a new customer is its wave's ``n_arm / n_wave``.

Global holdout: ``holdout_share`` of all customers is excluded from every test by a second hash,
``sha256(f"{holdout_key}:{id}")``, which does not involve the experiment salt. The same customers
are therefore held out of every experiment that uses the same share, and the holdout is independent
of the arm hash. Held-out customers get arm ``"holdout"``.

``assignment_probability`` is the unconditional probability of the label the customer got:
``(1 - H) * w_arm`` for arms and ``H`` for the holdout, where H is the realised holdout share
(in balanced mode ``w_arm`` is the customer's stratum or wave share).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from uplift.hashing import hash_values

BUCKETS = 10_000
HOLDOUT = "holdout"
DEFAULT_HOLDOUT_KEY = "uplift-global-holdout"
ALL_STRATA = "all"
ASSIGNMENT_COLUMNS = ["customer_id", "stratum", "arm", "assignment_probability", "bucket"]


def hash_buckets(customer_ids: Sequence[object] | np.ndarray | pd.Series, salt: str) -> np.ndarray:
    """Bucket in ``0 .. 9_999`` per customer; ``bucket / 10_000`` is the customer's uniform u."""
    return (hash_values(customer_ids, salt) % np.uint64(BUCKETS)).astype(np.int64)


def _weights(arms: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    if not arms:
        raise ValueError("assign.arms: give at least one arm with a positive weight")
    names = [str(a) for a in arms]
    if HOLDOUT in names:
        raise ValueError(f"assign.arms: {HOLDOUT!r} is reserved for the global holdout")
    if len(set(names)) != len(names):
        raise ValueError(f"assign.arms: arm names must be unique, got {names}")
    w = np.array([float(v) for v in arms.values()])
    bad = [n for n, v in zip(names, w, strict=True) if not (math.isfinite(v) and v > 0)]
    if bad:
        raise ValueError(f"assign.arms: weights must be finite and > 0; check arms {bad}")
    return names, w / w.sum()


def _bucket_edges(names: list[str], w: np.ndarray) -> np.ndarray:
    """Upper bucket edge per arm; arm i owns buckets [edges[i-1], edges[i])."""
    edges = np.rint(np.cumsum(w) * BUCKETS).astype(np.int64)
    edges[-1] = BUCKETS
    widths = np.diff(np.concatenate([[0], edges]))
    empty = [n for n, k in zip(names, widths, strict=True) if k <= 0]
    if empty:
        raise ValueError(
            f"assign.arms: arms {empty} get no bucket out of {BUCKETS:,}; "
            f"weights below 1/{BUCKETS:,} of the total cannot be realised"
        )
    return edges


def _deal(n: int, w: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Arm index for each of ``n`` slots in Webster divisor order, given ``start`` counts.

    Slot j of arm a (counting from its existing ``start[a]`` members) has priority
    ``(start[a] + j + 0.5) / w[a]``; the n smallest priorities are taken in order, ties by arm
    order. With ``start = 0`` this is a repeating weighted block in which every prefix is within
    one customer of its weighted target per arm.
    """
    if n == 0:
        return np.empty(0, dtype=np.int64)
    k = len(w)
    j = np.arange(n, dtype=float)
    prio = (start[:, None] + j[None, :] + 0.5) / w[:, None]  # (k, n)
    arm = np.repeat(np.arange(k), n)
    flat = prio.ravel()
    order = np.lexsort((arm, flat))[:n]
    return arm[order]


def assign(
    customer_ids: Sequence[object] | np.ndarray | pd.Series,
    arms: Mapping[str, float],
    salt: str,
    strata: Sequence[object] | np.ndarray | pd.Series | None = None,
    holdout_share: float = 0.0,
    *,
    balanced: bool = False,
    previous: pd.DataFrame | None = None,
    holdout_key: str = DEFAULT_HOLDOUT_KEY,
) -> pd.DataFrame:
    """Assign each customer an arm (or the global holdout), reproducibly from the salt.

    Returns one row per input customer, in input order, with columns ``customer_id, stratum, arm,
    assignment_probability, bucket`` (``bucket`` is the experiment hash bucket, for audits).
    See the module docstring for the hash and balanced modes and their stability guarantees.
    """
    if not isinstance(salt, str) or not salt:
        raise ValueError("assign.salt: give a non-empty string (one salt per experiment)")
    names, w = _weights(arms)
    h = float(holdout_share)
    if not (0.0 <= h < 1.0):
        raise ValueError(f"assign.holdout_share: must be in [0, 1), got {holdout_share!r}")
    ids = pd.Series(np.asarray(customer_ids, dtype=object))
    if ids.isna().any():
        raise ValueError(f"assign.customer_ids: {int(ids.isna().sum())} missing ids")
    keys = ids.map(str)
    if keys.duplicated().any():
        dup = keys[keys.duplicated()].unique()[:5].tolist()
        raise ValueError(f"assign.customer_ids: ids must be unique; duplicated: {dup}")
    if strata is None:
        stratum = pd.Series([ALL_STRATA] * len(ids), dtype=object)
    else:
        stratum = pd.Series(np.asarray(strata, dtype=object))
        if len(stratum) != len(ids):
            raise ValueError(
                f"assign.strata: {len(stratum)} strata for {len(ids)} customers; give one per customer"
            )
        if stratum.isna().any():
            raise ValueError(
                f"assign.strata: {int(stratum.isna().sum())} customers have no stratum"
            )

    n = len(ids)
    hold_buckets = int(round(h * BUCKETS))
    h_real = hold_buckets / BUCKETS
    in_holdout = hash_buckets(keys, holdout_key) < hold_buckets
    raw = hash_values(keys, salt)
    bucket = (raw % np.uint64(BUCKETS)).astype(np.int64)

    arm = np.empty(n, dtype=object)
    prob = np.empty(n, dtype=float)
    arm[in_holdout] = HOLDOUT
    prob[in_holdout] = h_real

    # customers kept verbatim from an earlier wave
    keep = np.zeros(n, dtype=bool)
    prev = None
    if previous is not None:
        need = {"customer_id", "stratum", "arm", "assignment_probability"}
        if not need <= set(previous.columns):
            raise ValueError(
                f"assign.previous: needs columns {sorted(need)}; has {list(previous.columns)}"
            )
        prev = previous.assign(_key=previous["customer_id"].map(str)).drop_duplicates("_key")
        prev = prev.set_index("_key")
        keep = keys.isin(prev.index).to_numpy()

    todo = ~in_holdout & ~keep
    if not balanced:
        edges = _bucket_edges(names, w)
        idx = np.searchsorted(edges, bucket[todo], side="right")
        widths = np.diff(np.concatenate([[0], edges])) / BUCKETS
        arm[todo] = np.asarray(names, dtype=object)[idx]
        prob[todo] = (1 - h_real) * widths[idx]
    else:
        name_idx = {a: i for i, a in enumerate(names)}
        strat_arr = stratum.to_numpy()
        for s in pd.unique(strat_arr[todo]):
            members = np.flatnonzero(todo & (strat_arr == s))
            start = np.zeros(len(names))
            if prev is not None:
                old = prev.loc[prev["stratum"].astype(str) == str(s), "arm"]
                counts = old[old != HOLDOUT].map(name_idx).dropna().astype(int)
                start = np.bincount(counts.to_numpy(), minlength=len(names)).astype(float)
            order = np.lexsort((keys.to_numpy()[members], raw[members]))
            dealt = _deal(len(members), w, start)
            share = np.bincount(dealt, minlength=len(names)) / len(members)
            arm[members[order]] = np.asarray(names, dtype=object)[dealt]
            prob[members[order]] = (1 - h_real) * share[dealt]

    out = pd.DataFrame(
        {
            "customer_id": ids.to_numpy(),
            "stratum": stratum.to_numpy(),
            "arm": arm,
            "assignment_probability": prob,
            "bucket": bucket,
        }
    )
    if prev is not None and keep.any():  # keep is all False without previous
        old = prev.loc[keys[keep].to_numpy()]
        out.loc[keep, "stratum"] = old["stratum"].to_numpy()
        out.loc[keep, "arm"] = old["arm"].to_numpy()
        out.loc[keep, "assignment_probability"] = old["assignment_probability"].to_numpy()
    return out[ASSIGNMENT_COLUMNS]


def expected_weights(arms: Mapping[str, float], holdout_share: float = 0.0) -> dict[str, float]:
    """Realised label shares (arms and, if any, holdout) that :func:`assign` targets in hash mode.

    Feed this to :func:`uplift.experiment.health.srm_check` as ``expected``.
    """
    names, w = _weights(arms)
    edges = _bucket_edges(names, w)
    widths = np.diff(np.concatenate([[0], edges])) / BUCKETS
    h = round(float(holdout_share) * BUCKETS) / BUCKETS
    out = {a: float((1 - h) * x) for a, x in zip(names, widths, strict=True)}
    if h > 0:
        out[HOLDOUT] = h
    return out
