"""Customer strata in a run: the covariate model feeding the budget optimizer
(uplift.app.strata_run, optimize.customer_strata). Wiring with the fake sampler."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import uplift
from uplift import pipeline
from uplift.app.strata_run import CustomerStrata, StrataLabeller, customer_strata, stratum_sizes
from uplift.optimize.strata import segment_of
from uplift.runs import RunLoadError

COVARIATES = [
    "data.synthetic.outcomes=conversion",
    "data.synthetic.n_customers=6000",
    "sampler=fast",
    "data.columns.covariates=[value_tier,needs]",  # the covariate model: on by default (auto)
    "model.covariate_model.method=approximate",
]


def test_strata_partition_segments_and_deviations_average_to_zero(fake_sampler, tmp_path):
    config = uplift.compose_config(COVARIATES)
    prep = pipeline.prepare(config, tmp_path)
    fits = pipeline.fit_tactics(prep.cells, prep.data, config)
    models, scores = pipeline.score_customers(config, prep.data)
    assert scores is not None
    costs = {a.name: a.cost for a in prep.data.arm_map.treated}
    uplift_draws = {t: f.draws() for t, f in fits.items()}
    eligible = pipeline.eligible_customers(config, prep.cells)
    frame = prep.data.frame
    st = customer_strata(frame, uplift_draws, prep.values, costs, models, eligible, 3)
    assert st.sizes.sum() == len(frame)
    # the labeller labels any subset of the population as it labelled the population
    part = frame.sample(500, random_state=3)
    np.testing.assert_array_equal(st.labeller(part), st.labels[frame.index.get_indexer(part.index)])
    per_segment = st.sizes.groupby([segment_of(s) for s in st.sizes.index]).size()
    assert (per_segment <= 3).all()
    S = next(iter(uplift_draws.values())).sizes["sample"]
    for dev in st.deviation.values():
        assert dev.shape == (S, len(st.sizes))
        # the strata's customer-weighted deviations cancel within each segment, draw by draw
        w = st.sizes.reindex(dev.columns).to_numpy()
        parent = np.array([segment_of(c) for c in dev.columns])
        for seg in np.unique(parent):
            m = parent == seg
            np.testing.assert_allclose(dev.to_numpy()[:, m] @ w[m], 0.0, atol=1e-9 * w[m].sum())


def test_stratum_sizes_scale_and_sum_to_the_segment():
    labels = np.array(["a~q1"] * 3 + ["a~q2"] * 4 + ["b~q1"] * 5)
    sizes = stratum_sizes(labels, pd.Series({"a": 10.0, "b": 7.0}))
    assert sizes.to_dict() == {"a~q1": 4.0, "a~q2": 6.0, "b~q1": 7.0}


def test_selection_credit_is_the_lists_own_deviation_beyond_the_stratum():
    """By hand: stratum a~q2 (4 customers, own uplift 1..4) is half treated by arm x, the list
    takes customers 3 and 4: credit = 2 customers x value 10 x (3.5 - 2.5) = 20. Stratum
    a~q1 is treated whole (credit 0); arm y is not scored by the covariate model (0)."""
    labels = np.array(["a~q1"] * 2 + ["a~q2"] * 4, dtype=object)
    labeller = StrataLabeller(
        2, {}, {"x": ("t", 1.0), "y": ("u", 1.0)}, {"t": pd.Series({"a": 10.0})}, {}
    )
    strata = CustomerStrata(
        labels,
        pd.Series({"a~q1": 2.0, "a~q2": 4.0}),
        {},
        labeller,
        ids=np.array(["c1", "c2", "c3", "c4", "c5", "c6"]),
        own={"x": np.array([0.0, 5.0, 1.0, 2.0, 3.0, 4.0])},
    )
    plan = pd.DataFrame(
        {"segment": ["a~q1", "a~q2", "a~q2"], "arm": ["x", "x", "y"], "customers": [2, 2, 1]}
    )
    listed = pd.DataFrame({"customer_id": ["c1", "c2", "c5", "c6", "c3"], "arm": list("xxxxy")})
    assert strata.selection_credit(plan, listed) == pytest.approx(20.0)
    # a list that took the stratum's worst customers is credited below the stratum's average
    worst = pd.DataFrame({"customer_id": ["c1", "c2", "c3", "c4"], "arm": list("xxxx")})
    assert strata.selection_credit(plan, worst) == pytest.approx(2 * 10 * (1.5 - 2.5))
    # a listed id outside the rows is a named error, not a silent zero
    with pytest.raises(ValueError, match="not in the rows"):
        strata.selection_credit(plan, pd.DataFrame({"customer_id": ["zz"], "arm": ["x"]}))


@pytest.fixture(scope="module")
def strata_run(tmp_path_factory):
    from fast_tier import install

    mp = pytest.MonkeyPatch()
    install(mp)
    out = tmp_path_factory.mktemp("strata")
    try:
        config = uplift.compose_config([*COVARIATES, "evaluate.crossfit_folds=2"])
        result = pipeline.run(config, out)
    finally:
        mp.undo()
    # the run resolved auto in its own copy of the config, not in the caller's
    assert config.model.covariate_model.enabled is None
    return result


def test_run_plans_over_strata_and_reports_per_segment(strata_run):
    out = strata_run.output_dir
    alloc = pd.read_csv(out / "allocation.csv")
    strata = pd.read_csv(out / "allocation_strata.csv")
    assert not alloc["segment"].str.contains("~q").any()
    assert strata["segment"].str.contains("~q").all()
    # allocation.csv is allocation_strata.csv summed per (segment, arm)
    strata["segment"] = [segment_of(s) for s in strata["segment"]]
    summed = strata.groupby(["segment", "arm"])[["customers", "spend"]].sum()
    own = alloc.set_index(["segment", "arm"])[["customers", "spend"]]
    pd.testing.assert_frame_equal(
        summed.sort_index(), own.sort_index(), check_dtype=False, check_like=True
    )
    summary = json.loads((out / "summary.json").read_text())
    # declared covariates and 0/1 outcomes turned the covariate model on without a flag
    setting = summary["covariate_model_setting"]
    assert setting["enabled"] is True and setting["by"] == "auto"
    assert "value_tier, needs" in setting["why"] and "6,000 customers" in setting["why"]
    assert (out / "customer_scores.csv").is_file()
    assert summary["customer_strata"]["bins"] == 4
    assert summary["customer_strata"]["strata"] == len(
        pd.read_csv(out / "allocation_strata.csv").drop_duplicates("segment")
    )
    assert summary["total_spend"] == pytest.approx(alloc["spend"].sum())
    assert "skipped" in summary["truth_check"]
    # the headline is the list's: the plan's posterior value plus its selection within strata
    pv = summary["plan_value"]
    assert pv["list_credit"] is not None
    assert pv["posterior"] == pytest.approx(
        summary["expected_incremental_profit"] + pv["list_credit"]
    )
    for report in ("report.md", "report.html"):  # the planner is told how customers are chosen
        assert "Customers chosen within segments" in (out / report).read_text()


def test_targets_reconcile_with_allocation_per_segment(strata_run):
    out = strata_run.output_dir
    alloc = pd.read_csv(out / "allocation.csv")
    targets = pd.read_csv(out / "targets.csv")
    assert targets["customer_id"].is_unique
    assert not targets["segment"].str.contains("~q").any()
    counts = targets.groupby(["segment", "arm"]).size()
    want = alloc[alloc["customers"] > 0].set_index(["segment", "arm"])["customers"]
    pd.testing.assert_series_equal(
        counts.sort_index(), want.sort_index().astype(counts.dtype), check_names=False
    )


def test_crossfit_scores_each_fold_plans_own_list(strata_run, monkeypatch):
    """Each fold plan is over its own strata and scored on the customers its list treats (per
    customer weights), reported per segment."""
    cf = strata_run.run.crossfit
    assert cf is not None
    assert not cf.per_segment["segment"].str.contains("~q").any()
    assert not any(p["segment"].str.contains("~q").any() for p in cf.plans)
    assert np.isfinite(cf.estimate) and cf.se > 0


def test_one_stratum_is_the_segment_plan(fake_sampler, tmp_path):
    config = uplift.compose_config([*COVARIATES, "optimize.customer_strata=1"])
    result = pipeline.run(config, tmp_path / "one")
    assert not (tmp_path / "one" / "allocation_strata.csv").exists()
    assert "customer_strata" not in result.summary


def test_declared_covariates_with_the_model_off_are_named_in_the_report(fake_sampler, tmp_path):
    """Covariates declared where auto leaves the covariate model off (more customers than
    model.covariate_model.auto_max_rows) get a plan per segment, and the report says why and
    what the covariates could do."""
    result = pipeline.run(
        uplift.compose_config(
            [*COVARIATES, "model.covariate_model.auto_max_rows=5000", "evaluate.crossfit_folds=0"]
        ),
        tmp_path / "off",
    )
    assert "customer_strata" not in result.summary
    assert not (tmp_path / "off" / "customer_scores.csv").exists()
    assert result.summary["covariate_model_setting"]["enabled"] is False
    notes = result.summary["optimizer"]["notes"]
    (note,) = [n for n in notes if n.startswith("covariates unused by the plan: value_tier, needs")]
    assert "6,000 customers, over model.covariate_model.auto_max_rows=5,000" in note
    assert "most responsive customers within segments" in note
    for report in ("report.md", "report.html"):
        assert "Covariates unused by the plan" in (tmp_path / "off" / report).read_text()


@pytest.mark.parametrize(
    ("extra", "enabled", "why"),
    [
        ([], True, "value_tier, needs declared, "),
        (["model.covariate_model.enabled=false"], False, None),
        (["model.covariate_model.enabled=true"], True, None),
        (["data.columns.covariates=[]"], False, "no covariates declared"),
        (["model.family=negative_binomial"], False, "no tactic uses the binomial family"),
        (["model.covariate_model.auto_max_rows=5999"], False, "over model.covariate_model"),
        (["model.covariate_model.auto_max_rows=6000"], True, "at most auto_max_rows=6,000"),
    ],
)
def test_auto_covariate_model_is_resolved_from_the_data(tmp_path, extra, enabled, why):
    """enabled: null (the default) is on exactly when covariates are declared, a tactic has a
    0/1 outcome and the rows are at hand and few enough; true/false are the user's. The run's
    own copy of the config is resolved, not the caller's."""
    config = uplift.compose_config([*COVARIATES, *extra])
    before = config.model.covariate_model.enabled
    setting = pipeline.prepare(config, tmp_path).covariate_setting
    assert setting["enabled"] is enabled and config.model.covariate_model.enabled is enabled
    assert setting["by"] == ("config" if before is not None else "auto")
    if why is not None:
        assert why in setting["why"]


