"""Ground-truth synthetic experiments.

Customers fall in segments (value tier x needs). Each arm delivers a tactic; each tactic's true
effect on the logit of conversion depends on the segment through a documented profile (e.g.
discounts work on price-seekers, up-sell on quality-seekers and high tiers) plus seeded noise.
Revenue per converter is lognormal with a tier-dependent mean, and unaffected by treatment, so the
true value of an incremental conversion is known exactly. :class:`SyntheticExperiment` carries the
truth next to the data so tests, notebooks and benchmarks can score recovery and allocation regret.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
import pandas as pd

from uplift.atomic_io import atomic_write_csv, atomic_write_parquet
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


def true_effects(
    arm_map: ArmMap, value_tiers: list[str], needs: list[str], effect_noise: float, seed: int
) -> pd.DataFrame:
    """The truth table for every (treated arm, segment), independent of sampled customers."""
    rng = np.random.default_rng([seed, 1])
    need_shift = rng.normal(0.0, 0.15, size=len(needs))
    rows = []
    for ti, tier in enumerate(value_tiers):
        for ni, need in enumerate(needs):
            base_logit = BASELINE_LOGIT_LOW + BASELINE_TIER_STEP * ti + need_shift[ni]
            p0 = float(_expit(np.array(base_logit)))
            rev_mu = REVENUE_LOG_MEAN_LOW + REVENUE_LOG_TIER_STEP * ti
            rev_per_conv = float(np.exp(rev_mu + 0.5 * REVENUE_LOG_SD**2))
            for arm in arm_map.arms:
                if arm.is_control:
                    effect = 0.0
                else:
                    prof = TACTIC_PROFILES[arm.tactic]
                    effect = (
                        float(prof["base"])
                        + float(prof["needs"].get(need, 0.0))
                        + float(prof["tier_slope"]) * ti
                        + rng.normal(0.0, effect_noise)
                    )
                p1 = float(_expit(np.array(base_logit + effect)))
                rows.append(
                    {
                        "tactic": arm.tactic.value,
                        "arm": arm.name,
                        "segment": f"{tier}/{need}",
                        "value_tier": tier,
                        "needs": need,
                        "p_control": p0,
                        "p_treated": p1,
                        "true_logit_effect": effect,
                        "true_uplift": p1 - p0,
                        "revenue_per_conversion": rev_per_conv,
                        "revenue_log_mean": rev_mu,
                        "revenue_log_sd": REVENUE_LOG_SD,
                        "cost": arm.cost,
                    }
                )
    return pd.DataFrame(rows)


def generate(
    arm_map: ArmMap,
    n_customers: int = 120_000,
    seed: int = 7,
    control_share: float = 0.25,
    value_tiers: list[str] | None = None,
    tier_shares: list[float] | None = None,
    needs: list[str] | None = None,
    effect_noise: float = 0.15,
) -> SyntheticExperiment:
    """Draw a randomized experiment with known truth. Same arguments -> same data."""
    value_tiers = value_tiers or ["low", "mid", "high"]
    tier_shares = tier_shares or [1.0 / len(value_tiers)] * len(value_tiers)
    needs = needs or ["price", "quality", "convenience", "variety"]
    truth = true_effects(arm_map, value_tiers, needs, effect_noise, seed)

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
    p = lookup["p_treated"].reindex(key).to_numpy()
    converted = (rng.random(n_customers) < p).astype(np.int64)
    rev_mu = lookup["revenue_log_mean"].reindex(key).to_numpy()
    spend = np.exp(rng.normal(rev_mu, REVENUE_LOG_SD))
    revenue = np.where(converted == 1, np.round(spend, 2), 0.0)
    orders = np.where(converted == 1, 1 + rng.poisson(0.3 + 0.2 * tier_idx), 0)

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


def main(argv: list[str] | None = None) -> None:
    """``python -m uplift.data.synthetic OUT_DIR``: write a default synthetic experiment and its truth."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--n-customers", type=int, default=120_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    exp = generate(default_arm_map(), n_customers=args.n_customers, seed=args.seed)
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
