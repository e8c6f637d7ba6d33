"""The hierarchical conversion model recovers known segment uplifts from synthetic truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uplift.models import ConversionUpliftModel


def test_recovers_truth(cells, synthetic, fast_sampler, tmp_path):
    model = ConversionUpliftModel(sampler=fast_sampler).fit(cells, "up_sell")
    up = model.uplift_draws()
    assert up.dims == ("sample", "arm", "segment") and up.sizes["segment"] == 12
    truth = synthetic.truth.set_index(["arm", "segment"])["true_uplift"]
    mean = up.mean("sample").sel(arm="upgrade_offer").to_series()
    lo, hi = np.quantile(up.sel(arm="upgrade_offer").values, [0.03, 0.97], axis=0)
    t = truth.loc["upgrade_offer"].reindex(mean.index).to_numpy()
    covered = (lo <= t) & (t <= hi)
    assert covered.mean() >= 10 / 12
    sd = up.sel(arm="upgrade_offer").std("sample").to_series().reindex(mean.index).to_numpy()
    z = (mean.to_numpy() - t) / sd
    assert np.mean(z**2) < 2.0  # errors are the size the posterior says they are
    assert np.corrcoef(mean.to_numpy(), t)[0, 1] > 0.8  # and the segment ranking is recovered
    d = model.diagnostics()
    assert d.divergences == 0 and d.r_hat_max < 1.05

    # save / load round trip through netCDF keeps the draws and the metadata
    path = model.save(tmp_path / "posterior_up_sell.nc")
    again = ConversionUpliftModel.load(path)
    assert again.tactic == "up_sell"
    np.testing.assert_allclose(again.uplift_draws().values, up.values)


def test_shrinkage_pulls_small_noisy_cells_toward_the_pool(cells, fast_sampler):
    """A tiny segment's logit effect is pulled from its raw estimate toward the pooled mean."""
    c = cells.copy()
    small = c["segment"] == "high/variety"
    c.loc[small, ["n", "conversions"]] = (c.loc[small, ["n", "conversions"]] // 20).to_numpy()
    model = ConversionUpliftModel(sampler=fast_sampler).fit(c, "cross_sell")
    post = model.idata["posterior"]
    effect = float(post["effect_logit"].sel(arm="cross_sell_email", segment="high/variety").mean())
    pooled = float(post["effect_mu"].sel(arm="cross_sell_email").mean())
    seg = c[small].set_index("arm")

    def logit(arm: str) -> float:  # empirical logit with a 0.5 continuity correction
        k, n = seg.loc[arm, "conversions"] + 0.5, seg.loc[arm, "n"] + 1.0
        return float(np.log(k / (n - k)))

    raw = logit("cross_sell_email") - logit("control")
    assert abs(effect - pooled) < 0.5 * abs(raw - pooled)
    # a big segment keeps (nearly) its own estimate: its posterior is far narrower than the tiny one's
    sd = post["effect_logit"].sel(arm="cross_sell_email").std(("chain", "draw")).to_series()
    assert sd["high/variety"] > 1.3 * sd.drop("high/variety").median()


@pytest.mark.slow  # compiles the graph a second time on purpose (~25 s)
def test_reused_compiled_model_gives_the_same_draws_as_a_fresh_compile(cells, fast_sampler):
    """nutpie compiles each graph structure once; a later tactic swaps in its data and labels."""
    from uplift.models import sampling

    ConversionUpliftModel(sampler=fast_sampler).fit(cells, "cross_sell")  # compiles (or reuses)
    n_compiled = len(sampling._COMPILED)
    reused = ConversionUpliftModel(sampler=fast_sampler).fit(cells, "referral")
    assert len(sampling._COMPILED) == n_compiled  # same structure: nothing new compiled

    class Fresh(ConversionUpliftModel):
        reuse_compiled = False

    fresh = Fresh(sampler=fast_sampler).fit(cells, "referral")
    a, b = reused.uplift_draws(), fresh.uplift_draws()
    assert list(a["arm"].values) == ["referral_bonus"]
    np.testing.assert_array_equal(a.values, b.values)


@pytest.mark.slow  # compiles the crossed graph twice on purpose (~25 s each)
def test_other_main_forms_reuse_the_compiled_graph_and_draw_as_a_fresh_compile(cells, fast_sampler):
    """The main effects' forms are data (uplift.models.structure.form_flag): a fit with every
    column centred reuses the graph compiled for none, and its draws equal a fresh compile's."""
    from uplift.models import sampling
    from uplift.models.settings import Parameterization

    dims = ("value_tier", "needs")
    ConversionUpliftModel(sampler=fast_sampler, segment_dims=dims).fit(cells, "cross_sell")
    n_compiled = len(sampling._COMPILED)
    par = Parameterization(main="centered")
    reused = ConversionUpliftModel(sampler=fast_sampler, parameterization=par, segment_dims=dims)
    reused.fit(cells, "referral")
    assert len(sampling._COMPILED) == n_compiled  # nothing new compiled for the other forms

    class Fresh(ConversionUpliftModel):
        reuse_compiled = False

    fresh = Fresh(sampler=fast_sampler, parameterization=par, segment_dims=dims)
    fresh.fit(cells, "referral")
    np.testing.assert_array_equal(reused.uplift_draws().values, fresh.uplift_draws().values)


def test_pooling_along_segment_dimensions(cells, fast_sampler):
    """Opt-in: effects pooled by value tier and by needs, plus a segment residual."""
    model = ConversionUpliftModel(sampler=fast_sampler, segment_dims=("value_tier", "needs"))
    pm_model = model.build_model(cells, "up_sell")
    names = set(pm_model.named_vars)
    assert {"effect_value_tier_sigma", "effect_needs_sigma", "effect_sigma"} <= names
    assert list(pm_model.coords["value_tier_level"]) == ["high", "low", "mid"]
    with pytest.raises(ValueError, match="segment dimension 'region'"):
        ConversionUpliftModel(segment_dims=("region",)).build_model(cells, "up_sell")


def test_crossed_baselines_take_the_columns_main_effects_at_a_fixed_scale(cells):
    """Baselines: each column's main effect (no learnt scale, no pairs) + a pooled residual;
    ``structure_baselines`` pools every term as the effects do; one column: exchangeable."""
    dims = ("value_tier", "needs")
    names = set(ConversionUpliftModel(segment_dims=dims).build_model(cells, "up_sell").named_vars)
    assert {"baseline_value_tier_effect", "baseline_needs_effect", "baseline_sigma"} <= names
    assert not {n for n in names if n.startswith("baseline_") and n.endswith("_z")} - {"baseline_z"}
    assert "baseline_value_tier_sigma" not in names
    pooled = ConversionUpliftModel(segment_dims=dims, structure_baselines=True)
    assert "baseline_value_tier_sigma" in set(pooled.build_model(cells, "up_sell").named_vars)
    flat = set(ConversionUpliftModel().build_model(cells, "up_sell").named_vars)
    assert not {n for n in flat if n.startswith("baseline_value_tier")}


def _tiered_cells(seed: int) -> tuple:
    """3 tiers x 4 channels; the high tier converts far more and is small (the case where
    exchangeable baselines pull its control rate towards the others')."""
    rng = np.random.default_rng(seed)
    tiers, channels = ("high", "mid", "low"), ("a", "b", "c", "d")
    tier_logit, ch_logit = (-0.8, -2.2, -3.0), (0.1, -0.1, 0.05, -0.05)
    sizes = (50, 600, 1000)
    rows, truth = [], {}
    for t, tl, n in zip(tiers, tier_logit, sizes, strict=True):
        for c, cl in zip(channels, ch_logit, strict=True):
            seg = f"{t}/{c}"
            p0 = 1 / (1 + np.exp(-(tl + cl)))
            p1 = 1 / (1 + np.exp(-(tl + cl + 0.3)))
            truth[seg] = tl + cl
            for arm, p in (("ctrl", p0), ("offer", p1)):
                rows.append(
                    {"segment": seg, "arm": arm, "n": n, "conversions": rng.binomial(n, p)}
                    | {"tactic": "control" if arm == "ctrl" else "cross_sell", "cost": 0.0}
                    | {"value_tier": t, "channel": c}
                )
    return pd.DataFrame(rows), truth


@pytest.mark.slow
def test_a_small_high_tier_keeps_its_baseline(fast_sampler):
    """Real NUTS, 3 seeds: with the columns' main effects, the small high tier's posterior
    control logit is pulled down less than by exchangeable baselines (one column), which pull
    it towards the other tiers' in every seed (measured mean error -0.05 vs -0.11)."""
    errors, flat_errors = [], []
    for seed in range(3):
        cells, truth = _tiered_cells(seed)
        cells["revenue_sum"] = 0.0
        for dims, out in ((("value_tier", "channel"), errors), ((), flat_errors)):
            m = ConversionUpliftModel(sampler=fast_sampler, segment_dims=dims).fit(
                cells, "cross_sell"
            )
            post = m.idata.posterior["baseline_logit"].mean(("chain", "draw")).to_series()
            high = [s for s in truth if s.startswith("high/")]
            out.append(float(np.mean([post[s] - truth[s] for s in high])))
    assert abs(np.mean(errors)) < 0.08, errors
    assert all(f < e for f, e in zip(flat_errors, errors, strict=True)), (errors, flat_errors)
    assert np.mean(flat_errors) < np.mean(errors) - 0.03, (errors, flat_errors)
