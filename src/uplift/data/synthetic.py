"""Ground-truth synthetic experiments.

Customers fall in segments (value tier x needs). Each arm delivers a tactic; each tactic's true
effect depends on the segment through a documented profile (e.g. discounts work on
price-seekers, up-sell on quality-seekers and high tiers) plus seeded noise. With
``outcomes="conversion"`` (the default) the effect moves the logit of conversion and revenue per
converter is lognormal with a tier-dependent mean, unaffected by treatment. With
``outcomes="per_tactic"`` (the demo) each tactic moves its own outcome (:data:`TACTIC_OUTCOMES`):
NB orders counts, spend per order, a price response. Either way the truth table holds the true
effect on every family's scale and the true value of treating a customer in money. :class:`SyntheticExperiment` carries the
truth next to the data so tests, notebooks and benchmarks can score recovery and allocation regret.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
import pandas as pd

from uplift.atomic_io import atomic_write_csv, atomic_write_parquet
from uplift.data.settings import DISCOUNT_PRICE, TACTIC_OUTCOMES, Outcomes
from uplift.tactics import ArmMap, Tactic


# Effect on the logit of conversion: base + need affinity + slope per value-tier step.
class TacticProfile(TypedDict):
    base: float  # logit effect
    needs: dict[str, float]  # added for customers with that need
    tier_slope: float  # added per value tier


TACTIC_PROFILES: dict[Tactic, TacticProfile] = {
    Tactic.CROSS_SELL: {
        "base": 0.25,
        "needs": {"variety": 0.35, "convenience": 0.1},
        "tier_slope": 0.0,
    },
    Tactic.UP_SELL: {"base": 0.12, "needs": {"quality": 0.4, "price": -0.2}, "tier_slope": 0.15},
    Tactic.FREQUENCY: {"base": 0.2, "needs": {"convenience": 0.35}, "tier_slope": 0.05},
    Tactic.MARGIN: {"base": 0.3, "needs": {"price": 0.45, "quality": -0.3}, "tier_slope": -0.1},
    Tactic.RETENTION: {"base": 0.1, "needs": {}, "tier_slope": 0.2},
    Tactic.REFERRAL: {"base": 0.05, "needs": {"variety": 0.1}, "tier_slope": 0.05},
}
BASELINE_LOGIT_LOW = -3.1  # lowest tier's baseline conversion logit (~4.3%)
BASELINE_TIER_STEP = 0.5  # each tier step up adds this to the baseline logit
REVENUE_LOG_MEAN_LOW = float(np.log(60.0))
REVENUE_LOG_TIER_STEP = 0.6
REVENUE_LOG_SD = 0.7


@dataclass(frozen=True)
class SyntheticExperiment:
    """Customer rows plus the truth: one row per (arm, segment) with true rates and uplift."""

    customers: pd.DataFrame
    truth: pd.DataFrame

    def write(self, directory: str | Path) -> tuple[Path, Path]:
        """Write ``customers.parquet`` and ``truth.csv`` side by side (atomically)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        return (
            atomic_write_parquet(self.customers, d / "customers.parquet"),
            atomic_write_csv(self.truth, d / "truth.csv"),
        )


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


ORDERS_ALPHA = 0.6  # per_tactic: NB shape of orders per customer (small = overdispersed)
UP_SELL_BUY_SHARE = 0.5  # per_tactic: up-sell's profile effect x this = logit shift of buying
UP_SELL_SPEND_SHARE = 0.25  # ... x this = log-mean shift of spend per order
ELASTICITY_AT_ZERO = 2.0  # per_tactic: |b| of a margin arm where its profile effect is 0.3 ...
ELASTICITY_SLOPE = 1.2  # ... times exp(slope x (profile effect - 0.3))


def _orders_mean(p_buy: float, alpha: float = ORDERS_ALPHA) -> float:
    """Mean of NB(mu, alpha) orders whose P(orders > 0) is ``p_buy``."""
    return float(alpha * ((1.0 - p_buy) ** (-1.0 / alpha) - 1.0))


def _p_any(mu: float, alpha: float = ORDERS_ALPHA) -> float:
    """P(orders > 0) of NB(mu, alpha)."""
    return float(1.0 - (alpha / (alpha + mu)) ** alpha)


def _profile_effect(tactic: Tactic, need: str, ti: int) -> float:
    prof = TACTIC_PROFILES[tactic]
    return (
        float(prof["base"]) + float(prof["needs"].get(need, 0.0)) + float(prof["tier_slope"]) * ti
    )


