"""Customer-level targets: turn the allocation's counts per (segment, arm) into a list of ids.

The optimizer decides *how many* customers of each segment get each arm; planners execute a
list. :func:`customer_targets` picks *which* customers, so that per (segment, arm) the list has
exactly the allocated number of rows and the cost of the listed customers equals the
allocation's spend (whenever the data hold enough customers; see "Shortfall").

Who is eligible: every experiment customer of the segment, whatever arm they had in the test
(control or treated). The plan is for the next campaign to the same customer base, and the
uplift estimates describe what an arm does to a customer of the segment, not to the customers
who happened to get it in the test.

How customers are chosen, per segment:

* **Hash order** (no customer scores): the segment's customers are ordered by a salted hash,
  ``sha256(f"{seed}:{customer_id}")`` (first 8 bytes, :func:`~uplift.experiment.assignment.
  hash_values`; ties by the id's text). Arms are taken in a stable order (sorted by tactic, then
  arm) and dealt consecutive runs of that list: the first ``customers`` of the first arm, the next
  ones to the second arm, and so on. A customer therefore gets at most one arm; the same seed
  always gives the same list, another seed another one. Each row carries its cell's
  ``profit_per_customer`` and ``prob_profit_positive``.
* **Covariate model** (``scores``: the row-level model's posterior per customer x arm, as in
  ``customer_scores.csv``): a customer's expected profit from arm ``a`` of tactic ``t`` is
  ``value_t[segment] x uplift_mean - cost_a``. The allocated counts are then given to the
  customers who earn the most in total, at most one arm per customer: a small transportation
  problem per segment, solved exactly (HiGHS dual simplex via ``scipy.optimize.linprog``: the
  constraint matrix is totally unimodular, so the optimal vertex is integral; checked, with
  ``scipy.optimize.milp`` as a fallback). Customers with identical scores (same
  covariate pattern) are one supply node, and within a node customers are dealt in hash order, so
  the seed still decides among equals. Arms without scores (non-binary tactics) enter the same
  problem with their cell's constant profit, so they get the customers the scored arms leave,
  in hash order. ``prob_profit_positive`` of a scored row is ``P(uplift > cost / value)`` under a
  normal approximation of the customer's uplift posterior (``uplift_mean``, ``uplift_sd``); with
  zero cost it is the scores' exact ``prob_positive``.

With ``max_offers_per_customer = k > 1`` (``optimize.max_offers_per_customer``) a customer may get
up to k different arms: hash order then deals each arm's run cyclically through the list
(McNaughton's wrap-around), which never gives one customer the same arm twice.

Shortfall: with ``optimize.population_scale > 1`` the allocation can treat more customers of a
segment than the data hold. Ids are never invented: every customer of the segment is then
selected, the arms' counts are scaled in proportion to the allocation (largest remainder, ties in
arm order), and :attr:`CustomerTargets.notes` says so per segment. A fractional allocation
(``optimize.integer=false``) is rounded down per cell, also with a note.

``rank``: 1 = highest ``expected_incremental_profit`` over all listed rows, ties by hash order
(then id text, then arm order): deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse import coo_matrix
from scipy.special import ndtr

from uplift.hashing import hash_values

__all__ = [
    "COVARIATE",
    "HASH",
    "TARGET_COLUMNS",
    "CustomerTargets",
    "TargetsError",
    "customer_targets",
]

TARGET_COLUMNS = [
    "customer_id",
    "segment",
    "arm",
    "tactic",
    "expected_incremental_profit",
    "prob_profit_positive",
    "rank",
    "selection",
    "cost_per_customer",
]
RECONCILIATION_COLUMNS = [
    "segment",
    "tactic",
    "arm",
    "allocated",
    "targeted",
    "shortfall",
    "spend_allocated",
    "spend_targeted",
    "selection",
]
HASH = "hash"
COVARIATE = "covariate_model"
_ALLOCATION_NEEDS = (
    "segment",
    "tactic",
    "arm",
    "customers",
    "cost_per_customer",
    "profit_per_customer",
    "prob_profit_positive",
)
_SCORE_NEEDS = ("customer_id", "arm", "uplift_mean", "uplift_sd")


class TargetsError(ValueError):
    """The allocation, customers or scores do not fit together; the message says which and how."""


@dataclass
class CustomerTargets:
    """The target list and how it reconciles with the allocation.

    ``table``: one row per customer x arm selected, columns :data:`TARGET_COLUMNS`, sorted by
    ``rank``. ``reconciliation``: per (segment, arm) the allocated and targeted customers and
    spend. ``notes``: shortfalls and rounding, in words.
    """

    table: pd.DataFrame
    reconciliation: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    seed: int = 0

    @property
    def shortfall(self) -> int:
        """Allocated customers the data could not supply (0 when the list matches the plan)."""
        return int(self.reconciliation["shortfall"].sum())

    def summary(self) -> dict[str, Any]:
        """Plain-JSON facts for summary.json."""
        t = self.table
        return {
            "rows": len(t),
            "customers": int(t["customer_id"].nunique()),
            "spend": float(t["cost_per_customer"].sum()),
            "expected_incremental_profit": float(t["expected_incremental_profit"].sum()),
            "selection": {str(k): int(v) for k, v in t["selection"].value_counts().items()},
            "shortfall": self.shortfall,
            "seed": self.seed,
            "notes": list(self.notes),
        }


def customer_targets(
    allocation: pd.DataFrame,
    customers: pd.DataFrame,
    *,
    seed: int,
    scores: pd.DataFrame | None = None,
    values: Mapping[str, pd.Series] | None = None,
    max_offers_per_customer: int = 1,
) -> CustomerTargets:
    """Which customers get which arm, consistent with ``allocation`` (see the module docstring).

    ``allocation``: the optimizer's table (``Allocation.table`` / allocation.csv); rows with
    ``unit == "spend"`` or 0 customers are ignored. ``customers``: the validated customer rows
    (``CustomerData.frame``; needs ``customer_id`` and ``segment``). ``seed``: salt of the hash
    order. ``scores``: per customer x arm posterior of the covariate model (columns
    ``customer_id, arm, uplift_mean, uplift_sd`` and optionally ``tactic, prob_positive``);
    ``values``: tactic -> value of one unit of uplift per segment (needed with ``scores``).
    Arm costs are the allocation's ``cost_per_customer``.
    """
    k = int(max_offers_per_customer)
    if k < 1:
        raise TargetsError(f"max_offers_per_customer must be >= 1, got {max_offers_per_customer!r}")
    notes: list[str] = []
    cells = _customer_cells(allocation, notes)
    frame, keys = _check_customers(customers)
    seg_of = frame["segment"].astype(str).to_numpy()
    missing = sorted(set(cells["segment"]) - set(seg_of))
    if missing:
        raise TargetsError(
            f"allocation treats customers of segment(s) {_show(missing)} that have no rows in the "
            "customer data; pass the same validated data the allocation was solved on "
            "(CustomerData.frame), with the same segment columns"
        )
    hpos = _hash_positions(keys, str(int(seed)))
    score_tab = _score_table(scores, values, cells, keys, seg_of)

    # customers grouped by segment, in hash order within each
    seg_text = seg_of.astype(str)
    by_seg = np.argsort(hpos)
    by_seg = by_seg[np.argsort(seg_text[by_seg], kind="stable")]
    seg_sorted = seg_text[by_seg]
    cell_text = {c: cells[c].to_numpy(dtype=str) for c in ("segment", "tactic", "arm")}
    cells = cells.iloc[
        np.lexsort((cell_text["arm"], cell_text["tactic"], cell_text["segment"]))
    ].reset_index(drop=True)
    cell_seg = cells["segment"].to_numpy(dtype=str)
    arm_of, tactic_of = cells["arm"].to_numpy(dtype=object), cells["tactic"].to_numpy(dtype=object)
    cost_of = cells["cost_per_customer"].to_numpy(dtype=float)
    want_all = cells["customers"].to_numpy(dtype=np.int64)
    segments = pd.unique(cell_seg)
    c_lo = np.searchsorted(cell_seg, segments, side="left")
    c_hi = np.searchsorted(cell_seg, segments, side="right")
    m_lo = np.searchsorted(seg_sorted, segments, side="left")
    m_hi = np.searchsorted(seg_sorted, segments, side="right")

    out: dict[str, list[np.ndarray]] = {k_: [] for k_ in ("row", "cell", "profit", "prob")}
    got_all = np.zeros(len(cells), dtype=np.int64)
    scored_cell = np.zeros(len(cells), dtype=bool)
    for seg, a, b, lo, hi in zip(segments, c_lo, c_hi, m_lo, m_hi, strict=True):
        members = by_seg[lo:hi]
        want = want_all[a:b]
        counts = _apportion(want, len(members), k)
        if (counts < want).any():
            detail = ", ".join(
                f"{arm} {c:,} of {w:,}"
                for arm, c, w in zip(arm_of[a:b], counts, want, strict=True)
                if c < w
            )
            notes.append(
                f"segment {seg!r}: the allocation treats {int(want.sum()):,} customers but the "
                f"data hold {len(members):,} (is optimize.population_scale > 1?); every customer "
                f"of the segment is listed (at most {k} arm(s) each) and the arms are scaled in "
                f"proportion: {detail}"
            )
        profit, prob, scored = _cell_matrices(cells.iloc[a:b], members, score_tab)
        who, j = _choose(profit, counts, k)
        out["row"].append(members[who])
        out["cell"].append(a + j)
        out["profit"].append(profit[who, j])
        out["prob"].append(prob[who, j])
        got_all[a:b] = np.bincount(j, minlength=b - a)
        scored_cell[a:b] = scored

    cat = {k_: np.concatenate(v) if v else np.empty(0, dtype=np.int64) for k_, v in out.items()}
    rows, cell = cat["row"].astype(np.int64), cat["cell"].astype(np.int64)
    if not len(rows):
        notes.append("the allocation treats no customers: the target list is empty")
    # rank: profit (descending), then hash position, then arm order
    order = np.lexsort((cell, hpos[rows], -cat["profit"].astype(float)))
    rows, cell = rows[order], cell[order]
    table = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].to_numpy()[rows],
            "segment": cell_seg[cell].astype(object),
            "arm": arm_of[cell],
            "tactic": tactic_of[cell],
            "expected_incremental_profit": cat["profit"].astype(float)[order],
            "prob_profit_positive": cat["prob"].astype(float)[order],
            "rank": np.arange(1, len(rows) + 1, dtype=np.int64),
            "selection": np.where(scored_cell[cell], COVARIATE, HASH).astype(object),
            "cost_per_customer": cost_of[cell],
        }
    )
    recon = pd.DataFrame(
        {
            "segment": cell_seg.astype(object),
            "tactic": tactic_of,
            "arm": arm_of,
            "allocated": want_all,
            "targeted": got_all,
            "shortfall": want_all - got_all,
            "spend_allocated": cells["spend"].to_numpy(dtype=float),
            "spend_targeted": got_all * cost_of,
            "selection": np.where(scored_cell, COVARIATE, HASH).astype(object),
        }
    )
    return CustomerTargets(table, recon, notes, int(seed))


# ---- inputs -------------------------------------------------------------------------------
def _show(values: Sequence[object], k: int = 5) -> str:
    vals = [repr(v) for v in values]
    return ", ".join(vals[:k]) + (f", ... ({len(vals)} in all)" if len(vals) > k else "")


def _hash_positions(keys: np.ndarray, salt: str) -> np.ndarray:
    """Each customer's position in the salted hash order (ties, practically never, by id text)."""
    h = hash_values(keys, salt)
    by_text = np.empty(len(keys), dtype=np.int64)
    by_text[np.argsort(keys.astype(str), kind="stable")] = np.arange(len(keys))
    pos = np.empty(len(keys), dtype=np.int64)
    pos[np.lexsort((by_text, h))] = np.arange(len(keys))
    return pos


