"""Convergence diagnostics from ArviZ, and the gate that decides whether a fit may be used."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import arviz as az
import numpy as np


@dataclass(frozen=True)
class Diagnostics:
    r_hat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    draws: int
    chains: int

    def failures(self, r_hat_max: float, ess_bulk_min: float, divergences_max: int) -> list[str]:
        """Human-readable reasons this fit fails the thresholds (empty when it passes)."""
        out = []
        if not np.isfinite(self.r_hat_max) or self.r_hat_max > r_hat_max:
            out.append(f"r_hat_max={self.r_hat_max:.3f} > {r_hat_max}")
        if not np.isfinite(self.ess_bulk_min) or self.ess_bulk_min < ess_bulk_min:
            out.append(f"ess_bulk_min={self.ess_bulk_min:.0f} < {ess_bulk_min:.0f}")
        if self.divergences > divergences_max:
            out.append(f"divergences={self.divergences} > {divergences_max}")
        return out

    def to_dict(self) -> dict[str, float | int]:
        return {k: (float(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def __str__(self) -> str:
        return (
            f"r_hat_max={self.r_hat_max:.4f} ess_bulk_min={self.ess_bulk_min:.0f} "
            f"ess_tail_min={self.ess_tail_min:.0f} divergences={self.divergences} "
            f"({self.chains} chains x {self.draws} draws)"
        )


def _extreme(tree, fn) -> float:
    vals = [float(fn(tree[v].values)) for v in tree.data_vars if tree[v].size]
    return fn(np.array(vals)) if vals else float("nan")


def compute_diagnostics(idata, var_names: list[str] | None = None) -> Diagnostics:
    """r-hat (rank-normalised), bulk and tail ESS over ``var_names`` (all posterior vars by default)."""
    post = idata["posterior"]
    rhat = az.rhat(idata, var_names=var_names)
    ess_bulk = az.ess(idata, var_names=var_names, method="bulk")
    ess_tail = az.ess(idata, var_names=var_names, method="tail")
    div = 0
    if "sample_stats" in idata and "diverging" in idata["sample_stats"]:
        div = int(idata["sample_stats"]["diverging"].values.sum())
    return Diagnostics(
        r_hat_max=float(_extreme(rhat, np.nanmax)),
        ess_bulk_min=float(_extreme(ess_bulk, np.nanmin)),
        ess_tail_min=float(_extreme(ess_tail, np.nanmin)),
        divergences=div,
        draws=int(post.sizes["draw"]),
        chains=int(post.sizes["chain"]),
    )
