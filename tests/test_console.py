"""What a user sees on the console (issue #13): an input error is one line naming the fix, not
the same message twice among library INFO lines; a mistyped key is refused with the closest
valid one; arm names with spaces work from the command line; a run says at once where it goes,
shows its stages on a terminal and keeps a non-terminal console short."""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fast_tier

UPLIFT = str(Path(sys.executable).with_name("uplift"))


def test_an_input_error_is_one_line_and_the_log_file_keeps_it(tmp_path):
    missing = tmp_path / "nowhere" / "spring_wave.csv"
    done = subprocess.run(
        [UPLIFT, "data=csv", f"data.path={missing}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 2
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    # the run's first line (where its folder and log are), then the error, once
    assert len(lines) == 2, lines
    assert lines[0].startswith("uplift: run spring_wave -> outputs/spring_wave/")
    assert lines[1].startswith("uplift: error: data.path=") and "does not exist" in lines[1]
    # the run is named after the file, and its log file records the error
    (run,) = (tmp_path / "outputs" / "spring_wave").iterdir()
    log = (run / "cli.log").read_text()
    assert "DataValidationError" in log and "[arviz][INFO]" not in log


def test_the_highs_banner_does_not_open_the_console():
    """HiGHS greets from C++ on its first solver object; a plan's solve must not show it."""
    code = (
        "import cvxpy as cp\n"
        "from uplift.optimize.settings import SolverSettings\n"
        "x = cp.Variable(integer=True)\n"
        "SolverSettings.of('HIGHS').solve(cp.Problem(cp.Maximize(x), [x <= 3.5]), RuntimeError)\n"
        "print('solved', x.value)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "solved 3.0", done.stdout
    assert "HiGHS" not in done.stdout + done.stderr


# ---- unknown keys (issue #13, 1): refused before anything runs, with the closest valid key ----
def test_a_mistyped_key_is_refused_with_did_you_mean_before_anything_runs(
    tmp_path, monkeypatch, uplift_cli, no_sampling
):
    monkeypatch.chdir(tmp_path)
    for args, says in [
        (["+optimize.budgt=100"], "unknown key 'optimize.budgt'; did you mean 'optimize.budget'?"),
        (["optimize.budgt=100"], "unknown key 'optimize.budgt'; did you mean 'optimize.budget'?"),
        (["+evaluate.folds=3"], "did you mean 'evaluate.crossfit_folds'?"),
        (["+optimize.margin=0.3"], "did you mean 'value.margin' or 'clv.margin'?"),
        (["+optimiz.budget=3"], "unknown key 'optimiz'; did you mean 'optimize'?"),
        (["design", "+design.mdee=0.1"], "uplift design: error: unknown key 'design.mdee'"),
    ]:
        done = uplift_cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0], (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "outputs").exists()  # refused before Hydra made a run folder


def test_a_mistyped_key_in_a_users_preset_is_refused_naming_the_file(
    tmp_path, monkeypatch, uplift_cli, no_sampling
):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "presets"
    mine.mkdir()
    (mine / "spring.yaml").write_text(
        "# @package _global_\noptimize:\n  budget: 500\n  frontier: {enabeld: true}\n"
    )
    monkeypatch.setenv("UPLIFT_EXPERIMENTS_DIR", str(mine))
    done = uplift_cli("experiment=spring")
    assert done.returncode == 2
    assert (
        "unknown key 'optimize.frontier.enabeld'; did you mean 'optimize.frontier.enabled'?"
        in done.stderr
    )
    assert str(mine / "spring.yaml") in done.stderr
    # a preset building on it is refused for the same key
    (mine / "wave2.yaml").write_text("# @package _global_\ndefaults:\n  - spring\n")
    child = uplift_cli("experiment=wave2")
    assert child.returncode == 2 and str(mine / "spring.yaml") in child.stderr
    assert not (tmp_path / "outputs").exists()


def test_valid_plus_keys_under_free_mappings_are_still_accepted(
    tmp_path, monkeypatch, uplift_cli, no_sampling
):
    """``+`` adds keys to mappings that take any key (model.families, data.derive): the run
    goes on to sampling (trapped)."""
    monkeypatch.chdir(tmp_path)
    done = uplift_cli(
        "data.synthetic.n_customers=5000",
        "+model.families.cross_sell=binomial",
        "+data.derive.band={column: value_tier, map: {low: a, mid: a, high: b}}",
        "+hydra.job.env_set.UPLIFT_TEST=1",
    )
    assert fast_tier.REACHED in done.stderr, done.stderr[-2000:]
    assert "unknown key" not in done.stderr


# ---- arm names with spaces (issue #13, 2) ------------------------------------------------------
README = Path(__file__).resolve().parents[1] / "README.md"


def readme_own_data_command() -> list[str]:
    """The command-line route for own data with arm names with spaces, as the README shows it."""
    text = README.read_text()
    section = text[text.index("## Your own data") :]
    block = section[section.index("```bash\nuplift data=csv") + len("```bash\n") :]
    block = block[: block.index("```")]
    return shlex.split(block.replace("\\\n", " "))


def test_arm_names_with_spaces_run_with_the_readme_command_line(
    tmp_path, monkeypatch, uplift_cli, fake_sampler
):
    rng = np.random.default_rng(4)
    n = 3000
    frame = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "tier": rng.choice(["gold", "silver"], n),
            "region": rng.choice(["east", "west"], n),
            "offer": rng.choice(["No E-Mail", "Womens E-Mail", "Mens E-Mail"], n),
            "bought": (rng.random(n) < 0.15).astype(int),
        }
    )
    frame["spend"] = np.where(frame["bought"] == 1, rng.lognormal(3.0, 0.5, n).round(2), 0.0)
    data = tmp_path / "spring_campaign.csv"
    frame.to_csv(data, index=False)
    args = readme_own_data_command()
    assert args[0] == "uplift" and any("{No E-Mail:" in a for a in args), args
    args = [f"data.path={data}" if a.startswith("data.path=") else a for a in args[1:]]
    monkeypatch.chdir(tmp_path)
    done = uplift_cli(*args, "sampler=fast", "evaluate.crossfit_folds=0", "report.plots=false")
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = (tmp_path / "outputs" / "spring_campaign").iterdir()
    allocation = pd.read_csv(run / "allocation.csv")
    assert set(allocation["arm"]) == {"Womens E-Mail", "Mens E-Mail"}


