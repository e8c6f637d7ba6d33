"""How segments are made, as a pooling structure shared by every likelihood family.

When segments are crossed from several columns (value tier x region x channel), a segment's
baseline or effect is modelled as a sum of parts, each pooled with a scale learnt from the data
("deep interactions", Ghitza & Gelman 2013, as in multilevel regression and post-stratification):

    theta[g] = mu + sum_d  sigma_d   z_d[level_d(g)]                    main effect per column
                  + sum_{d<e} sigma_de z_de[level_d(g), level_e(g)]     pooled pairwise interaction
                  + residual[g],  residual ~ N(0, sigma_r)              what the columns miss

Segments that share a tier borrow strength through ``z_tier`` first, then through the pairs;
the residual takes the rest. A column that does not matter gets a small ``sigma_d`` and drops out
by itself, so nothing has to be chosen by hand. Main effects and interactions are zero-sum over
their levels (``pm.ZeroSumNormal``; interactions over both axes), so ``mu`` alone carries the
average: without that the mean and the level effects trade off along a ridge (measured 10-35
divergences per tactic on the demo, 0 with it). Interactions are non-centred; the main effects
(column by column, read by the graph as data: :func:`form_flag`) and the residual follow the
model's :class:`~uplift.models.settings.Parameterization`.

A pair is left out when its levels already spell out every segment (two columns): the residual
is that interaction. With one segment column (or none that varies) the structure reduces to
exchangeable pooling, ``theta[g] = mu + residual[g]``.

Interaction scales are half the main-effect scale (the hierarchy principle: higher-order terms
are expected smaller); the residual keeps the model's scale, so a single-column model is the
exchangeable model it always was, and two columns give exactly the earlier dimension pooling.

Baselines follow the columns too, in a lighter form (``fixed_main``): each column's main effect
at a fixed prior scale (no learnt scale, no pairs) plus the pooled residual. Exchangeable
baselines shrink every segment towards the overall rate, so a high tier's baseline came out low
and its effect high by the same amount (bench/crossed_decisions.py seed 6: high-tier control
rate -0.0081 vs the truth, raw cells -0.0049; with the columns' main effects -0.0020, top-tier
uplift RMSE 0.0186 -> 0.0165). With every term pooled (``structure_baselines``: the effects'
structure, learnt scales and pairs) the demo's first fit had not finished after about a
minute instead of ~5 s and the 36-segment benchmark was refused by the gate in 5 of 5 seeds.
The residual around the main effects is small, so crossed baselines are non-centred unless the
data say otherwise (:meth:`uplift.models.settings.Parameterization.resolve`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
import pymc as pm

#: prior scale of pairwise interactions and of the residual, relative to the main effects
HIGHER_ORDER_SCALE = 0.5


@dataclass(frozen=True)
class SegmentStructure:
    """Levels of each segment column for every segment, and the interactions worth modelling.

    ``segments`` fixes the order of the segment axis; ``codes[d][g]`` is the level index of
    segment ``g`` in column ``d``.
    """

    segments: tuple[str, ...]
    dims: tuple[str, ...] = ()
    levels: tuple[tuple[str, ...], ...] = ()
    codes: tuple[np.ndarray, ...] = ()
    pairs: tuple[tuple[int, int], ...] = ()

    @classmethod
    def exchangeable(cls, segments: list[str] | tuple[str, ...]) -> SegmentStructure:
        return cls(tuple(segments))

    @classmethod
    def from_cells(
        cls,
        cells: pd.DataFrame,
        segments: list[str] | tuple[str, ...],
        dims: tuple[str, ...] | list[str],
        interactions: bool = True,
    ) -> SegmentStructure:
        """Read each segment's level of every column in ``dims`` from ``cells``.

        Columns with a single level (they separate nothing) are dropped; a column that is not in
        the cells, or gives one segment two levels, is an error naming the column.
        """
        segments = tuple(segments)
        kept, levels, codes = [], [], []
        for d in dims:
            if d not in cells.columns:
                raise ValueError(f"segment dimension {d!r} is not a column of the cells")
            pairs = cells[["segment", d]].astype(str).drop_duplicates()
            clash = pairs["segment"][pairs["segment"].duplicated()]
            if len(clash):
                raise ValueError(
                    f"segment dimension {d!r} takes several values within segment(s) "
                    f"{sorted(clash.unique())[:5]}: it must be one of the columns that define "
                    "the segment"
                )
            of = pairs.set_index("segment")[d].reindex(list(segments))
            if of.isna().any():
                raise ValueError(f"segments {list(of[of.isna()].index)[:5]} have no {d!r} level")
            lv = tuple(sorted(of.unique()))
            if len(lv) < 2:
                continue
            kept.append(d)
            levels.append(lv)
            codes.append(of.map({v: i for i, v in enumerate(lv)}).to_numpy(dtype=np.int64))
        pair_idx: list[tuple[int, int]] = []
        if interactions:
            for i, j in combinations(range(len(kept)), 2):
                combos = len(set(zip(codes[i].tolist(), codes[j].tolist(), strict=True)))
                if combos < len(segments):  # else the pair is the segment itself: the residual
                    pair_idx.append((i, j))
        return cls(segments, tuple(kept), tuple(levels), tuple(codes), tuple(pair_idx))

    @property
    def crossed(self) -> bool:
        return bool(self.dims)

    def describe(self) -> dict[str, object]:
        """What the model pools along, for summary.json."""
        return {
            "dimensions": {d: len(lv) for d, lv in zip(self.dims, self.levels, strict=True)},
            "interactions": [f"{self.dims[i]} x {self.dims[j]}" for i, j in self.pairs],
            "segments": len(self.segments),
        }


def form_flag(name: str, centered: bool):
    """The form of a column's main effects as data: ``pm.Data(f"{name}_centered")``, 1.0
    centred, 0.0 not. The graph mixes the two forms with it arithmetically (``w a + (1 - w) b``,
    exact for 0 and 1), not with a switch: PyTensor's numba backend cannot compile the boolean
    it would take once the flag is a constant (ADVI's graph).

    Both forms are one graph that reads this flag (:func:`structured`), so a model compiles once
    whatever columns its fits centre: the tactics' own choices (10M customers: three sets over
    six tactics), the retry ladder's main-effect rung and the cross-fitting folds' all swap data
    into the same compiled function (:func:`uplift.models.sampling.sample_nutpie`; compiled
    key: :meth:`uplift.models.base.UpliftModel.compile_config`). Costs about 1 s of compiling.
    """
    return pm.Data(f"{name}_centered", 1.0 if centered else 0.0)


def pooled(name: str, mean, scale: float, dims: tuple[str, ...], centered: bool):
    """Partially pooled values ~ N(mean, sigma) with sigma ~ HalfNormal(scale).

    Centred samples the values themselves (the textbook form: best when data pin each value
    down); non-centred samples z ~ N(0, 1) and returns mean + sigma z (best when data are weak
    and sigma may be near 0). ``mean`` broadcasts against ``dims`` (e.g. ``mu[:, None]``).

    The form is built into the graph (``{name}_value`` or ``{name}_z``), unlike the main
    effects' (:func:`form_flag`): mixing both forms in one graph here made compiling 30-50%
    slower (demo: conversion 7-9 -> 10-12 s, hurdle revenue 14 -> 21 s; the demo's run 194 s
    instead of about 150 s), and at 10M customers, where forms vary most, the fits took 58.6 s
    with every form as data against 52.8 s with the main effects' alone (that run also had
    faster r-hat/ESS, about 5 s of the difference).
    """
    lead = dims[:-1]
    sigma = pm.HalfNormal(f"{name}_sigma", scale, dims=lead or None)
    s = sigma[:, None] if lead else sigma
    if centered:
        return pm.Normal(f"{name}_value", mean, s, dims=dims)
    return mean + s * pm.Normal(f"{name}_z", 0.0, 1.0, dims=dims)


def _coord(d: str) -> str:
    return f"{d}_level"


def _basis(d: str) -> str:
    return f"{d}_contrast"


def zero_sum_basis(levels: int) -> np.ndarray:
    """An orthonormal basis (levels x levels - 1) of the vectors that sum to zero: ``H c`` with
    ``c ~ N(0, sigma^2 I)`` is ``ZeroSumNormal(sigma)`` over the levels.

    PyMC's own (``pymc.distributions.transforms.ZeroSumTransform``'s backward map, a
    Householder reflection), so a main effect written on it has the coordinates that
    ``pm.ZeroSumNormal``'s transform gives the sampler."""
    n = int(levels)
    y = np.eye(n - 1)
    total = y.sum(axis=-1, keepdims=True)
    norm = total / (np.sqrt(n) + n)
    fill = norm - total / np.sqrt(n)
    return (np.concatenate([y, fill], axis=-1) - norm).T


