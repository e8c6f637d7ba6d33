"""Structured configuration: the schema Hydra validates every run against.

The dataclasses here are registered in Hydra's ConfigStore as ``base_config``; YAML files in
``conf/`` and presets in ``experiments/`` only override values. :func:`to_app_config` turns the
composed DictConfig into these typed objects, which is all the library below ever sees.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from uplift.choices import choice
from uplift.data.settings import DISCOUNT_PRICE, TACTIC_OUTCOMES, DataChecks, Outcomes
from uplift.models.families import DEFAULT_FAMILY, OUTCOME_FAMILIES
from uplift.models.families import FAMILIES as FAMILY_REGISTRY
from uplift.models.settings import (
    ConversionPriors,
    CountPriors,
    CovariatePriors,
    Form,
    Parameterization,
    SamplerSettings,
    SpendPriors,
)
from uplift.optimize.settings import IntegerMethod, PricingMethod
from uplift.tactics import ArmMap, Tactic, check_overrides

if TYPE_CHECKING:  # the diagnostics module is not imported at start-up
    from uplift.models.diagnostics import Diagnostics

#: likelihood family -> the column of the data it needs (None: always available); from the registry
FAMILIES = {name: f.requires for name, f in FAMILY_REGISTRY.items()}
#: likelihood family -> the metric its uplift is measured in
FAMILY_METRIC = {name: f.metric for name, f in FAMILY_REGISTRY.items()}


class DataSource(StrEnum):
    synthetic = "synthetic"
    synthetic_price = "synthetic_price"
    csv = "csv"
    parquet = "parquet"
    #: pre-aggregated cells (uplift.data.cells_input): a CSV / Parquet file or a warehouse table
    cells = "cells"
    #: customer rows in a warehouse: data.connection + data.table or data.query
    warehouse = "warehouse"


class DataEngine(StrEnum):
    """Where rows are validated and aggregated (``data.engine``; uplift.data.engine)."""

    auto = "auto"  # duckdb for files and warehouses, pandas for the synthetic sources
    duckdb = "duckdb"
    pandas = "pandas"
    spark = "spark"


class ValueKind(StrEnum):
    constant = "constant"
    observed = "observed"
    clv = "clv"


class CovariateMethod(StrEnum):
    """How the row-level model is fit: exact (NUTS on patterns), approximate (nested Laplace),
    or auto (exact up to ``max_patterns`` cells)."""

    auto = "auto"
    exact = "exact"
    approximate = "approximate"


class UnseenLevel(StrEnum):
    """A covariate level absent at fit time: an error, or scored as the reference level."""

    error = "error"
    reference = "reference"


class Statistic(StrEnum):
    mean = "mean"
    median = "median"


class DesignMetric(StrEnum):
    conversion = "conversion"  # binary
    revenue = "revenue"  # continuous, per customer


class Correction(StrEnum):
    """Multiple-comparison correction across the treated arms of a design."""

    none = "none"
    bonferroni = "bonferroni"


class ClvMethod(StrEnum):
    nuts = "nuts"
    laplace = "laplace"  # fast approximation


class TimeUnit(StrEnum):
    weeks = "weeks"
    days = "days"


class Objective(StrEnum):
    expected = "expected"
    cvar = "cvar"
    mean_cvar = "mean_cvar"


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


@dataclass
class ColumnsConfig:
    """Map the user's column names to the canonical contract."""

    customer_id: str | None = "customer_id"  # null: use the row number
    segments: list[str] = field(default_factory=lambda: ["value_tier", "needs"])
    arm: str = "arm"
    converted: str = "converted"
    revenue: str | None = "revenue"
    orders: str | None = "orders"
    #: raw customer columns kept for row-level models and baselines (e.g. recency, history)
    covariates: list[str] = field(default_factory=list)
    #: optional value inputs per customer: cost to serve over the value's horizon (currency),
    #: estimated category spend (wallet, currency), categories bought (breadth proxy of wallet)
    cost_to_serve: str | None = None
    wallet: str | None = None
    categories: str | None = None
    #: tactic -> the column its model is fit on instead of converted / orders / revenue (what
    #: its family reads), e.g. {retention: active_at_horizon, cross_sell: new_category}; the
    #: control customers' value of the same column is its baseline. Empty: shared columns.
    outcomes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.segments:
            raise ValueError("data.columns.segments: list at least one segment column")
        outcomes: dict[str, str] = {}
        for t, col in dict(self.outcomes or {}).items():
            key = f"data.columns.outcomes.{t}"
            tactic = Tactic.parse(str(t), where=key).value
            if tactic == Tactic.CONTROL.value:
                raise ValueError(
                    f"{key}: control is every tactic's baseline, measured on each tactic's own "
                    "column; map treated tactics only"
                )
            if not isinstance(col, str) or not col.strip():
                raise ValueError(f"{key}: give the name of a column of the data, got {col!r}")
            if tactic in outcomes:
                raise ValueError(f"{key}: tactic {tactic!r} is mapped twice")
            outcomes[tactic] = col
        self.outcomes = outcomes


@dataclass
class SyntheticConfig:
    """Ground-truth generator settings (see :mod:`uplift.data.synthetic`)."""

    n_customers: int = 120_000
    seed: int = 7
    control_share: float = 0.25
    value_tiers: list[str] = field(default_factory=lambda: ["low", "mid", "high"])
    tier_shares: list[float] = field(default_factory=lambda: [0.5, 0.35, 0.15])
    needs: list[str] = field(default_factory=lambda: ["price", "quality", "convenience", "variety"])
    effect_noise: float = 0.15
    #: what the treated arms move: ``per_tactic`` (the demo: each tactic moves its own outcome,
    #: orders, spend per order or the response to a price, and is fit with the family that
    #: models it, :meth:`AppConfig.synthetic_outcome_families`) or ``conversion`` (every tactic
    #: shifts the conversion logit; the original generator); ``uplift.data.settings.Outcomes``
    outcomes: Outcomes = Outcomes.per_tactic

    def __post_init__(self) -> None:
        _positive("data.synthetic.n_customers", self.n_customers)
        self.outcomes = choice(Outcomes, "data.synthetic.outcomes", self.outcomes)
        if not 0 < self.control_share < 1:
            raise ValueError(
                f"data.synthetic.control_share must be in (0, 1), got {self.control_share}"
            )
        if len(self.tier_shares) != len(self.value_tiers):
            raise ValueError("data.synthetic.tier_shares needs one share per value tier")


