"""Closed sets of configuration values (StrEnums) and the one coercion every schema uses."""

from __future__ import annotations

from enum import StrEnum


def choice[E: StrEnum](kind: type[E], key: str, value: object) -> E:
    """``value`` as a member of the closed set ``kind``; otherwise a ValueError naming ``key``
    and every allowed value."""
    if isinstance(value, str):  # anything else is no member either
        try:
            return kind(value)
        except ValueError:
            pass
    allowed = ", ".join(m.value for m in kind)
    raise ValueError(f"{key} must be one of: {allowed}; got {value!r}")
