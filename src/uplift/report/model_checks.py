"""Posterior and prior predictive checks of a run's fits, ready to save and report.

The checks live in :mod:`uplift.models.predictive`; this gathers them per tactic into the
tables, summary blocks and gate reasons the pipeline writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from uplift.data.cells import tactic_cells
from uplift.models.predictive import (
    PredictiveCheck,
    posterior_predictive_check,
    prior_implied_quantities,
)
from uplift.report.markdown import md_table


@dataclass
class ModelChecks:
    posterior: dict[str, PredictiveCheck]
    prior_table: pd.DataFrame  # tactic, quantity, quantiles, plausible range, share outside
    prior_warnings: dict[str, list[str]] = field(default_factory=dict)
    alpha: float = 0.05

    def ppc_table(self) -> pd.DataFrame:
        """All tactics' cell-level checks (``ppc.csv``)."""
        frames = [c.table.assign(tactic=t) for t, c in self.posterior.items()]
        table = pd.concat(frames, ignore_index=True)
        return table[["tactic", *[c for c in table.columns if c != "tactic"]]]

    def summary(self) -> dict:
        return {
            "posterior": {t: c.summary(self.alpha) for t, c in self.posterior.items()},
            "prior_warnings": self.prior_warnings,
        }

    def failures(self, max_extreme_share: float | None) -> dict[str, list[str]]:
        """Gate reasons: statistics whose share of extreme cells exceeds the threshold."""
        if max_extreme_share is None:
            return {}
        out: dict[str, list[str]] = {}
        for t, check in self.posterior.items():
            for stat, s in check.summary(self.alpha)["statistics"].items():
                if s["extreme_share"] > max_extreme_share:
                    out.setdefault(t, []).append(
                        f"posterior predictive check: {s['extreme_share']:.0%} of cells extreme on "
                        f"{stat} (> {max_extreme_share:.0%}; see ppc.csv)"
                    )
        return out


def run_model_checks(
    fits: dict, cells: pd.DataFrame, seed: int, alpha: float = 0.05
) -> ModelChecks:
    """Posterior predictive check of every fit and what each fit's priors imply."""
    posterior, priors, warnings = {}, [], {}
    for tactic, fit in fits.items():
        own = tactic_cells(cells, tactic)  # a tactic of data.columns.outcomes: its own sums
        posterior[tactic] = posterior_predictive_check(fit.model, own, seed=seed)
        implied = prior_implied_quantities(fit.model, own, seed=seed, tactic=tactic)
        priors.append(implied.table.assign(tactic=tactic))
        if failures := implied.failures():
            warnings[tactic] = failures
    prior_table = pd.concat(priors, ignore_index=True)
    prior_table = prior_table[["tactic", *[c for c in prior_table.columns if c != "tactic"]]]
    return ModelChecks(posterior, prior_table, warnings, alpha)


def checks_section(checks: ModelChecks, figures: dict[str, str]) -> str:
    """Report section: how well each fit reproduces its cells, and prior warnings."""
    rows = []
    for t, c in checks.posterior.items():
        for stat, s in c.summary(checks.alpha)["statistics"].items():
            rows.append(
                {
                    "tactic": t,
                    "family": c.family,
                    "statistic": stat,
                    "cells": s["cells"],
                    "extreme_share": s["extreme_share"],
                    "min_p": s["min_p"],
                    "outside_90pct_interval": s["outside_interval_share"],
                }
            )
    lines = [
        "## Model checks",
        "",
        "Posterior predictive check: each cell's statistics replicated from the posterior "
        f"(`ppc.csv`); a cell is extreme when its two-sided p < {checks.alpha}. A well-specified "
        "model shows few extreme cells (the p-values are conservative).",
        "",
        md_table(pd.DataFrame(rows)),
        "",
    ]
    for t in checks.posterior:
        if f"ppc_{t}" in figures:
            lines += [f"![posterior predictive check {t}]({figures[f'ppc_{t}']})", ""]
    if checks.prior_warnings:
        lines += ["Prior predictive warnings (what the priors imply, `prior_checks.csv`):", ""]
        lines += [f"- {t}: {w}" for t, ws in checks.prior_warnings.items() for w in ws]
    else:
        lines += [
            "Prior predictive check: every prior implies plausible conversion rates, uplifts, "
            "spend and counts (`prior_checks.csv`)."
        ]
    return "\n".join(lines)
