"""Settings shared by the budget allocator and the price optimizer, without importing cvxpy.

* :class:`SolverSettings`: which cvxpy solver runs and with what limits (time limit, MIP gap,
  verbosity, raw options), and the one place that turns them into ``Problem.solve`` keywords,
  runs the solve and reads its MIP gap.
* :func:`parse_specs`: rule specs as written in config (``{type: ..., name: ..., <fields>}``)
  into named constraint objects, with the same :class:`ConstraintSpecError` messages for
  allocation and pricing rules.
* The closed choices of the optimize and pricing config sections as ``StrEnum`` s, and
  :func:`choice`, which reads one and names the allowed values when it is not one of them.

The configuration schema imports this module, so cvxpy is imported only inside the functions
that solve.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import cvxpy as cp


class IntegerMethod(StrEnum):
    """How the allocator treats integer customers: exact MILP, or LP then round down."""

    milp = "milp"
    round = "round"


class PricingMethod(StrEnum):
    """How prices are chosen: enumeration when it is exact for the setup, else the MILP."""

    auto = "auto"
    milp = "milp"
    enumerate = "enumerate"


# ---- solver ----------------------------------------------------------------------------------
#: cvxpy solver -> its keyword for a wall-clock limit in seconds (others take none)
TIME_LIMIT_OPTION = {"HIGHS": "time_limit", "CLARABEL": "time_limit"}
#: cvxpy solver -> its keyword for the relative MIP gap at which branch-and-bound stops
MIP_GAP_OPTION = {"HIGHS": "mip_rel_gap"}
#: HiGHS stops at a 1e-4 relative gap by default; plans and prices are solved to (near) proof
DEFAULT_MIP_GAP = 1e-7


@dataclass(frozen=True)
class SolverSettings:
    """How cvxpy solves an allocation or pricing model.

    ``name``: a cvxpy solver (upper-cased), e.g. HIGHS (LP/MILP) or CLARABEL (conic).
    ``time_limit``: seconds, passed to solvers that take one (HIGHS, CLARABEL); a stopped
    MILP returns its best plan with a note. ``mip_rel_gap``: where HiGHS stops proving
    optimality (None: HiGHS's own 1e-4). ``verbose``: the solver's log on the console (HiGHS
    still prints its one-line banner once per process, before any option reaches it).
    ``options``: raw solver keywords, applied last (they win over the fields above).
    """

    name: str = "HIGHS"
    time_limit: float | None = None
    mip_rel_gap: float | None = DEFAULT_MIP_GAP
    verbose: bool = False
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", str(self.name).strip().upper())
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        if self.time_limit is not None and not (
            np.isfinite(self.time_limit) and self.time_limit > 0
        ):
            raise ValueError(
                f"time_limit must be a number of seconds > 0 (or null: none), got {self.time_limit}"
            )
        if self.mip_rel_gap is not None and not 0 <= self.mip_rel_gap < 1:
            raise ValueError(
                f"mip_rel_gap must be in [0, 1) (or null: the solver's default), "
                f"got {self.mip_rel_gap}"
            )

    @classmethod
    def of(
        cls,
        solver: str | SolverSettings,
        *,
        time_limit: float | None = None,
        mip_rel_gap: float | None = DEFAULT_MIP_GAP,
        solver_options: Mapping[str, Any] | None = None,
    ) -> SolverSettings:
        """The optimizers' ``solver=`` argument: a name plus the keyword settings, or a
        ready :class:`SolverSettings` (then the keywords must stay at their defaults)."""
        if not isinstance(solver, SolverSettings):
            return cls(str(solver), time_limit, mip_rel_gap, options=solver_options or {})
        given = [
            k
            for k, v, default in (
                ("time_limit", time_limit, None),
                ("mip_rel_gap", mip_rel_gap, DEFAULT_MIP_GAP),
                ("solver_options", solver_options, None),
            )
            if v != default
        ]
        if given:
            raise TypeError(
                f"solver is a SolverSettings, so set {given} there, not as keywords: "
                f"dataclasses.replace(settings, ...)"
            )
        return solver

    def solve_kwargs(self) -> dict[str, Any]:
        """Keywords for ``cvxpy.Problem.solve``: each limit only where the solver takes it."""
        opts: dict[str, Any] = {"solver": self.name, "verbose": bool(self.verbose)}
        if self.time_limit is not None and self.name in TIME_LIMIT_OPTION:
            opts[TIME_LIMIT_OPTION[self.name]] = float(self.time_limit)
        if self.mip_rel_gap is not None and self.name in MIP_GAP_OPTION:
            opts[MIP_GAP_OPTION[self.name]] = float(self.mip_rel_gap)
        return opts | dict(self.options)

    def diagnose_kwargs(self) -> dict[str, Any]:
        """The same keywords for the re-solves that explain an infeasible model (cold starts)."""
        return {k: v for k, v in self.solve_kwargs().items() if k != "warm_start"}

    def solve(
        self,
        prob: cp.Problem,
        error: type[Exception],
        *,
        warm_start: bool = False,
        reuse: bool = False,
    ) -> float:
        """Solve ``prob``; seconds taken. A solver failure raises ``error`` naming the solver.

        ``reuse=True`` keeps cvxpy's parameterised (DPP) compile for re-solves (a frontier), at
        about twice the first compile time, so one-off solves skip it.
        """
        import cvxpy as cp

        if self.name == "HIGHS" and not self.verbose:
            _quiet_highs_banner()
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings(), np.errstate(invalid="ignore", over="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                prob.solve(warm_start=warm_start, ignore_dpp=not reuse, **self.solve_kwargs())
        except cp.error.SolverError as e:
            raise error(
                f"solver {self.name} failed after {time.perf_counter() - t0:.2f}s: {e}"
            ) from e
        return time.perf_counter() - t0

    def no_answer(
        self, status: str, seconds: float, what: str, hint: str, rules: Iterable[Any]
    ) -> str:
        """Why a solve gave no usable ``what`` (plan, prices), the fix to try, the rules in play."""
        names = ", ".join(c.name for c in rules) or "none"
        return (
            f"solver {self.name} returned status {status} after {seconds:.2f}s with no usable "
            f"{what}; {hint}. Constraints in play: {names}"
        )

    def limit_note(self, mip_gap: float | None) -> str:
        """What a result says when the solver stopped at its limit rather than at optimality."""
        return (
            f"solver stopped at its limit (time_limit={self.time_limit}); the result is the best "
            f"found, MIP gap {mip_gap}"
        )


class SolvesWith:
    """The solver facts an optimizer exposes, read from its :class:`SolverSettings`."""

    settings: SolverSettings

    @property
    def solver(self) -> str:
        return self.settings.name

    @property
    def time_limit(self) -> float | None:
        return self.settings.time_limit

    @property
    def mip_rel_gap(self) -> float | None:
        return self.settings.mip_rel_gap

    @property
    def solver_options(self) -> dict[str, Any]:
        return dict(self.settings.options)


def mip_gap_of(prob: cp.Problem) -> float | None:
    """The relative MIP gap the solver reported for its last solve (None if it gave none)."""
    info = getattr(prob.solver_stats, "extra_stats", None)
    gap = getattr(info, "mip_gap", None)
    if gap is None:
        return None
    gap = float(gap)
    return gap if np.isfinite(gap) else None


# ---- constraint specs ------------------------------------------------------------------------
class ConstraintSpecError(ValueError):
    """A rule spec from config does not describe a known rule; the message says what to write."""


def as_labels(value: object) -> tuple[str, ...]:
    """A label or a list of labels -> tuple of labels (a lone string is one label, not letters)."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable):
        return tuple(str(v) for v in value)
    return (str(value),)


def parse_spec(spec: object, types: Mapping[str, type], label: str = "constraint") -> Any:
    """One ``{type: ..., name: ..., <fields>}`` mapping -> the rule object of that type.

    ``types`` maps type names to rule dataclasses; ``label`` names the kind of rule in
    messages. Fields typed as tuples accept one label or a list.
    """
    kinds = ", ".join(types)
    if not isinstance(spec, Mapping):
        raise ConstraintSpecError(
            f"a {label} is a mapping {{type: ..., <fields>}} with type one of: {kinds}; "
            f"got {spec!r}"
        )
    spec = dict(spec)
    kind = str(spec.pop("type", "") or "").strip().lower()
    if not kind:
        raise ConstraintSpecError(f"{label} {spec!r} has no type; use one of: {kinds}")
    if kind not in types:
        raise ConstraintSpecError(f"unknown {label} type {kind!r}; use one of: {kinds}")
    cls = types[kind]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    allowed = sorted(fields)
    extra = sorted(set(spec) - set(fields))
    if extra:
        raise ConstraintSpecError(f"{label} {kind!r} does not take {extra}; it takes {allowed}")
    for key, value in spec.items():
        if str(fields[key].type).startswith("tuple"):
            spec[key] = as_labels(value)
    try:
        return cls(**spec)
    except TypeError as e:
        raise ConstraintSpecError(f"{label} {kind!r}: {e}; it takes {allowed}") from None
    except ValueError as e:
        raise ConstraintSpecError(f"{label} {kind!r}: {e}") from e


def parse_specs(
    specs: Iterable[object], types: Mapping[str, type], label: str = "constraint"
) -> list[Any]:
    """A list of rule specs (as written in config) -> rule objects whose names are unique."""
    if isinstance(specs, str | Mapping):
        raise ConstraintSpecError(
            f"{label}s are a list of mappings [{{type: ..., <fields>}}, ...]; got {specs!r}"
        )
    out = [parse_spec(s, types, label) for s in specs]
    check_unique_names(out)
    return out


def check_unique_names(constraints: Iterable[Any]) -> None:
    names = [c.name for c in constraints]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(
            f"constraint names must be unique (they label reports and conflicts): {dup} repeat; "
            "set name: on one of them"
        )


_HIGHS_GREETED = False


def _quiet_highs_banner() -> None:
    """HiGHS prints its copyright banner from C++ to file descriptor 1 the first time a solver
    object is created in a process, before any option (``output_flag``) applies, and reads no
    environment variable to stop it. Create that first object once with fd 1 pointed at
    /dev/null, so a planner's console does not open with it; later objects print nothing."""
    global _HIGHS_GREETED
    if _HIGHS_GREETED:
        return
    _HIGHS_GREETED = True
    try:
        import highspy
    except ImportError:
        return
    import os
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
