"""Allocation constraints as small named objects.

The name is what messages and reports use, so a user can tell which business rule binds or
conflicts. Every constraint can be checked on a NumPy decision without a solver (``slack``:
>= 0 when satisfied, in the constraint's own units; ``violation`` = how far it is broken), so
tests can check a rule's meaning independently of the model it builds.

Linear rules are ``A @ x <= b`` rows (a ``>=`` rule is stored negated) with ``b`` a cvxpy
Parameter, so their duals read as "objective gained per unit the rule is relaxed". Risk rules
(ROI at a posterior quantile, probability of loss) are CVaR bounds: convex, and they imply the
quantile statement they stand for on the posterior draws.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import cvxpy as cp
import numpy as np

from uplift.optimize.problem import AllocationProblem
from uplift.optimize.risk import check_alpha, tail_mean, tail_mean_expr
from uplift.optimize.settings import as_labels, parse_spec, parse_specs
from uplift.optimize.settings import check_unique_names as check_unique_names  # re-export
from uplift.optimize.strata import segment_of

if TYPE_CHECKING:
    from uplift.optimize.model import AllocationModel

TOL = 1e-6


class Constraint(Protocol):
    name: str

    def build(self, m: AllocationModel) -> list[cp.Constraint]: ...

    def slack(self, x: np.ndarray, problem: AllocationProblem) -> float: ...


@dataclass(frozen=True)
class Rows:
    """``A @ x <= b`` with one label per row (a segment, a tactic, a cell...)."""

    A: np.ndarray
    b: np.ndarray
    labels: list[str]


def _set_default_name(obj: Any, name: str) -> None:
    if not obj.name:
        object.__setattr__(obj, "name", name)


def segment_matches(segment: str, label: str, separator: str = "/") -> bool:
    """A label selects a segment by its full name or by one of its ``/``-separated parts; a
    customer stratum (``<segment>~q<k>``) is selected with its segment."""
    segment = segment_of(segment)
    return segment == label or label in str(segment).split(separator)


def select_segments(
    problem_segments: Iterable[str], labels: Sequence[str], who: str, strict: bool = True
) -> list[str]:
    """Segments matched by any label; with ``strict`` a label that matches nothing is an error."""
    segs = list(problem_segments)
    chosen = [s for s in segs if any(segment_matches(s, lab) for lab in labels)]
    if strict:
        unmatched = [lab for lab in labels if not any(segment_matches(s, lab) for s in segs)]
        if unmatched:
            raise ValueError(
                f"{who}: {unmatched} match no segment; segments are named like "
                f"{segs[:6]}{'...' if len(segs) > 6 else ''} (a label matches a full name or one "
                "'/'-separated part); set strict=false to allow labels absent from this data"
            )
    return chosen


class LinearConstraint:
    """Base for rules that are rows ``A @ x <= b`` over the decision."""

    name: str

    def rows(self, problem: AllocationProblem) -> Rows:
        raise NotImplementedError

    def build(self, m: AllocationModel) -> list[cp.Constraint]:
        r = self.rows(m.problem)
        if not len(r.b):
            return []
        return [m.lin(r.A) <= m.rhs(self.name, r.b)]

    def row_slacks(self, x: np.ndarray, problem: AllocationProblem) -> np.ndarray:
        r = self.rows(problem)
        return r.b - r.A @ np.asarray(x, dtype=float) if len(r.b) else np.array([np.inf])

    def slack(self, x: np.ndarray, problem: AllocationProblem) -> float:
        return float(np.min(self.row_slacks(x, problem)))

    def violation(self, x: np.ndarray, problem: AllocationProblem) -> float:
        return max(0.0, -self.slack(x, problem))

    def binding_cells(
        self, x: np.ndarray, problem: AllocationProblem, tol: float, step: np.ndarray | None = None
    ) -> np.ndarray:
        """(C,) cells that appear in a row with (near) zero slack.

        ``step`` (C,) is the smallest move of each cell worth making (1 for integer customer
        cells that pay on their first unit, else 0): a row whose slack is smaller than one such
        step holds that cell back, so it binds even if its slack is not exactly zero.
        """
        r = self.rows(problem)
        if not len(r.b):
            return np.zeros(problem.n_cells, dtype=bool)
        step = np.zeros(problem.n_cells) if step is None else step
        reach = (np.abs(r.A) * step[None, :]).max(axis=1)
        slack = self.row_slacks(x, problem)
        tight = (slack <= tol * np.maximum(1.0, np.abs(r.b))) | (slack < reach - 1e-9)
        return (np.abs(r.A[tight]) > 0).any(axis=0)


@dataclass(frozen=True)
class TotalBudget(LinearConstraint):
    """Total spend on offers and spend-type tactics <= budget."""

    budget: float
    name: str = "total_budget"

    def __post_init__(self) -> None:
        if not np.isfinite(self.budget) or self.budget < 0:
            raise ValueError(f"{self.name}: budget must be a finite number >= 0, got {self.budget}")

    def rows(self, problem: AllocationProblem) -> Rows:
        return Rows(problem.cost[None, :], np.array([float(self.budget)]), ["all"])


@dataclass(frozen=True)
class ContactCap(LinearConstraint):
    """Each customer receives at most ``max_offers`` offers: per segment, sum over tactics <= k x N_g."""

    max_offers: int = 1
    name: str = "contact_cap"

    def __post_init__(self) -> None:
        if self.max_offers < 1:
            raise ValueError(f"{self.name}: max_offers must be >= 1, got {self.max_offers}")

    def rows(self, problem: AllocationProblem) -> Rows:
        a = problem.segment_matrix * problem.customer_mask[None, :]
        return Rows(a, self.max_offers * problem.eligible_vector, problem.segments)


@dataclass(frozen=True)
class CellCap(LinearConstraint):
    """A customer gets a given arm at most once: customers in a cell <= customers in the segment."""

    name: str = "cell_cap"

    def rows(self, problem: AllocationProblem) -> Rows:
        idx = np.flatnonzero(problem.customer_mask)
        a = np.zeros((len(idx), problem.n_cells))
        a[np.arange(len(idx)), idx] = 1.0
        seg = problem.cells["segment"].astype(str).to_numpy()
        arm = problem.cells["arm"].astype(str).to_numpy()
        labels = [f"{seg[i]}|{arm[i]}" for i in idx]
        return Rows(a, problem.cell_eligible[idx], labels)


def _tactic_mask(problem: AllocationProblem, tactic: str, who: str) -> np.ndarray:
    mask = problem.cells["tactic"].astype(str).to_numpy() == tactic
    if not mask.any():
        raise ValueError(f"{who}: tactic {tactic!r} has no cells; tactics are {problem.tactics}")
    return mask


@dataclass(frozen=True)
class TacticSpend(LinearConstraint):
    """Spend on one tactic within [min_spend, max_spend] (e.g. a committed channel budget)."""

    tactic: str
    min_spend: float = 0.0
    max_spend: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        _set_default_name(self, f"tactic_spend[{self.tactic}]")
        if self.min_spend < 0:
            raise ValueError(f"{self.name}: min_spend must be >= 0, got {self.min_spend}")
        if self.max_spend is not None and self.max_spend < self.min_spend:
            raise ValueError(
                f"{self.name}: max_spend {self.max_spend} < min_spend {self.min_spend}"
            )

    def rows(self, problem: AllocationProblem) -> Rows:
        a = problem.cost * _tactic_mask(problem, self.tactic, self.name)
        A, b, labels = [], [], []
        if self.max_spend is not None:
            A.append(a)
            b.append(float(self.max_spend))
            labels.append("max")
        if self.min_spend > 0:
            A.append(-a)
            b.append(-float(self.min_spend))
            labels.append("min")
        return Rows(np.array(A).reshape(len(b), problem.n_cells), np.array(b), labels)


@dataclass(frozen=True)
class TacticCapacity(LinearConstraint):
    """Customers treated with one tactic <= slots (e.g. call-centre capacity)."""

    tactic: str
    slots: float
    name: str = ""

    def __post_init__(self) -> None:
        _set_default_name(self, f"capacity[{self.tactic}]")
        if self.slots < 0:
            raise ValueError(f"{self.name}: slots must be >= 0, got {self.slots}")

    def rows(self, problem: AllocationProblem) -> Rows:
        mask = _tactic_mask(problem, self.tactic, self.name) & problem.customer_mask
        if not mask.any():
            raise ValueError(
                f"{self.name}: tactic {self.tactic!r} has only spend cells; capacity counts "
                "treated customers, use tactic_spend to cap spend"
            )
        return Rows(mask.astype(float)[None, :], np.array([float(self.slots)]), ["all"])


@dataclass(frozen=True)
class MinTierShare(LinearConstraint):
    """Spend on the selected segments (e.g. the top value tier) >= share x total spend."""

    share: float
    segments: tuple[str, ...] = ("high",)
    strict: bool = True
    name: str = "min_tier_share"

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", as_labels(self.segments))
        if not 0 <= self.share <= 1:
            raise ValueError(f"{self.name}: share must be in [0, 1], got {self.share}")

    def rows(self, problem: AllocationProblem) -> Rows:
        chosen = select_segments(problem.segments, self.segments, self.name, self.strict)
        in_tier = problem.cells["segment"].isin(chosen).to_numpy()
        # share x total - tier <= 0
        a = problem.cost * (self.share - in_tier.astype(float))
        return Rows(a[None, :], np.array([0.0]), ["share"])

    def binding_cells(
        self, x: np.ndarray, problem: AllocationProblem, tol: float, step: np.ndarray | None = None
    ) -> np.ndarray:
        if problem.spend(x) <= tol:  # nothing spent: 0 >= share x 0 holds trivially
            return np.zeros(problem.n_cells, dtype=bool)
        return super().binding_cells(x, problem, tol * max(1.0, problem.spend(x)), step)


@dataclass(frozen=True)
class ExcludeSegments(LinearConstraint):
    """No treatment or spend for the listed segments (e.g. 'shed')."""

    segments: tuple[str, ...] = ("shed",)
    strict: bool = True
    name: str = "excluded_segments"

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", as_labels(self.segments))

    def cell_mask(self, problem: AllocationProblem) -> np.ndarray:
        chosen = select_segments(problem.segments, self.segments, self.name, self.strict)
        return problem.cells["segment"].isin(chosen).to_numpy()

    def rows(self, problem: AllocationProblem) -> Rows:
        idx = np.flatnonzero(self.cell_mask(problem))
        a = np.zeros((len(idx), problem.n_cells))
        a[np.arange(len(idx)), idx] = 1.0
        seg = problem.cells["segment"].astype(str).to_numpy()
        return Rows(a, np.zeros(len(idx)), [seg[i] for i in idx])

    def binding_cells(
        self, x: np.ndarray, problem: AllocationProblem, tol: float, step: np.ndarray | None = None
    ) -> np.ndarray:
        """Only excluded cells that would have paid: excluding a loss-maker costs nothing."""
        first_unit = problem.unit_profit(np.zeros(problem.n_cells)).mean(axis=0)
        return self.cell_mask(problem) & (first_unit > 0)


def cell_label(segment: str, arm: str) -> str:
    """A (segment, arm) cell's label in rules and messages: ``segment|arm`` (as ``cell_cap``)."""
    return f"{segment}|{arm}"


