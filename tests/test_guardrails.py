"""Guardrail metrics in a run (guardrails.csv, the ``guardrail_veto`` rule) and covariate
balance beside the SRM test (balance.csv, summary.json ``health.balance``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

import uplift
from uplift.data import DataValidationError
from uplift.experiment.health import HealthCheckError
from uplift.experiment.readout import guardrail_harm_table
from uplift.optimize import AllocationProblem
from uplift.optimize.constraints import GuardrailVeto, constraint_from_config

SEGMENTS = [f"s{i}" for i in range(6)]
HARMED = {"s0", "s1", "s2"}  # email_b triples unsubscribes here


def _customers(n_per_cell: int = 3000, seed: int = 11, imbalanced: bool = False) -> pd.DataFrame:
    """Two profitable email arms vs control; ``email_b`` triples unsubscribes (1% -> 3%) in
    ``HARMED`` segments, ``email_a`` leaves them at 1% everywhere. ``tenure`` is balanced;
    ``spend_before`` is shifted by 0.3 sd in ``email_a`` when ``imbalanced``."""
    rng = np.random.default_rng(seed)
    rows = []
    for seg in SEGMENTS:
        for arm, conv in (("control", 0.05), ("email_a", 0.10), ("email_b", 0.10)):
            unsub = 0.03 if arm == "email_b" and seg in HARMED else 0.01
            shift = 0.3 if imbalanced and arm == "email_a" else 0.0
            rows.append(
                pd.DataFrame(
                    {
                        "segment": seg,
                        "arm": arm,
                        "converted": rng.binomial(1, conv, n_per_cell),
                        "unsubscribed": rng.binomial(1, unsub, n_per_cell),
                        "tenure": rng.normal(10.0, 3.0, n_per_cell),
                        "spend_before": rng.normal(100.0 + 20.0 * shift, 20.0, n_per_cell),
                    }
                )
            )
    out = pd.concat(rows, ignore_index=True)
    out.insert(0, "customer_id", np.arange(1, len(out) + 1))
    return out


def _overrides(path: Path, *extra: str) -> list[str]:
    return [
        "data=csv",
        f"data.path={path}",
        "data.columns.revenue=null",
        "tactics=custom",
        "+tactics.arms.control={tactic: control}",
        "+tactics.arms.email_a={tactic: cross_sell, cost: 0.5}",
        "+tactics.arms.email_b={tactic: cross_sell, cost: 0.5}",
        "value.kind=constant",
        "value.per_conversion=40",
        "optimize.budget=100000",
        "sampler=fast",
        "optimize.allow_unconverged=true",
        "optimize.frontier.enabled=false",
        "evaluate.crossfit_folds=0",
        "report.plots=false",
        *extra,
    ]


GUARD = "guardrails=[{column: unsubscribed, threshold: 0.008, direction: increase}]"


def test_guardrail_veto_excludes_the_harmful_arm_where_it_harms(tmp_path):
    """email_b triples unsubscribes in s0-s2, so it is vetoed there by name in allocation.csv
    and guardrails.csv; email_a (no harm) is vetoed nowhere. Real NUTS (short chains): which
    arms a posterior vetoes is a statistical claim the fake sampler's draws cannot make."""
    csv = tmp_path / "customers.csv"
    _customers().to_csv(csv, index=False)
    out = tmp_path / "run"
    uplift.run(uplift.compose_config(_overrides(csv, GUARD)), out)

    g = pd.read_csv(out / "guardrails.csv")
    assert list(g.columns[:10]) == [
        "tactic",
        "arm",
        "segment",
        "metric",
        "mean",
        "hdi_low",
        "hdi_high",
        "prob_harm",
        "threshold",
        "vetoed",
    ]
    assert set(g["segment"]) == {*SEGMENTS, "__overall__"}
    vetoed = g[g["vetoed"]]
    assert set(zip(vetoed["arm"], vetoed["segment"], strict=True)) == {
        ("email_b", s) for s in HARMED
    }
    harmed = g[(g["arm"] == "email_b") & g["segment"].isin(HARMED)]
    assert (harmed["prob_harm"] > 0.2).all() and (harmed["mean"] > 0.01).all()
    assert not g[g["arm"] == "email_a"]["vetoed"].any()

    alloc = pd.read_csv(out / "allocation.csv").fillna({"binding_constraints": ""})
    b = alloc[(alloc["arm"] == "email_b") & alloc["segment"].isin(HARMED)]
    assert len(b) == len(HARMED) and (b["customers"] == 0).all()
    assert b["binding_constraints"].str.contains("guardrail_veto").all()
    others = alloc[~((alloc["arm"] == "email_b") & alloc["segment"].isin(HARMED))]
    assert not others["binding_constraints"].str.contains("guardrail_veto").any()
    assert alloc.loc[alloc["arm"] == "email_a", "customers"].sum() > 0  # not vetoed: treated

    summary = json.loads((out / "summary.json").read_text())
    assert summary["guardrails"]["rule"] == "guardrail_veto"
    assert summary["guardrails"]["n_vetoed"] == len(HARMED)
    assert "guardrail_veto" in summary["optimizer"]["binding_constraints"]
    report = (out / "report.md").read_text()
    assert "## Guardrails" in report and "email_b" in report and "vetoed" in report
    html = (out / "report.html").read_text()
    assert "Guardrails" in html and "unsubscribed" in html


def test_no_guardrail_no_file_and_cells_unchanged(tmp_path, fake_sampler):
    """Without guardrails nothing of them is written and the cells carry no extra column."""
    csv = tmp_path / "customers.csv"
    _customers(n_per_cell=400).to_csv(csv, index=False)
    out = tmp_path / "run"
    uplift.run(uplift.compose_config(_overrides(csv)), out)
    assert not (out / "guardrails.csv").exists()
    assert "guardrails" not in json.loads((out / "summary.json").read_text())
    assert not any(c.startswith("guardrail") for c in pd.read_csv(out / "cells.csv").columns)


