"""``data.columns.outcomes``: each tactic fit on its own outcome column (issue #12).

A seeded experiment where retention moves only ``active_at_horizon``, cross-sell moves only
``new_category`` (both 0/1) and frequency moves only ``orders``: the cells a mapped tactic is fit
on are its own column's sums (checked against hand-computed sums), a real fit recovers each
tactic's own effect and not the other's, bad mappings are named errors before any sampling,
and the engines name them as pandas does (tests/test_engines.py: DuckDB and Spark give the
mapped outcomes' cells of pandas to the last digit).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import uplift
from uplift.data import ColumnMap, DataValidationError, aggregate_cells, validate_customers
from uplift.data.cells import tactic_cells
from uplift.data.contract import OutcomeColumn
from uplift.data.engine import open_rows, validated_rows
from uplift.tactics import ArmMap

ARMS = {
    "control": "control",
    "call": "retention",
    "email": "cross_sell",
    "points": "frequency",
}
ARM_MAP = ArmMap.from_mapping(
    {a: {"tactic": t, "cost": 0.0 if t == "control" else 1.0} for a, t in ARMS.items()}
)
#: true effects per treated customer, each on its own column only
RETENTION_EFFECT = 0.15  # on active_at_horizon
CROSS_SELL_EFFECT = 0.08  # on new_category
FREQUENCY_EFFECT = 0.5  # on orders
SEGMENTS = {"north": 0.0, "south": 0.05}


def outcomes_frame(n_per_cell: int = 1500, seed: int = 21) -> pd.DataFrame:
    """Several outcomes measured per customer; each tactic moves one of them."""
    rng = np.random.default_rng(seed)
    parts = []
    for seg, shift in SEGMENTS.items():
        for arm, tactic in ARMS.items():
            active = 0.50 + shift + (RETENTION_EFFECT if tactic == "retention" else 0.0)
            new_cat = 0.10 + shift + (CROSS_SELL_EFFECT if tactic == "cross_sell" else 0.0)
            orders = 1.0 + (FREQUENCY_EFFECT if tactic == "frequency" else 0.0)
            parts.append(
                pd.DataFrame(
                    {
                        "segment": seg,
                        "arm": arm,
                        "converted": rng.binomial(1, 0.2, n_per_cell),
                        "active_at_horizon": rng.binomial(1, active, n_per_cell),
                        "new_category": rng.binomial(1, new_cat, n_per_cell),
                        "orders": rng.poisson(orders, n_per_cell),
                        "visits": rng.poisson(2.0, n_per_cell),
                        "spend": np.where(
                            rng.random(n_per_cell) < 0.3, rng.lognormal(3.0, 0.8, n_per_cell), 0.0
                        ),
                    }
                )
            )
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "customer_id", np.arange(1, len(out) + 1))
    return out


MAPPED = (
    OutcomeColumn("retention", "active_at_horizon", "converted"),
    OutcomeColumn("cross_sell", "new_category", "converted"),
)
COLUMNS = ColumnMap(segments=("segment",), revenue=None, outcomes=MAPPED)


def _by_hand(raw: pd.DataFrame, column: str) -> pd.Series:
    return raw.groupby(["segment", "arm"])[column].sum().astype(np.int64)


def test_a_mapped_tactic_is_fit_on_its_own_columns_sums():
    """Exact wiring: retention's cells count active_at_horizon, cross-sell's new_category
    (control included: its value of the same column is the baseline), frequency keeps orders;
    n and the rows (every arm) are unchanged, and no outcome__ column is left."""
    raw = outcomes_frame(n_per_cell=200)
    cells = aggregate_cells(validate_customers(raw, COLUMNS, ARM_MAP))
    plain = aggregate_cells(
        validate_customers(raw, ColumnMap(segments=("segment",), revenue=None), ARM_MAP)
    )
    for tactic, column in (("retention", "active_at_horizon"), ("cross_sell", "new_category")):
        own = tactic_cells(cells, tactic).set_index(["segment", "arm"])
        assert not [c for c in own.columns if c.startswith("outcome__")]
        want = _by_hand(raw, column).reindex(own.index)
        np.testing.assert_array_equal(own["conversions"].to_numpy(), want.to_numpy())
        np.testing.assert_array_equal(own["n"].to_numpy(), plain["n"].to_numpy())
        assert own.loc[("north", "control"), "conversions"] == int(
            raw.loc[(raw["segment"] == "north") & (raw["arm"] == "control"), column].sum()
        )
    freq = tactic_cells(cells, "frequency")
    pd.testing.assert_frame_equal(freq, plain)  # unmapped: the shared columns, as before
    np.testing.assert_array_equal(
        freq.set_index(["segment", "arm"])["conversions"].to_numpy(),
        _by_hand(raw, "converted").to_numpy(),
    )


def test_no_mapping_leaves_the_cells_as_they_were():
    raw = outcomes_frame(n_per_cell=100)
    cols = ColumnMap(segments=("segment",), revenue=None)
    cells = aggregate_cells(validate_customers(raw, cols, ARM_MAP))
    assert tactic_cells(cells, "retention") is cells
    assert not [c for c in cells.columns if c.startswith("outcome__")]


def test_count_and_spend_outcomes_aggregate_as_their_family_reads_them():
    raw = outcomes_frame(n_per_cell=150)
    cols = ColumnMap(
        segments=("segment",),
        revenue=None,
        outcomes=(
            OutcomeColumn("frequency", "orders", "orders"),
            OutcomeColumn("cross_sell", "spend", "revenue"),
        ),
    )
    cells = aggregate_cells(validate_customers(raw, cols, ARM_MAP))
    freq = tactic_cells(cells, "frequency").set_index(["segment", "arm"])
    sq = raw.assign(o2=raw["orders"] ** 2).groupby(["segment", "arm"])["o2"].sum()
    np.testing.assert_array_equal(freq["orders_sq_sum"].to_numpy(), sq.to_numpy())
    spend = tactic_cells(cells, "cross_sell").set_index(["segment", "arm"])
    g = raw.groupby(["segment", "arm"])["spend"]
    np.testing.assert_allclose(spend["revenue_sum"].to_numpy(), g.sum().to_numpy())
    buyers = raw.assign(b=raw["spend"] > 0).groupby(["segment", "arm"])["b"].sum()
    np.testing.assert_array_equal(spend["n_buyers"].to_numpy(), buyers.to_numpy())
    logs = raw.assign(ly=np.log(raw["spend"].where(raw["spend"] > 0, 1.0)))
    np.testing.assert_allclose(
        spend["log_revenue_sum"].to_numpy(),
        logs.groupby(["segment", "arm"])["ly"].sum().to_numpy(),
    )


@pytest.mark.parametrize(
    ("mapping", "edit", "needles"),
    [
        (  # a tactic no arm of this run delivers
            (OutcomeColumn("referral", "orders", "orders"),),
            None,
            ["data.columns.outcomes.referral", "no arm delivers", "'referral'"],
        ),
        (  # a column not in the data: named, with the close match
            (OutcomeColumn("retention", "active_at_horizn", "converted"),),
            None,
            ["data.columns.outcomes.retention", "'active_at_horizn'", "'active_at_horizon'"],
        ),
        (  # binary family on a non-0/1 column
            (OutcomeColumn("retention", "orders", "converted"),),
            None,
            ["'orders'", "data.columns.outcomes.retention", "0/1"],
        ),
        (  # count family on a fractional column
            (OutcomeColumn("frequency", "spend", "orders"),),
            None,
            ["'spend'", "data.columns.outcomes.frequency", "integer counts >= 0"],
        ),
        (  # count family on a negative count
            (OutcomeColumn("frequency", "visits", "orders"),),
            lambda df: df.assign(visits=df["visits"].where(df.index != 5, -1)),
            ["'visits'", "data.columns.outcomes.frequency", "-1"],
        ),
        (  # spend family on a negative amount
            (OutcomeColumn("cross_sell", "spend", "revenue"),),
            lambda df: df.assign(spend=df["spend"].where(df.index != 3, -4.5)),
            ["'spend'", "data.columns.outcomes.cross_sell", ">= 0", "-4.5"],
        ),
        (  # missing values
            (OutcomeColumn("retention", "active_at_horizon", "converted"),),
            lambda df: df.assign(
                active_at_horizon=df["active_at_horizon"].astype(float).where(df.index != 9)
            ),
            ["'active_at_horizon'", "data.columns.outcomes.retention", "missing value", "NaN"],
        ),
        (  # text in the column
            (OutcomeColumn("cross_sell", "new_category", "converted"),),
            lambda df: df.assign(
                new_category=df["new_category"].astype(str).where(df.index != 2, "yes")
            ),
            ["'new_category'", "data.columns.outcomes.cross_sell", "numeric", "'yes'"],
        ),
    ],
)
def test_bad_mappings_are_named_errors_in_pandas_and_duckdb(mapping, edit, needles, tmp_path):
    raw = outcomes_frame(n_per_cell=40)
    raw = edit(raw) if edit is not None else raw
    cols = ColumnMap(segments=("segment",), revenue=None, outcomes=mapping)
    with pytest.raises(DataValidationError) as want:
        validate_customers(raw, cols, ARM_MAP)
    for needle in needles:
        assert needle in str(want.value), (needle, str(want.value))
    raw.to_parquet(tmp_path / "rows.parquet")
    t = open_rows("duckdb", path=tmp_path / "rows.parquet", source="parquet")
    with pytest.raises(DataValidationError) as got:  # the engine names it the same way
        validated_rows(t, cols, ARM_MAP, "duckdb")
    assert str(got.value) == str(want.value)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("+data.columns.outcomes={loyalty: active_at_horizon}", "unknown tactic 'loyalty'"),
        ("+data.columns.outcomes={control: active_at_horizon}", "control is every tactic"),
        ("+data.columns.outcomes={retention: ''}", "give the name of a column"),
    ],
)
def test_bad_outcome_keys_are_named_config_errors(override, needle):
    with pytest.raises(ValueError, match="data.columns.outcomes") as e:
        uplift.compose_config([override])
    assert needle in str(e.value)


def _run_overrides(path, *extra: str) -> list[str]:
    return [
        "data=csv",
        f"data.path={path}",
        "data.columns.segments=[segment]",
        "data.columns.revenue=null",
        "data.columns.orders=orders",
        "tactics=custom",
        *[
            f"+tactics.arms.{a}={{tactic: {t}, cost: {0.0 if t == 'control' else 1.0}}}"
            for a, t in ARMS.items()
        ],
        "+model.families={retention: binomial, cross_sell: binomial, frequency: negative_binomial}",
        "+data.columns.outcomes={retention: active_at_horizon, cross_sell: new_category}",
        "value.kind=constant",
        "value.per_conversion=40",
        "+value.tactics={frequency: {margin_per_order: 5}}",
        "optimize.budget=2000",
        "sampler=fast",
        "optimize.allow_unconverged=true",
        "optimize.frontier.enabled=false",
        "report.plots=false",
        *extra,
    ]


def _overall(draws) -> np.ndarray:
    """A tactic's uplift draws averaged over its arm and the (equal-sized) segments."""
    return draws.mean(("arm", "segment")).values


