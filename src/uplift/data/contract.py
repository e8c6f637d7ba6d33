"""The canonical customer-level contract and its validation.

Every check runs before any model is built, and every error names the column or value at fault
and says how to fix it. Written by hand rather than with pandera: the checks are cross-column and
config-aware (unknown arms, segments without control), and the messages must point at config keys.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from uplift.tactics import ArmMap

SEGMENT = "segment"
SEGMENT_SEP = "/"


class DataValidationError(ValueError):
    """Input data does not satisfy the contract. The message says what is wrong and how to fix it."""


#: what each kind of outcome a family reads (``Family.requires``, else ``converted``) must hold
OUTCOME_KINDS = {
    "converted": "0/1 values (1 = the outcome happened)",
    "orders": "integer counts >= 0",
    "revenue": "finite amounts >= 0",
}


def outcome_column(tactic: str) -> str:
    """The canonical row column holding ``tactic``'s own outcome (``data.columns.outcomes``)."""
    return f"outcome__{tactic}"


@dataclass(frozen=True)
class OutcomeColumn:
    """``data.columns.outcomes.<tactic>``: the user column ``tactic`` is fit on, standing in for
    the family's input ``kind`` (``converted``, ``orders`` or ``revenue``)."""

    tactic: str
    column: str
    kind: str

    @property
    def key(self) -> str:
        return f"data.columns.outcomes.{self.tactic}"

    @property
    def canonical(self) -> str:
        return outcome_column(self.tactic)


class ColumnSettings(Protocol):
    """The column settings :meth:`ColumnMap.from_config` reads (``uplift.config.ColumnsConfig``)."""

    @property
    def customer_id(self) -> str | None: ...
    @property
    def segments(self) -> Sequence[str]: ...
    @property
    def arm(self) -> str: ...
    @property
    def converted(self) -> str: ...
    @property
    def revenue(self) -> str | None: ...
    @property
    def orders(self) -> str | None: ...


@dataclass(frozen=True)
class ColumnMap:
    """User column names for each canonical field. ``revenue``/``orders`` are optional."""

    customer_id: str | None = "customer_id"  # None: the row number identifies the customer
    segments: tuple[str, ...] = ("segment",)
    arm: str = "arm"
    converted: str = "converted"
    revenue: str | None = "revenue"
    orders: str | None = "orders"
    covariates: tuple[str, ...] = ()  # raw columns kept as they are for row-level models
    #: 0/1 guardrail outcome columns (``guardrails[].column``), summed into the cells
    guardrails: tuple[str, ...] = ()
    #: optional value inputs per customer (currency >= 0; count >= 0 for categories), kept as
    #: canonical columns ``cost_to_serve``, ``wallet``, ``categories`` (uplift.value.tactic_value)
    cost_to_serve: str | None = None
    wallet: str | None = None
    categories: str | None = None
    #: per tactic, the column its model is fit on instead of the shared converted / orders /
    #: revenue (``data.columns.outcomes``), kept as canonical column ``outcome__<tactic>``
    outcomes: tuple[OutcomeColumn, ...] = ()

    @classmethod
    def from_config(
        cls,
        cfg: ColumnSettings,
        guardrails: Sequence[str] = (),
        outcome_kinds: Mapping[str, str] | None = None,
    ) -> ColumnMap:
        """``outcome_kinds``: tactic -> the input its family reads (``converted``, ``orders``,
        ``revenue``) for each tactic of ``data.columns.outcomes`` (default ``converted``)."""
        kinds = dict(outcome_kinds or {})
        mapped = dict(getattr(cfg, "outcomes", None) or {})
        return cls(
            outcomes=tuple(
                OutcomeColumn(str(t), str(c), kinds.get(str(t), "converted"))
                for t, c in mapped.items()
            ),
            guardrails=tuple(guardrails),
            customer_id=cfg.customer_id,
            segments=tuple(cfg.segments),
            arm=cfg.arm,
            converted=cfg.converted,
            revenue=cfg.revenue,
            orders=cfg.orders,
            covariates=tuple(getattr(cfg, "covariates", ()) or ()),
            cost_to_serve=getattr(cfg, "cost_to_serve", None),
            wallet=getattr(cfg, "wallet", None),
            categories=getattr(cfg, "categories", None),
        )

    def value_inputs(self) -> dict[str, str]:
        """canonical name -> user column of the optional per-customer value inputs given."""
        named = {"cost_to_serve": self.cost_to_serve, "wallet": self.wallet}
        named["categories"] = self.categories
        return {k: c for k, c in named.items() if c}

    def required(self) -> dict[str, str]:
        """canonical config key -> user column, for every column that must exist."""
        cols = {"arm": self.arm, "converted": self.converted}
        if self.customer_id:
            cols["customer_id"] = self.customer_id
        for i, s in enumerate(self.segments):
            cols[f"segments[{i}]"] = s
        if self.revenue:
            cols["revenue"] = self.revenue
        if self.orders:
            cols["orders"] = self.orders
        for i, c in enumerate(self.covariates):
            cols[f"covariates[{i}]"] = c
        cols.update(self.value_inputs())
        return cols


