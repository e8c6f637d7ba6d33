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
