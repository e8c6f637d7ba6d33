"""Data stage: read, validate against the canonical contract, aggregate to sufficient statistics.

Names are imported on first use (PEP 562), so that ``uplift.data.settings`` (read by the
configuration schema) can be imported without importing pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uplift.data.cells import aggregate_cells
    from uplift.data.contract import (
        ColumnMap,
        CustomerData,
        DataValidationError,
        validate_customers,
    )
    from uplift.data.io import load_customers

_WHERE = {
    "ColumnMap": "contract",
    "CustomerData": "contract",
    "DataValidationError": "contract",
    "aggregate_cells": "cells",
    "load_customers": "io",
    "validate_customers": "contract",
}

__all__ = [
    "ColumnMap",
    "CustomerData",
    "DataValidationError",
    "aggregate_cells",
    "load_customers",
    "validate_customers",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"uplift.data.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'uplift.data' has no attribute {name!r}")
