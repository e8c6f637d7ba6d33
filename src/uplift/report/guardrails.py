"""Plain words for the guardrails and the covariate balance of a run, from summary.json.

Shared by report.md and report.html so both say the same thing: which arms a guardrail kept
from which segments and why, and which covariates differ between arms before treatment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _pp(rate: float) -> str:
    """A change of a rate in percentage points, e.g. 0.008 -> '0.8 percentage points'."""
    return f"{100 * rate:.2g} percentage points"


def guardrail_lines(summary: Mapping[str, Any]) -> list[str]:
    """One sentence per guardrail metric and vetoed (tactic, arm); empty without guardrails."""
    g = summary.get("guardrails")
    if not g:
        return []
    lines = []
    for m in g.get("metrics", []):
        word = "raises" if m["direction"] == "increase" else "lowers"
        harm = f"{word} {m['name']!r} by more than {_pp(m['threshold'])}"
        vetoed = [v for v in g.get("vetoed", []) if v["metric"] == m["name"]]
        if not m.get("veto"):
            lines.append(
                f"Guardrail {m['name']!r} is reported only (veto=false): guardrails.csv gives "
                f"each arm's chance that it {harm}."
            )
            continue
        if not vetoed:
            lines.append(
                f"No arm is vetoed by {m['name']!r}: in every segment the chance that an arm "
                f"{harm} is at most {m['veto_probability']:.0%}."
            )
            continue
        by_arm: dict[tuple[str, str], list[dict]] = {}
        for v in vetoed:
            by_arm.setdefault((v["tactic"], v["arm"]), []).append(v)
        for (tactic, arm), rows in by_arm.items():
            segs = ", ".join(str(r["segment"]) for r in rows)
            top = max(r["prob_harm"] for r in rows)
            change = max((r["mean"] for r in rows), key=abs)
            lines.append(
                f"Arm {arm!r} ({tactic}) is vetoed in {len(rows)} segment(s) ({segs}): there "
                f"the chance that it {harm} is above {m['veto_probability']:.0%} (up to "
                f"{top:.0%}; estimated change up to {100 * change:+.2g} percentage points), so "
                "the plan gives it no customers there (rule `guardrail_veto`)."
            )
    return lines


def balance_lines(summary: Mapping[str, Any]) -> list[str]:
    """The covariate balance check in words (empty without covariates)."""
    b = (summary.get("health") or {}).get("balance")
    if not b:
        return []
    lines = []
    if b.get("flagged"):
        lines += [
            f"Warning: covariate imbalance, {f}. The arms differed before treatment: check the "
            "assignment; these arms' estimates may be biased."
            for f in b["flagged"]
        ]
    elif b.get("covariates"):
        lines.append(
            f"The arms are balanced on {', '.join(b['covariates'])} (every standardised mean "
            f"difference vs control within {b['threshold']:g}; balance.csv per segment)."
        )
    if b.get("skipped"):
        lines.append(f"Balance not checked for non-numeric covariates {', '.join(b['skipped'])}.")
    return lines


def guardrails_section(summary: Mapping[str, Any]) -> str:
    """report.md's ``## Guardrails`` section ('' without guardrails)."""
    lines = guardrail_lines(summary)
    if not lines:
        return ""
    return "\n".join(
        [
            "## Guardrails",
            "",
            *[f"- {x}" for x in lines],
            "",
            "Per arm and segment: `guardrails.csv`.",
            "",
        ]
    )
