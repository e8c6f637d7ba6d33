"""The previous wave's posterior as the next wave's prior (``model.prior_from``).

What is carried, and why it is the segment-level quantities
-----------------------------------------------------------
The likelihood of a tactic's cells depends on the parameters only through the *cell-level*
logits: each segment's baseline ``baseline_logit[g]`` and each (arm, segment) effect
``effect_logit[v, g]`` (call them ``theta``). Everything above them (``mu``, the pooling scales
``sigma``, the per-dimension level effects ``z_d`` of a crossed structure, the residuals) only
shapes the prior of ``theta``. So for two waves A and B of the same experiment

    p(theta | A, B)  ∝  p(B | theta) p(theta | A)

exactly: the posterior of ``theta`` after A, with the hyperparameters integrated out, is the
whole of what A teaches the next fit. The next model therefore takes

    theta ~ MvNormal(mean_A, f * Cov_A)      (non-centred: theta = mean_A + sqrt(f) L_A z)

with ``mean_A`` and ``Cov_A`` the moments of A's draws of ``theta`` (baselines then effects,
all segments jointly) and ``f`` the forgetting factor ``model.prior_forget``. The joint
covariance keeps what the hierarchy did: segments that share a value tier, or a pooled scale,
are correlated in A's posterior, and a segment's baseline and effect are (negatively)
correlated; all of that is carried. Carrying the hyperparameters instead (independent
moment-matched priors on ``mu``, ``sigma`` and the ``z``) would lose those correlations and let
the segment-level deviations be learnt again from B alone, and adding them *on top of* the
carried ``theta`` would count the hierarchy's prior twice; in a non-centred model the ``z`` are
not even comparable between fits. So the next fit does not re-sample the pooling scales: what
they taught about the cells is in ``Cov_A``. Its posterior holds ``baseline_logit``,
``effect_logit`` and everything derived from them (``p_control``, ``p_treated``, ``uplift``),
which is all any later stage reads.

The approximation
-----------------
One: A's posterior of ``theta`` is taken as Gaussian on the logit scale (a moment match, not a
Laplace fit: the draws' own mean and covariance). That is accurate when each cell holds tens of
events, as the binomial logit is then close to Gaussian; with very sparse cells A's posterior is
skewed and heavier-tailed (the pooling's scale mixture), which the Gaussian flattens. With
``f = 1`` and that approximation, fitting B with A's prior gives the posterior of one fit on
A + B (``tests/test_prior_from.py`` measures it with real NUTS). The covariance is estimated
from the draws, so the previous run must hold several draws per carried parameter
(:data:`MIN_DRAWS_PER_PARAMETER`).

The forgetting factor
---------------------
``f`` inflates A's covariance (a power prior with weight ``1/f``: A counts as a wave of ``1/f``
its size). ``f = 1`` assumes nothing changed between waves. The default, 1.25, was measured
(``bench/wave_loop.py``, 3 waves x 5 seeds, no drift in the truth): f = 2 made the wave-3 plan lose
2.6-9.7% of the oracle's true profit in 5 of 5 seeds (mean 6.8%; 0-1% after wave 2): each wave
forgets half of the balanced first wave, and the later, adaptive waves (few customers left in
control and in the losing arms) do not replace that contrast information; f = 1.25 lost 2.6% and
9.9% in 2 of 5 seeds, nothing in 3 (mean 2.5%); f = 1 0.6% in one seed (mean 0.1%). The realised
regret of the waves barely differs (wave 3: 0.319 per customer at 1.25, 0.316 at 1, 0.330 at 2).
f = 1 is best when nothing drifts, but then a wave ten waves back weighs as much as the last one
and the loop never notices a change; at 1.25 a wave k waves back weighs 0.8^k, a memory of about
five waves, for a measured 2.5% of the oracle's profit in a world without drift. Effects known
to be stable: set 1. For two waves of equal size it widens the interval by ~5% when
nothing changed and leaves 44% instead of 50% of a change between the waves in the estimate
(A's weight ``(1/f) / (1/f + 1)``). Expecting drift between every wave (seasons, fatigue): raise
it; f = 2 weighs the last wave as half.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: the previous run must hold at least this many draws per carried parameter (its covariance
#: is estimated from them; with fewer the estimate is too noisy to be a prior)
MIN_DRAWS_PER_PARAMETER = 4
#: the dim of the carried vector in the next model
CARRIED_DIM = "carried"
#: default forgetting factor (variance inflation): see the module docstring
DEFAULT_FORGET = 1.25


class CarriedPriorError(ValueError):
    """A previous posterior that cannot serve as the next prior; the message names why."""


@dataclass(frozen=True)
class CarriedPrior:
    """A previous fit's posterior of one tactic's cell-level logits, moment-matched.

    ``mean``/``chol``: mean and lower Cholesky factor of the covariance of
    ``(baseline_logit[g] for g in segments) + (effect_logit[v, g] for v in arms for g in
    segments)``, as estimated (not inflated); ``forget``: the variance inflation the next model
    applies; ``source``: the posterior file it came from; ``draws``: how many draws it used.
    """

    segments: tuple[str, ...]
    arms: tuple[str, ...]
    mean: np.ndarray
    chol: np.ndarray
    forget: float
    source: str
    draws: int

    @classmethod
    def from_posterior(cls, posterior: Any, forget: float, source: str) -> CarriedPrior:
        """Moment-match ``posterior`` (an xarray Dataset with ``baseline_logit`` (segment) and
        ``effect_logit`` (arm, segment), as every binomial fit saves)."""
        if not forget >= 1 or not np.isfinite(forget):
            raise CarriedPriorError(
                f"model.prior_forget must be a finite number >= 1 (1: no widening), got {forget}"
            )
        missing = [v for v in ("baseline_logit", "effect_logit") if v not in posterior]
        if missing:
            raise CarriedPriorError(
                f"{source} has no {missing} in its posterior: it was not written by a model "
                "whose posterior can be carried (the binomial family)"
            )
        base = posterior["baseline_logit"].stack(sample=("chain", "draw"))
        eff = posterior["effect_logit"].stack(sample=("chain", "draw"))
        segments = tuple(str(s) for s in base["segment"].values)
        arms = tuple(str(a) for a in eff["arm"].values)
        x = np.concatenate(
            [
                base.transpose("sample", "segment").values,
                eff.transpose("sample", "arm", "segment").values.reshape(base.sizes["sample"], -1),
            ],
            axis=1,
        ).astype(float)
        n, d = x.shape
        if n < MIN_DRAWS_PER_PARAMETER * d:
            raise CarriedPriorError(
                f"{source} holds {n} draws for {d} carried parameters: too few to estimate "
                f"their covariance (at least {MIN_DRAWS_PER_PARAMETER * d}); refit the earlier "
                "wave with more draws (sampler.draws, sampler.chains)"
            )
        mean = x.mean(axis=0)
        cov = np.atleast_2d(np.cov(x, rowvar=False))
        return cls(segments, arms, mean, _cholesky(cov), float(forget), str(source), n)

    @classmethod
    def from_file(cls, path: str | Path, forget: float) -> CarriedPrior:
        """The prior carried from a saved posterior file (``posterior_<tactic>.nc``)."""
        from uplift.models.persist import read_netcdf

        return cls.from_posterior(read_netcdf(path)["posterior"], forget, str(path))

    @property
    def size(self) -> int:
        return len(self.mean)

    @property
    def digest(self) -> str:
        """SHA-256 of the numbers (the fit cache keys a carried fit by it)."""
        h = hashlib.sha256()
        h.update(json.dumps([self.segments, self.arms, self.forget]).encode())
        h.update(np.ascontiguousarray(self.mean, dtype=float).tobytes())
        h.update(np.ascontiguousarray(self.chol, dtype=float).tobytes())
        return h.hexdigest()

    def describe(self) -> dict[str, Any]:
        """What a saved model config records (JSON): where the prior came from and its digest."""
        return {
            "source": self.source,
            "forget": self.forget,
            "digest": self.digest,
            "draws": self.draws,
            "parameters": self.size,
        }

    def aligned(self, segments: list[str], arms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and inflated Cholesky factor in the order of ``segments`` and ``arms`` (the next
        model's; the caller has checked they are the same labels)."""
        seg_pos = {s: i for i, s in enumerate(self.segments)}
        g = len(self.segments)
        order = [seg_pos[s] for s in segments] + [
            g + self.arms.index(a) * g + seg_pos[s] for a in arms for s in segments
        ]
        idx = np.asarray(order)
        cov = self.chol @ self.chol.T
        chol = (
            _cholesky(cov[np.ix_(idx, idx)]) if list(idx) != list(range(self.size)) else self.chol
        )
        return self.mean[idx], np.sqrt(self.forget) * chol


def carried_labels(segments: list[str], n_arms: int) -> list[str]:
    """The carried dim's labels in a model's order: ``baseline|<segment>``, then
    ``effect|<arm position>|<segment>`` (positions, not arm names, so that every tactic's model
    has the same coords and they share one compiled graph)."""
    return [f"baseline|{s}" for s in segments] + [
        f"effect|{i}|{s}" for i in range(n_arms) for s in segments
    ]


def _cholesky(cov: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor, with the smallest diagonal jitter that makes ``cov`` definite
    (rounding can leave an estimated covariance a hair from positive definite)."""
    scale = float(np.mean(np.diag(cov))) or 1.0
    for jitter in (0.0, 1e-10, 1e-8, 1e-6):
        try:
            return np.linalg.cholesky(cov + jitter * scale * np.eye(len(cov)))
        except np.linalg.LinAlgError:
            continue
    raise CarriedPriorError(
        "the previous posterior's covariance is not positive definite even with jitter: its "
        "draws are degenerate (a constant parameter); refit the earlier wave"
    )
