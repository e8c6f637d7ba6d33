"""The end-to-end run: data -> models -> value -> optimize -> report.

:func:`run` takes a typed :class:`~uplift.config.AppConfig` and an output directory, so it is
usable from the CLI, a notebook or a test alike. Every input check happens before sampling.
"""

from __future__ import annotations

import copy
import gc
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from uplift import progress
from uplift.app.heldout_run import run_holdout
from uplift.app.outputs import (
    draw_figures,
    write_html,
    write_report,
    write_summary,
    write_tables,
)
from uplift.app.run_summary import Decision, GateStatus, Prepared, RunSummary
from uplift.app.strata_run import customer_strata, own_uplift
from uplift.app.value_tables import cost_to_serve_of
from uplift.config import AppConfig, DataSource, ValueKind
from uplift.data import CustomerData, DataValidationError, aggregate_cells
from uplift.data.cells import (
    guardrail_cell_column,
    segment_dimensions,
    segment_sizes,
    tactic_cells,
)
from uplift.data.checks import check_plausible, check_plausible_engine
from uplift.evaluate.crossfit import (
    FOLD_FIT_COLUMNS,
    FoldPlan,
    calibrate_headline,
    crossfit_plan_value,
)
from uplift.inputs import load_data
from uplift.models import Diagnostics, FittedTactic, UpliftModel
from uplift.models.families import (
    FAMILIES,
    Family,
    ModelInputs,
    get_family,
)
from uplift.models.families import binomial as binomial_family
from uplift.models.fit_cache import FitCache, code_digest, model_key
from uplift.models.information import (
    baseline_information_ratio,
    effect_information_ratio,
    main_effect_information_ratios,
)
from uplift.models.persist import package_versions
from uplift.models.sampling import SamplerSettings
from uplift.optimize import Allocation, AllocationError, AllocationProblem, BudgetAllocator
from uplift.optimize.allocator import Frontier
from uplift.optimize.factory import allocator_from_settings, budget_grid, marginal_step
from uplift.optimize.strata import collapse, collapse_targets, refine_problem, with_strata
from uplift.optimize.targets import CustomerTargets, customer_targets
from uplift.report import run_folder
from uplift.report.model_checks import run_model_checks
from uplift.report.returns import COVARIATES_UNUSED
from uplift.report.tables import arm_table, uplift_table
from uplift.report.truth import TacticDraws, score_against_truth
from uplift.tactics import ArmMap
from uplift.value.per_conversion import build_value_model
from uplift.value.tactic_value import (
    check_overrides,
    tactic_value_per_unit,
)

if TYPE_CHECKING:
    import xarray as xr

    from uplift.models.settings import Parameterization

log = logging.getLogger("uplift")


class ConvergenceGateError(RuntimeError):
    """A fit failed the diagnostics thresholds and the config does not allow using it."""


@dataclass
class RunResult:
    config: AppConfig
    output_dir: Path
    data: CustomerData
    cells: pd.DataFrame
    fits: dict[str, FittedTactic]
    uplift: pd.DataFrame
    allocation: Allocation | None
    summary: dict
    truth: pd.DataFrame | None = None
    files: dict[str, Path] = field(default_factory=dict)
    by_arm: pd.DataFrame | None = None
    #: the typed result every artifact was written from (``summary`` is its summary.json)
    run: RunSummary | None = None


#: how a stage of summary.json's ``seconds`` is named on the console's progress lines; "fit" is
#: shown per tactic instead (:func:`fit_tactics`)
STAGE_LABELS = {
    "covariate_model": "covariate model",
    "evaluate": "held-out check",
    "crossfit": "cross-fit",
    "marginal_return": "tactic returns",
}


class _Clock:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        shown = progress.stage(STAGE_LABELS.get(name, name)) if name != "fit" else nullcontext()
        try:
            with shown:
                yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 3)


#: packages whose versions summary.json records
VERSIONED_PACKAGES = (
    "uplift",
    "pymc",
    "pytensor",
    "arviz",
    "nutpie",
    "numpy",
    "pandas",
    "cvxpy",
    "highspy",
    "hydra-core",
)


def _versions() -> dict[str, str]:
    return {"python": platform.python_version(), **package_versions(VERSIONED_PACKAGES)}


def check_families(config: AppConfig, data: CustomerData) -> None:
    """Each tactic's likelihood needs its outcome column: fail before sampling if it is missing."""
    have = {"revenue": data.has_revenue, "orders": data.has_orders}
    for tactic in data.arm_map.tactics():
        fam = family_of(config, tactic.value)
        need = fam.requires
        if need and not have[need] and data.mapped(tactic.value) is None:
            raise DataValidationError(
                f"tactic {tactic.value!r} uses model family {fam.name!r}, which needs the {need} "
                f"column; map it with data.columns.{need}=<column> or choose another family in "
                "model.families"
            )
        if fam.prices:
            arms = [data.arm_map.control.name, *[a.name for a in data.arm_map.arms_for(tactic)]]
            missing = [a for a in arms if a not in config.pricing.prices]
            if missing:
                raise DataValidationError(
                    f"tactic {tactic.value!r} is a price test ({fam.name}): give every arm's price in "
                    f"pricing.prices, missing {missing} (the control arm is today's price)"
                )
            prices = {a: config.pricing.prices[a] for a in arms}
            bad = {a: p for a, p in prices.items() if not np.isfinite(p) or p <= 0}
            if bad:
                raise DataValidationError(
                    f"pricing.prices must be positive and finite; got {bad} for tactic "
                    f"{tactic.value!r}"
                )
            if len(set(prices.values())) < 2:
                raise DataValidationError(
                    f"tactic {tactic.value!r} is a price test with a single price "
                    f"({next(iter(prices.values())):g} for {arms}): demand can only be learnt "
                    "from at least two tested prices. Give the arms their tested prices in "
                    "pricing.prices, or model the tactic with another family."
                )
    unknown = sorted(set(config.model.families) - {t.value for t in data.arm_map.tactics()})
    if unknown:
        log.warning("model.families names tactic(s) %s that no arm delivers: ignored", unknown)


def family_of(config: AppConfig, tactic: str) -> Family:
    """The likelihood family ``tactic`` is modelled with (``model.family`` / ``model.families``)."""
    return get_family(config.model.family_of(tactic))


@runtime_checkable
class _PricedModel(Protocol):
    """A fitted price-test model (:class:`uplift.models.price.PriceResponseModel`)."""

    def demand_curve(self, price_grid: np.ndarray) -> xr.DataArray: ...


@runtime_checkable
class _Parameterized(Protocol):
    """A model with random-effect forms (``model.parameterization``)."""

    parameterization: Parameterization


def price_tactics(config: AppConfig, fits: dict) -> list[str]:
    return [t for t in fits if family_of(config, t).prices]


def price_grid(config: AppConfig, arm_map: ArmMap) -> np.ndarray:
    """The candidate prices of ``pricing``: ``grid_num`` points over the tested range (or
    ``grid_start``..``grid_stop``), today's price always among them."""
    pc = config.pricing
    tested = sorted(set(pc.prices.values()))
    grid = np.linspace(pc.grid_start or tested[0], pc.grid_stop or tested[-1], pc.grid_num)
    today = float(pc.prices[arm_map.control.name])
    return np.unique(np.round(np.r_[grid, today], 6))


def optimize_prices(
    config: AppConfig, fits: dict[str, FittedTactic], cells: pd.DataFrame, arm_map: ArmMap
) -> tuple[pd.DataFrame, dict, object]:
    """Per-segment prices from the posterior demand of each price-test tactic (MILP, HiGHS)."""
    from uplift.optimize.factory import price_optimizer_from_settings
    from uplift.optimize.pricing import PricingProblem

    pc = config.pricing
    grid = price_grid(config, arm_map)
    today = float(pc.prices[arm_map.control.name])
    optimizer = price_optimizer_from_settings(
        objective=pc.objective,
        alpha=pc.alpha,
        risk_aversion=pc.risk_aversion,
        constraints=[dict(c) for c in pc.constraints],
        method=pc.method,
        cost_plus_markup=pc.cost_plus_markup,
        time_limit=pc.time_limit,
        hdi_prob=config.report.hdi_prob,
    )
    eligible = eligible_customers(config, cells)
    tables, summaries, demand = [], {}, None
    for tactic in price_tactics(config, fits):
        model = fits[tactic].model
        if not isinstance(model, _PricedModel):
            raise TypeError(f"tactic {tactic!r} is priced but its model has no demand curve")
        demand = model.demand_curve(grid)
        segs = [str(s) for s in demand["segment"].values]
        cost = pd.Series({s: float(pc.unit_cost_by_segment.get(s, pc.unit_cost)) for s in segs})
        problem = PricingProblem.from_xarray(
            demand, cost, eligible.reindex(segs), pd.Series(today, index=segs)
        )
        result = optimizer.solve(problem)
        tables.append(result.table.assign(tactic=tactic))
        summaries[tactic] = result.summary(config.report.hdi_prob)
    return pd.concat(tables, ignore_index=True), summaries, demand


def cell_events(cells: pd.DataFrame, family: str, arms: list[str]) -> float:
    """Median events per cell of ``arms`` on the scale the family's parameters are learnt from.

    Each family counts its own (``Family.events``): binary outcomes the rarer of conversions and
    non-conversions, the hurdle model its buyers, count models the orders: roughly
    1 / (standard error of a cell's parameter)^2. Read from the cells' sufficient statistics, so
    the cost does not grow with customers.
    """
    return float(get_family(family).events(cells[cells["arm"].isin(arms)]).median())


def pooling_dims(config: AppConfig, data: CustomerData) -> tuple[str, ...]:
    """The segment columns models and values pool along (``model.pool_by_dimensions``)."""
    return tuple(segment_dimensions(data)) if config.model.pool_by_dimensions else ()


