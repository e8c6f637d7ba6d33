"""Row-level Bayesian uplift on customer covariates: scores each customer, not each segment.

For a binary outcome (conversion, visit, churn) and the treated arms v of one test:

    logit p_i  = alpha + x_i' beta + sum_v d_iv (tau_v + x_i' gamma_v)
    gamma_vj   = sigma_gamma z_vj,   z_vj ~ N(0, 1),   sigma_gamma ~ HalfNormal(gamma_sigma)

``d_iv`` is 1 when customer i got treated arm v (0 for every control arm), ``x_i`` the encoded
covariates: numeric columns standardised, categorical columns one-hot against a reference level,
every column centred on the fitting rows (see :class:`CovariateEncoding`). Centring makes
``alpha`` the baseline logit and ``tau_v`` the logit effect of arm v at the average customer, so
they are nearly uncorrelated with the slopes. The interactions ``gamma`` share one scale
``sigma_gamma``: most covariate x treatment heterogeneity is small, and pooling shrinks the noise
estimates of a hundred interactions toward "no heterogeneity" unless the data insist.

Two ways to fit, chosen by ``method`` (``auto`` picks by the number of likelihood terms, and
by the rows: :data:`LAPLACE_ROWS`):

* ``exact`` (draws from ``sampler.backend``, NUTS by default): rows are aggregated to unique
  (covariate pattern, arm) cells with n customers and k successes; the Binomial(n, p) likelihood
  equals the row-level Bernoulli one up to the constant sum log C(n, k) (tested), so NUTS costs
  cells, not rows (20,000 rows with banded covariates: 62 s on 1,579 cells vs 325 s on rows, same
  posterior). Hillstrom with banded history has 7,015 cells for 64,000 rows; with continuous
  covariates cells ~ rows.
* ``approximate``: a nested (INLA-style) Laplace approximation. Given sigma_gamma the posterior of
  (alpha, beta, tau, gamma) is a logistic regression with a Gaussian prior: log-concave, so Newton
  finds its mode in a few steps and a Gaussian at the mode fits it well once each coefficient sees
  hundreds of customers. sigma_gamma, the one parameter that is not near-Gaussian, is integrated
  numerically over a grid of log sigma_gamma weighted by the Laplace marginal likelihood. Chosen
  over ADVI by measurement against NUTS on rows (``bench/covariate_fit.py``: 20,000 rows with
  continuous covariates, 2 treated arms, 8 interactions; NUTS 4 x 1000 draws took 475 s on a busy
  2-core machine). Laplace took 0.8 s; its posterior means of tau and gamma were within 0.05 NUTS
  sds, its sds within 3%, customer scores within 0.075 posterior sd. Mean-field ADVI (30,000
  full-batch steps, 52 s) understated the sds of tau by 30% and moved gammas by up to 0.22 sd;
  with ``pm.Minibatch`` (33 s) gammas moved by up to 0.40 sd; full-rank ADVI (51 s) overstated
  sds by up to 33%. The catch: a single interaction scale (one hyperparameter to integrate) and
  enough data per coefficient for the Gaussian to hold. Every fit checks the latter: each draw
  carries its log joint density and the approximation's log density, and
  :meth:`CovariateUpliftModel.diagnostics` reports the PSIS k-hat of their ratio (measured 0.58
  on 600 synthetic rows, 0.39 on 3,000, 0.18 on 20,000, 0.09 for Hillstrom visits; the gate
  rejects above 0.7, then refit with ``method="exact"``).

Unseen categorical levels at scoring time raise by default (``unseen="error"``): scoring a level
the model never saw as if it were the reference level silently invents an effect. Pass
``unseen="reference"`` to score such customers as the reference level anyway.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Self

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy.linalg import cho_solve, cholesky, solve_triangular
from scipy.special import expit

from uplift.data.contract import CustomerData, DataValidationError
from uplift.models.diagnostics import Diagnostics, compute_diagnostics
from uplift.models.persist import SavedModel
from uplift.models.sampling import SamplerSettings
from uplift.models.settings import CovariatePriors

FAMILY = "covariate_logit"
METHODS = ("auto", "exact", "approximate")
UNSEEN = ("error", "reference")
POSTERIOR_VARS = ["intercept", "beta", "tau", "gamma", "sigma_gamma"]
#: from this many rows ``method='auto'`` fits by the nested Laplace approximation even when the
#: patterns are few: the data pin the interactions down, which makes the Gaussian at the mode
#: accurate and NUTS's non-centred scale a funnel (bench/customer_targets.py, 200k customers,
#: tenure and visits: NUTS 4-21 divergences in each of 5 tactics at ~25 s each, Laplace k-hat
#: 0.23-0.32 in 0.6 s; k-hat 0.18 at 20,000 rows, 0.09 on Hillstrom's 64,000)
LAPLACE_ROWS = 50_000
# draws x arms x patterns computed at once when scoring (~32 MB of float64)
_CHUNK_ELEMENTS = 4_000_000


def _fail(msg: str) -> None:
    raise DataValidationError(msg)


def _examples(values: Sequence[object], k: int = 5) -> str:
    vals = list(dict.fromkeys(values))
    shown = ", ".join(repr(v) for v in vals[:k])
    return shown + (f", ... ({len(vals)} distinct)" if len(vals) > k else "")


def _plain(value: object) -> object:
    """numpy scalars as Python ones, so messages read 1.0 rather than np.float64(1.0)."""
    return value.item() if isinstance(value, np.generic) else value


def _check_columns(rows: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Every covariate column exists and has no missing value."""
    if not isinstance(rows, pd.DataFrame):
        raise TypeError(f"rows must be a pandas DataFrame, got {type(rows).__name__}")
    if len(rows) == 0:
        _fail(f"no rows to {what}: the customer table is empty")
    missing = [c for c in columns if c not in rows.columns]
    if missing:
        _fail(
            f"covariate column(s) {missing} (model.covariates) not in the rows; available: "
            f"{list(map(str, rows.columns))}. Add them or remove them from covariates."
        )
    for c in columns:
        na = rows[c].isna()
        if na.any():
            _fail(
                f"covariate {c!r} has {int(na.sum())} missing value(s) (NaN), e.g. at rows "
                f"{_examples(rows.index[na].tolist())}. Impute or drop those rows before {what}."
            )


