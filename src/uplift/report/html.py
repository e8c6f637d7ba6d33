"""``report.html``: the planner's report in a browser, one self-contained file.

Same data as ``report.md`` (the run's ``summary.json`` dict and its tables), laid out decision
first: one plain-language action per arm that gets customers, the plan's value checked on
held-out customers, what one more step of budget would return, then the evidence. Figures are
inline PNG data URIs and the CSV downloads are embedded when small, so the file works offline
and can be mailed. Rendered by Jinja2 with autoescaping on: text from the data (segment and arm
names) is shown as text, never run as markup.

This module takes typed inputs (:class:`HtmlInputs`) and never reads the run configuration;
:mod:`uplift.app.outputs` passes what it needs.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from uplift.optimize.factory import marginal_step
from uplift.report.formatting import Kind, cell, column_kind, count, money, percent, significant
from uplift.report.guardrails import balance_lines, guardrail_lines
from uplift.report.returns import posterior_value, strata_line, tactic_return_lines

#: a CSV larger than this is linked beside the report instead of embedded in it
EMBED_LIMIT = 5 * 1024 * 1024
#: at most this many action sentences on the first screen (the rest follow in a fold)
FIRST_SCREEN_ACTIONS = 8
OVERALL = "__overall__"

#: table headers a planner reads (the CSV name stays in the header's tooltip)
LABELS = {
    "segment": "Segment",
    "tactic": "Tactic",
    "arm": "Arm",
    "customers": "Customers",
    "segments": "Segments",
    "spend": "Spend",
    "expected_incremental_profit": "Expected profit",
    "expected_profit": "Expected profit",
    "profit_hdi_low": "Likely from",
    "profit_hdi_high": "Likely to",
    "prob_profit_positive": "Chance of profit",
    "prob_loss": "Chance of a loss",
    "binding_constraints": "Binding rules",
    "profit_per_customer": "Profit per customer",
    "cost_per_customer": "Cost per customer",
    "eligible_customers": "Eligible",
    "gate_passed": "Gate passed",
    "mean": "Mean",
    "hdi_low": "Likely from",
    "hdi_high": "Likely to",
    "prob_positive": "Chance > 0",
    "metric": "Metric",
    "n_treated": "Treated",
    "n_control": "Control",
    "difference_in_means": "Raw difference",
    "difference_se": "Its std. error",
    "profit_mean": "Profit per treated customer",
    "expected_loss_ship": "Expected loss if shipped",
    "expected_loss_hold": "Expected loss if held",
    "recommendation": "Readout",
    "budget": "Budget",
    "marginal_return": "Marginal return (per 1 of budget)",
    "price": "Price",
    "cost_plus_price": "Cost-plus price",
    "current_price": "Today's price",
    "expected_demand": "Expected buyers",
    "cost_plus_expected_profit": "Profit at cost-plus",
    "r_hat_max": "Largest r-hat",
    "ess_bulk_min": "Smallest bulk ESS",
    "ess_tail_min": "Smallest tail ESS",
    "divergences": "Divergences",
    "draws": "Draws per chain",
    "chains": "Chains",
    "method": "Method",
    "fit_seconds": "Fit seconds",
}


@dataclass(frozen=True)
class HtmlInputs:
    """What ``report.html`` shows: the run's ``summary.json`` dict and its tables.

    ``allocation`` is ``allocation.csv``'s table; ``plan_by_arm`` the plan's totals per arm
    (:meth:`uplift.optimize.Allocation.by_arm`); ``figures`` the PNG files by report key
    (``forest``, ``allocation``, ``frontier``, ``prices``, ``evaluation``, ``ppc_<tactic>``);
    ``downloads`` the files offered for download by name (embedded when small, else linked
    beside the report); ``gate`` the convergence gate's thresholds (``r_hat_max``,
    ``ess_bulk_min``, ``divergences_max``, ``ppc_max_extreme_share``).
    """

    summary: Mapping[str, Any]
    uplift: pd.DataFrame
    by_arm: pd.DataFrame | None = None
    allocation: pd.DataFrame | None = None
    plan_by_arm: pd.DataFrame | None = None
    frontier: pd.DataFrame | None = None
    readout: pd.DataFrame | None = None
    prices: pd.DataFrame | None = None
    evaluation: pd.DataFrame | None = None
    figures: Mapping[str, Path] = field(default_factory=dict)
    downloads: Mapping[str, Path] = field(default_factory=dict)
    gate: Mapping[str, float | None] = field(default_factory=dict)


# ---- small text helpers ------------------------------------------------------------------------
def arm_name(arm: str) -> str:
    """An arm's data label as words: an identifier ``womens_email`` -> ``Womens email``; a label
    that is already words (a space in it, as ``Womens E-Mail``) is kept as written."""
    text = str(arm).strip()
    if " " in text or not text:
        return text or str(arm)
    words = text.replace("_", " ")
    return words[:1].upper() + words[1:]


def plural(n: float, word: str, many: str | None = None) -> str:
    return f"{count(n)} {word if n == 1 else (many or word + 's')}"


def chance(p: float) -> str:
    """A chance in a sentence: none (or all) of the draws reads as "< 0.1%" ("> 99.9%"), not
    as a certainty."""
    return "< 0.1%" if p <= 0 else "> 99.9%" if p >= 1 else percent(p)


def loss_chance(p: float) -> str:
    """A chance of a loss (:func:`chance`)."""
    return chance(p)


def listing(items: Sequence[str], limit: int = 6) -> str:
    """``a, b and c``; past ``limit`` items, ``a, b, ... and 7 more``."""
    items = list(items)
    if len(items) > limit:
        return ", ".join(items[:limit]) + f" and {len(items) - limit} more"
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


@dataclass
class Table:
    """A sortable table: headers with their kind, rows of (text, sort key) cells."""

    columns: list[dict[str, str]]
    rows: list[list[dict[str, Any]]]
    caption: str = ""
    id: str = ""


def table(
    frame: pd.DataFrame,
    columns: Sequence[str],
    currency: str,
    caption: str = "",
    id: str = "",
    labels: Mapping[str, str] | None = None,
    kinds: Mapping[str, Kind] | None = None,
) -> Table:
    """``frame[columns]`` formatted for people (:mod:`uplift.report.formatting`), each cell
    with a raw sort key so a click on a header sorts by value, not by text. ``kinds`` overrides
    what a column holds (e.g. ``mean`` of profit rows is money)."""
    cols = [c for c in columns if c in frame.columns]
    given = dict(kinds or {})
    kinds_ = [given.get(c) or column_kind(c, frame[c]) for c in cols]
    names = {**LABELS, **(labels or {})}
    head = [
        {"name": c, "label": names.get(c, c.replace("_", " ").capitalize()), "kind": k.value}
        for c, k in zip(cols, kinds_, strict=True)
    ]
    rows = []
    for rec in frame[cols].itertuples(index=False):
        row = []
        for v, k in zip(rec, kinds_, strict=True):
            numeric = (
                k is not Kind.TEXT
                and isinstance(v, Real | np.number)
                and not isinstance(v, bool | np.bool_)
            )
            key: Any = float(v) if numeric and not math.isnan(float(v)) else str(v)
            row.append({"text": cell(v, k, currency), "sort": key, "num": numeric})
        rows.append(row)
    return Table(head, rows, caption, id)


def data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


# ---- the first screen --------------------------------------------------------------------------
def actions(plan: pd.DataFrame, hdi_prob: float, currency: str) -> list[dict[str, Any]]:
    """One sentence per arm that gets customers (or spend), best expected profit first. The
    sentence is markup (key numbers in bold); every value from the data in it is escaped."""
    used = plan[(plan["customers"] > 0) | (plan["spend"] > 0)]
    used = used.sort_values("expected_profit", ascending=False, kind="stable")
    out = []
    for r in used.itertuples(index=False):
        m = lambda v: money(v, currency)  # noqa: E731
        value = Markup(
            "expected profit <strong>{}</strong> ({} likely between {} and {}), chance of a "
            "loss <strong>{}</strong>."
        ).format(
            m(r.expected_profit),
            f"{hdi_prob:.0%}",
            m(r.profit_hdi_low),
            m(r.profit_hdi_high),
            loss_chance(r.prob_loss),
        )
        who = Markup("{} (arm <code>{}</code>, tactic {})").format(arm_name(r.arm), r.arm, r.tactic)
        if r.unit == "spend":
            lead = Markup("Spend <strong>{}</strong> on {} across {}: ").format(
                m(r.spend), who, plural(r.segments, "segment")
            )
        else:
            lead = Markup(
                "Give {} to <strong>{}</strong> in {}: spend <strong>{}</strong>, "
            ).format(
                who, plural(r.customers, "customer"), plural(r.segments, "segment"), m(r.spend)
            )
        out.append(
            {
                "text": lead + value,
                "tactic": str(r.tactic),
                "arm": str(r.arm),
                "customers": float(r.customers),
                "segments": int(r.segments),
                "spend": float(r.spend),
                "profit": float(r.expected_profit),
                "low": float(r.profit_hdi_low),
                "high": float(r.profit_hdi_high),
                "prob_loss": float(r.prob_loss),
            }
        )
    return out


def price_actions(
    prices: pd.DataFrame, pricing: Mapping[str, Any], hdi_prob: float, currency: str
) -> list[dict[str, Any]]:
    """One sentence per priced tactic: the price per segment and what it earns."""
    out = []
    for tactic, rows in prices.groupby("tactic", sort=False):
        s = pricing.get(str(tactic), {})
        per_seg = [
            f"{seg} at {money(p, currency)}"
            for seg, p in zip(rows["segment"], rows["price"], strict=True)
        ]
        today = rows["current_price"].dropna().unique() if "current_price" in rows else []
        now = f" (today {money(today[0], currency)})" if len(today) == 1 else ""
        text = f"Set the prices of tactic {tactic} per segment: {listing(per_seg)}{now}"
        if s:
            lo, hi = s["profit_hdi"]
            text += (
                f": expected profit {money(s['expected_profit'], currency)} ({hdi_prob:.0%} "
                f"likely between {money(lo, currency)} and {money(hi, currency)})"
            )
            if "gain_over_cost_plus" in s:
                text += (
                    f", {money(s['gain_over_cost_plus'], currency)} more than cost-plus pricing "
                    f"(chance it beats cost-plus {chance(s['prob_beats_cost_plus'])})"
                )
            if "prob_profit_positive" in s:
                text += f", chance of a loss {loss_chance(1 - s['prob_profit_positive'])}"
        out.append(
            {
                "text": text + ".",
                "tactic": str(tactic),
                "arm": "",
                "profit": float(s.get("expected_profit", float("nan"))),
            }
        )
    return out


def plan_value(summary: Mapping[str, Any], currency: str) -> list[str]:
    """The number to plan on, then the cross-fitted check, in plain words."""
    if "expected_incremental_profit" not in summary:
        return []
    hp = summary.get("hdi_prob", 0.94)
    pv = summary.get("plan_value") or {}
    post, lo, hi = posterior_value(summary)
    cf = summary.get("crossfit") or {}
    m = lambda v: money(v, currency)  # noqa: E731
    if pv.get("trust") == "calibrated":
        level = cf.get("level", 0.9)
        clo, chi = pv["calibrated_ci"]
        xlo, xhi = pv["crossfit_ci"]
        lines = [
            f"The number to plan on: {m(pv['calibrated'])} of incremental profit, net of offer "
            f"costs ({level:.0%} likely between {m(clo)} and {m(chi)}).",
            f"Checked on held-out customers: plans chosen the same way on part of the customers "
            f"({cf.get('folds', '?')}-fold cross-fitting) earned {m(pv['crossfit'])} "
            f"({level:.0%} interval {m(xlo)} to {m(xhi)}) on customers their fit never saw; "
            f"{optimism(pv, m)}.",
        ]
        fold_fits = cf.get("fold_fits") or {}
        if bad := fold_fits.get("unconverged"):
            lines.append(
                f"Less certain: {len(bad)} of {fold_fits.get('checked', '?')} fits behind that "
                f"check did not pass the convergence gate ({'; '.join(bad)}); "
                "crossfit_folds.csv counts them per fold."
            )
        return lines
    why = (
        f"cross-fitting was skipped: {cf['skipped']}"
        if cf.get("skipped")
        else "cross-fitting is off: evaluate.crossfit_folds=0"
    )
    return [
        f"The number to plan on: {m(post)} of incremental profit, net of offer costs "
        f"({hp:.0%} likely between {m(lo)} and {m(hi)}).",
        f"Not checked on held-out customers ({why}). A chosen plan's posterior value tends to "
        "be high, because the optimizer keeps the cells whose estimates happen to be high; "
        "the cross-fitted check (evaluate.crossfit_folds >= 2, the default) measures and "
        "corrects that.",
    ]


def optimism(pv: Mapping[str, Any], m: Any) -> str:
    """The cross-fitted optimism gap and what it did to the headline, in the report's money."""
    gap = pv.get("optimism_gap")
    if gap is None or not math.isfinite(gap):
        return str(pv.get("note", ""))
    if gap > 0:
        return (
            f"the fold plans claimed {m(gap)} more than they earned, so the number to plan on "
            f"is {m(pv['posterior'] - pv['calibrated'])} below the plan's posterior value "
            f"({m(pv['posterior'])})"
        )
    if gap < 0:
        return (
            f"the fold plans earned {m(-gap)} more than they claimed: no sign that the plan's "
            "value is overstated, so the number to plan on is its posterior value"
        )
    return "the fold plans earned what they claimed: the number to plan on is the posterior value"


