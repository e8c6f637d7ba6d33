"""Customer rows aggregated where they live: one Ibis expression, many engines.

The contract checks (:mod:`uplift.data.contract`) and the rows -> cells sufficient statistics
(:mod:`uplift.data.cells`) are written once here as `Ibis <https://ibis-project.org>`_
expressions, and Ibis compiles them for the engine that holds the rows:

* ``duckdb`` (``data.engine``'s default for ``data=csv`` / ``data=parquet``): embedded, reads the
  file out of core (``read_csv`` / ``read_parquet``), no pandas copy of the rows;
* ``spark``: PySpark in local mode (``data.spark_master``, default ``local[*]``) or against a
  cluster master; the SparkSession is created here (Ibis does not create one);
* any backend Ibis connects to by URL (``data.connection``, e.g. ``postgres://...``,
  ``bigquery://project/dataset``, ``duckdb:///warehouse.db``) with ``data.table`` or
  ``data.query`` as the source.

Only small results come back to Python: the cells, per-arm and per-fold aggregates, the counts
behind each check. Where a stage needs rows (the covariate model, the hold-out refit),
:attr:`EngineRows.frame` pulls them once and logs that it did.

Why the float sums are fixed point. A SQL ``SUM`` over doubles is not reproducible: its result
depends on the order the engine adds rows in (threads, partitions), so two runs of DuckDB on
8 threads, or DuckDB and Spark, can differ in the last bits, and a posterior sampled from those
cells differs with them. Each row's float contribution is therefore rounded to a fixed-point
grid (:data:`FIXED_POINT_BITS`: ``2**-20`` of a currency unit for revenue, ``2**-32`` for log
revenue), summed exactly as a ``DECIMAL(38, 0)`` integer and divided back: the same number on
every engine and every run, to the last digit, and within ``n * 2**-21`` of the float sum.
(:func:`uplift.data.cells.aggregate_cells` with ``fixed_point=True`` is the pandas reference of
the same statistic.) Synthetic sources keep the plain float sums, so the demo is unchanged.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from uplift.data.cells import (
    FIXED_POINT_BITS,
    finish_cells,
    from_fixed,
    outcome_cell_columns,
    outcome_fixed_bits,
)
from uplift.data.contract import (
    SEGMENT,
    SEGMENT_SEP,
    ColumnMap,
    DataValidationError,
    OutcomeColumn,
)
from uplift.tactics import ArmMap

log = logging.getLogger(__name__)

ENGINES = ("duckdb", "pandas", "spark")
#: a revenue above this (per customer) would overflow the fixed-point grid of revenue squared
MAX_REVENUE = float(2**26)
#: an invalid source with at most this many rows is re-checked row by row (pandas) so that the
#: error names rows and values exactly as the reference validation does
REFERENCE_ROWS = 2_000_000
#: DuckDB's memory limit (it spills to disk beyond it), what keeps a 10M-customer run under 2 GB.
#: The customer-target window over every row (a salted hash per id, a row number per segment)
#: is the peak: at 10M rows it added 0.95 GB to the process at "1GB", 0.45 GB at "512MB" and
#: 0.24 GB at "256MB" (4.9, 4.9 and 5.7 s), and the cold end-to-end run peaked at 2.17 GB with
#: "1GB", 1.63 GB with "256MB". The data stage does not need more: 1e8 rows in 18.7 s at 0.57 GB
#: peak RSS with "256MB" (bench/scale.py, idle, 2026-12-04)
DUCKDB_MEMORY_LIMIT = "256MB"


def duckdb_spill_dir() -> str:
    """Where DuckDB spills beyond its memory limit: the system temp folder (``TMPDIR``), not
    DuckDB's default ``./.tmp`` in the user's working directory (about 3 GB at 1e8 rows)."""
    return str(Path(tempfile.gettempdir()) / "uplift-duckdb-spill")


#: the Spark master when ``data.spark_master`` is not set
SPARK_MASTER = "local[*]"


def _ibis() -> Any:
    import ibis

    return ibis


# ---- connections and sources ----------------------------------------------------------------
_SPARK: dict[str, Any] = {}


def spark_session(master: str = SPARK_MASTER) -> Any:
    """The SparkSession of this process (created once, quiet: no UI, warnings only)."""
    if master not in _SPARK:
        import os
        import re

        from pyspark.sql import SparkSession

        local = re.fullmatch(r"local\[(\d+|\*)\]", master)
        cores = (
            (os.cpu_count() or 1) if local and local[1] == "*" else int(local[1]) if local else 0
        )
        builder = (
            SparkSession.builder.master(master)
            .appName("uplift")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.session.timeZone", "UTC")
        )
        if cores:  # local mode: one shuffle partition per core (the default 200 is for clusters)
            builder = builder.config("spark.sql.shuffle.partitions", str(cores))
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
        _SPARK[master] = session
    return _SPARK[master]


def connect(engine: str, connection: str | None = None, spark_master: str | None = None) -> Any:
    """An Ibis backend for ``data.engine`` (``duckdb`` / ``spark``) or ``data.connection``."""
    ibis = _ibis()
    if connection:
        try:
            return ibis.connect(connection)
        except Exception as e:  # each backend raises its own (ImportError, driver errors)
            raise DataValidationError(
                f"data.connection={connection!r} could not be opened ({type(e).__name__}: {e}); "
                "give an Ibis connection URL (e.g. duckdb:///file.db, postgres://user@host/db) "
                "and install that backend's extra (pip install 'ibis-framework[postgres]')"
            ) from None
    if engine == "spark":
        return ibis.pyspark.connect(spark_session(spark_master or SPARK_MASTER))
    if engine == "duckdb":
        return ibis.duckdb.connect(
            memory_limit=DUCKDB_MEMORY_LIMIT, temp_directory=duckdb_spill_dir()
        )
    raise DataValidationError(f"data.engine={engine!r} is not one of {list(ENGINES)}")


def read_file(
    con: Any,
    engine: str,
    path: Path,
    source: str,
    *,
    kind: str | None,
    encoding: str,
    delimiter: str,
    na_values: Sequence[str],
) -> Any:
    """The file as an Ibis table on ``con``, read by the engine (raises on any read error; the
    caller falls back to the pandas reader, which names the fault)."""
    p = str(path)
    if source == "parquet":
        return con.read_parquet(p)
    if engine == "spark":
        return con.read_csv(
            p, header=True, inferSchema=True, sep=delimiter, encoding=encoding, nullValue=""
        )
    comp = {None: "none", "gzip": "gzip", "zstd": "zstd"}[kind]
    enc = {"utf-8": "utf-8", "utf-8-sig": "utf-8"}.get(encoding, encoding)
    return con.read_csv(
        p,
        header=True,
        delim=delimiter,
        compression=comp,
        encoding=enc,
        nullstr=list(na_values),
        sample_size=-1,
    )


def engine_can_read(engine: str, kind: str | None, encoding: str) -> bool:
    """Whether ``engine`` reads a CSV of this compression and encoding itself."""
    if engine == "spark":
        return kind is None and encoding in ("utf-8", "utf-8-sig")
    return kind in (None, "gzip", "zstd") and encoding in ("utf-8", "utf-8-sig", "utf-16")


# ---- the canonical table ----------------------------------------------------------------------
def _is_numeric(dtype: Any) -> bool:
    return bool(dtype.is_numeric() or dtype.is_boolean())


def _text(col: Any) -> Any:
    """A column as text the way pandas' ``astype(str)`` writes it (booleans as True/False)."""
    if col.type().is_boolean():
        return col.ifelse("True", "False")
    return col.cast("string")