def resolved_parameterization(
    config: AppConfig,
    tactic: str,
    data: CustomerData,
    cells: pd.DataFrame,
    family: str | None = None,
):
    """``model.parameterization`` with any ``auto`` replaced by the choice the data favour
    (``family``: the likelihood it is for, default the tactic's)."""
    par = config.model.parameterization
    dims = pooling_dims(config, data)
    crossed = dims if len(dims) > 1 else ()  # one column is the segment: exchangeable pooling
    if "auto" not in (par.baseline, par.effect) and not (par.main == "auto" and crossed):
        return par
    fam = family or config.model.family_of(tactic)
    treated = [a.name for a in data.arm_map.treated if a.tactic.value == tactic]
    control = cells[cells["arm"] == data.arm_map.control.name]
    ratio = base_ratio = None
    main_ratios = None
    link = get_family(fam).link
    treated_cells = cells[cells["arm"].isin(treated)]
    if par.effect == "auto" and link is not None:
        ratio = effect_information_ratio(control, treated_cells, link, crossed)
    if par.baseline == "auto" and link is not None and crossed:
        base_ratio = baseline_information_ratio(control, link, crossed)
    if par.main == "auto" and link is not None and crossed:
        main_ratios = main_effect_information_ratios(control, treated_cells, link, crossed)
    chosen = par.resolve(
        cell_events(cells, fam, [data.arm_map.control.name]),
        cells["segment"].nunique(),
        cell_events(cells, fam, treated),
        ratio,
        baseline_ratio=base_ratio,
        main_ratios=main_ratios,
    )
    # on the console once per tactic, in the "fitted" line; every refit's choice in the log file
    log.debug(
        "%s: parameterization %s (effect information ratio %s, main effects %s)",
        tactic,
        chosen.describe(),
        "n/a" if ratio is None else f"{ratio:.2f}",
        main_ratios,
    )
    return chosen


def build_model(
    config: AppConfig,
    tactic: str,
    data: CustomerData,
    cells: pd.DataFrame,
    family: str | None = None,
) -> UpliftModel:
    """The model object for ``tactic``'s configured likelihood family, or ``family`` (a
    guardrail's binary outcome: ``binomial``); ``cells``: what it will be fit on, which decides
    any ``auto`` parameterization. A tactic of ``data.columns.outcomes`` reads its own
    outcome (:func:`~uplift.data.cells.tactic_cells`; not a guardrail's model)."""
    mc = config.model
    if family is None:
        cells = tactic_cells(cells, tactic)
    par = resolved_parameterization(config, tactic, data, cells, family)
    dims = pooling_dims(config, data)
    structure = {
        "segment_dims": dims,
        "interactions": mc.dimension_interactions,
        "structure_baselines": mc.structure_baselines,
    }
    sampler = sampler_for(config, structured=bool(dims), informed=data_pin_down(par, dims))
    own = data.outcome_of(tactic, "") if family is None else ""
    inputs = ModelInputs(
        mc,
        data,
        par,
        structure,
        sampler,
        config.sampler,
        dict(config.pricing.prices),
        outcome=own or None,
    )
    fam = get_family(family) if family is not None else family_of(config, tactic)
    model = fam.build(inputs)
    if family is None and config.model.prior_from:  # a guardrail keeps its own priors
        from uplift.app.prior_from import carried_prior

        prior = carried_prior(config, tactic, model, cells)
        if prior is not None:
            model = model.carry(prior)
    return model


def sampler_for(config: AppConfig, *, structured: bool, informed: bool = False) -> SamplerSettings:
    """The sampler settings of one model: crossed-structure models sample at the larger of
    ``sampler.target_accept`` and ``sampler.target_accept_structured``, unless the data pin
    down every part whose scale makes the funnels that setting is for (``informed``:
    :func:`data_pin_down`); those sample at ``sampler.target_accept``."""
    s = config.sampler
    if not structured or informed or s.target_accept_structured <= s.target_accept:
        return s
    return replace(s, target_accept=s.target_accept_structured)


def data_pin_down(par: Parameterization | None, dims: Sequence[str]) -> bool:
    """Whether ``auto`` centred the effects' residual and every crossed column's main effects:
    the data pin each part down, so none of the scales of few levels that make crossed models
    diverge at target_accept 0.9 is left to the prior. At 10M customers (bench/scale_geometry.py,
    4 x 2,000 draws, target_accept 0.9) the three tactics with both columns centred sampled in
    2.7 s with 0 divergences (5-6 s at 0.99); cross_sell, whose tier column is not centred
    (ratio 0), had 39. No model of a shipped preset, the demo or bench/crossed_decisions.py
    qualifies: no preset centres a column, and the benchmark's residuals stay non-centred
    (effect ratios <= 1.4) where one or two of its columns are centred."""
    if par is None or len(dims) < 2 or par.main != "auto":
        return False
    return par.effect == "centered" and par.main_centered(dims) == frozenset(dims)


def segment_value_model(config: AppConfig, data: CustomerData):
    """The value per conversion of ``value.kind``: CLV-based, observed (pooled along the segment
    columns the models pool along), or None (constant: built from the config where used)."""
    if config.value.kind is ValueKind.observed:
        return build_value_model(config.value, pooling_dims(config, data))
    if config.value.kind is not ValueKind.clv:
        return None
    from uplift.value.clv_join import clv_value_for_data, load_customer_value

    try:
        path = config.value.customer_value_path
        if path is None:  # ValueConfig refuses kind=clv without it; a later edit may not
            raise ValueError(
                "value.kind=clv needs value.customer_value_path=<dir>/customer_value.csv "
                "written by `uplift clv`"
            )
        return clv_value_for_data(
            load_customer_value(path),
            data.frame,
            statistic=config.value.statistic,
            scale=config.value.scale,
        )
    except ValueError as e:
        raise DataValidationError(str(e)) from e


#: what a fit that diverged is retried with, in order: a smaller step size (target_accept 0.99,
#: or 0.995 for a fit at 0.99 already), then the other form of the effects, of their main
#: effects, of the baselines, of both (each at target_accept 0.99). Each form alone comes
#: before both: the raw Hillstrom file with zip code x channel segments (9 segments, median 12
#: purchases per control cell, so ``auto`` centres the baselines) diverged with centred
#: baselines whatever the effects (5 and 29 divergences) and was clean with both non-centred
#: (0 divergences, r-hat 1.002), a form the ladder did not reach when it flipped both at once.
#: With crossed segments the effects' main-effect forms are flipped next (column by column:
#: centred <-> non-centred), as ``auto`` chooses them from a ratio that is noisy with few levels;
#: the residual's flip comes first (10M customers: cross_sell diverged with the residual
#: non-centred at an effect ratio of 2.1, whatever the main effects, and was clean centred)
RETRY_LADDER = (
    ("target_accept",),
    ("target_accept", "effect"),
    ("target_accept", "main"),
    ("target_accept", "baseline"),
    ("target_accept", "effect", "baseline"),
)
#: a fit that did not diverge but did not mix (r-hat) or has too few effective draws (bulk or
#: tail ESS) is sampled longer instead: twice the tuning and draws, same form (a
#: reparameterization is the cure for divergences, not for slow mixing: on Hillstrom's 144
#: crossed segments, r-hat 1.012, flipping the effects to centred ran for more than 14 minutes
#: where the first fit took 3.5). ESS was once left out, and the issue's own 10M-customer run
#: (bench/scale.py, 48 segments, default settings) was refused for referral's bulk ESS of 382
#: (< 400) with every fit otherwise clean: nothing had sampled it longer
LONGER = (("longer",),)


#: the first rung's target_accept for a fit already sampled at 0.99 or more (crossed segments
#: sample at 0.99 from the start, so the rung was a no-op there). 10M customers, cross_sell
#: (bench/scale.py): 1 divergence in 8,000 draws at 0.99 in the best form, at the tail of a
#: main-effect scale; 0 at 0.995 (r-hat 1.004, bulk ESS 1,134)
SMALLER_STEPS = 0.995


def _smaller_steps(target_accept: float) -> float:
    """The first rung's target_accept: 0.99, or :data:`SMALLER_STEPS` from 0.99 on."""
    return 0.99 if target_accept < 0.99 else max(SMALLER_STEPS, target_accept)


def _flip(form: str) -> str:
    return "non_centered" if form == "centered" else "centered"


def _sampling_failures(config: AppConfig, diagnostics) -> list[str]:
    """Gate failures that sampling can mend: divergences (another step size or form), r-hat
    and too few effective draws (longer chains); an approximate fit has none to mend."""
    if diagnostics.approximate:
        return []
    return [
        f
        for f in config.optimize.gate.failures(diagnostics)
        if f.startswith(("divergences", "r_hat", "ess_"))
    ]


def fit_cache_key(
    config: AppConfig, tactic: str, model: UpliftModel, cells: pd.DataFrame, kind: str
) -> str:
    """The fit cache key of ``model`` fit on ``cells`` for ``tactic``: the model's own part
    (:func:`uplift.models.fit_cache.model_key`), the tables it reads, this module's code (the
    retry ladder), and for a fit that can be refit (``kind="fit"`` or ``"crossfit_fold"``)
    what decides its retries."""
    parts = {"kind": kind, "pipeline": code_digest(__file__), **model_key(model, tactic)}
    if kind in ("fit", "crossfit_fold"):
        gate = config.optimize.gate
        parts["retry"] = {
            "retry": config.sampler.retry,
            "allow_unconverged": config.optimize.allow_unconverged,
            "gate": [gate.r_hat_max, gate.ess_bulk_min, gate.divergences_max],
        }
    return FitCache.key(parts, model.fit_data(cells, tactic))


def fit_tactic(
    config: AppConfig,
    tactic: str,
    data: CustomerData,
    cells: pd.DataFrame,
    cache: FitCache | None = None,
) -> FittedTactic:
    """Fit one tactic, or read its posterior from the fit cache (``cache``; default: the one
    ``sampler.cache`` configures) when nothing that decides it changed.

    A fit that diverges is refit along :data:`RETRY_LADDER`, one that only failed to mix (r-hat)
    is sampled twice as long (:data:`LONGER`); ``sampler.retry``, skipped when
    ``optimize.allow_unconverged`` accepts it anyway. The first clean attempt, else the one with
    the fewest failed checks, then divergences, is kept. Every attempt is recorded on the result
    (``summary.json: diagnostics.<tactic>.attempts``) and in the cached posterior's attributes.
    """
    t0 = time.perf_counter()
    cache = cache if cache is not None else FitCache.from_settings(config.sampler)
    cells = tactic_cells(cells, tactic)  # its own outcome's sums (data.columns.outcomes)
    model = build_model(config, tactic, data, cells)
    if not cache.enabled:
        return _fit_tactic(config, tactic, data, cells, model, t0)
    key = fit_cache_key(config, tactic, model, cells, "fit")
    with cache.claim(tactic, key):  # a parallel job fitting the same key waits, then reads it
        cached = cache.load(tactic, key, model)
        if cached is not None:
            attrs = cached.idata.attrs
            attempts = json.loads(attrs.get(ATTEMPTS_ATTR, "[]"))
            stored = attrs.get(DIAGNOSTICS_ATTR)
            diagnostics = Diagnostics(**json.loads(stored)) if stored else cached.diagnostics()
            seconds = time.perf_counter() - t0
            return FittedTactic(tactic, cached, diagnostics, seconds, attempts, True)
        best = _fit_tactic(config, tactic, data, cells, model, t0)
        best.model.idata.attrs[ATTEMPTS_ATTR] = json.dumps(best.attempts)
        best.model.idata.attrs[DIAGNOSTICS_ATTR] = json.dumps(best.diagnostics.to_dict())
        cache.store(tactic, key, best.model)
    return best


