"""The cvxpy model behind the allocator: decision variables, profit expressions, parameters.

Constraints and objectives only talk to :class:`AllocationModel`: they ask for the decision
as a linear map (``lin``), the scenario or mean profit, the spend, and a right-hand-side
``Parameter`` (so a budget frontier re-solves the same compiled problem).

Spend cells with a saturating response are modelled either exactly (DCP exp-cone/inv_pos
expressions: needs a conic solver such as CLARABEL) or piecewise-linearly on shared breakpoints
(an LP for HiGHS). The piecewise-linear value never exceeds the true concave curve in any draw,
so constraints such as an ROI floor stay satisfied when the plan is re-evaluated exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from uplift.optimize.problem import AllocationProblem

RESPONSE_METHODS = ("pwl", "exact")


@dataclass
class AllocationModel:
    """Variables and expressions for one :class:`AllocationProblem`.

    ``integer`` makes the customer decisions integer (spend decisions are always continuous).
    """

    problem: AllocationProblem
    integer: bool = True
    response_method: str = "pwl"
    n_breakpoints: int = 24
    params: dict[str, cp.Parameter] = field(default_factory=dict)
    base_constraints: list[cp.Constraint] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.response_method not in RESPONSE_METHODS:
            raise ValueError(
                f"response_method must be one of {RESPONSE_METHODS}, got {self.response_method!r}"
            )
        p = self.problem
        self.cust_idx = np.flatnonzero(p.customer_mask)
        self.spend_idx = np.flatnonzero(p.spend_mask)
        self.xc = (
            cp.Variable(len(self.cust_idx), nonneg=True, integer=self.integer, name="customers")
            if len(self.cust_idx)
            else None
        )
        self.xs = (
            cp.Variable(len(self.spend_idx), nonneg=True, name="spend")
            if len(self.spend_idx)
            else None
        )
        self._pwl_d: cp.Variable | None = None
        if self.xs is not None:
            resp = p.response
            assert resp is not None
            self.base_constraints.append(self.xs <= resp.max_spend)
            if self.response_method == "pwl":
                bp = resp.breakpoints(self.n_breakpoints)  # (n, M+1)
                widths = np.diff(bp, axis=1)  # (n, M)
                n, m = widths.shape
                vals = np.stack([resp.value(bp[:, i]) for i in range(m + 1)], axis=2)  # (S,n,M+1)
                with np.errstate(invalid="ignore", divide="ignore"):
                    slopes = np.where(widths > 0, np.diff(vals, axis=2) / widths, 0.0)
                self._pwl_slopes = slopes.reshape(slopes.shape[0], n * m)  # (S, n*M)
                d = cp.Variable(n * m, nonneg=True, name="spend_pieces")
                link = sp.kron(sp.eye(n), np.ones((1, m)), format="csr")
                self.base_constraints += [d <= widths.ravel(), self.xs == link @ d]
                self._pwl_d = d

    # ---- decision ---------------------------------------------------------------------------
    def lin(self, a: np.ndarray | sp.spmatrix) -> cp.Expression:
        """``A @ x`` for a (R, C) or (C,) coefficient array over all cells."""
        a = sp.csr_matrix(a) if sp.issparse(a) else np.asarray(a, dtype=float)
        terms = []
        for var, idx in ((self.xc, self.cust_idx), (self.xs, self.spend_idx)):
            if var is None:
                continue
            block = a[..., idx] if not sp.issparse(a) else a[:, idx]
            terms.append(block @ var)
        if not terms:
            return cp.Constant(np.zeros(a.shape[:-1]) if a.ndim > 1 else 0.0)
        return terms[0] if len(terms) == 1 else terms[0] + terms[1]

    @property
    def variables(self) -> list[cp.Variable]:
        return [v for v in (self.xc, self.xs) if v is not None]

    def value(self) -> np.ndarray | None:
        """Solved decision over all cells, or None if the solver returned nothing."""
        x = np.zeros(self.problem.n_cells)
        for var, idx in ((self.xc, self.cust_idx), (self.xs, self.spend_idx)):
            if var is None:
                continue
            if var.value is None:
                return None
            x[idx] = var.value
        return x

    # ---- profit -----------------------------------------------------------------------------
    @cached_property
    def spend(self) -> cp.Expression:
        return self.lin(self.problem.cost)

    @cached_property
    def scenarios(self) -> cp.Expression:
        """(S,) profit in every draw: concave in the decision (affine for customer cells)."""
        expr = self.lin(self.problem.profit_draws)
        if self.xs is not None:
            expr = expr + self._gross_scenarios()
        return expr

    @cached_property
    def mean(self) -> cp.Expression:
        """Posterior-mean profit, built without the (S, C) matrix when possible."""
        expr = self.lin(self.problem.profit_draws.mean(axis=0))
        if self.xs is not None:
            if self._pwl_d is not None:
                expr = expr + self._pwl_slopes.mean(axis=0) @ self._pwl_d
            else:
                resp = self.problem.response
                assert resp is not None
                expr = expr + resp.mean_expression(self.xs)
        return expr

    def _gross_scenarios(self) -> cp.Expression:
        if self._pwl_d is not None:
            return self._pwl_slopes @ self._pwl_d
        resp = self.problem.response
        assert resp is not None and self.xs is not None
        return cp.sum(resp.expression(self.xs), axis=1)

    # ---- parameters -------------------------------------------------------------------------
    def rhs(self, name: str, value: np.ndarray | float) -> cp.Parameter:
        """A right-hand side as a named Parameter (re-solvable without recompiling)."""
        value = np.asarray(value, dtype=float)
        if name in self.params:
            raise ValueError(f"two constraints are named {name!r}; give each a unique name")
        param = cp.Parameter(value.shape, name=_param_name(name), value=value)
        self.params[name] = param
        return param


def _param_name(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)
