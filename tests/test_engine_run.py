"""A run whose rows stay in DuckDB (the default engine for files) through the CLI, with the fake
sampler (tests/fast_tier.py): cells, health, cross-fitting from fold cells and targets, without
pulling the rows into pandas; and data=cells from the same run's cells.csv."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import uplift.data.engine as engine_mod

ARGS = [
    "data.columns.segments=[value_tier,needs]",
    "sampler.draws=100",
    "sampler.tune=100",
    "sampler.chains=2",
    "optimize.allow_unconverged=true",
    "report.existing=overwrite",
    # the synthetic design: a quarter in control, the rest split evenly over the six arms
    "+health.expected_split={control:0.25,cross_sell_email:0.125,upgrade_offer:0.125,"
    "loyalty_points:0.125,discount_10pct:0.125,retention_call:0.125,referral_bonus:0.125}",
]


@pytest.fixture(scope="module")
def rows_parquet(tmp_path_factory, synthetic):
    d = tmp_path_factory.mktemp("engine_run")
    synthetic.customers.iloc[:12_000].to_parquet(d / "rows.parquet")
    return d / "rows.parquet"


def test_duckdb_run_keeps_rows_in_the_engine(
    uplift_cli, fake_sampler, rows_parquet, tmp_path, monkeypatch
):
    pulled = []
    original = engine_mod.EngineRows.frame.fget
    monkeypatch.setattr(
        engine_mod.EngineRows,
        "frame",
        property(lambda self: pulled.append(1) or original(self)),
    )
    out = tmp_path / "run"
    got = uplift_cli("data=parquet", f"data.path={rows_parquet}", f"hydra.run.dir={out}", *ARGS)
    assert got.returncode == 0, got.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete"
    assert "crossfit" in summary and summary["crossfit"]["folds"] == 2
    cells = pd.read_csv(out / "cells.csv")
    assert cells["n"].sum() == 12_000
    assert (out / "targets.csv").exists()
    assert pulled == [], "a stage pulled the rows into pandas"


def test_cells_input_runs_from_a_cells_table(uplift_cli, fake_sampler, rows_parquet, tmp_path):
    from uplift.data import ColumnMap, aggregate_cells, validate_customers
    from uplift.data.synthetic import default_arm_map

    rows = pd.read_parquet(rows_parquet)
    data = validate_customers(rows, ColumnMap(segments=("value_tier", "needs")), default_arm_map())
    aggregate_cells(data).to_csv(tmp_path / "cells.csv", index=False)
    out = tmp_path / "cells_run"
    got = uplift_cli(
        "data=cells",
        f"data.path={tmp_path / 'cells.csv'}",
        f"hydra.run.dir={out}",
        "report.plots=false",  # figures: the run above
        *ARGS[1:],
    )
    assert got.returncode == 0, got.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete"
    assert not (out / "targets.csv").exists()