@dataclass(frozen=True)
class CovariateEncoding:
    """How raw covariate columns become the design matrix, stored so new rows score identically.

    Numeric: ``(x - mean) / sd`` with the fitting rows' mean and sd. Categorical: one 0/1 column per
    non-reference level minus that level's share in the fitting rows (centred). The reference is
    the most frequent level (ties: the first in sorted order), so shrinking an interaction toward
    0 pulls a rarer level's effect toward the commonest customer's, not toward an arbitrary one.
    Levels are compared as strings.
    """

    specs: tuple[dict[str, Any], ...]

    @property
    def columns(self) -> list[str]:
        return [s["column"] for s in self.specs]

    @property
    def terms(self) -> list[str]:
        out: list[str] = []
        for s in self.specs:
            if s["kind"] == "numeric":
                out.append(s["column"])
            else:
                out += [f"{s['column']}[{lv}]" for lv in s["levels"] if lv != s["reference"]]
        return out

    @classmethod
    def fit(
        cls,
        rows: pd.DataFrame,
        covariates: Sequence[str],
        categorical: Sequence[str] | None = None,
        max_levels: int = 20,
    ) -> CovariateEncoding:
        """Learn means, sds and levels from ``rows``; raise on a column that cannot be encoded."""
        _check_columns(rows, covariates, "fitting")
        specs = []
        for c in covariates:
            s = rows[c]
            is_cat = (
                c in categorical
                if categorical is not None
                else not pd.api.types.is_numeric_dtype(s)
            )
            n_unique = int(s.nunique())
            if n_unique < 2:
                _fail(
                    f"covariate {c!r} has a single value {_plain(s.iloc[0])!r} in the fitting "
                    "rows, so it carries no information; remove it from model.covariates."
                )
            if is_cat:
                if n_unique > max_levels:
                    _fail(
                        f"categorical covariate {c!r} has {n_unique} levels (> max_levels="
                        f"{max_levels}): too many one-hot columns to estimate. Band it into "
                        "fewer levels (e.g. data.derive bins or a mapping), treat it as numeric, "
                        "or raise max_levels."
                    )
                counts = s.astype(str).value_counts()
                levels = sorted(counts.index.tolist())
                top = int(counts.max())
                reference = min(lv for lv in levels if counts[lv] == top)
                shares = [float(counts[lv] / len(s)) for lv in levels if lv != reference]
                specs.append(
                    {
                        "column": c,
                        "kind": "categorical",
                        "levels": levels,
                        "reference": reference,
                        "centres": shares,
                    }
                )
            else:
                x = cls._numeric(s, c)
                if not np.isfinite(x).all():
                    bad = s[~np.isfinite(x)]
                    _fail(
                        f"covariate {c!r} has infinite value(s) {_examples(bad.tolist())}; "
                        "fix or drop those rows."
                    )
                specs.append(
                    {"column": c, "kind": "numeric", "mean": float(x.mean()), "sd": float(x.std())}
                )
        return cls(tuple(specs))

    @staticmethod
    def _numeric(s: pd.Series, c: str) -> np.ndarray:
        if pd.api.types.is_bool_dtype(s):
            return s.to_numpy(dtype=np.float64)
        if not pd.api.types.is_numeric_dtype(s):
            _fail(
                f"covariate {c!r} is numeric in the model but holds non-numeric values "
                f"{_examples(s.astype(str).tolist())} (dtype {s.dtype}); list it in "
                "categorical=[...] or convert it to numbers."
            )
        return s.to_numpy(dtype=np.float64)

    def transform(
        self,
        rows: pd.DataFrame,
        unseen: str = "error",  # one of UNSEEN (checked)
    ) -> np.ndarray:
        """Design matrix ``(len(rows), len(terms))`` for ``rows`` with the stored encoding."""
        if unseen not in UNSEEN:
            raise ValueError(f"unseen must be one of {UNSEEN}, got {unseen!r}")
        _check_columns(rows, self.columns, "scoring")
        blocks = []
        for s in self.specs:
            col = rows[s["column"]]
            if s["kind"] == "numeric":
                x = self._numeric(col, s["column"])
                if not np.isfinite(x).all():
                    _fail(f"covariate {s['column']!r} has infinite values; fix or drop those rows.")
                blocks.append(((x - s["mean"]) / s["sd"])[:, None])
                continue
            vals = col.astype(str).to_numpy()
            others = [lv for lv in s["levels"] if lv != s["reference"]]
            new = sorted(set(np.unique(vals)) - set(s["levels"]))
            if new and unseen == "error":
                _fail(
                    f"covariate {s['column']!r} has level(s) {_examples(new)} that the model never "
                    f"saw (fitted levels: {s['levels']}). Map them to a fitted level, refit with "
                    "them, or pass unseen='reference' to score them as the reference level "
                    f"{s['reference']!r}."
                )
            onehot = (vals[:, None] == np.asarray(others, dtype=object)[None, :]).astype(float)
            blocks.append(onehot - np.asarray(s["centres"])[None, :])
        return np.hstack(blocks) if blocks else np.zeros((len(rows), 0))

    def to_json(self) -> str:
        return json.dumps(list(self.specs))

    @classmethod
    def from_json(cls, text: str) -> CovariateEncoding:
        return cls(tuple(json.loads(text)))


@dataclass
class PatternCells:
    """Unique (covariate pattern, arm) cells: the exact data of the Binomial likelihood."""

    X: np.ndarray  # (cells, terms) encoded covariates
    arm: np.ndarray  # (cells,) treated-arm index, -1 for control
    n: np.ndarray  # customers
    k: np.ndarray  # successes

    def __len__(self) -> int:
        return len(self.n)


