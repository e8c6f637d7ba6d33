"""Customer strata from a run's fits: what :mod:`uplift.optimize.strata` needs.

Every customer is placed in one of ``bins`` strata of its segment by their best expected
profit: ``max over arms of value x (segment uplift + own deviation) - cost``, the own deviation
being the covariate model's posterior-mean uplift of the customer minus the average over the
segment's customers (0 for arms no covariate model scores). The cut points are the scores at
which strata 2..bins of each segment begin among the customers the plan is for (ties stay
together), so the same :class:`StrataLabeller` labels any customers of that population exactly
as it labelled them there.

Per stratum and scored arm, the deviation's draws are the covariate model's average uplift over
the stratum's customers minus over the segment's, draw by draw
(:meth:`CovariateUpliftModel.segment_uplift_draws` per stratum, at most
:data:`DEVIATION_DRAWS` evenly thinned draws; a segment's average is its strata's, weighted by
their customers), tiled to the segment fits' number of draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from uplift.optimize.strata import segment_of, stratum_labels

STRATUM_COLUMN = "__stratum__"
#: evenly thinned covariate-model draws behind a stratum's deviation (tiled to the segment
#: fits' draws): the cost is customers x draws, 64,000 Hillstrom customers x 8,000 draws took
#: ~20 s a pass, and a stratum's average over thousands of customers varies little draw to draw
DEVIATION_DRAWS = 2000


@dataclass
class StrataLabeller:
    """Labels customers ``<segment>~q<k>`` by their best expected profit (see the module
    docstring). :meth:`fit` sets the cut points from the population the plan is for; calling
    the labeller labels any rows of that population (e.g. a held-out fold) the same way."""

    bins: int
    #: arm -> the segment fit's posterior-mean uplift per segment
    cell_uplift: dict[str, pd.Series]
    #: arm -> (tactic, cost per customer)
    arm_info: dict[str, tuple[str, float]]
    values: Mapping[str, pd.Series]
    #: tactic -> covariate model that passed the gate
    models: Mapping[str, Any]
    own_mean: dict[str, pd.Series] = field(default_factory=dict)
    bounds: dict[str, np.ndarray] = field(default_factory=dict)

    def own(self, rows: pd.DataFrame) -> dict[str, np.ndarray]:
        """Each row's covariate-model posterior-mean uplift per scored arm."""
        return own_uplift(self.models, rows)

    def score(self, rows: pd.DataFrame, own: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Best expected profit per row over the arms (segment estimate + own deviation);
        ``own``: the rows' :meth:`own` uplifts, when already computed."""
        segment = rows["segment"].astype(str).to_numpy()
        own = self.own(rows) if own is None else own
        best = np.full(len(rows), -np.inf)
        for arm, (tactic, cost) in self.arm_info.items():
            v = self.values[tactic].reindex(segment).to_numpy(dtype=float)
            up = self.cell_uplift[arm].reindex(segment).to_numpy(dtype=float)
            if arm in own:
                up = up + own[arm] - self.own_mean[arm].reindex(segment).to_numpy(dtype=float)
            best = np.maximum(best, v * up - cost)
        return best

    def fit(self, rows: pd.DataFrame, own: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Cut points from ``rows`` (the population the plan is for); their labels. ``own``:
        the rows' :meth:`own` uplifts, when already computed (scored once either way)."""
        segment = rows["segment"].astype(str).to_numpy()
        own = self.own(rows) if own is None else own
        self.own_mean = {arm: pd.Series(x).groupby(segment).mean() for arm, x in own.items()}
        score = self.score(rows, own)
        if not np.isfinite(score).all():
            raise ValueError("customer strata: a customer's expected profit is not finite")
        self.bounds = {}
        for seg, idx in pd.Series(segment).groupby(segment).indices.items():
            s = np.sort(score[idx])
            starts = [(k * len(s) + self.bins - 1) // self.bins for k in range(1, self.bins)]
            self.bounds[str(seg)] = s[[i for i in starts if i < len(s)]]
        return self._labels(segment, score)

    def __call__(self, rows: pd.DataFrame) -> np.ndarray:
        """``<segment>~q<k>`` per row (k from 1 = lowest expected profit)."""
        return self._labels(rows["segment"].astype(str).to_numpy(), self.score(rows))

    def _labels(self, segment: np.ndarray, score: np.ndarray) -> np.ndarray:
        k = np.zeros(len(segment), dtype=np.int64)
        for seg, idx in pd.Series(segment).groupby(segment).indices.items():
            cuts = self.bounds.get(str(seg))
            if cuts is None:
                raise ValueError(f"customer strata: segment {seg!r} was not in the population")
            # a score equal to a cut point starts that stratum (ties stay together)
            k[idx] = np.searchsorted(cuts, score[idx], side="right")
        return stratum_labels(segment, k)


def own_uplift(models: Mapping[str, Any], rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each row's posterior-mean uplift per arm under the covariate ``models`` (tactic ->
    model), in the rows' order."""
    out: dict[str, np.ndarray] = {}
    for model in models.values():
        s = model.score(rows, id_col=None)
        for arm in s.columns:
            out[str(arm)] = s[arm].to_numpy(dtype=float)
    return out


@dataclass
class CustomerStrata:
    """Stratum label per customer (rows' order), eligible customers per stratum, per scored
    arm the deviation draws (draws x stratum labels) for :func:`refine_problem`, the
    labeller that made them, and the customers' ids and :func:`own_uplift` (rows' order)."""

    labels: np.ndarray
    sizes: pd.Series
    deviation: dict[str, pd.DataFrame]
    labeller: StrataLabeller
    ids: np.ndarray
    own: dict[str, np.ndarray]

    def selection_credit(self, plan: pd.DataFrame, listed: pd.DataFrame) -> float:
        """What the list adds to the stratum plan's posterior value by choosing customers.

        The plan (``plan``: the allocator's table, one row per stratum x arm) values a
        stratum's treated customers at the stratum's average deviation; the list (``listed``:
        ``customer_id, arm``, as :func:`uplift.pipeline.list_customers` returns it) takes the
        best customers of a partly treated stratum. Per stratum and scored arm the credit is
        ``customers x value x (mean own uplift of the listed - mean over the stratum)``, own
        uplift being the covariate model's posterior mean (the same model the stratum's
        deviation draws average); 0 for a stratum treated whole and for arms the covariate
        model does not score (hash order within the stratum: an unbiased sample of it). The
        plan's posterior value plus this credit is the list's: the segment posterior plus each
        listed customer's own deviation.
        """
        labels = np.asarray(self.labels)
        row = pd.Series(np.arange(len(self.ids)), index=pd.Index(self.ids).map(str))
        values = self.labeller.values
        counts = plan.set_index(["segment", "arm"])["customers"].astype(float)
        credit = 0.0
        for arm, own in self.own.items():
            pick = listed.loc[listed["arm"].astype(str) == arm, "customer_id"].map(str)
            if pick.empty:
                continue
            at = row.reindex(pick.to_numpy()).to_numpy()
            if np.isnan(at).any():
                raise ValueError(
                    f"customer strata: listed customers of arm {arm!r} not in the rows"
                )
            at = at.astype(np.int64)
            listed_mean = pd.Series(own[at]).groupby(labels[at]).mean()
            stratum_mean = pd.Series(own).groupby(labels).mean()
            tactic = self.labeller.arm_info[arm][0]
            for stratum, m in listed_mean.items():
                n = float(counts.get((stratum, arm), 0.0))
                v = float(values[tactic][segment_of(str(stratum))])
                credit += n * v * (float(m) - float(stratum_mean[stratum]))
        return credit

    def summary(self) -> dict[str, Any]:
        """summary.json ``customer_strata``."""
        segments = {segment_of(s) for s in self.sizes.index}
        return {
            "bins": self.labeller.bins,
            "strata": len(self.sizes),
            "segments": len(segments),
            "tactics": sorted(self.labeller.models),
            "arms_with_deviation": sorted(self.deviation),
        }


def stratum_sizes(labels: np.ndarray, eligible: pd.Series) -> pd.Series:
    """Eligible customers per stratum: its segment's (``eligible``, which carries
    ``optimize.population_scale``) in proportion to the stratum's share of the segment's rows,
    whole numbers summing to the segment's (largest remainder)."""
    counts = pd.Series(labels).value_counts().sort_index()
    out: dict[str, float] = {}
    for seg, grp in counts.groupby([segment_of(s) for s in counts.index]):
        total = float(eligible[seg])
        exact = grp / grp.sum() * total
        base = np.floor(exact)
        short = int(round(total - float(base.sum())))
        base[(exact - base).sort_values(ascending=False, kind="stable").index[:short]] += 1
        out.update(base.to_dict())
    return pd.Series(out, dtype=float).sort_index()


def customer_strata(
    rows: pd.DataFrame,
    uplift: Mapping[str, Any],
    values: Mapping[str, pd.Series],
    costs: Mapping[str, float],
    covariate_models: Mapping[str, Any],
    eligible: pd.Series,
    bins: int,
    own: dict[str, np.ndarray] | None = None,
) -> CustomerStrata:
    """``rows``: the customers the plan is for (``segment`` and the covariates); ``uplift``:
    tactic -> the segment fit's draws (sample x arm x segment); ``values``: tactic -> value per
    unit per segment; ``costs``: arm -> cost per customer; ``covariate_models``: tactic ->
    fitted model that passed the gate; ``eligible``: customers per segment; ``own``: the rows'
    :func:`own_uplift` under those models, when already computed."""
    S = next(iter(uplift.values())).sizes["sample"]
    cell_uplift, arm_info = {}, {}
    for tactic, da in uplift.items():
        mean = da.mean("sample")
        for arm in da["arm"].values:
            cell_uplift[str(arm)] = mean.sel(arm=arm).to_series().rename(index=str)
            arm_info[str(arm)] = (str(tactic), float(costs[str(arm)]))
    labeller = StrataLabeller(bins, cell_uplift, arm_info, values, dict(covariate_models))
    own = labeller.own(rows) if own is None else own
    labels = labeller.fit(rows, own)
    sizes = stratum_sizes(labels, eligible)
    labelled = rows.assign(**{STRATUM_COLUMN: labels})
    deviation: dict[str, pd.DataFrame] = {}
    rows_in = pd.Series(labels).value_counts()
    for model in covariate_models.values():
        # one pass over the customers x draws (the costly part): a segment's average is its
        # strata's, weighted by their customers
        by_stratum = model.segment_uplift_draws(labelled, STRATUM_COLUMN, DEVIATION_DRAWS)
        strata = [str(s) for s in by_stratum["segment"].values]
        parent = np.array([segment_of(s) for s in strata])
        n = rows_in.reindex(strata).to_numpy(dtype=float)
        same = parent[:, None] == parent[None, :]
        weights = same * n[None, :] / (same * n[None, :]).sum(axis=1, keepdims=True)
        take = np.resize(np.arange(by_stratum.sizes["sample"]), S)
        for arm in by_stratum["arm"].values:
            x = by_stratum.sel(arm=arm).values  # sample x stratum
            d = x - x @ weights.T
            deviation[str(arm)] = pd.DataFrame(d[take], columns=strata)
    return CustomerStrata(
        labels, sizes, deviation, labeller, rows["customer_id"].to_numpy(), dict(own)
    )