def test_auto_covariate_model_is_off_for_cells_input(tmp_path):
    from types import SimpleNamespace

    config = uplift.compose_config(COVARIATES)
    data = pipeline.prepare(uplift.compose_config(COVARIATES), tmp_path).data

    class CellsOnly:  # what data=cells gives: cells in an engine, no rows
        rows = None
        engine = SimpleNamespace(table=None)
        arm_map = data.arm_map

        def __len__(self) -> int:
            return len(data)

    setting = pipeline.resolve_covariate_model(config, CellsOnly())  # type: ignore[arg-type]
    assert setting == {
        "enabled": False,
        "by": "auto",
        "why": "data=cells holds no customer rows",
    }


def test_saved_strata_run_replans_over_the_same_strata(strata_run, tmp_path):
    """load_run places customers in the same strata from the saved covariate posteriors: the
    re-plan at the run's settings is allocation_strata.csv, per segment allocation.csv, and
    its list targets.csv."""
    out = strata_run.output_dir
    run = uplift.load_run(out)
    assert set(run.covariate_models) == set(strata_run.summary["customer_strata"]["tactics"])
    plan = run.plan()
    saved = pd.read_csv(out / "allocation_strata.csv")
    table = plan.table.reset_index(drop=True)
    assert list(table["segment"]) == list(saved["segment"])
    assert list(table["customers"]) == list(saved["customers"])
    per_segment = run.per_segment(plan).reset_index(drop=True)
    alloc = pd.read_csv(out / "allocation.csv")
    assert list(per_segment["customers"]) == list(alloc["customers"])
    assert np.allclose(
        per_segment["expected_incremental_profit"], alloc["expected_incremental_profit"]
    )
    mine = pd.read_csv(run.export_targets(plan, tmp_path / "t.csv"))
    theirs = pd.read_csv(out / "targets.csv").drop(columns="gate_passed")
    pd.testing.assert_frame_equal(mine[theirs.columns], theirs)
    with pytest.raises(RunLoadError, match="customer_strata"):
        run.plan(customer_strata=2)
