"""Optimize stage: allocation of customers and budget to (segment, tactic) from posterior draws."""

from uplift.optimize.allocator import (
    Allocation,
    AllocationError,
    AllocationProblem,
    BudgetAllocator,
)
from uplift.optimize.constraints import CellCap, ContactCap, TotalBudget
from uplift.optimize.objectives import ExpectedProfit

__all__ = [
    "Allocation",
    "AllocationError",
    "AllocationProblem",
    "BudgetAllocator",
    "CellCap",
    "ContactCap",
    "ExpectedProfit",
    "TotalBudget",
]
