"""Reading user files. Format follows ``data.source`` (csv or parquet); compressed CSV is fine."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from uplift.data.contract import DataValidationError


def load_customers(path: str | Path, source: str) -> pd.DataFrame:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataValidationError(
            f"data.path={str(path)!r} does not exist (resolved to {p.resolve()}); pass an absolute path "
            "or one relative to where you run `uplift`."
        )
    if source == "csv":
        return pd.read_csv(p)
    if source == "parquet":
        return pd.read_parquet(p)
    raise DataValidationError(
        f"data.source={source!r} cannot be read from a file; use csv or parquet"
    )
