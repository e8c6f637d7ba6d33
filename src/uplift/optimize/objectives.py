"""Objectives: each turns the decision vector into a concave cvxpy expression to maximise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import cvxpy as cp

if TYPE_CHECKING:
    from uplift.optimize.allocator import AllocationProblem


class Objective(Protocol):
    name: str

    def expression(self, x: cp.Variable, problem: AllocationProblem) -> cp.Expression: ...


@dataclass(frozen=True)
class ExpectedProfit:
    """Posterior-mean incremental profit: sum over cells of E[value x uplift - cost] x customers."""

    name: str = "expected_profit"

    def expression(self, x: cp.Variable, problem: AllocationProblem) -> cp.Expression:
        return problem.profit_draws.mean(axis=0) @ x
