"""Model settings: priors, parameterization and sampler settings as plain dataclasses.

They live apart from the model classes so that the configuration schema (and so ``uplift --help``)
can import them without importing PyMC. Each model module re-exports the ones it uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from uplift.choices import choice


def require_positive(settings: object, section: str, names: tuple[str, ...]) -> None:
    """Each of ``names`` on ``settings`` is > 0, else an error naming ``section.name``."""
    for k in names:
        if getattr(settings, k) <= 0:
            raise ValueError(f"{section}.{k} must be > 0, got {getattr(settings, k)}")


class Form(StrEnum):
    """Centred or non-centred random effects, or ``auto``: chosen from the data."""

    centered = "centered"
    non_centered = "non_centered"
    auto = "auto"


@dataclass
class ConversionPriors:
    """Weakly informative priors on the logit scale (``model.priors`` in config).

    Defaults put 95% of a segment's baseline conversion between ~0.4% and ~80% (prior predictive,
    spread between segments included) and treatment effects within about +/-1 on the logit scale
    (uplift within +/-20 pp): wide for marketing, yet proper enough to keep sampling stable.
    """

    baseline_mu: float = -2.0
    baseline_mu_sd: float = 1.5
    baseline_sigma: float = 1.0
    effect_mu_sd: float = 0.5
    effect_sigma: float = 0.5

    def __post_init__(self) -> None:
        require_positive(
            self,
            "model.priors",
            ("baseline_mu_sd", "baseline_sigma", "effect_mu_sd", "effect_sigma"),
        )


@dataclass
class Parameterization:
    """Centred, non-centred or data-chosen (``auto``) random effects (``model.parameterization``).

    Measured (nutpie, 4 chains x 1000 draws, min bulk ESS centred vs non-centred baselines):
    demo, ~130 conversions per control cell: 597 vs 456 (and r-hat 1.004 vs 1.020);
    Hillstrom visits, ~12 per cell: 527 vs 307; Hillstrom purchases, ~1 per cell: 248 vs 591;
    Hillstrom spend, ~2 buyers per cell: r-hat 1.13 and 18 divergences centred, clean
    non-centred; one segment (Cookie Cats): the pooled scale is prior-only, a funnel, centred
    diverges. Data that pin each segment down favour centring; sparse data the non-centred form.
    ``auto`` therefore centres baselines when the median control cell holds at least
    ``auto_min_events`` events (the rarer outcome: conversions or non-conversions, buyers,
    orders) and there are at least ``auto_min_segments`` segments.

    Effects are differences, identified far less sharply than baselines: on the 48-segment
    benchmark (bench/fit_scaling.py, 4 x 1000 draws) centred effects gave 116 divergences and
    r-hat 1.12 at ~26 events per treated cell, but min ESS 3056 vs 457 non-centred at ~260
    events, 3780 vs 258 at ~770 and 3211 vs 125 at ~2600. ``auto`` centres effects from
    ``auto_min_effect_events`` events in the median treated cell *and* an information ratio of
    at least ``auto_min_effect_ratio``: on social_pressure_mailing (~325 events per treated
    cell, effects that barely vary across 18 segments) centred effects gave 127 divergences vs
    0 non-centred, because the spread of effects, not only the data per cell, decides. The
    ratio is the spread of the true cell effects squared over the sampling variance of one
    cell's effect, estimated from the cells
    (:func:`uplift.models.information.effect_information_ratio`): 0.8 there, 0-3.0 on the demo
    and 0-1.4 on bench/crossed_decisions.py's scenario (both stay non-centred), 2.4-6.1 at ~260 events
    on the 48-segment benchmark, 23-48 at 10M customers, where non-centred effects failed r-hat
    in 3 of 6 tactics (1.011-1.018, min ESS 199) and centred ones passed all 6 (r-hat <= 1.003,
    min ESS >= 1,429) in about half the time. From 2, not 1: near 1 neither form is clean. On
    10M rows mixing ten truths (ratios 2.1-4.0) the threshold was 4 while the main effects were
    all non-centred (centred residuals then gave 1 divergence in 8,000 draws and r-hat 1.034);
    with the main effects' own forms (below) centred residuals were clean in all six tactics
    over two seeds each (r-hat <= 1.009, bulk ESS >= 860) and cross_sell's non-centred one
    diverged on 3 of 3 seeds, so the threshold is 2 (it moves no fit of the demo, whose treated
    cells hold fewer than 250 events, nor of bench/crossed_decisions.py, ratios <= 1.4).
    The pipeline resolves ``auto`` from the data (:meth:`resolve`) before a model is built;
    models take the resolved values.

    With crossed segments the effects' main effect of each segment column has its own form
    (``main``): its level effects are centred when the data pin them down (each level pools
    many cells, so a column whose levels differ can be known far more sharply than any cell),
    non-centred otherwise. ``auto`` decides column by column from each column's information
    ratio (:func:`uplift.models.information.main_effect_information_ratios`, at least
    ``auto_min_main_ratio``) and records the centred columns in ``centered_columns``. At 10M
    customers (bench/scale_geometry.py, 48 segments: value tier x needs) the tier's effects
    were the one bottleneck non-centred: retention r-hat 1.030 and bulk ESS 114 in 8,000 draws
    (a funnel of the tier's scale against its level effects, known to a few hundredths);
    with the tier's main effects centred (ratio 221) and the needs' (0.0) non-centred,
    r-hat 1.003 and ESS 1,558; both columns centred, the needs' scale became the funnel
    (ESS 245). Centred columns there have ratios of 11.8 and more, non-centred ones 0.3 or less.
    The two forms are one prior (tests/test_parameterization.py).
    """

    baseline: Form = Form.centered
    effect: Form = Form.non_centered
    auto_min_events: float = 4.0
    auto_min_segments: int = 3
    auto_min_effect_events: float = 250.0
    auto_min_effect_ratio: float = 2.0
    #: crossed segments: baselines centred only when their residual around the segment
    #: columns' main effects is this many times one cell's sampling variance (see resolve)
    auto_min_baseline_ratio: float = 4.0
    #: the effects' main effects per segment column: auto (column by column), or one form for all
    main: Form = Form.auto
    #: the columns whose main effects are centred when ``main`` is auto (filled by resolve)
    centered_columns: list[str] = field(default_factory=list)
    #: crossed segments: a column's main effects (in the effects) are centred from this ratio
    auto_min_main_ratio: float = 10.0

    def __post_init__(self) -> None:
        self.baseline = choice(Form, "model.parameterization.baseline", self.baseline)
        self.effect = choice(Form, "model.parameterization.effect", self.effect)
        self.main = choice(Form, "model.parameterization.main", self.main)
        if isinstance(self.centered_columns, str) or not all(
            isinstance(c, str) for c in self.centered_columns
        ):
            raise ValueError(
                "model.parameterization.centered_columns must be a list of segment column "
                f"names, got {self.centered_columns!r}"
            )
        self.centered_columns = list(self.centered_columns)
        for key in (
            "auto_min_events",
            "auto_min_effect_events",
            "auto_min_effect_ratio",
            "auto_min_baseline_ratio",
            "auto_min_main_ratio",
        ):
            if getattr(self, key) < 0:
                raise ValueError(
                    f"model.parameterization.{key} must be >= 0, got {getattr(self, key)}"
                )

    def resolve(
        self,
        events_per_cell: float,
        segments: int,
        treated_events: float | None = None,
        effect_ratio: float | None = None,
        *,
        baseline_ratio: float | None = None,
        main_ratios: Mapping[str, float | None] | None = None,
    ) -> Parameterization:
        """Replace ``auto`` by the form the data favour (see the class docstring).

        ``events_per_cell``: median events of the control cells; ``treated_events``: of the
        treated cells (default: the control figure); ``effect_ratio``: the effects' information
        ratio (None: not known, events alone decide); ``baseline_ratio``: with crossed segments,
        the baselines' ratio around their columns' main effects (the residual those models
        pool, :func:`uplift.models.information.baseline_information_ratio`; None: one column,
        events alone decide); ``main_ratios``: with crossed segments, each column's main-effect
        ratio (None: ``centered_columns`` is kept). On bench/crossed_decisions.py (ratios about 0-2) centred crossed
        baselines gave 4-27 divergences and r-hat up to 1.11 in 5 of 5 tactics on seed 6,
        non-centred 0 divergences, r-hat <= 1.009 and a quarter of the time.
        """
        treated = events_per_cell if treated_events is None else treated_events
        columns = list(self.centered_columns)
        if self.main == Form.auto and main_ratios is not None:
            columns = [
                d for d, r in main_ratios.items() if r is not None and r >= self.auto_min_main_ratio
            ]
        pooled_ok = segments >= self.auto_min_segments
        informative = effect_ratio is None or effect_ratio >= self.auto_min_effect_ratio
        base_informative = baseline_ratio is None or baseline_ratio >= self.auto_min_baseline_ratio
        dense = {
            "baseline": pooled_ok and events_per_cell >= self.auto_min_events and base_informative,
            "effect": pooled_ok and treated >= self.auto_min_effect_events and informative,
        }
        picks = {
            k: (Form.centered if dense[k] else Form.non_centered) if v == "auto" else v
            for k, v in (("baseline", self.baseline), ("effect", self.effect))
        }
        return Parameterization(
            picks["baseline"],
            picks["effect"],
            auto_min_events=self.auto_min_events,
            auto_min_segments=self.auto_min_segments,
            auto_min_effect_events=self.auto_min_effect_events,
            auto_min_effect_ratio=self.auto_min_effect_ratio,
            auto_min_baseline_ratio=self.auto_min_baseline_ratio,
            main=self.main,
            centered_columns=columns,
            auto_min_main_ratio=self.auto_min_main_ratio,
        )

    def main_centered(self, dims: Sequence[str]) -> frozenset[str]:
        """The columns of ``dims`` whose main effects (in the effects' structure) are centred."""
        if self.main == Form.centered:
            return frozenset(dims)
        if self.main == Form.non_centered:
            return frozenset()
        return frozenset(d for d in dims if d in self.centered_columns)

    def describe(self, dims: Sequence[str] | None = None) -> dict[str, object]:
        """The forms, for summary.json and the log: ``main_centered`` lists the columns (of
        ``dims``, default the recorded ``centered_columns``) whose main effects are centred."""
        cols = self.centered_columns if dims is None else dims
        return {
            "baseline": str(self.baseline),
            "effect": str(self.effect),
            "main_centered": sorted(self.main_centered(cols)),
        }


@dataclass
class SpendPriors:
    """Weakly informative priors for spend per buyer on the log scale (``model.spend_priors``).

    Defaults centre typical spend at e^4 ~ 55 currency units with 95% between ~1 and ~3,000 (the
    cell sums swamp this with a few dozen buyers), treatment shifts of spend within about +/-60%,
    and a lognormal spread near 1 (~0.3 to ~3 at 95%). The spread prior was sd 1 on the log
    scale (spread 0.14 to 7) until the prior predictive check (``uplift.models.predictive``)
    showed it put ~11% of prior mass on a mean spend per buyer above 100,000 (mean =
    e^(m + s^2/2) explodes with s); sd 0.5 keeps every implied quantity plausible.
    """

    log_mean_mu: float = 4.0
    log_mean_mu_sd: float = 2.0
    log_mean_sigma: float = 1.0
    effect_mu_sd: float = 0.3
    effect_sigma: float = 0.2
    log_sd_mu: float = 0.0
    log_sd_mu_sd: float = 0.5
    log_sd_sigma: float = 0.3

    def __post_init__(self) -> None:
        require_positive(
            self,
            "model.spend_priors",
            (
                "log_mean_mu_sd",
                "log_mean_sigma",
                "effect_mu_sd",
                "effect_sigma",
                "log_sd_mu_sd",
                "log_sd_sigma",
            ),
        )


@dataclass
class CountPriors:
    """Weakly informative priors on log counts per customer (``model.count_priors``).

    Defaults put the baseline mean count per customer between ~0.01 and ~4 (95%), treatment rate
    ratios within about x0.4 to x2.7 (x0.25 to x4 for a cell of segments crossed from two
    columns, whose effect sums a main effect per column, their interaction and a residual, each
    with its own scale), and the NB dispersion alpha between ~0.05 and ~20, wide enough for rare
    counts dominated by zeros and for near-Poisson ones. ``effect_sigma`` 0.3 (it was 0.5): at
    0.5 the crossed cell's implied rate ratio put 8% of its mass beyond x5 or /5, failing the
    prior check's 5% (``uplift.models.predictive.DEFAULT_RANGES["rate_ratio"]``) on the demo.
    """

    baseline_mu: float = -1.5
    baseline_mu_sd: float = 1.5
    baseline_sigma: float = 1.0
    effect_mu_sd: float = 0.5
    effect_sigma: float = 0.3
    log_alpha_mu: float = 0.0
    log_alpha_mu_sd: float = 1.5
    log_alpha_sigma: float = 0.5

    def __post_init__(self) -> None:
        require_positive(
            self,
            "model.count_priors",
            (
                "baseline_mu_sd",
                "baseline_sigma",
                "effect_mu_sd",
                "effect_sigma",
                "log_alpha_mu_sd",
                "log_alpha_sigma",
            ),
        )


@dataclass
class CovariatePriors:
    """Weakly informative priors on the logit scale (``model.covariate_priors`` in config).

    ``intercept_*``: baseline logit of the average customer, 95% between ~0.3% and ~70% as in
    :class:`~uplift.models.conversion.ConversionPriors`. ``beta_sd``: a covariate's effect on the
    baseline per sd (numeric) or per level contrast (categorical). ``tau_sd``: an arm's logit
    effect on the average customer, within about +/-2. ``gamma_sigma``: scale of the HalfNormal on
    the shared interaction sd; 0.25 puts 95% of sigma_gamma below 0.5, i.e. an arm's logit effect
    typically moves by less than 0.5 per sd of a covariate.
    """

    intercept_mu: float = -2.0
    intercept_sd: float = 1.5
    beta_sd: float = 1.0
    tau_sd: float = 1.0
    gamma_sigma: float = 0.25

    def __post_init__(self) -> None:
        for k in ("intercept_mu", "intercept_sd", "beta_sd", "tau_sd", "gamma_sigma"):
            v = getattr(self, k)
            if not isinstance(v, int | float) or isinstance(v, bool) or not np.isfinite(v):
                raise ValueError(f"model.covariate_priors.{k} must be a finite number, got {v!r}")
        require_positive(
            self, "model.covariate_priors", ("intercept_sd", "beta_sd", "tau_sd", "gamma_sigma")
        )


class SamplerBackend(StrEnum):
    nutpie = "nutpie"
    pymc = "pymc"
    numpyro = "numpyro"
    advi = "advi"


class VIMethod(StrEnum):
    """Gaussian family of the ADVI approximation on the unconstrained space."""

    meanfield = "meanfield"
    fullrank = "fullrank"


#: backends whose draws are exact in the limit (MCMC), judged by r-hat/ESS
MCMC_BACKENDS = frozenset({SamplerBackend.nutpie, SamplerBackend.pymc, SamplerBackend.numpyro})


@dataclass
class SamplerSettings:
    """Sampler backend, chains, draws and seed (the ``sampler`` config group).

    ``vi_*`` keys only matter for ``backend: advi``; they are measured in ``bench/backends.py``
    (see ``conf/sampler/advi.yaml``). With ADVI, ``chains x draws`` independent draws are taken
    from the fitted approximation, shaped like MCMC output; ``tune`` and ``target_accept`` are
    unused.
    """

    backend: SamplerBackend = SamplerBackend.nutpie
    draws: int = 2000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.9
    #: target_accept of models with crossed segment structure (several segment columns): their
    #: scale parameters of few levels make funnels that 0.9 diverges in (measured on the demo
    #: and bench/crossed_decisions.py); the larger of the two is used for those models
    target_accept_structured: float = 0.99
    seed: int = 20261123
    vi_method: VIMethod = VIMethod.meanfield
    vi_iterations: int = 10000
    vi_learning_rate: float = 0.01
    #: refit a diverging or unmixed fit with target_accept 0.99 and the other parameterization
    retry: bool = True
    #: reuse a tactic's posterior when everything that decides it is unchanged (data cells,
    #: family, model config, these sampler settings, seed, package versions and model code):
    #: a sweep over optimize.* or a repeated run re-solves from one fit (uplift.models.fit_cache)
    cache: bool = True
    #: the cache folder; null: $UPLIFT_FIT_CACHE, else outputs/.fit_cache under the working folder
    cache_dir: str | None = None
    #: the cache's size cap in GB: after a store the least recently used entries are removed
    #: until the folder's entries fit (a demo run stores ~76 MB); null: never evict
    cache_max_gb: float | None = 2.0

    def __post_init__(self) -> None:
        self.backend = choice(SamplerBackend, "sampler.backend", self.backend)
        self.vi_method = choice(VIMethod, "sampler.vi_method", self.vi_method)
        for key, low in (("draws", 1), ("tune", 0), ("chains", 1), ("vi_iterations", 100)):
            if getattr(self, key) < low:
                raise ValueError(f"sampler.{key} must be >= {low}, got {getattr(self, key)}")
        for key in ("target_accept", "target_accept_structured"):
            if not 0.5 <= getattr(self, key) < 1:
                raise ValueError(f"sampler.{key} must be in [0.5, 1), got {getattr(self, key)}")
        if self.cache_max_gb is not None and not self.cache_max_gb > 0:
            raise ValueError(
                f"sampler.cache_max_gb must be > 0 or null (never evict), got {self.cache_max_gb}"
            )
        if not 0 < self.vi_learning_rate <= 1:
            raise ValueError(
                f"sampler.vi_learning_rate must be in (0, 1], got {self.vi_learning_rate} "
                "(Adam step size; 0.01 is the measured default)"
            )

    @property
    def approximate(self) -> bool:
        """True for backends whose draws come from an approximation rather than MCMC."""
        return self.backend not in MCMC_BACKENDS

    def seed_for(self, *keys: int | str) -> int:
        """A stable per-model seed derived from the run seed and a key (e.g. the tactic name)."""
        ints = [
            self.seed,
            *[k if isinstance(k, int) else int.from_bytes(k.encode()[:8], "little") for k in keys],
        ]
        return int(np.random.SeedSequence(ints).generate_state(1)[0])
