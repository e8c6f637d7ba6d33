"""Report lines shared by report.md and report.html: summary.json ``marginal_return_by_tactic``
(what one more budget step returns when it may only be spent on one tactic), the plan's
posterior value and the customer strata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from uplift.report.formatting import money, percent

#: starts the optimizer's note (summary.json ``optimizer.notes``) when covariates are declared
#: but the covariate model is off; the report shows it (:func:`strata_line`)
COVARIATES_UNUSED = "covariates unused by the plan"


def posterior_value(summary: Mapping[str, Any]) -> tuple[float, float, float]:
    """The plan's posterior value and its HDI as the reports state them: with customer strata
    the customer list's, the strata's sums plus ``plan_value.list_credit``."""
    credit = (summary.get("plan_value") or {}).get("list_credit") or 0.0
    lo, hi = summary["profit_hdi"]
    return summary["expected_incremental_profit"] + credit, lo + credit, hi + credit


def tactic_return_lines(summary: Mapping[str, Any], currency: str = "") -> list[str]:
    """One sentence per tactic, best return first; a single "not computed" sentence when the
    re-solves were skipped, none when they were not run (no plan, or switched off)."""
    info = summary.get("marginal_return_by_tactic")
    if not info:
        return []
    if "skipped" in info:
        return [f"What one more budget step returns per tactic is not known: {info['skipped']}."]
    m = lambda v: money(v, currency)  # noqa: E731
    hp = percent(summary.get("hdi_prob", 0.94))
    rows = sorted(info.items(), key=lambda kv: -(kv[1].get("extra_profit") or 0.0))
    lines = []
    for tactic, r in rows:
        step = m(r["step"])
        if r.get("extra_profit") is None:
            lines.append(f"{tactic}: one more {step} could not be re-solved ({r.get('note', '')}).")
        elif r["extra_profit"] <= 1e-9 * max(1.0, float(r["step"])):
            lines.append(
                f"{tactic}: one more {step} spent only on it would return nothing (no further "
                "offer of it pays, or the step cannot buy one)."
            )
        else:
            lines.append(
                f"{tactic}: one more {step} spent only on it would return about "
                f"{m(r['extra_profit'])} of expected profit ({hp} interval "
                f"{m(r['extra_profit_hdi_low'])} to {m(r['extra_profit_hdi_high'])}; "
                f"{m(r['return_per_unit'])} per extra {m(1)})."
            )
    return lines


def strata_line(summary: Mapping[str, Any]) -> str | None:
    """One sentence on customer strata (summary.json ``customer_strata``); without them, the
    optimizer's note when covariates are declared but the covariate model is off; else None."""
    st = summary.get("customer_strata")
    if not st:
        # covariates declared, covariate model off: the optimizer's note says what it would buy
        notes = (summary.get("optimizer") or {}).get("notes") or []
        unused = [n for n in notes if str(n).startswith(COVARIATES_UNUSED)]
        return f"{unused[0][0].upper()}{unused[0][1:]}." if unused else None
    return (
        f"Customers chosen within segments: each of {st['segments']} segments is split into up "
        f"to {st['bins']} strata ({st['strata']} in all) by each customer's expected profit under "
        f"the covariate model ({', '.join(st['tactics'])}), so a segment's most responsive "
        "customers can be treated without the rest (allocation_strata.csv; targets.csv lists "
        "them)."
    )