def test_each_tactic_recovers_its_own_effect_not_the_others(tmp_path):
    """Real NUTS (short chains) on the DuckDB path: retention's posterior sits on its effect on
    active_at_horizon (0.15) and excludes cross-sell's (0.08), and the other way round;
    frequency recovers its +0.5 orders. The shared ``converted`` column, which no tactic moves,
    would give all three ~0. Cross-fitting (2 folds) re-aggregates each tactic's own outcome."""
    raw = outcomes_frame()
    csv = tmp_path / "customers.csv"
    raw.to_csv(csv, index=False)
    result = uplift.run(uplift.compose_config(_run_overrides(csv)), tmp_path / "run")

    ret = _overall(result.fits["retention"].draws())
    xs = _overall(result.fits["cross_sell"].draws())
    freq = _overall(result.fits["frequency"].draws())
    lo, hi = np.quantile(ret, [0.005, 0.995])
    assert lo < RETENTION_EFFECT < hi and not lo < CROSS_SELL_EFFECT < hi and lo > 0.05
    lo, hi = np.quantile(xs, [0.005, 0.995])
    assert lo < CROSS_SELL_EFFECT < hi and not lo < RETENTION_EFFECT < hi and lo > 0.0
    lo, hi = np.quantile(freq, [0.005, 0.995])
    assert lo < FREQUENCY_EFFECT < hi and lo > 0.2

    # the plain difference in means beside the posterior is on each tactic's own column
    by_arm = result.by_arm.set_index("arm")
    for arm, column in (("call", "active_at_horizon"), ("email", "new_category")):
        mean = raw.groupby("arm")[column].mean()
        assert by_arm.loc[arm, "difference_in_means"] == pytest.approx(
            mean[arm] - mean["control"], abs=1e-12
        )
    assert result.summary["status"] == "complete"
    crossfit = result.summary.get("crossfit") or {}
    assert crossfit and "skipped" not in crossfit, crossfit


