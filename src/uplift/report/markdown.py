"""The human-readable ``report.md``."""

from __future__ import annotations

import re

import pandas as pd

from uplift.report.formatting import Kind, cell, column_kind, significant
from uplift.report.guardrails import balance_lines
from uplift.report.returns import posterior_value, strata_line, tactic_return_lines

#: characters of a text cell that would change the Markdown around it (table breaks, links,
#: inline HTML, code spans), escaped with a backslash
_MD_SPECIAL = re.compile(r"([\\|`<>\[\]])")


def md_text(value: object) -> str:
    """``value`` as inert Markdown table text: specials backslash-escaped, line breaks as spaces
    (a segment named ``a|b`` or ``<script>`` shows as written and cannot break the table)."""
    text = " ".join(str(value).splitlines())
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_table(frame: pd.DataFrame) -> str:
    """``frame`` as a Markdown table: numbers by what their column holds
    (:func:`~uplift.report.formatting.column_kind`: money and counts thousands-separated, never
    scientific notation), text escaped (:func:`md_text`)."""
    kinds = [column_kind(c, frame[c]) for c in frame.columns]

    def fmt(v: object, kind: Kind) -> str:
        return md_text(cell(v, kind, html=False))

    head = "| " + " | ".join(map(md_text, frame.columns)) + " |"
    sep = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = [
        "| " + " | ".join(fmt(v, k) for v, k in zip(row, kinds, strict=True)) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([head, sep, *body])


def plan_value_lines(summary: dict, hp: float) -> list[str]:
    """The plan's value: the number to plan on first, then the posterior and cross-fitted ones."""
    pv = summary.get("plan_value") or {}
    post, lo, hi = posterior_value(summary)
    if pv.get("trust") != "calibrated":
        return [
            f"- Expected incremental profit **{post:,.0f}** ({hp:.0%} HDI {lo:,.0f} to "
            f"{hi:,.0f}), net of offer costs: the posterior value of the chosen plan, "
            f"{pv.get('note') or 'not corrected for selection'}.",
        ]
    cf = summary.get("crossfit", {})
    level = cf.get("level", 0.9)
    clo, chi = pv["calibrated_ci"]
    xlo, xhi = pv["crossfit_ci"]
    return [
        f"- Incremental profit to plan on: **{pv['calibrated']:,.0f}** ({level:.0%} interval "
        f"{clo:,.0f} to {chi:,.0f}), net of offer costs: the posterior value corrected for "
        "selection.",
        f"- Posterior value of the plan {post:,.0f} ({hp:.0%} HDI {lo:,.0f} to {hi:,.0f}), "
        "before that correction: a chosen plan's posterior value tends to be high, because the "
        "optimizer keeps the cells whose estimates happen to be high.",
        f"- Cross-fitted check ({cf.get('folds', '?')} folds): plans chosen the same way on part "
        f"of the customers earned {pv['crossfit']:,.0f} ({level:.0%} interval {xlo:,.0f} to "
        f"{xhi:,.0f}) on customers their fit never saw; {pv['note']}.",
    ]


def render_report(
    summary: dict,
    uplift: pd.DataFrame,
    by_arm: pd.DataFrame | None,
    allocation: pd.DataFrame | None,
    figures: dict[str, str],
    frontier: pd.DataFrame | None = None,
    readout: pd.DataFrame | None = None,
    prices: pd.DataFrame | None = None,
    extra: list[str] | None = None,
) -> str:
    """Decision first, then evidence; ``extra`` sections go before the diagnostics."""
    hp = summary.get("hdi_prob", 0.94)
    lines = [f"# Uplift run: {summary['experiment']}", ""]
    gate = summary.get("gate") or {}
    if gate.get("overridden"):
        failed = ", ".join(md_text(t) for t in gate.get("failures", {}))
        lines += [
            f"> **Warning: unconverged fits used.** {failed} failed the convergence gate and "
            "`optimize.allow_unconverged=true` let the plan use them anyway: its numbers may be "
            "wrong. Rows that rest on them say `gate_passed = False` in allocation.csv, "
            "targets.csv and readout.csv.",
            "",
        ]
    if (summary.get("health") or {}).get("balance", {}).get("flagged"):
        lines += [
            "> **Warning: covariate imbalance** (health.balance, balance.csv): "
            + " ".join(balance_lines(summary)),
            "",
        ]
    if allocation is not None:
        lines += [
            "## Decision",
            "",
            f"- Budget **{summary['budget']:,.0f}**, planned spend **{summary['total_spend']:,.0f}**.",
            *plan_value_lines(summary, hp),
            f"- Binding constraints: {', '.join(summary['optimizer']['binding_constraints']) or 'none'}.",
            *[f"- {md_text(line)}" for line in filter(None, [strata_line(summary)])],
            *[f"- {md_text(line)}" for line in tactic_return_lines(summary)],
            "",
        ]
        if "allocation" in figures:
            lines += [f"![allocation]({figures['allocation']})", ""]
        used = allocation[allocation["customers"] > 0].sort_values(
            "expected_incremental_profit", ascending=False
        )
        cols = [
            "segment",
            "tactic",
            "customers",
            "spend",
            "expected_incremental_profit",
            "profit_hdi_low",
            "profit_hdi_high",
            "prob_profit_positive",
        ]
        lines += [
            "### Treated cells",
            "",
            md_table(used[cols]) if len(used) else "_No cell is worth treating at this budget._",
            "",
        ]
    else:
        lines += [
            "## Decision",
            "",
            f"**No allocation**: {summary.get('gate', {}).get('message') or summary.get('optimizer', {}).get('message', '')}",
            "",
        ]

    if by_arm is not None and len(by_arm):
        cols = [
            "tactic",
            "arm",
            "metric",
            "mean",
            "hdi_low",
            "hdi_high",
            "prob_positive",
            "difference_in_means",
            "difference_se",
        ]
        lines += [
            "## Overall effect per arm",
            "",
            "Segment posteriors weighted by segment size, next to the raw difference in means:",
            "",
            md_table(by_arm[cols]),
            "",
        ]
    if prices is not None and len(prices):
        cols = [
            c
            for c in [
                "tactic",
                "segment",
                "price",
                "cost_plus_price",
                "expected_demand",
                "expected_profit",
                "profit_hdi_low",
                "profit_hdi_high",
            ]
            if c in prices.columns
        ]
        lines += ["## Prices", ""]
        if "prices" in figures:
            lines += [f"![prices]({figures['prices']})", ""]
        lines += [
            "Chosen price per segment (posterior demand, MILP over the price grid) beside the naive cost-plus price:",
            "",
            md_table(prices[cols]),
            "",
        ]
    if frontier is not None and len(frontier):
        cols = [
            "budget",
            "spend",
            "expected_profit",
            "profit_hdi_low",
            "profit_hdi_high",
            "marginal_return",
            "binding_constraints",
        ]
        lines += ["## Efficient frontier", ""]
        if "frontier" in figures:
            lines += [f"![frontier]({figures['frontier']})", ""]
        lines += [
            "Expected profit per budget level and the return of the last unit of budget (its dual):",
            "",
            md_table(frontier[[c for c in cols if c in frontier.columns]]),
            "",
        ]
    if readout is not None and len(readout):
        overall = readout[readout["segment"] == "__overall__"]
        mix = readout[readout["segment"] != "__overall__"].pivot_table(
            index=["tactic", "arm"],
            columns="recommendation",
            values="segment",
            aggfunc="count",
            fill_value=0,
        )
        h = summary.get("health", {})
        lines += [
            "## Readout",
            "",
            f"Sample-ratio check: {'passed' if h.get('srm_passed') else 'FAILED (overridden)'} "
            f"(p = {h.get('srm_p_value', float('nan')):.3g}, alpha {h.get('srm_alpha', 0.001)}).",
            "",
            *[f"{x}\n" for x in balance_lines(summary)],
            "Shipping each arm to every segment (profit per treated customer, expected losses in money):",
            "",
            md_table(
                overall[
                    [
                        "tactic",
                        "arm",
                        "profit_mean",
                        "prob_profit_positive",
                        "expected_loss_ship",
                        "expected_loss_hold",
                        "recommendation",
                    ]
                ]
            ),
            "",
            "Segments per recommendation (details in `readout.csv`):",
            "",
            md_table(mix.reset_index()),
            "",
        ]
    lines += ["## Uplift by segment", ""]
    if "forest" in figures:
        lines += [f"![uplift by segment]({figures['forest']})", ""]
    best = (
        uplift[uplift["metric"] == "profit_per_treated"]
        .sort_values("mean", ascending=False)
        .groupby("tactic")
        .head(3)[["tactic", "segment", "mean", "hdi_low", "hdi_high", "prob_positive"]]
    )
    lines += [
        "Best three segments per tactic, by profit per treated customer:",
        "",
        md_table(best),
        "",
    ]

    for section in extra or []:
        lines += [section, ""]
    lines += ["## Diagnostics", ""]
    diag = pd.DataFrame([{"tactic": t, **d} for t, d in summary["diagnostics"].items()])
    lines += [md_table(diag), ""]
    if "interval_coverage" in summary.get("truth_check", {}):
        tc = summary["truth_check"]
        lines += [
            "## Check against synthetic truth",
            "",
            f"- {hp:.0%} intervals cover the true uplift in {tc['interval_coverage']:.0%} of {tc['cells']} cells "
            f"(mean absolute error {tc['uplift_mae']:.4f}).",
            f"- Allocation earns {tc['profit_ratio']:.1%} of the oracle allocation's true profit "
            f"({tc['true_profit_of_allocation']:,.0f} vs {tc['true_profit_of_oracle']:,.0f}).",
            "",
        ]
        if tc.get("by_tactic"):
            per = pd.DataFrame(
                [
                    {"tactic": t, **{k: v for k, v in d.items() if not k.startswith("true_")}}
                    for t, d in tc["by_tactic"].items()
                ]
            )
            lines += [
                "Per tactic, on its family's scale and in money per treated customer "
                "(90% intervals; bias = posterior mean - truth, averaged over cells):",
                "",
                md_table(per),
                "",
            ]
    secs = ", ".join(f"{k} {v:.1f}s" for k, v in summary["seconds"].items())
    lines += ["## Run", "", f"- Seed {summary['seed']}; stages: {secs}.", ""]
    return "\n".join(lines)


def evaluation_section(table: pd.DataFrame, figures: dict[str, str]) -> str:
    """Held-out ranking quality of each scorer (``evaluation.csv``)."""
    metrics = [
        c
        for c in table.columns
        if c in ("qini_auc", "uplift_auc", "qini_causalml") or c.startswith("uplift_at_")
    ]
    shown = table[["tactic", "arm", "outcome", "scorer", "n_treated", "n_control"]].copy()
    for m in metrics:
        se = table.get(f"{m}_se")
        shown[m] = [
            significant(v) + (f" ± {significant(s, 2)}" if se is not None and pd.notna(s) else "")
            for v, s in zip(table[m], se if se is not None else [None] * len(table), strict=True)
        ]
    lines = ["## Held-out ranking", ""]
    if "evaluation" in figures:
        lines += [f"![qini curves]({figures['evaluation']})", ""]
    lines += [
        "Customers held out of the fit, ranked by each scorer's predicted uplift (± bootstrap "
        "standard error). `qini_auc`/`uplift_auc`: scikit-uplift normalisation (0 random, 1 "
        "perfect; binary outcomes); `qini_causalml`: causalml's `qini_score`; `uplift_at_k`: "
        "treated minus control mean outcome among the top k. Details in `evaluation.csv`.",
        "",
        md_table(shown),
    ]
    return "\n".join(lines)
