"""Value per incremental conversion, by segment.

The optimizer multiplies posterior uplift by this value. Two sources for now: a constant (with
per-segment overrides) and the observed margin on converters' revenue. Customer-lifetime-value
posteriors plug in here later through the same :class:`SegmentValue` protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from uplift.value.pooled_value import pool_log_means, segment_levels


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

    ``pool`` (default): each segment's mean is shrunk towards what its segment columns
    (``dims``; none: the overall mean) predict, by how noisy it is
    (:mod:`uplift.value.pooled_value`); ``pool=False``: the raw means. Assumes treatment moves
    whether customers buy, not how much a buyer spends (the revenue models of the models issue
    relax this). Segments with no converters fall back to the overall mean (pooled: to their
    columns' prediction) so a sparse segment is not valued at zero.
    """

    margin: float = 0.4
    pool: bool = True
    dims: tuple[str, ...] = ()

    def per_conversion(self, cells: pd.DataFrame) -> pd.Series:
        pool = self.pool and "revenue_sq_sum" in cells.columns
        cols = ["revenue_sum", "conversions", *(["revenue_sq_sum"] if pool else [])]
        g = cells.groupby("segment")[cols].sum().sort_index()
        if g["revenue_sum"].sum() <= 0:
            raise ValueError(
                "value.kind=observed needs revenue, but total revenue is 0 (is data.columns.revenue "
                "mapped?). Use value=constant with value.per_conversion=<value> instead."
            )
        overall = g["revenue_sum"].sum() / max(g["conversions"].sum(), 1)
        mean_rev = (g["revenue_sum"] / g["conversions"].where(g["conversions"] > 0)).fillna(overall)
        pooled = (
            pool_log_means(
                g["revenue_sum"],
                g["revenue_sq_sum"],
                g["conversions"],
                segment_levels(cells, self.dims),
            )
            if pool
            else None
        )
        if pooled is not None:
            mean_rev = np.exp(pooled.log_mean.reindex(g.index))
        out = self.margin * mean_rev
        out.name = "value_per_conversion"
        out.index.name = "segment"
        return out


type ValuePerUnit = pd.Series | Mapping[str, pd.Series]


class ValueSettings(Protocol):
    """The value settings :func:`value_per_unit` reads (``uplift.config.ValueConfig``)."""

    @property
    def kind(self) -> str: ...
    @property
    def margin(self) -> float: ...
    @property
    def per_conversion(self) -> float: ...
    @property
    def by_segment(self) -> Mapping[str, float]: ...


def value_for_tactic(values: ValuePerUnit, tactic: str) -> pd.Series:
    """One value series for all tactics, or one per tactic (when their metrics differ)."""
    return values[tactic] if isinstance(values, Mapping) else values


def value_per_unit(
    metric: str, cells: pd.DataFrame, cfg: ValueSettings, segment_value: SegmentValue | None = None
) -> pd.Series:
    """What one unit of a model's metric is worth in each segment.

    conversion -> value per conversion (``segment_value``, else ``value.kind``); revenue ->
    ``value.margin`` per unit of revenue; orders -> margin x mean revenue per order in the
    segment (all arms pooled).
    """
    if metric == "conversion":
        return (segment_value or build_value_model(cfg)).per_conversion(cells)
    segments = sorted(cells["segment"].unique())
    margin = float(cfg.margin)
    if metric == "revenue":
        out = pd.Series(margin, index=pd.Index(segments, name="segment"))
    elif metric in ("orders", "referrals"):
        g = cells.groupby("segment")[["revenue_sum", "orders_sum"]].sum().reindex(segments)
        if g["orders_sum"].sum() <= 0 or g["revenue_sum"].sum() <= 0:
            raise ValueError(
                f"valuing {metric} needs revenue and {metric} in the data; map data.columns"
            )
        overall = g["revenue_sum"].sum() / g["orders_sum"].sum()
        out = margin * (g["revenue_sum"] / g["orders_sum"].where(g["orders_sum"] > 0)).fillna(
            overall
        )
    else:
        raise ValueError(f"no value rule for metric {metric!r}")
    out.name = "value_per_unit"
    return out


def build_value_model(cfg: ValueSettings, dims: tuple[str, ...] = ()) -> SegmentValue:
    """The value model of ``value.kind``; ``dims``: the segment columns an observed value is
    pooled along (``value.pool``, read when the settings have it; default on)."""
    kind = str(getattr(cfg.kind, "value", cfg.kind))
    if kind == "constant":
        return ConstantValue(float(cfg.per_conversion), dict(cfg.by_segment))
    if kind == "observed":
        return ObservedValue(float(cfg.margin), bool(getattr(cfg, "pool", True)), tuple(dims))
    if kind == "clv":
        raise ValueError(
            "value.kind=clv needs customer ids: build it with clv_join.clv_value_for_data"
        )
    raise ValueError(f"value.kind={kind!r} is unknown; use 'observed' or 'constant'")