@dataclass(frozen=True)
class CustomerData:
    """Validated customer rows in canonical columns.

    Columns: ``customer_id, segment, <segment columns>, arm, tactic, converted, revenue, orders``
    and any ``data.columns.covariates`` kept as they are; guardrails under their own names,
    value inputs under their canonical names and each ``data.columns.outcomes`` tactic's own
    outcome as ``outcome__<tactic>``.
    ``segment`` joins the segment columns with ``/`` (e.g. ``high/price``).

    The rows are either in pandas (``rows``) or held by an engine (``engine``,
    :class:`uplift.data.engine.EngineRows`: DuckDB, Spark, a warehouse), which has already
    aggregated them to cells; ``frame`` then pulls them into pandas on first use, for the stages
    that need rows.
    """

    rows: pd.DataFrame | None
    segment_columns: tuple[str, ...]
    arm_map: ArmMap
    has_revenue: bool
    has_orders: bool
    #: the guardrail columns (0/1, kept under their own names; summed into the cells)
    guardrails: tuple[str, ...] = ()
    #: uplift.data.engine.EngineRows (typed loosely: the engine module imports this one)
    engine: Any = None
    #: tactics fit on their own outcome column (``data.columns.outcomes``): the rows hold it
    #: as ``outcome__<tactic>`` and the cells its sums as ``outcome__<tactic>__<statistic>``
    outcomes: tuple[OutcomeColumn, ...] = ()

    def outcome_of(self, tactic: str, default: str) -> str:
        """The canonical row column ``tactic``'s outcome is read from: its own
        ``outcome__<tactic>`` when mapped, else ``default`` (the family's column)."""
        return outcome_column(tactic) if self.mapped(tactic) is not None else default

    def mapped(self, tactic: str) -> OutcomeColumn | None:
        """``tactic``'s entry of ``data.columns.outcomes``, or None when it is not mapped."""
        return next((o for o in self.outcomes if o.tactic == str(tactic)), None)

    @property
    def frame(self) -> pd.DataFrame:
        """The canonical rows in pandas (pulled from the engine on first use)."""
        if self.rows is not None:
            return self.rows
        assert self.engine is not None, "CustomerData holds neither rows nor an engine"
        return self.engine.frame

    def select(self, columns: Sequence[str]) -> pd.DataFrame:
        """Only ``columns`` of the rows, without pulling the others from an engine."""
        if self.rows is None and self.engine is not None:
            return self.engine.select(list(columns))
        return self.frame[list(columns)]

    @property
    def column_names(self) -> list[str]:
        """The canonical columns (without pulling rows from an engine)."""
        if self.rows is None and self.engine is not None:
            t = self.engine.table
            return list(t.columns) if t is not None else list(self.engine.cells.columns)
        return list(self.frame.columns)

    @property
    def segments(self) -> list[str]:
        if self.rows is None and self.engine is not None:
            return sorted(self.engine.cells[SEGMENT].unique().tolist())
        return sorted(self.frame[SEGMENT].unique().tolist())

    def __len__(self) -> int:
        if self.rows is None and self.engine is not None:
            return self.engine.n_rows
        return len(self.frame)


