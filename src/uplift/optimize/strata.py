"""Customer strata: the row-level covariate model feeding the budget optimizer.

The segment models estimate what an arm does to a segment's average customer; the covariate
model (:mod:`uplift.models.covariate`) estimates how each customer differs from that average.
The allocator decides counts per decision cell, so a plan can treat only part of a segment (its
responsive customers) if the segment is split. The run splits each segment into up to
``bins`` strata of (nearly) equal size by each customer's best expected profit under the
segment's estimate plus the customer's deviation (:class:`uplift.app.strata_run.
StrataLabeller`); :func:`refine_problem` turns the segment-level
:class:`~uplift.optimize.problem.AllocationProblem` into one over strata: stratum ``k`` of
segment ``s``, arm ``a`` has the profit draws

    profit[s, a] + value[tactic(a), s] x dev[a, (s, k)]

where ``dev`` is the stratum's mean covariate-model uplift minus the segment's, draw by draw
(0 for arms the covariate model does not score). A stratum is labelled
``<segment>~q<k>`` (:func:`stratum_labels`); :func:`collapse` returns a stratum plan per
(segment, arm), with intervals from the summed draws.

The run refines its plan this way when a covariate model passed the gate
(``optimize.customer_strata``, :func:`uplift.pipeline.decide`); :func:`collapse` and
:func:`collapse_targets` give allocation.csv and targets.csv their (segment, arm) rows back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

import numpy as np
import pandas as pd

from uplift.optimize.problem import AllocationProblem
from uplift.optimize.targets import CustomerTargets
from uplift.stats import hdi

#: separates a stratum's segment from its index in its label: ``high/north/web~q2``
STRATUM_SEP = "~q"


def stratum_labels(segment: np.ndarray, stratum: np.ndarray) -> np.ndarray:
    """``<segment>~q<k>`` (k from 1) per customer."""
    seg = np.asarray(segment).astype(str)
    k = (np.asarray(stratum, dtype=np.int64) + 1).astype(str)
    return np.char.add(np.char.add(seg, STRATUM_SEP), k).astype(object)


def segment_of(label: str) -> str:
    """The segment of a stratum label (the label itself when it is not one)."""
    head, sep, tail = str(label).rpartition(STRATUM_SEP)
    return head if sep and tail.isdigit() else str(label)


def refine_problem(
    problem: AllocationProblem,
    sizes: pd.Series,
    deviation: Mapping[str, pd.DataFrame],
    values: Mapping[str, pd.Series],
) -> AllocationProblem:
    """The segment-level ``problem`` over strata.

    ``sizes``: eligible customers per stratum label (every label's segment must be one of the
    problem's, and every segment of the problem needs at least one stratum); ``deviation``: arm
    -> DataFrame of draws (rows, as many as the problem's) x stratum labels, the stratum's mean
    uplift minus its segment's (labels or arms absent: 0); ``values``: tactic -> value of one
    unit of uplift per segment. Spend cells (``unit == "spend"``) cannot be split: ValueError.
    """
    if problem.spend_mask.any():
        raise ValueError("spend cells (unit 'spend') cannot be split into customer strata")
    labels = [str(x) for x in sizes.index]
    seg_of_label = pd.Series([segment_of(x) for x in labels], index=labels)
    unknown = sorted(set(seg_of_label) - set(problem.segments))
    if unknown:
        raise ValueError(f"strata of segment(s) {unknown[:5]} the problem does not have")
    bare = sorted(set(problem.segments) - set(seg_of_label))
    if bare:
        raise ValueError(f"segment(s) {bare[:5]} have no stratum; give every segment one")
    S = problem.n_draws
    for arm, dev in deviation.items():
        if dev.shape[0] != S:
            raise ValueError(f"deviation[{arm!r}] has {dev.shape[0]} draws, the problem {S}")
    cells = problem.cells.reset_index(drop=True)
    blocks, rows = [], []
    by_segment = cells.groupby("segment", sort=True).indices
    for label in labels:
        seg = seg_of_label[label]
        for i in by_segment[seg]:
            cell = cells.iloc[i]
            col = problem.profit_draws[:, i]
            dev = deviation.get(str(cell["arm"]))
            if dev is not None and label in dev.columns:
                v = float(values[str(cell["tactic"])].loc[seg])
                col = col + v * dev[label].to_numpy(dtype=float)
            blocks.append(col)
            rows.append(cell.to_dict() | {"segment": label})
    out = pd.DataFrame(rows, columns=cells.columns)
    order = out.sort_values(["segment", "tactic", "arm"], kind="stable").index.to_numpy()
    return AllocationProblem(
        cells=out.loc[order].reset_index(drop=True),
        profit_draws=np.column_stack(blocks)[:, order],
        eligible=sizes.astype(float),
    )


def collapse(table: pd.DataFrame, problem: AllocationProblem, hdi_prob: float) -> pd.DataFrame:
    """A stratum plan (``table``: the allocator's, on ``problem``) per (segment, arm):
    customers, spend, eligible customers and expected profit summed, the profit interval and
    the chance of a positive profit from the strata's summed draws, per-customer profit over
    the customers treated (the segment's profit per customer where none are)."""
    t = table.reset_index(drop=True)
    key = pd.Series([segment_of(s) for s in t["segment"]], index=t.index)
    x = t["decision"].to_numpy(dtype=float)
    cell_profit = problem.profit_draws * x[None, :]
    groups = t.assign(_seg=key).groupby(["_seg", "tactic", "arm"], sort=True).indices
    rows = []
    for (seg, tactic, arm), idx in groups.items():
        part = t.iloc[idx]
        draws = cell_profit[:, idx].sum(axis=1)
        customers = part["customers"].sum()
        per = problem.profit_draws[:, idx]
        w = x[idx] if x[idx].sum() > 0 else part["eligible_customers"].to_numpy(dtype=float)
        per_customer = per @ w / max(float(w.sum()), 1e-12)
        lo, hi = hdi(draws[:, None], hdi_prob, axis=0)[0]
        rows.append(
            {
                "segment": seg,
                "tactic": tactic,
                "customers": customers,
                "spend": float(part["spend"].sum()),
                "expected_incremental_profit": float(draws.mean()),
                "profit_hdi_low": float(lo),
                "profit_hdi_high": float(hi),
                "arm": arm,
                "eligible_customers": int(part["eligible_customers"].sum()),
                "cost_per_customer": float(part["cost_per_customer"].iloc[0]),
                "profit_per_customer": float(per_customer.mean()),
                "prob_profit_positive": float((per_customer > 0).mean()),
                "unit": part["unit"].iloc[0],
                "decision": float(x[idx].sum()),
                "binding_constraints": ", ".join(
                    sorted(
                        {b for s in part["binding_constraints"] for b in str(s).split(", ") if b}
                    )
                ),
            }
        )
    return pd.DataFrame(rows, columns=list(table.columns))


def with_strata(values: Mapping[str, pd.Series], labels: Iterable[str]) -> dict[str, pd.Series]:
    """Values per unit per segment, extended to stratum labels (a stratum's is its segment's)."""
    extra = sorted({str(x) for x in labels} - {segment_of(x) for x in labels})
    parents = [segment_of(x) for x in extra]
    return {
        t: pd.concat([v, pd.Series(v.reindex(parents).to_numpy(), index=extra)])
        for t, v in values.items()
    }


def collapse_targets(targets: CustomerTargets) -> CustomerTargets:
    """A target list chosen stratum by stratum, with each row's segment (not its stratum) and
    the reconciliation summed per (segment, tactic, arm), as allocation.csv has it."""
    table = targets.table.assign(segment=[segment_of(s) for s in targets.table["segment"]])
    r = targets.reconciliation.assign(
        segment=[segment_of(s) for s in targets.reconciliation["segment"]]
    )
    keys = ["segment", "tactic", "arm"]
    summed = [c for c in r.columns if c not in (*keys, "selection")]
    recon = r.groupby(keys, sort=True, as_index=False).agg(
        {**dict.fromkeys(summed, "sum"), "selection": lambda s: ", ".join(sorted(set(s)))}
    )
    return replace(targets, table=table, reconciliation=recon[list(r.columns)])