def budget_step_text(summary: Mapping[str, Any], currency: str) -> str:
    """What one more step of budget would return, from the efficient frontier."""
    m = lambda v: money(v, currency)  # noqa: E731
    if "expected_incremental_profit" not in summary:
        if summary.get("pricing"):
            return "No budget frontier: a price test sets prices, it has no budget to spend."
        return "No budget frontier: there is no plan to extend (see why below)."
    step_info = summary.get("budget_step")
    budget = float(summary.get("budget", 0.0))
    step = marginal_step(budget)
    if step_info is None and "budget_step" not in summary:
        return (
            f"What one more {m(step)} of budget would return is not computed: the budget "
            "frontier is off (optimize.frontier.enabled=false)."
        )
    if not step_info or "skipped" in step_info:
        why = (step_info or {}).get("skipped", "a frontier level could not be solved")
        return f"What one more {m(step)} of budget would return is not known: {why}."
    gain = step_info["expected_profit_gain"]
    spend = step_info["spend"]
    if spend < budget - max(1e-6 * budget, 0.5) or gain <= 1e-9 * max(1.0, abs(budget)):
        binding = [
            b
            for b in summary.get("optimizer", {}).get("binding_constraints", [])
            if b != "total_budget"
        ]
        limit = (
            f"the rules that bind are {listing(binding)}"
            if binding
            else "no other customer is worth an offer"
        )
        return (
            f"One more {m(step)} of budget would return nothing: the plan does not need all of "
            f"the {m(budget)} budget ({limit})."
        )
    return (
        f"One more {m(step)} of budget would return about {m(gain)} of expected profit "
        f"({m(step_info['marginal_return'])} per extra {m(1)} at the margin, from the plan "
        f"re-solved at a budget of {m(budget + step)}; the efficient frontier below)."
    )


