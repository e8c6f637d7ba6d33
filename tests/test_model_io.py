"""Safe model IO (issue #11, part 4): a saved posterior records its model class, family, config
and package versions; ``load_model`` rebuilds it with the class that wrote it, and a load through
the wrong class is a named error instead of a silent relabel (a hurdle posterior used to load
through ``ConversionUpliftModel.load`` as metric "conversion")."""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pytest

from uplift.models import ModelLoadError, load_model
from uplift.models.io import model_classes

CLASSES = model_classes()


def _saved(cls, path, *, stamp: bool = True):
    model = (
        cls(prices={"control": 10.0, "up": 12.0}) if cls.__name__ == "PriceResponseModel" else cls()
    )
    model.tactic = "cross_sell"
    draws = np.arange(2 * 5 * 1 * 3, dtype=float).reshape(2, 5, 1, 3)
    model.idata = az.from_dict(
        {"posterior": {"uplift": draws}},
        dims={"uplift": ["arm", "segment"]},
        coords={"arm": ["email"], "segment": ["a", "b", "c"]},
    )
    if stamp:
        model._stamp()
    model.save(path)
    return model


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_each_family_loads_back_as_itself_and_refuses_other_classes(tmp_path, name):
    cls = CLASSES[name]
    path = tmp_path / f"{name}.nc"
    saved = _saved(cls, path)
    attrs = az.from_netcdf(path).attrs
    assert attrs["uplift_model_class"] == name and attrs["uplift_family"] == cls.family
    assert set(json.loads(attrs["uplift_versions"])) == {"uplift", "pymc", "arviz"}
    loaded = load_model(path)
    assert type(loaded) is cls
    assert loaded.metric == saved.metric and loaded.tactic == "cross_sell"
    assert loaded.model_config() == saved.model_config()
    np.testing.assert_array_equal(
        loaded.idata.posterior["uplift"].values, saved.idata.posterior["uplift"].values
    )
    for other_name, other in CLASSES.items():
        if other is cls:
            continue
        with pytest.raises(ModelLoadError, match=f"holds {name}.*not a {other_name}.*load_model"):
            other.load(path)


def test_older_files_load_by_family_and_foreign_files_are_named(tmp_path):
    hurdle = CLASSES["HurdleRevenueModel"]
    conversion = CLASSES["ConversionUpliftModel"]
    old = tmp_path / "old.nc"
    model = _saved(hurdle, old, stamp=False)
    model.idata.attrs.update({"uplift_family": hurdle.family, "uplift_metric": "revenue"})
    model.save(old)
    assert type(load_model(old)) is hurdle
    # the silent relabel this replaces: a hurdle posterior loaded as a conversion model
    with pytest.raises(ModelLoadError, match="family 'hurdle_lognormal'"):
        conversion.load(old)
    foreign = tmp_path / "foreign.nc"
    az.from_dict({"posterior": {"x": np.zeros((1, 3))}}).to_netcdf(foreign)
    with pytest.raises(ModelLoadError, match="not a posterior saved by uplift"):
        conversion.load(foreign)
    with pytest.raises(ModelLoadError, match="no model uplift knows"):
        load_model(foreign)


def _non_default(name: str):
    """Each class with settings that differ from its defaults, so a load that rebuilt the
    defaults instead of the saved config fails."""
    from uplift.models.settings import (
        ConversionPriors,
        CountPriors,
        Parameterization,
        SpendPriors,
    )

    par = Parameterization("non_centered", "centered", auto_min_events=7.0)
    dims = {"segment_dims": ("tier", "region"), "interactions": False, "structure_baselines": True}
    cls = CLASSES[name]
    if name == "ConversionUpliftModel":
        return cls(priors=ConversionPriors(baseline_mu=-3.0), parameterization=par, **dims)
    if name == "HurdleRevenueModel":
        return cls(
            purchase_priors=ConversionPriors(effect_sigma=0.2),
            spend_priors=SpendPriors(log_mean_mu=5.5),
            parameterization=par,
            **dims,
        )
    if name == "NegBinomialCountModel":
        return cls(
            priors=CountPriors(log_alpha_mu=1.0), parameterization=par, metric="referrals", **dims
        )
    from uplift.models.price import PricePriors

    return cls(
        prices={"control": 10.0, "up": 12.0},
        reference_price=11.0,
        priors=PricePriors(baseline_sigma=0.7),
        parameterization=par,
    )


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_non_default_settings_are_rebuilt_on_load(tmp_path, name):
    model = _non_default(name)
    assert model.model_config() != CLASSES[name]().model_config() or name == "PriceResponseModel"
    model.tactic = "referral"
    model.idata = az.from_dict(
        {"posterior": {"uplift": np.zeros((2, 4, 1, 2))}},
        dims={"uplift": ["arm", "segment"]},
        coords={"arm": ["email"], "segment": ["a", "b"]},
    )
    model._stamp()
    path = model.save(tmp_path / f"{name}.nc")
    for loaded in (load_model(path), CLASSES[name].load(path)):
        assert type(loaded) is CLASSES[name]
        assert loaded.model_config() == model.model_config()
        assert loaded.parameterization == model.parameterization
        assert loaded.metric == model.metric


def test_a_config_that_does_not_rebuild_is_a_named_error(tmp_path):
    cls = CLASSES["ConversionUpliftModel"]
    model = _saved(cls, tmp_path / "ok.nc")
    model.idata.attrs["uplift_model_config"] = json.dumps({"baseline_sigma": -1.0})
    model.save(tmp_path / "bad.nc")
    with pytest.raises(ModelLoadError, match="does not rebuild the model.*baseline_sigma"):
        load_model(tmp_path / "bad.nc")
    model.idata.attrs["uplift_model_config"] = "{not json"
    model.save(tmp_path / "garbled.nc")
    with pytest.raises(ModelLoadError, match="does not rebuild the model"):
        cls.load(tmp_path / "garbled.nc")
