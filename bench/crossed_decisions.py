"""Benchmark: decision quality on crossed segments, through the "Your own data" route.

What it measures (GitHub issue #10). An independent synthetic experiment, generated here and
NOT by ``uplift.data.synthetic``: 36 segments from three columns (value tier x region x
channel), control plus one arm per tactic with unequal arm shares and costs, treatment effects
built from main effects, pairwise interactions, a small cell residual and a customer-level
latent modifier that no column reveals (two numeric covariates, ``tenure`` and
``recent_visits``, reveal it only partly). Each seed's customers are written to a CSV and run
the way a user would: ``data=csv``, ``tactics=custom`` with the arms, ``health.expected_split``
with the design shares, a binding budget, default model and sampler settings (so whatever the
default composition applies, including the default experiment preset). Every plan below is
solved by the same allocator (``uplift.pipeline.build_allocator``) on the same eligible
customers and scored with the TRUE profit per customer (true uplift x true value - cost):

  - oracle: the allocator given the true profit per customer;
  - posterior: the pipeline's allocation;
  - dim_plugin: per-cell difference in means x value - cost, as one scenario;
  - t_learner: gradient boosting per arm on one-hot segment columns + the covariates, predictions
    averaged per segment, as one scenario;
  - uniform: the budget spread evenly over the cells.

Per seed it prints true profit / oracle for each plan, the 90% interval coverage of the true
cell uplift by the posterior (all cells and the top tier), ``claimed/true`` (the plan's
posterior expected profit in summary.json over its true profit), ``calib/true`` (the headline
corrected for selection, ``calibrated_incremental_profit``, over the true profit), gate refusals (a refused run is rerun
with ``optimize.allow_unconverged=true`` to be scored, and flagged), the cross-fitted plan value
when summary.json has one (``crossfit``; with its fold fits' convergence check), and seconds
per seed; then the mean over seeds.

    python bench/crossed_decisions.py [--seeds 5] [--first-seed 1] [--customers 200000] [--quick] \
        [--json out.json] [overrides...]

``--quick`` samples 2 chains x 500 draws (500 tuning) for development; extra arguments are
config overrides passed through, e.g. ``model.pool_by_dimensions=false``.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import uplift
from uplift.config import AppConfig
from uplift.optimize import AllocationProblem, BudgetAllocator
from uplift.pipeline import ConvergenceGateError, RunResult, build_allocator, eligible_customers

# ---- the generator's design -----------------------------------------------------------------

SEGMENT_COLUMNS: tuple[str, ...] = ("tier", "region", "channel")
TIERS: tuple[str, ...] = ("high", "mid", "low")
TIER_SHARES: tuple[float, ...] = (0.15, 0.35, 0.50)
REGIONS: tuple[str, ...] = ("north", "south", "east", "west")
REGION_SHARES: tuple[float, ...] = (0.35, 0.25, 0.25, 0.15)
CHANNELS: tuple[str, ...] = ("web", "store", "app")
#: channel mix per tier (rows follow TIERS): the high tier buys in store more often
CHANNEL_SHARES: tuple[tuple[float, ...], ...] = (
    (0.35, 0.45, 0.20),
    (0.45, 0.30, 0.25),
    (0.55, 0.20, 0.25),
)
# Baseline conversion logit: intercept + main effects + a small seeded tier x channel term + u.
BASELINE_INTERCEPT = -2.45
BASELINE_TIER = (0.55, 0.15, -0.25)
BASELINE_REGION = (0.10, -0.10, 0.0, 0.15)
BASELINE_CHANNEL = (0.0, 0.20, -0.15)
BASELINE_TXC_SD = 0.10
BASELINE_LATENT_SD = 0.5  # customer-level baseline latent u
BASELINE_LATENT_CORR = -0.3  # corr(u, h): customers who buy anyway respond a little less
# Revenue of converters: lognormal, log-mean by tier plus a channel shift, common log-sd.
REVENUE_LOG_MEAN_TIER = (math.log(300.0), math.log(120.0), math.log(55.0))
REVENUE_LOG_SHIFT_CHANNEL = (0.0, 0.10, -0.10)
REVENUE_LOG_SD = 0.8
# Seeded deviations of every arm's effect (logit scale), on top of its structured profile.
EFFECT_MAIN_SD = 0.05  # per level of each column
EFFECT_PAIR_SD = 0.08  # tier x region, tier x channel, region x channel
EFFECT_CELL_SD = 0.04  # cell residual


def deviation_sds(scale: float = 1.0) -> tuple[float, float, float]:
    """The SDs of an arm's seeded deviations (main effects, pairs, cell residual) x ``scale``."""
    return scale * EFFECT_MAIN_SD, scale * EFFECT_PAIR_SD, scale * EFFECT_CELL_SD


