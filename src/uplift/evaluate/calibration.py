"""Proof of calibration: seeded coverage studies of each model family against synthetic truth.

A Bayesian 90% interval is only worth optimising over if, across many experiments, it covers the
true effect about 90% of the time. Each replication of a study draws a fresh experiment whose true
segment effects come from a population (so partial pooling is the right tool), but never from the
model's own prior: baselines uniform on the probability scale (2-15%), uplifts a skewed (gamma)
multiple of an arm-level relative lift with 10% exact zeros (0-3 pp), spends, dispersions and
elasticities uniform. Segment sizes are log-uniform, so some cells hold only ~100 customers.
``lift="additive"`` is a stress variant: uplifts in pp independent of the baseline (a 2% segment
may gain as much as a 15% one), heavy-tailed on the logit scale the models pool on.

The truth of a cell is the expected incremental metric per treated customer *given the segment's
true parameters* (e.g. ``p_treated - p_control``), on the scale of the family's
``uplift_draws()``; not the sample difference, which carries the cell's own sampling noise.

    exp = simulate("binomial", seed=1)            # rows, cells and exact per-cell truth
    table = coverage_study("binomial", replications=20, seed=1)
    summarize_coverage(table)                     # coverage, its SEs, MAE, width, diagnostics
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from uplift.data import ColumnMap, CustomerData, aggregate_cells, validate_customers
from uplift.data.synthetic_price import (
    generate_price_test,
    price_arm_map,
    price_label,
    price_mapping,
)
from uplift.models.base import UpliftModel
from uplift.models.families import FAMILIES as _REGISTRY
from uplift.models.families import binomial, hurdle_lognormal, negative_binomial, price_logit
from uplift.models.sampling import SamplerSettings
from uplift.tactics import ArmMap

#: the families studied (all registered ones), in the order that seeds their studies
FAMILIES = tuple(_REGISTRY)
#: tactic each family's synthetic experiment tests (any treated tactic would do)
TACTICS = {name: f.calibration_tactic for name, f in _REGISTRY.items()}
#: the diagnostics gate of ``conf/optimize/budget.yaml`` (a fit failing it is not used); as in
#: :meth:`~uplift.models.diagnostics.Diagnostics.failures`, tail ESS must reach ``ess_bulk_min`` too
GATE = {"r_hat_max": 1.01, "ess_bulk_min": 400.0, "divergences_max": 0}
#: control share, then treated arms' shares (unequal on purpose), for 1 or 2 treated arms
ARM_SHARES = {1: (0.35, 0.65), 2: (0.3, 0.4, 0.3)}
PRICES = (8.0, 9.0, 10.0, 11.0, 12.0)
CURRENT_PRICE = 10.0
#: default number of segments and treated arms per family (fixed within a study, so nutpie reuses
#: one compiled graph where the model allows it)
DEFAULT_DESIGN = {name: dict(f.design) for name, f in _REGISTRY.items()}


@dataclass(frozen=True)
class CalibrationExperiment:
    """One synthetic experiment: validated rows, their cells, and the exact truth per cell.

    ``truth`` has one row per (treated arm, segment): ``arm, segment, truth`` (the expected
    incremental metric per treated customer, the scale of ``uplift_draws()``) plus the true
    parameters behind it. ``prices`` is set for price tests (arm -> price).
    """

    family: str
    tactic: str
    data: CustomerData
    cells: pd.DataFrame
    truth: pd.DataFrame
    prices: dict[str, float] | None = None

    def model(self, sampler: SamplerSettings | None = None) -> UpliftModel:
        """The family's model with default priors, as the pipeline builds it (:func:`make_model`)."""
        return make_model(self, sampler)

    def truth_matrix(self, arms: list[str], segments: list[str]) -> np.ndarray:
        """Truth as an (arm, segment) array in the given label order."""
        t = self.truth.set_index(["arm", "segment"])["truth"]
        idx = pd.MultiIndex.from_product([arms, segments], names=["arm", "segment"])
        vals = t.reindex(idx)
        if vals.isna().any():
            raise ValueError(f"no truth for (arm, segment) {list(idx[vals.isna().to_numpy()])[:3]}")
        return vals.to_numpy().reshape(len(arms), len(segments))


