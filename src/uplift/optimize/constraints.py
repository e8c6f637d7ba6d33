"""Allocation constraints as small named objects; each builds its cvxpy constraints.

The name is what messages and reports use, so a user can tell which business rule binds or
conflicts. New rules (per-tactic spend bands, capacities, ROI floors) are new classes here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import cvxpy as cp
import numpy as np

if TYPE_CHECKING:
    from uplift.optimize.allocator import AllocationProblem


class Constraint(Protocol):
    name: str

    def build(self, x: cp.Variable, problem: AllocationProblem) -> list[cp.Constraint]: ...

    def slack(self, x: np.ndarray, problem: AllocationProblem) -> float: ...


@dataclass(frozen=True)
class TotalBudget:
    """Total spend on offers <= budget."""

    budget: float
    name: str = "total_budget"

    def build(self, x: cp.Variable, problem: AllocationProblem) -> list[cp.Constraint]:
        return [problem.cost @ x <= self.budget]

    def slack(self, x: np.ndarray, problem: AllocationProblem) -> float:
        return float(self.budget - problem.cost @ x)


@dataclass(frozen=True)
class ContactCap:
    """Each customer receives at most ``max_offers`` offers: per segment, sum over tactics <= k x N_g."""

    max_offers: int = 1
    name: str = "contact_cap"

    def build(self, x: cp.Variable, problem: AllocationProblem) -> list[cp.Constraint]:
        return [problem.segment_matrix @ x <= self.max_offers * problem.eligible_vector]

    def slack(self, x: np.ndarray, problem: AllocationProblem) -> float:
        return float(np.min(self.max_offers * problem.eligible_vector - problem.segment_matrix @ x))


@dataclass(frozen=True)
class CellCap:
    """A customer gets a given arm at most once: customers in a cell <= customers in the segment."""

    name: str = "cell_cap"

    def build(self, x: cp.Variable, problem: AllocationProblem) -> list[cp.Constraint]:
        return [x <= problem.cell_eligible]

    def slack(self, x: np.ndarray, problem: AllocationProblem) -> float:
        return float(np.min(problem.cell_eligible - x))
