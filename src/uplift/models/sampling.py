"""One place that turns sampler settings into a ``pm.sample`` call, whatever the backend."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pymc as pm


class SamplerBackend(StrEnum):
    nutpie = "nutpie"
    pymc = "pymc"


@dataclass
class SamplerSettings:
    """Sampler backend, chains, draws and seed (the ``sampler`` config group)."""

    backend: SamplerBackend = SamplerBackend.nutpie
    draws: int = 2000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.9
    seed: int = 20261123

    def __post_init__(self) -> None:
        self.backend = SamplerBackend(self.backend)
        for key, low in (("draws", 1), ("tune", 0), ("chains", 1)):
            if getattr(self, key) < low:
                raise ValueError(f"sampler.{key} must be >= {low}, got {getattr(self, key)}")
        if not 0.5 <= self.target_accept < 1:
            raise ValueError(f"sampler.target_accept must be in [0.5, 1), got {self.target_accept}")

    def seed_for(self, *keys: int | str) -> int:
        """A stable per-model seed derived from the run seed and a key (e.g. the tactic name)."""
        ints = [
            self.seed,
            *[k if isinstance(k, int) else int.from_bytes(k.encode()[:8], "little") for k in keys],
        ]
        return int(np.random.SeedSequence(ints).generate_state(1)[0])


_COMPILED: dict[tuple, object] = {}


def _relabel(tree, coords: dict[str, list]):
    """Put this fit's labels on dims whose values a reused compiled model does not know."""
    for group in list(tree.children):
        ds = tree[group].to_dataset()
        labels = {d: v for d, v in coords.items() if d in ds.dims}
        if labels:
            tree[group] = ds.assign_coords(labels)
    return tree


def sample_nutpie(
    model: pm.Model,
    settings: SamplerSettings,
    seed: int,
    key: tuple | None = None,
    relabel: tuple[str, ...] = (),
):
    """nutpie sampling that compiles a graph once and swaps in new data for later fits.

    Compiling dominates a fit (~4-17 s vs ~0.5 s of sampling, see bench/fit_scaling.py), and
    tactics share one graph structure, so each structure is compiled once per process; the
    ``pm.Data`` containers carry each fit's numbers. Draws equal those of a fresh compile with the
    same seed (tested). ``key`` must identify everything baked into the graph (class, priors);
    coords of ``relabel`` dims may differ between fits (e.g. arm names), all others must match.
    ``key=None`` compiles afresh and caches nothing.
    """
    import nutpie

    data = {v.name: v.get_value() for v in model.data_vars}
    fixed = tuple((d, tuple(map(str, v))) for d, v in model.coords.items() if d not in relabel)
    full_key = (key, fixed, tuple((k, np.shape(v)) for k, v in sorted(data.items())))
    compiled = _COMPILED.get(full_key) if key is not None else None
    if compiled is None:
        compiled = nutpie.compile_pymc_model(model)
        if key is not None:
            _COMPILED[full_key] = compiled
    else:
        compiled = compiled.with_data(**data)
    tree = nutpie.sample(
        compiled,
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        seed=seed,
        progress_bar=False,
        save_warmup=False,
        target_accept=settings.target_accept,
    )
    return _relabel(tree, {d: list(model.coords[d]) for d in relabel})


def sample(model: pm.Model, settings: SamplerSettings, seed: int):
    """Draw from ``model``'s posterior; returns ArviZ data (an xarray DataTree)."""
    for name in ("pymc", "pymc.sampling", "pymc.stats.convergence"):
        logging.getLogger(name).setLevel(logging.ERROR)
    kwargs: dict[str, object] = {
        "draws": settings.draws,
        "tune": settings.tune,
        "chains": settings.chains,
        "random_seed": seed,
        "progressbar": False,
        "nuts_sampler": settings.backend.value,
        "target_accept": settings.target_accept,
        "compute_convergence_checks": False,
    }
    if settings.backend == "pymc":
        kwargs["cores"] = min(settings.chains, os.cpu_count() or 1)
    with model:
        return pm.sample(**kwargs)
