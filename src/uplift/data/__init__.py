"""Data stage: read, validate against the canonical contract, aggregate to sufficient statistics."""

from uplift.data.cells import aggregate_cells
from uplift.data.contract import ColumnMap, CustomerData, DataValidationError, validate_customers
from uplift.data.io import load_customers

__all__ = [
    "ColumnMap",
    "CustomerData",
    "DataValidationError",
    "aggregate_cells",
    "load_customers",
    "validate_customers",
]
