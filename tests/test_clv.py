"""CLV: exact BG/NBD and Gamma-Gamma likelihoods, CDNOW against the published estimates,
recovery of known parameters from simulated customers, tiers/rules, and errors that teach."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from uplift.data.contract import DataValidationError
from uplift.value.clv import (
    BetaGeoModel,
    ClvSettings,
    ClvValue,
    GammaGammaModel,
    bgnbd_expected_purchases,
    bgnbd_loglik,
    bgnbd_p_alive,
    customer_value,
    gamma_gamma_logp,
    simulate_bgnbd,
)
from uplift.value.datasets import (
    CDNOW_CALIBRATION_END,
    CDNOW_HOLDOUT_END,
    CDNOW_PUBLISHED_BGNBD,
    CDNOW_PUBLISHED_GAMMA_GAMMA,
    cdnow_sample_id_map,
    load_cdnow,
    load_cdnow_reference_summary,
)
from uplift.value.per_conversion import SegmentValue
from uplift.value.tiers import (
    ClassificationRules,
    TierSpec,
    assign_tiers,
    incremental_from_uplift_table,
    retention_worth,
    value_table,
)
from uplift.value.transactions import TransactionColumns, rfm_summary

PUB = CDNOW_PUBLISHED_BGNBD


@pytest.fixture(scope="module")
def cdnow():
    return load_cdnow()


@pytest.fixture(scope="module")
def cdnow_sample_summary(cdnow):
    return rfm_summary(
        cdnow.sample(), calibration_end=CDNOW_CALIBRATION_END, holdout_end=CDNOW_HOLDOUT_END
    )


@pytest.fixture(scope="module")
def sample_fit(cdnow_sample_summary):
    bg = BetaGeoModel(method="laplace").fit(cdnow_sample_summary)
    gg = GammaGammaModel(method="laplace").fit(cdnow_sample_summary)
    return bg, gg


# ---------------------------------------------------------------------------------------------
# exactness
# ---------------------------------------------------------------------------------------------


def _bgnbd_reference(r, alpha, a, b, x, tx, T):
    """FHL (2005) eq. 6 written with Beta functions as printed, in scipy."""
    log_g = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    first = special.betaln(a, b + x) - special.betaln(a, b) + log_g - (r + x) * np.log(alpha + T)
    with np.errstate(invalid="ignore"):
        second = (
            special.betaln(a + 1, b + x - 1)
            - special.betaln(a, b)
            + log_g
            - (r + x) * np.log(alpha + tx)
        )
    return np.where(x > 0, np.logaddexp(first, np.where(x > 0, second, -np.inf)), first)


def test_bgnbd_loglik_equals_closed_form_reference():
    rng = np.random.default_rng(0)
    n = 400
    T = rng.uniform(1, 80, n)
    x = rng.poisson(rng.uniform(0, 15, n)).astype(float)
    tx = np.where(x > 0, T * rng.uniform(0.01, 1, n), 0.0)
    for _ in range(5):
        p = {k: float(rng.uniform(0.05, 8)) for k in ("r", "alpha", "a", "b")}
        summary = pd.DataFrame({"frequency": x, "recency": tx, "T": T})
        ours = bgnbd_loglik(p, summary)
        ref = _bgnbd_reference(p["r"], p["alpha"], p["a"], p["b"], x, tx, T)
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)


def test_bgnbd_likelihood_is_a_distribution_over_histories():
    """Summed over every (x, t_x) a customer of age T can show, the likelihood integrates to 1."""
    r, alpha, a, b, T = 0.8, 3.0, 1.3, 2.0, 6.0
    grid = pd.DataFrame({"frequency": [0.0], "recency": [0.0], "T": [T]})
    total = float(np.exp(bgnbd_loglik(dict(r=r, alpha=alpha, a=a, b=b), grid))[0])
    for k in range(1, 60):
        # density in t_x of the k-th purchase time, integrated over (0, T)
        def f(t, k=k):
            row = pd.DataFrame({"frequency": [float(k)], "recency": [t], "T": [T]})
            return float(np.exp(bgnbd_loglik(dict(r=r, alpha=alpha, a=a, b=b), row))[0])

        # the joint of (x = k, t_x) carries the Erlang factor t^(k-1)/(k-1)! the likelihood omits
        total += integrate.quad(
            lambda t, f=f, k=k: f(t) * t ** (k - 1) / special.factorial(k - 1), 0, T
        )[0]
    assert total == pytest.approx(1.0, abs=1e-6)


def test_gamma_gamma_density_equals_numerical_mixture():
    """f(mean spend) = integral over nu of x * Gamma(px, nu).pdf(x m) * Gamma(q, gamma).pdf(nu)."""
    import pytensor
    import pytensor.tensor as pt

    args = [pt.dscalar(n) for n in ("p", "q", "gamma", "x", "m")]
    logp = pytensor.function(args, gamma_gamma_logp(*args))
    rng = np.random.default_rng(1)
    for _ in range(6):
        p, q, g = rng.uniform(0.5, 8), rng.uniform(1.2, 6), rng.uniform(2, 30)
        x, m = float(rng.integers(1, 12)), float(rng.uniform(1, 80))
        ours = float(logp(p, q, g, x, m))
        dens = integrate.quad(
            lambda nu, p=p, q=q, g=g, x=x, m=m: (
                x
                * stats.gamma.pdf(x * m, p * x, scale=1 / nu)
                * stats.gamma.pdf(nu, q, scale=1 / g)
            ),
            0,
            np.inf,
            limit=400,
            epsabs=0.0,
            epsrel=1e-12,
        )[0]
        assert ours == pytest.approx(np.log(dens), abs=1e-8)


@pytest.mark.parametrize("a", [0.4, 0.793, 2.7])
def test_expected_purchases_equals_quadrature(a):
    """FHL eq. 10 (hypergeometric) == P(alive) * E_p[(1 - (alpha'/(alpha' + p t))^r') / p]."""
    r, alpha, b = 0.243, 4.414, 2.426
    for x, tx, T, t in [(0, 0, 30, 39), (2, 10, 35, 39), (5, 30, 32, 52), (1, 1, 38, 10)]:
        pa = bgnbd_p_alive(r, alpha, a, b, x, tx, T)
        integrand = lambda p, x=x, T=T, t=t: (  # noqa: E731
            (1 - ((alpha + T) / (alpha + T + p * t)) ** (r + x)) / p * stats.beta.pdf(p, a, b + x)
        )
        ref = pa * integrate.quad(integrand, 0, 1, limit=200)[0]
        ours = float(bgnbd_expected_purchases(t, r, alpha, a, b, x, tx, T))
        assert ours == pytest.approx(ref, rel=1e-7)


def test_expected_purchases_matches_fader_hardie_worked_example():
    # Fader & Hardie's BG/NBD Excel note: customer 1 of the CDNOW sample (x=2, t_x=30.43,
    # T=38.86) at the published MLEs is expected to make 1.226 purchases in the next 39 weeks.
    assert float(
        bgnbd_expected_purchases(39, 0.2425945, 4.4136019, 0.7929199, 2.4258881, 2, 30.43, 38.86)
    ) == pytest.approx(1.226, abs=5e-4)


# ---------------------------------------------------------------------------------------------
# CDNOW
# ---------------------------------------------------------------------------------------------


def test_rfm_summary_reproduces_the_authors_cdnow_summary(cdnow_sample_summary):
    ref = load_cdnow_reference_summary()  # x, t_x, T, zbar as published (2 decimals)
    ids = cdnow_sample_id_map()
    mine = cdnow_sample_summary.loc[ids.to_numpy()]
    assert len(mine) == len(ref) == 2357
    np.testing.assert_array_equal(mine["frequency"].to_numpy(), ref["x"].to_numpy())
    np.testing.assert_allclose(mine["recency"].to_numpy(), ref["t_x"].to_numpy(), atol=0.005)
    np.testing.assert_allclose(mine["T"].to_numpy(), ref["T"].to_numpy(), atol=0.005)
    np.testing.assert_allclose(
        mine["monetary_value"].to_numpy(), ref["zbar"].to_numpy(), atol=0.0051
    )


def test_cdnow_maximum_likelihood_equals_published(cdnow_sample_summary):
    """Our likelihood, maximised, gives FHL's estimates and log-likelihood (-9582.4)."""
    mle = BetaGeoModel.max_likelihood(cdnow_sample_summary)
    for k, v in PUB.items():
        assert mle[k] == pytest.approx(v, abs=6e-4), k
    assert mle["loglik"] == pytest.approx(-9582.43, abs=0.01)
    gg = GammaGammaModel.max_likelihood(cdnow_sample_summary)
    for k, v in CDNOW_PUBLISHED_GAMMA_GAMMA.items():
        assert gg[k] == pytest.approx(v, abs=6e-3), k
    assert gg["loglik"] == pytest.approx(-4055.92, abs=0.01)


def test_cdnow_posterior_near_published_and_holdout(sample_fit, cdnow_sample_summary):
    bg, gg = sample_fit
    post = bg.param_summary(hdi_prob=0.94)
    rel = {k: abs(post.loc[k, "mean"] / v - 1) for k, v in PUB.items()}
    z = {k: abs(post.loc[k, "mean"] - v) / post.loc[k, "sd"] for k, v in PUB.items()}
    # measured: r 0.1%, alpha 0.7%, a 0.9%, b 2.2% (posterior mean vs MLE); all z < 0.1
    assert max(rel.values()) < 0.05, rel
    assert max(z.values()) < 0.25, z
    for k, v in PUB.items():
        assert post.loc[k, "hdi_low"] < v < post.loc[k, "hdi_high"]

    s = cdnow_sample_summary
    pred = bg.expected_purchases(s, 39, n_draws=200).mean("sample").to_numpy()
    actual = s["frequency_holdout"].to_numpy()
    err = pred.sum() / actual.sum() - 1
    # measured: 1,658 predicted vs 1,882 actual repeat purchases in weeks 40-78 (-11.9%)
    assert -0.2 < err < 0.0
    # by calibration frequency (FHL Fig. 4): both rise with x and each group is within 0.5
    groups = np.minimum(s["frequency"].to_numpy(), 7)
    by = pd.DataFrame({"pred": pred, "actual": actual}).groupby(groups).mean()
    assert by["pred"].is_monotonic_increasing and by["actual"].is_monotonic_increasing
    assert (by["pred"] - by["actual"]).abs().max() < 0.5
    assert np.corrcoef(pred, actual)[0, 1] > 0.5

    spend = gg.param_summary()
    for k, v in CDNOW_PUBLISHED_GAMMA_GAMMA.items():
        assert spend.loc[k, "hdi_low"] < v < spend.loc[k, "hdi_high"], k


@pytest.mark.slow
def test_cdnow_full_nuts(cdnow):
    """All 23,570 customers with NUTS: near the sample's published values (within 2 sample SEs)."""
    from uplift.models import SamplerSettings

    s = rfm_summary(
        cdnow.transactions, calibration_end=CDNOW_CALIBRATION_END, holdout_end=CDNOW_HOLDOUT_END
    )
    bg = BetaGeoModel(sampler=SamplerSettings(draws=500, tune=500, chains=2, seed=5)).fit(s)
    d = bg.diagnostics()
    assert d.divergences == 0 and d.r_hat_max < 1.02
    post = bg.param_summary()
    # sample (n=2,357) standard errors of the published MLEs, from its posterior sds
    se = {"r": 0.0125, "alpha": 0.38, "a": 0.19, "b": 0.72}
    for k, v in PUB.items():
        assert abs(post.loc[k, "mean"] - v) < 2 * se[k], (k, post.loc[k, "mean"])
    pred = float(bg.expected_purchases(s, 39, n_draws=200).mean("sample").sum())
    assert -0.2 < pred / s["frequency_holdout"].sum() - 1 < 0.0


# ---------------------------------------------------------------------------------------------
# synthetic recovery
# ---------------------------------------------------------------------------------------------

TRUTH = {"r": 0.5, "alpha": 6.0, "a": 0.8, "b": 2.5}


def test_recovers_known_bgnbd_parameters():
    s = simulate_bgnbd(4000, **TRUTH, T=(26.0, 52.0), holdout=39.0, seed=11)
    bg = BetaGeoModel(method="laplace").fit(s)
    post = bg.param_summary(hdi_prob=0.99)
    for k, v in TRUTH.items():
        assert post.loc[k, "hdi_low"] < v < post.loc[k, "hdi_high"], (k, post.loc[k].to_dict())
        assert abs(post.loc[k, "mean"] - v) / post.loc[k, "sd"] < 3
    # P(alive) and holdout purchases agree with the simulated latent truth
    pa = bg.probability_alive(s, n_draws=100).mean("sample").to_numpy()
    assert pa.sum() == pytest.approx(s["alive"].sum(), rel=0.03)
    pred = bg.expected_purchases(s, 39.0, n_draws=100).mean("sample").to_numpy()
    assert pred.sum() == pytest.approx(s["frequency_holdout"].sum(), rel=0.08)


@pytest.mark.slow
def test_recovery_coverage_nuts_over_seeds():
    from uplift.models import SamplerSettings

    hits = []
    for seed in range(6):
        s = simulate_bgnbd(3000, **TRUTH, seed=100 + seed)
        bg = BetaGeoModel(sampler=SamplerSettings(draws=400, tune=400, chains=2, seed=seed)).fit(s)
        post = bg.param_summary(hdi_prob=0.9)
        hits += [post.loc[k, "hdi_low"] < v < post.loc[k, "hdi_high"] for k, v in TRUTH.items()]
    assert np.mean(hits) >= 0.75


# ---------------------------------------------------------------------------------------------
# CLV, persistence, optimizer adapter, tiers
# ---------------------------------------------------------------------------------------------


def test_customer_value_and_save_load(sample_fit, cdnow_sample_summary, tmp_path):
    bg, gg = sample_fit
    s = cdnow_sample_summary
    base = customer_value(
        bg, gg, s, ClvSettings(horizon=52, discount_rate=0.0, margin=0.3, n_draws=50)
    )
    assert set(base["clv"].dims) == {"sample", "customer"} and base.sizes["customer"] == len(s)
    clv = base["clv"].mean("sample").to_numpy()
    assert np.all(clv >= 0) and np.isfinite(clv).all()
    # clv = margin * spend * purchases when nothing is discounted; p_alive * clv_if_alive = clv
    np.testing.assert_allclose(
        base["clv"].values,
        0.3 * base["expected_spend"].values * base["expected_purchases"].values,
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        base["clv"].values, base["p_alive"].values * base["clv_if_alive"].values, rtol=1e-12
    )
    disc = customer_value(bg, gg, s, ClvSettings(horizon=52, discount_rate=0.15, n_draws=50))
    assert np.all(disc["clv"].values <= base["clv"].values + 1e-12)
    days = customer_value(
        bg, gg, s, ClvSettings(horizon=364, time_unit="days", discount_rate=0.0, n_draws=50)
    )
    np.testing.assert_allclose(days["clv"].values, base["clv"].values, rtol=1e-9)
    # more past purchases -> more expected future purchases, all else equal
    ey = bg.expected_purchases(
        pd.DataFrame({"frequency": [1, 5], "recency": [30.0, 30.0], "T": [35.0, 35.0]}), 39
    )
    assert (ey.sel(customer=1) > ey.sel(customer=0)).all()

    for model in (bg, gg):
        path = model.save(tmp_path / f"{model.family}.nc")
        again = type(model).load(path)
        pd.testing.assert_frame_equal(again.params(), model.params())
    with pytest.raises(ValueError, match="gamma_gamma"):
        BetaGeoModel.load(tmp_path / "gamma_gamma.nc")
    again = BetaGeoModel.load(tmp_path / "bgnbd.nc")
    np.testing.assert_allclose(
        again.expected_purchases(s, 39, n_draws=20).values,
        bg.expected_purchases(s, 39, n_draws=20).values,
    )


def test_clv_segment_value_for_the_optimizer(sample_fit, cdnow_sample_summary):
    bg, _ = sample_fit
    s = cdnow_sample_summary
    ds = customer_value(bg, 30.0, s, ClvSettings(n_draws=40))
    segments = pd.Series(np.where(s["frequency"] > 0, "repeat", "one_time"), index=s.index)
    value: SegmentValue = ClvValue.from_draws(ds["clv"], segments)  # what the optimizer takes
    cells = pd.DataFrame({"segment": ["repeat", "one_time", "new_segment"], "n": [1, 1, 1]})
    v = value.per_conversion(cells)
    assert list(v.index) == ["new_segment", "one_time", "repeat"]
    assert v["repeat"] > v["one_time"] > 0
    assert v.attrs["fallback_segments"] == ["new_segment"]
    means = ds["clv"].mean("sample").to_series()
    assert v["repeat"] == pytest.approx(means[segments == "repeat"].mean(), rel=1e-9)
    with pytest.raises(ValueError, match="segment labels"):
        value.per_conversion(pd.DataFrame({"segment": ["x/y"]}))


def test_tiers_rules_and_retention(sample_fit, cdnow_sample_summary):
    bg, gg = sample_fit
    s = cdnow_sample_summary
    ds = customer_value(bg, gg, s, ClvSettings(n_draws=60))
    segments = pd.Series(np.where(s["frequency"] > 1, "loyal", "casual"), index=s.index)
    uplift = pd.DataFrame(
        {
            "tactic": ["cross_sell", "retention", "cross_sell", "retention"],
            "segment": ["loyal", "loyal", "casual", "casual"],
            "metric": "profit_per_treated",
            "mean": [4.0, 9.0, -1.0, -0.5],
        }
    )
    inc = incremental_from_uplift_table(uplift)
    rules = ClassificationRules(shed_below=1.0, shed_probability=0.9, grow_min_upside=2.0)
    t = value_table(ds, incremental=inc, segments=segments, tiers=TierSpec(), rules=rules)
    assert len(t) == len(s)
    shares = t["tier"].value_counts(normalize=True)
    assert shares["top"] == pytest.approx(0.05, abs=0.01) and shares["low"] == pytest.approx(
        0.5, abs=0.01
    )
    loyal = t["segment"] == "loyal"
    assert (t.loc[loyal, "best_tactic"] == "retention").all()
    assert (t.loc[~loyal, "best_tactic"] == "none").all()
    np.testing.assert_allclose(t["strategic_value"], t["actual_value"] + t["incremental_value"])
    assert (t.loc[~loyal & (t["actual_value"] < 0.5), "action"] == "shed").all()
    assert set(t.loc[loyal, "action"]) <= {"grow", "keep"}
    assert (t["retention_worth_hdi_low"] <= t["retention_worth"] + 1e-12).all()
    one_timers = s["frequency"].to_numpy() == 0  # BG/NBD: P(alive) = 1 without repeats
    assert np.allclose(t.loc[one_timers, "p_churn"], 0) and np.allclose(
        t.loc[one_timers, "retention_worth"], 0
    )
    assert (t.loc[~one_timers, "retention_worth"] > 0).all()

    w = retention_worth(np.full((4, 2), 0.25), np.array([[8.0, 4.0]] * 4))
    np.testing.assert_allclose(w["mean"], [2.0, 1.0])

    tiers = assign_tiers(pd.Series(np.arange(100.0)), TierSpec((0.5,), ("lo", "hi")))
    assert tiers.value_counts()["hi"] == 50
    with pytest.raises(ValueError, match="one more label"):
        TierSpec((0.5, 0.9), ("a", "b"))
    with pytest.raises(ValueError, match="increasing"):
        TierSpec((0.9, 0.5), ("a", "b", "c"))
    with pytest.raises(ValueError, match="unknown tier"):
        value_table(ds, rules=ClassificationRules(shed_tiers=("bronze",)))


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


def _tx(**over):
    df = pd.DataFrame(
        {
            "cust": [1, 1, 2, 3],
            "day": ["2024-01-03", "2024-02-10", "2024-01-20", "2024-03-01"],
            "spend": [10.0, 12.5, 7.0, 3.0],
        }
    )
    for k, v in over.items():
        df[k] = v
    return df


COLS = TransactionColumns(customer_id="cust", date="day", amount="spend")


def test_bad_input_errors_name_the_column_value_and_fix():
    ok = rfm_summary(_tx(), columns=COLS, calibration_end="2024-03-31", time_unit="days")
    assert ok.loc[1, "frequency"] == 1 and ok.loc[1, "recency"] == 38 and ok.loc[1, "T"] == 88

    with pytest.raises(DataValidationError, match=r"'day'.*'03/15/2024 oops'.*date_format"):
        rfm_summary(
            _tx(day=["2024-01-03", "03/15/2024 oops", "2024-01-20", "2024-03-01"]), columns=COLS
        )
    with pytest.raises(DataValidationError, match=r"'spend'.*negative.*-5.0.*returns"):
        rfm_summary(_tx(spend=[10.0, -5.0, 7.0, 3.0]), columns=COLS)
    with pytest.raises(DataValidationError, match=r"customer.*no transaction.*99.*remove them"):
        rfm_summary(_tx(), columns=COLS, customers=[1, 2, 3, 99])
    with pytest.raises(DataValidationError, match=r"'spend'.*non-numeric.*'12,50 EUR'"):
        rfm_summary(_tx(spend=[10.0, "12,50 EUR", 7.0, 3.0]), columns=COLS)
    with pytest.raises(DataValidationError, match=r"'amount'.*not in the data.*TransactionColumns"):
        rfm_summary(_tx())
    with pytest.raises(DataValidationError, match=r"numeric and not YYYYMMDD.*1704240000"):
        rfm_summary(_tx(day=[1704240000, 1704240000, 1704240000, 1704240000]), columns=COLS)
    with pytest.raises(DataValidationError, match=r"'day'.*missing"):
        rfm_summary(_tx(day=["2024-01-03", None, "2024-01-20", "2024-03-01"]), columns=COLS)
    with pytest.raises(DataValidationError, match="before the first transaction"):
        rfm_summary(_tx(), columns=COLS, calibration_end="2023-01-01")
    with pytest.raises(ValueError, match="time_unit"):
        rfm_summary(_tx(), columns=COLS, time_unit="months")
    # a customer whose only purchases are after calibration is flagged when listed
    with pytest.raises(DataValidationError, match="only buy later"):
        rfm_summary(_tx(), columns=COLS, calibration_end="2024-02-15", customers=[1, 2, 3])
    # YYYYMMDD integers (the CDNOW convention) parse
    ymd = rfm_summary(_tx(day=[20240103, 20240210, 20240120, 20240301]), columns=COLS)
    pd.testing.assert_frame_equal(ymd, rfm_summary(_tx(), columns=COLS))
    # summaries that would silently corrupt the likelihood are refused
    with pytest.raises(DataValidationError, match="recency > T"):
        BetaGeoModel.max_likelihood(pd.DataFrame({"frequency": [1], "recency": [5.0], "T": [3.0]}))
