"""Ground-truth synthetic price tests.

Customers in each segment are randomized evenly over price arms; the purchase probability at
price q is ``expit(a[g] + b[g] log(q / reference_price))`` - the same logit form
:class:`~uplift.models.price.PriceResponseModel` fits - so recovery of ``b`` and the profit-optimal
price can be scored against the truth. The arm at ``current_price`` is the control (tactic
``control``), the other prices the ``margin`` tactic; revenue is the price paid by buyers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from uplift.tactics import ArmMap


def price_label(price: float) -> str:
    """Arm name of a price level, e.g. ``9.99 -> "p9_99"``: stable, readable, and a valid config
    key (Hydra/OmegaConf keys cannot contain dots)."""
    return f"p{float(price):.2f}".replace(".", "_")


def price_arm_map(prices: Sequence[float], current_price: float, cost: float = 0.0) -> ArmMap:
    """Arms of a price test: today's price as control, every other price as a margin arm."""
    _check_prices(prices, current_price)
    return ArmMap.from_mapping(
        {
            price_label(p): {
                "tactic": "control" if np.isclose(p, current_price) else "margin",
                "cost": cost,
            }
            for p in prices
        }
    )


def price_mapping(prices: Sequence[float]) -> dict[str, float]:
    """``{arm label: price}`` to pass as ``PriceResponseModel(prices=...)``."""
    return {price_label(p): float(p) for p in prices}


def _check_prices(prices: Sequence[float], current_price: float) -> None:
    labels = [price_label(p) for p in prices]
    if len(set(labels)) != len(labels):
        raise ValueError(f"prices must be distinct (to the cent), got {list(prices)}")
    if any(p <= 0 for p in prices):
        raise ValueError(f"prices must be positive, got {list(prices)}")
    if price_label(current_price) not in labels:
        raise ValueError(f"current_price {current_price} must be one of the tested prices")
    if len(prices) < 2:
        raise ValueError("a price test needs at least two prices")


def true_purchase_probability(
    a: np.ndarray | float, b: np.ndarray | float, price: np.ndarray | float, reference_price: float
) -> np.ndarray:
    """expit(a + b log(price / reference)) broadcast over a/b (segments) and price."""
    eta = np.asarray(a, dtype=float) + np.asarray(b, dtype=float) * np.log(
        np.asarray(price, dtype=float) / reference_price
    )
    return 1.0 / (1.0 + np.exp(-eta))


def generate_price_test(
    segments: list[str],
    prices: list[float],
    current_price: float,
    n_customers: int,
    true_a: Sequence[float] | np.ndarray,
    true_b: Sequence[float] | np.ndarray,
    seed: int,
    reference_price: float | None = None,
    segment_shares: Sequence[float] | np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw a randomized price test with known demand. Same arguments -> same data.

    ``true_a[g]`` is the purchase logit at ``reference_price`` (default ``current_price``) and
    ``true_b[g] < 0`` the elasticity. Returns ``(customers, truth)``: customers in the canonical
    contract (customer_id, segment, arm = price label, converted, revenue = price if converted,
    orders = converted) and truth with one row per segment (segment, a, b, reference_price and
    ``p_<label>`` = true purchase probability at each tested price).
    """
    _check_prices(prices, current_price)
    G = len(segments)
    a, b = np.asarray(true_a, dtype=float), np.asarray(true_b, dtype=float)
    if a.shape != (G,) or b.shape != (G,):
        raise ValueError(f"true_a and true_b need one value per segment ({G})")
    if (b >= 0).any():
        raise ValueError(f"true_b must be negative (demand falls with price), got {b.tolist()}")
    ref = float(current_price if reference_price is None else reference_price)
    shares = np.full(G, 1.0 / G) if segment_shares is None else np.asarray(segment_shares, float)
    price_arr = np.asarray(prices, dtype=float)
    probs = true_purchase_probability(a[:, None], b[:, None], price_arr[None, :], ref)  # (G, K)

    rng = np.random.default_rng([seed, 3])
    seg_idx = rng.choice(G, size=n_customers, p=shares / shares.sum())
    arm_idx = rng.integers(0, len(prices), size=n_customers)
    converted = (rng.random(n_customers) < probs[seg_idx, arm_idx]).astype(np.int64)
    labels = np.array([price_label(p) for p in prices], dtype=object)
    customers = pd.DataFrame(
        {
            "customer_id": np.arange(1, n_customers + 1),
            "segment": np.asarray(segments, dtype=object)[seg_idx].astype(str),
            "arm": labels[arm_idx].astype(str),
            "converted": converted,
            "revenue": np.where(converted == 1, price_arr[arm_idx], 0.0),
            "orders": converted.copy(),
        }
    )
    truth = pd.DataFrame({"segment": list(segments), "a": a, "b": b, "reference_price": ref})
    for k, p in enumerate(prices):
        truth[price_label(p)] = probs[:, k]
    return customers, truth