@dataclass
class SyntheticPriceConfig:
    """A randomized price test with known truth (:mod:`uplift.data.synthetic_price`): purchase
    logit ``true_a + true_b log(price / current_price)`` per segment."""

    segments: list[str] = field(default_factory=lambda: ["bargain", "mainstream", "premium"])
    prices: list[float] = field(default_factory=lambda: [8.0, 9.0, 10.0, 11.0, 12.0])
    current_price: float = 10.0
    n_customers: int = 150_000
    true_a: list[float] = field(default_factory=lambda: [-1.4, -1.8, -2.2])
    true_b: list[float] = field(default_factory=lambda: [-5.0, -4.0, -3.0])
    seed: int = 11


@dataclass
class DataConfig:
    """Where customer rows come from and how their columns map to the contract.

    ``derive`` adds columns before validation, typically coarse segment dimensions:
    ``{recency_band: {column: recency, bins: [0, 3, 6, 12], labels: [r1-3, r4-6, r7-12]}}`` or
    ``{region: {column: zip, map: {"10001": east, ...}}}``.
    """

    source: DataSource = DataSource.synthetic
    path: str | None = None
    # CSV reading (uplift.data.io): null = sniffed (byte-order mark else utf-8; , ; tab or |)
    encoding: str | None = None
    delimiter: str | None = None
    # cells read as missing; only empty ones by default, so a region called "NA" stays one
    na_values: list[str] = field(default_factory=lambda: [""])
    # plausibility guards before sampling (uplift.data.checks): outlying revenue, revenue
    # without conversion, too many segments
    checks: DataChecks = field(default_factory=DataChecks)
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    derive: dict[str, Any] = field(default_factory=dict)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    synthetic_price: SyntheticPriceConfig = field(default_factory=SyntheticPriceConfig)
    # where rows are checked and aggregated (uplift.data.engine): auto = duckdb for files and
    # warehouses (out of core, only cells come back), pandas for the synthetic sources
    engine: DataEngine = DataEngine.auto
    # an Ibis connection URL (duckdb:///db.duckdb, postgres://user@host/db, bigquery://...)
    # with data.table or data.query as the source (data=warehouse, or data=cells from a table)
    connection: str | None = None
    table: str | None = None
    query: str | None = None
    # data.engine=spark: the SparkSession's master (local[*]: every core of this machine)
    spark_master: str = "local[*]"

    def resolved_engine(self) -> DataEngine:
        """The engine this source is read with (``auto`` resolved)."""
        if self.engine is not DataEngine.auto:
            return self.engine
        if self.source in (DataSource.synthetic, DataSource.synthetic_price):
            return DataEngine.pandas
        return DataEngine.duckdb

    def __post_init__(self) -> None:
        if self.source is DataSource.warehouse and not self.connection:
            raise ValueError(
                "data=warehouse needs data.connection=<Ibis URL> (e.g. duckdb:///db.duckdb, "
                "postgres://user@host/db) and data.table=<name> or data.query='SELECT ...'"
            )
        if self.connection and bool(self.table) == bool(self.query):
            raise ValueError(
                "data.connection needs exactly one of data.table=<name> or data.query='SELECT ...'"
            )
        if self.source is DataSource.cells and not (self.path or self.connection):
            raise ValueError(
                "data=cells needs data.path=/path/to/cells.csv (or .parquet), or "
                "data.connection with data.table / data.query"
            )
        if self.source in (DataSource.csv, DataSource.parquet) and not self.path:
            raise ValueError(
                f"data.path is required when data.source={self.source.value}; "
                "pass data.path=/path/to/customers.csv"
            )
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ValueError(
                    f"data.encoding={self.encoding!r} is not an encoding Python knows; "
                    "e.g. utf-8, latin-1, cp1252, utf-16 (or null to sniff it)"
                ) from None
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise ValueError(
                f"data.delimiter={self.delimiter!r} must be one character, e.g. ',' ';' or "
                "'\\t' (or null to sniff it)"
            )


@dataclass
class TacticsConfig:
    """Each arm in the data -> ``{tactic: <tactic>, cost: <cost per treated customer>}``.

    Kept as a plain mapping (validated by :meth:`uplift.tactics.ArmMap.from_mapping`) so arms can
    be added from the command line: ``'+tactics.arms.email={tactic: cross_sell, cost: 0.5}'``.
    """

    arms: dict[str, Any] = field(default_factory=dict)

    def arm_map(self) -> ArmMap:
        return ArmMap.from_mapping(self.arms)


@dataclass
class CovariateModelConfig:
    """Row-level model on customer covariates for binary-outcome tactics (``customer_scores.csv``).

    Covariate x treatment interactions, fit exactly on unique covariate patterns (NUTS) up to
    ``max_patterns`` cells and by a nested Laplace approximation above, or from 50,000 rows
    (``method: auto``); a fit that fails the gate's thresholds is refit the other way; see
    :class:`uplift.models.covariate.CovariateUpliftModel`. ``columns`` default to
    ``data.columns.covariates``. Scores every customer, and feeds the plan through customer
    strata (``optimize.customer_strata``).

    ``enabled``: ``null`` (the default, auto) turns it on when covariates are declared, some
    tactic has a 0/1 outcome (a family that supports it), the customer rows are at hand (not
    ``data=cells``) and there are at most ``auto_max_rows`` of them (its fit reads the rows it
    models into memory); ``summary.json`` ``covariate_model_setting`` says what auto chose and
    why. ``true``/``false`` force it.
    """

    enabled: bool | None = None
    # measured (bench/covariate_scale.py): at 1M customers the default run peaks at 4.5 GB
    # against 2.0 GB with the model off, as its stages read the rows into pandas
    auto_max_rows: int = 1_000_000
    columns: list[str] = field(default_factory=list)
    categorical: list[str] | None = None
    method: CovariateMethod = CovariateMethod.auto
    max_patterns: int = 5000
    max_levels: int = 20
    unseen: UnseenLevel = UnseenLevel.reference  # a level absent at fit time: reference level
    priors: CovariatePriors = field(default_factory=CovariatePriors)

    def __post_init__(self) -> None:
        self.method = choice(CovariateMethod, "model.covariate_model.method", self.method)
        self.unseen = choice(UnseenLevel, "model.covariate_model.unseen", self.unseen)
        _positive("model.covariate_model.auto_max_rows", self.auto_max_rows)