def unique_rows(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of ``A`` and each row's position among them (hashing, not sorting).

    Same result as ``np.unique(A, axis=0, return_inverse=True)`` up to the order of the distinct
    rows, several times faster on tens of thousands of rows.
    """
    if A.shape[1] == 0:
        return A[:1], np.zeros(len(A), dtype=np.int64)
    frame = pd.DataFrame(A)
    inv = frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy(dtype=np.int64)
    _, first = np.unique(inv, return_index=True)
    return A[first], inv


def aggregate_patterns(X: np.ndarray, arm: np.ndarray, y: np.ndarray) -> PatternCells:
    """Collapse rows with identical encoded covariates and arm into (n, k) cells.

    Identical raw values encode to identical floats, so grouping the encoded rows is exact.
    """
    uniq, inv = unique_rows(np.column_stack([np.asarray(arm, dtype=np.float64), X]))
    n = np.bincount(inv, minlength=len(uniq)).astype(np.int64)
    k = np.bincount(inv, weights=np.asarray(y, dtype=np.float64), minlength=len(uniq))
    return PatternCells(
        X=uniq[:, 1:], arm=uniq[:, 0].astype(np.int64), n=n, k=np.rint(k).astype(np.int64)
    )


def treatment_design(arm: np.ndarray, n_arms: int) -> np.ndarray:
    """One-hot ``d_iv`` of the treated arm (all zeros for control rows)."""
    arm = np.asarray(arm)
    return (arm[:, None] == np.arange(n_arms)[None, :]).astype(np.float64)


def full_design(X: np.ndarray, arm: np.ndarray, n_arms: int) -> np.ndarray:
    """``[1, x, d, d_1 x, ..., d_V x]``: the columns of theta = (alpha, beta, tau, gamma)."""
    D = treatment_design(arm, n_arms)
    inter = (D[:, :, None] * X[:, None, :]).reshape(len(X), -1)
    return np.hstack([np.ones((len(X), 1)), X, D, inter])


def build_pymc_model(
    X: np.ndarray,
    arm: np.ndarray,
    y: np.ndarray,
    terms: Sequence[str],
    arms: Sequence[str],
    priors: CovariatePriors,
    n: np.ndarray | None = None,
) -> pm.Model:
    """The PyMC model: Binomial(n, p) on cells when ``n`` is given, Bernoulli on rows otherwise.

    Data enter as ``pm.Data`` (numbers stay out of the compiled graph). Interactions are
    non-centred: with most of them near 0 the centred form funnels.
    """
    D = treatment_design(arm, len(arms))
    with pm.Model(coords={"term": list(terms), "arm": list(arms)}) as model:
        Xd = pm.Data("X", np.asarray(X, dtype=np.float64))
        Dd = pm.Data("D", D)
        alpha = pm.Normal("intercept", priors.intercept_mu, priors.intercept_sd)
        beta = pm.Normal("beta", 0.0, priors.beta_sd, dims="term")
        tau = pm.Normal("tau", 0.0, priors.tau_sd, dims="arm")
        sigma = pm.HalfNormal("sigma_gamma", priors.gamma_sigma)
        z = pm.Normal("gamma_z", 0.0, 1.0, dims=("arm", "term"))
        gamma = pm.Deterministic("gamma", sigma * z, dims=("arm", "term"))
        eta = alpha + pt.dot(Xd, beta) + pt.dot(Dd, tau) + pt.sum(Dd * pt.dot(Xd, gamma.T), axis=1)
        if n is None:
            pm.Bernoulli("y", logit_p=eta, observed=pm.Data("y_obs", np.asarray(y, dtype=np.int64)))
        else:
            pm.Binomial(
                "y",
                n=pm.Data("n", np.asarray(n, dtype=np.int64)),
                logit_p=eta,
                observed=pm.Data("k", np.asarray(y, dtype=np.int64)),
            )
    return model


# ---------------------------------------------------------------- nested Laplace approximation


def binomial_loglik(eta: np.ndarray, n: np.ndarray, k: np.ndarray) -> float:
    """sum k eta - n log(1 + e^eta): the Binomial log-likelihood without log C(n, k)."""
    return float(np.sum(k * eta - n * np.logaddexp(0.0, eta)))


@dataclass
class _Mode:
    theta: np.ndarray
    chol: np.ndarray  # lower Cholesky factor of the negative Hessian at the mode
    log_post: float  # log p(log sigma | y) up to a constant


def _newton(
    Z: np.ndarray,
    n: np.ndarray,
    k: np.ndarray,
    mean: np.ndarray,
    prec: np.ndarray,
    theta: np.ndarray,
    max_iter: int = 100,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Mode of a logistic regression with prior N(mean, diag(1/prec)), by damped Newton.

    Returns the mode, the objective there (negative log joint without constants) and the Cholesky
    factor of the Hessian. The objective is strictly convex, so this cannot stop at a wrong mode.
    """

    def objective(t: np.ndarray) -> float:
        return -binomial_loglik(Z @ t, n, k) + 0.5 * float(np.sum(prec * (t - mean) ** 2))

    f = objective(theta)
    for _ in range(max_iter):
        p = expit(Z @ theta)
        grad = Z.T @ (n * p - k) + prec * (theta - mean)
        H = (Z.T * (n * p * (1 - p))) @ Z
        H[np.diag_indices_from(H)] += prec
        L = cholesky(H, lower=True)
        step = cho_solve((L, True), grad)
        decrement = float(grad @ step)
        if decrement < 1e-10:
            return theta, f, L
        t = 1.0
        while True:
            new = theta - t * step
            f_new = objective(new)
            if f_new <= f - 1e-4 * t * decrement or t < 1e-8:
                break
            t *= 0.5
        theta, f = new, f_new
    raise RuntimeError(
        "Laplace approximation: Newton's method did not converge in "
        f"{max_iter} iterations (last decrement {decrement:.3g}); try method='exact'"
    )


def _single_threaded_blas():
    """One BLAS thread: Newton multiplies thin matrices (cells x ~50 columns), where OpenBLAS
    threads only contend. Measured on a busy 2-core machine: 0.25 s -> 0.005 s per Hessian of a
    7,015 x 45 design."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(1, user_api="blas")


class _NestedLaplace:
    """Gaussian approximations of theta | sigma_gamma on a grid of log sigma_gamma."""

    def __init__(self, cells: PatternCells, n_arms: int, priors: CovariatePriors) -> None:
        self.d, self.n_arms = cells.X.shape[1], n_arms
        if self.d == 0:
            raise ValueError("the model has no interaction terms: give at least one covariate")
        self.Z = full_design(cells.X, cells.arm, n_arms)
        self.n, self.k = cells.n.astype(np.float64), cells.k.astype(np.float64)
        self.p = self.Z.shape[1]
        self.n_gamma = n_arms * self.d
        self.mean = np.zeros(self.p)
        self.mean[0] = priors.intercept_mu
        self.base_prec = np.concatenate(
            [
                [priors.intercept_sd**-2],
                np.full(self.d, priors.beta_sd**-2),
                np.full(n_arms, priors.tau_sd**-2),
                np.zeros(self.n_gamma),
            ]
        )
        rate = np.clip(self.k.sum() / self.n.sum(), 1e-4, 1 - 1e-4)
        self.start = np.zeros(self.p)
        self.start[0] = np.log(rate / (1 - rate))
        self.s = priors.gamma_sigma

    def at(self, u: float, theta0: np.ndarray) -> _Mode:
        """Mode, curvature and log p(u | y) + const at u = log sigma_gamma."""
        prec = self.base_prec.copy()
        prec[self.p - self.n_gamma :] = np.exp(-2.0 * u)
        theta, f, L = _newton(self.Z, self.n, self.k, self.mean, prec, theta0)
        # Laplace: log p(y | u) = -f(mode) + 1/2 log|prior precision| - 1/2 log|Hessian|
        log_marginal = -f + 0.5 * float(np.sum(np.log(prec))) - float(np.sum(np.log(np.diag(L))))
        log_prior = -0.5 * np.exp(2.0 * u) / self.s**2 + u  # HalfNormal(s) on e^u, x d sigma/du
        return _Mode(theta, L, log_marginal + log_prior)

    def log_joint(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """log p(y, theta, u) up to a constant, per draw (rows of ``theta``, entries of ``u``):
        the target of the importance ratios that judge the approximation."""
        loglik = np.empty(len(theta))
        step = max(1, _CHUNK_ELEMENTS // max(len(self.Z), 1))  # cells x draws can be big
        for a in range(0, len(theta), step):
            eta = self.Z @ theta[a : a + step].T
            loglik[a : a + step] = self.k @ eta - self.n @ np.logaddexp(0.0, eta)
        g = slice(self.p - self.n_gamma, self.p)
        fixed = self.base_prec[: self.p - self.n_gamma]
        dev = theta - self.mean
        log_prior = -0.5 * np.sum(fixed * dev[:, : g.start] ** 2, axis=1)
        log_prior += -0.5 * np.sum(dev[:, g] ** 2, axis=1) * np.exp(-2 * u) - self.n_gamma * u
        log_prior += -0.5 * np.exp(2 * u) / self.s**2 + u  # HalfNormal on e^u, Jacobian of log
        return loglik + log_prior

    def scan(self, us: np.ndarray) -> list[_Mode]:
        out, theta0 = [], self.start
        for u in us[::-1]:  # from wide to narrow prior: each mode warm-starts the next
            out.append(self.at(float(u), theta0))
            theta0 = out[-1].theta
        return out[::-1]

    def grid(self, size: int) -> tuple[np.ndarray, list[_Mode]]:
        """A coarse scan over the prior's range (extended if the data push past it), then
        ``size`` points over the region within e^-12 of the maximum."""
        ls = float(np.log(self.s))
        coarse = np.arange(ls - 9.0, ls + 2.51, 0.5)
        modes = self.scan(coarse)
        lp = np.array([m.log_post for m in modes])
        while np.argmax(lp) == len(lp) - 1 and coarse[-1] < ls + 8:
            coarse = np.append(coarse, coarse[-1] + 0.5)
            modes.append(self.at(float(coarse[-1]), modes[-1].theta))
            lp = np.append(lp, modes[-1].log_post)
        inside = np.flatnonzero(lp > lp.max() - 12.0)
        lo = coarse[max(inside[0] - 1, 0)]
        hi = coarse[min(inside[-1] + 1, len(coarse) - 1)]
        fine = np.linspace(lo, hi, size)
        return fine, self.scan(fine)


def laplace_fit(
    cells: PatternCells,
    n_arms: int,
    priors: CovariatePriors,
    n_draws: int,
    seed: int,
    grid_size: int = 25,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Posterior draws of (alpha, beta, tau, gamma, sigma_gamma) by nested Laplace.

    For each log sigma_gamma on a grid, theta | sigma_gamma is approximated by the Gaussian at its
    mode, and p(log sigma_gamma | y) by the Laplace marginal likelihood times the prior. Draws pick
    a grid point by weight (sigma_gamma jittered uniformly within its grid cell), then theta from
    that point's Gaussian. Returns the draws (flat, ``n_draws`` each); per draw the log joint
    density ``lp`` and the approximation's log density ``log_q`` (their difference is the
    importance ratio whose Pareto k-hat says whether to trust the approximation); and the grid
    (log sigma, log posterior, weight) for inspection.
    """
    lap = _NestedLaplace(cells, n_arms, priors)
    with _single_threaded_blas():
        fine, modes = lap.grid(grid_size)
        lp = np.array([m.log_post for m in modes])
        w = np.exp(lp - lp.max())
        w /= w.sum()
        rng = np.random.default_rng(seed)
        pick = rng.choice(grid_size, size=n_draws, p=w)
        theta = np.empty((n_draws, lap.p))
        log_q = np.empty(n_draws)
        for j in np.unique(pick):
            at = np.flatnonzero(pick == j)
            z = rng.standard_normal((lap.p, len(at)))
            # theta = mode + L^-T z has covariance (L L^T)^-1 = Hessian^-1
            theta[at] = modes[j].theta + solve_triangular(modes[j].chol.T, z, lower=False).T
            log_det = float(np.sum(np.log(np.diag(modes[j].chol))))
            log_q[at] = np.log(w[j]) + log_det - 0.5 * np.sum(z**2, axis=0)
        step = fine[1] - fine[0]
        u = fine[pick] + rng.uniform(-step / 2, step / 2, size=n_draws)
        log_q -= np.log(step) + 0.5 * lap.p * np.log(2 * np.pi)
        log_joint = lap.log_joint(theta, u)
    d = lap.d
    draws = {
        "intercept": theta[:, 0],
        "beta": theta[:, 1 : 1 + d],
        "tau": theta[:, 1 + d : 1 + d + n_arms],
        "gamma": theta[:, 1 + d + n_arms :].reshape(n_draws, n_arms, d),
        "sigma_gamma": np.exp(u),
    }
    stats = {"lp": log_joint, "log_q": log_q}
    return draws, stats, {"log_sigma": fine, "log_posterior": lp, "weight": w}


# ---------------------------------------------------------------- scoring helpers


def _hdi(sorted_draws: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Narrowest interval holding ``prob`` of the draws, per column (draws sorted on axis 0)."""
    s = sorted_draws.shape[0]
    inc = int(np.floor(prob * s))
    widths = sorted_draws[inc:] - sorted_draws[: s - inc]
    j = np.argmin(widths, axis=0)
    cols = np.arange(sorted_draws.shape[1])
    return sorted_draws[j, cols], sorted_draws[j + inc, cols]


class CovariateUpliftModel(SavedModel):
    """Bayesian CATE model for a binary outcome on customer covariates (module docstring).

    ``covariates``: raw columns used as x. ``categorical``: which of them to one-hot (default: the
    non-numeric ones). ``max_patterns``: above this many (pattern, arm) cells ``method='auto'``
    switches from NUTS to the nested Laplace approximation (as it does from
    :data:`LAPLACE_ROWS` rows). ``max_levels``: most levels a
    categorical may have. ``unseen``: what scoring does with a level absent at fit time.
    """

    family = FAMILY

    def __init__(
        self,
        covariates: Sequence[str],
        categorical: Sequence[str] | None = None,
        priors: CovariatePriors | None = None,
        sampler: SamplerSettings | None = None,
        max_patterns: int = 5000,
        method: str = "auto",  # one of METHODS (checked)
        max_levels: int = 20,
        unseen: str = "error",  # one of UNSEEN (checked)
    ) -> None:
        if isinstance(covariates, str) or not covariates:
            raise ValueError(
                f"covariates must be a non-empty list of column names, got {covariates!r}"
            )
        self.covariates = [str(c) for c in covariates]
        dup = sorted({c for c in self.covariates if self.covariates.count(c) > 1})
        if dup:
            raise ValueError(f"covariates lists {dup} more than once")
        if categorical is not None:
            if isinstance(categorical, str):
                raise ValueError(f"categorical must be a list of column names, got {categorical!r}")
            extra = sorted(set(categorical) - set(self.covariates))
            if extra:
                raise ValueError(
                    f"categorical names {extra}, which are not in covariates {self.covariates}; "
                    "add them to covariates or drop them from categorical"
                )
            categorical = [str(c) for c in categorical]
        self.categorical = categorical
        self.priors = priors or CovariatePriors()
        self.sampler = sampler or SamplerSettings()
        if isinstance(max_patterns, bool) or not isinstance(max_patterns, int) or max_patterns < 1:
            raise ValueError(f"max_patterns must be an integer >= 1, got {max_patterns!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if isinstance(max_levels, bool) or not isinstance(max_levels, int) or max_levels < 2:
            raise ValueError(f"max_levels must be an integer >= 2, got {max_levels!r}")
        if unseen not in UNSEEN:
            raise ValueError(f"unseen must be one of {UNSEEN}, got {unseen!r}")
        self.max_patterns = max_patterns
        self.method = method
        self.max_levels = max_levels
        self.unseen = unseen
        self.idata: Any = None
        self.encoding: CovariateEncoding | None = None
        self.arms: list[str] = []
        self.control_arms: list[str] = []
        self.outcome: str | None = None
        self.arm_col: str | None = None
        self.tactic: str | None = None
        self.fit_info: dict[str, Any] = {}

    # ---- fitting -----------------------------------------------------------------------------
    def model_config(self) -> dict[str, Any]:
        return {
            "covariates": self.covariates,
            "categorical": self.categorical,
            "priors": asdict(self.priors),
            "max_patterns": self.max_patterns,
            "method": self.method,
            "max_levels": self.max_levels,
            "unseen": self.unseen,
            "arms": self.arms,
            "control_arms": self.control_arms,
            "outcome": self.outcome,
            "arm_col": self.arm_col,
            "tactic": self.tactic,
            "fit_info": self.fit_info,
        }

    def _resolve_arms(
        self,
        rows: pd.DataFrame,
        arm_col: str,
        control_arms: Sequence[str] | None,
        treated_arms: Sequence[str] | None,
    ) -> tuple[list[str], list[str], np.ndarray]:
        if arm_col not in rows.columns:
            _fail(
                f"arm column {arm_col!r} (arm_col) not in the rows; available: "
                f"{list(map(str, rows.columns))}. Pass arm_col=<your column>."
            )
        arms = rows[arm_col]
        if arms.isna().any():
            _fail(f"arm column {arm_col!r} has {int(arms.isna().sum())} missing value(s)")
        arms = arms.astype(str)
        present = set(arms.unique())
        if not control_arms or isinstance(control_arms, str):
            raise ValueError(
                f"control_arms must be a non-empty list of arm names, got {control_arms!r} "
                f"(arms in the data: {sorted(present)})"
            )
        control = [str(a) for a in control_arms]
        treated = (
            sorted(present - set(control))
            if treated_arms is None
            else [str(a) for a in treated_arms]
        )
        if isinstance(treated_arms, str) or not treated:
            raise ValueError(
                f"treated_arms must be a non-empty list of arm names, got {treated_arms!r}"
            )
        both = sorted(set(control) & set(treated))
        if both:
            raise ValueError(f"arm(s) {both} are in both control_arms and treated_arms")
        absent = [a for a in control + treated if a not in present]
        if absent:
            _fail(
                f"arm(s) {absent} have no rows in column {arm_col!r} (arms present: "
                f"{sorted(present)}); fix control_arms/treated_arms or the arm labels."
            )
        unknown = sorted(present - set(control) - set(treated))
        if unknown:
            _fail(
                f"column {arm_col!r} has arm value(s) {_examples(unknown)} in neither control_arms "
                f"{control} nor treated_arms {treated}. Add them to one of the two, or drop "
                "those rows."
            )
        pos = {a: i for i, a in enumerate(treated)} | {a: -1 for a in control}
        return control, treated, arms.map(pos).to_numpy(dtype=np.int64)

    @staticmethod
    def _binary(rows: pd.DataFrame, outcome: str) -> np.ndarray:
        if outcome not in rows.columns:
            _fail(
                f"outcome column {outcome!r} not in the rows; available: "
                f"{list(map(str, rows.columns))}. Pass outcome=<your 0/1 column>."
            )
        y = rows[outcome]
        if y.isna().any():
            _fail(
                f"outcome {outcome!r} has {int(y.isna().sum())} missing value(s); drop those rows"
            )
        if pd.api.types.is_bool_dtype(y):
            return y.to_numpy(dtype=np.int64)
        ok = pd.api.types.is_numeric_dtype(y) and y.isin([0, 1]).all()
        if not ok:
            bad = y[~y.isin([0, 1])] if pd.api.types.is_numeric_dtype(y) else y
            _fail(
                f"outcome {outcome!r} must be binary 0/1 (this model is for conversion, visit, "
                f"churn); found {_examples(bad.tolist())}. Recode it as 1 = event, 0 = none, or "
                "use a revenue/count model for non-binary outcomes."
            )
        return y.to_numpy(dtype=np.int64)

    def fit(
        self,
        rows: pd.DataFrame | CustomerData,
        outcome: str = "converted",
        arm_col: str = "arm",
        control_arms: Sequence[str] | None = None,
        treated_arms: Sequence[str] | None = None,
        tactic: str | None = None,
    ) -> Self:
        """Validate, encode and fit. Everything is checked before any sampling starts.

        ``rows`` may be :class:`~uplift.data.contract.CustomerData`: then the control arm comes
        from its arm map and the treated arms default to those of ``tactic`` (or all treated arms).
        """
        if isinstance(rows, CustomerData):
            amap = rows.arm_map
            control_arms = control_arms or [amap.control.name]
            if treated_arms is None:
                treated_arms = [
                    a.name
                    for a in amap.arms
                    if not a.is_control and (tactic is None or a.tactic.value == tactic)
                ]
                if not treated_arms:
                    raise ValueError(f"no arm of tactic {tactic!r} in the arm map")
            if tactic is not None:
                rows = rows.frame[rows.frame["arm"].isin([*control_arms, *treated_arms])]
            else:
                rows = rows.frame
        if not isinstance(rows, pd.DataFrame):
            raise TypeError(f"rows must be a pandas DataFrame, got {type(rows).__name__}")
        if len(rows) == 0:
            _fail("no rows to fit: the customer table is empty")
        y = self._binary(rows, outcome)
        control, treated, arm_idx = self._resolve_arms(rows, arm_col, control_arms, treated_arms)
        encoding = CovariateEncoding.fit(rows, self.covariates, self.categorical, self.max_levels)
        X = encoding.transform(rows)
        cells = aggregate_patterns(X, arm_idx, y)
        method = self.method
        if method == "auto":
            few = len(cells) <= self.max_patterns and len(rows) < LAPLACE_ROWS
            method = "exact" if few else "approximate"

        self.encoding, self.arms, self.control_arms = encoding, treated, control
        self.outcome, self.arm_col, self.tactic = outcome, arm_col, tactic
        terms = encoding.terms
        seed = self.sampler.seed_for("covariate", outcome)
        t0 = time.perf_counter()
        if method == "exact":
            model = build_pymc_model(
                cells.X, cells.arm, cells.k, terms, treated, self.priors, cells.n
            )
            idata = self._sample(model, seed)
        else:
            idata = self._laplace(cells, terms, seed)
        self.fit_info = {
            "method": method,
            "backend": str(self.sampler.backend) if method == "exact" else "laplace",
            "rows": len(rows),
            "patterns": len(cells),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        self.idata = idata
        self._stamp()
        return self

    def _saved_attrs(self) -> dict[str, Any]:
        return {
            "uplift_metric": self.outcome,
            "uplift_tactic": self.tactic or "",
            "uplift_encoding": self.encoding.to_json() if self.encoding else "",
        }

    def _sample(self, model: pm.Model, seed: int) -> Any:
        from uplift.models.sampling import sample, sample_nutpie

        if self.sampler.backend == "nutpie":
            return sample_nutpie(model, self.sampler, seed)
        return sample(model, self.sampler, seed=seed)

    def _laplace(self, cells: PatternCells, terms: list[str], seed: int) -> Any:
        chains, draws = self.sampler.chains, self.sampler.draws
        flat, stats, grid = laplace_fit(cells, len(self.arms), self.priors, chains * draws, seed)
        shaped = {k: v.reshape(chains, draws, *v.shape[1:]) for k, v in flat.items()}
        tree = az.from_dict(
            {
                "posterior": shaped,
                "sample_stats": {k: v.reshape(chains, draws) for k, v in stats.items()},
            },
            dims={"beta": ["term"], "tau": ["arm"], "gamma": ["arm", "term"]},
            coords={"term": terms, "arm": self.arms},
        )
        # read by compute_diagnostics: PSIS k-hat of lp - log_q judges the approximation
        tree.attrs["inference_method"] = "laplace"
        tree["laplace_grid"] = xr.Dataset(
            {k: ("grid", v) for k, v in grid.items() if k != "log_sigma"},
            coords={"log_sigma": ("grid", grid["log_sigma"])},
        )
        return tree

    # ---- outputs -----------------------------------------------------------------------------
    def _require_fit(self) -> None:
        if self.idata is None or self.encoding is None:
            raise RuntimeError(
                "CovariateUpliftModel is not fitted: call fit(rows, outcome=..., "
                "control_arms=[...]) first"
            )

    @property
    def method_used(self) -> str | None:
        return self.fit_info.get("method")

    @property
    def passed_gate(self) -> bool:
        """False when the pipeline's gate check left ``fit_info["gate_failures"]``: such a fit
        scores no customer for a decision or a held-out ranking."""
        return not self.fit_info.get("gate_failures")

    def posterior_arrays(self) -> dict[str, np.ndarray]:
        """Draws flattened over (chain, draw): intercept (S,), beta (S, d), tau (S, V),
        gamma (S, V, d), sigma_gamma (S,)."""
        self._require_fit()
        post = self.idata["posterior"]
        out = {}
        for name in POSTERIOR_VARS:
            v = post[name].stack(sample=("chain", "draw"))
            v = v.transpose("sample", *[d for d in v.dims if d != "sample"])
            if "arm" in v.dims:
                v = v.sel(arm=self.arms)
            out[name] = np.ascontiguousarray(v.values, dtype=np.float64)
        return out

    def _patterns(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Unique encoded covariate patterns of ``rows`` and each row's pattern index."""
        self._require_fit()
        assert self.encoding is not None  # _require_fit raised otherwise
        return unique_rows(self.encoding.transform(rows, self.unseen))

    def _uplift_chunks(
        self, Xp: np.ndarray, max_draws: int | None = None
    ) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
        """Per chunk of patterns: (slice, uplift draws (S, V, c), control probability (S, c)).

        ``max_draws`` thins the posterior evenly for scoring: with a continuous covariate
        every customer is a pattern (64,000 x 8,000 draws x 2 arms took 96 s on Hillstrom),
        and 1,000 draws put the Monte Carlo error of a score at ~3% of its posterior sd.
        """
        post = self.posterior_arrays()
        total = post["tau"].shape[0]
        if max_draws is not None and total > max_draws:
            keep = np.linspace(0, total - 1, max_draws).round().astype(int)
            post = {k: v[keep] for k, v in post.items()}
        s, v = post["tau"].shape
        step = max(1, _CHUNK_ELEMENTS // (s * (v + 1)))
        for a in range(0, len(Xp), step):
            sl = slice(a, min(a + step, len(Xp)))
            Xc = Xp[sl]
            eta0 = post["intercept"][:, None] + post["beta"] @ Xc.T
            eff = post["tau"][:, :, None] + np.einsum("svd,cd->svc", post["gamma"], Xc)
            p0 = expit(eta0)
            yield sl, expit(eta0[:, None, :] + eff) - p0[:, None, :], p0

    @staticmethod
    def _ids(rows: pd.DataFrame, id_col: str | None) -> np.ndarray:
        if id_col is not None and id_col in rows.columns:
            return rows[id_col].to_numpy()
        return rows.index.to_numpy()

    def predict_uplift(
        self,
        rows: pd.DataFrame,
        hdi_prob: float = 0.9,
        id_col: str | None = "customer_id",
        max_draws: int | None = 1000,
    ) -> pd.DataFrame:
        """Posterior of each customer's uplift ``p(treated arm) - p(control)``, per treated arm.

        One row per customer x treated arm (customers in input order): ``customer`` (the
        ``id_col`` value, or the row index when that column is absent), ``arm``, ``uplift_mean``,
        ``uplift_sd``, ``uplift_low``/``uplift_high`` (HDI of ``hdi_prob``), ``prob_positive``,
        ``p_control_mean``. Computed once per distinct covariate pattern, from at most
        ``max_draws`` evenly thinned posterior draws (None: all).
        """
        if not isinstance(hdi_prob, float | int) or not 0 < hdi_prob < 1:
            raise ValueError(f"hdi_prob must be in (0, 1), got {hdi_prob!r}")
        Xp, inv = self._patterns(rows)
        v = len(self.arms)
        stats = {k: np.empty((len(Xp), v)) for k in ("mean", "sd", "low", "high", "pos")}
        base = np.empty(len(Xp))
        for sl, up, p0 in self._uplift_chunks(Xp, max_draws):
            stats["mean"][sl] = up.mean(axis=0).T
            stats["sd"][sl] = up.std(axis=0, ddof=1).T
            stats["pos"][sl] = (up > 0).mean(axis=0).T
            flat = np.sort(up.reshape(up.shape[0], -1), axis=0)
            lo, hi = _hdi(flat, float(hdi_prob))
            stats["low"][sl] = lo.reshape(v, -1).T
            stats["high"][sl] = hi.reshape(v, -1).T
            base[sl] = p0.mean(axis=0)
        ids = self._ids(rows, id_col)
        return pd.DataFrame(
            {
                "customer": np.repeat(ids, v),
                "arm": np.tile(np.asarray(self.arms, dtype=object), len(ids)),
                "uplift_mean": stats["mean"][inv].ravel(),
                "uplift_sd": stats["sd"][inv].ravel(),
                "uplift_low": stats["low"][inv].ravel(),
                "uplift_high": stats["high"][inv].ravel(),
                "prob_positive": stats["pos"][inv].ravel(),
                "p_control_mean": np.repeat(base[inv], v),
            }
        )

    def score(
        self, rows: pd.DataFrame, id_col: str | None = "customer_id", max_draws: int | None = 1000
    ) -> pd.DataFrame:
        """Posterior-mean uplift per customer (rows, indexed like ``predict_uplift``'s
        ``customer``) x treated arm (columns): the number to rank customers by."""
        Xp, inv = self._patterns(rows)
        mean = np.empty((len(Xp), len(self.arms)))
        for sl, up, _ in self._uplift_chunks(Xp, max_draws):
            mean[sl] = up.mean(axis=0).T
        index = pd.Index(self._ids(rows, id_col), name="customer")
        return pd.DataFrame(mean[inv], index=index, columns=pd.Index(self.arms, name="arm"))

    def segment_uplift_draws(
        self, rows: pd.DataFrame, segment_col: str, max_draws: int | None = None
    ) -> xr.DataArray:
        """Posterior of each segment's average uplift over its customers in ``rows``.

        Dims ``(sample, arm, segment)`` like the cell models' ``uplift_draws``, so the budget
        optimizer can take it. This is the effect on these customers (a conditional average
        treatment effect), not on a hypothetical new population. ``max_draws``: at most that
        many evenly thinned posterior draws (None: all; the cost is customers x draws).
        """
        if segment_col not in rows.columns:
            _fail(
                f"segment column {segment_col!r} not in the rows; available: "
                f"{list(map(str, rows.columns))}"
            )
        seg = rows[segment_col]
        if seg.isna().any():
            _fail(f"segment column {segment_col!r} has {int(seg.isna().sum())} missing values")
        return self._group_average(rows, seg.astype(str).to_numpy(), max_draws)

    def average_uplift_draws(self, rows: pd.DataFrame) -> xr.DataArray:
        """Posterior of the average uplift over all of ``rows``, dims ``(sample, arm)``."""
        return self._group_average(rows, np.zeros(len(rows), dtype=int)).isel(segment=0, drop=True)

    def _group_average(
        self, rows: pd.DataFrame, labels: np.ndarray, max_draws: int | None = None
    ) -> xr.DataArray:
        segments, seg_idx = np.unique(labels, return_inverse=True)
        Xp, inv = self._patterns(rows)
        W = np.zeros((len(Xp), len(segments)))
        np.add.at(W, (inv, seg_idx.ravel()), 1.0)
        W /= W.sum(axis=0, keepdims=True)
        total = self.posterior_arrays()["tau"].shape[0]
        draws = total if max_draws is None else min(total, max_draws)  # as _uplift_chunks thins
        out = np.zeros((draws, len(self.arms), len(segments)))
        for sl, up, _ in self._uplift_chunks(Xp, max_draws):
            out += up @ W[sl]
        return xr.DataArray(
            out,
            dims=("sample", "arm", "segment"),
            coords={"arm": list(self.arms), "segment": [str(g) for g in segments]},
            name="uplift",
        )

    def diagnostics(self) -> Diagnostics:
        """r-hat, ESS and divergences of a NUTS fit over the model's parameters; for an
        ``approximate`` fit ``method="laplace"`` and the PSIS k-hat of p/q over its draws
        (r-hat/ESS of independent draws say nothing about the approximation)."""
        self._require_fit()
        return compute_diagnostics(self.idata, var_names=POSTERIOR_VARS)

    # ---- persistence -------------------------------------------------------------------------
    # save and load: SavedModel (netCDF; the encoding and fitted arms in attrs, no pickle);
    # a loaded model scores exactly as before
    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        obj = cls(
            covariates=config["covariates"],
            categorical=config["categorical"],
            priors=CovariatePriors(**config["priors"]),
            max_patterns=config["max_patterns"],
            method=config["method"],
            max_levels=config["max_levels"],
            unseen=config["unseen"],
        )
        obj.arms, obj.control_arms = list(config["arms"]), list(config["control_arms"])
        obj.outcome, obj.arm_col, obj.tactic = (
            config["outcome"],
            config["arm_col"],
            config["tactic"],
        )
        obj.fit_info = dict(config["fit_info"])
        return obj

    def _restore(self, idata: Any) -> None:
        self.encoding = CovariateEncoding.from_json(idata.attrs["uplift_encoding"])


# ---------------------------------------------------------------- ground truth for tests/benches


@dataclass(frozen=True)
class CovariateExperiment:
    """Synthetic rows with known individual effects: ``true_uplift`` (rows x treated arms) is
    ``p_treated - p_control`` per customer, ``true_logit_effect`` the same on the logit scale."""

    rows: pd.DataFrame
    true_p_control: np.ndarray
    true_uplift: pd.DataFrame
    true_logit_effect: pd.DataFrame
    arms: tuple[str, ...] = ("email_a", "email_b")
    control: str = "control"


def simulate_covariate_experiment(
    n: int, seed: int, coarse: bool = False, effect_scale: float = 1.0
) -> CovariateExperiment:
    """A 3-arm randomised test with covariate x treatment interactions of known size.

    Covariates: ``age`` ~ N(40, 12), ``tenure`` ~ Exponential(3) years, ``region`` in
    north/south/west (50/30/20%). Baseline logit ``-1.6 + 0.02 (age-40) - 0.1 tenure`` plus
    region shifts. Logit effects: email_a ``0.35 + 0.025 (age-40) + 0.4 [west]`` (older and western
    customers respond more), email_b ``0.2 - 0.12 (tenure-3) - 0.3 [south]``; ``effect_scale``
    multiplies the heterogeneity (0 = the same effect for everyone). ``coarse`` rounds age to 5
    years and tenure to whole years (the truth uses the rounded values), so rows collapse to a few
    thousand (pattern, arm) cells.
    """
    rng = np.random.default_rng(seed)
    age = rng.normal(40.0, 12.0, n)
    tenure = rng.exponential(3.0, n)
    if coarse:
        age, tenure = 5.0 * np.round(age / 5.0), np.round(tenure)
    region = rng.choice(np.array(["north", "south", "west"], dtype=object), n, p=[0.5, 0.3, 0.2])
    arm = rng.choice(np.array(["control", "email_a", "email_b"], dtype=object), n)
    west, south = (region == "west").astype(float), (region == "south").astype(float)
    base = -1.6 + 0.02 * (age - 40) - 0.1 * tenure + 0.3 * south - 0.2 * west
    eff_a = 0.35 + effect_scale * (0.025 * (age - 40) + 0.4 * west)
    eff_b = 0.2 + effect_scale * (-0.12 * (tenure - 3.0) - 0.3 * south)
    p0 = expit(base)
    logit_eff = pd.DataFrame({"email_a": eff_a, "email_b": eff_b})
    uplift = pd.DataFrame(
        {"email_a": expit(base + eff_a) - p0, "email_b": expit(base + eff_b) - p0}
    )
    eta = base + np.where(arm == "email_a", eff_a, 0.0) + np.where(arm == "email_b", eff_b, 0.0)
    y = (rng.uniform(size=n) < expit(eta)).astype(np.int64)
    rows = pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1),
            "age": age,
            "tenure": tenure,
            "region": region.astype(str),
            "arm": arm.astype(str),
            "converted": y,
        }
    )
    return CovariateExperiment(rows, p0, uplift, logit_eff)