# ---- the evidence ------------------------------------------------------------------------------
def readout_notes(
    readout: pd.DataFrame | None,
    plan: pd.DataFrame | None,
    allocation: pd.DataFrame | None,
    currency: str,
) -> list[str]:
    """Where the overall readout (ship to everyone) and the plan (chosen segments) seem to
    disagree, why both hold."""
    if readout is None or plan is None or allocation is None or readout.empty:
        return []
    notes = []
    overall = readout[readout["segment"] == OVERALL].set_index(["tactic", "arm"])
    cells = readout[readout["segment"] != OVERALL]
    for r in plan.itertuples(index=False):
        key = (r.tactic, r.arm)
        if key not in overall.index:
            continue
        o = overall.loc[key]
        rec = o["recommendation"]
        treated = r.customers > 0 or r.spend > 0
        name = f"{arm_name(r.arm)} (arm {r.arm})"
        if treated and rec != "ship":
            mine = allocation[(allocation["arm"] == r.arm) & (allocation["decision"] > 0)]
            segs = cells[(cells["arm"] == r.arm) & cells["segment"].isin(mine["segment"])]
            chosen = segs.sort_values("profit_mean", ascending=False)
            lo, hi = (money(chosen["profit_mean"].agg(f), currency) for f in ("min", "max"))
            pays = (
                "where it pays"
                if not len(chosen)
                else f"where it pays ({hi} per treated customer)"
                if lo == hi
                else f"where it pays ({lo} to {hi} per treated customer)"
            )
            what = (
                "would lose money on average"
                if o["profit_mean"] < 0
                else "is not yet clearly profitable"
            )
            notes.append(
                f"The overall readout says “{rec}” for {name}: sending it to every customer "
                f"{what} ({money(o['profit_mean'], currency)} per treated customer, chance of "
                f"profit {chance(o['prob_profit_positive'])}). The plan still gives it to "
                f"{plural(r.segments, 'segment')} ({listing([str(s) for s in mine['segment']])}"
                f"), {pays}. Both hold: the overall recommendation is for shipping to "
                "everyone; the plan picks the segments where it pays."
            )
        elif not treated and rec == "ship":
            notes.append(
                f"The overall readout says “ship” for {name}, yet the plan gives it nobody: it "
                "pays, but the budget and the one-offer-per-customer rule earn more with other "
                "arms in every segment."
            )
    return notes


