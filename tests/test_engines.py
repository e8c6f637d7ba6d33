"""One aggregation expression, many engines (uplift.data.engine): pandas, DuckDB and PySpark give
the same cells to the last digit of every sufficient statistic; data=cells is validated like rows.

The Spark test needs Java (PySpark 4 runs on Java 17+); without it the test skips with the reason,
except under CI (``CI`` set, as .ci/run does), where it fails.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

from uplift.data import ColumnMap, DataValidationError, aggregate_cells, validate_customers
from uplift.data.cells import tactic_cells
from uplift.data.cells_input import cells_data, validate_cells
from uplift.data.contract import OutcomeColumn
from uplift.data.engine import FIXED_POINT_BITS, open_rows, validated_rows
from uplift.data.synthetic import generate

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
COLUMNS = ColumnMap(segments=("value_tier", "needs"), guardrails=("complaint",))
#: the same rows with three tactics fit on their own outcome column (data.columns.outcomes):
#: a 0/1 flag, a count and an amount, one per kind of family input
MAPPED = ColumnMap(
    segments=("value_tier", "needs"),
    guardrails=("complaint",),
    outcomes=(
        OutcomeColumn("retention", "still_active", "converted"),
        OutcomeColumn("cross_sell", "new_category_purchases", "orders"),
        OutcomeColumn("up_sell", "online_spend", "revenue"),
    ),
)


@pytest.fixture(scope="module")
def rows_file(tmp_path_factory, arm_map):
    """A small customer file (3,000 rows, 12 segments, a guardrail) as Parquet and CSV."""
    raw = generate(arm_map, n_customers=3_000, seed=5).customers
    rng = np.random.default_rng(1)
    raw["complaint"] = (rng.random(len(raw)) < 0.05).astype(np.int64)
    raw["still_active"] = (rng.random(len(raw)) < 0.6).astype(np.int64)
    raw["new_category_purchases"] = rng.poisson(0.4, len(raw))
    buys = rng.random(len(raw)) < 0.3
    raw["online_spend"] = np.where(buys, rng.lognormal(3.5, 1.1, len(raw)), 0.0)
    d = tmp_path_factory.mktemp("engines")
    raw.to_parquet(d / "rows.parquet")
    raw.to_csv(d / "rows.csv", index=False)
    return raw, d


@pytest.fixture(scope="module")
def reference(rows_file, arm_map):
    raw, _ = rows_file
    data = validate_customers(raw, COLUMNS, arm_map)
    return data, aggregate_cells(data, fixed_point=True)


@pytest.fixture(scope="session")
def spark_master():
    """local[1] when Java is here; a skip (a failure under CI) when it is not."""
    problem = None
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        problem = "no Java on this machine (apt-get install -y openjdk-17-jre-headless)"
    try:
        import pyspark  # noqa: F401
    except ImportError:
        problem = "pyspark is not installed (pip install -e '.[dev]')"
    if problem:
        if IN_CI:
            pytest.fail(f"CI must run the Spark engine test: {problem}")
        pytest.skip(problem)
    return "local[1]"


@pytest.fixture(scope="module")
def mapped_reference(rows_file, arm_map):
    raw, _ = rows_file
    data = validate_customers(raw, MAPPED, arm_map)
    return data, aggregate_cells(data, fixed_point=True)


def engine_cells(engine, path, source, arm_map, master=None, columns=COLUMNS):
    t = open_rows(engine, path=path, source=source, spark_master=master)
    return validated_rows(t, columns, arm_map, engine)


def test_fixed_point_reference_keeps_counts_and_sums_within_the_grid(reference):
    data, fixed = reference
    plain = aggregate_cells(data)
    assert list(fixed.columns) == list(plain.columns)
    assert fixed.dtypes.to_dict() == plain.dtypes.to_dict()
    ints = [c for c in plain.columns if plain[c].dtype == np.int64 or plain[c].dtype == object]
    pd.testing.assert_frame_equal(fixed[ints], plain[ints])
    for col, bits in FIXED_POINT_BITS.items():
        bound = plain["n"].to_numpy() * 2.0 ** -(bits + 1) * (1 + 1e-9) + 1e-9
        assert (
            np.abs(fixed[col] - plain[col]).to_numpy() <= bound + 1e-12 * plain[col].abs()
        ).all()


@pytest.mark.parametrize("source", ["parquet", "csv"])
def test_duckdb_cells_equal_pandas_to_the_last_digit(rows_file, reference, arm_map, source):
    _, d = rows_file
    data, fixed = reference
    c, cells, n = engine_cells("duckdb", d / f"rows.{source}", source, arm_map)
    assert n == len(data)
    pd.testing.assert_frame_equal(cells, fixed, check_exact=True)
    rows = c.to_pandas().sort_values("customer_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(rows, data.frame, check_dtype=False)


def test_spark_cells_equal_pandas_to_the_last_digit(rows_file, reference, arm_map, spark_master):
    _, d = rows_file
    _, fixed = reference
    _, cells, _ = engine_cells("spark", d / "rows.parquet", "parquet", arm_map, spark_master)
    pd.testing.assert_frame_equal(cells, fixed, check_exact=True)


@pytest.mark.parametrize("source", ["parquet", "csv"])
def test_duckdb_cells_of_mapped_outcomes_equal_pandas_to_the_last_digit(
    rows_file, mapped_reference, reference, arm_map, source
):
    """data.columns.outcomes: each mapped tactic's sums (outcome__<tactic>__<statistic>) come
    out of DuckDB as pandas computes them; the shared statistics are unchanged by the mapping."""
    _, d = rows_file
    data, fixed = mapped_reference
    c, cells, _ = engine_cells("duckdb", d / f"rows.{source}", source, arm_map, columns=MAPPED)
    pd.testing.assert_frame_equal(cells, fixed, check_exact=True)
    own = [c for c in cells.columns if c.startswith("outcome__")]
    assert len(own) == 1 + 2 + 5  # conversions; orders and squares; the five spend sums
    pd.testing.assert_frame_equal(cells.drop(columns=own), reference[1], check_exact=True)
    retention = tactic_cells(cells, "retention").set_index(["segment", "arm"])["conversions"]
    raw = rows_file[0].assign(segment=data.frame["segment"])
    want = raw.groupby(["segment", "arm"])["still_active"].sum()
    np.testing.assert_array_equal(retention.to_numpy(), want.reindex(retention.index).to_numpy())
    rows = c.to_pandas().sort_values("customer_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(rows, data.frame, check_dtype=False)


def test_spark_cells_of_mapped_outcomes_equal_pandas(
    rows_file, mapped_reference, arm_map, spark_master
):
    _, d = rows_file
    _, fixed = mapped_reference
    _, cells, _ = engine_cells(
        "spark", d / "rows.parquet", "parquet", arm_map, spark_master, columns=MAPPED
    )
    pd.testing.assert_frame_equal(cells, fixed, check_exact=True)


def test_engine_names_bad_rows_as_the_reference_does(rows_file, arm_map, tmp_path):
    raw, _ = rows_file
    bad = raw.copy()
    bad.loc[7, "customer_id"] = bad.loc[3, "customer_id"]
    bad.loc[11, "converted"] = 2
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataValidationError) as want:
        validate_customers(bad, COLUMNS, arm_map)
    with pytest.raises(DataValidationError) as got:
        engine_cells("duckdb", tmp_path / "bad.parquet", "parquet", arm_map)
    assert str(got.value) == str(want.value)


def test_cells_input_round_trips_and_refuses_bad_tables(reference, arm_map):
    data, fixed = reference
    cells = validate_cells(fixed, arm_map, ("complaint",))
    pd.testing.assert_frame_equal(
        cells.drop(columns=["value_tier", "needs"], errors="ignore"),
        fixed.drop(columns=["value_tier", "needs"]).reset_index(drop=True),
    )
    cd = cells_data(cells, arm_map, ("segment",), ("complaint",))
    assert len(cd) == len(data) and aggregate_cells(cd) is cd.engine.cells
    with pytest.raises(DataValidationError, match="no customer rows"):
        _ = cd.frame
    cases = {
        "lacks column": fixed.drop(columns=["conversions"]),
        "integers >= 0": fixed.assign(n=fixed["n"] * -1),
        "exceeds n": fixed.assign(conversions=fixed["n"] + 1),
        "not in tactics.arms": fixed.assign(arm=fixed["arm"].replace("control", "ctl")),
        "several rows": pd.concat([fixed, fixed.iloc[:1]]),
        "must be >= 0": fixed.assign(revenue_sq_sum=-1.0),
    }
    for says, table in cases.items():
        with pytest.raises(DataValidationError, match=says):
            validate_cells(table, arm_map, ("complaint",))


@pytest.fixture(scope="module")
def duck_rows(rows_file, arm_map):
    _, d = rows_file
    rows, cells, _ = engine_cells("duckdb", d / "rows.parquet", "parquet", arm_map)
    return rows, cells


@pytest.mark.parametrize("treated", ["every segment", "a few segments", "none"])
def test_targets_in_the_engine_are_the_pandas_list(reference, duck_rows, arm_map, treated):
    """The same list, ranks and reconciliation; the engine hashes only the treated segments'
    rows, which must not move any customer's place."""
    from uplift.optimize.targets import customer_targets, customer_targets_engine

    data, _ = reference
    rng = np.random.default_rng(0)
    alloc = pd.DataFrame(
        [
            {
                "segment": s,
                "tactic": a.tactic.value,
                "arm": a.name,
                "customers": int(rng.integers(0, 160)),
                "cost_per_customer": a.cost,
                "profit_per_customer": float(rng.normal()),
                "prob_profit_positive": 0.5,
                "unit": "customers",
            }
            for s in data.segments
            for a in arm_map.treated[:3]
        ]
    )
    if treated != "every segment":
        keep = set(data.segments[::3]) if treated == "a few segments" else set()
        alloc.loc[~alloc["segment"].isin(keep), "customers"] = 0
    alloc["spend"] = alloc["customers"] * alloc["cost_per_customer"]
    want = customer_targets(alloc, data.frame, seed=3)
    got = customer_targets_engine(alloc, duck_rows[0], seed=3)
    pd.testing.assert_frame_equal(got.table, want.table, check_dtype=False)
    pd.testing.assert_frame_equal(got.reconciliation, want.reconciliation, check_dtype=False)
    assert got.notes == want.notes


