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
