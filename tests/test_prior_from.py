"""``model.prior_from``: an earlier run's posterior as the next fit's prior (uplift.models.carry,
uplift.app.prior_from).

Fast tier: the wiring on conftest's finished fake-sampler run (the prior reaches the model, the
fit cache keys on it, a saved carried posterior loads back) and every named refusal, each before
any sampling (``no_sampling``). The statistical claim, two half waves in sequence == one full
wave, is the slow test at the end, with real NUTS.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import uplift
from conftest import FINISHED_RUN
from uplift.app.prior_from import PriorFromError
from uplift.models import load_model
from uplift.models.carry import CarriedPrior, CarriedPriorError


def config(*extra: str):
    return uplift.compose_config([*FINISHED_RUN, *extra])


def copy_run(finished: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "earlier"
    shutil.copytree(finished, dst)
    return dst


# ---- the moment match ------------------------------------------------------------------------


def posterior(draws: np.ndarray, segments: list[str], arms: list[str]) -> xr.Dataset:
    """A posterior dataset holding ``draws`` (sample, 1 + arms, segment) as cell logits."""
    n = draws.shape[0]
    s = draws.reshape(1, n, 1 + len(arms), len(segments))
    return xr.Dataset(
        {
            "baseline_logit": (("chain", "draw", "segment"), s[:, :, 0]),
            "effect_logit": (("chain", "draw", "arm", "segment"), s[:, :, 1:]),
        },
        coords={"segment": segments, "arm": arms},
    )


def test_moments_and_order_are_carried_exactly():
    """Mean and covariance of the draws, reordered to the next model's labels and inflated by
    the forgetting factor."""
    rng = np.random.default_rng(0)
    cov = np.array([[1.0, -0.5, 0.2], [-0.5, 1.0, 0.1], [0.2, 0.1, 0.5]])
    x = rng.multivariate_normal([0.0, 1.0, 2.0, 3.0, 4.0, 5.0][:3], cov, size=4000)
    x = np.concatenate([x, x[:, :1] * 0.3 + rng.normal(size=(4000, 1))], axis=1)  # 1 + 1 arm, 2 seg
    prior = CarriedPrior.from_posterior(posterior(x, ["b", "a"], ["t"]), 2.0, "mem")
    np.testing.assert_allclose(prior.mean, x.mean(axis=0))
    np.testing.assert_allclose(prior.chol @ prior.chol.T, np.cov(x, rowvar=False), atol=1e-9)
    mean, chol = prior.aligned(["a", "b"], ["t"])  # swap the segments
    order = [1, 0, 3, 2]
    np.testing.assert_allclose(mean, x.mean(axis=0)[order])
    np.testing.assert_allclose(chol @ chol.T, 2.0 * np.cov(x, rowvar=False)[np.ix_(order, order)])


def test_too_few_draws_and_bad_forget_are_named():
    x = np.random.default_rng(1).normal(size=(10, 6))
    with pytest.raises(CarriedPriorError, match="too few to estimate"):
        CarriedPrior.from_posterior(posterior(x, ["a", "b"], ["t1", "t2"]), 1.0, "mem")
    with pytest.raises(CarriedPriorError, match="prior_forget"):
        CarriedPrior.from_posterior(posterior(x, ["a", "b"], ["t1", "t2"]), 0.5, "mem")
    with pytest.raises(ValueError, match="model.prior_forget must be a finite number >= 1"):
        config("model.prior_forget=0.5")


# ---- the wiring ------------------------------------------------------------------------------


def test_carried_fit_saves_and_loads_back(finished, tmp_path, fake_sampler):
    """One tactic's model built by the pipeline carries the earlier posterior; its saved fit
    names the source and rebuilds its graph from it."""
    from uplift.pipeline import build_model, prepare

    cfg = config(f"model.prior_from={finished}")
    prep = prepare(cfg, tmp_path)
    model = build_model(cfg, "cross_sell", prep.data, prep.cells).fit(prep.cells, "cross_sell")
    meta = model.model_config()["prior_from"]
    assert Path(meta["source"]) == (finished / "posterior_cross_sell.nc").resolve()
    assert meta["forget"] == 1.25 and meta["parameters"] == 24  # 12 segments x (1 + 1 arm)
    assert "carried_z" in model.idata["posterior"]
    assert "effect_sigma" not in model.idata["posterior"]  # the hierarchy is carried
    model.save(tmp_path / "p.nc")
    saved = load_model(tmp_path / "p.nc")
    assert saved.model_config() == model.model_config()
    assert "carried_z" in saved.build_model(prep.cells, "cross_sell").named_vars
    np.testing.assert_allclose(saved.uplift_draws().values, model.uplift_draws().values)


@pytest.mark.slow  # a whole fake-sampler run of six tactics (~20 s)
def test_carried_run_fits_from_the_earlier_posterior(finished, tmp_path, fake_sampler):
    result = uplift.run(config(f"model.prior_from={finished}"), tmp_path / "next")
    assert result.summary["status"] == "complete"
    for tactic, fit in result.fits.items():
        meta = fit.model.model_config()["prior_from"]
        assert Path(meta["source"]) == (finished / f"posterior_{tactic}.nc").resolve()
        assert meta["forget"] == 1.25 and meta["parameters"] == 24  # 12 segments x (1 + 1 arm)
        assert "carried_z" in fit.model.idata["posterior"]
        assert "effect_sigma" not in fit.model.idata["posterior"]  # the hierarchy is carried
    # the saved posterior loads back and rebuilds its graph from the earlier file
    saved = load_model(tmp_path / "next" / "posterior_cross_sell.nc")
    assert (
        saved.model_config()["prior_from"]
        == result.fits["cross_sell"].model.model_config()["prior_from"]
    )
    graph = saved.build_model(result.cells, "cross_sell")
    assert "carried_z" in graph.named_vars
    # the reloaded run re-plans as any other
    assert uplift.load_run(tmp_path / "next").plan().expected_profit > 0


def test_fit_cache_keys_on_the_prior(finished, tmp_path):
    """Another forgetting factor (or no prior) is another fit, not a cache hit of the first; the
    compiled graph is shared across tactics (the prior is data)."""
    from uplift.pipeline import build_model, fit_cache_key, prepare

    prep = prepare(config(), tmp_path)

    def key(*extra: str, tactic: str = "cross_sell") -> tuple[str, str]:
        cfg = config(*extra)
        model = build_model(cfg, tactic, prep.data, prep.cells)
        return fit_cache_key(cfg, tactic, model, prep.cells, "fit"), json.dumps(
            model.compile_config(), sort_keys=True
        )

    one, one_graph = key(f"model.prior_from={finished}", "model.prior_forget=1")
    assert key(f"model.prior_from={finished}", "model.prior_forget=1")[0] == one
    assert key(f"model.prior_from={finished}", "model.prior_forget=3")[0] != one
    assert key()[0] != one
    assert key(f"model.prior_from={finished}", "model.prior_forget=1", tactic="up_sell")[1] == (
        one_graph
    )


# ---- the refusals, all before sampling -------------------------------------------------------


def test_not_a_finished_run(tmp_path, no_sampling):
    with pytest.raises(PriorFromError, match="holds no summary.json"):
        uplift.run(config(f"model.prior_from={tmp_path}"), tmp_path / "out")


def test_unfinished_run(finished, tmp_path, no_sampling):
    earlier = copy_run(finished, tmp_path)
    summary = json.loads((earlier / "summary.json").read_text())
    (earlier / "summary.json").write_text(json.dumps(summary | {"status": "refused"}))
    with pytest.raises(PriorFromError, match="status is 'refused'"):
        uplift.run(config(f"model.prior_from={earlier}"), tmp_path / "out")


def test_other_tactics(finished, tmp_path, no_sampling):
    earlier = copy_run(finished, tmp_path)
    summary = json.loads((earlier / "summary.json").read_text())
    summary["tactics"] = [t for t in summary["tactics"] if t != "referral"]
    (earlier / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(PriorFromError, match=r"new here: \['referral'\]"):
        uplift.run(config(f"model.prior_from={earlier}"), tmp_path / "out")


def test_posteriors_not_saved(finished, tmp_path, no_sampling):
    earlier = copy_run(finished, tmp_path)
    (earlier / "posterior_up_sell.nc").unlink()
    with pytest.raises(PriorFromError, match="no posterior_up_sell.nc.*save_posteriors"):
        uplift.run(config(f"model.prior_from={earlier}"), tmp_path / "out")


def test_other_structure(finished, tmp_path, no_sampling):
    with pytest.raises(
        PriorFromError, match=r"segment_dims: \['value_tier', 'needs'\] there, \[\]"
    ):
        uplift.run(
            config(f"model.prior_from={finished}", "model.pool_by_dimensions=false"),
            tmp_path / "out",
        )


def test_other_segments(finished, tmp_path, no_sampling):
    with pytest.raises(PriorFromError, match=r"on segments .* \(only there: \['high/convenience'"):
        uplift.run(
            config(
                f"model.prior_from={finished}",
                "data.synthetic.value_tiers=[low,mid]",
                "data.synthetic.tier_shares=[0.6,0.4]",
            ),
            tmp_path / "out",
        )


def test_other_arms(finished, tmp_path, no_sampling):
    arms = {
        "control": "{tactic: control, cost: 0.0}",
        "cross_sell_sms": "{tactic: cross_sell, cost: 1.0}",  # renamed
        "upgrade_offer": "{tactic: up_sell, cost: 1.5}",
        "loyalty_points": "{tactic: frequency, cost: 2.5}",
        "discount_10pct": "{tactic: margin, cost: 3.0}",
        "retention_call": "{tactic: retention, cost: 2.0}",
        "referral_bonus": "{tactic: referral, cost: 0.8}",
    }
    overrides = ["tactics=custom", *[f"+tactics.arms.{a}={v}" for a, v in arms.items()]]
    with pytest.raises(
        PriorFromError, match=r"on arms \['cross_sell_email'\].*\['cross_sell_sms'\]"
    ):
        uplift.run(config(f"model.prior_from={finished}", *overrides), tmp_path / "out")


def test_family_that_cannot_carry(finished, tmp_path, no_sampling):
    with pytest.raises(
        PriorFromError, match="family 'negative_binomial'.*families that can: \\['binomial'\\]"
    ):
        uplift.run(
            config(f"model.prior_from={finished}", "+model.families.frequency=negative_binomial"),
            tmp_path / "out",
        )


def test_earlier_run_of_another_family(finished, tmp_path, no_sampling, monkeypatch):
    """The earlier run fit a tactic with another family (its posterior's stamp says so)."""
    from uplift.app import prior_from

    real = prior_from._read

    def stamped(path, forget):
        family, saved, prior = real(path, forget)
        return ("negative_binomial" if "frequency" in str(path) else family), saved, prior

    monkeypatch.setattr(prior_from, "_read", stamped)
    with pytest.raises(
        PriorFromError, match="fit tactic 'frequency' with family 'negative_binomial', this run"
    ):
        uplift.run(config(f"model.prior_from={finished}"), tmp_path / "out")


def test_refusal_is_a_named_cli_error(finished, tmp_path, uplift_cli, no_sampling):
    r = uplift_cli(
        *FINISHED_RUN,
        f"model.prior_from={finished}",
        "model.pool_by_dimensions=false",
        f"hydra.run.dir={tmp_path / 'out'}",
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "model.prior_from" in r.stderr and "segment_dims" in r.stderr


# ---- two half waves in sequence == one full wave (real NUTS) ---------------------------------

HALVES_ARMS = {
    "control": {"tactic": "control", "cost": 0.0},
    "cross_sell_email": {"tactic": "cross_sell", "cost": 1.0},
    "loyalty_points": {"tactic": "frequency", "cost": 2.5},
}
HALVES_RUN = [
    "data=csv",
    "data.columns.segments=[value_tier,needs]",
    "tactics=custom",
    *[
        f"+tactics.arms.{a}={{tactic: {s['tactic']}, cost: {s['cost']}}}"
        for a, s in HALVES_ARMS.items()
    ],
    "+health.expected_split.control=0.25",
    "+health.expected_split.cross_sell_email=0.375",
    "+health.expected_split.loyalty_points=0.375",
    "optimize.budget=4000",
    "optimize.frontier.enabled=false",
    "report.plots=false",
    "evaluate.crossfit_folds=0",
    # both waves and the full fit in one form: auto may centre the full fit's effects (twice the
    # events), and a form change alone moves Monte Carlo noise, not the posterior
    "model.parameterization.effect=non_centered",
    "sampler.cache=false",
    "sampler.draws=1000",
]
#: posterior means of every cell's uplift agree within this many posterior sds of the full fit
#: (the Monte Carlo error of the difference is ~0.04 sd at these draws; the rest of the budget is
#: the Gaussian approximation of wave A's posterior, uplift.models.carry)
MEAN_TOL_SD = 0.35
#: posterior sds agree within this ratio (the sequential fit cannot re-learn the pooling scale:
#: measured 0.81-1.03 at 4 x 2,000 draws)
SD_RATIO = (0.75, 1.25)


@pytest.mark.slow  # three real NUTS runs of two tactics (~2-3 min on 2 busy cores)
def test_two_half_waves_in_sequence_equal_one_full_wave(tmp_path):
    import dataclasses

    from uplift.data.synthetic import generate
    from uplift.tactics import ArmMap

    rows = generate(ArmMap.from_mapping(HALVES_ARMS), n_customers=40_000, seed=4).customers
    half = np.random.default_rng(0).random(len(rows)) < 0.5
    runs = {}
    for name, part, extra in [
        ("A", rows[half], []),
        ("B", rows[~half], [f"model.prior_from={tmp_path / 'A'}", "model.prior_forget=1"]),
        ("AB", rows, []),
    ]:
        part.drop(columns=["orders"]).to_csv(tmp_path / f"{name}.csv", index=False)
        cfg = uplift.compose_config([*HALVES_RUN, f"data.path={tmp_path / f'{name}.csv'}", *extra])
        runs[name] = uplift.run(cfg, tmp_path / name)
    figures = []
    for tactic, fit in runs["AB"].fits.items():
        full, seq = fit.draws(), runs["B"].fits[tactic].draws()
        sd = full.std("sample")
        z = np.abs((seq.mean("sample") - full.mean("sample")) / sd).values
        ratio = (seq.std("sample") / sd).values
        figures.append((tactic, z.max(), z.mean(), ratio.min(), ratio.max()))
        print(
            f"{tactic}: |mean diff| / sd max {z.max():.3f} mean {z.mean():.3f}; "
            f"sd ratio {ratio.min():.2f}-{ratio.max():.2f}"
        )
        assert z.max() < MEAN_TOL_SD, (tactic, z.round(3))
        assert SD_RATIO[0] < ratio.min() and ratio.max() < SD_RATIO[1], (tactic, ratio.round(2))
    # the same decisions: both posteriors planned in one problem (the full wave's values and
    # customers; a half wave's own values and segment sizes would differ for reasons that are
    # not the prior)
    full_run = uplift.load_run(tmp_path / "AB")
    seq_run = dataclasses.replace(full_run, draws={t: f.draws() for t, f in runs["B"].fits.items()})

    def treated(plan) -> pd.Series:
        t = plan.table.set_index(["segment", "arm"])["customers"]
        return t[t > 0].sort_index()

    full_plan, seq_plan = treated(full_run.plan()), treated(seq_run.plan())
    print("full:", full_plan.to_dict(), "sequential:", seq_plan.to_dict())
    # the same plan up to one near-tie swap: the posteriors agree (checked above) within Monte
    # Carlo error, which can flip which of two cells of nearly equal value gets the last budget
    # (seen after a rebuilt venv: high/quality vs high/variety for cross_sell_email)
    swapped = set(full_plan.index) ^ set(seq_plan.index)
    assert len(swapped) <= 2, sorted(swapped)
    assert abs(seq_plan.sum() - full_plan.sum()) <= 0.05 * full_plan.sum()
