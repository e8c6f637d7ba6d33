"""Transaction tables -> per-customer RFM summaries, the sufficient statistics of BTYD models.

Buy-till-you-die models (BG/NBD for counts, Gamma-Gamma for spend) see a customer only through
``frequency`` (repeat transactions, x), ``recency`` (time of the last one after the first, t_x),
``T`` (age at the end of calibration) and the mean repeat spend. This module turns a raw
transaction log into those numbers, following Fader, Hardie & Lee (2005): purchases are counted
per calendar day (several rows on one day are one transaction, amounts summed), time runs from
each customer's first purchase, and ``calibration_end`` is the last day that counts.

Every problem is reported before any model runs, naming the column, showing example values and
saying how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from uplift.data.contract import _examples, _fail

TimeUnit = Literal["weeks", "days"]
DAYS_PER_UNIT: dict[str, float] = {"weeks": 7.0, "days": 1.0}
UNITS_PER_YEAR: dict[str, float] = {"weeks": 365.25 / 7.0, "days": 365.25}

SUMMARY_COLUMNS = ["frequency", "recency", "T", "monetary_value", "first_purchase"]
HOLDOUT_COLUMNS = ["frequency_holdout", "monetary_value_holdout", "duration_holdout"]


@dataclass(frozen=True)
class TransactionColumns:
    """Names of the user's columns for customer id, transaction date and amount (optional)."""

    customer_id: str = "customer_id"
    date: str = "date"
    amount: str | None = "amount"

    def required(self) -> dict[str, str]:
        cols = {"customer_id": self.customer_id, "date": self.date}
        if self.amount:
            cols["amount"] = self.amount
        return cols


def check_time_unit(time_unit: str) -> str:
    """Return ``time_unit`` if it is one we can measure in, else say which ones are."""
    if time_unit not in DAYS_PER_UNIT:
        raise ValueError(
            f"time_unit={time_unit!r} is not supported; use one of {list(DAYS_PER_UNIT)}"
        )
    return time_unit


def parse_dates(values: pd.Series, column: str, date_format: str | None = None) -> pd.Series:
    """Parse a date column to day-resolution timestamps, or fail naming the column and bad values.

    Integers such as 19970101 are read as YYYYMMDD (the CDNOW convention); other numbers are
    refused as ambiguous rather than silently read as nanoseconds since 1970.
    """
    s = values
    missing = s.isna()
    if missing.any():
        rows = list(s.index[missing][:5])
        _fail(
            f"column {column!r} (transaction date) has {int(missing.sum())} missing value(s), e.g. at "
            f"rows {rows}. Every transaction needs a date: fill them in or drop those rows."
        )
    if pd.api.types.is_datetime64_any_dtype(s):
        out = s
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_convert("UTC").dt.tz_localize(None)
        return out.dt.normalize().astype("datetime64[ns]")
    if pd.api.types.is_bool_dtype(s):
        _fail(f"column {column!r} (transaction date) is boolean; map the date column instead.")
    if pd.api.types.is_numeric_dtype(s):
        v = s.to_numpy(dtype=float)
        yyyymmdd = np.all(
            np.isfinite(v) & (v == np.round(v)) & (v >= 1000_01_01) & (v <= 9999_12_31)
        )
        if date_format is None and not yyyymmdd:
            bad = s[~((v >= 1000_01_01) & (v <= 9999_12_31))]
            _fail(
                f"column {column!r} (transaction date) is numeric and not YYYYMMDD, e.g. "
                f"{_examples(bad.tolist())}. Numeric dates are ambiguous: convert them first "
                "(e.g. pd.to_datetime(df[col], unit='s') for epoch seconds) or pass date_format."
            )
        text = s.astype(np.int64).astype(str) if yyyymmdd else s.astype(str)
        fmt: str | None = date_format or "%Y%m%d"
    else:
        text = s.astype(str).str.strip()
        fmt = date_format
    parsed = pd.to_datetime(text, format=fmt, errors="coerce")
    bad = parsed.isna()
    if bad.any():
        how = (
            f"date_format={fmt!r}"
            if fmt
            else f"the format pandas inferred from the first value ({text.iloc[0]!r})"
        )
        _fail(
            f"column {column!r} (transaction date) has {int(bad.sum())} value(s) that cannot be parsed "
            f"with {how}, e.g. {_examples(s[bad].tolist())} (rows {list(s.index[bad][:5])}). Fix or "
            "drop those rows, or pass date_format='...' (strftime codes, e.g. '%Y-%m-%d' or "
            "'%d/%m/%Y') that matches every row."
        )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.dt.normalize().astype("datetime64[ns]")