def test_fold_cells_score_a_plan_as_the_rows_do(reference, duck_rows, arm_map):
    """Folds from the engine's salted hash equal Python's; a fold's training cells are the
    other folds' rows aggregated; the plan's DR score from the fold's moments equals the
    row-level score."""
    import hashlib

    from uplift.data.engine import fold_cells, fold_moments, train_cells
    from uplift.evaluate.crossfit import score_plan, score_plan_moments

    data, _ = reference
    rows, _ = duck_rows
    dims, guards = ["value_tier", "needs"], ["complaint"]
    fc = fold_cells(rows, arm_map, dims, guards, seed=4, folds=2)
    f = data.frame
    fold = np.array(
        [int(hashlib.sha256(f"4:{i}".encode()).hexdigest()[:7], 16) % 2 for i in f["customer_id"]]
    )
    train = validate_customers(
        f[fold != 0],
        ColumnMap(
            segments=("value_tier", "needs"), guardrails=("complaint",), customer_id="customer_id"
        ),
        arm_map,
    )
    pd.testing.assert_frame_equal(
        train_cells(fc, 0, arm_map, dims, guards),
        aggregate_cells(train, fixed_point=True),
        check_exact=True,
    )
    plan = pd.DataFrame(
        [
            {"segment": s, "arm": a, "customers": 40, "eligible_customers": 250}
            for s in data.segments
            for a in ("cross_sell_email", "upgrade_offer")
        ]
    )
    value = {"cross_sell_email": 30.0, "upgrade_offer": 12.0}
    test = f[fold == 0]
    want = score_plan(test, plan, arm_map, value=value)
    got = score_plan_moments(fold_moments(fc[fc["fold"] == 0]), plan, arm_map, value=value)
    assert got.value == pytest.approx(want.value, rel=1e-9)
    assert got.se == pytest.approx(want.se, rel=1e-9)


