"""The likelihood-family registry (``uplift.models.families``): complete, import-light, and the
only place in the library that names a family."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import uplift
from uplift.config import FAMILIES as CONFIG_FAMILIES
from uplift.config import FAMILY_METRIC, ModelConfig
from uplift.evaluate import calibration
from uplift.models import settings
from uplift.models.families import (
    DEFAULT_FAMILY,
    FAMILIES,
    Family,
    UnknownFamilyError,
    get_family,
)
from uplift.tactics import Tactic

SRC = Path(uplift.__file__).resolve().parent
REGISTRY_DIR = SRC / "models" / "families"


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (module, class, function)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                out.add(id(body[0].value))
    return out


def family_literals(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of every string constant equal to one of ``names``, docstrings excluded
    (comments are not in the syntax tree)."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in names
        and id(node) not in docs
    ]


def test_the_literal_finder_sees_code_and_skips_docstrings():
    src = '''"""binomial"""
def f(x="price_logit"):
    """hurdle_lognormal"""
    # "negative_binomial"
    return {"binomial": 1}, f"{x} binomial", x == "negative_binomial"
'''
    found = family_literals(src, set(FAMILIES))
    assert sorted(found) == [(2, "price_logit"), (5, "binomial"), (5, "negative_binomial")]


def test_only_the_registry_names_a_family():
    names = set(FAMILIES)
    offences = []
    for path in sorted(SRC.rglob("*.py")):
        if REGISTRY_DIR in path.parents:
            continue
        for line, name in family_literals(path.read_text(encoding="utf-8"), names):
            offences.append(f"{path.relative_to(SRC.parent)}:{line}: {name!r}")
    assert not offences, (
        "family names outside uplift/models/families/ (look the family up with "
        "uplift.models.families.get_family instead):\n" + "\n".join(offences)
    )


def test_every_family_has_all_parts():
    # calibration studies seed by position: new families go after these
    assert list(FAMILIES)[:4] == [
        "binomial",
        "hurdle_lognormal",
        "negative_binomial",
        "price_logit",
    ]
    assert DEFAULT_FAMILY in FAMILIES
    # link: None where the effects are not per-cell differences from a control (price tests)
    optional = {"requires", "outcome", "link"}
    for name, fam in FAMILIES.items():
        assert isinstance(fam, Family) and fam.name == name
        # one module per family, named after it, holding the registered object
        assert importlib.import_module(f"uplift.models.families.{name}").FAMILY is fam
        for f in dataclasses.fields(fam):
            value = getattr(fam, f.name)
            if f.name not in optional:
                assert value is not None, (name, f.name)
        assert fam.metric in {"conversion", "revenue", "orders"}
        assert fam.requires in {None, "revenue", "orders"}
        for hook in (fam.events, fam.build, fam.default_model, fam.replicate, fam.implied):
            assert callable(hook), (name, hook)
        assert fam.link is None if fam.prices else callable(fam.link), name
        module, cls = fam.model_class.split(":")
        assert module.startswith("uplift.models.") and cls
        assert all(
            dataclasses.is_dataclass(p) and p.__module__ == settings.__name__ for p in fam.priors
        )
        assert fam.statistics and len(set(fam.statistics)) == len(fam.statistics)
        assert "n" in fam.cell_columns
        assert fam.quantities and all(len(q) == 3 for q in fam.quantities)
        assert callable(getattr(calibration, fam.simulator))
        assert set(fam.design) <= {"n_segments", "n_arms"} and "n_segments" in fam.design
        assert len(fam.naive_columns) == 2
        Tactic.parse(fam.calibration_tactic)
        # a price test is not scored on held-out rows; every other family is
        assert (fam.outcome is None) == fam.prices
    # the configuration's tables are the registry's
    assert {n: f.requires for n, f in FAMILIES.items()} == CONFIG_FAMILIES
    assert {n: f.metric for n, f in FAMILIES.items()} == FAMILY_METRIC


def test_every_family_counts_events_on_cells():
    cells = pd.DataFrame(
        {
            "n": [100, 200],
            "conversions": [10, 190],
            "n_buyers": [7, 9],
            "orders_sum": [30, 50],
        }
    )
    for fam in FAMILIES.values():
        events = fam.events(cells)
        assert len(events) == 2 and np.all(np.asarray(events) >= 0), fam
    assert list(get_family("binomial").events(cells)) == [10, 10]


def test_model_classes_carry_their_family():
    for name, fam in FAMILIES.items():
        cls = fam.load_class()
        assert cls.family == name and cls.metric == fam.metric


def test_unknown_family_is_a_named_error():
    with pytest.raises(UnknownFamilyError, match="'poisson'.*binomial.*price_logit"):
        get_family("poisson")
    with pytest.raises(ValueError, match="known families"):
        get_family("Binomial")
    with pytest.raises(ValueError, match=r"model.families.up_sell='poisson' is unknown"):
        ModelConfig(families={"up_sell": "poisson"})


def test_registry_imports_without_pymc():
    env = dict(os.environ, PYTHONPATH=str(SRC.parent))
    code = (
        "import sys, uplift.models.families, uplift.config; "
        "assert 'pymc' not in sys.modules, 'pymc imported'"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