def canonical(t: Any, columns: ColumnMap, arm_map: ArmMap) -> Any:
    """The validated rows as an Ibis expression in the contract's canonical columns (the same
    columns and order as ``CustomerData.frame``); it assumes :func:`check_rows` passed."""
    ibis = _ibis()
    cid = t[columns.customer_id] if columns.customer_id else (ibis.row_number() + 1)
    parts = [_text(t[c]) for c in columns.segments]
    segment = parts[0]
    for p in parts[1:]:
        segment = segment + SEGMENT_SEP + p
    arm = _text(t[columns.arm])
    tactic = arm.cases(*[(a.name, a.tactic.value) for a in arm_map.arms])
    conv = t[columns.converted].cast("int64")
    revenue = t[columns.revenue].cast("float64") if columns.revenue else ibis.literal(0.0)
    orders = t[columns.orders].cast("int64") if columns.orders else conv
    extra = [c for c in dict.fromkeys(columns.covariates) if c not in columns.segments]
    extra = [c for c in extra if c not in columns.guardrails]
    fields: dict[str, Any] = {"customer_id": cid, SEGMENT: segment}
    fields |= {c: p for c, p in zip(columns.segments, parts, strict=True) if c != SEGMENT}
    fields |= {"arm": arm, "tactic": tactic, "converted": conv, "revenue": revenue}
    fields |= {"orders": orders, **{c: t[c] for c in extra}}
    fields |= {g: t[g].cast("int64") for g in dict.fromkeys(columns.guardrails)}
    # the per-customer value inputs, under their canonical names (as validate_customers does)
    fields |= {k: t[c].cast("float64") for k, c in columns.value_inputs().items()}
    # each tactic's own outcome (data.columns.outcomes), as validate_customers keeps it
    fields |= {
        o.canonical: t[o.column].cast("float64" if o.kind == "revenue" else "int64")
        for o in columns.outcomes
    }
    return t.select(**fields)


