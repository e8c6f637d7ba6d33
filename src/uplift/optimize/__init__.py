"""Optimize stage: budget allocation and per-segment pricing from posterior draws.

Allocation: :class:`BudgetAllocator` over an :class:`AllocationProblem` (cells x draws), with a
selectable objective (expected profit, CVaR, mean - lambda CVaR) and named constraints; budget
frontiers with marginal returns. Pricing: :class:`PriceOptimizer` over a :class:`PricingProblem`
(purchase-probability draws on a price grid). Infeasible setups raise errors naming the
conflicting constraints.
"""

from uplift.optimize.allocator import (
    ALLOCATION_COLUMNS,
    FRONTIER_COLUMNS,
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
    LossProbability,
    MinTierShare,
    ROIFloor,
    TacticCapacity,
    TacticSpend,
    TotalBudget,
    constraints_from_config,
)
from uplift.optimize.diagnose import Conflict
from uplift.optimize.factory import (
    allocator_from_settings,
    budget_grid,
    price_optimizer_from_settings,
)
from uplift.optimize.objectives import CVaR, ExpectedProfit, MeanCVaR, objective_from_config
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
from uplift.optimize.problem import AllocationProblem, SaturatingResponse

__all__ = [
    "ALLOCATION_COLUMNS",
    "FRONTIER_COLUMNS",
    "PRICE_COLUMNS",
    "Allocation",
    "AllocationError",
    "AllocationProblem",
    "BudgetAllocator",
    "CVaR",
    "CellCap",
    "Conflict",
    "ContactCap",
    "ExcludeSegments",
    "ExpectedProfit",
    "FairnessBand",
    "Frontier",
    "InfeasibleAllocationError",
    "InfeasiblePricingError",
    "LossProbability",
    "MarginFloor",
    "MeanCVaR",
    "MinTierShare",
    "MonotoneTiers",
    "PriceBounds",
    "PriceOptimizer",
    "PricingError",
    "PricingProblem",
    "PricingResult",
    "ROIFloor",
    "SaturatingResponse",
    "TacticCapacity",
    "TacticSpend",
    "TotalBudget",
    "allocator_from_settings",
    "budget_grid",
    "VolumeFloor",
    "constraints_from_config",
    "objective_from_config",
    "price_optimizer_from_settings",
    "pricing_constraints_from_config",
]
