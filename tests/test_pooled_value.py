"""The observed value per conversion, pooled along the segment columns (uplift.value.pooled_value).

Exact answers (the intercept-only moment estimator is DerSimonian-Laird's formula), the limits (no noise -> the raw means; pool=false -> the raw means) and, on two
independent simulated designs, that pooling lowers the error of the value where the columns
explain the segments and does not raise it where they do not.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from uplift.value.per_conversion import ObservedValue
from uplift.value.pooled_value import moment_tau2, pool_log_means


def _cells(rng, seg_mean: dict[tuple[str, ...], float], converters, log_sd: float, dims):
    """One row per segment (a single arm is enough: values pool all arms) with lognormal
    revenue of mean ``seg_mean`` among ``converters`` buyers."""
    rows = []
    for key, m in seg_mean.items():
        n = int(converters(key))
        mu = np.log(m) - log_sd**2 / 2
        r = rng.lognormal(mu, log_sd, n)
        rows.append(
            {"segment": "/".join(key), "arm": "a", "n": 10 * max(n, 1), "conversions": n}
            | {"revenue_sum": r.sum(), "revenue_sq_sum": (r**2).sum()}
            | dict(zip(dims, key, strict=True))
        )
    return pd.DataFrame(rows)


def test_intercept_only_tau2_is_dersimonian_laird():
    """The textbook DerSimonian-Laird formula, written out: Q about the fixed-effect mean."""
    rng = np.random.default_rng(3)
    y = rng.normal(0.0, 0.3, 12)
    v = rng.uniform(0.01, 0.2, 12)
    w = 1 / v
    q = np.sum(w * (y - np.sum(w * y) / w.sum()) ** 2)
    dl = max(0.0, (q - 11) / (w.sum() - np.sum(w**2) / w.sum()))
    assert dl > 0
    assert moment_tau2(y, v, np.ones((12, 1))) == pytest.approx(dl, rel=1e-10)


def test_pool_false_and_noise_free_data_give_the_raw_means():
    rng = np.random.default_rng(5)
    dims = ("tier", "region")
    truth = {k: 50.0 + 40 * i for i, k in enumerate(itertools.product("ab", "xyz"))}
    cells = _cells(rng, truth, lambda k: 400, 0.8, dims)
    raw = 0.4 * (cells["revenue_sum"] / cells["conversions"]).to_numpy()
    got = ObservedValue(0.4, pool=False, dims=dims).per_conversion(cells).to_numpy()
    np.testing.assert_allclose(got, raw)
    # with every buyer spending the same, each mean is exact (v -> 0): nothing is shrunk
    exact = _cells(rng, truth, lambda k: 400, 1e-6, dims)
    pooled = ObservedValue(0.4, dims=dims).per_conversion(exact).to_numpy()
    np.testing.assert_allclose(pooled, 0.4 * np.array(list(truth.values())), rtol=1e-4)


def test_a_segment_without_converters_gets_its_columns_prediction():
    rng = np.random.default_rng(11)
    dims = ("tier", "channel")
    tier = {"hi": 300.0, "mid": 120.0, "lo": 50.0}
    chan = {"web": 1.0, "store": 1.2, "app": 0.9}
    truth = {(t, c): tier[t] * chan[c] for t, c in itertools.product(tier, chan)}
    cells = _cells(rng, truth, lambda k: 0 if k == ("hi", "app") else 300, 0.8, dims)
    v = ObservedValue(0.4, dims=dims).per_conversion(cells)
    # the overall mean would be ~60; the columns predict the high tier's level
    assert v["hi/app"] == pytest.approx(0.4 * truth[("hi", "app")], rel=0.15)


def _relative_errors(truth_fn, seeds, dims, levels, converters, log_sd=0.8):
    raw_err, pooled_err = [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        truth = {k: truth_fn(k, rng) for k in itertools.product(*levels)}
        cells = _cells(rng, truth, lambda k, r=rng: converters(k, r), log_sd, dims)
        t = pd.Series({"/".join(k): 0.4 * m for k, m in truth.items()})
        raw = ObservedValue(0.4, pool=False, dims=dims).per_conversion(cells).reindex(t.index)
        pooled = ObservedValue(0.4, dims=dims).per_conversion(cells).reindex(t.index)
        raw_err.append(np.mean((raw / t - 1) ** 2))
        pooled_err.append(np.mean((pooled / t - 1) ** 2))
    return float(np.mean(raw_err)), float(np.mean(pooled_err))


def test_pooling_halves_the_value_error_when_the_columns_explain_the_segments():
    """Additive log means over three crossed columns, 20-400 converters per segment."""
    tier = {"hi": np.log(300), "mid": np.log(120), "lo": np.log(55)}
    region = {"n": 0.05, "s": -0.05, "e": 0.0, "w": 0.1}
    chan = {"web": 0.0, "store": 0.1, "app": -0.1}

    def truth(k, rng):
        return float(np.exp(tier[k[0]] + region[k[1]] + chan[k[2]]))

    raw, pooled = _relative_errors(
        truth,
        range(40),
        ("tier", "region", "channel"),
        (tier, region, chan),
        lambda k, rng: rng.integers(20, 400),
    )
    assert pooled < 0.5 * raw, (raw, pooled)


def test_pooling_does_not_hurt_when_the_columns_explain_little():
    """An independent design: two columns whose levels do not add up (every segment its own
    mean, drawn at random, spread 0.5 on the log scale), gamma-like lognormal sd 1.2, 5-60
    converters per segment. The moment estimate of tau^2 keeps the segments apart."""

    def truth(k, rng):
        return float(np.exp(rng.normal(np.log(80), 0.5)))

    raw, pooled = _relative_errors(
        truth,
        range(40),
        ("size", "region"),
        ("SML", "abcde"),
        lambda k, rng: rng.integers(5, 60),
        log_sd=1.2,
    )
    assert pooled <= raw, (raw, pooled)


def test_too_few_segments_keep_the_raw_means():
    s = pd.Series([100.0, 300.0], index=["a", "b"])
    assert pool_log_means(s, s * 200, pd.Series([2, 3], index=["a", "b"])) is None