# ---- the contract's checks, as aggregates -----------------------------------------------------
def check_rows(t: Any, columns: ColumnMap, arm_map: ArmMap) -> list[str]:
    """Every contract check of :func:`~uplift.data.contract.validate_customers` the engine can
    run as an aggregate; the names of the checks that fail (empty: the rows are valid).

    One pass over the rows (plus one grouped pass for arms and one for segment names).
    """
    ibis = _ibis()
    schema = t.schema()
    failed: list[str] = []
    required = columns.required()
    if any(c not in schema for c in required.values()):
        return ["missing columns"]
    for g in dict.fromkeys(columns.guardrails):
        if g not in schema or not _is_numeric(schema[g]):
            return [f"guardrail {g}"]
    numeric = {"converted": columns.converted, "revenue": columns.revenue}
    numeric |= {"orders": columns.orders}
    numeric |= columns.value_inputs()  # cost_to_serve / wallet / categories, when mapped
    numeric |= {o.key: o.column for o in columns.outcomes}
    for key, c in numeric.items():
        if c and not _is_numeric(schema[c]):
            failed.append(f"{key} not numeric")
    if failed:
        return failed

    def nulls(c: str) -> Any:
        col = t[c]
        miss = col.isnull()
        if schema[c].is_floating():
            miss = miss | col.isnan()
        return miss.cast("int64").sum()

    aggs: dict[str, Any] = {"rows": t.count()}
    for key, c in required.items():
        aggs[f"null {key}"] = nulls(c)
    for g in dict.fromkeys(columns.guardrails):
        aggs[f"null guardrail {g}"] = nulls(g)
        gv = t[g].cast("float64")
        aggs[f"guardrail {g}"] = (~gv.isin([0.0, 1.0])).cast("int64").sum()
    if columns.customer_id:
        aggs["distinct ids"] = t[columns.customer_id].nunique()
    conv = t[columns.converted].cast("float64")
    aggs["converted not 0/1"] = (~conv.isin([0.0, 1.0])).cast("int64").sum()
    aggs["conversions"] = conv.sum()
    if columns.revenue:
        r = t[columns.revenue].cast("float64")
        aggs["revenue infinite"] = r.isinf().cast("int64").sum()
        aggs["revenue negative"] = (r < 0).cast("int64").sum()
        aggs["revenue positive"] = (r > 0).cast("int64").sum()
        aggs["revenue max"] = r.max()
    if columns.orders:
        o = t[columns.orders].cast("float64")
        aggs["orders bad"] = ((o < 0) | (o != o.floor())).cast("int64").sum()
        aggs["orders positive"] = (o > 0).cast("int64").sum()
    for key, c in columns.value_inputs().items():
        v = t[c].cast("float64")
        aggs[f"{key} negative or infinite"] = ((v < 0) | v.isinf()).cast("int64").sum()
    for o in columns.outcomes:
        aggs[f"null {o.key}"] = nulls(o.column)
        aggs[f"{o.key} not {o.kind}"] = _bad_outcome(t[o.column].cast("float64"), o.kind)
    got = t.aggregate(**aggs).to_pandas().iloc[0].to_dict()
    n = int(got["rows"])
    if n == 0:
        return ["empty"]
    failed += [k for k in aggs if k.startswith("null") and int(got[k] or 0)]
    if columns.customer_id and int(got["distinct ids"]) != n:
        failed.append("duplicated ids")
    bad_value_inputs = [f"{key} negative or infinite" for key in columns.value_inputs()]
    for k in (
        "converted not 0/1",
        "revenue infinite",
        "revenue negative",
        "orders bad",
        *bad_value_inputs,
        *[f"{o.key} not {o.kind}" for o in columns.outcomes],
    ):
        if k in got and int(got[k] or 0):
            failed.append(k)
    failed += [f"guardrail {g}" for g in columns.guardrails if int(got[f"guardrail {g}"] or 0)]
    if failed:
        return failed
    outcome = float(got["conversions"] or 0) > 0
    outcome |= int(got.get("revenue positive") or 0) > 0 or int(got.get("orders positive") or 0) > 0
    if not outcome:
        failed.append("no outcome")
    arms = t.group_by(a=_text(t[columns.arm])).aggregate(n=t.count()).to_pandas()
    have = dict(zip(arms["a"].astype(str), arms["n"].astype(int), strict=True))
    if set(have) - set(arm_map.names) or any(have.get(a, 0) == 0 for a in arm_map.names):
        failed.append("arms")
    if len(columns.segments) > 1:
        c = canonical(t, columns, arm_map)
        combos = c.select(SEGMENT, *[x for x in columns.segments if x != SEGMENT]).distinct()
        clash = combos.group_by(SEGMENT).aggregate(k=combos.count())
        if int(clash.filter(clash.k > 1).count().to_pandas()):
            failed.append("segment names")
    del ibis
    return failed