def health(summary: Mapping[str, Any], gate: Mapping[str, float | None]) -> tuple[bool, list[str]]:
    """Whether the fits passed the convergence gate, and what that means, in plain words."""
    g = summary.get("gate") or {}
    diag = summary.get("diagnostics") or {}
    lines = []
    r_hat = gate.get("r_hat_max", 1.01)
    ess = gate.get("ess_bulk_min", 400)
    div = gate.get("divergences_max", 0)
    fits = plural(len(diag), "fit")
    mcmc = {t: d for t, d in diag.items() if d.get("r_hat_max") is not None}
    if g.get("passed", True):
        lines.append(f"All {fits} passed the convergence gate: the posterior draws can be trusted.")
    else:
        failed = listing(list((g.get("failures") or {}).keys()))
        how = (
            "the plan uses them anyway (optimize.allow_unconverged=true): treat its numbers "
            "with caution"
            if g.get("overridden")
            else "the optimizer refused to plan on them"
        )
        lines.append(f"The convergence gate failed for {failed}: {how}.")
        for t, reasons in (g.get("failures") or {}).items():
            lines.extend(f"{t}: {reason}." for reason in reasons)
    if mcmc:
        worst_r = max(d["r_hat_max"] for d in mcmc.values())
        ess_b = min(d["ess_bulk_min"] for d in mcmc.values())
        ess_t = min(d.get("ess_tail_min", ess_b) for d in mcmc.values())
        divs = sum(int(d.get("divergences") or 0) for d in mcmc.values())
        r_ok = worst_r <= (r_hat or 1.01)
        lines.append(
            ("The chains agree with each other" if r_ok else "Some chains DISAGREE")
            + f": the largest r-hat is {significant(worst_r)} (at most "
            f"{significant(r_hat or 1.01)} is required; 1 means the chains sampled the same "
            "distribution)."
        )
        ess_ok = ess_b >= (ess or 400)
        lines.append(
            ("There are enough" if ess_ok else "There are TOO FEW")
            + f" effectively independent draws: the smallest effective sample size (ESS) is "
            f"{count(ess_b)} in the bulk and {count(ess_t)} in the tails (at least "
            f"{count(ess or 400)} required)."
        )
        how = "never diverged" if divs == 0 else f"diverged {plural(divs, 'time')}"
        lines.append(
            f"The sampler {how} (at most {count(div or 0)} divergences per fit allowed): a "
            "divergence marks a region of the posterior the sampler could not explore."
        )
    approx = {t: d for t, d in diag.items() if d.get("pareto_k") is not None}
    for t, d in approx.items():
        lines.append(
            f"{t} was fit approximately ({d.get('method')}); its Pareto k-hat is "
            f"{significant(d['pareto_k'])} (below 0.7 the approximation is usable)."
        )
    posterior = (summary.get("model_checks") or {}).get("posterior") or {}
    if posterior:
        worst = max(float(c.get("extreme_share", 0.0)) for c in posterior.values())
        cap = gate.get("ppc_max_extreme_share")
        limit = f" (more than {percent(cap)} fails the gate)" if cap is not None else ""
        lines.append(
            f"The models reproduce the data they were fit on: in the posterior predictive check "
            f"at most {percent(worst)} of cells look extreme{limit}."
        )
    warnings = (summary.get("model_checks") or {}).get("prior_warnings") or {}
    for t, ws in warnings.items():
        lines.extend(f"Prior check, {t}: {w}." for w in ws)
    h = summary.get("health") or {}
    if "srm_passed" in h:
        lines.append(
            "The arms hold the shares the experiment was designed with (sample-ratio check "
            f"p = {significant(h.get('srm_p_value', float('nan')), 3)})."
            if h["srm_passed"]
            else "The arms do NOT hold the designed shares (sample-ratio mismatch, overridden): "
            "the assignment may be broken."
        )
    lines.extend(balance_lines(summary))
    return bool(g.get("passed", True)), lines


