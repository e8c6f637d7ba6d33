"""Defaults live in one place: the typed schema. YAML group files set only what differs from it.

Before this test the model YAML said ``parameterization.baseline: auto`` while the dataclass said
``centered``, so ``uplift.run(AppConfig())`` and ``uplift`` on the command line fitted different
models.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from uplift.cli import CONF_DIR, compose_config
from uplift.config import AppConfig, ModelConfig
from uplift.models.settings import Parameterization

SCHEMA = OmegaConf.to_container(OmegaConf.structured(AppConfig), resolve=False)
OPTION_FILES = sorted(p for p in Path(CONF_DIR).glob("*/*.yaml"))


def _leaves(node: object, path: tuple[str, ...] = ()):
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from _leaves(v, (*path, str(k)))
    else:
        yield path, node


def _schema_value(group: str, path: tuple[str, ...]) -> object:
    node: object = SCHEMA[group]
    for k in path:
        if not isinstance(node, dict) or k not in node:
            return _MISSING
        node = node[k]
    return node


_MISSING = object()


def test_option_files_exist():
    assert len(OPTION_FILES) >= 15, OPTION_FILES


@pytest.mark.parametrize("path", OPTION_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_group_files_set_only_what_differs_from_the_schema(path: Path):
    group = path.parent.name
    assert group in SCHEMA, f"{path}: no schema section {group!r}"
    data = yaml.safe_load(path.read_text()) or {}
    restated = [
        ".".join(p) for p, v in _leaves(data) if _schema_value(group, p) == v and p != ("arms",)
    ]
    assert not restated, (
        f"{path} restates schema defaults {restated}: delete them there (the default lives in "
        "uplift.config), or change the default in the schema"
    )


def test_default_composition_equals_the_schema_defaults():
    """``uplift`` with no overrides runs exactly ``AppConfig()`` plus the demo's arms (and what
    the synthetic source derives from them: each tactic's family and the discount's prices)."""
    composed = compose_config([])
    assert composed.tactics.arms, "the default run has the synthetic demo's arms"
    schema = AppConfig(tactics=dataclasses.replace(composed.tactics))
    for f in dataclasses.fields(AppConfig):
        if f.name == "experiment_name":  # a derived name
            continue
        assert getattr(composed, f.name) == getattr(schema, f.name), f.name
    assert len(set(composed.model.families.values())) == 3, composed.model.families


def test_model_parameterization_default_is_auto_in_python_and_cli():
    assert ModelConfig().parameterization.baseline == "auto"
    assert compose_config([]).model.parameterization.baseline == "auto"
    # the model classes' own default stays explicit: models take resolved values
    assert Parameterization().baseline == "centered"


def test_group_choice_changes_only_its_keys():
    """Selecting an option applies its keys on top of the schema: nothing left over from another."""
    fast = compose_config(["sampler=fast"]).sampler
    default = compose_config([]).sampler
    assert (fast.draws, fast.tune, fast.chains) == (300, 300, 2)
    assert (fast.seed, fast.target_accept, fast.backend) == (
        default.seed,
        default.target_accept,
        default.backend,
    )
    csv = compose_config(["data=csv", "data.path=x.csv"]).data
    assert csv.columns.segments == ["segment"] and csv.columns.orders is None
    assert csv.columns.arm == "arm" and csv.columns.revenue == "revenue"


CLOSED_SETS = [
    ("design.metric", "visits", "conversion, revenue"),
    ("design.correction", "holm", "none, bonferroni"),
    ("clv.method", "mcmc", "nuts, laplace"),
    ("clv.time_unit", "months", "weeks, days"),
    ("value.statistic", "mode", "mean, median"),
    ("model.covariate_model.method", "fast", "auto, exact, approximate"),
    ("model.covariate_model.unseen", "drop", "error, reference"),
    ("model.parameterization.baseline", "centred", "centered, non_centered, auto"),
    ("sampler.backend", "stan", "nutpie, pymc, numpyro, advi"),
]


@pytest.mark.parametrize(("key", "bad", "allowed"), CLOSED_SETS)
def test_closed_sets_refuse_unknown_values_naming_key_and_choices(key, bad, allowed):
    with pytest.raises(ValueError) as cli:
        compose_config([f"{key}={bad}"])
    assert key in str(cli.value) and bad in str(cli.value)
    for choice in allowed.split(", "):
        assert choice in str(cli.value)
    # the Python API refuses the same value with the same key named
    group, *rest = key.split(".")
    cls = {f.name: f for f in dataclasses.fields(AppConfig)}[group].default_factory
    with pytest.raises(ValueError, match=f"{key} must be one of: {allowed}; got '{bad}'"):
        _build(cls, rest, bad)


def _build(cls: type, path: list[str], value: object) -> object:
    """``cls`` with the nested field ``path`` set to ``value`` (inner dataclasses built too)."""
    if len(path) == 1:
        return cls(**{path[0]: value})
    inner = type(getattr(cls(), path[0]))
    return cls(**{path[0]: _build(inner, path[1:], value)})


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ([], "synthetic_demo"),
        (["data=csv", "data.path=/tmp/x/spring_campaign.csv"], "spring_campaign"),
        (["data=parquet", "data.path=wave 2.parquet"], "wave_2"),
        (["data=csv", "data.path=/tmp/hill.csv.gz", "experiment_name=mine"], "mine"),
        (["experiment=hillstrom_email"], "hillstrom_email"),
        (["data.source=synthetic_price"], "synthetic_price"),
    ],
)
def test_experiment_name_defaults_to_the_data_files_stem(overrides, name):
    """A run on the user's own file is not labelled ``synthetic_demo`` (issue #13)."""
    assert compose_config(overrides).experiment_name == name