def _bad_outcome(y: Any, kind: str) -> Any:
    """Rows whose ``data.columns.outcomes`` value the family cannot read (``kind``)."""
    if kind == "converted":
        bad = ~y.isin([0.0, 1.0])
    elif kind == "orders":
        bad = (y < 0) | (y != y.floor()) | y.isinf()
    else:
        bad = (y < 0) | y.isinf()
    return bad.cast("int64").sum()


def check_outcome_range(rows: Any, outcomes: Sequence[OutcomeColumn]) -> None:
    """Refuse a spend outcome (``data.columns.outcomes``) beyond the fixed-point grid's range."""
    for o in outcomes:
        if o.kind == "revenue":
            _check_spend_range(
                rows, o.canonical, f"column {o.column!r} ({o.key}) has a customer with"
            )


def check_revenue_range(rows: Any, revenue_column: str | None) -> None:
    """Refuse a revenue beyond the fixed-point grid's range (revenue squared must fit)."""
    if revenue_column:
        _check_spend_range(
            rows,
            "revenue",
            f"column {revenue_column!r} (data.columns.revenue) has a customer with revenue",
        )


def _check_spend_range(rows: Any, canonical: str, what: str) -> None:
    """``what`` + the largest value of ``rows[canonical]`` when it is beyond the grid's range."""
    top = float(rows[canonical].max().to_pandas() or 0)
    if top > MAX_REVENUE:
        raise DataValidationError(
            f"{what} {top:.6g}, above the engine's fixed-point "
            f"range ({MAX_REVENUE:,.0f} per customer); check the unit (cents?) or use "
            "data.engine=pandas"
        )


