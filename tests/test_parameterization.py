"""``model.parameterization=auto``: centre baselines and effects when the data pin them down."""

from __future__ import annotations

from pathlib import Path

import pytest

import uplift
from uplift.data import aggregate_cells
from uplift.models.conversion import Parameterization
from uplift.pipeline import build_model, cell_events, load_data


def test_resolve_follows_events_and_segments():
    auto = Parameterization("auto", "auto")
    assert auto.resolve(130, 12, 100) == Parameterization("centered", "non_centered")
    assert auto.resolve(4000, 48, 2600) == Parameterization("centered", "centered")
    assert auto.resolve(1, 144, 1) == Parameterization("non_centered", "non_centered")
    assert auto.resolve(500, 1, 500) == Parameterization("non_centered", "non_centered")
    assert auto.resolve(300, 12).effect == "centered"  # treated events default to control's
    fixed = Parameterization("auto", "non_centered", auto_min_events=20)
    assert fixed.resolve(12, 144, 1e6) == Parameterization("non_centered", "non_centered", 20)
    assert Parameterization("centered").resolve(0, 1).baseline == "centered"  # explicit wins
    with pytest.raises(ValueError, match="model.parameterization.baseline must be"):
        Parameterization("centred")


def test_crossed_baselines_are_centred_only_when_their_residual_is_informative():
    """With crossed segments the baselines pool a residual around the columns' main effects:
    dense control cells alone do not make it centrable (bench/crossed_decisions.py)."""
    auto = Parameterization("auto", "auto")
    assert auto.resolve(130, 36, 100, baseline_ratio=0.9).baseline == "non_centered"
    assert auto.resolve(130, 36, 100, baseline_ratio=12.0).baseline == "centered"
    assert auto.resolve(2, 36, 100, baseline_ratio=12.0).baseline == "non_centered"  # sparse
    assert auto.resolve(130, 36, 100, baseline_ratio=None).baseline == "centered"  # one column
    lax = Parameterization("auto", "auto", auto_min_baseline_ratio=0.5)
    assert lax.resolve(130, 36, 100, baseline_ratio=0.9).baseline == "centered"


@pytest.mark.parametrize(
    ("experiment", "events", "baseline", "effect"),
    [
        # ~130 conversions per control cell, but tier x needs: the baselines' residual around
        # the two columns' main effects is small (information ratio ~0.9): non-centred
        ("synthetic_demo", (100, 200), "non_centered", "non_centered"),
        # ~12 visits, but five crossed columns explain the baselines (residual ratio ~0)
        ("hillstrom_email_visit", (8, 16), "non_centered", "non_centered"),
        ("hillstrom_email_conversion", (0, 2), "non_centered", "non_centered"),  # ~1 purchase
        ("hillstrom_email", (0, 2), "non_centered", "non_centered"),  # ~1 buyer (hurdle)
        ("social_pressure_mailing", (300, 5000), "centered", "non_centered"),
    ],
)
def test_pipeline_resolves_auto_from_the_data(tmp_path: Path, experiment, events, baseline, effect):
    config = uplift.compose_config([f"experiment={experiment}"])
    par = config.model.parameterization
    assert (par.baseline, par.effect) == ("auto", "auto")
    data, _ = load_data(config, tmp_path)
    cells = aggregate_cells(data)
    tactic = data.arm_map.tactics()[0].value
    fam = config.model.family_of(tactic)
    assert events[0] <= cell_events(cells, fam, [data.arm_map.control.name]) <= events[1]
    model = build_model(config, tactic, data, cells)
    assert (model.parameterization.baseline, model.parameterization.effect) == (baseline, effect)


