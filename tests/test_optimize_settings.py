"""Shared solver settings and rule-spec parser: the allocator and the price optimizer read rules
the same way, fail the same way on a bad spec, and hand the same settings to the solver."""

from __future__ import annotations

import subprocess
import sys

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest

from uplift.cli import compose_config
from uplift.config import Objective, OptimizeConfig, PricingConfig
from uplift.optimize import (
    AllocationProblem,
    BudgetAllocator,
    CellCap,
    ConstraintSpecError,
    ContactCap,
    InfeasibleAllocationError,
    PriceOptimizer,
    PricingMethod,
    PricingProblem,
    SolverSettings,
    TacticSpend,
    TotalBudget,
    allocator_from_settings,
    constraints_from_config,
    price_optimizer_from_settings,
    pricing_constraints_from_config,
)
from uplift.optimize.constraints import CONSTRAINT_TYPES
from uplift.optimize.pricing import PRICING_CONSTRAINT_TYPES


def both(specs):
    """The error each parser raises on ``specs`` (a list of rule mappings)."""
    errors = []
    for parse in (constraints_from_config, pricing_constraints_from_config):
        with pytest.raises(ConstraintSpecError) as e:
            parse(specs)
        errors.append(str(e.value))
    return errors


@pytest.mark.parametrize(
    "spec, says",
    [
        ("total_budget", "is a mapping {type: ..., <fields>}"),
        ({"name": "cap"}, "has no type"),
        ({"type": "capacity_of_moon"}, "unknown constraint type 'capacity_of_moon'"),
        ({"type": None}, "has no type"),
    ],
)
def test_same_bad_spec_same_error_from_both_parsers(spec, says):
    alloc, price = both([spec])
    assert says in alloc and says.replace("constraint", "pricing constraint", 1) in price
    # the same sentence, each listing its own rule types
    head_a, types_a = alloc.split("one of: ")
    head_p, types_p = price.split("one of: ")
    assert head_a == head_p.replace("pricing constraint", "constraint")
    assert types_a.startswith(", ".join(CONSTRAINT_TYPES))
    assert types_p.startswith(", ".join(PRICING_CONSTRAINT_TYPES))


def test_unknown_field_and_bad_value_named_alike():
    a, p = (
        pytest.raises(ConstraintSpecError, parse, [spec])
        for parse, spec in (
            (constraints_from_config, {"type": "total_budget", "budget": 5, "colour": "red"}),
            (pricing_constraints_from_config, {"type": "fairness_band", "colour": "red"}),
        )
    )
    assert "constraint 'total_budget' does not take ['colour']; it takes" in str(a.value)
    assert "pricing constraint 'fairness_band' does not take ['colour']; it takes" in str(p.value)
    # a value the rule rejects: the same error class, the rule's own message kept
    with pytest.raises(ConstraintSpecError, match="'total_budget'.*budget must be"):
        constraints_from_config([{"type": "total_budget", "budget": -1}])
    with pytest.raises(ConstraintSpecError, match="'fairness_band'.*max_ratio must be >= 1"):
        pricing_constraints_from_config([{"type": "fairness_band", "max_ratio": 0.5}])
    # a missing required field is a spec error too, naming the fields the rule takes
    with pytest.raises(ConstraintSpecError, match="'tactic_spend'.*tactic.*it takes"):
        constraints_from_config([{"type": "tactic_spend", "max_spend": 5}])
    # a mapping where a list belongs
    for parse in (constraints_from_config, pricing_constraints_from_config):
        with pytest.raises(ConstraintSpecError, match="a list of mappings"):
            parse({"type": "total_budget", "budget": 5})
    # duplicate names: the same check in both
    with pytest.raises(ValueError, match="must be unique"):
        constraints_from_config([{"type": "total_budget", "budget": 1}] * 2)
    with pytest.raises(ValueError, match="must be unique"):
        pricing_constraints_from_config([{"type": "fairness_band"}] * 2)


def test_label_fields_take_one_label_or_a_list():
    (ex,) = constraints_from_config([{"type": "exclude_segments", "segments": "shed"}])
    (tiers,) = pricing_constraints_from_config([{"type": "monotone_tiers", "tiers": "high"}])
    assert ex.segments == ("shed",) and tiers.tiers == ("high",)  # not ('h', 'i', 'g', 'h')
    (tiers,) = pricing_constraints_from_config([{"type": "monotone_tiers", "tiers": ["a", "b"]}])
    assert tiers.tiers == ("a", "b")


def test_solver_settings_keywords_per_solver():
    s = SolverSettings("highs", time_limit=7, mip_rel_gap=1e-3, options={"presolve": "off"})
    assert s.name == "HIGHS"
    assert s.solve_kwargs() == {
        "solver": "HIGHS",
        "verbose": False,
        "time_limit": 7.0,
        "mip_rel_gap": 1e-3,
        "presolve": "off",
    }
    assert SolverSettings("CLARABEL", time_limit=7).solve_kwargs() == {
        "solver": "CLARABEL",
        "verbose": False,
        "time_limit": 7.0,
    }
    assert SolverSettings("SCS", time_limit=7).solve_kwargs() == {"solver": "SCS", "verbose": False}
    assert SolverSettings(options={"mip_rel_gap": 0.5}).solve_kwargs()["mip_rel_gap"] == 0.5
    assert "warm_start" not in SolverSettings(options={"warm_start": True}).diagnose_kwargs()
    assert SolverSettings(verbose=True).solve_kwargs()["verbose"] is True
    with pytest.raises(ValueError, match="time_limit must be"):
        SolverSettings(time_limit=0)
    with pytest.raises(ValueError, match="mip_rel_gap must be"):
        SolverSettings(mip_rel_gap=1.5)
    hash(s)  # frozen and usable as a key despite its options mapping