@dataclass
class ModelConfig:
    """Likelihood per tactic: ``family`` for all, ``families`` overrides by tactic, e.g.
    ``{margin: hurdle_lognormal, frequency: negative_binomial}``. ``priors`` serve the binomial
    model and the purchase part of the hurdle model."""

    family: str = DEFAULT_FAMILY
    families: dict[str, str] = field(default_factory=dict)
    # effects pooled along each segment column (main effects, pooled pairwise interactions and a
    # segment residual; uplift.models.structure) when segments are crossed from several columns,
    # for the binomial, hurdle and count families; one segment column: exchangeable either way.
    # On by default (bench/crossed_decisions.py); such models sample at
    # sampler.target_accept_structured
    pool_by_dimensions: bool = True
    dimension_interactions: bool = True
    structure_baselines: bool = False  # baselines too (measured slow on dense data)
    priors: ConversionPriors = field(default_factory=ConversionPriors)
    spend_priors: SpendPriors = field(default_factory=SpendPriors)
    count_priors: CountPriors = field(default_factory=CountPriors)
    # baselines centred when the median control cell has >= 4 events and there are >= 3
    # segments, else non-centred; effects centred only when the median treated cell has >= 250
    # events and the effects' information ratio (their spread^2 over one cell's sampling
    # variance) is >= 4: a large test whose effects barely vary stays non-centred
    # (social_pressure_mailing: 127 divergences centred at ~325 events per cell, ratio 0.8).
    # See Parameterization for the measurements.
    parameterization: Parameterization = field(
        default_factory=lambda: Parameterization(baseline=Form.auto, effect=Form.auto)
    )
    covariate_model: CovariateModelConfig = field(default_factory=CovariateModelConfig)
    # an earlier run's folder: its posterior of each tactic's cell logits becomes this fit's
    # prior (uplift.models.carry; binomial family), checked against this run before sampling
    prior_from: str | None = None
    # variance inflation of that prior for drift between waves: 1 = none; 1.25 (default) weights
    # the earlier posterior as 0.8 of its data (uplift.models.carry: the measured choice)
    prior_forget: float = 1.25

    def __post_init__(self) -> None:
        if not (
            isinstance(self.prior_forget, int | float) and 1 <= self.prior_forget < float("inf")
        ):
            raise ValueError(
                f"model.prior_forget must be a finite number >= 1 (1: the earlier wave's "
                f"posterior as it is; 2: weighted as half its data), got {self.prior_forget!r}"
            )
        for where, fam in [
            ("model.family", self.family),
            *[(f"model.families.{t}", f) for t, f in self.families.items()],
        ]:
            if fam not in FAMILY_REGISTRY:
                raise ValueError(
                    f"{where}={fam!r} is unknown; use one of {sorted(FAMILY_REGISTRY)}"
                )
        for t in self.families:
            Tactic.parse(t, where=f"model.families.{t}")

    def family_of(self, tactic: str) -> str:
        return self.families.get(tactic, self.family)


@dataclass
class ValueConfig:
    """Value of one incremental conversion, per segment.

    ``observed``: margin x mean revenue of converters in the segment (all arms pooled), by
    default pooled along the segment columns (``pool``).
    ``constant``: ``per_conversion`` everywhere, overridden per segment by ``by_segment``.
    ``clv``: mean customer lifetime value of the segment's customers, from the
    ``customer_value.csv`` that ``uplift clv`` wrote (CLV from transactions *before* the
    experiment started); with ``join_tier`` each customer's CLV tier becomes column
    ``tier_column``, usable in ``data.columns.segments``.
    """

    kind: ValueKind = ValueKind.observed
    margin: float = 0.4
    #: observed: shrink each segment's mean revenue per converter towards what its segment
    #: columns predict, by how noisy it is (uplift.value.pooled_value); false: the raw means
    pool: bool = True
    per_conversion: float = 30.0
    by_segment: dict[str, float] = field(default_factory=dict)
    customer_value_path: str | None = None
    join_tier: bool = True
    tier_column: str = "clv_tier"
    missing_tier: str = "unknown"
    statistic: Statistic = Statistic.mean
    scale: float = 1.0
    #: per-tactic value overrides, ``{tactic: {per_unit, by_segment, <rule inputs>}}``
    #: (uplift.value.tactic_value.TACTIC_VALUES lists each tactic's inputs)
    tactics: dict[str, Any] = field(default_factory=dict)
    #: cost to serve one customer over the value's horizon when there is no
    #: data.columns.cost_to_serve (null: none), and per-segment figures that override both
    cost_to_serve: float | None = None
    cost_to_serve_by_segment: dict[str, float] = field(default_factory=dict)
    #: share of wallet: categories on offer (breadth proxy, data.columns.categories) and the
    #: share of the headroom counted as worth winning (1: all of it, an upper bound)
    wallet_categories: int | None = None
    headroom_capture: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.margin <= 1:
            raise ValueError(f"value.margin must be in (0, 1], got {self.margin}")
        check_overrides(self.tactics)
        if self.cost_to_serve is not None:
            _positive("value.cost_to_serve", self.cost_to_serve, allow_zero=True)
        for seg, v in self.cost_to_serve_by_segment.items():
            _positive(f"value.cost_to_serve_by_segment.{seg}", v, allow_zero=True)
        if self.wallet_categories is not None:
            _positive("value.wallet_categories", self.wallet_categories)
        if not 0 <= self.headroom_capture <= 1:
            raise ValueError(
                f"value.headroom_capture must be in [0, 1], got {self.headroom_capture}"
            )
        _positive("value.per_conversion", self.per_conversion, allow_zero=True)
        if self.kind is ValueKind.clv and not self.customer_value_path:
            raise ValueError(
                "value.kind=clv needs value.customer_value_path=<dir>/customer_value.csv written by `uplift clv`"
            )
        self.statistic = choice(Statistic, "value.statistic", self.statistic)
        _positive("value.scale", self.scale)


@dataclass
class DiagnosticsGate:
    """Thresholds a fit must meet before the optimizer uses it.

    ``ppc_max_extreme_share``: the posterior predictive check fails a tactic when more than this
    share of its cells are extreme (two-sided p < ``ppc_alpha``) on any statistic; null records
    the check without gating on it.
    """

    r_hat_max: float = 1.01
    ess_bulk_min: float = 400.0
    divergences_max: int = 0
    ppc_max_extreme_share: float | None = 0.2
    ppc_alpha: float = 0.05

    def __post_init__(self) -> None:
        share = self.ppc_max_extreme_share
        if share is not None and not 0 <= share <= 1:
            raise ValueError(f"optimize.gate.ppc_max_extreme_share must be in [0, 1], got {share}")
        if not 0 < self.ppc_alpha < 1:
            raise ValueError(f"optimize.gate.ppc_alpha must be in (0, 1), got {self.ppc_alpha}")

    def failures(self, diagnostics: Diagnostics) -> list[str]:
        """Why a fit with ``diagnostics`` fails these thresholds (empty: it passes); the
        predictive check is judged on its own (``ppc_max_extreme_share``)."""
        return diagnostics.failures(self.r_hat_max, self.ess_bulk_min, self.divergences_max)


