"""The fit cache (issue #13, part 4): a run whose fits are unchanged reads them back instead of
sampling, with decision outputs byte-identical to fresh fits; anything that changes a posterior
changes its key; a broken or foreign entry is ignored with a warning and refit.

Wiring runs use the fake sampler (tests/fast_tier.py); one test fits with real NUTS."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

import uplift
from uplift.models import SamplerSettings
from uplift.models.families import get_family
from uplift.models.fit_cache import KEY_ATTR, FitCache, default_folder
from uplift.pipeline import fit_tactic

QUICK = [
    "data.synthetic.n_customers=8000",
    "sampler=fast",
    "optimize.allow_unconverged=true",
    "optimize.budget=4000",
    "report.plots=false",
]
#: every table the decision rests on (summary.json and report.md also hold timings)
DECISIONS = [
    "allocation.csv",
    "uplift_by_segment.csv",
    "uplift_by_arm.csv",
    "readout.csv",
    "next_wave_shares.csv",
    "targets.csv",
    "ppc.csv",
    "crossfit_folds.csv",
]


def _run(tmp_path: Path, name: str, cache: Path | None, *extra: str) -> tuple[Path, dict]:
    keys = [f"sampler.cache_dir={cache}"] if cache is not None else ["sampler.cache=false"]
    out = tmp_path / name
    uplift.run(uplift.compose_config([*QUICK, *keys, *extra]), out)
    return out, json.loads((out / "summary.json").read_text())


def test_cached_run_equals_fresh_fits_byte_for_byte(tmp_path, fake_sampler):
    """The first run samples every fit (its outputs are those of fresh fits: the cache only
    stores them); the second reads them all back and writes the same decision tables."""
    cache = tmp_path / "cache"
    first, s_first = _run(tmp_path, "first", cache)
    again, s_again = _run(tmp_path, "again", cache)
    tactics = s_first["tactics"]
    assert s_first["fit_cache"]["fits"] == dict.fromkeys(tactics, "miss")
    assert s_again["fit_cache"]["fits"] == dict.fromkeys(tactics, "hit")
    assert s_again["fit_cache"]["folder"] == str(cache)
    counts = s_again["fit_cache"]["counts"]
    # cross-fitting refits the budget tactics, not a price arm (the demo's discount)
    model = uplift.compose_config(QUICK).model
    budget = [t for t in tactics if not get_family(model.family_of(t)).prices]
    assert len(budget) == len(tactics) - 1, tactics
    assert counts == {"crossfit_fold_hit": 2 * len(budget), "fit_hit": len(tactics)}
    for name in DECISIONS:
        assert (again / name).read_bytes() == (first / name).read_bytes(), name
    for t in tactics:  # the diagnostics and attempts of the fit travel with it
        d_first, d_again = s_first["diagnostics"][t], s_again["diagnostics"][t]
        assert {k: v for k, v in d_again.items() if k != "fit_seconds"} == {
            k: v for k, v in d_first.items() if k != "fit_seconds"
        }
    assert s_again["parameterization"] == s_first["parameterization"]


@pytest.mark.parametrize(
    ("change", "refits"),
    [
        ("sampler.seed=5", True),
        ("sampler.draws=250", True),
        ("model.priors.effect_sigma=0.4", True),
        ("model.parameterization.effect=centered", True),
        ("data.synthetic.seed=8", True),
        ("optimize.gate.r_hat_max=1.05", True),  # decides the retries
        ("optimize.budget=6000", False),  # a sweep over the plan's settings re-solves
        ("optimize.objective=cvar", False),
        ("report.hdi_prob=0.9", False),
    ],
)
def test_what_changes_a_posterior_changes_its_key(tmp_path, fake_sampler, change, refits):
    cache = tmp_path / "cache"
    config = uplift.compose_config([*QUICK, f"sampler.cache_dir={cache}"])
    data = uplift.pipeline.prepare(config, tmp_path / "a")
    fit_tactic(config, "cross_sell", data.data, data.cells)
    changed = uplift.compose_config([*QUICK, f"sampler.cache_dir={cache}", change])
    prepared = uplift.pipeline.prepare(changed, tmp_path / "b")
    fit = fit_tactic(changed, "cross_sell", prepared.data, prepared.cells)
    assert fit.from_cache is not refits, change
    assert fit_tactic(changed, "cross_sell", prepared.data, prepared.cells).from_cache
    assert len(list(cache.glob("cross_sell-*.nc"))) == 1 + refits


def _one_fit(tmp_path: Path, cache: Path):
    config = uplift.compose_config([*QUICK, f"sampler.cache_dir={cache}"])
    prepared = uplift.pipeline.prepare(config, tmp_path / "prep")
    return config, prepared.data, prepared.cells


def test_a_corrupt_or_foreign_entry_is_refit_with_a_warning(tmp_path, fake_sampler, caplog):
    cache = tmp_path / "cache"
    config, data, cells = _one_fit(tmp_path, cache)
    first = fit_tactic(config, "cross_sell", data, cells)
    (entry,) = cache.glob("cross_sell-*.nc")
    want = first.draws().values
    entry.write_bytes(entry.read_bytes()[:1000])  # truncated by a crash of another tool
    with caplog.at_level(logging.WARNING, logger="uplift.models.fit_cache"):
        refit = fit_tactic(config, "cross_sell", data, cells)
    assert not refit.from_cache and "ignoring" in caplog.text and str(entry) in caplog.text
    np.testing.assert_array_equal(refit.draws().values, want)
    assert fit_tactic(config, "cross_sell", data, cells).from_cache  # rewritten whole

    other = fit_tactic(config, "up_sell", data, cells)  # a valid file of another key
    other.model.save(entry)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="uplift.models.fit_cache"):
        again = fit_tactic(config, "cross_sell", data, cells)
    assert not again.from_cache and "holds key" in caplog.text
    np.testing.assert_array_equal(again.draws().values, want)
    (entry.parent / "unrelated.txt").write_text("not a posterior")  # other files are left alone
    assert fit_tactic(config, "cross_sell", data, cells).from_cache
    assert not list(cache.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_off_switch_and_default_folder(tmp_path, fake_sampler, monkeypatch):
    config, data, cells = _one_fit(tmp_path, tmp_path / "unused")
    config.sampler.cache = False
    assert not fit_tactic(config, "cross_sell", data, cells).from_cache
    assert not fit_tactic(config, "cross_sell", data, cells).from_cache
    assert not (tmp_path / "unused").exists()
    assert FitCache.from_settings(config.sampler).summary({}) == {"enabled": False}
    monkeypatch.delenv("UPLIFT_FIT_CACHE")
    monkeypatch.chdir(tmp_path)
    assert default_folder() == tmp_path / "outputs" / ".fit_cache"
    monkeypatch.setenv("UPLIFT_FIT_CACHE", str(tmp_path / "env"))
    assert default_folder() == tmp_path / "env"
    assert default_folder("mine") == tmp_path / "mine"


def test_real_nuts_fit_reads_back_identical(tmp_path, cells, customers):
    """With nutpie, the cached posterior is the sampled one, bit for bit, with its groups."""
    from uplift.models.counts import NegBinomialCountModel, count_histograms

    settings = SamplerSettings(draws=100, tune=100, chains=2, seed=9)
    cache = FitCache(tmp_path / "cache")
    model = NegBinomialCountModel(count_histograms(customers, "orders"), sampler=settings)
    key = cache.key({"test": 1}, model.fit_data(cells, "frequency"))
    model.fit(cells, "frequency")
    cache.store("frequency", key, model)
    built = NegBinomialCountModel(count_histograms(customers, "orders"), sampler=settings)
    loaded = cache.load("frequency", key, built)
    assert loaded is not None and loaded.histograms is built.histograms
    assert loaded.idata.attrs[KEY_ATTR] == key
    for group in ("posterior", "log_likelihood", "posterior_predictive", "observed_data"):
        a, b = model.idata[group].to_dataset(), loaded.idata[group].to_dataset()
        for var in a.data_vars:
            np.testing.assert_array_equal(a[var].values, b[var].values)
    np.testing.assert_array_equal(loaded.uplift_draws().values, model.uplift_draws().values)
    assert loaded.diagnostics().to_dict() == model.diagnostics().to_dict()
    shutil.rmtree(tmp_path / "cache")
    assert cache.load("frequency", key, built) is None  # cleared: a plain miss, no warning


def test_multirun_writes_a_comparison_table_and_reuses_the_fits(tmp_path, uplift_cli, fake_sampler):
    """``uplift -m optimize.budget=...``: one job per budget, the fits sampled once (the second
    and third job read them from the cache), comparison.csv with one row per job."""
    import pandas as pd

    sweep = tmp_path / "sweep"
    r = uplift_cli(
        "-m",
        # every tactic a conversion: one model structure, compiled by the fake sampler once (the
        # four-family demo's cached run: test_cached_run_equals_fresh_fits_byte_for_byte)
        "data.synthetic.outcomes=conversion",
        *[o for o in QUICK if not o.startswith("optimize.budget")],
        "evaluate.crossfit_folds=0",
        "optimize.budget=3000,4000,6000",
        f"hydra.sweep.dir={sweep}",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    table = pd.read_csv(sweep / "comparison.csv")
    assert list(table.columns) == [
        "job",
        "overrides",
        "status",
        "budget",
        "total_spend",
        "expected_incremental_profit",
        "profit_hdi_low",
        "profit_hdi_high",
        "calibrated_incremental_profit",
        "customers_treated",
        "gate",
        "fits_from_cache",
        "fits",
        "run_folder",
    ]
    assert table["job"].tolist() == [0, 1, 2]
    assert table["budget"].tolist() == [3000, 4000, 6000]
    assert table["overrides"].str.contains("optimize.budget=3000").iloc[0]
    assert (table["status"] == "complete").all() and (table["gate"] == "passed").all()
    assert table["fits_from_cache"].tolist() == [0, 6, 6] and (table["fits"] == 6).all()
    assert (table["total_spend"] <= table["budget"] + 1e-6).all()
    assert table["expected_incremental_profit"].is_monotonic_increasing
    for _, row in table.iterrows():
        summary = json.loads((sweep / row["run_folder"] / "summary.json").read_text())
        assert summary["total_spend"] == pytest.approx(row["total_spend"])
        assert summary["customers_treated"] == row["customers_treated"]
        hits = set(summary["fit_cache"]["fits"].values())
        assert hits == ({"miss"} if row["job"] == 0 else {"hit"})
    # the uplift estimates are the same fits in every job
    tables = [(sweep / f / "uplift_by_segment.csv").read_bytes() for f in table["run_folder"]]
    assert tables[0] == tables[1] == tables[2]


def test_an_unwritable_cache_costs_a_warning_not_the_run(tmp_path, fake_sampler, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    config, data, cells = _one_fit(tmp_path, blocker / "cache")
    with caplog.at_level(logging.WARNING, logger="uplift.models.fit_cache"):
        fit = fit_tactic(config, "cross_sell", data, cells)
    assert not fit.from_cache and "could not store" in caplog.text


def test_the_folder_is_capped_least_recently_used_first(tmp_path, caplog):
    """Entries past ``max_bytes`` are removed oldest-used first after a store: the entry just
    stored stays, a hit renews an entry, files that are not entries are never touched, and the
    count of evictions reaches the run's summary."""
    import os

    import xarray as xr

    folder = tmp_path / "cache"
    draws = xr.DataArray(np.arange(2_000, dtype=float), dims="draw")  # 16 kB of data an entry
    cache = FitCache(folder)  # no cap: fill it
    keys = [f"{i:x}" * 64 for i in range(1, 5)]
    for i, key in enumerate(keys):
        cache.draws(f"t{i}", key, lambda: draws)
        os.utime(cache.path(f"t{i}", key), (1_000 + i, 1_000 + i))  # t0 oldest, t3 newest
    (folder / "notes.txt").write_text("mine")
    size = cache.path("t0", keys[0]).stat().st_size
    assert cache.prune() == []  # uncapped

    cache.draws("t0", keys[0], lambda: pytest.fail("a hit must not compute"))  # t0 used now
    capped = FitCache(folder, max_bytes=3 * size + size // 2)
    new_key = "e" * 64
    with caplog.at_level(logging.INFO, logger="uplift.models.fit_cache"):
        capped.draws("t9", new_key, lambda: draws)
    left = sorted(p.name.split("-")[0] for p in folder.glob("*.nc"))
    # 5 entries, room for 3: the two least recently used (t1, t2) go, the hit t0 and the new stay
    assert left == ["t0", "t3", "t9"]
    assert (folder / "notes.txt").read_text() == "mine"
    assert not (folder / f".t1-{keys[1][:40]}.lock").exists()
    assert capped.summary({})["counts"]["evicted"] == 2
    assert "removed 2 least recently used entries" in caplog.text
    # a cap below one entry keeps the entry just stored
    tiny = FitCache(folder, max_bytes=1)
    tiny.draws("t8", "d" * 64, lambda: draws)
    assert [p.name.split("-")[0] for p in folder.glob("*.nc")] == ["t8"]


def test_cache_cap_setting():
    assert FitCache.from_settings(SamplerSettings()).max_bytes == 2_000_000_000
    assert FitCache.from_settings(SamplerSettings(cache_max_gb=None)).max_bytes is None
    with pytest.raises(ValueError, match="sampler.cache_max_gb must be > 0 or null"):
        SamplerSettings(cache_max_gb=0)
    # where and how much to cache does not change a fit's key
    from uplift.models.fit_cache import sampler_key

    assert sampler_key(SamplerSettings(cache_max_gb=0.5)) == sampler_key(SamplerSettings())
