"""The allocation problem as arrays aligned on decision cells, and its NumPy evaluation.

Two kinds of cell (column ``unit`` of ``cells``):

* ``customers``: decision = customers of the segment who get the arm; profit is linear,
  ``profit_draws[s, c]`` per treated customer (``value x uplift - cost``).
* ``spend``: decision = money spent on the tactic for the segment; profit is
  ``response.value(spend)[s] + profit_draws[s, c] x spend`` with a concave saturating response
  and ``profit_draws[:, c]`` normally ``-1`` (each unit of spend costs one unit). ``cost`` is 1.

Everything reported (means, intervals, binding checks) is evaluated here on the exact response,
so an approximation used inside a solver never leaks into the numbers a user reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cvxpy as cp
import numpy as np
import pandas as pd

from uplift.tactics import ArmMap

if TYPE_CHECKING:
    import xarray as xr

CUSTOMERS = "customers"
SPEND = "spend"
RESPONSE_FORMS = ("exponential", "hill")


@dataclass(frozen=True)
class SaturatingResponse:
    """Gross incremental value of spend cells, per posterior draw: concave, saturating.

    ``exponential``: ``ceiling x (1 - exp(-spend / scale))`` (63% of the ceiling at ``scale``).
    ``hill``: ``ceiling x spend / (scale + spend)`` (half the ceiling at ``scale``; Hill with
    shape 1 - larger shapes are S-shaped, not concave, and are not offered).
    ``ceiling`` is (S, n) and ``scale`` (S, n) or (n,), one column per spend cell in cell order;
    ``max_spend`` (n,) is the most that can be spent on the cell (audience or inventory limit).
    """

    ceiling: np.ndarray
    scale: np.ndarray
    max_spend: np.ndarray
    form: str = "exponential"

    def __post_init__(self) -> None:
        ceiling = np.atleast_2d(np.asarray(self.ceiling, dtype=float))
        scale = np.asarray(self.scale, dtype=float)
        max_spend = np.atleast_1d(np.asarray(self.max_spend, dtype=float))
        object.__setattr__(self, "ceiling", ceiling)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "max_spend", max_spend)
        if self.form not in RESPONSE_FORMS:
            raise ValueError(
                f"response form {self.form!r} is not concave-saturating; use one of {RESPONSE_FORMS}"
            )
        n = ceiling.shape[1]
        if scale.shape not in ((n,), ceiling.shape):
            raise ValueError(
                f"response scale must be ({n},) or {ceiling.shape} like ceiling, got {scale.shape}"
            )
        if max_spend.shape != (n,):
            raise ValueError(f"response max_spend must be ({n},), got {max_spend.shape}")
        for label, arr in (("ceiling", ceiling), ("scale", scale), ("max_spend", max_spend)):
            if not np.isfinite(arr).all():
                raise ValueError(f"response {label} contains NaN or inf")
        if (ceiling < 0).any():
            raise ValueError(
                "response ceiling must be >= 0 in every draw (a saturating gain); "
                "model harmful spend through the linear part instead"
            )
        if (scale <= 0).any() or (max_spend <= 0).any():
            raise ValueError("response scale and max_spend must be > 0")

    @property
    def n_cells(self) -> int:
        return self.ceiling.shape[1]

    @property
    def n_draws(self) -> int:
        return self.ceiling.shape[0]

    def _scale2d(self) -> np.ndarray:
        return np.broadcast_to(self.scale, self.ceiling.shape)

    def value(self, spend: np.ndarray) -> np.ndarray:
        """(S, n) gross value at ``spend`` (n,)."""
        spend = np.asarray(spend, dtype=float)[None, :]
        k = self._scale2d()
        if self.form == "exponential":
            return self.ceiling * -np.expm1(-spend / k)
        return self.ceiling * spend / (k + spend)

    def slope_at_zero(self) -> np.ndarray:
        """(S, n) value of the first unit of spend: ceiling / scale for both forms."""
        return self.ceiling / self._scale2d()

    def expression(self, spend: cp.Expression) -> cp.Expression:
        """(S, n) concave cvxpy expression of the gross value (DCP: exp cone / inv_pos)."""
        n = self.n_cells
        x = cp.reshape(spend, (1, n), order="C")
        k = self._scale2d()
        if self.form == "exponential":
            return self.ceiling - cp.multiply(self.ceiling, cp.exp(-cp.multiply(1.0 / k, x)))
        return self.ceiling - cp.multiply(self.ceiling * k, cp.inv_pos(k + x))

    def mean_expression(self, spend: cp.Expression) -> cp.Expression:
        """Scalar concave expression of the mean gross value (cheaper when scale is per cell)."""
        if self.scale.ndim == 1:
            cbar = self.ceiling.mean(axis=0)
            k = self.scale
            if self.form == "exponential":
                return cp.sum(cbar - cp.multiply(cbar, cp.exp(-cp.multiply(1.0 / k, spend))))
            return cp.sum(cbar - cp.multiply(cbar * k, cp.inv_pos(k + spend)))
        return cp.sum(self.expression(spend)) / self.n_draws

    def breakpoints(self, n_points: int) -> np.ndarray:
        """(n, M+1) spend breakpoints from 0 to ``max_spend`` for a piecewise-linear model.

        Half are spaced evenly in the mean response (dense where the curve bends), half evenly
        in spend (so the flat tail is covered); the union is used.
        """
        if n_points < 2:
            raise ValueError(f"need at least 2 breakpoints per spend cell, got {n_points}")
        half = max(n_points // 2, 2)
        out = []
        fine = np.linspace(0.0, 1.0, 513)
        k2 = self._scale2d()
        for j in range(self.n_cells):
            grid = fine * self.max_spend[j]
            a, k = self.ceiling[:, j][:, None], k2[:, j][:, None]
            g = grid[None, :]
            curve = a * -np.expm1(-g / k) if self.form == "exponential" else a * g / (k + g)
            mean_curve = curve.mean(axis=0)
            top = mean_curve[-1]
            by_value = (
                np.interp(np.linspace(0, top, half + 1), mean_curve, grid) if top > 0 else grid[:1]
            )
            even = np.linspace(0.0, self.max_spend[j], n_points - half + 1)
            out.append(np.unique(np.concatenate([by_value, even, [0.0, self.max_spend[j]]])))
        width = max(len(p) for p in out)
        # pad to a common length by repeating the last point (zero-width segments are harmless)
        return np.array([np.pad(p, (0, width - len(p)), mode="edge") for p in out])


@dataclass(frozen=True)
class AllocationProblem:
    """Everything the allocator needs, as arrays aligned on decision cells.

    ``cells`` has one row per decision (segment, tactic, arm, cost[, unit]); ``profit_draws`` is
    ``(S, C)`` incremental profit per unit of decision (per treated customer, or the linear part
    per unit of spend); ``eligible`` is customers per segment; ``response`` holds the saturating
    response of spend cells (required when any cell has ``unit == "spend"``).
    """

    cells: pd.DataFrame
    profit_draws: np.ndarray
    eligible: pd.Series
    response: SaturatingResponse | None = field(default=None)

    def __post_init__(self) -> None:
        if self.profit_draws.ndim != 2 or self.profit_draws.shape[1] != len(self.cells):
            raise ValueError(
                f"profit_draws must be (draws, {len(self.cells)} cells), got {self.profit_draws.shape}"
            )
        if not np.isfinite(self.profit_draws).all():
            raise ValueError(
                "profit_draws contains NaN or inf; check the value per conversion inputs"
            )
        need = {"segment", "tactic", "arm", "cost"}
        if not need <= set(self.cells.columns):
            raise ValueError(f"cells needs columns {sorted(need)}, got {list(self.cells.columns)}")
        missing = sorted(set(self.cells["segment"]) - set(self.eligible.index))
        if missing:
            raise ValueError(f"no eligible-customer count for segment(s) {missing}")
        units = self.units
        bad = sorted(set(units) - {CUSTOMERS, SPEND})
        if bad:
            raise ValueError(f"cells.unit must be 'customers' or 'spend', got {bad}")
        if (self.cost < 0).any():
            raise ValueError("cells.cost must be >= 0")
        n_spend = int((units == SPEND).sum())
        if n_spend:
            if self.response is None:
                raise ValueError(
                    f"{n_spend} cell(s) have unit 'spend' but no response was given; pass "
                    "response=SaturatingResponse(ceiling, scale, max_spend) with one column each"
                )
            if self.response.n_cells != n_spend:
                raise ValueError(
                    f"response has {self.response.n_cells} columns, expected one per spend cell "
                    f"({n_spend}), in cell order"
                )
            if self.response.n_draws != self.n_draws:
                raise ValueError(
                    f"response has {self.response.n_draws} draws, profit_draws {self.n_draws}"
                )
            if not np.allclose(self.cost[units == SPEND], 1.0):
                raise ValueError(
                    "spend cells must have cost 1.0: the decision is the spend itself, and the "
                    "budget counts it once"
                )
        elif self.response is not None:
            raise ValueError("response given but no cell has unit 'spend'")

    @classmethod
    def from_uplift(
        cls,
        uplift: Mapping[str, xr.DataArray],
        value_per_conversion: pd.Series | Mapping[str, pd.Series],
        arm_map: ArmMap,
        eligible: pd.Series,
        value_draws: xr.DataArray | Mapping[str, xr.DataArray] | None = None,
    ) -> AllocationProblem:
        """Assemble from per-tactic uplift draws (xarray, dims sample x arm x segment).

        ``value_per_conversion`` is the value of one unit of the uplift metric per segment: one
        series for all tactics, or a mapping tactic -> series when metrics differ.

        ``value_draws`` (optional) carries the value's own uncertainty (e.g. CLV posterior draws):
        dims ``(sample, segment)``, one array for all tactics or a mapping tactic -> array (tactics
        absent from it keep their point value). Draw s of the value multiplies draw s of the
        uplift, so profit per treated customer is ``value[s] x uplift[s] - cost`` and CVaR and
        the chance of a loss see both uncertainties; the draws must number the uplift's. Without
        it every draw uses the point value (the arrays are then exactly those of before).
        """
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
            values = (
                value_per_conversion[tactic]
                if isinstance(value_per_conversion, Mapping)
                else value_per_conversion
            )
            vdraws = _value_draws_for(value_draws, str(tactic), S, list(da["segment"].values))
            for arm in da["arm"].values:
                cost = arm_map[str(arm)].cost
                for seg in da["segment"].values:
                    up = da.sel(arm=arm, segment=seg).values
                    if vdraws is None:
                        v = float(values.loc[seg])
                        blocks.append(v * up - cost)
                    else:
                        blocks.append(vdraws.sel(segment=seg).values * up - cost)
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

    # ---- shapes and masks -------------------------------------------------------------------
    @property
    def n_cells(self) -> int:
        return len(self.cells)

    @property
    def n_draws(self) -> int:
        return self.profit_draws.shape[0]

    @property
    def units(self) -> np.ndarray:
        if "unit" not in self.cells.columns:
            return np.full(len(self.cells), CUSTOMERS, dtype=object)
        return self.cells["unit"].fillna(CUSTOMERS).astype(str).to_numpy(dtype=object)

    @property
    def customer_mask(self) -> np.ndarray:
        return self.units == CUSTOMERS

    @property
    def spend_mask(self) -> np.ndarray:
        return self.units == SPEND

    @property
    def cost(self) -> np.ndarray:
        return self.cells["cost"].to_numpy(dtype=float)

    @property
    def segments(self) -> list[str]:
        return sorted(self.cells["segment"].unique())

    @property
    def tactics(self) -> list[str]:
        return sorted(self.cells["tactic"].unique())

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

    # ---- NumPy evaluation -------------------------------------------------------------------
    def cell_profit(self, x: np.ndarray) -> np.ndarray:
        """(S, C) profit of each cell at decision ``x`` in every draw (exact response)."""
        x = np.asarray(x, dtype=float)
        out = self.profit_draws * x[None, :]
        if self.response is not None:
            sm = self.spend_mask
            out[:, sm] += self.response.value(x[sm])
        return out

    def scenario_profit(self, x: np.ndarray) -> np.ndarray:
        """(S,) total profit of decision ``x`` in every draw."""
        x = np.asarray(x, dtype=float)
        total = self.profit_draws @ x
        if self.response is not None:
            total = total + self.response.value(x[self.spend_mask]).sum(axis=1)
        return total

    def spend(self, x: np.ndarray) -> float:
        return float(self.cost @ np.asarray(x, dtype=float))

    def unit_profit(self, x: np.ndarray) -> np.ndarray:
        """(S, C) profit per unit of decision: per customer, or per unit of spend at ``x``.

        Spend cells left at zero are evaluated at the first unit (the response's initial slope),
        so an untreated cell still shows what it would earn.
        """
        out = self.profit_draws.copy()
        if self.response is not None:
            sm = self.spend_mask
            xs = np.asarray(x, dtype=float)[sm]
            gross = self.response.value(np.maximum(xs, 1e-12)) / np.maximum(xs, 1e-12)[None, :]
            gross = np.where(xs[None, :] > 1e-9, gross, self.response.slope_at_zero())
            out[:, sm] += gross
        return out

    def upper_bounds(self) -> np.ndarray:
        """Hard range of each decision: eligible customers, or the response's max spend."""
        ub = np.full(self.n_cells, np.inf)
        if self.response is not None:
            ub[self.spend_mask] = self.response.max_spend
        return ub


def _value_draws_for(
    value_draws: xr.DataArray | Mapping[str, xr.DataArray] | None,
    tactic: str,
    n_samples: int,
    segments: list,
) -> xr.DataArray | None:
    """The ``(sample, segment)`` value draws of ``tactic``, checked against its uplift draws
    (None: use the point value)."""
    if value_draws is None:
        return None
    if isinstance(value_draws, Mapping):
        if tactic not in value_draws:
            return None
        da = value_draws[tactic]
    else:
        da = value_draws
    if set(da.dims) != {"sample", "segment"}:
        raise ValueError(
            f"value draws of {tactic!r} need dims (sample, segment), got {tuple(da.dims)}"
        )
    if da.sizes["sample"] != n_samples:
        raise ValueError(
            f"value draws of {tactic!r} have {da.sizes['sample']} samples, its uplift "
            f"{n_samples}; draw s of the value pairs with draw s of the uplift, so use equal draws"
        )
    missing = sorted(set(map(str, segments)) - set(map(str, da["segment"].values)))
    if missing:
        raise ValueError(f"value draws of {tactic!r} have no segment(s) {missing}")
    da = da.transpose("sample", "segment")
    if not np.isfinite(da.values).all():
        raise ValueError(f"value draws of {tactic!r} contain NaN or inf")
    return da
