"""Architecture checks: layers only import downwards, and the CLI starts without the heavy stack.

The layer order and the conductors are declared in pyproject.toml (``[tool.importlinter]``);
import-linter checks them over the whole import graph, including imports inside functions and
under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

import uplift

SRC = Path(uplift.__file__).resolve().parents[1]
ROOT = SRC.parent
UPLIFT = str(Path(sys.executable).with_name("uplift"))

#: modules the CLI must not import just to compose a config or print help
HEAVY = (
    "pandas",
    "pymc",
    "arviz",
    "pytensor",
    "cvxpy",
    "matplotlib",
    "nutpie",
    "numpyro",
    "jax",
    "sklearn",
    "mlflow",  # seconds to import: only a run with tracking.mlflow=true loads it
    "sqlalchemy",
)


def test_import_contracts_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    report = capsys.readouterr().out
    assert code == 0, report


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def _modules_after(statement: str) -> set[str]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{statement}; import json, sys; print(json.dumps(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
    ).stdout
    return {m.split(".")[0] for m in json.loads(out.splitlines()[-1])}


@pytest.mark.parametrize(
    "statement",
    [
        "import uplift.cli",
        "import uplift.config",
        "from uplift.cli import compose_config; compose_config([])",
    ],
)
def test_cli_and_config_do_not_import_the_modelling_stack(statement: str) -> None:
    loaded = _modules_after(statement)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_help_lists_every_group_and_preset() -> None:
    """``--help`` goes through the shared config store (cli._share_config_store)."""
    done = subprocess.run([UPLIFT, "--help"], capture_output=True, text=True, env=_env())
    assert done.returncode == 0, done.stderr
    groups = dict(
        line.split(": ", 1)
        for line in done.stdout.split("== Config ==")[0].splitlines()
        if ": " in line
    )
    presets = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml"))
    assert groups["experiment"].split(", ") == presets
    assert set(groups) >= {"data", "model", "optimize", "sampler", "tactics", "value"}
    assert "experiment_name: ''" in done.stdout  # empty: named after the data when it runs


def test_cfg_job_prints_the_composed_config() -> None:
    done = subprocess.run(
        [UPLIFT, "experiment=synthetic_pricing", "--cfg", "job"],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr
    assert "experiment_name: synthetic_pricing" in done.stdout
