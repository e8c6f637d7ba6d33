"""``model.parameterization=auto``: centre baselines when the data pin each segment down."""

from __future__ import annotations

from pathlib import Path

import pytest

import uplift
from uplift.models.conversion import Parameterization
from uplift.pipeline import build_model, control_events, load_data


def test_resolve_follows_events_and_segments():
    auto = Parameterization("auto", "auto")
    assert auto.resolve(130, 12) == Parameterization("centered", "centered")
    assert auto.resolve(1, 144) == Parameterization("non_centered", "non_centered")
    assert auto.resolve(500, 1).baseline == "non_centered"  # one segment: prior-only scale
    fixed = Parameterization("auto", "non_centered", auto_min_events=20)
    assert fixed.resolve(12, 144) == Parameterization("non_centered", "non_centered", 20)
    assert Parameterization("centered").resolve(0, 1).baseline == "centered"  # explicit wins
    with pytest.raises(ValueError, match="model.parameterization.baseline must be"):
        Parameterization("centred")


@pytest.mark.parametrize(
    ("experiment", "events", "baseline"),
    [
        ("synthetic_demo", (100, 200), "centered"),  # ~130 conversions per control cell
        ("hillstrom_email_visit", (8, 16), "centered"),  # ~12 visits
        ("hillstrom_email_conversion", (0, 2), "non_centered"),  # ~1 purchase
        ("hillstrom_email", (0, 2), "non_centered"),  # ~1 buyer (hurdle)
    ],
)
def test_pipeline_resolves_auto_from_the_data(tmp_path: Path, experiment, events, baseline):
    config = uplift.compose_config(
        [f"experiment={experiment}", "data.synthetic.n_customers=120000"]
    )
    assert config.model.parameterization.baseline == "auto"
    data, _ = load_data(config, tmp_path)
    tactic = data.arm_map.tactics()[0].value
    fam = config.model.family_of(tactic)
    assert events[0] <= control_events(data, fam) <= events[1]
    model = build_model(config, tactic, data)
    assert model.parameterization.baseline == baseline
    assert model.parameterization.effect == "non_centered"