@dataclass
class FrontierConfig:
    """Re-solve over a grid of budgets: ``budgets`` listed, or ``num`` points from start to stop."""

    # on by default: the report's "one more unit of budget" comes from it (an LP per level,
    # a second or so on the demo; it never changes the plan). The chosen budget and one step
    # above it are always among the levels.
    enabled: bool = True
    budgets: list[float] | None = None
    start: float = 0.0
    stop: float | None = None  # default: 2 x optimize.budget
    num: int = 20
    # marginal_return.csv: the plan re-solved once per tactic with one more budget step
    # earmarked for it (the plan's own MILP; a fraction of a second each on the demo)
    by_tactic: bool = True


@dataclass
class OptimizeConfig:
    """Budget allocation. ``constraints`` lists extra rules, each ``{type: ..., name: ...}``:
    tactic_spend, tactic_capacity, min_tier_share, exclude_segments, roi_floor,
    loss_probability (see :mod:`uplift.optimize.factory`). ``solver`` and ``time_limit`` make
    its :class:`~uplift.optimize.settings.SolverSettings`."""

    budget: float = 20_000.0
    objective: Objective = Objective.expected
    alpha: float = 0.1  # CVaR tail share
    risk_aversion: float = 1.0  # lambda of mean_cvar
    max_offers_per_customer: int = 1
    population_scale: float = 1.0
    # strata per segment when a covariate model passed the gate: customers ranked by their
    # expected profit under it, so a plan can treat a segment's responsive part (1 = off)
    customer_strata: int = 4
    integer: bool = True
    integer_method: IntegerMethod = IntegerMethod.milp  # milp (exact) | round (LP then round)
    solver: str = "HIGHS"
    time_limit: float | None = None
    constraints: list[Any] = field(default_factory=list)
    frontier: FrontierConfig = field(default_factory=FrontierConfig)
    gate: DiagnosticsGate = field(default_factory=DiagnosticsGate)
    allow_unconverged: bool = False

    def __post_init__(self) -> None:
        self.objective = choice(Objective, "optimize.objective", self.objective)
        self.integer_method = choice(IntegerMethod, "optimize.integer_method", self.integer_method)
        if self.time_limit is not None:
            _positive("optimize.time_limit", self.time_limit)
        _positive("optimize.budget", self.budget, allow_zero=True)
        _positive("optimize.population_scale", self.population_scale)
        if self.max_offers_per_customer < 1:
            raise ValueError("optimize.max_offers_per_customer must be >= 1")
        if not 1 <= self.customer_strata <= 20:
            raise ValueError(
                f"optimize.customer_strata must be in 1..20 (1 = plan per segment), "
                f"got {self.customer_strata}"
            )
        if not 0 < self.alpha < 1:
            raise ValueError(
                f"optimize.alpha must be in (0, 1) (the share of worst scenarios CVaR averages), "
                f"got {self.alpha}"
            )
        if self.risk_aversion < 0:
            raise ValueError(f"optimize.risk_aversion must be >= 0, got {self.risk_aversion}")


class ExistingOutputs(StrEnum):
    """What a run does when its output folder already holds a run (``report.existing``)."""

    refuse = "refuse"
    overwrite = "overwrite"


@dataclass
class ReportConfig:
    hdi_prob: float = 0.94
    plots: bool = True
    save_posteriors: bool = True
    # a folder that already holds a run: refuse (name another, hydra.run.dir=...) or overwrite
    existing: ExistingOutputs = ExistingOutputs.refuse
    # money in report.html and the figures: a prefix such as "$", "€", "CHF " or "" (none)
    currency: str = "$"

    def __post_init__(self) -> None:
        if not 0 < self.hdi_prob < 1:
            raise ValueError(f"report.hdi_prob must be in (0, 1), got {self.hdi_prob}")
        if (
            not isinstance(self.currency, str)
            or len(self.currency) > 8
            or not (self.currency.isprintable())
        ):
            raise ValueError(
                f"report.currency must be a short printable prefix such as '$', '€' or 'CHF ' "
                f"(at most 8 characters), got {self.currency!r}"
            )


@dataclass
class DesignConfig:
    """``uplift design``: customers needed per (segment, arm) to detect ``mde`` (absolute uplift).

    Baselines come from the control cells of ``data`` (a previous test or pre-period data).
    """

    mde: float = 0.01
    metric: DesignMetric = DesignMetric.conversion
    alpha: float = 0.05
    power: float = 0.8
    allocation: str = "optimal"  # or a treated:control ratio such as 1.0
    correction: Correction = Correction.none  # or bonferroni across treated arms
    rho: float = 0.0  # correlation with a pre-period covariate (CUPED variance reduction)
    assurance_prior_mean: float | None = None
    assurance_prior_sd: float | None = None

    def __post_init__(self) -> None:
        _positive("design.mde", self.mde)
        self.metric = choice(DesignMetric, "design.metric", self.metric)
        self.correction = choice(Correction, "design.correction", self.correction)
        if not 0 < self.alpha < 1 or not 0 < self.power < 1:
            raise ValueError("design.alpha and design.power must be in (0, 1)")


@dataclass
class HealthConfig:
    """Checks on the experiment before any readout or fit.

    ``expected_split``: design weight per arm for the sample-ratio-mismatch test (chi-square,
    overall and per segment). Empty: equal weights, except synthetic data whose design is known.
    A failed check stops the run before sampling unless ``override`` is true.
    """

    expected_split: dict[str, float] = field(default_factory=dict)
    srm_alpha: float = 0.001
    override: bool = False
    #: covariate balance (with ``data.columns.covariates``): |standardised mean difference| of a
    #: covariate, arm vs control, above this is flagged (0.1: the usual rule of thumb, Austin 2009)
    balance_threshold: float = 0.1
    #: a flagged covariate refuses the run (as a sample-ratio mismatch does) instead of warning
    balance_fail: bool = False

    def __post_init__(self) -> None:
        if not (self.balance_threshold > 0 and self.balance_threshold < float("inf")):
            raise ValueError(
                "health.balance_threshold: the |standardised mean difference| flagged as "
                f"imbalance must be a finite number > 0 (0.1 is usual); got {self.balance_threshold}"
            )


#: a guardrail's harmful direction: ``increase`` (unsubscribes, complaints) or ``decrease``
GUARDRAIL_DIRECTIONS = ("increase", "decrease")


