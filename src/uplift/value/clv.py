"""Bayesian customer lifetime value: BG/NBD purchase counts x Gamma-Gamma spend, on PyMC.

Why our own implementation: pymc-marketing (1.3.0, the latest) pins ``pymc<6.4`` and
``numpy<2.5`` and would downgrade the project's pymc 6.4 / numpy 2.5, so the two models are
written here with their exact closed-form likelihoods:

- **BG/NBD** (Fader, Hardie & Lee 2005): while alive a customer buys at Poisson rate
  ``lambda ~ Gamma(r, alpha)``; after each purchase they drop out with probability
  ``p ~ Beta(a, b)``. The likelihood depends only on ``(x, t_x, T)`` = (frequency, recency, age),
  so it is fit on the unique patterns with counts as weights: cost does not grow with customers.
- **Gamma-Gamma** (Fader, Hardie & Lee 2005b; Fader & Hardie 2013): each repeat transaction's
  value ``z ~ Gamma(p, nu)``, ``nu ~ Gamma(q, gamma)`` across customers; fit on the customers'
  mean repeat spend. Assumes spend is independent of purchase frequency.

Both are fit either with NUTS (``method="nuts"``, the project's sampler settings) or with a
Laplace approximation at the posterior mode (``method="laplace"``: seconds, and for 3-4
parameters and thousands of customers it matches NUTS closely). Parameters live on the log scale
(``alpha`` and ``gamma`` relative to the data's time / currency scale), so priors mean the same
whatever the units.

CLV per customer and posterior draw: ``margin x E[spend] x sum_k dE[purchases in step k] /
(1 + annual discount rate)^(t_k in years)`` over ``horizon`` (monthly steps by default). The
conditional expectation of purchases (FHL eq. 10) already includes P(alive), so customers who
have probably left are worth little.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, Self, cast

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr
from scipy import optimize, special

from uplift.models.building import keep_generated_src_tidy
from uplift.models.diagnostics import Diagnostics, compute_diagnostics
from uplift.models.persist import SavedModel
from uplift.models.sampling import SamplerSettings, sample
from uplift.value.transactions import (
    DAYS_PER_UNIT,
    UNITS_PER_YEAR,
    check_summary,
    check_time_unit,
)

FitMethod = Literal["nuts", "laplace"]

# ----------------------------------------------------------------------------------------------
# Likelihoods (pytensor; also compiled to numpy functions for checks and maximum likelihood)
# ----------------------------------------------------------------------------------------------


def bgnbd_logp(r, alpha, a, b, x, t_x, T):
    """BG/NBD log-likelihood of one customer's ``(x, t_x, T)`` (FHL 2005, eq. 6), elementwise.

    ``L = B(a, b+x)/B(a, b) * G(r+x)/G(r) * alpha^r / (alpha+T)^(r+x)
         + [x > 0] B(a+1, b+x-1)/B(a, b) * G(r+x)/G(r) * alpha^r / (alpha+t_x)^(r+x)``,
    evaluated in logs with log-sum-exp; ``B(a+1, b+x-1)/B(a, b+x) = a / (b+x-1)``.
    """
    x_pos = pt.maximum(x, 1.0)  # keeps log(b + x - 1) finite in the branch x == 0 never uses
    common = (
        pt.gammaln(r + x)
        - pt.gammaln(r)
        + r * pt.log(alpha)
        + pt.gammaln(a + b)
        + pt.gammaln(b + x)
        - pt.gammaln(b)
        - pt.gammaln(a + b + x)
    )
    still_alive = -(r + x) * pt.log(alpha + T)
    dropped = pt.log(a) - pt.log(b + x_pos - 1.0) - (r + x) * pt.log(alpha + t_x)
    return common + pt.switch(pt.gt(x, 0), pt.logaddexp(still_alive, dropped), still_alive)


def gamma_gamma_logp(p, q, gamma, x, m):
    """Gamma-Gamma log density of a customer's mean repeat spend ``m`` over ``x`` transactions.

    ``f(m | p, q, gamma, x) = G(px+q) / (G(px) G(q)) * gamma^q m^(px-1) x^(px) / (gamma + m x)^(px+q)``
    (Fader & Hardie 2013, eq. 4).
    """
    px = p * x
    return (
        pt.gammaln(px + q)
        - pt.gammaln(px)
        - pt.gammaln(q)
        + q * pt.log(gamma)
        + (px - 1.0) * pt.log(m)
        + px * pt.log(x)
        - (px + q) * pt.log(gamma + m * x)
    )


def _function(inputs: list[Any], outputs: Any) -> Any:
    """``pytensor.function`` with the generated source kept out of /tmp (see
    :func:`uplift.models.building.keep_generated_src_tidy`)."""
    keep_generated_src_tidy()
    return pytensor.function(inputs, outputs)


def _compile_elementwise(fn, n_params: int, n_data: int):
    params = [pt.dvector(f"p{i}") for i in range(n_params)]
    data = [pt.dvector(f"d{i}") for i in range(n_data)]
    return _function([*params, *data], fn(*params, *data))


_BGNBD_FN = None


def bgnbd_loglik(params: Mapping[str, float], summary: pd.DataFrame) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood at ``params`` (r, alpha, a, b) — for checks and tests."""
    global _BGNBD_FN
    if _BGNBD_FN is None:
        _BGNBD_FN = _compile_elementwise(bgnbd_logp, 4, 3)
    x, tx, T = _rft(summary)
    n = len(x)
    return _BGNBD_FN(*[np.full(n, float(params[k])) for k in ("r", "alpha", "a", "b")], x, tx, T)