#: attributes of a posterior holding the fit's attempts and diagnostics (:func:`fit_tactic`):
#: a cached fit reports them as the fresh one did, without recomputing r-hat and ESS (~1 s)
ATTEMPTS_ATTR = "uplift_fit_attempts"
DIAGNOSTICS_ATTR = "uplift_fit_diagnostics"


def _fit_tactic(
    config: AppConfig,
    tactic: str,
    data: CustomerData,
    cells: pd.DataFrame,
    model: UpliftModel,
    t0: float,
    label: str | None = None,
) -> FittedTactic:
    """:func:`fit_tactic` without the cache: ``model`` (built for ``tactic``) fit on ``cells``,
    refit along the ladder when needed; ``t0``: when the fit started; ``label``: the fit's
    name in the log (default ``tactic``)."""
    model.fit(cells, tactic)
    best = FittedTactic(tactic, model, model.diagnostics(), time.perf_counter() - t0)
    failures = _sampling_failures(config, best.diagnostics)
    if not failures or not config.sampler.retry or config.optimize.allow_unconverged:
        return best
    best_key = (len(failures), best.diagnostics.divergences)
    par0 = getattr(model, "parameterization", None)
    attempts = [_attempt(model, failures, best.diagnostics)]
    tried = {_form(model)}
    ladder = RETRY_LADDER if best.diagnostics.divergences > 0 else LONGER
    for changes in ladder:
        retry = build_model(config, tactic, data, cells)
        s = retry.sampler
        if changes == ("longer",):
            retry.sampler = replace(s, draws=2 * s.draws, tune=2 * s.tune)
        elif changes == ("target_accept",):
            retry.sampler = replace(s, target_accept=_smaller_steps(s.target_accept))
        else:
            retry.sampler = replace(s, target_accept=max(0.99, s.target_accept))
            if par0 is not None:
                par = replace(par0)
                for k in ("effect", "baseline"):
                    if k in changes:
                        setattr(par, k, _flip(getattr(par0, k)))
                if "main" in changes:
                    dims = _crossed_dims(model)
                    if not dims:  # nothing to flip: the rung would refit the same form
                        continue
                    centred = par0.main_centered(dims)
                    par.main, par.centered_columns = "auto", [d for d in dims if d not in centred]
                if isinstance(retry, _Parameterized):  # as model, built for the same family
                    retry.parameterization = par
            elif len(changes) > 1:
                break
        if _form(retry) in tried:  # e.g. already at target_accept 0.99: nothing new to try
            continue
        tried.add(_form(retry))
        log.warning("%s: %s; refitting with %s", label or tactic, "; ".join(failures), _form(retry))
        retry.fit(cells, tactic)
        fitted = FittedTactic(tactic, retry, retry.diagnostics(), time.perf_counter() - t0)
        if changes == ("longer",):  # diagnosed on the long chains, then as many draws as the rest
            retry.thin(2)
        failures = _sampling_failures(config, fitted.diagnostics)
        attempts.append(_attempt(retry, failures, fitted.diagnostics))
        if (len(failures), fitted.diagnostics.divergences) <= best_key:
            best, best_key = fitted, (len(failures), fitted.diagnostics.divergences)
        if not failures:
            break
    best.attempts = attempts
    best.seconds = time.perf_counter() - t0
    return best


def _crossed_dims(model) -> tuple[str, ...]:
    """The segment columns ``model`` pools its effects along (none, or at least two)."""
    dims = tuple(getattr(model, "segment_dims", ()))
    return dims if len(dims) > 1 else ()


def _form(model) -> str:
    par = getattr(model, "parameterization", None)
    where = ""
    if par is not None:
        where = f"baseline={par.baseline} effect={par.effect} "
        if dims := _crossed_dims(model):
            where += f"main_centered={','.join(sorted(par.main_centered(dims))) or 'none'} "
    s = model.sampler
    return f"{where}target_accept={s.target_accept} tune={s.tune} draws={s.draws}"


def _attempt(model, failures: list[str], diagnostics) -> dict:
    par = getattr(model, "parameterization", None)
    return {
        "target_accept": model.sampler.target_accept,
        "tune": model.sampler.tune,
        "draws": model.sampler.draws,
        **({"baseline": par.baseline, "effect": par.effect} if par is not None else {}),
        **(
            {"main_centered": sorted(par.main_centered(dims))}
            if par is not None and (dims := _crossed_dims(model))
            else {}
        ),
        "divergences": diagnostics.divergences,
        "r_hat_max": round(float(diagnostics.r_hat_max), 4),
        "failures": failures,
    }


@contextmanager
def fit_garbage() -> Iterator[Callable[[], int]]:
    """Collect the garbage of each fit as it ends: the PyMC models and compiled graphs of a fit
    and its discarded retries sit in reference cycles, freed at once, not at the next full
    collection (10M run: ~0.05-0.1 GB less held). One full collection first, then what lives
    is frozen out of the collections (``gc.freeze``), so each scans only what the fits made (a
    full collection of a test process's heap took ~0.2 s a fit); unfrozen after, with anything
    a caller had frozen (gc keeps no per-caller state). Yields the collection to call."""
    gc.collect()
    gc.freeze()
    try:
        yield gc.collect
    finally:
        gc.unfreeze()


def fit_tactics(
    cells: pd.DataFrame, data: CustomerData, config: AppConfig, cache: FitCache | None = None
) -> dict[str, FittedTactic]:
    """Every tactic's fit (:func:`fit_tactic`), through ``cache`` (default: as configured)."""
    cache = cache if cache is not None else FitCache.from_settings(config.sampler)
    fits: dict[str, FittedTactic] = {}
    with fit_garbage() as collect:
        for tactic in data.arm_map.tactics():
            with progress.stage(f"fit {tactic.value}"):
                fits[tactic.value] = fit = fit_tactic(config, tactic.value, data, cells, cache)
                d = fit.diagnostics
                progress.note(
                    f"{d.method}, k-hat {d.pareto_k:.2f}"
                    if d.approximate and d.pareto_k is not None
                    else f"r-hat {d.r_hat_max:.3f}, {d.divergences} divergent"
                    + (" (fit cache)" if fit.from_cache else "")
                )
            par = getattr(fit.model, "parameterization", None)
            form = ""
            if par is not None:
                centred = sorted(par.main_centered(_crossed_dims(fit.model)))
                mains = f", centred main effects of {', '.join(centred)}" if centred else ""
                form = f" ({par.baseline} baselines, {par.effect} effects{mains})"
            how = "read from the fit cache" if fit.from_cache else "fitted"
            log.info("%s %s in %.1fs%s: %s", how, tactic.value, fit.seconds, form, fit.diagnostics)
            if not fit.from_cache:
                # a fit read from the cache leaves no cycles (and collecting after each read
                # added ~0.6 s to a cached 10M run's fit stage)
                collect()
    return fits


#: the likelihood a guardrail's 0/1 outcome is fit with
GUARDRAIL_FAMILY = binomial_family.NAME


def fit_guardrail(
    config: AppConfig,
    tactic: str,
    column: str,
    data: CustomerData,
    cells: pd.DataFrame,
    cache: FitCache,
) -> tuple[xr.DataArray, dict]:
    """The posterior change of guardrail ``column``'s rate per treated customer of ``tactic``'s
    arms vs control, dims ``(sample, arm, segment)``, and its fit's diagnostics.

    The tactic's cells with the guardrail's sums as the conversions, fit by the binomial model
    with the run's structure, priors and sampler: one small fit per (guardrail, tactic), cached
    like the tactic's own. Fit once, without the retry ladder; its diagnostics are reported in
    summary.json ``guardrails.fits`` (a guardrail informs the plan, it does not gate it).
    """
    # the guardrail's sums as the conversions (no tactic's own outcome columns: the cache key)
    gcells = tactic_cells(cells, tactic).assign(conversions=cells[guardrail_cell_column(column)])
    model = build_model(config, tactic, data, gcells, family=GUARDRAIL_FAMILY)
    label = f"guardrail-{column}-{tactic}"
    key = fit_cache_key(config, tactic, model, gcells, f"guardrail:{column}")
    with cache.claim(label, key):
        cached = cache.load(label, key, model)  # None when the cache is off (store: a no-op)
        hit = cached is not None
        if cached is not None:
            model = cached
        else:
            model.fit(gcells, tactic)
            cache.store(label, key, model)
    d = model.diagnostics()
    info = {
        "r_hat_max": round(float(d.r_hat_max), 4),
        "divergences": int(d.divergences),
        "from_cache": hit,
    }
    return model.uplift_draws(), info


def guardrail_check(
    config: AppConfig,
    data: CustomerData,
    cells: pd.DataFrame,
    tactics: list[str],
    cache: FitCache,
) -> tuple[pd.DataFrame, dict]:
    """guardrails.csv (:func:`uplift.experiment.readout.guardrail_harm_table` per guardrail
    and tactic) and the diagnostics of each guardrail fit."""
    from uplift.experiment.readout import GUARDRAIL_HARM_COLUMNS, guardrail_harm_table

    tables, fits = [], {}
    sizes = segment_sizes(cells)
    for g in config.guardrails:
        for tactic in tactics:
            with progress.stage(f"guardrail {g.name} ({tactic})"):
                draws, info = fit_guardrail(config, tactic, g.column, data, cells, cache)
            fits[f"{g.name}/{tactic}"] = info
            tables.append(
                guardrail_harm_table(
                    tactic,
                    g.name,
                    draws,
                    threshold=float(g.threshold or 0.0),
                    direction=g.direction,
                    veto=g.veto,
                    veto_probability=g.veto_probability,
                    segment_sizes=sizes,
                    hdi_prob=config.report.hdi_prob,
                )
            )
    table = pd.concat(tables, ignore_index=True) if tables else None
    if table is None:
        table = pd.DataFrame(columns=GUARDRAIL_HARM_COLUMNS)
    return table, fits


def vetoed_cells(guardrails: pd.DataFrame | None) -> list[str]:
    """``segment|arm`` of every vetoed cell of guardrails.csv, sorted (the veto rule's cells)."""
    from uplift.optimize.constraints import cell_label

    if guardrails is None or not len(guardrails):
        return []
    v = guardrails[guardrails["vetoed"].astype(bool)]
    return sorted({cell_label(str(s), str(a)) for s, a in zip(v["segment"], v["arm"], strict=True)})


def covariate_columns(config: AppConfig) -> list[str]:
    cm = config.model.covariate_model
    return list(cm.columns or config.data.columns.covariates)