@dataclass(frozen=True)
class GuardrailVeto(LinearConstraint):
    """No customers for the listed (segment, arm) cells, labelled ``segment|arm``: the arms a
    guardrail metric says are likely to harm there (``guardrails[].veto``; the run fills
    ``cells`` from guardrails.csv). Cells absent from the problem are ignored (an arm may be
    vetoed for a segment this plan does not cover)."""

    cells: tuple[str, ...] = ()
    name: str = "guardrail_veto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "cells", as_labels(self.cells))

    def cell_mask(self, problem: AllocationProblem) -> np.ndarray:
        seg = problem.cells["segment"].astype(str).to_numpy()
        arm = problem.cells["arm"].astype(str).to_numpy()
        vetoed = set(self.cells)
        labels = np.array([cell_label(segment_of(s), a) for s, a in zip(seg, arm, strict=True)])
        return np.isin(labels, list(vetoed)) & problem.customer_mask

    def rows(self, problem: AllocationProblem) -> Rows:
        idx = np.flatnonzero(self.cell_mask(problem))
        a = np.zeros((len(idx), problem.n_cells))
        a[np.arange(len(idx)), idx] = 1.0
        seg = problem.cells["segment"].astype(str).to_numpy()
        arm = problem.cells["arm"].astype(str).to_numpy()
        return Rows(a, np.zeros(len(idx)), [cell_label(seg[i], arm[i]) for i in idx])

    def binding_cells(
        self, x: np.ndarray, problem: AllocationProblem, tol: float, step: np.ndarray | None = None
    ) -> np.ndarray:
        """Only vetoed cells that would have paid (as ``exclude_segments``): vetoing a cell the
        plan would not have treated anyway costs nothing and zeroed nothing."""
        first_unit = problem.unit_profit(np.zeros(problem.n_cells)).mean(axis=0)
        return self.cell_mask(problem) & (first_unit > 0)