def test_effect_auto_is_resolved_from_the_treated_cells(tmp_path: Path):
    """social_pressure_mailing has ~325 events per treated cell but effects that barely vary
    (information ratio ~0.8): centred effects diverged there (127 divergences), so ``auto``
    keeps them non-centred; the events rule alone (ratio threshold 0) would centre them."""
    config = uplift.compose_config(["experiment=social_pressure_mailing"])
    data, _ = load_data(config, tmp_path)
    cells = aggregate_cells(data)
    assert build_model(config, "frequency", data, cells).parameterization.effect == "non_centered"
    config.model.parameterization.auto_min_effect_ratio = 0.0
    assert build_model(config, "frequency", data, cells).parameterization.effect == "centered"
    config.model.parameterization.auto_min_effect_events = 1e6
    assert build_model(config, "frequency", data, cells).parameterization.effect == "non_centered"


def test_resolve_needs_an_informative_spread_for_centred_effects():
    auto = Parameterization("auto", "auto")
    assert auto.resolve(4000, 48, 2600, effect_ratio=30.0).effect == "centered"
    assert auto.resolve(4000, 48, 2600, effect_ratio=0.02).effect == "non_centered"
    assert auto.resolve(4000, 48, 100, effect_ratio=30.0).effect == "non_centered"  # events
    assert auto.resolve(4000, 48, 2600, effect_ratio=None).effect == "centered"  # not known
    with pytest.raises(ValueError, match="auto_min_effect_ratio must be >= 0"):
        Parameterization(auto_min_effect_ratio=-1)


def test_resolve_centres_main_effects_column_by_column():
    """``main=auto`` centres the effects' main effects of the columns the data pin down
    (10M customers: tier ratio 221 centred, needs ratio 0.0 left non-centred)."""
    auto = Parameterization("auto", "auto")
    ratios = {"value_tier": 221.0, "needs": 0.0, "region": None}
    par = auto.resolve(4000, 48, 2600, 1.5, main_ratios=ratios)
    assert par.centered_columns == ["value_tier"]
    assert par.main_centered(("value_tier", "needs", "region")) == {"value_tier"}
    assert par.describe(("value_tier", "needs")) == {
        "baseline": "centered",
        "effect": "non_centered",
        "main_centered": ["value_tier"],
    }
    # the threshold is its own key: 5.6 stays non-centred by default
    assert auto.resolve(4000, 48, 2600, main_ratios={"needs": 5.6}).centered_columns == []
    lax = Parameterization("auto", "auto", auto_min_main_ratio=5.0)
    assert lax.resolve(4000, 48, 2600, main_ratios={"needs": 5.6}).centered_columns == ["needs"]
    # one form for all columns, whatever the ratios
    every = Parameterization("auto", "auto", main="centered").resolve(4000, 48, main_ratios=ratios)
    assert every.main_centered(("value_tier", "needs")) == {"value_tier", "needs"}
    none = Parameterization("auto", "auto", main="non_centered").resolve(
        4000, 48, main_ratios=ratios
    )
    assert none.main_centered(("value_tier", "needs")) == frozenset()
    # no ratios (one column, or a model built outside the pipeline): what was recorded is kept
    kept = Parameterization(centered_columns=["tier"]).resolve(4000, 48)
    assert kept.centered_columns == ["tier"]
    with pytest.raises(ValueError, match="model.parameterization.main must be"):
        Parameterization(main="centred")
    with pytest.raises(ValueError, match="centered_columns must be a list"):
        Parameterization(centered_columns="tier")  # type: ignore[arg-type]


