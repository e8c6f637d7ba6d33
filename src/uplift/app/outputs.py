"""Every artifact of a run, written from its typed :class:`~uplift.app.run_summary.RunSummary`.

The stages compute; this module alone decides file names and writes: the tables (each with
``gate_passed``), the posteriors, the figures, ``report.md``, ``report.html`` and, last, ``summary.json`` with the
run's ``status``. File names and columns are the public contract listed in the README.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from uplift.app.run_summary import RunSummary
from uplift.app.value_tables import (
    retention_ceiling_table,
    share_of_wallet_tables,
    value_per_unit_table,
)
from uplift.atomic_io import atomic_savefig, atomic_write_csv, atomic_write_json, atomic_write_text
from uplift.report.guardrails import guardrails_section
from uplift.report.html import HtmlInputs, render_html
from uplift.report.markdown import evaluation_section, render_report
from uplift.report.model_checks import checks_section


def with_gate(table: pd.DataFrame, failures: dict[str, list[str]]) -> pd.DataFrame:
    """``table`` with ``gate_passed``: whether the fit behind each row (its ``tactic``; all fits
    when rows mix tactics) passed the convergence gate. False only when
    ``optimize.allow_unconverged=true`` let a failing fit through, or the run was refused."""
    if "tactic" in table.columns:
        ok = ~table["tactic"].astype(str).isin(list(failures))
        return table.assign(gate_passed=ok.to_numpy())
    return table.assign(gate_passed=not failures)


def write_tables(run: RunSummary, out: Path) -> dict[str, Path]:
    """The CSV tables and posterior files of ``run`` in ``out``."""
    config, failures = run.config, run.gate.failures
    files = {
        # the run's full configuration: uplift.load_run re-plans from it without refitting
        "config": atomic_write_text(
            OmegaConf.to_yaml(OmegaConf.structured(config)), out / "config.yaml"
        ),
        "cells": atomic_write_csv(run.prepared.cells, out / "cells.csv"),
    }
    if config.report.save_posteriors:
        for tactic, fit in run.fits.items():
            files[f"posterior_{tactic}"] = fit.model.save(out / f"posterior_{tactic}.nc")
    if run.scores is not None:
        files["customer_scores"] = atomic_write_csv(run.scores, out / "customer_scores.csv")
        if config.report.save_posteriors:
            for t, m in run.covariate_models.items():
                files[f"covariate_{t}"] = m.save(out / f"covariate_{t}.nc")
    files["ppc"] = atomic_write_csv(run.checks.ppc_table(), out / "ppc.csv")
    files["prior_checks"] = atomic_write_csv(run.checks.prior_table, out / "prior_checks.csv")
    gated = [  # (files key, file, table): everything computed from the fits
        ("uplift_by_segment", "uplift_by_segment.csv", run.uplift),
        ("uplift_by_arm", "uplift_by_arm.csv", run.by_arm),
        ("readout", "readout.csv", run.readout),
        ("next_wave", "next_wave_shares.csv", run.next_wave),
    ]
    for key, name, table in gated:
        if table is not None:
            files[key] = atomic_write_csv(with_gate(table, failures), out / name)
    if run.guardrails is not None:
        files["guardrails"] = atomic_write_csv(run.guardrails, out / "guardrails.csv")
    if run.balance is not None:
        files["balance"] = atomic_write_csv(run.balance, out / "balance.csv")
    if run.evaluation is not None:
        files["evaluation"] = atomic_write_csv(run.evaluation.table, out / "evaluation.csv")
    if run.prices is not None:
        files["prices"] = atomic_write_csv(run.prices, out / "prices.csv")
    files |= write_value_tables(run, out)
    if run.allocation is not None:
        files["allocation"] = atomic_write_csv(
            with_gate(run.allocation.table, failures), out / "allocation.csv"
        )
    d = run.decision
    if d.strata is not None and d.allocation is not None:  # the plan per customer stratum
        files["allocation_strata"] = atomic_write_csv(
            with_gate(d.allocation.table, failures), out / "allocation_strata.csv"
        )
    if run.targets is not None:
        files["targets"] = atomic_write_csv(
            with_gate(run.targets.table, failures), out / "targets.csv"
        )
    if run.crossfit is not None:
        files["crossfit"] = atomic_write_csv(run.crossfit.per_fold, out / "crossfit_folds.csv")
    if run.frontier is not None:
        files["frontier"] = atomic_write_csv(run.frontier.table, out / "frontier.csv")
        files["frontier_shadow_prices"] = atomic_write_csv(
            run.frontier.shadow_prices, out / "frontier_shadow_prices.csv"
        )
    if run.marginal_return is not None:
        files["marginal_return"] = atomic_write_csv(
            run.marginal_return, out / "marginal_return.csv"
        )
    return files


def write_value_tables(run: RunSummary, out: Path) -> dict[str, Path]:
    """``value_per_unit.csv`` always; ``retention_ceiling.csv`` with a retention tactic;
    ``share_of_wallet[_by_segment].csv`` with a wallet or categories column."""
    failures = run.gate.failures
    files = {
        "value_per_unit": atomic_write_csv(value_per_unit_table(run), out / "value_per_unit.csv")
    }
    ceiling = retention_ceiling_table(run)
    if ceiling is not None:
        files["retention_ceiling"] = atomic_write_csv(
            with_gate(ceiling, failures), out / "retention_ceiling.csv"
        )
    wallet = share_of_wallet_tables(run)
    if wallet is not None:
        files["share_of_wallet"] = atomic_write_csv(wallet[0], out / "share_of_wallet.csv")
        files["share_of_wallet_by_segment"] = atomic_write_csv(
            wallet[1], out / "share_of_wallet_by_segment.csv"
        )
    return files


def draw_figures(run: RunSummary, out: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """The run's figures in ``out`` (none with ``report.plots=false``): written files, and the
    file name of each figure the report links."""
    files: dict[str, Path] = {}
    figures: dict[str, str] = {}
    if not run.config.report.plots:
        return files, figures
    import matplotlib.pyplot as plt

    from uplift.models.predictive import plot_predictive_check
    from uplift.report.plots import (
        allocation_plot,
        forest_plot,
        frontier_plot,
        price_plot,
        qini_plot,
    )

    def save(key: str, figure_key: str, fig, name: str) -> None:
        files[key] = atomic_savefig(fig, out / name)
        plt.close(fig)
        figures[figure_key] = name

    save("forest", "forest", forest_plot(run.uplift, truth=run.prepared.truth), "uplift_forest.png")
    if run.allocation is not None:
        fig = allocation_plot(run.allocation.table, run.config.report.currency)
        save("allocation_plot", "allocation", fig, "allocation.png")
    if run.prices is not None:
        fig = price_plot(run.demand, run.prices, run.config.pricing)
        save("prices_plot", "prices", fig, "prices.png")
    if run.frontier is not None:
        fig = frontier_plot(
            run.frontier.table, run.config.optimize.budget, run.config.report.currency
        )
        save("frontier_plot", "frontier", fig, "frontier.png")
    for t, check in run.checks.posterior.items():
        save(f"ppc_{t}", f"ppc_{t}", plot_predictive_check(check), f"ppc_{t}.png")
    if run.evaluation is not None:
        fig = qini_plot(run.evaluation.curves)
        save("evaluation_plot", "evaluation", fig, "evaluation_qini.png")
    return files, figures


def write_report(
    run: RunSummary, summary: dict[str, Any], out: Path, figures: dict[str, str]
) -> Path:
    """``report.md`` of ``run`` (``summary``: its :meth:`RunSummary.to_dict`)."""
    return atomic_write_text(
        render_report(
            summary,
            run.uplift,
            run.by_arm,
            run.allocation.table if run.allocation else None,
            figures,
            run.frontier.table if run.frontier is not None else None,
            with_gate(run.readout, run.gate.failures) if run.readout is not None else None,
            run.prices,
            extra=[
                *([guardrails_section(summary)] if guardrails_section(summary) else []),
                *([evaluation_section(run.evaluation.table, figures)] if run.evaluation else []),
                checks_section(run.checks, figures),
            ],
        ),
        out / "report.md",
    )


def write_html(
    run: RunSummary,
    summary: dict[str, Any],
    out: Path,
    files: dict[str, Path],
    figures: dict[str, str],
) -> Path:
    """``report.html`` of ``run``: the same data as ``report.md``, one self-contained file
    (figures inline, ``allocation.csv`` and ``targets.csv`` embedded when small)."""
    config, failures = run.config, run.gate.failures
    gate = config.optimize.gate
    inputs = HtmlInputs(
        summary=summary,
        uplift=run.uplift,
        by_arm=run.by_arm,
        allocation=with_gate(run.allocation.table, failures) if run.allocation else None,
        plan_by_arm=run.plan_by_arm(),
        frontier=run.frontier.table if run.frontier is not None else None,
        readout=with_gate(run.readout, failures) if run.readout is not None else None,
        prices=run.prices,
        evaluation=run.evaluation.table if run.evaluation is not None else None,
        figures={key: out / name for key, name in figures.items()},
        downloads={
            files[key].name: files[key] for key in ("allocation", "targets") if key in files
        },
        gate={
            "r_hat_max": gate.r_hat_max,
            "ess_bulk_min": gate.ess_bulk_min,
            "divergences_max": gate.divergences_max,
            "ppc_max_extreme_share": gate.ppc_max_extreme_share,
        },
    )
    return atomic_write_text(
        render_html(inputs, currency=config.report.currency), out / "report.html"
    )


def write_summary(summary: dict[str, Any], out: Path) -> Path:
    """``summary.json`` (with the run's ``status``): written last, it marks the run complete."""
    return atomic_write_json(summary, out / "summary.json")
