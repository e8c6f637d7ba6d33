"""Datasets shipped inside the project (``data/`` at the repo top, ``uplift/_data`` in a wheel).

Nothing is fetched at run time: presets, tests and notebooks read these copies, each folder with
its ``SOURCE.md``.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    for candidate in (_PKG.parents[1] / "data", _PKG / "_data"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"cannot find the shipped data/ folder next to the uplift package ({_PKG})"
    )


def shipped_path(relative: str) -> Path:
    """Absolute path of a shipped file, e.g. ``hillstrom/hillstrom.csv.gz``."""
    p = data_root() / relative
    if not p.exists():
        have = sorted(
            str(x.relative_to(data_root())) for x in data_root().rglob("*") if x.is_file()
        )
        raise FileNotFoundError(f"shipped dataset {relative!r} not found; available: {have}")
    return p