def structured(
    name: str,
    structure: SegmentStructure,
    mean,
    scale: float,
    dims: tuple[str, ...],
    centered: bool,
    *,
    fixed_main: bool = False,
    centered_main: Collection[str] = (),
):
    """Partially pooled values with dims ``dims`` (``("segment",)`` or ``("arm", "segment")``)
    built from ``structure``: ``mean`` + main effects + interactions + residual.

    ``centered``: the residual's form; ``centered_main``: the columns whose main effects are
    sampled as values, not as scale x unit effects: what the data pin down samples best centred
    (:class:`uplift.models.settings.Parameterization`'s ``main``). Either way the sampled
    variable is ``{name}_{column}_z`` and the form is data (``{name}_{column}_centered``,
    :func:`form_flag`), so every form shares one compiled graph.

    ``mean`` broadcasts against ``dims`` (e.g. ``mu[:, None]``). The residual is the
    exchangeable pool of :func:`pooled` (same variable names), so a
    structure without columns builds exactly the exchangeable model.
    """
    model = pm.modelcontext(None)
    lead = dims[:-1]
    for d, lv in zip(structure.dims, structure.levels, strict=True):
        if _coord(d) not in model.coords:
            model.add_coord(_coord(d), list(lv))
    total = mean
    if fixed_main:  # main effects at a fixed prior scale, no pairs (module docstring: baselines)
        for d, code in zip(structure.dims, structure.codes, strict=True):
            z = pm.ZeroSumNormal(f"{name}_{d}_effect", sigma=scale, dims=(*lead, _coord(d)))
            total = total + (z[:, code] if lead else z[code])
        return pooled(name, total, scale, dims, centered)
    for d, code, lv in zip(structure.dims, structure.codes, structure.levels, strict=True):
        sigma = pm.HalfNormal(f"{name}_{d}_sigma", scale, dims=lead or None)
        # the level effects' coordinates in the zero-sum subspace: ~ N(0, sigma) centred, N(0, 1)
        # times sigma not (the orthonormal basis makes either ZeroSumNormal(sigma) exactly; the
        # form is data, form_flag). Written out, not as pm.ZeroSumNormal(sigma=sigma): a
        # ZeroSumNormal whose scale is a random variable cannot be vectorised over prior draws
        # (uplift.models.predictive)
        if _basis(d) not in model.coords:
            model.add_coord(_basis(d), list(range(len(lv) - 1)))
        s = sigma[:, None] if lead else sigma
        w = form_flag(f"{name}_{d}", d in centered_main)
        z = pm.Normal(f"{name}_{d}_z", 0.0, w * s + (1.0 - w), dims=(*lead, _basis(d)))
        v = (w + (1.0 - w) * s) * pm.math.dot(z, zero_sum_basis(len(lv)).T)  # zero-sum levels
        total = total + (v[:, code] if lead else v[code])
    for i, j in structure.pairs:
        di, dj = structure.dims[i], structure.dims[j]
        sigma = pm.HalfNormal(
            f"{name}_{di}_x_{dj}_sigma", HIGHER_ORDER_SCALE * scale, dims=lead or None
        )
        z = pm.ZeroSumNormal(
            f"{name}_{di}_x_{dj}_z",
            sigma=1.0,
            dims=(*lead, _coord(di), _coord(dj)),
            n_zerosum_axes=2,
        )
        ci, cj = structure.codes[i], structure.codes[j]
        part = (sigma[:, None, None] * z)[:, ci, cj] if lead else (sigma * z)[ci, cj]
        total = total + part
    return pooled(name, total, scale, dims, centered)