def validate_transactions(
    frame: pd.DataFrame,
    columns: TransactionColumns | None = None,
    *,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Check a transaction log and return it as ``customer_id, date, amount`` (one row per line).

    Catches, with the column, example values and the fix: missing columns, empty tables, missing
    customer ids, unparseable or missing dates, non-numeric / missing / infinite / negative amounts.
    """
    columns = columns or TransactionColumns()
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"transactions must be a pandas DataFrame, got {type(frame).__name__}")
    missing = {k: c for k, c in columns.required().items() if c not in frame.columns}
    if missing:
        _fail(
            f"transaction column(s) {missing} (field -> expected column) are not in the data; "
            f"available columns: {list(frame.columns)}. Map them with "
            "TransactionColumns(customer_id=..., date=..., amount=...) (amount=None if there is no spend)."
        )
    if len(frame) == 0:
        _fail(
            "the transaction table is empty: a CLV model needs at least one purchase per customer."
        )

    cid = frame[columns.customer_id]
    if cid.isna().any():
        rows = list(frame.index[cid.isna()][:5])
        _fail(
            f"column {columns.customer_id!r} (customer id) has {int(cid.isna().sum())} missing value(s), "
            f"e.g. at rows {rows}. Transactions without a customer cannot be attributed: drop them "
            "(df.dropna(subset=[...])) before summarising."
        )
    out = pd.DataFrame(
        {
            "customer_id": cid.to_numpy(),
            "date": parse_dates(frame[columns.date], columns.date, date_format),
        },
        index=frame.index,
    )
    if columns.amount:
        out["amount"] = _check_amount(frame, columns.amount, columns.customer_id, columns.date)
    return out.reset_index(drop=True)


def _check_amount(frame: pd.DataFrame, col: str, id_col: str, date_col: str) -> np.ndarray:
    raw = frame[col]
    if pd.api.types.is_bool_dtype(raw):
        _fail(
            f"column {col!r} (amount) is boolean; map the spend column (currency per transaction)."
        )
    num = pd.to_numeric(raw, errors="coerce")
    non_numeric = num.isna() & raw.notna()
    if non_numeric.any():
        _fail(
            f"column {col!r} (amount) has {int(non_numeric.sum())} non-numeric value(s), e.g. "
            f"{_examples(raw[non_numeric].tolist())}. Strip currency symbols / thousands separators "
            "so it parses as a number."
        )
    if num.isna().any():
        rows = list(frame.index[num.isna()][:5])
        _fail(
            f"column {col!r} (amount) has {int(num.isna().sum())} missing value(s), e.g. at rows {rows}. "
            "Fill them (0 if the transaction was free) or drop those rows."
        )
    v = num.to_numpy(dtype=float)
    if not np.isfinite(v).all():
        _fail(f"column {col!r} (amount) has infinite values; fix or drop those rows.")
    neg = v < 0
    if neg.any():
        ex = frame.loc[neg, [id_col, date_col, col]].head(5).to_dict("records")
        _fail(
            f"column {col!r} (amount) has {int(neg.sum())} negative value(s), e.g. {ex}. The spend model "
            "needs purchase amounts >= 0: returns/refunds are not purchases. Net them against the "
            f"original purchase, or drop them (df[df[{col!r}] >= 0]) and model returns separately."
        )
    return v


def rfm_summary(
    transactions: pd.DataFrame,
    *,
    calibration_end: str | pd.Timestamp | None = None,
    holdout_end: str | pd.Timestamp | None = None,
    time_unit: TimeUnit = "weeks",
    columns: TransactionColumns | None = None,
    customers: Iterable[object] | None = None,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Per-customer ``frequency, recency, T, monetary_value`` over the calibration period.

    - A transaction is a (customer, calendar day); amounts on the same day are summed.
    - ``frequency`` = transactions after the first; ``recency`` = time from first to last;
      ``T`` = time from first to ``calibration_end`` (default: the last date in the data);
      ``monetary_value`` = mean amount of the *repeat* transactions (0 when frequency is 0),
      the input of the Gamma-Gamma spend model. Times are in ``time_unit``.
    - With ``holdout_end``: ``frequency_holdout`` (transactions in (calibration_end, holdout_end]),
      ``monetary_value_holdout`` and ``duration_holdout`` for out-of-sample checks.
    - ``customers`` fixes the population: every listed customer must have a transaction in the
      calibration period (else an error names them); transactions of unlisted customers are left
      out. Without it, customers whose first purchase is after ``calibration_end`` are left out
      (they were not yet customers); the count is in ``summary.attrs["n_first_after_calibration"]``.
    """
    check_time_unit(time_unit)
    columns = columns or TransactionColumns()
    tx = validate_transactions(transactions, columns, date_format=date_format)
    has_amount = "amount" in tx.columns
    if not has_amount:
        tx["amount"] = 0.0

    first_date, last_date = tx["date"].min(), tx["date"].max()
    cal_end = (
        _as_day(calibration_end, "calibration_end") if calibration_end is not None else last_date
    )
    if cal_end < first_date:
        _fail(
            f"calibration_end={cal_end.date()} is before the first transaction ({first_date.date()}); "
            f"choose a date between {first_date.date()} and {last_date.date()}."
        )
    hold_end = None
    if holdout_end is not None:
        hold_end = _as_day(holdout_end, "holdout_end")
        if hold_end <= cal_end:
            _fail(
                f"holdout_end={hold_end.date()} must be after calibration_end={cal_end.date()} "
                "(the holdout is (calibration_end, holdout_end])."
            )

    if customers is not None:
        wanted = pd.Index(pd.unique(pd.Series(list(customers), dtype=object)))
        if len(wanted) == 0:
            _fail(
                "customers is empty: pass the ids to summarise, or None for everyone in the data."
            )
        tx = tx[tx["customer_id"].isin(wanted)]

    # one transaction per customer and day
    daily = (
        tx.groupby(["customer_id", "date"], sort=True, observed=True)["amount"].sum().reset_index()
    )
    cal = daily[daily["date"] <= cal_end]
    unit = pd.Timedelta(days=DAYS_PER_UNIT[time_unit])

    if customers is not None:
        seen = set(cal["customer_id"].unique())
        absent = [c for c in wanted if c not in seen]
        if absent:
            later = set(daily.loc[daily["date"] > cal_end, "customer_id"].unique())
            n_later = sum(c in later for c in absent)
            _fail(
                f"{len(absent)} listed customer(s) have no transaction on or before calibration_end="
                f"{cal_end.date()} in column {columns.customer_id!r}, e.g. {_examples(absent)}"
                + (f" ({n_later} of them only buy later)" if n_later else "")
                + ". BG/NBD models customers from their first purchase, so it cannot value someone "
                "who has not bought yet: remove them from `customers` (value prospects with an "
                "acquisition model instead), move calibration_end later, or check the id mapping "
                "(e.g. int vs str ids)."
            )

    g = cal.groupby("customer_id", sort=True)
    first = g["date"].min()
    last = g["date"].max()
    n = g["date"].size()
    total = g["amount"].sum()
    first_amount = cal.drop_duplicates("customer_id").set_index("customer_id")["amount"]
    frequency = (n - 1).astype(np.int64)
    repeat_total = total - first_amount.reindex(total.index)
    monetary = (repeat_total / frequency.where(frequency > 0)).fillna(0.0)
    out = pd.DataFrame(
        {
            "frequency": frequency,
            "recency": (last - first) / unit,
            "T": (cal_end - first) / unit,
            "monetary_value": monetary.astype(float),
            "first_purchase": first,
        }
    )
    out.index.name = "customer_id"
    if not has_amount:
        out = out.drop(columns="monetary_value")

    if hold_end is not None:
        hold = daily[(daily["date"] > cal_end) & (daily["date"] <= hold_end)]
        hg = hold.groupby("customer_id")
        out["frequency_holdout"] = hg.size().reindex(out.index).fillna(0).astype(np.int64)
        if has_amount:
            out["monetary_value_holdout"] = (
                (hg["amount"].sum() / hg.size()).reindex(out.index).fillna(0.0)
            )
        out["duration_holdout"] = (hold_end - cal_end) / unit

    n_after = int((daily.groupby("customer_id")["date"].min() > cal_end).sum())
    out.attrs.update(
        {
            "time_unit": time_unit,
            "calibration_end": str(cal_end.date()),
            "holdout_end": str(hold_end.date()) if hold_end is not None else None,
            "n_first_after_calibration": n_after,
            "has_amount": has_amount,
        }
    )
    return out


def _as_day(value: str | pd.Timestamp, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name}={value!r} is not a date; use e.g. '1997-09-30'") from e
    if ts is pd.NaT or pd.isna(ts):
        raise ValueError(f"{name}={value!r} is not a date; use e.g. '1997-09-30'")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()


def check_summary(summary: pd.DataFrame, *, need_monetary: bool = False) -> pd.DataFrame:
    """Validate an RFM summary (ours or the user's): the columns exist and are mutually consistent.

    Catches the mistakes that make a BTYD likelihood silently wrong: counting the first purchase
    in ``frequency``, recency beyond the customer's age, negative or fractional counts.
    """
    need = ["frequency", "recency", "T"] + (["monetary_value"] if need_monetary else [])
    missing = [c for c in need if c not in summary.columns]
    if missing:
        _fail(
            f"RFM summary lacks column(s) {missing}; available: {list(summary.columns)}. Build it "
            "with rfm_summary(transactions, calibration_end=...) or rename your columns to "
            "frequency (repeat purchases), recency (t_x), T (age)"
            + (", monetary_value (mean repeat spend)" if need_monetary else "")
            + "."
        )
    if len(summary) == 0:
        _fail("RFM summary has no customers.")
    x = summary["frequency"].to_numpy(dtype=float)
    tx = summary["recency"].to_numpy(dtype=float)
    T = summary["T"].to_numpy(dtype=float)
    for name, v in (("frequency", x), ("recency", tx), ("T", T)):
        if not np.isfinite(v).all():
            _fail(
                f"RFM column {name!r} has missing or infinite values; drop or fix those customers."
            )
        if (v < 0).any():
            _fail(f"RFM column {name!r} has negative values, e.g. {_examples(v[v < 0].tolist())}.")
    if (x != np.round(x)).any():
        _fail(
            f"RFM column 'frequency' must count repeat purchases (integers), got e.g. "
            f"{_examples(x[x != np.round(x)].tolist())}."
        )
    tol = 1e-9 * np.maximum(T, 1.0)
    if (tx > T + tol).any():
        bad = summary.index[tx > T + tol]
        _fail(
            f"recency > T for {len(bad)} customer(s), e.g. {_examples(list(bad))}: the last purchase "
            "cannot be after the end of calibration. Check calibration_end and the time unit."
        )
    if ((x > 0) & (tx <= 0)).any():
        bad = summary.index[(x > 0) & (tx <= 0)]
        _fail(
            f"{len(bad)} customer(s) have repeat purchases but recency 0, e.g. {_examples(list(bad))}. "
            "frequency must count purchases after the first (several purchases on one day are one "
            "transaction)."
        )
    if ((x == 0) & (tx > 0)).any():
        bad = summary.index[(x == 0) & (tx > 0)]
        _fail(
            f"{len(bad)} customer(s) have frequency 0 but recency > 0, e.g. {_examples(list(bad))}: "
            "recency is the time from the first to the last purchase, so it is 0 without repeats."
        )
    if need_monetary:
        m = summary["monetary_value"].to_numpy(dtype=float)
        if not np.isfinite(m).all() or (m < 0).any():
            _fail("RFM column 'monetary_value' must be finite and >= 0.")
    return summary
