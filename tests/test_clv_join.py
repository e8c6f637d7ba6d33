"""CLV joined to experiments: value tier as a segment dimension, CLV as the value of a conversion.

The last test is the issue's acceptance check: one synthetic experiment, one posterior, two
allocations (constant value per conversion vs CLV-weighted); the CLV run must move budget toward
the high-value tier.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from uplift.value.clv_join import (
    ClvSegmentValue,
    attach_value_tier,
    load_customer_value,
    normalise_ids,
    tier_spend_share,
)


@pytest.fixture()
def customer_value() -> pd.DataFrame:
    # ids as text, as load_customer_value reads them
    return pd.DataFrame(
        {
            "customer_id": ["1", "2", "3", "4", "5", "6"],
            "clv_mean": [10.0, 20.0, 300.0, 500.0, 0.0, 40.0],
            "clv_hdi_low": [8.0, 15.0, 250.0, 400.0, 0.0, 0.0],
            "clv_hdi_high": [12.0, 26.0, 360.0, 620.0, 0.0, 90.0],
            "tier": ["low", "low", "high", "high", "low", "mid"],
        }
    )


@pytest.fixture()
def experiment_rows() -> pd.DataFrame:
    # integer ids (as in a parquet file); customer 7 has no CLV row
    return pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4, 6, 7],
            "needs": ["price", "price", "price", "quality", "quality", "price"],
            "arm": ["control", "email", "control", "email", "control", "email"],
        }
    )


# ---- ids and attach_value_tier ---------------------------------------------------------------


def test_ids_compare_as_text():
    assert list(normalise_ids(pd.Series([42, 7]))) == ["42", "7"]
    assert list(normalise_ids(pd.Series([42.0, np.nan, 1.5]))) == ["42", None, "1.5"]
    assert list(normalise_ids(pd.Series([" 42 ", "A7", None], dtype=object))) == ["42", "A7", None]


def test_attach_value_tier_joins_across_id_types(experiment_rows, customer_value):
    out = attach_value_tier(experiment_rows, customer_value)
    assert list(out["value_tier"]) == ["low", "low", "high", "high", "mid", "unknown"]
    assert "value_tier" not in experiment_rows.columns  # input untouched
    info = out.attrs["value_tier_join"]
    assert (info["matched"], info["missing"], info["missing_examples"]) == (5, 1, ["7"])


def test_attach_value_tier_missing_label_or_error(experiment_rows, customer_value):
    out = attach_value_tier(experiment_rows, customer_value, missing="new", new_col="clv_tier")
    assert out["clv_tier"].iloc[-1] == "new"
    with pytest.raises(ValueError, match=r"1 of 6 experiment customers have no CLV row.*'7'"):
        attach_value_tier(experiment_rows, customer_value, missing="error")
    with pytest.raises(ValueError, match="also a CLV tier label"):
        attach_value_tier(experiment_rows, customer_value, missing="low")


def test_attach_value_tier_refuses_confusing_inputs(experiment_rows, customer_value):
    with pytest.raises(ValueError, match="already have a column 'needs'"):
        attach_value_tier(experiment_rows, customer_value, new_col="needs")
    replaced = attach_value_tier(experiment_rows, customer_value, new_col="needs", overwrite=True)
    assert replaced["needs"].iloc[0] == "low"
    with pytest.raises(ValueError, match="no id column 'cid'"):
        attach_value_tier(experiment_rows, customer_value, id_col="cid")
    other = experiment_rows.assign(customer_id=experiment_rows["customer_id"] + 1000)
    with pytest.raises(ValueError, match="no experiment customer has a CLV row"):
        attach_value_tier(other, customer_value)
    dup = pd.concat([customer_value, customer_value.iloc[:1]])
    with pytest.raises(ValueError, match="customer_id must be unique"):
        attach_value_tier(experiment_rows, dup)


# ---- ClvSegmentValue -------------------------------------------------------------------------


def _segments(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": rows["customer_id"], "segment": rows["needs"]})


def test_value_is_mean_clv_of_segment_members(experiment_rows, customer_value):
    seg = _segments(experiment_rows)
    cells = pd.DataFrame({"segment": ["price", "quality", "variety"]})
    sv = ClvSegmentValue(customer_value, seg)
    v = sv.per_conversion(cells)
    # price: customers 1, 2, 3 (7 has no CLV); quality: 4, 6; variety: nobody -> overall mean
    overall = np.mean([10.0, 20.0, 300.0, 500.0, 40.0])
    assert v.loc["price"] == pytest.approx(np.mean([10.0, 20.0, 300.0]))
    assert v.loc["quality"] == pytest.approx(np.mean([500.0, 40.0]))
    assert v.loc["variety"] == pytest.approx(overall)
    assert sv.overall_value == pytest.approx(overall)
    assert v.attrs["fallback_segments"] == ["variety"]
    assert any("no CLV row" in n for n in sv.notes)
    assert any("'variety'" in n and "overall" in n for n in sv.notes)
    assert list(v.index) == ["price", "quality", "variety"] and v.index.name == "segment"

    med = ClvSegmentValue(customer_value, seg, statistic="median").per_conversion(cells)
    assert med.loc["price"] == pytest.approx(20.0)
    scaled = ClvSegmentValue(customer_value, seg, scale=0.5).per_conversion(cells)
    assert np.allclose(scaled, 0.5 * v)


def test_margin_is_not_applied_twice(experiment_rows, customer_value):
    seg = _segments(experiment_rows)
    with pytest.raises(ValueError, match="count it twice"):
        ClvSegmentValue(customer_value, seg, margin=0.3)
    with pytest.raises(ValueError, match="needs margin"):
        ClvSegmentValue(customer_value, seg, margin_already_applied=False)
    rev = ClvSegmentValue(customer_value, seg, margin_already_applied=False, margin=0.3)
    base = ClvSegmentValue(customer_value, seg)
    cells = pd.DataFrame({"segment": ["price", "quality"]})
    assert np.allclose(rev.per_conversion(cells), 0.3 * base.per_conversion(cells))


def test_clv_segment_value_errors_teach(experiment_rows, customer_value):
    seg = _segments(experiment_rows)
    with pytest.raises(ValueError, match="lacks column"):
        ClvSegmentValue(customer_value.drop(columns="clv_mean"), seg)
    with pytest.raises(ValueError, match="no experiment customer has a CLV row"):
        ClvSegmentValue(customer_value, seg.assign(customer_id=seg["customer_id"] + 99))
    with pytest.raises(ValueError, match="none of the cells' segments"):
        ClvSegmentValue(customer_value, seg).per_conversion(pd.DataFrame({"segment": ["a/b"]}))
    with pytest.raises(ValueError, match="statistic"):
        ClvSegmentValue(customer_value, seg, statistic="mode")  # type: ignore[arg-type]


def test_value_draws_match_point_values(experiment_rows, customer_value):
    seg = _segments(experiment_rows)
    cells = pd.DataFrame({"segment": ["price", "quality", "variety"]})
    sv = ClvSegmentValue(customer_value, seg)
    d = sv.per_conversion_draws(cells, n_draws=20_000, seed=1)
    assert d.dims == ("sample", "segment") and d.shape == (20_000, 3)
    point = sv.per_conversion(cells)
    assert np.allclose(d.mean("sample").values, point.values, rtol=0.03)
    # comonotone: a segment's spread is about as wide as its customers' intervals, not narrowed
    # by averaging; customer 3 and 4 intervals are ~ +-20% around the mean
    q = d.sel(segment="quality").quantile([0.03, 0.97]).values / point.loc["quality"]
    assert q[0] < 0.9 and q[1] > 1.1
    assert d.attrs["fallback_segments"] == ["variety"]
    with pytest.raises(ValueError, match="interval columns"):
        ClvSegmentValue(customer_value.drop(columns="clv_hdi_low"), seg).per_conversion_draws(cells)


# ---- load_customer_value ---------------------------------------------------------------------


def test_load_customer_value_reads_uplift_clv_output(tmp_path, customer_value):
    path = tmp_path / "customer_value.csv"
    customer_value.assign(customer_id=["001", "2", "3", "4", "5", "6"]).to_csv(path, index=False)
    (tmp_path / "clv_summary.json").write_text(json.dumps({"hdi_prob": 0.9}))
    cv = load_customer_value(path)
    assert cv["customer_id"].iloc[0] == "001"  # ids stay text: leading zeros survive
    assert cv.attrs["hdi_prob"] == 0.9
    assert (
        ClvSegmentValue(cv, pd.DataFrame({"customer_id": ["001"], "segment": ["a"]})).hdi_prob
        == 0.9
    )


def test_load_customer_value_errors(tmp_path, customer_value):
    with pytest.raises(ValueError, match="does not exist.*uplift clv"):
        load_customer_value(tmp_path / "absent.csv")
    with pytest.raises(ValueError, match="is a directory"):
        load_customer_value(tmp_path)
    bad = tmp_path / "bad.csv"
    customer_value.drop(columns="clv_mean").to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['clv_mean'\]"):
        load_customer_value(bad)
    customer_value.assign(clv_mean=["x", 1, 2, 3, 4, 5]).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"finite number.*'1'"):
        load_customer_value(bad)


# ---- acceptance: CLV-weighted value moves budget toward high-value customers -----------------

TIER_CLV = {"low": 40.0, "mid": 150.0, "high": 600.0}


@pytest.fixture(scope="module")
def clv_experiment():
    """A 30k-customer synthetic experiment, a CLV table for its customers, one fitted posterior.

    CLV is fabricated per customer around a tier mean (lognormal noise); its ``tier`` column is
    joined onto the experiment as ``clv_tier`` and used as a segment dimension, as a user would
    after ``uplift clv``.
    """
    import uplift
    from uplift.data import ColumnMap, aggregate_cells, validate_customers
    from uplift.data.synthetic import generate
    from uplift.pipeline import fit_tactics

    config = uplift.compose_config(
        [
            "data.synthetic.outcomes=conversion",
            "sampler=fast",
            "value=constant",
            "optimize.allow_unconverged=true",
        ]
    )
    arm_map = config.tactics.arm_map()
    exp = generate(arm_map, n_customers=30_000, seed=5)
    rows = exp.customers
    rng = np.random.default_rng(1)
    clv = rows["value_tier"].map(TIER_CLV).to_numpy() * np.exp(rng.normal(-0.125, 0.5, len(rows)))
    customer_value = pd.DataFrame(
        {
            "customer_id": rows["customer_id"].astype(str),
            "clv_mean": clv,
            "clv_hdi_low": 0.7 * clv,
            "clv_hdi_high": 1.4 * clv,
            "tier": rows["value_tier"],
        }
    )
    joined = attach_value_tier(rows, customer_value, new_col="clv_tier")
    data = validate_customers(joined, ColumnMap(segments=("clv_tier", "needs")), arm_map)
    cells = aggregate_cells(data)
    fits = fit_tactics(cells, data, config)
    return config, arm_map, data, cells, customer_value, {t: f.draws() for t, f in fits.items()}


def test_clv_value_moves_budget_to_high_value_segments(clv_experiment, record_property):
    from uplift.optimize import AllocationProblem
    from uplift.pipeline import build_allocator, eligible_customers
    from uplift.value.per_conversion import ConstantValue

    config, arm_map, data, cells, customer_value, draws = clv_experiment
    clv_value = ClvSegmentValue(customer_value, data.frame[["customer_id", "segment"]])
    by_clv = clv_value.per_conversion(cells)
    # the fair baseline: the same average value per conversion, without the tilt by segment
    constant = ConstantValue(clv_value.overall_value).per_conversion(cells)
    assert by_clv.filter(like="high/").min() > 3 * by_clv.filter(like="low/").max()

    eligible = eligible_customers(config, cells)
    shares = {}
    for name, values in (("constant", constant), ("clv", by_clv)):
        problem = AllocationProblem.from_uplift(draws, values, arm_map, eligible)
        allocation = build_allocator(config).solve(problem)
        assert allocation.total_spend == pytest.approx(config.optimize.budget, rel=0.01)
        shares[name] = {t: tier_spend_share(allocation.table, t) for t in TIER_CLV}
    record_property("high_tier_spend_share", shares)
    print(f"\nspend share by tier (budget {config.optimize.budget:,.0f}): {shares}")
    assert shares["clv"]["high"] > shares["constant"]["high"] + 0.1
    assert shares["clv"]["low"] <= shares["constant"]["low"]
