"""``uplift init DATA`` (issue #13): from a raw file to a run with one edit.

The route a new user takes with their own CSV: init drafts a preset with every detected choice
commented, the user replaces the TODO marks of the arms, and the command init printed runs it.
Wiring tests: the fake sampler (tests/fast_tier.py), a few thousand rows.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from uplift.app.init_preset import draft_preset
from uplift.data.datasets import shipped_path
from uplift.data.detect import detect_columns

HILLSTROM_COLUMNS = [
    "recency",
    "history_segment",
    "history",
    "mens",
    "womens",
    "zip_code",
    "newbie",
    "channel",
    "segment",
    "visit",
    "conversion",
    "spend",
]


@pytest.fixture(scope="module")
def hillstrom() -> pd.DataFrame:
    raw = pd.read_csv(shipped_path("hillstrom/hillstrom.csv.gz"))
    assert list(raw.columns) == HILLSTROM_COLUMNS
    return raw


def test_init_one_edit_and_the_printed_command_run_raw_hillstrom(
    hillstrom, tmp_path, monkeypatch, uplift_cli, fake_sampler
):
    sample = hillstrom.sample(4000, random_state=5)
    data = tmp_path / "hillstrom.csv.gz"
    sample.to_csv(data, index=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UPLIFT_EXPERIMENTS_DIR", raising=False)

    done = uplift_cli("init", str(data))
    assert done.returncode == 0, done.stderr
    preset = tmp_path / "experiments" / "hillstrom.yaml"
    text = preset.read_text()
    # every choice written out and commented with its evidence
    node = OmegaConf.create(text)
    cols = node.data.columns
    assert cols.customer_id is None and "row number" in text
    assert (cols.arm, cols.converted, cols.revenue) == ("segment", "conversion", "spend")
    assert "visit" not in cols.covariates  # measured after treatment
    assert set(cols.segments) <= {"zip_code", "channel", "history_segment"}
    assert "# detected: 3 values" in text
    assert node.tactics.arms["No E-Mail"].tactic == "control"
    assert text.count("{tactic: TODO, cost: TODO}") == 2
    # covariates and a 0/1 outcome: the covariate model chooses customers within segments
    assert node.model.covariate_model.enabled is True and "customer strata" in text

    # before the edit: refused before any output folder, naming the TODO marks
    command = done.stdout.strip().splitlines()[-1].strip()
    assert command == "UPLIFT_EXPERIMENTS_DIR=experiments uplift experiment=hillstrom"
    env, program, *args = shlex.split(command)
    monkeypatch.setenv(*env.split("=", 1))
    refused = uplift_cli(*args)
    assert refused.returncode == 2
    assert "tactics.arms.Womens E-Mail.tactic" in refused.stderr and "TODO" in refused.stderr
    assert not (tmp_path / "outputs").exists()

    # the one edit: what the e-mails are and cost
    preset.write_text(text.replace("{tactic: TODO, cost: TODO}", "{tactic: cross_sell, cost: 0.1}"))
    ran = uplift_cli(*args, "sampler=fast", "evaluate.crossfit_folds=0", "report.plots=false")
    assert ran.returncode == 0, ran.stderr[-2000:]
    (run,) = (tmp_path / "outputs" / "hillstrom").iterdir()
    allocation = pd.read_csv(run / "allocation.csv")
    assert set(allocation["arm"]) == {"Womens E-Mail", "Mens E-Mail"}
    assert "uplift: hillstrom: spend" in ran.stdout
    assert (run / "customer_scores.csv").exists()


def test_init_refuses_to_overwrite_without_force(tmp_path, monkeypatch, uplift_cli):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "spring.csv"
    rng = np.random.default_rng(1)
    n = 600
    pd.DataFrame(
        {
            "id": np.arange(n),
            "group": rng.choice(["control", "coupon"], n),
            "region": rng.choice(["north", "south"], n),
            "purchased": rng.integers(0, 2, n),
        }
    ).to_csv(data, index=False)
    first = uplift_cli("init", str(data))
    assert first.returncode == 0, first.stderr
    preset = tmp_path / "experiments" / "spring.yaml"
    node = OmegaConf.load(preset)
    assert node.data.columns.customer_id == "id"
    assert (node.data.columns.arm, node.data.columns.converted) == ("group", "purchased")
    assert node.defaults[-1] == {"override /value": "constant"}  # no revenue column
    preset.write_text("# mine\n")
    again = uplift_cli("init", str(data))
    assert again.returncode == 2 and "--force" in again.stderr
    assert preset.read_text() == "# mine\n"
    forced = uplift_cli("init", str(data), "--force")
    assert forced.returncode == 0 and "experiment_name: spring" in preset.read_text()
    other = uplift_cli("init", str(data), "-o", str(tmp_path / "mine" / "wave2.yaml"))
    assert other.returncode == 0
    assert other.stdout.strip().endswith("uplift experiment=wave2")
    assert "UPLIFT_EXPERIMENTS_DIR=mine" in other.stdout


def test_without_a_control_value_or_segments_every_arm_is_todo_and_one_segment_derived(
    tmp_path,
):
    rng = np.random.default_rng(2)
    n = 500
    frame = pd.DataFrame(
        {
            "version": rng.choice(["gate_30", "gate_40"], n),
            "rounds": rng.integers(0, 500, n),
            "retention_7": rng.integers(0, 2, n).astype(bool),
        }
    )
    det = detect_columns(frame)
    assert det.arm.column == "version" and det.control is None
    assert det.converted.column == "retention_7"
    assert det.segments == [] and det.covariates == ["rounds"]

    frame.to_parquet(tmp_path / "cats.parquet")
    drafted = draft_preset(
        tmp_path / "cats.parquet", output=tmp_path / "p" / "cats.yaml", shipped=tmp_path / "x"
    )
    node = OmegaConf.load(drafted.path)
    assert node.defaults[0] == {"override /data": "parquet"}
    assert list(node.data.columns.segments) == ["all_customers"]
    assert node.data.derive.all_customers.map == {"gate_30": "all", "gate_40": "all"}
    assert sorted(drafted.todo) == sorted(
        f"tactics.arms.{a}.{k}" for a in ("gate_30", "gate_40") for k in ("tactic", "cost")
    )


def test_covariate_model_on_with_covariates_off_for_files_too_large_or_without_them():
    """init turns the covariate model on when it detects covariates and a 0/1 outcome (the
    plan then chooses customers within segments), off above COVARIATE_MODEL_ROWS rows (it
    would read every row into memory), and writes nothing without covariates."""
    from dataclasses import replace

    from uplift.app.init_preset import COVARIATE_MODEL_ROWS, render

    rng = np.random.default_rng(4)
    n = 400
    frame = pd.DataFrame(
        {
            "group": rng.choice(["control", "mail"], n),
            "tier": rng.choice(["a", "b"], n),
            "age": rng.integers(18, 80, n),
            "bought": rng.integers(0, 2, n),
        }
    )
    det = detect_columns(frame)
    assert "age" in det.covariates and det.converted.column == "bought"

    def model_of(d):
        node = OmegaConf.create(render(d, "t", Path("t.csv"), "csv", {}))
        return node.get("model")

    assert model_of(det).covariate_model.enabled is True
    big = replace(det, rows=COVARIATE_MODEL_ROWS + 1)
    assert model_of(big).covariate_model.enabled is False
    assert "memory" in render(big, "t", Path("t.csv"), "csv", {})
    assert model_of(replace(det, covariates=[])) is None
