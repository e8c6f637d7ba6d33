"""Outputs that cannot hurt their readers, presets that cannot run code, output folders that
stay under outputs/ (issue #14, part 5)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from uplift.cli import preset_problem, register_experiments
from uplift.config import safe_path_part
from uplift.report.artifacts import atomic_write_csv, escape_formula, unescape_frame
from uplift.report.markdown import md_table

SRC = Path(__file__).resolve().parents[1] / "src" / "uplift"
HOSTILE = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "\tx"]


def test_csv_text_cells_are_escaped_numbers_are_not(tmp_path):
    frame = pd.DataFrame(
        {
            "segment": [*HOSTILE, "high/price"],
            "profit": [-1.5, 2.0, -3.0, 0.0, 1.0, -7.25],
            "=bad_column": ["a"] * 6,
        }
    )
    path = atomic_write_csv(frame, tmp_path / "out.csv")
    raw = path.read_text().splitlines()
    assert raw[0].split(",")[2] == "'=bad_column"
    back = pd.read_csv(path, keep_default_na=False)
    # what a spreadsheet sees: no text cell starts a formula
    for cell in back["segment"]:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert back["segment"].iloc[-1] == "high/price"
    assert back["profit"].tolist() == frame["profit"].tolist()  # negative numbers untouched
    # and this package reads its own files back as written
    restored = unescape_frame(back)
    assert restored["segment"].tolist()[:4] == HOSTILE[:4]
    assert list(restored.columns) == list(frame.columns)
    assert escape_formula(-3.0) == -3.0
    assert escape_formula("\rx") == "'\rx"


def test_every_csv_goes_through_the_escaping_writer():
    offenders = [
        f"{p.relative_to(SRC)}:{i}"
        for p in SRC.rglob("*.py")
        if p.name != "atomic_io.py"
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"\.to_csv\(", line)
    ]
    assert not offenders, f"write CSVs with uplift.atomic_io.atomic_write_csv: {offenders}"


def test_markdown_table_cells_cannot_break_the_table():
    frame = pd.DataFrame(
        {"segment": ["a|b", "x\ny", "<img src=x>", "[l](javascript:1)"], "v": [1.0] * 4}
    )
    table = md_table(frame)
    lines = table.splitlines()
    assert len(lines) == 2 + 4  # head, rule, one line per row
    for line in lines[2:]:
        # three unescaped pipes per row: the borders and one separator
        assert len(re.findall(r"(?<!\\)\|", line)) == 3, line
    assert "\\<img src=x\\>" in table and "\\[l\\](javascript:1)" in table


@pytest.mark.parametrize(
    "text, problem",
    [
        ("experiment_name: ok\nmodel:\n  family: binomial\n", None),
        ("hydra:\n  callbacks:\n    x:\n      _target_: os.system\n", "hydra.callbacks"),
        ("optimize:\n  constraints:\n    - {_target_: builtins.exec, name: x}\n", "_target_"),
        ("a:\n  b:\n    _target_: pathlib.Path.touch\n", "a.b._target_"),
    ],
)
def test_presets_may_not_name_code(text, problem):
    found = preset_problem(OmegaConf.create(text))
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_bad_presets_are_left_out_with_a_named_reason(tmp_path, capsys):
    (tmp_path / "good.yaml").write_text("# @package _global_\nexperiment_name: good_one\n")
    (tmp_path / "broken.yaml").write_text("optimize:\n  budget: [1, 2\n")
    (tmp_path / "evil.yaml").write_text(
        "hydra:\n  callbacks:\n    pwn:\n      _target_: pathlib.Path.touch\n"
    )
    names = register_experiments(tmp_path)
    err = capsys.readouterr().err
    assert names == ["good"]
    assert "broken.yaml left out: it does not parse" in err
    assert "evil.yaml left out: it sets 'hydra.callbacks'" in err


def test_safe_path_part_cannot_climb():
    for hostile in ["../../..", "/etc/passwd", "..\\..\\x", ".hidden", "a/../../b", ""]:
        part = safe_path_part(hostile)
        assert "/" not in part and "\\" not in part and not part.startswith(".") and part


def test_experiment_name_must_be_a_plain_name():
    from uplift import compose_config

    with pytest.raises(ValueError, match="experiment_name='../x' is not a plain name"):
        compose_config(["experiment_name=../x"])
    assert compose_config(["experiment_name=spring-wave_2.b"]).experiment_name == "spring-wave_2.b"


def test_cli_refuses_an_escaping_experiment_name_and_writes_outside_nothing(
    tmp_path, monkeypatch, no_sampling, uplift_cli
):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)  # Hydra's default run folder is under the working directory
    r = uplift_cli("experiment_name=../../escaped")
    assert r.returncode == 2, r.stderr[-2000:]
    assert "experiment_name" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "escaped").exists() and not (work.parent / "escaped").exists()
    # the folder Hydra made before validation stays under outputs/
    made = [p for p in tmp_path.rglob("*") if p.is_dir()]
    assert all(work in p.parents or p == work or p in work.parents for p in made), made


def test_html_report_shows_hostile_names_as_text():
    """report.html (Jinja2, autoescaped): segment, arm and experiment names that are markup or
    script show as written and never become elements; the page's only script is its own."""
    from uplift.report.html import HtmlInputs, render_html

    hostile = {
        "segment": "<script>alert(1)</script>",
        "arm": '"><img src=x onerror=alert(2)>',
        "experiment": "</title><script>alert(3)</script>",
    }
    uplift = pd.DataFrame(
        {
            "tactic": "cross_sell",
            "arm": hostile["arm"],
            "segment": [hostile["segment"], "plain"],
            "metric": "profit_per_treated",
            "mean": [2.0, 1.0],
            "hdi_low": [1.0, 0.0],
            "hdi_high": [3.0, 2.0],
            "prob_positive": [0.99, 0.9],
        }
    )
    plan = pd.DataFrame(
        [("cross_sell", hostile["arm"], 10, 1, 5.0, 20.0, 10.0, 30.0, 1.0, 0.0, "customers")],
        columns=[
            "tactic",
            "arm",
            "customers",
            "segments",
            "spend",
            "expected_profit",
            "profit_hdi_low",
            "profit_hdi_high",
            "prob_profit_positive",
            "prob_loss",
            "unit",
        ],
    )
    allocation = pd.DataFrame(
        {
            "segment": [hostile["segment"]],
            "tactic": "cross_sell",
            "arm": hostile["arm"],
            "customers": [10],
            "spend": [5.0],
            "expected_incremental_profit": [20.0],
            "profit_hdi_low": [10.0],
            "profit_hdi_high": [30.0],
            "prob_profit_positive": [1.0],
            "binding_constraints": ["<b>rule</b>"],
            "decision": [10.0],
        }
    )
    summary = {
        "experiment": hostile["experiment"],
        "budget": 5.0,
        "total_spend": 5.0,
        "customers_treated": 10,
        "expected_incremental_profit": 20.0,
        "profit_hdi": [10.0, 30.0],
        "gate": {"passed": False, "failures": {"<i>t</i>": ["<u>r</u>"]}, "overridden": True},
        "optimizer": {"binding_constraints": ["<b>rule</b>"]},
    }
    page = render_html(
        HtmlInputs(summary=summary, uplift=uplift, allocation=allocation, plan_by_arm=plan)
    )
    assert page.count("<script") == 1  # the report's own sorting script
    assert "<img src=x" not in page and "<b>rule</b>" not in page and "<i>t</i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;/title&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
