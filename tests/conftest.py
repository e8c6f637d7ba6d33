from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from uplift.data import ColumnMap, aggregate_cells, validate_customers
from uplift.data.synthetic import default_arm_map, generate
from uplift.models import SamplerSettings

COLUMNS = ColumnMap(segments=("value_tier", "needs"))


@pytest.fixture(scope="session")
def arm_map():
    return default_arm_map()


@pytest.fixture(scope="session")
def synthetic(arm_map):
    return generate(arm_map, n_customers=40_000, seed=11)


@pytest.fixture(scope="session")
def customers(synthetic, arm_map):
    return validate_customers(synthetic.customers, COLUMNS, arm_map)


@pytest.fixture(scope="session")
def cells(customers) -> pd.DataFrame:
    return aggregate_cells(customers)


@pytest.fixture(scope="session", autouse=True)
def _session_fit_cache(tmp_path_factory):
    """The fit cache of session- and module-scoped fixtures in a temporary folder, never the
    working folder's outputs/.fit_cache (uplift.models.fit_cache; subprocesses inherit it)."""
    from uplift.models.fit_cache import ENV_FOLDER

    before = os.environ.get(ENV_FOLDER)
    os.environ[ENV_FOLDER] = str(tmp_path_factory.mktemp("fit_cache_session"))
    yield
    if before is None:
        os.environ.pop(ENV_FOLDER, None)
    else:
        os.environ[ENV_FOLDER] = before


@pytest.fixture(autouse=True)
def _fit_cache(monkeypatch, tmp_path_factory):
    """Each test its own empty fit cache: a test samples as it did before the cache existed
    (a fit repeated within one test is read back from the cache)."""
    from uplift.models.fit_cache import ENV_FOLDER

    monkeypatch.setenv(ENV_FOLDER, str(tmp_path_factory.mktemp("fit_cache")))


@pytest.fixture
def fake_sampler(monkeypatch):
    """Replace posterior sampling with designed draws around the mode (tests/fast_tier.py):
    fits take a fraction of a second and pass the convergence gate. For wiring tests only
    (files, columns, routing, messages); statistical checks keep real NUTS."""
    import fast_tier

    fast_tier.install(monkeypatch)
    return fast_tier.fake_sample


@pytest.fixture
def no_sampling(monkeypatch):
    """Any attempt to sample raises ``RuntimeError("REACHED SAMPLING")``."""
    import fast_tier

    fast_tier.install(monkeypatch, fast_tier.trap)


@pytest.fixture
def uplift_cli(monkeypatch):
    """``uplift_cli(*args)``: the console script in-process (:func:`fast_tier.run_cli`)."""
    import fast_tier

    return lambda *args: fast_tier.run_cli(monkeypatch, *args)


@pytest.fixture(scope="session")
def fast_sampler() -> SamplerSettings:
    return SamplerSettings(draws=500, tune=500, chains=2, seed=3)


NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run_notebook(name: str, out: Path) -> subprocess.CompletedProcess:
    """Run a jupytext notebook as a script with short chains, writing into ``out``."""
    env = {**os.environ, "UPLIFT_QUICK": "1", "UPLIFT_NOTEBOOK_OUT": str(out), "MPLBACKEND": "Agg"}
    r = subprocess.run(
        [sys.executable, str(NOTEBOOKS / name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=out,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r