def segments_without_control(cells: pd.DataFrame, control: str) -> list[str]:
    """Segments of ``cells`` with no control customers (their uplift is not identified)."""
    has = set(cells.loc[(cells["arm"] == control) & (cells["n"] > 0), SEGMENT])
    return sorted(set(cells[SEGMENT]) - has)


# ---- rows -> cells -----------------------------------------------------------------------------
def _fixed(x: Any, bits: int) -> Any:
    """``x`` rounded to the fixed-point grid of ``bits`` bits, as an exact DECIMAL(38, 0)."""
    return ((x * float(2**bits)) + 0.5).floor().cast("int64").cast("decimal(38, 0)")


def _row_statistics(y: Any, kind: str) -> dict[str, Any]:
    """Each row's contribution to the statistics a ``kind`` outcome feeds (the shared
    ``converted`` / ``orders`` / ``revenue`` and each ``data.columns.outcomes`` column), as
    :func:`~uplift.data.cells.outcome_row_statistics` in pandas; spend clipped at the grid's
    range (:func:`check_revenue_range` refuses such data after the plausibility guards, which
    name an outlying revenue better, have run)."""
    if kind == "converted":
        return {"conversions": y}
    if kind == "orders":
        return {"orders_sum": y, "orders_sq_sum": y * y}
    pos = y > 0
    logy = pos.ifelse(pos.ifelse(y, 1.0).log(), 0.0)
    return {
        "revenue_sum": y.clip(upper=MAX_REVENUE),
        "revenue_sq_sum": (y * y).clip(upper=MAX_REVENUE**2),
        "n_buyers": pos.cast("int64"),
        "log_revenue_sum": logy,
        "log_revenue_sq_sum": logy * logy,
    }


def _sums(rows: Mapping[str, Any], bits: Mapping[str, int]) -> dict[str, Any]:
    """Each row statistic summed: fixed point (``bits``) for the float ones."""
    return {k: (_fixed(x, bits[k]) if k in bits else x).sum() for k, x in rows.items()}


def _outcome_sums(c: Any, outcomes: Sequence[OutcomeColumn]) -> dict[str, Any]:
    """The cells' sums of each tactic's own outcome (``outcome__<tactic>__<statistic>``), as
    :func:`~uplift.data.cells.aggregate_cells` computes them."""
    out: dict[str, Any] = {}
    for o in outcomes:
        rows = _row_statistics(c[o.canonical], o.kind)
        named = {col: rows[stat] for col, stat in outcome_cell_columns(o).items()}
        out |= _sums(named, outcome_fixed_bits([o]))
    return out


