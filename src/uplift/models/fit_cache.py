"""A folder of posteriors keyed by everything that decides them, so a fit is sampled once.

A sweep over budgets or allocation rules (``uplift -m optimize.budget=10000,20000,40000``), or a
run repeated with only ``optimize.*`` changed, needs the same posteriors every time: sampling
them again costs most of the run and gives the same draws (fits are seeded). The cache stores
each fit as the netCDF file :meth:`~uplift.models.persist.SavedModel.save` writes, under the
SHA-256 of a JSON description of the fit (:meth:`FitCache.key`): the model class, family and
config, the sampler settings and seed, the tactic, the package versions, a digest of the model
code, and the bytes of every table the fit reads (:meth:`UpliftModel.fit_data`). Anything that
could change the posterior changes the key; a stale entry is never read. The folder is capped
(``sampler.cache_max_gb``, 2 GB by default): after each store the least recently used entries
(by modification time, which a hit renews) are removed until the entries fit, so stale ones go
first and the folder does not grow without bound (:meth:`FitCache.prune`).

Safe to share: files are written to a temporary name and renamed (two jobs storing the same key
both write a whole file, the last rename wins); an entry that does not read back, or whose stored
key or model class is not the one asked for, is ignored with a warning and the fit is redone.
Jobs of a parallel sweep (``hydra/launcher=joblib``) that need the same entry at once do not both
sample it: :meth:`FitCache.claim` holds a lock file per key while one looks up, fits and stores
(POSIX ``flock``, released by the system if the job dies), and the other then reads its entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

try:  # POSIX advisory locks; elsewhere jobs of a sweep may both fit (correct, only slower)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from uplift.atomic_io import atomic_write_netcdf
from uplift.models.persist import check_saved, package_versions
from uplift.models.settings import SamplerSettings

if TYPE_CHECKING:
    import xarray as xr

    from uplift.models.base import UpliftModel

log = logging.getLogger(__name__)

#: bump when what an entry holds changes meaning (old entries are then never read)
FORMAT = 1
#: the default folder, relative to the working folder, when neither ``sampler.cache_dir`` nor
#: ``$UPLIFT_FIT_CACHE`` names one
DEFAULT_FOLDER = Path("outputs") / ".fit_cache"
ENV_FOLDER = "UPLIFT_FIT_CACHE"
#: packages whose versions are part of every key (a new sampler may draw differently)
VERSIONED = (
    "uplift",
    "pymc",
    "pytensor",
    "nutpie",
    "numpyro",
    "jax",
    "numba",
    "numpy",
    "scipy",
    "pandas",
    "xarray",
    "arviz",
    "arviz-base",
    "netCDF4",
    "h5netcdf",
)
#: sampler settings that say where and whether to cache, not how to sample
NOT_SAMPLING = ("cache", "cache_dir", "cache_max_gb")
#: an entry's file name: ``<label>-<first 40 hex digits of its key>.nc``
ENTRY = re.compile(r"^.+-[0-9a-f]{40}\.nc$")
KEY_ATTR = "uplift_fit_cache_key"


def default_folder(configured: str | None = None) -> Path:
    """``configured`` (``sampler.cache_dir``), else ``$UPLIFT_FIT_CACHE``, else
    :data:`DEFAULT_FOLDER` under the working folder; absolute."""
    folder = configured or os.environ.get(ENV_FOLDER) or DEFAULT_FOLDER
    return Path(folder).expanduser().absolute()


@cache
def code_digest(*extra: str) -> str:
    """SHA-256 of the model code (every module of :mod:`uplift.models`) and of ``extra`` files:
    a checkout whose models were edited gets new keys even when its version did not change."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in [*sorted(root.rglob("*.py")), *(Path(p) for p in extra)]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@cache
def environment() -> dict[str, Any]:
    """Python, machine and the package versions a key records."""
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        **package_versions(VERSIONED),
    }


def sampler_key(settings: SamplerSettings) -> dict[str, Any]:
    """The sampler settings that change draws (all but :data:`NOT_SAMPLING`)."""
    return {k: v for k, v in asdict(settings).items() if k not in NOT_SAMPLING}