def test_misquoted_arm_names_get_the_quoting_that_works(uplift_cli, no_sampling):
    for args in [
        # the shell split an unquoted name; a dotted key cannot hold the space; quoted keys
        ["tactics=custom", "+tactics.arms.No", "E-Mail={tactic: control}"],
        ["tactics=custom", "+tactics.arms.No E-Mail={tactic: control}"],
        ["tactics=custom", '+tactics.arms={"No E-Mail": {tactic: control}}'],
    ]:
        done = uplift_cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("uplift: error: cannot read the override"), done.stderr
        assert "'+tactics.arms={No E-Mail: {tactic: control}, " in done.stderr


# ---- progress and the console's length (issue #13, 4) --------------------------------------------
def test_the_demo_says_where_it_goes_before_reading_data_and_prints_at_most_25_lines(
    tmp_path, monkeypatch, uplift_cli, fake_sampler
):
    """Not a terminal (as in CI and here): no progress display, the first line at once, the
    result lines, the log's INFO lines; at most 25 lines in all. The demo with every tactic a
    conversion (one compiled model structure instead of four): the four-family demo's one more
    line (the price arm's) and its length are checked on tests/test_cli.py's run_dir."""
    from uplift import pipeline

    seen_before_data: list[str] = []
    load = pipeline.load_data

    def spy(config, out):
        seen_before_data.append(sys.stderr.getvalue())
        return load(config, out)

    monkeypatch.setattr(pipeline, "load_data", spy)
    monkeypatch.chdir(tmp_path)
    done = uplift_cli("data.synthetic.outcomes=conversion")
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = (tmp_path / "outputs" / "synthetic_demo").iterdir()
    first = f"uplift: run synthetic_demo -> {run.relative_to(tmp_path)} (generating data)"
    assert seen_before_data == [first + "\n"]
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) <= 25, "\n".join(lines)
    assert "parameterization baseline" not in done.stdout  # once per fit, in its "fitted" line
    assert "\x1b[" not in done.stdout + done.stderr  # no display codes off a terminal


def test_the_run_shows_one_line_per_stage_with_elapsed_time_on_a_terminal(tmp_path, fake_sampler):
    import uplift
    from uplift import progress

    config = uplift.compose_config(
        [
            "data.synthetic.n_customers=20000",
            "tactics=custom",
            "+tactics.arms={control: {tactic: control}, "
            "email: {tactic: cross_sell, cost: 1.0}, upgrade: {tactic: up_sell, cost: 1.5}}",
            "sampler=fast",
            "optimize.allow_unconverged=true",
            "report.plots=false",  # the report stage's line, without drawing figures
        ]
    )
    screen = io.StringIO()
    with progress.display(screen, force_terminal=True):
        uplift.run(config, tmp_path / "run")
    raw = screen.getvalue()
    final = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.split("\x1b[?25h")[0])
    done = re.findall(r"✓ (\S+(?: \S+)?)\s+(\d+\.\d) s", final)
    labels = list(dict.fromkeys(label for label, _ in done))
    assert labels == [
        "data",
        "fit cross_sell",
        "fit up_sell",
        "checks",
        "optimize",
        "targets",
        "cross-fit",
        "frontier",
        "tactic returns",
        "report",
    ], labels
    # the cross-fit's own fits are steps of its line, not lines
    assert "✓ fold" not in final and "fold 2/2: fit" in final
    assert "20,000 customers, 12 segments" in final


def test_sampling_progress_reaches_the_stage_line():
    from uplift import progress

    class Chain:
        def __init__(self, done: int, divergences: int) -> None:
            self.finished_draws, self.total_draws = done, 1000
            self.divergences, self.tuning = divergences, done < 500

    assert progress.sampling_callback() is None  # no display: nutpie reports nothing
    screen = io.StringIO()
    with progress.display(screen, force_terminal=True), progress.stage("fit cross_sell"):
        report = progress.sampling_callback()
        assert report is not None
        report([Chain(300, 0), Chain(700, 2)])
        time.sleep(0.25)  # a refresh of the display
    assert "draws 1,000/2,000 (tuning), 2 divergent" in screen.getvalue()


@pytest.mark.slow
def test_nutpie_reports_its_draws_to_the_display():
    import pymc as pm

    from uplift import progress
    from uplift.models.sampling import sample_nutpie
    from uplift.models.settings import SamplerSettings

    with pm.Model() as model:
        pm.Normal("x", 0, 1)
    screen = io.StringIO()
    with progress.display(screen, force_terminal=True), progress.stage("fit"):
        sample_nutpie(model, SamplerSettings(draws=200, tune=200, chains=2), seed=1)
    assert "draws 800/800" in screen.getvalue()
