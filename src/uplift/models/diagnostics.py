"""Convergence diagnostics from ArviZ, and the gate that decides whether a fit may be used.

MCMC fits are judged by r-hat, bulk and tail ESS and divergences. An approximate fit (ADVI)
has independent draws, so r-hat ~ 1 and ESS ~ draws whatever the quality of the approximation;
it is judged instead by the Pareto k-hat of its importance ratios p/q (Yao, Vehtari, Simpson &
Gelman 2018, "Yes, but did it work?"): k-hat <= 0.7 means importance sampling from q could
correct it, so q is close enough to the posterior for its estimates to be trusted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import arviz as az
import numpy as np

#: k-hat above which the approximation is unreliable (Yao et al. 2018; Vehtari et al. 2024)
PARETO_K_MAX = 0.7


@dataclass(frozen=True)
class Diagnostics:
    r_hat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    draws: int
    chains: int
    #: "nuts" for MCMC, else the approximation ("advi", "fullrank_advi")
    method: str = "nuts"
    #: PSIS k-hat of the approximation's importance ratios (None for MCMC)
    pareto_k: float | None = None

    @property
    def approximate(self) -> bool:
        return self.method != "nuts"

    def failures(
        self,
        r_hat_max: float,
        ess_bulk_min: float,
        divergences_max: int,
        ess_tail_min: float | None = None,
        pareto_k_max: float = PARETO_K_MAX,
    ) -> list[str]:
        """Human-readable reasons this fit fails the thresholds (empty when it passes).

        MCMC: r-hat, bulk ESS, tail ESS (``ess_tail_min`` defaults to ``ess_bulk_min``: tail
        quantiles feed the intervals the optimizer uses) and divergences. Approximate fits:
        Pareto k-hat only, since r-hat/ESS say nothing about independent draws from q.
        """
        if self.approximate:
            k = self.pareto_k
            if k is None or not np.isfinite(k) or k > pareto_k_max:
                shown = "unavailable" if k is None or np.isnan(k) else f"{k:.2f}"
                return [
                    f"pareto_k={shown} > {pareto_k_max}: the {self.method} approximation is not "
                    "reliable (PSIS diagnostic); use an MCMC backend (sampler=nutpie)"
                ]
            return []
        tail_min = ess_bulk_min if ess_tail_min is None else ess_tail_min
        out = []
        if not np.isfinite(self.r_hat_max) or self.r_hat_max > r_hat_max:
            out.append(f"r_hat_max={self.r_hat_max:.3f} > {r_hat_max}")
        if not np.isfinite(self.ess_bulk_min) or self.ess_bulk_min < ess_bulk_min:
            out.append(f"ess_bulk_min={self.ess_bulk_min:.0f} < {ess_bulk_min:.0f}")
        if not np.isfinite(self.ess_tail_min) or self.ess_tail_min < tail_min:
            out.append(f"ess_tail_min={self.ess_tail_min:.0f} < {tail_min:.0f}")
        if self.divergences > divergences_max:
            out.append(f"divergences={self.divergences} > {divergences_max}")
        return out

    def to_dict(self) -> dict[str, float | int | str | None]:
        return {k: (float(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def __str__(self) -> str:
        if self.approximate:
            k = "n/a" if self.pareto_k is None else f"{self.pareto_k:.2f}"
            return f"{self.method}: pareto_k={k} ({self.chains} x {self.draws} draws from q)"
        return (
            f"r_hat_max={self.r_hat_max:.4f} ess_bulk_min={self.ess_bulk_min:.0f} "
            f"ess_tail_min={self.ess_tail_min:.0f} divergences={self.divergences} "
            f"({self.chains} chains x {self.draws} draws)"
        )


def _extreme(tree, fn) -> float:
    vals = [float(fn(tree[v].values)) for v in tree.data_vars if tree[v].size]
    return fn(np.array(vals)) if vals else float("nan")


def psis_khat(log_ratios: np.ndarray) -> float:
    """Pareto k-hat of importance ratios from their logs, ``log p(theta, y) - log q(theta)``.

    The generalized Pareto fit to the largest ratios is ArviZ's PSIS (``array_stats.psislw``,
    Vehtari et al. 2024, with r_eff=1 for independent draws). ``psislw`` takes log-likelihood
    values and weights by their negation (the PSIS-LOO convention), hence the sign flip.
    """
    from arviz_stats.base import array_stats

    lr = np.ravel(np.asarray(log_ratios, dtype=np.float64))
    if lr.size < 25:  # too few draws for 5 tail draws: no estimate
        return float("nan")
    if np.isnan(lr).any() or np.isposinf(lr).any() or np.isneginf(lr).all():
        return float("inf")  # q puts mass where the density is undefined: unusable
    _, khat = array_stats.psislw(-lr, r_eff=1.0, axis=-1)
    return float(khat)


def compute_diagnostics(idata, var_names: list[str] | None = None) -> Diagnostics:
    """r-hat (rank-normalised), bulk and tail ESS over ``var_names`` (all posterior vars by
    default), divergences, and for approximate fits the PSIS k-hat of their draws."""
    post = idata["posterior"]
    rhat = az.rhat(idata, var_names=var_names)
    ess_bulk = az.ess(idata, var_names=var_names, method="bulk")
    ess_tail = az.ess(idata, var_names=var_names, method="tail")
    div = 0
    stats = idata.get("sample_stats")
    if stats is not None and "diverging" in stats:
        div = int(stats["diverging"].values.sum())
    method = str(idata.attrs.get("inference_method", "nuts"))
    khat = None
    if stats is not None and "log_q" in stats and "lp" in stats:
        method = method if method != "nuts" else "advi"
        khat = psis_khat(stats["lp"].values - stats["log_q"].values)
    return Diagnostics(
        r_hat_max=float(_extreme(rhat, np.nanmax)),
        ess_bulk_min=float(_extreme(ess_bulk, np.nanmin)),
        ess_tail_min=float(_extreme(ess_tail, np.nanmin)),
        divergences=div,
        draws=int(post.sizes["draw"]),
        chains=int(post.sizes["chain"]),
        method=method,
        pareto_k=khat,
    )
