from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from uplift.data import ColumnMap, aggregate_cells, validate_customers
from uplift.data.synthetic import default_arm_map, generate
from uplift.models import SamplerSettings

COLUMNS = ColumnMap(segments=("value_tier", "needs"))


#: default-tier files from the longest down, as measured with ``--durations=0`` (sum of their
#: tests' times, 2026-12-04, idle 2 cores, after stop 20's cuts). The suite is collected in this
#: order (longest-processing-time-first), but pytest-xdist 3.8's ``--dist loadfile`` then hands
#: out the files with the most tests first (its loadscope reorder), so this order only ranks
#: files of equal size. Honouring it (``--no-loadscope-reorder``) was measured and not adopted:
#: 6:09 against 6:00 and 6:03 (with ``-v``), user + sys 706 s against 676-684 s: the many quick
#: tests then run last in processes whose heaps hold every earlier run's compiled graphs.
#: Files not listed keep their order after these; a stale order costs only balance, never a test.
LONGEST_FIRST = (
    "test_cli.py",
    "test_fit_cache.py",
    "test_console.py",
    "test_crossfit_run.py",
    "test_backends.py",
    "test_outcomes.py",
    "test_waves.py",
    "test_engine_run.py",
    "test_models_families.py",
    "test_predictive.py",
    "test_holdout.py",
    "test_engines.py",
    "test_clv_run.py",
    "test_guardrails.py",
    "test_hillstrom.py",
    "test_hostile_inputs.py",
    "test_clv_join.py",
    "test_report_browser.py",
    "test_prior_from.py",
    "test_model_checks.py",
    "test_tracking.py",
    "test_calibration.py",
    "test_price_discount.py",
    "test_notebook.py",
    "test_presets_real.py",
    "test_price_model.py",
    "test_parameterization.py",
    "test_saved_run.py",
    "test_config_defaults.py",
    "test_init.py",
    "test_posterior_groups.py",
    "test_health.py",
    "test_conversion_model.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """PyTensor's construction traces off for the whole suite: the package turns them off while
    it builds its graphs (uplift.models.building); here also for the fake sampler's compiles
    and the graphs tests build themselves (~0.3 s a compile). Their generated source goes where
    the package puts its own (uplift.models.building.keep_generated_src_tidy), not to /tmp."""
    import pytensor

    from uplift.models.building import keep_generated_src_tidy

    pytensor.config.traceback__limit = 0
    keep_generated_src_tidy()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Collect the longest files first (:data:`LONGEST_FIRST`); a stable sort keeps the order of
    tests within a file, so module fixtures are still built once."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


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
def shared_fit_cache(monkeypatch, tmp_path_factory) -> Path:
    """One fit cache for every test that asks for it (per xdist worker), instead of each test's
    own: tests that fit the same data with the same model, sampler and seed sample it once
    (:mod:`uplift.models.fit_cache` keys every fit by all of these). Only for tests that check
    what a run does with its fits, never the sampling itself."""
    from uplift.models.fit_cache import ENV_FOLDER

    folder = tmp_path_factory.getbasetemp() / "fit_cache_shared"
    folder.mkdir(exist_ok=True)
    monkeypatch.setenv(ENV_FOLDER, str(folder))
    return folder


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


@dataclass
class ExecutedNotebook:
    """A notebook after execution in a real Jupyter kernel, with its cell outputs."""

    nb: Any

    def _outputs(self) -> list[Any]:
        return [o for c in self.nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]

    @property
    def stdout(self) -> str:
        return "".join(
            o.get("text", "") for o in self._outputs() if o.get("output_type") == "stream"
        )

    def shown(self, mime: str) -> list[Any]:
        """Rich outputs of type ``mime`` (e.g. ``image/png``, ``text/html``) shown inline."""
        return [
            o["data"][mime]
            for o in self._outputs()
            if o.get("output_type") in ("display_data", "execute_result") and mime in o["data"]
        ]


def run_notebook(
    name: str, out: Path, monkeypatch: pytest.MonkeyPatch, **env: str
) -> ExecutedNotebook:
    """Execute a jupytext notebook cell by cell in a Jupyter kernel (this interpreter's
    ipykernel), with short chains, writing into ``out`` (also the kernel's working folder)."""
    import jupytext
    from nbclient import NotebookClient

    for key, value in {"UPLIFT_QUICK": "1", "UPLIFT_NOTEBOOK_OUT": str(out), **env}.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this process's environment
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend shows figures
    nb = jupytext.read(NOTEBOOKS / name)
    client = NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(out)}}
    )
    client.execute()  # a failing cell raises CellExecutionError with its traceback
    return ExecutedNotebook(nb)


#: a small finished run on the fake sampler: what the reload, re-plan and wave tests start from
FINISHED_RUN = [
    "data.synthetic.outcomes=conversion",  # every tactic binomial: what prior_from carries
    "data.synthetic.n_customers=12000",
    "sampler=fast",
    "optimize.allow_unconverged=true",
    "optimize.budget=3000",
    "report.plots=false",
    "evaluate.crossfit_folds=0",
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a finished run (:data:`FINISHED_RUN`), made once per test module."""
    import fast_tier
    import uplift

    mp = pytest.MonkeyPatch()
    fast_tier.install(mp)
    try:
        out = tmp_path_factory.mktemp("run") / "out"
        uplift.run(uplift.compose_config(FINISHED_RUN), out)
    finally:
        mp.undo()
    return out
