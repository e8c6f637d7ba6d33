"""A fit that diverges is refit automatically (smaller steps, then the other parameterization)
and every attempt is recorded; accepting unconverged fits skips the retries."""

from __future__ import annotations

import pytest

import uplift
from uplift.data import aggregate_cells
from uplift.pipeline import fit_tactic, load_data

SPARSE_CENTRED = [
    "data.synthetic.outcomes=conversion",  # the data this ladder was measured on
    "data.synthetic.n_customers=5000",  # ~30 events per treated cell: centred effects funnel
    "model.parameterization.effect=centered",
    "sampler.target_accept=0.8",
    "sampler.target_accept_structured=0.8",  # the demo segments are crossed
    "sampler.draws=300",
    "sampler.tune=300",
    "sampler.chains=2",
]


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    config = uplift.compose_config(SPARSE_CENTRED)
    data, _ = load_data(config, tmp_path_factory.mktemp("retry"))
    return config, data, aggregate_cells(data)


@pytest.mark.slow  # real NUTS through the ladder: ~40 s on 2 cores
def test_diverging_fit_is_refit_until_clean(sparse):
    config, data, cells = sparse
    fit = fit_tactic(config, "cross_sell", data, cells)
    first = fit.attempts[0] if fit.attempts else None
    if first is None:
        pytest.fail(f"the centred sparse fit was expected to diverge: {fit.diagnostics}")
    assert first["divergences"] > 0 and first["effect"] == "centered"
    assert len(fit.attempts) >= 2
    last = fit.attempts[-1]
    assert last["target_accept"] == 0.99
    # the kept fit is the clean one (or the least diverging), and it is the model we get
    kept = min((len(a["failures"]), a["divergences"]) for a in fit.attempts)
    assert fit.diagnostics.divergences == kept[1]
    assert fit.diagnostics.divergences < first["divergences"]
    assert fit.model.parameterization.effect in ("centered", "non_centered")


def test_no_retry_when_unconverged_fits_are_accepted(sparse, fake_sampler):
    config, data, cells = sparse
    config.optimize.allow_unconverged = True
    try:
        fit = fit_tactic(config, "cross_sell", data, cells)
    finally:
        config.optimize.allow_unconverged = False
    assert fit.attempts == []


class _Stub:
    """A model whose fit reports scripted diagnostics: r-hat falls only with longer chains
    (``short_ess``: r-hat is fine and the bulk ESS is what short chains lack)."""

    def __init__(self, sampler, parameterization, log, short_ess=False):
        self.sampler, self.parameterization, self.log = sampler, parameterization, log
        self.short_ess = short_ess

    def fit(self, cells, tactic):
        self.log.append(
            (self.sampler.target_accept, self.sampler.draws, self.parameterization.effect)
        )
        return self

    def thin(self, every):
        self.log.append(("thin", every))
        return self

    def diagnostics(self):
        from uplift.models.diagnostics import Diagnostics

        long = self.sampler.draws >= 600
        if self.short_ess:
            ess = 760.0 if long else 382.0
            return Diagnostics(1.008, ess, 900.0, 0, self.sampler.draws, self.sampler.chains)
        r_hat = 1.003 if long else 1.02
        return Diagnostics(r_hat, 900.0, 900.0, 0, self.sampler.draws, self.sampler.chains)


def _fit_scripted(sparse, monkeypatch, short_ess: bool = False) -> tuple:
    """``fit_tactic`` on :class:`_Stub` models (centred baselines, no fit cache): the fit and
    the log of what each attempt sampled."""
    import dataclasses

    import uplift.pipeline as pipeline

    config, data, cells = sparse
    monkeypatch.setattr(config.sampler, "cache", False)  # a scripted stub, not a posterior
    log: list = []
    par = dataclasses.replace(config.model.parameterization, baseline="centered")
    monkeypatch.setattr(
        pipeline,
        "build_model",
        lambda c, t, d, x: _Stub(pipeline.sampler_for(c, structured=True), par, log, short_ess),
    )
    return fit_tactic(config, "cross_sell", data, cells), log


def test_unmixed_fit_without_divergences_is_sampled_longer_not_reparameterized(sparse, monkeypatch):
    fit, log = _fit_scripted(sparse, monkeypatch)
    # one retry: same form and step size, twice the tuning and draws; the clean one is kept
    # ... diagnosed on the long chains, then thinned back to the configured number of draws
    assert log == [(0.8, 300, "centered"), (0.8, 600, "centered"), ("thin", 2)]
    assert [a["draws"] for a in fit.attempts] == [300, 600]
    assert [a["tune"] for a in fit.attempts] == [300, 600]
    assert fit.attempts[0]["failures"] and not fit.attempts[1]["failures"]
    assert fit.diagnostics.r_hat_max == 1.003


def test_too_few_effective_draws_alone_are_sampled_longer(sparse, monkeypatch):
    """Bulk ESS 382 < 400 with r-hat and divergences clean (referral in the 10M-customer run)
    was refused by the gate with nothing retried; now it is sampled twice as long, same form."""
    fit, log = _fit_scripted(sparse, monkeypatch, short_ess=True)
    assert log == [(0.8, 300, "centered"), (0.8, 600, "centered"), ("thin", 2)]
    assert fit.attempts[0]["failures"] == ["ess_bulk_min=382 < 400"]
    assert not fit.attempts[1]["failures"]
    assert fit.diagnostics.ess_bulk_min == 760.0


