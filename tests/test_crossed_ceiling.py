"""bench/crossed_ceiling.py: the known-prior estimator its README figures rest on."""

from __future__ import annotations

import numpy as np
import pytest

from bench_modules import load_bench


@pytest.fixture(scope="module")
def ceiling():
    """The benchmark as a module (it puts bench/ on the path for crossed_decisions itself)."""
    return load_bench("crossed_ceiling")


def test_prior_covariance_counts_shared_levels_and_pairs(ceiling) -> None:
    levels = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 1], [1, 1, 1]])
    cov = ceiling.prior_covariance(levels, main_sd=1.0, pair_sd=10.0, cell_sd=100.0)
    # cells 0 and 1 share two levels (tier, region) and one pair (tier x region)
    assert cov[0, 1] == pytest.approx(2 * 1.0 + 1 * 100.0)
    # cells 1 and 2 share tier and channel, and the tier x channel pair
    assert cov[1, 2] == pytest.approx(2 * 1.0 + 100.0)
    assert cov[0, 3] == 0.0  # nothing shared
    assert cov[2, 2] == pytest.approx(3 * 1.0 + 3 * 100.0 + 100.0**2)
    assert np.all(np.linalg.eigvalsh(cov) > 0)


def test_gaussian_posterior_mean_is_the_regression_of_effects_on_data(ceiling) -> None:
    """Under its own prior the conditional mean is the best predictor: simulated (e, d) pairs
    regressed by least squares give the same predictions (and a lower error than d itself)."""
    rng = np.random.default_rng(7)
    levels = np.array([[t, r, c] for t in range(2) for r in range(2) for c in range(2)])
    cov = ceiling.prior_covariance(levels, 0.3, 0.2, 0.1)
    mean = np.linspace(-0.2, 0.2, len(levels))
    noise = rng.uniform(0.02, 0.2, len(levels))
    n = 200_000
    e = rng.multivariate_normal(mean, cov, size=n)
    d = e + rng.normal(0.0, np.sqrt(noise), size=e.shape)
    post = np.array([ceiling.gaussian_posterior_mean(row, noise, mean, cov) for row in d[:2000]])
    X = np.column_stack([np.ones(n), d])
    beta, *_ = np.linalg.lstsq(X, e, rcond=None)
    fitted = X[:2000] @ beta
    assert np.max(np.abs(post - fitted)) < 0.02
    assert np.mean((post - e[:2000]) ** 2) < 0.7 * np.mean((d[:2000] - e[:2000]) ** 2)


def test_knowing_the_profile_is_worth_more_than_knowing_the_sds(ceiling) -> None:
    """On one generated seed the cell uplift errors order as the information each estimator is
    given: the generator's prior (profile and SDs) < its SDs alone (the columns' main effects
    learnt) < the raw difference in means."""
    customers, truth = ceiling.cd.generate_crossed(3, 200_000, margin=0.4)
    est = ceiling.uplift_estimates(customers, truth, ceiling.cd.deviation_sds())
    true = truth["true_uplift"].to_numpy(float)
    rmse = {k: float(np.sqrt(np.nanmean((v - true) ** 2))) for k, v in est.items()}
    assert rmse["known_prior"] < rmse["known_sds"] < rmse["dim"], rmse
