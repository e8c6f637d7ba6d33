"""The effects' information ratio (``uplift.models.information``) recovers tau^2 / se^2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uplift.models.families import binomial, negative_binomial
from uplift.models.information import effect_information_ratio, main_effect_information_ratios


def _cells(tau: float, n: int, seed: int, *, tier_slope: float = 0.0, p0: float = 0.2):
    """Control + 2 arms on 6 x 8 crossed segments; cell effects = arm mean + tier slope +
    N(0, tau) residual on the logit scale; ``n`` customers per cell."""
    rng = np.random.default_rng(seed)
    rows, var = [], []
    for ti in range(6):
        for ni in range(8):
            seg = f"t{ti}/n{ni}"
            base = np.log(p0 / (1 - p0)) + 0.1 * ni
            q0 = 1 / (1 + np.exp(-base))
            rows.append(
                ("control", seg, f"t{ti}", f"n{ni}", n, rng.binomial(n, 1 / (1 + np.exp(-base))))
            )
            for arm, mean in (("a", 0.2), ("b", -0.1)):
                eff = mean + tier_slope * ti + rng.normal(0, tau)
                q1 = 1 / (1 + np.exp(-base - eff))
                var.append(1 / (n * q1 * (1 - q1)) + 1 / (n * q0 * (1 - q0)))
                rows.append(
                    (
                        arm,
                        seg,
                        f"t{ti}",
                        f"n{ni}",
                        n,
                        rng.binomial(n, 1 / (1 + np.exp(-base - eff))),
                    )
                )
    cells = pd.DataFrame(rows, columns=["arm", "segment", "tier", "need", "n", "conversions"])
    # and the true mean sampling variance of a cell's effect
    return cells[cells.arm == "control"], cells[cells.arm != "control"], float(np.mean(var))


def _ratio(control, treated, _se2=None, dims=("tier", "need")):
    f = binomial.FAMILY
    return effect_information_ratio(control, treated, f.link, dims)


@pytest.mark.parametrize(("tau", "n"), [(0.15, 30_000), (0.15, 3_000), (0.3, 2_000)])
def test_ratio_recovers_the_true_spread_over_the_sampling_variance(tau, n):
    est, truth = [], []
    for seed in range(20):
        control, treated, se2 = _cells(tau, n, seed, tier_slope=0.1)
        est.append(_ratio(control, treated))
        truth.append(tau**2 / se2)
    # the mean over 20 data sets within 15% of the truth: one estimate's own sd is ~20% (tau^2
    # from 70 residual degrees of freedom), so the mean's is ~4-5%
    assert np.mean(est) == pytest.approx(np.mean(truth), rel=0.15)


def test_no_spread_gives_a_ratio_near_zero_and_main_effects_are_not_spread():
    """Effects that vary only along a column (a tier slope) have no residual spread: the
    structured model pools that slope in the column's main effect, so the ratio stays ~0."""
    est = [_ratio(*_cells(0.0, 30_000, seed, tier_slope=0.2)) for seed in range(20)]
    assert np.mean(est) < 0.3
    flat = [_ratio(*_cells(0.0, 30_000, seed, tier_slope=0.2), dims=()) for seed in range(5)]
    assert min(flat) > 10  # exchangeable pooling sees the slope as spread


def test_too_few_cells_give_none_and_counts_use_their_link():
    control, treated, _ = _cells(0.1, 1000, 0)
    assert _ratio(control.head(1), treated[treated.segment == control.segment.iloc[0]]) is None
    counts = treated.assign(
        orders_sum=treated["conversions"] * 3, orders_sq_sum=treated["conversions"] * 9
    )
    ctrl = control.assign(
        orders_sum=control["conversions"] * 3, orders_sq_sum=control["conversions"] * 9
    )
    f = negative_binomial.FAMILY
    r = effect_information_ratio(ctrl, counts, f.link, ("tier", "need"))
    assert r is not None and r >= 0


@pytest.mark.parametrize(("slope", "n"), [(0.05, 30_000), (0.1, 3_000)])
def test_main_effect_ratio_recovers_each_columns_spread_over_its_level_mean_variance(slope, n):
    """Per column: the true variance of its level effects (a tier slope; the need column has
    none) over the sampling variance of a level mean (8 cells per tier: se^2 / 8)."""
    est, truth, need = [], [], []
    for seed in range(20):
        control, treated, se2 = _cells(0.0, n, seed, tier_slope=slope)
        r = main_effect_information_ratios(control, treated, binomial.FAMILY.link, ("tier", "need"))
        est.append(r["tier"])
        need.append(r["need"])
        truth.append(np.var(slope * np.arange(6), ddof=1) / (se2 / 8))
    assert np.mean(est) == pytest.approx(np.mean(truth), rel=0.15)
    assert np.mean(need) < 1.0  # no spread along the need column: near 0
    assert min(est) > 3 * max(need)


def test_main_effect_ratio_is_none_for_a_missing_column_or_too_few_cells():
    control, treated, _ = _cells(0.1, 1000, 0)
    link = binomial.FAMILY.link
    assert main_effect_information_ratios(control, treated, link, ("region",)) == {"region": None}
    one = treated[treated.segment == control.segment.iloc[0]]
    assert main_effect_information_ratios(control.head(1), one, link, ("tier",)) == {"tier": None}


def test_a_residual_spread_is_not_credited_to_a_column():
    """Cell effects that vary (tau 0.3) with no column effect: the level means differ only by
    the residual they average, so no column's ratio is large (counting sampling error alone
    put it far above 10); a real tier slope on top still stands out."""
    link = binomial.FAMILY.link
    flat, sloped = [], []
    for seed in range(10):
        control, treated, _ = _cells(0.3, 30_000, seed)
        flat.append(main_effect_information_ratios(control, treated, link, ("tier", "need")))
        control, treated, _ = _cells(0.3, 30_000, seed, tier_slope=0.2)
        sloped.append(main_effect_information_ratios(control, treated, link, ("tier", "need")))
    assert max(max(r.values()) for r in flat) < 10
    assert np.mean([r["tier"] for r in flat]) < 2
    # the tier slope's variance (0.04 x 3.5) over a tier mean's (0.09 / 8 cells): ~12
    assert np.mean([r["tier"] for r in sloped]) == pytest.approx(12.4, rel=0.3)