def test_pipeline_centres_the_main_effects_the_data_pin_down(tmp_path: Path):
    """On the demo's crossed segments (value tier x needs) each tactic's main effects get the
    form its columns' ratios call for (none reaches 10 there: the forms of before), and the
    graph reads each column's form as data (``effect_<column>_centered``), one compiled key for
    every choice of columns."""
    from uplift.models.families import get_family
    from uplift.models.information import main_effect_information_ratios

    config = uplift.compose_config([])
    data, _ = load_data(config, tmp_path)
    cells = aggregate_cells(data)
    control = cells[cells["arm"] == data.arm_map.control.name]
    seen = set()
    for tactic in ("cross_sell", "retention"):
        treated = [a.name for a in data.arm_map.treated if a.tactic.value == tactic]
        link = get_family(config.model.family_of(tactic)).link
        ratios = main_effect_information_ratios(
            control, cells[cells["arm"].isin(treated)], link, ("value_tier", "needs")
        )
        want = sorted(d for d, r in ratios.items() if r is not None and r >= 10.0)
        model = build_model(config, tactic, data, cells)
        assert model.parameterization.centered_columns == want
        flags = _form_flags(model.build_model(cells, tactic))
        for d in ("value_tier", "needs"):
            assert flags[f"effect_{d}_centered"] == (d in want)
        seen.add(tuple(want))
    assert seen == {()}
    model = build_model(config, "cross_sell", data, cells)
    graph = model.build_model(cells, "cross_sell")
    key = model.compiled_key(graph)
    model.parameterization.centered_columns = ["needs"]
    graph = model.build_model(cells, "cross_sell")
    flags = _form_flags(graph)
    assert flags["effect_needs_centered"] and not flags["effect_value_tier_centered"]
    assert {"effect_needs_z", "effect_value_tier_z"} <= set(graph.named_vars)
    assert model.compiled_key(graph) == key  # the columns' forms are data: one compiled graph
    model.parameterization.effect = "centered"  # the residual's form is built in
    assert model.compiled_key(model.build_model(cells, "cross_sell")) != key


def _form_flags(graph) -> dict[str, bool]:
    """The graph's form flags (uplift.models.structure.form_flag): name -> centred."""
    return {
        v.name: bool(v.get_value() == 1.0) for v in graph.data_vars if v.name.endswith("_centered")
    }


def test_centred_and_non_centred_main_effects_are_the_same_prior():
    """The two forms are one model: the prior of the effects (and of their spread along a
    column) is the same, so the choice changes only how the sampler moves."""
    import pandas as pd
    import pymc as pm

    from uplift.models.conversion import ConversionUpliftModel

    rows = []
    for t in ("hi", "mid", "lo"):
        for r in ("n", "s", "e", "w"):
            for arm in ("control", "offer"):
                tactic = "control" if arm == "control" else "cross_sell"
                rows.append((f"{t}/{r}", t, r, arm, tactic, 400, 40))
    cells = pd.DataFrame(
        rows, columns=["segment", "tier", "region", "arm", "tactic", "n", "conversions"]
    )
    cells["cost"] = 0.0
    sds = {}
    for form in ("centered", "non_centered"):
        par = Parameterization("non_centered", "non_centered", main=form)
        model = ConversionUpliftModel(
            parameterization=par, segment_dims=("tier", "region")
        ).build_model(cells, "cross_sell")
        with model:
            draws = pm.sample_prior_predictive(4000, var_names=["effect_logit"], random_seed=3)
        e = draws.prior["effect_logit"].values.reshape(4000, -1)
        sds[form] = (e.std(), (e[:, :4].mean(axis=1) - e[:, -4:].mean(axis=1)).std())
    for a, b in zip(sds["centered"], sds["non_centered"], strict=True):
        assert a == pytest.approx(b, rel=0.06)


def test_crossed_models_the_data_pin_down_sample_at_the_base_target_accept():
    """Crossed models sample at target_accept_structured (0.99) unless ``auto`` centred the
    effects' residual and every column's main effects (uplift.pipeline.data_pin_down)."""
    from dataclasses import replace

    from uplift.pipeline import data_pin_down, sampler_for

    config = uplift.compose_config([])
    dims = ("tier", "region")
    par = Parameterization("non_centered", "centered", centered_columns=["tier", "region"])
    assert data_pin_down(par, dims)
    assert sampler_for(config, structured=True).target_accept == 0.99
    assert sampler_for(config, structured=True, informed=True).target_accept == 0.9
    assert sampler_for(config, structured=False).target_accept == 0.9
    assert not data_pin_down(replace(par, centered_columns=["tier"]), dims)
    assert not data_pin_down(replace(par, effect="non_centered"), dims)
    assert not data_pin_down(replace(par, main="centered"), dims)  # the user's choice, not auto's
    assert not data_pin_down(par, ("tier",))
    assert not data_pin_down(None, dims)