def _examples(values: Sequence[object], k: int = 5) -> str:
    vals = list(dict.fromkeys(values))
    shown = ", ".join(repr(v) for v in vals[:k])
    return shown + (f", ... ({len(vals)} distinct)" if len(vals) > k else "")


def _fail(msg: str) -> None:
    raise DataValidationError(msg)


def _check_numeric(df: pd.DataFrame, col: str, key: str) -> pd.Series:
    s = df[col]
    if pd.api.types.is_bool_dtype(s):
        return s.astype(np.int64)
    if not pd.api.types.is_numeric_dtype(s):
        bad = s[pd.to_numeric(s, errors="coerce").isna() & s.notna()]
        _fail(
            f"column {col!r} (data.columns.{key}) must be numeric; found non-numeric values "
            f"{_examples(bad.tolist())}. Clean the column or map data.columns.{key} to a numeric column."
        )
    return s


def derive_columns(df: pd.DataFrame, derive: dict[str, dict]) -> pd.DataFrame:
    """Add derived columns (binned numbers or mapped labels) named in ``data.derive``."""
    if not derive:
        return df
    out = df.copy()
    for name, spec in derive.items():
        key = f"data.derive.{name}"
        src = spec.get("column") if isinstance(spec, dict) else None
        if not src or src not in df.columns:
            _fail(
                f"{key}.column must name a column of the data; got {src!r} (available: {list(df.columns)})"
            )
        if "bins" in spec:
            bins, labels = list(spec["bins"]), spec.get("labels")
            if labels is not None and len(labels) != len(bins) - 1:
                _fail(
                    f"{key}: {len(bins)} bin edges need {len(bins) - 1} labels, got {len(labels)}"
                )
            values = pd.to_numeric(df[src], errors="coerce")
            cut = pd.cut(values, bins=bins, labels=labels, include_lowest=True)
            outside = values.notna() & cut.isna()
            if outside.any():
                _fail(
                    f"{key}: values of {src!r} outside the bins {bins}, e.g. {_examples(values[outside].tolist())}; "
                    "widen the first or last edge"
                )
            out[name] = cut.astype(str).where(cut.notna())
        elif "map" in spec:
            mapping = {str(k): str(v) for k, v in spec["map"].items()}
            mapped = df[src].astype(str).map(mapping)
            missing = df[src][mapped.isna()]
            if len(missing):
                _fail(
                    f"{key}: no mapping for value(s) {_examples(missing.astype(str).tolist())} of {src!r}; add them to map"
                )
            out[name] = mapped
        else:
            _fail(f"{key}: give either bins (with optional labels) or map")
    return out