def _rft(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    check_summary(summary)
    return (
        summary["frequency"].to_numpy(dtype=float),
        summary["recency"].to_numpy(dtype=float),
        summary["T"].to_numpy(dtype=float),
    )


def _patterns(*cols: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Unique rows of the stacked columns, their counts, and the row -> pattern index."""
    stacked = np.column_stack(cols)
    uniq, inverse, counts = np.unique(stacked, axis=0, return_inverse=True, return_counts=True)
    return [uniq[:, j] for j in range(uniq.shape[1])], counts.astype(float), inverse.ravel()


# ----------------------------------------------------------------------------------------------
# Shared machinery: priors on the log scale, NUTS or Laplace, netCDF save/load
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BetaGeoPriors:
    """Normal priors ``(mu, sigma)`` on log r, log(alpha / mean T), log a, log b.

    alpha is a time scale, so its prior is centred on the customers' mean age: switching the time
    unit (weeks <-> days) rescales alpha and changes nothing else. sigma = 2 is weak: it spans
    e^-4 .. e^4 around the centre at two standard deviations.
    """

    log_r: tuple[float, float] = (0.0, 2.0)
    log_alpha_rel: tuple[float, float] = (0.0, 2.0)
    log_a: tuple[float, float] = (0.0, 2.0)
    log_b: tuple[float, float] = (0.0, 2.0)


@dataclass(frozen=True)
class GammaGammaPriors:
    """Normal priors ``(mu, sigma)`` on log p, log(q - 1), log(gamma / mean spend).

    q > 1 is imposed so the population mean spend ``p gamma / (q - 1)`` is finite (customers
    without repeat purchases are valued at it).
    """

    log_p: tuple[float, float] = (0.0, 2.0)
    log_q_minus_1: tuple[float, float] = (0.0, 2.0)
    log_gamma_rel: tuple[float, float] = (0.0, 2.0)


class _BtydModel(SavedModel):
    """Fit / draws shared by the purchase and spend models; save / load: SavedModel."""

    family: ClassVar[str]
    params_: ClassVar[tuple[str, ...]]
    log_names: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        method: FitMethod = "nuts",
        sampler: SamplerSettings | None = None,
        laplace_draws: int = 2000,
    ) -> None:
        if method not in ("nuts", "laplace"):
            raise ValueError(f"method={method!r} is unknown; use 'nuts' or 'laplace'")
        self.method = method
        self.sampler = sampler or SamplerSettings()
        self.laplace_draws = int(laplace_draws)
        self.idata: Any = None

    # -- fitting ---------------------------------------------------------------------------
    def _build(self, summary: pd.DataFrame) -> tuple[pm.Model, dict[str, Any]]:
        raise NotImplementedError

    def _transform(self, log_values: dict[str, np.ndarray], attrs: Mapping[str, Any]) -> dict:
        raise NotImplementedError

    def fit(self, summary: pd.DataFrame) -> Self:
        """Fit on an RFM summary (see :func:`uplift.value.transactions.rfm_summary`)."""
        t0 = time.perf_counter()
        model, attrs = self._build(summary)
        seed = self.sampler.seed_for(self.family)
        if self.method == "nuts":
            idata = sample(model, self.sampler, seed=seed)
        else:
            idata = self._laplace(model, attrs, seed)
        idata.attrs.update({f"clv_{k}": v for k, v in attrs.items()})
        idata.attrs.update(
            {
                "clv_family": self.family,
                "clv_method": self.method,
                "clv_fit_seconds": round(time.perf_counter() - t0, 3),
            }
        )
        self.idata = idata
        self._stamp()
        return self

    def model_config(self) -> dict[str, Any]:
        return {"method": str(self.method), "laplace_draws": self.laplace_draws}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        return cls(
            method=config.get("method", "nuts"), laplace_draws=config.get("laplace_draws", 2000)
        )

    def _restore(self, idata: Any) -> None:
        # files saved before the common stamp keep the method in clv_method only
        method = str(idata.attrs.get("clv_method", self.method))
        if method not in ("nuts", "laplace"):
            raise ValueError(f"saved CLV fit has clv_method={method!r}; expected nuts or laplace")
        self.method = cast(FitMethod, method)

    def _laplace(self, model: pm.Model, attrs: Mapping[str, Any], seed: int):
        """Gaussian approximation at the posterior mode on the (unbounded) log scale."""
        names = list(self.log_names)
        logp = model.compile_logp(jacobian=True)
        dlogp = model.compile_dlogp(jacobian=True)
        order = [v.name for v in model.value_vars]
        if sorted(order) != sorted(names):
            raise RuntimeError(f"unexpected free variables {order}; expected {names}")
        start = model.initial_point()

        def point(v: np.ndarray) -> dict[str, np.ndarray]:
            return {n: np.asarray(v[i]) for i, n in enumerate(order)}

        def fun(v: np.ndarray) -> tuple[float, np.ndarray]:
            val = float(logp(point(v)))
            if not np.isfinite(val):
                return 1e300, np.zeros_like(v)
            return -val, -np.asarray(dlogp(point(v)), dtype=float)

        x0 = np.array([float(start[n]) for n in order])
        res = optimize.minimize(fun, x0, jac=True, method="L-BFGS-B")
        if not np.isfinite(res.fun) or res.fun >= 1e300:
            raise RuntimeError(f"{self.family}: could not find the posterior mode ({res.message})")
        if not res.success:
            warnings.warn(
                f"{self.family}: the mode search stopped early ({res.message}); check the fit "
                "against method='nuts'",
                RuntimeWarning,
                stacklevel=3,
            )
        # -Hessian of logp by central differences of the exact gradient (compiling d2logp costs
        # seconds; this is 2k gradient calls and accurate to ~1e-8 relative)
        h = 1e-4
        k = len(order)
        hess = np.empty((k, k))
        for i in range(k):
            e = np.zeros(k)
            e[i] = h
            hess[:, i] = (fun(res.x + e)[1] - fun(res.x - e)[1]) / (2 * h)
        cov = np.linalg.inv(0.5 * (hess + hess.T))
        if not np.all(np.linalg.eigvalsh(cov) > 0):
            raise RuntimeError(
                f"{self.family}: the posterior is not locally Gaussian at its mode (Hessian not "
                "positive definite); refit with method='nuts'."
            )
        rng = np.random.default_rng(seed)
        z = rng.multivariate_normal(res.x, cov, size=self.laplace_draws)
        log_vals = {n: z[:, i] for i, n in enumerate(order)}
        post = {n: v[None, :] for n, v in log_vals.items()}
        post.update({k: v[None, :] for k, v in self._transform(log_vals, attrs).items()})
        import arviz as az

        idata = az.from_dict({"posterior": post})
        idata.attrs.update(
            {
                "clv_mode": json.dumps(dict(zip(order, res.x.tolist(), strict=True))),
                "clv_mode_logp": float(-res.fun),
            }
        )
        return idata

    # -- draws -----------------------------------------------------------------------------
    def _require_fit(self) -> None:
        if self.idata is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(summary) first")

    def params(self, n_draws: int | None = None) -> pd.DataFrame:
        """Posterior draws of the parameters, one row per draw (evenly thinned to ``n_draws``)."""
        self._require_fit()
        post = self.idata["posterior"]
        cols = {k: np.asarray(post[k].values, dtype=float).reshape(-1) for k in self.params_}
        out = pd.DataFrame(cols)
        if n_draws is not None and n_draws < len(out):
            idx = np.linspace(0, len(out) - 1, int(n_draws)).round().astype(int)
            out = out.iloc[idx].reset_index(drop=True)
        out.index.name = "sample"
        return out

    def param_summary(self, hdi_prob: float = 0.94) -> pd.DataFrame:
        """Posterior mean, sd and HDI of each parameter."""
        from uplift.stats import hdi

        d = self.params()
        lo_hi = hdi(d.to_numpy(), hdi_prob, axis=0)
        return pd.DataFrame(
            {
                "mean": d.mean(),
                "sd": d.std(ddof=1),
                "hdi_low": lo_hi[:, 0],
                "hdi_high": lo_hi[:, 1],
            }
        )

    def diagnostics(self) -> Diagnostics | None:
        """r-hat / ESS / divergences for NUTS fits; None for Laplace (independent draws)."""
        self._require_fit()
        if self.idata.attrs.get("clv_method") != "nuts":
            return None
        return compute_diagnostics(self.idata, var_names=list(self.log_names))

    @property
    def fit_seconds(self) -> float:
        self._require_fit()
        return float(self.idata.attrs.get("clv_fit_seconds", float("nan")))


def _normal(name: str, prior: tuple[float, float], shift: float = 0.0):
    mu, sigma = (float(v) for v in prior)
    if not sigma > 0:
        raise ValueError(f"prior sigma for {name} must be > 0, got {sigma}")
    return pm.Normal(name, mu=mu + shift, sigma=sigma)


# ----------------------------------------------------------------------------------------------
# BG/NBD
# ----------------------------------------------------------------------------------------------


class BetaGeoModel(_BtydModel):
    """Bayesian BG/NBD model of repeat-purchase counts (Fader, Hardie & Lee 2005)."""

    family = "bgnbd"
    params_ = ("r", "alpha", "a", "b")
    log_names = ("log_r", "log_alpha", "log_a", "log_b")

    def __init__(
        self,
        priors: BetaGeoPriors | None = None,
        method: FitMethod = "nuts",
        sampler: SamplerSettings | None = None,
        laplace_draws: int = 2000,
    ) -> None:
        super().__init__(method=method, sampler=sampler, laplace_draws=laplace_draws)
        self.priors = priors or BetaGeoPriors()

    @property
    def time_unit(self) -> str:
        self._require_fit()
        return str(self.idata.attrs.get("clv_time_unit", "weeks"))

    def _build(self, summary: pd.DataFrame) -> tuple[pm.Model, dict[str, Any]]:
        x, tx, T = _rft(summary)
        (ux, utx, uT), w, _ = _patterns(x, tx, T)
        t_scale = float(np.mean(T)) if np.mean(T) > 0 else 1.0
        pr = self.priors
        with pm.Model() as model:
            log_r = _normal("log_r", pr.log_r)
            log_alpha = _normal("log_alpha", pr.log_alpha_rel, shift=math.log(t_scale))
            log_a = _normal("log_a", pr.log_a)
            log_b = _normal("log_b", pr.log_b)
            r = pm.Deterministic("r", pt.exp(log_r))
            alpha = pm.Deterministic("alpha", pt.exp(log_alpha))
            a = pm.Deterministic("a", pt.exp(log_a))
            b = pm.Deterministic("b", pt.exp(log_b))
            ll = bgnbd_logp(r, alpha, a, b, pt.as_tensor(ux), pt.as_tensor(utx), pt.as_tensor(uT))
            pm.Potential("loglik", pt.sum(pt.as_tensor(w) * ll))
        attrs = {
            "time_unit": check_time_unit(str(summary.attrs.get("time_unit", "weeks"))),
            "t_scale": t_scale,
            "n_customers": len(x),
            "n_patterns": len(w),
            "priors": json.dumps(asdict(pr)),
        }
        return model, attrs

    def _transform(self, log_values: dict[str, np.ndarray], attrs: Mapping[str, Any]) -> dict:
        return {k: np.exp(log_values[f"log_{k}"]) for k in self.params_}

    @staticmethod
    def max_likelihood(summary: pd.DataFrame) -> dict[str, float]:
        """Maximum-likelihood estimates (no prior) — for comparison with published MLEs.

        Returns r, alpha, a, b and ``loglik`` (the full log-likelihood, comparable with the
        literature's, e.g. -9582.4 for the CDNOW sample).
        """
        x, tx, T = _rft(summary)
        (ux, utx, uT), w, _ = _patterns(x, tx, T)
        theta = pt.dvector("theta")
        e = pt.exp(theta)
        ll = pt.sum(w * bgnbd_logp(e[0], e[1], e[2], e[3], ux, utx, uT))
        # the gradient of one cost with respect to one variable is one Variable; pytensor's
        # return hint is the union over every call form
        f = _function([theta], [-ll, -pytensor.grad(ll, theta)])  # type: ignore[operator]
        x0 = np.array([0.0, math.log(max(np.mean(T), 1e-9)), 0.0, 0.0])
        res = _minimize(f, x0)
        est = dict(zip(("r", "alpha", "a", "b"), np.exp(res.x).tolist(), strict=True))
        est["loglik"] = float(-res.fun)
        return est

    # -- predictions -----------------------------------------------------------------------
    def _grid_params(self, n_draws: int | None) -> tuple[np.ndarray, ...]:
        d = self.params(n_draws)
        return tuple(d[k].to_numpy()[:, None] for k in self.params_)

    def _horizon_in_units(self, horizon: float, time_unit: str | None) -> float:
        if time_unit is None or time_unit == self.time_unit:
            return float(horizon)
        check_time_unit(time_unit)
        return float(horizon) * DAYS_PER_UNIT[time_unit] / DAYS_PER_UNIT[self.time_unit]

    def _check_units(self, summary: pd.DataFrame) -> None:
        unit = summary.attrs.get("time_unit")
        if unit is not None and unit != self.time_unit:
            raise ValueError(
                f"summary is in {unit} but the model was fit in {self.time_unit}; rebuild the "
                f"summary with rfm_summary(..., time_unit={self.time_unit!r})"
            )

    def probability_alive(self, summary: pd.DataFrame, n_draws: int | None = 500) -> xr.DataArray:
        """P(customer still alive at T | x, t_x, T), dims ``(sample, customer)``.

        Note a BG/NBD property: dropout happens only right after a purchase, so customers with no
        repeat purchase have P(alive) = 1; their risk shows in low expected purchases instead.
        """
        self._check_units(summary)
        x, tx, T = _rft(summary)
        (ux, utx, uT), _, inv = _patterns(x, tx, T)
        r, alpha, a, b = self._grid_params(n_draws)
        pa = bgnbd_p_alive(r, alpha, a, b, ux[None], utx[None], uT[None])[:, inv]
        return _per_customer(pa, summary.index, "p_alive")

    def expected_purchases(
        self,
        summary: pd.DataFrame,
        t: float,
        n_draws: int | None = 500,
        time_unit: str | None = None,
    ) -> xr.DataArray:
        """Expected repeat purchases in the next ``t`` time units, dims ``(sample, customer)``.

        FHL (2005) eq. 10: the conditional expectation given each customer's history, i.e.
        P(alive) times what an alive customer with that history buys.
        """
        self._check_units(summary)
        t = self._horizon_in_units(t, time_unit)
        x, tx, T = _rft(summary)
        (ux, utx, uT), _, inv = _patterns(x, tx, T)
        r, alpha, a, b = self._grid_params(n_draws)
        ey = bgnbd_expected_purchases(t, r, alpha, a, b, ux[None], utx[None], uT[None])[:, inv]
        return _per_customer(ey, summary.index, "expected_purchases")


def _minimize(f, x0: np.ndarray):
    def fun(v: np.ndarray) -> tuple[float, np.ndarray]:
        val, grad = f(v)
        if not np.isfinite(val):
            return 1e300, np.zeros_like(v)
        return float(val), np.asarray(grad, dtype=float)

    res = optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", options={"maxiter": 2000})
    res = optimize.minimize(fun, res.x, jac=True, method="BFGS", options={"gtol": 1e-8})
    return res


def _per_customer(values: np.ndarray, index: pd.Index, name: str) -> xr.DataArray:
    return xr.DataArray(
        values,
        dims=("sample", "customer"),
        coords={"sample": np.arange(values.shape[0]), "customer": np.asarray(index)},
        name=name,
    )


def bgnbd_p_alive(r, alpha, a, b, x, t_x, T) -> np.ndarray:
    """P(alive | x, t_x, T) (FHL 2005 appendix); broadcasts over parameters and customers."""
    x_pos = np.maximum(x, 1.0)
    log_odds = (
        np.log(a) - np.log(b + x_pos - 1.0) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    )
    odds = np.where(x > 0, np.exp(np.minimum(log_odds, 700.0)), 0.0)
    return 1.0 / (1.0 + odds)


def bgnbd_expected_purchases_if_alive(t, r, alpha, a, b, x, T) -> np.ndarray:
    """E[purchases in (T, T+t] | alive at T, x, T]; broadcasts like numpy.

    ``(a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]``
    (FHL 2005 eq. 10 without its P(alive) factor). It is 0/0 at a = 1 exactly, so a is nudged by
    1e-7 there.
    """
    shape = np.broadcast_shapes(np.shape(r), np.shape(x), np.shape(T))
    if t == 0:
        return np.zeros(shape)
    a = np.where(np.abs(a - 1.0) < 1e-7, 1.0 + 1e-7, a)
    z = t / (alpha + T + t)
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1.0, z)
    log_ratio = (r + x) * (np.log(alpha + T) - np.log(alpha + T + t))
    bracket = 1.0 - np.exp(log_ratio) * hyp
    return np.broadcast_to((a + b + x - 1.0) / (a - 1.0) * bracket, shape)


def bgnbd_expected_purchases(t, r, alpha, a, b, x, t_x, T) -> np.ndarray:
    """E[purchases in (T, T+t] | x, t_x, T] (FHL 2005 eq. 10) = P(alive) x E[... | alive]."""
    return bgnbd_expected_purchases_if_alive(t, r, alpha, a, b, x, T) * bgnbd_p_alive(
        r, alpha, a, b, x, t_x, T
    )


def bgnbd_expected_purchases_new(t, r, alpha, a, b) -> np.ndarray:
    """E[repeat purchases in (0, t]] for a customer just acquired (FHL 2005 eq. 9)."""
    a = np.where(np.abs(a - 1.0) < 1e-7, 1.0 + 1e-7, a)
    hyp = special.hyp2f1(r, b, a + b - 1.0, t / (alpha + t))
    return (a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + t)) ** r * hyp)


# ----------------------------------------------------------------------------------------------
# Gamma-Gamma
# ----------------------------------------------------------------------------------------------


def _spend_data(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    check_summary(summary, need_monetary=True)
    x = summary["frequency"].to_numpy(dtype=float)
    m = summary["monetary_value"].to_numpy(dtype=float)
    use = (x > 0) & (m > 0)
    return x, m, use


class GammaGammaModel(_BtydModel):
    """Bayesian Gamma-Gamma model of spend per transaction, fit on repeat customers."""

    family = "gamma_gamma"
    params_ = ("p", "q", "gamma")
    log_names = ("log_p", "log_q_minus_1", "log_gamma")

    def __init__(
        self,
        priors: GammaGammaPriors | None = None,
        method: FitMethod = "nuts",
        sampler: SamplerSettings | None = None,
        laplace_draws: int = 2000,
    ) -> None:
        super().__init__(method=method, sampler=sampler, laplace_draws=laplace_draws)
        self.priors = priors or GammaGammaPriors()

    def _build(self, summary: pd.DataFrame) -> tuple[pm.Model, dict[str, Any]]:
        x, m, use = _spend_data(summary)
        if use.sum() < 2:
            raise ValueError(
                f"Gamma-Gamma needs customers with repeat purchases and positive spend; only "
                f"{int(use.sum())} of {len(x)} have both. Use a constant spend per transaction instead."
            )
        xs, ms = x[use], m[use]
        m_scale = float(np.mean(ms))
        pr = self.priors
        with pm.Model() as model:
            log_p = _normal("log_p", pr.log_p)
            log_qm1 = _normal("log_q_minus_1", pr.log_q_minus_1)
            log_gamma = _normal("log_gamma", pr.log_gamma_rel, shift=math.log(m_scale))
            p = pm.Deterministic("p", pt.exp(log_p))
            q = pm.Deterministic("q", 1.0 + pt.exp(log_qm1))
            gamma = pm.Deterministic("gamma", pt.exp(log_gamma))
            pm.Potential(
                "loglik", pt.sum(gamma_gamma_logp(p, q, gamma, pt.as_tensor(xs), pt.as_tensor(ms)))
            )
        attrs = {
            "m_scale": m_scale,
            "n_customers": len(x),
            "n_used": int(use.sum()),
            "n_excluded_zero_spend": int(((x > 0) & (m <= 0)).sum()),
            "priors": json.dumps(asdict(pr)),
        }
        return model, attrs

    def _transform(self, log_values: dict[str, np.ndarray], attrs: Mapping[str, Any]) -> dict:
        return {
            "p": np.exp(log_values["log_p"]),
            "q": 1.0 + np.exp(log_values["log_q_minus_1"]),
            "gamma": np.exp(log_values["log_gamma"]),
        }

    @staticmethod
    def max_likelihood(summary: pd.DataFrame) -> dict[str, float]:
        """Maximum-likelihood p, q, gamma and ``loglik`` (CDNOW sample: -4055.9 in the literature)."""
        x, m, use = _spend_data(summary)
        xs, ms = x[use], m[use]
        theta = pt.dvector("theta")
        e = pt.exp(theta)
        ll = pt.sum(gamma_gamma_logp(e[0], e[1], e[2], xs, ms))
        # the gradient of one cost with respect to one variable is one Variable; pytensor's
        # return hint is the union over every call form
        f = _function([theta], [-ll, -pytensor.grad(ll, theta)])  # type: ignore[operator]
        res = _minimize(f, np.array([0.0, 0.7, math.log(np.mean(ms))]))
        est = dict(zip(("p", "q", "gamma"), np.exp(res.x).tolist(), strict=True))
        est["loglik"] = float(-res.fun)
        return est

    def expected_spend(self, summary: pd.DataFrame, n_draws: int | None = 500) -> xr.DataArray:
        """E[spend per future transaction | x, mean repeat spend], dims ``(sample, customer)``.

        ``(gamma + m x) p / (p x + q - 1)``: a credibility-weighted mix of the customer's own mean
        and the population mean ``p gamma / (q - 1)`` (what customers without repeats get).
        """
        x, m, use = _spend_data(summary)
        d = self.params(n_draws)
        p, q, g = (d[k].to_numpy()[:, None] for k in ("p", "q", "gamma"))
        xu = np.where(use, x, 0.0)[None]
        mu = np.where(use, m, 0.0)[None]
        es = (g + mu * xu) * p / (p * xu + q - 1.0)
        return _per_customer(es, summary.index, "expected_spend")


# ----------------------------------------------------------------------------------------------
# CLV
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClvSettings:
    """How future purchases become money: horizon, annual discount rate, margin, time grid.

    ``horizon`` and ``step`` are in ``time_unit``; ``step`` defaults to one month. Cash flows of
    each step are discounted at its end. ``n_draws`` posterior draws are kept per customer.
    """

    horizon: float = 52.0
    time_unit: str = "weeks"
    discount_rate: float = 0.10
    margin: float = 0.30
    step: float | None = None
    n_draws: int = 200

    def __post_init__(self) -> None:
        check_time_unit(self.time_unit)
        if not self.horizon > 0:
            raise ValueError(f"clv.horizon must be > 0 ({self.time_unit}), got {self.horizon}")
        if not self.discount_rate > -1:
            raise ValueError(f"clv.discount_rate (annual) must be > -1, got {self.discount_rate}")
        if not 0 < self.margin <= 1:
            raise ValueError(f"clv.margin must be in (0, 1], got {self.margin}")
        if self.step is not None and not self.step > 0:
            raise ValueError(f"clv.step must be > 0, got {self.step}")
        if self.n_draws < 1:
            raise ValueError(f"clv.n_draws must be >= 1, got {self.n_draws}")

    def grid(self, unit: str) -> tuple[np.ndarray, np.ndarray]:
        """Step end times in ``unit`` and their discount factors."""
        scale = DAYS_PER_UNIT[self.time_unit] / DAYS_PER_UNIT[unit]
        horizon = self.horizon * scale
        step = (self.step * scale) if self.step else UNITS_PER_YEAR[unit] / 12.0
        n = max(1, math.ceil(horizon / step - 1e-9))
        times = np.minimum(np.arange(1, n + 1) * step, horizon)
        disc = (1.0 + self.discount_rate) ** (-times / UNITS_PER_YEAR[unit])
        return times, disc


def customer_value(
    purchases: BetaGeoModel,
    spend: GammaGammaModel | float,
    summary: pd.DataFrame,
    settings: ClvSettings | None = None,
) -> xr.Dataset:
    """Posterior draws per customer of purchases, P(alive), spend and discounted CLV.

    Returns a Dataset with dims ``(sample, customer)`` and variables ``expected_purchases``
    (undiscounted, over the horizon), ``discounted_purchases``, ``p_alive``, ``expected_spend``,
    ``clv`` (= margin x spend x discounted purchases) and ``clv_if_alive`` (the same for a
    customer known to be still active: ``clv = p_alive x clv_if_alive``). ``spend`` may be a constant amount per
    transaction when there is no spend data. Purchase and spend draws are paired by index (the
    two posteriors are independent).
    """
    settings = settings or ClvSettings()
    purchases._check_units(summary)
    unit = purchases.time_unit
    times, disc = settings.grid(unit)
    x, tx, T = _rft(summary)
    (ux, utx, uT), _, inv = _patterns(x, tx, T)
    r, alpha, a, b = purchases._grid_params(settings.n_draws)
    cum_alive = np.stack(
        [bgnbd_expected_purchases_if_alive(t, r, alpha, a, b, ux[None], uT[None]) for t in times]
    )  # (step, sample, pattern)
    inc = np.diff(cum_alive, axis=0, prepend=0.0)
    disc_alive = np.tensordot(disc, inc, axes=1)[:, inv]
    total_alive = cum_alive[-1][:, inv]
    p_alive = bgnbd_p_alive(r, alpha, a, b, ux[None], utx[None], uT[None])[:, inv]
    n_samples = r.shape[0]
    if isinstance(spend, GammaGammaModel):
        es = spend.expected_spend(summary, n_draws=settings.n_draws).values
        k = min(es.shape[0], n_samples)
        es, disc_alive, total_alive, p_alive = es[:k], disc_alive[:k], total_alive[:k], p_alive[:k]
    else:
        value = float(spend)
        if not value >= 0:
            raise ValueError(f"constant spend per transaction must be >= 0, got {spend}")
        es = np.full_like(disc_alive, value)
    clv_if_alive = settings.margin * es * disc_alive
    idx = summary.index
    ds = xr.Dataset(
        {
            "expected_purchases": _per_customer(total_alive * p_alive, idx, "expected_purchases"),
            "discounted_purchases": _per_customer(
                disc_alive * p_alive, idx, "discounted_purchases"
            ),
            "p_alive": _per_customer(p_alive, idx, "p_alive"),
            "expected_spend": _per_customer(es, idx, "expected_spend"),
            "clv": _per_customer(clv_if_alive * p_alive, idx, "clv"),
            "clv_if_alive": _per_customer(clv_if_alive, idx, "clv_if_alive"),
        }
    )
    ds.attrs.update({f"clv_{k}": v for k, v in asdict(settings).items() if v is not None})
    ds.attrs["clv_model_time_unit"] = unit
    return ds


def summarise_draws(draws: xr.DataArray, hdi_prob: float = 0.94) -> pd.DataFrame:
    """Per-customer mean and HDI of a ``(sample, customer)`` DataArray."""
    from uplift.stats import hdi

    v = np.asarray(draws.transpose("sample", "customer").values, dtype=float)
    lo_hi = hdi(v, hdi_prob, axis=0)
    name = draws.name or "value"
    out = pd.DataFrame(
        {name: v.mean(axis=0), f"{name}_hdi_low": lo_hi[:, 0], f"{name}_hdi_high": lo_hi[:, 1]},
        index=pd.Index(draws["customer"].values, name="customer_id"),
    )
    return out


# ----------------------------------------------------------------------------------------------
# SegmentValue adapter for the optimizer
# ----------------------------------------------------------------------------------------------


def segment_value_draws(
    clv: xr.DataArray, segments: pd.Series, statistic: Literal["mean", "median"] = "mean"
) -> xr.DataArray:
    """CLV of the segment's customers per posterior draw, dims ``(sample, segment)``.

    ``segments`` maps customer id -> segment label (the labels of ``cells['segment']``).
    """
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic={statistic!r}; use 'mean' or 'median'")
    ids = pd.Index(clv["customer"].values)
    seg = segments.reindex(ids)
    if seg.isna().all():
        raise ValueError(
            "no customer of the CLV draws has a segment: their ids (e.g. "
            f"{list(ids[:3])}) do not match the segment map's index (e.g. {list(segments.index[:3])}); "
            "index `segments` by the same customer id (check int vs str)."
        )
    known = seg.notna().to_numpy()
    v = np.asarray(clv.transpose("sample", "customer").values, dtype=float)[:, known]
    labels = seg[known].astype(str).to_numpy()
    order = sorted(set(labels))
    agg = np.mean if statistic == "mean" else np.median
    cols = [agg(v[:, labels == s], axis=1) for s in order]
    return xr.DataArray(
        np.column_stack(cols),
        dims=("sample", "segment"),
        coords={"sample": clv["sample"].values, "segment": order},
        name="segment_clv",
    )


@dataclass(frozen=True, eq=False)
class ClvValue:
    """:class:`~uplift.value.per_conversion.SegmentValue` from CLV posteriors.

    One incremental conversion is worth ``scale x`` the posterior-mean CLV of the segment's
    customers (``statistic`` = mean or median over customers). ``scale`` is the share of a
    customer's CLV the conversion creates (1 = a whole customer relationship, e.g. retention or
    reactivation). Segments in ``cells`` without customers in the CLV draws get the overall value
    (listed in ``result.attrs["fallback_segments"]``), as :class:`ObservedValue` does for sparse
    segments.
    """

    by_segment: pd.Series
    overall: float
    scale: float = 1.0
    draws: xr.DataArray | None = field(default=None, compare=False)

    @classmethod
    def from_draws(
        cls,
        clv: xr.DataArray,
        segments: pd.Series,
        *,
        statistic: Literal["mean", "median"] = "mean",
        scale: float = 1.0,
    ) -> ClvValue:
        """Build from ``customer_value(...)["clv"]`` and a customer id -> segment map."""
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        d = segment_value_draws(clv, segments, statistic)
        ids = pd.Index(clv["customer"].values)
        known = segments.reindex(ids).notna().to_numpy()
        v = np.asarray(clv.transpose("sample", "customer").values, dtype=float)[:, known]
        agg = np.mean if statistic == "mean" else np.median
        overall = float(np.mean(agg(v, axis=1)))
        by_seg = pd.Series(d.mean("sample").values, index=pd.Index(d["segment"].values))
        return cls(by_segment=by_seg, overall=overall, scale=float(scale), draws=d)

    def per_conversion(self, cells: pd.DataFrame) -> pd.Series:
        segments = sorted(cells["segment"].astype(str).unique())
        if not set(segments) & set(self.by_segment.index):
            raise ValueError(
                f"none of the experiment's segments {segments[:5]} has CLV customers (CLV "
                f"segments: {list(self.by_segment.index[:5])}); build ClvValue with the same "
                "segment labels as data.columns.segments (joined with '/')."
            )
        vals = self.by_segment.reindex(segments)
        fallback = list(vals.index[vals.isna()])
        out = (vals.fillna(self.overall) * self.scale).astype(float)
        out.index = pd.Index(segments, name="segment")
        out.name = "value_per_conversion"
        out.attrs["fallback_segments"] = fallback
        return out


# ----------------------------------------------------------------------------------------------
# Simulation (synthetic truth for checks)
# ----------------------------------------------------------------------------------------------


def simulate_bgnbd(
    n_customers: int,
    *,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T: float | np.ndarray | tuple[float, float] = (26.0, 52.0),
    holdout: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Customers drawn from the BG/NBD story with known parameters: an RFM summary with truth.

    ``T`` is a constant, an array of ages, or a (low, high) range for uniform ages. Each customer
    gets ``lambda ~ Gamma(r, rate alpha)``, ``p ~ Beta(a, b)``, buys at rate lambda from time 0
    and after each repeat purchase leaves with probability p. Returns ``frequency, recency, T``,
    ``frequency_holdout`` (purchases in (T, T + holdout]) and the latent ``lam, p, alive``.
    """
    rng = np.random.default_rng(seed)
    n = int(n_customers)
    if isinstance(T, tuple):
        ages = rng.uniform(T[0], T[1], n)
    else:
        ages = np.broadcast_to(np.asarray(T, dtype=float), (n,)).copy()
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    end = ages + holdout
    t = np.zeros(n)
    x = np.zeros(n, dtype=np.int64)
    tx = np.zeros(n)
    x_hold = np.zeros(n, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    active = np.ones(n, dtype=bool)  # alive and not past the end of observation
    while active.any():
        idx = np.flatnonzero(active)
        t[idx] += rng.exponential(1.0 / np.maximum(lam[idx], 1e-300))
        past = t[idx] > end[idx]
        active[idx[past]] = False
        buy = idx[~past]
        cal = t[buy] <= ages[buy]
        x[buy[cal]] += 1
        tx[buy[cal]] = t[buy[cal]]
        x_hold[buy[~cal]] += 1
        dies = rng.random(buy.size) < p[buy]
        alive[buy[dies]] = False
        active[buy[dies]] = False
    # alive at the end of calibration: not dropped out after any calibration purchase
    alive_at_T = alive | (x_hold > 0)
    out = pd.DataFrame(
        {
            "frequency": x,
            "recency": tx,
            "T": ages,
            "frequency_holdout": x_hold,
            "lam": lam,
            "p": p,
            "alive": alive_at_T,
        },
        index=pd.RangeIndex(n, name="customer_id"),
    )
    out.attrs["time_unit"] = "weeks"
    out.attrs["truth"] = {"r": r, "alpha": alpha, "a": a, "b": b}
    return out
