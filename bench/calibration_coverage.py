"""Benchmark: do the 90% intervals of every model family cover the synthetic truth ~90% of the time?

For each family (binomial conversion, hurdle-lognormal revenue, negative-binomial counts, price
logit), fits ``--replications`` fresh seeded experiments (see ``uplift.evaluate.calibration``) and
prints one markdown row per family: cells scored, coverage of the equal-tailed 90% intervals, its
binomial and between-replication SEs, the range of per-replication coverage, MAE of the posterior
mean vs the truth (and of the unpooled difference in means), mean |truth|, interval width, worst
r-hat and bulk ESS, divergences, share of replications failing the optimizer's diagnostics gate,
and fit seconds. Then, per family, coverage by quartile of the true effect and which side misses
fall on. Exit code 1 if any family's coverage is outside [0.85, 0.95].

    .venv/bin/python bench/calibration_coverage.py [--replications 20] [--quick] [--stress] [--out DIR]

``--stress`` adds the binomial family with uplifts in pp independent of the baseline (reported,
not part of the pass/fail). ``--quick`` is a smoke run (3 replications, short chains): its
coverage is too noisy to judge calibration.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from uplift.evaluate.calibration import (
    DEFAULT_DESIGN,
    FAMILIES,
    CoverageSummary,
    coverage_breakdown,
    coverage_study,
    summarize_coverage,
)
from uplift.models import SamplerSettings  # noqa: E402

BAND = (0.85, 0.95)
UNITS = {
    "binomial": "conversion rate",
    "hurdle_lognormal": "revenue / customer",
    "negative_binomial": "orders / customer",
    "price_logit": "purchase rate",
}


def row(label: str, s: CoverageSummary) -> str:
    ok = "yes" if s.within(*BAND) else "**NO**"
    return (
        f"| {label} | {s.replications} x {s.cells // s.replications} | {s.coverage:.3f} | "
        f"{s.se_binomial:.3f} / {s.se_between:.3f} | {s.rep_min:.2f}-{s.rep_max:.2f} | "
        f"{s.mae:.3g} | {s.mae_naive:.3g} | {s.effect_scale:.3g} | {s.width:.3g} | "
        f"{s.r_hat_max:.3f} | {s.ess_bulk_min:.0f} | {s.divergences} | "
        f"{s.diag_fail_share:.0%} | {s.seconds:.0f} | {ok} |"
    )


def markdown(df: pd.DataFrame) -> str:
    """A small markdown table (pandas' to_markdown needs tabulate, not a dependency)."""
    cells = [
        [f"{v:.3g}" if isinstance(v, float) else str(v) for v in r] for r in df.itertuples(False)
    ]
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])


HEADER = (
    "| family | reps x cells | coverage (90% nominal) | SE binomial / between | per-rep range | "
    "MAE | naive MAE | mean abs truth | width | r-hat max | min ESS | divergences | "
    "gate fails | fit s | in 85-95% |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replications", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--quick", action="store_true", help="3 replications, 2 x 300 draws (smoke)")
    ap.add_argument("--stress", action="store_true", help="add binomial with additive pp lifts")
    ap.add_argument("--out", type=Path, default=None, help="write each study's tidy table here")
    args = ap.parse_args(argv)
    if args.quick:
        args.replications, args.draws, args.chains = 3, 300, 2
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        ap.error(f"--families: unknown {unknown}; choose from {list(FAMILIES)}")
    sampler = SamplerSettings(draws=args.draws, tune=args.draws, chains=args.chains, seed=args.seed)
    runs = [(f, f, {}) for f in families]
    if args.stress:
        runs.append(("binomial, additive pp lift (stress)", "binomial", {"lift": "additive"}))

    print(
        f"coverage study: {args.replications} replications per family, seed {args.seed}, "
        f"nutpie {sampler.chains} x {sampler.draws} draws (+{sampler.tune} tune), "
        f"equal-tailed 90% intervals; designs {DEFAULT_DESIGN}\n"
    )
    summaries: list[tuple[str, CoverageSummary, pd.DataFrame, bool]] = []
    t_all = time.perf_counter()
    for label, family, kwargs in runs:
        t0 = time.perf_counter()
        table = coverage_study(family, args.replications, args.seed, sampler, 0.9, **kwargs)
        s = summarize_coverage(table)
        print(
            f"  {label}: coverage {s.coverage:.3f} in {time.perf_counter() - t0:.0f} s", flush=True
        )
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            name = label.split(",")[0] + ("_stress" if kwargs else "")
            table.to_csv(args.out / f"coverage_{name}.csv", index=False)
        summaries.append((label, s, table, not kwargs))
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s\n")
    print(HEADER)
    for label, s, _, _ in summaries:
        print(row(label, s))
    print(
        "\nMAE, naive MAE (unpooled difference in means), mean abs truth and width are in each "
        "family's metric per treated customer: "
        + ", ".join(f"{f}: {u}" for f, u in UNITS.items())
        + ". Gate: r-hat <= 1.01, bulk and tail ESS >= 400, no divergences."
    )
    for label, _, table, _ in summaries:
        print(f"\n{label}: coverage by quartile of the true effect")
        print(markdown(coverage_breakdown(table, "truth")))
    bad = [label for label, s, _, counted in summaries if counted and not s.within(*BAND)]
    if bad:
        print(f"\nFAIL: coverage outside {BAND} for {bad}")
        return 1
    print(f"\nall families within {BAND}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