def validate_customers(df: pd.DataFrame, columns: ColumnMap, arm_map: ArmMap) -> CustomerData:
    """Check ``df`` against the contract and return canonical :class:`CustomerData`.

    Raises :class:`DataValidationError` naming the column/value and the fix.
    """
    if not isinstance(df, pd.DataFrame) or len(df) == 0:
        _fail("the customer table is empty: no rows to analyse (check data.path and any filters)")

    required = columns.required()
    missing = {k: c for k, c in required.items() if c not in df.columns}
    if missing:
        listed = ", ".join(f"{c!r} (data.columns.{k})" for k, c in missing.items())
        _fail(
            f"missing column(s) {listed}. Available columns: {list(map(str, df.columns))}. "
            "Rename them in your file or map them with e.g. data.columns.converted=<your column>."
        )

    check_outcome_columns(df.columns, columns, arm_map)

    for key, col in required.items():
        n_nan = int(df[col].isna().sum())
        if n_nan:
            rows = df.index[df[col].isna()].tolist()
            _fail(
                f"column {col!r} (data.columns.{key}) has {n_nan} missing value(s) (NaN), e.g. at rows "
                f"{_examples(rows)}. Fill or drop those rows before running."
            )

    ids = (
        df[columns.customer_id]
        if columns.customer_id
        else pd.Series(np.arange(1, len(df) + 1), index=df.index)
    )
    dup = ids[ids.duplicated()]
    if len(dup):
        _fail(
            f"column {columns.customer_id!r} (data.columns.customer_id) has {len(dup)} duplicated id(s) "
            f"{_examples(dup.tolist())}; each customer must appear once (one arm per customer)."
        )

    conv = _check_numeric(df, columns.converted, "converted")
    bad_conv = conv[~conv.isin([0, 1])]
    if len(bad_conv):
        _fail(
            f"column {columns.converted!r} (data.columns.converted) must be 0/1; found "
            f"{_examples(bad_conv.tolist())}. Recode it as 1 = converted, 0 = not."
        )
    conv = conv.astype(np.int64)

    revenue = None
    if columns.revenue:
        revenue = _check_numeric(df, columns.revenue, "revenue").astype(np.float64)
        if not np.isfinite(revenue).all():
            _fail(
                f"column {columns.revenue!r} (data.columns.revenue) has infinite values; fix or drop them."
            )
        neg = revenue[revenue < 0]
        if len(neg):
            _fail(
                f"column {columns.revenue!r} (data.columns.revenue) has {len(neg)} negative value(s) "
                f"{_examples(neg.tolist())}; revenue must be >= 0 (net out refunds upstream or clip at 0)."
            )

    no_revenue = revenue is None or not (revenue > 0).any()
    if conv.sum() == 0 and no_revenue and not (columns.orders and (df[columns.orders] > 0).any()):
        _fail(
            f"no customer converted (column {columns.converted!r}, data.columns.converted, is all 0)"
            " and there is no revenue or order: there is no outcome to model. Check the column "
            "mapping (data.columns.converted / revenue / orders) and the export."
        )

    orders = None
    if columns.orders:
        orders = _check_numeric(df, columns.orders, "orders")
        bad = orders[(orders < 0) | (orders != np.floor(orders))]
        if len(bad):
            _fail(
                f"column {columns.orders!r} (data.columns.orders) must hold integers >= 0; found "
                f"{_examples(bad.tolist())}."
            )
        orders = orders.astype(np.int64)

    arms = df[columns.arm].astype(str)
    known = set(arm_map.names)
    unknown = sorted(set(arms.unique()) - known)
    if unknown:
        _fail(
            f"column {columns.arm!r} (data.columns.arm) has arm value(s) {_examples(unknown)} that are "
            f"not in tactics.arms (configured: {sorted(known)}). Add each to tactics.arms with its "
            "tactic and cost, or drop those rows."
        )
    counts = arms.value_counts()
    empty = [a for a in arm_map.names if counts.get(a, 0) == 0]
    if empty:
        _fail(
            f"arm(s) {empty} are configured in tactics.arms but have no customers in column "
            f"{columns.arm!r}. Remove them from tactics.arms or check the arm labels in your data."
        )

    seg_parts = [df[c].astype(str) for c in columns.segments]
    segment = (
        seg_parts[0]
        if len(seg_parts) == 1
        else seg_parts[0].str.cat(seg_parts[1:], sep=SEGMENT_SEP)
    )
    if len(seg_parts) > 1:
        combos = pd.DataFrame({"segment": segment, **{f"p{i}": x for i, x in enumerate(seg_parts)}})
        kinds = combos.drop_duplicates().groupby("segment").size()
        clash = sorted(kinds[kinds > 1].index)
        if clash:
            _fail(
                f"segment name(s) {_examples(clash)} are made by more than one combination of "
                f"data.columns.segments={list(columns.segments)} (values are joined with "
                f"{SEGMENT_SEP!r}, and some values contain it, e.g. tier 'a/b' + region 'c' and "
                f"tier 'a' + region 'b/c'). Replace {SEGMENT_SEP!r} in those values (e.g. with '-')."
            )
    control = arm_map.control.name
    has_control = set(segment[arms == control].unique())
    no_control = sorted(set(segment.unique()) - has_control)
    if no_control:
        _fail(no_control_message(no_control, columns, control))

    canonical = {"customer_id", SEGMENT, "arm", "tactic", "converted", "revenue", "orders"}
    extra = [c for c in dict.fromkeys(columns.covariates) if c not in columns.segments]
    clash = sorted(set(extra) & canonical)
    if clash:
        _fail(
            f"covariate column(s) {clash} (data.columns.covariates) share a name with a canonical "
            "column of the contract; rename them in your file (or derive a copy with data.derive)."
        )

    guard = _check_guardrails(df, columns, canonical)
    value_inputs = _check_value_inputs(df, columns)
    outcomes = check_outcome_values(df, columns)
    extra = [c for c in extra if c not in guard and c not in value_inputs]
    tactic_of = {a.name: a.tactic.value for a in arm_map.arms}
    frame = pd.DataFrame(
        {
            "customer_id": ids.to_numpy(),
            SEGMENT: segment.to_numpy(),
            **{c: df[c].astype(str).to_numpy() for c in columns.segments if c != SEGMENT},
            "arm": arms.to_numpy(),
            "tactic": arms.map(tactic_of).to_numpy(),
            "converted": conv.to_numpy(),
            "revenue": revenue.to_numpy() if revenue is not None else np.zeros(len(df)),
            "orders": orders.to_numpy() if orders is not None else conv.to_numpy(),
            **{c: df[c].to_numpy() for c in extra},
            **guard,
            **value_inputs,
            **outcomes,
        }
    )
    return CustomerData(
        rows=frame,
        segment_columns=tuple(columns.segments),
        arm_map=arm_map,
        has_revenue=revenue is not None,
        has_orders=orders is not None,
        guardrails=tuple(guard),
        outcomes=columns.outcomes,
    )