def cells_expr(
    c: Any,
    dims: Sequence[str],
    guardrails: Sequence[str],
    *,
    folds: tuple[int, int] | None = None,
    outcomes: Sequence[OutcomeColumn] = (),
) -> Any:
    """The rows -> cells aggregation of :func:`~uplift.data.cells.aggregate_cells` on canonical
    rows ``c``: one row per (segment, dims, arm), integer sums and fixed-point float sums.

    ``folds=(seed, K)``: per (fold, segment, dims, arm) instead, the fold from
    :func:`fold_column`, with the outcome moments cross-fitting scores a plan on
    (:func:`uplift.evaluate.crossfit.score_plan_moments`)."""
    b = FIXED_POINT_BITS
    keys = [SEGMENT, *dims, "arm"]
    extra: dict[str, Any] = {}
    if folds is not None:
        c = c.mutate(fold=fold_column(c.customer_id, *folds))
        keys = ["fold", *keys]
        rev = c.revenue.clip(upper=MAX_REVENUE)
        extra = {
            "x__converted__revenue": _fixed(c.converted * rev, b["revenue_sum"]).sum(),
            "x__converted__orders": (c.converted * c.orders).sum(),
            "x__revenue__orders": _fixed(rev * c.orders, b["revenue_sum"]).sum(),
        }
    return c.group_by(keys).aggregate(
        **extra,
        n=c.count(),
        **{
            k: v
            for kind in ("converted", "revenue", "orders")  # the shared outcome columns
            for k, v in _sums(_row_statistics(c[kind], kind), b).items()
        },
        **{f"guardrail__{g}": c[g].sum() for g in guardrails},
        **_outcome_sums(c, outcomes),
    )


FOLD_FIXED = {
    **FIXED_POINT_BITS,
    "x__converted__revenue": FIXED_POINT_BITS["revenue_sum"],
    "x__revenue__orders": FIXED_POINT_BITS["revenue_sum"],
}


def fold_cells(
    rows: Any,
    arm_map: ArmMap,
    dims: Sequence[str],
    guardrails: Sequence[str],
    seed: int,
    folds: int,
) -> pd.DataFrame:
    """Per-(fold, segment, dims, arm) cells and outcome moments, fixed-point sums kept as exact
    integers (``train_cells`` adds folds before turning them into floats)."""
    raw = cells_expr(rows, dims, guardrails, folds=(seed, folds)).to_pandas()
    for col in FOLD_FIXED:
        raw[col] = [int(v) for v in raw[col]]
    raw["fold"] = raw["fold"].astype(np.int64)
    return raw


def train_cells(
    fc: pd.DataFrame, k: int, arm_map: ArmMap, dims: Sequence[str], guardrails: Sequence[str]
) -> pd.DataFrame:
    """The cells of every fold but ``k`` (exact: the integer sums are added, then scaled)."""
    keys = [SEGMENT, *dims, "arm"]
    part = fc[fc["fold"] != k].drop(columns=["fold"])
    cols = [c for c in part.columns if c not in keys]
    summed = part.groupby(keys, sort=True)[cols].agg(lambda x: sum(int(v) for v in x))
    return finish_cells(summed.reset_index(), arm_map, dims, guardrails)


def fold_moments(fc: pd.DataFrame) -> pd.DataFrame:
    """The fold cells as the moments :func:`~uplift.evaluate.crossfit.score_plan_moments`
    reads: ``fold, segment, arm, n, s__<col>, ss__<col>, x__<c1>__<c2>``."""
    out = pd.DataFrame({"fold": fc["fold"], SEGMENT: fc[SEGMENT].astype(str)})
    out["arm"], out["n"] = fc["arm"].astype(str), fc["n"].astype(np.int64)

    def f(col: str) -> np.ndarray:
        return (
            from_fixed(fc[col], FOLD_FIXED[col])
            if col in FOLD_FIXED
            else fc[col].to_numpy(dtype=float)
        )

    out["s__converted"] = out["ss__converted"] = f("conversions")
    out["s__revenue"], out["ss__revenue"] = f("revenue_sum"), f("revenue_sq_sum")
    out["s__orders"], out["ss__orders"] = f("orders_sum"), f("orders_sq_sum")
    for col in ("x__converted__revenue", "x__converted__orders", "x__revenue__orders"):
        out[col] = f(col)
    return out


