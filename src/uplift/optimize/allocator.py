"""Budget allocation over (segment, tactic) cells from posterior draws of incremental profit.

Decision ``x[c]`` = customers of cell c's segment who get cell c's arm (or money spent, for a
spend-type cell with a saturating response). Profit per treated customer in draw s is
``value[segment] x uplift[s, arm, segment] - cost[arm]``: the objective and every reported
interval are computed from these scenarios, so risk can be priced, not only means.

With integer decisions and linear responses the problem is a MILP that HiGHS solves to proven
optimality (``integer_method="milp"``). For many cells and draws, ``"round"`` solves the LP and
rounds customers down; the report states how much objective that can have cost at most (the
gap to the LP bound). An infeasible problem raises :class:`InfeasibleAllocationError` naming
the rules that conflict; nothing is returned half-solved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np
import pandas as pd

from uplift.choices import choice
from uplift.optimize.constraints import Constraint, LinearConstraint, Rows
from uplift.optimize.diagnose import (
    INFEASIBLE,
    USABLE,
    Conflict,
    InfeasibleMixin,
    find_conflict,
)
from uplift.optimize.model import AllocationModel
from uplift.optimize.objectives import ExpectedProfit, Objective
from uplift.optimize.problem import CUSTOMERS, AllocationProblem, SaturatingResponse
from uplift.optimize.settings import (
    DEFAULT_MIP_GAP,
    IntegerMethod,
    SolverSettings,
    SolvesWith,
    check_unique_names,
    mip_gap_of,
)
from uplift.optimize.strata import segment_of
from uplift.stats import hdi

__all__ = [
    "ALLOCATION_COLUMNS",
    "FRONTIER_COLUMNS",
    "PLAN_BY_ARM_COLUMNS",
    "Allocation",
    "AllocationError",
    "AllocationProblem",
    "BudgetAllocator",
    "Frontier",
    "InfeasibleAllocationError",
    "SaturatingResponse",
]

ALLOCATION_COLUMNS = [
    "segment",
    "tactic",
    "customers",
    "spend",
    "expected_incremental_profit",
    "profit_hdi_low",
    "profit_hdi_high",
    "arm",
    "eligible_customers",
    "cost_per_customer",
    "profit_per_customer",
    "prob_profit_positive",
    "unit",
    "decision",
    "binding_constraints",
]

FRONTIER_COLUMNS = [
    "budget",
    "status",
    "spend",
    "expected_profit",
    "profit_hdi_low",
    "profit_hdi_high",
    "prob_profit_positive",
    "objective",
    "marginal_return",
    "marginal_return_fd",
    "binding_constraints",
    "solve_seconds",
    "note",
]

#: the plan's totals per (tactic, arm): :meth:`Allocation.by_arm`
PLAN_BY_ARM_COLUMNS = [
    "tactic",
    "arm",
    "customers",
    "segments",
    "spend",
    "expected_profit",
    "profit_hdi_low",
    "profit_hdi_high",
    "prob_profit_positive",
    "prob_loss",
    "unit",
]

INTEGER_METHODS = tuple(IntegerMethod)
CONIC_SOLVERS = ("CLARABEL", "SCS", "ECOS", "MOSEK")


class AllocationError(RuntimeError):
    """The allocation could not be solved; the message carries solver status and constraint names."""


class InfeasibleAllocationError(InfeasibleMixin, AllocationError):
    """No plan meets every rule; ``conflict`` names the rules that cannot hold together."""


@dataclass
class Allocation:
    """A solved plan with its uncertainty, solver facts and the rules that shaped it."""

    table: pd.DataFrame
    status: str
    solver: str
    solve_seconds: float
    objective_value: float
    total_profit_draws: np.ndarray = field(repr=False)
    binding_constraints: list[str] = field(default_factory=list)
    objective_name: str = "expected_profit"
    method: str = "milp"
    bound: float | None = None
    mip_gap: float | None = None
    rounding_gap: float | None = None
    solver_seconds: float | None = None
    constraint_report: pd.DataFrame | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)

    @property
    def total_spend(self) -> float:
        return float(self.table["spend"].sum())

    @property
    def expected_profit(self) -> float:
        return float(self.total_profit_draws.mean())

    @property
    def prob_profit_positive(self) -> float:
        return float((self.total_profit_draws > 0).mean())

    def profit_interval(self, prob: float) -> tuple[float, float]:
        lo, hi = hdi(self.total_profit_draws, prob)
        return float(lo), float(hi)

    def by_arm(self, problem: AllocationProblem, hdi_prob: float = 0.94) -> pd.DataFrame:
        """The plan's totals per (tactic, arm), one row per arm of ``problem`` (0 customers: the
        arm gets nobody): customers, segments treated, spend, and the posterior mean, HDI and
        chance of a loss of the arm's profit.

        The interval is that of the draws of the arm's profit summed over its cells (one draw
        of the plan's profit per posterior draw), not a sum of cell intervals, which would be
        too wide: cell errors are not perfectly correlated. ``problem`` is the one the plan was
        solved on (its cells are the rows of :attr:`table`, in order).
        """
        t = self.table
        keys = ["segment", "tactic", "arm"]
        if (
            len(t) != problem.n_cells
            or not (
                t[keys].astype(str).to_numpy() == problem.cells[keys].astype(str).to_numpy()
            ).all()
        ):
            raise ValueError("by_arm needs the problem this allocation was solved on")
        decision = t["decision"].to_numpy(dtype=float)
        draws = problem.cell_profit(decision)  # (S, C)
        rows = []
        for (tactic, arm), idx in t.groupby(["tactic", "arm"], sort=False).indices.items():
            total = draws[:, idx].sum(axis=1)
            lo, hi = hdi(total, hdi_prob)
            units = set(t["unit"].iloc[idx])
            rows.append(
                {
                    "tactic": str(tactic),
                    "arm": str(arm),
                    "customers": t["customers"].iloc[idx].sum(),
                    "segments": len(
                        {segment_of(g) for g in t["segment"].iloc[idx][decision[idx] > 0]}
                    ),
                    "spend": float(t["spend"].iloc[idx].sum()),
                    "expected_profit": float(total.mean()),
                    "profit_hdi_low": float(lo),
                    "profit_hdi_high": float(hi),
                    "prob_profit_positive": float((total > 0).mean()),
                    "prob_loss": float((total < 0).mean()),
                    "unit": units.pop() if len(units) == 1 else "mixed",
                }
            )
        out = pd.DataFrame(rows, columns=PLAN_BY_ARM_COLUMNS)
        num = out.select_dtypes("float").columns
        out[num] = out[num] + 0.0  # an untreated arm's profit is 0, never -0
        return out

    def summary(self, hdi_prob: float = 0.94) -> dict[str, Any]:
        """Plain-JSON facts for summary.json and reports."""
        lo, hi = self.profit_interval(hdi_prob)
        return {
            "objective": self.objective_name,
            "objective_value": self.objective_value,
            "method": self.method,
            "solver": self.solver,
            "status": self.status,
            "solve_seconds": round(self.solve_seconds, 4),
            "solver_seconds": None
            if self.solver_seconds is None
            else round(self.solver_seconds, 4),
            "bound": self.bound,
            "mip_gap": self.mip_gap,
            "rounding_gap": self.rounding_gap,
            "total_spend": self.total_spend,
            "expected_profit": self.expected_profit,
            "profit_hdi": [lo, hi],
            "prob_profit_positive": self.prob_profit_positive,
            "binding_constraints": list(self.binding_constraints),
            "notes": list(self.notes),
        }


@dataclass
class Frontier:
    """Expected profit (with interval) and marginal returns over a grid of budgets."""

    table: pd.DataFrame
    shadow_prices: pd.DataFrame
    budget_constraint: str
    objective_name: str

    def step_gain(self, budget: float, step: float) -> dict[str, float] | None:
        """What ``step`` more budget above ``budget`` returns: the expected-profit and spend
        differences between the two levels (both must be solved levels of this frontier) and
        the budget's dual at ``budget`` (the return of its last unit). None when either level
        is missing or unsolved."""
        t = self.table.set_index("budget")
        if budget not in t.index or budget + step not in t.index:
            return None
        at, above = t.loc[budget], t.loc[budget + step]
        ok = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
        if at["status"] not in ok or above["status"] not in ok:
            return None
        return {
            "budget": float(budget),
            "step": float(step),
            "spend": float(at["spend"]),
            "expected_profit": float(at["expected_profit"]),
            "expected_profit_gain": float(above["expected_profit"] - at["expected_profit"]),
            "spend_gain": float(above["spend"] - at["spend"]),
            "marginal_return": float(at["marginal_return"]),
        }


@dataclass
class _Built:
    model: AllocationModel
    prob: cp.Problem
    groups: dict[str, list[cp.Constraint]]


class BudgetAllocator(SolvesWith):
    """Maximise an objective over customers (or spend) per cell subject to named constraints.

    ``integer_method``: ``"milp"`` (exact integer optimum) or ``"round"`` (LP, then customers
    rounded down; falls back to the MILP if rounding breaks a rule). ``response_method`` for
    spend cells: ``"pwl"`` (LP on breakpoints, HiGHS) or ``"exact"`` (conic; e.g. CLARABEL).
    ``solver``: a cvxpy solver name, with ``time_limit``, ``mip_rel_gap`` and ``solver_options``
    as keywords, or a :class:`SolverSettings` holding them all (as for the price optimizer).
    """

    def __init__(
        self,
        constraints: Sequence[Constraint],
        objective: Objective | None = None,
        integer: bool = True,
        solver: str | SolverSettings = "HIGHS",
        hdi_prob: float = 0.94,
        *,
        integer_method: str = "milp",
        response_method: str = "pwl",
        n_breakpoints: int = 24,
        time_limit: float | None = None,
        mip_rel_gap: float | None = DEFAULT_MIP_GAP,
        solver_options: dict[str, Any] | None = None,
        diagnose: bool = True,
    ) -> None:
        self.objective = objective or ExpectedProfit()
        self.constraints = list(constraints)
        check_unique_names(self.constraints)
        self.integer = integer
        self.settings = SolverSettings.of(
            solver, time_limit=time_limit, mip_rel_gap=mip_rel_gap, solver_options=solver_options
        )
        self.hdi_prob = hdi_prob
        self.integer_method = choice(IntegerMethod, "integer_method", integer_method)
        self.response_method = response_method
        self.n_breakpoints = n_breakpoints
        self.diagnose = diagnose

    # ---- building ---------------------------------------------------------------------------
    def _check_solver(self, problem: AllocationProblem, integer: bool) -> None:
        has_spend = bool(problem.spend_mask.any())
        exact = has_spend and self.response_method == "exact"
        if exact and self.solver not in CONIC_SOLVERS:
            raise AllocationError(
                f"response_method='exact' puts exponential cones in the model, which {self.solver} "
                "cannot solve; use solver='CLARABEL' (continuous decisions) or "
                "response_method='pwl' (piecewise-linear, an LP/MILP for HiGHS)"
            )
        if exact and integer:
            raise AllocationError(
                "integer customers with an exact saturating response is a mixed-integer conic "
                "problem no installed solver handles; set integer_method='round' (solve "
                "continuous, round customers down) or response_method='pwl'"
            )

    def _build(self, problem: AllocationProblem, integer: bool) -> _Built:
        self._check_solver(problem, integer)
        model = AllocationModel(
            problem,
            integer=integer,
            response_method=self.response_method,
            n_breakpoints=self.n_breakpoints,
        )
        groups = {c.name: list(c.build(model)) for c in self.constraints}
        obj_expr, obj_cons = self.objective.build(model.scenarios, model.mean)
        cons = model.base_constraints + obj_cons + [c for g in groups.values() for c in g]
        return _Built(model, cp.Problem(cp.Maximize(obj_expr), cons), groups)

    def _run(self, prob: cp.Problem, warm_start: bool = False, reuse: bool = False) -> float:
        return self.settings.solve(prob, AllocationError, warm_start=warm_start, reuse=reuse)

    def _conflict(self, built: _Built) -> Conflict:
        if not self.diagnose:
            return Conflict([], note="diagnosis switched off")
        return find_conflict(
            built.groups, built.model.base_constraints, self.settings.diagnose_kwargs()
        )

    def _solution(self, built: _Built, seconds: float) -> np.ndarray:
        """The solved decision vector, or :meth:`_fail` (which names the conflicting rules)."""
        xv = built.model.value()
        if xv is None or built.prob.status not in USABLE:
            self._fail(built, seconds)
        assert xv is not None
        return xv

    def _fail(self, built: _Built, seconds: float) -> None:
        status = str(built.prob.status)
        if status in INFEASIBLE:
            conflict = self._conflict(built)
            raise InfeasibleAllocationError(
                f"allocation is infeasible (solver {self.solver}, status {status}, "
                f"{seconds:.2f}s): {conflict.describe()}",
                conflict,
                status,
                self.solver,
                seconds,
            )
        if status in (cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE):
            raise AllocationError(
                f"allocation is unbounded (solver {self.solver}): nothing limits a profitable "
                "cell; add total_budget, contact_cap or cell_cap. Constraints in play: "
                + ", ".join(c.name for c in self.constraints)
            )
        hint = "raise time_limit or try integer_method='round'"
        raise AllocationError(
            self.settings.no_answer(status, seconds, "plan", hint, self.constraints)
        )

    # ---- solving ----------------------------------------------------------------------------
    def solve(self, problem: AllocationProblem) -> Allocation:
        """Best plan under the objective; raises with the conflicting rules if none exists."""
        use_milp = self.integer and self.integer_method == "milp"
        built = self._build(problem, integer=use_milp)
        seconds = self._run(built.prob)
        xv = self._solution(built, seconds)
        notes: list[str] = []
        method = "milp" if use_milp else "lp"
        rounding_gap = None
        bound = float(built.prob.value)
        stats = built.prob.solver_stats
        solver_seconds = getattr(stats, "solve_time", None)
        mip_gap = mip_gap_of(built.prob) if use_milp else None
        duals_from = built if not use_milp else None
        if built.prob.status == cp.USER_LIMIT:
            notes.append(self.settings.limit_note(mip_gap))
        cust = problem.customer_mask
        if self.integer and not use_milp and cust.any():
            method = "lp_round"
            x_lp = _clean(xv, problem, integer=False)
            xv = x_lp.copy()
            xv[cust] = np.floor(xv[cust] + 1e-6)
            xv = self._fill_up(problem, xv, x_lp)
            broken = {c.name: _violation(c, xv, problem) for c in self.constraints}
            broken = {k: v for k, v in broken.items() if v > 1e-6 * max(1.0, problem.spend(xv))}
            if broken:
                notes.append(f"rounding down broke {sorted(broken)}; solved the MILP instead")
                built = self._build(problem, integer=True)
                seconds += self._run(built.prob)
                xv = self._solution(built, seconds)
                method, duals_from = "milp", None
                mip_gap = mip_gap_of(built.prob)
                bound = float(built.prob.value)
            else:
                rounding_gap = self.objective.evaluate(
                    problem.scenario_profit(x_lp)
                ) - self.objective.evaluate(problem.scenario_profit(xv))
                notes.append(
                    f"LP, customers rounded down then topped up: at most {rounding_gap:,.6g} below "
                    "the continuous optimum (so at most that below the integer optimum for "
                    "linear responses)"
                )
        xv = _clean(xv, problem, integer=self.integer)
        scen = problem.scenario_profit(xv)
        report, binding, cell_binding = self._constraint_report(
            problem, xv, duals_from, self.integer
        )
        return Allocation(
            table=self._table(problem, xv, cell_binding),
            status=str(built.prob.status),
            solver=self.solver,
            solve_seconds=seconds,
            objective_value=self.objective.evaluate(scen),
            total_profit_draws=scen,
            binding_constraints=binding,
            objective_name=self.objective.name,
            method=method,
            bound=bound,
            mip_gap=mip_gap,
            rounding_gap=rounding_gap,
            solver_seconds=solver_seconds,
            constraint_report=report,
            notes=notes,
        )

    def _fill_up(self, problem: AllocationProblem, xv: np.ndarray, x_lp: np.ndarray) -> np.ndarray:
        """After rounding down, add back one customer per cell (largest fraction first) while
        every rule still holds and the objective does not fall: recovers most of the loss."""
        frac = np.where(problem.customer_mask, x_lp - xv, 0.0)
        order = [i for i in np.argsort(-frac) if frac[i] > 1e-6][:200]
        best = self.objective.evaluate(problem.scenario_profit(xv))
        for i in order:
            trial = xv.copy()
            trial[i] += 1.0
            if any(_violation(c, trial, problem) > 1e-9 for c in self.constraints):
                continue
            val = self.objective.evaluate(problem.scenario_profit(trial))
            if val >= best:
                xv, best = trial, val
        return xv

    def _steps(self, problem: AllocationProblem, integer: bool) -> np.ndarray:
        if not integer:
            return np.zeros(problem.n_cells)
        first = problem.unit_profit(np.zeros(problem.n_cells)).mean(axis=0)
        return (problem.customer_mask & (first > 0)).astype(float)

    def _constraint_report(
        self,
        problem: AllocationProblem,
        xv: np.ndarray,
        built: _Built | None,
        integer: bool,
        constraints: Sequence[Constraint] | None = None,
    ) -> tuple[pd.DataFrame, list[str], list[list[str]]]:
        tol = 1e-6
        step = self._steps(problem, integer)
        rows, binding = [], []
        cell_binding: list[list[str]] = [[] for _ in range(problem.n_cells)]
        for c in self.constraints if constraints is None else constraints:
            cells = _binding_cells(c, xv, problem, tol, step)
            is_binding = bool(cells.any())
            if is_binding:
                binding.append(c.name)
                for i in np.flatnonzero(cells):
                    cell_binding[i].append(c.name)
            price, per_row = (None, {}) if built is None else _shadow(c, built, problem)
            rows.append(
                {
                    "constraint": c.name,
                    "slack": c.slack(xv, problem),
                    "binding": is_binding,
                    "shadow_price": price,
                    "shadow_price_rows": per_row,
                }
            )
        return pd.DataFrame(rows), binding, cell_binding

    def _table(
        self, problem: AllocationProblem, xv: np.ndarray, cell_binding: list[list[str]]
    ) -> pd.DataFrame:
        cell_profit = problem.cell_profit(xv)
        per_unit = problem.unit_profit(xv)
        bounds = hdi(cell_profit, self.hdi_prob, axis=0)
        cust = problem.customer_mask
        t = problem.cells.copy()
        t["unit"] = problem.units
        customers = np.where(cust, xv, 0.0)
        t["customers"] = customers.astype(np.int64) if self.integer else customers
        t["decision"] = xv
        t["spend"] = xv * problem.cost
        t["expected_incremental_profit"] = cell_profit.mean(axis=0)
        t["profit_hdi_low"] = bounds[:, 0]
        t["profit_hdi_high"] = bounds[:, 1]
        t["eligible_customers"] = problem.cell_eligible.astype(np.int64)
        t["cost_per_customer"] = problem.cost
        t["profit_per_customer"] = per_unit.mean(axis=0)
        t["prob_profit_positive"] = (per_unit > 0).mean(axis=0)
        t["binding_constraints"] = [", ".join(b) for b in cell_binding]
        num = t.select_dtypes("float").columns
        t[num] = t[num] + 0.0  # 0 x negative profit prints as -0 otherwise
        return t[ALLOCATION_COLUMNS]

    # ---- frontier ---------------------------------------------------------------------------
    def frontier(
        self,
        problem: AllocationProblem,
        budgets: Sequence[float] | np.ndarray,
        budget_constraint: str = "total_budget",
    ) -> Frontier:
        """Re-solve over a grid of budgets (one compiled problem, the budget a Parameter).

        Points are solved as LPs (customers continuous) so every constraint has a dual: the
        budget's dual is the marginal return of the last unit of budget (objective units per
        unit of budget), and each binding rule's dual is its shadow price. ``marginal_return_fd``
        is the finite-difference check between neighbouring budgets.
        """
        budgets = np.unique(np.asarray(budgets, dtype=float))
        if not len(budgets) or (budgets < 0).any() or not np.isfinite(budgets).all():
            raise ValueError("budgets must be a non-empty list of finite numbers >= 0")
        target = [c for c in self.constraints if c.name == budget_constraint]
        if not target or not isinstance(target[0], LinearConstraint):
            names = [c.name for c in self.constraints if isinstance(c, LinearConstraint)]
            raise ValueError(
                f"frontier needs a linear budget constraint named {budget_constraint!r} among the "
                f"constraints; linear ones here: {names}. Add TotalBudget(...) or pass "
                "budget_constraint=<its name>"
            )
        built = self._build(problem, integer=False)
        param = built.model.params[budget_constraint]
        if param.shape != (1,):
            raise ValueError(f"{budget_constraint!r} has {param.shape} rows; a frontier needs one")
        sign = float(np.sign(target[0].rows(problem).b[0]) or 1.0)  # a >= rule is stored negated
        rows, shadow_rows = [], []
        for i, b in enumerate(budgets):
            param.value = np.array([sign * b])
            seconds = self._run(built.prob, warm_start=i > 0, reuse=True)
            xv = built.model.value()
            status = str(built.prob.status)
            if xv is None or status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
                note = status
                if status in INFEASIBLE:
                    note = "infeasible: " + self._conflict(built).describe()
                rows.append({"budget": b, "status": status, "solve_seconds": seconds, "note": note})
                continue
            xv = _clean(xv, problem, integer=False)
            scen = problem.scenario_profit(xv)
            lo, hi = hdi(scen, self.hdi_prob)
            # the rule objects still hold the original budget: report against this level's
            at_level = [
                _WithRhs(c, param.value)
                if c.name == budget_constraint and isinstance(c, LinearConstraint)
                else c
                for c in self.constraints
            ]
            report, binding, _ = self._constraint_report(
                problem, xv, built, integer=False, constraints=at_level
            )
            for r in report.itertuples():
                for label, val in r.shadow_price_rows.items():
                    shadow_rows.append(
                        {"budget": b, "constraint": r.constraint, "row": label, "shadow_price": val}
                    )
            budget_dual = report.loc[report["constraint"] == budget_constraint, "shadow_price"]
            rows.append(
                {
                    "budget": b,
                    "status": status,
                    "spend": problem.spend(xv),
                    "expected_profit": float(scen.mean()),
                    "profit_hdi_low": float(lo),
                    "profit_hdi_high": float(hi),
                    "prob_profit_positive": float((scen > 0).mean()),
                    "objective": self.objective.evaluate(scen),
                    "marginal_return": float(budget_dual.iloc[0] or 0.0),
                    "binding_constraints": ", ".join(binding),
                    "solve_seconds": seconds,
                    "note": "",
                }
            )
        table = pd.DataFrame(rows).reindex(columns=FRONTIER_COLUMNS)
        ok = table["status"].isin([cp.OPTIMAL, cp.OPTIMAL_INACCURATE]).to_numpy()
        fd = np.full(len(table), np.nan)
        idx = np.flatnonzero(ok)
        if len(idx) >= 2:
            bud = table["budget"].to_numpy()[idx]
            obj = table["objective"].to_numpy(dtype=float)[idx]
            slopes = np.diff(obj) / np.diff(bud)
            fd[idx[1:]] = slopes  # backward difference: the return of the last budget step
            fd[idx[0]] = slopes[0]  # first level: forward difference
        table["marginal_return_fd"] = fd
        table["binding_constraints"] = table["binding_constraints"].fillna("")
        table["note"] = table["note"].fillna("")
        shadow = pd.DataFrame(shadow_rows, columns=["budget", "constraint", "row", "shadow_price"])
        return Frontier(table, shadow, budget_constraint, self.objective.name)


# ---- helpers ------------------------------------------------------------------------------
class _WithRhs(LinearConstraint):
    """A linear rule evaluated at another right-hand side (a frontier's current budget)."""

    def __init__(self, inner: LinearConstraint, b: np.ndarray) -> None:
        self.inner, self.name, self._b = inner, inner.name, np.asarray(b, dtype=float)

    def rows(self, problem: AllocationProblem) -> Rows:
        r = self.inner.rows(problem)
        return Rows(r.A, self._b, r.labels)


def _clean(xv: np.ndarray, problem: AllocationProblem, integer: bool) -> np.ndarray:
    """Clip solver noise: no negatives, no -0.0, customers integral when asked."""
    x = np.maximum(np.asarray(xv, dtype=float), 0.0)
    if integer:
        cust = problem.units == CUSTOMERS
        x[cust] = np.round(x[cust])
    ub = problem.upper_bounds()
    x = np.minimum(x, ub)
    return x + 0.0


def _violation(c: Constraint, xv: np.ndarray, problem: AllocationProblem) -> float:
    v = getattr(c, "violation", None)
    return float(v(xv, problem)) if v is not None else max(0.0, -c.slack(xv, problem))


def _binding_cells(
    c: Constraint, xv: np.ndarray, problem: AllocationProblem, tol: float, step: np.ndarray
) -> np.ndarray:
    fn = getattr(c, "binding_cells", None)
    if fn is not None:
        return np.asarray(fn(xv, problem, tol, step), dtype=bool)
    # a user-defined rule with only slack(): binding everywhere it is tight
    tight = c.slack(xv, problem) <= tol * max(1.0, float(np.abs(xv).sum()))
    return np.full(problem.n_cells, tight) & (xv > 0)


def _shadow(
    c: Constraint, built: _Built, problem: AllocationProblem
) -> tuple[float | None, dict[str, float]]:
    """Dual values (objective gained per unit the rule is relaxed) of one named rule."""
    cons = built.groups.get(c.name, [])
    if not cons:
        return 0.0, {}
    vals = [
        np.atleast_1d(np.asarray(k.dual_value, dtype=float))
        for k in cons
        if k.dual_value is not None
    ]
    if not vals:
        return None, {}
    duals = np.abs(np.concatenate(vals))
    labels = (
        c.rows(problem).labels
        if isinstance(c, LinearConstraint) and len(duals) == len(c.rows(problem).labels)
        else [str(i) for i in range(len(duals))]
    )
    per_row = {lab: float(d) for lab, d in zip(labels, duals, strict=True) if d > 1e-9}
    return float(duals.max()), per_row
