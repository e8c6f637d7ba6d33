"""Run tracking (issue #16, part 5): ``uplift tracking=mlflow`` logs a finished run to MLflow
(the config as parameters, summary.json's numbers as metrics, the tables, report and summary as
artifacts) in a local SQLite store by default, read back here with MLflow's own client; MLflow
missing is a named error before any work; nothing of MLflow loads unless a run is logged."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import uplift
from uplift.app import tracking
from uplift.app.tracking import (
    DEFAULT_FOLDER,
    artifact_paths,
    config_params,
    store_for,
    summary_metrics,
)
from uplift.config import TrackingConfig

QUICK = [
    "data.synthetic.outcomes=conversion",  # one model structure to compile: tracking is the subject
    "data.synthetic.n_customers=8000",
    "sampler=fast",
    "optimize.allow_unconverged=true",
    "optimize.budget=4000",
    "report.plots=false",
    "evaluate.crossfit_folds=0",
    "optimize.frontier.enabled=false",
]


def test_a_run_is_logged_to_the_local_store_and_reads_back(
    tmp_path, uplift_cli, fake_sampler, monkeypatch
):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_dir = tmp_path / "run"
    r = uplift_cli(
        *QUICK, "tracking=mlflow", "+tracking.tags.team=growth", f"hydra.run.dir={run_dir}"
    )
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())

    store = tmp_path / DEFAULT_FOLDER
    assert (store / "mlflow.db").is_file()  # the default: SQLite under the working folder
    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("synthetic_demo")
    assert experiment is not None
    assert experiment.artifact_location == (store / "artifacts").as_uri()
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"

    params = run.data.params
    assert params["optimize.budget"] == "4000.0"
    assert params["sampler.draws"] == json.dumps(
        uplift.compose_config(["sampler=fast"]).sampler.draws
    )
    assert params["data.synthetic.n_customers"] == "8000"
    assert params["experiment_name"] == "synthetic_demo"
    assert params["tracking.mlflow"] == "true"
    assert params["optimize.frontier.budgets"] == "null" and params["guardrails"] == "[]"

    metrics = run.data.metrics
    assert metrics["expected_incremental_profit"] == pytest.approx(
        summary["expected_incremental_profit"]
    )
    assert metrics["total_spend"] == pytest.approx(summary["total_spend"])
    assert metrics["profit_hdi.0"] == pytest.approx(summary["profit_hdi"][0])
    assert metrics["health.srm_p_value"] == pytest.approx(summary["health"]["srm_p_value"])
    assert metrics["gate.passed"] == float(summary["gate"]["passed"])
    for tactic in summary["tactics"]:
        assert metrics[f"diagnostics.{tactic}.r_hat_max"] == pytest.approx(
            summary["diagnostics"][tactic]["r_hat_max"]
        )

    tags = run.data.tags
    assert tags["uplift.status"] == "complete" and tags["team"] == "growth"
    assert tags["uplift.run_folder"] == str(run_dir)
    assert "optimize.budget=4000" in tags["uplift.overrides"]

    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    for name in ("allocation.csv", "targets.csv", "report.html", "report.md", "summary.json"):
        assert name in names, names
    assert ".hydra" in names and not any(n.endswith(".nc") for n in names)
    got = Path(client.download_artifacts(run.info.run_id, "summary.json", str(tmp_path / "dl")))
    assert got.read_bytes() == (run_dir / "summary.json").read_bytes()

    # a refused run is logged too, marked FAILED with its status, into the same store
    refused = tmp_path / "refused"
    refused.mkdir()
    (refused / "summary.json").write_text(
        json.dumps({"status": "refused", "gate": {"passed": False}, "x": float("nan")})
    )
    config = uplift.compose_config(["tracking=mlflow", "tracking.experiment=other"])
    run_id = tracking.log_run(config, refused, cwd=tmp_path)
    other = client.get_run(run_id)
    assert other.info.status == "FAILED" and other.data.tags["uplift.status"] == "refused"
    assert other.data.metrics == {"gate.passed": 0.0}  # NaN is not a measurement
    assert client.get_experiment(other.info.experiment_id).name == "other"


def test_tracking_enabled_without_mlflow_is_a_named_error_before_work(
    uplift_cli, no_sampling, monkeypatch, tmp_path
):
    real = tracking.find_spec
    monkeypatch.setattr(tracking, "find_spec", lambda m: None if m == "mlflow" else real(m))
    r = uplift_cli(*QUICK, "tracking.mlflow=true", f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2, r.stderr[-2000:]
    assert "tracking.mlflow=true needs mlflow" in r.stderr
    assert "pip install 'uplift[tracking]'" in r.stderr
    assert not (tmp_path / "run" / "summary.json").exists()  # nothing ran


def test_a_password_in_the_uri_is_refused(uplift_cli, tmp_path):
    r = uplift_cli("tracking.uri=https://me:secret@mlflow.example.com", f"hydra.run.dir={tmp_path}")
    assert r.returncode == 2
    assert "tracking.uri holds a password" in r.stderr and "MLFLOW_TRACKING_PASSWORD" in r.stderr
    TrackingConfig(uri="https://mlflow.example.com:5000")  # a port is not a password


def test_where_runs_go(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    local = store_for(TrackingConfig(mlflow=True), cwd=tmp_path)
    assert local.uri == f"sqlite:///{tmp_path / 'outputs' / 'mlflow' / 'mlflow.db'}"
    assert local.artifacts == tmp_path / "outputs" / "mlflow" / "artifacts"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team:5000")
    assert store_for(TrackingConfig(mlflow=True), cwd=tmp_path).uri == "http://team:5000"
    team = store_for(TrackingConfig(mlflow=True, uri="http://other:5000"), cwd=tmp_path)
    assert team.uri == "http://other:5000" and team.artifacts is None and team.lock is None


def test_flattening_for_mlflow(tmp_path):
    metrics = summary_metrics(
        {
            "a": {"b": 1, "ok": True},
            "hdi": [1.5, 2.5],
            "name": "x",
            "nan": math.nan,
            "seg": {"hi/lo(1)": 2},
        }
    )
    assert metrics == {"a.b": 1.0, "a.ok": 1.0, "hdi.0": 1.5, "hdi.1": 2.5, "seg.hi/lo_1_": 2.0}
    config = uplift.compose_config(["experiment_name=" + "x" * 50])
    params = config_params(config)
    assert params["experiment_name"] == "x" * 50 and params["seed"] == "null"
    assert all(len(v) <= tracking.MAX_PARAM_VALUE for v in params.values())
    for name in ("summary.json", "posterior_a.nc", ".summary.json.tmp"):
        (tmp_path / name).write_text("{}")
    (tmp_path / ".hydra").mkdir()
    assert [p.name for p in artifact_paths(tmp_path)] == [".hydra", "summary.json"]
    assert [p.name for p in artifact_paths(tmp_path, posteriors=True)] == [
        ".hydra",
        "posterior_a.nc",
        "summary.json",
    ]
