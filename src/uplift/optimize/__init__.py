"""Optimize stage: budget allocation and per-segment pricing from posterior draws.

Allocation: :class:`BudgetAllocator` over an :class:`AllocationProblem` (cells x draws), with a
selectable objective (expected profit, CVaR, mean - lambda CVaR) and named constraints; budget
frontiers with marginal returns. Pricing: :class:`PriceOptimizer` over a :class:`PricingProblem`
(purchase-probability draws on a price grid). Both run their solver from a
:class:`SolverSettings` and read rules from config with one parser. Infeasible setups raise
errors naming the conflicting constraints.

Names are imported on first use (PEP 562), so that ``uplift.optimize.settings`` (the closed
choices the configuration schema uses) can be imported without importing cvxpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uplift.optimize.allocator import (
        ALLOCATION_COLUMNS,
        FRONTIER_COLUMNS,
        PLAN_BY_ARM_COLUMNS,
        Allocation,
        AllocationError,
        BudgetAllocator,
        Frontier,
        InfeasibleAllocationError,
    )
    from uplift.optimize.constraints import (
        CellCap,
        ContactCap,
        ExcludeSegments,
        GuardrailVeto,
        LossProbability,
        MinTierShare,
        ROIFloor,
        TacticCapacity,
        TacticSpend,
        TotalBudget,
        constraints_from_config,
    )
    from uplift.optimize.diagnose import (
        Conflict,
    )
    from uplift.optimize.factory import (
        allocator_from_settings,
        budget_grid,
        price_optimizer_from_settings,
    )
    from uplift.optimize.objectives import (
        CVaR,
        ExpectedProfit,
        MeanCVaR,
        objective_from_config,
    )
    from uplift.optimize.pricing import (
        PRICE_COLUMNS,
        FairnessBand,
        InfeasiblePricingError,
        MarginFloor,
        MonotoneTiers,
        PriceBounds,
        PriceOptimizer,
        PricingError,
        PricingProblem,
        PricingResult,
        VolumeFloor,
        pricing_constraints_from_config,
    )
    from uplift.optimize.problem import (
        AllocationProblem,
        SaturatingResponse,
    )
    from uplift.optimize.settings import (
        ConstraintSpecError,
        IntegerMethod,
        PricingMethod,
        SolverSettings,
    )

_WHERE = {
    "ALLOCATION_COLUMNS": "allocator",
    "Allocation": "allocator",
    "AllocationError": "allocator",
    "AllocationProblem": "problem",
    "BudgetAllocator": "allocator",
    "CVaR": "objectives",
    "CellCap": "constraints",
    "Conflict": "diagnose",
    "ConstraintSpecError": "settings",
    "ContactCap": "constraints",
    "ExcludeSegments": "constraints",
    "GuardrailVeto": "constraints",
    "ExpectedProfit": "objectives",
    "FRONTIER_COLUMNS": "allocator",
    "PLAN_BY_ARM_COLUMNS": "allocator",
    "FairnessBand": "pricing",
    "Frontier": "allocator",
    "InfeasibleAllocationError": "allocator",
    "InfeasiblePricingError": "pricing",
    "IntegerMethod": "settings",
    "LossProbability": "constraints",
    "MarginFloor": "pricing",
    "MeanCVaR": "objectives",
    "MinTierShare": "constraints",
    "MonotoneTiers": "pricing",
    "PRICE_COLUMNS": "pricing",
    "PriceBounds": "pricing",
    "PriceOptimizer": "pricing",
    "PricingError": "pricing",
    "PricingMethod": "settings",
    "PricingProblem": "pricing",
    "PricingResult": "pricing",
    "ROIFloor": "constraints",
    "SaturatingResponse": "problem",
    "SolverSettings": "settings",
    "TacticCapacity": "constraints",
    "TacticSpend": "constraints",
    "TotalBudget": "constraints",
    "VolumeFloor": "pricing",
    "allocator_from_settings": "factory",
    "budget_grid": "factory",
    "constraints_from_config": "constraints",
    "objective_from_config": "objectives",
    "price_optimizer_from_settings": "factory",
    "pricing_constraints_from_config": "pricing",
}

__all__ = [
    "ALLOCATION_COLUMNS",
    "Allocation",
    "AllocationError",
    "AllocationProblem",
    "BudgetAllocator",
    "CVaR",
    "CellCap",
    "Conflict",
    "ConstraintSpecError",
    "ContactCap",
    "ExcludeSegments",
    "GuardrailVeto",
    "ExpectedProfit",
    "FRONTIER_COLUMNS",
    "PLAN_BY_ARM_COLUMNS",
    "FairnessBand",
    "Frontier",
    "InfeasibleAllocationError",
    "InfeasiblePricingError",
    "IntegerMethod",
    "LossProbability",
    "MarginFloor",
    "MeanCVaR",
    "MinTierShare",
    "MonotoneTiers",
    "PRICE_COLUMNS",
    "PriceBounds",
    "PriceOptimizer",
    "PricingError",
    "PricingMethod",
    "PricingProblem",
    "PricingResult",
    "ROIFloor",
    "SaturatingResponse",
    "SolverSettings",
    "TacticCapacity",
    "TacticSpend",
    "TotalBudget",
    "VolumeFloor",
    "allocator_from_settings",
    "budget_grid",
    "constraints_from_config",
    "objective_from_config",
    "price_optimizer_from_settings",
    "pricing_constraints_from_config",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"uplift.optimize.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'uplift.optimize' has no attribute {name!r}")
