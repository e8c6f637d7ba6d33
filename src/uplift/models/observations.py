"""What a saved posterior carries besides its draws: the data its likelihood saw, per cell.

ArviZ's model criticism reads fixed groups of a posterior file: ``az.loo`` / ``az.compare``
need ``log_likelihood`` (pointwise, one value per draw and observation), ``az.plot_ppc_dist``
needs ``posterior_predictive`` and ``observed_data`` with the same variable names. The models
fit on cells of sufficient statistics, so an "observation" here is one cell (segment x arm) of
the tactic: its observed statistics, the log-likelihood of those statistics under each draw, and
replicated statistics drawn from each draw. Each model class says what those are for its family
(:meth:`uplift.models.base.UpliftModel.cell_observations`); this module holds the common shape.

Computed with numpy from the posterior deterministics after sampling (a few hundredths of a
second per fit; PyMC's ``compute_log_likelihood`` compiles a graph per model and cannot see the
likelihood terms kept as ``pm.Potential``, the hurdle spend and the negative-binomial histograms).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

#: the groups :func:`attach` writes (replacing any a backend wrote with PyMC's variable names)
GROUPS = ("observed_data", "constant_data", "log_likelihood", "posterior_predictive")
CELL = "cell"


@dataclass
class CellObservations:
    """One tactic's cells as its likelihood sees them.

    ``segment`` and ``arm`` label each cell (control cells first, then the tactic's treated
    cells, in the order of the cells table). ``observed`` and ``constant`` hold one value per cell
    (or ``(cell, *extra)`` with labels in ``extra_coords``); ``log_likelihood`` and ``predictive``
    arrays are ``(chain, draw, cell)``.
    """

    segment: np.ndarray
    arm: np.ndarray
    observed: dict[str, np.ndarray]
    constant: dict[str, np.ndarray]
    log_likelihood: dict[str, np.ndarray]
    predictive: dict[str, np.ndarray]
    extra_coords: dict[str, np.ndarray] = field(default_factory=dict)

    def _coords(self) -> dict[str, Any]:
        return {
            CELL: np.arange(len(self.segment)),
            "segment": (CELL, self.segment.astype(str)),
            "arm": (CELL, self.arm.astype(str)),
        }

    def _per_cell(self, values: Mapping[str, np.ndarray], extra_dims: Sequence[str]) -> xr.Dataset:
        out, used = {}, set()
        for name, v in values.items():
            extra = list(self.extra_coords)[: v.ndim - len(extra_dims) - 1]
            out[name] = ((*extra_dims, CELL, *extra), v)
            used.update(extra)
        extra_coords = {k: v for k, v in self.extra_coords.items() if k in used}
        return xr.Dataset(out, coords=self._coords() | extra_coords)

    def attach(self, idata: Any) -> Any:
        """``idata`` (an ArviZ DataTree) with the four groups of :data:`GROUPS` set from these
        cells (the posterior and sample statistics are left as they are)."""
        sample = ("chain", "draw")
        chains = idata["posterior"]["chain"].values
        draws = idata["posterior"]["draw"].values
        groups = {
            "observed_data": self._per_cell(self.observed, ()),
            "constant_data": self._per_cell(self.constant, ()),
            "log_likelihood": self._per_cell(self.log_likelihood, sample),
            "posterior_predictive": self._per_cell(self.predictive, sample),
        }
        for name, ds in groups.items():
            if "chain" in ds.dims:
                ds = ds.assign_coords(chain=chains, draw=draws)
            idata[name] = ds
        return idata


def cell_labels(control: pd.DataFrame, treated: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Segment and arm of each cell, control cells first (the order of every cell array)."""
    rows = pd.concat([control, treated])
    return rows["segment"].astype(str).to_numpy(), rows["arm"].astype(str).to_numpy()


def _positions(labels: Sequence[object], wanted: np.ndarray) -> np.ndarray:
    pos = {str(v): i for i, v in enumerate(labels)}
    return np.array([pos[str(w)] for w in wanted], dtype=np.int64)


def segment_cell_draws(posterior: Any, name: str, segments: np.ndarray) -> np.ndarray:
    """Posterior variable ``name`` (dim segment) at each cell's segment: ``(chain, draw, cell)``."""
    v = posterior[name].transpose("chain", "draw", "segment")
    return np.asarray(v.values)[..., _positions(v["segment"].values, segments)]


def arm_segment_cell_draws(posterior: Any, name: str, arms: np.ndarray, segments: np.ndarray):
    """Posterior variable ``name`` (dims arm, segment) at each cell: ``(chain, draw, cell)``."""
    v = posterior[name].transpose("chain", "draw", "arm", "segment")
    a = _positions(v["arm"].values, arms)
    s = _positions(v["segment"].values, segments)
    return np.asarray(v.values)[..., a, s]


def control_and_treated(
    posterior: Any,
    control_name: str,
    treated_name: str,
    control: pd.DataFrame,
    treated: pd.DataFrame,
) -> np.ndarray:
    """A parameter per cell from its control (dim segment) and treated (dims arm, segment)
    variables, control cells first: ``(chain, draw, cell)``."""
    c = segment_cell_draws(posterior, control_name, control["segment"].astype(str).to_numpy())
    t = arm_segment_cell_draws(
        posterior,
        treated_name,
        treated["arm"].astype(str).to_numpy(),
        treated["segment"].astype(str).to_numpy(),
    )
    return np.concatenate([c, t], axis=-1)


def binomial_loglik(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``Binomial(n, p).logpmf(k)`` per draw and cell (the constant log C(n, k) included, as in
    PyMC's Binomial)."""
    from scipy import stats

    return stats.binom.logpmf(k, n, p)


def binomial_replicates(rng: np.random.Generator, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``Binomial(n, p)`` replicates per draw and cell, as int32 (they are at most ``n``; half
    the size of int64 in the saved file) unless a cell is too large for it."""
    dtype = np.int32 if int(np.max(n, initial=0)) < 2**31 else np.int64
    return rng.binomial(n, p).astype(dtype)


def binomial_observations(
    posterior: Any,
    control: pd.DataFrame,
    treated: pd.DataFrame,
    rng: np.random.Generator,
    constant: Mapping[str, np.ndarray] | None = None,
) -> CellObservations:
    """Conversions ~ Binomial(n, p) per cell, p from ``p_control`` / ``p_treated`` (the
    conversion and price-test models)."""
    segment, arm = cell_labels(control, treated)
    n = np.r_[control["n"].to_numpy(), treated["n"].to_numpy()].astype(np.int64)
    k = np.r_[control["conversions"].to_numpy(), treated["conversions"].to_numpy()].astype(np.int64)
    p = control_and_treated(posterior, "p_control", "p_treated", control, treated)
    return CellObservations(
        segment,
        arm,
        observed={"conversions": k},
        constant={"n": n, **(constant or {})},
        log_likelihood={"conversions": binomial_loglik(k, n, p)},
        predictive={"conversions": binomial_replicates(rng, n, p)},
    )
