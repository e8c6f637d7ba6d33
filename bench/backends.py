"""Benchmark: every sampler backend on the 6-tactic x 48-segment conversion model.

For each backend (pymc, nutpie, numpyro, advi, and numpyro_pm: numpyro through
``pm.sample`` without compiled-program reuse), all six tactics are fit in one process at the
production settings (4 chains x 2,000 draws, 1,000 tune; ``--quick``: 2 x 500, 500 tune), with
compiled-graph caches cleared first so the first fit pays the compile. Prints per backend:

* first-fit seconds (compile included) and total seconds for the 6 tactics,
* min bulk ESS over every posterior variable of the 6 fits, and ESS per second
  = min bulk ESS / (total seconds / 6): worst-parameter effective draws per second of fitting,
  compile amortised over the tactics as in a pipeline run,
* max r-hat, divergences, PSIS k-hat (advi),
* max |posterior mean uplift - nutpie's| over (tactic, arm, segment), in absolute terms and in
  nutpie posterior SDs, and the median ratio of posterior SDs (does the backend get the
  uncertainty right?),
* ratios against the pymc baseline measured in the same run.

``--vi-sweep`` fits one tactic with ADVI at several iteration budgets (loss, k-hat, error vs
nutpie, seconds): the measurement behind ``conf/sampler/advi.yaml``. Figures are printed, never
asserted; the machine may be shared, so compare ratios within one run.

    python bench/backends.py [--quick] [--backends pymc nutpie numpyro numpyro_pm advi] [--vi-sweep]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import numpy as np
from benchmark_model import make_cells  # bench/ is on sys.path when run as a script

from uplift.models import ConversionUpliftModel, SamplerSettings, sampling

#: "numpyro_pm" is numpyro through pm.sample (no compiled-program reuse), to measure the reuse
BACKENDS = ("pymc", "nutpie", "numpyro", "numpyro_pm", "advi")


@dataclass
class Run:
    backend: str
    seconds: list[float] = field(default_factory=list)
    ess: float = np.inf
    rhat: float = 0.0
    divergences: int = 0
    khat: float = -np.inf
    means: dict[str, np.ndarray] = field(default_factory=dict)
    sds: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return float(sum(self.seconds))

    @property
    def ess_per_s(self) -> float:
        return self.ess / (self.total / len(self.seconds))

    @property
    def ess_per_s_warm(self) -> float:
        """ESS per second without the first fit (compile excluded)."""
        warm = self.seconds[1:] or self.seconds
        return self.ess / (sum(warm) / len(warm))


def clear_caches() -> None:
    sampling._COMPILED.clear()
    sampling._NUMPYRO.clear()


def fit_backend(cells, tactics: list[str], settings: SamplerSettings, name: str) -> Run:
    clear_caches()
    run = Run(name)
    for tactic in tactics:
        t0 = time.perf_counter()
        m = ConversionUpliftModel(sampler=settings)
        if name == "numpyro_pm":  # pm.sample(nuts_sampler="numpyro"): compiles every fit
            m.tactic = tactic
            m.idata = sampling.sample(
                m.build_model(cells, tactic), settings, settings.seed_for(tactic)
            )
        else:
            m.fit(cells, tactic)
        run.seconds.append(time.perf_counter() - t0)
        d = m.diagnostics()
        run.ess = min(run.ess, d.ess_bulk_min)
        run.rhat = max(run.rhat, d.r_hat_max)
        run.divergences += d.divergences
        if d.pareto_k is not None:
            run.khat = max(run.khat, d.pareto_k)
        up = m.uplift_draws().values
        run.means[tactic], run.sds[tactic] = up.mean(0), up.std(0)
        print(f"  {name:<10} {tactic:<11} {run.seconds[-1]:6.1f}s  {d}", flush=True)
    return run


def vs_reference(run: Run, ref: Run) -> tuple[float, float, float]:
    """Max |mean - ref mean|, the same in ref posterior SDs, and the median SD ratio."""
    diff = np.concatenate([np.ravel(run.means[t] - ref.means[t]) for t in ref.means])
    sd = np.concatenate([np.ravel(ref.sds[t]) for t in ref.means])
    ratio = np.concatenate([np.ravel(run.sds[t] / ref.sds[t]) for t in ref.means])
    return float(np.abs(diff).max()), float(np.abs(diff / sd).max()), float(np.median(ratio))


def report(runs: dict[str, Run]) -> None:
    ref, base = runs.get("nutpie"), runs.get("pymc")
    print(
        f"\n{'backend':<10} {'first s':>8} {'total s':>8} {'min ESS':>8} {'ESS/s':>7} "
        f"{'warm ESS/s':>10} {'max r-hat':>9} {'div':>4} {'k-hat':>6} {'max|dmean|':>10} "
        f"{'in SDs':>7} {'SD ratio':>8} {'time/pymc':>9} {'ESS/s/pymc':>10}"
    )
    for name, r in runs.items():
        khat = f"{r.khat:6.2f}" if np.isfinite(r.khat) else f"{'-':>6}"
        if ref is not None and name != "nutpie":
            d_abs, d_sd, sd_ratio = vs_reference(r, ref)
            cmp = f"{d_abs:10.4f} {d_sd:7.2f} {sd_ratio:8.2f}"
        else:
            cmp = f"{'-':>10} {'-':>7} {'-':>8}"
        if base is not None:
            rel = f"{r.total / base.total:8.2f}x {r.ess_per_s / base.ess_per_s:9.2f}x"
        else:
            rel = f"{'-':>9} {'-':>10}"
        if name == "advi":  # independent draws from q: ESS is just their number
            ess = f"{'-':>8} {'-':>7} {'-':>10} {'-':>9} {'-':>4}"
            rel = rel.split("x")[0] + f"x {'-':>10}" if base is not None else rel
        else:
            ess = (
                f"{r.ess:8.0f} {r.ess_per_s:7.1f} {r.ess_per_s_warm:10.1f} {r.rhat:9.4f} "
                f"{r.divergences:4d}"
            )
        print(f"{name:<10} {r.seconds[0]:8.1f} {r.total:8.1f} {ess} {khat} {cmp} {rel}")
    print(
        "ESS = min bulk ESS over all posterior variables and tactics; ESS/s = ESS / mean seconds "
        "per tactic incl. compile; warm = excluding the first (compiling) fit. ADVI draws are "
        "independent draws from q, so r-hat/ESS say nothing about its accuracy: read k-hat and "
        "the comparison with nutpie."
    )


def vi_sweep(cells, tactic: str, ref_settings: SamplerSettings, budgets: list[int]) -> None:
    """ADVI at several iteration budgets on one tactic, against a nutpie reference."""
    clear_caches()
    ref = ConversionUpliftModel(sampler=ref_settings).fit(cells, tactic).uplift_draws().values
    print(
        f"\nADVI sweep on {tactic!r} (reference: nutpie {ref_settings.chains}x{ref_settings.draws})"
    )
    print(
        f"{'method':<9} {'iters':>6} {'lr':>6} {'seconds':>8} {'final loss':>10} {'k-hat':>6} "
        f"{'max|dmean|/SD':>13} {'SD ratio':>8}"
    )
    for method in ("meanfield", "fullrank"):
        for lr in (0.01, 0.003):
            for n in budgets:
                s = SamplerSettings(
                    backend="advi",
                    chains=4,
                    draws=1000,
                    seed=ref_settings.seed,
                    vi_method=method,
                    vi_iterations=n,
                    vi_learning_rate=lr,
                )
                t0 = time.perf_counter()
                try:
                    m = ConversionUpliftModel(sampler=s).fit(cells, tactic)
                except FloatingPointError as e:
                    print(f"{method:<9} {n:6d} {lr:6.3f}  failed: {str(e)[:60]}")
                    continue
                sec = time.perf_counter() - t0
                up = m.uplift_draws().values
                d_sd = np.abs((up.mean(0) - ref.mean(0)) / ref.std(0)).max()
                ratio = np.median(up.std(0) / ref.std(0))
                loss = m.idata.attrs["vi_final_loss"]
                k = m.diagnostics().pareto_k
                print(
                    f"{method:<9} {n:6d} {lr:6.3f} {sec:8.1f} {loss:10.1f} {k:6.2f} "
                    f"{d_sd:13.2f} {ratio:8.2f}",
                    flush=True,
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 chains x 500 draws, 500 tune")
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--vi-iterations", type=int, default=SamplerSettings.vi_iterations)
    ap.add_argument("--vi-sweep", action="store_true", help="ADVI budgets on one tactic")
    args = ap.parse_args()

    cells, arms, _, _ = make_cells(args.customers)
    tactics = [t.value for t in arms.tactics()]
    chains, draws, tune = (2, 500, 500) if args.quick else (4, 2000, 1000)
    print(
        f"model: {len(tactics)} tactics x {cells['segment'].nunique()} segments, {len(cells)} cells, "
        f"{args.customers:,} customers; {chains} chains x {draws} draws, {tune} tune; "
        f"advi {args.vi_iterations} iterations, {chains * draws} draws from q"
    )
    if args.vi_sweep:
        ref = SamplerSettings(seed=5)  # production nutpie run as the reference
        budgets = [2_000, 5_000, 10_000, 20_000, 40_000]
        vi_sweep(cells, tactics[0], ref, budgets[:3] if args.quick else budgets)
        return
    runs: dict[str, Run] = {}
    for backend in args.backends:
        s = SamplerSettings(
            backend=backend.removesuffix("_pm"),
            chains=chains,
            draws=draws,
            tune=tune,
            seed=5,
            vi_iterations=args.vi_iterations,
        )
        runs[backend] = fit_backend(cells, tactics, s, backend)
    report(runs)


if __name__ == "__main__":
    main()
