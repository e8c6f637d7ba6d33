"""Settings of the data stage that the configuration schema reads (``data.checks``, and what
the synthetic generator's outcomes are: :class:`Outcomes`, :data:`TACTIC_OUTCOMES`).

Plain dataclasses without pandas, so that :mod:`uplift.config` (and with it ``uplift --help``)
does not import the data stack. ``uplift.data.checks.DataChecks`` re-exports :class:`DataChecks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from uplift.tactics import Tactic


class Outcomes(StrEnum):
    """What the synthetic generator's treated arms move (``generate(outcomes=...)``,
    ``data.synthetic.outcomes``).

    ``conversion``: every tactic shifts the logit of conversion; revenue per converter is
    unaffected by treatment (the original generator). ``per_tactic`` (the demo's): each tactic
    moves its own outcome (:data:`TACTIC_OUTCOMES`), so each likelihood family has a
    well-specified arm to fit.
    """

    conversion = "conversion"
    per_tactic = "per_tactic"


#: per_tactic: the outcome each tactic moves, on the scale of the family that models it
#: (``conversion``: logit shift of P(buy); ``orders``: log rate ratio of the orders count;
#: ``revenue``: logit shift of P(buy) and log-mean shift of spend per order; ``price``: purchase
#: logit ``a + b log(price / list price)`` with elasticity ``b < 0``).
#: ``uplift.models.families.OUTCOME_FAMILIES`` names the family that models each kind.
TACTIC_OUTCOMES: dict[Tactic, str] = {
    Tactic.CROSS_SELL: "conversion",
    Tactic.UP_SELL: "revenue",
    Tactic.FREQUENCY: "orders",
    Tactic.MARGIN: "price",
    Tactic.RETENTION: "conversion",
    Tactic.REFERRAL: "orders",
}
#: per_tactic: price of a margin arm as a share of the control's (list) price, unless
#: ``pricing.prices`` says otherwise
DISCOUNT_PRICE = 0.9


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