def test_pandas_run_scores_held_out_customers_on_each_tactics_own_column(tmp_path, fake_sampler):
    """Wiring on the pandas path (designed draws): the hold-out refit, its T-learner and the
    covariate-free scorers read each mapped tactic's own column, and say which in
    evaluation.csv; the predictive checks and cells.csv carry the mapped sums."""
    raw = outcomes_frame(n_per_cell=300)
    csv = tmp_path / "customers.csv"
    raw.to_csv(csv, index=False)
    extra = (
        "data.engine=pandas",
        "evaluate.holdout_fraction=0.3",
        "evaluate.bootstrap=0",  # two segments: a resample can flatten a qini curve
        "evaluate.crossfit_folds=0",
    )
    result = uplift.run(uplift.compose_config(_run_overrides(csv, *extra)), tmp_path / "run")
    ev = pd.read_csv(tmp_path / "run" / "evaluation.csv")
    outcome = ev.groupby("tactic")["outcome"].first().to_dict()
    assert outcome == {
        "retention": "active_at_horizon",
        "cross_sell": "new_category",
        "frequency": "orders",
    }
    cells = pd.read_csv(tmp_path / "run" / "cells.csv")
    want = _by_hand(raw, "active_at_horizon")
    got = cells.set_index(["segment", "arm"])["outcome__retention__conversions"]
    np.testing.assert_array_equal(got.reindex(want.index).to_numpy(), want.to_numpy())
    assert set(result.run.checks.posterior) == {"retention", "cross_sell", "frequency"}


def test_init_proposes_the_mapping_for_an_extra_outcome_column(tmp_path):
    """``uplift init``: a second 0/1 outcome named like retention is proposed as retention's
    own outcome, commented (which arm delivers which tactic is the user's call); the preset
    still reads back, and uncommented it is a valid data.columns.outcomes entry."""
    from omegaconf import OmegaConf

    from uplift.app.init_preset import render
    from uplift.data.detect import detect_columns

    raw = outcomes_frame(n_per_cell=100)
    det = detect_columns(raw)
    assert det.converted.column == "converted" and "active_at_horizon" in det.other_outcomes
    text = render(det, "outcomes", tmp_path / "rows.csv", "csv", {})
    assert "    # outcomes: {retention: active_at_horizon}" in text
    assert "outcomes" not in OmegaConf.create(text).data.columns  # only proposed
    live = text.replace("    # outcomes: {", "    outcomes: {")
    assert OmegaConf.to_container(OmegaConf.create(live).data.columns.outcomes) == {
        "retention": "active_at_horizon"
    }
