"""A finished run, loaded back from its folder: re-plan at other budgets or rules without
refitting, compare plans, and export any plan's customer list.

The posteriors are the optimizer's input, so a budget question costs a solve, not a fit:
:func:`load_run` reads the run's configuration (``config.yaml``, or Hydra's
``.hydra/config.yaml`` for runs written before it), its posterior files and, from the run's own
data source, the validated customer rows and cells; :meth:`SavedRun.plan` then solves the same
allocation problem the run solved, with any ``optimize`` keys changed. At the run's own settings it
gives the run's ``allocation.csv`` back exactly (tested), so a comparison is like with like. A run
that planned over customer strata (``optimize.customer_strata``) is re-planned over the same
strata, placed again from its saved covariate posteriors: :meth:`SavedRun.plan` then gives
``allocation_strata.csv`` back and :meth:`SavedRun.per_segment` its ``allocation.csv``.

This is the planner's notebook (``notebooks/03_planner.py``) as an API::

    run = uplift.load_run("outputs/synthetic_demo/2026-12-03_10-00-00")
    run.compare([10_000, 20_000, 40_000])        # one row per budget
    plan = run.plan(budget=30_000)
    run.export_targets(plan, "targets_30k.csv")  # who gets which offer
"""

from __future__ import annotations

import copy
import dataclasses
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from uplift.app.run_summary import Prepared
from uplift.atomic_io import atomic_write_csv
from uplift.config import AppConfig, to_app_config
from uplift.optimize import Allocation, AllocationProblem
from uplift.optimize.strata import collapse
from uplift.optimize.targets import CustomerTargets
from uplift.pipeline import (
    build_allocator,
    eligible_customers,
    list_customers,
    plan_strata,
    prepare,
    price_tactics,
)

__all__ = ["RunLoadError", "SavedRun", "load_run"]

#: where a run folder keeps its configuration, first found wins
CONFIG_FILES = ("config.yaml", ".hydra/config.yaml")


class RunLoadError(ValueError):
    """A folder that cannot be loaded as a finished run; the message names the missing part."""


@dataclass
class SavedRun:
    """A finished run: its configuration, summary, data and posterior draws per budget tactic."""

    folder: Path
    config: AppConfig
    summary: dict[str, Any]
    prepared: Prepared
    draws: dict[str, Any]  # tactic -> uplift draws (xarray), as the run's optimizer saw them
    allocation: pd.DataFrame | None
    scores: pd.DataFrame | None = None  # customer_scores.csv (covariate model), if written
    #: tactic -> the run's covariate model (covariate_<tactic>.nc), when it planned over
    #: customer strata (summary.json ``customer_strata``)
    covariate_models: dict[str, Any] = dataclasses.field(default_factory=dict)
    _placed: tuple[AllocationProblem, Any] | None = dataclasses.field(default=None, repr=False)

    def problem(self) -> AllocationProblem:
        """The run's allocation problem: posterior draws, unit values and eligible customers;
        over customer strata (``<segment>~q<k>``) when the run planned over them, placed
        exactly as the run placed them (the same saved covariate posteriors)."""
        return self._problem_and_strata()[0]

    def _problem_and_strata(self) -> tuple[AllocationProblem, Any]:
        """The problem and its customer strata (None: per segment), built once."""
        if self._placed is None:
            eligible = eligible_customers(self.config, self.prepared.cells)
            p = self.prepared
            problem = AllocationProblem.from_uplift(self.draws, p.values, p.data.arm_map, eligible)
            strata = None
            if self.covariate_models:
                problem, strata, _ = plan_strata(
                    self.config,
                    p.data,
                    p.values,
                    self.draws,
                    problem,
                    self.covariate_models,
                    eligible,
                )
            self._placed = (problem, strata)
        return self._placed

    def per_segment(self, plan: Allocation) -> pd.DataFrame:
        """``plan``'s table per (segment, arm), as allocation.csv has it (strata summed)."""
        problem, strata = self._problem_and_strata()
        if strata is None:
            return plan.table
        return collapse(plan.table, problem, self.config.report.hdi_prob)

    def settings(self, budget: float | None = None, **optimize: Any) -> AppConfig:
        """The run's configuration with ``optimize`` keys changed (validated like the CLI's)."""
        changes = dict(optimize, **({} if budget is None else {"budget": float(budget)}))
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self.config.optimize)})
        if unknown:
            raise RunLoadError(f"unknown optimize key(s): {', '.join(unknown)}")
        bins = changes.get("customer_strata", self.config.optimize.customer_strata)
        if bins != self.config.optimize.customer_strata:
            raise RunLoadError(
                "customer_strata is the run's own (its customers' strata are placed once); "
                "rerun with optimize.customer_strata changed (the fit cache makes it a re-plan)"
            )
        return dataclasses.replace(
            self.config, optimize=dataclasses.replace(self.config.optimize, **changes)
        )

    def plan(self, budget: float | None = None, **optimize: Any) -> Allocation:
        """Re-solve the run's plan with ``budget`` and any other ``optimize`` keys changed
        (e.g. ``objective="mean_cvar"``, ``constraints=[...]``); no refit."""
        return build_allocator(self.settings(budget, **optimize)).solve(self.problem())

    def compare(self, budgets: Sequence[float], **optimize: Any) -> pd.DataFrame:
        """One row per budget: spend, expected incremental profit with its interval, chance of
        a loss, customers treated and what the last 1 of budget returned (the budget dual)."""
        problem = self.problem()
        rows = []
        for budget in budgets:
            plan = build_allocator(self.settings(budget, **optimize)).solve(problem)
            lo, hi = plan.profit_interval(self.config.report.hdi_prob)
            rows.append(
                {
                    "budget": float(budget),
                    "spend": plan.total_spend,
                    "expected_incremental_profit": plan.expected_profit,
                    "profit_hdi_low": lo,
                    "profit_hdi_high": hi,
                    "prob_loss": 1.0 - plan.prob_profit_positive,
                    "customers_treated": float(plan.table["customers"].sum()),
                    "binding_constraints": ", ".join(plan.binding_constraints),
                }
            )
        return pd.DataFrame(rows)

    def targets(self, plan: Allocation) -> CustomerTargets:
        """Which customers get which arm under ``plan`` (as the run's ``targets.csv``)."""
        p = self.prepared
        strata = self._problem_and_strata()[1]
        return list_customers(self.config, p.data.frame, plan.table, strata, self.scores, p.values)

    def export_targets(self, plan: Allocation, path: str | Path) -> Path:
        """Write ``plan``'s customer list (``targets.csv`` columns) to ``path``, atomically."""
        return atomic_write_csv(self.targets(plan).table, Path(path))