@dataclass
class GuardrailConfig:
    """One guardrail metric (``guardrails: [{column: unsubscribed, threshold: 0.002}]``).

    ``column``: a 0/1 customer column of a bad (``direction: increase``) or good
    (``direction: decrease``) outcome. Harm is the arm's change of its rate vs control in the
    harmful direction, per treated customer; ``threshold`` is the harm tolerated (a rate, e.g.
    0.002 = 0.2 percentage points). With ``veto`` the plan does not treat a (segment, arm) whose
    P(harm > threshold) exceeds ``veto_probability``. Why 0.2 by default: harm such as a lost
    subscriber is not undone by the profit it bought, so the rule is precautionary (a 1-in-5
    chance of harm beyond what you tolerate is enough to hold an arm back, not 95% certainty),
    yet an arm with no harm whose estimate is as wide as the tolerance (P(harm > threshold)
    ~0.16 at one posterior sd) is not vetoed for its uncertainty alone.
    """

    column: str = ""
    threshold: float | None = None
    direction: str = "increase"
    veto: bool = True
    veto_probability: float = 0.2
    name: str = ""  # the metric's label in guardrails.csv and the report (default: column)

    def __post_init__(self) -> None:
        if not self.column:
            raise ValueError(
                "guardrails: each guardrail names its 0/1 customer column, e.g. "
                "guardrails=[{column: unsubscribed, threshold: 0.002}]"
            )
        if not self.name:
            self.name = self.column
        where = f"guardrails[{self.name}]"
        if self.threshold is None or not (0 <= self.threshold < 1):
            raise ValueError(
                f"{where}.threshold: give the harm you tolerate as a rate in [0, 1) (e.g. 0.002: "
                f"the arm may raise the {self.column!r} rate by 0.2 percentage points); got "
                f"{self.threshold}"
            )
        if self.direction not in GUARDRAIL_DIRECTIONS:
            raise ValueError(
                f"{where}.direction: {self.direction!r} is not one of {list(GUARDRAIL_DIRECTIONS)} "
                "(increase: the outcome is bad, e.g. unsubscribed; decrease: it is good)"
            )
        if not (0 < self.veto_probability < 0.5):
            raise ValueError(
                f"{where}.veto_probability: the chance of harm beyond the threshold that vetoes "
                f"an arm must be in (0, 0.5) (default 0.2); got {self.veto_probability}"
            )


@dataclass
class ReadoutConfig:
    """Decision rule of ``readout.csv`` (per tactic arm and segment, in money) and next wave."""

    ship_prob: float = 0.95  # ship when P(profit > 0) >= this and the loss of shipping is small
    stop_prob: float = 0.05  # stop when P(profit > 0) <= this
    tolerance: float = 0.01  # expected loss (currency per treated customer) we accept
    next_wave_min_share: float = 0.01  # Thompson shares: minimum per arm


@dataclass
class WaveConfig:
    """``uplift next-wave`` and ``uplift evaluate-policy`` (wave to wave, :mod:`uplift.waves`).

    ``run``: the finished run folder the next wave (or the policy) comes from. next-wave:
    ``customers`` (the list to assign: customer id and the run's segment columns), a global
    ``holdout_share``, ``min_share`` per arm (null: the run's ``readout.next_wave_min_share``),
    ``number`` (null: one more than the contact history's last wave, else 2) and ``salt`` (null:
    ``<experiment>:wave<number>``, so a re-run with more customers keeps every earlier arm);
    ``contacts`` (history: ``customer_id`` and ``wave`` rows or a ``contacts`` count) with
    ``max_contacts``. evaluate-policy: ``outcomes`` (the later randomized wave with outcomes),
    ``policy`` (``allocation``, ``targets`` or a file with either's columns) and ``level``.
    """

    run: str | None = None
    customers: str | None = None
    number: int | None = None
    salt: str | None = None
    holdout_share: float = 0.05
    min_share: float | None = None
    contacts: str | None = None
    max_contacts: int | None = None
    outcomes: str | None = None
    policy: str = "allocation"
    outcome_column: str = "outcome"
    level: float = 0.9

    def __post_init__(self) -> None:
        if not 0 <= self.holdout_share < 1:
            raise ValueError(f"wave.holdout_share must be in [0, 1), got {self.holdout_share}")
        if self.max_contacts is not None and self.max_contacts < 1:
            raise ValueError(
                f"wave.max_contacts must be >= 1 (or null: no cap), got {self.max_contacts}"
            )
        if self.number is not None and self.number < 1:
            raise ValueError(f"wave.number must be >= 1 (or null), got {self.number}")
        if not 0 < self.level < 1:
            raise ValueError(f"wave.level must be in (0, 1), got {self.level}")


@dataclass
class PricingConfig:
    """Per-segment prices for tactics fit with ``model.families.<tactic>=price_logit``.

    ``prices`` maps each arm of the price test to its price (the control arm is today's price).
    Prices are chosen on a grid (``grid_num`` points between ``grid_start`` and ``grid_stop``,
    default the tested range) by a MILP (HiGHS) under ``constraints``, e.g.
    ``{type: fairness_band, max_ratio: 1.3}``, ``{type: volume_floor, min_share: 0.9}``,
    ``{type: margin_floor, min_margin: 0.2}``.
    """

    prices: dict[str, float] = field(default_factory=dict)
    unit_cost: float = 0.0
    unit_cost_by_segment: dict[str, float] = field(default_factory=dict)
    grid_start: float | None = None
    grid_stop: float | None = None
    grid_num: int = 25
    objective: Objective = Objective.expected
    alpha: float = 0.1
    risk_aversion: float = 1.0
    method: PricingMethod = PricingMethod.auto
    cost_plus_markup: float = 0.3
    constraints: list[Any] = field(default_factory=list)
    time_limit: float | None = 300.0

    def __post_init__(self) -> None:
        self.objective = choice(Objective, "pricing.objective", self.objective)
        self.method = choice(PricingMethod, "pricing.method", self.method)
        if self.time_limit is not None:
            _positive("pricing.time_limit", self.time_limit)