@dataclass(frozen=True)
class ArmDesign:
    """One arm of the generated experiment: its tactic, cost, design share and true effect profile.

    The effect on the conversion logit of customer i in cell (t, r, c) is ``mean + tier[t] +
    region[r] + channel[c]`` + seeded main effects, pairwise interactions and cell residual +
    ``latent_slope x h_i`` (h_i ~ N(0, 1), hidden).
    """

    tactic: str
    cost: float
    share: float
    mean: float = 0.0
    tier: tuple[float, ...] = (0.0, 0.0, 0.0)
    region: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    channel: tuple[float, ...] = (0.0, 0.0, 0.0)
    latent_slope: float = 0.0

    @property
    def is_control(self) -> bool:
        return self.tactic == "control"


#: control plus one arm per tactic; shares sum to 1
DEFAULT_ARMS: dict[str, ArmDesign] = {
    "holdout": ArmDesign("control", cost=0.0, share=0.30),
    # cheap, broadly positive, best in the high tier and online
    "bundle_mail": ArmDesign(
        "cross_sell",
        cost=0.8,
        share=0.20,
        mean=0.18,
        tier=(0.10, 0.0, -0.10),
        channel=(0.05, -0.10, 0.05),
        latent_slope=0.30,
    ),
    # strong in the high tier, hurts the low tier
    "premium_upgrade": ArmDesign(
        "up_sell", cost=2.5, share=0.15, mean=0.08, tier=(0.30, 0.0, -0.30), latent_slope=0.35
    ),
    # works in the app, mildly hurts in store
    "loyalty_points": ArmDesign(
        "frequency", cost=1.2, share=0.15, mean=0.12, channel=(0.0, -0.18, 0.22), latent_slope=0.25
    ),
    # effective but expensive: pays in the high tier only
    "winback_call": ArmDesign(
        "retention", cost=4.0, share=0.10, mean=0.22, tier=(0.15, 0.0, -0.05), latent_slope=0.30
    ),
    # near zero, negative in some regions: mostly does not pay
    "refer_friend": ArmDesign(
        "referral",
        cost=0.5,
        share=0.10,
        mean=0.02,
        region=(0.0, -0.08, 0.0, 0.10),
        latent_slope=0.20,
    ),
}


def one_model_arms(arms: Mapping[str, ArmDesign] = DEFAULT_ARMS) -> dict[str, ArmDesign]:
    """The same design with every treated arm labelled ``cross_sell``: one model for all arms.

    The truth and the data are unchanged (the generator's draws do not depend on the labels)."""
    return {k: a if a.is_control else replace(a, tactic="cross_sell") for k, a in arms.items()}


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def customer_segments(customers: pd.DataFrame) -> pd.Series:
    """``tier/region/channel`` per customer, as the truth spells segments."""
    first, *rest = SEGMENT_COLUMNS
    return customers[first].astype(str).str.cat([customers[c].astype(str) for c in rest], sep="/")


