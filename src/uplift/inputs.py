"""The customer rows a run starts from: read (or generate) them as configured, then validate.

Shared by the conductors (:mod:`uplift.pipeline`, :mod:`uplift.app.plan`), so that neither
imports the other. ``uplift.pipeline.load_data`` is this function, re-exported.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from uplift.atomic_io import atomic_write_csv, atomic_write_parquet
from uplift.config import AppConfig, DataEngine, DataSource, ValueKind
from uplift.data import (
    ColumnMap,
    CustomerData,
    DataValidationError,
    load_customers,
    validate_customers,
)
from uplift.data.contract import derive_columns
from uplift.data.synthetic import generate


def load_data(config: AppConfig, output_dir: Path) -> tuple[CustomerData, pd.DataFrame | None]:
    """Read (or generate) and validate customer rows; synthetic truth is written beside the data."""
    arm_map = config.tactics.arm_map()
    dc = config.data
    truth = None
    if dc.source is DataSource.cells:
        return _load_cells(config, arm_map), None
    engine = dc.resolved_engine()
    row_level = bool(dc.derive) or (config.value.kind is ValueKind.clv and config.value.join_tier)
    if dc.source is DataSource.warehouse or (
        engine is not DataEngine.pandas and dc.source in (DataSource.csv, DataSource.parquet)
    ):
        table = _open(config, dc.source.value)
        if isinstance(table, pd.DataFrame):  # read by pandas: the engine could not
            raw = table
        elif not row_level and engine is not DataEngine.pandas:
            return _engine_data(config, table, engine.value, arm_map), None
        else:  # data.derive and the CLV tier join are pandas steps: the rows come into pandas
            raw = table.to_pandas()
    elif dc.source is DataSource.synthetic:
        s = dc.synthetic
        exp = generate(
            arm_map,
            n_customers=s.n_customers,
            seed=s.seed,
            control_share=s.control_share,
            value_tiers=list(s.value_tiers),
            tier_shares=list(s.tier_shares),
            needs=list(s.needs),
            effect_noise=s.effect_noise,
            outcomes=s.outcomes,
            margin=config.value.margin,
            prices=dict(config.pricing.prices) or None,
        )
        exp.write(output_dir / "synthetic")
        raw, truth = exp.customers, exp.truth
    elif dc.source is DataSource.synthetic_price:
        from uplift.data.synthetic_price import generate_price_test

        sp = dc.synthetic_price
        raw, price_truth = generate_price_test(
            list(sp.segments),
            list(sp.prices),
            sp.current_price,
            sp.n_customers,
            list(sp.true_a),
            list(sp.true_b),
            sp.seed,
        )
        (output_dir / "synthetic").mkdir(parents=True, exist_ok=True)
        atomic_write_parquet(raw, output_dir / "synthetic" / "customers.parquet")
        atomic_write_csv(price_truth, output_dir / "synthetic" / "price_truth.csv")
    elif dc.source in (DataSource.csv, DataSource.parquet):
        raw = load_customers(
            dc.path,
            dc.source.value,
            encoding=dc.encoding,
            delimiter=dc.delimiter,
            na_values=dc.na_values,
        )
    raw = derive_columns(raw, dict(dc.derive))
    if config.value.kind is ValueKind.clv and config.value.join_tier:
        raw = _join_clv_tier(config, raw)
    return validate_customers(raw, column_map(config), arm_map), truth


def column_map(config: AppConfig) -> ColumnMap:
    """``data.columns`` with the guardrail columns and, for each tactic of
    ``data.columns.outcomes``, the input its family reads (``Family.requires``, else the 0/1
    ``converted``): what the mapped column stands in for and is validated as."""
    from uplift.models.families import get_family

    kinds = {
        t: get_family(config.model.family_of(t)).requires or "converted"
        for t in config.data.columns.outcomes
    }
    guards = [g.column for g in config.guardrails]
    return ColumnMap.from_config(config.data.columns, guards, kinds)


def _open(config: AppConfig, source: str):
    """The configured source opened by its engine (DuckDB when the engine is pandas: only
    for reading; a frame comes back when the engine could not read the file)."""
    from uplift.data.engine import open_rows

    dc = config.data
    engine = dc.resolved_engine()
    return open_rows(
        engine.value if engine is not DataEngine.pandas else "duckdb",
        path=dc.path,
        source=source,
        connection=dc.connection,
        table=dc.table,
        query=dc.query,
        spark_master=dc.spark_master,
        encoding=dc.encoding,
        delimiter=dc.delimiter,
        na_values=dc.na_values,
    )


def _load_cells(config: AppConfig, arm_map) -> CustomerData:
    """``data=cells``: the pre-aggregated table (a file or a warehouse table), validated."""
    from uplift.data.cells_input import cells_data, validate_cells

    dc = config.data
    if dc.columns.outcomes:
        raise DataValidationError(
            f"data.columns.outcomes={dict(dc.columns.outcomes)} maps tactics to customer "
            "columns, but data=cells holds no customer rows to aggregate them from; pass the "
            "rows (data=csv / data=parquet / data=warehouse) or drop data.columns.outcomes"
        )
    path = str(dc.path or "")
    source = "parquet" if path.endswith((".parquet", ".pq")) else "csv"
    table = _open(config, source)
    guards = tuple(dict.fromkeys(g.column for g in config.guardrails))
    raw = table if isinstance(table, pd.DataFrame) else table.to_pandas()
    cells = validate_cells(raw, arm_map, guards)
    return cells_data(cells, arm_map, tuple(dc.columns.segments), guards)


def _engine_data(config: AppConfig, table, engine: str, arm_map) -> CustomerData:
    """Validated rows held by ``engine``: checked and aggregated there, only cells come back."""
    from uplift.data.engine import EngineRows, validated_rows

    columns = column_map(config)
    rows, cells, n = validated_rows(table, columns, arm_map, engine)
    return CustomerData(
        rows=None,
        segment_columns=tuple(columns.segments),
        arm_map=arm_map,
        has_revenue=columns.revenue is not None,
        has_orders=columns.orders is not None,
        guardrails=tuple(dict.fromkeys(columns.guardrails)),
        engine=EngineRows(rows, engine, n, cells),
        outcomes=columns.outcomes,
    )


def _join_clv_tier(config: AppConfig, raw: pd.DataFrame) -> pd.DataFrame:
    """Add each customer's CLV tier (from ``value.customer_value_path``) as a segment column."""
    from uplift.value.clv_join import attach_value_tier, load_customer_value

    vc, cols = config.value, config.data.columns
    if not cols.customer_id:
        raise DataValidationError(
            "value.kind=clv joins CLV by customer id, but data.columns.customer_id is null; map it"
        )
    if vc.tier_column not in cols.segments:
        raise DataValidationError(
            f"value.join_tier adds column {vc.tier_column!r}: list it in data.columns.segments, "
            f"e.g. data.columns.segments=[{vc.tier_column},{','.join(cols.segments)}]"
        )
    try:
        path = vc.customer_value_path
        if path is None:  # ValueConfig refuses kind=clv without it; a later edit may not
            raise ValueError(
                "value.kind=clv needs value.customer_value_path=<dir>/customer_value.csv "
                "written by `uplift clv`"
            )
        return attach_value_tier(
            raw,
            load_customer_value(path),
            id_col=cols.customer_id,
            new_col=vc.tier_column,
            missing=vc.missing_tier,
        )
    except ValueError as e:
        raise DataValidationError(str(e)) from e
