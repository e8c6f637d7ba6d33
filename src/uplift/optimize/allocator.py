"""Budget allocation over (segment, arm) cells from posterior draws of incremental profit.

Decision ``x[c]`` = customers of cell c's segment who get cell c's arm. Profit per treated
customer in draw s is ``value[segment] x uplift[s, arm, segment] - cost[arm]``: the objective and
every reported interval are computed from these scenarios, so risk can be priced, not only means.
With integer decisions the problem is a small MILP that HiGHS solves to proven optimality.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np
import pandas as pd

from uplift.optimize.constraints import Constraint
from uplift.optimize.objectives import ExpectedProfit, Objective
from uplift.stats import hdi
from uplift.tactics import ArmMap

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
]


class AllocationError(RuntimeError):
    """The allocation could not be solved; the message carries solver status and constraint names."""


@dataclass(frozen=True)
class AllocationProblem:
    """Everything the allocator needs, as arrays aligned on decision cells.

    ``cells`` has one row per decision (segment, tactic, arm, cost); ``profit_draws`` is
    ``(S, C)`` incremental profit per treated customer; ``eligible`` is customers per segment.
    """

    cells: pd.DataFrame
    profit_draws: np.ndarray
    eligible: pd.Series

    def __post_init__(self) -> None:
        if self.profit_draws.ndim != 2 or self.profit_draws.shape[1] != len(self.cells):
            raise ValueError(
                f"profit_draws must be (draws, {len(self.cells)} cells), got {self.profit_draws.shape}"
            )
        if not np.isfinite(self.profit_draws).all():
            raise ValueError(
                "profit_draws contains NaN or inf; check the value per conversion inputs"
            )
        missing = sorted(set(self.cells["segment"]) - set(self.eligible.index))
        if missing:
            raise ValueError(f"no eligible-customer count for segment(s) {missing}")

    @classmethod
    def from_uplift(
        cls,
        uplift: Mapping[str, object],
        value_per_conversion: pd.Series,
        arm_map: ArmMap,
        eligible: pd.Series,
    ) -> AllocationProblem:
        """Assemble from per-tactic uplift draws (xarray, dims sample x arm x segment)."""
        blocks, rows = [], []
        n_samples = None
        for tactic, da in uplift.items():
            S = da.sizes["sample"]
            if n_samples is None:
                n_samples = S
            elif n_samples != S:
                raise ValueError(
                    f"tactic {tactic!r} has {S} draws, others {n_samples}; use equal draws"
                )
            for arm in da["arm"].values:
                cost = arm_map[str(arm)].cost
                for seg in da["segment"].values:
                    v = float(value_per_conversion.loc[seg])
                    blocks.append(v * da.sel(arm=arm, segment=seg).values - cost)
                    rows.append(
                        {"segment": str(seg), "tactic": str(tactic), "arm": str(arm), "cost": cost}
                    )
        cells = pd.DataFrame(rows)
        order = cells.sort_values(["segment", "tactic", "arm"]).index.to_numpy()
        return cls(
            cells=cells.loc[order].reset_index(drop=True),
            profit_draws=np.column_stack(blocks)[:, order],
            eligible=eligible.astype(float),
        )

    @property
    def cost(self) -> np.ndarray:
        return self.cells["cost"].to_numpy(dtype=float)

    @property
    def segments(self) -> list[str]:
        return sorted(self.cells["segment"].unique())

    @property
    def segment_matrix(self) -> np.ndarray:
        """(G, C) 0/1 matrix: which cells belong to which segment."""
        segs = self.segments
        return (self.cells["segment"].to_numpy()[None, :] == np.array(segs)[:, None]).astype(float)

    @property
    def eligible_vector(self) -> np.ndarray:
        return self.eligible.reindex(self.segments).to_numpy(dtype=float)

    @property
    def cell_eligible(self) -> np.ndarray:
        return self.eligible.reindex(self.cells["segment"]).to_numpy(dtype=float)


@dataclass
class Allocation:
    table: pd.DataFrame
    status: str
    solver: str
    solve_seconds: float
    objective_value: float
    total_profit_draws: np.ndarray = field(repr=False)
    binding_constraints: list[str] = field(default_factory=list)

    @property
    def total_spend(self) -> float:
        return float(self.table["spend"].sum())

    @property
    def expected_profit(self) -> float:
        return float(self.total_profit_draws.mean())

    def profit_interval(self, prob: float) -> tuple[float, float]:
        lo, hi = hdi(self.total_profit_draws, prob)
        return float(lo), float(hi)


class BudgetAllocator:
    """Maximise an objective over customers per cell subject to named constraints."""

    def __init__(
        self,
        constraints: Sequence[Constraint],
        objective: Objective | None = None,
        integer: bool = True,
        solver: str = "HIGHS",
        hdi_prob: float = 0.94,
    ) -> None:
        self.objective = objective or ExpectedProfit()
        self.constraints = list(constraints)
        self.integer = integer
        self.solver = solver
        self.hdi_prob = hdi_prob

    def solve(self, problem: AllocationProblem) -> Allocation:
        C = len(problem.cells)
        x = cp.Variable(C, nonneg=True, integer=self.integer, name="customers")
        cons = [c for con in self.constraints for c in con.build(x, problem)]
        prob = cp.Problem(cp.Maximize(self.objective.expression(x, problem)), cons)
        t0 = time.perf_counter()
        try:
            prob.solve(solver=self.solver, verbose=False)
        except cp.error.SolverError as e:
            raise AllocationError(f"solver {self.solver} failed: {e}") from e
        seconds = time.perf_counter() - t0
        if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or x.value is None:
            names = ", ".join(c.name for c in self.constraints)
            raise AllocationError(
                f"allocation problem is {prob.status} with solver {self.solver}; constraints in play: {names}"
            )
        xv = (np.round(x.value) if self.integer else np.maximum(x.value, 0.0)) + 0.0  # no -0.0
        binding = [
            c.name for c in self.constraints if c.slack(xv, problem) <= 1e-6 * max(1.0, xv.sum())
        ]
        return Allocation(
            table=self._table(problem, xv),
            status=str(prob.status),
            solver=self.solver,
            solve_seconds=seconds,
            objective_value=float(prob.value),
            total_profit_draws=problem.profit_draws @ xv,
            binding_constraints=binding,
        )

    def _table(self, problem: AllocationProblem, xv: np.ndarray) -> pd.DataFrame:
        per_customer = problem.profit_draws
        cell_profit = per_customer * xv[None, :]
        bounds = hdi(cell_profit, self.hdi_prob, axis=0)
        t = problem.cells.copy()
        t["customers"] = xv.astype(np.int64) if self.integer else xv
        t["spend"] = xv * problem.cost
        t["expected_incremental_profit"] = cell_profit.mean(axis=0)
        t["profit_hdi_low"] = bounds[:, 0]
        t["profit_hdi_high"] = bounds[:, 1]
        t["eligible_customers"] = problem.cell_eligible.astype(np.int64)
        t["cost_per_customer"] = problem.cost
        t["profit_per_customer"] = per_customer.mean(axis=0)
        t["prob_profit_positive"] = (per_customer > 0).mean(axis=0)
        num = t.select_dtypes("float").columns
        t[num] = t[num] + 0.0  # 0 x negative profit prints as -0 otherwise
        return t[ALLOCATION_COLUMNS]