@dataclass
class ClvConfig:
    """``uplift clv``: customer lifetime value from a transaction table (BG/NBD + Gamma-Gamma).

    ``path`` null with ``dataset: cdnow`` uses the shipped CDNOW data. Dates before
    ``calibration_end`` fit the model; ``holdout_end`` (optional) scores its forecast.
    """

    dataset: str | None = None  # a shipped dataset name (cdnow, online_retail) or null
    path: str | None = None  # your transactions file (csv or parquet) when dataset is null
    customer_id: str = "customer_id"
    date: str = "date"
    amount: str | None = "amount"
    date_format: str | None = None
    calibration_end: str | None = None
    holdout_end: str | None = None
    time_unit: TimeUnit = TimeUnit.weeks
    method: ClvMethod = ClvMethod.nuts
    horizon: float = 52.0  # in time_unit
    discount_rate: float = 0.10  # annual
    margin: float = 0.30
    tier_cut_points: list[float] = field(default_factory=lambda: [0.5, 0.8, 0.95])
    tier_labels: list[str] = field(default_factory=lambda: ["low", "mid", "high", "top"])
    shed_below: float = 0.0
    shed_probability: float = 0.8
    grow_min_upside: float = 0.0
    # strategic value = CLV + the best tactic's posterior profit per treated customer, from an
    # uplift run's uplift_by_segment.csv; segments_path maps customer_id -> that run's segment
    uplift_path: str | None = None
    segments_path: str | None = None
    # value net of cost to serve and share of wallet: cost_to_serve per active customer over
    # the horizon (currency), or per customer from attributes_path (csv: customer_id plus any
    # of cost_to_serve, wallet = estimated category spend over the horizon, categories =
    # categories bought, with wallet_categories on offer); headroom_capture: share of the
    # headroom counted as worth winning (1: all of it, an upper bound)
    cost_to_serve: float | None = None
    attributes_path: str | None = None
    wallet_categories: int | None = None
    headroom_capture: float = 1.0

    def __post_init__(self) -> None:
        self.method = choice(ClvMethod, "clv.method", self.method)
        if self.cost_to_serve is not None:
            _positive("clv.cost_to_serve", self.cost_to_serve, allow_zero=True)
        if self.wallet_categories is not None:
            _positive("clv.wallet_categories", self.wallet_categories)
        if not 0 <= self.headroom_capture <= 1:
            raise ValueError(f"clv.headroom_capture must be in [0, 1], got {self.headroom_capture}")
        self.time_unit = choice(TimeUnit, "clv.time_unit", self.time_unit)


@dataclass
class DemandConfig:
    """``uplift demand``: per-segment prices from weekly sales history (scanner data).

    ``path``: a csv/parquet table with one row per segment (a product, a store cluster) and
    period; the other keys name its columns. ``log_prices``: the price and unit-cost columns hold
    log prices (as in the Dominick's data). ``unit_cost`` (a column) or ``unit_cost_by_segment``
    gives cost; today's price and cost are the medians over the last ``today_periods`` periods.
    Prices are searched in each segment's observed range (the ``price_range`` quantiles of its
    prices in the fit), so the constant-elasticity curve is never extrapolated; cost-plus is
    ``cost x (1 + cost_plus_markup)``. See README, "Pricing from sales history".
    """

    path: str | None = None
    segment: str = "segment"
    period: str = "week"
    units: str = "units"
    price: str = "price"
    unit_cost: str | None = "unit_cost"
    unit_cost_by_segment: dict[str, float] = field(default_factory=dict)
    log_prices: bool = False
    traffic: str | None = None
    controls: list[str] = field(default_factory=list)
    cross_price: bool = False
    block_periods: int | None = 52
    today_periods: int = 52
    price_range: list[float] = field(default_factory=lambda: [0.05, 0.95])
    grid_num: int = 41
    cost_plus_markup: float = 0.3
    hdi_prob: float = 0.94
    constraints: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.price_range) != 2 or not 0 <= self.price_range[0] < self.price_range[1] <= 1:
            raise ValueError(
                f"demand.price_range must be two quantiles 0 <= low < high <= 1, got "
                f"{list(self.price_range)}"
            )
        if self.grid_num < 2:
            raise ValueError(f"demand.grid_num must be >= 2, got {self.grid_num}")
        if self.today_periods < 1:
            raise ValueError(f"demand.today_periods must be >= 1, got {self.today_periods}")
        if self.cost_plus_markup < 0:
            raise ValueError(f"demand.cost_plus_markup must be >= 0, got {self.cost_plus_markup}")
        if not 0 < self.hdi_prob < 1:
            raise ValueError(f"demand.hdi_prob must be in (0, 1), got {self.hdi_prob}")
        if self.block_periods is not None and self.block_periods < 2:
            raise ValueError(
                f"demand.block_periods must be >= 2 or null (no period effects), got "
                f"{self.block_periods}"
            )


@dataclass
class EvaluateConfig:
    """Held-out evaluation of how well the run's uplift ranks customers (``evaluation.csv``).

    ``holdout_fraction`` > 0 holds out that share of each arm's customers, refits every tactic on
    the rest and scores the held-out customers with the posterior mean uplift of their segment,
    next to a T-learner fitted on the same training rows with ``features`` (default: the
    covariates, else the segment columns). Decisions still use the fit on all customers.
    """

    holdout_fraction: float = 0.0
    seed: int = 20261123
    features: list[str] = field(default_factory=list)
    k: float = 0.3  # uplift@k: the top share of customers targeted
    bootstrap: int = 100  # resamples of the held-out rows for standard errors (0: none)
    t_learner: bool = True
    # cross-fitted plan value (summary.json "crossfit", "plan_value"): folds >= 2 refit every
    # budget tactic on K-1 folds, plan with the same optimizer and score the plan on the
    # held-out fold (uplift.evaluate.crossfit); it also corrects the posterior headline for
    # selection (calibrated_incremental_profit). 0 turns it off. Costs K extra fits per tactic,
    # each with crossfit_draws draws per chain (at most sampler.draws; None: sampler.draws).
    crossfit_folds: int = 2
    crossfit_level: float = 0.9
    crossfit_draws: int | None = 1000

    def __post_init__(self) -> None:
        if self.crossfit_folds == 1 or self.crossfit_folds < 0:
            raise ValueError(
                f"evaluate.crossfit_folds must be 0 (off) or >= 2, got {self.crossfit_folds}"
            )
        if self.crossfit_draws is not None and self.crossfit_draws < 1:
            raise ValueError(
                f"evaluate.crossfit_draws must be >= 1 or null (sampler.draws), got "
                f"{self.crossfit_draws}"
            )
        if not 0 < self.crossfit_level < 1:
            raise ValueError(
                f"evaluate.crossfit_level must be in (0, 1), got {self.crossfit_level}"
            )
        if not 0 <= self.holdout_fraction < 1:
            raise ValueError(
                f"evaluate.holdout_fraction must be in [0, 1), got {self.holdout_fraction}"
            )
        if not 0 < self.k <= 1:
            raise ValueError(f"evaluate.k must be a fraction in (0, 1], got {self.k}")
        if self.bootstrap < 0:
            raise ValueError(f"evaluate.bootstrap must be >= 0, got {self.bootstrap}")


