"""Per-tactic value per unit, price dilution, win-win price, cost to serve, share of wallet,
referral value and the retention ceiling, each against a hand-computed answer (issue #12)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from uplift.optimize import AllocationProblem
from uplift.optimize.allocator import AllocationError
from uplift.optimize.constraints import RetentionCeiling, constraint_from_config
from uplift.optimize.pricing import PriceOptimizer, PricingProblem
from uplift.tactics import Tactic
from uplift.value.tactic_value import (
    TACTIC_VALUES,
    check_overrides,
    native_family,
    price_dilution,
    referral_value,
    retention_ceiling,
    segment_cost_to_serve,
    segment_share_of_wallet,
    share_of_wallet,
    tactic_value_per_unit,
    win_win_index,
)

README = Path(__file__).resolve().parents[1] / "README.md"

# Two segments. a: 100 customers, revenue 1,000 over 50 orders (20 per order), 20 converters;
# b: 300 customers, revenue 600 over 60 orders (10 per order), 30 converters.
CELLS = pd.DataFrame(
    {
        "segment": ["a", "a", "b", "b"],
        "arm": ["control", "t", "control", "t"],
        "n": [50, 50, 150, 150],
        "conversions": [10, 10, 15, 15],
        "revenue_sum": [500.0, 500.0, 300.0, 300.0],
        "orders_sum": [25, 25, 30, 30],
    }
)


def cfg(**kw):
    base = {"kind": "observed", "margin": 0.5, "per_conversion": 30.0, "by_segment": {}}
    return SimpleNamespace(**(base | kw))


def value(tactic, metric, overrides=None, serve=None, **kw) -> dict[str, float]:
    out = tactic_value_per_unit(
        tactic, metric, CELLS, cfg(**kw), None, check_overrides(overrides or {}), serve
    )
    return {k: round(float(v), 9) for k, v in out.items()}


# ---- value per unit, one test per tactic -------------------------------------------------------


def test_cross_sell_new_category_purchase_is_worth_the_category_margin():
    # default: margin 0.5 x revenue per order (a: 1000/50 = 20 -> 10; b: 600/60 = 10 -> 5)
    assert value("cross_sell", "orders") == {"a": 10.0, "b": 5.0}
    assert value("cross_sell", "orders", {"cross_sell": {"category_margin": 7.5}}) == {
        "a": 7.5,
        "b": 7.5,
    }


def test_up_sell_spend_is_worth_its_margin():
    assert value("up_sell", "revenue") == {"a": 0.5, "b": 0.5}
    assert value("up_sell", "revenue", {"up_sell": {"margin": 0.3}}) == {"a": 0.3, "b": 0.3}


def test_frequency_order_is_worth_the_margin_per_order():
    assert value("frequency", "orders") == {"a": 10.0, "b": 5.0}
    assert value("frequency", "orders", {"frequency": {"margin_per_order": 4.0}}) == {
        "a": 4.0,
        "b": 4.0,
    }


def test_margin_conversion_is_worth_the_value_per_conversion():
    # observed: margin x revenue per converter (a: 1000/20 = 50 -> 25; b: 600/30 = 20 -> 10)
    assert value("margin", "conversion") == {"a": 25.0, "b": 10.0}


def test_retention_keeps_the_clv_if_kept_net_of_cost_to_serve():
    assert value("retention", "conversion") == {"a": 25.0, "b": 10.0}
    serve = pd.Series({"a": 4.0, "b": 1.0})
    assert value("retention", "conversion", serve=serve) == {"a": 21.0, "b": 9.0}
    over = {"retention": {"clv_if_kept": 120.0}}
    assert value("retention", "conversion", over, serve=serve) == {"a": 116.0, "b": 119.0}


def test_referral_is_worth_a_referred_customers_clv_net_of_acquisition_cost():
    over = {"referral": {"referred_clv": 80.0, "acquisition_cost": 15.0}}
    assert value("referral", "orders", over) == {"a": 65.0, "b": 65.0}
    assert value("referral", "referrals", over) == {"a": 65.0, "b": 65.0}
    # default referred CLV: the customer-weighted mean value per conversion:
    # (100 x 25 + 300 x 10) / 400 = 13.75; not the referrer's order value (10 and 5)
    assert value("referral", "orders") == {"a": 13.75, "b": 13.75}
    assert referral_value(80.0, 15.0) == 65.0


def test_cost_to_serve_tactic_is_worth_the_cost_saved():
    serve = pd.Series({"a": 40.0, "b": 10.0})
    over = {"cost_to_serve": {"saving_share": 0.25}}
    assert value("cost_to_serve", "conversion", over, serve=serve) == {"a": 10.0, "b": 2.5}
    over = {"cost_to_serve": {"saving_per_customer": 3.0}}
    assert value("cost_to_serve", "conversion", over, serve=serve) == {"a": 3.0, "b": 3.0}
    with pytest.raises(ValueError, match="saving_per_customer"):
        value("cost_to_serve", "conversion")


def test_binary_tactics_keep_todays_value_and_config_overrides_any_tactic():
    """A tactic fit as a binary conversion (the default) is valued per conversion exactly as
    before; value.tactics.<t>.per_unit / by_segment override whatever the model."""
    for t in ("cross_sell", "up_sell", "frequency", "referral"):
        assert value(t, "conversion") == {"a": 25.0, "b": 10.0}
    over = {"up_sell": {"per_unit": 2.0, "by_segment": {"b": 3.0}}}
    assert value("up_sell", "revenue", over) == {"a": 2.0, "b": 3.0}
    with pytest.raises(ValueError, match="unknown segment"):
        value("up_sell", "revenue", {"up_sell": {"per_unit": 1.0, "by_segment": {"zz": 1.0}}})


def test_cost_to_serve_is_taken_off_every_conversion_but_not_off_units():
    serve = pd.Series({"a": 5.0, "b": 2.0})
    assert value("cross_sell", "conversion", serve=serve) == {"a": 20.0, "b": 8.0}
    assert value("frequency", "orders", serve=serve) == {"a": 10.0, "b": 5.0}


def test_overrides_are_checked_by_name():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['referred_clv'\]"):
        check_overrides({"up_sell": {"referred_clv": 3}})
    with pytest.raises(ValueError, match="unknown tactic 'upsell'"):
        check_overrides({"upsell": {"per_unit": 3}})
    with pytest.raises(ValueError, match="not a number"):
        check_overrides({"referral": {"acquisition_cost": "ten"}})


def test_readme_tactic_table_matches_the_registry():
    text = README.read_text()
    for rule in TACTIC_VALUES.values():
        row = re.search(rf"^\| `{rule.tactic.value}` \|(.+)$", text, re.M)
        assert row, f"README tactic table lacks {rule.tactic.value}"
        family = native_family(rule.tactic)
        assert f"`{rule.outcome}`" in row.group(1) and f"`{family}`" in row.group(1)
    assert set(TACTIC_VALUES) == set(Tactic) - {Tactic.CONTROL}


# ---- cost to serve ------------------------------------------------------------------------------


def test_segment_cost_to_serve_reads_control_column_then_config():
    frame = pd.DataFrame(
        {
            "segment": ["a", "a", "a", "b", "b"],
            "arm": ["control", "control", "t", "control", "t"],
            "cost_to_serve": [2.0, 4.0, 100.0, 6.0, 0.0],
        }
    )
    got = segment_cost_to_serve(frame, control_arm="control")
    assert got.to_dict() == {"a": 3.0, "b": 6.0}  # control rows only: (2 + 4) / 2, 6
    got = segment_cost_to_serve(frame, control_arm="control", by_segment={"b": 1.5})
    assert got.to_dict() == {"a": 3.0, "b": 1.5}
    assert segment_cost_to_serve(frame, column=None, constant=2.0).to_dict() == {"a": 2.0, "b": 2.0}
    assert segment_cost_to_serve(frame, column=None) is None


# ---- price dilution and win-win -------------------------------------------------------------------


def test_price_dilution_is_the_discount_paid_to_baseline_buyers():
    # 200 customers, 30% buy at today's 10; at 8 each baseline buyer pays 2 less: 200 x .3 x 2
    d = price_dilution(np.array([[0.3], [0.4]]), np.array([8.0]), np.array([10.0]), np.array([200]))
    assert d.tolist() == [[120.0], [160.0]]
    assert (
        price_dilution(np.array([[0.3]]), np.array([12.0]), np.array([10.0]), np.array([200]))[0, 0]
        == 0.0
    )


def test_win_win_price_is_the_lowest_price_that_keeps_todays_profit():
    # grid 8, 9, 10 (today), 11; expected profit 90, 101, 100, 120: the lowest price <= today
    # with profit >= 100 is 9 (8 loses profit; 11 earns more but charges more)
    profit = np.array([[[90.0, 101.0, 100.0, 120.0]]])
    assert win_win_index(profit, np.array([8.0, 9.0, 10.0, 11.0]), np.array([2])).tolist() == [1]
    # nothing lower keeps profit: today's price
    profit = np.array([[[50.0, 60.0, 100.0, 120.0]]])
    assert win_win_index(profit, np.array([8.0, 9.0, 10.0, 11.0]), np.array([2])).tolist() == [2]


def test_pricing_table_reports_dilution_and_win_win_beside_cost_plus():
    """One segment, 100 customers, unit cost 2; demand 0.6 / 0.5 / 0.45 at prices 4 / 5 / 6
    (one draw). Profit: 120, 150, 180 -> chosen 6. Today 5: win-win is the lowest price <= 5
    with profit >= 150, i.e. 5 itself (4 earns 120). With today = 6 the win-win is 5?
    No: 150 < 180, so 6. Dilution at the chosen price 6 vs today 5: none."""
    demand = np.array([[[0.6, 0.5, 0.45]]])
    prob = PricingProblem(demand, np.array([4.0, 5.0, 6.0]), ("a",), [2.0], [100.0], [5.0])
    t = PriceOptimizer(cost_plus_markup=1.0).solve(prob).table.iloc[0]
    assert t["price"] == 6.0 and t["cost_plus_price"] == 4.0
    assert t["price_dilution"] == 0.0
    assert t["win_win_price"] == 5.0 and t["win_win_expected_profit"] == pytest.approx(150.0)
    assert t["win_win_prob_not_worse"] == 1.0
    # today 6 and a rule forcing price 4: dilution 100 x 0.45 x (6 - 4) = 90
    demand = np.array([[[0.9, 0.5, 0.45]]])  # profit 180, 150, 180: win-win = 4 (ties today's)
    prob = PricingProblem(demand, np.array([4.0, 5.0, 6.0]), ("a",), [2.0], [100.0], [6.0])
    t = PriceOptimizer().solve(prob).table.iloc[0]
    assert t["win_win_price"] == 4.0 and t["win_win_price_dilution"] == pytest.approx(90.0)
    assert t["price"] in (4.0, 6.0)
    assert t["price_dilution"] == pytest.approx(90.0 if t["price"] == 4.0 else 0.0)


# ---- share of wallet ------------------------------------------------------------------------------


def test_share_of_wallet_from_a_wallet_column_and_from_category_breadth():
    rev = pd.Series([100.0, 50.0, 0.0], index=["c1", "c2", "c3"])
    w = share_of_wallet(rev, wallet=pd.Series([400.0, 50.0, 200.0], index=rev.index), margin=0.5)
    assert w["share_of_wallet"].tolist() == [0.25, 1.0, 0.0]
    assert w["headroom"].tolist() == [300.0, 0.0, 200.0]
    assert w["headroom_worth"].tolist() == [150.0, 0.0, 100.0]
    # breadth: 2 of 8 categories for 100 -> implied wallet 400, headroom 300; capture 0.1
    b = share_of_wallet(
        rev,
        categories=pd.Series([2, 8, 0], index=rev.index),
        n_categories=8,
        margin=0.5,
        capture=0.1,
    )
    assert b["share_of_wallet"].tolist() == [0.25, 1.0, 0.0]
    assert b["headroom"].tolist() == [300.0, 0.0, 0.0]
    assert b["headroom_worth"].tolist() == pytest.approx([15.0, 0.0, 0.0])
    seg = segment_share_of_wallet(w, pd.Series(["x", "x", "y"], index=rev.index)).set_index(
        "segment"
    )
    assert seg.loc["x", "share_of_wallet"] == pytest.approx(150.0 / 450.0)  # money, not mean ratio
    assert seg.loc["x", "headroom_worth_per_customer"] == 75.0


# ---- retention ceiling ----------------------------------------------------------------------------


def test_retention_ceiling_is_value_lost_times_the_drop_in_churn():
    # value if kept 200; the call lowers P(leave) by 0.05 / 0.10 / 0.15 over three draws -> 10, 20, 30
    c = retention_ceiling(np.array([200.0]), np.array([[0.05], [0.10], [0.15]]), 0.94).iloc[0]
    assert c["mean"] == pytest.approx(20.0)
    assert c["hdi_low"] == pytest.approx(10.0) and c["hdi_high"] == pytest.approx(30.0)
    assert c["prob_positive"] == 1.0


def _retention_problem(cost: float) -> AllocationProblem:
    """Segment g (100 customers), one retention arm: value 200 x uplift draws 0.05/0.10/0.15,
    so the ceiling is 10/20/30 per customer (mean 20); profit draws are ceiling - cost."""
    cells = pd.DataFrame(
        {"segment": ["g"], "tactic": ["retention"], "arm": ["call"], "cost": [cost]}
    )
    ceiling = np.array([[10.0], [20.0], [30.0]])
    return AllocationProblem(cells, ceiling - cost, pd.Series({"g": 100.0}))


def test_retention_ceiling_rule_caps_spend_at_the_ceiling_and_is_named_when_infeasible():
    from uplift.optimize import BudgetAllocator
    from uplift.optimize.constraints import TacticSpend, TotalBudget

    rule = constraint_from_config({"type": "retention_ceiling"})
    assert isinstance(rule, RetentionCeiling) and rule.name == "retention_ceiling"
    p = _retention_problem(cost=15.0)
    assert rule.ceiling(p).tolist() == [20.0]
    r = rule.rows(p)
    assert r.labels == ["g"] and r.A.tolist() == [[-5.0]]  # cost 15 - ceiling 20 <= 0: holds
    strict = RetentionCeiling(quantile=0.25)  # 25% quantile of 10, 20, 30 = 15: ties the cost
    assert strict.ceiling(p).tolist() == [15.0]
    p = _retention_problem(cost=18.0)
    assert strict.slack(np.array([10.0]), p) == pytest.approx(-30.0)  # 10 x (15 - 18)
    alloc = BudgetAllocator([TotalBudget(5000.0), strict], integer=False).solve(p)
    assert alloc.table["customers"].sum() == 0  # mean profit 2 > 0, but cost > cautious ceiling
    with pytest.raises(AllocationError, match="retention_ceiling"):
        BudgetAllocator(
            [TotalBudget(5000.0), strict, TacticSpend("retention", min_spend=180.0)],
            integer=False,
        ).solve(p)


# ---- in a run (fake sampler: wiring only) ----------------------------------------------------------


def _run_customers(n: int = 300, seed: int = 5) -> pd.DataFrame:
    """Two segments, a retention call and a referral bonus against control; every customer has a
    cost to serve (segment x: 10, y: 4 among control customers) and a wallet of 100."""
    rng = np.random.default_rng(seed)
    rows = []
    for seg, serve in (("x", 10.0), ("y", 4.0)):
        for arm, p in (("control", 0.5), ("call", 0.6), ("bonus", 0.55), ("move", 0.5)):
            conv = rng.binomial(1, p, n)
            rows.append(
                pd.DataFrame(
                    {
                        "segment": seg,
                        "arm": arm,
                        "converted": conv,
                        "revenue": conv * 40.0,
                        "serve": serve if arm == "control" else serve + 1.0,
                        "wallet": 100.0,
                    }
                )
            )
    out = pd.concat(rows, ignore_index=True)
    out.insert(0, "customer_id", np.arange(1, len(out) + 1))
    return out


def _run_overrides(path: Path, *extra: str) -> list[str]:
    return [
        "data=csv",
        f"data.path={path}",
        "data.columns.orders=null",
        "data.columns.segments=[segment]",
        "data.columns.cost_to_serve=serve",
        "data.columns.wallet=wallet",
        "tactics=custom",
        "+tactics.arms.control={tactic: control}",
        "+tactics.arms.call={tactic: retention, cost: 2.0}",
        "+tactics.arms.bonus={tactic: referral, cost: 1.0}",
        "+tactics.arms.move={tactic: cost_to_serve, cost: 0.5}",
        "+value.tactics={cost_to_serve: {saving_share: 0.5}}",
        "value.margin=0.5",
        "optimize.budget=1000",
        "sampler=fast",
        "optimize.allow_unconverged=true",
        "optimize.frontier.enabled=false",
        "evaluate.crossfit_folds=0",
        "report.plots=false",
        *extra,
    ]


def test_run_writes_value_tables_net_of_cost_to_serve(tmp_path, fake_sampler):
    import uplift

    csv = tmp_path / "customers.csv"
    df = _run_customers()
    df.to_csv(csv, index=False)
    out = tmp_path / "run"
    rule = "optimize.constraints=[{type: total_budget, budget: 1000}, {type: retention_ceiling}]"
    uplift.run(uplift.compose_config(_run_overrides(csv, rule)), out)

    v = pd.read_csv(out / "value_per_unit.csv", keep_default_na=False).set_index(
        ["tactic", "segment"]
    )
    assert list(v.reset_index().columns[:-1]) == [
        "tactic", "segment", "metric", "family", "native_family", "native_outcome",
        "value_per_unit", "cost_to_serve", "source",
    ]  # fmt: skip
    # observed value: margin 0.5 x 40 per converter = 20, minus cost to serve 10 (x) / 4 (y)
    assert v.loc[("retention", "x"), "value_per_unit"] == pytest.approx(10.0)
    assert v.loc[("retention", "y"), "value_per_unit"] == pytest.approx(16.0)
    assert v.loc[("retention", "x"), "source"] == "native"
    assert v.loc[("referral", "x"), "source"] == "metric"  # a binary fit: value per conversion
    assert v.loc[("referral", "y"), "value_per_unit"] == pytest.approx(16.0)
    # moving a customer to the cheaper channel saves half their cost to serve: 5 (x), 2 (y)
    assert v.loc[("cost_to_serve", "x"), "value_per_unit"] == pytest.approx(5.0)
    assert v.loc[("cost_to_serve", "y"), "value_per_unit"] == pytest.approx(2.0)

    c = pd.read_csv(out / "retention_ceiling.csv")
    assert set(c["segment"]) == {"x", "y"} and set(c["arm"]) == {"call"}
    row = c.set_index("segment").loc["x"]
    assert row["value_if_kept"] == pytest.approx(10.0)
    assert row["ceiling"] == pytest.approx(10.0 * row["effect"], rel=1e-4)
    assert row["ceiling_hdi_low"] <= row["ceiling"] <= row["ceiling_hdi_high"]

    w = pd.read_csv(out / "share_of_wallet_by_segment.csv").set_index("segment")
    conv = df.groupby("segment")["converted"].sum()
    assert w.loc["x", "share_of_wallet"] == pytest.approx(
        conv["x"] * 40.0 / (1200 * 100.0), rel=1e-5
    )
    per_customer = pd.read_csv(out / "share_of_wallet.csv")
    assert len(per_customer) == len(df) and "headroom_worth" in per_customer.columns
    assert w.loc["x", "customers"] == 4 * 300

    alloc = pd.read_csv(out / "allocation.csv")
    assert "retention" in set(alloc["tactic"])


def test_bad_cost_to_serve_column_is_named_before_sampling(tmp_path, no_sampling):
    import uplift
    from uplift.data import DataValidationError

    csv = tmp_path / "customers.csv"
    _run_customers(n=20).assign(serve=-1.0).to_csv(csv, index=False)
    with pytest.raises(DataValidationError, match=r"'serve' \(data.columns.cost_to_serve\)"):
        uplift.run(uplift.compose_config(_run_overrides(csv)), tmp_path / "a")
    with pytest.raises(ValueError, match="value.tactics.referral: unknown key"):
        uplift.compose_config(_run_overrides(csv, "+value.tactics={referral: {clv: 3}}"))


# ---- customer value (uplift clv): net of cost to serve, headroom, retention ceiling -------------


def _clv_draws():
    import xarray as xr

    def da(rows):
        return xr.DataArray(
            np.array(rows, dtype=float),
            dims=("sample", "customer"),
            coords={"customer": ["A", "B"]},
        )

    return xr.Dataset(
        {
            "clv": da([[100, 10], [120, 10]]),
            "p_alive": da([[0.5, 1.0], [0.5, 1.0]]),
            "clv_if_alive": da([[200, 10], [240, 10]]),
        }
    )


def test_value_table_nets_cost_to_serve_adds_headroom_and_retention_ceiling():
    """A: CLV 100/120 at P(alive) 0.5, cost to serve 20 -> 100 - 10, 120 - 10: mean 100; value
    if kept 200 - 20, 240 - 20. B: CLV 10, always alive, cost 15 -> -5; headroom worth 30 ->
    strategic 25, grows on it. Retention effect 0.1 (sd 0): ceiling A (180 + 220) / 2 x 0.1
    = 20, B -0.5."""
    from uplift.value.tiers import value_table

    seg = pd.Series({"A": "s", "B": "s"})
    t = value_table(
        _clv_draws(),
        segments=seg,
        cost_to_serve=pd.Series({"A": 20.0, "B": 15.0}),
        headroom_worth=pd.Series({"A": 0.0, "B": 30.0}),
        retention_effect=pd.DataFrame({"mean": [0.1], "sd": [0.0]}, index=["s"]),
    )
    assert t["actual_value"].tolist() == pytest.approx([100.0, -5.0])
    assert t["cost_to_serve"].tolist() == [20.0, 15.0]
    assert t["strategic_value"].tolist() == pytest.approx([100.0, 25.0])
    assert t["upside"].tolist() == [0.0, 30.0]
    assert t["retention_ceiling"].tolist() == pytest.approx([20.0, -0.5])
    assert t["retention_ceiling_hdi_low"].tolist() == pytest.approx([18.0, -0.5])
    assert t["action"].tolist() == ["keep", "grow"]
    # without the options nothing changes: actual = CLV
    plain = value_table(_clv_draws())
    assert plain["actual_value"].tolist() == pytest.approx([110.0, 10.0])
    assert "cost_to_serve" not in plain.columns and "upside" not in plain.columns


@pytest.mark.slow  # two CDNOW CLV fits (Laplace), ~90 s on 2 busy cores
def test_clv_run_uses_attributes_and_retention_effect(tmp_path):
    """``uplift clv`` with clv.attributes_path (cost to serve 5, wallet 1,000 per customer) and
    an uplift run whose retention arm lowers P(leave) by 0.1 in both segments: customer_value.csv
    has value net of cost to serve, share of wallet, headroom worth and the retention ceiling."""
    import json

    from uplift import compose_config
    from uplift.app.clv_run import run_clv
    from uplift.value.datasets import load_cdnow

    ids = load_cdnow().transactions["customer_id"].astype(str).unique()
    pd.DataFrame({"customer_id": ids, "cost_to_serve": 5.0, "wallet": 1000.0}).to_csv(
        tmp_path / "attrs.csv", index=False
    )
    pd.DataFrame(
        {"customer_id": ids, "segment": np.where(np.arange(len(ids)) % 2 == 0, "a", "b")}
    ).to_csv(tmp_path / "segments.csv", index=False)
    pd.DataFrame(
        {
            "tactic": ["retention"] * 4,
            "segment": ["a", "a", "b", "b"],
            "metric": ["conversion", "profit_per_treated"] * 2,
            "mean": [0.1, 1.0, 0.1, 1.0],
            "sd": [0.0, 0.5, 0.0, 0.5],
        }
    ).to_csv(tmp_path / "uplift.csv", index=False)
    base = ["experiment=cdnow_clv", "clv.method=laplace"]
    run_clv(compose_config(base), tmp_path / "plain")
    run_clv(
        compose_config(
            [
                *base,
                f"clv.attributes_path={tmp_path / 'attrs.csv'}",
                f"clv.uplift_path={tmp_path / 'uplift.csv'}",
                f"clv.segments_path={tmp_path / 'segments.csv'}",
            ]
        ),
        tmp_path / "out",
    )
    plain = pd.read_csv(tmp_path / "plain" / "customer_value.csv", dtype={"customer_id": str})
    cv = pd.read_csv(tmp_path / "out" / "customer_value.csv", dtype={"customer_id": str})
    cv = cv.set_index("customer_id").loc[plain["customer_id"]]
    net = plain["clv_mean"].to_numpy() - 5.0 * plain["p_alive"].to_numpy()
    np.testing.assert_allclose(cv["clv_mean"], net, rtol=1e-4, atol=1e-3)
    assert (cv["cost_to_serve"] == 5.0).all()
    share = cv["projected_revenue"] / 1000.0
    np.testing.assert_allclose(cv["share_of_wallet"], share.clip(upper=1.0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        cv["headroom_worth"], 0.3 * (1000.0 - cv["projected_revenue"]).clip(lower=0), rtol=1e-4
    )  # cdnow_clv: clv.margin 0.3, capture 1
    # 0.1 x (value if kept - 5), and value if kept >= CLV: above 1.5 where CLV is above 20
    rich = (plain["clv_mean"] > 20).to_numpy()
    assert rich.sum() > 100 and (cv["retention_ceiling"].to_numpy()[rich] > 1.5).all()
    assert (cv["retention_ceiling_hdi_low"] <= cv["retention_ceiling"] + 1e-6).all()
    assert (cv["retention_ceiling"] <= cv["retention_ceiling_hdi_high"] + 1e-6).all()
    assert json.loads((tmp_path / "out" / "clv_summary.json").read_text())
