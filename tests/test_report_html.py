"""report.html's words and numbers, without a browser: the action sentences per arm, the plan's
value, what more budget returns, the readout explained against the plan, the model's health,
downloads, and number formatting (report.md too). The browser test is test_report_browser.py."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from uplift.report.formatting import Kind, cell, column_kind, money, percent, significant
from uplift.report.html import (
    HtmlInputs,
    actions,
    budget_step_text,
    health,
    plan_value,
    readout_notes,
    render_html,
)
from uplift.report.markdown import md_table

PLAN = pd.DataFrame(
    [
        # tactic, arm, customers, segments, spend, profit, low, high, p>0, p<0, unit
        (
            "cross_sell",
            "womens_email",
            12340,
            9,
            6170.0,
            14200.0,
            9800.0,
            18100.0,
            0.98,
            0.02,
            "customers",
        ),
        ("cross_sell", "mens_email", 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, "customers"),
        ("retention", "call", 1, 1, 2.0, 30000.0, 25000.0, 36000.0, 1.0, 0.0, "customers"),
        ("frequency", "ads", 0, 3, 2500.0, 4100.5, -200.0, 8000.0, 0.9, 0.1, "spend"),
    ],
    columns=[
        "tactic",
        "arm",
        "customers",
        "segments",
        "spend",
        "expected_profit",
        "profit_hdi_low",
        "profit_hdi_high",
        "prob_profit_positive",
        "prob_loss",
        "unit",
    ],
)


def text(markup: object) -> str:
    """What a reader sees of ``markup``."""
    return html.unescape(re.sub(r"<[^>]+>", "", str(markup)))


def test_one_action_per_arm_that_gets_customers_best_first():
    acts = actions(PLAN, 0.94, "$")
    assert [a["arm"] for a in acts] == ["call", "womens_email", "ads"]  # by expected profit
    womens = text(acts[1]["text"])
    assert womens == (
        "Give Womens email (arm womens_email, tactic cross_sell) to 12,340 customers in 9 "
        "segments: spend $6,170, expected profit $14,200 (94% likely between $9,800 and "
        "$18,100), chance of a loss 2%."
    )
    call = text(acts[0]["text"])
    assert "to 1 customer in 1 segment: spend $2.00" in call
    assert call.endswith("chance of a loss < 0.1%.")  # none in the draws is not a certain 0%
    ads = text(acts[2]["text"])
    assert ads.startswith("Spend $2,500 on Ads (arm ads, tactic frequency) across 3 segments:")
    assert "between -$200.00 and $8,000" in ads


def test_action_text_from_the_data_is_escaped():
    hostile = PLAN.assign(arm=["<b>x</b>", "m", "c", "a"])
    markup = str(actions(hostile, 0.94, "$")[1]["text"])
    assert "<b>x</b>" not in markup and "&lt;b&gt;x&lt;/b&gt;" in markup
    assert "<strong>" in markup  # the report's own emphasis stays markup


SUMMARY = {
    "experiment": "demo",
    "n_customers": 1000,
    "segments": 2,
    "tactics": ["cross_sell"],
    "budget": 20000.0,
    "hdi_prob": 0.94,
    "seed": 1,
    "total_spend": 20000.0,
    "customers_treated": 12341,
    "expected_incremental_profit": 119884.0,
    "profit_hdi": [94752.0, 145306.0],
    "optimizer": {"binding_constraints": ["total_budget", "contact_cap"]},
    "gate": {"passed": True, "failures": {}, "overridden": False},
    "diagnostics": {
        "cross_sell": {
            "r_hat_max": 1.0031,
            "ess_bulk_min": 1446.4,
            "ess_tail_min": 2075.5,
            "divergences": 0,
            "pareto_k": None,
        }
    },
    "seconds": {"fit": 1.0},
}
STEP = {
    "budget": 20000.0,
    "step": 1000.0,
    "spend": 20000.0,
    "expected_profit": 119884.0,
    "expected_profit_gain": 4423.27,
    "spend_gain": 1000.0,
    "marginal_return": 4.42,
}


def test_plan_value_calibrated_and_not():
    calibrated = SUMMARY | {
        "plan_value": {
            "trust": "calibrated",
            "calibrated": 118000.0,
            "calibrated_ci": [93000.0, 146000.0],
            "crossfit": 124778.0,
            "crossfit_ci": [97329.0, 152227.0],
            "posterior": 119884.0,
            "optimism_gap": 3768.0,
            "note": "no sign of selection optimism",
        },
        "crossfit": {"level": 0.9, "folds": 2},
    }
    first, check = plan_value(calibrated, "€")
    assert first.startswith("The number to plan on: €118,000 of incremental profit")
    assert "(90% likely between €93,000 and €146,000)" in first
    assert "2-fold cross-fitting) earned €124,778 (90% interval €97,329 to €152,227)" in check
    assert "claimed €3,768 more than they earned, so the number to plan on is €1,884 below" in check
    clean = calibrated | {"crossfit": {"level": 0.9, "folds": 2, "fold_fits": {"checked": 12}}}
    assert len(plan_value(clean, "€")) == 2  # every fold fit passed: nothing to qualify
    bad = ["fold 1 retention: divergences=3 > 0"]
    shaky = calibrated | {
        "crossfit": {"level": 0.9, "folds": 2, "fold_fits": {"checked": 12, "unconverged": bad}}
    }
    assert plan_value(shaky, "€")[2] == (
        "Less certain: 1 of 12 fits behind that check did not pass the convergence gate "
        "(fold 1 retention: divergences=3 > 0); crossfit_folds.csv counts them per fold."
    )
    modest = calibrated | {"plan_value": calibrated["plan_value"] | {"optimism_gap": -355.0}}
    assert "earned €355.00 more than they claimed: no sign" in plan_value(modest, "€")[1]
    first, check = plan_value(SUMMARY, "$")
    assert "$119,884" in first and "94% likely between $94,752 and $145,306" in first
    assert check.startswith("Not checked on held-out customers (cross-fitting is off")
    skipped = SUMMARY | {"crossfit": {"skipped": "too few control customers"}}
    assert "skipped: too few control customers" in plan_value(skipped, "$")[1]
    assert plan_value({"experiment": "x"}, "$") == []  # no plan, no value


def test_what_one_more_step_of_budget_returns():
    assert budget_step_text(SUMMARY | {"budget_step": STEP}, "$") == (
        "One more $1,000 of budget would return about $4,423 of expected profit ($4.42 per "
        "extra $1.00 at the margin, from the plan re-solved at a budget of $21,000; the "
        "efficient frontier below)."
    )
    slack = SUMMARY | {"budget_step": STEP | {"spend": 15523.0, "expected_profit_gain": 0.0}}
    assert "would return nothing" in budget_step_text(slack, "$")
    assert "contact_cap" in budget_step_text(slack, "$")  # the rule that binds instead
    off = budget_step_text(SUMMARY, "$")
    assert "optimize.frontier.enabled=false" in off
    skipped = budget_step_text(SUMMARY | {"budget_step": {"skipped": "no budget rule"}}, "$")
    assert skipped.endswith("is not known: no budget rule.")
    assert "no plan" in budget_step_text({"budget": 1.0}, "$")
    assert "price test" in budget_step_text({"pricing": {"margin": {}}}, "$")


READOUT = pd.DataFrame(
    {
        "tactic": ["retention"] * 3,
        "arm": ["call"] * 3,
        "segment": ["__overall__", "high/price", "low/price"],
        "recommendation": ["stop", "ship", "stop"],
        "profit_mean": [-0.85, 9.06, -2.0],
        "prob_profit_positive": [0.0, 1.0, 0.0],
    }
)
ALLOC = pd.DataFrame(
    {
        "segment": ["high/price", "low/price"],
        "tactic": ["retention"] * 2,
        "arm": ["call"] * 2,
        "decision": [1.0, 0.0],
    }
)


def test_readout_stop_explained_where_the_plan_uses_the_arm():
    notes = readout_notes(READOUT, PLAN, ALLOC, "$")
    assert len(notes) == 1
    note = notes[0]
    assert "says “stop” for Call (arm call)" in note
    assert "-$0.85 per treated customer" in note
    assert "(high/price), where it pays ($9.06 per treated customer)" in note
    assert "the overall recommendation is for shipping to everyone" in note
    shipped = READOUT.assign(recommendation="ship")
    idle = PLAN.assign(customers=0, spend=0.0)
    assert "yet the plan gives it nobody" in readout_notes(shipped, idle, ALLOC, "$")[0]


def test_health_in_plain_words():
    gate = {"r_hat_max": 1.01, "ess_bulk_min": 400, "divergences_max": 0}
    ok, lines = health(SUMMARY, gate)
    assert ok and lines[0].startswith("All 1 fit passed the convergence gate")
    joined = " ".join(lines)
    assert "largest r-hat is 1.003 (at most 1.01" in joined
    assert "1,446 in the bulk and 2,076 in the tails (at least 400 required)" in joined
    assert "never diverged" in joined
    bad = SUMMARY | {
        "gate": {
            "passed": False,
            "failures": {"cross_sell": ["r_hat 1.05 > 1.01"]},
            "overridden": True,
        },
        "diagnostics": {
            "cross_sell": SUMMARY["diagnostics"]["cross_sell"]
            | {"r_hat_max": 1.05, "divergences": 3}
        },
    }
    ok, lines = health(bad, gate)
    joined = " ".join(lines)
    assert not ok and "failed for cross_sell" in lines[0] and "allow_unconverged" in lines[0]
    assert "Some chains DISAGREE" in joined and "diverged 3 times" in joined


def _inputs(tmp_path: Path, **kw) -> HtmlInputs:
    uplift = pd.DataFrame(
        {
            "tactic": "cross_sell",
            "arm": "womens_email",
            "segment": ["a", "b"],
            "metric": "profit_per_treated",
            "mean": [1.5, -0.2],
            "hdi_low": [0.5, -1.0],
            "hdi_high": [2.5, 0.6],
            "prob_positive": [0.99, 0.3],
        }
    )
    return HtmlInputs(summary=SUMMARY | kw.pop("summary", {}), uplift=uplift, **kw)


def test_downloads_embedded_when_small_else_linked(tmp_path):
    small = tmp_path / "allocation.csv"
    small.write_text("segment,customers\na,1\n")
    big = tmp_path / "targets.csv"
    big.write_bytes(b"customer_id\n" + b"1\n" * 600)
    page = render_html(
        _inputs(tmp_path, downloads={"allocation.csv": small, "targets.csv": big}),
        embed_limit=1000,
    )
    assert 'href="data:text/csv;charset=utf-8;base64,' in page
    assert 'href="targets.csv" download="targets.csv" data-embedded="no"' in page
    assert "targets.csv is larger than" in page and "beside this report" in page


def test_report_html_is_self_contained_with_a_warning_when_the_gate_was_overridden(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([0, 1])
    png = tmp_path / "uplift_forest.png"
    fig.savefig(png)
    inputs = _inputs(
        tmp_path,
        summary={"gate": {"passed": False, "failures": {"cross_sell": ["x"]}, "overridden": True}},
        figures={"forest": png},
    )
    page = render_html(inputs)
    assert page.index('id="gate-warning"') < page.index("What to do")  # the banner first
    assert '<img src="data:image/png;base64,' in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from the network
    assert "default-src 'none'" in page  # and the page may not fetch anything
    # without a plan the first screen says why
    refused = _inputs(
        tmp_path, summary={"gate": {"message": "optimizer refused x", "passed": False}}
    )
    no_plan = render_html(
        HtmlInputs(
            summary={
                k: v
                for k, v in refused.summary.items()
                if k not in ("total_spend", "expected_incremental_profit")
            },
            uplift=refused.uplift,
        )
    )
    assert 'id="no-plan"' in no_plan and "optimizer refused x" in no_plan


def test_numbers_never_in_scientific_notation_in_report_md():
    frame = pd.DataFrame(
        {
            "segment": ["a", "b"],
            "customers": np.array([4505, 12], dtype=np.int64),
            "spend": [4505.0, 9.5],
            "expected_incremental_profit": [42938.2, 0.123],
            "prob_profit_positive": [0.99995, 0.5],
            "mean": [0.0001234, 12345.6],
            "gate_passed": [True, False],
        }
    )
    table = md_table(frame)
    assert "e+" not in table and "e-" not in table
    assert "| a | 4,505 | 4,505 | 42,938 | 1 | 0.0001234 | True |" in table
    assert "| b | 12 | 9.50 | 0.12 | 0.5 | 12,346 | False |" in table


def test_formatting_helpers():
    assert money(-1234.4, "€") == "-€1,234" and money(0.004, "$") == "$0.00"
    assert money(12.345, "CHF ") == "CHF 12.35"
    assert percent(0.02) == "2%" and percent(0.0004) == "< 0.1%" and percent(0.9996) == "> 99.9%"
    assert percent(0.995) == "99.5%" and percent(1.0) == "100%"
    assert significant(42943.2) == "42,943" and significant(0.034567) == "0.03457"
    assert significant(-0.0) == "0" and significant(1.0034) == "1.003"
    assert column_kind("expected_incremental_profit") is Kind.MONEY
    assert column_kind("prob_profit_positive") is Kind.SHARE
    assert column_kind("marginal_return") is Kind.NUMBER
    assert column_kind("customers") is Kind.COUNT
    assert cell(float("nan"), Kind.MONEY) == "" and cell(True, Kind.TEXT) == "yes"
    assert cell(0.25, Kind.SHARE) == "25%" and cell(0.25, Kind.SHARE, html=False) == "0.25"


@pytest.mark.parametrize("currency", ["$", "€", "CHF ", ""])
def test_currency_prefix_everywhere_in_the_first_screen(tmp_path, currency):
    inputs = _inputs(tmp_path, plan_by_arm=PLAN, summary={"budget_step": STEP})
    page = render_html(inputs, currency=currency)
    first = page[page.index('id="first-screen"') : page.index("</section>")]
    assert f"spend <strong>{currency}6,170</strong>" in first
    assert f"One more {currency}1,000 of budget" in first


def test_price_test_sentences_beside_the_budget_plan(tmp_path):
    prices = pd.DataFrame(
        {
            "tactic": "margin",
            "segment": ["bargain", "premium"],
            "price": [8.75, 9.5],
            "current_price": [10.0, 10.0],
            "cost_plus_price": [8.0, 8.0],
            "expected_profit": [44715.2, 20368.6],
        }
    )
    pricing = {
        "margin": {
            "expected_profit": 65083.8,
            "profit_hdi": [64000.0, 66100.0],
            "gain_over_cost_plus": 5234.3,
            "prob_beats_cost_plus": 1.0,
            "prob_profit_positive": 1.0,
        }
    }
    page = render_html(
        _inputs(tmp_path, plan_by_arm=PLAN, prices=prices, summary={"pricing": pricing})
    )
    items = [text(m) for m in re.findall(r'<li class="action".*?</li>', page, re.S)]
    assert len(items) == 4  # three budget arms, then the priced tactic
    assert items[-1] == (
        "Set the prices of tactic margin per segment: bargain at $8.75 and premium at $9.50 "
        "(today $10.00): expected profit $65,084 (94% likely between $64,000 and $66,100), "
        "$5,234 more than cost-plus pricing (chance it beats cost-plus > 99.9%), chance of a "
        "loss < 0.1%."
    )


def test_arm_names_read_as_words_and_labels_stay_as_written():
    from uplift.report.html import arm_name

    assert arm_name("womens_email") == "Womens email"
    assert arm_name("Womens E-Mail") == "Womens E-Mail"  # already words: as the data say it
    assert arm_name("gate_40") == "Gate 40"


def test_percent_of_a_share_that_is_not_finite_is_words_not_a_crash():
    from uplift.report.formatting import percent

    assert percent(float("inf")) == "∞"
    assert percent(float("nan")) == "n/a"
    assert percent(0.5) == "50%"
