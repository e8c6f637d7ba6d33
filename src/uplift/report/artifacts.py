"""Atomic artifact writers: write to a temporary file beside the target, then rename.

A crash mid-write never leaves a half-written CSV, JSON, netCDF or PNG where a user (or the next
pipeline stage) would read it.
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


@contextmanager
def _atomic_path(target: Path):
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give artifacts normal permissions
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``target`` only if it succeeded."""
    target = Path(target)
    with _atomic_path(target) as tmp:
        write(tmp)
    return target


def atomic_write_text(text: str, target: str | Path) -> Path:
    return atomic_write(target, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_csv(frame: pd.DataFrame, target: str | Path) -> Path:
    return atomic_write(target, lambda p: frame.to_csv(p, index=False, float_format="%.6g"))


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
