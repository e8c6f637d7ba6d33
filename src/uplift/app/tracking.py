"""Optional MLflow logging of a finished run (``uplift tracking=mlflow``).

A run's folder already holds everything it decided; tracking copies the parts worth comparing
across runs into MLflow once the folder is published, so a team can search and chart runs
without opening folders:

* **parameters**: the run's validated config, flattened to dotted keys (``optimize.budget``,
  ``sampler.draws``...), lists and mappings as JSON;
* **metrics**: every number of summary.json under its dotted path (``expected_incremental_profit``,
  ``calibrated_incremental_profit``, ``crossfit.estimate``, ``health.srm_p_value``,
  ``diagnostics.<tactic>.r_hat_max``, ``seconds.fit``...; true/false as 1/0, list items by
  index: ``profit_hdi.0``);
* **artifacts**: the run's tables, report.md / report.html with their figures, summary.json,
  config.yaml and Hydra's ``.hydra/`` (the posterior files only with ``tracking.posteriors``);
* **tags**: the run's status (``complete``, ``refused``, ``failed``), folder, overrides, and
  for a multirun job its sweep folder and job number.

Where: ``tracking.uri``, else ``$MLFLOW_TRACKING_URI``, else a local SQLite store under the
working folder (``outputs/mlflow/mlflow.db``, artifacts in ``outputs/mlflow/artifacts``): the
backend MLflow 3.7+ defaults to (its file store is in maintenance mode), with no server to run.
Parallel jobs of a sweep (``hydra/launcher=joblib``) share that store: the first connection
(which creates the tables) and each run's logging are serialised by a lock file beside it.

MLflow is imported only when a run is logged (it takes seconds to import), never by ``uplift
--help``. A run whose logging fails keeps its folder and its exit status: the failure is a
warning naming the store.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uplift.config import TrackingConfig

if TYPE_CHECKING:
    from uplift.config import AppConfig

log = logging.getLogger("uplift")

#: the pip extra that installs what tracking needs (pyproject.toml)
EXTRA = "uplift[tracking]"
#: the local store's folder when neither tracking.uri nor $MLFLOW_TRACKING_URI names one
DEFAULT_FOLDER = Path("outputs") / "mlflow"
ENV_URI = "MLFLOW_TRACKING_URI"
#: MLflow's limits (mlflow.utils.validation): longer parameter values are cut, with a mark
MAX_PARAM_VALUE = 6000
MAX_KEY = 250
#: run-folder files never uploaded unless asked (tracking.posteriors): large, and cached
POSTERIOR_SUFFIXES = (".nc",)


class TrackingError(RuntimeError):
    """Tracking is asked for but cannot run (MLflow missing); raised before any sampling."""


def missing_packages(uri: str | None) -> list[str]:
    """Modules tracking to ``uri`` needs that are not installed (SQLAlchemy and Alembic only
    for a database store, which the default local store is)."""
    needed = ["mlflow"]
    if uri is None or _is_database(uri):
        needed += ["sqlalchemy", "alembic"]
    return [m for m in needed if find_spec(m) is None]


def check_available(settings: TrackingConfig) -> None:
    """Raise :class:`TrackingError` naming the extra when ``tracking.mlflow`` is on and MLflow
    (or its SQL store) is not installed; cheap (no import)."""
    if not settings.mlflow:
        return
    uri = settings.uri or os.environ.get(ENV_URI) or None
    missing = missing_packages(uri)
    if missing:
        raise TrackingError(
            f"tracking.mlflow=true needs {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed: pip install '{EXTRA}' "
            "(MLflow's client with its SQLite store), or set tracking.mlflow=false"
        )


def _is_database(uri: str) -> bool:
    return re.match(r"^(sqlite|postgresql|mysql|mssql)(\+\w+)?://", uri) is not None


@dataclass(frozen=True)
class Store:
    """Where runs go: the tracking URI, and for the default local store its artifact folder
    and lock file (None for a store someone else runs)."""

    uri: str
    artifacts: Path | None = None
    lock: Path | None = None


def store_for(settings: TrackingConfig, cwd: Path | None = None) -> Store:
    """``tracking.uri``, else ``$MLFLOW_TRACKING_URI``, else the local SQLite store under
    ``cwd`` (default: the working folder)."""
    uri = settings.uri or os.environ.get(ENV_URI)
    if uri:
        local = _local_sqlite(uri)
        return Store(uri, lock=local.with_suffix(".lock") if local else None)
    folder = ((cwd or Path.cwd()) / DEFAULT_FOLDER).absolute()
    db = folder / "mlflow.db"
    return Store(f"sqlite:///{db}", artifacts=folder / "artifacts", lock=folder / "mlflow.lock")


def _local_sqlite(uri: str) -> Path | None:
    m = re.match(r"^sqlite:///(.+)$", uri)
    return Path(m.group(1)) if m and m.group(1) != ":memory:" else None


@contextmanager
def _locked(path: Path | None) -> Iterator[None]:
    """An exclusive lock on ``path`` (POSIX ``flock``) while the block runs; no lock when
    ``path`` is None or the platform has no ``fcntl``. SQLite itself serialises writes, but
    two processes creating MLflow's tables at once collide, and a second writer waiting on a
    long first one can hit SQLite's busy timeout."""
    try:
        import fcntl
    except ImportError:  # Windows: SQLite's own locking only
        fcntl = None  # type: ignore[assignment]
    if path is None or fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _key(text: str) -> str:
    """A name MLflow accepts as a parameter or metric key (letters, digits and ``_-. /:``)."""
    return re.sub(r"[^A-Za-z0-9_\-. /:]", "_", text)[:MAX_KEY]


