"""Atomic artifact writers: write to a temporary file beside the target, then rename.

A crash mid-write never leaves a half-written CSV, JSON, netCDF or PNG where a user (or the next
pipeline stage) would read it. CSV text cells are escaped against spreadsheet formula injection.

This is a leaf module: it imports nothing from ``uplift``, so every layer (data, models, value,
...) can write its files without importing the report layer. ``uplift.report.artifacts``
re-exports these names.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

_UMASK = os.umask(0)
os.umask(_UMASK)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _atomic_path(target: Path):
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give artifacts normal permissions
    try:
        yield Path(tmp)
        _fsync(tmp)  # the bytes are on disk before the name points at them
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(target: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``target`` only if it succeeded."""
    target = Path(target)
    with _atomic_path(target) as tmp:
        write(tmp)
    return target


def atomic_write_text(text: str, target: str | Path) -> Path:
    return atomic_write(target, lambda p: p.write_text(text, encoding="utf-8"))


#: a text cell starting with one of these is read as a formula by spreadsheet programs (OWASP
#: "CSV injection": ``=HYPERLINK(...)``, ``+cmd|...``, ``@SUM(...)``)
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(value: object) -> object:
    """``value`` with a ``'`` in front when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def unescape_formula(value: object) -> object:
    """Undo :func:`escape_formula` (for reading back a CSV this package wrote)."""
    if isinstance(value, str) and value.startswith("'") and value[1:].startswith(FORMULA_PREFIXES):
        return value[1:]
    return value


def _is_text(column: pd.Series) -> bool:
    return column.dtype == object or isinstance(column.dtype, pd.StringDtype)


def escape_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and column names cannot run as spreadsheet formulas
    (numbers, including negative ones, are left alone: only ``str`` values are escaped)."""
    text = [c for c in frame.columns if _is_text(frame[c])]
    names = [escape_formula(c) for c in frame.columns]
    if not text and names == list(frame.columns):
        return frame
    out = frame.copy()
    for c in text:
        out[c] = out[c].map(escape_formula)
    out.columns = names
    return out


def unescape_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo :func:`escape_frame` on a frame read from a CSV this package wrote."""
    out = frame.copy()
    for c in out.columns:
        if _is_text(out[c]):
            out[c] = out[c].map(unescape_formula)
    out.columns = [unescape_formula(c) for c in out.columns]
    return out


def atomic_write_csv(frame: pd.DataFrame, target: str | Path) -> Path:
    """Write ``frame`` as CSV, text cells escaped against formula injection (:func:`escape_frame`)."""
    safe = escape_frame(frame)
    return atomic_write(target, lambda p: safe.to_csv(p, index=False, float_format="%.6g"))


def atomic_write_parquet(frame: pd.DataFrame, target: str | Path) -> Path:
    return atomic_write(target, lambda p: frame.to_parquet(p, index=False))


def atomic_write_json(obj: Any, target: str | Path) -> Path:
    return atomic_write_text(
        json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n", target
    )


def atomic_write_netcdf(idata: Any, target: str | Path) -> Path:
    return atomic_write(target, lambda p: idata.to_netcdf(p))


def atomic_savefig(fig: Any, target: str | Path, dpi: int = 120) -> Path:
    return atomic_write(
        target, lambda p: fig.savefig(p, dpi=dpi, bbox_inches="tight", format="png")
    )


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