GLOSSARY = [
    (
        "HDI (likely between)",
        "Highest-density interval: the narrowest range that holds the stated share (e.g. 94%) "
        "of the posterior, so the value is that likely to lie inside it.",
    ),
    (
        "Chance of profit / chance of a loss",
        "prob_profit_positive: the share of posterior draws in which the incremental profit "
        "is above zero. The chance of a loss is the share in which it is below zero.",
    ),
    (
        "Binding constraints",
        "The rules the plan runs into (budget, one offer per customer, segment size, your own "
        "rules): relaxing one of them would let the plan earn more.",
    ),
    (
        "Budget dual / marginal return",
        "What the last unit of budget earns: the expected profit of one more unit of budget "
        "(the dual value of the budget rule in the re-solved plan).",
    ),
    (
        "r-hat",
        "Compares the chains of the sampler: near 1 they sampled the same distribution; above "
        "the gate (1.01) they disagree and the draws are not trusted.",
    ),
    (
        "ESS",
        "Effective sample size: how many independent draws the correlated draws are worth. "
        "Intervals need a few hundred; the gate asks 400.",
    ),
    (
        "Divergence",
        "A sampler step that failed in a region of high curvature; even a few can bias the "
        "posterior.",
    ),
    (
        "Cross-fitting",
        "Fit on part of the customers, plan with the same rules, score that plan on the "
        "customers the fit never saw, and swap: an honest check of what a plan chosen this "
        "way earns.",
    ),
    (
        "Calibrated headline",
        "The plan's posterior value minus the optimism the cross-fitted check measured: the "
        "optimizer picks cells whose estimates happen to be high, so the raw posterior value "
        "tends to be high.",
    ),
    (
        "Readout (ship / keep testing / stop)",
        "The decision for sending an arm to every customer (or a segment): ship when profit is "
        "near certain, stop when it is unlikely or too small to matter, else keep testing.",
    ),
]


