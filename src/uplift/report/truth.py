"""Score a run against synthetic ground truth: interval coverage and allocation regret."""

from __future__ import annotations

import numpy as np
import pandas as pd

from uplift.optimize.allocator import Allocation, AllocationProblem, BudgetAllocator


def true_profit_per_customer(
    problem: AllocationProblem, truth: pd.DataFrame, margin: float
) -> np.ndarray:
    t = truth.set_index(["arm", "segment"])
    key = pd.MultiIndex.from_frame(problem.cells[["arm", "segment"]])
    value = margin * t["revenue_per_conversion"].reindex(key).to_numpy()
    return value * t["true_uplift"].reindex(key).to_numpy() - problem.cost


def score_against_truth(
    uplift: pd.DataFrame,
    problem: AllocationProblem,
    allocation: Allocation,
    allocator: BudgetAllocator,
    truth: pd.DataFrame,
    margin: float,
) -> dict[str, float]:
    """Coverage of the conversion-uplift intervals, and true profit of our allocation vs the oracle's.

    The oracle solves the same problem (same constraints) knowing the true profit per customer;
    ``profit_ratio`` = our allocation's true profit / the oracle's.
    """
    conv = uplift[uplift["metric"] == "conversion"].merge(
        truth[["arm", "segment", "true_uplift"]], on=["arm", "segment"], how="left"
    )
    covered = (conv["hdi_low"] <= conv["true_uplift"]) & (conv["true_uplift"] <= conv["hdi_high"])
    err = conv["mean"] - conv["true_uplift"]

    true_pc = true_profit_per_customer(problem, truth, margin)
    oracle_problem = AllocationProblem(problem.cells, true_pc[None, :], problem.eligible)
    oracle = allocator.solve(oracle_problem)
    x_ours = allocation.table["customers"].to_numpy(dtype=float)
    x_oracle = oracle.table["customers"].to_numpy(dtype=float)
    ours, best = float(true_pc @ x_ours), float(true_pc @ x_oracle)
    return {
        "cells": int(len(conv)),
        "interval_coverage": float(covered.mean()),
        "uplift_mae": float(np.abs(err).mean()),
        "true_profit_of_allocation": ours,
        "true_profit_of_oracle": best,
        "profit_ratio": ours / best if best > 0 else float("nan"),
    }
