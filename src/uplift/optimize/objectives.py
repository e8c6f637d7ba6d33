"""Objectives over profit scenarios, shared by the budget allocator and the price optimizer.

Each objective sees the decision only through two affine (or concave) cvxpy expressions: the
profit in every posterior draw (``scenarios``, shape (S,)) and its mean. That keeps risk handling
in one place and lets tests evaluate the same objective on NumPy scenarios (``evaluate``) to check
a solver's answer against brute force.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import cvxpy as cp
import numpy as np

from uplift.optimize.risk import check_alpha, tail_mean, tail_mean_expr


class Objective(Protocol):
    @property
    def name(self) -> str: ...

    def build(
        self, scenarios: cp.Expression, mean: cp.Expression
    ) -> tuple[cp.Expression, list[cp.Constraint]]:
        """Concave expression to maximise, plus any constraints its auxiliary variables need."""
        ...

    def evaluate(self, scenarios: np.ndarray) -> float:
        """The same objective on NumPy scenario profits (S,)."""
        ...

    @property
    def uses_scenarios(self) -> bool:
        """True when the scenario vector enters the objective (risk-aware): needs all draws."""
        ...


@dataclass(frozen=True)
class ExpectedProfit:
    """Posterior-mean incremental profit: the risk-neutral choice."""

    name: str = "expected_profit"

    def build(
        self, scenarios: cp.Expression, mean: cp.Expression
    ) -> tuple[cp.Expression, list[cp.Constraint]]:
        return mean, []

    def evaluate(self, scenarios: np.ndarray) -> float:
        return float(np.mean(scenarios))

    @property
    def uses_scenarios(self) -> bool:
        return False


@dataclass(frozen=True)
class CVaR:
    """Mean profit of the worst ``alpha`` share of posterior draws (maximised).

    Protects against plans whose expected value rests on a few optimistic draws: a segment with a
    high mean but a wide posterior scores low here.
    """

    alpha: float = 0.1
    name: str = "cvar"

    def __post_init__(self) -> None:
        check_alpha(self.alpha, "objective alpha")

    def build(
        self, scenarios: cp.Expression, mean: cp.Expression
    ) -> tuple[cp.Expression, list[cp.Constraint]]:
        expr, _ = tail_mean_expr(scenarios, self.alpha, name="objective_var")
        return expr, []

    def evaluate(self, scenarios: np.ndarray) -> float:
        return float(tail_mean(scenarios, self.alpha))

    @property
    def uses_scenarios(self) -> bool:
        return True


@dataclass(frozen=True)
class MeanCVaR:
    """``E[profit] - risk_aversion x CVaR_alpha(loss)``, loss = -profit.

    Equivalently ``E[P] + risk_aversion x tail_mean(P)``: ``risk_aversion=0`` is expected profit;
    larger values trade mean for a better worst-case tail.
    """

    alpha: float = 0.1
    risk_aversion: float = 1.0
    name: str = "mean_cvar"

    def __post_init__(self) -> None:
        check_alpha(self.alpha, "objective alpha")
        if self.risk_aversion < 0:
            raise ValueError(
                f"risk_aversion must be >= 0 (0 = expected profit), got {self.risk_aversion}"
            )

    def build(
        self, scenarios: cp.Expression, mean: cp.Expression
    ) -> tuple[cp.Expression, list[cp.Constraint]]:
        if self.risk_aversion == 0:
            return mean, []
        tail, _ = tail_mean_expr(scenarios, self.alpha, name="objective_var")
        return mean + self.risk_aversion * tail, []

    def evaluate(self, scenarios: np.ndarray) -> float:
        return float(np.mean(scenarios) + self.risk_aversion * tail_mean(scenarios, self.alpha))

    @property
    def uses_scenarios(self) -> bool:
        return self.risk_aversion > 0


OBJECTIVES: dict[str, type[ExpectedProfit] | type[CVaR] | type[MeanCVaR]] = {
    "expected": ExpectedProfit,
    "cvar": CVaR,
    "mean_cvar": MeanCVaR,
}


def objective_from_config(kind: str | Mapping[str, Any], **defaults: Any) -> Objective:
    """``"expected"``, ``"cvar"`` (alpha) or ``"mean_cvar"`` (alpha, risk_aversion).

    Accepts a name or a mapping ``{type: cvar, alpha: 0.1}``. Keyword ``defaults`` (e.g. every
    risk setting of a config section) are applied only where the objective takes them, while a
    mapping key the objective does not take is an error (it is probably a typo).
    """
    explicit: dict[str, Any] = {}
    if isinstance(kind, Mapping):
        explicit = {k: v for k, v in kind.items() if k != "type"}
        kind = str(kind.get("type", ""))
    kind = str(kind).strip().lower()
    if kind not in OBJECTIVES:
        raise ValueError(
            f"unknown objective {kind!r}; use one of: {', '.join(OBJECTIVES)} "
            "(cvar and mean_cvar take alpha, mean_cvar also risk_aversion)"
        )
    cls = OBJECTIVES[kind]
    allowed = set(cls.__dataclass_fields__) - {"name"}
    extra = sorted(set(explicit) - allowed)
    if extra:
        raise ValueError(
            f"objective {kind!r} does not take {extra}; it takes {sorted(allowed) or 'nothing'}"
        )
    params = {k: v for k, v in defaults.items() if k in allowed and v is not None} | explicit
    return cls(**params)