def true_effects(
    arm_map: ArmMap,
    value_tiers: list[str],
    needs: list[str],
    effect_noise: float,
    seed: int,
    *,
    outcomes: Outcomes | str = Outcomes.conversion,
    tier_shares: list[float] | None = None,
    margin: float = 0.4,
    prices: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """The truth table for every (arm, segment), independent of sampled customers.

    Besides the conversion probabilities, each row has the true effect on every family's scale
    (``true_uplift``: conversion probability, ``true_orders_uplift``: orders per customer,
    ``true_revenue_uplift``: revenue per customer) and ``true_value_per_customer``: the
    incremental value of treating one customer in money (before the arm's cost), by the value
    rule the pipeline applies to the tactic's own outcome at ``margin`` (``value.margin``):
    margin x incremental revenue; a referral's extra count x the customer-weighted mean value of
    a conversion (``uplift.value.tactic_value.referral_value``); a price arm's change in
    ``(price - unit cost) x P(buy)`` with unit cost ``(1 - margin)`` x list price.
    ``prices`` (per_tactic): price of each margin arm as a share of the control's (list) price,
    default :data:`DISCOUNT_PRICE`.
    """
    mode = Outcomes(outcomes)
    rng = np.random.default_rng([seed, 1])
    need_shift = rng.normal(0.0, 0.15, size=len(needs))
    shares = np.asarray(tier_shares or [1.0] * len(value_tiers), dtype=float)
    shares = shares / shares.sum()
    control_price = float((prices or {}).get(arm_map.control.name, 1.0))
    rows = []
    for ti, tier in enumerate(value_tiers):
        for ni, need in enumerate(needs):
            base_logit = BASELINE_LOGIT_LOW + BASELINE_TIER_STEP * ti + need_shift[ni]
            p0 = float(_expit(np.array(base_logit)))
            rev_mu = REVENUE_LOG_MEAN_LOW + REVENUE_LOG_TIER_STEP * ti
            basket = float(np.exp(rev_mu + 0.5 * REVENUE_LOG_SD**2))
            if mode is Outcomes.conversion:
                mu0 = p0 * (1.0 + 0.3 + 0.2 * ti)  # orders: 1 + Poisson(0.3 + 0.2 tier) a buyer
                per_buyer_orders = 1.0 + 0.3 + 0.2 * ti
                rev_per_conv = basket  # one lognormal spend per converter
            else:
                mu0 = _orders_mean(p0)
                per_buyer_orders = mu0 / p0
                rev_per_conv = per_buyer_orders * basket  # orders x spend per order
            for arm in arm_map.arms:
                row = {
                    "tactic": arm.tactic.value,
                    "arm": arm.name,
                    "segment": f"{tier}/{need}",
                    "value_tier": tier,
                    "needs": need,
                    "segment_share": float(shares[ti] / len(needs)),
                    "outcome": "",
                    "p_control": p0,
                    "true_logit_effect": 0.0,
                    "true_log_rate_effect": 0.0,
                    "true_log_spend_shift": 0.0,
                    "true_elasticity": np.nan,
                    "price": 1.0,
                    "orders_control": mu0,
                    "revenue_control": p0 * rev_per_conv,
                    "revenue_per_conversion": rev_per_conv,
                    "revenue_log_mean": rev_mu,
                    "revenue_log_sd": REVENUE_LOG_SD,
                    "cost": arm.cost,
                }
                p1, mu1, rev1 = p0, mu0, p0 * rev_per_conv
                if not arm.is_control:
                    eff = _profile_effect(arm.tactic, need, ti) + rng.normal(0.0, effect_noise)
                    kind = (
                        "conversion"
                        if mode is Outcomes.conversion
                        else TACTIC_OUTCOMES.get(arm.tactic, "conversion")
                    )
                    row["outcome"] = kind
                    if kind == "orders":  # NB mean orders x exp(eff); buying follows the count
                        mu1 = mu0 * float(np.exp(eff))
                        p1 = _p_any(mu1)
                        rev1 = mu1 * basket
                        row["true_log_rate_effect"] = eff
                        row["true_logit_effect"] = float(np.log(p1 / (1 - p1) / (p0 / (1 - p0))))
                    elif kind == "revenue":  # buying and spend per order both move
                        logit, shift = UP_SELL_BUY_SHARE * eff, UP_SELL_SPEND_SHARE * eff
                        p1 = float(_expit(np.array(base_logit + logit)))
                        mu1 = p1 * per_buyer_orders
                        rev1 = p1 * per_buyer_orders * basket * float(np.exp(shift))
                        row["true_logit_effect"], row["true_log_spend_shift"] = logit, shift
                    elif kind == "price":  # purchase logit a + b log(price / list)
                        q = float((prices or {}).get(arm.name, DISCOUNT_PRICE * control_price))
                        q = q / control_price
                        b = -ELASTICITY_AT_ZERO * float(np.exp(ELASTICITY_SLOPE * (eff - 0.3)))
                        logit = b * float(np.log(q))
                        p1 = float(_expit(np.array(base_logit + logit)))
                        mu1 = p1 * per_buyer_orders
                        rev1 = p1 * rev_per_conv * q
                        row.update(true_logit_effect=logit, true_elasticity=b, price=q)
                    else:  # a conversion: the orders of a buyer as in control
                        p1 = float(_expit(np.array(base_logit + eff)))
                        mu1 = p1 * per_buyer_orders
                        rev1 = p1 * rev_per_conv
                        row["true_logit_effect"] = eff
                row.update(
                    p_treated=p1,
                    true_uplift=p1 - p0,
                    orders_treated=mu1,
                    true_orders_uplift=mu1 - mu0,
                    revenue_treated=rev1,
                    true_revenue_uplift=rev1 - p0 * rev_per_conv,
                )
                rows.append(row)
    truth = pd.DataFrame(rows)
    truth["true_value_per_customer"] = margin * truth["true_revenue_uplift"]
    if mode is Outcomes.per_tactic:
        # a referral is worth a referred customer: the customer-weighted mean value of a
        # conversion (uplift.value.tactic_value.referral_value), per unit of the count
        ctl = truth[truth["arm"] == arm_map.control.name]
        referred = float((ctl["segment_share"] * margin * ctl["revenue_per_conversion"]).sum())
        ref = truth["outcome"].eq("orders") & truth["tactic"].eq(Tactic.REFERRAL.value)
        truth.loc[ref, "true_value_per_customer"] = truth.loc[ref, "true_orders_uplift"] * referred
        # a price arm: (price - unit cost) x P(buy) x list revenue of a buyer, unit cost at
        # (1 - margin) of list price, minus the same at list price
        pr = truth["outcome"].eq("price")
        t = truth.loc[pr]
        truth.loc[pr, "true_value_per_customer"] = t["revenue_per_conversion"] * (
            t["p_treated"] * (t["price"] - 1.0 + margin) - t["p_control"] * margin
        )
    truth["true_profit_per_customer"] = truth["true_value_per_customer"] - truth["cost"]
    truth["value_margin"] = margin
    return truth


def generate(
    arm_map: ArmMap,
    n_customers: int = 120_000,
    seed: int = 7,
    control_share: float = 0.25,
    value_tiers: list[str] | None = None,
    tier_shares: list[float] | None = None,
    needs: list[str] | None = None,
    effect_noise: float = 0.15,
    *,
    outcomes: Outcomes | str = Outcomes.conversion,
    margin: float = 0.4,
    prices: Mapping[str, float] | None = None,
) -> SyntheticExperiment:
    """Draw a randomized experiment with known truth. Same arguments -> same data.

    ``outcomes="per_tactic"``: each tactic moves its own outcome (:class:`Outcomes`); orders
    per customer are NB(mean, :data:`ORDERS_ALPHA`) in control and the count arms, a buyer
    (``converted``) has at least one order, and revenue is orders x a lognormal spend per order.
    ``margin`` and ``prices`` only set the truth's money columns (:func:`true_effects`).
    """
    mode = Outcomes(outcomes)
    value_tiers = value_tiers or ["low", "mid", "high"]
    tier_shares = tier_shares or [1.0 / len(value_tiers)] * len(value_tiers)
    needs = needs or ["price", "quality", "convenience", "variety"]
    truth = true_effects(
        arm_map,
        value_tiers,
        needs,
        effect_noise,
        seed,
        outcomes=mode,
        tier_shares=tier_shares,
        margin=margin,
        prices=prices,
    )

    rng = np.random.default_rng([seed, 2])
    shares = np.asarray(tier_shares, dtype=float)
    tier_idx = rng.choice(len(value_tiers), size=n_customers, p=shares / shares.sum())
    need_idx = rng.integers(0, len(needs), size=n_customers)
    treated = arm_map.treated
    arm_probs = np.r_[control_share, np.full(len(treated), (1 - control_share) / len(treated))]
    arm_names = np.array([arm_map.control.name, *[a.name for a in treated]], dtype=object)
    arm_idx = rng.choice(len(arm_names), size=n_customers, p=arm_probs)

    tiers = np.asarray(value_tiers, dtype=object)[tier_idx]
    need_arr = np.asarray(needs, dtype=object)[need_idx]
    arms = arm_names[arm_idx]
    key = pd.MultiIndex.from_arrays([arms, tiers + "/" + need_arr])
    lookup = truth.set_index(["arm", "segment"])
    if mode is Outcomes.conversion:
        p = lookup["p_treated"].reindex(key).to_numpy()
        converted = (rng.random(n_customers) < p).astype(np.int64)
        rev_mu = lookup["revenue_log_mean"].reindex(key).to_numpy()
        spend = np.exp(rng.normal(rev_mu, REVENUE_LOG_SD))
        revenue = np.where(converted == 1, np.round(spend, 2), 0.0)
        orders = np.where(converted == 1, 1 + rng.poisson(0.3 + 0.2 * tier_idx), 0)
    else:
        converted, orders, revenue = _per_tactic_outcomes(lookup, key, rng)

    customers = pd.DataFrame(
        {
            "customer_id": np.arange(1, n_customers + 1),
            "value_tier": tiers.astype(str),
            "needs": need_arr.astype(str),
            "arm": arms.astype(str),
            "converted": converted,
            "revenue": revenue,
            "orders": orders.astype(np.int64),
        }
    )
    return SyntheticExperiment(customers=customers, truth=truth)


def _nb(mu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """NB(mu, ORDERS_ALPHA) counts as a gamma-Poisson mixture."""
    return rng.poisson(rng.gamma(ORDERS_ALPHA, np.asarray(mu) / ORDERS_ALPHA))


def _per_tactic_outcomes(
    lookup: pd.DataFrame, key: pd.MultiIndex, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """converted, orders, revenue of each customer (``generate(outcomes="per_tactic")``)."""
    n = len(key)

    def col(name: str) -> np.ndarray:
        return lookup[name].reindex(key).to_numpy()

    outcome = col("outcome").astype(str)
    count = np.isin(outcome, ["", "orders"])  # control and the count arms: NB orders
    orders = np.zeros(n, dtype=np.int64)
    orders[count] = _nb(col("orders_treated")[count], rng)
    buy = ~count & (rng.random(n) < col("p_treated"))  # the others: buy, then a buyer's orders
    mu0 = col("orders_control")
    todo = np.flatnonzero(buy)
    for _ in range(10_000):  # orders of a buyer: NB(mu0) given > 0, by rejection
        if not len(todo):
            break
        draw = _nb(mu0[todo], rng)
        orders[todo] = draw
        todo = todo[draw == 0]
    orders[todo] = 1
    converted = (orders > 0).astype(np.int64)
    per_order = np.exp(
        rng.normal(col("revenue_log_mean") + col("true_log_spend_shift"), REVENUE_LOG_SD)
    )
    revenue = np.where(converted == 1, np.round(orders * per_order * col("price"), 2), 0.0)
    return converted, orders, revenue


def main(argv: list[str] | None = None) -> None:
    """``python -m uplift.data.synthetic OUT_DIR``: write a default synthetic experiment and its truth."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--n-customers", type=int, default=120_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--outcomes", choices=[o.value for o in Outcomes], default="conversion")
    args = parser.parse_args(argv)
    exp = generate(
        default_arm_map(), n_customers=args.n_customers, seed=args.seed, outcomes=args.outcomes
    )
    for p in exp.write(args.out_dir):
        print(p)


def default_arm_map() -> ArmMap:
    """The arms of ``conf/tactics/synthetic.yaml``: one per tactic plus control."""
    return ArmMap.from_mapping(DEFAULT_ARMS)


DEFAULT_ARMS: dict[str, dict[str, object]] = {
    "control": {"tactic": "control", "cost": 0.0},
    "cross_sell_email": {"tactic": "cross_sell", "cost": 1.0},
    "upgrade_offer": {"tactic": "up_sell", "cost": 1.5},
    "loyalty_points": {"tactic": "frequency", "cost": 2.5},
    "discount_10pct": {"tactic": "margin", "cost": 3.0},
    "retention_call": {"tactic": "retention", "cost": 2.0},
    "referral_bonus": {"tactic": "referral", "cost": 0.8},
}


if __name__ == "__main__":
    main()