def test_the_run_folder_is_named_like_the_run(tmp_path):
    """Hydra names the folder before the config is validated: same name, via ``uplift_name``."""
    from uplift.config import _run_name

    data = OmegaConf.create({"source": "csv", "path": "/d/spring_campaign.csv"})
    assert _run_name("", data) == "spring_campaign"
    assert _run_name("given", data) == "given"
    assert _run_name("", OmegaConf.create({"source": "csv", "path": "???"})) == "synthetic_demo"
    assert _run_name("", OmegaConf.create({"source": "synthetic", "path": None})) == (
        "synthetic_demo"
    )


def test_the_synthetic_source_declares_each_tactics_family_and_nothing_else_does():
    """data=synthetic, outcomes per_tactic (the demo): each tactic fit with the family of the
    outcome the generator moves, the discount priced as generated; other data, the conversion
    generator and the user's own choices are untouched."""
    demo = compose_config([])
    assert demo.model.families == {
        "up_sell": "hurdle_lognormal",
        "frequency": "negative_binomial",
        "margin": "price_logit",
        "referral": "negative_binomial",
    }
    assert demo.pricing.prices == {"control": 1.0, "discount_10pct": 0.9}
    assert demo.pricing.unit_cost == pytest.approx(1 - demo.value.margin)
    assert compose_config(["value.margin=0.3"]).pricing.unit_cost == pytest.approx(0.7)
    for other in (
        ["data.synthetic.outcomes=conversion"],
        ["data=csv", "data.path=customers.csv"],
        ["model.family=negative_binomial"],  # every tactic on the family the user chose
    ):
        c = compose_config(other)
        assert c.model.families == {} and c.pricing.prices == {}, other
    mine = compose_config(["+model.families={margin: binomial, frequency: binomial}"])
    assert mine.model.families["margin"] == "binomial" and mine.pricing.prices == {}
    assert mine.model.families["frequency"] == "binomial"
    assert mine.model.families["referral"] == "negative_binomial"
    priced = compose_config(["+pricing.prices={control: 1.0, discount_10pct: 0.8}"])
    assert priced.pricing.prices == {"control": 1.0, "discount_10pct": 0.8}
    with pytest.raises(Exception, match="data.synthetic.outcomes"):
        compose_config(["data.synthetic.outcomes=orders"])
