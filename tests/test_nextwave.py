"""Next wave: Thompson shares per segment (sum to 1, floor at min share, follow the best arm,
reproducible) and assignment through assignment.assign with the logged probability."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from uplift.experiment import (
    assign,
    assign_next_wave,
    next_wave_shares,
    next_wave_srm,
    prob_best,
)

ARMS = ["email", "call", "sms"]
SEGS = ["new", "loyal", "lapsed"]


def _profit(seed: int = 0, n: int = 4_000) -> xr.DataArray:
    """new: call clearly best; loyal: everything loses money (control best); lapsed: a close race."""
    rng = np.random.default_rng(seed)
    mu = np.array(
        [
            [0.5, -2.0, -0.3],  # email
            [5.0, -3.0, 0.2],  # call
            [0.2, -2.5, 0.1],  # sms
        ]
    )
    x = rng.normal(mu, 0.5, size=(n, 3, 3))
    return xr.DataArray(x, dims=("sample", "arm", "segment"), coords={"arm": ARMS, "segment": SEGS})


def test_shares_sum_to_one_and_respect_min_share() -> None:
    f = 0.05
    t = next_wave_shares(_profit(), f)
    assert list(t.columns) == ["segment", "arm", "prob_best", "share"]
    assert set(t.arm) == {"control", *ARMS}
    sums = t.groupby("segment")["share"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(t.groupby("segment")["prob_best"].sum().to_numpy(), 1.0)
    assert (t.share >= f - 1e-12).all()
    # GrowthBook's p_i = f + (1 - K f) w_i, exactly
    np.testing.assert_allclose(t.share, f + (1 - 4 * f) * t.prob_best)


def test_shares_follow_the_best_arm() -> None:
    f = 0.02
    t = next_wave_shares(_profit(), f).set_index(["segment", "arm"])
    # new: call's profit is ~9 sd above the rest -> all the free mass goes to call
    assert t.loc[("new", "call"), "prob_best"] == 1.0
    assert t.loc[("new", "call"), "share"] == pytest.approx(1 - 3 * f)
    # loyal: every treatment loses money -> control (profit 0) is best
    assert t.loc[("loyal", "control"), "share"] == pytest.approx(1 - 3 * f)
    # lapsed: a close race keeps several arms well above the floor
    lapsed = t.loc["lapsed", "share"]
    assert (lapsed > 0.1).sum() >= 3


def test_ties_split_evenly() -> None:
    x = np.ones((100, 2, 1))
    da = xr.DataArray(
        x, dims=("sample", "arm", "segment"), coords={"arm": ["a", "b"], "segment": ["s"]}
    )
    t = prob_best(da).set_index("arm")
    assert t.loc["control", "prob_best"] == 0.0
    assert t.loc["a", "prob_best"] == t.loc["b", "prob_best"] == 0.5


def test_deterministic_for_a_seed() -> None:
    da = _profit()
    a = next_wave_shares(da, 0.01, n_draws=500, seed=42)
    b = next_wave_shares(da, 0.01, n_draws=500, seed=42)
    pd.testing.assert_frame_equal(a, b)
    c = next_wave_shares(da, 0.01, n_draws=500, seed=43)
    assert not np.allclose(a.share, c.share)  # the subsample depends on the seed ...
    full = next_wave_shares(da, 0.01)
    assert np.abs(a.share - full.share).max() < 0.1  # ... but estimates the same thing
    pd.testing.assert_frame_equal(full, next_wave_shares(da, 0.01))


def test_min_share_bounds() -> None:
    with pytest.raises(ValueError, match=r"\[0, 0.25\] for K=4 arms"):
        next_wave_shares(_profit(), 0.3)


def _customers(n: int = 20_000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": [f"w2-{i:06d}" for i in range(n)],
            "segment": rng.choice(SEGS, size=n, p=[0.3, 0.3, 0.4]),
        }
    )


def test_assign_next_wave_uses_assign_per_segment() -> None:
    shares = next_wave_shares(_profit(), 0.05)
    cust = _customers()
    wave = assign_next_wave(cust, shares, salt="exp1-wave2")
    assert list(wave.columns) == [
        "customer_id",
        "segment",
        "arm",
        "assignment_probability",
        "bucket",
    ]
    assert wave.customer_id.tolist() == cust.customer_id.tolist()  # input order kept
    assert (wave.segment.to_numpy() == cust.segment.to_numpy()).all()
    want = shares.set_index(["segment", "arm"])["share"]
    for (seg, arm), g in wave.groupby(["segment", "arm"]):
        # the logged probability is the realised bucket share, within 1/10,000 of the target
        assert g.assignment_probability.nunique() == 1
        assert g.assignment_probability.iloc[0] == pytest.approx(want[(seg, arm)], abs=1e-4)
    for seg, g in wave.groupby("segment"):
        realised = g.arm.value_counts(normalize=True)
        for arm, w in want.loc[seg].items():
            assert abs(realised.get(arm, 0.0) - w) < 4 * math.sqrt(w * (1 - w) / len(g))
    # identical to calling assign() on one segment with that segment's weights
    lapsed = cust[cust.segment == "lapsed"]
    direct = assign(
        lapsed.customer_id, want.loc["lapsed"].to_dict(), "exp1-wave2", strata=lapsed.segment
    )
    got = wave[wave.segment == "lapsed"]
    assert got.arm.tolist() == direct.arm.tolist()
    np.testing.assert_allclose(got.assignment_probability, direct.assignment_probability)
    # reproducible from the salt, re-randomised by a new one
    pd.testing.assert_frame_equal(wave, assign_next_wave(cust, shares, salt="exp1-wave2"))
    other = assign_next_wave(cust, shares, salt="exp1-wave3")
    assert (other.arm != wave.arm).mean() > 0.2
    # the wave passes its own SRM check; a tampered one does not
    assert next_wave_srm(wave, shares).ok
    broken = wave.copy()
    lapsed_rows = np.flatnonzero(broken.segment.to_numpy() == "lapsed")[:400]
    broken.loc[lapsed_rows, "arm"] = "sms"  # e.g. a logging bug relabels 400 customers
    res = next_wave_srm(broken, shares)
    assert not res.ok
    assert any("lapsed" in f for f in res.failures)


def test_assign_next_wave_drops_zero_share_arms_and_holdout() -> None:
    shares = next_wave_shares(_profit(), 0.0)  # new: only call has mass
    cust = _customers(5_000)
    wave = assign_next_wave(cust, shares, salt="w", holdout_share=0.1)
    new = wave[wave.segment == "new"]
    assert set(new.arm) <= {"call", "holdout"}
    assert new.loc[new.arm == "call", "assignment_probability"].unique().tolist() == [0.9]
    assert next_wave_srm(wave, shares, holdout_share=0.1).ok


def test_unknown_segment_is_named() -> None:
    shares = next_wave_shares(_profit(), 0.05)
    cust = pd.DataFrame({"customer_id": [1, 2], "segment": ["new", "vip"]})
    with pytest.raises(ValueError, match=r"no shares for segment\(s\) \['vip'\]"):
        assign_next_wave(cust, shares, salt="w")
