"""Every validation error names the column/value and the fix, and fires before any model runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uplift.data import ColumnMap, DataValidationError, validate_customers
from uplift.tactics import ArmMap

COLS = ColumnMap(segments=("tier",), orders="orders")
ARMS = ArmMap.from_mapping(
    {
        "ctl": {"tactic": "control"},
        "mail": {"tactic": "cross_sell", "cost": 1.0},
        "call": {"tactic": "retention", "cost": 3},
    }
)


def frame(n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "tier": np.tile(["a", "b"], n // 2),
            "arm": np.tile(["ctl", "ctl", "mail", "mail", "call", "call"], n // 6),
            "converted": rng.integers(0, 2, n),
            "revenue": rng.uniform(0, 10, n).round(2),
            "orders": rng.integers(0, 3, n),
        }
    )


def check(df: pd.DataFrame, *fragments: str, cols: ColumnMap = COLS, arms: ArmMap = ARMS) -> None:
    with pytest.raises(DataValidationError) as e:
        validate_customers(df, cols, arms)
    for f in fragments:
        assert f in str(e.value), f"{f!r} not in: {e.value}"


def test_valid_frame_passes_and_is_canonical():
    data = validate_customers(frame(), COLS, ARMS)
    assert list(data.frame.columns) == [
        "customer_id",
        "segment",
        "tier",
        "arm",
        "tactic",
        "converted",
        "revenue",
        "orders",
    ]
    assert set(data.frame["tactic"]) == {"control", "cross_sell", "retention"}


def test_missing_column():
    check(frame().drop(columns="revenue"), "'revenue'", "data.columns.revenue", "Available columns")


def test_missing_segment_column():
    check(
        frame(), "'region'", "data.columns.segments[1]", cols=ColumnMap(segments=("tier", "region"))
    )


def test_nan():
    df = frame()
    df.loc[3, "converted"] = np.nan
    check(df, "'converted'", "missing value", "3")


def test_wrong_type():
    df = frame()
    df["revenue"] = df["revenue"].astype(object)
    df.loc[2, "revenue"] = "12,50"
    check(df, "'revenue'", "must be numeric", "'12,50'")


def test_converted_not_binary():
    df = frame()
    df.loc[0, "converted"] = 2
    check(df, "'converted'", "0/1", "2")


def test_negative_revenue():
    df = frame()
    df.loc[5, "revenue"] = -4.0
    check(df, "'revenue'", "negative", "-4.0", ">= 0")


def test_orders_must_be_integers():
    df = frame()
    df["orders"] = df["orders"].astype(float)
    df.loc[1, "orders"] = 1.5
    check(df, "'orders'", "integers >= 0", "1.5")


def test_unknown_arm():
    df = frame()
    df.loc[0, "arm"] = "sms"
    check(df, "'sms'", "not in tactics.arms", "Add each to tactics.arms")


def test_arm_with_no_customers():
    df = frame()
    df = df[df["arm"] != "call"]
    check(df, "['call']", "no customers", "Remove them from tactics.arms")


def test_segment_with_no_control():
    df = frame()
    df.loc[(df["tier"] == "b") & (df["arm"] == "ctl"), "arm"] = "mail"
    check(df, "'b'", "no customers in the control arm 'ctl'")


def test_duplicate_customer():
    df = frame()
    df.loc[1, "customer_id"] = 0
    check(df, "duplicated", "'customer_id'")


def test_empty():
    check(frame().iloc[:0], "empty")


@pytest.mark.parametrize(
    "mapping, fragment",
    [
        ({"a": {"tactic": "control"}, "b": {"tactic": "upsell"}}, "unknown tactic 'upsell'"),
        (
            {"a": {"tactic": "control"}, "b": {"tactic": "control"}, "c": {"tactic": "margin"}},
            "exactly one arm",
        ),
        ({"a": {"tactic": "control"}}, "at least one treated arm"),
        (
            {"a": {"tactic": "control"}, "b": {"tactic": "margin", "cost": -1}},
            "tactics.arms.b.cost",
        ),
    ],
)
def test_arm_map_errors(mapping, fragment):
    with pytest.raises(ValueError, match=fragment):
        ArmMap.from_mapping(mapping)


def test_covariates_are_kept_as_they_are_and_checked_like_other_columns():
    df = frame().assign(age=np.linspace(20, 70, 12), region=list("nsnsnsnsnsns"))
    cols = ColumnMap(segments=("tier",), orders="orders", covariates=("age", "region", "tier"))
    data = validate_customers(df, cols, ARMS)
    assert data.frame["age"].dtype == np.float64  # numeric stays numeric for row-level models
    assert data.frame["region"].tolist() == df["region"].tolist()
    assert list(data.frame.columns).count("tier") == 1  # a segment column is not duplicated
    check(df.drop(columns="age"), "'age' (data.columns.covariates[0])", cols=cols)
    check(df.assign(age=np.nan), "'age' (data.columns.covariates[0]) has 12 missing", cols=cols)
    clash = ColumnMap(segments=("tier",), orders="orders", covariates=("revenue",))
    check(df, "covariate column(s) ['revenue']", "rename them", cols=clash)
