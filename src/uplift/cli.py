"""``uplift`` console script: a thin Hydra entry point over :func:`uplift.pipeline.run`.

Configuration lives in ``conf/`` (groups mirror the pipeline's parts); experiment presets live in
the top-level ``experiments/`` folder and are registered as the ``experiment`` config group, so
``uplift experiment=NAME`` selects ``experiments/NAME.yaml``. Set ``UPLIFT_EXPERIMENTS_DIR`` to add
a folder of your own presets.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import sys
from contextlib import nullcontext
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from uplift.config import AppConfig, register_configs, to_app_config, walk_config

log = logging.getLogger("uplift")
_PKG = Path(__file__).resolve().parent


def _find(installed: str, source: str) -> Path:
    """Config folders ship inside the wheel (``uplift/_conf``) and sit at the repo top in a checkout."""
    for candidate in (_PKG.parents[1] / source, _PKG / installed):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the {source}/ folder next to the uplift package ({_PKG})")


CONF_DIR = _find("_conf", "conf")
EXPERIMENTS_DIR = _find("_experiments", "experiments")


def preset_problem(node: object) -> str | None:
    """Why a preset may not be registered, or None: presets choose settings, they may not run
    code, so ``hydra.callbacks`` and ``_target_`` keys (Hydra instantiates any callable they
    name) are refused wherever they appear."""
    for path, key, _ in walk_config(node):
        if path == "hydra.callbacks" or key == "_target_":
            return f"it sets {path!r} (presets may not name code to run)"
    return None


#: preset name -> the file registered under it (a later folder's file replaces an earlier one)
PRESET_FILES: dict[str, Path] = {}


#: each preset file's parse, by path: its (mtime, size) then, the node, why it is left out
_PARSED: dict[Path, tuple[tuple[int, int], object, str | None]] = {}


def _parse_preset(path: Path) -> tuple[object, str | None]:
    """A preset's node and why it is left out (None: registered), parsed again only when the
    file changed since the last call (compose_config registers on every call)."""
    try:
        st = path.stat()
    except OSError as e:  # gone since the folder was listed
        return None, f"it does not parse ({e})"
    stamp = (st.st_mtime_ns, st.st_size)
    seen = _PARSED.get(path)
    if seen is not None and seen[0] == stamp:
        return seen[1], seen[2]
    node: object = None
    problem: str | None
    try:
        node = OmegaConf.load(path)
    except Exception as e:  # any parse error of a user's file: skip it, say why
        problem = f"it does not parse ({e})"
    else:
        problem = preset_problem(node)
    _PARSED[path] = (stamp, node, problem)
    return node, problem


def register_experiments(*folders: Path) -> list[str]:
    """Register every ``*.yaml`` in ``folders`` as option ``experiment=<stem>`` (global package).

    A preset that does not parse, or that names code to run (:func:`preset_problem`), is left
    out with a warning naming the file, so one broken file does not break every command.
    """
    cs = ConfigStore.instance()
    names = []
    for folder in folders:
        for path in sorted(Path(folder).glob("*.yaml")):
            node, problem = _parse_preset(path)
            if problem:
                print(f"uplift: preset {path} left out: {problem}", file=sys.stderr)
                continue
            cs.store(group="experiment", name=path.stem, node=node, package="_global_")
            PRESET_FILES[path.stem] = path
            names.append(path.stem)
    return names


#: the preset conf/config.yaml selects when the command line names none
DEFAULT_EXPERIMENT = "synthetic_demo"

#: how to give arms whose names a dotted key cannot hold (spaces, dots, quotes)
ARMS_BY_MAP = (
    "'+tactics.arms={No E-Mail: {tactic: control}, Womens E-Mail: {tactic: cross_sell, "
    "cost: 0.1}}' (one map, arm names unquoted inside it, the whole argument in single quotes "
    "for the shell; with tactics=custom to start from no arms), or list the arms in a preset "
    "(`uplift init <data file>` drafts one)"
)


def _quoting_hint(text: str) -> str | None:
    """A fix for an override Hydra cannot parse, when we know the usual cause."""
    key = text.split("=", 1)[0].lstrip("+~")
    if key.startswith("tactics.arms") or text.startswith(("+tactics.arms.", "tactics.arms.")):
        return (
            f"cannot read the override {text!r}: an arm name with a space (or a dot or quote) "
            f"cannot be part of a dotted key, and the shell splits it unless quoted. Give the "
            f"arms as {ARMS_BY_MAP}"
        )
    if "=" in text and re.search(r"[{,]\s*[\"']", text.split("=", 1)[1]):
        return (
            f"cannot read the override {text!r}: keys inside {{...}} are written without "
            "quotes, e.g. '+tactics.arms={No E-Mail: {tactic: control}}' (quote the whole "
            "argument for the shell instead)"
        )
    return None


def check_arguments(argv: list[str]) -> str | None:
    """Why this command line cannot run, in one line naming the key and the fix, or None.

    Runs before Hydra composes anything (so before any output folder, data or sampling):

    * an override Hydra cannot parse for a reason we can explain (arm names with spaces,
      quoted dict keys: :func:`_quoting_hint`); other parse errors are left to Hydra's message;
    * a key the schema does not have, with or without ``+`` (``optimize.budgt=100``): the
      closest valid keys (:func:`uplift.config.unknown_key_path`). Keys under fields that take
      any key (``tactics.arms``, ``model.families``, ``data.derive``, ...) and ``hydra.*`` are
      free;
    * the same for every key of the selected preset (``experiment=NAME``, shipped or from
      ``UPLIFT_EXPERIMENTS_DIR``), naming its file, and any TODO left in it by ``uplift init``.
    """
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    from uplift.config import todo_keys, unknown_key_message, unknown_key_path, unknown_keys

    args, _ = get_args_parser().parse_known_args(argv)
    parser = OverridesParser.create()
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()} | {"experiment", "hydra"}
    experiments = [DEFAULT_EXPERIMENT]
    for text in args.overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except OverrideParseException:
            hint = _quoting_hint(text)
            if hint:
                return hint
            continue  # Hydra names it
        key = override.key_or_group
        if override.is_delete() or override.package is not None or "/" in key:
            continue
        if key.split(".")[0] == "hydra":
            continue
        if key in groups:
            if key == "experiment":
                experiments = (
                    list(override.sweep_string_iterator())
                    if override.is_sweep_override()
                    else [str(override.value())]
                )
            continue
        bad = unknown_key_path(key)
        if bad is not None:
            return unknown_key_message(*bad, where=f"on the command line, {text!r}")
    seen: set[str] = set()
    while experiments:
        name = experiments.pop(0)
        path = PRESET_FILES.get(name)
        if path is None or name in seen:
            continue  # Hydra lists the presets there are
        seen.add(name)
        node = OmegaConf.load(path)
        if not isinstance(node, DictConfig):
            continue
        # a preset may build on another (defaults: [hillstrom_email]): check that one too
        experiments += [d for d in node.get("defaults") or [] if isinstance(d, str)]
        keys = [str(k) for k in node if k not in ("defaults", "hydra")]
        unknown = unknown_keys(OmegaConf.masked_copy(node, keys), AppConfig)
        if unknown:
            return unknown_key_message(*unknown[0], where=f"in preset {name}, {path}")
        todo = todo_keys(node)
        if todo:
            return (
                f"preset {name} ({path}) still has {len(todo)} TODO mark(s): {', '.join(todo)}. "
                "`uplift init` leaves them where only you can decide; replace each (the "
                "comment above it says what goes there)"
            )
    return None


def _experiment_folders() -> list[Path]:
    extra = os.environ.get("UPLIFT_EXPERIMENTS_DIR")
    return [EXPERIMENTS_DIR, *([Path(p) for p in extra.split(os.pathsep)] if extra else [])]


def compose_config(overrides: list[str] | tuple[str, ...] = ()) -> AppConfig:
    """The same typed config the CLI would build for these overrides (for notebooks and tests)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    register_experiments(*_experiment_folders())
    GlobalHydra.instance().clear()
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            cfg = compose(config_name="config", overrides=list(overrides))
        except (HydraException, OmegaConfBaseException) as e:  # a bad override: name it
            cause = e.__cause__ or e
            raise ValueError(f"{e}: {cause}" if cause is not e else str(e)) from None
    return to_app_config(cfg)