@dataclass(frozen=True)
class RetentionCeiling(LinearConstraint):
    """Retention spend in each segment <= what keeping its treated customers is worth.

    A customer's retention ceiling is the value lost if they leave x how much the action lowers
    P(leave): per treated customer, the tactic's gross incremental value ``value x uplift``
    (``profit_draws + cost``). ``quantile`` null uses its posterior mean; ``q`` its
    ``q``-quantile over the draws, so a plan spends only where the ceiling clears the cost with
    probability ``1 - q``. One row per segment: ``sum cost x customers <= sum ceiling x
    customers`` over the tactic's arms (labels: segments).
    """

    tactic: str = "retention"
    quantile: float | None = None
    name: str = "retention_ceiling"

    def __post_init__(self) -> None:
        if self.quantile is not None and not 0 < self.quantile < 1:
            raise ValueError(
                f"{self.name}: quantile must be in (0, 1) or null, got {self.quantile}"
            )

    def ceiling(self, problem: AllocationProblem) -> np.ndarray:
        """(C,) ceiling per treated customer of each cell (0 outside the tactic's cells)."""
        mask = _tactic_mask(problem, self.tactic, self.name) & problem.customer_mask
        gross = problem.profit_draws + problem.cost[None, :]
        per_cell = (
            gross.mean(axis=0)
            if self.quantile is None
            else np.quantile(gross, self.quantile, axis=0)
        )
        return np.where(mask, per_cell, 0.0)

    def rows(self, problem: AllocationProblem) -> Rows:
        mask = _tactic_mask(problem, self.tactic, self.name) & problem.customer_mask
        net = (problem.cost - self.ceiling(problem)) * mask
        seg = problem.cells["segment"].astype(str).to_numpy()
        labels = sorted(set(seg[mask]))
        A = np.array([net * (seg == lab) for lab in labels]).reshape(len(labels), problem.n_cells)
        return Rows(A, np.zeros(len(labels)), labels)


