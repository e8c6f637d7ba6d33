"""What a run found, as typed objects: one field per stage result.

:func:`uplift.pipeline.run` fills a :class:`RunSummary` stage by stage;
:func:`uplift.outputs.write_outputs` writes every artifact and the report from it, and
:meth:`RunSummary.to_dict` is ``summary.json`` (its keys are a public contract: the order and
names below are the file's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from uplift.app.heldout_run import HoldoutResult
    from uplift.app.strata_run import CustomerStrata
    from uplift.config import AppConfig
    from uplift.data import CustomerData
    from uplift.evaluate.crossfit import CrossfitResult, PlanValue
    from uplift.models import FittedTactic
    from uplift.optimize import Allocation, AllocationProblem, BudgetAllocator
    from uplift.optimize.allocator import Frontier
    from uplift.optimize.targets import CustomerTargets
    from uplift.report.model_checks import ModelChecks


@dataclass
class Prepared:
    """The data stage: validated rows, their cells, the value of one unit of each tactic's metric
    per segment, and (synthetic data) the generator's truth."""

    data: CustomerData
    cells: pd.DataFrame
    values: dict[str, pd.Series]
    segment_value: Any
    truth: pd.DataFrame | None = None
    #: model.covariate_model.enabled as the run used it: ``enabled``, ``by`` (``config``, or
    #: ``auto`` with ``why``): summary.json ``covariate_model_setting``
    covariate_setting: dict[str, Any] = field(default_factory=dict)


@dataclass
class GateStatus:
    """Which fits failed the diagnostics gate, whether the config let them through, and the
    refusal message when it did not."""

    failures: dict[str, list[str]]
    overridden: bool
    message: str | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def refused(self) -> bool:
        return self.message is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "passed": self.passed,
            "failures": self.failures,
            "overridden": self.overridden,
        }
        return out | ({"message": self.message} if self.message else {})


@dataclass
class Decision:
    """The budget plan, or why there is none (gate refusal or an optimizer error).

    With customer strata (a covariate model passed the gate), ``allocation`` and ``problem``
    are per stratum (``<segment>~q<k>``), ``strata`` holds how customers were placed, and
    ``by_segment`` is the same plan per (segment, arm): allocation.csv, the report and the
    targets' reconciliation read that one."""

    allocation: Allocation | None = None
    problem: AllocationProblem | None = None
    allocator: BudgetAllocator | None = None
    error: Exception | None = None
    strata: CustomerStrata | None = None
    by_segment: Allocation | None = None

    def error_dict(self) -> dict[str, Any] | None:
        if self.error is None:
            return None
        conflict = getattr(self.error, "conflict", None)
        return {
            "status": getattr(self.error, "status", "failed"),
            "message": str(self.error),
            "conflicting_constraints": list(getattr(conflict, "constraints", []) or []),
        }


