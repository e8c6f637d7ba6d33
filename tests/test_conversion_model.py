"""The hierarchical conversion model recovers known segment uplifts from synthetic truth."""

from __future__ import annotations

import numpy as np
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


def test_pooling_along_segment_dimensions(cells, fast_sampler):
    """Opt-in: effects pooled by value tier and by needs, plus a segment residual."""
    model = ConversionUpliftModel(sampler=fast_sampler, segment_dims=("value_tier", "needs"))
    pm_model = model.build_model(cells, "up_sell")
    names = set(pm_model.named_vars)
    assert {"effect_value_tier_sigma", "effect_needs_sigma", "effect_sigma"} <= names
    assert list(pm_model.coords["value_tier_level"]) == ["high", "low", "mid"]
    with pytest.raises(ValueError, match="segment dimension 'region'"):
        ConversionUpliftModel(segment_dims=("region",)).build_model(cells, "up_sell")