def _check_design(n_segments: int, n_arms: int | None, size_range: tuple[float, float]) -> None:
    if not 2 <= n_segments <= 500:
        raise ValueError(
            f"n_segments must be in [2, 500] (partial pooling needs >= 2), got {n_segments}"
        )
    if n_arms is not None and n_arms not in ARM_SHARES:
        raise ValueError(f"n_arms must be 1 or 2 treated arms, got {n_arms}")
    low, high = size_range
    if not 50 <= low <= high:
        raise ValueError(
            f"size_range must be (low, high) customers per segment with 50 <= low <= high, "
            f"got {size_range}"
        )


def _segments(n: int) -> list[str]:
    return [f"s{i:02d}" for i in range(1, n + 1)]


def _arm_map(tactic: str, n_arms: int) -> ArmMap:
    arms = {"control": {"tactic": "control", "cost": 0.0}}
    for i in range(n_arms):
        arms[f"{tactic}_{chr(ord('a') + i)}"] = {"tactic": tactic, "cost": 1.0 + 0.5 * i}
    return ArmMap.from_mapping(arms)


def _cell_layout(
    rng: np.random.Generator, n_segments: int, n_arms: int, size_range: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Customers per (segment, arm incl. control) and each row's (segment, arm) index.

    Segment sizes are log-uniform over ``size_range``; every cell gets its share (rounded), at
    least 5 customers, so every cell exists whatever the seed.
    """
    low, high = size_range
    sizes = np.exp(rng.uniform(np.log(low), np.log(high), n_segments))
    shares = np.asarray(ARM_SHARES[n_arms])
    n = np.maximum(np.round(sizes[:, None] * shares[None, :]).astype(np.int64), 5)
    flat = np.repeat(np.arange(n.size), n.ravel())
    return n, flat


def _rows(
    data: dict[str, np.ndarray],
    seg_idx: np.ndarray,
    arm_idx: np.ndarray,
    arm_map: ArmMap,
    n_segments: int,
) -> pd.DataFrame:
    names = np.array([arm_map.control.name, *[a.name for a in arm_map.treated]], dtype=object)
    segs = np.array(_segments(n_segments), dtype=object)
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, len(seg_idx) + 1),
            "segment": segs[seg_idx].astype(str),
            "arm": names[arm_idx].astype(str),
            **data,
        }
    )


LIFTS = ("relative", "additive")


def _uplift_pp(rng: np.random.Generator, p0: np.ndarray, n_arms: int, lift: str) -> np.ndarray:
    """Uplifts on the probability scale, (arm, segment), within 0-3 pp, 10% exactly 0.

    ``relative``: p0 x (arm's mean relative lift 5-25%) x Gamma(2, 1/2) (mean 1, sd 0.71, skewed);
    ``additive``: the arm's mean uplift 0.4-1.6 pp x the same multiplier, whatever the baseline.
    """
    if lift not in LIFTS:
        raise ValueError(f"lift must be one of {list(LIFTS)}, got {lift!r}")
    n_segments = len(p0)
    spread = rng.gamma(2.0, 0.5, (n_arms, n_segments))
    if lift == "relative":
        up = p0[None, :] * rng.uniform(0.05, 0.25, n_arms)[:, None] * spread
    else:
        up = rng.uniform(0.004, 0.016, n_arms)[:, None] * spread
    up = np.minimum(up, 0.03)
    return np.where(rng.random((n_arms, n_segments)) < 0.1, 0.0, up)


def _truth_frame(arm_map: ArmMap, segments: list[str], truth: np.ndarray, **params) -> pd.DataFrame:
    arms = [a.name for a in arm_map.treated]
    out = pd.DataFrame(
        {
            "arm": np.repeat(arms, len(segments)),
            "segment": np.tile(segments, len(arms)),
            "truth": truth.ravel(),
        }
    )
    for k, v in params.items():
        v = np.asarray(v, dtype=float)
        out[k] = np.tile(v, len(arms)) if v.ndim == 1 else v.ravel()
    return out


def simulate_conversion(
    seed: int | list[int],
    n_segments: int = 24,
    n_arms: int = 2,
    size_range: tuple[float, float] = (400.0, 12_000.0),
    lift: str = "relative",
) -> CalibrationExperiment:
    """Binary conversion: baseline 2-15% per segment, uplift 0-3 pp (truth = p1 - p0)."""
    _check_design(n_segments, n_arms, size_range)
    rng = np.random.default_rng(seed)
    tactic = binomial.FAMILY.calibration_tactic
    arm_map = _arm_map(tactic, n_arms)
    p0 = rng.uniform(0.02, 0.15, n_segments)
    up = _uplift_pp(rng, p0, n_arms, lift)
    p = np.column_stack([p0, (p0[None, :] + up).T])  # (segment, arm incl. control)
    n, flat = _cell_layout(rng, n_segments, n_arms, size_range)
    seg_idx, arm_idx = np.divmod(flat, n_arms + 1)
    converted = (rng.random(flat.size) < p[seg_idx, arm_idx]).astype(np.int64)
    rows = _rows({"converted": converted}, seg_idx, arm_idx, arm_map, n_segments)
    data = validate_customers(rows, ColumnMap(revenue=None, orders=None), arm_map)
    segments = _segments(n_segments)
    truth = _truth_frame(
        arm_map, segments, up, p_control=p0, p_treated=p0[None, :] + up, n=n[:, 1:].T
    )
    return CalibrationExperiment(binomial.NAME, tactic, data, aggregate_cells(data), truth)


def simulate_revenue(
    seed: int | list[int],
    n_segments: int = 16,
    n_arms: int = 2,
    size_range: tuple[float, float] = (400.0, 12_000.0),
    lift: str = "relative",
) -> CalibrationExperiment:
    """Hurdle revenue: buy with prob. 2-15% (+0-3 pp), buyers spend LogNormal(m, s) averaging
    30-150 per segment, treatment shifts log spend by -6% to +11%. Truth = p1 E1 - p0 E0."""
    _check_design(n_segments, n_arms, size_range)
    rng = np.random.default_rng(seed)
    tactic = hurdle_lognormal.FAMILY.calibration_tactic
    arm_map = _arm_map(tactic, n_arms)
    p0 = rng.uniform(0.02, 0.15, n_segments)
    up = _uplift_pp(rng, p0, n_arms, lift)
    spend0 = rng.uniform(30.0, 150.0, n_segments)  # mean spend per buyer, control
    s = rng.uniform(0.5, 1.1, n_segments)
    m = np.log(spend0) - s**2 / 2
    shift = rng.uniform(0.0, 0.05, n_arms)[:, None] + rng.uniform(-0.06, 0.06, (n_arms, n_segments))
    p1 = p0[None, :] + up
    spend1 = np.exp(m[None, :] + shift + s[None, :] ** 2 / 2)
    n, flat = _cell_layout(rng, n_segments, n_arms, size_range)
    seg_idx, arm_idx = np.divmod(flat, n_arms + 1)
    p = np.column_stack([p0, p1.T])
    mu = np.column_stack([m, (m[None, :] + shift).T])
    buy = rng.random(flat.size) < p[seg_idx, arm_idx]
    spend = np.exp(rng.normal(mu[seg_idx, arm_idx], s[seg_idx]))
    revenue = np.where(buy, spend, 0.0)
    rows = _rows(
        {"converted": buy.astype(np.int64), "revenue": revenue},
        seg_idx,
        arm_idx,
        arm_map,
        n_segments,
    )
    data = validate_customers(rows, ColumnMap(orders=None), arm_map)
    truth = _truth_frame(
        arm_map,
        _segments(n_segments),
        p1 * spend1 - (p0 * spend0)[None, :],
        p_control=p0,
        p_treated=p1,
        spend_control=spend0,
        spend_treated=spend1,
        spend_sd=s,
        n=n[:, 1:].T,
    )
    return CalibrationExperiment(hurdle_lognormal.NAME, tactic, data, aggregate_cells(data), truth)


def simulate_counts(
    seed: int | list[int],
    n_segments: int = 20,
    n_arms: int = 2,
    size_range: tuple[float, float] = (500.0, 15_000.0),
) -> CalibrationExperiment:
    """Orders per customer ~ NegBinomial(mu, alpha): mu 0.05-0.5 and alpha 0.3-3 (log-uniform)
    per segment, treatment lifts mu by 0-30% (skewed). Truth = mu1 - mu0 orders per customer."""
    _check_design(n_segments, n_arms, size_range)
    rng = np.random.default_rng(seed)
    tactic = negative_binomial.FAMILY.calibration_tactic
    arm_map = _arm_map(tactic, n_arms)
    mu0 = np.exp(rng.uniform(np.log(0.05), np.log(0.5), n_segments))
    alpha = np.exp(rng.uniform(np.log(0.3), np.log(3.0), n_segments))
    lift = rng.uniform(0.03, 0.12, n_arms)[:, None] * rng.gamma(2.0, 0.5, (n_arms, n_segments))
    lift = np.where(rng.random((n_arms, n_segments)) < 0.1, 0.0, np.minimum(lift, 0.3))
    mu1 = mu0[None, :] * (1 + lift)
    n, flat = _cell_layout(rng, n_segments, n_arms, size_range)
    seg_idx, arm_idx = np.divmod(flat, n_arms + 1)
    mu = np.column_stack([mu0, mu1.T])[seg_idx, arm_idx]
    a = alpha[seg_idx]
    orders = rng.negative_binomial(a, a / (a + mu)).astype(np.int64)  # var = mu + mu^2 / alpha
    rows = _rows(
        {"converted": (orders > 0).astype(np.int64), "orders": orders},
        seg_idx,
        arm_idx,
        arm_map,
        n_segments,
    )
    data = validate_customers(rows, ColumnMap(revenue=None), arm_map)
    truth = _truth_frame(
        arm_map,
        _segments(n_segments),
        mu1 - mu0[None, :],
        mu_control=mu0,
        mu_treated=mu1,
        alpha=alpha,
        n=n[:, 1:].T,
    )
    return CalibrationExperiment(negative_binomial.NAME, tactic, data, aggregate_cells(data), truth)


def simulate_price(
    seed: int | list[int],
    n_segments: int = 24,
    size_range: tuple[float, float] = (500.0, 8_000.0),
    prices: tuple[float, ...] = PRICES,
    current_price: float = CURRENT_PRICE,
) -> CalibrationExperiment:
    """Price test: purchase 2-15% at today's price, elasticity b uniform in [-4, -1] per segment,
    customers randomized evenly over ``prices``. Truth (the price model's ``uplift_draws``) =
    P(buy at the arm's price) - P(buy at today's price)."""
    _check_design(n_segments, None, size_range)
    rng = np.random.default_rng(seed)
    segments = _segments(n_segments)
    p_now = rng.uniform(0.02, 0.15, n_segments)
    a = np.log(p_now / (1 - p_now))  # purchase logit at today's price (the reference)
    b = -rng.uniform(1.0, 4.0, n_segments)
    log_lo, log_hi = np.log(size_range)
    sizes = np.exp(rng.uniform(log_lo, log_hi, n_segments))
    customers, ptruth = generate_price_test(
        segments,
        list(prices),
        current_price,
        int(round(sizes.sum())),
        a,
        b,
        seed=int(rng.integers(2**31)),
        segment_shares=sizes / sizes.sum(),
    )
    arm_map = price_arm_map(list(prices), current_price)
    data = validate_customers(customers, ColumnMap(), arm_map)
    treated = [p for p in prices if price_label(p) != price_label(current_price)]
    p_arm = ptruth[[price_label(p) for p in treated]].to_numpy().T  # (arm, segment)
    p_ctl = ptruth[price_label(current_price)].to_numpy()
    truth = pd.DataFrame(
        {
            "arm": np.repeat([price_label(p) for p in treated], n_segments),
            "segment": np.tile(segments, len(treated)),
            "truth": (p_arm - p_ctl[None, :]).ravel(),
            "p_control": np.tile(p_ctl, len(treated)),
            "p_treated": p_arm.ravel(),
            "a": np.tile(a, len(treated)),
            "b": np.tile(b, len(treated)),
        }
    )
    cells = aggregate_cells(data)
    n = cells.set_index(["arm", "segment"])["n"]
    truth["n"] = n.reindex(pd.MultiIndex.from_frame(truth[["arm", "segment"]])).to_numpy()
    return CalibrationExperiment(
        price_logit.NAME,
        price_logit.FAMILY.calibration_tactic,
        data,
        cells,
        truth,
        price_mapping(list(prices)),
    )


#: family -> the function simulating its experiments (``Family.simulator`` names it)
SIMULATORS = {name: globals()[f.simulator] for name, f in _REGISTRY.items()}


def _check_family(family: str) -> None:
    if family not in SIMULATORS:
        raise ValueError(f"family must be one of {list(FAMILIES)}, got {family!r}")


def simulate(family: str, seed: int | list[int], **kwargs) -> CalibrationExperiment:
    """A synthetic experiment with exact truth for ``family`` (see the ``simulate_*`` functions)."""
    _check_family(family)
    if _REGISTRY[family].prices:
        kwargs.pop("n_arms", None)  # arms of a price test are its prices
    return SIMULATORS[family](seed, **kwargs)


def make_model(exp: CalibrationExperiment, sampler: SamplerSettings | None = None) -> UpliftModel:
    """The family's model with its default priors and parameterization.

    These are what the pipeline builds for such data: its ``parameterization: auto`` centres
    baselines when the median control cell holds >= 4 events (here dozens), effects stay
    non-centred, and the price model is centred in both.
    """
    return _REGISTRY[exp.family].default_model(exp.data, exp.prices, sampler)


def naive_effects(exp: CalibrationExperiment) -> pd.DataFrame:
    """Unpooled per-cell difference in sample means and its standard error, on the truth's scale.

    The no-pooling baseline a hierarchical model should beat on error; also lets tests check that
    sample differences converge to the truth as cells grow.
    """
    metric = _REGISTRY[exp.family].naive_columns
    c = exp.cells.copy()
    s1, s2 = c[metric[0]].astype(float), c[metric[1]].astype(float)
    c["mean"] = s1 / c["n"]
    c["var"] = np.maximum(s2 / c["n"] - c["mean"] ** 2, 0.0) / np.maximum(c["n"] - 1, 1)
    ctl = c[c["tactic"] == "control"].set_index("segment")
    trt = c[c["tactic"] == exp.tactic]
    est = trt["mean"].to_numpy() - ctl["mean"].reindex(trt["segment"]).to_numpy()
    se = np.sqrt(trt["var"].to_numpy() + ctl["var"].reindex(trt["segment"]).to_numpy())
    out = pd.DataFrame(
        {"arm": trt["arm"].to_numpy(), "segment": trt["segment"].to_numpy(), "estimate": est}
    )
    out["se"] = se
    return out.merge(exp.truth[["arm", "segment", "truth"]], on=["arm", "segment"], how="left")


def _fit_one(
    exp: CalibrationExperiment, sampler: SamplerSettings, interval: float, replication: int
) -> pd.DataFrame:
    t0 = time.perf_counter()
    model = make_model(exp, sampler).fit(exp.cells, exp.tactic)
    seconds = time.perf_counter() - t0
    draws = model.uplift_draws()
    arms = [str(a) for a in draws["arm"].values]
    segments = [str(s) for s in draws["segment"].values]
    v = np.asarray(draws.values)
    tail = (1.0 - interval) / 2
    low, high = np.quantile(v, [tail, 1.0 - tail], axis=0)
    truth = exp.truth_matrix(arms, segments)
    naive = naive_effects(exp).set_index(["arm", "segment"])["estimate"]
    diag = model.diagnostics()
    out = pd.DataFrame(
        {
            "family": exp.family,
            "replication": replication,
            "arm": np.repeat(arms, len(segments)),
            "segment": np.tile(segments, len(arms)),
            "truth": truth.ravel(),
            "mean": v.mean(axis=0).ravel(),
            "low": low.ravel(),
            "high": high.ravel(),
        }
    )
    out["covered"] = (out["low"] <= out["truth"]) & (out["truth"] <= out["high"])
    out["naive"] = naive.reindex(pd.MultiIndex.from_frame(out[["arm", "segment"]])).to_numpy()
    n = exp.truth.set_index(["arm", "segment"])["n"]
    out["n"] = n.reindex(pd.MultiIndex.from_frame(out[["arm", "segment"]])).to_numpy()
    out["r_hat_max"] = diag.r_hat_max
    out["ess_bulk_min"] = diag.ess_bulk_min
    out["ess_tail_min"] = diag.ess_tail_min
    out["divergences"] = diag.divergences
    out["seconds"] = seconds
    return out


def coverage_study(
    family: str,
    replications: int = 20,
    seed: int = 0,
    sampler: SamplerSettings | None = None,
    interval: float = 0.9,
    **simulate_kwargs,
) -> pd.DataFrame:
    """Fit ``family`` on ``replications`` fresh synthetic experiments and score its intervals.

    Returns one row per (replication, arm, segment): ``truth``, posterior ``mean``, equal-tailed
    ``low``/``high`` at ``interval``, ``covered``, the unpooled ``naive`` estimate, the treated
    cell's size ``n``, and the replication's diagnostics and fit ``seconds`` (repeated per row).
    Data seeds are ``[seed, family index, replication]``; sampler seeds derive from
    ``sampler.seed`` and the replication, so a study is reproducible end to end.
    """
    _check_family(family)
    if replications < 1:
        raise ValueError(f"replications must be >= 1, got {replications}")
    if not 0.0 < interval < 1.0:
        raise ValueError(f"interval must be in (0, 1), e.g. 0.9; got {interval}")
    sampler = sampler or SamplerSettings(draws=1000, tune=1000, chains=4, seed=seed)
    kwargs = DEFAULT_DESIGN[family] | simulate_kwargs
    tables = []
    for r in range(replications):
        exp = simulate(family, [seed, FAMILIES.index(family), r], **kwargs)
        rep_sampler = replace(sampler, seed=sampler.seed_for(r))
        tables.append(_fit_one(exp, rep_sampler, interval, r))
    return pd.concat(tables, ignore_index=True)


@dataclass(frozen=True)
class CoverageSummary:
    """What a coverage study shows.

    ``se_between`` (sd of per-replication coverage / sqrt(replications)) is the honest SE of
    ``coverage``: cells of one replication share hyper-parameters, so their misses are correlated
    and ``se_binomial`` (independent cells) understates the uncertainty. ``bias`` is the mean of
    posterior mean - truth, ``bias_se`` its between-replication SE.
    """

    family: str
    replications: int
    cells: int
    coverage: float
    se_binomial: float
    se_between: float
    rep_min: float
    rep_max: float
    mae: float
    mae_naive: float
    bias: float
    bias_se: float
    effect_scale: float
    width: float
    r_hat_max: float
    ess_bulk_min: float
    divergences: int
    diag_fail_share: float
    seconds: float

    def within(self, low: float = 0.85, high: float = 0.95) -> bool:
        """Whether coverage lies in ``[low, high]`` (the issue's 85-95% for 90% intervals)."""
        return low <= self.coverage <= high

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


REQUIRED_COLUMNS = ("replication", "truth", "mean", "low", "high", "covered")
DIAGNOSTIC_COLUMNS = ("r_hat_max", "ess_bulk_min", "divergences")


def _check_table(table: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"coverage table lacks columns {missing}; build it with coverage_study")
    if table.empty:
        raise ValueError("coverage table is empty: run at least one replication")


def _between_se(per_rep: pd.Series) -> float:
    return float(per_rep.std(ddof=1) / np.sqrt(len(per_rep))) if len(per_rep) > 1 else float("nan")


def summarize_coverage(table: pd.DataFrame, gate: dict | None = None) -> CoverageSummary:
    """Coverage (with binomial and between-replication SEs), per-replication range, MAE of the
    posterior mean vs the truth (and of the naive estimate), bias, mean interval width, diagnostics.

    ``effect_scale`` is the mean |truth|, the yardstick for MAE. A replication fails diagnostics
    when it fails ``gate`` (default :data:`GATE`, the optimizer's: r-hat <= 1.01, bulk and tail
    ESS >= 400, no divergences). Diagnostics (``ess_tail_min`` included), ``naive`` and
    ``seconds`` columns are optional (NaN if absent).
    """
    _check_table(table)
    unknown = sorted(set(gate or {}) - set(GATE))
    if unknown:
        raise ValueError(f"gate keys {unknown} are unknown; use {sorted(GATE)}")
    gate = GATE | (gate or {})
    covered = table["covered"].astype(bool)
    c = float(covered.mean())
    rep = table["replication"]
    per_rep = covered.groupby(rep).mean()
    err = table["mean"] - table["truth"]
    by_rep = table.groupby("replication").first()
    nan = float("nan")
    if set(DIAGNOSTIC_COLUMNS) <= set(table.columns):
        failed = (
            ~(by_rep["r_hat_max"] <= gate["r_hat_max"])  # NaN r-hat fails too
            | ~(by_rep["ess_bulk_min"] >= gate["ess_bulk_min"])
            | (by_rep["divergences"] > gate["divergences_max"])
        )
        if "ess_tail_min" in by_rep.columns:
            failed |= ~(by_rep["ess_tail_min"] >= gate["ess_bulk_min"])
        r_hat, ess = float(by_rep["r_hat_max"].max()), float(by_rep["ess_bulk_min"].min())
        div, fail = int(by_rep["divergences"].sum()), float(failed.mean())
    else:
        r_hat, ess, div, fail = nan, nan, 0, nan
    has = table.columns
    return CoverageSummary(
        family=str(table["family"].iloc[0]) if "family" in has else "",
        replications=len(per_rep),
        cells=len(table),
        coverage=c,
        se_binomial=float(np.sqrt(c * (1 - c) / len(table))),
        se_between=_between_se(per_rep),
        rep_min=float(per_rep.min()),
        rep_max=float(per_rep.max()),
        mae=float(err.abs().mean()),
        mae_naive=float((table["naive"] - table["truth"]).abs().mean()) if "naive" in has else nan,
        bias=float(err.mean()),
        bias_se=_between_se(err.groupby(rep).mean()),
        effect_scale=float(table["truth"].abs().mean()),
        width=float((table["high"] - table["low"]).mean()),
        r_hat_max=r_hat,
        ess_bulk_min=ess,
        divergences=div,
        diag_fail_share=fail,
        seconds=float(by_rep["seconds"].sum()) if "seconds" in has else nan,
    )


def coverage_breakdown(table: pd.DataFrame, by: str = "truth", bins: int = 4) -> pd.DataFrame:
    """Coverage and where the misses fall, per quantile bin of ``by`` (e.g. ``truth``, ``n``).

    ``below`` is the share of cells whose truth lies below the interval (the model overstates the
    effect), ``above`` above it (understates, e.g. over-shrinks a large effect). Nominal 90%
    intervals leave 5% on each side; a lopsided split tells which way the model errs.
    """
    _check_table(table)
    if by not in table.columns:
        raise ValueError(f"column {by!r} is not in the coverage table ({list(table.columns)})")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    t = table.assign(
        below=table["truth"] < table["low"],
        above=table["truth"] > table["high"],
        bin=pd.qcut(table[by].rank(method="first"), bins, labels=False) + 1,
    )
    g = t.groupby("bin")
    out = pd.DataFrame(
        {
            f"{by}_low": g[by].min(),
            f"{by}_high": g[by].max(),
            "cells": g.size(),
            "coverage": g["covered"].mean(),
            "below": g["below"].mean(),
            "above": g["above"].mean(),
        }
    )
    out.index.name = f"{by}_quantile"
    return out.reset_index()