def covariate_tactics(config: AppConfig, arm_map: ArmMap) -> list[str]:
    """The tactics whose family the row-level covariate model can fit (a 0/1 outcome)."""
    return [t.value for t in arm_map.tactics() if family_of(config, t.value).covariate_model]


def covariate_families() -> str:
    """The families with a 0/1 outcome, for messages: ``binomial`` (or a list)."""
    return " or ".join(f.name for f in FAMILIES.values() if f.covariate_model)


def resolve_covariate_model(config: AppConfig, data: CustomerData) -> dict[str, Any]:
    """``model.covariate_model.enabled``: ``null`` (auto) resolved in place from the data, and
    what was chosen and why (summary.json ``covariate_model_setting``). Auto is on when
    covariates are declared, a tactic's family models a 0/1 outcome, the rows are at hand and
    there are at most ``auto_max_rows`` of them."""
    cm = config.model.covariate_model
    if cm.enabled is not None:
        return {"enabled": bool(cm.enabled), "by": "config"}
    cols = covariate_columns(config)
    n = len(data)
    able = covariate_tactics(config, data.arm_map)
    has_rows = data.rows is not None or (data.engine is not None and data.engine.table is not None)
    if not cols:
        why = "no covariates declared (data.columns.covariates)"
    elif not able:
        why = f"it models a 0/1 outcome and no tactic uses the {covariate_families()} family"
    elif not has_rows:
        why = "data=cells holds no customer rows"
    elif n > cm.auto_max_rows:
        why = (
            f"{n:,} customers, over model.covariate_model.auto_max_rows={cm.auto_max_rows:,}: "
            "its fit reads the rows it models into memory"
        )
    else:
        why = (
            f"covariates {', '.join(cols)} declared, {', '.join(able)} with a 0/1 outcome, "
            f"{n:,} customers (at most auto_max_rows={cm.auto_max_rows:,})"
        )
        cm.enabled = True
        log.info("covariate model on (auto): %s", why)
        return {"enabled": True, "by": "auto", "why": why}
    cm.enabled = False
    if cols:
        log.info("covariate model off (auto): %s", why)
    return {"enabled": False, "by": "auto", "why": why}


def check_covariate_model(config: AppConfig, data: CustomerData) -> None:
    """Fail before any sampling when the row-level covariate model cannot run."""
    if not config.model.covariate_model.enabled:
        return
    cols = covariate_columns(config)
    if not cols:
        raise DataValidationError(
            "model.covariate_model.enabled=true needs covariates: list the raw columns in "
            "data.columns.covariates (or model.covariate_model.columns)"
        )
    missing = [c for c in cols if c not in data.column_names]
    if missing:
        raise DataValidationError(
            f"model.covariate_model.columns {missing} are not columns of the validated data; "
            "add them to data.columns.covariates"
        )
    if not covariate_tactics(config, data.arm_map):
        raise DataValidationError(
            "model.covariate_model models a binary outcome, but no tactic uses the "
            f"{covariate_families()} family (model.families); set "
            "model.covariate_model.enabled=false"
        )


def fit_covariate_models(
    config: AppConfig, data: CustomerData, methods: dict[str, str] | None = None
) -> dict:
    """Row-level covariate model per binary-outcome tactic, fit on its control and arm rows
    (each held to the gate: :func:`_gated_covariate_fit`); ``methods``: tactic -> the method
    to fit by first, instead of ``model.covariate_model.method`` (cross-fitting's folds start
    where the run's own fit ended)."""
    control = data.arm_map.control.name
    models = {}
    for tactic in data.arm_map.tactics():
        if not family_of(config, tactic.value).covariate_model:
            continue
        arms = [a.name for a in data.arm_map.arms_for(tactic)]
        outcome = data.outcome_of(tactic.value, "converted")
        e = data.engine
        if data.rows is None and e is not None and e.table is not None:
            # only the columns and arms this model reads leave the engine
            need = ["customer_id", "arm", outcome, *covariate_columns(config)]
            rows = e.select(list(dict.fromkeys(need)), arms=[control, *arms])
        else:
            rows = data.frame[data.frame["arm"].isin([control, *arms])]
        t0 = time.perf_counter()
        first = (methods or {}).get(tactic.value)
        model = _gated_covariate_fit(config, rows, outcome, control, arms, tactic.value, first)
        models[tactic.value] = model
        log.info(
            "covariate model for %s (%s) in %.1fs: %s",
            tactic.value,
            model.method_used,
            time.perf_counter() - t0,
            model.diagnostics(),
        )
    return models


def covariate_failures(config: AppConfig, model: Any) -> list[str]:
    """Why a covariate model's fit fails the gate's thresholds (empty: it passes)."""
    return config.optimize.gate.failures(model.diagnostics())


def _gated_covariate_fit(
    config: AppConfig,
    rows: pd.DataFrame,
    outcome: str,
    control: str,
    arms: list[str],
    tactic: str,
    method: str | None = None,
) -> Any:
    """The covariate model, held to the segment fits' gate thresholds (r-hat, ESS, divergences;
    Pareto k-hat for the Laplace fit). A fit that fails is refit: NUTS by the nested Laplace
    approximation (the interactions' single scale funnels NUTS when the data pin the slopes
    down: 200k rows, 2 covariates: 4-21 divergences a tactic in ~25 s, Laplace k-hat 0.23-0.32
    in 0.6 s), Laplace by NUTS at target_accept 0.99. ``fit_info`` records the attempts and,
    when the last one fails too, its ``gate_failures``: such a model scores no customer."""
    from uplift.models.covariate import CovariateUpliftModel

    cm = config.model.covariate_model

    def fit(method: str, sampler: Any) -> Any:
        model = CovariateUpliftModel(
            covariate_columns(config),
            categorical=cm.categorical,
            priors=cm.priors,
            sampler=sampler,
            max_patterns=cm.max_patterns,
            method=method,
            max_levels=cm.max_levels,
            unseen=cm.unseen,
        )
        return model.fit(rows, outcome, "arm", [control], arms, tactic)

    s = config.sampler
    model = fit(method or str(cm.method), s)
    failures = covariate_failures(config, model)
    attempts: list[str] = []
    if failures:
        safer = ("exact", replace(s, target_accept=max(0.99, s.target_accept)))
        ladder = [("approximate", s), safer] if model.method_used == "exact" else [safer]
        for method, sampler in ladder:
            attempts.append(f"{model.method_used}: {'; '.join(failures)}")
            log.warning(
                "covariate model for %s: %s failed the gate (%s); refitting %s",
                tactic,
                model.method_used,
                "; ".join(failures),
                "by the nested Laplace approximation"
                if method == "approximate"
                else f"by NUTS at target_accept={sampler.target_accept}",
            )
            model = fit(method, sampler)
            failures = covariate_failures(config, model)
            if not failures:
                break
    model.fit_info["attempts"] = attempts
    model.fit_info["gate_failures"] = list(failures)
    if failures:
        log.warning(
            "covariate model for %s failed the gate after %d refit(s) (%s): its arms' customers "
            "are listed in hash order",
            tactic,
            len(attempts),
            "; ".join(failures),
        )
    return model


def build_allocator(config: AppConfig, vetoed: list[str] | None = None) -> BudgetAllocator:
    """The configured allocator; with ``vetoed`` cells (``segment|arm``) the ``guardrail_veto``
    rule is added to ``optimize.constraints`` (:class:`uplift.optimize.constraints.GuardrailVeto`)."""
    oc = config.optimize
    veto = [{"type": "guardrail_veto", "cells": list(vetoed)}] if vetoed else []
    return allocator_from_settings(
        oc.budget,
        max_offers_per_customer=oc.max_offers_per_customer,
        objective=oc.objective.value,
        alpha=oc.alpha,
        risk_aversion=oc.risk_aversion,
        constraints=[dict(c) for c in oc.constraints] + veto,
        integer=oc.integer,
        integer_method=oc.integer_method,
        solver=oc.solver,
        time_limit=oc.time_limit,
        hdi_prob=config.report.hdi_prob,
    )


def eligible_customers(config: AppConfig, cells: pd.DataFrame) -> pd.Series:
    """Customers per segment the plan may treat: segment size x ``optimize.population_scale``."""
    return (segment_sizes(cells) * config.optimize.population_scale).round()


PROFIT_DEPENDENT_RULES = {"roi_floor", "loss_probability"}


def preflight_allocation(config: AppConfig, cells: pd.DataFrame, arm_map: ArmMap) -> None:
    """Check the allocation rules before any sampling: unknown rule types or tactics, and rules
    that conflict whatever the posterior says (spend bands, capacities, exclusions), fail now.

    Solved on a single all-zero profit scenario; rules that depend on profit are skipped here.
    """
    import xarray as xr

    segments = sorted(cells["segment"].unique())
    zeros = {
        t.value: xr.DataArray(
            np.zeros((1, len(arm_map.arms_for(t)), len(segments))),
            dims=("sample", "arm", "segment"),
            coords={"arm": [a.name for a in arm_map.arms_for(t)], "segment": segments},
        )
        for t in arm_map.tactics()
        if not family_of(config, t.value).prices  # prices are not budget lines
    }
    if not zeros:
        return
    values = pd.Series(0.0, index=segments)
    problem = AllocationProblem.from_uplift(
        zeros, values, arm_map, eligible_customers(config, cells)
    )
    check = copy.deepcopy(config)
    check.optimize.constraints = [
        c for c in config.optimize.constraints if dict(c).get("type") not in PROFIT_DEPENDENT_RULES
    ]
    check.optimize.objective = type(config.optimize.objective)("expected")
    check.optimize.integer = False
    try:
        build_allocator(check).solve(problem)
    except (ValueError, TypeError, KeyError) as e:  # a rule naming what is not in this data
        raise AllocationError(f"optimize.constraints: {e}") from e