def _config_of(folder: Path) -> AppConfig:
    for name in CONFIG_FILES:
        path = folder / name
        if path.is_file():
            node = OmegaConf.load(path)
            if not isinstance(node, DictConfig):
                raise RunLoadError(f"{path} is not a configuration mapping")
            return to_app_config(node)
    raise RunLoadError(
        f"{folder} has no {' or '.join(CONFIG_FILES)}: pass the run's configuration, "
        "load_run(folder, config=uplift.compose_config([...]))"
    )


def load_run(folder: str | Path, config: AppConfig | None = None) -> SavedRun:
    """Load the finished run in ``folder`` (see the module docstring). ``config``: the run's
    configuration when the folder does not hold it. The customer rows are read again from the
    run's data source (``data.path``, or the synthetic generator at its seed)."""
    from uplift.models import UpliftModel, load_model

    folder = Path(folder)
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise RunLoadError(f"{folder} holds no summary.json: not a run folder, or not finished")
    summary = json.loads(summary_path.read_text())
    if summary.get("status") != "complete":
        raise RunLoadError(
            f"{folder}: the run's status is {summary.get('status')!r}, not 'complete' "
            "(a refused or failed run has no plan to revisit)"
        )
    config = copy.deepcopy(config) if config is not None else _config_of(folder)
    with tempfile.TemporaryDirectory(prefix="uplift-load-") as tmp:
        prepared = prepare(config, Path(tmp))  # synthetic truth goes to a scratch folder
    draws = {}
    priced = set(price_tactics(config, dict.fromkeys(summary["tactics"])))
    for tactic in (t for t in summary["tactics"] if t not in priced):  # budget tactics only
        path = folder / f"posterior_{tactic}.nc"
        if not path.is_file():
            raise RunLoadError(
                f"{path.name} is missing: the run was made with report.save_posteriors=false, "
                "so it cannot be re-planned without refitting"
            )
        model = load_model(path)
        if not isinstance(model, UpliftModel):
            raise RunLoadError(f"{path.name} holds a {type(model).__name__}, not an uplift model")
        draws[tactic] = model.uplift_draws()
    allocation = folder / "allocation_strata.csv"
    if not allocation.is_file():
        allocation = folder / "allocation.csv"
    scores = folder / "customer_scores.csv"
    covariate_models = {}
    if "customer_strata" in summary:  # the plan was over strata: place customers again
        for tactic in summary["customer_strata"]["tactics"]:
            path = folder / f"covariate_{tactic}.nc"
            if not path.is_file():
                raise RunLoadError(
                    f"{path.name} is missing: the run planned over customer strata, which "
                    "need its covariate model (report.save_posteriors=true)"
                )
            covariate_models[tactic] = load_model(path)
    return SavedRun(
        folder,
        config,
        summary,
        prepared,
        draws,
        pd.read_csv(allocation) if allocation.is_file() else None,
        pd.read_csv(scores) if scores.is_file() else None,
        covariate_models,
    )
