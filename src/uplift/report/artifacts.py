"""Atomic artifact writers, re-exported from the leaf module :mod:`uplift.atomic_io`.

The writers live below every layer so that data, models and value can write files without
importing the report layer; this module keeps ``uplift.report.artifacts.<name>`` working.
"""

from uplift.atomic_io import (
    FORMULA_PREFIXES,
    atomic_savefig,
    atomic_write,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_netcdf,
    atomic_write_parquet,
    atomic_write_text,
    escape_formula,
    escape_frame,
    unescape_formula,
    unescape_frame,
)

__all__ = [
    "FORMULA_PREFIXES",
    "atomic_savefig",
    "atomic_write",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_write_netcdf",
    "atomic_write_parquet",
    "atomic_write_text",
    "escape_formula",
    "escape_frame",
    "unescape_formula",
    "unescape_frame",
]
