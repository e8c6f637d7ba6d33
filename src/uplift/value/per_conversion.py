"""Value per incremental conversion, by segment.

The optimizer multiplies posterior uplift by this value. Two sources for now: a constant (with
per-segment overrides) and the observed margin on converters' revenue. Customer-lifetime-value
posteriors plug in here later through the same :class:`SegmentValue` protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd


class SegmentValue(Protocol):
    def per_conversion(self, cells: pd.DataFrame) -> pd.Series:
        """Value of one incremental conversion, indexed by segment."""
        ...


@dataclass(frozen=True)
class ConstantValue:
    per_conversion_value: float
    by_segment: dict[str, float] = field(default_factory=dict)

    def per_conversion(self, cells: pd.DataFrame) -> pd.Series:
        segments = sorted(cells["segment"].unique())
        unknown = sorted(set(self.by_segment) - set(segments))
        if unknown:
            raise ValueError(
                f"value.by_segment names unknown segment(s) {unknown}; known segments: {segments}"
            )
        return pd.Series(
            [float(self.by_segment.get(s, self.per_conversion_value)) for s in segments],
            index=pd.Index(segments, name="segment"),
            name="value_per_conversion",
        )


@dataclass(frozen=True)
class ObservedValue:
    """margin x mean revenue of converters in the segment, all arms pooled.

    Assumes treatment moves whether customers buy, not how much a buyer spends (the revenue
    models of the models issue relax this). Segments with no converters fall back to the
    overall mean so a sparse segment is not valued at zero.
    """

    margin: float = 0.4

    def per_conversion(self, cells: pd.DataFrame) -> pd.Series:
        g = cells.groupby("segment")[["revenue_sum", "conversions"]].sum().sort_index()
        if g["revenue_sum"].sum() <= 0:
            raise ValueError(
                "value.kind=observed needs revenue, but total revenue is 0 (is data.columns.revenue "
                "mapped?). Use value=constant with value.per_conversion=<value> instead."
            )
        overall = g["revenue_sum"].sum() / max(g["conversions"].sum(), 1)
        mean_rev = (g["revenue_sum"] / g["conversions"].where(g["conversions"] > 0)).fillna(overall)
        out = self.margin * mean_rev
        out.name = "value_per_conversion"
        out.index.name = "segment"
        return out


def build_value_model(cfg: object) -> SegmentValue:
    kind = str(getattr(cfg.kind, "value", cfg.kind))
    if kind == "constant":
        return ConstantValue(float(cfg.per_conversion), dict(cfg.by_segment))
    if kind == "observed":
        return ObservedValue(float(cfg.margin))
    raise ValueError(f"value.kind={kind!r} is unknown; use 'observed' or 'constant'")