@dataclass
class TrackingConfig:
    """Run tracking (:mod:`uplift.app.tracking`): ``mlflow=true`` logs each ``uplift`` run to
    MLflow when it ends (the config as parameters, summary.json's numbers as metrics, the
    tables, report and summary as artifacts). Needs the ``tracking`` extra.

    ``uri`` null: ``$MLFLOW_TRACKING_URI`` when set, else a local SQLite store under the working
    folder (``outputs/mlflow/mlflow.db``, artifacts beside it); a team server is
    ``uri=http://host:5000`` (credentials go in MLflow's environment variables, never here).
    ``experiment`` null: the run's ``experiment_name``; ``run_name`` null: the run folder's name.
    ``posteriors`` also uploads the posterior_*.nc files (large; the fit cache keeps them).
    """

    mlflow: bool = False
    uri: str | None = None
    experiment: str | None = None
    run_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    posteriors: bool = False

    def __post_init__(self) -> None:
        if self.uri is not None and re.match(
            r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@]*:[^/@]*@", self.uri
        ):
            raise ValueError(
                "tracking.uri holds a password (user:password@host): it would be written into "
                "summary.json and the report. Give the address without it and set "
                "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) "
                "in the environment"
            )
        if self.experiment is not None and not self.experiment.strip():
            raise ValueError("tracking.experiment is blank: name an MLflow experiment, or null")


#: what an experiment name may be: it becomes a folder under outputs/
EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def safe_path_part(text: object) -> str:
    """``text`` as one harmless path component (the ``uplift_safe`` resolver of conf/config.yaml:
    Hydra makes the run folder before the config is validated, so the folder name must not be
    able to climb out of ``outputs/``): separators and other characters become ``_``, leading
    dots are dropped."""
    out = re.sub(r"[^A-Za-z0-9._=,+-]", "_", str(text)).lstrip(".")[:200]
    return out or "_"


def default_experiment_name(source: object, path: object) -> str:
    """The run's name when ``experiment_name`` is not set: the data file's stem (``spring.csv.gz``
    -> ``spring``), else the synthetic experiment's name."""
    if str(source) in (DataSource.csv, DataSource.parquet) and path not in (None, "", "???"):
        stem = Path(str(path)).name.split(".")[0]
        name = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip("._-")[:100]
        if EXPERIMENT_NAME.fullmatch(name):
            return name
    return "synthetic_price" if str(source) == DataSource.synthetic_price else "synthetic_demo"


def _run_name(name: object, data: Any) -> str:
    """The ``uplift_name`` resolver of conf/config.yaml: the run folder's name before the config
    is validated (``experiment_name``, else :func:`default_experiment_name`)."""
    if name not in (None, ""):
        return str(name)
    if isinstance(data, DictConfig):
        path = None if OmegaConf.is_missing(data, "path") else data.get("path")
        return default_experiment_name(data.get("source"), path)
    return "synthetic_demo"


