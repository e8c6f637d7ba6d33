"""Numbers as a planner reads them, for report.md and report.html alike.

Never scientific notation: money and counts as thousands-separated integers (money under 1,000
with 2 decimals), probabilities and shares as percentages (HTML) and everything else with four
significant digits written out. What a column holds is read from its name (the CSV contract's
names are stable), so a table needs no per-call format list.
"""

from __future__ import annotations

import math
from enum import StrEnum
from numbers import Integral, Real

import numpy as np
from pandas.api.types import is_bool_dtype, is_float_dtype, is_integer_dtype


class Kind(StrEnum):
    """How a column's numbers are written."""

    COUNT = "count"
    MONEY = "money"
    SHARE = "share"
    NUMBER = "number"
    TEXT = "text"


#: columns that count customers, cells, draws (float or int)
COUNT_COLUMNS = frozenset(
    {
        "customers",
        "eligible_customers",
        "customers_treated",
        "n",
        "n_treated",
        "n_control",
        "n_train",
        "n_test",
        "cells",
        "segments",
        "draws",
        "chains",
        "divergences",
        "ess_bulk_min",
        "ess_tail_min",
        "attempts",
        "rank",
        "fold",
        "expected_demand",
        "demand_hdi_low",
        "demand_hdi_high",
        "cost_plus_expected_demand",
        "today_expected_demand",
    }
)
#: money per unit of something, or unitless ratios that happen to contain a money word
NUMBER_COLUMNS = frozenset(
    {"marginal_return", "marginal_return_fd", "roi", "margin", "min_p", "p_value"}
)
#: shares and probabilities (0..1)
SHARE_COLUMNS = frozenset(
    {
        "share",
        "extreme_share",
        "outside_90pct_interval",
        "outside_interval_share",
        "hdi_prob",
        "mip_gap",
    }
)
_MONEY_WORDS = ("spend", "profit", "budget", "cost", "loss", "price", "objective", "heldout")
_MONEY_EXACT = frozenset({"claimed", "estimate", "optimism_gap", "budget"})


def column_kind(name: str, values: object = None) -> Kind:
    """What column ``name`` holds, from its name (and, for unknown names, its ``values``)."""
    n = str(name).lower()
    if n in COUNT_COLUMNS:
        return Kind.COUNT
    if n in NUMBER_COLUMNS or n.endswith("_seconds"):
        return Kind.NUMBER
    if n in SHARE_COLUMNS or n.startswith(("prob_", "p_best")) or n.endswith("_share"):
        return Kind.SHARE
    if n in _MONEY_EXACT or any(w in n for w in _MONEY_WORDS):
        return Kind.MONEY
    dtype = getattr(values, "dtype", None)
    if dtype is None or is_bool_dtype(dtype):
        return Kind.TEXT
    if is_integer_dtype(dtype):
        return Kind.COUNT
    if is_float_dtype(dtype):
        return Kind.NUMBER
    return Kind.TEXT


def is_number(value: object) -> bool:
    """A real number (not a bool, not NaN)."""
    return (
        isinstance(value, Real | np.number)
        and not isinstance(value, bool | np.bool_)
        and math.isfinite(float(value))
    )


def significant(value: float, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits, written out: 0.0001234, 12.35, 42,943."""
    v = float(value)
    if v == 0:
        return "0"
    if abs(v) >= 10 ** (digits - 1):
        return f"{v:,.0f}"
    text = np.format_float_positional(v, precision=digits, unique=False, fractional=False)
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text in ("-0", "") else text


def count(value: object) -> str:
    """A count: 12,340 (a fractional count keeps one decimal below 100)."""
    v = float(value) + 0.0  # type: ignore[arg-type]
    if isinstance(value, Integral | np.integer) or v.is_integer() or abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.1f}"


def money(value: object, currency: str = "") -> str:
    """Money: -$1,234 from 1,000 up, $12.35 below; ``currency`` is a prefix ("" for none)."""
    v = float(value)  # type: ignore[arg-type]
    text = f"{abs(v):,.0f}" if abs(v) >= 1000 else f"{abs(v):,.2f}"
    sign = "-" if v < 0 and text.strip("0.,") else ""
    return f"{sign}{currency}{text}"


def percent(value: object, digits: int | None = None) -> str:
    """A share as a percentage: 2%, 99.9%, "< 0.1%" and "> 99.9%" near the ends."""
    v = float(value) * 100 + 0.0  # type: ignore[arg-type]
    if not math.isfinite(v):  # a threshold set to inf (no limit) or a share that is not known
        return "n/a" if math.isnan(v) else ("∞" if v > 0 else "-∞")
    if digits is None:
        if 0 < v < 0.1:
            return "< 0.1%"
        if 99.9 < v < 100:
            return "> 99.9%"
        digits = 0 if v == round(v) or 1 <= v <= 99 else 1
    return f"{v:.{digits}f}%"


def cell(value: object, kind: Kind, currency: str = "", html: bool = True) -> str:
    """One table cell as text (not escaped): numbers by ``kind``, anything else as ``str``.
    ``html``: shares as percentages and flags as yes/no; else (report.md) both as in the CSV."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return ("yes" if value else "no") if html else str(bool(value))
    if not is_number(value):
        return str(value)
    match kind:
        case Kind.COUNT:
            return count(value)
        case Kind.MONEY:
            return money(value, currency)
        case Kind.SHARE if html:
            return percent(value)
        case _:
            if isinstance(value, Integral | np.integer):
                return f"{int(value):,}"
            return significant(float(value))  # type: ignore[arg-type]