def test_guardrail_column_errors_are_named_before_sampling(tmp_path, no_sampling):
    df = _customers(n_per_cell=50)
    csv = tmp_path / "customers.csv"
    df.assign(unsubscribed=df["unsubscribed"] * 2).to_csv(csv, index=False)
    with pytest.raises(DataValidationError, match="unsubscribed.*must be 0/1"):
        uplift.run(uplift.compose_config(_overrides(csv, GUARD)), tmp_path / "a")
    other = GUARD.replace("unsubscribed", "complained")
    with pytest.raises(DataValidationError, match="'complained'.*not in the data"):
        uplift.run(uplift.compose_config(_overrides(csv, other)), tmp_path / "b")


def test_guardrail_config_is_validated():
    with pytest.raises(ValueError, match="threshold"):
        uplift.compose_config(["guardrails=[{column: unsubscribed}]"])
    with pytest.raises(ValueError, match="veto_probability"):
        uplift.compose_config(
            ["guardrails=[{column: unsubscribed, threshold: 0.01, veto_probability: 0.7}]"]
        )


def test_prob_harm_matches_a_known_normal_posterior():
    """P(harm > threshold) on draws of a known normal posterior is its closed form, for a bad
    outcome (increase) and a good one (decrease: harm is the drop)."""
    rng = np.random.default_rng(0)
    mu = np.array([[0.004, -0.001], [0.010, 0.0]])  # (arm, segment)
    sd = 0.003
    x = mu[None] + sd * rng.standard_normal((40000, 2, 2))
    da = xr.DataArray(
        x, dims=("sample", "arm", "segment"), coords={"arm": ["a", "b"], "segment": ["g", "h"]}
    )
    t = guardrail_harm_table("t", "m", da, threshold=0.005, veto_probability=0.2)
    rows = t[t["segment"] != "__overall__"].set_index(["arm", "segment"])
    for i, arm in enumerate(["a", "b"]):
        for j, seg in enumerate(["g", "h"]):
            want = stats.norm.sf((0.005 - mu[i, j]) / sd)
            assert rows.loc[(arm, seg), "prob_harm"] == pytest.approx(want, abs=0.01)
            assert rows.loc[(arm, seg), "vetoed"] == (want > 0.2)
    assert not t.loc[t["segment"] == "__overall__", "vetoed"].any()
    down = guardrail_harm_table("t", "m", -da, threshold=0.005, direction="decrease")
    assert np.allclose(down["prob_harm"], t["prob_harm"], atol=1e-12)


def test_guardrail_veto_rule_zeroes_only_its_cells():
    """The rule alone: its rows fix the vetoed customer cells at 0; it is read from config."""
    arm_map = uplift.compose_config(
        [
            "tactics=custom",
            "+tactics.arms.control={tactic: control}",
            "+tactics.arms.a={tactic: cross_sell, cost: 1}",
        ]
    ).tactics.arm_map()
    draws = xr.DataArray(
        np.full((4, 1, 2), 0.1),
        dims=("sample", "arm", "segment"),
        coords={"arm": ["a"], "segment": ["g", "h"]},
    )
    problem = AllocationProblem.from_uplift(
        {"cross_sell": draws},
        pd.Series(50.0, index=["g", "h"]),
        arm_map,
        pd.Series(100.0, index=["g", "h"]),
    )
    rule = constraint_from_config({"type": "guardrail_veto", "cells": ["g|a", "x|y"]})
    assert isinstance(rule, GuardrailVeto) and rule.name == "guardrail_veto"
    r = rule.rows(problem)
    assert r.labels == ["g|a"]
    x = np.array([0.0, 0.0])
    x[list(problem.cells["segment"]).index("h")] = 100
    assert rule.slack(x, problem) == 0
    x[list(problem.cells["segment"]).index("g")] = 5
    assert rule.violation(x, problem) == 5


def test_covariate_imbalance_is_flagged_balanced_is_not(tmp_path, fake_sampler):
    """spend_before shifted by 0.3 sd in email_a is flagged (warned, run completes); tenure
    is not; with health.balance_fail=true the run refuses before any fit."""
    csv = tmp_path / "customers.csv"
    _customers(n_per_cell=400, imbalanced=True).to_csv(csv, index=False)
    cov = "data.columns.covariates=[tenure,spend_before]"
    out = tmp_path / "run"
    uplift.run(uplift.compose_config(_overrides(csv, cov)), out)
    bal = json.loads((out / "summary.json").read_text())["health"]["balance"]
    assert bal["passed"] is False and bal["threshold"] == 0.1
    flagged = {(w["covariate"], w["arm"]) for w in bal["worst"] if w["flagged"]}
    assert flagged == {("spend_before", "email_a")}
    table = pd.read_csv(out / "balance.csv")
    assert {"segment", "covariate", "arm", "smd", "flagged"} <= set(table.columns)
    overall = table[table["segment"] == "__overall__"].set_index(["covariate", "arm"])
    assert abs(overall.loc[("tenure", "email_a"), "smd"]) < 0.1
    assert overall.loc[("spend_before", "email_a"), "smd"] > 0.2
    assert "imbalance" in (out / "report.md").read_text().lower()
    with pytest.raises(HealthCheckError, match="spend_before"):
        uplift.run(
            uplift.compose_config(_overrides(csv, cov, "health.balance_fail=true")),
            tmp_path / "refused",
        )
