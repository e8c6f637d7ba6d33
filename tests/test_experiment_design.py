"""Sample size, power, MDE and assurance: closed forms checked by hand and by seeded simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from uplift.experiment import (
    assurance,
    design_table,
    estimate_outcome,
    minimum_detectable_effect,
    power,
    required_sample_size,
    segment_moments,
)
from uplift.tactics import ArmMap

N_SIMS = 2_000
TARGET = 0.8
# Binomial SE of a simulated power of 0.8 from 2,000 tests: sqrt(0.8 * 0.2 / 2000) = 0.00894.
# Tolerance 3 SE = 0.027 (the seeds are fixed, so this is a check of the size, not a flake risk).
POWER_TOL = 3 * math.sqrt(TARGET * (1 - TARGET) / N_SIMS)


def _simulated_power_binary(n_c: int, n_t: int, p0: float, p1: float, seed: int) -> float:
    """Share of seeded two-proportion z-tests (pooled SE, two-sided 5%) that reject."""
    rng = np.random.default_rng(seed)
    x_c = rng.binomial(n_c, p0, N_SIMS)
    x_t = rng.binomial(n_t, p1, N_SIMS)
    pc, pt = x_c / n_c, x_t / n_t
    pool = (x_c + x_t) / (n_c + n_t)
    z = (pt - pc) / np.sqrt(pool * (1 - pool) * (1 / n_c + 1 / n_t))
    return float((np.abs(z) > stats.norm.ppf(0.975)).mean())


def test_textbook_two_proportion_size() -> None:
    # p0 = 0.10, p1 = 0.12, alpha = 0.05 two-sided, power 0.8, equal allocation (Fleiss, no CC):
    #   pbar = 0.11, 2 pbar qbar = 0.1958 -> sqrt = 0.44249; z_.975 * 0.44249 = 1.95996 * 0.44249
    #        = 0.86727
    #   p0 q0 + p1 q1 = 0.09 + 0.1056 = 0.1956 -> sqrt = 0.44227; z_.8 * 0.44227 = 0.84162 * 0.44227
    #        = 0.37223
    #   n = (0.86727 + 0.37223)^2 / 0.02^2 = 1.53636 / 0.0004 = 3840.9 -> 3,841 per arm.
    s = required_sample_size(0.10, 0.02, alpha=0.05, power=0.8, allocation=1.0)
    assert s.n_control == 3841
    assert s.n_treatment == 3841
    assert s.total == 7682
    assert s.exact_n_control == pytest.approx(3840.85, abs=0.05)
    assert s.power >= 0.8
    # the relative form of the same question gives the same size
    assert required_sample_size(0.10, 0.20, relative=True).n_control == 3841
    # one customer fewer per arm no longer reaches the target
    assert power(3840, 3840, 0.10, 0.02) < 0.8 <= power(3841, 3841, 0.10, 0.02)


def test_textbook_continuous_size() -> None:
    # sd = 1, delta = 0.5: n = 2 (1.95996 + 0.84162)^2 / 0.25 = 2 * 7.8489 / 0.25 = 62.79 -> 63
    s = required_sample_size(10.0, 0.5, metric="continuous", sd=1.0)
    assert (s.n_control, s.n_treatment) == (63, 63)


def test_simulated_power_matches_target_equal_split() -> None:
    s = required_sample_size(0.10, 0.02)
    sim = _simulated_power_binary(s.n_control, s.n_treatment, 0.10, 0.12, seed=11)
    assert abs(sim - TARGET) < POWER_TOL, (sim, POWER_TOL)


def test_simulated_power_matches_target_unequal_split() -> None:
    # two treated customers per control customer
    s = required_sample_size(0.10, 0.02, allocation=2.0)
    assert s.n_treatment == pytest.approx(2 * s.n_control, abs=1)
    # more customers in total than the equal split: equal allocation is optimal for one comparison
    assert s.total > required_sample_size(0.10, 0.02).total
    sim = _simulated_power_binary(s.n_control, s.n_treatment, 0.10, 0.12, seed=12)
    assert abs(sim - TARGET) < POWER_TOL, (sim, POWER_TOL)


def test_several_treatments_share_one_control() -> None:
    k = 3
    opt = required_sample_size(0.10, 0.02, n_treatments=k)  # square-root rule
    assert opt.n_control / opt.n_treatment == pytest.approx(math.sqrt(k), rel=1e-3)
    equal = required_sample_size(0.10, 0.02, n_treatments=k, allocation=1.0)
    assert equal.total == 4 * 3841
    assert opt.total < equal.total  # the square-root rule saves customers
    sim = _simulated_power_binary(opt.n_control, opt.n_treatment, 0.10, 0.12, seed=13)
    assert abs(sim - TARGET) < POWER_TOL, (sim, POWER_TOL)
    bonf = required_sample_size(0.10, 0.02, n_treatments=k, correction="bonferroni")
    assert bonf.alpha == pytest.approx(0.05 / 3)
    assert bonf.total > opt.total


def test_cuped_scales_size_by_one_minus_rho_squared() -> None:
    for rho in (0.3, 0.5, 0.8):
        for kw in (
            {"baseline": 0.1, "mde": 0.02},
            {"baseline": 50.0, "mde": 2.0, "metric": "continuous", "sd": 20.0},
        ):
            plain = required_sample_size(**kw)
            cuped = required_sample_size(**kw, rho=rho)
            assert cuped.exact_n_control / plain.exact_n_control == pytest.approx(
                1 - rho**2, rel=1e-12
            )


def test_cuped_simulated_power() -> None:
    """CUPED-adjusted z-tests at the reduced size reach the target; unadjusted ones fall short."""
    rho, delta = 0.6, 0.2
    s = required_sample_size(0.0, delta, metric="continuous", sd=1.0, rho=rho)
    n = s.n_control
    assert n == math.ceil(2 * (1.959964 + 0.841621) ** 2 / delta**2 * (1 - rho**2))  # 252
    rng = np.random.default_rng(21)
    x = rng.standard_normal((N_SIMS, 2, n))
    y = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal((N_SIMS, 2, n))
    y[:, 1, :] += delta
    # theta pooled over arms, per simulated experiment (GrowthBook style)
    xc = x - x.mean(axis=(1, 2), keepdims=True)
    yc = y - y.mean(axis=2, keepdims=True)
    theta = (xc * yc).sum(axis=(1, 2)) / (xc**2).sum(axis=(1, 2))
    adj = y - theta[:, None, None] * xc
    z_crit = stats.norm.ppf(0.975)

    def reject(v: np.ndarray) -> float:
        diff = v[:, 1].mean(axis=1) - v[:, 0].mean(axis=1)
        se = np.sqrt(v[:, 0].var(axis=1, ddof=1) / n + v[:, 1].var(axis=1, ddof=1) / n)
        return float((np.abs(diff / se) > z_crit).mean())

    sim_cuped = reject(adj)
    assert abs(sim_cuped - TARGET) < POWER_TOL, (sim_cuped, POWER_TOL)
    sim_raw = reject(y)
    expected_raw = power(n, n, 0.0, delta, metric="continuous", sd=1.0)  # about 0.61
    assert abs(sim_raw - expected_raw) < 3 * math.sqrt(expected_raw * (1 - expected_raw) / N_SIMS)
    assert sim_raw < TARGET - 0.1


def test_mde_inverts_power() -> None:
    d = minimum_detectable_effect(3841, 3841, 0.10)
    assert d == pytest.approx(0.02, abs=1e-4)
    assert power(3841, 3841, 0.10, d) == pytest.approx(0.8, abs=1e-9)
    rel = minimum_detectable_effect(3841, 3841, 0.10, relative=True)
    assert rel == pytest.approx(d / 0.10)
    dc = minimum_detectable_effect(63, 63, 10.0, metric="continuous", sd=1.0)
    assert dc == pytest.approx(0.5, abs=0.01)
    # CUPED shrinks the MDE by sqrt(1 - rho^2)
    dr = minimum_detectable_effect(63, 63, 10.0, metric="continuous", sd=1.0, rho=0.6)
    assert dr / dc == pytest.approx(0.8, rel=1e-3)


def test_half_width_is_z_times_se() -> None:
    s = required_sample_size(0.10, 0.02)
    se = math.sqrt(0.09 / s.n_control + 0.12 * 0.88 / s.n_treatment)
    assert s.half_width == pytest.approx(1.959964 * se, rel=1e-6)


def test_estimate_from_pre_period() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    pre = rng.gamma(2.0, 25.0, n)
    post = 0.7 * pre + rng.normal(0, 20.0, n)
    m = estimate_outcome(post, pre)
    true_sd = math.sqrt(0.49 * 2 * 25.0**2 + 20.0**2)
    assert m.sd == pytest.approx(true_sd, rel=0.03)
    assert m.rho == pytest.approx(0.7 * math.sqrt(2) * 25.0 / true_sd, abs=0.02)
    frame = pd.DataFrame({"segment": np.repeat(["a", "b"], n // 2), "y": post, "x": pre})
    seg = segment_moments(frame, "y", covariate_col="x")
    assert list(seg.columns) == ["segment", "baseline", "sd", "rho", "customers"]
    assert seg["customers"].tolist() == [n // 2, n // 2]
    table = design_table(seg, ["up_sell"], 5.0, metric="continuous")
    row = table[(table.segment == "a") & (table.role == "treatment")].iloc[0]
    direct = required_sample_size(
        seg.baseline[0], 5.0, metric="continuous", sd=seg.sd[0], rho=seg.rho[0]
    )
    assert row["required"] == direct.n_treatment


def test_design_table() -> None:
    segs = pd.DataFrame(
        {"segment": ["big", "small"], "baseline": [0.10, 0.05], "customers": [30_000, 4_000]}
    )
    arms = ArmMap.from_mapping(
        {
            "ctl": {"tactic": "control"},
            "xs": {"tactic": "cross_sell", "cost": 1.0},
            "up": {"tactic": "up_sell", "cost": 2.0},
        }
    )
    t = design_table(segs, arms, {"cross_sell": 0.02, "up": 0.03})
    assert len(t) == 6
    assert set(t.loc[t.role == "control", "arm"]) == {"ctl"}
    big = t[t.segment == "big"].set_index("arm")
    # control sized by the comparison that needs the most (the smaller cross-sell effect)
    want = required_sample_size(0.10, 0.02, n_treatments=2)
    assert big.loc["ctl", "required"] == want.n_control
    assert big.loc["xs", "required"] == want.n_treatment
    assert big.loc["up", "mde"] == pytest.approx(0.03)
    assert (big["power"].dropna() >= 0.8).all()
    assert big["share"].sum() == pytest.approx(1.0)
    assert bool(big["enough"].iloc[0]) is True
    assert bool(t.loc[t.segment == "small", "enough"].iloc[0]) is False
    # a segment with more customers than needed can detect less than the MDE, and vice versa
    assert big.loc["xs", "mde_at_available"] < 0.02
    small = t[t.segment == "small"].set_index("arm")
    assert small.loc["xs", "mde_at_available"] > 0.02
    assert (t.loc[t.role == "treatment", "half_width"] > 0).all()


def test_design_table_mde_at_available_is_consistent() -> None:
    need = design_table(pd.DataFrame({"segment": ["s"], "baseline": [0.1]}), ["retention"], 0.02)
    total = int(need["segment_required"].iloc[0])
    t = design_table(
        pd.DataFrame({"segment": ["s"], "baseline": [0.1], "customers": [total]}),
        ["retention"],
        0.02,
    )
    assert bool(t["enough"].iloc[0])
    assert t.loc[t.role == "treatment", "mde_at_available"].iloc[0] == pytest.approx(0.02, abs=2e-5)


def test_assurance_point_prior_equals_power() -> None:
    # With a point prior and a flat analysis prior, "P(uplift > 0) > 0.95 or < 0.05" is the
    # two-sided z-test at alpha = 0.10, so assurance is its power (within Monte Carlo error).
    n = 200
    res = assurance(n, n, 0.0, prior_mean=0.25, prior_sd=0.0, metric="continuous", sd=1.0, seed=5)
    exact = power(n, n, 0.0, 0.25, metric="continuous", sd=1.0, alpha=0.10)
    assert abs(res.assurance - exact) < 4 * res.mc_se, (res.assurance, exact)
    assert float(res) == res.assurance


def test_assurance_behaviour() -> None:
    kw = {"prior_mean": 0.01, "prior_sd": 0.02, "seed": 7}
    small = assurance(1_000, 1_000, 0.10, **kw)
    big = assurance(20_000, 20_000, 0.10, **kw)
    assert 0 < small.assurance < big.assurance < 1
    assert big.p_positive > big.p_negative
    assert big.p_wrong < 0.05
    assert assurance(1_000, 1_000, 0.10, **kw) == small  # seeded
    shrunk = assurance(1_000, 1_000, 0.10, analysis_prior_sd=0.005, **kw)
    assert shrunk.assurance < small.assurance  # a sceptical analysis prior is harder to convince
    # relative prior: a 10% lift on 0.10 is the same as 0.01 absolute
    rel = assurance(1_000, 1_000, 0.10, prior_mean=0.1, prior_sd=0.2, relative=True, seed=7)
    assert rel.assurance == pytest.approx(small.assurance)
    t = design_table(
        pd.DataFrame({"segment": ["s"], "baseline": [0.1], "customers": [10**5]}),
        ["frequency"],
        0.02,
        assurance_prior=(0.02, 0.0),
    )
    # at the MDE as a point prior, assurance (alpha 0.10 two-sided) exceeds the 0.8 power at 0.05
    assert t["assurance"].iloc[1] > 0.8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"baseline": 1.2, "mde": 0.02}, "baseline"),
        ({"baseline": 0.95, "mde": 0.1}, "not a rate in (0, 1)"),
        ({"baseline": 10.0, "mde": 1.0, "metric": "continuous"}, "sd"),
        ({"baseline": 0.1, "mde": 0.02, "rho": 1.0}, "|rho| < 1"),
        ({"baseline": 0.1, "mde": 0.02, "allocation": "best"}, "allocation"),
        ({"baseline": 0.1, "mde": 0.0}, "non-zero"),
        ({"baseline": 0.1, "mde": 0.02, "alpha": 0.0}, "alpha"),
    ],
)
def test_errors_name_the_problem(kwargs: dict, message: str) -> None:
    with pytest.raises(
        ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")
    ):
        required_sample_size(**kwargs)


def test_design_table_errors() -> None:
    segs = pd.DataFrame({"segment": ["a"], "baseline": [0.1]})
    with pytest.raises(ValueError, match="no effect given for arm 'up_sell'"):
        design_table(segs, ["cross_sell", "up_sell"], {"cross_sell": 0.02})
    with pytest.raises(ValueError, match=r"missing columns \['sd'\]"):
        design_table(segs, ["cross_sell"], 0.02, metric="continuous")
    with pytest.raises(ValueError, match="segment 'a'"):
        design_table(segs, ["cross_sell"], 0.95)