# ---- rows held by an engine --------------------------------------------------------------------
@dataclass
class EngineRows:
    """Validated canonical rows held by an engine (``table``: an Ibis expression).

    ``frame`` pulls every row into pandas once (and says so in the log): only stages that need
    rows (the covariate model, the hold-out refit, customer-level CLV joins) read it.
    """

    table: Any
    engine: str
    n_rows: int
    cells: pd.DataFrame
    _frame: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def frame(self) -> pd.DataFrame:
        if self.table is None:
            raise DataValidationError(
                "data=cells holds no customer rows, and this run needs them (customer targets, "
                "cross-fitting, the hold-out refit, the covariate model or covariate balance): "
                "set evaluate.crossfit_folds=0 and evaluate.holdout_fraction=0, or pass the rows "
                "(data=parquet / data=csv / data=warehouse)"
            )
        if self._frame is None:
            log.info(
                "pulling %s rows from the %s engine into pandas (a stage needs rows)",
                f"{self.n_rows:,}",
                self.engine,
            )
            frame = self.table.to_pandas()
            for c in frame.columns:
                if frame[c].dtype == object or str(frame[c].dtype).startswith("string"):
                    frame[c] = frame[c].astype(object)
            self._frame = frame.reset_index(drop=True)
        return self._frame

    def select(self, columns: Sequence[str], arms: Sequence[str] | None = None) -> pd.DataFrame:
        """Only ``columns`` of the rows (of ``arms`` when given), without pulling the rest; from
        the pandas copy when a stage has already pulled every row (:attr:`frame`)."""
        if self._frame is not None:
            f = self._frame if arms is None else self._frame[self._frame["arm"].isin(list(arms))]
            return f[list(columns)].reset_index(drop=True)
        log.info(
            "pulling columns %s of the %s engine's rows into pandas", list(columns), self.engine
        )
        t = self.table
        if arms is not None:
            t = t.filter(t.arm.isin(list(arms)))
        return t.select(*columns).to_pandas()


def open_rows(
    engine: str,
    *,
    path: str | Path | None = None,
    source: str = "parquet",
    connection: str | None = None,
    table: str | None = None,
    query: str | None = None,
    spark_master: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    na_values: Sequence[str] = ("",),
) -> Any:
    """The raw rows as an Ibis table: a warehouse table or query, or a CSV / Parquet file read
    by the engine. A file the engine cannot read (an encoding or compression it lacks, a
    malformed row) is read by the pandas reader instead, which names the fault if there is
    one, and comes back as a pandas DataFrame (the caller takes the pandas path with it).
    """
    from uplift.data.io import csv_dialect, load_customers, preflight

    con = connect(engine, connection, spark_master)
    if connection:
        if bool(table) == bool(query):
            raise DataValidationError(
                f"data.connection={connection!r} needs exactly one source: data.table=<name> "
                "or data.query='SELECT ...'"
            )
        try:
            if table:
                return con.table(table)
            try:
                return con.sql(query)
            except AttributeError:  # Ibis 12's DuckDB backend on duckdb 2 (schema of a query)
                con.raw_sql(f"CREATE OR REPLACE TEMP VIEW uplift_query AS {query}")
                return con.table("uplift_query")
        except Exception as e:
            what = f"data.table={table!r}" if table else f"data.query={query!r}"
            raise DataValidationError(
                f"{what} could not be read from data.connection ({type(e).__name__}: {e})"
            ) from None
    p, _, kind = preflight(path)
    enc, sep = ("", "")
    if source == "csv" and kind != "parquet":
        enc, sep = csv_dialect(p, kind, encoding, delimiter)
    readable = (source == "parquet" and kind == "parquet") or (
        source == "csv" and kind != "parquet" and engine_can_read(engine, kind, enc)
    )
    if readable:
        try:
            t = read_file(
                con, engine, p, source, kind=kind, encoding=enc, delimiter=sep, na_values=na_values
            )
            t.schema()
            return t
        except Exception as e:  # the engine's own parse errors: let the reference name them
            log.info("the %s engine could not read %s (%s); reading it with pandas", engine, p, e)
    return load_customers(p, source, encoding=encoding, delimiter=delimiter, na_values=na_values)


