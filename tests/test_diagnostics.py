"""The convergence gate's r-hat and ESS (uplift.models.diagnostics, batched over every scalar of
a posterior) are ArviZ's: the same numbers as ``az.rhat`` / ``az.ess`` on chains that mix well,
mix badly, stick, tie, take two values or never move."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr
from arviz_base import rcParams
from arviz_stats.base import array_stats

from uplift.models.diagnostics import compute_diagnostics, rank_diagnostics


def _chains(rng: np.random.Generator, kind: int, chains: int, draws: int) -> np.ndarray:
    x = rng.standard_normal((chains, draws))
    if kind == 0:  # two values (a conversion indicator)
        return (x > rng.normal() * 2).astype(float)
    if kind == 1:  # heavy ties (rounded draws)
        return np.round(x * rng.uniform(0.2, 3))
    if kind == 2:  # random walks: chains that never mix
        return np.cumsum(x, axis=1)
    if kind == 3:  # one chain stuck elsewhere
        x[0] += 4.0
        return x
    if kind == 4:  # strongly autocorrelated AR(1)
        phi = rng.choice([0.9, 0.99, -0.6])
        for t in range(1, draws):
            x[:, t] += phi * x[:, t - 1]
        return x
    if kind == 5:  # never moves
        return np.full((chains, draws), 2.5)
    return x


def _arviz(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = (
            array_stats.rhat(x, chain_axis=1, draw_axis=2)
            if x.shape[1] >= 2
            else np.full(len(x), np.nan)
        )
        bulk = array_stats.ess(x, chain_axis=1, draw_axis=2, method="bulk")
        p = rcParams["stats.ci_prob"]  # az.ess's tail quantiles: 1 - p and p
        tail = array_stats.ess(x, chain_axis=1, draw_axis=2, method="tail", prob=(1 - p, p))
    return rhat, bulk, tail


def test_every_statistic_equals_arviz_on_hostile_chains():
    rng = np.random.default_rng(20261204)
    for trial in range(240):
        chains, draws = int(rng.integers(1, 5)), int(rng.integers(4, 260))
        x = np.stack([_chains(rng, kind, chains, draws) for kind in range(7)])
        ours, theirs = rank_diagnostics(x), _arviz(x)
        for name, a, b in zip(("r-hat", "bulk ESS", "tail ESS"), ours, theirs, strict=True):
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{name} {trial}")
            np.testing.assert_allclose(a, b, rtol=1e-9, err_msg=f"{name} {trial}")


def test_nan_draws_and_short_chains_give_nan_as_arviz_does():
    x = np.random.default_rng(1).standard_normal((2, 3, 50))
    x[0, 1, 7] = np.nan
    rhat, bulk, tail = rank_diagnostics(x)
    assert np.isnan([rhat[0], bulk[0], tail[0]]).all()
    assert np.isfinite([rhat[1], bulk[1], tail[1]]).all()
    assert np.isnan(rank_diagnostics(x[:, :, :3])).all()  # fewer than 4 draws


def test_a_posterior_is_judged_as_arviz_judges_it():
    """Variables of several shapes and dtypes, one of them stuck in one chain: the worst
    r-hat and smallest ESS over all of them, as ``az.rhat`` / ``az.ess`` find them."""
    rng = np.random.default_rng(3)
    chains, draws = 4, 300
    stuck = rng.standard_normal((chains, draws, 3))
    stuck[1, :, 2] += 1.5
    walk = np.cumsum(rng.standard_normal((chains, draws)), axis=1) * 0.02
    post = xr.Dataset(
        {
            "mu": (("chain", "draw"), rng.standard_normal((chains, draws)) + walk),
            "effect": (("chain", "draw", "arm", "segment"), rng.standard_normal((4, 300, 2, 5))),
            "stuck": (("chain", "draw", "cell"), stuck),
            "count": (("chain", "draw"), rng.poisson(3.0, (chains, draws))),
        }
    )
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, draws), bool))})
    tree = xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})
    d = compute_diagnostics(tree)
    rhat = az.rhat(tree)
    bulk, tail = az.ess(tree, method="bulk"), az.ess(tree, method="tail")
    assert d.r_hat_max == pytest.approx(max(float(rhat[v].max()) for v in post), rel=1e-12)
    assert d.ess_bulk_min == pytest.approx(min(float(bulk[v].min()) for v in post), rel=1e-12)
    assert d.ess_tail_min == pytest.approx(min(float(tail[v].min()) for v in post), rel=1e-12)
    assert d.r_hat_max > 1.05  # the stuck chain is what the gate sees
    names = ["mu", "count"]
    part = compute_diagnostics(tree, var_names=names)
    part_rhat = az.rhat(tree, var_names=names)
    assert part.r_hat_max == pytest.approx(max(float(part_rhat[v].max()) for v in names))