def model_key(model: UpliftModel, tactic: str) -> dict[str, Any]:
    """What a model contributes to a key: class, family, metric, config, sampler settings (with
    the seed), the tactic (per-tactic seed) and the sampling function the fit will call (tests
    and notebooks may replace it)."""
    fn = model.sampling_function()
    return {
        "tactic": str(tactic),
        "model_class": type(model).__name__,
        "family": model.family,
        "metric": model.metric,
        "model_config": model.model_config(),
        "sampler": sampler_key(model.sampler),
        "sampling_function": f"{fn.__module__}.{fn.__qualname__}",
    }


def _frame_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of a table's column names, dtypes and values, in row order (the order decides
    the order of the model's data, and so the floating-point sums of its log density)."""
    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:60] or "fit"


@dataclass
class FitCache:
    """Posteriors under ``folder`` by key; ``enabled=False`` caches nothing (every fit samples).

    ``counts`` tallies hits and misses per kind of fit (``fit``, ``crossfit_fold``) and the
    entries evicted (``evicted``) for the run's summary. ``max_bytes``: the size cap of the
    folder's entries (None: never evict).
    """

    folder: Path
    enabled: bool = True
    counts: Counter = field(default_factory=Counter)
    max_bytes: int | None = None

    @classmethod
    def from_settings(cls, settings: SamplerSettings) -> FitCache:
        """The cache ``sampler.cache`` / ``sampler.cache_dir`` / ``sampler.cache_max_gb``
        describe."""
        cap = settings.cache_max_gb
        return cls(
            default_folder(settings.cache_dir),
            bool(settings.cache),
            max_bytes=None if cap is None else int(cap * 1e9),
        )

    @staticmethod
    def key(parts: Mapping[str, Any], tables: Iterable[pd.DataFrame]) -> str:
        """SHA-256 of ``parts`` (JSON, sorted keys), the environment, the model code and the
        ``tables``."""
        description = {
            "format": FORMAT,
            **parts,
            "environment": environment(),
            "code": code_digest(),
            "tables": [_frame_digest(t) for t in tables],
        }
        text = json.dumps(description, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def path(self, label: str, key: str) -> Path:
        return self.folder / f"{_safe(label)}-{key[:40]}.nc"

    @staticmethod
    def _lock_of(entry: Path) -> Path:
        """The lock file of the entry at ``entry`` (:meth:`claim` holds it)."""
        return entry.with_name(f".{entry.stem}.lock")

    @contextmanager
    def claim(self, label: str, key: str) -> Iterator[None]:
        """Hold ``key``'s lock while the block looks the entry up and, on a miss, fits and
        stores it: another process claiming the same key waits, then finds the entry. No lock
        when the cache is off, the platform has no ``fcntl`` or the folder cannot be written
        (then two jobs may both fit, as before: correct, only slower)."""
        handle = None
        if self.enabled and fcntl is not None:
            lock = self._lock_of(self.path(label, key))
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                handle = lock.open("a")
                fcntl.flock(handle, fcntl.LOCK_EX)
            except OSError as e:
                log.debug("fit cache: no lock for %s (%s)", lock, e)
                if handle is not None:
                    handle.close()
                handle = None
        try:
            yield
        finally:
            if handle is not None:
                handle.close()  # closing the file releases the lock

    def _read(self, path: Path, key: str, check: Callable[[Any], None] | None):
        """The tree stored at ``path`` if it is this key's entry, else None (with a warning
        when a file is there but unusable)."""
        import xarray as xr

        if not path.is_file():
            return None
        try:
            tree = xr.load_datatree(path)
            if tree.attrs.get(KEY_ATTR) != key:
                raise ValueError(f"it holds key {tree.attrs.get(KEY_ATTR)!r}, not {key!r}")
            if check is not None:
                check(tree)
        except Exception as e:  # unreadable, truncated or foreign: refit and overwrite
            log.warning("fit cache: ignoring %s (%s: %s); fitting again", path, type(e).__name__, e)
            return None
        with suppress(OSError):  # a hit is a use: the entry is evicted last
            os.utime(path)
        return tree

    def load(self, label: str, key: str, model: UpliftModel) -> UpliftModel | None:
        """``model`` around its cached posterior (:meth:`UpliftModel.with_posterior`), or None."""
        if not self.enabled:
            return None
        path = self.path(label, key)
        tree = self._read(path, key, lambda t: check_saved(t, type(model), path))
        self.counts["fit_hit" if tree is not None else "fit_miss"] += 1
        return None if tree is None else model.with_posterior(tree)

    def store(self, label: str, key: str, model: UpliftModel) -> Path | None:
        """Save ``model``'s posterior as ``key``'s entry (atomically); None when disabled."""
        if not self.enabled:
            return None
        model.idata.attrs[KEY_ATTR] = key
        return self._write(lambda path: model.save(path), self.path(label, key))

    def _write(self, write: Callable[[Path], Path], path: Path) -> Path | None:
        """``write(path)``, then :meth:`prune`; a cache that cannot be written (read-only or
        full disk) costs the next run a fit, not this run: a warning, and None."""
        try:
            written = write(path)
        except OSError as e:
            log.warning("fit cache: could not store %s (%s); continuing without it", path, e)
            return None
        self.prune(keep=written)
        return written

    def prune(self, keep: Path | None = None) -> list[Path]:
        """Remove the least recently used entries (oldest modification time first; a hit
        renews it) until the entries' total size is at most ``max_bytes``; ``keep`` (the entry
        just stored) is never removed. Only files named like entries are counted or removed,
        with their lock file when no job holds it. Returns the removed entries.

        Safe beside other jobs: one reading an entry removed under it refits (an unreadable
        entry is refit, see :meth:`_read`), one removing it too finds it gone.
        """
        if self.max_bytes is None or not self.enabled:
            return []
        entries = []
        with suppress(OSError):
            for path in self.folder.iterdir():
                if ENTRY.match(path.name):
                    with suppress(OSError):  # removed by another job meanwhile
                        st = path.stat()
                        entries.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in entries)
        removed: list[Path] = []
        for _, size, path in sorted(entries, key=lambda e: (e[0], e[2].name)):
            if total <= self.max_bytes:
                break
            if keep is not None and path == keep:
                continue
            with suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
                self._drop_lock(path)
            total -= size
        if removed:
            self.counts["evicted"] += len(removed)
            log.info(
                "fit cache: removed %d least recently used entries to keep %s under %.1f GB",
                len(removed),
                self.folder,
                self.max_bytes / 1e9,
            )
        return removed

    def _drop_lock(self, entry: Path) -> None:
        """Remove an evicted entry's lock file unless a job holds it (then it stays: harmless)."""
        if fcntl is None:
            return
        lock = self._lock_of(entry)
        try:
            with lock.open("a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                lock.unlink()
        except OSError:
            pass

    def draws(
        self, label: str, key: str, compute: Callable[[], xr.DataArray]
    ) -> tuple[xr.DataArray, bool]:
        """Uplift draws of ``key`` (a cross-fitting fold's fit keeps only those), computed by
        ``compute`` and stored on a miss; returns the draws and whether they came from the
        cache."""
        if not self.enabled:
            return compute(), False
        path = self.path(label, key)
        with self.claim(label, key):
            tree = self._read(path, key, None)
            if tree is not None and "uplift" in tree.data_vars:
                self.counts["crossfit_fold_hit"] += 1
                return tree.to_dataset()["uplift"], True
            self.counts["crossfit_fold_miss"] += 1
            draws = compute()
            ds = draws.to_dataset(name="uplift")
            ds.attrs[KEY_ATTR] = key
            self._write(lambda p: atomic_write_netcdf(ds, p), path)
        return draws, False

    def summary(self, fits: Mapping[str, bool]) -> dict[str, Any]:
        """summary.json's ``fit_cache``: whether it was on, its folder, each tactic's fit
        (``hit``: read from the cache, ``miss``: sampled and stored) and the counts of every
        cached fit of the run (held-out refits and cross-fitting folds included)."""
        if not self.enabled:
            return {"enabled": False}
        return {
            "enabled": True,
            "folder": str(self.folder),
            "fits": {t: "hit" if hit else "miss" for t, hit in fits.items()},
            "counts": dict(sorted(self.counts.items())),
        }