def test_covariate_balance_from_engine_moments(rows_file, arm_map, tmp_path):
    from uplift.data.engine import covariate_moments
    from uplift.experiment.health import covariate_balance, covariate_balance_moments

    raw, _ = rows_file
    rng = np.random.default_rng(2)
    raw = raw.assign(age=rng.normal(40, 10, len(raw)), tenure=rng.integers(0, 20, len(raw)))
    raw.to_parquet(tmp_path / "cov.parquet")
    cols = ColumnMap(segments=("value_tier", "needs"), covariates=("age", "tenure"))
    rows, _, _ = validated_rows(
        open_rows("duckdb", path=tmp_path / "cov.parquet", source="parquet"),
        cols,
        arm_map,
        "duckdb",
    )
    numeric, moments = covariate_moments(rows, ["age", "tenure"])
    f = validate_customers(raw, cols, arm_map).frame.astype({"tenure": float})
    want = covariate_balance(f, "arm", numeric, "control", segment_col="segment").table
    got = covariate_balance_moments(moments, numeric, "control").table
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9)


def test_count_histograms_from_the_engine(reference, duck_rows, arm_map):
    from uplift.data.contract import CustomerData
    from uplift.data.engine import EngineRows
    from uplift.models.counts import count_histograms

    data, _ = reference
    rows, cells = duck_rows
    held = CustomerData(
        rows=None,
        segment_columns=data.segment_columns,
        arm_map=arm_map,
        has_revenue=True,
        has_orders=True,
        engine=EngineRows(rows, "duckdb", len(data), cells),
    )
    pd.testing.assert_frame_equal(count_histograms(held), count_histograms(data))