def readout_and_next_wave(
    config: AppConfig,
    fits: dict[str, FittedTactic],
    values: dict[str, pd.Series],
    arm_map: ArmMap,
    cells: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ship / keep testing / stop per tactic arm and segment (in money), and Thompson shares of
    the next wave per segment from the posterior profit of every arm (control at 0)."""
    from uplift.experiment.readout import DecisionRule, readout_table

    rc = config.readout
    rule = DecisionRule(ship_prob=rc.ship_prob, stop_prob=rc.stop_prob, tolerance=rc.tolerance)
    sizes = segment_sizes(cells)
    tables = []
    for tactic, fit in fits.items():
        tables.append(
            readout_table(
                {tactic: fit.draws()},
                values[tactic],
                arm_map,
                segment_sizes=sizes,
                rule=rule,
                hdi_prob=config.report.hdi_prob,
                metric=fit.model.metric,
            )
        )
    shares = thompson_shares(config, {t: f.draws() for t, f in fits.items()}, values, arm_map)
    return pd.concat(tables, ignore_index=True), shares


def thompson_shares(
    config: AppConfig,
    draws: dict[str, Any],
    values: dict[str, pd.Series],
    arm_map: ArmMap,
    min_share: float | None = None,
) -> pd.DataFrame:
    """Thompson shares of the next wave per segment (``next_wave_shares.csv``) from each budget
    tactic's uplift draws: posterior profit of every arm, control at 0. One function for the run
    and for ``uplift next-wave`` (:mod:`uplift.waves`), so both give the same shares.
    ``min_share``: None uses ``readout.next_wave_min_share``."""
    import xarray as xr

    from uplift.experiment.nextwave import next_wave_shares
    from uplift.experiment.readout import profit_draws

    profits = [profit_draws(d, values[t], arm_map) for t, d in draws.items()]
    return next_wave_shares(
        xr.concat(profits, dim="arm"),
        config.readout.next_wave_min_share if min_share is None else min_share,
        control=arm_map.control.name,
        seed=config.sampler.seed,
    )


#: customer column each family's outcome is read from when a plan is scored on held-out rows
FAMILY_OUTCOME = {name: f.outcome for name, f in FAMILIES.items() if f.outcome is not None}


def crossfit_plan(
    config: AppConfig,
    data: CustomerData,
    cells: pd.DataFrame,
    values: dict[str, pd.Series],
    tactics: list[str],
    cache: FitCache | None = None,
    covariate_methods: dict[str, str] | None = None,
):
    """Cross-fitted value of the plan this run's procedure chooses, on customers its fit never
    saw: fit on K-1 folds, plan for the full eligible base with the same optimizer and rules,
    score the plan on the held-out fold (stratified difference in means per segment x arm).
    Each fold's uplift draws go through the fit cache (``cache``; default: as configured), so a
    sweep over ``optimize.*`` re-plans every fold from one set of fits. With the covariate
    model on, each fold fits its covariate models too (``covariate_methods``: tactic -> the
    method the run's own fit ended with, tried first), plans over its own customer strata,
    lists its customers as targets.csv would, and is valued on the held-out customers that
    list treats (:attr:`~uplift.evaluate.crossfit.FoldPlan.policy`).
    """
    cache = cache if cache is not None else FitCache.from_settings(config.sampler)
    elig = eligible_customers(config, cells)
    allocator = build_allocator(config)
    arm_map = data.arm_map
    arms = [a for a in arm_map.treated if a.tactic.value in tactics]
    draws = config.evaluate.crossfit_draws
    fold_config = config
    if draws is not None and draws < config.sampler.draws:  # never more than the main fit
        fold_config = copy.copy(config)
        fold_config.sampler = replace(config.sampler, draws=draws)

    folds = config.evaluate.crossfit_folds
    by_customer = bool(config.model.covariate_model.enabled)
    done = [0]
    checked: list[dict[str, Any]] = []  # each fold fit's convergence check (FOLD_FIT_COLUMNS)

    def plan_on(train: CustomerData, tcells: pd.DataFrame):
        fits = {}
        done[0] += 1
        for t in tactics:
            with progress.stage(f"fold {done[0]}/{folds}: fit {t}"):
                own = tactic_cells(tcells, t)  # its own outcome (data.columns.outcomes)
                model = build_model(fold_config, t, train, own)

                def draw(
                    model: UpliftModel = model, t: str = t, own: pd.DataFrame = own
                ) -> xr.DataArray:
                    # mended along the main fits' retry ladder; the check of the fit kept
                    # travels with the draws (and through the fit cache)
                    best = _fit_tactic(
                        fold_config,
                        t,
                        train,
                        own,
                        model,
                        time.perf_counter(),
                        label=f"cross-fitting fold {done[0] - 1} {t}",
                    )
                    draws = best.model.uplift_draws().assign_attrs(
                        fit_diagnostics=json.dumps(best.diagnostics.to_dict()),
                        fit_refits=max(0, len(best.attempts) - 1),
                    )
                    del best
                    collect()  # the fit's models and graphs, and its retries' (fit_garbage)
                    return draws

                if cache.enabled:
                    key = fit_cache_key(fold_config, t, model, own, "crossfit_fold")
                    fits[t] = cache.draws(f"{t}-fold", key, draw)[0]
                else:
                    fits[t] = draw()
                checked.append(_fold_fit_check(config, done[0] - 1, t, fits[t]))
        problem = AllocationProblem.from_uplift(fits, values, arm_map, elig)
        if not by_customer:
            return allocator.solve(problem)
        # the run's procedure: the fold's covariate models place every customer of the base in
        # strata and choose the plan's customers; the held-out ones are scored as listed
        with progress.stage(f"fold {done[0]}/{folds}: covariate model"):
            models = fit_covariate_models(fold_config, train, covariate_methods)
        passed = {t: m for t, m in models.items() if m.passed_gate}
        if not passed:
            return allocator.solve(problem)
        own = own_uplift(passed, data.frame)  # scored once: for the strata and the list
        scores = ranking_scores(own, data.frame["customer_id"])
        problem, strata, _ = plan_strata(config, data, values, fits, problem, passed, elig, own)
        plan = allocator.solve(problem)
        listed = list_customers(config, data.frame, plan.table, strata, scores, values)
        table, claimed = plan.table, plan.expected_profit
        if strata is not None:  # the list's claim, as the run's headline is
            table = collapse(plan.table, problem, config.report.hdi_prob)
            claimed += strata.selection_credit(plan.table, listed.table)
        return FoldPlan(table, claimed, policy=listed_policy(listed.table))

    def fit_and_plan(train_rows: pd.DataFrame):
        train = replace(data, rows=train_rows, engine=None)
        return plan_on(train, aggregate_cells(train))

    outcome = {
        a.name: data.outcome_of(
            a.tactic.value, FAMILY_OUTCOME[config.model.family_of(a.tactic.value)]
        )
        for a in arms
    }
    e = data.engine
    # families fit on count histograms of the training rows need the rows of each fold, and so
    # do tactics fit on their own outcome column (the fold moments carry the shared ones only)
    needs_rows = any(family_of(config, t).histograms for t in tactics) or bool(data.outcomes)
    # and so do covariate models (they choose the customers, scored one by one)
    needs_rows = needs_rows or by_customer
    with fit_garbage() as collect:
        if data.rows is None and e is not None and e.table is not None and not needs_rows:
            result = crossfit_in_engine(config, data, plan_on, arms, outcome, values)
        else:
            keep = data.frame["arm"].isin([arm_map.control.name, *[a.name for a in arms]])
            result = crossfit_plan_value(
                data.frame[keep],
                fit_and_plan,
                arm_map,
                seed=config.evaluate.seed,
                folds=config.evaluate.crossfit_folds,
                outcome=outcome,
                value={a.name: values[a.tactic.value] for a in arms},
                level=config.evaluate.crossfit_level,
            )
    return _with_fold_checks(result, checked)


def _fold_fit_check(config: AppConfig, fold: int, tactic: str, draws: Any) -> dict[str, Any]:
    """One fold fit's convergence, judged by the run's gate (``FOLD_FIT_COLUMNS``). A fold fit
    that fails is refit along the main fits' ladder (``refits``: how many times) but never
    refused: the run's decision rests on the main fits. The cross-fitted value and the
    calibrated headline rest on the fold fits, so what still fails is reported. Draws from
    a fold fit's cache entry (its key holds this module's code) carry the check."""
    d = Diagnostics(**json.loads(draws.attrs["fit_diagnostics"]))
    return {
        "fold": fold,
        "tactic": tactic,
        "refits": int(draws.attrs["fit_refits"]),
        "method": d.method,
        "divergences": d.divergences,
        "r_hat_max": d.r_hat_max,
        "ess_bulk_min": d.ess_bulk_min,
        "ess_tail_min": d.ess_tail_min,
        "failures": "; ".join(config.optimize.gate.failures(d)),
    }


def _with_fold_checks(result, checked: list[dict[str, Any]]):
    """``result`` with its fold fits' checks: ``fold_fits`` and, per fold, the number that
    failed (``fits_unconverged`` in crossfit_folds.csv); a warning names them."""
    table = pd.DataFrame(checked, columns=FOLD_FIT_COLUMNS)
    failed = table[table["failures"] != ""].groupby("fold").size()
    per_fold = result.per_fold.assign(
        fits_unconverged=result.per_fold["fold"].map(failed).fillna(0).astype(int)
    )
    out = replace(result, per_fold=per_fold, fold_fits=table)
    if bad := out.unconverged:
        log.warning(
            "cross-fitting: %d of %d fold fits did not pass the convergence gate (%s); the "
            "cross-fitted value and the calibrated headline are less certain",
            len(bad),
            len(table),
            "; ".join(bad),
        )
    return out


def crossfit_in_engine(config: AppConfig, data: CustomerData, plan_on, arms, outcome, values):
    """Cross-fitting where the rows live: per-(fold, segment, arm) cells from the engine (the
    fold a salted hash of the customer id, ``evaluate.seed``), each fold's training cells the
    exact sum of the other folds', each plan scored on its fold's moments. Only cells move."""
    from uplift.data.engine import fold_cells, fold_moments, train_cells
    from uplift.evaluate.crossfit import crossfit_plan_value_cells

    e, ev, arm_map = data.engine, config.evaluate, data.arm_map
    assert e is not None
    dims, guards = list(segment_dimensions(data)), list(data.guardrails)
    fc = fold_cells(e.table, arm_map, dims, guards, ev.seed, ev.crossfit_folds)
    fc = fc[fc["arm"].isin({arm_map.control.name, *[a.name for a in arms]})]
    return crossfit_plan_value_cells(
        fold_moments(fc),
        lambda k: train_cells(fc, k, arm_map, dims, guards),
        lambda tcells: plan_on(data, tcells),
        arm_map,
        seed=ev.seed,
        folds=ev.crossfit_folds,
        outcome=outcome,
        value={a.name: values[a.tactic.value] for a in arms},
        level=ev.crossfit_level,
    )


def expected_split(config: AppConfig, arm_map: ArmMap) -> dict[str, float] | None:
    """Design weights per arm: configured, or known from the synthetic design, or None (equal)."""
    if config.health.expected_split:
        return dict(config.health.expected_split)
    if config.data.source is DataSource.synthetic:
        share = config.data.synthetic.control_share
        treated = (1 - share) / len(arm_map.treated)
        return {arm_map.control.name: share} | {a.name: treated for a in arm_map.treated}
    return None


def check_health(config: AppConfig, data: CustomerData) -> dict:
    """Sample-ratio mismatch overall and per segment, before any fit; refuses unless overridden."""
    from uplift.experiment.health import HealthCheckError
    from uplift.experiment.run_checks import srm_for_data

    weights = expected_split(config, data.arm_map)
    try:
        srm = srm_for_data(data, weights, config.health.srm_alpha)
    except ValueError as e:  # e.g. an expected split naming an arm this run does not have
        raise HealthCheckError([f"health.expected_split: {e}"]) from None
    info = {
        "srm_passed": srm.ok,
        "srm_p_value": srm.overall.p_value,
        "srm_alpha": config.health.srm_alpha,
        # the per-segment tests are one family: Holm-adjusted (uplift.experiment.health)
        "srm_segments_tested": len(srm.segments),
        "srm_segment_adjustment": "holm",
        "expected_split": weights or "equal",
        "failures": srm.failures,
        "overridden": (not srm.ok) and config.health.override,
    }
    if not srm.ok and not config.health.override:
        raise HealthCheckError(
            [f"sample-ratio mismatch: {f}" for f in srm.failures[:10]]
            + [
                "if the design split was unequal set +health.expected_split.<arm>=<weight> for "
                "every arm; "
                "to read out anyway set health.override=true"
            ]
        )
    return info


def check_balance(config: AppConfig, data: CustomerData) -> tuple[dict | None, pd.DataFrame | None]:
    """Covariate balance beside the SRM test (``data.columns.covariates`` set): standardised
    mean difference of each numeric covariate, each treated arm vs control, overall and per
    segment (balance.csv), and summary.json ``health.balance``.

    Flagged on the overall SMD (|SMD| > ``health.balance_threshold``): a segment's SMD is noise
    of sd ~sqrt(2 / n per arm) (0.14 at 100 customers an arm), so segments are reported (the
    worst one per covariate and arm) but do not flag. A flag warns; it refuses the run only with
    ``health.balance_fail=true`` (and not ``health.override``). Non-numeric covariates are
    skipped (named in ``skipped``): an SMD needs a mean.
    """
    from uplift.experiment.health import (
        OVERALL,
        HealthCheckError,
        covariate_balance,
        covariate_balance_moments,
    )

    covs = [c for c in config.data.columns.covariates if c not in data.segment_columns]
    if not covs:
        return None, None
    e = data.engine
    moments = None
    if data.rows is None and e is not None and e.table is not None:  # sums from the engine
        from uplift.data.engine import covariate_moments

        numeric, moments = covariate_moments(e.table, covs)
    else:
        f = data.frame
        numeric = [
            c
            for c in covs
            if pd.api.types.is_numeric_dtype(f[c]) and not pd.api.types.is_complex_dtype(f[c])
        ]
    hc = config.health
    info: dict = {
        "threshold": hc.balance_threshold,
        "covariates": numeric,
        "skipped": [c for c in covs if c not in numeric],
    }
    if not numeric:
        info |= {"passed": True, "flagged": [], "worst": []}
        return info, None
    if moments is not None:
        result = covariate_balance_moments(
            moments, numeric, data.arm_map.control.name, threshold=hc.balance_threshold
        )
    else:
        result = covariate_balance(
            f.assign(**{c: f[c].astype(float) for c in numeric}),
            "arm",
            numeric,
            data.arm_map.control.name,
            segment_col="segment",
            threshold=hc.balance_threshold,
        )
    table = result.table
    overall = table[table["segment"] == OVERALL]
    segs = table[table["segment"] != OVERALL].assign(abs_smd=lambda t: t["smd"].abs())
    worst = []
    for r in overall.itertuples(index=False):
        mine = segs[(segs["covariate"] == r.covariate) & (segs["arm"] == r.arm)].dropna(
            subset=["abs_smd"]
        )
        w = mine.loc[mine["abs_smd"].idxmax()] if len(mine) else None
        worst.append(
            {
                "covariate": r.covariate,
                "arm": r.arm,
                "smd": float(r.smd),
                "flagged": bool(r.flagged),
                "worst_segment": None if w is None else str(w["segment"]),
                "worst_segment_smd": None if w is None else float(w["smd"]),
                "worst_segment_n_arm": None if w is None else int(w["n_arm"]),
            }
        )
    flagged = [
        f"{r.covariate!r} in arm {r.arm!r}: SMD {r.smd:+.3f} vs control (|SMD| > "
        f"{hc.balance_threshold:g}; mean {r.mean_arm:.4g} vs {r.mean_control:.4g})"
        for r in overall[overall["flagged"]].itertuples(index=False)
    ]
    info |= {
        "passed": not flagged,
        "flagged": flagged,
        "worst": worst,
        "fail_on_imbalance": hc.balance_fail,
    }
    if flagged:
        log.warning("covariate imbalance: %s", "; ".join(flagged))
        if hc.balance_fail and not hc.override:
            raise HealthCheckError(
                [f"covariate imbalance: {m}" for m in flagged]
                + [
                    "the arms differ before treatment: check the assignment; to read out anyway "
                    "set health.balance_fail=false (warn only) or health.override=true"
                ]
            )
    return info, table


def run(config: AppConfig, output_dir: str | Path) -> RunResult:
    """Run the whole pipeline and write every artifact into ``output_dir``.

    Artifacts are staged beside the folder and published when the run ends, ``summary.json``
    last with its ``status`` (:mod:`uplift.report.run_folder`): ``complete``, or ``refused``
    when the gate or the rules stopped the plan (the run's tables are published with it and
    the error is raised). Any other failure leaves only a summary saying why.
    """
    config = copy.deepcopy(config)  # the run resolves auto settings in its own copy
    final = Path(output_dir)
    result = run_folder.run_staged(
        final,
        config.report.existing.value,
        config.experiment_name,
        lambda stage: _run_staged(config, stage),
        publish_on=(ConvergenceGateError, AllocationError),
    )
    stage = run_folder.staging_dir(final)
    result.output_dir = final
    result.files = {k: final / p.relative_to(stage) for k, p in result.files.items()}
    return result


def unit_values(
    config: AppConfig, data: CustomerData, cells: pd.DataFrame, segment_value
) -> dict[str, pd.Series]:
    """Value of one unit of each tactic's metric per segment (a bad value source is a data
    error, raised before sampling)."""
    vc = config.value
    try:
        serve = cost_to_serve_of(config, data)
        return {
            t.value: tactic_value_per_unit(
                t.value,
                family_of(config, t.value).metric,
                cells,
                vc,
                segment_value,
                check_overrides(vc.tactics),
                serve,
            )
            for t in data.arm_map.tactics()
        }
    except ValueError as e:
        raise DataValidationError(str(e)) from None


@dataclass(frozen=True)
class _FixedValue:
    """A value per conversion fixed per segment (probes the value rules, see below)."""

    values: pd.Series

    def per_conversion(self, cells: pd.DataFrame) -> pd.Series:
        return self.values


def unit_value_draws(
    config: AppConfig, prepared: Prepared, n_draws: int
) -> dict[str, xr.DataArray] | None:
    """Draws ``(sample, segment)`` of each tactic's value per unit that rests on the CLV
    (``value.kind=clv``; None otherwise, or when customer_value.csv has no interval columns).

    Every value rule is affine in the value per conversion (a CLV minus the cost to serve, a
    customer-weighted mean net of acquisition cost...), so one probe per segment (that segment's
    value + 1) gives each tactic's exact linear map from the per-conversion value to its own;
    the CLV draws go through that map. Tactics that do not depend on the CLV (a margin per
    order, an override) are left out and keep their point value.
    """
    sv = prepared.segment_value
    if sv is None or not hasattr(sv, "per_conversion_draws"):
        return None
    import xarray as xr

    cells, data = prepared.cells, prepared.data
    try:
        draws = sv.per_conversion_draws(cells, n_draws=n_draws, seed=config.sampler.seed)
    except ValueError as e:  # no interval columns: point values, as before
        log.warning("CLV uncertainty not propagated into the plan: %s", e)
        return None
    v0 = sv.per_conversion(cells).astype(float)
    segs = [str(g) for g in v0.index]
    base = prepared.values
    jac: dict[str, np.ndarray] = {t: np.zeros((len(segs), len(segs))) for t in base}
    for k in range(len(segs)):
        probe = v0.copy()
        probe.iloc[k] += 1.0
        moved = unit_values(config, data, cells, _FixedValue(probe))
        for t in base:
            jac[t][:, k] = (moved[t].reindex(v0.index) - base[t].reindex(v0.index)).to_numpy()
    delta = draws.transpose("sample", "segment").sel(segment=list(v0.index)).values - v0.to_numpy()
    out = {}
    for t, j in jac.items():
        if np.abs(j).max() < 1e-9:
            continue
        vals = base[t].reindex(v0.index).to_numpy()[None, :] + delta @ j.T
        out[t] = xr.DataArray(
            vals, dims=("sample", "segment"), coords={"segment": segs}, name="value_per_unit"
        )
    return out or None


def prepare(config: AppConfig, out: Path) -> Prepared:
    """The data stage: read and validate rows, run every check that can run before sampling,
    aggregate cells and value one unit of each tactic's metric. Settings left to the data
    (``model.covariate_model.enabled: null``) are resolved in ``config`` itself: :func:`run`
    passes its own copy."""
    data, truth = load_data(config, out)
    covariate_setting = resolve_covariate_model(config, data)
    s = config.sampler
    if data.rows is None and data.engine is not None:  # aggregates from the engine
        e = data.engine
        check_plausible_engine(
            e.table,
            e.cells,
            e.n_rows,
            config.data.checks,
            revenue_column=config.data.columns.revenue if data.has_revenue else None,
            reference=lambda: e.frame,
            chains=s.chains,
            draws=s.draws,
            tune=s.tune,
            cores=os.cpu_count() or 1,
        )
    else:
        check_plausible(
            data.frame,
            config.data.checks,
            revenue_column=config.data.columns.revenue if data.has_revenue else None,
            chains=s.chains,
            draws=s.draws,
            tune=s.tune,
            cores=os.cpu_count() or 1,
        )
    cells = aggregate_cells(data)
    check_families(config, data)
    segment_value = segment_value_model(config, data)
    values = unit_values(config, data, cells, segment_value)
    preflight_allocation(config, cells, data.arm_map)
    check_covariate_model(config, data)
    return Prepared(data, cells, values, segment_value, truth, covariate_setting)


def score_customers(config: AppConfig, data: CustomerData) -> tuple[dict, pd.DataFrame | None]:
    """Row-level covariate models and every customer's predicted uplift per tactic whose model
    passed the gate (None when none did: the target list is then in hash order)."""
    models = fit_covariate_models(config, data)
    passed = {t: m for t, m in models.items() if m.passed_gate}
    if not passed:
        return models, None
    return models, customer_scores(passed, data.frame, config.report.hdi_prob)


def customer_scores(models: dict, frame: pd.DataFrame, hdi_prob: float) -> pd.DataFrame | None:
    """customer_scores.csv: each customer's predicted uplift under each model (None: none)."""
    if not models:
        return None
    scores = pd.concat(
        [m.predict_uplift(frame, hdi_prob=hdi_prob).assign(tactic=t) for t, m in models.items()],
        ignore_index=True,
    ).rename(columns={"customer": "customer_id"})
    return scores[["customer_id", "tactic", *scores.columns.drop(["customer_id", "tactic"])]]


