"""Settings of the data stage that the configuration schema reads (``data.checks``).

Plain dataclasses without pandas, so that :mod:`uplift.config` (and with it ``uplift --help``)
does not import the data stack. ``uplift.data.checks.DataChecks`` re-exports :class:`DataChecks`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DataChecks:
    """``data.checks``: the plausibility guards and the keys that relax them (null: off)."""

    # refuse a positive revenue this many robust standard deviations above the median on the log
    # scale (1.4826 x MAD of log revenue); lognormal spend sits within ~5
    revenue_outlier_z: float | None = 10.0
    allow_revenue_without_conversion: bool = False
    # refuse more segments than this before sampling (10,000 segments of 9 customers: 514 s and
    # 15 GB at only 2 x 100 draws, r-hat 1.85); the message states the estimated cost
    max_segments: int | None = 2000
    # refuse data cut so fine that the typical (median) segment x arm cell has fewer customers
    min_median_cell_customers: int | None = 10

    def __post_init__(self) -> None:
        if self.revenue_outlier_z is not None and self.revenue_outlier_z <= 0:
            raise ValueError(
                f"data.checks.revenue_outlier_z must be > 0 (or null), got {self.revenue_outlier_z}"
            )
        if self.max_segments is not None and self.max_segments < 1:
            raise ValueError(
                f"data.checks.max_segments must be >= 1 (or null), got {self.max_segments}"
            )