@dataclass
class RunSummary:
    """Everything a run computed, stage by stage (None: the stage did not run)."""

    config: AppConfig
    prepared: Prepared
    health: dict[str, Any]
    fits: dict[str, FittedTactic]
    uplift: pd.DataFrame
    by_arm: pd.DataFrame
    checks: ModelChecks
    gate: GateStatus
    covariate_models: dict[str, Any] = field(default_factory=dict)
    scores: pd.DataFrame | None = None
    readout: pd.DataFrame | None = None
    next_wave: pd.DataFrame | None = None
    evaluation: HoldoutResult | None = None
    decision: Decision = field(default_factory=Decision)
    prices: pd.DataFrame | None = None
    pricing: dict[str, Any] | None = None
    demand: pd.DataFrame | None = None
    targets: CustomerTargets | None = None
    crossfit: CrossfitResult | None = None
    crossfit_skipped: str | None = None
    plan_value: PlanValue | None = None
    frontier: Frontier | None = None
    frontier_skipped: str | None = None
    #: marginal_return.csv: one more budget step earmarked per tactic (optimize.marginal)
    marginal_return: pd.DataFrame | None = None
    marginal_return_skipped: str | None = None
    truth_check: dict[str, Any] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    #: summary.json ``fit_cache`` (:meth:`uplift.models.fit_cache.FitCache.summary`)
    fit_cache: dict[str, Any] = field(default_factory=dict)
    #: guardrails.csv (``guardrails`` configured), and each guardrail fit's diagnostics
    guardrails: pd.DataFrame | None = None
    guardrail_fits: dict[str, Any] = field(default_factory=dict)
    #: balance.csv (``data.columns.covariates`` set): SMD per segment, covariate and arm
    balance: pd.DataFrame | None = None

    def guardrail_summary(self) -> dict[str, Any] | None:
        """summary.json ``guardrails``: the configured metrics, the vetoed (segment, arm)
        cells with their P(harm > threshold), and each guardrail fit's diagnostics."""
        if self.guardrails is None:
            return None
        g = self.guardrails
        vetoed = g[g["vetoed"].astype(bool)]
        return {
            "rule": "guardrail_veto",
            "metrics": [
                {
                    "name": c.name,
                    "column": c.column,
                    "threshold": c.threshold,
                    "direction": c.direction,
                    "veto": c.veto,
                    "veto_probability": c.veto_probability,
                }
                for c in self.config.guardrails
            ],
            "n_vetoed": len(vetoed),
            "vetoed": [
                {
                    "tactic": str(r.tactic),
                    "arm": str(r.arm),
                    "segment": str(r.segment),
                    "metric": str(r.metric),
                    "prob_harm": round(float(r.prob_harm), 4),
                    "mean": float(r.mean),
                }
                for r in vetoed.itertuples(index=False)
            ],
            "fits": self.guardrail_fits,
        }

    @property
    def allocation(self) -> Allocation | None:
        """The plan per (segment, arm) (strata summed: :attr:`Decision.by_segment`)."""
        d = self.decision
        return d.by_segment if d.by_segment is not None else d.allocation

    @property
    def status(self) -> str:
        """``refused`` when the gate or the rules stopped the plan, else ``complete``."""
        return "refused" if self.decision.error is not None or self.gate.refused else "complete"

    def plan_by_arm(self) -> pd.DataFrame | None:
        """The plan's totals per (tactic, arm) (:meth:`Allocation.by_arm`), None without one."""
        allocation, problem = self.decision.allocation, self.decision.problem
        if allocation is None or problem is None:
            return None
        return allocation.by_arm(problem, self.config.report.hdi_prob)

    def budget_step(self) -> dict[str, float] | None:
        """What one more :func:`~uplift.optimize.factory.marginal_step` of budget returns,
        from the frontier (None without one)."""
        from uplift.optimize.factory import marginal_step

        if self.frontier is None:
            return None
        budget = self.config.optimize.budget
        return self.frontier.step_gain(budget, marginal_step(budget))

    def to_dict(self) -> dict[str, Any]:
        """``summary.json`` (without ``status``, which :func:`write_outputs` adds last)."""
        config, data, cells = self.config, self.prepared.data, self.prepared.cells
        sampler = config.sampler
        hp = config.report.hdi_prob
        out: dict[str, Any] = {
            "experiment": config.experiment_name,
            "data_source": config.data.source.value,
            "n_customers": len(data),
            "n_cells": len(cells),
            "segments": cells["segment"].nunique(),
            "tactics": list(self.fits),
            "budget": config.optimize.budget,
            "hdi_prob": hp,
            "seed": sampler.seed,
            "sampler": {
                "backend": sampler.backend.value,
                "chains": sampler.chains,
                "draws": sampler.draws,
                "tune": sampler.tune,
                **(
                    {
                        "vi_method": sampler.vi_method,
                        "vi_iterations": sampler.vi_iterations,
                        "vi_learning_rate": sampler.vi_learning_rate,
                    }
                    if sampler.approximate
                    else {}
                ),
            },
            "diagnostics": {
                t: f.diagnostics.to_dict()
                | {"fit_seconds": round(f.seconds, 3)}
                | ({"attempts": f.attempts} if f.attempts else {})
                for t, f in self.fits.items()
            },
            **({"fit_cache": self.fit_cache} if self.fit_cache else {}),
            "parameterization": {
                t: f.model.parameterization.describe(getattr(f.model, "segment_dims", ()))
                for t, f in self.fits.items()
                if hasattr(f.model, "parameterization")
            },
            "gate": self.gate.to_dict(),
            "model_checks": self.checks.summary(),
            "covariate_model_setting": self.prepared.covariate_setting,
            "covariate_model": {
                t: {
                    "method": m.method_used,
                    "covariates": m.covariates,
                    "diagnostics": m.diagnostics().to_dict(),
                    # refits the gate asked for, and why the last fit still fails (its
                    # customers are then listed in hash order: it scores no one)
                    "attempts": list(m.fit_info.get("attempts", [])),
                    "gate_failures": list(m.fit_info.get("gate_failures", [])),
                    "scores_customers": m.passed_gate,
                }
                for t, m in self.covariate_models.items()
            },
            "health": self.health,
            **({"guardrails": gs} if (gs := self.guardrail_summary()) is not None else {}),
            "value_notes": list(getattr(self.prepared.segment_value, "notes", []) or []),
            "value_per_unit": {
                t: {"metric": self.fits[t].model.metric}
                | {k: round(float(v), 4) for k, v in vals.items()}
                for t, vals in self.prepared.values.items()
            },
        }
        if self.evaluation is not None:
            from uplift.app.heldout_run import holdout_summary

            out["evaluation"] = {
                "holdout_fraction": config.evaluate.holdout_fraction,
                "k": config.evaluate.k,
                "results": holdout_summary(self.evaluation),
            }
        error = self.decision.error_dict()
        if error is not None:
            out["optimizer"] = error
        if self.pricing is not None:
            out["pricing"] = self.pricing
        allocation = self.decision.allocation
        if allocation is not None:
            if self.targets is not None:
                out["targets"] = self.targets.summary()
            lo, hi = allocation.profit_interval(hp)
            out |= {
                "total_spend": allocation.total_spend,
                "expected_incremental_profit": allocation.expected_profit,
                "profit_hdi": [lo, hi],
                "customers_treated": int(allocation.table["customers"].sum()),
                "optimizer": allocation.summary(hp),
            }
            if self.decision.strata is not None:
                out["customer_strata"] = self.decision.strata.summary()
            by_arm = self.plan_by_arm()
            if by_arm is not None:
                out["plan_by_arm"] = by_arm.to_dict(orient="records")
            if self.frontier is not None:
                out["budget_step"] = self.budget_step()
            elif self.frontier_skipped is not None:
                out["budget_step"] = {"skipped": self.frontier_skipped}
            if self.marginal_return is not None:
                out["marginal_return_by_tactic"] = marginal_return_summary(self.marginal_return)
            elif self.marginal_return_skipped is not None:
                out["marginal_return_by_tactic"] = {"skipped": self.marginal_return_skipped}
            if self.crossfit is not None:
                out["crossfit"] = self.crossfit.to_dict()
            elif self.crossfit_skipped is not None:
                out["crossfit"] = {"skipped": self.crossfit_skipped}
            if self.plan_value is not None:
                out["plan_value"] = self.plan_value.to_dict()
                out["calibrated_incremental_profit"] = self.plan_value.calibrated
            if self.truth_check is not None:
                out["truth_check"] = self.truth_check
        out["seconds"] = self.seconds
        out["versions"] = self.versions
        return out


def marginal_return_summary(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """summary.json ``marginal_return_by_tactic``: marginal_return.csv keyed by tactic."""
    out: dict[str, dict[str, Any]] = {}
    for r in table.to_dict(orient="records"):
        tactic = str(r.pop("tactic"))
        out[tactic] = {
            k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()
        }
    return out