def test_thin_keeps_every_kth_draw_in_every_group():
    """A fit sampled twice as long must hand on as many draws as the others: the tactics' draws
    are paired scenario by scenario (a 16,000-draw fit beside 8,000-draw ones failed to align)."""
    import arviz as az
    import numpy as np

    from uplift.models.conversion import ConversionUpliftModel

    m = ConversionUpliftModel()
    draws = np.arange(2 * 10, dtype=float).reshape(2, 10)
    m.idata = az.from_dict(
        {
            "posterior": {"a": draws},
            "sample_stats": {"diverging": np.zeros((2, 10), bool)},
            "observed_data": {"y": np.ones(3)},
        }
    )
    m.thin(2)
    assert m.idata.posterior.sizes["draw"] == 5
    assert m.idata.sample_stats.sizes["draw"] == 5
    assert m.idata.posterior["a"].values[0].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_fit_garbage_frees_each_fits_cycles_and_unfreezes_the_heap():
    """Fits leave their models and graphs in reference cycles: the collection fit_garbage
    yields frees what was made inside it while what lived before stays frozen out of it, and
    the heap is unfrozen after, also when the fits raise."""
    import gc
    import weakref

    from uplift.pipeline import fit_garbage

    class Node:
        pass

    def cycle() -> weakref.ref:
        n = Node()
        n.me = n  # type: ignore[attr-defined]
        return weakref.ref(n)

    with fit_garbage() as collect:
        assert gc.get_freeze_count() > 0
        made = cycle()
        collect()
        assert made() is None
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), fit_garbage():
        raise RuntimeError("a fit failed")
    assert gc.get_freeze_count() == 0


class _CrossedStub(_Stub):
    """Crossed segments (value tier x needs) whose fit diverges unless the needs' main effects,
    and only they, are centred: what the ladder's main-effect rung is for."""

    segment_dims = ("value_tier", "needs")

    def fit(self, cells, tactic):
        par = self.parameterization
        self.log.append(
            (self.sampler.target_accept, par.effect, sorted(par.main_centered(self.segment_dims)))
        )
        return self

    def diagnostics(self):
        from uplift.models.diagnostics import Diagnostics

        clean = self.parameterization.main_centered(self.segment_dims) == {"needs"}
        return Diagnostics(1.003, 900.0, 900.0, 0 if clean else 3, 300, 2)


def test_divergences_flip_the_main_effects_of_crossed_segments_column_by_column(
    sparse, monkeypatch
):
    import dataclasses

    import uplift.pipeline as pipeline

    config, data, cells = sparse
    monkeypatch.setattr(config.sampler, "cache", False)
    log: list = []
    par = dataclasses.replace(
        config.model.parameterization,
        baseline="non_centered",
        effect="non_centered",
        centered_columns=["value_tier"],
    )
    monkeypatch.setattr(
        pipeline,
        "build_model",
        lambda c, t, d, x: _CrossedStub(pipeline.sampler_for(c, structured=True), par, log),
    )
    fit = fit_tactic(config, "cross_sell", data, cells)
    # smaller steps, the residual's other form, then each column's main effects flipped
    assert log == [
        (0.8, "non_centered", ["value_tier"]),
        (0.99, "non_centered", ["value_tier"]),
        (0.99, "centered", ["value_tier"]),
        (0.99, "non_centered", ["needs"]),
    ]
    assert [a["main_centered"] for a in fit.attempts] == [
        ["value_tier"],
        ["value_tier"],
        ["value_tier"],
        ["needs"],
    ]
    assert fit.diagnostics.divergences == 0
    assert fit.model.parameterization.main_centered(("value_tier", "needs")) == {"needs"}


def test_a_fit_at_099_already_retries_with_smaller_steps_first(sparse, monkeypatch):
    """Crossed segments sample at 0.99 from the start: the first rung then asks 0.995 (it was
    a no-op and skipped), before any form changes."""
    import dataclasses

    import uplift.pipeline as pipeline

    config, data, cells = sparse
    monkeypatch.setattr(config.sampler, "cache", False)
    monkeypatch.setattr(config.sampler, "target_accept_structured", 0.99)
    log: list = []
    par = dataclasses.replace(
        config.model.parameterization, baseline="non_centered", effect="non_centered"
    )

    class _Rare(_CrossedStub):
        def diagnostics(self):
            from uplift.models.diagnostics import Diagnostics

            divergences = 1 if self.sampler.target_accept < 0.995 else 0
            return Diagnostics(1.003, 900.0, 900.0, divergences, 300, 2)

    monkeypatch.setattr(
        pipeline,
        "build_model",
        lambda c, t, d, x: _Rare(pipeline.sampler_for(c, structured=True), par, log),
    )
    fit = fit_tactic(config, "cross_sell", data, cells)
    assert [entry[0] for entry in log] == [0.99, 0.995]
    assert fit.diagnostics.divergences == 0 and fit.model.sampler.target_accept == 0.995
    assert pipeline._smaller_steps(0.8) == 0.99 and pipeline._smaller_steps(0.999) == 0.999
