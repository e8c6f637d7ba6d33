"""Health checks on a finished pipeline run (any object with the validated rows as ``.data``,
e.g. ``uplift.pipeline.RunResult``).

Why: presets on real data come with whatever split the experimenters used, and the first thing to
ask of any readout is whether the arms hold the share of customers the design promised (sample-ratio
mismatch). ``srm_for_run`` runs :func:`uplift.experiment.health.srm_check` on the validated rows of
a run, overall and per segment, so a preset (or a test) can check its data in one call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from uplift.data.contract import CustomerData
from uplift.experiment.health import SRMResult, srm_check, srm_test


class HasData(Protocol):
    """What :func:`srm_for_run` reads of a run: its validated customer rows.

    ``uplift.pipeline.RunResult`` satisfies it; typing against this protocol keeps the experiment
    layer from importing the pipeline that calls it.
    """

    @property
    def data(self) -> CustomerData: ...


def srm_for_data(
    data: CustomerData,
    expected: Mapping[str, float] | None = None,
    alpha: float = 0.001,
) -> SRMResult:
    """Sample-ratio mismatch of validated customer rows, overall and per segment.

    ``expected`` maps arm -> design weight (normalised by ``srm_check``); the default is an equal
    split across the configured arms, which is right for 50/50 or 1/K designs but wrong for
    unequal designs (e.g. a large control): pass the design weights then. ``alpha`` defaults to
    0.001, the usual SRM threshold (GrowthBook, Statsig).
    """
    arms = list(data.arm_map.names)
    if expected is None:
        weights = {a: 1.0 for a in arms}
    else:
        weights = {str(k): float(v) for k, v in expected.items()}
        unknown = sorted(set(weights) - set(arms))
        if unknown:
            raise ValueError(f"expected split: arm(s) {unknown} are not arms of this run ({arms})")
    if data.rows is None and data.engine is not None:  # counts from the engine's cells
        cells = data.engine.cells
        by = cells.groupby(["segment", "arm"], sort=True)["n"].sum()
        overall = srm_test(cells.groupby("arm")["n"].sum().to_dict(), weights, alpha)
        tests = [
            srm_test(by.loc[s].to_dict(), weights, alpha, segment=str(s))
            for s in sorted(by.index.get_level_values(0).unique())
        ]
        return SRMResult(overall=overall, segments=tests, alpha=float(alpha))
    return srm_check(data.frame, "arm", weights, segment_col="segment", alpha=alpha)


def srm_for_run(
    result: HasData,
    expected: Mapping[str, float] | None = None,
    alpha: float = 0.001,
) -> SRMResult:
    """:func:`srm_for_data` on a finished run's validated rows."""
    return srm_for_data(result.data, expected, alpha)