#: set once Hydra has composed the config and handed it to a verb (see :func:`main`)
_STARTED = False


#: libraries whose INFO lines are noise on a planner's console (ArviZ's plugin notices,
#: PyTensor's config and compiler lines of up to 1,400 characters); their warnings still show
NOISY_LOGGERS = ("arviz", "pytensor", "numba", "jax")


def _noise(record) -> bool:
    """False for an INFO-or-lower record of a noisy library (dropped by the handlers)."""
    return record.levelno >= 30 or not record.name.startswith(NOISY_LOGGERS)


def _quiet_libraries() -> None:
    """Drop the noisy libraries' INFO lines at every handler Hydra set up (console and log file);
    run at the start of each verb, before the modelling stack is imported."""
    import logging

    for handler in logging.getLogger().handlers:
        if _noise not in handler.filters:
            handler.addFilter(_noise)


def _log_to_files(message: str) -> None:
    """An error into the run's log file only: the console prints it once, with the fix."""
    import logging

    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, (), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _typed(cfg: DictConfig) -> tuple[AppConfig, Path]:
    """The composed config as typed objects and the run folder; a bad value exits 2."""
    global _STARTED
    _STARTED = True
    try:
        config = to_app_config(cfg)
    except (ValueError, TypeError) as e:
        print(f"uplift: configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return config, Path(HydraConfig.get().runtime.output_dir)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _announce(config: AppConfig, out: Path) -> None:
    """The run's first console line, before the modelling stack loads (seconds on 2 cores):
    what runs, where its outputs go, and what it does first."""
    first = "reading data" if config.data.path else "generating data"
    print(f"uplift: run {config.experiment_name} -> {_shown(out)} ({first})", file=sys.stderr)
    sys.stderr.flush()


def _execute(
    verb: str,
    typed: tuple[AppConfig, Path],
    job,
    user_errors: tuple[type[Exception], ...],
):
    """``job(config, output_dir)``; user errors exit 2 with their message only. ``uplift``
    (run) shows its stages on stderr while it works when stderr is a terminal
    (:mod:`uplift.progress`)."""
    config, out = typed
    from uplift.report.run_folder import RunFolderError, run_staged

    user_errors = (*user_errors, RunFolderError)
    try:
        if verb == "run":  # pipeline.run stages its own outputs (refused runs are published)
            from uplift import progress

            shown = progress.display(sys.stderr) if sys.stderr.isatty() else nullcontext()
            with shown:
                result = job(config, out)
            return config, out, result
        staged = run_staged(
            out, config.report.existing.value, config.experiment_name, lambda d: job(config, d)
        )
        return config, out, staged
    except user_errors as e:
        _log_to_files(f"{type(e).__name__}: {e}")  # the console gets it once, below
        print(
            f"uplift {verb}: error: {e}" if verb != "run" else f"uplift: error: {e}",
            file=sys.stderr,
        )
        raise SystemExit(2) from None


def _tracked(job):
    """``job``, then its published run folder logged to MLflow (``tracking.mlflow``,
    :mod:`uplift.app.tracking`), completed, refused or failed alike; a folder that held
    another run (RunFolderError: nothing ran) is not logged."""
    from uplift.app.tracking import log_run_safely
    from uplift.report.run_folder import RunFolderError

    def run(config: AppConfig, out: Path):
        try:
            result = job(config, out)
        except RunFolderError:
            raise
        except Exception:
            log_run_safely(config, out)
            raise
        log_run_safely(config, out)
        return result

    return run


def _check_tracking(config: AppConfig) -> None:
    """Tracking asked for without MLflow installed: exit 2 naming the extra, before any work."""
    from uplift.app.tracking import TrackingError, check_available

    try:
        check_available(config.tracking)
    except TrackingError as e:
        print(f"uplift: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _app(cfg: DictConfig) -> float | None:
    _quiet_libraries()
    typed = _typed(cfg)
    _check_tracking(typed[0])
    _announce(*typed)
    from uplift.data import DataValidationError
    from uplift.experiment.health import HealthCheckError
    from uplift.optimize import AllocationError
    from uplift.pipeline import ConvergenceGateError
    from uplift.pipeline import run as run_pipeline

    errors = (DataValidationError, AllocationError, ConvergenceGateError, HealthCheckError)
    job = _tracked(run_pipeline) if typed[0].tracking.mlflow else run_pipeline
    config, out, result = _execute("run", typed, job, errors)
    run, name = result.run, config.experiment_name
    if run.gate.overridden:
        print(
            f"uplift: WARNING: the plan uses fit(s) that failed the convergence gate "
            f"({', '.join(run.gate.failures)}) because optimize.allow_unconverged=true; "
            "rows resting on them say gate_passed=False",
            file=sys.stderr,
        )
    alloc = run.allocation
    if alloc is not None:
        lo, hi = alloc.profit_interval(config.report.hdi_prob)
        print(
            f"uplift: {name}: spend {alloc.total_spend:,.0f} of {config.optimize.budget:,.0f}; expected incremental "
            f"profit {alloc.expected_profit:,.0f} ({config.report.hdi_prob:.0%} HDI {lo:,.0f} to {hi:,.0f}); "
            f"outputs in {out}"
        )
        pv = run.plan_value
        if pv is not None and pv.list_credit is not None:
            print(
                f"uplift: {name}: the customer list's posterior value {pv.posterior:,.0f} "
                f"(the strata's averages plus {pv.list_credit:,.0f} for the customers chosen "
                "within partly treated strata)"
            )
        if pv is not None and pv.trust == "calibrated" and run.crossfit is not None:
            clo, chi = pv.crossfit_ci or (float("nan"), float("nan"))
            print(
                f"uplift: {name}: corrected for selection {pv.calibrated:,.0f} "
                f"(the number to plan on); cross-fitted value of plans chosen this way "
                f"{pv.crossfit:,.0f} ({run.crossfit.level:.0%} interval {clo:,.0f} to {chi:,.0f})"
            )
    for tactic, p in (run.pricing or {}).items():
        print(
            f"uplift: {name}: prices for {tactic} in prices.csv ({p.get('status', '')}); outputs in {out}"
        )
    return float(alloc.expected_profit) if alloc is not None else 0.0


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _design(cfg: DictConfig) -> None:
    _quiet_libraries()
    from uplift.app.plan import plan_experiment
    from uplift.data import DataValidationError

    config, out, table = _execute(
        "design", _typed(cfg), plan_experiment, (DataValidationError, ValueError)
    )
    seg = table.drop_duplicates("segment")
    short = int((~seg["enough"]).sum())
    print(
        f"uplift design: {len(seg)} segments need {int(seg['segment_required'].sum()):,} customers in all to "
        f"detect {config.design.mde:g} at power {config.design.power:g}; {short} segment(s) lack them. "
        f"Table: {out / 'design.csv'}"
    )


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _clv(cfg: DictConfig) -> None:
    _quiet_libraries()
    from uplift.app.clv_run import run_clv
    from uplift.data import DataValidationError

    _, out, summary = _execute("clv", _typed(cfg), run_clv, (DataValidationError, ValueError))
    print(f"uplift clv: {summary.get('message', 'done')}; outputs in {out}")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _demand(cfg: DictConfig) -> None:
    """``uplift demand``: win-win prices per segment from weekly sales history."""
    _quiet_libraries()
    from uplift.app.demand_run import run_demand

    _, out, summary = _execute("demand", _typed(cfg), run_demand, (ValueError,))
    print(f"uplift demand: {summary.get('message', 'done')}; outputs in {out}")


def _wave_verb(verb: str, job_name: str):
    """``uplift next-wave`` / ``uplift evaluate-policy`` (:mod:`uplift.waves`): bad input (a
    missing run folder or column, an unknown segment) exits 2 with its message."""

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
    def _verb(cfg: DictConfig) -> None:
        _quiet_libraries()
        from uplift import waves
        from uplift.data import DataValidationError

        job = getattr(waves, job_name)
        errors = (DataValidationError, waves.WaveError)
        _, out, summary = _execute(verb, _typed(cfg), job, errors)
        print(f"uplift {verb}: {summary.get('message', 'done')}; outputs in {out}")

    return _verb


VERBS = {
    "run": _app,
    "design": _design,
    "clv": _clv,
    "demand": _demand,
    "next-wave": _wave_verb("next-wave", "next_wave"),
    "evaluate-policy": _wave_verb("evaluate-policy", "evaluate_wave_policy"),
}


def _shallow_copy(source: object, memo: dict[int, object]) -> object:
    memo[id(source)] = new = copy.copy(source)
    return new


def _share_config_store() -> None:
    """Let copies of Hydra's structured-config source share the ConfigStore.

    Hydra deep-copies its config repository for every config group it lists (``uplift --help``
    lists them all, ~100 copies), and the structured-config source in it holds the whole
    ConfigStore: the schema and every preset, ~0.05 s a copy. The store is a process-wide
    singleton that the sources only read (``ConfigStore.load`` returns a copy of the node), so a
    shallow copy of the source is equivalent and saves ~5 s of ``--help`` (2 cores). The source
    class is the one Hydra registered (its plugin scan loads its own copy of the module).
    """
    from hydra._internal.sources_registry import SourcesRegistry
    from hydra.core.plugins import Plugins

    Plugins.instance()  # the plugin scan registers the config sources
    # patching a method onto Hydra's class, which the type system does not model
    SourcesRegistry.instance().resolve("structured").__deepcopy__ = _shallow_copy  # type: ignore[attr-defined]


def main() -> None:
    """``uplift [run|design|clv|demand|next-wave|evaluate-policy] [overrides...]``: ``run``
    (default) fits and allocates; ``design`` sizes a test; ``clv`` values customers from their
    transactions; ``demand`` prices segments from weekly sales history; ``next-wave`` assigns the next wave from a run, ``evaluate-policy`` values a
    run's policy on a later wave (:mod:`uplift.waves`). ``uplift init DATA`` drafts
    a preset for a data file (:mod:`uplift.app.init_preset`)."""
    if len(sys.argv) > 1 and sys.argv[1] == "init":
        from uplift.app.init_preset import main as init

        raise SystemExit(init(sys.argv[2:], shipped=EXPERIMENTS_DIR))
    register_configs()
    register_experiments(*_experiment_folders())
    _share_config_store()
    verb = "run"
    if len(sys.argv) > 1 and sys.argv[1] in VERBS:
        verb = sys.argv.pop(1)
    problem = check_arguments(sys.argv[1:])
    if problem:
        print(f"uplift{'' if verb == 'run' else ' ' + verb}: error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    try:
        VERBS[verb]()
    except SystemExit as e:
        # Hydra reports a bad override (unknown option, invalid enum value, parse error) by name
        # and exits 1 before any verb starts: that is the user's input, exit 2 like every other
        # input error. After a verb started, exit 1 still means a crash.
        if e.code == 1 and not _STARTED:
            raise SystemExit(2) from None
        raise


if __name__ == "__main__":
    main()
