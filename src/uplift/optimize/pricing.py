"""Per-segment prices on a grid, from posterior draws of purchase probability.

Input: ``demand[s, g, k]`` = probability that a customer of segment g buys at grid price k in
posterior draw s, plus unit cost and customers per segment. Profit in draw s of choosing price
index ``k_g`` for every segment is ``sum_g N_g x demand[s, g, k_g] x (price[k_g] - cost_g)``.

Two exact solvers:

* a MILP (one binary per segment x price, HiGHS through cvxpy) - the general path: any
  objective (expected profit, CVaR, mean - lambda CVaR) and any mix of constraints.
* enumeration of the fairness band's lower end - when the objective is expected profit and the
  only coupling rule is the max price ratio, fixing the band start ``L`` leaves independent
  per-segment choices in ``[L, r L]``; the best over all grid ``L`` is the optimum (Ferreira,
  Lee & Simchi-Levi 2016 pattern). Milliseconds where the MILP takes seconds; tests check both
  agree with brute force.

Constraints are small named objects; an infeasible setup raises
:class:`InfeasiblePricingError` naming the rules that conflict.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import cvxpy as cp
import numpy as np
import pandas as pd
import scipy.sparse as sp

from uplift.choices import choice
from uplift.optimize.constraints import segment_matches
from uplift.optimize.diagnose import (
    INFEASIBLE,
    USABLE,
    Conflict,
    InfeasibleMixin,
    find_conflict,
)
from uplift.optimize.objectives import ExpectedProfit, MeanCVaR, Objective
from uplift.optimize.settings import (
    DEFAULT_MIP_GAP,
    PricingMethod,
    SolverSettings,
    SolvesWith,
    as_labels,
    check_unique_names,
    mip_gap_of,
    parse_specs,
)
from uplift.stats import hdi
from uplift.value.tactic_value import price_dilution, win_win_index

if TYPE_CHECKING:
    import xarray as xr

PRICE_COLUMNS = [
    "segment",
    "price",
    "cost_plus_price",
    "unit_cost",
    "margin",
    "expected_demand",
    "demand_hdi_low",
    "demand_hdi_high",
    "expected_profit",
    "profit_hdi_low",
    "profit_hdi_high",
    "prob_profit_positive",
    "cost_plus_expected_demand",
    "cost_plus_expected_profit",
    "current_price",
    "today_expected_demand",
    "binding_constraints",
    "price_dilution",
    "price_dilution_hdi_low",
    "price_dilution_hdi_high",
    "win_win_price",
    "win_win_expected_profit",
    "win_win_profit_hdi_low",
    "win_win_profit_hdi_high",
    "win_win_prob_not_worse",
    "win_win_price_dilution",
]

PRICING_METHODS = tuple(PricingMethod)


class PricingError(RuntimeError):
    """Prices could not be set; the message carries solver status and constraint names."""


class InfeasiblePricingError(InfeasibleMixin, PricingError):
    """No price vector meets every rule; ``conflict`` names the rules that cannot hold together."""


# ---- problem -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PricingProblem:
    """Posterior purchase probabilities on a shared price grid, with costs and segment sizes.

    ``demand`` (S, G, K) in [0, 1]; ``prices`` (K,) strictly increasing; ``unit_cost`` and
    ``customers`` (G,); ``current_price`` (G,) optional - today's prices, needed by a volume floor
    (today's expected buyers are interpolated on the grid).
    """

    demand: np.ndarray
    prices: np.ndarray
    segments: tuple[str, ...]
    unit_cost: np.ndarray
    customers: np.ndarray
    current_price: np.ndarray | None = None

    def __post_init__(self) -> None:
        demand = np.asarray(self.demand, dtype=float)
        prices = np.asarray(self.prices, dtype=float)
        object.__setattr__(self, "demand", demand)
        object.__setattr__(self, "prices", prices)
        object.__setattr__(self, "segments", tuple(str(s) for s in self.segments))
        object.__setattr__(self, "unit_cost", np.asarray(self.unit_cost, dtype=float))
        object.__setattr__(self, "customers", np.asarray(self.customers, dtype=float))
        if demand.ndim != 3:
            raise ValueError(f"demand must be (sample, segment, price), got shape {demand.shape}")
        S, G, K = demand.shape
        if prices.shape != (K,):
            raise ValueError(
                f"prices must have {K} grid points (demand's last axis), got {prices.shape}"
            )
        if len(self.segments) != G or len(set(self.segments)) != G:
            raise ValueError(f"segments must be {G} unique labels, got {len(self.segments)}")
        for label, arr in (("unit_cost", self.unit_cost), ("customers", self.customers)):
            if arr.shape != (G,):
                raise ValueError(f"{label} must have one value per segment ({G}), got {arr.shape}")
            if not np.isfinite(arr).all() or (arr < 0).any():
                raise ValueError(f"{label} must be finite and >= 0")
        if not np.isfinite(demand).all() or (demand < 0).any() or (demand > 1).any():
            raise ValueError(
                "demand must hold purchase probabilities in [0, 1] with no NaN; "
                "pass probabilities per customer, not counts"
            )
        if not np.isfinite(prices).all() or (prices <= 0).any() or (np.diff(prices) <= 0).any():
            raise ValueError("prices must be positive and strictly increasing (a sorted grid)")
        if self.current_price is not None:
            cur = np.asarray(self.current_price, dtype=float)
            if cur.shape != (G,) or not np.isfinite(cur).all():
                raise ValueError(f"current_price must be {G} finite values, got {cur.shape}")
            if (cur < prices[0] - 1e-9).any() or (cur > prices[-1] + 1e-9).any():
                raise ValueError(
                    "current_price must lie within the price grid "
                    f"[{prices[0]}, {prices[-1]}] so today's demand can be read off the draws"
                )
            object.__setattr__(self, "current_price", cur)

    @classmethod
    def from_xarray(
        cls,
        demand: xr.DataArray,
        unit_cost: Mapping[str, float] | pd.Series,
        customers: Mapping[str, float] | pd.Series,
        current_price: Mapping[str, float] | pd.Series | None = None,
    ) -> PricingProblem:
        """From a DataArray with dims (sample, segment, price) (or chain, draw, segment, price)."""
        da = demand
        if "sample" not in da.dims and {"chain", "draw"} <= set(da.dims):
            da = da.stack(sample=("chain", "draw"))
        need = {"sample", "segment", "price"}
        if set(da.dims) != need:
            raise ValueError(f"demand dims must be {sorted(need)}, got {list(da.dims)}")
        da = da.transpose("sample", "segment", "price").sortby("price")
        segs = [str(s) for s in da["segment"].values]

        def per_segment(values: Mapping[str, float] | pd.Series, label: str) -> np.ndarray:
            ser = pd.Series(values, dtype=float)
            ser.index = ser.index.astype(str)
            missing = sorted(set(segs) - set(ser.index))
            if missing:
                raise ValueError(f"{label} has no value for segment(s) {missing}")
            return ser.reindex(segs).to_numpy()

        return cls(
            demand=da.values,
            prices=np.asarray(da["price"].values, dtype=float),
            segments=tuple(segs),
            unit_cost=per_segment(unit_cost, "unit_cost"),
            customers=per_segment(customers, "customers"),
            current_price=None
            if current_price is None
            else per_segment(current_price, "current_price"),
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        S, G, K = self.demand.shape
        return S, G, K

    @cached_property
    def buyers_draws(self) -> np.ndarray:
        """(S, G, K) expected buyers in each draw."""
        return self.customers[None, :, None] * self.demand

    @cached_property
    def profit_draws(self) -> np.ndarray:
        """(S, G, K) profit in each draw: buyers x (price - unit cost)."""
        return self.buyers_draws * (self.prices[None, None, :] - self.unit_cost[None, :, None])

    @cached_property
    def expected_buyers(self) -> np.ndarray:
        return self.buyers_draws.mean(axis=0)

    @cached_property
    def expected_profit(self) -> np.ndarray:
        return self.profit_draws.mean(axis=0)

    @cached_property
    def margin(self) -> np.ndarray:
        """(G, K) unit margin as a share of price."""
        return (self.prices[None, :] - self.unit_cost[:, None]) / self.prices[None, :]

    def today_buyers(self, who: str = "volume floor") -> np.ndarray:
        """(G,) expected buyers at today's prices (linear interpolation on the grid)."""
        if self.current_price is None:
            raise ValueError(
                f"{who} needs today's prices: build the PricingProblem with current_price "
                "(one price per segment, within the grid)"
            )
        eb = self.expected_buyers
        return np.array(
            [
                np.interp(self.current_price[g], self.prices, eb[g])
                for g in range(len(self.segments))
            ]
        )

    def scenario_profit(self, idx: np.ndarray) -> np.ndarray:
        """(S,) total profit of price indices ``idx`` (G,)."""
        g = np.arange(len(self.segments))
        return self.profit_draws[:, g, np.asarray(idx)].sum(axis=1)

    def snap(self, price: np.ndarray) -> np.ndarray:
        """Index of the nearest grid point to each price."""
        price = np.asarray(price, dtype=float)
        return np.abs(self.prices[None, :] - price[:, None]).argmin(axis=1)


# ---- model -----------------------------------------------------------------------------------
@dataclass
class PricingModel:
    """One-hot binaries ``z[g, k]`` (flattened g-major) and the linear maps constraints use."""

    problem: PricingProblem

    def __post_init__(self) -> None:
        _, G, K = self.problem.shape
        self.G, self.K = G, K
        self.z = cp.Variable(G * K, boolean=True, name="price_choice")
        self.onehot = sp.kron(sp.eye(G), np.ones((1, K)), format="csr")
        self.base_constraints = [self.onehot @ self.z == 1]

    def lin(self, w: np.ndarray) -> cp.Expression:
        """``sum_{g,k} w[..., g, k] z[g, k]`` for w of shape (G, K) or (R, G, K)."""
        w = np.asarray(w, dtype=float)
        return w.reshape(*w.shape[:-2], self.G * self.K) @ self.z

    @cached_property
    def price(self) -> cp.Expression:
        """(G,) chosen price per segment."""
        return self.onehot.multiply(np.tile(self.problem.prices, self.G)) @ self.z

    @cached_property
    def scenarios(self) -> cp.Expression:
        return self.lin(self.problem.profit_draws)

    @cached_property
    def mean(self) -> cp.Expression:
        return self.lin(self.problem.expected_profit)

    def value(self) -> np.ndarray | None:
        if self.z.value is None:
            return None
        return np.asarray(self.z.value).reshape(self.G, self.K).argmax(axis=1)


# ---- constraints ---------------------------------------------------------------------------
class PricingConstraint(Protocol):
    name: str

    def mask(self, problem: PricingProblem) -> np.ndarray | None:
        """(G, K) prices this rule allows segment by segment, or None if it couples segments."""
        ...

    def build(self, m: PricingModel) -> list[cp.Constraint]: ...

    def violation(self, idx: np.ndarray, problem: PricingProblem) -> float:
        """How far price indices ``idx`` break the rule (0 when met)."""
        ...


class _MaskRule:
    """A rule that only restricts each segment's own prices."""

    name: str

    def mask(self, problem: PricingProblem) -> np.ndarray:
        raise NotImplementedError

    def build(self, m: PricingModel) -> list[cp.Constraint]:
        bad = np.flatnonzero(~self.mask(m.problem).ravel())
        return [m.z[bad] == 0] if len(bad) else []

    def violation(self, idx: np.ndarray, problem: PricingProblem) -> float:
        ok = self.mask(problem)[np.arange(len(idx)), np.asarray(idx)]
        return float((~ok).sum())


def _per_segment(
    value: float | Mapping[str, float] | None, segments: Sequence[str], who: str, pick: Any
) -> np.ndarray:
    """Scalar or {label: value} (label = full segment name or a '/' part) -> (G,) with NaN = none."""
    out = np.full(len(segments), np.nan)
    if value is None:
        return out
    if not isinstance(value, Mapping):
        return np.full(len(segments), float(value))
    for label, v in value.items():
        hits = [i for i, s in enumerate(segments) if segment_matches(s, str(label))]
        if not hits:
            raise ValueError(
                f"{who}: {label!r} matches no segment; segments are {list(segments)[:6]}"
            )
        for i in hits:
            out[i] = float(v) if np.isnan(out[i]) else pick(out[i], float(v))
    return out


@dataclass(frozen=True)
class PriceBounds(_MaskRule):
    """Prices within [min_price, max_price]: scalars, or per segment ``{label: bound}``."""

    min_price: float | Mapping[str, float] | None = None
    max_price: float | Mapping[str, float] | None = None
    name: str = "price_bounds"

    def mask(self, problem: PricingProblem) -> np.ndarray:
        lo = _per_segment(self.min_price, problem.segments, self.name, max)
        hi = _per_segment(self.max_price, problem.segments, self.name, min)
        p = problem.prices[None, :]
        tol = 1e-9 * max(1.0, float(problem.prices[-1]))
        ok = np.ones((len(problem.segments), len(problem.prices)), dtype=bool)
        ok &= np.where(np.isnan(lo)[:, None], True, p >= lo[:, None] - tol)
        ok &= np.where(np.isnan(hi)[:, None], True, p <= hi[:, None] + tol)
        return ok


@dataclass(frozen=True)
class MarginFloor(_MaskRule):
    """Unit margin ``(price - cost) / price >= min_margin``; per segment, or on the whole book.

    ``scope="total"``: expected gross margin / expected revenue >= min_margin across segments.
    """

    min_margin: float = 0.0
    scope: str = "segment"
    name: str = "margin_floor"

    def __post_init__(self) -> None:
        if self.scope not in ("segment", "total"):
            raise ValueError(f"{self.name}: scope must be 'segment' or 'total', got {self.scope!r}")
        if self.min_margin >= 1:
            raise ValueError(
                f"{self.name}: min_margin is a share of price, < 1; got {self.min_margin}"
            )

    def mask(self, problem: PricingProblem) -> np.ndarray | None:  # type: ignore[override]
        if self.scope == "total":
            return None
        return problem.margin >= self.min_margin - 1e-12

    def _weights(self, problem: PricingProblem) -> np.ndarray:
        eb, p = problem.expected_buyers, problem.prices[None, :]
        return eb * (p - problem.unit_cost[:, None]) - self.min_margin * eb * p

    def build(self, m: PricingModel) -> list[cp.Constraint]:
        if self.scope == "segment":
            return super().build(m)
        return [m.lin(self._weights(m.problem)) >= 0]

    def violation(self, idx: np.ndarray, problem: PricingProblem) -> float:
        if self.scope == "segment":
            return super().violation(idx, problem)
        w = self._weights(problem)[np.arange(len(idx)), np.asarray(idx)].sum()
        return max(0.0, -float(w))


@dataclass(frozen=True)
class VolumeFloor(_MaskRule):
    """Expected buyers >= ``min_share`` x today's expected buyers (total, or per segment)."""

    min_share: float = 0.9
    scope: str = "total"
    name: str = "volume_floor"

    def __post_init__(self) -> None:
        if self.scope not in ("segment", "total"):
            raise ValueError(f"{self.name}: scope must be 'segment' or 'total', got {self.scope!r}")
        if self.min_share < 0:
            raise ValueError(f"{self.name}: min_share must be >= 0, got {self.min_share}")

    def mask(self, problem: PricingProblem) -> np.ndarray | None:  # type: ignore[override]
        if self.scope == "total":
            return None
        floor = self.min_share * problem.today_buyers(self.name)
        return problem.expected_buyers >= floor[:, None] - 1e-9

    def build(self, m: PricingModel) -> list[cp.Constraint]:
        if self.scope == "segment":
            return super().build(m)
        floor = self.min_share * m.problem.today_buyers(self.name).sum()
        return [m.lin(m.problem.expected_buyers) >= floor]

    def violation(self, idx: np.ndarray, problem: PricingProblem) -> float:
        if self.scope == "segment":
            return super().violation(idx, problem)
        floor = self.min_share * problem.today_buyers(self.name).sum()
        got = problem.expected_buyers[np.arange(len(idx)), np.asarray(idx)].sum()
        return max(0.0, float(floor - got))


@dataclass(frozen=True)
class FairnessBand:
    """Highest price <= ``max_ratio`` x lowest price, across all segments.

    MILP form: a one-hot band start ``y_j`` and ``z[g, k] <= sum of y_j over starts j whose band
    [p_j, r p_j] contains p_k`` - exact on a grid and much tighter than continuous band bounds.
    """

    max_ratio: float = 1.5
    name: str = "price_fairness"

    def __post_init__(self) -> None:
        if self.max_ratio < 1:
            raise ValueError(f"{self.name}: max_ratio must be >= 1, got {self.max_ratio}")

    def mask(self, problem: PricingProblem) -> None:
        return None

    def band(self, prices: np.ndarray, start: int) -> np.ndarray:
        """(K,) prices inside the band that starts at grid point ``start``."""
        lo = prices[start]
        return (prices >= lo) & (prices <= self.max_ratio * lo * (1 + 1e-12))

    def build(self, m: PricingModel) -> list[cp.Constraint]:
        prices = m.problem.prices
        K = len(prices)
        cover = np.array([self.band(prices, j) for j in range(K)], dtype=float)  # (start, k)
        y = cp.Variable(K, boolean=True, name="band_start")
        link = sp.kron(sp.csr_matrix(np.ones((m.G, 1))), cover.T, format="csr")  # (G*K, K)
        return [cp.sum(y) == 1, m.z <= link @ y]

    def violation(self, idx: np.ndarray, problem: PricingProblem) -> float:
        p = problem.prices[np.asarray(idx)]
        return max(0.0, float(p.max() - self.max_ratio * p.min()))


@dataclass(frozen=True)
class MonotoneTiers:
    """Prices ordered across value tiers (e.g. low <= mid <= high), within each group.

    A segment's tier is its ``position``-th ``/``-part (``high/price`` -> ``high``); its group is
    the remaining parts, so ``low/price <= mid/price <= high/price`` but needs are not compared
    with each other. ``within_groups=False`` orders every segment of a tier against every
    segment of the next. ``direction="decreasing"`` reverses the order (e.g. loyalty pricing).
    """

    tiers: tuple[str, ...] = ("low", "mid", "high")
    position: int = 0
    direction: str = "increasing"
    within_groups: bool = True
    separator: str = "/"
    name: str = "tier_monotone"

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", as_labels(self.tiers))
        if self.direction not in ("increasing", "decreasing"):
            raise ValueError(
                f"{self.name}: direction must be 'increasing' or 'decreasing', got {self.direction!r}"
            )

    def mask(self, problem: PricingProblem) -> None:
        return None

    def pairs(self, problem: PricingProblem) -> list[tuple[int, int]]:
        """(g, h) with price[g] <= price[h] required."""
        rank, group = {}, {}
        for i, seg in enumerate(problem.segments):
            parts = seg.split(self.separator)
            if self.position >= len(parts) or parts[self.position] not in self.tiers:
                raise ValueError(
                    f"{self.name}: segment {seg!r} has no tier from {list(self.tiers)} at "
                    f"'{self.separator}'-part {self.position}; set tiers/position to match the "
                    "segment names"
                )
            rank[i] = self.tiers.index(parts[self.position])
            rest = parts[: self.position] + parts[self.position + 1 :]
            group[i] = self.separator.join(rest) if self.within_groups else ""
        out = []
        for grp in sorted(set(group.values())):
            members = [i for i in rank if group[i] == grp]
            present = sorted({rank[i] for i in members})
            for lo_r, hi_r in zip(present, present[1:], strict=False):
                for g in (i for i in members if rank[i] == lo_r):
                    for h in (i for i in members if rank[i] == hi_r):
                        out.append((g, h) if self.direction == "increasing" else (h, g))
        return out

    def build(self, m: PricingModel) -> list[cp.Constraint]:
        pairs = self.pairs(m.problem)
        if not pairs:
            return []
        K = m.K
        cum = np.tril(np.ones((K - 1, K)))  # cum[k] sums price indices <= k
        rows = []
        for g, h in pairs:
            # price_g <= price_h  <=>  P(idx_h <= k) <= P(idx_g <= k) for every k
            block = np.zeros((K - 1, m.G * K))
            block[:, h * K : (h + 1) * K] += cum
            block[:, g * K : (g + 1) * K] -= cum
            rows.append(block)
        return [sp.csr_matrix(np.vstack(rows)) @ m.z <= 0]

    def violation(self, idx: np.ndarray, problem: PricingProblem) -> float:
        p = problem.prices[np.asarray(idx)]
        return float(sum(max(0.0, p[g] - p[h]) for g, h in self.pairs(problem)))


PRICING_CONSTRAINT_TYPES: dict[str, type] = {
    "price_bounds": PriceBounds,
    "fairness_band": FairnessBand,
    "monotone_tiers": MonotoneTiers,
    "volume_floor": VolumeFloor,
    "margin_floor": MarginFloor,
}


def pricing_constraints_from_config(specs: Iterable[Mapping[str, Any]]) -> list[PricingConstraint]:
    """``[{type: fairness_band, max_ratio: 1.5}, ...]`` -> constraint objects (unique names)."""
    return parse_specs(specs, PRICING_CONSTRAINT_TYPES, "pricing constraint")


# ---- result --------------------------------------------------------------------------------
@dataclass
class PricingResult:
    """Chosen prices with demand, margin and profit intervals, next to the cost-plus rule."""

    table: pd.DataFrame
    status: str
    solver: str
    method: str
    solve_seconds: float
    objective_value: float
    objective_name: str
    total_profit_draws: np.ndarray = field(repr=False)
    cost_plus_profit_draws: np.ndarray = field(repr=False)
    binding_constraints: list[str] = field(default_factory=list)
    mip_gap: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def expected_profit(self) -> float:
        return float(self.total_profit_draws.mean())

    @property
    def cost_plus_expected_profit(self) -> float:
        return float(self.cost_plus_profit_draws.mean())

    def profit_interval(self, prob: float) -> tuple[float, float]:
        lo, hi = hdi(self.total_profit_draws, prob)
        return float(lo), float(hi)

    def gain_over_cost_plus_draws(self) -> np.ndarray:
        """(S,) profit difference vs cost-plus in each draw (same draws: a paired comparison)."""
        return self.total_profit_draws - self.cost_plus_profit_draws

    def summary(self, hdi_prob: float = 0.94) -> dict[str, Any]:
        lo, hi = self.profit_interval(hdi_prob)
        gain = self.gain_over_cost_plus_draws()
        glo, ghi = hdi(gain, hdi_prob)
        return {
            "objective": self.objective_name,
            "objective_value": self.objective_value,
            "method": self.method,
            "solver": self.solver,
            "status": self.status,
            "solve_seconds": round(self.solve_seconds, 4),
            "mip_gap": self.mip_gap,
            "expected_profit": self.expected_profit,
            "profit_hdi": [lo, hi],
            "prob_profit_positive": float((self.total_profit_draws > 0).mean()),
            "cost_plus_expected_profit": self.cost_plus_expected_profit,
            "gain_over_cost_plus": float(gain.mean()),
            "gain_over_cost_plus_hdi": [float(glo), float(ghi)],
            "prob_beats_cost_plus": float((gain > 0).mean()),
            "binding_constraints": list(self.binding_constraints),
            "notes": list(self.notes),
        }


# ---- optimizer -----------------------------------------------------------------------------
class PriceOptimizer(SolvesWith):
    """One price per segment from the grid, maximising the objective under named rules.

    ``method``: ``"auto"`` (enumeration when exact for the setup, else MILP), ``"milp"`` or
    ``"enumerate"`` (raises if the setup is not separable up to a fairness band).
    ``solver``: a cvxpy solver name, with ``time_limit``, ``mip_rel_gap`` and ``solver_options``
    as keywords, or a :class:`SolverSettings` holding them all (as for the budget allocator).
    ``cost_plus_markup``: the naive rule reported alongside, ``price = cost x (1 + markup)``
    snapped to the nearest grid point.
    """

    def __init__(
        self,
        constraints: Sequence[PricingConstraint] = (),
        objective: Objective | None = None,
        method: str = "auto",
        solver: str | SolverSettings = "HIGHS",
        hdi_prob: float = 0.94,
        cost_plus_markup: float = 0.3,
        *,
        time_limit: float | None = None,
        mip_rel_gap: float | None = DEFAULT_MIP_GAP,
        solver_options: dict[str, Any] | None = None,
        diagnose: bool = True,
    ) -> None:
        self.method = choice(PricingMethod, "method", method)
        self.constraints = list(constraints)
        check_unique_names(self.constraints)
        self.objective = objective or ExpectedProfit()
        self.settings = SolverSettings.of(
            solver, time_limit=time_limit, mip_rel_gap=mip_rel_gap, solver_options=solver_options
        )
        self.hdi_prob = hdi_prob
        if cost_plus_markup < 0:
            raise ValueError(f"cost_plus_markup must be >= 0, got {cost_plus_markup}")
        self.cost_plus_markup = cost_plus_markup
        self.diagnose = diagnose

    # ---- method choice ----------------------------------------------------------------------
    def enumerable(self) -> tuple[bool, str]:
        """Whether band-start enumeration is exact for this setup, and why not if it is not."""
        risk_neutral = isinstance(self.objective, ExpectedProfit) or (
            isinstance(self.objective, MeanCVaR) and self.objective.risk_aversion == 0
        )
        if not risk_neutral:
            return False, f"objective {self.objective.name} couples segments through the draws"
        bands = [c for c in self.constraints if isinstance(c, FairnessBand)]
        if len(bands) > 1:
            return False, "more than one fairness band"
        for c in self.constraints:
            if isinstance(c, FairnessBand):
                continue
            if not isinstance(c, _MaskRule) or _safe_mask(c) is _COUPLED:
                return False, f"constraint {c.name!r} couples segments"
        return True, ""

    def _allowed(self, problem: PricingProblem) -> np.ndarray:
        _, G, K = problem.shape
        ok = np.ones((G, K), dtype=bool)
        for c in self.constraints:
            m = c.mask(problem)
            if m is not None:
                ok &= m
        return ok

    # ---- solve ------------------------------------------------------------------------------
    def solve(self, problem: PricingProblem) -> PricingResult:
        can_enum, why = self.enumerable()
        method = self.method.value
        if method == "enumerate" and not can_enum:
            raise PricingError(f"method='enumerate' is not exact here: {why}; use method='milp'")
        if method == "auto":
            method = "enumerate" if can_enum else "milp"
        t0 = time.perf_counter()
        mip_gap = None
        if method == "enumerate":
            idx = self._enumerate(problem)
            status, solver = "optimal", "enumeration"
            if idx is None:
                self._raise_infeasible(
                    problem, "infeasible", time.perf_counter() - t0, "enumeration"
                )
        else:
            idx, status, mip_gap = self._milp(problem, t0)
            solver = self.solver
        assert idx is not None
        seconds = time.perf_counter() - t0
        return self._result(problem, idx, status, solver, method, seconds, mip_gap)

    def _enumerate(self, problem: PricingProblem) -> np.ndarray | None:
        """Exact for expected profit: best independent choices inside each band start."""
        allowed = self._allowed(problem)
        ep = problem.expected_profit
        bands = [c for c in self.constraints if isinstance(c, FairnessBand)]
        K = len(problem.prices)
        starts = range(K) if bands else [None]
        best_val, best_idx = -np.inf, None
        for j in starts:
            ok = allowed if j is None else allowed & bands[0].band(problem.prices, j)[None, :]
            if not ok.any(axis=1).all():
                continue
            vals = np.where(ok, ep, -np.inf)
            choice = vals.argmax(axis=1)
            total = float(vals.max(axis=1).sum())
            if best_idx is None or total > best_val + 1e-9 * max(1.0, abs(best_val)):
                best_val, best_idx = total, choice
        return best_idx

    def build(self, problem: PricingProblem) -> tuple[PricingModel, cp.Problem, dict[str, list]]:
        m = PricingModel(problem)
        groups = {c.name: list(c.build(m)) for c in self.constraints}
        obj, obj_cons = self.objective.build(m.scenarios, m.mean)
        cons = m.base_constraints + obj_cons + [c for g in groups.values() for c in g]
        return m, cp.Problem(cp.Maximize(obj), cons), groups

    def _milp(self, problem: PricingProblem, t0: float) -> tuple[np.ndarray, str, float | None]:
        m, prob, groups = self.build(problem)
        self.settings.solve(prob, PricingError)
        status = str(prob.status)
        idx = m.value()
        if idx is None or status not in USABLE:
            seconds = time.perf_counter() - t0
            if status in INFEASIBLE:
                self._raise_infeasible(problem, status, seconds, self.solver, (m, groups))
            hint = "raise time_limit or simplify the constraints"
            raise PricingError(
                self.settings.no_answer(status, seconds, "prices", hint, self.constraints)
            )
        return idx, status, mip_gap_of(prob)

    def _raise_infeasible(
        self,
        problem: PricingProblem,
        status: str,
        seconds: float,
        solver: str,
        built: tuple[PricingModel, dict[str, list]] | None = None,
    ) -> None:
        if self.diagnose:
            if built is None:
                m, _, groups = self.build(problem)
            else:
                m, groups = built
            soft = [c.name for c in self.constraints if getattr(c, "scope", None) == "total"]
            conflict = find_conflict(
                groups, m.base_constraints, self.settings.diagnose_kwargs(), soft=soft
            )
        else:
            conflict = Conflict([], note="diagnosis switched off")
        raise InfeasiblePricingError(
            f"pricing is infeasible (solver {solver}, status {status}, {seconds:.2f}s): "
            f"{conflict.describe()}",
            conflict,
            status,
            solver,
            seconds,
        )

    # ---- report -----------------------------------------------------------------------------
    def cost_plus_index(self, problem: PricingProblem) -> np.ndarray:
        return problem.snap(problem.unit_cost * (1 + self.cost_plus_markup))

    def binding(self, problem: PricingProblem, idx: np.ndarray) -> dict[str, list[int]]:
        """Rules that forbid a single-segment price change that would raise the objective.

        On a grid "zero slack" is not meaningful; a rule binds when it alone blocks an
        improving move (other rules still met). Returns rule -> segments it holds back.
        """
        base = problem.scenario_profit(idx)
        base_val = self.objective.evaluate(base)
        tol = 1e-9 * max(1.0, abs(base_val))
        pd_ = problem.profit_draws
        out: dict[str, list[int]] = {}
        _, G, K = problem.shape
        for g in range(G):
            for k in range(K):
                if k == idx[g]:
                    continue
                trial = idx.copy()
                trial[g] = k
                broken = [c.name for c in self.constraints if c.violation(trial, problem) > 1e-9]
                if len(broken) != 1 or broken[0] in out and g in out[broken[0]]:
                    continue
                val = self.objective.evaluate(base - pd_[:, g, idx[g]] + pd_[:, g, k])
                if val > base_val + tol:
                    out.setdefault(broken[0], []).append(g)
        return out

    def _result(
        self,
        problem: PricingProblem,
        idx: np.ndarray,
        status: str,
        solver: str,
        method: str,
        seconds: float,
        mip_gap: float | None,
    ) -> PricingResult:
        idx = np.asarray(idx, dtype=int)
        _, G, _ = problem.shape
        g = np.arange(G)
        profit = problem.profit_draws[:, g, idx]  # (S, G)
        buyers = problem.buyers_draws[:, g, idx]
        cp_idx = self.cost_plus_index(problem)
        bind = self.binding(problem, idx)
        seg_bind = [[n for n, segs in bind.items() if i in segs] for i in range(G)]
        p_hdi, b_hdi = hdi(profit, self.hdi_prob, axis=0), hdi(buyers, self.hdi_prob, axis=0)
        t = pd.DataFrame(
            {
                "segment": list(problem.segments),
                "price": problem.prices[idx],
                "cost_plus_price": problem.prices[cp_idx],
                "unit_cost": problem.unit_cost,
                "margin": problem.margin[g, idx],
                "expected_demand": buyers.mean(axis=0),
                "demand_hdi_low": b_hdi[:, 0],
                "demand_hdi_high": b_hdi[:, 1],
                "expected_profit": profit.mean(axis=0),
                "profit_hdi_low": p_hdi[:, 0],
                "profit_hdi_high": p_hdi[:, 1],
                "prob_profit_positive": (profit > 0).mean(axis=0),
                "cost_plus_expected_demand": problem.expected_buyers[g, cp_idx],
                "cost_plus_expected_profit": problem.expected_profit[g, cp_idx],
                "current_price": problem.current_price
                if problem.current_price is not None
                else np.full(G, np.nan),
                "today_expected_demand": problem.today_buyers()
                if problem.current_price is not None
                else np.full(G, np.nan),
                "binding_constraints": [", ".join(b) for b in seg_bind],
            }
        )
        t = pd.concat([t, self._dilution_and_win_win(problem, idx)], axis=1)
        scen = problem.scenario_profit(idx)
        notes = []
        if problem.current_price is None:
            notes.append("no current_price given: current_price/today_expected_demand are NaN")
        if status == cp.USER_LIMIT:
            notes.append(self.settings.limit_note(mip_gap))
        return PricingResult(
            table=t[PRICE_COLUMNS],
            status=status,
            solver=solver,
            method=method,
            solve_seconds=seconds,
            objective_value=self.objective.evaluate(scen),
            objective_name=self.objective.name,
            total_profit_draws=scen,
            cost_plus_profit_draws=problem.scenario_profit(cp_idx),
            binding_constraints=list(bind),
            mip_gap=mip_gap,
            notes=notes,
        )

    def _dilution_and_win_win(self, problem: PricingProblem, idx: np.ndarray) -> pd.DataFrame:
        """Price dilution of the chosen prices and the win-win price, per segment.

        Dilution: the discount paid to customers who would have bought at today's price
        (:func:`uplift.value.tactic_value.price_dilution`), already inside ``expected_profit``
        and shown apart so the margin tactic's cost is visible. Win-win: the lowest price at or
        below today's whose expected profit is no lower than today's
        (:func:`uplift.value.tactic_value.win_win_index`), with its profit interval and P(profit
        >= today's profit) over the draws. Today's price is snapped to the grid (the pipeline
        always puts it on the grid). Without ``current_price`` every column is NaN.
        """
        _, G, _ = problem.shape
        cols = PRICE_COLUMNS[PRICE_COLUMNS.index("price_dilution") :]
        if problem.current_price is None:
            return pd.DataFrame({c: np.full(G, np.nan) for c in cols})
        g = np.arange(G)
        today_idx = problem.snap(problem.current_price)
        today_price = problem.prices[today_idx]
        demand_today = problem.demand[:, g, today_idx]
        dil = price_dilution(demand_today, problem.prices[idx], today_price, problem.customers)
        ww = win_win_index(problem.profit_draws, problem.prices, today_idx)
        ww_profit = problem.profit_draws[:, g, ww]
        today_profit = problem.profit_draws[:, g, today_idx]
        ww_dil = price_dilution(demand_today, problem.prices[ww], today_price, problem.customers)
        d_hdi, w_hdi = hdi(dil, self.hdi_prob, axis=0), hdi(ww_profit, self.hdi_prob, axis=0)
        return pd.DataFrame(
            {
                "price_dilution": dil.mean(axis=0),
                "price_dilution_hdi_low": d_hdi[:, 0],
                "price_dilution_hdi_high": d_hdi[:, 1],
                "win_win_price": problem.prices[ww],
                "win_win_expected_profit": ww_profit.mean(axis=0),
                "win_win_profit_hdi_low": w_hdi[:, 0],
                "win_win_profit_hdi_high": w_hdi[:, 1],
                "win_win_prob_not_worse": (ww_profit >= today_profit - 1e-12).mean(axis=0),
                "win_win_price_dilution": ww_dil.mean(axis=0),
            }
        )


_COUPLED = object()


def _safe_mask(c: Any) -> Any:
    """A rule's mask without needing a problem: only the scope decides if it couples."""
    scope = getattr(c, "scope", "segment")
    return _COUPLED if scope == "total" else None