def validated_rows(
    t: Any, columns: ColumnMap, arm_map: ArmMap, engine: str
) -> tuple[Any, pd.DataFrame, int]:
    """(canonical rows, cells, rows) of a raw engine table, after every contract check.

    A failed check is named the way :func:`~uplift.data.contract.validate_customers` names it:
    a source of up to :data:`REFERENCE_ROWS` rows is re-checked by it row by row (the message
    names rows and values), a larger one gets the check's name and counts.
    """
    from uplift.data.cells import CELL_COLUMNS
    from uplift.data.contract import (
        check_outcome_columns,
        no_control_message,
        validate_customers,
    )

    check_outcome_columns(list(t.schema().names), columns, arm_map)
    try:
        failed = check_rows(t, columns, arm_map)
    except DataValidationError:
        raise
    except Exception as e:  # a value the engine cannot cast (text in a number column, ...)
        failed = [f"engine error {type(e).__name__}: {e}"]
    if failed:
        n = int(t.count().to_pandas())
        if n <= REFERENCE_ROWS:
            validate_customers(t.to_pandas(), columns, arm_map)  # raises the named error
        raise DataValidationError(
            f"the customer rows fail the contract's check(s) {failed} ({n:,} rows, checked in "
            f"the {engine} engine); fix the columns named in data.columns (see the README's "
            "data contract)"
        )
    c = canonical(t, columns, arm_map)
    dims = [x for x in columns.segments if x != SEGMENT and x not in CELL_COLUMNS]
    dims = dims if len(columns.segments) > 1 else []
    guards = list(dict.fromkeys(columns.guardrails))
    own = columns.outcomes
    check_outcome_range(c, own)
    raw = cells_expr(c, dims, guards, outcomes=own).to_pandas()
    cells = finish_cells(raw, arm_map, dims, guards, own)
    missing = segments_without_control(cells, arm_map.control.name)
    if missing:
        raise DataValidationError(no_control_message(missing, columns, arm_map.control.name))
    return c, cells, int(cells["n"].sum())


def covariate_moments(rows: Any, covariates: Sequence[str]) -> tuple[list[str], pd.DataFrame]:
    """(numeric covariates, their per-(segment, arm) count, sum and sum of squares): all a
    standardised mean difference needs, computed in the engine."""
    schema = rows.schema()
    numeric = [c for c in covariates if schema[c].is_numeric() or schema[c].is_boolean()]
    aggs: dict[str, Any] = {}
    for cov in numeric:
        x = rows[cov].cast("float64")
        ok = x.notnull() & ~x.isnan()
        aggs[f"{cov}__n"] = ok.cast("int64").sum()
        aggs[f"{cov}__s"] = ok.ifelse(x, 0.0).sum()
        aggs[f"{cov}__ss"] = ok.ifelse(x * x, 0.0).sum()
    if not numeric:
        return numeric, pd.DataFrame()
    return numeric, rows.group_by([SEGMENT, "arm"]).aggregate(**aggs).to_pandas()


def fold_column(customer_id: Any, seed: int, folds: int) -> Any:
    """Each customer's fold from a salted hash of the id, computed in the engine: the first 8 hex
    digits of ``sha256(f"{seed}:{id}")`` as an integer, modulo ``folds``."""
    ibis = _ibis()
    h = (ibis.literal(f"{int(seed)}:") + customer_id.cast("string")).hexdigest("sha256")
    return _hex_to_int(h.substr(0, 7)) % int(folds)


def _hex_to_int(h: Any) -> Any:
    """A short lowercase hex string as an integer, with portable string functions only."""
    out = None
    for i in range(7):
        ch = h.substr(i, 1)
        digit = ch.cases(*[(d, v) for v, d in enumerate("0123456789abcdef")], else_=0)
        out = digit if out is None else out * 16 + digit
    return out