def ranking_scores(own: dict[str, np.ndarray], ids: pd.Series) -> pd.DataFrame:
    """What :func:`customer_targets` ranks by, from each customer's posterior-mean uplift per
    arm (``own``: :func:`~uplift.app.strata_run.own_uplift`, ``ids`` in its order;
    ``uplift_sd`` 0: a fold's list needs the ranking, not the intervals)."""
    return pd.concat(
        [
            pd.DataFrame({"customer_id": ids.to_numpy(), "arm": arm, "uplift_mean": x})
            for arm, x in own.items()
        ],
        ignore_index=True,
    ).assign(uplift_sd=0.0)


def list_customers(
    config: AppConfig,
    frame: pd.DataFrame,
    table: pd.DataFrame,
    strata: Any,
    scores: pd.DataFrame | None,
    values: dict[str, pd.Series],
) -> CustomerTargets:
    """The customers a plan (``table``, per stratum when ``strata``) treats, per segment."""
    k = config.optimize.max_offers_per_customer
    seed = config.sampler.seed
    if strata is None:
        return customer_targets(
            table, frame, seed=seed, scores=scores, values=values, max_offers_per_customer=k
        )
    # chosen stratum by stratum (the plan's own cells), then reported per segment
    return collapse_targets(
        customer_targets(
            table,
            frame.assign(segment=strata.labels),
            seed=seed,
            scores=scores,
            values=with_strata(values, strata.sizes.index),
            max_offers_per_customer=k,
        )
    )