def environment() -> jinja2.Environment:
    """Jinja2 with autoescaping on for every template (data text is never markup)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("uplift.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def downloads(files: Mapping[str, Path], limit: int) -> list[dict[str, Any]]:
    out = []
    for name, path in files.items():
        size = path.stat().st_size
        embedded = size <= limit
        out.append(
            {
                "name": name,
                "href": data_uri(path, "text/csv;charset=utf-8") if embedded else name,
                "embedded": embedded,
                "size": f"{size / 1024:,.0f} KB" if size < 1024**2 else f"{size / 1024**2:,.1f} MB",
            }
        )
    return out


def render_html(inputs: HtmlInputs, currency: str = "$", embed_limit: int = EMBED_LIMIT) -> str:
    """The whole ``report.html`` as text."""
    s = inputs.summary
    hp = float(s.get("hdi_prob", 0.94))
    cur = currency
    plan = inputs.plan_by_arm
    gate = s.get("gate") or {}
    acts: list[dict[str, Any]] = []  # budget arms first, then any priced tactics
    if plan is not None:
        acts += actions(plan, hp, cur)
    if inputs.prices is not None and len(inputs.prices):
        acts += price_actions(inputs.prices, s.get("pricing") or {}, hp, cur)
    idle = []
    if plan is not None:
        idle = [
            f"{arm_name(r.arm)} (arm {r.arm})"
            for r in plan.itertuples(index=False)
            if r.customers <= 0 and r.spend <= 0
        ]
    no_plan = None
    if plan is None and not acts:
        no_plan = (
            gate.get("message")
            or (s.get("optimizer") or {}).get("message")
            or "this run made no plan"
        )
    totals = None
    if "total_spend" in s:
        totals = (
            f"In all: {plural(s.get('customers_treated', 0), 'customer')}, spend "
            f"{money(s['total_spend'], cur)} of the {money(s['budget'], cur)} budget."
        )
    figures = {k: data_uri(p, "image/png") for k, p in inputs.figures.items() if p.exists()}
    passed, health_lines = health(s, inputs.gate)

    tactics, unused = [], []
    money_cols = {"mean": Kind.MONEY, "hdi_low": Kind.MONEY, "hdi_high": Kind.MONEY}
    per_treated = {"mean": "Profit per treated customer", "prob_positive": "Chance of profit"}
    if inputs.allocation is not None and plan is not None:
        alloc = inputs.allocation
        used = alloc[(alloc["customers"] > 0) | (alloc["spend"] > 0)]
        profit = inputs.uplift[inputs.uplift["metric"] == "profit_per_treated"]
        gate_col = ["gate_passed"] if gate.get("overridden") else []
        treated = plan.groupby("tactic", sort=False)["spend"].sum()
        for tactic in treated.sort_values(ascending=False, kind="stable").index:
            rows = used[used["tactic"] == tactic].sort_values(
                "expected_incremental_profit", ascending=False
            )
            top = profit[profit["tactic"] == tactic].sort_values("mean", ascending=False).head(5)
            top_table = table(
                top,
                ["segment", "arm", "mean", "hdi_low", "hdi_high", "prob_positive"],
                cur,
                caption=f"Best segments for {tactic} by expected profit per treated customer "
                "(net of the offer's cost), treated or not.",
                labels=per_treated,
                kinds=money_cols,
            )
            if not len(rows):
                best_row = top.iloc[0] if len(top) else None
                unused.append(
                    {
                        "name": tactic,
                        "text": f"{tactic}: no segment gets it"
                        + (
                            f"; its best segment, {best_row['segment']} (arm {best_row['arm']}),"
                            f" would earn {money(best_row['mean'], cur)} per treated customer "
                            f"(chance of profit {chance(best_row['prob_positive'])}), less "
                            "than the arms the plan uses."
                            if best_row is not None
                            else "."
                        ),
                        "top": top_table,
                    }
                )
                continue
            tactics.append(
                {
                    "name": tactic,
                    "summary": table(
                        plan[plan["tactic"] == tactic],
                        [
                            "arm",
                            "customers",
                            "segments",
                            "spend",
                            "expected_profit",
                            "profit_hdi_low",
                            "profit_hdi_high",
                            "prob_loss",
                        ],
                        cur,
                        caption=f"Each arm of {tactic} in the plan ({hp:.0%} interval of the "
                        "arm's total).",
                    ),
                    "cells": table(
                        rows,
                        [
                            "segment",
                            "arm",
                            "customers",
                            "spend",
                            "expected_incremental_profit",
                            "profit_hdi_low",
                            "profit_hdi_high",
                            "prob_profit_positive",
                            "binding_constraints",
                            *gate_col,
                        ],
                        cur,
                        caption=f"Treated cells of {tactic}: one row per segment and arm.",
                    ),
                    "top": top_table,
                }
            )
    readout = None
    if inputs.readout is not None and len(inputs.readout):
        r = inputs.readout
        overall = r[r["segment"] == OVERALL]
        mix = (
            r[r["segment"] != OVERALL]
            .pivot_table(
                index=["tactic", "arm"],
                columns="recommendation",
                values="segment",
                aggfunc="count",
                fill_value=0,
            )
            .reset_index()
        )
        mix.columns = [str(c) for c in mix.columns]
        readout = {
            "overall": table(
                overall,
                [
                    "tactic",
                    "arm",
                    "profit_mean",
                    "prob_profit_positive",
                    "expected_loss_ship",
                    "expected_loss_hold",
                    "recommendation",
                ],
                cur,
                caption="Shipping each arm to every customer: profit and expected losses per "
                "treated customer.",
            ),
            "mix": table(
                mix,
                list(mix.columns),
                cur,
                caption="Segments per recommendation (each segment on its own; readout.csv).",
            ),
            "notes": readout_notes(r, plan, inputs.allocation, cur),
        }
    frontier = None
    if inputs.frontier is not None and len(inputs.frontier):
        frontier = table(
            inputs.frontier,
            [
                "budget",
                "spend",
                "expected_profit",
                "profit_hdi_low",
                "profit_hdi_high",
                "prob_profit_positive",
                "marginal_return",
                "binding_constraints",
            ],
            cur,
            caption="The plan re-solved at each budget (customers continuous, so every rule "
            "has a dual): expected profit and the return of the last unit of budget.",
        )
    prices = None
    if inputs.prices is not None and len(inputs.prices):
        prices = table(
            inputs.prices,
            [
                "tactic",
                "segment",
                "price",
                "current_price",
                "cost_plus_price",
                "expected_demand",
                "expected_profit",
                "profit_hdi_low",
                "profit_hdi_high",
                "cost_plus_expected_profit",
                "binding_constraints",
            ],
            cur,
            caption="Chosen price per segment beside today's and the cost-plus price.",
        )
    by_arm = None
    if inputs.by_arm is not None and len(inputs.by_arm):
        by_arm = table(
            inputs.by_arm,
            [
                "tactic",
                "arm",
                "metric",
                "mean",
                "hdi_low",
                "hdi_high",
                "prob_positive",
                "difference_in_means",
                "difference_se",
            ],
            cur,
            caption="Uplift per treated customer in each tactic's metric (segment posteriors "
            "weighted by segment size) beside the experiment's raw difference in means.",
        )
    evaluation = None
    if inputs.evaluation is not None and len(inputs.evaluation):
        ev = inputs.evaluation
        cols = ["tactic", "arm", "scorer", "n_treated", "n_control"] + [
            c
            for c in ev.columns
            if c in ("qini_auc", "uplift_auc", "qini_causalml")
            or (c.startswith("uplift_at_") and not c.endswith("_se"))
        ]
        evaluation = table(ev, cols, cur, caption="Ranking quality on held-out customers.")
    diag = pd.DataFrame([{"tactic": t, **d} for t, d in (s.get("diagnostics") or {}).items()])
    diagnostics = (
        table(
            diag,
            [
                "tactic",
                "r_hat_max",
                "ess_bulk_min",
                "ess_tail_min",
                "divergences",
                "draws",
                "chains",
                "method",
                "fit_seconds",
            ],
            cur,
            caption="Sampler diagnostics per fit.",
        )
        if len(diag)
        else None
    )
    best = None
    profit = inputs.uplift[inputs.uplift["metric"] == "profit_per_treated"]
    if len(profit):
        best = table(
            profit.sort_values("mean", ascending=False).groupby("tactic").head(3),
            ["tactic", "arm", "segment", "mean", "hdi_low", "hdi_high", "prob_positive"],
            cur,
            caption="Best three segments per tactic by expected profit per treated customer.",
            labels=per_treated,
            kinds=money_cols,
        )
    tc = s.get("truth_check") or {}
    truth = None
    if "interval_coverage" in tc:
        truth = (
            f"Synthetic data, so the truth is known: the {hp:.0%} intervals cover the true uplift "
            f"in {percent(tc['interval_coverage'])} of {count(tc['cells'])} cells, and the plan "
            f"earns {percent(tc['profit_ratio'], 1)} of the true profit of the best possible "
            f"plan ({money(tc['true_profit_of_allocation'], cur)} vs "
            f"{money(tc['true_profit_of_oracle'], cur)})."
        )
    context = {
        "seed": s.get("seed", ""),
        "title": f"Uplift plan: {s.get('experiment', '')}",
        "meta": (
            f"{count(s.get('n_customers', 0))} customers in {plural(s.get('segments', 0), 'segment')}"
            f", {plural(len(s.get('tactics', [])), 'tactic')}; status {s.get('status', 'complete')}"
        ),
        "overridden": bool(gate.get("overridden")),
        "failed_fits": listing(list((gate.get("failures") or {}).keys())),
        "no_plan": no_plan,
        "actions": acts[:FIRST_SCREEN_ACTIONS],
        "more_actions": acts[FIRST_SCREEN_ACTIONS:],
        "idle": idle,
        "totals": totals,
        "plan_value": plan_value(s, cur),
        "budget_step": budget_step_text(s, cur),
        "tactic_returns": tactic_return_lines(s, cur),
        "binding": listing(list((s.get("optimizer") or {}).get("binding_constraints", []))),
        "strata": strata_line(s),
        "figures": figures,
        "tactics": tactics,
        "unused": unused,
        "readout": readout,
        "frontier": frontier,
        "prices": prices,
        "by_arm": by_arm,
        "best": best,
        "evaluation": evaluation,
        "passed": passed,
        "health": health_lines,
        "guardrails": guardrail_lines(s),
        "diagnostics": diagnostics,
        "ppc": sorted(k for k in figures if k.startswith("ppc_")),
        "truth": truth,
        "glossary": GLOSSARY,
        "downloads": downloads(inputs.downloads, embed_limit),
        "embed_limit": f"{embed_limit / 1024**2:,.0f} MB",
        "seconds": ", ".join(f"{k} {v:.1f} s" for k, v in (s.get("seconds") or {}).items()),
        "hdi": f"{hp:.0%}",
        "currency": cur,
    }
    return environment().get_template("report.html.j2").render(**context)