def test_warehouse_table_and_query_give_the_file_cells(rows_file, reference, arm_map, tmp_path):
    """data.connection (an Ibis URL) with data.table or data.query: the same cells as the file."""
    import duckdb

    _, d = rows_file
    _, fixed = reference
    db = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(f"CREATE TABLE customers AS SELECT * FROM read_parquet('{d / 'rows.parquet'}')")
    url = f"duckdb://{db}"
    for source in ({"table": "customers"}, {"query": "SELECT * FROM customers"}):
        t = open_rows("duckdb", connection=url, **source)
        _, cells, _ = validated_rows(t, COLUMNS, arm_map, "duckdb")
        pd.testing.assert_frame_equal(cells, fixed, check_exact=True)
    with pytest.raises(DataValidationError, match="exactly one source"):
        open_rows("duckdb", connection=url)
    with pytest.raises(DataValidationError, match="could not be read"):
        open_rows("duckdb", connection=url, table="no_such_table")


def test_duckdb_spills_to_the_system_temp_folder_not_the_working_directory(tmp_path, monkeypatch):
    """DuckDB's default spill folder is ``./.tmp`` in the working directory (GBs at 1e8 rows)."""
    from uplift.data.engine import connect

    monkeypatch.setenv("TMPDIR", str(tmp_path / "sys-tmp"))
    (tmp_path / "sys-tmp").mkdir()
    monkeypatch.chdir(tmp_path)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    con = connect("duckdb")
    spill = con.raw_sql("SELECT current_setting('temp_directory')").fetchall()[0][0]
    assert spill.startswith(str(tmp_path / "sys-tmp")), spill
    assert not (tmp_path / ".tmp").exists()


def test_select_reads_the_pulled_rows_once_a_stage_pulled_them(rows_file, arm_map):
    """After a stage pulled every row (``frame``), ``select`` slices that copy instead of
    querying the engine again; the same rows and columns either way."""
    from uplift.data.engine import EngineRows

    _, d = rows_file
    table, cells, _ = engine_cells("duckdb", d / "rows.parquet", "parquet", arm_map)
    rows = EngineRows(table, "duckdb", int(cells["n"].sum()), cells)
    arms = [arm_map.control.name, arm_map.treated[0].name]
    cols = ["customer_id", "arm", "segment"]
    queried = rows.select(cols, arms=arms)
    pulled = rows.frame
    assert len(pulled) == rows.n_rows
    rows.table = None  # an engine query now would fail
    cached = rows.select(cols, arms=arms)
    key = ["customer_id"]
    pd.testing.assert_frame_equal(
        cached.sort_values(key).reset_index(drop=True),
        queried.sort_values(key).reset_index(drop=True),
        check_dtype=False,
    )
    assert len(rows.select(["arm"])) == len(pulled)
