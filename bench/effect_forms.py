"""Benchmark: centred vs non-centred effects at scale, and what ``effect=auto`` picks.

The 48-segment benchmark model (``benchmark_model.make_cells``: 6 tactics, 4 value tiers x 12
needs) at ``--customers``, fit per tactic as the pipeline fits it by default (effects pooled
along both columns, target_accept 0.99, 4 x 2,000 draws) with non-centred and with centred
effects; printed per tactic: the effects' information ratio
(:func:`uplift.models.information.effect_information_ratio`), what ``effect=auto`` resolves to,
seconds (the first tactic's include compiling each form's graph), divergences, max r-hat and
min bulk ESS of each form. The gate wants r-hat <= 1.01 and no divergences.

    python bench/effect_forms.py [--customers 1e7] [--tactics cross_sell,retention]
"""

from __future__ import annotations

import argparse
import os
import time

from benchmark_model import make_cells  # bench/ is on sys.path when run as a script

from uplift.models import ConversionUpliftModel, SamplerSettings
from uplift.models.families import binomial
from uplift.models.information import effect_information_ratio
from uplift.models.settings import Parameterization

DIMS = ("value_tier", "needs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=float, default=1e7)
    ap.add_argument("--tactics", default="")
    ap.add_argument("--draws", type=int, default=2000)
    args = ap.parse_args()
    cells, arms, _, _ = make_cells(int(args.customers))
    s = SamplerSettings(
        backend="nutpie", draws=args.draws, tune=1000, chains=4, seed=5, target_accept=0.99
    )
    control = cells[cells["arm"] == arms.control.name]
    auto = Parameterization("centered", "auto")
    print(f"{int(args.customers):,} customers, {len(cells)} cells (load {os.getloadavg()[0]:.1f})")
    print(f"{'tactic':<11} {'ratio':>6} {'auto':>13}  form: seconds, divergences, r-hat, ESS")
    wanted = [t for t in args.tactics.split(",") if t]
    for tactic in [t.value for t in arms.tactics() if not wanted or t.value in wanted]:
        names = [a.name for a in arms.treated if a.tactic.value == tactic]
        treated = cells[cells["arm"].isin(names)]
        ratio = effect_information_ratio(control, treated, binomial.FAMILY.link, DIMS)
        events = float(binomial.binary_events(treated).median())
        picked = auto.resolve(1e9, cells["segment"].nunique(), events, ratio).effect
        line = f"{tactic:<11} {ratio:>6.1f} {picked:>13}"
        for form in ("non_centered", "centered"):
            t0 = time.perf_counter()
            model = ConversionUpliftModel(
                sampler=s, parameterization=Parameterization("centered", form), segment_dims=DIMS
            )
            d = model.fit(cells, tactic).diagnostics()
            line += (
                f"  {form}: {time.perf_counter() - t0:.0f} s, {d.divergences}, "
                f"{d.r_hat_max:.3f}, {d.ess_bulk_min:.0f}"
            )
        print(line + f" (load {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
