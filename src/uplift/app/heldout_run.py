"""The ``evaluate`` stage of a run: refit on a training split, score held-out customers.

Kept apart from :mod:`uplift.pipeline` so it can be reused on any fit function; the pipeline
passes its own ``fit_tactics`` so the training fit uses exactly the run's models and sampler.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from uplift.config import AppConfig
from uplift.data.cells import aggregate_cells, segment_sizes
from uplift.data.contract import SEGMENT, CustomerData
from uplift.evaluate.holdout import (
    TLearner,
    evaluate_scores,
    qini_curves,
    segment_scores,
    split_holdout,
)
from uplift.models.families import get_family

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class HoldoutResult:
    table: pd.DataFrame  # one row per tactic x arm x scorer (see evaluate_scores)
    curves: dict  # tactic -> arm -> scorer -> (share targeted, qini)
    train_diagnostics: dict  # tactic -> Diagnostics of the training fit


def features_for(config: AppConfig, data: CustomerData) -> list[str]:
    ev = config.evaluate
    return list(ev.features or config.data.columns.covariates or data.segment_columns)


def run_holdout(
    config: AppConfig,
    data: CustomerData,
    fit_tactics: Callable[[pd.DataFrame, CustomerData, AppConfig], dict],
    fit_covariate: Callable[[AppConfig, CustomerData], dict] | None = None,
) -> HoldoutResult:
    """Fit every budget tactic on the training split and evaluate scorers on the held-out rows.

    Price tests are skipped: their arms are prices, not treatments to target. With
    ``fit_covariate`` (the row-level covariate model) its scores join as ``bayes_covariate``.
    """
    ev = config.evaluate
    frame = data.frame
    train_pos, test_pos = split_holdout(frame["arm"], ev.holdout_fraction, ev.seed)
    train = dataclasses.replace(
        data, rows=frame.iloc[train_pos].reset_index(drop=True), engine=None
    )
    test = frame.iloc[test_pos].reset_index(drop=True)
    cells = aggregate_cells(train)
    with_control = set(cells.loc[cells["tactic"] == "control", SEGMENT])
    dropped = sorted(set(cells[SEGMENT]) - with_control)
    if dropped:  # no control customer left in training: not identified, scored by the fallback
        log.info("held-out evaluation: %d segment(s) without control in training", len(dropped))
        cells = cells[cells[SEGMENT].isin(with_control)]
    features = features_for(config, data)
    control = data.arm_map.control.name
    sizes = segment_sizes(cells)  # training customers per segment: the scorer's fallback weights
    tables, curves, diags = [], {}, {}
    covariate = fit_covariate(config, train) if fit_covariate is not None else {}
    for tactic in data.arm_map.tactics():
        family = get_family(config.model.family_of(tactic.value))
        if family.outcome is None:  # price tests
            continue
        # a tactic of data.columns.outcomes is scored on its own column
        outcome = data.outcome_of(tactic.value, family.outcome)
        own = data.mapped(tactic.value)
        arms = [a.name for a in data.arm_map.arms_for(tactic)]
        sub_map = data.arm_map.restrict(arms)
        keep_train = train.frame["arm"].isin([control, *arms]).to_numpy()
        sub = dataclasses.replace(train, rows=train.frame[keep_train], arm_map=sub_map, engine=None)
        fit = fit_tactics(cells[cells["arm"].isin([control, *arms])], sub, config)[tactic.value]
        diags[tactic.value] = fit.diagnostics
        draws = fit.draws()
        means = draws.mean("sample").to_dataframe(name="mean").reset_index()
        means["n"] = means["segment"].map(sizes).fillna(0).to_numpy()
        keep_test = test["arm"].isin([control, *arms]).to_numpy()
        held = test[keep_test].reset_index(drop=True)
        scores = {"bayes_segment": segment_scores(means, held[SEGMENT], arms)}
        cov = covariate.get(tactic.value)
        if cov is not None and cov.passed_gate:  # as for targets.csv
            scores["bayes_covariate"] = cov.score(held, id_col=None)[arms].reset_index(drop=True)
        if ev.t_learner:
            binary = (own.kind if own is not None else outcome) == "converted"
            learner = TLearner(features, binary=binary, seed=ev.seed)
            learner.fit(train.frame[keep_train], outcome, "arm", control, arms)
            scores["t_learner"] = learner.predict(held)
        y, arm = held[outcome].to_numpy(dtype=float), held["arm"].to_numpy(dtype=object)
        table = evaluate_scores(
            y, arm, scores, control, k=ev.k, bootstrap=ev.bootstrap, seed=ev.seed
        )
        table.insert(0, "tactic", tactic.value)
        table.insert(2, "outcome", own.column if own is not None else outcome)
        tables.append(table)
        curves[tactic.value] = qini_curves(y, arm, scores, control)
        log.info("held-out evaluation of %s: %d test customers", tactic.value, len(held))
    if not tables:
        raise ValueError(
            "evaluate.holdout_fraction > 0 but no tactic can be evaluated (price tests only); "
            "set evaluate.holdout_fraction=0"
        )
    return HoldoutResult(pd.concat(tables, ignore_index=True), curves, diags)


def holdout_summary(result: HoldoutResult) -> list[dict]:
    """The headline numbers per tactic, arm and scorer for summary.json."""
    cols = [c for c in result.table.columns if not c.endswith("_se") and not c.startswith("p_best")]
    keep = result.table[cols]
    return [
        {k: (float(v) if isinstance(v, np.floating) else v) for k, v in row.items()}
        for row in keep.to_dict("records")
    ]