@dataclass
class AppConfig:
    """The whole run. ``experiment_name`` labels outputs (empty: the data file's stem, or
    ``synthetic_demo``); ``seed`` seeds data and sampler when set."""

    experiment_name: str = ""
    seed: int | None = None
    data: DataConfig = field(default_factory=DataConfig)
    tactics: TacticsConfig = field(default_factory=TacticsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    value: ValueConfig = field(default_factory=ValueConfig)
    optimize: OptimizeConfig = field(default_factory=OptimizeConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    design: DesignConfig = field(default_factory=DesignConfig)
    clv: ClvConfig = field(default_factory=ClvConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)
    pricing: PricingConfig = field(default_factory=PricingConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    #: guardrail metrics: fit and reported per arm and segment, optionally vetoing arms
    guardrails: list[GuardrailConfig] = field(default_factory=list)
    wave: WaveConfig = field(default_factory=WaveConfig)
    demand: DemandConfig = field(default_factory=DemandConfig)
    #: optional MLflow logging of each run (uplift.app.tracking)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        names = [g.name for g in self.guardrails]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(
                f"guardrails: {dup} appear more than once; give each guardrail one entry (or a "
                "distinct name)"
            )
        if not self.experiment_name:
            self.experiment_name = default_experiment_name(self.data.source, self.data.path)
        if not EXPERIMENT_NAME.fullmatch(self.experiment_name):
            raise ValueError(
                f"experiment_name={self.experiment_name!r} is not a plain name: it labels the "
                "output folder, so use letters, digits, '.', '_' or '-' (starting with a letter "
                "or digit, at most 100 characters), e.g. experiment_name=spring_wave"
            )
        if not self.tactics.arms:
            raise ValueError(
                "tactics.arms is empty: map each arm in your data to a tactic and a cost"
            )
        self.tactics.arm_map()  # fail now, naming the arm, rather than after loading data
        if self.seed is not None:
            self.sampler.seed = self.seed
        self.synthetic_outcome_families()

    def synthetic_outcome_families(self) -> None:
        """``data=synthetic`` with ``data.synthetic.outcomes=per_tactic`` (the demo): each tactic
        is fit with the family of the outcome the generator moves
        (``uplift.data.settings.TACTIC_OUTCOMES`` -> ``uplift.models.families.OUTCOME_FAMILIES``:
        orders counts for frequency and referral, buying and spend per order for up-sell, the
        discount as a price arm), and a price arm is priced as the generator prices it (list
        price 1, the discount at ``DISCOUNT_PRICE``, cost of goods ``1 - value.margin``).

        The data source declares its outcomes, as ``data.columns.outcomes`` does for a user's
        file, so none of this reaches a run on other data. What the user set wins: a tactic named
        in ``model.families``, a ``model.family`` other than the default (every tactic on that
        family), ``pricing.prices``, a non-zero ``pricing.unit_cost``."""
        if self.data.source is not DataSource.synthetic:
            return
        if self.data.synthetic.outcomes is not Outcomes.per_tactic:
            return
        arm_map = self.tactics.arm_map()
        if self.model.family == DEFAULT_FAMILY:
            for tactic in arm_map.tactics():
                family = OUTCOME_FAMILIES[TACTIC_OUTCOMES.get(tactic, "conversion")]
                if family != DEFAULT_FAMILY:
                    self.model.families.setdefault(tactic.value, family)
        priced = [
            a
            for a in arm_map.treated
            if FAMILY_REGISTRY[self.model.family_of(a.tactic.value)].prices
        ]
        if priced and not self.pricing.prices:
            self.pricing.prices = {
                arm_map.control.name: 1.0,
                **{a.name: DISCOUNT_PRICE for a in priced},
            }
            if self.pricing.unit_cost == 0 and not self.pricing.unit_cost_by_segment:
                self.pricing.unit_cost = 1.0 - self.value.margin


#: set once AppConfig is in Hydra's ConfigStore (a process-wide singleton that only grows)
_SCHEMA_STORED = False


def register_configs() -> None:
    """Register the schema with Hydra's ConfigStore and the ``uplift_data`` resolver (idempotent).

    ``${uplift_data:hillstrom/hillstrom.csv.gz}`` resolves to a dataset shipped with the project,
    wherever the user runs from.
    """
    from hydra.core.config_store import ConfigStore

    from uplift.data.datasets import shipped_path

    global _SCHEMA_STORED
    if not _SCHEMA_STORED:  # the schema is fixed: converting it again costs ~0.03 s a compose
        ConfigStore.instance().store(name="base_config", node=AppConfig)
        _SCHEMA_STORED = True
    if not OmegaConf.has_resolver("uplift_data"):
        OmegaConf.register_new_resolver("uplift_data", lambda rel: str(shipped_path(rel)))
    if not OmegaConf.has_resolver("uplift_safe"):
        OmegaConf.register_new_resolver("uplift_safe", safe_path_part)
    if not OmegaConf.has_resolver("uplift_name"):
        OmegaConf.register_new_resolver("uplift_name", _run_name)


def walk_config(node: Any, where: str = ""):
    """Every (dotted path, key, value) of a config tree, depth first, without resolving
    interpolations (``a.b``, ``a.list[0]``); DictConfig/ListConfig or plain containers."""
    from omegaconf import ListConfig

    if isinstance(node, DictConfig | ListConfig):
        node = OmegaConf.to_container(node, resolve=False)
    if isinstance(node, dict):
        items = ((k, v, f"{where}.{k}" if where else str(k)) for k, v in node.items())
    elif isinstance(node, list):
        items = ((i, v, f"{where}[{i}]") for i, v in enumerate(node))
    else:
        return
    for key, value, path in items:
        yield path, key, value
        yield from walk_config(value, path)


def env_interpolations(cfg: DictConfig) -> list[str]:
    """Keys whose value interpolates an environment variable (``${oc.env:...}``)."""
    return [
        f"{path}={value!r}"
        for path, _, value in walk_config(cfg)
        if isinstance(value, str) and "oc.env" in value
    ]


def _schema_fields(schema: type) -> dict[str, Any]:
    """A dataclass's field names -> their resolved types."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(schema)
    return {f.name: hints.get(f.name) for f in dataclasses.fields(schema)}


def _leaf_paths(schema: type, where: str = "") -> list[str]:
    """Every dotted key of the schema (dataclass fields, recursively)."""
    import dataclasses

    out = []
    for name, sub in _schema_fields(schema).items():
        path = f"{where}.{name}" if where else name
        out.append(path)
        if dataclasses.is_dataclass(sub):
            out += _leaf_paths(sub, path)  # type: ignore[arg-type]
    return out


def closest_keys(key: str, schema: type, where: str = "") -> list[str]:
    """Valid keys a mistyped ``key`` under ``where`` most likely meant: up to three siblings
    spelled like it (difflib) or containing it, else the same name elsewhere in the schema (``optimize.margin``
    -> ``value.margin``)."""
    import difflib

    prefix = f"{where}." if where else ""
    names = list(_schema_fields(schema))
    close = difflib.get_close_matches(key, names, n=3)
    close = close or [n for n in names if len(key) > 2 and (key in n or n in key)][:3]
    if close:
        return [prefix + c for c in close]
    return [p for p in _leaf_paths(AppConfig) if p.rsplit(".", 1)[-1] == key][:3]


def unknown_key_message(path: str, close: list[str], where: str = "") -> str:
    """``unknown key 'optimize.budgt'; did you mean 'optimize.budget'?``, where it was set and
    why it matters."""
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"unknown key {path!r}{hint} ({where + ': ' if where else ''}the schema has no such "
        "key, so its value would be ignored; `uplift --cfg job` lists the keys)"
    )


def unknown_key_path(dotted: str, schema: type | None = None) -> tuple[str, list[str]] | None:
    """Where the dotted key ``dotted`` leaves the schema: the unknown part and the closest valid
    keys, or None when the key exists or lies under a field that takes any key (mappings such
    as ``tactics.arms`` or ``model.families``, lists, ``Any``)."""
    import dataclasses

    node: Any = schema or AppConfig
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        fields = _schema_fields(node)
        where = ".".join(parts[:i])
        if part not in fields:
            return ".".join(parts[: i + 1]), closest_keys(part, node, where)
        node = fields[part]
        if not dataclasses.is_dataclass(node):
            return None  # a value, or a free container: whatever follows is its content
    return None


def unknown_keys(node: Any, schema: type, where: str = "") -> list[tuple[str, list[str]]]:
    """Keys of ``node`` that the dataclass ``schema`` (recursively) does not define, each with
    the closest valid keys (:func:`closest_keys`). Fields typed as mappings (``tactics.arms``,
    ``health.expected_split``, ``data.derive``, ...) take any key and are not searched."""
    import dataclasses

    if not isinstance(node, DictConfig) or not dataclasses.is_dataclass(schema):
        return []
    fields = _schema_fields(schema)
    out: list[tuple[str, list[str]]] = []
    for key in node:
        path = f"{where}.{key!s}" if where else str(key)
        if key not in fields:
            out.append((path, closest_keys(str(key), schema, where)))
            continue
        sub = fields[str(key)]
        if dataclasses.is_dataclass(sub):
            out += unknown_keys(node._get_node(key), sub, path)  # type: ignore[arg-type]
    return out


#: the mark ``uplift init`` leaves on every choice only the user can make
TODO = "TODO"


def todo_keys(cfg: Any) -> list[str]:
    """Keys whose value is still ``TODO`` (left by ``uplift init`` for the user to decide)."""
    return [path for path, _, value in walk_config(cfg) if value == TODO]


def to_app_config(cfg: DictConfig | dict[str, Any]) -> AppConfig:
    """Validate a composed config and return typed objects; errors name the offending key."""
    if not isinstance(cfg, DictConfig):
        merged = OmegaConf.merge(OmegaConf.structured(AppConfig), cfg)
        assert isinstance(merged, DictConfig)  # merged into the dataclass schema: a mapping
        cfg = merged
    if "hydra" in cfg:
        cfg = OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"])
    env = env_interpolations(cfg)
    if env:
        raise ValueError(
            f"{env[0]} reads an environment variable (oc.env): its value would be written into "
            "summary.json and the report. Pass the value itself, or keep secrets out of the run "
            "config."
        )
    unknown = unknown_keys(cfg, AppConfig)
    if unknown:
        raise ValueError(unknown_key_message(*unknown[0]))
    todo = todo_keys(cfg)
    if todo:
        raise ValueError(
            f"{', '.join(todo)} still say{'s' if len(todo) == 1 else ''} TODO: `uplift init` "
            "marks the choices only you can make; replace each TODO in the preset (the comment "
            "beside it says what goes there)"
        )
    obj = OmegaConf.to_object(cfg)
    if not isinstance(obj, AppConfig):  # composed without the schema: merge it in
        obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(AppConfig), cfg))
    assert isinstance(obj, AppConfig)
    return obj
