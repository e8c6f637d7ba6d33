"""The effects' information ratio (``uplift.models.information``) recovers tau^2 / se^2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uplift.models.families import binomial, negative_binomial
from uplift.models.information import effect_information_ratio


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
