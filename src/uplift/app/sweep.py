"""One table across the jobs of a Hydra multirun: ``<sweep dir>/comparison.csv``.

``uplift -m optimize.budget=10000,20000,40000`` runs one job per value, each in its own folder
with its own summary.json. :class:`ComparisonTable` (a Hydra callback registered in
``conf/config.yaml``) reads every job's summary after each job and once more when the sweep
ends, and writes one row per job (:data:`COLUMNS`): what was overridden, what the plan spends
and earns, whether its fits passed the gate and came from the fit cache, and where the job's
files are. Built from the files the jobs wrote, so it also covers launchers that run jobs in
other processes, and a sweep stopped half way leaves the table of the jobs that finished.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("uplift")

FILE = "comparison.csv"
#: comparison.csv's columns, in order (a public contract: extend, never rename)
COLUMNS = [
    "job",
    "overrides",
    "status",
    "budget",
    "total_spend",
    "expected_incremental_profit",
    "profit_hdi_low",
    "profit_hdi_high",
    "calibrated_incremental_profit",
    "customers_treated",
    "gate",
    "fits_from_cache",
    "fits",
    "run_folder",
]


def _gate(summary: dict[str, Any]) -> str | None:
    """``passed``, ``overridden`` (failed, used anyway: optimize.allow_unconverged) or
    ``failed`` (the plan was refused)."""
    gate = summary.get("gate")
    if not isinstance(gate, dict):
        return None
    if gate.get("passed"):
        return "passed"
    return "overridden" if gate.get("overridden") else "failed"


def job_row(job_dir: Path, sweep_dir: Path) -> dict[str, Any] | None:
    """One job's row, or None when its folder holds no uplift run summary (``uplift design``
    and ``uplift clv`` sweeps; a job that has not written one yet)."""
    import json

    from omegaconf import OmegaConf

    summary_path = job_dir / "summary.json"
    if not summary_path.is_file():
        return None
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("comparison table: %s does not read (%s); job left out", summary_path, e)
        return None
    if "tactics" not in summary and summary.get("status") not in ("failed", "refused"):
        return None
    hydra_dir = job_dir / ".hydra"
    overrides = OmegaConf.load(hydra_dir / "overrides.yaml")
    job = None
    if (hydra_dir / "hydra.yaml").is_file():
        job = OmegaConf.select(OmegaConf.load(hydra_dir / "hydra.yaml"), "hydra.job.num")
    fits = summary.get("fit_cache", {}).get("fits", {})
    hdi = summary.get("profit_hdi") or [None, None]
    return {
        "job": job,
        "overrides": " ".join(str(o) for o in overrides),
        "status": summary.get("status"),
        "budget": summary.get("budget"),
        "total_spend": summary.get("total_spend"),
        "expected_incremental_profit": summary.get("expected_incremental_profit"),
        "profit_hdi_low": hdi[0],
        "profit_hdi_high": hdi[1],
        "calibrated_incremental_profit": summary.get("calibrated_incremental_profit"),
        "customers_treated": summary.get("customers_treated"),
        "gate": _gate(summary),
        "fits_from_cache": sum(v == "hit" for v in fits.values()) if fits else None,
        "fits": len(fits) if fits else len(summary.get("tactics", [])),
        "run_folder": job_dir.relative_to(sweep_dir).as_posix(),
    }


def write_comparison(sweep_dir: str | Path) -> Path | None:
    """``comparison.csv`` of the jobs under ``sweep_dir`` (sorted by job number); None when no
    job wrote an uplift run summary."""
    import pandas as pd

    from uplift.atomic_io import atomic_write_csv

    sweep = Path(sweep_dir)
    if not sweep.is_dir():
        return None
    jobs = sorted(p.parent.parent for p in sweep.rglob(".hydra/overrides.yaml"))
    rows = [r for r in (job_row(j, sweep) for j in jobs) if r is not None]
    if not rows:
        return None
    table = pd.DataFrame(rows, columns=COLUMNS)
    table = table.sort_values(["job", "run_folder"], na_position="last", kind="stable")
    table["job"] = table["job"].astype("Int64")
    return atomic_write_csv(table, sweep / FILE)


class ComparisonTable(Callback):
    """Hydra callback: ``comparison.csv`` in the sweep folder of a multirun, rewritten as each
    job ends and when the sweep ends (single runs write nothing)."""

    def _write(self, config: DictConfig, say: bool) -> None:
        from hydra.types import RunMode
        from omegaconf import OmegaConf

        hydra = config.get("hydra") if "hydra" in config else None
        if hydra is None or OmegaConf.select(config, "hydra.mode") != RunMode.MULTIRUN:
            return
        path = write_comparison(str(OmegaConf.select(config, "hydra.sweep.dir")))
        if path is not None and say:
            log.info("comparison of the sweep's jobs: %s", path)

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        self._write(config, say=False)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._write(config, say=True)