def test_both_optimizers_build_the_same_settings():
    legacy = dict(solver="clarabel", time_limit=5.0, mip_rel_gap=None, solver_options={"x": 1})
    a = BudgetAllocator([TotalBudget(1.0)], **legacy)
    p = PriceOptimizer(**legacy)
    assert a.settings == p.settings == SolverSettings("CLARABEL", 5.0, None, options={"x": 1})
    assert (a.solver, a.time_limit, a.mip_rel_gap, a.solver_options) == (
        "CLARABEL",
        5.0,
        None,
        {"x": 1},
    )
    s = SolverSettings(time_limit=3.0)
    assert BudgetAllocator([], solver=s).settings is s and PriceOptimizer(solver=s).settings is s
    assert allocator_from_settings(1.0, time_limit=3.0).settings == s
    assert price_optimizer_from_settings(time_limit=3.0).settings == s
    with pytest.raises(TypeError, match="time_limit"):
        BudgetAllocator([], solver=s, time_limit=9.0)
    with pytest.raises(TypeError, match="solver_options"):
        PriceOptimizer(solver=s, solver_options={"presolve": "off"})


def test_closed_choices_name_the_allowed_values():
    with pytest.raises(ValueError, match="integer_method must be one of: milp, round; got 'exact'"):
        BudgetAllocator([], integer_method="exact")
    with pytest.raises(ValueError, match="method must be one of: auto, milp, enumerate; got 'x'"):
        PriceOptimizer(method="x")
    with pytest.raises(ValueError, match="optimize.integer_method must be one of: milp, round"):
        OptimizeConfig(integer_method="exact")
    with pytest.raises(ValueError, match="pricing.objective must be one of: expected, cvar"):
        PricingConfig(objective="greedy")
    with pytest.raises(ValueError, match="pricing.method must be one of: auto, milp, enumerate"):
        PricingConfig(method="fast")
    # a time limit is checked with the section's name, before any sampling
    with pytest.raises(ValueError, match="optimize.time_limit must be > 0"):
        OptimizeConfig(time_limit=0)
    with pytest.raises(ValueError, match="pricing.time_limit must be > 0"):
        PricingConfig(time_limit=-1.0)
    # through Hydra, as a user's override: the key and the allowed values are named
    with pytest.raises(ValueError, match="expected one of \\[expected, cvar, mean_cvar\\]") as e:
        compose_config(["pricing.objective=greedy"])
    assert "full_key: pricing.objective" in str(e.value)
    with pytest.raises(ValueError, match="expected one of \\[milp, round\\]"):
        compose_config(["optimize.integer_method=exact"])
    cfg = compose_config(["pricing.objective=cvar", "pricing.method=milp"])
    assert cfg.pricing.objective is Objective.cvar and cfg.pricing.method is PricingMethod.milp


def _allocation_problem() -> AllocationProblem:
    rng = np.random.default_rng(0)
    cells = pd.DataFrame(
        {"segment": ["a", "b"], "tactic": ["t", "t"], "arm": ["x", "x"], "cost": [1.0, 1.0]}
    )
    return AllocationProblem(cells, rng.normal(1.0, 1.0, (50, 2)), pd.Series({"a": 9.0, "b": 9.0}))


def _pricing_problem() -> PricingProblem:
    prices = np.linspace(5.0, 15.0, 5)
    demand = np.broadcast_to(1.0 / (1.0 + np.exp(prices - 10.0)), (20, 2, 5))
    return PricingProblem(demand, prices, ("a", "b"), np.array([3.0, 4.0]), np.array([50.0, 80.0]))


def test_settings_reach_the_solver(monkeypatch):
    seen: list[dict] = []
    solve = cp.Problem.solve

    def spy(self, *args, **kwargs):
        seen.append(kwargs)
        return solve(self, *args, **kwargs)

    monkeypatch.setattr(cp.Problem, "solve", spy)
    s = SolverSettings(time_limit=30.0, mip_rel_gap=1e-3, options={"presolve": "off"})
    want = {"solver": "HIGHS", "verbose": False, "time_limit": 30.0, "mip_rel_gap": 1e-3}
    rules = [TotalBudget(5.0), ContactCap(), CellCap()]
    BudgetAllocator(rules, solver=s).solve(_allocation_problem())
    PriceOptimizer(method="milp", solver=s).solve(_pricing_problem())
    assert len(seen) == 2
    for kw in seen:
        assert {k: kw[k] for k in want} == want and kw["presolve"] == "off"
    # infeasible: the conflict search re-solves with the same settings
    seen.clear()
    with pytest.raises(InfeasibleAllocationError, match="tactic_spend"):
        BudgetAllocator(rules + [TacticSpend("t", min_spend=50.0)], solver=s).solve(
            _allocation_problem()
        )
    assert len(seen) > 1 and all(kw["time_limit"] == 30.0 for kw in seen)


def test_solver_log_only_when_verbose(capfd):
    problem = _pricing_problem()
    PriceOptimizer(method="milp").solve(problem)
    capfd.readouterr()  # HiGHS's one-line banner, once per process, cannot be switched off
    PriceOptimizer(method="milp").solve(problem)
    assert "CVXPY" not in capfd.readouterr().out
    PriceOptimizer(method="milp", solver=SolverSettings(verbose=True)).solve(problem)
    assert "CVXPY" in capfd.readouterr().out


def test_settings_module_imports_no_cvxpy():
    code = "import sys, uplift.config; print('cvxpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