def check_outcome_columns(available: Sequence[str], columns: ColumnMap, arm_map: ArmMap) -> None:
    """``data.columns.outcomes`` against the arms and the data's column names (no rows read):
    a tactic no arm delivers, an unknown kind, a column the data lacks (with close matches) or
    one the contract already uses as segment or arm is a named error."""
    tactics = [t.value for t in arm_map.tactics()]
    names = list(map(str, available))
    for o in columns.outcomes:
        if o.tactic not in tactics:
            _fail(
                f"{o.key}: no arm delivers tactic {o.tactic!r}, so it has no model to fit on "
                f"column {o.column!r}; map one of this run's tactics {tactics} (tactics.arms) "
                "or remove the entry"
            )
        if o.kind not in OUTCOME_KINDS:
            _fail(
                f"{o.key}: its family reads {o.kind!r}, not one of {list(OUTCOME_KINDS)}; "
                "choose another family in model.families"
            )
        if o.column not in names:
            close = difflib.get_close_matches(o.column, names, n=3, cutoff=0.6)
            hint = f" Did you mean {close}?" if close else ""
            _fail(
                f"{o.key}: column {o.column!r} is not in the data.{hint} Available columns: "
                f"{names}. Map the tactic to the column holding its outcome."
            )
        if o.column in columns.segments or o.column == columns.arm:
            _fail(
                f"{o.key}: column {o.column!r} is the arm or a segment column; map the tactic "
                "to the column holding its outcome"
            )


def check_outcome_values(df: pd.DataFrame, columns: ColumnMap) -> dict[str, np.ndarray]:
    """Each ``data.columns.outcomes`` column as its family's input (0/1, count >= 0 or amount
    >= 0), under its canonical name ``outcome__<tactic>``; a missing value or a value the
    family cannot read is a named error (before any sampling)."""
    out: dict[str, np.ndarray] = {}
    for o in columns.outcomes:
        col, key = o.column, o.key
        s = df[col]
        if pd.api.types.is_bool_dtype(s):
            s = s.astype(np.int64)
        elif not pd.api.types.is_numeric_dtype(s):
            bad = s[pd.to_numeric(s, errors="coerce").isna() & s.notna()]
            _fail(
                f"column {col!r} ({key}) must be numeric ({OUTCOME_KINDS.get(o.kind, o.kind)} for "
                f"tactic {o.tactic!r}); found non-numeric values {_examples(bad.tolist())}."
            )
        _no_missing(df, s, f"column {col!r} ({key})", "e.g. 0: the outcome did not happen")
        x = s.astype(np.float64)
        if o.kind == "converted":
            bad = s[~x.isin([0.0, 1.0])]
            fix = "recode it as 1 = the outcome happened, 0 = not, or choose a count or spend "
            fix += f"family for {o.tactic} in model.families"
        elif o.kind == "orders":
            bad = s[~np.isfinite(x) | (x < 0) | (x != np.floor(x))]
            fix = "a count family reads whole numbers; round or recode the column"
        else:
            bad = s[~np.isfinite(x) | (x < 0)]
            fix = "net out refunds upstream or clip at 0"
        if len(bad):
            _fail(
                f"column {col!r} ({key}) must hold {OUTCOME_KINDS[o.kind]} for tactic "
                f"{o.tactic!r} (model family input {o.kind!r}); found {_examples(bad.tolist())}: "
                f"{fix}."
            )
        out[o.canonical] = x.to_numpy() if o.kind == "revenue" else x.astype(np.int64).to_numpy()
    return out