class _PlanRiskRule:
    """Shared by rules on the whole plan's profit scenarios (ROI floor, loss probability).

    ``slack`` is the rule's own; a violation is negative slack, and every treated cell binds
    unless the slack exceeds what one more step of any worthwhile cell could move it.
    """

    def slack(self, x: np.ndarray, problem: AllocationProblem) -> float:
        raise NotImplementedError

    def violation(self, x: np.ndarray, problem: AllocationProblem) -> float:
        return max(0.0, -self.slack(x, problem))

    def binding_cells(
        self, x: np.ndarray, problem: AllocationProblem, tol: float, step: np.ndarray | None = None
    ) -> np.ndarray:
        spend = problem.spend(x)
        reach = _risk_reach(problem, step, getattr(self, "min_roi", 0.0))
        slack = self.slack(x, problem)
        if spend <= tol or (slack > tol * max(1.0, spend) and slack >= reach - 1e-9):
            return np.zeros(problem.n_cells, dtype=bool)
        return np.asarray(x) > 0


@dataclass(frozen=True)
class ROIFloor(_PlanRiskRule):
    """Return on spend (net incremental profit / spend) >= ``min_roi``.

    ``prob=None``: in expectation (linear for customer cells). ``prob=q``: at the posterior
    ``q``-quantile, enforced as ``tail_mean_q(profit - min_roi x spend) >= 0``, which implies
    ``P(ROI < min_roi) <= q`` over the draws (conservative: the tail mean is below the quantile).
    """

    min_roi: float = 0.0
    prob: float | None = None
    name: str = "roi_floor"

    def __post_init__(self) -> None:
        if self.prob is not None:
            check_alpha(self.prob, f"{self.name}.prob")

    def build(self, m: AllocationModel) -> list[cp.Constraint]:
        if self.prob is None:
            return [m.mean - self.min_roi * m.spend >= 0]
        tail, _ = tail_mean_expr(m.scenarios - self.min_roi * m.spend, self.prob, "roi_var")
        return [tail >= 0]

    def slack(self, x: np.ndarray, problem: AllocationProblem) -> float:
        excess = problem.scenario_profit(x) - self.min_roi * problem.spend(x)
        return float(excess.mean() if self.prob is None else tail_mean(excess, self.prob))


