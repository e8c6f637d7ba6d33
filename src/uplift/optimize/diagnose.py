"""Explain an infeasible model by the names of the rules that conflict.

Two complementary answers, both from re-solving the same cvxpy constraints:

* a *conflict set* (deletion filter): drop named rules one at a time and keep a rule only if
  the rest become feasible without it. What is left is irreducible: these rules cannot all hold,
  and dropping any one of them restores feasibility.
* an *elastic relaxation*: every named rule gets a nonnegative slack and the total slack is
  minimised, so the message can say by how much (in the rule's own units) to relax.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

INFEASIBLE = (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE, cp.settings.INFEASIBLE_OR_UNBOUNDED)
#: statuses whose solution is a usable answer (a time limit returns the best found so far)
USABLE = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE, cp.USER_LIMIT)


@dataclass
class Conflict:
    """Rules that cannot hold together, and the smallest relaxation the elastic solve found."""

    constraints: list[str]
    relaxation: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    note: str = ""

    def describe(self) -> str:
        if not self.constraints:
            return (
                "no named constraint subset explains it ("
                + (self.note or "numerical trouble?")
                + ")"
            )
        names = ", ".join(f"'{n}'" for n in self.constraints)
        if len(self.constraints) == 1:
            msg = f"constraint {names} cannot be met on its own"
        else:
            msg = (
                f"these constraints cannot all hold together: {names} "
                "(drop or relax any one of them and the rest can be met)"
            )
        if self.relaxation:
            parts = ", ".join(f"'{k}' by {v:,.4g}" for k, v in self.relaxation.items())
            msg += f"; smallest relaxation found: {parts} (in each constraint's own units)"
        return msg


class InfeasibleMixin:
    """Shared fields of the infeasibility errors: the conflicting rules and the solver's facts."""

    def __init__(
        self, message: str, conflict: Conflict, status: str, solver: str, seconds: float
    ) -> None:
        # cooperative mixin: the next class in the MRO of every user is an Exception
        super().__init__(message)  # type: ignore[call-arg]
        self.conflict = conflict
        self.status = status
        self.solver = solver
        self.solve_seconds = seconds


def _is_feasible(constraints: list[cp.Constraint], solve_kwargs: Mapping[str, Any]) -> bool:
    prob = cp.Problem(cp.Minimize(0), constraints)
    try:
        prob.solve(ignore_dpp=True, **solve_kwargs)
    except cp.error.SolverError:
        return True  # cannot prove infeasible: keep the rule out of the blame list
    return prob.status not in INFEASIBLE


def _soften(c: cp.Constraint) -> tuple[cp.Constraint, list[cp.Variable]]:
    if isinstance(c, cp.constraints.Inequality):
        lhs, rhs = c.args
        s = cp.Variable(c.shape, nonneg=True)
        return lhs <= rhs + s, [s]
    if isinstance(c, cp.constraints.Equality):
        lhs, rhs = c.args
        up, down = cp.Variable(c.shape, nonneg=True), cp.Variable(c.shape, nonneg=True)
        return lhs == rhs + up - down, [up, down]
    return c, []


def find_conflict(
    groups: Mapping[str, Sequence[cp.Constraint]],
    base: Sequence[cp.Constraint],
    solve_kwargs: Mapping[str, Any],
    elastic: bool = True,
    soft: Sequence[str] | None = None,
) -> Conflict:
    """Name an irreducible set of conflicting rules among ``groups`` (``base`` always holds).

    ``soft`` limits the elastic solve to rules whose slack has a meaningful unit (money,
    customers, buyers); the others stay hard there. ``None`` softens every rule.
    """
    t0 = time.perf_counter()
    names = [n for n, cons in groups.items() if cons]
    base = list(base)

    def feasible(subset: list[str]) -> bool:
        return _is_feasible(base + [c for n in subset for c in groups[n]], solve_kwargs)

    if feasible(names):
        return Conflict([], seconds=time.perf_counter() - t0, note="all rules hold together")
    if not feasible([]):
        return Conflict(
            [], seconds=time.perf_counter() - t0, note="the model is infeasible without any rule"
        )
    keep = list(names)
    for n in names:
        trial = [k for k in keep if k != n]
        if not feasible(trial):
            keep = trial
    relaxation: dict[str, float] = {}
    if elastic and (soft is None or set(soft) & set(names)):
        soft_cons = list(base)
        slacks: dict[str, list[cp.Variable]] = {}
        for n in names:
            slacks[n] = []
            for c in groups[n]:
                if soft is not None and n not in soft:
                    soft_cons.append(c)
                    continue
                c2, s = _soften(c)
                soft_cons.append(c2)
                slacks[n] += s
        all_s = [s for ss in slacks.values() for s in ss]
        prob = cp.Problem(cp.Minimize(sum(cp.sum(s) for s in all_s)), soft_cons)
        try:
            prob.solve(ignore_dpp=True, **solve_kwargs)
            if prob.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
                for n, ss in slacks.items():
                    amount = float(sum(np.sum(s.value) for s in ss if s.value is not None))
                    if amount > 1e-7:
                        relaxation[n] = amount
        except cp.error.SolverError:
            pass
    return Conflict(keep, relaxation, time.perf_counter() - t0)
