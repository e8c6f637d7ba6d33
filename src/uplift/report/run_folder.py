"""A run folder belongs to one run: staged writes, a publish step, a status written last.

A run writes every artifact into a staging folder beside the run folder (same file system, so
publishing is a rename per file, never a copy), then moves them in with ``summary.json`` last;
its ``status`` (``complete``, or ``refused`` when the gate or the rules stopped the plan) is the
completion marker: a folder without it holds no finished run. A run that fails leaves only a
``summary.json`` with ``status: failed`` and why. A SIGKILL leaves the run folder as it was
(Hydra's ``.hydra/`` and log only) or complete; the staging folder it leaves beside it is
removed by the next run there. A folder that already holds a run is refused, or cleaned with
``report.existing=overwrite``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from uplift.atomic_io import atomic_write_json

#: what Hydra puts in a run folder before the run starts; never a previous run's output
HYDRA_ENTRIES = (".hydra", "cli.log")
STAGING_INFIX = ".staging-"
SUMMARY = "summary.json"


class RunFolderError(RuntimeError):
    """The output folder already holds a run (or cannot be used)."""


def staging_dir(final: Path) -> Path:
    final = final.resolve()  # "." has no name and no parent of its own
    return final.parent / f".{final.name}{STAGING_INFIX}{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(final: Path) -> list[Path]:
    """Staging folders of runs into ``final`` whose process is gone (killed runs)."""
    removed = []
    final = final.resolve()
    for p in final.parent.glob(f".{final.name}{STAGING_INFIX}*"):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def previous_outputs(final: Path) -> list[Path]:
    if not final.is_dir():
        return []
    return sorted(p for p in final.iterdir() if p.name not in HYDRA_ENTRIES)


def prepare(final: Path, existing: str) -> Path:
    """Make ``final`` ready for one run and return a fresh staging folder beside it.

    ``existing``: ``refuse`` (a folder holding earlier outputs is an error naming them) or
    ``overwrite`` (they are deleted first). Temp files of killed writes count as outputs.
    """
    final.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(final)
    old = previous_outputs(final)
    if old:
        if existing != "overwrite":
            names = ", ".join(p.name for p in old[:5]) + (" ..." if len(old) > 5 else "")
            raise RunFolderError(
                f"output folder {str(final)!r} already holds a run ({names}): outputs of two runs "
                "must not mix. Choose another folder (hydra.run.dir=...), or set "
                "report.existing=overwrite to delete them first."
            )
        for p in old:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    stage = staging_dir(final)
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    return stage


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish(stage: Path, final: Path) -> None:
    """Move everything from ``stage`` into ``final`` (one rename each), ``summary.json`` last."""
    for p in sorted(stage.iterdir(), key=lambda p: (p.name == SUMMARY, p.name)):
        target = final / p.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(p, target)
    _fsync_dir(final)
    shutil.rmtree(stage, ignore_errors=True)


def fail(stage: Path, final: Path, error: BaseException, experiment: str) -> None:
    """Discard the staged outputs and leave only a summary saying why the run failed."""
    shutil.rmtree(stage, ignore_errors=True)
    atomic_write_json(
        {
            "status": "failed",
            "experiment": experiment,
            "error": type(error).__name__,
            "message": str(error),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        final / SUMMARY,
    )


def run_staged(
    final: Path,
    existing: str,
    experiment: str,
    job,
    *,
    publish_on: tuple[type[BaseException], ...] = (),
):
    """``job(staging_folder)`` with a run's guarantees: refused or cleaned folder, outputs
    published when it returns, only a failed summary when it raises. An error in
    ``publish_on`` raised after the job wrote its ``summary.json`` (a run the gate or the rules
    refused) publishes the outputs before it propagates."""
    stage = prepare(final, existing)
    try:
        result = job(stage)
    except publish_on as e:
        if (stage / SUMMARY).exists():
            publish(stage, final)
        else:  # stopped before the outputs were made
            fail(stage, final, e, experiment)
        raise
    except BaseException as e:
        fail(stage, final, e, experiment)
        raise
    publish(stage, final)
    return result