def _no_missing(df: pd.DataFrame, s: pd.Series, what: str, fill: str) -> None:
    """A named error when ``s`` (a column of ``df``, ``what`` names it) has missing values."""
    if s.isna().any():
        rows = df.index[s.isna()].tolist()
        _fail(
            f"{what} has {len(rows)} missing value(s) (NaN), e.g. at rows {_examples(rows)}; "
            f"fill them ({fill}) or drop those rows."
        )


def _check_value_inputs(df: pd.DataFrame, columns: ColumnMap) -> dict[str, np.ndarray]:
    """``data.columns.cost_to_serve`` / ``wallet`` / ``categories`` as finite numbers >= 0,
    under their canonical names; a missing value is a named error (no silent zero cost)."""
    out: dict[str, np.ndarray] = {}
    for key, col in columns.value_inputs().items():
        s = _check_numeric(df, col, key).astype(np.float64)
        _no_missing(
            df, s, f"column {col!r} (data.columns.{key})", "e.g. the segment's typical value"
        )
        bad = s[~np.isfinite(s) | (s < 0)]
        if len(bad):
            _fail(
                f"column {col!r} (data.columns.{key}) must be finite and >= 0; found "
                f"{_examples(bad.tolist())}."
            )
        out[key] = s.to_numpy()
    return out


def no_control_message(no_control: Sequence[str], columns: ColumnMap, control: str) -> str:
    """The refusal of segments without control customers (also raised by the engines)."""
    return (
        f"segment(s) {_examples(no_control)} (from data.columns.segments={list(columns.segments)}) have "
        f"no customers in the control arm {control!r}, so their uplift is not identified. Merge them "
        "into a neighbouring segment, use coarser segment columns, or drop them."
    )


def _check_guardrails(
    df: pd.DataFrame, columns: ColumnMap, canonical: set[str]
) -> dict[str, np.ndarray]:
    """Each guardrail column as 0/1 integers; a missing, non-binary or clashing one is a named
    error (before any sampling)."""
    out: dict[str, np.ndarray] = {}
    for col in dict.fromkeys(columns.guardrails):
        key = f"guardrails[{col}].column"
        if col not in df.columns:
            _fail(
                f"guardrail column {col!r} ({key}) is not in the data; available columns: "
                f"{list(map(str, df.columns))}. Map the guardrail to a 0/1 column of your file."
            )
        if col in canonical or col in columns.segments or col == columns.arm:
            _fail(
                f"guardrail column {col!r} ({key}) is a column the contract already uses "
                "(segment, arm or a canonical outcome); name a separate 0/1 column"
            )
        if df[col].isna().any():
            rows = df.index[df[col].isna()].tolist()
            _fail(
                f"guardrail column {col!r} ({key}) has {len(rows)} missing value(s), e.g. at rows "
                f"{_examples(rows)}. Fill them (0: the bad outcome did not happen) or drop the rows."
            )
        s = _check_numeric(df, col, f"guardrails[{col}]")
        bad = s[~s.isin([0, 1])]
        if len(bad):
            _fail(
                f"guardrail column {col!r} ({key}) must be 0/1 (1: the outcome happened); found "
                f"{_examples(bad.tolist())}. Recode it as a binary flag per customer."
            )
        out[col] = s.astype(np.int64).to_numpy()
    return out