def _largest_remainder(n: int, shares: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``n`` closest to ``n x shares``."""
    raw = n * shares
    out = np.floor(raw).astype(int)
    rest = n - int(out.sum())
    if rest > 0:
        out[np.argsort(-(raw - out), kind="stable")[:rest]] += 1
    return out


def _cell_effects(
    arm: ArmDesign, rng: np.random.Generator, deviation_scale: float = 1.0
) -> np.ndarray:
    """(tier, region, channel) array of the arm's effect on the logit, seeded deviations included
    (their SDs times ``deviation_scale``)."""
    nt, nr, nc = len(TIERS), len(REGIONS), len(CHANNELS)
    main_sd, pair_sd, cell_sd = deviation_sds(deviation_scale)
    tier = np.asarray(arm.tier) + rng.normal(0, main_sd, nt)
    region = np.asarray(arm.region) + rng.normal(0, main_sd, nr)
    channel = np.asarray(arm.channel) + rng.normal(0, main_sd, nc)
    txr = rng.normal(0, pair_sd, (nt, nr))
    txc = rng.normal(0, pair_sd, (nt, nc))
    rxc = rng.normal(0, pair_sd, (nr, nc))
    resid = rng.normal(0, cell_sd, (nt, nr, nc))
    return (
        arm.mean
        + tier[:, None, None]
        + region[None, :, None]
        + channel[None, None, :]
        + txr[:, :, None]
        + txc[:, None, :]
        + rxc[None, :, :]
        + resid
    )


def generate_crossed(
    seed: int,
    n_customers: int = 200_000,
    *,
    arms: Mapping[str, ArmDesign] = DEFAULT_ARMS,
    margin: float = 0.4,
    deviation_scale: float = 1.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A stratified-randomized experiment on crossed segments, and its truth per (segment, arm);
    see :func:`generate_crossed_customers` (the same draws, plus each customer's own truth)."""
    customers, truth, _ = generate_crossed_customers(
        seed, n_customers, arms=arms, margin=margin, deviation_scale=deviation_scale
    )
    return customers, truth


def generate_crossed_customers(
    seed: int,
    n_customers: int = 200_000,
    *,
    arms: Mapping[str, ArmDesign] = DEFAULT_ARMS,
    margin: float = 0.4,
    deviation_scale: float = 1.0,
    covariate_signal: float = 1.0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A stratified-randomized experiment on crossed segments, and its truth per (segment, arm).

    Customers: ``customer_id, tier, region, channel, arm, converted, revenue, tenure,
    recent_visits``. Arms are assigned within each segment in exactly the design shares (so a
    sample-ratio check passes). Truth: one row per (segment, treated arm) with ``segment``
    (``tier/region/channel``), ``arm, tactic, cost, tier, n_customers, p_control,
    true_uplift`` (mean over the segment's customers of p_treated - p_control),
    ``true_value_per_conversion`` (``margin`` x E[revenue | converted] of the segment) and
    ``true_profit_per_customer``. ``deviation_scale`` multiplies the SDs of the arms' seeded
    deviations from their profiles (main effects, pairs, cell residual): a second scenario with
    more or less heterogeneity for the model to find (1: the benchmark's).
    ``covariate_signal`` multiplies the weight of the hidden effect modifier ``h`` in the
    covariates ``tenure`` and ``recent_visits`` (1: the benchmark's, corr(log tenure, h) = 0.6;
    0: the covariates say nothing of ``h``, a null scenario for customer-level targeting). Any
    value but 1 is another sample of the same design: the visits' Poisson draws use the random
    stream differently, so the draws after them differ.

    Third frame, one row per customer (``customer_id`` order): ``customer_id``,
    ``true_value_per_conversion`` and one column per treated arm with the customer's own true
    uplift (p_treated - p_control given the hidden latents): what a plan that picks customers,
    not cells, earns (``bench/customer_targets.py``).
    """
    names = list(arms)
    shares = np.array([arms[a].share for a in names], dtype=float)
    if not np.isclose(shares.sum(), 1.0):
        raise ValueError(f"arm shares must sum to 1, got {shares.sum():.4f}")
    controls = [a for a in names if arms[a].is_control]
    if len(controls) != 1:
        raise ValueError(f"exactly one control arm is needed, got {controls}")
    control = names.index(controls[0])
    treated = [i for i, a in enumerate(names) if not arms[a].is_control]

    rng = np.random.default_rng(seed)
    n = int(n_customers)
    tier = rng.choice(len(TIERS), n, p=TIER_SHARES)
    region = rng.choice(len(REGIONS), n, p=REGION_SHARES)
    channel = np.empty(n, dtype=int)
    for t in range(len(TIERS)):
        m = tier == t
        channel[m] = rng.choice(len(CHANNELS), int(m.sum()), p=CHANNEL_SHARES[t])
    seg = (tier * len(REGIONS) + region) * len(CHANNELS) + channel

    # hidden latents: h modifies every arm's effect, u the baseline; covariates reveal h partly
    z = rng.standard_normal((4, n))
    h = z[0]
    u = BASELINE_LATENT_SD * (
        BASELINE_LATENT_CORR * h + math.sqrt(1 - BASELINE_LATENT_CORR**2) * z[1]
    )
    c = float(covariate_signal)
    tenure = np.maximum(1, np.round(np.exp(2.8 + 0.5 * (0.6 * c * h + 0.8 * z[2])))).astype(int)
    visits = rng.poisson(np.exp(0.7 + 0.35 * (0.5 * c * h + 0.866 * z[3]) + 0.4 * u))

    txc = rng.normal(0, BASELINE_TXC_SD, (len(TIERS), len(CHANNELS)))
    base = (
        BASELINE_INTERCEPT
        + np.asarray(BASELINE_TIER)[tier]
        + np.asarray(BASELINE_REGION)[region]
        + np.asarray(BASELINE_CHANNEL)[channel]
        + txc[tier, channel]
        + u
    )
    p = np.empty((len(names), n))
    p[control] = _expit(base)
    for k in treated:
        eff = _cell_effects(arms[names[k]], rng, deviation_scale)
        p[k] = _expit(base + eff[tier, region, channel] + arms[names[k]].latent_slope * h)

    # stratified randomization: exact design shares within every segment, random order
    arm_idx = np.empty(n, dtype=int)
    perm = rng.permutation(n)
    order = perm[np.argsort(seg[perm], kind="stable")]
    n_seg = len(TIERS) * len(REGIONS) * len(CHANNELS)
    bounds = np.searchsorted(seg[order], np.arange(n_seg + 1))
    for s in range(n_seg):
        block = order[bounds[s] : bounds[s + 1]]
        if len(block):
            arm_idx[block] = np.repeat(
                np.arange(len(names)), _largest_remainder(len(block), shares)
            )

    converted = rng.random(n) < p[arm_idx, np.arange(n)]
    log_mean = (
        np.asarray(REVENUE_LOG_MEAN_TIER)[tier] + np.asarray(REVENUE_LOG_SHIFT_CHANNEL)[channel]
    )
    revenue = np.where(converted, rng.lognormal(log_mean, REVENUE_LOG_SD), 0.0)

    tier_s = np.asarray(TIERS, dtype=object)[tier]
    region_s = np.asarray(REGIONS, dtype=object)[region]
    channel_s = np.asarray(CHANNELS, dtype=object)[channel]
    customers = pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1),
            "tier": tier_s,
            "region": region_s,
            "channel": channel_s,
            "arm": np.asarray(names, dtype=object)[arm_idx],
            "converted": converted.astype(int),
            "revenue": np.round(revenue, 2),
            "tenure": tenure,
            "recent_visits": visits,
        }
    )

    segment = pd.Series(tier_s).str.cat([pd.Series(region_s), pd.Series(channel_s)], sep="/")
    value = margin * np.exp(log_mean + REVENUE_LOG_SD**2 / 2)  # E[revenue | converted, segment]
    frame = pd.DataFrame(
        {"segment": segment, "tier": tier_s, "value": value, "p_control": p[control]}
        | {names[k]: p[k] - p[control] for k in treated}
    )
    g = frame.groupby("segment")
    per_seg = g.agg(
        tier=("tier", "first"),
        n_customers=("tier", "size"),
        p_control=("p_control", "mean"),
        true_value_per_conversion=("value", "first"),
    )
    rows = []
    uplift_means = g[[names[k] for k in treated]].mean()
    for k in treated:
        arm = arms[names[k]]
        part = per_seg.assign(
            arm=names[k],
            tactic=arm.tactic,
            cost=arm.cost,
            true_uplift=uplift_means[names[k]],
        )
        rows.append(part.reset_index())
    truth = pd.concat(rows, ignore_index=True)
    truth["true_profit_per_customer"] = (
        truth["true_value_per_conversion"] * truth["true_uplift"] - truth["cost"]
    )
    cols = [
        "segment",
        "arm",
        "tactic",
        "cost",
        "tier",
        "n_customers",
        "p_control",
        "true_uplift",
        "true_value_per_conversion",
        "true_profit_per_customer",
    ]
    own = pd.DataFrame(
        {"customer_id": customers["customer_id"], "true_value_per_conversion": value}
        | {names[k]: p[k] - p[control] for k in treated}
    )
    return customers, truth[cols].sort_values(["segment", "arm"]).reset_index(drop=True), own


# ---- the run, composed the way a user would ---------------------------------------------------


def default_budget(n_customers: int, per_customer: float = 0.3) -> float:
    """Budget of ``per_customer`` currency per customer in the data (binds: see oracle spend)."""
    return round(per_customer * n_customers, 2)


def user_overrides(
    csv_path: str | Path,
    budget: float,
    *,
    arms: Mapping[str, ArmDesign] = DEFAULT_ARMS,
    quick: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """The overrides of the README's "Your own data" route for the generated file."""
    out = [
        "data=csv",
        f"data.path='{csv_path}'",
        f"data.columns.segments=[{','.join(SEGMENT_COLUMNS)}]",
        "data.columns.orders=null",
        "tactics=custom",
    ]
    for name, a in arms.items():
        spec = "{tactic: control}" if a.is_control else f"{{tactic: {a.tactic}, cost: {a.cost}}}"
        out.append(f"+tactics.arms.{name}={spec}")
    out += [f"+health.expected_split.{name}={a.share}" for name, a in arms.items()]
    out += [
        f"optimize.budget={budget}",
        "report.plots=false",
        "report.save_posteriors=false",
    ]
    if quick:
        out += ["sampler.draws=500", "sampler.chains=2", "sampler.tune=500"]
    return [*out, *extra]


@dataclass
class PipelineRun:
    """The scored run, whether its fits failed the gate (and why), seconds of each pass."""

    result: RunResult
    config: AppConfig
    refused: bool
    gate: dict[str, Any] = field(default_factory=dict)
    pass_seconds: list[float] = field(default_factory=list)


def run_pipeline(
    overrides: Sequence[str], workdir: Path, *, single_pass: bool = False
) -> PipelineRun:
    """Run as the user would; on a gate refusal (``ConvergenceGateError``) rerun with
    ``optimize.allow_unconverged=true`` to score the plan anyway.

    ``single_pass``: run once with ``allow_unconverged=true`` and read the gate's verdict from
    ``summary["gate"]["passed"]`` (the verdict does not depend on the flag; halves the time of
    refused seeds, but is not the user's exact route).
    """
    t0 = time.perf_counter()
    if single_pass:
        config = uplift.compose_config([*overrides, "optimize.allow_unconverged=true"])
        res = uplift.run(config, workdir / "run")
        gate = dict(res.summary.get("gate", {}))
        refused = not gate.get("passed", True)
        return PipelineRun(res, config, refused, gate, [time.perf_counter() - t0])
    config = uplift.compose_config(list(overrides))
    out = workdir / "run"
    try:
        res = uplift.run(config, out)
        gate = dict(res.summary.get("gate", {}))
        return PipelineRun(res, config, False, gate, [time.perf_counter() - t0])
    except ConvergenceGateError:
        gate = json.loads((out / "summary.json").read_text()).get("gate", {})
    t1 = time.perf_counter()
    config = uplift.compose_config([*overrides, "optimize.allow_unconverged=true"])
    res = uplift.run(config, workdir / "run_allow_unconverged")
    return PipelineRun(res, config, True, gate, [t1 - t0, time.perf_counter() - t1])


# ---- comparators ------------------------------------------------------------------------------


def decision_problem(
    res: RunResult, config: AppConfig
) -> tuple[AllocationProblem, pd.Series, pd.Series]:
    """The posterior problem as the pipeline builds it (its own value per conversion, pooled
    along the segment columns by default), and the raw value per conversion the plug-ins use:
    margin x each segment's mean revenue per converter, as a spreadsheet would compute it."""
    assert res.run is not None
    values = res.run.prepared.values
    problem = AllocationProblem.from_uplift(
        {t: f.draws() for t, f in res.fits.items()},
        {t: values[t] for t in res.fits},
        res.data.arm_map,
        eligible_customers(config, res.cells),
    )
    g = res.cells.groupby("segment")[["revenue_sum", "conversions"]].sum()
    raw = float(config.value.margin) * g["revenue_sum"] / g["conversions"]
    return problem, values[next(iter(res.fits))], raw


def true_profit_per_customer(problem: AllocationProblem, truth: pd.DataFrame) -> np.ndarray:
    """True value x true uplift - cost per treated customer, in ``problem.cells`` order."""
    t = truth.set_index(["segment", "arm"])
    key = pd.MultiIndex.from_frame(problem.cells[["segment", "arm"]])
    if not key.isin(t.index).all():
        missing = key[~key.isin(t.index)][:5].tolist()
        raise ValueError(f"truth has no row for decision cell(s) {missing}")
    tt = t.reindex(key)
    return (tt["true_value_per_conversion"] * tt["true_uplift"]).to_numpy() - problem.cost


def plan_of(
    allocator: BudgetAllocator, problem: AllocationProblem, profit: np.ndarray
) -> np.ndarray:
    """Customers per decision cell when ``profit`` (per customer) is the single scenario."""
    plan = allocator.solve(AllocationProblem(problem.cells, profit[None, :], problem.eligible))
    return _customers_by_cell(plan.table, problem)


def _customers_by_cell(table: pd.DataFrame, problem: AllocationProblem) -> np.ndarray:
    x = table.set_index(["segment", "arm"])["customers"]
    key = pd.MultiIndex.from_frame(problem.cells[["segment", "arm"]])
    return x.reindex(key).fillna(0.0).to_numpy(dtype=float)


def posterior_plan(res: RunResult, problem: AllocationProblem) -> np.ndarray:
    if res.allocation is None:
        raise RuntimeError("the run produced no allocation")
    return _customers_by_cell(res.allocation.table, problem)


def dim_plugin_profit(
    problem: AllocationProblem, cells: pd.DataFrame, values: pd.Series, control: str
) -> np.ndarray:
    """Per-cell difference in means (treated rate - control rate) x value - cost."""
    rate = (cells["conversions"] / cells["n"]).to_numpy()
    by = pd.Series(rate, index=pd.MultiIndex.from_frame(cells[["segment", "arm"]]))
    key = pd.MultiIndex.from_frame(problem.cells[["segment", "arm"]])
    p1 = by.reindex(key).to_numpy()
    p0 = by.xs(control, level="arm").reindex(problem.cells["segment"]).to_numpy()
    v = values.reindex(problem.cells["segment"]).to_numpy()
    return v * (p1 - p0) - problem.cost


def t_learner_profit(
    problem: AllocationProblem,
    customers: pd.DataFrame,
    values: pd.Series,
    control: str,
    *,
    covariates: Sequence[str] = ("tenure", "recent_visits"),
    seed: int = 0,
) -> np.ndarray:
    """Gradient boosting per arm on one-hot segment columns + covariates; each segment's mean
    predicted (p_arm - p_control) over all its customers x value - cost."""
    arms = sorted(set(problem.cells["arm"]))
    uplift = t_learner_uplift(customers, arms, control, covariates=covariates, seed=seed)
    segment = customer_segments(customers).to_numpy()
    frame = pd.DataFrame(uplift, columns=arms).assign(segment=segment)
    mean_uplift = frame.groupby("segment").mean().stack()  # (segment, arm) -> mean uplift
    up = mean_uplift.reindex(pd.MultiIndex.from_frame(problem.cells[["segment", "arm"]]))
    up = up.to_numpy()
    v = values.reindex(problem.cells["segment"]).to_numpy()
    return v * up - problem.cost


def segment_and_covariate_features(
    customers: pd.DataFrame, covariates: Sequence[str] = ("tenure", "recent_visits")
) -> np.ndarray:
    """The segment columns one-hot and the covariates: what the T-learners see."""
    return pd.concat(
        [
            pd.get_dummies(customers[list(SEGMENT_COLUMNS)], dtype=float),
            customers[list(covariates)].astype(float),
        ],
        axis=1,
    ).to_numpy()


def t_learner_uplift(
    customers: pd.DataFrame,
    arms: Sequence[str],
    control: str,
    *,
    covariates: Sequence[str] = ("tenure", "recent_visits"),
    seed: int = 0,
) -> np.ndarray:
    """Per customer x arm (in ``arms`` order) predicted p_arm - p_control: gradient boosting
    per arm on :func:`segment_and_covariate_features`."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    X = segment_and_covariate_features(customers, covariates)
    y = customers["converted"].to_numpy()
    arm = customers["arm"].to_numpy()
    pred = {}
    for name in [control, *arms]:
        m = arm == name
        clf = HistGradientBoostingClassifier(random_state=seed)
        clf.fit(X[m], y[m])
        pred[name] = clf.predict_proba(X)[:, 1]
    return np.column_stack([pred[a] - pred[control] for a in arms])


def uniform_plan(problem: AllocationProblem, budget: float) -> np.ndarray:
    """The budget spread evenly over the cells (as in bench/allocation_regret.py)."""
    per_cell = budget / len(problem.cells)
    arms_per_segment = problem.cells.groupby("segment")["arm"].transform("count").to_numpy()
    cap = np.floor(problem.cell_eligible / arms_per_segment)
    return np.minimum(np.floor(per_cell / problem.cost), cap)


# ---- scores -----------------------------------------------------------------------------------


def interval_coverage(
    res: RunResult, truth: pd.DataFrame, prob: float = 0.9
) -> tuple[float, float]:
    """Share of (arm, segment) cells whose central ``prob`` posterior interval holds the true
    uplift: over all cells, and over the top value tier's cells."""
    lo_q, hi_q = (1 - prob) / 2, (1 + prob) / 2
    rows = []
    for fit in res.fits.values():
        d = fit.draws()
        q = np.quantile(d.values, [lo_q, hi_q], axis=0)  # (2, arm, segment)
        for i, a in enumerate(d["arm"].values):
            for j, s in enumerate(d["segment"].values):
                rows.append((str(a), str(s), q[0, i, j], q[1, i, j]))
    iv = pd.DataFrame(rows, columns=["arm", "segment", "low", "high"]).merge(
        truth[["arm", "segment", "tier", "true_uplift"]], on=["arm", "segment"], how="left"
    )
    hit = (iv["low"] <= iv["true_uplift"]) & (iv["true_uplift"] <= iv["high"])
    top = iv["tier"] == TIERS[0]
    return float(hit.mean()), float(hit[top].mean())


def crossfit_figures(summary: Mapping[str, Any]) -> tuple[float | None, list[float] | None]:
    """``estimate`` and ``ci`` of summary.json's cross-fitted plan value, when present."""
    cf = summary.get("crossfit")
    if not isinstance(cf, Mapping):
        return None, None
    est = cf.get("estimate")
    ci = cf.get("ci", [cf.get("ci_low"), cf.get("ci_high")])
    est_f = float(est) if isinstance(est, int | float) else None
    ci_f = [float(c) for c in ci] if isinstance(ci, Sequence) and len(ci) == 2 else None
    return est_f, ci_f


def score_seed(
    seed: int,
    n_customers: int,
    *,
    budget: float | None = None,
    quick: bool = False,
    single_pass: bool = False,
    overrides: Sequence[str] = (),
    arms: Mapping[str, ArmDesign] = DEFAULT_ARMS,
    deviation_scale: float = 1.0,
) -> dict[str, Any]:
    """Generate, run, solve every comparator and score them with the truth, for one seed."""
    t0 = time.perf_counter()
    budget = default_budget(n_customers) if budget is None else budget
    with tempfile.TemporaryDirectory(prefix=f"crossed-{seed}-") as tmp:
        work = Path(tmp)
        csv = work / "customers.csv"
        ov = user_overrides(csv, budget, arms=arms, quick=quick, extra=overrides)
        margin = float(uplift.compose_config(ov).value.margin)
        customers, truth = generate_crossed(
            seed, n_customers, arms=arms, margin=margin, deviation_scale=deviation_scale
        )
        customers.to_csv(csv, index=False)
        run = run_pipeline(ov, work, single_pass=single_pass)
    res, config = run.result, run.config
    problem, _, values = decision_problem(res, config)  # the plug-ins use the raw values
    control = res.data.arm_map.control.name
    true_pc = true_profit_per_customer(problem, truth)
    allocator = build_allocator(config)

    plans = {
        "oracle": plan_of(allocator, problem, true_pc),
        "posterior": posterior_plan(res, problem),
        "dim_plugin": plan_of(
            allocator, problem, dim_plugin_profit(problem, res.cells, values, control)
        ),
        "t_learner": plan_of(
            allocator, problem, t_learner_profit(problem, customers, values, control, seed=seed)
        ),
        "uniform": uniform_plan(problem, budget),
    }
    profit = {k: float(true_pc @ x) for k, x in plans.items()}
    oracle = profit["oracle"]
    cov, cov_top = interval_coverage(res, truth)
    claimed = float(res.summary["expected_incremental_profit"])
    calibrated = res.summary.get("calibrated_incremental_profit")
    est, ci = crossfit_figures(res.summary)
    post = profit["posterior"]
    diag = res.summary.get("diagnostics", {})
    return {
        "seed": seed,
        "n_customers": n_customers,
        "budget": budget,
        "true_profit": profit,
        "ratio": {k: v / oracle if oracle > 0 else float("nan") for k, v in profit.items()},
        "oracle_spend_share": float(problem.cost @ plans["oracle"]) / budget,
        "oracle_treated_share": float(plans["oracle"].sum()) / n_customers,
        "posterior_treated_share": float(plans["posterior"].sum()) / n_customers,
        "coverage90": cov,
        "coverage90_top_tier": cov_top,
        "claimed_profit": claimed,
        "claimed_over_true": claimed / post if post > 0 else float("nan"),
        "calibrated_profit": calibrated,
        "calibrated_over_true": (
            float(calibrated) / post if calibrated is not None and post > 0 else None
        ),
        "gate_refused": run.refused,
        "gate": run.gate,
        "crossfit_estimate": est,
        "crossfit_ci": ci,
        "crossfit_over_true": est / post if est is not None and post > 0 else None,
        "crossfit_fold_fits": (res.summary.get("crossfit") or {}).get("fold_fits"),
        "diagnostics": {
            t: {
                k: d.get(k)
                for k in ("r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences", "fit_seconds")
            }
            for t, d in diag.items()
        },
        "stage_seconds": res.summary.get("seconds"),
        "pass_seconds": run.pass_seconds,
        "parameterization": res.summary.get("parameterization"),
        "pool_by_dimensions": bool(config.model.pool_by_dimensions),
        "target_accept": float(config.sampler.target_accept),
        "target_accept_structured": float(config.sampler.target_accept_structured),
        "sampler": res.summary.get("sampler"),
        "seconds": time.perf_counter() - t0,
    }


# ---- printing ---------------------------------------------------------------------------------

COMPARATORS = ("posterior", "dim_plugin", "t_learner", "uniform")
HEADER = (
    f"{'seed':>4} {'oracle':>9} {'posterior':>9} {'dim_plug':>9} {'t_learn':>9} {'uniform':>8}"
    f" {'cov90':>6} {'cov90hi':>7} {'claim/tr':>8} {'calib/tr':>8} {'gate':>7} {'xfit/tr':>7}"
    f" {'sec':>5}"
)


def _fmt(x: float | None, spec: str, width: int) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return f"{'-':>{width}}"
    return f"{x:{width}{spec}}"


def format_row(row: Mapping[str, Any], label: str | None = None) -> str:
    r = row["ratio"]
    gate = row["gate_refused"]
    gate_s = gate if isinstance(gate, str) else ("REFUSED" if gate else "pass")
    return (
        f"{label or row['seed']:>4} {_fmt(row['true_profit']['oracle'], ',.0f', 9)}"
        + "".join(f" {_fmt(r[k], '.3f', 9 if k != 'uniform' else 8)}" for k in COMPARATORS)
        + f" {_fmt(row['coverage90'], '.3f', 6)} {_fmt(row['coverage90_top_tier'], '.3f', 7)}"
        + f" {_fmt(row['claimed_over_true'], '.3f', 8)}"
        + f" {_fmt(row['calibrated_over_true'], '.3f', 8)} {gate_s:>7}"
        + f" {_fmt(row['crossfit_over_true'], '.3f', 7)} {_fmt(row['seconds'], '.0f', 5)}"
    )


def mean_row(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    def avg(values: Sequence[float | None]) -> float | None:
        xs = [v for v in values if v is not None and not math.isnan(v)]
        return float(np.mean(xs)) if xs else None

    return {
        "seed": "mean",
        "true_profit": {"oracle": avg([r["true_profit"]["oracle"] for r in rows])},
        "ratio": {k: avg([r["ratio"][k] for r in rows]) for k in COMPARATORS},
        "coverage90": avg([r["coverage90"] for r in rows]),
        "coverage90_top_tier": avg([r["coverage90_top_tier"] for r in rows]),
        "claimed_over_true": avg([r["claimed_over_true"] for r in rows]),
        "calibrated_over_true": avg([r["calibrated_over_true"] for r in rows]),
        "gate_refused": f"{sum(bool(r['gate_refused']) for r in rows)}/{len(rows)}",
        "crossfit_over_true": avg([r["crossfit_over_true"] for r in rows]),
        "seconds": avg([r["seconds"] for r in rows]),
    }


def detail_lines(row: Mapping[str, Any]) -> list[str]:
    """Gate reasons, cross-fit interval and the oracle's budget use, under a seed's row."""
    out = [
        f"     oracle spends {row['oracle_spend_share']:.0%} of the budget, treats "
        f"{row['oracle_treated_share']:.0%} of customers (posterior {row['posterior_treated_share']:.0%});"
        f" claimed {row['claimed_profit']:,.0f} vs true {row['true_profit']['posterior']:,.0f}"
    ]
    out.append(
        "     seconds per pass "
        + " + ".join(f"{x:.0f}" for x in row["pass_seconds"])
        + "; fit seconds "
        + ", ".join(f"{t} {d['fit_seconds']:.0f}" for t, d in row["diagnostics"].items())
    )
    if row["gate_refused"]:
        for t, reasons in (row["gate"].get("failures") or {}).items():
            out.append(f"     gate refused {t}: {', '.join(map(str, reasons))}")
    if row["crossfit_estimate"] is not None:
        ci = row["crossfit_ci"]
        ci_s = f" [{ci[0]:,.0f}, {ci[1]:,.0f}]" if ci else ""
        ff = row.get("crossfit_fold_fits") or {}
        fits_s = (
            f"; fold fits {ff['checked']} checked, {ff['refits']} refit, "
            f"{len(ff['unconverged'])} unconverged"
            + (f" ({'; '.join(ff['unconverged'])})" if ff["unconverged"] else "")
            if ff
            else ""
        )
        out.append(f"     crossfit estimate {row['crossfit_estimate']:,.0f}{ci_s}{fits_s}")
    return out


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=1, help="seeds first..first+seeds-1")
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--budget", type=float, default=None, help="default: 0.3 x customers")
    ap.add_argument("--quick", action="store_true", help="2 chains x 500 draws, 500 tuning")
    ap.add_argument(
        "--single-pass",
        action="store_true",
        help="run once with optimize.allow_unconverged=true and read the gate's verdict from "
        "summary.json instead of catching the refusal and rerunning",
    )
    ap.add_argument(
        "--one-model",
        action="store_true",
        help="label every treated arm with one tactic, so one model fits all arms jointly "
        "(shared baselines: the control customers counted once); for the joint-model comparison",
    )
    ap.add_argument(
        "--deviation-scale",
        type=float,
        default=1.0,
        help="multiply the SDs of the arms' seeded deviations (a second scenario; "
        "bench/crossed_ceiling.py gives its ceiling)",
    )
    ap.add_argument("--json", type=Path, default=None, help="save the per-seed rows here")
    ap.add_argument("overrides", nargs="*", help="extra config overrides")
    args = ap.parse_args(argv)

    rows: list[dict[str, Any]] = []
    print("true profit of the oracle's plan; the others as a ratio to it (same allocator)")
    print(HEADER)
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        row = score_seed(
            seed,
            args.customers,
            budget=args.budget,
            quick=args.quick,
            single_pass=args.single_pass,
            overrides=args.overrides,
            arms=one_model_arms() if args.one_model else DEFAULT_ARMS,
            deviation_scale=args.deviation_scale,
        )
        rows.append(row)
        print(format_row(row), flush=True)
        for line in detail_lines(row):
            print(line, flush=True)
    print(format_row(mean_row(rows)))
    first = rows[0]
    print(
        f"settings: pool_by_dimensions={first['pool_by_dimensions']}, "
        f"target_accept={first['target_accept']} "
        f"(crossed models {first.get('target_accept_structured')}), sampler={first['sampler']}, "
        f"parameterization={first['parameterization']}"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))
    return rows


if __name__ == "__main__":
    main()