@dataclass(frozen=True)
class LossProbability(_PlanRiskRule):
    """Probability that the plan loses more than ``max_tail_loss`` is at most ``max_prob``.

    Enforced as ``tail_mean_{max_prob}(profit) >= -max_tail_loss`` (a CVaR bound): the mean of
    the worst ``max_prob`` share of draws loses at most that much, which implies the probability
    statement on the draws. It is stricter than the probability alone (convex, so solvable).
    """

    max_prob: float = 0.05
    max_tail_loss: float = 0.0
    name: str = "loss_probability"

    def __post_init__(self) -> None:
        check_alpha(self.max_prob, f"{self.name}.max_prob")
        if self.max_tail_loss < 0:
            raise ValueError(f"{self.name}: max_tail_loss must be >= 0, got {self.max_tail_loss}")

    def build(self, m: AllocationModel) -> list[cp.Constraint]:
        tail, _ = tail_mean_expr(m.scenarios, self.max_prob, "loss_var")
        return [tail >= -self.max_tail_loss]

    def slack(self, x: np.ndarray, problem: AllocationProblem) -> float:
        return float(tail_mean(problem.scenario_profit(x), self.max_prob) + self.max_tail_loss)


def _risk_reach(problem: AllocationProblem, step: np.ndarray | None, min_roi: float) -> float:
    """Largest change in any draw's excess profit from one more step of a worthwhile cell."""
    if step is None or not (step > 0).any():
        return 0.0
    cols = step > 0
    per_unit = problem.profit_draws[:, cols] - min_roi * problem.cost[cols][None, :]
    return float((np.abs(per_unit) * step[cols][None, :]).max())


CONSTRAINT_TYPES: dict[str, type] = {
    "total_budget": TotalBudget,
    "contact_cap": ContactCap,
    "cell_cap": CellCap,
    "tactic_spend": TacticSpend,
    "tactic_capacity": TacticCapacity,
    "min_tier_share": MinTierShare,
    "exclude_segments": ExcludeSegments,
    "guardrail_veto": GuardrailVeto,
    "retention_ceiling": RetentionCeiling,
    "roi_floor": ROIFloor,
    "loss_probability": LossProbability,
}


def constraint_from_config(spec: Mapping[str, Any]) -> Constraint:
    """One ``{type: ..., name: ..., <fields>}`` mapping -> constraint object."""
    return parse_spec(spec, CONSTRAINT_TYPES)


def constraints_from_config(specs: Iterable[Mapping[str, Any]]) -> list[Constraint]:
    """A list of constraint mappings (as written in config) -> constraint objects; names unique."""
    return parse_specs(specs, CONSTRAINT_TYPES)


@dataclass
class ConstraintReport:
    """A constraint's state at a solution: slack (own units), binding, and the LP dual if any."""

    name: str
    slack: float
    binding: bool
    shadow_price: float | None = None
    rows: dict[str, float] = field(default_factory=dict)