def _customer_cells(allocation: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """The allocation's customer decisions with at least one customer, counts as integers."""
    if not isinstance(allocation, pd.DataFrame):
        raise TargetsError("allocation must be a DataFrame (Allocation.table or allocation.csv)")
    need = [c for c in _ALLOCATION_NEEDS if c not in allocation.columns]
    if need:
        raise TargetsError(
            f"allocation lacks column(s) {need}; pass Allocation.table (or allocation.csv), "
            f"which has {list(_ALLOCATION_NEEDS)}"
        )
    cells = allocation
    if "unit" in cells.columns:
        cells = cells[cells["unit"].astype(str) == "customers"]
    cells = cells.copy()
    n = pd.to_numeric(cells["customers"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(n) | (n < 0)
    if bad.any():
        raise TargetsError(
            f"allocation.customers must be finite numbers >= 0; found "
            f"{_show(cells.loc[bad, 'customers'].tolist())}"
        )
    whole = np.floor(n + 1e-9)
    if (n - whole > 1e-6).any():
        notes.append(
            f"the allocation is fractional (optimize.integer=false): customers rounded down in "
            f"{int((n - whole > 1e-6).sum())} cell(s), {float((n - whole).sum()):,.3g} in all"
        )
    cells["customers"] = whole.astype(np.int64)
    cells = cells[cells["customers"] > 0]
    for col in ("segment", "tactic", "arm"):
        cells[col] = cells[col].astype(str)
    for col in ("cost_per_customer", "profit_per_customer", "prob_profit_positive"):
        vals = pd.to_numeric(cells[col], errors="coerce")
        if not np.isfinite(vals.to_numpy(dtype=float)).all():
            raise TargetsError(f"allocation.{col} has missing or non-finite values in treated rows")
        cells[col] = vals.astype(float)
    if "spend" in cells.columns:
        cells["spend"] = pd.to_numeric(cells["spend"], errors="coerce").astype(float)
    else:
        cells["spend"] = cells["customers"] * cells["cost_per_customer"]
    dup = cells.duplicated(["segment", "arm"], keep=False)
    if dup.any():
        pairs = sorted(set(zip(cells.loc[dup, "segment"], cells.loc[dup, "arm"], strict=True)))
        raise TargetsError(
            f"allocation has several customer rows for (segment, arm) {_show(pairs)}; "
            "expected one row per (segment, arm)"
        )
    tactics = cells.groupby("arm")["tactic"].nunique()
    if (tactics > 1).any():
        raise TargetsError(
            f"arm(s) {_show(tactics[tactics > 1].index.tolist())} appear with several tactics in "
            "the allocation; an arm delivers one tactic"
        )
    return cells.reset_index(drop=True)


def _check_customers(customers: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    if not isinstance(customers, pd.DataFrame):
        raise TargetsError("customers must be a DataFrame (CustomerData.frame)")
    need = [c for c in ("customer_id", "segment") if c not in customers.columns]
    if need:
        raise TargetsError(
            f"customers lack column(s) {need}; pass CustomerData.frame (validated rows with "
            "customer_id and segment)"
        )
    frame = customers.reset_index(drop=True)
    if frame["customer_id"].isna().any() or frame["segment"].isna().any():
        raise TargetsError("customers have missing customer_id or segment values")
    keys = frame["customer_id"].map(str).to_numpy(dtype=object)
    dup = pd.Series(keys).duplicated()
    if dup.any():
        raise TargetsError(
            f"customer ids must be unique (as text); duplicated: {_show(pd.unique(keys[dup]).tolist())}"
        )
    return frame, keys


@dataclass
class _Scores:
    """Per scored arm, over all customers (row order of ``customers``): expected profit and
    P(profit > 0); NaN where the arm has no score or does not treat the customer's segment."""

    arms: dict[str, tuple[np.ndarray, np.ndarray]]


def _score_table(
    scores: pd.DataFrame | None,
    values: Mapping[str, pd.Series] | None,
    cells: pd.DataFrame,
    keys: np.ndarray,
    seg_of: np.ndarray,
) -> _Scores | None:
    if scores is None:
        return None
    if not isinstance(scores, pd.DataFrame):
        raise TargetsError("scores must be a DataFrame like customer_scores.csv")
    need = [c for c in _SCORE_NEEDS if c not in scores.columns]
    if need:
        raise TargetsError(
            f"scores lack column(s) {need}; pass the covariate model's customer scores "
            "(customer_scores.csv columns customer_id, tactic, arm, uplift_mean, uplift_sd, ...)"
        )
    arm = scores["arm"].astype(str).to_numpy(dtype=object)
    keep = pd.Index(pd.unique(cells["arm"])).get_indexer(arm) >= 0
    s = scores.loc[keep]
    arm = arm[keep]
    if s.empty:
        return _Scores({})
    skeys = s["customer_id"].map(str).to_numpy(dtype=object)
    pos = pd.Index(keys).get_indexer(skeys)
    if (pos < 0).any():
        raise TargetsError(
            f"scores hold {int((pos < 0).sum()):,} rows for customer ids not in the customer "
            f"data, e.g. {_show(pd.unique(skeys[pos < 0]).tolist(), 3)}; score the same rows"
        )
    mean = s["uplift_mean"].to_numpy(dtype=float)
    sd = s["uplift_sd"].to_numpy(dtype=float)
    if not (np.isfinite(mean).all() and np.isfinite(sd).all()):
        raise TargetsError("scores.uplift_mean and scores.uplift_sd must be finite")
    if (sd < 0).any():
        raise TargetsError("scores.uplift_sd must be >= 0")
    ppos = s["prob_positive"].to_numpy(dtype=float) if "prob_positive" in s.columns else None
    tactic_of = dict(zip(cells["arm"], cells["tactic"], strict=False))
    if "tactic" in s.columns:
        stactic = s["tactic"].astype(str).to_numpy(dtype=object)
        wrong = sorted({a for a, t in zip(arm, stactic, strict=True) if t != tactic_of[a]})
        if wrong:
            expected = ", ".join(f"{a}: {tactic_of[a]}" for a in wrong)
            raise TargetsError(
                f"scores give arm(s) {_show(wrong)} a tactic other than the allocation's "
                f"({expected})"
            )
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    n = len(keys)
    for a in sorted(set(arm)):
        tactic = tactic_of[a]
        if values is None or tactic not in values:
            raise TargetsError(
                f"scores cover arm {a!r} (tactic {tactic!r}) but values has no value per unit "
                f"for tactic {tactic!r}; pass values={{tactic: Series by segment}} (the "
                "pipeline's value_per_unit), or no scores for hash order"
            )
        v = pd.Series(values[tactic])
        v = pd.Series(v.to_numpy(dtype=float), index=v.index.map(str))
        mine = cells[cells["arm"] == a]
        lack = [x for x in mine["segment"] if x not in v.index or not np.isfinite(v.loc[x])]
        if lack:
            raise TargetsError(
                f"values[{tactic!r}] has no finite value for segment(s) {_show(lack)}, which "
                f"arm {a!r} treats"
            )
        rows = pos[arm == a]
        if len(np.unique(rows)) < len(rows):
            raise TargetsError(f"scores have several rows for one customer and arm {a!r}")
        seg = seg_of[rows]
        val = v.reindex(seg).to_numpy(dtype=float)  # NaN outside the arm's segments
        cost = mine.set_index("segment")["cost_per_customer"].reindex(seg).to_numpy(dtype=float)
        sel = arm == a
        profit, prob = np.full(n, np.nan), np.full(n, np.nan)
        profit[rows] = val * mean[sel] - cost
        prob[rows] = _prob_profit(
            mean[sel], sd[sel], val, cost, None if ppos is None else ppos[sel]
        )
        out[a] = (profit, prob)
    return _Scores(out)


def _prob_profit(
    mean: np.ndarray, sd: np.ndarray, value: np.ndarray, cost: np.ndarray, pos: np.ndarray | None
) -> np.ndarray:
    """P(value x uplift - cost > 0) with uplift ~ Normal(mean, sd); exact ``prob_positive``
    from the posterior draws when cost is 0 and value > 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        thresh = np.where(value != 0, cost / np.where(value != 0, value, 1.0), 0.0)
        z = np.where(sd > 0, (mean - thresh) / np.where(sd > 0, sd, 1.0), 0.0)
    above = np.where(sd > 0, ndtr(z), (mean > thresh).astype(float))  # P(uplift > thresh)
    below = np.where(sd > 0, ndtr(-z), (mean < thresh).astype(float))
    prob = np.where(value > 0, above, np.where(value < 0, below, 0.0))
    if pos is not None:
        exact = (cost == 0) & (value > 0) & np.isfinite(pos)
        prob = np.where(exact, pos, prob)
    return prob


# ---- choosing -----------------------------------------------------------------------------
def _apportion(want: np.ndarray, n: int, k: int) -> np.ndarray:
    """Counts per arm the segment's ``n`` customers can supply: the allocation's when possible,
    else scaled in proportion (largest remainder, ties in arm order), at most ``n`` per arm."""
    total = int(want.sum())
    if total <= k * n and (want <= n).all():
        return want.copy()
    target = min(total, k * n)
    raw = want * (target / total)
    out = np.floor(raw + 1e-9).astype(np.int64)
    extra = target - int(out.sum())
    order = np.argsort(-(raw - out), kind="stable")
    out[order[:extra]] += 1
    return np.minimum(out, n)


def _cell_matrices(
    seg_cells: pd.DataFrame, members: np.ndarray, scores: _Scores | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, m) expected profit and P(profit > 0) per member (hash order) x arm; scored arms."""
    n, m = len(members), len(seg_cells)
    profit = np.tile(seg_cells["profit_per_customer"].to_numpy(dtype=float), (n, 1))
    prob = np.tile(seg_cells["prob_profit_positive"].to_numpy(dtype=float), (n, 1))
    scored = np.zeros(m, dtype=bool)
    if scores is None:
        return profit, prob, scored
    for j, arm in enumerate(seg_cells["arm"]):
        if arm not in scores.arms:
            continue
        p, q = scores.arms[arm]
        p, q = p[members], q[members]
        lack = np.isnan(p)
        if lack.any():
            seg = seg_cells["segment"].iloc[0]
            raise TargetsError(
                f"scores cover arm {arm!r} but not {int(lack.sum()):,} of the {n:,} customers "
                f"of segment {seg!r}; score every customer (predict_uplift on "
                "CustomerData.frame)"
            )
        profit[:, j], prob[:, j] = p, q
        scored[j] = True
    return profit, prob, scored


def _choose(profit: np.ndarray, counts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(customer position, arm index) pairs: ``counts[j]`` customers per arm, at most ``k`` arms
    per customer and each arm once, maximising total profit; hash order among equals.

    Customers (rows, already in hash order) with identical profit rows form one group; the
    group x arm counts come from an exact transportation problem (an LP whose matrix is
    totally unimodular, so the simplex optimum is integral; a MILP backs it up),
    then each group deals its counts to its members in hash order, arm runs wrapping around.
    """
    n, m = profit.shape
    if counts.sum() == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    if n and (profit == profit[0]).all():
        groups, inv = profit[:1], np.zeros(n, dtype=np.int64)
    else:
        groups, inv = np.unique(profit, axis=0, return_inverse=True)
        inv = inv.ravel()
    size = np.bincount(inv, minlength=len(groups))
    x = _group_counts(groups, size, counts, k)
    by_group = np.argsort(inv, kind="stable")  # hash order kept within each group
    ends = np.cumsum(size)
    who, arm = [], []
    for g in np.flatnonzero(x.sum(axis=1)):
        mem = by_group[ends[g] - size[g] : ends[g]]
        start = 0
        for j in range(m):
            c = int(x[g, j])
            if c:
                who.append(mem[(start + np.arange(c)) % len(mem)])
                arm.append(np.full(c, j, dtype=np.int64))
                start = (start + c) % len(mem)
    return np.concatenate(who), np.concatenate(arm)


def _group_counts(profit: np.ndarray, size: np.ndarray, counts: np.ndarray, k: int) -> np.ndarray:
    """Integer customers x[g, j] per group and arm: sum_g x = counts, sum_j x[g] <= k size[g],
    x[g, j] <= size[g], maximising sum profit x."""
    G, m = profit.shape
    if G == 1:
        return counts[None, :].astype(np.int64)
    if m == 1:  # one arm: the best groups first (groups have distinct profits)
        x = np.zeros((G, 1), dtype=np.int64)
        left = int(counts[0])
        for g in np.argsort(-profit[:, 0], kind="stable"):
            take = min(left, int(size[g]))
            x[g, 0], left = take, left - take
        return x
    nv = G * m
    rows = np.r_[np.repeat(np.arange(G), m), G + np.tile(np.arange(m), G)]
    cols = np.r_[np.arange(nv), np.arange(nv)]
    A = coo_matrix((np.ones(2 * nv), (rows, cols)), shape=(G + m, nv)).tocsr()
    cap = k * size.astype(float)
    need = counts.astype(float)
    c = -(profit / max(1.0, float(np.abs(profit).max()))).ravel()
    ub = np.repeat(size.astype(float), m)
    # the matrix is an incidence matrix (totally unimodular): a simplex vertex is integral
    res = linprog(
        c,
        A_ub=A[:G],
        b_ub=cap,
        A_eq=A[G:],
        b_eq=need,
        bounds=np.column_stack([np.zeros(nv), ub]),
        method="highs-ds",
    )
    ok = res.status == 0 and res.x is not None
    if not ok or np.abs(res.x - np.rint(res.x)).max() > 1e-6:
        res = milp(  # should not happen; the integer program gives the same optimum
            c,
            constraints=LinearConstraint(A, np.r_[np.zeros(G), need], np.r_[cap, need]),
            bounds=Bounds(0.0, ub),
            integrality=np.ones(nv),
        )
        if res.x is None or res.status != 0:
            raise TargetsError(f"the per-segment assignment failed ({res.message}); please report")
    x = np.rint(res.x).reshape(G, m).astype(np.int64)
    if (x.sum(axis=0) != counts).any() or (x.sum(axis=1) > k * size).any():
        raise TargetsError("the per-segment assignment returned inconsistent counts; please report")
    return x


# ---- in the engine ---------------------------------------------------------------------------
def customer_targets_engine(allocation: pd.DataFrame, rows: Any, *, seed: int) -> CustomerTargets:
    """:func:`customer_targets` in hash order (no scores, one offer per customer) computed where
    the rows live: ``rows`` is the engine's canonical table (an Ibis expression with
    ``customer_id`` and ``segment``). Each customer's place in its segment's salted hash order
    (``sha256(f"{seed}:{id}")``, first 8 bytes, as hex text: the same order as the integers;
    ties by the id's text) is a window function; the plan's per-segment decisions, as ranges
    of places per arm, are joined back to the rows there, so only the target list comes back.
    The same list as :func:`customer_targets` on the same rows.
    """
    import ibis

    notes: list[str] = []
    cells = _customer_cells(allocation, notes)
    text = {c: cells[c].to_numpy(dtype=str) for c in ("segment", "tactic", "arm")}
    cells = cells.iloc[np.lexsort((text["arm"], text["tactic"], text["segment"]))]
    cells = cells.reset_index(drop=True)
    sizes_t = rows.group_by("segment").aggregate(n=rows.count()).to_pandas()
    sizes = dict(zip(sizes_t["segment"].astype(str), sizes_t["n"].astype(int), strict=True))
    missing = sorted(set(cells["segment"]) - set(sizes))
    if missing:
        raise TargetsError(
            f"allocation treats customers of segment(s) {_show(missing)} that have no rows in the "
            "customer data; pass the same validated data the allocation was solved on "
            "(CustomerData.frame), with the same segment columns"
        )
    want_all = cells["customers"].to_numpy(dtype=np.int64)
    got_all = np.zeros(len(cells), dtype=np.int64)
    lo_all = np.zeros(len(cells), dtype=np.int64)
    seg = cells["segment"].to_numpy(dtype=str)
    for s in pd.unique(seg):
        idx = np.flatnonzero(seg == s)
        want = want_all[idx]
        counts = _apportion(want, sizes[s], 1)
        if (counts < want).any():
            detail = ", ".join(
                f"{arm} {c:,} of {w:,}"
                for arm, c, w in zip(cells["arm"].to_numpy()[idx], counts, want, strict=True)
                if c < w
            )
            notes.append(
                f"segment {s!r}: the allocation treats {int(want.sum()):,} customers but the "
                f"data hold {sizes[s]:,} (is optimize.population_scale > 1?); every customer "
                f"of the segment is listed (at most 1 arm(s) each) and the arms are scaled in "
                f"proportion: {detail}"
            )
        got_all[idx] = counts
        lo_all[idx] = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ranges = pd.DataFrame(
        {
            "r_segment": seg,
            "lo": lo_all,
            "hi": lo_all + got_all,
            "cell": np.arange(len(cells), dtype=np.int64),
            "arm": cells["arm"].astype(str).to_numpy(),
            "tactic": cells["tactic"].astype(str).to_numpy(),
            "expected_incremental_profit": cells["profit_per_customer"].to_numpy(dtype=float),
            "prob_profit_positive": cells["prob_profit_positive"].to_numpy(dtype=float),
            "cost_per_customer": cells["cost_per_customer"].to_numpy(dtype=float),
        }
    )
    ranges = ranges[ranges["hi"] > ranges["lo"]]
    # only the treated segments' rows are hashed and ordered: a customer's place depends on
    # its own segment's rows alone (10M customers, 2 of 48 segments treated: 8 -> 1 s)
    treated = sorted(set(ranges["r_segment"]))
    rows = rows.filter(rows.segment.isin(treated)) if treated else rows.limit(0)
    ident = rows.customer_id.cast("string")
    h = (ibis.literal(f"{int(seed)}:") + ident).hexdigest("sha256").substr(0, 16)
    r = rows.select("customer_id", "segment", h=h, idt=ident)
    r = r.mutate(p=ibis.row_number().over(group_by=r.segment, order_by=[r.h, r.idt]))
    rt = ibis.memtable(ranges)
    j = r.join(rt, [r.segment == rt.r_segment, r.p >= rt.lo, r.p < rt.hi])
    j = j.mutate(
        # the global hash position is the order of (hash, id text): no second window
        rank=ibis.row_number().over(
            order_by=[j.expected_incremental_profit.desc(), j.h, j.idt, j.cell]
        )
        + 1
    )
    table = (
        j.select(
            "customer_id",
            "segment",
            "arm",
            "tactic",
            "expected_incremental_profit",
            "prob_profit_positive",
            "rank",
            "cost_per_customer",
        )
        .order_by("rank")
        .to_pandas()
    )
    if not len(table):
        notes.append("the allocation treats no customers: the target list is empty")
    table["rank"] = table["rank"].astype(np.int64)
    for c in ("segment", "arm", "tactic"):
        table[c] = table[c].astype(object)
    table.insert(7, "selection", HASH)
    table["selection"] = table["selection"].astype(object)
    cost_of = cells["cost_per_customer"].to_numpy(dtype=float)
    recon = pd.DataFrame(
        {
            "segment": seg.astype(object),
            "tactic": cells["tactic"].to_numpy(dtype=object),
            "arm": cells["arm"].to_numpy(dtype=object),
            "allocated": want_all,
            "targeted": got_all,
            "shortfall": want_all - got_all,
            "spend_allocated": cells["spend"].to_numpy(dtype=float),
            "spend_targeted": got_all * cost_of,
            "selection": np.full(len(cells), HASH, dtype=object),
        }
    )
    return CustomerTargets(table.reset_index(drop=True), recon, notes, int(seed))
