"""Which column of a customer file plays which part of the contract: a first guess for
``uplift init``, every choice with the evidence for it, so a person can check it.

The guesses are rules a reader can follow, not a model: a customer id is unique per row; the
arm is a column of a few values one of which reads like a control ("No E-Mail", "control",
"holdout", 0, ...); the conversion is a 0/1 column named like an outcome; revenue is a
nonnegative number that is positive only on converted rows; segments are the low-cardinality
text columns, coarse enough that every segment x arm cell keeps :data:`MIN_CELL` customers; the
remaining numeric columns are covariates. Outcome-like columns that are not chosen (Hillstrom's
``visit`` beside ``conversion``) are reported and never used as covariates: they are measured
after treatment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: at most this many distinct values for an arm column
MAX_ARMS = 12
#: at most this many distinct values for a segment column
MAX_SEGMENT_VALUES = 20
#: segment columns are added while every segment x arm cell keeps this many customers on average
MIN_CELL = 100
#: ... and while there are at most this many segments
MAX_SEGMENTS = 50

CONTROL = re.compile(
    r"(control|ctrl|holdout|hold[-_ ]?out|none|baseline|placebo|untreated|not[-_ ]?treated|"
    r"no[-_ ]?treatment|no[-_ ].+|0|false)",
    re.IGNORECASE,
)
#: words (of a column name split at ``_``, spaces, digits and camelCase) naming each part
ID_WORDS = {"id", "uid", "customer", "cust", "user", "userid", "client", "account", "member"}
ARM_WORDS = {
    "arm", "group", "treatment", "treat", "treated", "variant", "variation", "cell",
    "condition", "bucket", "version", "experiment", "offer", "campaign", "assignment", "test",
}  # fmt: skip
#: words of 0/1 outcomes, most decision-relevant first
OUTCOME_WORDS = (
    {"converted", "convert", "conversion", "purchase", "purchased", "buy", "bought", "order",
     "ordered", "sale", "redeemed", "redeem", "subscribed", "signup", "upgraded", "renewed"},
    {"response", "responded", "retained", "retention", "success", "outcome", "target", "label",
     "active", "voted", "vote", "donated", "enrolled", "returned"},
    {"visit", "visited", "click", "clicked", "open", "opened", "engaged"},
)  # fmt: skip
REVENUE_WORDS = {
    "revenue", "spend", "spent", "sales", "amount", "value", "gmv", "basket", "income",
    "profit", "paid", "turnover",
}  # fmt: skip
ORDERS_WORDS = {"orders", "purchases", "transactions", "qty", "quantity", "items", "count"}


def name_words(name: str) -> set[str]:
    """``"Order_Value2"`` -> ``{"order", "value"}``; ``"userId"`` -> ``{"user", "id", "userid"}``."""
    parts = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name))
    words = {w for w in re.split(r"[^A-Za-z]+", parts.lower()) if w}
    return words | {re.sub(r"[^a-z]", "", str(name).lower())}


@dataclass(frozen=True)
class Choice:
    """A column chosen for a part of the contract (None: none fits) and why."""

    column: str | None
    why: str
    others: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArmValue:
    name: str
    customers: int
    control: bool


@dataclass
class Detection:
    """Everything :func:`detect_columns` found in a customer table."""

    rows: int
    columns: list[str]
    customer_id: Choice
    arm: Choice
    arms: list[ArmValue]
    converted: Choice
    revenue: Choice
    orders: Choice
    segments: list[str]
    segment_candidates: dict[str, int]
    covariates: list[str]
    #: columns that look like outcomes but were not chosen (never covariates: post-treatment)
    other_outcomes: list[str] = field(default_factory=list)
    #: columns left out of covariates because they have missing values
    with_missing: list[str] = field(default_factory=list)

    @property
    def control(self) -> str | None:
        return next((a.name for a in self.arms if a.control), None)

    @property
    def n_segments(self) -> int:
        return int(np.prod([self.segment_candidates[c] for c in self.segments])) or 1


def _is_binary(s: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(s):
        return True
    if not pd.api.types.is_numeric_dtype(s):
        return False
    values = set(s.dropna().unique().tolist())
    return values == {0, 1}


def _is_integer(s: pd.Series) -> bool:
    if pd.api.types.is_integer_dtype(s):
        return True
    if not pd.api.types.is_float_dtype(s):
        return False
    v = s.dropna().to_numpy()
    return bool(len(v)) and bool(np.all(v == np.floor(v)))


def _numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _shares(s: pd.Series, k: int = 6) -> str:
    counts = s.astype(str).value_counts()
    shown = ", ".join(f"{v!r} {n:,}" for v, n in counts.head(k).items())
    return shown + (f", ... ({len(counts)} values)" if len(counts) > k else "")


def _find_id(df: pd.DataFrame) -> Choice:
    unique = [
        c
        for c in df.columns
        if df[c].notna().all()
        and df[c].is_unique
        and (not pd.api.types.is_float_dtype(df[c]) or _is_integer(df[c]))
    ]
    if not unique:
        return Choice(
            None,
            "no column is unique per row, so the row number (1 = the first data row) is the "
            "customer id: keep the file's row order if you join the outputs back to it",
        )
    named = [c for c in unique if name_words(c) & ID_WORDS]
    pick = (named or unique)[0]
    return Choice(
        pick,
        f"unique on all {len(df):,} rows" + ("" if named else " (no id-like name: check it)"),
        tuple(c for c in unique if c != pick),
    )


def _control_value(values: list[str]) -> str | None:
    hits = [v for v in values if CONTROL.fullmatch(v.strip())]
    return hits[0] if len(hits) == 1 else None


def _find_arm(df: pd.DataFrame, skip: set[str]) -> tuple[Choice, list[ArmValue]]:
    scored = []
    for c in df.columns:
        if c in skip or df[c].isna().any():
            continue
        s = df[c]
        n = s.nunique()
        flag = _is_binary(s)
        if not 2 <= n <= MAX_ARMS or (_numeric(s) and not flag):
            continue
        values = [str(v) for v in s.astype(str).value_counts().index]
        control = _control_value(values)
        named = bool(name_words(c) & ARM_WORDS)
        if flag and not named:
            continue  # a 0/1 column is an outcome or a flag unless it is named like an arm
        score = 4 * (control is not None) + 2 * named + (not flag)
        if score >= 2:
            scored.append((score, c, control))
    if not scored:
        return Choice(
            None,
            "no column of 2 to 12 values reads like experiment arms (a control value such as "
            "'control', 'holdout', 'No E-Mail' or 0): name it",
        ), []
    scored.sort(key=lambda t: -t[0])
    _, col, control = scored[0]
    counts = df[col].astype(str).value_counts()
    arms = [ArmValue(str(v), int(n), str(v) == control) for v, n in counts.items()]
    arms.sort(key=lambda a: not a.control)  # the control first, then by size
    why = f"{len(arms)} values ({_shares(df[col])})"
    why += f"; control {control!r}" if control else "; no value reads like a control: choose it"
    return Choice(col, why, tuple(c for _, c, _ in scored[1:])), arms


def _outcome_rank(name: str) -> int | None:
    words = name_words(name)
    return next((i for i, names in enumerate(OUTCOME_WORDS) if words & names), None)


def _find_converted(df: pd.DataFrame, skip: set[str]) -> tuple[Choice, list[str]]:
    binary = [c for c in df.columns if c not in skip and _is_binary(df[c].dropna())]
    ranked = sorted(
        (r, i, c) for i, c in enumerate(binary) if (r := _outcome_rank(str(c))) is not None
    )
    outcomes = [c for _, _, c in ranked]
    if not outcomes:
        return Choice(
            None,
            "no 0/1 column is named like an outcome (conversion, purchase, response, visit, ...)"
            + (f"; 0/1 columns: {', '.join(binary)}" if binary else ""),
        ), []
    pick = outcomes[0]
    rate = float(pd.to_numeric(df[pick]).mean())
    why = f"0/1, {rate:.1%} of rows are 1"
    if len(outcomes) > 1:
        why += f" (other outcome-like 0/1 columns: {', '.join(outcomes[1:])})"
    return Choice(pick, why, tuple(outcomes[1:])), outcomes[1:]


def _aligned(df: pd.DataFrame, col: str, converted: str | None) -> tuple[bool, str]:
    """Whether ``col`` is positive only where ``converted`` is 1 (and on most converters)."""
    if converted is None:
        return False, ""
    pos = pd.to_numeric(df[col], errors="coerce").fillna(0) > 0
    conv = pd.to_numeric(df[converted], errors="coerce").fillna(0) > 0
    if not pos.any() or not conv.any():
        return False, ""
    precision = float(conv[pos].mean())
    recall = float(pos[conv].mean())
    return precision >= 0.95 and recall >= 0.5, (
        f"positive on {pos.mean():.1%} of rows, {precision:.0%} of them with {converted}=1"
    )


def _find_amount(
    df: pd.DataFrame, skip: set[str], converted: str | None, names: set[str], integer: bool
) -> Choice:
    found = []
    for c in df.columns:
        s = df[c]
        if c in skip or not _numeric(s) or _is_binary(s.dropna()) or (s < 0).any():
            continue
        if integer and not _is_integer(s):
            continue
        aligned, how = _aligned(df, c, converted)
        named = bool(name_words(c) & names)
        if aligned or (converted is None and named):
            found.append((not named, c, how or "nonnegative, named like it"))
    if not found:
        return Choice(None, "no nonnegative number that is positive only on converted rows")
    found.sort()
    _, col, how = found[0]
    return Choice(col, how, tuple(c for _, c, _ in found[1:]))


def _choose_segments(df: pd.DataFrame, candidates: dict[str, int], n_arms: int) -> list[str]:
    """Text columns first (coarsest first), numeric codes only when there is no text column,
    while the segments stay few and their cells large (:data:`MAX_SEGMENTS`, :data:`MIN_CELL`)."""
    text = [c for c in candidates if not _numeric(df[c])]
    pool = text or list(candidates)
    chosen: list[str] = []
    total = 1
    for c in sorted(pool, key=lambda c: candidates[c]):
        n = candidates[c]
        if total * n > MAX_SEGMENTS or len(df) / (total * n * max(n_arms, 1)) < MIN_CELL:
            break
        chosen.append(c)
        total *= n
    return chosen


def detect_columns(df: pd.DataFrame) -> Detection:
    """Guess each column's part in the contract (see the module docstring)."""
    df = df.rename(columns=str)
    used: set[str] = set()

    def take(choice: Choice) -> Choice:
        if choice.column is not None:
            used.add(choice.column)
        return choice

    customer_id = take(_find_id(df))
    arm, arms = _find_arm(df, used)
    take(arm)
    converted, other_outcomes = _find_converted(df, used)
    take(converted)
    revenue = take(_find_amount(df, used, converted.column, REVENUE_WORDS, integer=False))
    orders = take(_find_amount(df, used, converted.column, ORDERS_WORDS, integer=True))
    used |= set(other_outcomes)
    # what remains describes the customer
    candidates = {
        c: int(df[c].nunique())
        for c in df.columns
        if c not in used
        and (not _numeric(df[c]) or _is_integer(df[c]))
        and 2 <= df[c].nunique() <= MAX_SEGMENT_VALUES
        and df[c].notna().all()
    }
    segments = _choose_segments(df, candidates, len(arms))
    with_missing = [c for c in df.columns if c not in used and df[c].isna().any()]
    covariates = [
        c
        for c in df.columns
        if c not in used
        and c not in with_missing
        and (pd.api.types.is_numeric_dtype(df[c]) or c in candidates)
    ]
    return Detection(
        rows=len(df),
        columns=list(df.columns),
        customer_id=customer_id,
        arm=arm,
        arms=arms,
        converted=converted,
        revenue=revenue,
        orders=orders,
        segments=segments,
        segment_candidates=candidates,
        covariates=covariates,
        other_outcomes=other_outcomes,
        with_missing=with_missing,
    )