def _flatten(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, leaf) of nested mappings; lists are leaves."""
    if isinstance(node, Mapping) and node:
        for k, v in node.items():
            yield from _flatten(v, f"{where}.{k}" if where else str(k))
    else:
        yield where, node


def config_params(config: AppConfig) -> dict[str, str]:
    """The run's config as MLflow parameters: dotted keys, strings as they are, everything else
    as JSON (lists, numbers, true/false/null), values past MLflow's limit cut with a mark."""
    from omegaconf import OmegaConf

    tree = OmegaConf.to_container(OmegaConf.structured(config), resolve=True, enum_to_str=True)
    params: dict[str, str] = {}
    for path, value in _flatten(tree):
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > MAX_PARAM_VALUE:
            text = text[: MAX_PARAM_VALUE - 20] + "... (cut; see config)"
        params[_key(path)] = text
    return params


def _numbers(node: Any, where: str = "") -> Iterator[tuple[str, float]]:
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from _numbers(v, f"{where}.{k}" if where else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _numbers(v, f"{where}.{i}")
    elif isinstance(node, int | float) and node == node:  # bools as 1/0; NaN: not measured
        yield where, float(node)


def summary_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """Every number of summary.json by dotted path (true/false as 1/0, list items by index,
    NaN left out)."""
    return {_key(path): value for path, value in _numbers(summary) if path}


def artifact_paths(run_dir: Path, posteriors: bool = False) -> list[Path]:
    """The run folder's files and folders to upload: everything but temporary files and,
    unless ``posteriors``, the posterior netCDF files."""
    keep = []
    for path in sorted(run_dir.iterdir()):
        if path.name.startswith(".") and path.name != ".hydra":
            continue
        if path.is_file() and path.suffix in POSTERIOR_SUFFIXES and not posteriors:
            continue
        keep.append(path)
    return keep


def _hydra_tags(run_dir: Path) -> dict[str, str]:
    """The overrides of the run and, in a multirun, its sweep folder and job number (from
    Hydra's runtime config when a Hydra app is running, else from ``run_dir/.hydra``)."""
    tags: dict[str, str] = {}
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except (ImportError, ValueError):  # not inside a Hydra app
        hc = None
    overrides = run_dir / ".hydra" / "overrides.yaml"
    if overrides.is_file():
        from omegaconf import OmegaConf

        tags["uplift.overrides"] = " ".join(str(o) for o in OmegaConf.load(overrides))
    if hc is not None and hc.mode == RunMode.MULTIRUN:
        tags["uplift.sweep_dir"] = str(Path(hc.sweep.dir).absolute())
        tags["uplift.job"] = str(hc.job.num)
    return tags


def _experiment_id(client: Any, name: str, store: Store) -> str:
    """The id of MLflow experiment ``name``, created (with the local store's artifact folder)
    when missing; a concurrent creator's experiment is used rather than failing."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = store.artifacts.as_uri() if store.artifacts is not None else None
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException:
        found = client.get_experiment_by_name(name)  # another job created it meanwhile
        if found is None:
            raise
        return str(found.experiment_id)


@contextmanager
def _quiet_store_logs() -> Iterator[None]:
    """Alembic announces each schema migration of a new SQLite store at INFO: not run output."""
    loggers = [logging.getLogger(n) for n in ("alembic", "mlflow.store.db.utils")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def log_run(config: AppConfig, run_dir: str | Path, *, cwd: Path | None = None) -> str:
    """Log the published run in ``run_dir`` to MLflow; returns the MLflow run id.

    Reads the folder (summary.json, the tables, the report), so it logs refused and failed runs
    too, with their status. Raises :class:`TrackingError` when MLflow is missing.
    """
    settings = config.tracking
    store = store_for(settings, cwd)
    check_available(TrackingConfig(mlflow=True, uri=store.uri))
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text("utf-8")) if summary_path.is_file() else {}
    status = str(summary.get("status", "failed"))
    tags = {
        "mlflow.source.name": "uplift",
        "uplift.experiment": config.experiment_name,
        "uplift.status": status,
        "uplift.run_folder": str(run_dir.absolute()),
        **_hydra_tags(run_dir),
        **{str(k): str(v) for k, v in settings.tags.items()},
    }
    now = int(time.time() * 1000)
    with _quiet_store_logs(), _locked(store.lock):
        client = MlflowClient(tracking_uri=store.uri)
        experiment = _experiment_id(client, settings.experiment or config.experiment_name, store)
        run = client.create_run(experiment, tags=tags, run_name=settings.run_name or run_dir.name)
        run_id = run.info.run_id
        try:
            client.log_batch(
                run_id,
                metrics=[Metric(k, v, now, 0) for k, v in summary_metrics(summary).items()],
                params=[Param(k, v) for k, v in config_params(config).items()],
            )
            for path in artifact_paths(run_dir, settings.posteriors):
                if path.is_dir():
                    client.log_artifacts(run_id, str(path), artifact_path=path.name)
                else:
                    client.log_artifact(run_id, str(path))
        except BaseException:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id, status="FINISHED" if status == "complete" else "FAILED")
    return run_id


def log_run_safely(config: AppConfig, run_dir: str | Path) -> str | None:
    """:func:`log_run`, a failure (store unreachable, disk full) costing a warning rather than
    the run: its folder is written either way. Returns the MLflow run id, or None."""
    try:
        run_id = log_run(config, run_dir)
    except Exception as e:
        store = store_for(config.tracking)
        log.warning(
            "tracking: the run was not logged to MLflow at %s (%s: %s); its files are in %s",
            store.uri,
            type(e).__name__,
            e,
            run_dir,
        )
        return None
    log.info("tracking: logged to MLflow at %s (run %s)", store_for(config.tracking).uri, run_id)
    return run_id