def listed_policy(targets: pd.DataFrame) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Rows -> 0/1 per treated arm: whether the list ``targets`` gives the row's customer
    the arm (:attr:`uplift.evaluate.crossfit.FoldPlan.policy`)."""
    pairs = set(zip(targets["customer_id"].map(str), targets["arm"].map(str), strict=True))
    arms = sorted({a for _, a in pairs})

    def policy(rows: pd.DataFrame) -> pd.DataFrame:
        ids = rows["customer_id"].map(str).to_numpy()
        return pd.DataFrame({a: [float((i, a) in pairs) for i in ids] for a in arms})

    return policy


def gate_status(config: AppConfig, fits: dict[str, FittedTactic], checks) -> GateStatus:
    """Fits that fail the diagnostics or predictive-check thresholds, and whether the plan is
    refused for them (unless ``optimize.allow_unconverged``)."""
    gate = config.optimize.gate
    failures = {t: gate.failures(f.diagnostics) for t, f in fits.items()}
    for t, reasons in checks.failures(gate.ppc_max_extreme_share).items():
        failures[t] = [*failures[t], *reasons]
    failures = {t: r for t, r in failures.items() if r}
    status = GateStatus(failures, bool(failures) and config.optimize.allow_unconverged)
    if status.overridden:
        log.warning(
            "optimize.allow_unconverged=true: the plan uses fit(s) that failed the convergence "
            "gate (%s); allocation.csv, targets.csv, readout.csv say so (gate_passed)",
            ", ".join(failures),
        )
    elif failures:
        detail = "; ".join(f"{t}: {', '.join(r)}" for t, r in failures.items())
        status.message = (
            f"optimizer refused unconverged fit(s) ({detail}). {gate_fix(config, failures)}, "
            "or set optimize.allow_unconverged=true to use them anyway."
        )
    return status


def gate_fix(config: AppConfig, failures: dict[str, list[str]]) -> str:
    """What mends these gate failures: divergences are the model's geometry (a funnel), which
    more draws do not cure but the other parameterization does; r-hat and ESS want longer
    chains; a failed predictive check wants a different model."""
    if config.sampler.approximate:
        return "Use an MCMC backend (sampler=nutpie) for decisions"
    reasons = [r for rs in failures.values() for r in rs]
    fixes = []
    if any(r.startswith("divergences") for r in reasons):
        tried = (
            "the automatic refits (target_accept 0.99, or 0.995 from 0.99, then the other "
            "parameterization of the "
            "effects, of their main effects (crossed segments), of the baselines, of both: "
            "summary.json diagnostics.<tactic>.attempts) "
            "did not remove them"
            if config.sampler.retry
            else "sampler.retry=true refits with target_accept 0.99 and the other "
            "parameterization automatically"
        )
        fixes.append(
            "Divergences come from the model's geometry, not from too few draws: "
            f"{tried}; set model.parameterization.baseline, model.parameterization.effect and "
            "model.parameterization.main (centered or non_centered, see the README's "
            "Parameterization section) or raise "
            "sampler.target_accept"
        )
    if any(r.startswith(("r_hat", "ess_")) for r in reasons):
        fixes.append("sample longer for r-hat and ESS (sampler.draws, sampler.tune)")
    if any(r.startswith("posterior predictive") for r in reasons):
        fixes.append("revisit the model where ppc.csv shows it misses the data (model.families)")
    text = "; ".join(fixes) or "Revisit the model (ppc.csv)"
    return text[0].upper() + text[1:]


def decide(
    config: AppConfig,
    prepared: Prepared,
    fits: dict[str, FittedTactic],
    vetoed: list[str] | None = None,
    covariate_models: dict | None = None,
) -> Decision:
    """The budget plan over the budget tactics' posterior draws, or the optimizer's error;
    ``vetoed`` (``segment|arm``) cells a guardrail holds back get no customers. With
    ``covariate_models`` that passed the gate the plan is over customer strata
    (``optimize.customer_strata``, :func:`plan_strata`)."""
    uplift = {t: f.draws() for t, f in fits.items()}
    n_draws = next(iter(uplift.values())).sizes["sample"]
    value_draws = unit_value_draws(config, prepared, n_draws)
    eligible = eligible_customers(config, prepared.cells)
    problem = AllocationProblem.from_uplift(
        uplift,
        prepared.values,
        prepared.data.arm_map,
        eligible,
        value_draws=value_draws,
    )
    strata, why = None, None
    if covariate_models:
        problem, strata, why = plan_strata(
            config, prepared.data, prepared.values, uplift, problem, covariate_models, eligible
        )
    allocator = build_allocator(config, vetoed)
    try:
        allocation = allocator.solve(problem)
    except AllocationError as e:
        return Decision(None, problem, allocator, e, strata)
    if why is not None:
        allocation.notes.append(why)
    if not config.model.covariate_model.enabled and (declared := covariate_columns(config)):
        setting = prepared.covariate_setting
        binary = bool(covariate_tactics(config, prepared.data.arm_map))
        off = (
            f"the covariate model is off by default here ({setting['why']})"
            if setting.get("by") == "auto"
            else "model.covariate_model.enabled=false"
        )
        allocation.notes.append(
            f"{COVARIATES_UNUSED}: {', '.join(declared)} are declared but {off}, so the plan "
            "treats every customer of a segment alike"
            + (
                "; with it on, a row-level model of how uplift varies with them lets the plan "
                "choose the most responsive customers within segments (customer strata)"
                if binary
                else ""
            )
        )
    by_segment = None
    if strata is not None:
        table = collapse(allocation.table, problem, config.report.hdi_prob)
        by_segment = replace(allocation, table=table)  # totals and solver facts: the plan's
        n = len(strata.sizes)
        allocation.notes.append(
            f"customer strata: each segment split into up to {config.optimize.customer_strata} "
            f"strata ({n} in all) by customers' expected profit under the covariate model, so "
            "the plan can treat a segment's responsive customers only (allocation_strata.csv; "
            "allocation.csv sums them per segment)"
        )
    drawn = sorted(set(value_draws or {}) & set(uplift))
    if drawn:
        allocation.notes.append(
            f"value per unit drawn with the CLV's uncertainty for {', '.join(drawn)} "
            "(value.kind=clv, draw-aligned with the uplift): the plan's intervals, CVaR and "
            "chance of a loss include it"
        )
    return Decision(allocation, problem, allocator, strata=strata, by_segment=by_segment)


def plan_strata(
    config: AppConfig,
    data: CustomerData,
    values: dict[str, pd.Series],
    uplift: dict[str, xr.DataArray],
    problem: AllocationProblem,
    covariate_models: dict,
    eligible: pd.Series,
    own: dict[str, np.ndarray] | None = None,
) -> tuple[AllocationProblem, Any, str | None]:
    """``problem`` over the customer strata of ``data`` (the customers the plan is for) from
    the covariate models that passed the gate (:func:`uplift.app.strata_run.customer_strata`;
    ``own``: the customers' uplifts under them, when already computed), with the strata; or
    ``problem`` as it was, None and why not."""
    bins = config.optimize.customer_strata
    passed = {t: m for t, m in covariate_models.items() if m.passed_gate and t in uplift}
    if bins < 2:
        return problem, None, None
    if not passed:
        return (
            problem,
            None,
            ("customer strata: no covariate model passed the gate, so the plan is per segment"),
        )
    if problem.spend_mask.any():
        return (
            problem,
            None,
            (
                "customer strata: the plan has spend-type cells, which cannot be split by customer; "
                "it is per segment"
            ),
        )
    rows = data.select(list(dict.fromkeys(["customer_id", "segment", *covariate_columns(config)])))
    costs = problem.cells.groupby("arm")["cost"].first().astype(float).to_dict()
    strata = customer_strata(rows, uplift, values, costs, passed, eligible, bins, own)
    return refine_problem(problem, strata.sizes, strata.deviation, values), strata, None


def plan_targets(config: AppConfig, run: RunSummary) -> CustomerTargets:
    """Which customers get which offer, within the plan's counts per segment."""
    assert run.allocation is not None
    e = run.prepared.data.engine
    k = config.optimize.max_offers_per_customer
    in_engine = run.prepared.data.rows is None and e is not None and e.table is not None
    if in_engine and e is not None and run.scores is None and k == 1:  # hash order, in engine
        from uplift.optimize.targets import customer_targets_engine

        return customer_targets_engine(run.allocation.table, e.table, seed=config.sampler.seed)
    d = run.decision
    table = run.allocation.table if d.strata is None or d.allocation is None else d.allocation.table
    return list_customers(
        config, run.prepared.data.frame, table, d.strata, run.scores, run.prepared.values
    )


def cross_fit(
    config: AppConfig, run: RunSummary, tactics: list[str], cache: FitCache | None = None
) -> None:
    """The cross-fitted plan value into ``run`` (``run.crossfit``), or why it was skipped
    (``run.crossfit_skipped``); nothing with ``evaluate.crossfit_folds=0``."""
    if config.evaluate.crossfit_folds < 2:
        return
    p = run.prepared
    try:
        methods = {t: str(m.method_used) for t, m in run.covariate_models.items()}
        run.crossfit = crossfit_plan(config, p.data, p.cells, p.values, tactics, cache, methods)
    except ValueError as e:  # too few customers per fold, spend-type cells
        run.crossfit_skipped = str(e)
        log.warning("cross-fitting skipped: %s", e)


def budget_frontier(config: AppConfig, decision: Decision) -> Frontier:
    """The plan re-solved over a grid of budgets, with the chosen budget and one
    :func:`~uplift.optimize.factory.marginal_step` above it always among the levels (the
    report's "one more 1,000 of budget")."""
    assert decision.allocator is not None and decision.problem is not None
    fc = config.optimize.frontier
    budget = config.optimize.budget
    stop = fc.stop if fc.stop is not None else 2 * budget
    grid = budget_grid(fc.budgets, start=fc.start, stop=stop, num=fc.num)
    grid = np.union1d(grid, [budget, budget + marginal_step(budget)])
    return decision.allocator.frontier(decision.problem, grid)


def tactic_returns(config: AppConfig, run: RunSummary) -> None:
    """marginal_return.csv into ``run``: one more :func:`marginal_step` of budget earmarked
    for each tactic in turn (:func:`~uplift.optimize.marginal.marginal_return_by_tactic`),
    or why it was skipped."""
    from uplift.optimize.marginal import marginal_return_by_tactic

    d = run.decision
    assert d.allocator is not None and d.problem is not None and d.allocation is not None
    try:
        run.marginal_return = marginal_return_by_tactic(
            d.allocator,
            d.problem,
            d.allocation,
            marginal_step(config.optimize.budget),
            hdi_prob=config.report.hdi_prob,
        )
    except ValueError as e:  # e.g. no total_budget rule
        run.marginal_return_skipped = str(e)
        log.warning("marginal return per tactic skipped: %s", e)


def truth_check(config: AppConfig, run: RunSummary) -> dict | None:
    """The plan and the uplift scored against the synthetic generator's truth, when known."""
    truth, d = run.prepared.truth, run.decision
    if truth is None or d.allocation is None or d.problem is None or d.allocator is None:
        return None
    if d.strata is not None:
        return {
            "skipped": "the plan is over customer strata (optimize.customer_strata): the "
            "generator's truth is per segment, not per customer"
        }
    if not set(d.problem.cells["segment"]) <= set(truth["segment"]):
        return {"skipped": "segments differ from the generator's (value tier x needs)"}
    out = score_against_truth(
        run.uplift,
        d.problem,
        d.allocation,
        d.allocator,
        truth,
        config.value.margin,
        {t: truth_draws(config, t, fit, run.prepared.values[t]) for t, fit in run.fits.items()},
    )
    if run.prices is not None and "true_elasticity" in truth:
        from uplift.report.truth import score_prices

        arm_map = config.tactics.arm_map()
        out["pricing"] = score_prices(
            run.prices,
            truth,
            price_grid(config, arm_map),
            float(config.pricing.prices[arm_map.control.name]),
            eligible_customers(config, run.prepared.cells),
        )
    return out


def truth_draws(config: AppConfig, tactic: str, fit: FittedTactic, value: pd.Series) -> TacticDraws:
    """One tactic's uplift draws on its family's scale and in money, cell by cell, for the
    truth check. Money: uplift x value per unit; a price test's: ``(price - unit cost) x P(buy)``
    at the arm's price minus at today's, in units of today's price, times a buyer's revenue at
    today's price (value per conversion / ``value.margin``)."""
    fam = family_of(config, tactic)
    da = fit.draws().transpose("sample", "arm", "segment")
    arms = [str(a) for a in da["arm"].values]
    segs = [str(s) for s in da["segment"].values]
    effect = np.asarray(da.values, dtype=float)  # (S, A, G)
    per_unit = value.reindex(segs).to_numpy(dtype=float)[None, None, :]
    money = effect * per_unit
    model = fit.model
    if fam.prices and hasattr(model, "revenue_uplift_draws"):
        today = float(config.pricing.prices[config.tactics.arm_map().control.name])
        rev = model.revenue_uplift_draws().transpose("sample", "arm", "segment")
        rev = np.asarray(rev.sel(arm=arms, segment=segs).values, dtype=float) / today
        cost = (
            np.array(
                [config.pricing.unit_cost_by_segment.get(s, config.pricing.unit_cost) for s in segs]
            )
            / today
        )
        money = (per_unit / config.value.margin) * (rev - cost[None, None, :] * effect)
    S = effect.shape[0]
    return TacticDraws(
        family=fam.name,
        metric=fit.model.metric,
        arms=[a for a in arms for _ in segs],
        segments=[g for _ in arms for g in segs],
        effect=effect.reshape(S, -1),
        money=money.reshape(S, -1),
    )


def _run_staged(config: AppConfig, out: Path) -> RunResult:
    """The run itself, computed stage by stage into a :class:`RunSummary`, then written into
    the staging folder ``out`` (:func:`uplift.app.outputs.write_tables` and friends)."""
    clock = _Clock()
    hp = config.report.hdi_prob
    with clock.stage("data"):
        prep = prepare(config, out)
        cov = prep.covariate_setting
        auto = cov.get("by") == "auto" and bool(covariate_columns(config))
        progress.note(
            f"{len(prep.data):,} customers, {prep.cells['segment'].nunique()} segments, "
            f"{len(prep.cells)} cells"
            + (f"; covariate model {'on' if cov['enabled'] else 'off'} (auto)" if auto else "")
        )
    data, cells, arm_map = prep.data, prep.cells, prep.data.arm_map
    log.info(
        "%d customers -> %d cells, %d segments", len(data), len(cells), cells["segment"].nunique()
    )
    health = check_health(config, data)
    balance_info, balance = check_balance(config, data)
    if balance_info is not None:
        health["balance"] = balance_info
    if config.model.prior_from:  # model.prior_from: refuse a mismatch before any sampling
        from uplift.app.prior_from import check_prior_from

        check_prior_from(
            config,
            [t.value for t in arm_map.tactics()],
            lambda t: build_model(config, t, data, cells),
        )
    cache = FitCache.from_settings(config.sampler)
    with clock.stage("fit"):
        fits = fit_tactics(cells, data, config, cache)
    covariate_models: dict = {}
    scores: pd.DataFrame | None = None
    if config.model.covariate_model.enabled:
        with clock.stage("covariate_model"):
            covariate_models, scores = score_customers(config, data)
    pricing_tactics = price_tactics(config, fits)
    budget_fits = {t: f for t, f in fits.items() if t not in pricing_tactics}
    with clock.stage("checks"):
        checks = run_model_checks(fits, cells, config.sampler.seed, config.optimize.gate.ppc_alpha)
    run = RunSummary(
        config,
        prep,
        health,
        fits,
        uplift=uplift_table(fits, cells, prep.values, arm_map, hp),
        by_arm=arm_table(fits, cells, arm_map, hp),
        checks=checks,
        gate=gate_status(config, fits, checks),
        covariate_models=covariate_models,
        scores=scores,
        balance=balance,
    )
    if budget_fits:
        run.readout, run.next_wave = readout_and_next_wave(
            config, budget_fits, prep.values, arm_map, cells
        )
    if config.evaluate.holdout_fraction > 0:
        with clock.stage("evaluate"):
            run.evaluation = run_holdout(
                config,
                data,
                partial(fit_tactics, cache=cache),
                fit_covariate_models if covariate_models else None,
            )
    if config.guardrails and budget_fits:
        with clock.stage("guardrails"):
            run.guardrails, run.guardrail_fits = guardrail_check(
                config, data, cells, list(budget_fits), cache
            )
    if budget_fits and not run.gate.refused:
        with clock.stage("optimize"):
            run.decision = decide(
                config, prep, budget_fits, vetoed_cells(run.guardrails), covariate_models
            )
    if pricing_tactics and not run.gate.refused:
        with clock.stage("pricing"):
            run.prices, run.pricing, run.demand = optimize_prices(config, fits, cells, arm_map)
    if run.allocation is not None:
        if data.engine is not None and data.engine.table is None:  # data=cells: no rows
            log.warning("data=cells: no customer rows, so no targets.csv")
        else:
            with clock.stage("targets"):
                run.targets = plan_targets(config, run)
        with clock.stage("crossfit"):
            cross_fit(config, run, list(budget_fits), cache)
        d = run.decision
        credit = None
        if d.strata is not None and d.allocation is not None and run.targets is not None:
            credit = d.strata.selection_credit(d.allocation.table, run.targets.table)
        run.plan_value = calibrate_headline(
            run.allocation.expected_profit,
            run.crossfit,
            f"cross-fitting skipped: {run.crossfit_skipped}"
            if run.crossfit_skipped is not None
            else "evaluate.crossfit_folds=0",
            posterior_sd=float(np.std(run.allocation.total_profit_draws)),
            list_credit=credit,
        )
        if config.optimize.frontier.enabled:
            with clock.stage("frontier"):
                try:
                    run.frontier = budget_frontier(config, run.decision)
                except (ValueError, AllocationError) as e:  # e.g. no total_budget rule
                    run.frontier_skipped = str(e)
                    log.warning("budget frontier skipped: %s", e)
            if config.optimize.frontier.by_tactic:
                with clock.stage("marginal_return"):
                    tactic_returns(config, run)
        run.truth_check = truth_check(config, run)

    run.fit_cache = cache.summary({t: f.from_cache for t, f in fits.items()})
    files = write_tables(run, out)
    with clock.stage("report"):
        plots, figures = draw_figures(run, out)
    run.seconds, run.versions = clock.seconds, _versions()
    files |= plots
    summary = run.to_dict()  # once: it reads diagnostics, checks and intervals off the fits
    files["report"] = write_report(run, summary, out, figures)
    files["report_html"] = write_html(run, summary | {"status": run.status}, out, files, figures)
    summary["status"] = run.status
    files["summary"] = write_summary(summary, out)
    result = RunResult(
        config,
        out,
        data,
        cells,
        fits,
        run.uplift,
        run.allocation,
        summary,
        prep.truth,
        files,
        run.by_arm,
        run,
    )
    if run.decision.error is not None:
        raise run.decision.error
    if run.gate.refused:
        raise ConvergenceGateError(run.gate.message)
    return result
