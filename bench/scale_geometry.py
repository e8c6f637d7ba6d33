"""Benchmark: how the 10M-customer fits mix, per form and mass-matrix adaptation.

The end-to-end run of ``bench/scale.py`` at 1e7 customers spends most of its time in NUTS fits
that the retry ladder samples twice as long (r-hat, ESS). This fits chosen tactics on that run's
file (``--dir``/rows_<n>.parquet, written by ``bench/scale.py``) exactly as the pipeline builds
them at default settings (cells, structure, ``auto`` forms, sampler), once, without the ladder,
with nutpie's ``--adaptation`` (``diag``, the default, or ``low_rank``); extra arguments are
config overrides (e.g. ``model.parameterization.effect=centered``). Printed per tactic: the form,
seconds (the first tactic's include compiling), divergences, max r-hat, min bulk and tail ESS.

    python bench/scale_geometry.py [--adaptation low_rank] [--tactics retention,referral]
                                   [--customers 1e7] [--dir /tmp/uplift-scale] [override ...]
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from pathlib import Path

import nutpie

import uplift
from uplift.pipeline import build_model, prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adaptation", default="diag", choices=["diag", "low_rank"])
    ap.add_argument("--tactics", default="retention,referral")
    ap.add_argument("--customers", type=float, default=1e7)
    ap.add_argument("--dir", default="/tmp/uplift-scale")
    args, overrides = ap.parse_known_args()
    path = Path(args.dir) / f"rows_{int(args.customers)}.parquet"
    if not path.exists():
        raise SystemExit(f"{path} is missing: write it with python bench/scale.py --sizes 1e7")
    config = uplift.compose_config(
        [
            "data=parquet",
            f"data.path={path}",
            "data.columns.segments=[value_tier,needs]",
            "sampler.cache=false",
            *overrides,
        ]
    )
    if args.adaptation != "diag":  # every nutpie fit of this process
        nutpie.sample = functools.partial(nutpie.sample, adaptation=args.adaptation)
    prepared = prepare(config, Path(tempfile.mkdtemp()))
    print(f"{path.name}, adaptation {args.adaptation} (load {os.getloadavg()[0]:.1f})")
    for tactic in args.tactics.split(","):
        model = build_model(config, tactic, prepared.data, prepared.cells)
        par = model.parameterization
        t0 = time.perf_counter()
        d = model.fit(prepared.cells, tactic).diagnostics()
        print(
            f"{tactic:<11} {par.describe(model.segment_dims)} "
            f"target_accept={model.sampler.target_accept} draws={model.sampler.draws}: "
            f"{time.perf_counter() - t0:.1f} s, {d.divergences} divergences, "
            f"r-hat {d.r_hat_max:.3f}, ESS bulk {d.ess_bulk_min:.0f}, tail {d.ess_tail_min:.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
